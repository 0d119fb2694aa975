//! AddPartitionsToTxn: v0-3 (a producer adds partitions to its transaction) and v4 (a batch of
//! transactions, each possibly `verify_only`: KIP-890's check that the partitions are already in
//! the ongoing transaction, which is how a partition leader asks the coordinator).

use crate::broker::Broker;
use crate::model::TopicPartition;
use crate::protocol::routes::{Reply, RequestContext};
use crate::txn::coordinator::code;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ResponseKind, TopicName,
};
use std::sync::Arc;

fn partitions(topics: &[AddPartitionsToTxnTopic]) -> Vec<TopicPartition> {
    topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.name.0.to_string(), *p))
        })
        .collect()
}

/// Per-topic results, in the order the partitions were given.
fn by_topic(results: Vec<(TopicPartition, i16)>) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (tp, error) in results {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(tp.partition)
            .with_partition_error_code(error);
        match out.iter_mut().find(|t| *t.name.0 == *tp.topic) {
            Some(t) => t.results_by_partition.push(result),
            None => out.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(crate::handlers::str_bytes(tp.topic)))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    out
}

pub async fn handle(
    broker: Arc<Broker>,
    request: AddPartitionsToTxnRequest,
    ctx: RequestContext,
) -> Reply {
    Reply::Deferred(Box::pin(async move {
        let version = ctx.api_version;
        if version <= 3 {
            let results = broker
                .txns
                .add_partitions(
                    &request.v3_and_below_transactional_id.0,
                    request.v3_and_below_producer_id.0,
                    request.v3_and_below_producer_epoch,
                    partitions(&request.v3_and_below_topics),
                )
                .await
                .into_iter()
                .map(|(tp, e)| (tp, super::for_version(e, version, 2)))
                .collect();
            return ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default()
                    .with_results_by_topic_v3_and_below(by_topic(results)),
            );
        }
        let mut results = Vec::with_capacity(request.transactions.len());
        for t in &request.transactions {
            let wanted = partitions(&t.topics);
            let outcome: Vec<(TopicPartition, i16)> = if t.verify_only {
                wanted
                    .into_iter()
                    .map(|tp| {
                        let e = broker
                            .txns
                            .verify(t.producer_id.0, t.producer_epoch, &tp)
                            .err()
                            .unwrap_or(code::NONE);
                        (tp, e)
                    })
                    .collect()
            } else {
                broker
                    .txns
                    .add_partitions(
                        &t.transactional_id.0,
                        t.producer_id.0,
                        t.producer_epoch,
                        wanted,
                    )
                    .await
            };
            results.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(t.transactional_id.clone())
                    .with_topic_results(by_topic(outcome)),
            );
        }
        ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_results_by_transaction(results),
        )
    }))
}

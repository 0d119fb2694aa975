//! DescribeTransactions: a transactional id's state, producer, timeout, start time and the
//! partitions of its ongoing transaction.

use crate::broker::Broker;
use crate::handlers::str_bytes;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, ResponseKind, TopicName,
};
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: DescribeTransactionsRequest,
    _ctx: RequestContext,
) -> Reply {
    let states = request
        .transactional_ids
        .iter()
        .map(|id| {
            let r = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            match broker.txns.describe(&id.0) {
                Err(e) => r.with_error_code(e),
                Ok(m) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for tp in &m.partitions {
                        match topics.last_mut() {
                            Some(t) if *t.topic.0 == *tp.topic => t.partitions.push(tp.partition),
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(tp.topic.clone())))
                                    .with_partitions(vec![tp.partition]),
                            ),
                        }
                    }
                    r.with_transaction_state(str_bytes(m.state.name()))
                        .with_transaction_timeout_ms(m.timeout_ms)
                        .with_transaction_start_time_ms(m.start_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    Reply::ready(ResponseKind::DescribeTransactions(
        DescribeTransactionsResponse::default().with_transaction_states(states),
    ))
}

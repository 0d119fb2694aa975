//! TxnOffsetCommit: offsets committed inside a transaction. The group's offsets partition must
//! be in the producer's ongoing transaction (AddOffsetsToTxn first); the offsets are written as
//! the producer's transactional records and become visible when its commit marker lands.

use crate::broker::Broker;
use crate::group::offsets::{CommitResult, TxnCommitRequest};
use crate::protocol::routes::{Reply, RequestContext};
use crate::txn::coordinator::code;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ResponseKind, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: TxnOffsetCommitRequest,
    ctx: RequestContext,
) -> Reply {
    let offsets_tp = broker.txns.offsets_partition(&request.group_id.0);
    let verified = broker
        .txns
        .verify(request.producer_id.0, request.producer_epoch, &offsets_tp)
        .err();
    let mut known = Vec::new();
    let mut early: Vec<Option<i16>> = Vec::new();
    for t in &request.topics {
        for p in &t.partitions {
            if let Some(e) = verified {
                early.push(Some(e));
            } else if broker
                .topics
                .partition(&t.name.0, p.partition_index)
                .is_none()
            {
                early.push(Some(code::UNKNOWN_TOPIC_OR_PARTITION));
            } else {
                known.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.committed_metadata.as_ref().map(|m| m.to_string()),
                ));
                early.push(None);
            }
        }
    }
    let outcome = if known.is_empty() {
        CommitResult {
            errors: Vec::new(),
            durable: None,
        }
    } else {
        broker.groups.txn_commit(TxnCommitRequest {
            group_id: request.group_id.0.to_string(),
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
            generation_id: request.generation_id,
            member_id: request.member_id.to_string(),
            instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
            offsets: known,
        })
    };
    let mut from_group = outcome.errors.into_iter();
    let version = ctx.api_version;
    let errors: Vec<i16> = early
        .into_iter()
        .map(|e| e.unwrap_or_else(|| from_group.next().unwrap_or(code::NONE)))
        .map(|e| super::for_version(e, version, 3))
        .collect();
    crate::handlers::group::after_sync(&broker, outcome.durable, errors, move |errors| {
        let mut errors = errors.into_iter();
        let topics = request
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(errors.next().unwrap_or(code::NONE))
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        ResponseKind::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(topics))
    })
}

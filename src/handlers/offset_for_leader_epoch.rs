//! OffsetForLeaderEpoch: the end offset of a leader epoch, so a consumer (or follower) can
//! detect log truncation. This node has led every partition since epoch 0, so the current
//! epoch ends at the log end offset, and a later epoch is unknown.

use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ResponseKind,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: OffsetForLeaderEpochRequest,
    _ctx: RequestContext,
) -> Reply {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let r = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = broker.topics.partition(&t.topic.0, p.partition) else {
                        return r.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let current = partition.leader_epoch();
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch != current {
                        let e = if p.current_leader_epoch < current {
                            ResponseError::FencedLeaderEpoch
                        } else {
                            ResponseError::UnknownLeaderEpoch
                        };
                        return r.with_error_code(e.code());
                    }
                    if p.leader_epoch < 0 || p.leader_epoch > current {
                        // An epoch this partition never had: undefined, as Kafka answers.
                        return r;
                    }
                    r.with_leader_epoch(current)
                        .with_end_offset(partition.log_end_offset())
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    Reply::ready(ResponseKind::OffsetForLeaderEpoch(
        OffsetForLeaderEpochResponse::default().with_topics(topics),
    ))
}

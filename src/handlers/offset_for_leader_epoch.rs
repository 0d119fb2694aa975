//! OffsetForLeaderEpoch: the end offset of a leader epoch, from the partition's leader epoch
//! cache, so a consumer (or follower) can detect log truncation: the largest epoch at or below
//! the one asked for and where the next one starts (the log end for the current epoch); an
//! epoch later than any known is undefined (-1, -1).

use crate::broker::Broker;
use crate::handlers::cluster_view::led_partition;
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
                    let partition = match led_partition(&broker, &t.topic.0, p.partition) {
                        Ok(partition) => partition,
                        Err(e) => return r.with_error_code(e.code()),
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
                    let (epoch, end) = partition.end_offset_for_epoch(p.leader_epoch);
                    r.with_leader_epoch(epoch).with_end_offset(end)
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

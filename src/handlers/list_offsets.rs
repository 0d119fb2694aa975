//! ListOffsets: earliest, latest (high watermark, or last stable offset for read_committed),
//! max timestamp, and the first offset at or after a timestamp (through the time index).

use crate::broker::Broker;
use crate::handlers::cluster_view::led_partition;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, ResponseKind};
use kafka_protocol::ResponseError;
use std::collections::HashSet;
use std::sync::Arc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const READ_COMMITTED: i8 = 1;

pub async fn handle(
    broker: Arc<Broker>,
    request: ListOffsetsRequest,
    ctx: RequestContext,
) -> Reply {
    // The leader epoch is in responses from v4 on; older versions must leave it at -1.
    let with_epoch = ctx.api_version >= 4;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let mut seen = HashSet::new();
            let duplicated: HashSet<i32> = t
                .partitions
                .iter()
                .filter(|p| !seen.insert(p.partition_index))
                .map(|p| p.partition_index)
                .collect();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    if duplicated.contains(&p.partition_index) {
                        return r.with_error_code(ResponseError::InvalidRequest.code());
                    }
                    let partition = match led_partition(&broker, &t.name.0, p.partition_index) {
                        Ok(partition) => partition,
                        Err(e) => return r.with_error_code(e.code()),
                    };
                    let epoch = partition.leader_epoch();
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch != epoch {
                        let e = if p.current_leader_epoch < epoch {
                            ResponseError::FencedLeaderEpoch
                        } else {
                            ResponseError::UnknownLeaderEpoch
                        };
                        return r.with_error_code(e.code());
                    }
                    if partition.is_offline() {
                        return r.with_error_code(ResponseError::KafkaStorageError.code());
                    }
                    if with_epoch {
                        r.leader_epoch = epoch;
                    }
                    // Nothing at or past the last fetchable offset is reported (Kafka's rule).
                    let fetchable = if request.isolation_level == READ_COMMITTED {
                        partition.last_stable_offset()
                    } else {
                        partition.high_watermark()
                    };
                    let found = match p.timestamp {
                        LATEST => Some((fetchable, -1)),
                        EARLIEST | EARLIEST_LOCAL => Some((partition.log_start_offset(), -1)),
                        MAX_TIMESTAMP => partition.max_timestamp_offset(),
                        ts if ts >= 0 => partition.offset_for_timestamp(ts),
                        _ => None,
                    }
                    .filter(|(offset, _)| {
                        p.timestamp < 0 && p.timestamp != MAX_TIMESTAMP || *offset < fetchable
                    });
                    if let Some((offset, timestamp)) = found {
                        r.offset = offset;
                        r.timestamp = timestamp;
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Reply::ready(ResponseKind::ListOffsets(
        ListOffsetsResponse::default().with_topics(topics),
    ))
}

//! OffsetFetch: committed offsets of one group (v1-7) or of several (v8+); a partition with
//! nothing committed reads as offset -1.

use crate::broker::Broker;
use crate::group::state::CommittedOffset;
use crate::handlers::str_bytes;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, ResponseKind, TopicName,
};
use std::sync::Arc;

type Fetched = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

fn fields(o: &Option<CommittedOffset>) -> (i64, i32, String) {
    match o {
        Some(o) => (o.offset, o.leader_epoch, o.metadata.clone()),
        None => (-1, -1, String::new()),
    }
}

pub async fn handle(
    broker: Arc<Broker>,
    request: OffsetFetchRequest,
    ctx: RequestContext,
) -> Reply {
    let mut response = OffsetFetchResponse::default();
    if ctx.api_version >= 8 {
        response.groups = request
            .groups
            .iter()
            .map(|g| {
                let wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let fetched = broker.groups.fetch(&g.group_id.0, wanted);
                let unstable = unstable(&broker, &g.group_id.0, &fetched, request.require_stable);
                group_response(&g.group_id, fetched, unstable)
            })
            .collect();
    } else {
        // v1 has no null topic list: it always names the partitions.
        let wanted = request.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let fetched = broker.groups.fetch(&request.group_id.0, wanted);
        let require_stable = ctx.api_version >= 7 && request.require_stable;
        let unstable = unstable(&broker, &request.group_id.0, &fetched, require_stable);
        response.topics = fetched
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .iter()
                    .map(|(p, o)| {
                        if unstable.contains(&(topic.clone(), *p)) {
                            return OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(-1)
                                .with_error_code(UNSTABLE_OFFSET_COMMIT);
                        }
                        let (offset, epoch, metadata) = fields(o);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(str_bytes(metadata)))
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(str_bytes(topic)))
                    .with_partitions(partitions)
            })
            .collect();
    }
    Reply::ready(ResponseKind::OffsetFetch(response))
}

/// Kafka's code for "a transaction has offsets pending for this partition" (require_stable).
const UNSTABLE_OFFSET_COMMIT: i16 = 88;

/// The partitions with transactional offsets pending, when the request requires stable ones.
fn unstable(
    broker: &Broker,
    group: &str,
    fetched: &Fetched,
    require_stable: bool,
) -> Vec<(String, i32)> {
    if !require_stable {
        return Vec::new();
    }
    fetched
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |(p, _)| (t.clone(), *p)))
        .filter(|(t, p)| broker.groups.has_pending(group, t, *p))
        .collect()
}

fn group_response(
    id: &GroupId,
    fetched: Fetched,
    unstable: Vec<(String, i32)>,
) -> OffsetFetchResponseGroup {
    let topics = fetched
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .iter()
                .map(|(p, o)| {
                    if unstable.contains(&(topic.clone(), *p)) {
                        return OffsetFetchResponsePartitions::default()
                            .with_partition_index(*p)
                            .with_committed_offset(-1)
                            .with_error_code(UNSTABLE_OFFSET_COMMIT);
                    }
                    let (offset, epoch, metadata) = fields(o);
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(*p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(str_bytes(metadata)))
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponseGroup::default()
        .with_group_id(id.clone())
        .with_topics(topics)
}

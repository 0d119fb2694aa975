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

/// (offset, leader epoch, metadata, error) of one partition. While a transaction has offsets
/// pending for it and the request requires stable offsets, it answers as if nothing were
/// committed, with UNSTABLE_OFFSET_COMMIT.
fn fields(o: &Option<CommittedOffset>, unstable: bool) -> (i64, i32, String, i16) {
    match o {
        Some(o) if !unstable => (o.offset, o.leader_epoch, o.metadata.clone(), 0),
        _ => (
            -1,
            -1,
            String::new(),
            if unstable { UNSTABLE_OFFSET_COMMIT } else { 0 },
        ),
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
                if let Err(e) = broker.groups.owns(&g.group_id.0) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(e);
                }
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
    } else if let Err(e) = broker.groups.owns(&request.group_id.0) {
        response.error_code = e;
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
                        let pending = unstable.contains(&(topic.clone(), *p));
                        let (offset, epoch, metadata, error) = fields(o, pending);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(str_bytes(metadata)))
                            .with_error_code(error)
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
                    let pending = unstable.contains(&(topic.clone(), *p));
                    let (offset, epoch, metadata, error) = fields(o, pending);
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(*p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(str_bytes(metadata)))
                        .with_error_code(error)
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

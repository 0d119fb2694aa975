//! ListPartitionReassignments: the reassignments in progress, from the metadata image this node
//! has applied: for each partition its replicas (the targets followed by those being removed),
//! adding_replicas and removing_replicas. A request naming topics reports only those of their
//! named partitions that are being reassigned; unknown topics and partitions are left out, as
//! Kafka's controller does. Null topics: every reassignment in progress.

use super::str_bytes;
use crate::broker::Broker;
use crate::cluster::{MetadataImage, PartitionImage};
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, ResponseKind,
    TopicName,
};
use std::collections::BTreeMap;
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: ListPartitionReassignmentsRequest,
    _ctx: RequestContext,
) -> Reply {
    let image = broker.image();
    let topics = ongoing(&image, request.topics.as_ref().map(named));
    let response = ListPartitionReassignmentsResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(name, partitions)| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    Reply::ready(ResponseKind::ListPartitionReassignments(response))
}

/// The partitions the request names, by topic.
fn named(
    topics: &Vec<kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics>,
) -> BTreeMap<String, Vec<i32>> {
    let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for t in topics {
        wanted
            .entry(t.name.0.to_string())
            .or_default()
            .extend(&t.partition_indexes);
    }
    wanted
}

/// The reassignments in progress among `wanted` (all when `None`), by topic, in partition order.
fn ongoing(
    image: &MetadataImage,
    wanted: Option<BTreeMap<String, Vec<i32>>>,
) -> BTreeMap<String, Vec<OngoingPartitionReassignment>> {
    let mut found: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for (name, topic) in &image.topics {
        let partitions = topic.partitions.iter().enumerate().filter(|(i, p)| {
            p.is_reassigning()
                && wanted
                    .as_ref()
                    .is_none_or(|w| w.get(name).is_some_and(|ps| ps.contains(&(*i as i32))))
        });
        for (index, p) in partitions {
            found
                .entry(name.clone())
                .or_default()
                .push(describe(index as i32, p));
        }
    }
    found
}

fn describe(index: i32, p: &PartitionImage) -> OngoingPartitionReassignment {
    let ids = |ids: &[u64]| ids.iter().map(|&id| BrokerId(id as i32)).collect();
    OngoingPartitionReassignment::default()
        .with_partition_index(index)
        .with_replicas(ids(&p.replicas))
        .with_adding_replicas(ids(&p.adding_replicas))
        .with_removing_replicas(ids(&p.removing_replicas))
}

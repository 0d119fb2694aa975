//! What handlers tell clients about the cluster, read from the metadata image this node has
//! applied: live nodes and their endpoints, partition leaders, and the controller.

use crate::broker::Broker;
use crate::cluster::image::{MetadataImage, PartitionImage};

/// The nodes clients of `listener` may use: registered, not fenced, and with that listener, by
/// id, each with that listener's advertised address.
pub fn live_nodes(image: &MetadataImage, listener: &str) -> Vec<(i32, String, i32)> {
    image
        .nodes
        .iter()
        .filter(|(_, n)| !n.fenced)
        .filter_map(|(id, n)| {
            let (host, port) = n.endpoint_for(listener)?;
            Some((*id as i32, host, port))
        })
        .collect()
}

/// A node's address on `listener`, fenced or not.
pub fn endpoint(image: &MetadataImage, node: u64, listener: &str) -> Option<(String, i32)> {
    image.nodes.get(&node)?.endpoint_for(listener)
}

/// The node reported as controller: the quorum leader (every voter is also a broker), else
/// this node.
pub fn controller_id(broker: &Broker) -> i32 {
    broker
        .replication
        .controller()
        .leader()
        .map_or(broker.node_id(), |id| id as i32)
}

/// A partition's replicas that are not live (fenced or unregistered): Kafka's offline replicas.
pub fn offline_replicas(image: &MetadataImage, p: &PartitionImage) -> Vec<i32> {
    p.replicas
        .iter()
        .filter(|id| image.nodes.get(id).is_none_or(|n| n.fenced))
        .map(|id| *id as i32)
        .collect()
}

pub fn ids(nodes: &[u64]) -> Vec<kafka_protocol::messages::BrokerId> {
    nodes
        .iter()
        .map(|id| kafka_protocol::messages::BrokerId(*id as i32))
        .collect()
}

/// The partition a request must be served by its leader for: this node's replica when it leads
/// it; NOT_LEADER_OR_FOLLOWER when the topic has the partition but this node does not lead it;
/// UNKNOWN_TOPIC_OR_PARTITION when there is no such partition.
pub fn led_partition(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> Result<std::sync::Arc<crate::partition::Partition>, kafka_protocol::ResponseError> {
    use kafka_protocol::ResponseError;
    let exists = broker
        .image()
        .topic(topic)
        .is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len());
    match broker.topics.partition(topic, partition) {
        Some(p) if p.role() == crate::partition::replicas::Role::Leader => Ok(p),
        None if broker
            .topics
            .get(topic)
            .is_some_and(|t| t.is_offline(partition)) =>
        {
            Err(ResponseError::KafkaStorageError)
        }
        _ if exists => Err(ResponseError::NotLeaderOrFollower),
        _ => Err(ResponseError::UnknownTopicOrPartition),
    }
}

/// The endpoints of the nodes named (KIP-951's `node_endpoints`), each once, by id.
pub fn endpoints_of(
    image: &MetadataImage,
    listener: &str,
    ids: impl Iterator<Item = i32>,
) -> Vec<(i32, String, i32)> {
    let mut ids: Vec<i32> = ids.filter(|id| *id >= 0).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .filter_map(|id| endpoint(image, id as u64, listener).map(|(host, port)| (id, host, port)))
        .collect()
}

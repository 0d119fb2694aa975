//! Metadata: this node, the cluster id, and the requested (or all) topics with their
//! partitions. Unknown topics are created when `auto_create_topics_enable` is on and the request
//! allows it.

use super::{cluster_operations, str_bytes, topic_operations, OPERATIONS_NOT_REQUESTED};
use crate::broker::Broker;
use crate::partition::manager::{validate_name, Topic};
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;

pub async fn handle(broker: Arc<Broker>, request: MetadataRequest, ctx: RequestContext) -> Reply {
    let (host, port) = broker.advertised();
    let node = BrokerId(broker.node_id());
    let include_topic_ops = request.include_topic_authorized_operations;
    let requested = match request.topics {
        // v0: an empty list means all topics; v1+: null means all.
        Some(t) if !(ctx.api_version == 0 && t.is_empty()) => Some(t),
        _ => None,
    };
    let topics = match requested {
        None => broker
            .topics
            .list()
            .iter()
            .map(|t| describe(t, node, include_topic_ops))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|req| match req.name {
                Some(name) if req.topic_id.is_nil() => by_name(
                    &broker,
                    &name.0,
                    request.allow_auto_topic_creation,
                    node,
                    include_topic_ops,
                ),
                _ => match broker.topics.get_by_id(req.topic_id) {
                    Some(t) => describe(&t, node, include_topic_ops),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(req.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                },
            })
            .collect(),
    };
    let response = MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(str_bytes(host))
            .with_port(port)])
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(node)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            cluster_operations()
        } else {
            OPERATIONS_NOT_REQUESTED
        })
        .with_topics(topics);
    Reply::ready(ResponseKind::Metadata(response))
}

fn by_name(
    broker: &Broker,
    name: &str,
    allow_create: bool,
    node: BrokerId,
    ops: bool,
) -> MetadataResponseTopic {
    let unknown = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(TopicName(str_bytes(name))))
            .with_error_code(code.code())
    };
    if let Some(t) = broker.topics.get(name) {
        return describe(&t, node, ops);
    }
    if validate_name(name).is_err() {
        return unknown(ResponseError::InvalidTopicException);
    }
    if !(allow_create && broker.config.auto_create_topics_enable) {
        return unknown(ResponseError::UnknownTopicOrPartition);
    }
    match broker.auto_create(name) {
        Ok(t) => describe(&t, node, ops),
        Err(e) => {
            tracing::warn!(topic = name, error = %e, "auto-creating topic failed");
            unknown(errors::topic(&e))
        }
    }
}

fn describe(topic: &Topic, node: BrokerId, ops: bool) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let online = !p.is_offline();
            MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_error_code(if online {
                    0
                } else {
                    ResponseError::LeaderNotAvailable.code()
                })
                .with_leader_id(if online { node } else { BrokerId(-1) })
                .with_leader_epoch(p.leader_epoch())
                .with_replica_nodes(vec![node])
                .with_isr_nodes(if online { vec![node] } else { vec![] })
                .with_offline_replicas(if online { vec![] } else { vec![node] })
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(
            topic.name == crate::group::store::OFFSETS_TOPIC
                || topic.name == crate::txn::store::TXN_TOPIC,
        )
        .with_partitions(partitions)
        .with_topic_authorized_operations(if ops {
            topic_operations()
        } else {
            OPERATIONS_NOT_REQUESTED
        })
}

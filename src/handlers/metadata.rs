//! Metadata: the live nodes, the cluster id, the controller, and the requested (or all) topics
//! with each partition's leader, epoch, replicas and ISR, from the metadata image this node has
//! applied. Unknown topics are created when `auto_create_topics_enable` is on and the request
//! allows it.

use super::cluster_view::{controller_id, ids, live_nodes, offline_replicas};
use super::{cluster_operations, str_bytes, topic_operations, OPERATIONS_NOT_REQUESTED};
use crate::broker::Broker;
use crate::cluster::image::{MetadataImage, TopicImage};
use crate::partition::manager::validate_name;
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
    let include_topic_ops = request.include_topic_authorized_operations;
    let requested = match request.topics {
        // v0: an empty list means all topics; v1+: null means all.
        Some(t) if !(ctx.api_version == 0 && t.is_empty()) => Some(t),
        _ => None,
    };
    if let Some(list) = &requested {
        if request.allow_auto_topic_creation && broker.config.auto_create_topics_enable {
            let image = broker.image();
            for name in list.iter().filter_map(|r| r.name.as_ref()) {
                if image.topic(name).is_none() && validate_name(name).is_ok() {
                    if let Err(e) = broker.auto_create(name).await {
                        tracing::warn!(topic = %name.0, error = %e, "auto-creating topic failed");
                    }
                }
            }
        }
    }
    let image = broker.image();
    let topics = match requested {
        None => image
            .topics
            .iter()
            .map(|(name, t)| describe(&image, name, t, include_topic_ops))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|req| match req.name {
                Some(name) if req.topic_id.is_nil() => by_name(&image, &name.0, include_topic_ops),
                _ => {
                    match image.topics.iter().find(|(_, t)| {
                        uuid::Uuid::parse_str(&t.topic_id).ok() == Some(req.topic_id)
                    }) {
                        Some((name, t)) => describe(&image, name, t, include_topic_ops),
                        None => MetadataResponseTopic::default()
                            .with_topic_id(req.topic_id)
                            .with_error_code(ResponseError::UnknownTopicId.code()),
                    }
                }
            })
            .collect(),
    };
    let brokers = live_nodes(&image, &ctx.listener)
        .into_iter()
        .map(|(id, host, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port)
        })
        .collect();
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(controller_id(&broker)))
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            cluster_operations()
        } else {
            OPERATIONS_NOT_REQUESTED
        })
        .with_topics(topics);
    Reply::ready(ResponseKind::Metadata(response))
}

fn by_name(image: &MetadataImage, name: &str, ops: bool) -> MetadataResponseTopic {
    if let Some(t) = image.topic(name) {
        return describe(image, name, t, ops);
    }
    let code = match validate_name(name) {
        Err(e) => errors::topic(&e),
        Ok(()) => ResponseError::UnknownTopicOrPartition,
    };
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name))))
        .with_error_code(code.code())
}

fn describe(
    image: &MetadataImage,
    name: &str,
    topic: &TopicImage,
    ops: bool,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let error = if p.leader.is_some() {
                0
            } else {
                ResponseError::LeaderNotAvailable.code()
            };
            MetadataResponsePartition::default()
                .with_partition_index(i as i32)
                .with_error_code(error)
                .with_leader_id(BrokerId(p.leader.map_or(-1, |l| l as i32)))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(
                    offline_replicas(image, p)
                        .into_iter()
                        .map(BrokerId)
                        .collect(),
                )
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name))))
        .with_topic_id(uuid::Uuid::parse_str(&topic.topic_id).unwrap_or_default())
        .with_is_internal(crate::partition::manager::is_internal(name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(if ops {
            topic_operations()
        } else {
            OPERATIONS_NOT_REQUESTED
        })
}

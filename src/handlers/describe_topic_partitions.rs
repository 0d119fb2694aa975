//! DescribeTopicPartitions (KIP-966): topics with their partitions' leader, replicas and ISR,
//! paged by `response_partition_limit` with a cursor, in topic-name order. An empty topic list
//! describes every topic.

use super::cluster_view::{ids, offline_replicas};
use super::{str_bytes, topic_operations};
use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, ResponseKind,
    TopicName,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: DescribeTopicPartitionsRequest,
    _ctx: RequestContext,
) -> Reply {
    let image = broker.image();
    let mut names: Vec<String> = if request.topics.is_empty() {
        image.topics.keys().cloned().collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, start_partition) = match &request.cursor {
        Some(c) => (c.topic_name.0.to_string(), c.partition_index.max(0)),
        None => (String::new(), 0),
    };
    let mut budget = request.response_partition_limit.max(1) as usize;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.into_iter().filter(|n| *n >= start_topic) {
        let first = if name == start_topic {
            start_partition
        } else {
            0
        };
        let Some(t) = image.topic(&name) else {
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_name(Some(TopicName(str_bytes(name)))),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partition_index(first),
            );
            break;
        }
        let mut partitions = Vec::new();
        for (i, p) in t.partitions.iter().enumerate().skip(first as usize) {
            if budget == 0 {
                next_cursor = Some(
                    Cursor::default()
                        .with_topic_name(TopicName(str_bytes(name.clone())))
                        .with_partition_index(i as i32),
                );
                break;
            }
            budget -= 1;
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(i as i32)
                    .with_leader_id(BrokerId(p.leader.map_or(-1, |l| l as i32)))
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(ids(&p.replicas))
                    .with_isr_nodes(ids(&p.isr))
                    .with_offline_replicas(
                        offline_replicas(&image, p)
                            .into_iter()
                            .map(BrokerId)
                            .collect(),
                    )
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_error_code(if p.leader.is_some() {
                        0
                    } else {
                        ResponseError::LeaderNotAvailable.code()
                    }),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(TopicName(str_bytes(name.clone()))))
                .with_topic_id(uuid::Uuid::parse_str(&t.topic_id).unwrap_or_default())
                .with_is_internal(crate::partition::manager::is_internal(&name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(topic_operations()),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    Reply::ready(ResponseKind::DescribeTopicPartitions(
        DescribeTopicPartitionsResponse::default()
            .with_topics(topics)
            .with_next_cursor(next_cursor),
    ))
}

//! CreateTopics: validates names, partition counts, replication factors and configs, creates
//! (or, with `validate_only`, only checks), and reports each topic's result and configs.

use super::str_bytes;
use crate::broker::Broker;
use crate::config::dynamic::Level;
use crate::config::kafka_defaults::TOPIC_CONFIGS;
use crate::config::topic::{self, TopicOverrides};
use crate::partition::manager::{NewTopic, TopicError};
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, ResponseKind};
use kafka_protocol::ResponseError;
use std::collections::HashMap;
use std::sync::Arc;

/// DescribeConfigs/CreateTopics config sources.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER: i8 = 3;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

pub async fn handle(
    broker: Arc<Broker>,
    request: CreateTopicsRequest,
    _ctx: RequestContext,
) -> Reply {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    Reply::Deferred(Box::pin(async move {
        let mut results = Vec::with_capacity(request.topics.len());
        for t in request.topics {
            let name = t.name.clone();
            if seen[&*name.0] > 1 {
                results.push(
                    CreatableTopicResult::default()
                        .with_name(name)
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(
                            "Duplicate topic name in the request.",
                        ))),
                );
                continue;
            }
            results.push(match create_one(&broker, t, request.validate_only).await {
                Ok(result) => result,
                Err(e) => CreatableTopicResult::default()
                    .with_name(name)
                    .with_error_code(errors::topic(&e).code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            });
        }
        ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(results))
    }))
}

async fn create_one(
    broker: &Broker,
    t: CreatableTopic,
    validate_only: bool,
) -> Result<CreatableTopicResult, TopicError> {
    let config = &broker.config;
    let mut num_partitions = if t.num_partitions == -1 {
        config.num_partitions
    } else {
        t.num_partitions
    };
    let mut replication_factor = if t.replication_factor == -1 {
        config.default_replication_factor
    } else {
        t.replication_factor
    };
    let mut manual = None;
    if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(TopicError::InvalidRequest(
                "Both numPartitions or replicationFactor and replicasAssignments were set.".into(),
            ));
        }
        let mut assignments: Vec<_> = t.assignments.iter().collect();
        assignments.sort_by_key(|a| a.partition_index);
        let contiguous = assignments
            .iter()
            .enumerate()
            .all(|(i, a)| a.partition_index == i as i32);
        if !contiguous {
            return Err(TopicError::InvalidReplicaAssignment(
                "partitions must be numbered from 0 without gaps".into(),
            ));
        }
        let replicas: Vec<Vec<u64>> = assignments
            .iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0.max(-1) as u64).collect())
            .collect();
        num_partitions = replicas.len() as i32;
        replication_factor = replicas.first().map_or(0, |r| r.len() as i16);
        manual = Some(replicas);
    }
    let mut overrides = TopicOverrides::new();
    for c in t.configs {
        match c.value {
            Some(v) => overrides.insert(c.name.to_string(), v.to_string()),
            None => {
                return Err(TopicError::InvalidConfig(format!(
                    "Null value for topic config {}",
                    c.name
                )))
            }
        };
    }
    let new = NewTopic {
        name: t.name.0.to_string(),
        num_partitions,
        replication_factor,
        overrides,
    };
    let overrides = new.overrides.clone();
    let id = if validate_only {
        broker.admin.plan(&new, manual)?;
        uuid::Uuid::nil()
    } else {
        broker.admin.create(new, manual).await?
    };
    Ok(CreatableTopicResult::default()
        .with_name(t.name)
        .with_topic_id(id)
        .with_num_partitions(num_partitions)
        .with_replication_factor(if replication_factor == -1 {
            config.default_replication_factor
        } else {
            replication_factor
        })
        .with_configs(Some(described_configs(broker, &overrides))))
}

fn described_configs(broker: &Broker, overrides: &TopicOverrides) -> Vec<CreatableTopicConfigs> {
    let dynamic = broker.topics.dynamic();
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = match overrides.get(def.name) {
                Some(v) => (Some(v.clone()), SOURCE_TOPIC),
                None => match dynamic.for_topic_config(def.name) {
                    Some((v, Level::Node)) => (Some(v.to_string()), SOURCE_DYNAMIC_BROKER),
                    Some((v, Level::Cluster)) => {
                        (Some(v.to_string()), SOURCE_DYNAMIC_DEFAULT_BROKER)
                    }
                    None => {
                        let v = topic::static_broker_value(&broker.config, def.name);
                        let source = if v.as_deref() != def.default {
                            SOURCE_STATIC_BROKER
                        } else {
                            SOURCE_DEFAULT
                        };
                        (v, source)
                    }
                },
            };
            CreatableTopicConfigs::default()
                .with_name(str_bytes(def.name))
                .with_value(if def.is_sensitive() {
                    None
                } else {
                    value.map(str_bytes)
                })
                .with_config_source(source)
                .with_is_sensitive(def.is_sensitive())
        })
        .collect()
}

//! DescribeConfigs for topics and for this broker, with Kafka's names, types, sources,
//! synonyms and documentation.

use super::create_topics::{
    SOURCE_DEFAULT, SOURCE_DYNAMIC_BROKER, SOURCE_DYNAMIC_DEFAULT_BROKER, SOURCE_STATIC_BROKER,
    SOURCE_TOPIC,
};
use super::str_bytes;
use crate::broker::Broker;
use crate::config::dynamic::{DynamicConfigs, Level, DYNAMIC_BROKER_CONFIGS};
use crate::config::kafka_defaults::{self, ConfigDef, BROKER_CONFIGS, TOPIC_CONFIGS};
use crate::config::topic;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, ResponseKind};
use kafka_protocol::ResponseError;
use std::sync::Arc;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// Options shared by every resource of one request.
struct Wants {
    synonyms: bool,
    documentation: bool,
}

pub async fn handle(
    broker: Arc<Broker>,
    request: DescribeConfigsRequest,
    _ctx: RequestContext,
) -> Reply {
    let wants = Wants {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
    let results = request
        .resources
        .into_iter()
        .map(|r| describe(&broker, r, &wants))
        .collect();
    Reply::ready(ResponseKind::DescribeConfigs(
        DescribeConfigsResponse::default().with_results(results),
    ))
}

fn describe(broker: &Broker, r: DescribeConfigsResource, wants: &Wants) -> DescribeConfigsResult {
    let result = DescribeConfigsResult::default()
        .with_resource_type(r.resource_type)
        .with_resource_name(r.resource_name.clone());
    let fail = |code: ResponseError, message: String| {
        result
            .clone()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    // Null (or, leniently, empty) asks for every config.
    let keys = r.configuration_keys.as_ref().filter(|k| !k.is_empty());
    let selected = |table: &'static [ConfigDef]| -> Vec<&'static ConfigDef> {
        table
            .iter()
            .filter(|d| keys.is_none_or(|k| k.iter().any(|n| n.as_str() == d.name)))
            .collect()
    };
    match r.resource_type {
        TOPIC => {
            let Some(t) = broker.topics.get(&r.resource_name) else {
                return fail(
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic {} does not exist", &*r.resource_name),
                );
            };
            let dynamic = broker.topics.dynamic();
            let configs = selected(TOPIC_CONFIGS)
                .into_iter()
                .map(|def| {
                    let broker_entry = broker_synonym(broker, &dynamic, def);
                    let mut synonyms = Vec::new();
                    let (value, source) = match t.overrides.get(def.name) {
                        Some(v) => {
                            synonyms.push(synonym(def.name, Some(v.clone()), SOURCE_TOPIC));
                            (Some(v.clone()), SOURCE_TOPIC)
                        }
                        None => broker_entry
                            .clone()
                            .map_or((None, SOURCE_DEFAULT), |(_, v, s)| (v, s)),
                    };
                    if let Some((name, v, s)) = broker_entry {
                        synonyms.push(synonym(name, v, s));
                    }
                    entry(
                        def,
                        value,
                        source,
                        false,
                        if wants.synonyms { synonyms } else { Vec::new() },
                        wants,
                    )
                })
                .collect();
            result.with_configs(configs)
        }
        BROKER => {
            let name = &*r.resource_name;
            if !name.is_empty() && name != broker.node_id().to_string() {
                return fail(
                    ResponseError::InvalidRequest,
                    format!("Broker {name} is not this node ({})", broker.node_id()),
                );
            }
            let dynamic = broker.topics.dynamic();
            // The cluster-default resource ("") shows the dynamic defaults set at that level.
            let cluster_level = name.is_empty();
            let configs = selected(BROKER_CONFIGS)
                .into_iter()
                .filter(|def| !cluster_level || dynamic.cluster.contains_key(def.name))
                .map(|def| {
                    let (value, source) = if cluster_level {
                        (
                            dynamic.cluster.get(def.name).cloned(),
                            SOURCE_DYNAMIC_DEFAULT_BROKER,
                        )
                    } else {
                        broker_value(broker, &dynamic, def)
                    };
                    let synonyms = if wants.synonyms {
                        broker_synonyms(broker, &dynamic, def)
                    } else {
                        Vec::new()
                    };
                    let read_only = !DYNAMIC_BROKER_CONFIGS.contains(&def.name);
                    entry(def, value, source, read_only, synonyms, wants)
                })
                .collect();
            result.with_configs(configs)
        }
        other => fail(
            ResponseError::InvalidRequest,
            format!("Resource type {other} is not supported"),
        ),
    }
}

/// The broker-level setting behind a topic config, as (name, value, source).
fn broker_synonym(
    broker: &Broker,
    dynamic: &DynamicConfigs,
    def: &ConfigDef,
) -> Option<(&'static str, Option<String>, i8)> {
    match def.broker_synonym.and_then(kafka_defaults::broker_config) {
        Some(b) => {
            let (value, source) = broker_value(broker, dynamic, b);
            if matches!(
                source,
                SOURCE_DYNAMIC_BROKER | SOURCE_DYNAMIC_DEFAULT_BROKER
            ) {
                return Some((b.name, value, source));
            }
            // The topic-level value may be derived (log.retention.hours -> retention.ms), and
            // where it equals the topic default nothing was set: Kafka reports DEFAULT_CONFIG.
            let value = topic::static_broker_value(&broker.config, def.name).or(value);
            let source = if value.as_deref() == def.default {
                SOURCE_DEFAULT
            } else {
                source
            };
            Some((b.name, value, source))
        }
        None => topic::static_broker_value(&broker.config, def.name)
            .map(|v| (def.name, Some(v), SOURCE_DEFAULT)),
    }
}

/// A broker config's value: a dynamic one (this node's, else the cluster default), else
/// spool's static setting where it has one, else Kafka's default.
fn broker_value(
    broker: &Broker,
    dynamic: &DynamicConfigs,
    def: &ConfigDef,
) -> (Option<String>, i8) {
    match dynamic.get(def.name) {
        Some((v, Level::Node)) => return (Some(v.to_string()), SOURCE_DYNAMIC_BROKER),
        Some((v, Level::Cluster)) => return (Some(v.to_string()), SOURCE_DYNAMIC_DEFAULT_BROKER),
        None => {}
    }
    static_value(broker, def)
}

/// Every level a broker config is set at, most specific first (Kafka's synonyms).
fn broker_synonyms(
    broker: &Broker,
    dynamic: &DynamicConfigs,
    def: &ConfigDef,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if let Some(v) = dynamic.node.get(def.name) {
        out.push(synonym(def.name, Some(v.clone()), SOURCE_DYNAMIC_BROKER));
    }
    if let Some(v) = dynamic.cluster.get(def.name) {
        out.push(synonym(
            def.name,
            Some(v.clone()),
            SOURCE_DYNAMIC_DEFAULT_BROKER,
        ));
    }
    let (value, source) = static_value(broker, def);
    out.push(synonym(def.name, value, source));
    out
}

/// A broker config's static value: spool's setting where it has one (STATIC_BROKER_CONFIG when
/// the file, the environment or `--set` gave it, else spool's default), else Kafka's default.
fn static_value(broker: &Broker, def: &ConfigDef) -> (Option<String>, i8) {
    match broker.config.kafka_value(def.name) {
        Some(v) if broker.config.is_set(def.name) => (Some(v), SOURCE_STATIC_BROKER),
        Some(v) => (Some(v), SOURCE_DEFAULT),
        None => (def.default.map(str::to_string), SOURCE_DEFAULT),
    }
}

fn synonym(name: &str, value: Option<String>, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name))
        .with_value(value.map(str_bytes))
        .with_source(source)
}

fn entry(
    def: &ConfigDef,
    value: Option<String>,
    source: i8,
    read_only: bool,
    synonyms: Vec<DescribeConfigsSynonym>,
    wants: &Wants,
) -> DescribeConfigsResourceResult {
    let sensitive = def.is_sensitive();
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(def.name))
        .with_value(if sensitive {
            None
        } else {
            value.map(str_bytes)
        })
        .with_read_only(read_only)
        .with_config_source(source)
        .with_is_sensitive(sensitive)
        .with_synonyms(synonyms)
        .with_config_type(def.config_type.code())
        .with_documentation(wants.documentation.then(|| str_bytes(def.doc)))
}

//! IncrementalAlterConfigs: SET, DELETE (back to the inherited value), APPEND and SUBTRACT (for
//! list configs such as `cleanup.policy`) on a topic's overrides or the dynamic broker configs;
//! see `alter_configs` for what happens to the result.

use super::alter_configs::{apply, outcome, target, Refusal, Target};
use super::str_bytes;
use crate::broker::Broker;
use crate::config::kafka_defaults::{self, ConfigType};
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ResponseKind,
};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(
    broker: Arc<Broker>,
    request: IncrementalAlterConfigsRequest,
    _ctx: RequestContext,
) -> Reply {
    Reply::Deferred(Box::pin(async move {
        let mut responses = Vec::with_capacity(request.resources.len());
        for r in &request.resources {
            let result = match change(&broker, r) {
                Ok((t, next)) => apply(&broker, t, next, request.validate_only).await,
                Err(e) => Err(e),
            };
            let (code, message) = outcome(result);
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_error_message(message.map(str_bytes))
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone()),
            );
        }
        ResponseKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(responses),
        )
    }))
}

/// The whole new override set after applying the resource's operations to the current one.
fn change(
    broker: &Broker,
    r: &AlterConfigsResource,
) -> Result<(Target, BTreeMap<String, String>), Refusal> {
    let (t, current) = target(broker, r.resource_type, &r.resource_name)?;
    let mut seen = HashSet::new();
    let mut next: BTreeMap<String, String> = current;
    for c in &r.configs {
        let name = c.name.to_string();
        if !seen.insert(name.clone()) {
            return Err((
                ResponseError::InvalidRequest,
                format!("Error due to duplicate config keys: {name}"),
            ));
        }
        let value = c.value.as_ref().map(|v| v.to_string());
        match c.config_operation {
            SET => {
                let value = value.ok_or_else(|| {
                    (
                        ResponseError::InvalidConfig,
                        format!("Null value not supported for: {name}"),
                    )
                })?;
                next.insert(name, value);
            }
            DELETE => {
                next.remove(&name);
            }
            APPEND | SUBTRACT => {
                if !is_list(&t, &name) {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Config value append is not allowed for config key: {name}"),
                    ));
                }
                let base = next
                    .get(&name)
                    .cloned()
                    .or_else(|| inherited(broker, &t, &name))
                    .unwrap_or_default();
                let mut items: Vec<String> = base
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                let given = value.unwrap_or_default();
                let given = given.split(',').map(str::trim).filter(|s| !s.is_empty());
                if c.config_operation == APPEND {
                    for item in given {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    }
                } else {
                    let doomed: Vec<&str> = given.collect();
                    items.retain(|i| !doomed.contains(&i.as_str()));
                }
                next.insert(name, items.join(","));
            }
            other => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Unknown config operation {other} for {name}"),
                ))
            }
        }
    }
    Ok((t, next))
}

fn is_list(t: &Target, name: &str) -> bool {
    let def = match t {
        Target::Topic(_) => kafka_defaults::topic_config(name),
        Target::Broker(_) => kafka_defaults::broker_config(name),
    };
    def.is_some_and(|d| d.config_type == ConfigType::List)
}

/// The value a list config has when not overridden at this level.
fn inherited(broker: &Broker, t: &Target, name: &str) -> Option<String> {
    match t {
        Target::Topic(topic) => {
            let t = broker.topics.get(topic)?;
            let mut bare = t.overrides.clone();
            bare.remove(name);
            crate::config::topic::effective(&broker.config, &broker.topics.dynamic(), &bare, name)
        }
        Target::Broker(_) => broker.config.kafka_value(name).or_else(|| {
            kafka_defaults::broker_config(name)?
                .default
                .map(str::to_string)
        }),
    }
}

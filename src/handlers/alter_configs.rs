//! AlterConfigs (legacy: a resource's whole set of overrides is replaced) and the shared path
//! of IncrementalAlterConfigs: topic overrides (`DYNAMIC_TOPIC_CONFIG`) and dynamic broker
//! configs for this node (resource name = node id) or the cluster default (empty name). Every
//! change is validated whole, persisted, and applied to the partitions at once.

use super::str_bytes;
use crate::broker::Broker;
use crate::config::dynamic::Level;
use crate::partition::manager::TopicError;
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ResponseKind};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const TOPIC: i8 = 2;
pub const BROKER: i8 = 4;

/// A refusal: the code and the message that goes with it.
pub type Refusal = (ResponseError, String);

/// Where a resource's overrides live.
pub enum Target {
    Topic(String),
    Broker(Level),
}

/// Resolves a resource to the overrides it names, with their current values.
pub fn target(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<(Target, BTreeMap<String, String>), Refusal> {
    match resource_type {
        TOPIC => {
            let image = broker.image();
            let t = image.topic(name).ok_or_else(|| {
                (
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic {name} does not exist"),
                )
            })?;
            Ok((Target::Topic(name.to_string()), t.configs.clone()))
        }
        BROKER => {
            let level = if name.is_empty() {
                Level::Cluster
            } else if name == broker.node_id().to_string() {
                Level::Node
            } else {
                return Err((
                    ResponseError::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {} but received {name}",
                        broker.node_id()
                    ),
                ));
            };
            Ok((
                Target::Broker(level),
                broker.topics.dynamic().level(level).clone(),
            ))
        }
        other => Err((
            ResponseError::InvalidRequest,
            format!("Resource type {other} cannot be altered"),
        )),
    }
}

/// Replaces the overrides of `target` with `next` (or only checks them). Topic overrides go
/// through the metadata quorum; dynamic broker configs are kept by each node.
pub async fn apply(
    broker: &Broker,
    target: Target,
    next: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Refusal> {
    let result = match target {
        Target::Topic(name) => broker.admin.set_configs(&name, next, validate_only).await,
        Target::Broker(level) => broker
            .topics
            .set_dynamic_configs(level, next, validate_only),
    };
    result.map_err(|e: TopicError| {
        if matches!(e, TopicError::Storage { .. }) {
            tracing::error!(error = %e, "persisting configs failed");
        }
        (errors::topic(&e), e.to_string())
    })
}

/// The response entry for one resource.
pub fn outcome(result: Result<(), Refusal>) -> (i16, Option<String>) {
    match result {
        Ok(()) => (0, None),
        Err((code, message)) => (code.code(), Some(message)),
    }
}

pub async fn handle(
    broker: Arc<Broker>,
    request: AlterConfigsRequest,
    _ctx: RequestContext,
) -> Reply {
    Reply::Deferred(Box::pin(async move {
        let mut responses = Vec::with_capacity(request.resources.len());
        for r in &request.resources {
            let result = match replacement(&broker, r) {
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
        ResponseKind::AlterConfigs(AlterConfigsResponse::default().with_responses(responses))
    }))
}

/// The whole new override set a legacy AlterConfigs resource names.
fn replacement(
    broker: &Broker,
    r: &kafka_protocol::messages::alter_configs_request::AlterConfigsResource,
) -> Result<(Target, BTreeMap<String, String>), Refusal> {
    let (t, _) = target(broker, r.resource_type, &r.resource_name)?;
    let mut next = BTreeMap::new();
    for c in &r.configs {
        let Some(value) = &c.value else { continue };
        if next.insert(c.name.to_string(), value.to_string()).is_some() {
            return Err((
                ResponseError::InvalidRequest,
                format!("Duplicate config key {}", &*c.name),
            ));
        }
    }
    Ok((t, next))
}

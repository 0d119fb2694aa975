//! CreatePartitions: grows topics. One node holds every replica, so a manual assignment may
//! only name this node; fewer or as many partitions as the topic has is INVALID_PARTITIONS.

use super::str_bytes;
use crate::broker::Broker;
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, ResponseKind};
use kafka_protocol::ResponseError;
use std::collections::HashMap;
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: CreatePartitionsRequest,
    _ctx: RequestContext,
) -> Reply {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for t in &request.topics {
        *seen.entry(&t.name.0).or_default() += 1;
    }
    let results = request
        .topics
        .iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let fail = |code: ResponseError, message: String| {
                result
                    .clone()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
            };
            if seen[&*t.name.0] > 1 {
                return fail(
                    ResponseError::InvalidRequest,
                    "Duplicate topic in request.".into(),
                );
            }
            if let Some(assignments) = &t.assignments {
                let node = broker.node_id();
                if assignments
                    .iter()
                    .any(|a| a.broker_ids.iter().any(|b| b.0 != node) || a.broker_ids.len() != 1)
                {
                    return fail(
                        ResponseError::InvalidReplicaAssignment,
                        format!("Each new partition must be assigned to node {node} alone."),
                    );
                }
            }
            match broker
                .topics
                .create_partitions(&t.name.0, t.count, request.validate_only)
            {
                Ok(()) => result,
                Err(e) => fail(errors::topic(&e), e.to_string()),
            }
        })
        .collect();
    Reply::ready(ResponseKind::CreatePartitions(
        CreatePartitionsResponse::default().with_results(results),
    ))
}

//! CreatePartitions: grows topics through the metadata quorum, with the new partitions' replicas
//! placed like a new topic's or as assigned; fewer or as many partitions as the topic has is
//! INVALID_PARTITIONS.

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
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    Reply::Deferred(Box::pin(async move {
        let mut results = Vec::with_capacity(request.topics.len());
        for t in &request.topics {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let fail = |code: ResponseError, message: String| {
                result
                    .clone()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
            };
            if seen[&*t.name.0] > 1 {
                results.push(fail(
                    ResponseError::InvalidRequest,
                    "Duplicate topic in request.".into(),
                ));
                continue;
            }
            let manual = t
                .assignments
                .as_ref()
                .filter(|l| !l.is_empty())
                .map(|list| {
                    list.iter()
                        .map(|a| a.broker_ids.iter().map(|b| b.0.max(-1) as u64).collect())
                        .collect()
                });
            let outcome = broker
                .admin
                .create_partitions(&t.name.0, t.count, manual, request.validate_only)
                .await;
            results.push(match outcome {
                Ok(()) => result,
                Err(e) => fail(errors::topic(&e), e.to_string()),
            });
        }
        ResponseKind::CreatePartitions(CreatePartitionsResponse::default().with_results(results))
    }))
}

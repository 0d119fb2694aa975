//! DeleteTopics, by name (all versions) or by topic id (v6+).

use super::str_bytes;
use crate::broker::Broker;
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;
use uuid::Uuid;

pub async fn handle(
    broker: Arc<Broker>,
    request: DeleteTopicsRequest,
    ctx: RequestContext,
) -> Reply {
    let wanted: Vec<(Option<String>, Uuid)> = if ctx.api_version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    Reply::Deferred(Box::pin(async move {
        let mut responses = Vec::with_capacity(wanted.len());
        for (name, id) in wanted {
            let result = DeletableTopicResult::default().with_topic_id(id);
            let image = broker.image();
            let by_id = || {
                image
                    .topics
                    .iter()
                    .find(|(_, t)| Uuid::parse_str(&t.topic_id).ok() == Some(id))
                    .map(|(n, _)| n.clone())
            };
            let Some(name) = name.or_else(by_id) else {
                responses.push(result.with_error_code(ResponseError::UnknownTopicId.code()));
                continue;
            };
            let result = result.with_name(Some(TopicName(str_bytes(name.clone()))));
            responses.push(match broker.admin.delete(&name).await {
                Ok(deleted_id) => result.with_topic_id(deleted_id),
                Err(e) => result
                    .with_error_code(errors::topic(&e).code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            });
        }
        ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(responses))
    }))
}

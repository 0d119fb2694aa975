//! InitProducerId for idempotent producers: a fresh producer id (never reused, see
//! `txn::producer_id`) at epoch 0. Transactional ids need the transaction coordinator, which
//! this release does not serve, so they are refused with a non-retriable error.

use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, ResponseKind,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: InitProducerIdRequest,
    _ctx: RequestContext,
) -> Reply {
    let mut response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return Reply::ready(ResponseKind::InitProducerId(response));
    }
    match broker.producer_ids.next_id() {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot persist the producer id block");
            response.error_code = ResponseError::KafkaStorageError.code();
        }
    }
    Reply::ready(ResponseKind::InitProducerId(response))
}

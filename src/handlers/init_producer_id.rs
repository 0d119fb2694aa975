//! InitProducerId: without a transactional id, a fresh producer id (never reused by any node,
//! see `txn::producer_id`) at epoch 0; with one, the transaction coordinator's producer id and a
//! bumped epoch, which fences older producers of that id (after aborting their open
//! transaction).

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
    ctx: RequestContext,
) -> Reply {
    let mut response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    match request.transactional_id {
        None => {
            return Reply::Deferred(Box::pin(async move {
                match broker.producer_ids.next_id().await {
                    Ok(id) => {
                        response.producer_id = ProducerId(id);
                        response.producer_epoch = 0;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "no producer id to give");
                        // Retriable: the quorum may be electing a leader.
                        response.error_code = ResponseError::CoordinatorLoadInProgress.code();
                    }
                }
                ResponseKind::InitProducerId(response)
            }));
        }
        Some(id) if id.0.is_empty() => {
            response.error_code = ResponseError::InvalidRequest.code();
        }
        Some(id) => {
            // KIP-360 (v3+): the producer may say which id and epoch it had.
            let expected = (ctx.api_version >= 3 && request.producer_id.0 >= 0)
                .then_some((request.producer_id.0, request.producer_epoch));
            let timeout = request.transaction_timeout_ms;
            return Reply::Deferred(Box::pin(async move {
                match broker.txns.init_producer_id(&id.0, timeout, expected).await {
                    Ok((pid, epoch)) => {
                        response.producer_id = ProducerId(pid);
                        response.producer_epoch = epoch;
                    }
                    Err(e) => {
                        response.error_code =
                            crate::handlers::txn::for_version(e, ctx.api_version, 4);
                    }
                }
                ResponseKind::InitProducerId(response)
            }));
        }
    }
    Reply::ready(ResponseKind::InitProducerId(response))
}

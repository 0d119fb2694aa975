//! EndTxn: commits or aborts the producer's transaction. The answer comes once the decision is
//! in the state log and every partition's marker is synced.

use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ResponseKind};
use std::sync::Arc;

pub async fn handle(broker: Arc<Broker>, request: EndTxnRequest, ctx: RequestContext) -> Reply {
    Reply::Deferred(Box::pin(async move {
        let error = broker
            .txns
            .end_txn(
                &request.transactional_id.0,
                request.producer_id.0,
                request.producer_epoch,
                request.committed,
            )
            .await;
        ResponseKind::EndTxn(
            EndTxnResponse::default().with_error_code(super::for_version(
                error,
                ctx.api_version,
                2,
            )),
        )
    }))
}

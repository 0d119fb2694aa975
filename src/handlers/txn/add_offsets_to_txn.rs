//! AddOffsetsToTxn: puts the group's offsets partition into the transaction, so the offsets
//! committed by TxnOffsetCommit are decided with it.

use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ResponseKind};
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: AddOffsetsToTxnRequest,
    ctx: RequestContext,
) -> Reply {
    Reply::Deferred(Box::pin(async move {
        let tp = broker.txns.offsets_partition(&request.group_id.0);
        let results = broker
            .txns
            .add_partitions(
                &request.transactional_id.0,
                request.producer_id.0,
                request.producer_epoch,
                vec![tp],
            )
            .await;
        let error = results.first().map_or(0, |(_, c)| *c);
        ResponseKind::AddOffsetsToTxn(
            AddOffsetsToTxnResponse::default().with_error_code(super::for_version(
                error,
                ctx.api_version,
                2,
            )),
        )
    }))
}

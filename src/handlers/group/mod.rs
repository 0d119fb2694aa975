//! The consumer group APIs: coordinator lookup, membership, committed offsets, administration.

pub mod delete_groups;
pub mod describe_groups;
pub mod find_coordinator;
pub mod heartbeat;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod sync_group;

use crate::broker::Broker;
use crate::config::FlushMode;
use crate::group::{code, Pending};
use crate::partition::Partition;
use crate::protocol::routes::{BoxFuture, Reply};
use kafka_protocol::messages::ResponseKind;
use std::sync::Arc;

/// Answers an offset commit (`errors`: one code per partition, in request order) once its
/// records are synced when `flush_mode` is durable; if the sync fails, every partition that
/// succeeded answers NOT_COORDINATOR instead.
pub fn after_sync(
    broker: &Broker,
    durable: Option<(Arc<Partition>, i64)>,
    errors: Vec<i16>,
    respond: impl FnOnce(Vec<i16>) -> ResponseKind + Send + 'static,
) -> Reply {
    let durable = durable.filter(|_| broker.config.flush_mode == FlushMode::Durable);
    let Some((partition, offset)) = durable else {
        return Reply::ready(respond(errors));
    };
    Reply::Deferred(Box::pin(async move {
        let mut errors = errors;
        if let Err(e) = partition.flush_to(offset).await {
            tracing::error!(error = %e, "syncing committed offsets failed");
            for e in errors.iter_mut().filter(|e| **e == code::NONE) {
                *e = code::NOT_COORDINATOR;
            }
        }
        respond(errors)
    }))
}

/// Turns a coordinator answer (now, or when the group moves on) into a reply; a dropped
/// channel (the broker shutting down) becomes `lost`.
pub fn reply<T: Send + 'static>(
    pending: Pending<T>,
    respond: impl Fn(T) -> ResponseKind + Send + Sync + 'static,
    lost: impl FnOnce() -> T + Send + Sync + 'static,
) -> Reply {
    match pending {
        Pending::Now(outcome) => Reply::ready(respond(outcome)),
        Pending::Later(rx) => {
            let future: BoxFuture<ResponseKind> =
                Box::pin(async move { respond(rx.await.unwrap_or_else(|_| lost())) });
            Reply::Deferred(future)
        }
    }
}

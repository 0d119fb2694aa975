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

/// How long committed offsets may take to reach the ISR of their offsets partition.
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Answers an offset commit (`errors`: one code per partition, in request order) once its
/// records are on every in-sync replica of the offsets partition (Kafka writes them with
/// acks=-1) and, when `flush_mode` is durable, synced here; if either fails, every partition
/// that succeeded answers NOT_COORDINATOR instead (the client finds the coordinator again and
/// retries).
pub fn after_sync(
    broker: &Broker,
    durable: Option<(Arc<Partition>, i64)>,
    errors: Vec<i16>,
    respond: impl FnOnce(Vec<i16>) -> ResponseKind + Send + 'static,
) -> Reply {
    let Some((partition, offset)) = durable else {
        return Reply::ready(respond(errors));
    };
    let sync = broker.config.flush_mode == FlushMode::Durable;
    Reply::Deferred(Box::pin(async move {
        let mut errors = errors;
        let replicated = partition.wait_for_isr(offset, 1, COMMIT_TIMEOUT).await;
        let done = match replicated {
            Ok(()) if sync => partition.flush_to(offset).await,
            other => other,
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "committed offsets not replicated or synced");
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

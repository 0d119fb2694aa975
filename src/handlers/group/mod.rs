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

use crate::group::Pending;
use crate::protocol::routes::{BoxFuture, Reply};
use kafka_protocol::messages::ResponseKind;

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

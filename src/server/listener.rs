//! Accepts connections until shutdown and admits each within the connection quotas; one that
//! would pass `max_connections` or `max_connections_per_ip` is closed as soon as it is accepted.

use super::quotas::ConnectionQuotas;
use super::session::{self, SessionLimits};
use crate::broker::Broker;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

pub async fn run(
    broker: Arc<Broker>,
    listener: TcpListener,
    name: Arc<str>,
    quotas: Arc<ConnectionQuotas>,
    limits: SessionLimits,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                let slot = match quotas.admit(peer.ip()) {
                    Ok(slot) => slot,
                    Err(refused) => {
                        crate::warn_limited!(%peer, reason = %refused, "connection refused");
                        drop(socket);
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let broker = broker.clone();
                let limits = limits.clone();
                let name = name.clone();
                tracker.spawn(async move {
                    session::run(broker, socket, peer, name, limits).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: log, back off briefly, keep serving.
                crate::warn_limited!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

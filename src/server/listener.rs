//! Accepts connections until shutdown and admits each within the connection quotas; one that
//! would pass `max_connections` or `max_connections_per_ip` is closed as soon as it is accepted.
//! On an SSL listener the TLS handshake comes first, bounded by `request_read_timeout_ms`; a
//! failed handshake closes the connection with one rate-limited log line.

use super::quotas::ConnectionQuotas;
use super::session::{self, SessionLimits};
use super::tls::Tls;
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
    tls: Option<Arc<Tls>>,
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
                let Some(tls) = &tls else {
                    tracker.spawn(async move {
                        let (read, write) = socket.into_split();
                        session::run(broker, read, write, peer, name, limits).await;
                        drop(slot);
                    });
                    continue;
                };
                let acceptor = tls.acceptor();
                tracker.spawn(async move {
                    let deadline = limits.frame.read_timeout;
                    match tokio::time::timeout(deadline, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            let (read, write) = tokio::io::split(stream);
                            session::run(broker, read, write, peer, name, limits).await;
                        }
                        Ok(Err(e)) => {
                            crate::warn_limited!(%peer, listener = %name, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            crate::warn_limited!(%peer, listener = %name, "TLS handshake timed out");
                        }
                    }
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

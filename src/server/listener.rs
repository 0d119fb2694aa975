//! Accepts connections until shutdown and admits each within the connection quotas; one that
//! would pass `max_connections` or `max_connections_per_ip` is closed as soon as it is accepted.
//! On an SSL listener the TLS handshake comes first, bounded by `request_read_timeout_ms`; a
//! failed handshake closes the connection with one rate-limited log line. On a SASL listener
//! each connection gets its own authenticator.

use super::principal::{subject_dn, PrincipalRules};
use super::quotas::ConnectionQuotas;
use super::sasl::{Authenticator, SaslSettings};
use super::session::{self, Identity, SessionLimits};
use super::tls::Tls;
use crate::broker::Broker;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

/// What a listener's security protocol asks of each connection: a TLS handshake (SSL,
/// SASL_SSL), SASL authentication (SASL_*), both, or neither.
pub struct Security {
    pub tls: Option<Arc<Tls>>,
    /// How a TLS client certificate's subject names the connection's principal.
    pub principal_rules: Option<Arc<PrincipalRules>>,
    pub sasl: Option<Arc<SaslSettings>>,
}

pub async fn run(
    broker: Arc<Broker>,
    listener: TcpListener,
    name: Arc<str>,
    quotas: Arc<ConnectionQuotas>,
    limits: SessionLimits,
    security: Security,
    tracker: TaskTracker,
) {
    let Security {
        tls,
        principal_rules,
        sasl,
    } = security;
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
                let auth = sasl.clone().map(Authenticator::new);
                let Some(tls) = &tls else {
                    tracker.spawn(async move {
                        let (read, write) = socket.into_split();
                        let identity = Identity::anonymous(auth);
                        session::run(broker, read, write, peer, name, limits, identity).await;
                        drop(slot);
                    });
                    continue;
                };
                let acceptor = tls.acceptor();
                let rules = principal_rules.clone();
                tracker.spawn(async move {
                    let deadline = limits.frame.read_timeout;
                    match tokio::time::timeout(deadline, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            let certificate = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
                            let mut identity = Identity::anonymous(auth);
                            if let Some(cert) = certificate {
                                let dn = subject_dn(cert);
                                match dn.as_deref().and_then(|dn| rules.as_ref()?.map(dn)) {
                                    Some(user) => identity.principal = Arc::from(format!("User:{user}")),
                                    None => {
                                        crate::warn_limited!(%peer, listener = %name, subject = ?dn, "closing connection: no ssl.principal.mapping.rules rule applies to the client certificate");
                                        drop(slot);
                                        return;
                                    }
                                }
                            }
                            let (read, write) = tokio::io::split(stream);
                            session::run(broker, read, write, peer, name, limits, identity).await;
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

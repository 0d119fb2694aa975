//! Accepts connections, at most `max_connections` at once, until shutdown.

use super::session;
use crate::broker::Broker;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

pub async fn run(broker: Arc<Broker>, listener: TcpListener, tracker: TaskTracker) {
    let permits = Arc::new(Semaphore::new(broker.config.max_connections));
    loop {
        let permit = tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => p.expect("the connection semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                let _ = socket.set_nodelay(true);
                let broker = broker.clone();
                tracker.spawn(async move {
                    session::run(broker, socket, peer).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: log, back off briefly, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

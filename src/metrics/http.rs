//! The metrics listener: a minimal HTTP/1.1 server for Prometheus and orchestrators.
//! `GET /metrics` is the text exposition; `GET /health` answers 200 when the broker is ready
//! for clients (this node is a live broker in the metadata and the quorum has a leader) and
//! 503 with the reason otherwise; anything else is 404 (405 for another method).
//!
//! Bounded as the Kafka listener is: at most [`MAX_CONNECTIONS`] at once (more are closed at
//! accept), a request head of at most [`MAX_HEAD`] bytes that must arrive within
//! [`READ_TIMEOUT`], one request per connection.

use crate::broker::Broker;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const MAX_CONNECTIONS: usize = 16;
const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                crate::warn_limited!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            crate::warn_limited!(%peer, limit = MAX_CONNECTIONS, "metrics connection refused: too many");
            continue;
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(&broker, socket).await {
                tracing::debug!(%peer, error = %e, "metrics connection ended");
            }
            drop(slot);
        });
    }
}

/// Reads the request head (to the blank line), bounded in size and time.
async fn read_head(socket: &mut TcpStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
            }
            if head.len() > MAX_HEAD {
                return Ok(None);
            }
        }
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Ok(None),
    }
}

async fn answer(broker: &Broker, mut socket: TcpStream) -> std::io::Result<()> {
    let Some(head) = read_head(&mut socket).await? else {
        return Ok(());
    };
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            super::scrape(broker),
        ),
        ("GET", "/health") => match readiness(broker) {
            Ok(line) => ("200 OK", "text/plain; charset=utf-8", line + "\n"),
            Err(why) => (
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                why + "\n",
            ),
        },
        ("GET", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "GET only\n".into(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

/// Ready: this node is registered and unfenced in the metadata it applied, and the quorum has
/// a leader.
pub fn readiness(broker: &Broker) -> Result<String, String> {
    let me = broker.node_id() as u64;
    let Some(leader) = broker.replication.controller().leader() else {
        return Err("not ready: the metadata quorum has no leader".into());
    };
    match broker.image().nodes.get(&me) {
        Some(n) if !n.fenced => Ok(format!("ready: node {me}, quorum leader {leader}")),
        Some(_) => Err(format!("not ready: node {me} is fenced")),
        None => Err(format!("not ready: node {me} has not registered")),
    }
}

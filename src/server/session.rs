//! One client connection: read a frame, decode, dispatch, and hand the reply to the writer,
//! which writes responses strictly in request order (deferred replies are awaited in turn).
//! Requests are read ahead while earlier replies wait, up to
//! `max_in_flight_requests_per_connection`; pipelined requests therefore overlap their waits
//! (fsync, long polls) but are handled, and answered, in order.
//!
//! Only a malformed frame or a socket error ends a connection; it is logged, and responses
//! already due are written first.

use crate::broker::Broker;
use crate::handlers::api_versions;
use crate::protocol::codec::{self, DecodeError, RawHeader};
use crate::protocol::frame::{read_frame, FrameError};
use crate::protocol::routes::{Reply, RequestContext};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::ResponseError;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A reply on its way to the socket.
struct Pending {
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    reply: Reply,
}

pub async fn run(broker: Arc<Broker>, socket: TcpStream, peer: SocketAddr) {
    let (read_half, write_half) = socket.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let (tx, rx) = mpsc::channel::<Pending>(broker.config.max_in_flight_requests_per_connection);
    let writer = tokio::spawn(write_loop(write_half, rx, peer));
    let max = broker.config.socket_request_max_bytes;
    let mut read_buf = BytesMut::new();
    loop {
        let frame = tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            f = read_frame(&mut reader, &mut read_buf, max) => f,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "client went away");
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        match dispatch(&broker, frame, peer).await {
            Ok(Some(pending)) => {
                if tx.send(pending).await.is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad request");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// Decodes and hands a frame to its handler. A request for a newer ApiVersions than served is
/// answered in v0 shape with UNSUPPORTED_VERSION (KIP-511); other decode failures close.
async fn dispatch(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: SocketAddr,
) -> Result<Option<Pending>, DecodeError> {
    let raw = RawHeader::peek(&frame).ok_or(DecodeError::Short(frame.len()))?;
    let decoded = match codec::decode(frame) {
        Ok(d) => d,
        Err(DecodeError::UnsupportedVersion {
            key: ApiKey::ApiVersions,
            ..
        }) => {
            let body = api_versions::response(ResponseError::UnsupportedVersion.code());
            let reply = Reply::ready(ResponseKind::ApiVersions(body));
            return Ok(Some(Pending {
                correlation_id: raw.correlation_id,
                key: ApiKey::ApiVersions,
                version: 0,
                reply,
            }));
        }
        Err(e) => return Err(e),
    };
    let ctx = RequestContext {
        peer,
        api_version: raw.api_version,
        correlation_id: raw.correlation_id,
        client_id: decoded.header.client_id.as_ref().map(|c| c.to_string()),
    };
    let reply = (decoded.route.handle)(broker.clone(), decoded.body, ctx).await;
    if matches!(reply, Reply::Nothing) {
        return Ok(None);
    }
    Ok(Some(Pending {
        correlation_id: raw.correlation_id,
        key: decoded.route.api_key,
        version: raw.api_version,
        reply,
    }))
}

async fn write_loop(socket: OwnedWriteHalf, mut rx: mpsc::Receiver<Pending>, peer: SocketAddr) {
    let mut out = BufWriter::with_capacity(64 * 1024, socket);
    while let Some(p) = rx.recv().await {
        let body = match p.reply {
            Reply::Ready(body) => *body,
            Reply::Deferred(future) => future.await,
            Reply::Nothing => continue,
        };
        let bytes = match codec::encode(p.correlation_id, p.key, p.version, &body) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%peer, error = %e, "closing connection: response encoding failed");
                return;
            }
        };
        if let Err(e) = out.write_all(&bytes).await {
            tracing::debug!(%peer, error = %e, "client went away");
            return;
        }
        // Batch writes while more responses are ready; flush when the queue runs dry.
        if rx.is_empty() {
            if let Err(e) = out.flush().await {
                tracing::debug!(%peer, error = %e, "client went away");
                return;
            }
        }
    }
    let _ = out.flush().await;
    let _ = out.into_inner().shutdown().await;
}

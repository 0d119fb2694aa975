//! One client connection: read a frame, decode, dispatch, and hand the reply to the writer,
//! which writes responses strictly in request order (deferred replies are awaited in turn).
//! Requests are read ahead while earlier replies wait, up to
//! `max_in_flight_requests_per_connection`; pipelined requests therefore overlap their waits
//! (fsync, long polls) but are handled, and answered, in order.
//!
//! On a SASL listener the connection's [`Authenticator`] sees every frame first: until the
//! client has authenticated it answers the SASL steps itself and lets only ApiVersions through.
//!
//! Only a malformed frame, a socket error, a request that does not arrive within
//! `request_read_timeout_ms` once begun, or `connections_max_idle_ms` with no request arriving
//! and no response pending ends a connection; it is logged (rate-limited), and responses already
//! due are written first.

use super::sasl::{self, Admission, Answer, Authenticator};
use crate::broker::Broker;
use crate::handlers::api_versions;
use crate::protocol::codec::{self, DecodeError, RawHeader};
use crate::protocol::frame::{read_frame, Frame, FrameError, FrameLimits};
use crate::protocol::routes::{Reply, RequestContext};
use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::ResponseError;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

/// What makes a connection busy rather than idle: requests read whose responses are not yet
/// written, and when the last response was. A connection is idle when nothing is unanswered and
/// neither a request nor a response has passed for `connections_max_idle_ms`.
struct Activity {
    unanswered: AtomicUsize,
    since: Instant,
    /// Milliseconds after `since` at which the last response was written.
    last_answer_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            unanswered: AtomicUsize::new(0),
            since: Instant::now(),
            last_answer_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    fn answered(&self) {
        self.last_answer_ms
            .store(self.since.elapsed().as_millis() as u64, Ordering::Release);
        self.unanswered.fetch_sub(1, Ordering::AcqRel);
    }

    /// How long since the last response, or `None` while a response is pending. (The reader
    /// knows when the last request came: it restarts its wait on every one.)
    fn idle_for(&self) -> Option<Duration> {
        if self.unanswered.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_answer_ms.load(Ordering::Acquire));
        Some(self.since.elapsed().saturating_sub(last))
    }
}

/// A reply on its way to the socket.
struct Pending {
    request: Answered,
    reply: Reply,
}

/// What is known of a request besides its reply: what its response is encoded and counted as.
struct Answered {
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    /// When the request was read: its total time runs to its response being written.
    started: Instant,
    client_id: Option<String>,
    principal: Arc<str>,
    /// A bare SASL token (after SaslHandshake v0): written with its size prefix and nothing else.
    raw: bool,
}

/// Counts an answered request and logs it at debug: API, version, client, errors, time.
fn answered(p: &Answered, body: &ResponseKind, peer: SocketAddr) {
    let elapsed = p.started.elapsed();
    let errors = crate::metrics::error_codes(body);
    let api = codec::api_name(p.key);
    crate::metrics::metrics().request(api, &errors, elapsed.as_secs_f64());
    if tracing::enabled!(target: "spool::request", tracing::Level::DEBUG) {
        let failed: Vec<i16> = errors.iter().copied().filter(|c| *c != 0).collect();
        tracing::debug!(
            target: "spool::request",
            %peer,
            api,
            version = p.version,
            client_id = p.client_id.as_deref().unwrap_or(""),
            principal = &*p.principal,
            correlation_id = p.correlation_id,
            errors = ?failed,
            elapsed_us = elapsed.as_micros() as u64,
            "request"
        );
    }
}

/// What bounds one connection, the same for every connection of a listener.
#[derive(Clone)]
pub struct SessionLimits {
    pub frame: FrameLimits,
    /// `connections_max_idle_ms`.
    pub idle: Duration,
}

/// Who the connection is before any request: the TLS client certificate's principal (or
/// `User:ANONYMOUS`), and on a SASL listener the authenticator that will say who it is.
pub struct Identity {
    pub principal: Arc<str>,
    pub auth: Option<Authenticator>,
}

impl Identity {
    pub fn anonymous(auth: Option<Authenticator>) -> Self {
        Identity {
            principal: Arc::from(sasl::ANONYMOUS),
            auth,
        }
    }
}

/// Serves one connection, given as its two halves: a plaintext socket's own split halves, or a
/// TLS stream's.
pub async fn run<R, W>(
    broker: Arc<Broker>,
    read_half: R,
    write_half: W,
    peer: SocketAddr,
    listener: Arc<str>,
    limits: SessionLimits,
    identity: Identity,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let (tx, rx) = mpsc::channel::<Pending>(broker.config.max_in_flight_requests_per_connection);
    let activity = Arc::new(Activity::default());
    let writer = tokio::spawn(write_loop(write_half, rx, peer, activity.clone()));
    let mut read_buf = BytesMut::new();
    let mut wait = limits.idle;
    let Identity {
        mut principal,
        mut auth,
    } = identity;
    let mut frame_limits = limits.frame.clone();
    loop {
        if let Some(auth) = &auth {
            frame_limits.max_bytes = auth.max_frame(limits.frame.max_bytes);
            frame_limits.min_bytes = if auth.expects_raw_token() {
                0
            } else {
                limits.frame.min_bytes
            };
        }
        let arrived = tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            r = tokio::time::timeout(wait, reader.fill_buf()) => r.map(|r| r.map(|b| !b.is_empty())),
        };
        match arrived {
            Ok(Ok(true)) => wait = limits.idle,
            Ok(Ok(false)) => break,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "client went away");
                break;
            }
            Err(_quiet) => match activity.idle_for() {
                Some(idle) if idle >= limits.idle => {
                    tracing::debug!(%peer, idle_ms = idle.as_millis() as u64, "closing idle connection");
                    break;
                }
                Some(idle) => {
                    wait = limits.idle - idle;
                    continue;
                }
                None => {
                    wait = limits.idle;
                    continue;
                }
            },
        }
        let frame = tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            f = read_frame(&mut reader, &mut read_buf, &frame_limits) => f,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(FrameError::Io(e)) => {
                tracing::debug!(%peer, error = %e, "client went away");
                break;
            }
            Err(e) => {
                crate::warn_limited!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        if let Some(auth) = &mut auth {
            let admission = auth.admit(&frame.bytes, || broker.image());
            let started = Instant::now();
            let pending = |a: Answer, delay: Duration, principal: &Arc<str>| {
                let body = a.body;
                Pending {
                    request: Answered {
                        correlation_id: a.correlation_id,
                        key: a.key,
                        version: a.version,
                        started,
                        client_id: None,
                        principal: principal.clone(),
                        raw: a.raw,
                    },
                    reply: if delay.is_zero() {
                        Reply::ready(body)
                    } else {
                        Reply::Deferred(Box::pin(async move {
                            tokio::time::sleep(delay).await;
                            body
                        }))
                    },
                }
            };
            match admission {
                Admission::Serve => {}
                Admission::Answer(a) => {
                    if a.key == ApiKey::SaslAuthenticate && auth.serving() {
                        crate::metrics::metrics().successful_authentication();
                        if let Some(p) = auth.principal().filter(|p| **p != *principal) {
                            principal = Arc::from(p);
                            tracing::debug!(%peer, listener = %listener, principal = %principal, "authenticated");
                        }
                    }
                    activity.unanswered.fetch_add(1, Ordering::AcqRel);
                    if tx
                        .send(pending(a, Duration::ZERO, &principal))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                }
                Admission::Close {
                    reason,
                    answer,
                    delay,
                } => {
                    crate::warn_limited!(%peer, listener = %listener, %reason, "closing connection: authentication failed");
                    crate::metrics::metrics().failed_authentication();
                    if let Some(a) = answer {
                        activity.unanswered.fetch_add(1, Ordering::AcqRel);
                        let _ = tx.send(pending(a, delay, &principal)).await;
                    } else if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    break;
                }
            }
        }
        match dispatch(&broker, frame, peer, &listener, &principal).await {
            Ok(Some(pending)) => {
                activity.unanswered.fetch_add(1, Ordering::AcqRel);
                if tx.send(pending).await.is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                crate::warn_limited!(%peer, error = %e, "closing connection: bad request");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// Decodes and hands a frame to its handler. A request for a newer ApiVersions than served is
/// answered in v0 shape with UNSUPPORTED_VERSION (KIP-511); other decode failures close.
///
/// The frame's share of the request memory budget is given back when this returns: by then the
/// handler has taken what it keeps (a produce has appended) and the request bytes are dropped.
async fn dispatch(
    broker: &Arc<Broker>,
    frame: Frame,
    peer: SocketAddr,
    listener: &Arc<str>,
    principal: &Arc<str>,
) -> Result<Option<Pending>, DecodeError> {
    let Frame {
        bytes: frame,
        memory: _memory,
    } = frame;
    let started = Instant::now();
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
                request: Answered {
                    correlation_id: raw.correlation_id,
                    key: ApiKey::ApiVersions,
                    version: 0,
                    started,
                    client_id: None,
                    principal: principal.clone(),
                    raw: false,
                },
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
        listener: listener.clone(),
        principal: principal.clone(),
    };
    let client_id = ctx.client_id.clone();
    let reply = (decoded.route.handle)(broker.clone(), decoded.body, ctx).await;
    if matches!(reply, Reply::Nothing) {
        // acks=0: nothing is written back; the request is counted as handled.
        crate::metrics::metrics().request(
            codec::api_name(decoded.route.api_key),
            &[],
            started.elapsed().as_secs_f64(),
        );
        return Ok(None);
    }
    Ok(Some(Pending {
        request: Answered {
            correlation_id: raw.correlation_id,
            key: decoded.route.api_key,
            version: raw.api_version,
            started,
            client_id,
            principal: principal.clone(),
            raw: false,
        },
        reply,
    }))
}

async fn write_loop<W: AsyncWrite + Unpin>(
    socket: W,
    mut rx: mpsc::Receiver<Pending>,
    peer: SocketAddr,
    activity: Arc<Activity>,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, socket);
    while let Some(Pending { request: p, reply }) = rx.recv().await {
        let body = match reply {
            Reply::Ready(body) => *body,
            Reply::Deferred(future) => future.await,
            Reply::Nothing => {
                activity.answered();
                continue;
            }
        };
        let encoded = if p.raw {
            Ok(raw_token(&body))
        } else {
            codec::encode(p.correlation_id, p.key, p.version, &body)
        };
        let bytes = match encoded {
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
        activity.answered();
        answered(&p, &body, peer);
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

/// A SASL step's token as a bare size-prefixed frame (after SaslHandshake v0).
fn raw_token(body: &ResponseKind) -> bytes::Bytes {
    let token = match body {
        ResponseKind::SaslAuthenticate(r) => &r.auth_bytes[..],
        _ => &[],
    };
    let mut out = BytesMut::with_capacity(4 + token.len());
    out.extend_from_slice(&(token.len() as u32).to_be_bytes());
    out.extend_from_slice(token);
    out.freeze()
}

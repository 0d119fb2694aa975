//! The Kafka protocol client a follower uses to fetch from a leader: one connection, one
//! request at a time, every step bounded by a timeout, response frames bounded before anything
//! is allocated for them.

use crate::protocol::client::{decode_response, encode_request};
use bytes::BytesMut;
use kafka_protocol::protocol::{Request, StrBytes};
use std::time::Duration;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("talking to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} gave no answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    #[error("{addr} answered with a frame of {size} bytes (limit {max})")]
    BadFrame { addr: String, size: i64, max: usize },
    #[error("{addr}: a message does not encode or decode: {reason}")]
    Codec { addr: String, reason: String },
}

pub struct Client {
    addr: String,
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
    max_response: usize,
}

impl Client {
    /// Connects to `addr` (`host:port`) from `source` (see [`crate::net`]) within `timeout`.
    pub async fn connect(
        addr: &str,
        source: Option<std::net::IpAddr>,
        client_id: &str,
        max_response: usize,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let connecting = crate::net::connect_from(addr, source);
        let stream = match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    source,
                })
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    addr: addr.to_string(),
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        };
        // Best effort: fetches are latency-bound.
        let _ = stream.set_nodelay(true);
        Ok(Client {
            addr: addr.to_string(),
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_string(client_id.to_string()),
            max_response,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` at `version` and reads its response, all within `timeout`.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let addr = self.addr.clone();
        match tokio::time::timeout(timeout, self.exchange(request, version)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                addr,
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    async fn exchange<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let codec = |addr: &str, e: anyhow::Error| ClientError::Codec {
            addr: addr.to_string(),
            reason: e.to_string(),
        };
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, self.correlation_id, &self.client_id)
            .map_err(|e| codec(&self.addr, e))?;
        let io = |addr: &str, source| ClientError::Io {
            addr: addr.to_string(),
            source,
        };
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| io(&self.addr, e))?;
        let size = self
            .stream
            .read_i32()
            .await
            .map_err(|e| io(&self.addr, e))?;
        if size < 4 || size as usize > self.max_response {
            return Err(ClientError::BadFrame {
                addr: self.addr.clone(),
                size: size as i64,
                max: self.max_response,
            });
        }
        let mut buf = BytesMut::zeroed(size as usize);
        self.stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| io(&self.addr, e))?;
        let (correlation_id, response) =
            decode_response::<R>(buf.freeze(), version).map_err(|e| codec(&self.addr, e))?;
        if correlation_id != self.correlation_id {
            return Err(ClientError::Codec {
                addr: self.addr.clone(),
                reason: format!(
                    "response to request {correlation_id} arrived for request {}",
                    self.correlation_id
                ),
            });
        }
        Ok(response)
    }
}

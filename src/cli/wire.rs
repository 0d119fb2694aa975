//! A minimal blocking Kafka protocol client for the admin calls librdkafka does not offer
//! (ListTransactions, DescribeTransactions, DescribeProducers, WriteTxnMarkers): one request
//! at a time on one connection, with read and write timeouts, frames bounded before reading.

use crate::protocol::client::{decode_response, encode_request};
use kafka_protocol::protocol::{Request, StrBytes};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use thiserror::Error;

/// Responses larger than this are refused (the admin answers here are small).
const MAX_RESPONSE: usize = 64 << 20;

#[derive(Debug, Error)]
pub enum WireError {
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
    #[error("{addr} answered with a frame of {size} bytes")]
    BadFrame { addr: String, size: i32 },
    #[error("{addr} sent a response that does not decode: {reason}")]
    Decode { addr: String, reason: String },
}

pub struct Connection {
    addr: String,
    stream: TcpStream,
    correlation_id: i32,
}

impl Connection {
    /// Connects to the first address of `bootstrap` (comma-separated host:port list) that
    /// answers within `timeout`.
    pub fn open(bootstrap: &str, timeout: Duration) -> Result<Self, WireError> {
        let mut last = None;
        for addr in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let resolved = addr.to_socket_addrs().map(|mut a| a.next());
            let result = match resolved {
                Ok(Some(sock)) => TcpStream::connect_timeout(&sock, timeout),
                Ok(None) => Err(std::io::Error::other("no address")),
                Err(e) => Err(e),
            };
            match result {
                Ok(stream) => {
                    let io = |source| WireError::Io {
                        addr: addr.to_string(),
                        source,
                    };
                    stream.set_read_timeout(Some(timeout)).map_err(io)?;
                    stream.set_write_timeout(Some(timeout)).map_err(io)?;
                    return Ok(Self {
                        addr: addr.to_string(),
                        stream,
                        correlation_id: 0,
                    });
                }
                Err(source) => {
                    last = Some(WireError::Connect {
                        addr: addr.to_string(),
                        source,
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| WireError::Connect {
            addr: bootstrap.to_string(),
            source: std::io::Error::other("no broker address given"),
        }))
    }

    /// Sends `request` at `version` and reads its response.
    pub fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, WireError> {
        let decode = |addr: &str, e: anyhow::Error| WireError::Decode {
            addr: addr.to_string(),
            reason: e.to_string(),
        };
        self.correlation_id += 1;
        let client_id = StrBytes::from_static_str("spool-cli");
        let frame = encode_request(request, version, self.correlation_id, &client_id)
            .map_err(|e| decode(&self.addr, e))?;
        let io = |addr: &str, source| WireError::Io {
            addr: addr.to_string(),
            source,
        };
        self.stream
            .write_all(&frame)
            .map_err(|e| io(&self.addr, e))?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| io(&self.addr, e))?;
        let size = i32::from_be_bytes(size);
        if size < 4 || size as usize > MAX_RESPONSE {
            return Err(WireError::BadFrame {
                addr: self.addr.clone(),
                size,
            });
        }
        let mut buf = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut buf)
            .map_err(|e| io(&self.addr, e))?;
        let (_, response) =
            decode_response::<R>(buf.into(), version).map_err(|e| decode(&self.addr, e))?;
        Ok(response)
    }
}

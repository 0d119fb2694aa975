//! Request decoding and response encoding.
//!
//! Decoding goes through the pinned `kafka-protocol` crate, patched so that no length or count
//! read from the wire can make it reserve more than the frame holds (see
//! `vendor/kafka-protocol/PATCHES.md`); a decode failure is an error value, never a panic.

use super::routes::{self, Route};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

/// The fields every request header starts with, at fixed positions whatever its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl RawHeader {
    /// Reads the fixed prefix; `None` when the frame is shorter than it.
    pub fn peek(frame: &[u8]) -> Option<Self> {
        if frame.len() < 8 {
            return None;
        }
        Some(Self {
            api_key: i16::from_be_bytes([frame[0], frame[1]]),
            api_version: i16::from_be_bytes([frame[2], frame[3]]),
            correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        })
    }
}

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("frame of {0} bytes is too short for a request header")]
    Short(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("API {0:?} is not served by spool")]
    NotServed(ApiKey),
    #[error("{key:?} v{version} is not supported (supported: v{min}..=v{max})")]
    UnsupportedVersion {
        key: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("malformed {key:?} v{version} request: {source}")]
    Malformed {
        key: ApiKey,
        version: i16,
        source: anyhow::Error,
    },
}

/// A request ready for its handler.
pub struct Decoded {
    pub route: &'static Route,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// Decodes a whole request frame against the route table.
pub fn decode(frame: Bytes) -> Result<Decoded, DecodeError> {
    let raw = RawHeader::peek(&frame).ok_or(DecodeError::Short(frame.len()))?;
    let key = ApiKey::try_from(raw.api_key).map_err(|_| DecodeError::UnknownApiKey(raw.api_key))?;
    let route = routes::route(key).ok_or(DecodeError::NotServed(key))?;
    let version = raw.api_version;
    if version < route.min_version || version > route.max_version {
        return Err(DecodeError::UnsupportedVersion {
            key,
            version,
            min: route.min_version,
            max: route.max_version,
        });
    }
    let malformed = |source| DecodeError::Malformed {
        key,
        version,
        source,
    };
    let mut buf = frame;
    let header =
        RequestHeader::decode(&mut buf, key.request_header_version(version)).map_err(malformed)?;
    let body = RequestKind::decode(key, &mut buf, version).map_err(malformed)?;
    Ok(Decoded {
        route,
        header,
        body,
    })
}

#[derive(Debug, Error)]
#[error("cannot encode {key:?} v{version} response: {source}")]
pub struct EncodeError {
    pub key: ApiKey,
    pub version: i16,
    pub source: anyhow::Error,
}

/// Encodes a response with its size prefix and header. ApiVersions responses always use header
/// v0, so a client that sent a version we do not know can still read the answer.
pub fn encode(
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<Bytes, EncodeError> {
    let err = |source| EncodeError {
        key,
        version,
        source,
    };
    let header_version = key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    // Fetch responses carry the records: size them exactly so they are copied once.
    let capacity = match body {
        ResponseKind::Fetch(f) => f.compute_size(version).map_err(err)? + 64,
        _ => 256,
    };
    let mut buf = BytesMut::with_capacity(capacity);
    buf.put_i32(0);
    header.encode(&mut buf, header_version).map_err(err)?;
    body.encode(&mut buf, version).map_err(err)?;
    // A response that does not fit its 4-byte size prefix is an error, never a wrapped size.
    let size = i32::try_from(buf.len() - 4).map_err(|_| {
        err(anyhow::anyhow!(
            "response of {} bytes overflows its size prefix",
            buf.len() - 4
        ))
    })?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Kafka's name of an API (`Produce`, `FindCoordinator`), for metrics and logs.
pub fn api_name(key: ApiKey) -> &'static str {
    use std::collections::HashMap;
    use std::sync::LazyLock;
    // One leaked name per API key that exists (a fixed, small set).
    static NAMES: LazyLock<HashMap<i16, &'static str>> = LazyLock::new(|| {
        (0..=i16::from(u8::MAX))
            .filter_map(|k| ApiKey::try_from(k).ok())
            .map(|k| {
                let name: &'static str = Box::leak(format!("{k:?}").into_boxed_str());
                (k as i16, name)
            })
            .collect()
    });
    NAMES.get(&(key as i16)).copied().unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(api_key: i16, version: i16, rest: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(api_key);
        b.put_i16(version);
        b.put_i32(7);
        b.put_i16(-1); // null client id
        b.extend_from_slice(rest);
        b.freeze()
    }

    #[test]
    fn unknown_keys_and_versions_are_errors() {
        assert!(matches!(
            decode(frame(999, 0, &[])),
            Err(DecodeError::UnknownApiKey(999))
        ));
        assert!(matches!(
            decode(frame(3, 99, &[])),
            Err(DecodeError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            decode(Bytes::from_static(&[0, 3])),
            Err(DecodeError::Short(2))
        ));
    }

    #[test]
    fn forged_array_count_does_not_allocate_beyond_the_frame() {
        // Metadata v1: topics array with count i32::MAX and nothing behind it.
        let f = frame(3, 1, &[0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(decode(f), Err(DecodeError::Malformed { .. })));
        // Produce v3: null transactional id, acks, timeout, then a topic array claiming 2^31-1
        // entries, each a large struct.
        let mut rest = vec![0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30];
        rest.extend([0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode(frame(0, 3, &rest)),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn forged_compact_lengths_do_not_allocate_beyond_the_frame() {
        // CreateTopics v5 (flexible): header v2 has a tag buffer; then a compact array of topics
        // claiming u32::MAX - 1 entries, and a compact string claiming 4 GiB.
        let mut f = BytesMut::new();
        f.put_i16(19);
        f.put_i16(5);
        f.put_i32(1);
        f.put_i16(-1);
        f.put_u8(0); // header tagged fields
        f.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // topics: u32::MAX
        f.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // first name: ~4 GiB
        assert!(matches!(
            decode(f.freeze()),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn api_versions_response_uses_header_v0() {
        let body = ResponseKind::ApiVersions(Default::default());
        let bytes = encode(42, ApiKey::ApiVersions, 3, &body).unwrap();
        assert_eq!(&bytes[4..8], &42i32.to_be_bytes());
        assert_eq!(
            i32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len() - 4
        );
    }
}

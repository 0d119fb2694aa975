//! The client side of the protocol, shared by spool's own clients (the console tools' blocking
//! one in `cli::wire` and the nodes' async one in `replication::client`): a request framed with
//! its size and header, and a response frame split into its correlation id and body.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// `request` at `version` as a whole frame: 4-byte size, header, body.
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> anyhow::Result<BytesMut> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let mut frame = BytesMut::with_capacity(256);
    frame.extend_from_slice(&[0; 4]);
    header.encode(&mut frame, R::header_version(version))?;
    request.encode(&mut frame, version)?;
    let size = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Ok(frame)
}

/// A response frame (without its size) to a request of type `R` at `version`: its correlation
/// id and the decoded response.
pub fn decode_response<R: Request>(
    mut frame: Bytes,
    version: i16,
) -> anyhow::Result<(i32, R::Response)> {
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(&mut frame, header_version)?;
    let response = R::Response::decode(&mut frame, version)?;
    if frame.has_remaining() {
        tracing::debug!(left = frame.remaining(), "response had trailing bytes");
    }
    Ok((header.correlation_id, response))
}

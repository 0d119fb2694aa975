//! ApiVersions: the version ranges of the route table. A request of a version newer than served
//! is answered (not refused) with UNSUPPORTED_VERSION and the ranges, in v0 shape (KIP-511);
//! the session does that before decoding, see `server::session`.

use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext, ROUTES};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseKind};
use std::sync::Arc;

/// The response listing every served API, with `error_code`.
pub fn response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = ROUTES
        .iter()
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.api_key as i16)
                .with_min_version(r.min_version)
                .with_max_version(r.max_version)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

pub async fn handle(
    _broker: Arc<Broker>,
    request: ApiVersionsRequest,
    ctx: RequestContext,
) -> Reply {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
    };
    if ctx.api_version >= 3
        && (!valid(&request.client_software_name) || !valid(&request.client_software_version))
    {
        let invalid = kafka_protocol::ResponseError::InvalidRequest.code();
        return Reply::ready(ResponseKind::ApiVersions(response(invalid)));
    }
    Reply::ready(ResponseKind::ApiVersions(response(0)))
}

//! SaslHandshake and SaslAuthenticate as requests. On SASL listeners the session's
//! authenticator takes both (see `server::sasl`), so they reach these handlers only on
//! listeners without SASL, where Kafka answers ILLEGAL_SASL_STATE.

pub mod handshake {
    use crate::broker::Broker;
    use crate::protocol::routes::{Reply, RequestContext};
    use kafka_protocol::messages::{ResponseKind, SaslHandshakeRequest, SaslHandshakeResponse};
    use kafka_protocol::ResponseError;
    use std::sync::Arc;

    pub async fn handle(_: Arc<Broker>, _: SaslHandshakeRequest, _: RequestContext) -> Reply {
        Reply::ready(ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code()),
        ))
    }
}

pub mod authenticate {
    use super::super::str_bytes;
    use crate::broker::Broker;
    use crate::protocol::routes::{Reply, RequestContext};
    use kafka_protocol::messages::{
        ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
    };
    use kafka_protocol::ResponseError;
    use std::sync::Arc;

    pub async fn handle(_: Arc<Broker>, _: SaslAuthenticateRequest, _: RequestContext) -> Reply {
        Reply::ready(ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(str_bytes(
                    "SaslAuthenticate request received after successful authentication",
                ))),
        ))
    }
}

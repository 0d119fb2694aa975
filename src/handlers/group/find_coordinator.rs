//! FindCoordinator: this node coordinates every group and every transactional id.

use crate::broker::Broker;
use crate::handlers::str_bytes;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// (error, message, node, host, port) for one key.
fn lookup(broker: &Broker, key_type: i8) -> (i16, Option<String>, i32, String, i32) {
    match key_type {
        GROUP => {
            let (host, port) = broker.advertised();
            (0, None, broker.node_id(), host, port)
        }
        // The transaction state topic is created on the first look-up, as Kafka does.
        TRANSACTION => match broker.txns.state_log() {
            Ok(_) => {
                let (host, port) = broker.advertised();
                (0, None, broker.node_id(), host, port)
            }
            Err(code) => (
                code,
                Some("the transaction state topic cannot be created".into()),
                -1,
                String::new(),
                -1,
            ),
        },
        other => (
            ResponseError::InvalidRequest.code(),
            Some(format!("unknown key type {other}")),
            -1,
            String::new(),
            -1,
        ),
    }
}

pub async fn handle(
    broker: Arc<Broker>,
    request: FindCoordinatorRequest,
    ctx: RequestContext,
) -> Reply {
    let mut response = FindCoordinatorResponse::default();
    if ctx.api_version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (error, message, node, host, port) = lookup(&broker, request.key_type);
                Coordinator::default()
                    .with_key(key.clone())
                    .with_error_code(error)
                    .with_error_message(message.map(str_bytes))
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port)
            })
            .collect();
    } else {
        let (error, message, node, host, port) = lookup(&broker, request.key_type);
        response.error_code = error;
        response.error_message = message.map(str_bytes);
        response.node_id = BrokerId(node);
        response.host = str_bytes(host);
        response.port = port;
    }
    Reply::ready(ResponseKind::FindCoordinator(response))
}

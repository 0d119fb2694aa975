//! FindCoordinator: the coordinator of a group or transactional id is the leader of the
//! partition of `__consumer_offsets` or `__transaction_state` the key hashes to. The internal
//! topic is created on the first look-up, as Kafka does; while the partition has no leader the
//! answer is COORDINATOR_NOT_AVAILABLE, which clients retry.

use crate::broker::Broker;
use crate::group::store::OFFSETS_TOPIC;
use crate::handlers::str_bytes;
use crate::protocol::routes::{Reply, RequestContext};
use crate::txn::store::TXN_TOPIC;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, ResponseKind,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// (error, message, node, host, port) for one key.
type Found = (i16, Option<String>, i32, String, i32);

fn unavailable(message: String) -> Found {
    (
        ResponseError::CoordinatorNotAvailable.code(),
        Some(message),
        -1,
        String::new(),
        -1,
    )
}

/// Creates the internal topic behind `key_type` when it does not exist yet.
async fn ensure_topic(broker: &Broker, key_type: i8) -> Result<(), String> {
    let c = &broker.config;
    let created = match key_type {
        GROUP => {
            broker
                .admin
                .ensure_internal(
                    OFFSETS_TOPIC,
                    c.offsets_topic_num_partitions,
                    c.offsets_topic_replication_factor,
                    None,
                )
                .await
        }
        _ => {
            broker
                .admin
                .ensure_internal(
                    TXN_TOPIC,
                    c.transaction_state_log_num_partitions,
                    c.transaction_state_log_replication_factor,
                    Some(c.transaction_state_log_min_isr),
                )
                .await
        }
    };
    created.map_err(|e| {
        tracing::warn!(error = %e, "cannot create an internal topic");
        format!("the internal topic cannot be created yet: {e}")
    })
}

fn lookup(broker: &Broker, listener: &str, key_type: i8, key: &str) -> Found {
    let (topic, partition) = match key_type {
        GROUP => (OFFSETS_TOPIC, broker.groups.partition_index(key)),
        _ => (TXN_TOPIC, broker.txns.partition_index(key)),
    };
    let image = broker.image();
    let leader = image.partition(topic, partition).and_then(|p| p.leader);
    match leader.and_then(|l| image.nodes.get(&l).map(|n| (l, n))) {
        Some((id, node)) if !node.fenced => match node.endpoint_for(listener) {
            Some((host, port)) => (0, None, id as i32, host, port),
            None => unavailable(format!("the coordinator has no {listener} listener")),
        },
        _ => unavailable(format!("partition {topic}-{partition} has no leader")),
    }
}

pub async fn handle(
    broker: Arc<Broker>,
    request: FindCoordinatorRequest,
    ctx: RequestContext,
) -> Reply {
    let key_type = request.key_type;
    if !matches!(key_type, GROUP | TRANSACTION) {
        let response = FindCoordinatorResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(str_bytes(format!("unknown key type {key_type}"))));
        return Reply::ready(ResponseKind::FindCoordinator(response));
    }
    Reply::Deferred(Box::pin(async move {
        let ready = ensure_topic(&broker, key_type).await;
        let find = |key: &str| match &ready {
            Ok(()) => lookup(&broker, &ctx.listener, key_type, key),
            Err(message) => unavailable(message.clone()),
        };
        let mut response = FindCoordinatorResponse::default();
        if ctx.api_version >= 4 {
            response.coordinators = request
                .coordinator_keys
                .iter()
                .map(|key| {
                    let (error, message, node, host, port) = find(key);
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
            let (error, message, node, host, port) = find(&request.key);
            response.error_code = error;
            response.error_message = message.map(str_bytes);
            response.node_id = BrokerId(node);
            response.host = str_bytes(host);
            response.port = port;
        }
        ResponseKind::FindCoordinator(response)
    }))
}

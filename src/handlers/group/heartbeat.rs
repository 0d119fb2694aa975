//! Heartbeat: keeps a member's session alive and tells it when to rejoin.

use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, ResponseKind};
use std::sync::Arc;

pub async fn handle(broker: Arc<Broker>, request: HeartbeatRequest, _ctx: RequestContext) -> Reply {
    let error = broker.groups.heartbeat(
        &request.group_id.0,
        request.generation_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
    );
    Reply::ready(ResponseKind::Heartbeat(
        HeartbeatResponse::default().with_error_code(error),
    ))
}

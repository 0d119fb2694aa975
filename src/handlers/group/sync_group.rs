//! SyncGroup: followers wait for the leader's assignment; everyone gets their own.

use super::reply;
use crate::broker::Broker;
use crate::group::code;
use crate::group::membership::SyncRequest;
use crate::group::state::SyncOutcome;
use crate::handlers::str_bytes;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::{ResponseKind, SyncGroupRequest, SyncGroupResponse};
use std::sync::Arc;

pub async fn handle(broker: Arc<Broker>, request: SyncGroupRequest, ctx: RequestContext) -> Reply {
    let version = ctx.api_version;
    if version >= 5 && (request.protocol_type.is_none() || request.protocol_name.is_none()) {
        let response =
            SyncGroupResponse::default().with_error_code(code::INCONSISTENT_GROUP_PROTOCOL);
        return Reply::ready(ResponseKind::SyncGroup(response));
    }
    let sync = SyncRequest {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        protocol_type: request.protocol_type.map(|p| p.to_string()),
        protocol_name: request.protocol_name.map(|p| p.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    reply(
        broker.groups.sync(sync),
        move |o: SyncOutcome| {
            let mut response = SyncGroupResponse::default()
                .with_error_code(o.error)
                .with_assignment(o.assignment);
            if version >= 5 {
                response.protocol_type = o.protocol_type.map(str_bytes);
                response.protocol_name = o.protocol_name.map(str_bytes);
            }
            ResponseKind::SyncGroup(response)
        },
        || SyncOutcome::error(code::COORDINATOR_NOT_AVAILABLE),
    )
}

//! JoinGroup: answered when the group's join phase completes (or at once, for errors, member
//! id assignment and members already in the current generation).

use super::reply;
use crate::broker::Broker;
use crate::group::code;
use crate::group::membership::JoinRequest;
use crate::group::state::JoinOutcome;
use crate::handlers::str_bytes;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, ResponseKind};
use std::sync::Arc;

pub async fn handle(broker: Arc<Broker>, request: JoinGroupRequest, ctx: RequestContext) -> Reply {
    let version = ctx.api_version;
    let join = JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout serves for both.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        version,
    };
    let member_id = join.member_id.clone();
    reply(
        broker.groups.join(join),
        move |o: JoinOutcome| {
            let protocol_name = match (o.protocol_name, version >= 7) {
                (Some(n), _) => Some(str_bytes(n)),
                (None, true) => None,
                (None, false) => Some(str_bytes("")),
            };
            let response = JoinGroupResponse::default()
                .with_error_code(o.error)
                .with_generation_id(o.generation_id)
                .with_protocol_type(o.protocol_type.map(str_bytes))
                .with_protocol_name(protocol_name)
                .with_leader(str_bytes(o.leader))
                .with_skip_assignment(o.skip_assignment && version >= 9)
                .with_member_id(str_bytes(o.member_id))
                .with_members(
                    o.members
                        .into_iter()
                        .map(|(id, instance, metadata)| {
                            JoinGroupResponseMember::default()
                                .with_member_id(str_bytes(id))
                                .with_group_instance_id(instance.map(str_bytes))
                                .with_metadata(metadata)
                        })
                        .collect(),
                );
            ResponseKind::JoinGroup(response)
        },
        move || JoinOutcome::error(code::COORDINATOR_NOT_AVAILABLE, &member_id),
    )
}

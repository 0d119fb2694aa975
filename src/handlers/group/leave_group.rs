//! LeaveGroup: one member (v0-2) or a batch of members, by id or group instance id (v3+).

use crate::broker::Broker;
use crate::handlers::str_bytes;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, ResponseKind};
use std::sync::Arc;

pub async fn handle(broker: Arc<Broker>, request: LeaveGroupRequest, ctx: RequestContext) -> Reply {
    let members: Vec<(String, Option<String>)> = if ctx.api_version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let (error, per_member) = broker.groups.leave(&request.group_id.0, &members);
    let mut response = LeaveGroupResponse::default();
    if ctx.api_version >= 3 {
        response.error_code = error;
        response.members = members
            .into_iter()
            .zip(per_member)
            .map(|((id, instance), e)| {
                MemberResponse::default()
                    .with_member_id(str_bytes(id))
                    .with_group_instance_id(instance.map(str_bytes))
                    .with_error_code(e)
            })
            .collect();
    } else {
        response.error_code = if error != 0 {
            error
        } else {
            per_member.first().copied().unwrap_or(0)
        };
    }
    Reply::ready(ResponseKind::LeaveGroup(response))
}

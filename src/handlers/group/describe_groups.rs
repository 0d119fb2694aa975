//! DescribeGroups: state, protocol and members of each group; unknown groups read as "Dead"
//! (with GROUP_ID_NOT_FOUND from v6).

use crate::broker::Broker;
use crate::group::code;
use crate::handlers::{str_bytes, OPERATIONS_NOT_REQUESTED};
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, ResponseKind};
use std::sync::Arc;

/// READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS on a group (no authorizer: all).
fn group_operations() -> i32 {
    [3, 6, 8, 10, 11].iter().fold(0, |acc, op| acc | (1 << op))
}

pub async fn handle(
    broker: Arc<Broker>,
    request: DescribeGroupsRequest,
    ctx: RequestContext,
) -> Reply {
    let version = ctx.api_version;
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let described = DescribedGroup::default().with_group_id(id.clone());
            if let Err(e) = broker.groups.owns(&id.0) {
                return described.with_error_code(e);
            }
            let Some(d) = broker.groups.describe(&id.0) else {
                let mut dead = described.with_group_state(str_bytes("Dead"));
                if version >= 6 {
                    dead.error_code = code::GROUP_ID_NOT_FOUND;
                    dead.error_message = Some(str_bytes(format!("Group {} not found.", &*id.0)));
                }
                return dead;
            };
            let members = d
                .members
                .into_iter()
                .map(
                    |(member_id, instance, client_id, host, metadata, assignment)| {
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(member_id))
                            .with_group_instance_id(instance.map(str_bytes))
                            .with_client_id(str_bytes(client_id))
                            .with_client_host(str_bytes(host))
                            .with_member_metadata(metadata)
                            .with_member_assignment(assignment)
                    },
                )
                .collect();
            let ops = if version >= 3 && request.include_authorized_operations {
                group_operations()
            } else {
                OPERATIONS_NOT_REQUESTED
            };
            described
                .with_group_state(str_bytes(d.state.name()))
                .with_protocol_type(str_bytes(d.protocol_type))
                .with_protocol_data(str_bytes(d.protocol_name))
                .with_members(members)
                .with_authorized_operations(ops)
        })
        .collect();
    Reply::ready(ResponseKind::DescribeGroups(
        DescribeGroupsResponse::default().with_groups(groups),
    ))
}

//! ListGroups, with the state (v4+) and type (v5+) filters.

use crate::broker::Broker;
use crate::handlers::str_bytes;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, ResponseKind};
use std::sync::Arc;

pub async fn handle(broker: Arc<Broker>, request: ListGroupsRequest, ctx: RequestContext) -> Reply {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|(_, _, state)| {
            states.is_empty() || states.contains(&state.name().to_ascii_lowercase())
        })
        // Every group here is a classic group.
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|(id, protocol_type, state)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_protocol_type(str_bytes(protocol_type));
            if ctx.api_version >= 4 {
                g.group_state = str_bytes(state.name());
            }
            if ctx.api_version >= 5 {
                g.group_type = str_bytes("classic");
            }
            g
        })
        .collect();
    Reply::ready(ResponseKind::ListGroups(
        ListGroupsResponse::default().with_groups(groups),
    ))
}

//! DeleteGroups: empty groups go, with their committed offsets.

use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, ResponseKind};
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: DeleteGroupsRequest,
    _ctx: RequestContext,
) -> Reply {
    let mut ids: Vec<String> = Vec::new();
    for g in &request.groups_names {
        if !ids.iter().any(|i| *i == *g.0) {
            ids.push(g.0.to_string());
        }
    }
    let errors = broker.groups.delete_groups(&ids);
    let results = request
        .groups_names
        .iter()
        .filter_map(|g| ids.iter().position(|i| *i == *g.0).map(|at| (g, at)))
        .map(|(g, at)| {
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(errors[at])
        })
        .collect::<Vec<_>>();
    let mut seen = std::collections::HashSet::new();
    let results = results
        .into_iter()
        .filter(|r| seen.insert(r.group_id.0.clone()))
        .collect();
    Reply::ready(ResponseKind::DeleteGroups(
        DeleteGroupsResponse::default().with_results(results),
    ))
}

//! OffsetDelete: committed offsets of topics the group no longer consumes.

use crate::broker::Broker;
use crate::group::code;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, ResponseKind};
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: OffsetDeleteRequest,
    _ctx: RequestContext,
) -> Reply {
    let wanted: Vec<(String, Vec<i32>)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let (error, per_topic) = broker.groups.delete_offsets(&request.group_id.0, &wanted);
    let mut response = OffsetDeleteResponse::default().with_error_code(error);
    if error == code::NONE {
        response.topics = request
            .topics
            .iter()
            .zip(per_topic)
            .map(|(t, errors)| {
                let partitions = t
                    .partitions
                    .iter()
                    .zip(errors)
                    .map(|(p, e)| {
                        let exists = broker
                            .topics
                            .partition(&t.name.0, p.partition_index)
                            .is_some();
                        let e = if exists {
                            e
                        } else {
                            code::UNKNOWN_TOPIC_OR_PARTITION
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(e)
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
    }
    Reply::ready(ResponseKind::OffsetDelete(response))
}

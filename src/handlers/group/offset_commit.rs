//! OffsetCommit: offsets of existing partitions are validated against the group and written
//! to the offsets topic; in durable mode the answer waits for them to be fsynced.

use crate::broker::Broker;
use crate::group::code;
use crate::group::offsets::CommitRequest;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, ResponseKind};
use std::sync::Arc;

pub async fn handle(
    broker: Arc<Broker>,
    request: OffsetCommitRequest,
    ctx: RequestContext,
) -> Reply {
    // Partitions that do not exist are answered here; the rest go to the coordinator.
    let mut known = Vec::new();
    let mut results: Vec<Vec<(i32, Option<i16>)>> = Vec::new();
    for t in &request.topics {
        let mut per_partition = Vec::new();
        for p in &t.partitions {
            if broker
                .topics
                .partition(&t.name.0, p.partition_index)
                .is_some()
            {
                let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
                known.push((
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    metadata,
                ));
                per_partition.push((p.partition_index, None));
            } else {
                per_partition.push((p.partition_index, Some(code::UNKNOWN_TOPIC_OR_PARTITION)));
            }
        }
        results.push(per_partition);
    }
    let commit = CommitRequest {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        retention_ms: if ctx.api_version <= 4 {
            request.retention_time_ms
        } else {
            -1
        },
        offsets: known,
        version: ctx.api_version,
    };
    let outcome = if commit.offsets.is_empty() {
        crate::group::offsets::CommitResult {
            errors: Vec::new(),
            durable: None,
        }
    } else {
        broker.groups.commit(commit)
    };
    let mut coordinator_errors = outcome.errors.into_iter();
    let errors: Vec<i16> = results
        .into_iter()
        .flatten()
        .map(|(_, early)| early.unwrap_or_else(|| coordinator_errors.next().unwrap_or(code::NONE)))
        .collect();
    super::after_sync(&broker, outcome.durable, errors, move |errors| {
        let mut errors = errors.into_iter();
        let topics = request
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(errors.next().unwrap_or(code::NONE))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
    })
}

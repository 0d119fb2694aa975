//! AlterPartitionReassignments: starts, replaces or cancels (null replicas) the reassignment of
//! each named partition by proposing one `Reassign` command per partition to the metadata
//! quorum, as Kafka's controller does. The rules (adding and removing replicas, completion once
//! every target is in sync, cancellation) are the quorum's, in `cluster/election.rs`; this node
//! then follows them like any metadata change (the reconciler opens and removes replicas).
//!
//! Each partition gets its own error code: UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT
//! (empty target, a node twice, an unregistered node), NO_REASSIGNMENT_IN_PROGRESS (cancelling
//! nothing), INVALID_REPLICATION_FACTOR (v1 with `allow_replication_factor_change` false and a
//! target of another size), REQUEST_TIMED_OUT (no answer from the quorum within the request's
//! timeout; the change may still be applied).

use super::str_bytes;
use crate::broker::Broker;
use crate::cluster::{MetadataCommand, MetadataResponse};
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId, ResponseKind,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// One partition's change, as the request names it.
struct Change {
    topic: String,
    partition: i32,
    target: Option<Vec<u64>>,
    keep_replication_factor: bool,
}

pub async fn handle(
    broker: Arc<Broker>,
    request: AlterPartitionReassignmentsRequest,
    ctx: RequestContext,
) -> Reply {
    // v0 has no such field: the replication factor may change, as before KIP-860.
    let allow_rf_change = ctx.api_version < 1 || request.allow_replication_factor_change;
    let deadline = Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    Reply::Deferred(Box::pin(async move {
        let mut responses = Vec::new();
        for topic in request.topics {
            let name = topic.name.0.to_string();
            let mut partitions = Vec::new();
            for p in topic.partitions {
                let (code, message) = match node_ids(p.replicas.as_deref()) {
                    Ok(target) => {
                        let change = Change {
                            topic: name.clone(),
                            partition: p.partition_index,
                            target,
                            keep_replication_factor: !allow_rf_change,
                        };
                        reassign(&broker, change, deadline).await
                    }
                    Err(message) => (Some(ResponseError::InvalidReplicaAssignment), Some(message)),
                };
                partitions.push(
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(errors::code(code))
                        .with_error_message(message.map(str_bytes)),
                );
            }
            responses.push(
                ReassignableTopicResponse::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        let response = AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(allow_rf_change)
            .with_responses(responses);
        ResponseKind::AlterPartitionReassignments(response)
    }))
}

/// Proposes one partition's change and waits (until `deadline`) for this node to apply it, so a
/// ListPartitionReassignments sent here next sees it.
async fn reassign(
    broker: &Broker,
    change: Change,
    deadline: Instant,
) -> (Option<ResponseError>, Option<String>) {
    let seen_epoch = broker
        .image()
        .partition(&change.topic, change.partition)
        .map(|p| p.partition_epoch);
    let (topic, partition) = (change.topic.clone(), change.partition);
    let command = MetadataCommand::Reassign {
        topic: change.topic,
        partition: change.partition,
        target: change.target,
        keep_replication_factor: change.keep_replication_factor,
    };
    let proposed =
        tokio::time::timeout_at(deadline, broker.replication.controller().propose(command)).await;
    match proposed.map(|r| r.map(MetadataResponse::into_result)) {
        Err(_) => (
            Some(ResponseError::RequestTimedOut),
            Some(format!(
                "partition {topic}-{partition}: the quorum did not answer within the request timeout"
            )),
        ),
        Ok(Err(e)) => (Some(errors::quorum(&e)), Some(e.to_string())),
        Ok(Ok(Err(r))) => (Some(errors::rejection(&r)), Some(r.to_string())),
        Ok(Ok(Ok(()))) => {
            let mut applied = broker.replication.reconciled();
            let newer = |image: &Arc<crate::cluster::MetadataImage>| {
                let epoch = image.partition(&topic, partition).map(|p| p.partition_epoch);
                epoch.is_none() || epoch > seen_epoch
            };
            // Committed is what the client is told; applying here is only waited for briefly.
            let _ = tokio::time::timeout_at(deadline, applied.wait_for(newer)).await;
            (None, None)
        }
    }
}

/// The target as quorum node ids (unsigned); Kafka's broker ids are `int32`.
fn node_ids(replicas: Option<&[BrokerId]>) -> Result<Option<Vec<u64>>, String> {
    let Some(replicas) = replicas else {
        return Ok(None);
    };
    replicas
        .iter()
        .map(|id| u64::try_from(id.0).map_err(|_| format!("replica id {} is negative", id.0)))
        .collect::<Result<Vec<u64>, String>>()
        .map(Some)
}

//! ElectLeaders: a preferred election moves a partition's leadership to its first replica when
//! that replica is live and in sync (the quorum's `ElectPreferred` rule). Unclean elections are
//! not offered: a partition with a leader answers ELECTION_NOT_NEEDED, one without
//! ELIGIBLE_LEADERS_NOT_AVAILABLE. A request for all partitions (null) runs a preferred election
//! wherever the first replica does not lead, and reports those.

use super::str_bytes;
use crate::broker::Broker;
use crate::cluster::MetadataCommand;
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    ElectLeadersRequest, ElectLeadersResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;
use std::collections::BTreeMap;
use std::sync::Arc;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub async fn handle(
    broker: Arc<Broker>,
    request: ElectLeadersRequest,
    ctx: RequestContext,
) -> Reply {
    let mut response = ElectLeadersResponse::default();
    if !matches!(request.election_type, PREFERRED | UNCLEAN) {
        if ctx.api_version >= 1 {
            response.error_code = ResponseError::InvalidRequest.code();
        }
        return Reply::ready(ResponseKind::ElectLeaders(response));
    }
    let image = broker.image();
    let wanted: BTreeMap<String, Vec<i32>> = match &request.topic_partitions {
        Some(list) => list
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect(),
        None => image
            .topics
            .iter()
            .map(|(name, t)| {
                let due = t
                    .partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.leader != p.replicas.first().copied())
                    .map(|(i, _)| i as i32)
                    .collect();
                (name.clone(), due)
            })
            .filter(|(_, due): &(String, Vec<i32>)| !due.is_empty())
            .collect(),
    };
    let unclean = request.election_type == UNCLEAN;
    Reply::Deferred(Box::pin(async move {
        let mut results = Vec::new();
        for (topic, partitions) in wanted {
            let mut partition_result = Vec::new();
            for p in partitions {
                let (code, message) = elect(&broker, &topic, p, unclean).await;
                partition_result.push(
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code.map_or(0, |c| c.code()))
                        .with_error_message(message.map(str_bytes)),
                );
            }
            results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(partition_result),
            );
        }
        response.replica_election_results = results;
        ResponseKind::ElectLeaders(response)
    }))
}

async fn elect(
    broker: &Broker,
    topic: &str,
    partition: i32,
    unclean: bool,
) -> (Option<ResponseError>, Option<String>) {
    let image = broker.image();
    let Some(current) = image.partition(topic, partition) else {
        return (
            Some(ResponseError::UnknownTopicOrPartition),
            Some(format!("Partition {topic}-{partition} does not exist")),
        );
    };
    if unclean {
        return match current.leader {
            Some(_) => (
                Some(ResponseError::ElectionNotNeeded),
                Some("Leader election not needed for topic partition".into()),
            ),
            None => (
                Some(ResponseError::EligibleLeadersNotAvailable),
                Some("unclean leader election is not offered by spool".into()),
            ),
        };
    }
    let command = MetadataCommand::ElectPreferred {
        topic: topic.to_string(),
        partition,
    };
    match broker.replication.controller().propose(command).await {
        Ok(answer) => match answer.into_result() {
            Ok(()) => (None, None),
            Err(r) => (Some(errors::rejection(&r)), Some(r.to_string())),
        },
        Err(e) => (Some(errors::quorum(&e)), Some(e.to_string())),
    }
}

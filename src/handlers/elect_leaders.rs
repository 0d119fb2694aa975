//! ElectLeaders: on one node every partition is already led by its preferred (and only)
//! replica, so an election is never needed: named partitions answer ELECTION_NOT_NEEDED, and
//! a request for all partitions has nothing to report, as Kafka answers when no election ran.

use super::str_bytes;
use crate::broker::Broker;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, ResponseKind};
use kafka_protocol::ResponseError;
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
    response.replica_election_results = request
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            let partition_result = t
                .partitions
                .iter()
                .map(|p| {
                    let r = PartitionResult::default().with_partition_id(*p);
                    if broker.topics.partition(&t.topic.0, *p).is_none() {
                        r.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(format!(
                                "Partition {}-{p} does not exist",
                                &*t.topic.0
                            ))))
                    } else {
                        r.with_error_code(ResponseError::ElectionNotNeeded.code())
                            .with_error_message(Some(str_bytes(
                                "Leader election not needed for topic partition",
                            )))
                    }
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic.clone())
                .with_partition_result(partition_result)
        })
        .collect();
    Reply::ready(ResponseKind::ElectLeaders(response))
}

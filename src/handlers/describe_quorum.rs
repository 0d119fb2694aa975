//! DescribeQuorum (Kafka's `kafka-metadata-quorum describe --status/--replication`): the state
//! of the metadata quorum's log, `__cluster_metadata` partition 0, as its leader reports it. A
//! node that does not lead the quorum forwards the request to the one that does, as a Kafka
//! broker forwards it to the active controller; a forwarded request is answered where it lands.

use super::str_bytes;
use crate::broker::Broker;
use crate::cluster::quorum::{QuorumView, ReplicaView};
use crate::protocol::routes::{Reply, RequestContext};
use crate::replication::client::Client;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;

/// The metadata log, as Kafka names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The client id of a forwarded request; such a request is never forwarded again.
const FORWARDED: &str = "spool-quorum-forward";
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn handle(
    broker: Arc<Broker>,
    request: DescribeQuorumRequest,
    ctx: RequestContext,
) -> Reply {
    let version = ctx.api_version;
    let asks_for_the_log = matches!(request.topics.as_slice(),
        [t] if t.topic_name.as_str() == METADATA_TOPIC
            && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0));
    if !asks_for_the_log {
        return Reply::ready(ResponseKind::DescribeQuorum(partition_error(
            &request,
            ResponseError::UnknownTopicOrPartition,
        )));
    }
    let view = broker.replication.controller().quorum();
    if view.is_leader {
        return Reply::ready(ResponseKind::DescribeQuorum(describe(
            &broker, &view, version,
        )));
    }
    let forwarded = ctx.client_id.as_deref() == Some(FORWARDED);
    let leader_addr = view.leader.and_then(|l| {
        broker
            .image()
            .nodes
            .get(&l)
            .map(|n| format!("{}:{}", n.host, n.port))
    });
    match leader_addr {
        Some(addr) if !forwarded => Reply::Deferred(Box::pin(async move {
            match forward(&broker, &addr, &request, version).await {
                Ok(response) => ResponseKind::DescribeQuorum(response),
                Err(e) => {
                    crate::warn_limited!(leader = %addr, error = %e, "cannot forward DescribeQuorum");
                    ResponseKind::DescribeQuorum(not_leader())
                }
            }
        })),
        _ => Reply::ready(ResponseKind::DescribeQuorum(not_leader())),
    }
}

async fn forward(
    broker: &Broker,
    addr: &str,
    request: &DescribeQuorumRequest,
    version: i16,
) -> Result<DescribeQuorumResponse, crate::replication::client::ClientError> {
    let source = broker.replication.source();
    let mut client = Client::connect(addr, source, FORWARDED, 1 << 20, FORWARD_TIMEOUT).await?;
    client.call(request, version, FORWARD_TIMEOUT).await
}

/// Kafka's answer from a node that is not the quorum leader.
fn not_leader() -> DescribeQuorumResponse {
    single(
        PartitionData::default()
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_leader_id(BrokerId(-1))
            .with_leader_epoch(-1)
            .with_high_watermark(-1),
    )
}

fn single(partition: PartitionData) -> DescribeQuorumResponse {
    DescribeQuorumResponse::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
        .with_partitions(vec![partition.with_partition_index(0)])])
}

/// Every partition asked for, with `error`.
fn partition_error(
    request: &DescribeQuorumRequest,
    error: ResponseError,
) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            TopicData::default()
                .with_topic_name(t.topic_name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error.code())
                                .with_leader_id(BrokerId(-1))
                                .with_leader_epoch(-1)
                                .with_high_watermark(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}

fn replica_state(r: &ReplicaView) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(r.node_id as i32))
        .with_log_end_offset(r.log_end_offset)
        .with_last_fetch_timestamp(r.last_fetch_ms)
        .with_last_caught_up_timestamp(r.last_caught_up_ms)
}

fn describe(broker: &Broker, view: &QuorumView, version: i16) -> DescribeQuorumResponse {
    let partition = PartitionData::default()
        .with_leader_id(BrokerId(view.leader.map_or(-1, |l| l as i32)))
        .with_leader_epoch(view.term as i32)
        .with_high_watermark(view.high_watermark)
        .with_current_voters(view.voters.iter().map(replica_state).collect())
        .with_observers(view.observers.iter().map(replica_state).collect());
    let mut response = single(partition);
    if version >= 2 {
        // Each voter's controller listener, as the quorum membership knows it.
        let raft = broker
            .replication
            .controller()
            .raft()
            .metrics()
            .borrow()
            .clone();
        let name = broker
            .config
            .controller_listener_names
            .split(',')
            .map(str::trim)
            .find(|n| !n.is_empty())
            .unwrap_or("CONTROLLER")
            .to_string();
        response.nodes = view
            .voters
            .iter()
            .filter_map(|v| {
                let node = raft.membership_config.membership().get_node(&v.node_id)?;
                let (host, port) = node.addr.rsplit_once(':')?;
                let listener = Listener::default()
                    .with_name(str_bytes(name.clone()))
                    .with_host(str_bytes(
                        host.trim_start_matches('[').trim_end_matches(']'),
                    ))
                    .with_port(port.parse().ok()?);
                Some(
                    Node::default()
                        .with_node_id(BrokerId(v.node_id as i32))
                        .with_listeners(vec![listener]),
                )
            })
            .collect();
    }
    response
}

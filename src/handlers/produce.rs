//! Produce: each partition's batch is appended as leader and gets its own error code; the
//! request as a whole succeeds. acks=0 writes no response. acks=-1 is refused with
//! NOT_ENOUGH_REPLICAS while the ISR is smaller than `min.insync.replicas`, and answers once
//! the high watermark passes the batch (every ISR member has it), and, in durable mode, once the
//! leader's copy is fsynced (group commit in `Partition::flush_to`). A node that does not lead a
//! partition answers NOT_LEADER_OR_FOLLOWER with the leader it knows (KIP-951).

use super::str_bytes;
use crate::broker::Broker;
use crate::config::FlushMode;
use crate::partition::{Appended, Partition, PartitionError};
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{
    BrokerId, ProduceRequest, ProduceResponse, ResponseKind, TopicName,
};
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;

/// One partition's outcome, and the offset it must be replicated (and, in durable mode, synced)
/// up to before acks=-1 answers, with the ISR size it needs.
struct Outcome {
    response: PartitionProduceResponse,
    durable: Option<(Arc<Partition>, i64, usize)>,
}

pub async fn handle(broker: Arc<Broker>, request: ProduceRequest, ctx: RequestContext) -> Reply {
    let acks = request.acks;
    let by_id = ctx.api_version >= 13;
    let version = ctx.api_version;
    let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for t in request.topic_data {
        let txn_id = request.transactional_id.as_deref().map(|id| &**id);
        let outcomes: Vec<Outcome> = produce_topic(&broker, &t, acks, by_id, txn_id);
        topics.push((t.name, t.topic_id, outcomes));
    }
    if acks == 0 {
        return Reply::Nothing;
    }
    let sync = broker.config.flush_mode == FlushMode::Durable;
    let listener = ctx.listener.clone();
    let assemble = move |broker: &Broker, topics: Vec<(TopicName, uuid::Uuid, Vec<Outcome>)>| {
        let responses: Vec<TopicProduceResponse> = topics
            .into_iter()
            .map(|(name, id, outcomes)| {
                let partitions = outcomes
                    .into_iter()
                    .map(|o| with_leader(broker, &name.0, o.response))
                    .collect();
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(id)
                    .with_partition_responses(partitions)
            })
            .collect();
        let mut response = ProduceResponse::default().with_responses(responses);
        if version >= 10 {
            response.node_endpoints = leader_endpoints(broker, &listener, &response);
        }
        ResponseKind::Produce(response)
    };
    let waits = acks == -1
        && topics
            .iter()
            .any(|(_, _, outcomes)| outcomes.iter().any(|o| o.durable.is_some()));
    if !waits {
        return Reply::ready(assemble(&broker, topics));
    }
    Reply::Deferred(Box::pin(async move {
        let _waiting = crate::metrics::metrics().waiting("Produce");
        for (_, _, outcomes) in topics.iter_mut() {
            for o in outcomes.iter_mut() {
                let Some((partition, offset, min_isr)) = o.durable.take() else {
                    continue;
                };
                let replicated = partition.wait_for_isr(offset, min_isr, timeout).await;
                let synced = match replicated {
                    Ok(()) if sync => partition.flush_to(offset).await,
                    other => other,
                };
                if let Err(e) = synced {
                    fail(&mut o.response, &e);
                }
            }
        }
        assemble(&broker, topics)
    }))
}

/// KIP-951: a partition refused for leadership names the leader this node knows.
fn with_leader(
    broker: &Broker,
    topic: &str,
    mut response: PartitionProduceResponse,
) -> PartitionProduceResponse {
    if response.error_code == ResponseError::NotLeaderOrFollower.code() {
        if let Some(p) = broker.image().partition(topic, response.index) {
            response.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(p.leader.map_or(-1, |l| l as i32)))
                .with_leader_epoch(p.leader_epoch);
        }
    }
    response
}

/// The endpoints of the leaders named in the response (KIP-951, v10+).
fn leader_endpoints(
    broker: &Broker,
    listener: &str,
    response: &ProduceResponse,
) -> Vec<NodeEndpoint> {
    let leaders = response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .map(|p| p.current_leader.leader_id.0);
    super::cluster_view::endpoints_of(&broker.image(), listener, leaders)
        .into_iter()
        .map(|(id, host, port)| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port)
        })
        .collect()
}

fn produce_topic(
    broker: &Broker,
    t: &TopicProduceData,
    acks: i16,
    by_id: bool,
    txn_id: Option<&str>,
) -> Vec<Outcome> {
    let found = if by_id {
        broker.topics.get_by_id(t.topic_id)
    } else {
        broker.topics.get(&t.name.0)
    };
    let unknown = if by_id {
        ResponseError::UnknownTopicId
    } else {
        ResponseError::UnknownTopicOrPartition
    };
    let min_isr = found
        .as_ref()
        .and_then(|topic| {
            broker
                .topics
                .effective(topic, "min.insync.replicas")
                .and_then(|v| v.parse::<usize>().ok())
        })
        .unwrap_or(1);
    // Internal topics are written by their coordinators only, as in Kafka.
    let internal = found.as_ref().is_some_and(|topic| topic.is_internal());
    t.partition_data
        .iter()
        .map(|p| {
            let error = |code: ResponseError, message: Option<String>| Outcome {
                response: PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_error_code(code.code())
                    .with_error_message(message.map(str_bytes)),
                durable: None,
            };
            if !matches!(acks, -1..=1) {
                return error(ResponseError::InvalidRequiredAcks, None);
            }
            if internal {
                let message = format!("cannot append to internal topic {}", t.name.0);
                return error(ResponseError::InvalidTopicException, Some(message));
            }
            let Some(topic) = found.as_ref() else {
                return error(unknown, None);
            };
            let Some(partition) = topic.partition(p.index).cloned() else {
                if let Some(why) = topic.offline.get(&p.index) {
                    return error(ResponseError::KafkaStorageError, Some(why.clone()));
                }
                return match p.index < topic.partition_count() && p.index >= 0 {
                    true => error(ResponseError::NotLeaderOrFollower, None),
                    false => error(ResponseError::UnknownTopicOrPartition, None),
                };
            };
            if acks == -1 {
                if let Err(e) = partition.check_min_isr(min_isr) {
                    return error(errors::partition(&e), Some(e.to_string()));
                }
            }
            append(broker, partition, p, min_isr, txn_id)
        })
        .collect()
}

fn append(
    broker: &Broker,
    partition: Arc<Partition>,
    p: &PartitionProduceData,
    min_isr: usize,
    txn_id: Option<&str>,
) -> Outcome {
    let mut response = PartitionProduceResponse::default().with_index(p.index);
    let Some(records) = &p.records else {
        response.error_code = ResponseError::InvalidRecord.code();
        return Outcome {
            response,
            durable: None,
        };
    };
    let refuse = |mut response: PartitionProduceResponse, code: i16, message: String| {
        response.error_code = code;
        response.error_message = Some(str_bytes(message));
        response.base_offset = -1;
        Outcome {
            response,
            durable: None,
        }
    };
    if crate::log::batch::batches(records).any(|(_, h)| h.is_control()) {
        let message = "control batches are written by the transaction coordinator only".into();
        return refuse(response, ResponseError::InvalidRecord.code(), message);
    }
    // KIP-890: the first transactional write of a producer to a partition must belong to a
    // transaction the coordinator knows this partition is part of. Checked when this node is
    // the transactional id's coordinator; a coordinator on another node is not asked (as in
    // Kafka before KIP-890).
    let local_coordinator = txn_id.is_none_or(|id| broker.txns.owns(id).is_ok());
    if let Some(probe) = partition.txn_probe(records).filter(|_| local_coordinator) {
        if !probe.in_transaction {
            if let Err(code) = broker
                .txns
                .verify(probe.producer_id, probe.epoch, partition.tp())
            {
                let message = format!(
                    "producer {} epoch {} has no ongoing transaction including {}",
                    probe.producer_id,
                    probe.epoch,
                    partition.tp()
                );
                return refuse(response, code, message);
            }
        }
    }
    match partition.append_as_leader(records) {
        Ok(Appended {
            info,
            log_start_offset,
            duplicate,
        }) => {
            response.base_offset = info.base_offset;
            response.log_append_time_ms = info.log_append_time;
            response.log_start_offset = log_start_offset;
            if !duplicate {
                broker.after_append(&partition);
                let count = (info.last_offset - info.base_offset + 1).max(0) as u64;
                crate::metrics::metrics().produced(
                    &partition.tp().topic,
                    count,
                    records.len() as u64,
                );
            }
            Outcome {
                response,
                durable: Some((partition, info.last_offset + 1, min_isr)),
            }
        }
        Err(e) => {
            if matches!(
                e,
                PartitionError::Log { .. } | PartitionError::NotOneBatch { .. }
            ) {
                tracing::debug!(error = %e, "produce refused");
            }
            fail(&mut response, &e);
            Outcome {
                response,
                durable: None,
            }
        }
    }
}

fn fail(response: &mut PartitionProduceResponse, e: &PartitionError) {
    response.error_code = errors::partition(e).code();
    response.error_message = Some(str_bytes(e.to_string()));
    response.base_offset = -1;
}

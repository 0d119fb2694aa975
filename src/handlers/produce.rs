//! Produce: each partition's batch is appended as leader and gets its own error code; the
//! request as a whole succeeds. acks=0 writes no response; acks=-1 in durable mode answers only
//! after the records are fsynced (group commit in `Partition::flush_to`).

use super::str_bytes;
use crate::broker::Broker;
use crate::config::FlushMode;
use crate::partition::{Appended, Partition, PartitionError};
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::ResponseError;
use std::sync::Arc;

/// One partition's outcome, and the offset it must be durable up to before acks=-1 answers.
struct Outcome {
    response: PartitionProduceResponse,
    durable: Option<(Arc<Partition>, i64)>,
}

pub async fn handle(broker: Arc<Broker>, request: ProduceRequest, ctx: RequestContext) -> Reply {
    let acks = request.acks;
    let by_id = ctx.api_version >= 13;
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for t in request.topic_data {
        let outcomes: Vec<Outcome> = produce_topic(&broker, &t, acks, by_id);
        topics.push((t.name, t.topic_id, outcomes));
    }
    if acks == 0 {
        return Reply::Nothing;
    }
    let wait_for_sync = acks == -1 && broker.config.flush_mode == FlushMode::Durable;
    let assemble = |topics: Vec<(_, _, Vec<Outcome>)>| {
        let responses = topics
            .into_iter()
            .map(|(name, id, outcomes)| {
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_topic_id(id)
                    .with_partition_responses(outcomes.into_iter().map(|o| o.response).collect())
            })
            .collect();
        ResponseKind::Produce(ProduceResponse::default().with_responses(responses))
    };
    if !wait_for_sync {
        return Reply::ready(assemble(topics));
    }
    Reply::Deferred(Box::pin(async move {
        for (_, _, outcomes) in topics.iter_mut() {
            for o in outcomes.iter_mut() {
                if let Some((partition, offset)) = o.durable.take() {
                    if let Err(e) = partition.flush_to(offset).await {
                        fail(&mut o.response, &e);
                    }
                }
            }
        }
        assemble(topics)
    }))
}

fn produce_topic(broker: &Broker, t: &TopicProduceData, acks: i16, by_id: bool) -> Vec<Outcome> {
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
    let min_isr = found.as_ref().and_then(|topic| {
        broker
            .topics
            .effective(topic, "min.insync.replicas")
            .and_then(|v| v.parse::<i32>().ok())
    });
    // Internal topics are written by their coordinators only, as in Kafka.
    let internal = found.as_ref().is_some_and(|topic| {
        topic.name == crate::group::store::OFFSETS_TOPIC
            || topic.name == crate::txn::store::TXN_TOPIC
    });
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
            let Some(partition) = found
                .as_ref()
                .and_then(|topic| broker.topics.partition(&topic.name, p.index))
            else {
                return error(unknown, None);
            };
            // One node is the whole ISR.
            if acks == -1 && min_isr.is_some_and(|m| m > 1) {
                let message = format!(
                    "min.insync.replicas is {} but the ISR has 1 replica",
                    min_isr.unwrap_or(1)
                );
                return error(ResponseError::NotEnoughReplicas, Some(message));
            }
            append(broker, partition, p)
        })
        .collect()
}

fn append(broker: &Broker, partition: Arc<Partition>, p: &PartitionProduceData) -> Outcome {
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
    // transaction the coordinator knows this partition is part of.
    if let Some(probe) = partition.txn_probe(records) {
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
            }
            Outcome {
                response,
                durable: Some((partition, info.last_offset + 1)),
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

//! Fetch: whole batches from each partition up to its high watermark (read_uncommitted) or its
//! last stable offset (read_committed, with the aborted transactions among the records returned,
//! from the segments' transaction indexes), within the partition and response byte limits,
//! the first batch always whole. When fewer than `min_bytes` are ready, the request waits on
//! the partitions' append notifications, up to `max_wait_ms`; it never polls.
//!
//! Only a partition's leader answers. A fetch with a replica id is a follower's: it reads up to
//! the log end, its fetch offset is the follower's log end offset (which moves the ISR and the
//! high watermark), and when the follower's last fetched epoch shows its log diverged from this
//! one, the answer is the diverging epoch and its end offset instead of records (KIP-320). A
//! node that does not lead answers NOT_LEADER_OR_FOLLOWER with the leader it knows (KIP-951).

use crate::broker::Broker;
use crate::partition::{Isolation, Partition, PartitionError};
use crate::protocol::errors;
use crate::protocol::routes::{Reply, RequestContext};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData,
};
use kafka_protocol::messages::{BrokerId, ProducerId};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind, TopicName};
use kafka_protocol::ResponseError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved.
struct Wanted {
    topic: usize,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    /// This node's replica, or why there is none here: the topic is unknown, the partition
    /// does not exist, or another node holds it.
    found: Result<Arc<Partition>, ResponseError>,
}

/// The request, resolved once and re-read on each wake-up.
struct Plan {
    topics: Vec<(TopicName, uuid::Uuid)>,
    wanted: Vec<Wanted>,
    max_bytes: usize,
    read_committed: bool,
    /// The follower fetching, for a replica's fetch.
    replica: Option<u64>,
    /// The listener the request came in on (whose addresses `node_endpoints` gives).
    listener: Arc<str>,
}

pub async fn handle(broker: Arc<Broker>, request: FetchRequest, ctx: RequestContext) -> Reply {
    if request.session_id != 0 && request.session_epoch > 0 {
        // Fetch sessions are not kept: tell the client to start over with full requests.
        let response =
            FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
        return Reply::ready(ResponseKind::Fetch(response));
    }
    let replica_id = if ctx.api_version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    // The response limit: the request's (v3+; older requests have none) within the broker's
    // `fetch_max_bytes`, as Kafka bounds it.
    let max_bytes = if ctx.api_version >= 3 {
        request.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let mut plan = resolve(
        &broker,
        request.topics,
        ctx.api_version >= 13,
        max_bytes.min(broker.config.fetch_max_bytes),
        request.isolation_level,
    );
    plan.replica = u64::try_from(replica_id).ok();
    plan.listener = ctx.listener.clone();
    let version = ctx.api_version;
    let (response, bytes) = read(&broker, &plan, version);
    let min_bytes = request.min_bytes.max(0) as usize;
    if bytes >= min_bytes || request.max_wait_ms <= 0 || has_error(&response) {
        return Reply::ready(ResponseKind::Fetch(sent(&plan, response)));
    }
    let wait = Duration::from_millis(request.max_wait_ms as u64);
    Reply::Deferred(Box::pin(async move {
        let _waiting = crate::metrics::metrics().waiting("Fetch");
        let deadline = tokio::time::Instant::now() + wait;
        let notify = Arc::new(Notify::new());
        loop {
            for p in plan.wanted.iter().filter_map(|w| w.found.as_ref().ok()) {
                p.register_waiter(&notify);
            }
            let (response, bytes) = read(&broker, &plan, version);
            if bytes >= min_bytes || tokio::time::Instant::now() >= deadline {
                return ResponseKind::Fetch(sent(&plan, response));
            }
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = broker.shutdown.cancelled() => {}
            }
            if broker.shutdown.is_cancelled() {
                return ResponseKind::Fetch(sent(&plan, read(&broker, &plan, version).0));
            }
        }
    }))
}

/// Counts the record bytes of the response about to be sent (to a consumer, or to a follower).
fn sent(plan: &Plan, response: FetchResponse) -> FetchResponse {
    let metrics = crate::metrics::metrics();
    for (i, t) in response.responses.iter().enumerate() {
        let bytes: usize = t
            .partitions
            .iter()
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum();
        // The name from the partition found (a request by topic id carries none).
        let name = plan
            .wanted
            .iter()
            .filter(|w| w.topic == i)
            .find_map(|w| w.found.as_ref().ok());
        if let (true, Some(p)) = (bytes > 0, name) {
            metrics.fetched(&p.tp().topic, bytes as u64, plan.replica.is_some());
        }
    }
    response
}

fn resolve(
    broker: &Broker,
    topics: Vec<kafka_protocol::messages::fetch_request::FetchTopic>,
    by_id: bool,
    max_bytes: usize,
    isolation_level: i8,
) -> Plan {
    let mut plan = Plan {
        topics: Vec::new(),
        wanted: Vec::new(),
        max_bytes,
        read_committed: isolation_level == READ_COMMITTED,
        replica: None,
        listener: Arc::from(""),
    };
    for (i, t) in topics.into_iter().enumerate() {
        let topic = if by_id {
            broker.topics.get_by_id(t.topic_id)
        } else {
            broker.topics.get(&t.topic.0)
        };
        for p in t.partitions {
            let found = match (&topic, by_id) {
                (Some(t), _) => {
                    t.partition(p.partition)
                        .cloned()
                        .ok_or(if t.is_offline(p.partition) {
                            ResponseError::KafkaStorageError
                        } else if p.partition >= 0 && p.partition < t.partition_count() {
                            ResponseError::NotLeaderOrFollower
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        })
                }
                (None, true) => Err(ResponseError::UnknownTopicId),
                (None, false) => Err(ResponseError::UnknownTopicOrPartition),
            };
            plan.wanted.push(Wanted {
                topic: i,
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
                found,
            });
        }
        plan.topics.push((t.topic, t.topic_id));
    }
    plan
}

/// Reads every wanted partition once; returns the response and the record bytes in it.
fn read(broker: &Broker, plan: &Plan, version: i16) -> (FetchResponse, usize) {
    let mut responses: Vec<FetchableTopicResponse> = plan
        .topics
        .iter()
        .map(|(name, id)| {
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_topic_id(*id)
        })
        .collect();
    let mut total = 0usize;
    for w in &plan.wanted {
        let budget = plan.max_bytes.saturating_sub(total);
        let mut data = read_partition(broker, w, plan, budget, total == 0);
        if data.error_code == ResponseError::NotLeaderOrFollower.code()
            || data.error_code == ResponseError::FencedLeaderEpoch.code()
        {
            data.current_leader = current_leader(broker, plan, w);
        }
        total += data.records.as_ref().map_or(0, |r| r.len());
        responses[w.topic].partitions.push(data);
    }
    let mut response = FetchResponse::default().with_responses(responses);
    if version >= 16 {
        response.node_endpoints = leader_endpoints(broker, &plan.listener, &response);
    }
    (response, total)
}

/// The leader this node knows for a partition it cannot serve (KIP-951).
fn current_leader(broker: &Broker, plan: &Plan, w: &Wanted) -> LeaderIdAndEpoch {
    let image = broker.image();
    let name = &plan.topics[w.topic].0;
    match image.partition(&name.0, w.partition) {
        Some(p) => LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(p.leader.map_or(-1, |l| l as i32)))
            .with_leader_epoch(p.leader_epoch),
        None => LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(-1))
            .with_leader_epoch(-1),
    }
}

/// The endpoints of the leaders named in the response (KIP-951, v16+).
fn leader_endpoints(
    broker: &Broker,
    listener: &str,
    response: &FetchResponse,
) -> Vec<NodeEndpoint> {
    let leaders = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.current_leader.leader_id.0);
    super::cluster_view::endpoints_of(&broker.image(), listener, leaders)
        .into_iter()
        .map(|(id, host, port)| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(super::str_bytes(host))
                .with_port(port)
        })
        .collect()
}

fn read_partition(
    broker: &Broker,
    w: &Wanted,
    plan: &Plan,
    budget: usize,
    first_with_data: bool,
) -> PartitionData {
    let data = PartitionData::default()
        .with_partition_index(w.partition)
        .with_aborted_transactions(None);
    let error = |code: ResponseError| {
        data.clone()
            .with_error_code(code.code())
            .with_high_watermark(-1)
            // Kafka answers an errored partition with empty records, never null: librdkafka
            // cannot parse a null record set in a fetch response.
            .with_records(Some(Default::default()))
    };
    let p = match &w.found {
        Ok(p) => p,
        Err(code) => return error(*code),
    };
    if w.current_leader_epoch >= 0 && w.current_leader_epoch != p.leader_epoch() {
        return error(if w.current_leader_epoch < p.leader_epoch() {
            ResponseError::FencedLeaderEpoch
        } else {
            ResponseError::UnknownLeaderEpoch
        });
    }
    if p.role() != crate::partition::replicas::Role::Leader {
        return error(ResponseError::NotLeaderOrFollower);
    }
    // KIP-74: the response's budget bounds every partition, the partition's own limit too;
    // only the first batch of the first partition with data may exceed them (the log always
    // returns at least one whole batch).
    let limit = w.max_bytes.min(budget);
    if limit == 0 && !first_with_data {
        return data
            .with_high_watermark(p.high_watermark())
            .with_last_stable_offset(p.last_stable_offset())
            .with_log_start_offset(p.log_start_offset())
            .with_records(Some(Default::default()));
    }
    let oversized = |records: &Option<bytes::Bytes>| {
        !first_with_data && records.as_ref().is_some_and(|b| b.len() > limit)
    };
    if let Some(replica) = plan.replica {
        return read_for_follower(broker, w, p, replica, data, limit, oversized);
    }
    let isolation = if plan.read_committed {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    match p.read_isolated(w.offset, limit.max(1), isolation) {
        Ok(mut r) => {
            if oversized(&r.records) {
                r.records = None;
                r.aborted = r.aborted.map(|_| Vec::new());
            }
            let aborted = r.aborted.map(|list| {
                list.into_iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect()
            });
            data.with_high_watermark(r.high_watermark)
                .with_last_stable_offset(r.last_stable_offset)
                .with_log_start_offset(r.log_start_offset)
                .with_aborted_transactions(aborted)
                .with_records(Some(r.records.unwrap_or_default()))
        }
        Err(e) => {
            let mut d = error(errors::partition(&e));
            d.log_start_offset = p.log_start_offset();
            d.high_watermark = p.high_watermark();
            if matches!(errors::partition(&e), ResponseError::KafkaStorageError) {
                tracing::warn!(error = %e, "fetch failed");
            }
            d
        }
    }
}

/// A follower's fetch: its log end offset is recorded, then either the point its log diverged at
/// or the records after its log end, up to this log's end.
fn read_for_follower(
    broker: &Broker,
    w: &Wanted,
    p: &Arc<Partition>,
    replica: u64,
    data: PartitionData,
    limit: usize,
    oversized: impl Fn(&Option<bytes::Bytes>) -> bool,
) -> PartitionData {
    let fail = |e: &PartitionError| {
        data.clone()
            .with_error_code(errors::partition(e).code())
            .with_high_watermark(p.high_watermark())
            .with_log_start_offset(p.log_start_offset())
            .with_records(Some(Default::default()))
    };
    if !p.is_replica(replica) {
        return data
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_records(Some(Default::default()));
    }
    if let Some((epoch, end_offset)) = p.diverging_epoch(w.offset, w.last_fetched_epoch) {
        return data
            .with_high_watermark(p.high_watermark())
            .with_log_start_offset(p.log_start_offset())
            .with_diverging_epoch(
                EpochEndOffset::default()
                    .with_epoch(epoch)
                    .with_end_offset(end_offset),
            )
            .with_records(Some(Default::default()));
    }
    if w.offset > p.log_end_offset() {
        // Records the leader does not have: nothing to record or read (Kafka answers the same).
        return data
            .with_error_code(ResponseError::OffsetOutOfRange.code())
            .with_high_watermark(p.high_watermark())
            .with_log_start_offset(p.log_start_offset())
            .with_records(Some(Default::default()));
    }
    broker.replication.follower_fetched(p, replica, w.offset);
    match p.read_for_follower(w.offset, limit.max(1)) {
        Ok(mut r) => {
            if oversized(&r.records) {
                r.records = None;
            }
            data.with_high_watermark(r.high_watermark)
                .with_last_stable_offset(r.last_stable_offset)
                .with_log_start_offset(r.log_start_offset)
                .with_records(Some(r.records.unwrap_or_default()))
        }
        Err(e) => {
            tracing::debug!(error = %e, replica, "follower fetch failed");
            fail(&e)
        }
    }
}

fn has_error(response: &FetchResponse) -> bool {
    response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .any(|p| p.error_code != 0 || p.diverging_epoch.epoch >= 0)
}

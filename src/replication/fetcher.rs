//! Follower fetchers: one task per leader node this node follows partitions of, each fetching
//! all of them in one Fetch request with this node's replica id, as Kafka's
//! `ReplicaFetcherThread` does.
//!
//! A fetch asks, per partition, for the records after this log's end, and names the last epoch
//! this log has (KIP-320). The leader answers with records, its high watermark, or the epoch and
//! offset at which this log diverged from its own; the follower then truncates to the lesser of
//! the leader's end for that epoch and its own, and fetches again. In durable flush mode a
//! follower syncs what it appended before its next fetch, so the log end it reports to the
//! leader (which lets the high watermark pass) is on disk.

use super::client::{Client, ClientError};
use crate::model::TopicPartition;
use crate::partition::Partition;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The Fetch version followers use: the oldest with diverging epochs (KIP-320) that still names
/// topics rather than ids.
const FETCH_VERSION: i16 = 12;

#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub local: u64,
    /// The address fetches leave from (see [`crate::net`]).
    pub source: Option<std::net::IpAddr>,
    pub max_wait_ms: i32,
    pub partition_max_bytes: i32,
    pub response_max_bytes: i32,
    pub backoff: Duration,
    /// Sync appended records before the next fetch (`flush_mode = "durable"`).
    pub durable: bool,
}

/// A partition this node follows, at the leader epoch the metadata gave.
#[derive(Clone)]
struct Followed {
    partition: Arc<Partition>,
    leader_epoch: i32,
    /// Not fetched before this instant (after an error).
    delayed_until: Option<Instant>,
}

struct LeaderFetcher {
    addr: Arc<Mutex<String>>,
    partitions: Arc<Mutex<BTreeMap<TopicPartition, Followed>>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
}

/// The fetchers of this node, by leader.
pub struct Fetchers {
    settings: FetchSettings,
    by_leader: Mutex<HashMap<u64, LeaderFetcher>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Fetchers {
    pub fn new(settings: FetchSettings, tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        Fetchers {
            settings,
            by_leader: Mutex::new(HashMap::new()),
            tracker,
            shutdown,
        }
    }

    fn leaders(&self) -> std::sync::MutexGuard<'_, HashMap<u64, LeaderFetcher>> {
        self.by_leader.lock().expect("fetchers lock poisoned")
    }

    /// Follows `partition` from `leader` at `addr` (its Kafka listener) at `leader_epoch`,
    /// moving it from any other leader's fetcher.
    pub fn follow(&self, partition: Arc<Partition>, leader: u64, addr: String, leader_epoch: i32) {
        let tp = partition.tp().clone();
        let mut leaders = self.leaders();
        for (id, f) in leaders.iter() {
            if *id != leader {
                f.partitions.lock().expect("fetcher lock").remove(&tp);
            }
        }
        let fetcher = leaders
            .entry(leader)
            .or_insert_with(|| self.spawn(leader, addr.clone()));
        *fetcher.addr.lock().expect("fetcher lock") = addr;
        fetcher.partitions.lock().expect("fetcher lock").insert(
            tp,
            Followed {
                partition,
                leader_epoch,
                delayed_until: None,
            },
        );
        fetcher.wake.notify_one();
    }

    /// Stops following `tp` (this node leads it now, or holds it no more).
    pub fn unfollow(&self, tp: &TopicPartition) {
        for f in self.leaders().values() {
            f.partitions.lock().expect("fetcher lock").remove(tp);
        }
    }

    fn spawn(&self, leader: u64, addr: String) -> LeaderFetcher {
        let fetcher = LeaderFetcher {
            addr: Arc::new(Mutex::new(addr)),
            partitions: Arc::new(Mutex::new(BTreeMap::new())),
            wake: Arc::new(Notify::new()),
            stop: self.shutdown.child_token(),
        };
        let task = FetchTask {
            leader,
            settings: self.settings.clone(),
            addr: fetcher.addr.clone(),
            partitions: fetcher.partitions.clone(),
            wake: fetcher.wake.clone(),
            stop: fetcher.stop.clone(),
            client: None,
        };
        self.tracker.spawn(task.run());
        fetcher
    }
}

struct FetchTask {
    leader: u64,
    settings: FetchSettings,
    addr: Arc<Mutex<String>>,
    partitions: Arc<Mutex<BTreeMap<TopicPartition, Followed>>>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    client: Option<Client>,
}

impl FetchTask {
    async fn run(mut self) {
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            let now = Instant::now();
            let ready: Vec<(TopicPartition, Followed)> = self
                .partitions
                .lock()
                .expect("fetcher lock")
                .iter()
                .filter(|(_, f)| f.delayed_until.is_none_or(|t| t <= now))
                .map(|(tp, f)| (tp.clone(), f.clone()))
                .collect();
            if ready.is_empty() {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.backoff) => {}
                }
                continue;
            }
            if let Err(e) = self.fetch_once(&ready).await {
                tracing::warn!(leader = self.leader, error = %e, "fetch from leader failed");
                self.client = None;
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = tokio::time::sleep(self.settings.backoff) => {}
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<&mut Client, ClientError> {
        if self.client.is_none() {
            let addr = self.addr.lock().expect("fetcher lock").clone();
            let id = format!("spool-replica-{}", self.settings.local);
            let max = self.settings.response_max_bytes as usize + (1 << 20);
            let timeout = self.settings.backoff.max(Duration::from_secs(1));
            let client = Client::connect(&addr, self.settings.source, &id, max, timeout).await?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    async fn fetch_once(
        &mut self,
        ready: &[(TopicPartition, Followed)],
    ) -> Result<(), ClientError> {
        let request = self.request(ready);
        let timeout = Duration::from_millis(self.settings.max_wait_ms.max(0) as u64)
            + Duration::from_secs(10);
        let response = self
            .connect()
            .await?
            .call(&request, FETCH_VERSION, timeout)
            .await?;
        if response.error_code != 0 {
            tracing::warn!(
                leader = self.leader,
                error_code = response.error_code,
                "fetch refused as a whole"
            );
            self.delay_all(ready);
            return Ok(());
        }
        // A partition may have moved to another leader (or epoch) while this fetch was out:
        // its answer is dropped, never appended.
        let current = self.partitions.lock().expect("fetcher lock").clone();
        let by_tp: HashMap<TopicPartition, &Followed> = ready
            .iter()
            .filter(|(tp, f)| {
                current.get(tp).is_some_and(|now| {
                    now.leader_epoch == f.leader_epoch && Arc::ptr_eq(&now.partition, &f.partition)
                })
            })
            .map(|(tp, f)| (tp.clone(), f))
            .collect();
        let mut appended = Vec::new();
        for topic in &response.responses {
            for data in &topic.partitions {
                let tp = TopicPartition::new(topic.topic.0.to_string(), data.partition_index);
                let Some(followed) = by_tp.get(&tp) else {
                    continue;
                };
                match self.handle(followed, data) {
                    Ok(true) => appended.push(followed.partition.clone()),
                    Ok(false) => {}
                    Err(()) => self.delay(&tp),
                }
            }
        }
        if self.settings.durable {
            for p in appended {
                if let Err(e) = p.flush().await {
                    tracing::error!(partition = %p.tp(), error = %e, "follower flush failed");
                }
            }
        }
        Ok(())
    }

    fn request(&self, ready: &[(TopicPartition, Followed)]) -> FetchRequest {
        let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
        for (tp, f) in ready {
            let p = &f.partition;
            topics.entry(tp.topic.to_string()).or_default().push(
                FetchPartition::default()
                    .with_partition(tp.partition)
                    .with_current_leader_epoch(f.leader_epoch)
                    .with_fetch_offset(p.log_end_offset())
                    .with_last_fetched_epoch(p.last_fetched_epoch())
                    .with_log_start_offset(p.log_start_offset())
                    .with_partition_max_bytes(self.settings.partition_max_bytes),
            );
        }
        FetchRequest::default()
            .with_replica_id(BrokerId(self.settings.local as i32))
            .with_max_wait_ms(self.settings.max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(self.settings.response_max_bytes)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(name)))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    /// Applies one partition's answer. Ok(true): records were appended.
    fn handle(&self, f: &Followed, data: &PartitionData) -> Result<bool, ()> {
        let p = &f.partition;
        if data.error_code == ResponseError::OffsetOutOfRange.code()
            && data.log_start_offset > p.log_end_offset()
        {
            return match p.reset_to(data.log_start_offset) {
                Ok(()) => Ok(false),
                Err(e) => {
                    tracing::error!(partition = %p.tp(), error = %e, "starting over failed");
                    Err(())
                }
            };
        }
        if data.error_code != 0 {
            let error = ResponseError::try_from_code(data.error_code);
            tracing::info!(partition = %p.tp(), leader = self.leader, error = ?error, "leader refused the fetch; waiting for new metadata");
            return Err(());
        }
        if data.diverging_epoch.epoch >= 0 {
            // Whether or not this log has the leader's epoch, the lesser end is where both agree
            // (for now: the next fetch names the epoch before it and is checked again).
            let (_, my_end) = p.end_offset_for_epoch(data.diverging_epoch.epoch);
            let target = my_end.min(data.diverging_epoch.end_offset);
            if let Err(e) = p.truncate_to(target.max(0)) {
                tracing::error!(partition = %p.tp(), error = %e, "truncation failed");
                return Err(());
            }
            return Ok(false);
        }
        let records = data.records.as_deref().unwrap_or_default();
        // A fetch can end with a partial batch; only whole ones are appended.
        let whole = crate::log::batch::whole_batches_len(records);
        if let Err(e) = p.append_as_follower(&records[..whole], data.high_watermark) {
            tracing::error!(partition = %p.tp(), error = %e, "appending fetched records failed");
            return Err(());
        }
        if let Err(e) = p.follow_log_start(data.log_start_offset) {
            tracing::error!(partition = %p.tp(), error = %e, "following the leader's log start failed");
        }
        Ok(whole > 0)
    }

    fn delay(&self, tp: &TopicPartition) {
        if let Some(f) = self.partitions.lock().expect("fetcher lock").get_mut(tp) {
            f.delayed_until = Some(Instant::now() + self.settings.backoff);
        }
    }

    fn delay_all(&self, ready: &[(TopicPartition, Followed)]) {
        for (tp, _) in ready {
            self.delay(tp);
        }
    }
}

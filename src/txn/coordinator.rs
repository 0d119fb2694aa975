//! The transaction coordinator (transaction protocol version 1, as Kafka's
//! `TransactionCoordinator`): transactional ids, their producer id and epoch, the partitions of
//! the ongoing transaction, commit and abort with markers written to every partition, timeouts,
//! and the state log in `__transaction_state`.
//!
//! A commit or abort is decided by writing PrepareCommit / PrepareAbort to the state log (synced);
//! then the markers are written and synced on every partition; then CompleteCommit /
//! CompleteAbort is written. A crash after the decision is finished at start-up: prepared
//! transactions are completed, and ongoing ones past their timeout are aborted.
//!
//! Locking rule: one async lock per transactional id serialises that id's operations end to end
//! (they wait on fsync); `txns` is a short synchronous section, never held across `.await`.

use super::state::{TxnMetadata, TxnState};
use super::store;
use crate::group::store::{partition_for, OFFSETS_TOPIC};
use crate::group::GroupCoordinator;
use crate::log::batch::Marker;
use crate::model::{now_ms, TopicPartition};
use crate::partition::manager::TopicManager;
use crate::partition::{Partition, PartitionError};
use crate::replication::{LeadershipListener, Replication};
use crate::txn::producer_id::ProducerIdManager;
use crate::txn::producer_state::ProducerError;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

/// Kafka error codes the coordinator answers with (named as in Kafka's `Errors`).
pub mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
}

/// Coordinator settings (Kafka's `transaction.*` broker configs).
#[derive(Debug, Clone)]
pub struct TxnConfig {
    pub max_timeout_ms: i32,
    pub id_expiration_ms: i64,
    /// Partitions of `__transaction_state` when it is created.
    pub state_log_partitions: i32,
}

/// How long a marker may take to reach every in-sync replica of its partition.
const MARKER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct TxnCoordinator {
    config: TxnConfig,
    /// The partitions of `__transaction_state` this node leads and has loaded, by index; an id
    /// whose partition is not here is coordinated elsewhere (NOT_COORDINATOR).
    log: RwLock<Vec<Option<Arc<Partition>>>>,
    topics: Arc<TopicManager>,
    groups: Arc<GroupCoordinator>,
    producer_ids: Arc<ProducerIdManager>,
    /// Where partition leaders are, for markers to partitions led by other nodes.
    replication: Arc<Replication>,
    txns: Mutex<HashMap<String, TxnMetadata>>,
    /// Transactional id by producer id, for the produce path's verification (no scan).
    by_producer: Mutex<HashMap<i64, String>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl TxnCoordinator {
    /// A coordinator that coordinates nothing until this node leads partitions of the state
    /// log ([`TxnCoordinator::load_partition`]).
    pub fn new(
        config: TxnConfig,
        topics: Arc<TopicManager>,
        groups: Arc<GroupCoordinator>,
        producer_ids: Arc<ProducerIdManager>,
        replication: Arc<Replication>,
    ) -> Self {
        let slots = config.state_log_partitions.max(1) as usize;
        Self {
            config,
            log: RwLock::new(vec![None; slots]),
            topics,
            groups,
            producer_ids,
            replication,
            txns: Mutex::new(HashMap::new()),
            by_producer: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn replication(&self) -> &Replication {
        &self.replication
    }

    fn txns(&self) -> MutexGuard<'_, HashMap<String, TxnMetadata>> {
        self.txns
            .lock()
            .expect("transaction coordinator lock poisoned")
    }

    fn index_producer(&self, m: &TxnMetadata) {
        self.by_producer
            .lock()
            .expect("producer index poisoned")
            .insert(m.producer_id, m.transactional_id.clone());
    }

    fn get(&self, id: &str) -> Option<TxnMetadata> {
        self.txns().get(id).cloned()
    }

    async fn lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .locks
            .lock()
            .expect("transaction lock table poisoned")
            .entry(id.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    fn slots(&self) -> std::sync::RwLockReadGuard<'_, Vec<Option<Arc<Partition>>>> {
        self.log.read().expect("state log partitions lock poisoned")
    }

    /// The state log partition of `id`.
    pub fn partition_index(&self, id: &str) -> i32 {
        partition_for(id, self.slots().len() as i32)
    }

    fn partition_of(&self, id: &str) -> Result<Arc<Partition>, i16> {
        let index = self.partition_index(id);
        self.slots()[index as usize]
            .clone()
            .ok_or(code::NOT_COORDINATOR)
    }

    /// Whether this node coordinates `id`; `Err` carries NOT_COORDINATOR.
    pub fn owns(&self, id: &str) -> Result<(), i16> {
        self.partition_of(id).map(|_| ())
    }

    /// This node now leads state log partition `partition`: replays it (the last record of each
    /// transactional id wins), then coordinates its ids. Transactions it finds prepared are
    /// completed by the periodic clean-up ([`TxnCoordinator::abort_timed_out`]).
    pub fn load_partition(&self, partition: &Arc<Partition>) -> Result<(), PartitionError> {
        let index = partition.tp().partition;
        let total = self.slots().len() as i32;
        if index < 0 || index >= total {
            return Ok(());
        }
        let mut loaded: HashMap<String, TxnMetadata> = HashMap::new();
        crate::group::store::for_each_record(partition, |r| {
            let Some(id) = r.key.as_deref().and_then(store::decode_key) else {
                return;
            };
            match r.value.as_deref() {
                None => {
                    loaded.remove(&id);
                }
                Some(v) => match store::decode_value(&id, v) {
                    Some(m) => {
                        loaded.insert(id, m);
                    }
                    None => {
                        tracing::warn!(transactional_id = %id, "unreadable transaction state record skipped")
                    }
                },
            }
        })?;
        let count = loaded.len();
        let mut txns = self.txns();
        txns.retain(|id, _| partition_for(id, total) != index);
        for m in loaded.values() {
            self.index_producer(m);
        }
        txns.extend(loaded);
        self.log
            .write()
            .expect("state log partitions lock poisoned")[index as usize] = Some(partition.clone());
        drop(txns);
        tracing::info!(
            partition = index,
            transactions = count,
            "transaction coordinator loaded a partition"
        );
        Ok(())
    }

    /// This node no longer leads state log partition `index`: its ids are coordinated by the
    /// new leader.
    pub fn unload_partition(&self, index: i32) {
        let total = self.slots().len() as i32;
        let mut txns = self.txns();
        if let Some(slot) = self
            .log
            .write()
            .expect("state log partitions lock poisoned")
            .get_mut(index as usize)
        {
            *slot = None;
        }
        let mut by_producer = self.by_producer.lock().expect("producer index poisoned");
        txns.retain(|id, m| {
            let keep = partition_for(id, total) != index;
            if !keep {
                by_producer.remove(&m.producer_id);
            }
            keep
        });
        tracing::info!(
            partition = index,
            "transaction coordinator unloaded a partition"
        );
    }

    /// Writes `m` to the state log and waits until it is synced, then makes it current.
    /// The state log is written as acks=-1 (Kafka's coordinator does the same): the record
    /// counts once every in-sync replica has it, with at least the state topic's
    /// `min.insync.replicas` of them, and this node's copy is synced.
    async fn persist(&self, m: TxnMetadata) -> Result<(), i16> {
        let partition = self.partition_of(&m.transactional_id)?;
        let min_isr = self
            .topics
            .get(store::TXN_TOPIC)
            .and_then(|t| self.topics.effective(&t, "min.insync.replicas"))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1);
        let failed = |what: &str, e: PartitionError| {
            tracing::warn!(error = %e, "{what} transaction state failed");
            code::NOT_COORDINATOR
        };
        partition
            .check_min_isr(min_isr)
            .map_err(|e| failed("replicating", e))?;
        let batch = crate::group::store::batch(
            &[(store::key(&m.transactional_id), Some(store::value(&m)))],
            now_ms(),
        );
        let appended = partition
            .append_as_leader(&batch)
            .map_err(|e| failed("writing", e))?;
        let end = appended.info.last_offset + 1;
        partition
            .wait_for_isr(end, min_isr, MARKER_TIMEOUT)
            .await
            .map_err(|e| failed("replicating", e))?;
        partition
            .flush_to(end)
            .await
            .map_err(|e| failed("syncing", e))?;
        self.index_producer(&m);
        self.txns().insert(m.transactional_id.clone(), m);
        Ok(())
    }

    /// Completes transactions that were decided before a crash, and aborts ongoing ones past
    /// their timeout. Called once at start-up, before clients are served.
    pub async fn recover(&self) {
        let prepared: Vec<String> = self
            .txns()
            .values()
            .filter(|m| m.state.is_prepared())
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in prepared {
            let _guard = self.lock(&id).await;
            if let Some(mut m) = self.get(&id) {
                match self.complete(&mut m).await {
                    Ok(()) => {
                        tracing::info!(transactional_id = %id, state = m.state.name(), "completed a transaction decided before the restart")
                    }
                    Err(e) => {
                        tracing::error!(transactional_id = %id, error = e, "completing a prepared transaction failed; will retry")
                    }
                }
            }
        }
        self.abort_timed_out().await;
    }

    /// InitProducerId for a transactional id: a producer id and a bumped epoch, fencing any
    /// older producer with the same id; an ongoing transaction is aborted first.
    pub async fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), i16> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(code::INVALID_TRANSACTION_TIMEOUT);
        }
        let _guard = self.lock(id).await;
        let now = now_ms();
        let Some(mut m) = self.get(id) else {
            if expected.is_some_and(|(pid, _)| pid >= 0) {
                return Err(code::INVALID_PRODUCER_ID_MAPPING);
            }
            let producer_id = self.new_producer_id().await?;
            let m = TxnMetadata {
                transactional_id: id.to_string(),
                producer_id,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now,
                previous: None,
            };
            self.persist(m).await?;
            return Ok((producer_id, 0));
        };
        if let Some((pid, epoch)) = expected.filter(|(pid, _)| *pid >= 0) {
            // A retry of the InitProducerId that made the current epoch (its answer was lost):
            // answer it again rather than fence the producer that asked.
            if m.previous == Some((pid, epoch)) && m.state == TxnState::Empty {
                return Ok((m.producer_id, m.producer_epoch));
            }
            if pid != m.producer_id {
                return Err(code::INVALID_PRODUCER_ID_MAPPING);
            }
            if epoch != m.producer_epoch {
                return Err(code::PRODUCER_FENCED);
            }
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => self.complete(&mut m).await?,
            TxnState::Ongoing | TxnState::PrepareEpochFence => self.fence_and_abort(&mut m).await?,
            _ => {}
        }
        let mut next = m.clone();
        next.previous = Some((m.producer_id, m.producer_epoch));
        if next.producer_epoch >= i16::MAX - 1 {
            next.producer_id = self.new_producer_id().await?;
            next.producer_epoch = 0;
        } else {
            next.producer_epoch += 1;
        }
        next.timeout_ms = timeout_ms;
        next.state = TxnState::Empty;
        next.partitions.clear();
        next.start_ms = -1;
        next.last_update_ms = now;
        let out = (next.producer_id, next.producer_epoch);
        self.persist(next).await?;
        Ok(out)
    }

    async fn new_producer_id(&self) -> Result<i64, i16> {
        self.producer_ids.next_id().await.map_err(|e| {
            tracing::warn!(error = %e, "no producer id to give");
            code::COORDINATOR_NOT_AVAILABLE
        })
    }

    /// The checks every request from a producer of `id` passes first.
    fn check_producer(&self, id: &str, producer_id: i64, epoch: i16) -> Result<TxnMetadata, i16> {
        let m = self.get(id).ok_or(code::INVALID_PRODUCER_ID_MAPPING)?;
        if m.producer_id != producer_id {
            return Err(code::INVALID_PRODUCER_ID_MAPPING);
        }
        if m.producer_epoch != epoch {
            return Err(code::PRODUCER_FENCED);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's offsets partition): one error
    /// per partition.
    pub async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, i16)> {
        let all = |code: i16, ps: Vec<TopicPartition>| ps.into_iter().map(|p| (p, code)).collect();
        let _guard = self.lock(id).await;
        let m = match self.check_producer(id, producer_id, epoch) {
            Ok(m) => m,
            Err(e) => return all(e, partitions),
        };
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                return all(code::CONCURRENT_TRANSACTIONS, partitions)
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                return all(code::INVALID_TXN_STATE, partitions)
            }
            _ => {}
        }
        let unknown: Vec<bool> = partitions
            .iter()
            .map(|tp| self.topics.partition(&tp.topic, tp.partition).is_none())
            .collect();
        if unknown.iter().any(|u| *u) {
            return partitions
                .into_iter()
                .zip(unknown)
                .map(|(tp, u)| {
                    let c = if u {
                        code::UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        code::OPERATION_NOT_ATTEMPTED
                    };
                    (tp, c)
                })
                .collect();
        }
        if m.state == TxnState::Ongoing && partitions.iter().all(|tp| m.partitions.contains(tp)) {
            return all(code::NONE, partitions);
        }
        let mut next = m;
        let now = now_ms();
        if next.state != TxnState::Ongoing {
            next.state = TxnState::Ongoing;
            next.start_ms = now;
            next.partitions.clear();
        }
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        match self.persist(next).await {
            Ok(()) => all(code::NONE, partitions),
            Err(e) => all(e, partitions),
        }
    }

    /// The offsets partition a group's transactional offsets go to.
    pub fn offsets_partition(&self, group_id: &str) -> TopicPartition {
        TopicPartition::new(OFFSETS_TOPIC, self.groups.partition_index(group_id))
    }

    /// Whether `producer_id` at `epoch` has `tp` in its ongoing transaction (KIP-890's check
    /// before the first transactional write to a partition). `Err` carries the error code.
    pub fn verify(&self, producer_id: i64, epoch: i16, tp: &TopicPartition) -> Result<(), i16> {
        let id = self
            .by_producer
            .lock()
            .expect("producer index poisoned")
            .get(&producer_id)
            .cloned();
        let txns = self.txns();
        let m = id.and_then(|id| txns.get(&id));
        match m {
            // The id has moved on to a new producer id (epoch exhaustion): this one is fenced.
            Some(m) if m.producer_id != producer_id => Err(code::INVALID_PRODUCER_EPOCH),
            Some(m) if m.producer_epoch > epoch => Err(code::INVALID_PRODUCER_EPOCH),
            Some(m)
                if m.producer_epoch == epoch
                    && m.state == TxnState::Ongoing
                    && m.partitions.contains(tp) =>
            {
                Ok(())
            }
            _ => Err(code::INVALID_TXN_STATE),
        }
    }

    /// EndTxn: commits or aborts the ongoing transaction; answers once every marker is synced.
    pub async fn end_txn(&self, id: &str, producer_id: i64, epoch: i16, commit: bool) -> i16 {
        let _guard = self.lock(id).await;
        let mut m = match self.check_producer(id, producer_id, epoch) {
            Ok(m) => m,
            Err(e) => return e,
        };
        let result = match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = m.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.last_update_ms = now_ms();
                match self.persist(next.clone()).await {
                    Ok(()) => self.complete(&mut next).await,
                    Err(e) => Err(e),
                }
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                self.complete(&mut m).await
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit, false) | (TxnState::PrepareAbort, true) => {
                Err(code::INVALID_TXN_STATE)
            }
            _ => Err(code::INVALID_TXN_STATE),
        };
        result.err().unwrap_or(code::NONE)
    }

    /// Aborts `m`'s ongoing transaction with a bumped epoch, so the producer that started it is
    /// fenced (its epoch is now old everywhere).
    async fn fence_and_abort(&self, m: &mut TxnMetadata) -> Result<(), i16> {
        let mut next = m.clone();
        next.producer_epoch = next.producer_epoch.saturating_add(1).min(i16::MAX - 1);
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = now_ms();
        self.persist(next.clone()).await?;
        self.complete(&mut next).await?;
        *m = next;
        Ok(())
    }

    /// Writes the markers of a prepared transaction to each of its partitions, waits until they
    /// are synced, then records the transaction complete. On a failure the transaction stays
    /// prepared, to be completed later.
    async fn complete(&self, m: &mut TxnMetadata) -> Result<(), i16> {
        let (marker, done) = match m.state {
            TxnState::PrepareCommit => (Marker::Commit, TxnState::CompleteCommit),
            TxnState::PrepareAbort => (Marker::Abort, TxnState::CompleteAbort),
            _ => return Ok(()),
        };
        let partitions: Vec<TopicPartition> = m.partitions.iter().cloned().collect();
        // Kafka's coordinator epoch: the leader epoch of the state log partition, so markers
        // from a coordinator that lost its partition are recognisably older.
        let coordinator_epoch = self.partition_of(&m.transactional_id)?.leader_epoch();
        let results = self
            .send_markers(
                m.producer_id,
                m.producer_epoch,
                marker,
                coordinator_epoch,
                &partitions,
            )
            .await;
        for (tp, c) in &results {
            match *c {
                code::NONE | code::UNKNOWN_TOPIC_OR_PARTITION | code::INVALID_PRODUCER_EPOCH => {}
                code::NOT_LEADER_OR_FOLLOWER | code::REQUEST_TIMED_OUT => {
                    tracing::info!(partition = %tp, error = c, transactional_id = %m.transactional_id, "a marker could not be written yet; will retry");
                    return Err(code::CONCURRENT_TRANSACTIONS);
                }
                other => {
                    tracing::error!(partition = %tp, error = other, transactional_id = %m.transactional_id, "writing a transaction marker failed");
                    return Err(code::CONCURRENT_TRANSACTIONS);
                }
            }
        }
        let mut next = m.clone();
        next.state = done;
        next.partitions.clear();
        next.last_update_ms = now_ms();
        self.persist(next.clone()).await?;
        *m = next;
        Ok(())
    }

    /// Writes one marker to each partition this node leads (WriteTxnMarkers), waits until every
    /// in-sync replica has it and it is synced, and lets the group coordinator apply or drop
    /// transactional offsets in offsets partitions. One error per partition: a marker from an
    /// epoch older than the producer's is INVALID_PRODUCER_EPOCH; a partition led elsewhere is
    /// NOT_LEADER_OR_FOLLOWER.
    pub async fn write_markers(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        coordinator_epoch: i32,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, i16)> {
        let mut results = Vec::with_capacity(partitions.len());
        let mut syncs = tokio::task::JoinSet::new();
        for (i, tp) in partitions.iter().enumerate() {
            let Some(partition) = self.topics.partition(&tp.topic, tp.partition) else {
                results.push((tp.clone(), code::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            match partition.write_marker(producer_id, epoch, marker, coordinator_epoch) {
                Ok(end) => {
                    if tp.topic == OFFSETS_TOPIC {
                        self.groups.complete_txn(
                            producer_id,
                            tp.partition,
                            marker == Marker::Commit,
                        );
                    }
                    results.push((tp.clone(), code::NONE));
                    syncs.spawn(async move {
                        let replicated = partition.wait_for_isr(end, 1, MARKER_TIMEOUT).await;
                        (i, replicated.and(partition.flush_to(end).await))
                    });
                }
                Err(PartitionError::Producer {
                    source: ProducerError::InvalidEpoch { .. },
                    ..
                }) => results.push((tp.clone(), code::INVALID_PRODUCER_EPOCH)),
                Err(PartitionError::NotLeader { .. }) => {
                    results.push((tp.clone(), code::NOT_LEADER_OR_FOLLOWER))
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing a transaction marker failed");
                    results.push((tp.clone(), code::KAFKA_STORAGE_ERROR));
                }
            }
        }
        while let Some(joined) = syncs.join_next().await {
            if let Ok((i, Err(e))) = joined {
                tracing::error!(error = %e, "replicating or syncing a transaction marker failed");
                let c = match e {
                    PartitionError::NotLeader { .. } => code::NOT_LEADER_OR_FOLLOWER,
                    PartitionError::ReplicationTimeout { .. } => code::REQUEST_TIMED_OUT,
                    _ => code::KAFKA_STORAGE_ERROR,
                };
                if let Some(r) = results.iter_mut().find(|(tp, _)| *tp == partitions[i]) {
                    r.1 = c;
                }
            }
        }
        results
    }

    /// Aborts (with an epoch bump, fencing the producer) every ongoing transaction past its
    /// timeout, and retries prepared ones whose markers failed. Busy ids are left for next time.
    pub async fn abort_timed_out(&self) {
        let now = now_ms();
        let due: Vec<String> = self
            .txns()
            .values()
            .filter(|m| {
                (m.state == TxnState::Ongoing && now > m.start_ms + m.timeout_ms as i64)
                    || m.state.is_prepared()
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in due {
            let lock = self
                .locks
                .lock()
                .expect("transaction lock table poisoned")
                .entry(id.clone())
                .or_default()
                .clone();
            let Ok(_guard) = lock.try_lock_owned() else {
                continue;
            };
            let Some(mut m) = self.get(&id) else { continue };
            let result = match m.state {
                TxnState::Ongoing if now > m.start_ms + m.timeout_ms as i64 => {
                    tracing::info!(transactional_id = %id, producer_id = m.producer_id, "aborting a transaction past its timeout");
                    self.fence_and_abort(&mut m).await
                }
                s if s.is_prepared() => self.complete(&mut m).await,
                _ => Ok(()),
            };
            if let Err(e) = result {
                tracing::warn!(transactional_id = %id, error = e, "transaction clean-up failed; will retry");
            }
        }
    }

    /// Forgets transactional ids idle past `transactional_id_expiration_ms` (writing tombstones).
    pub async fn expire_ids(&self) {
        let now = now_ms();
        let idle: Vec<String> = self
            .txns()
            .values()
            .filter(|m| {
                matches!(
                    m.state,
                    TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                ) && now - m.last_update_ms > self.config.id_expiration_ms
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in idle {
            let _guard = self.lock(&id).await;
            let Ok(partition) = self.partition_of(&id) else {
                return;
            };
            let batch = crate::group::store::batch(&[(store::key(&id), None)], now);
            match partition.append_as_leader(&batch) {
                Ok(_) => {
                    if let Some(m) = self.txns().remove(&id) {
                        self.by_producer
                            .lock()
                            .expect("producer index poisoned")
                            .remove(&m.producer_id);
                    }
                    self.locks
                        .lock()
                        .expect("transaction lock table poisoned")
                        .remove(&id);
                }
                Err(e) => {
                    tracing::error!(error = %e, "writing a transactional id tombstone failed")
                }
            }
        }
    }

    /// DescribeTransactions: the state of each id, or TRANSACTIONAL_ID_NOT_FOUND.
    pub fn describe(&self, id: &str) -> Result<TxnMetadata, i16> {
        self.get(id).ok_or(code::TRANSACTIONAL_ID_NOT_FOUND)
    }

    /// ListTransactions: ids filtered by state names, producer ids, and a minimum running time
    /// (`min_duration_ms` < 0: no filter). Unknown state names match nothing.
    pub fn list(
        &self,
        states: &[String],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Vec<TxnMetadata> {
        let now = now_ms();
        let mut out: Vec<TxnMetadata> = self
            .txns()
            .values()
            .filter(|m| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| TxnState::from_name(s) == Some(m.state))
            })
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| {
                min_duration_ms < 0
                    || (m.state == TxnState::Ongoing && now - m.start_ms >= min_duration_ms)
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }
}

impl LeadershipListener for TxnCoordinator {
    fn topic(&self) -> &str {
        store::TXN_TOPIC
    }

    fn on_leadership(&self, partition: &Arc<Partition>, leader: bool) {
        if leader {
            if let Err(e) = self.load_partition(partition) {
                tracing::error!(partition = %partition.tp(), error = %e, "loading transactions failed");
            }
        } else {
            self.unload_partition(partition.tp().partition);
        }
    }
}

//! Partitions as this node leads them: the log, producer state, leader epoch, high watermark,
//! and the waiting produce (durability) and fetch (new data) requests.
//!
//! Locking rule: `state` is a short, synchronous critical section (validate, append, read
//! positions); it is never held across `.await`. fsync runs on the blocking pool behind
//! `flush_lock`, which makes concurrent waiters share one sync (group commit).

pub mod admission;
pub mod manager;
pub mod replicas;
pub mod replication;
mod txn;

use crate::log::batch::{self, BatchHeader, Marker};
use crate::log::txn_index::AbortedTxn;
use crate::log::{AppendInfo, Log, LogConfig, LogError, RecoveryReport};
use crate::model::{now_ms, TopicPartition};
use crate::txn::producer_state::{
    ProducerBatch, ProducerError, ProducerStateManager, SequenceCheck,
};
use bytes::{Bytes, BytesMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;
use tokio::sync::Notify;

const PRODUCER_SNAPSHOT: &str = "producer-state.snapshot";

#[derive(Debug, Error)]
pub enum PartitionError {
    #[error("partition {tp}: {source}")]
    Log {
        tp: TopicPartition,
        source: LogError,
    },
    #[error("partition {tp}: {source}")]
    Producer {
        tp: TopicPartition,
        source: ProducerError,
    },
    #[error(
        "partition {tp}: produce requests v3+ must carry exactly one record batch, got {count}"
    )]
    NotOneBatch { tp: TopicPartition, count: usize },
    #[error("partition {tp} is offline after a storage error")]
    Offline { tp: TopicPartition },
    #[error("partition {tp}: fsync failed: {source}")]
    Sync {
        tp: TopicPartition,
        source: std::io::Error,
    },
    #[error("partition {tp}: this node is not its leader (leader {leader:?}, epoch {epoch})")]
    NotLeader {
        tp: TopicPartition,
        leader: Option<u64>,
        epoch: i32,
    },
    #[error("partition {tp}: the ISR has {isr} replicas, fewer than min.insync.replicas {min}")]
    NotEnoughReplicas {
        tp: TopicPartition,
        isr: usize,
        min: usize,
    },
    #[error("partition {tp}: appended, but the ISR shrank to {isr} replicas, fewer than min.insync.replicas {min}")]
    NotEnoughReplicasAfterAppend {
        tp: TopicPartition,
        isr: usize,
        min: usize,
    },
    #[error("partition {tp}: the ISR did not reach offset {offset} within {timeout_ms} ms")]
    ReplicationTimeout {
        tp: TopicPartition,
        offset: i64,
        timeout_ms: u64,
    },
}

/// Result of a successful append (or an acknowledged duplicate).
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub info: AppendInfo,
    pub log_start_offset: i64,
    pub duplicate: bool,
}

/// What a fetch from a partition sees.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub records: Option<Bytes>,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// For read_committed reads: the transactions aborted within the records returned.
    pub aborted: Option<Vec<AbortedTxn>>,
}

/// Which records a reader may see (Kafka's isolation level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Everything below the high watermark.
    ReadUncommitted,
    /// Everything below the last stable offset, with the aborted transactions listed.
    ReadCommitted,
}

/// A producer's transaction facts on this partition, for the produce path's verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProbe {
    pub producer_id: i64,
    pub epoch: i16,
    /// The producer already has a transaction open here (so the coordinator was consulted).
    pub in_transaction: bool,
}

struct PartitionState {
    log: Log,
    producers: ProducerStateManager,
    unflushed_messages: i64,
}

pub struct Partition {
    tp: TopicPartition,
    state: Mutex<PartitionState>,
    leader_epoch: AtomicI32,
    high_watermark: AtomicI64,
    offline: AtomicBool,
    /// Who leads, the ISR and the followers' progress (see `replicas`). Taken after `state`
    /// when both are needed.
    replicas: Mutex<replicas::ReplicaSet>,
    /// Told of every high watermark change and every role change, for acks=-1 waiters.
    hw_changed: tokio::sync::watch::Sender<()>,
    flush_lock: tokio::sync::Mutex<()>,
    /// Fetch requests waiting for new data; pruned of dropped waiters on registration.
    waiters: Mutex<Vec<Arc<Notify>>>,
}

impl Partition {
    /// Opens the partition's log and rebuilds its producer state. `local` is this node's id; the
    /// partition has no role until the metadata gives it one.
    pub fn open(
        tp: TopicPartition,
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
        local: u64,
    ) -> Result<(Self, RecoveryReport), PartitionError> {
        let (log, report) =
            Log::open(dir, config, clean_shutdown).map_err(|source| PartitionError::Log {
                tp: tp.clone(),
                source,
            })?;
        let mut log = log;
        let producers = load_producer_state(&mut log).map_err(|source| PartitionError::Log {
            tp: tp.clone(),
            source,
        })?;
        let hw = log.log_end_offset();
        let partition = Self {
            tp,
            state: Mutex::new(PartitionState {
                log,
                producers,
                unflushed_messages: 0,
            }),
            leader_epoch: AtomicI32::new(0),
            high_watermark: AtomicI64::new(hw),
            offline: AtomicBool::new(false),
            replicas: Mutex::new(replicas::ReplicaSet::new(local)),
            hw_changed: tokio::sync::watch::Sender::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            waiters: Mutex::new(Vec::new()),
        };
        Ok((partition, report))
    }

    fn state(&self) -> MutexGuard<'_, PartitionState> {
        self.state.lock().expect("partition state lock poisoned")
    }

    fn log_err(&self, source: LogError) -> PartitionError {
        PartitionError::Log {
            tp: self.tp.clone(),
            source,
        }
    }

    pub fn tp(&self) -> &TopicPartition {
        &self.tp
    }
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }
    /// The offset below which every transaction is decided (and below the high watermark).
    pub fn last_stable_offset(&self) -> i64 {
        let st = self.state();
        st.producers.last_stable_offset(self.high_watermark())
    }
    pub fn log_start_offset(&self) -> i64 {
        self.state().log.log_start_offset()
    }
    pub fn log_end_offset(&self) -> i64 {
        self.state().log.log_end_offset()
    }
    pub fn size_bytes(&self) -> u64 {
        self.state().log.size_bytes()
    }
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }
    /// `Offline` once a storage error took the partition offline.
    fn check_online(&self) -> Result<(), PartitionError> {
        if self.is_offline() {
            return Err(PartitionError::Offline {
                tp: self.tp.clone(),
            });
        }
        Ok(())
    }
    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` this log has, and its end.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.state().log.end_offset_for_epoch(epoch)
    }
    /// Whether the log is compacted (`cleanup.policy` has `compact`).
    pub fn is_compacted(&self) -> bool {
        self.state().log.config().compaction.is_some()
    }
    pub fn set_config(&self, config: LogConfig) {
        self.state().log.set_config(config);
    }

    /// Appends one producer batch as leader, after validating it and checking the producer's
    /// sequence; a retried batch is acknowledged with its original offsets.
    pub fn append_as_leader(&self, records: &Bytes) -> Result<Appended, PartitionError> {
        self.check_online()?;
        let count = crate::log::batch::batches(records).count();
        // Records are read (and decompressed) before the lock is taken.
        let config = self.state().log.config().clone();
        crate::log::validate_produced(&config, records).map_err(|e| self.log_err(e))?;
        let mut st = self.state();
        if count != 1 {
            return Err(PartitionError::NotOneBatch {
                tp: self.tp.clone(),
                count,
            });
        }
        self.check_leader()?;
        let header = BatchHeader::parse(records).expect("validated");
        let producer = ProducerBatch::from_header(&header);
        if let Some(p) = &producer {
            let check = st
                .producers
                .check(p)
                .map_err(|source| PartitionError::Producer {
                    tp: self.tp.clone(),
                    source,
                })?;
            if let SequenceCheck::Duplicate {
                base_offset,
                last_offset,
            } = check
            {
                let info = AppendInfo {
                    base_offset,
                    last_offset,
                    log_append_time: -1,
                };
                return Ok(Appended {
                    info,
                    log_start_offset: st.log.log_start_offset(),
                    duplicate: true,
                });
            }
        }
        let mut owned = BytesMut::from(&records[..]);
        let now = now_ms();
        let info = match st.log.append(&mut owned, self.leader_epoch(), now) {
            Ok(info) => info,
            Err(e) => {
                if matches!(e, LogError::Io { .. }) {
                    tracing::error!(partition = %self.tp, error = %e, "append failed");
                }
                return Err(self.log_err(e));
            }
        };
        if let Some(p) = &producer {
            st.producers.record(p, info.base_offset, info.last_offset);
        }
        st.unflushed_messages += info.last_offset - info.base_offset + 1;
        let log_start_offset = st.log.log_start_offset();
        drop(st);
        self.advance_high_watermark();
        self.wake_fetchers();
        Ok(Appended {
            info,
            log_start_offset,
            duplicate: false,
        })
    }

    /// Messages appended since the last flush (for `flush_messages`).
    pub fn unflushed_messages(&self) -> i64 {
        self.state().unflushed_messages
    }

    /// Makes every offset below `offset` durable with fsync. Concurrent callers share syncs: a
    /// caller that finds its offset covered by a sync that finished while it waited returns at
    /// once. A failed fsync takes the partition offline and is never reported as success.
    pub async fn flush_to(&self, offset: i64) -> Result<(), PartitionError> {
        let _one_sync_at_a_time = self.flush_lock.lock().await;
        self.check_online()?;
        let (target, files) = {
            let st = self.state();
            if st.log.recovery_point() >= offset {
                return Ok(());
            }
            st.log.flush_files()
        };
        let synced =
            tokio::task::spawn_blocking(move || files.iter().try_for_each(|f| f.sync_data()))
                .await
                .unwrap_or_else(|join| Err(std::io::Error::other(join.to_string())));
        if let Err(source) = synced {
            self.offline.store(true, Ordering::Release);
            tracing::error!(partition = %self.tp, error = %source, "fsync failed; partition taken offline");
            return Err(PartitionError::Sync {
                tp: self.tp.clone(),
                source,
            });
        }
        let mut st = self.state();
        st.log.mark_flushed(target);
        st.unflushed_messages = 0;
        Ok(())
    }

    /// Flushes everything appended so far.
    pub async fn flush(&self) -> Result<(), PartitionError> {
        let end = self.log_end_offset();
        self.flush_to(end).await
    }

    /// Reads whole batches from `offset` up to the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, PartitionError> {
        self.read_isolated(offset, max_bytes, Isolation::ReadUncommitted)
    }

    /// Reads whole batches from `offset` up to the high watermark, or for read_committed up to
    /// the last stable offset with the aborted transactions among the records returned.
    pub fn read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult, PartitionError> {
        self.check_online()?;
        let st = self.state();
        let high_watermark = self.high_watermark();
        let last_stable_offset = st.producers.last_stable_offset(high_watermark);
        let upper = match isolation {
            Isolation::ReadUncommitted => high_watermark,
            Isolation::ReadCommitted => last_stable_offset,
        };
        let records = match st.log.read(offset, max_bytes, upper) {
            Ok(records) => records,
            Err(e @ LogError::Corrupt { segment, .. }) => {
                drop(st);
                self.offline.store(true, Ordering::Release);
                tracing::error!(partition = %self.tp, error = %e, "corrupt data on disk; partition taken offline until a restart recovers it");
                if let Err(cp) = self.state().log.mark_corrupt(segment) {
                    tracing::error!(partition = %self.tp, error = %cp, "cannot move the recovery point back");
                }
                return Err(self.log_err(e));
            }
            Err(e) => return Err(self.log_err(e)),
        };
        let aborted = (isolation == Isolation::ReadCommitted).then(|| {
            let end = records.as_ref().map_or(offset, |r| {
                batch::batches(r)
                    .last()
                    .map_or(offset, |(_, h)| h.last_offset() + 1)
            });
            if end > offset {
                st.log.aborted_txns(offset, end)
            } else {
                Vec::new()
            }
        });
        Ok(ReadResult {
            records,
            high_watermark,
            last_stable_offset,
            log_start_offset: st.log.log_start_offset(),
            log_end_offset: st.log.log_end_offset(),
            aborted,
        })
    }

    /// Registers `waiter` to be woken by the next append.
    pub fn register_waiter(&self, waiter: &Arc<Notify>) {
        let mut waiters = self.waiters.lock().expect("waiters lock");
        waiters.retain(|w| Arc::strong_count(w) > 1);
        waiters.push(waiter.clone());
    }

    fn wake_fetchers(&self) {
        let waiters = std::mem::take(&mut *self.waiters.lock().expect("waiters lock"));
        for w in waiters {
            w.notify_one();
        }
    }

    /// The first offset whose record timestamp is at or after `timestamp`, with that timestamp.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Option<(i64, i64)> {
        let st = self.state();
        let hw = self.high_watermark();
        // Records below the log start (DeleteRecords) are not there any more.
        let log_start = st.log.log_start_offset();
        let start = st.log.timestamp_search_start(timestamp)?.max(log_start);
        for batch in st.log.batch_bytes_from(start) {
            let h = BatchHeader::parse(&batch).expect("whole batch");
            if h.base_offset() >= hw {
                break;
            }
            if h.max_timestamp() < timestamp || h.last_offset() < log_start {
                continue;
            }
            if h.is_log_append_time() {
                return Some((h.base_offset().max(log_start), h.max_timestamp()));
            }
            if let Some(found) = first_record_at_or_after(batch, timestamp, log_start) {
                return Some(found);
            }
        }
        None
    }

    /// The offset and timestamp of the record with the largest timestamp (first such record).
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        let st = self.state();
        let mut best: Option<(i64, i64, Bytes)> = None;
        let hw = self.high_watermark();
        for batch in st.log.batch_bytes_from(st.log.log_start_offset()) {
            let h = BatchHeader::parse(&batch).expect("whole batch");
            if h.base_offset() >= hw {
                break;
            }
            if best.as_ref().is_none_or(|b| h.max_timestamp() > b.1) {
                best = Some((h.base_offset(), h.max_timestamp(), batch.clone()));
            }
        }
        let (base, ts, batch) = best?;
        if BatchHeader::parse(&batch)
            .expect("whole batch")
            .is_log_append_time()
        {
            return Some((base, ts));
        }
        first_record_at_or_after(batch, ts, i64::MIN).or(Some((base, ts)))
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high watermark); an offset
    /// past the high watermark is out of range. Returns the new log start offset.
    pub fn delete_records(&self, offset: i64) -> Result<i64, PartitionError> {
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        let mut st = self.state();
        if target < 0 || target > hw {
            return Err(self.log_err(LogError::OffsetOutOfRange {
                offset,
                start: st.log.log_start_offset(),
                end: hw,
            }));
        }
        st.log
            .advance_log_start(target)
            .map_err(|e| self.log_err(e))?;
        Ok(st.log.log_start_offset())
    }

    /// One compaction pass (blocking: run it off the async workers). The partition lock is held
    /// only to plan and to swap the result in; appends and fetches go on meanwhile. Returns the
    /// pass's figures when it changed the log.
    pub fn clean(&self) -> Result<Option<crate::log::cleaner::Cleaned>, PartitionError> {
        let plan = {
            let st = self.state();
            let stable = st.producers.last_stable_offset(self.high_watermark());
            st.log.cleaning_plan(now_ms(), stable)
        };
        let Some(plan) = plan else {
            return Ok(None);
        };
        let cleaned = crate::log::cleaner::build(&plan).map_err(|source| {
            self.log_err(LogError::Io {
                path: plan.dir.clone(),
                source,
            })
        })?;
        let installed = self
            .state()
            .log
            .install_cleaned(&cleaned)
            .map_err(|e| self.log_err(e))?;
        Ok(installed.then_some(cleaned))
    }

    /// Deletes segments past retention; returns how many.
    pub fn apply_retention(&self) -> Result<usize, PartitionError> {
        let hw = self.high_watermark();
        self.state()
            .log
            .apply_retention(now_ms(), hw)
            .map_err(|e| self.log_err(e))
    }

    /// Expires idle producers and writes the recovery point and a producer snapshot.
    pub fn checkpoint(&self, producer_expiration_ms: i64) -> Result<(), PartitionError> {
        let mut st = self.state();
        st.producers.expire(now_ms(), producer_expiration_ms);
        let end = st.log.log_end_offset();
        st.log.checkpoint().map_err(|e| self.log_err(e))?;
        st.log.sync_txn_indexes().map_err(|e| self.log_err(e))?;
        let path = st.log.dir().join(PRODUCER_SNAPSHOT);
        st.producers
            .write_snapshot(&path, end)
            .map_err(|source| self.log_err(LogError::Io { path, source }))
    }

    /// At shutdown: sync everything, write and trim the index maps, write the recovery point and
    /// producer snapshot.
    pub async fn close(&self, producer_expiration_ms: i64) -> Result<(), PartitionError> {
        self.flush().await?;
        self.state()
            .log
            .close_indexes()
            .map_err(|e| self.log_err(e))?;
        self.checkpoint(producer_expiration_ms)
    }

    pub fn dir(&self) -> PathBuf {
        self.state().log.dir().to_path_buf()
    }
}

/// Rebuilds producer state from the snapshot (if it is usable) and the batches after it. The
/// transaction indexes are rebuilt from the same point: entries for markers at or after it are
/// dropped and re-added by the replay, so an entry lost in a crash comes back.
fn load_producer_state(log: &mut Log) -> Result<ProducerStateManager, LogError> {
    let path = log.dir().join(PRODUCER_SNAPSHOT);
    let (mut producers, from) = match ProducerStateManager::read_snapshot(&path) {
        Some((state, offset))
            if offset <= log.log_end_offset() && offset >= log.log_start_offset() =>
        {
            (state, offset)
        }
        _ => (ProducerStateManager::default(), log.log_start_offset()),
    };
    log.truncate_aborted_from(from)?;
    let mut completed = Vec::new();
    for bytes in log.batch_bytes_from(from) {
        let Some(h) = BatchHeader::parse(&bytes) else {
            continue;
        };
        if h.base_offset() < from {
            continue;
        }
        if let Some(done) = producers.replay(&bytes) {
            let lso_after = producers.last_stable_offset(h.last_offset() + 1);
            completed.push((done, lso_after));
        }
    }
    for (done, last_stable_offset) in completed {
        if done.marker == Marker::Abort {
            log.add_aborted_txn(AbortedTxn {
                producer_id: done.producer_id,
                first_offset: done.first_offset,
                last_offset: done.marker_offset,
                last_stable_offset,
            })?;
        }
    }
    Ok(producers)
}

/// Reads a batch and finds its first record at or after `min_offset` with a timestamp at or
/// after `timestamp` (records are skipped, not kept: the hardened reader's skipping mode).
fn first_record_at_or_after(batch: Bytes, timestamp: i64, min_offset: i64) -> Option<(i64, i64)> {
    use crate::log::records::{self, Fields, Limits};
    let h = BatchHeader::parse(&batch)?;
    let limits = Limits::stored(Fields::Skip);
    let mut found = None;
    let read = records::for_each(&batch, limits, |r| {
        let (offset, ts) = (r.offset(&h), r.timestamp(&h));
        if ts >= timestamp && offset >= min_offset {
            found = Some((offset, ts));
            return Ok(false);
        }
        Ok(true)
    });
    if let Err(e) = read {
        tracing::warn!(offset = h.base_offset(), error = %e, "a stored batch does not read back");
    }
    found
}

#[cfg(test)]
mod tests;

//! Per-partition state of idempotent producers: the epoch and the last few batches of each
//! producer id, so a retried batch is recognised and answered with its original offsets and a
//! gap in sequence numbers is refused.
//!
//! Transactions are tracked here too: the first offset of each producer's ongoing transaction
//! (the earliest of them bounds the last stable offset), closed by a commit or abort marker.
//!
//! The state is rebuilt from the batches of the log, starting from the last snapshot (taken at
//! checkpoints and at clean shutdown), so it survives restarts and crashes.

use crate::log::batch::{self, BatchHeader, Marker};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::path::Path;
use thiserror::Error;

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5, the
/// most in-flight requests an idempotent producer may have).
const CACHED_BATCHES: usize = 5;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProducerError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    InvalidEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: expected sequence {expected} but got {got}")]
    OutOfOrder {
        producer_id: i64,
        expected: i64,
        got: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CachedBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    last_offset: i64,
    timestamp: i64,
}

#[derive(Debug, Clone, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<CachedBatch>,
    last_timestamp: i64,
    /// First offset of the producer's ongoing transaction on this partition.
    txn_first_offset: Option<i64>,
    /// Epoch of the coordinator that wrote this producer's last marker (-1: none yet).
    coordinator_epoch: i32,
}

impl ProducerEntry {
    fn new(epoch: i16) -> Self {
        Self {
            epoch,
            coordinator_epoch: -1,
            ..Default::default()
        }
    }
}

/// A producer as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    pub txn_start_offset: i64,
}

/// A transaction closed by a marker: its producer, first offset, and the marker's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub marker_offset: i64,
    pub marker: Marker,
}

/// What a batch from a producer should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it: the next in sequence (or not from an idempotent producer).
    Append,
    /// A retry of a batch already in the log at these offsets: acknowledge it, append nothing.
    Duplicate { base_offset: i64, last_offset: i64 },
}

/// The batch facts the producer state needs.
#[derive(Debug, Clone, Copy)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub timestamp: i64,
    pub transactional: bool,
}

impl ProducerBatch {
    /// The producer facts of a data batch (`None` for batches without a producer id and for
    /// control batches, which `complete_txn` handles).
    pub fn from_header(h: &BatchHeader<'_>) -> Option<Self> {
        (h.producer_id() >= 0 && !h.is_control()).then(|| Self {
            producer_id: h.producer_id(),
            epoch: h.producer_epoch(),
            first_seq: h.base_sequence(),
            last_seq: h.last_sequence(),
            timestamp: h.max_timestamp(),
            transactional: h.is_transactional(),
        })
    }
}

#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Ongoing transactions by first offset (the producer id as value).
    ongoing: BTreeMap<i64, i64>,
}

fn next_seq(seq: i32) -> i64 {
    if seq == i32::MAX {
        0
    } else {
        seq as i64 + 1
    }
}

impl ProducerStateManager {
    /// Decides what to do with `batch`, as Kafka's producer state does: an older epoch is fenced;
    /// a new epoch must start at sequence 0; within an epoch a cached batch is a duplicate and
    /// anything else must follow the last sequence. An unknown producer may start anywhere
    /// (its state may have expired).
    pub fn check(&self, batch: &ProducerBatch) -> Result<SequenceCheck, ProducerError> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if batch.epoch < entry.epoch {
            return Err(ProducerError::InvalidEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current: entry.epoch,
            });
        }
        if batch.first_seq < 0 {
            // No sequence: a coordinator's transactional write (offsets in a transaction).
            return Ok(SequenceCheck::Append);
        }
        if batch.epoch > entry.epoch {
            if batch.first_seq != 0 {
                return Err(ProducerError::OutOfOrder {
                    producer_id: batch.producer_id,
                    expected: 0,
                    got: batch.first_seq,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == batch.first_seq && b.last_seq == batch.last_seq)
        {
            return Ok(SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
                last_offset: dup.last_offset,
            });
        }
        match entry.batches.back() {
            Some(last) if next_seq(last.last_seq) != batch.first_seq as i64 => {
                Err(ProducerError::OutOfOrder {
                    producer_id: batch.producer_id,
                    expected: next_seq(last.last_seq),
                    got: batch.first_seq,
                })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Whether `producer_id` has a transaction open on this partition.
    pub fn in_transaction(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.txn_first_offset.is_some())
    }

    /// Checks a marker's epoch: a marker from an older epoch than the producer's is fenced.
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), ProducerError> {
        match self.producers.get(&producer_id) {
            Some(e) if epoch < e.epoch => Err(ProducerError::InvalidEpoch {
                producer_id,
                epoch,
                current: e.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Applies a commit or abort marker written at `offset`: the producer's ongoing transaction
    /// (if any) is closed and returned. A higher epoch becomes the producer's epoch.
    pub fn complete_txn(
        &mut self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        offset: i64,
        coordinator_epoch: i32,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::new(epoch));
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        let first_offset = entry.txn_first_offset.take()?;
        self.ongoing.remove(&first_offset);
        Some(CompletedTxn {
            producer_id,
            first_offset,
            marker_offset: offset,
            marker,
        })
    }

    /// The first offset of the earliest ongoing transaction, which bounds the last stable offset.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// The last stable offset under high watermark `hw`: below it every transaction is decided.
    pub fn last_stable_offset(&self, hw: i64) -> i64 {
        self.first_unstable_offset()
            .map_or(hw, |first| first.min(hw))
    }

    /// Every producer known here, for DescribeProducers.
    pub fn views(&self) -> Vec<ProducerView> {
        let mut out: Vec<ProducerView> = self
            .producers
            .iter()
            .map(|(pid, e)| ProducerView {
                producer_id: *pid,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                txn_start_offset: e.txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|v| v.producer_id);
        out
    }

    /// Records an appended batch at `base_offset..=last_offset`.
    pub fn record(&mut self, batch: &ProducerBatch, base_offset: i64, last_offset: i64) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry::new(batch.epoch));
        if batch.transactional && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(base_offset);
            self.ongoing.insert(base_offset, batch.producer_id);
        }
        if batch.epoch != entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        if batch.first_seq < 0 {
            entry.last_timestamp = entry.last_timestamp.max(batch.timestamp);
            return;
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(CachedBatch {
            first_seq: batch.first_seq,
            last_seq: batch.last_seq,
            base_offset,
            last_offset,
            timestamp: batch.timestamp,
        });
        entry.last_timestamp = entry.last_timestamp.max(batch.timestamp);
    }

    /// Replays a whole batch read back from the log; returns the transaction a marker closed.
    pub fn replay(&mut self, bytes: &[u8]) -> Option<CompletedTxn> {
        let h = BatchHeader::parse(bytes)?;
        if let Some(b) = ProducerBatch::from_header(&h) {
            self.record(&b, h.base_offset(), h.last_offset());
            return None;
        }
        if h.is_control() && h.producer_id() >= 0 {
            let (marker, coordinator_epoch) = batch::marker_of(bytes)?;
            return self.complete_txn(
                h.producer_id(),
                h.producer_epoch(),
                marker,
                h.base_offset(),
                coordinator_epoch,
                h.max_timestamp(),
            );
        }
        None
    }

    /// Forgets producers whose last batch is older than `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`); a producer with an open transaction is kept.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms - e.last_timestamp <= expiration_ms
        });
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Writes the state as of `offset` (exclusive) to `path`, atomically.
    pub fn write_snapshot(&self, path: &Path, offset: i64) -> io::Result<()> {
        let mut text = format!("offset {offset}\n");
        for (pid, e) in &self.producers {
            text.push_str(&format!(
                "p {pid} {} {} {} {}\n",
                e.epoch,
                e.last_timestamp,
                e.txn_first_offset.unwrap_or(-1),
                e.coordinator_epoch
            ));
            for b in &e.batches {
                text.push_str(&format!(
                    "b {pid} {} {} {} {} {}\n",
                    b.first_seq, b.last_seq, b.base_offset, b.last_offset, b.timestamp
                ));
            }
        }
        crate::log::write_atomically(path, text.as_bytes())
    }

    /// Reads a snapshot: the state and the offset it covers up to. `None` when absent or damaged.
    pub fn read_snapshot(path: &Path) -> Option<(Self, i64)> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        let offset = lines.next()?.strip_prefix("offset ")?.parse().ok()?;
        let mut state = Self::default();
        for line in lines {
            let (kind, rest) = line.split_once(' ')?;
            let f: Vec<i64> = rest
                .split(' ')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            match (kind, &f[..]) {
                ("p", &[pid, epoch, last_ts, txn_first, coordinator_epoch]) => {
                    let entry = ProducerEntry {
                        epoch: epoch as i16,
                        batches: VecDeque::new(),
                        last_timestamp: last_ts,
                        txn_first_offset: (txn_first >= 0).then_some(txn_first),
                        coordinator_epoch: coordinator_epoch as i32,
                    };
                    if txn_first >= 0 {
                        state.ongoing.insert(txn_first, pid);
                    }
                    state.producers.insert(pid, entry);
                }
                ("b", &[pid, first, last, base, last_off, ts]) => {
                    let entry = state.producers.get_mut(&pid)?;
                    entry.batches.push_back(CachedBatch {
                        first_seq: first as i32,
                        last_seq: last as i32,
                        base_offset: base,
                        last_offset: last_off,
                        timestamp: ts,
                    });
                }
                _ => return None,
            }
        }
        Some((state, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pid: i64, epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            first_seq: first,
            last_seq: last,
            timestamp: 1,
            transactional: false,
        }
    }

    fn txn(pid: i64, epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            transactional: true,
            ..b(pid, epoch, first, last)
        }
    }

    #[test]
    fn transactions_bound_the_stable_offset_until_their_marker() {
        let mut s = ProducerStateManager::default();
        s.record(&txn(1, 0, 0, 1), 10, 11);
        s.record(&txn(2, 0, 0, 0), 12, 12);
        s.record(&txn(1, 0, 2, 2), 13, 13);
        assert_eq!(s.first_unstable_offset(), Some(10));
        assert!(s.in_transaction(1));
        let done = s.complete_txn(1, 0, Marker::Abort, 14, 0, 1).unwrap();
        assert_eq!((done.first_offset, done.marker_offset), (10, 14));
        assert_eq!(s.first_unstable_offset(), Some(12));
        assert!(s.complete_txn(1, 0, Marker::Commit, 15, 0, 1).is_none());
        s.complete_txn(2, 1, Marker::Commit, 16, 0, 1).unwrap();
        assert_eq!(s.first_unstable_offset(), None);
        assert!(matches!(
            s.check(&txn(2, 0, 1, 1)),
            Err(ProducerError::InvalidEpoch { .. })
        ));
        assert!(s.check_marker(2, 0).is_err());
    }

    #[test]
    fn snapshot_keeps_ongoing_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::default();
        s.record(&txn(5, 1, 0, 3), 20, 23);
        let path = dir.path().join("snap");
        s.write_snapshot(&path, 24).unwrap();
        let (mut r, _) = ProducerStateManager::read_snapshot(&path).unwrap();
        assert_eq!(r.first_unstable_offset(), Some(20));
        let done = r.complete_txn(5, 1, Marker::Commit, 24, 0, 1).unwrap();
        assert_eq!(done.first_offset, 20);
    }

    #[test]
    fn in_sequence_duplicate_and_gap() {
        let mut s = ProducerStateManager::default();
        assert_eq!(s.check(&b(1, 0, 0, 4)), Ok(SequenceCheck::Append));
        s.record(&b(1, 0, 0, 4), 100, 104);
        assert_eq!(s.check(&b(1, 0, 5, 9)), Ok(SequenceCheck::Append));
        s.record(&b(1, 0, 5, 9), 105, 109);
        assert_eq!(
            s.check(&b(1, 0, 0, 4)),
            Ok(SequenceCheck::Duplicate {
                base_offset: 100,
                last_offset: 104
            })
        );
        assert!(matches!(
            s.check(&b(1, 0, 11, 12)),
            Err(ProducerError::OutOfOrder { expected: 10, .. })
        ));
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut s = ProducerStateManager::default();
        s.record(&b(1, 3, 0, 0), 0, 0);
        assert!(matches!(
            s.check(&b(1, 2, 1, 1)),
            Err(ProducerError::InvalidEpoch { .. })
        ));
        assert!(matches!(
            s.check(&b(1, 4, 1, 1)),
            Err(ProducerError::OutOfOrder { .. })
        ));
        assert_eq!(s.check(&b(1, 4, 0, 0)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_duplicates() {
        let mut s = ProducerStateManager::default();
        for i in 0..7 {
            s.record(&b(9, 0, i, i), i as i64, i as i64);
        }
        assert!(matches!(
            s.check(&b(9, 0, 1, 1)),
            Err(ProducerError::OutOfOrder { .. })
        ));
        assert!(matches!(
            s.check(&b(9, 0, 3, 3)),
            Ok(SequenceCheck::Duplicate { .. })
        ));
    }

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerStateManager::default();
        s.record(&b(1, 2, 0, 4), 10, 14);
        s.record(&b(7, 0, 0, 0), 15, 15);
        let path = dir.path().join("producer-state.snapshot");
        s.write_snapshot(&path, 16).unwrap();
        let (r, offset) = ProducerStateManager::read_snapshot(&path).unwrap();
        assert_eq!(offset, 16);
        assert_eq!(
            r.check(&b(1, 2, 0, 4)),
            Ok(SequenceCheck::Duplicate {
                base_offset: 10,
                last_offset: 14
            })
        );
        assert_eq!(r.len(), 2);
    }
}

//! Per-partition state of idempotent producers: the epoch and the last few batches of each
//! producer id, so a retried batch is recognised and answered with its original offsets and a
//! gap in sequence numbers is refused.
//!
//! The state is rebuilt from the batch headers of the log, starting from the last snapshot (taken
//! at segment roll and at clean shutdown), so it survives restarts and crashes.

use crate::log::batch::BatchHeader;
use std::collections::{HashMap, VecDeque};
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
}

impl ProducerBatch {
    pub fn from_header(h: &BatchHeader<'_>) -> Option<Self> {
        (h.producer_id() >= 0).then(|| Self {
            producer_id: h.producer_id(),
            epoch: h.producer_epoch(),
            first_seq: h.base_sequence(),
            last_seq: h.last_sequence(),
            timestamp: h.max_timestamp(),
        })
    }
}

#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
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

    /// Records an appended batch at `base_offset..=last_offset`.
    pub fn record(&mut self, batch: &ProducerBatch, base_offset: i64, last_offset: i64) {
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.epoch != entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
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

    /// Replays a batch header read back from the log.
    pub fn replay(&mut self, h: &BatchHeader<'_>) {
        if let Some(b) = ProducerBatch::from_header(h) {
            self.record(&b, h.base_offset(), h.last_offset());
        }
    }

    /// Forgets producers whose last batch is older than `expiration_ms` (Kafka's
    /// `producer.id.expiration.ms`).
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers
            .retain(|_, e| now_ms - e.last_timestamp <= expiration_ms);
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
            for b in &e.batches {
                text.push_str(&format!(
                    "{pid} {} {} {} {} {} {}\n",
                    e.epoch, b.first_seq, b.last_seq, b.base_offset, b.last_offset, b.timestamp
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
            let f: Vec<i64> = line
                .split(' ')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let [pid, epoch, first, last, base, last_off, ts] = f[..] else {
                return None;
            };
            let batch = ProducerBatch {
                producer_id: pid,
                epoch: epoch as i16,
                first_seq: first as i32,
                last_seq: last as i32,
                timestamp: ts,
            };
            state.record(&batch, base, last_off);
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
        }
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

//! The log as replication needs it: appending a leader's batches as they are (offsets and
//! epochs already stamped), truncating back to where a follower diverged from a new leader, and
//! the leader epoch cache that says where that is.

use super::batch::{self, BatchError, BatchHeader};
use super::segment::Segment;
use super::{io_err, AppendInfo, Log, LogError};

impl Log {
    /// Appends batches fetched from the leader, keeping their offsets and leader epochs. Each
    /// must pass its checks and start at the log end.
    pub fn append_as_follower(&mut self, batches: &[u8]) -> Result<AppendInfo, LogError> {
        let base_offset = self.log_end_offset;
        let mut expected = base_offset;
        let mut max_timestamp = -1;
        let mut epochs = Vec::new();
        for (at, h) in batch::batches(batches) {
            batch::validate_stored(&batches[at..at + h.total_len()])?;
            if h.base_offset() != expected {
                return Err(BatchError::Invalid(format!(
                    "a replicated batch starts at offset {} but the log ends at {expected}",
                    h.base_offset()
                ))
                .into());
            }
            epochs.push((h.partition_leader_epoch(), h.base_offset()));
            max_timestamp = max_timestamp.max(h.max_timestamp());
            expected = h.last_offset() + 1;
        }
        if expected == base_offset {
            return Err(BatchError::Invalid("no record batches".into()).into());
        }
        self.maybe_roll(batches.len() as u64, max_timestamp)?;
        let active = self.active();
        let path = active.log_path().to_path_buf();
        active.append(batches).map_err(io_err(&path))?;
        self.log_end_offset = expected;
        for (epoch, start) in epochs {
            self.epochs
                .assign(epoch, start)
                .map_err(io_err(&self.dir))?;
        }
        Ok(AppendInfo {
            base_offset,
            last_offset: expected - 1,
            log_append_time: -1,
        })
    }

    /// Removes everything at or after `offset` (cut at a batch boundary: a batch holding
    /// `offset` goes whole), so the log ends where a new leader's log agrees with it.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset >= self.log_end_offset {
            // No data goes, but an epoch this log led without writing (assigned at the log end
            // when it took the lead) does: it is not an epoch of any record here, and naming it
            // as the last fetched epoch would make the leader answer the same divergence again.
            return self
                .epochs
                .truncate_from_end(offset)
                .map_err(io_err(&self.dir));
        }
        let offset = offset.max(self.log_start_offset);
        // Segments starting after `offset` go whole; the one holding it is cut.
        let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for base in doomed {
            let seg = self.segments.remove(&base).expect("listed above");
            let path = seg.log_path().to_path_buf();
            seg.delete().map_err(io_err(&path))?;
        }
        // The segment now last becomes the active one again, cut back to `offset`.
        let (&base, _) = self
            .segments
            .iter()
            .next_back()
            .expect("a log always has a segment");
        let old = self.segments.remove(&base).expect("present");
        let path = old.log_path().to_path_buf();
        drop(old);
        let mut seg = Segment::open(&self.dir, base, self.sizes(), true).map_err(io_err(&path))?;
        seg.truncate_to(offset).map_err(io_err(&path))?;
        self.log_end_offset = seg.next_offset();
        self.segments.insert(base, seg);
        self.recovery_point = self.recovery_point.min(self.log_end_offset);
        self.cleaner_checkpoint = self.cleaner_checkpoint.min(self.log_end_offset);
        self.epochs
            .truncate_from_end(self.log_end_offset)
            .map_err(io_err(&self.dir))?;
        self.checkpoint()
    }

    /// A follower whose whole log lies below the leader's log start (retention or DeleteRecords
    /// removed what it would fetch next): everything goes and the log restarts, empty, at
    /// `offset` (Kafka's `truncateFullyAndStartAt`).
    pub fn reset_to(&mut self, offset: i64) -> Result<(), LogError> {
        let doomed: Vec<i64> = self.segments.keys().copied().collect();
        self.new_segment(offset)?;
        for base in doomed.into_iter().filter(|b| *b != offset) {
            let seg = self.segments.remove(&base).expect("listed above");
            let path = seg.log_path().to_path_buf();
            seg.delete().map_err(io_err(&path))?;
        }
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.recovery_point = offset;
        self.cleaner_checkpoint = offset;
        self.epochs
            .truncate_from_start(offset)
            .map_err(io_err(&self.dir))?;
        self.epochs
            .truncate_from_end(offset)
            .map_err(io_err(&self.dir))?;
        self.checkpoint()
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` and where it ends.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset)
    }

    /// Makes `epoch` the current leader epoch from the log end on (a partition taking the lead).
    pub fn assign_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        let end = self.log_end_offset;
        self.epochs.assign(epoch, end).map_err(io_err(&self.dir))
    }

    pub fn epoch_entries(&self) -> &[(i32, i64)] {
        self.epochs.entries()
    }

    /// At open: epochs past the (recovered) log end go; a cache that was lost or never written
    /// is rebuilt from the batch headers.
    pub(super) fn reconcile_epochs(&mut self) -> Result<(), LogError> {
        let (start, end) = (self.log_start_offset, self.log_end_offset);
        self.epochs
            .truncate_from_end(end)
            .map_err(io_err(&self.dir))?;
        if self.epochs.latest().is_none() && end > start {
            // Lost or never written (a log from before the cache): rebuilt from the headers.
            let starts: Vec<(i32, i64)> = self
                .batch_bytes_from(start)
                .filter_map(|b| {
                    BatchHeader::parse(&b).map(|h| (h.partition_leader_epoch(), h.base_offset()))
                })
                .collect();
            for (epoch, offset) in starts {
                self.epochs
                    .assign(epoch, offset)
                    .map_err(io_err(&self.dir))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::log::batch::{stamp_offset_and_epoch, tests::make_batch};
    use crate::log::{Log, LogConfig};

    fn config() -> LogConfig {
        LogConfig::for_tests(1024)
    }

    /// A batch of 5 records as a leader at `epoch` wrote it at `offset`.
    fn replicated(offset: i64, epoch: i32) -> Vec<u8> {
        let mut b = make_batch(0, 5, 1000, (-1, -1, -1));
        stamp_offset_and_epoch(&mut b, offset, epoch);
        b
    }

    #[test]
    fn a_follower_appends_truncates_to_a_divergence_and_keeps_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), config(), true).unwrap();
        for i in 0..30 {
            let epoch = if i < 20 { 0 } else { 3 };
            log.append_as_follower(&replicated(i * 5, epoch)).unwrap();
        }
        assert_eq!(log.log_end_offset(), 150);
        assert!(log.segment_count() > 3);
        assert_eq!(log.epoch_entries(), &[(0, 0), (3, 100)]);
        assert_eq!(log.end_offset_for_epoch(0), (0, 100));
        assert_eq!(log.end_offset_for_epoch(3), (3, 150));
        // A gap or an overlap is refused.
        assert!(log.append_as_follower(&replicated(160, 3)).is_err());
        assert!(log.append_as_follower(&replicated(145, 3)).is_err());

        // A new leader's log agrees only up to 102: the batch holding it goes whole.
        log.truncate_to(102).unwrap();
        assert_eq!(log.log_end_offset(), 100);
        assert_eq!(log.epoch_entries(), &[(0, 0)]);
        assert!(log.read(95, 1 << 20, i64::MAX).unwrap().is_some());
        assert!(log.read(100, 1 << 20, i64::MAX).unwrap().is_none());
        log.append_as_follower(&replicated(100, 4)).unwrap();
        assert_eq!(
            log.end_offset_for_epoch(3),
            (0, 100),
            "epoch 3 is gone from this log"
        );
        drop(log);
        let (log, _) = Log::open(dir.path(), config(), false).unwrap();
        assert_eq!(log.log_end_offset(), 105);
        assert_eq!(log.epoch_entries(), &[(0, 0), (4, 100)]);
    }

    #[test]
    fn a_leader_append_starts_its_epoch_and_a_lost_cache_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), config(), true).unwrap();
        let mut b = make_batch(0, 5, 1000, (-1, -1, -1));
        log.append(&mut b, 2, 1000).unwrap();
        let mut b = make_batch(0, 5, 1000, (-1, -1, -1));
        log.append(&mut b, 7, 1000).unwrap();
        assert_eq!(log.epoch_entries(), &[(2, 0), (7, 5)]);
        drop(log);
        std::fs::remove_file(dir.path().join("leader-epoch-checkpoint")).unwrap();
        let (log, _) = Log::open(dir.path(), config(), true).unwrap();
        assert_eq!(
            log.epoch_entries(),
            &[(2, 0), (7, 5)],
            "rebuilt from the headers"
        );
    }

    #[test]
    fn truncating_at_the_log_end_drops_an_epoch_led_without_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Log::open(dir.path(), config(), true).unwrap();
        log.append_as_follower(&replicated(0, 1)).unwrap();
        // Led epoch 2 briefly and wrote nothing; then a new leader answers with a divergence
        // whose end is this log's end.
        log.assign_epoch(2).unwrap();
        assert_eq!(log.epoch_entries(), &[(1, 0), (2, 5)]);
        log.truncate_to(5).unwrap();
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(
            log.epoch_entries(),
            &[(1, 0)],
            "epoch 2 has no records here"
        );
    }
}

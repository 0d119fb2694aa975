//! The partition log: an ordered set of segments on local disk.
//!
//! Offsets: `log_start_offset` is the first offset a reader may ask for; `log_end_offset` is the
//! offset the next appended record gets; `recovery_point` is the offset below which every byte is
//! known to be on stable storage (fsynced). Segments are named by their base offset and hold
//! whole v2 batches, contiguous in offset.
//!
//! Locking rule: a `Log` has one owner (its partition), which serialises appends behind a mutex;
//! one appender per partition. Nothing here blocks on fsync: `flush_files` hands out the files to
//! sync and the caller syncs them off the async workers, then calls `mark_flushed`.

pub mod batch;
pub mod cleaner;
pub mod epoch_cache;
pub mod index;
pub mod records;
pub mod replica;
pub mod segment;
pub mod txn_index;

use batch::{BatchError, BatchHeader};
use bytes::Bytes;
use segment::{Segment, SegmentSizes};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

const RECOVERY_POINT_FILE: &str = "recovery-point";
const LOG_START_FILE: &str = "log-start-offset";

/// Per-log settings, resolved from the topic's configs and the broker's defaults.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub segment_index_bytes: usize,
    pub index_interval_bytes: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    /// `cleanup.policy` contains `delete`: retention by time and size applies.
    pub retention_enabled: bool,
    /// `cleanup.policy` contains `compact`: the cleaner keeps the latest record per key.
    pub compaction: Option<CompactionConfig>,
}

#[cfg(test)]
impl LogConfig {
    /// Settings for tests: segments of `segment_bytes`, small indexes, no retention limits, no
    /// compaction.
    pub(crate) fn for_tests(segment_bytes: u64) -> Self {
        LogConfig {
            segment_bytes,
            segment_ms: i64::MAX,
            segment_index_bytes: 4096,
            index_interval_bytes: 100,
            retention_ms: -1,
            retention_bytes: -1,
            max_message_bytes: 1 << 20,
            log_append_time: false,
            retention_enabled: true,
            compaction: None,
        }
    }

    /// `for_tests` as a compacted log (`cleanup.policy=compact`).
    pub(crate) fn compacted_for_tests(segment_bytes: u64, compaction: CompactionConfig) -> Self {
        LogConfig {
            retention_enabled: false,
            compaction: Some(compaction),
            ..Self::for_tests(segment_bytes)
        }
    }
}

/// The compaction settings of a log (Kafka's topic configs of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionConfig {
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
}

#[derive(Debug, Error)]
pub enum LogError {
    #[error("log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("offset {offset} is outside the log [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("segment {path} is corrupt: the batch at offset {offset} fails its CRC-32C")]
    Corrupt {
        path: PathBuf,
        segment: i64,
        offset: i64,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The time stamped into the batches for LogAppendTime topics, else -1.
    pub log_append_time: i64,
}

/// What opening a log found and repaired.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub recovered_segments: usize,
    pub truncated_bytes: u64,
    pub problems: Vec<String>,
}

pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    recovery_point: i64,
    /// Offsets below this have been compacted against everything up to it.
    cleaner_checkpoint: i64,
    /// When a tombstone kept by the last compaction may be removed (unknown after a restart:
    /// the first pass checks).
    tombstone_expiry: Option<i64>,
    /// The first offset of each leader epoch (see `epoch_cache`).
    epochs: epoch_cache::EpochCache,
}

impl Log {
    /// Opens the log in `dir` (created if needed). After an unclean shutdown every segment from
    /// the one holding the recovery point on is validated batch by batch; a corrupt or torn tail
    /// is cut off, and segments after a cut are removed, so the log stays a contiguous prefix.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<(Self, RecoveryReport), LogError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let swap_note = cleaner::recover(dir).map_err(io_err(dir))?;
        let mut bases = list_segments(dir).map_err(io_err(dir))?;
        bases.sort_unstable();
        let recovery_point = read_offset_file(&dir.join(RECOVERY_POINT_FILE)).unwrap_or(0);
        let mut log_start_offset = read_offset_file(&dir.join(LOG_START_FILE)).unwrap_or(0);
        let mut log = Self {
            dir: dir.to_path_buf(),
            config,
            segments: BTreeMap::new(),
            log_start_offset: 0,
            log_end_offset: 0,
            recovery_point: 0,
            cleaner_checkpoint: cleaner::read_checkpoint(dir),
            tombstone_expiry: Some(i64::MIN),
            epochs: epoch_cache::EpochCache::open(dir),
        };
        let mut report = RecoveryReport {
            segments: bases.len(),
            ..Default::default()
        };
        report.problems.extend(swap_note);
        let recover_from = bases
            .iter()
            .rev()
            .find(|b| **b <= recovery_point)
            .copied()
            .unwrap_or(0);
        let last = bases.last().copied();
        let mut cut = false;
        for base in bases {
            let path = dir.join(segment::file_name(base, "log"));
            if cut {
                Segment::open(dir, base, log.sizes(), false)
                    .map_err(io_err(&path))?
                    .delete()
                    .map_err(io_err(&path))?;
                report.problems.push(format!(
                    "removed segment {} after a truncated one",
                    path.display()
                ));
                continue;
            }
            let mut seg =
                Segment::open(dir, base, log.sizes(), Some(base) == last).map_err(io_err(&path))?;
            if (!clean_shutdown && base >= recover_from) || !seg.indexes_sane() {
                let before = seg.size();
                let scan = seg.recover().map_err(io_err(&path))?;
                report.recovered_segments += 1;
                if let Some(problem) = scan.error {
                    report.truncated_bytes += before - scan.valid_bytes;
                    report
                        .problems
                        .push(format!("segment {} truncated: {problem}", path.display()));
                    cut = true;
                }
            }
            if Some(base) != last && !cut {
                seg.seal().map_err(io_err(&path))?;
            }
            log.segments.insert(base, seg);
        }
        if cut {
            // The segment that was cut becomes the active one.
            let (&base, _) = log
                .segments
                .iter()
                .next_back()
                .expect("a cut segment exists");
            let seg = log.segments.remove(&base).expect("present");
            let path = seg.log_path().to_path_buf();
            drop(seg);
            let reopened = Segment::open(dir, base, log.sizes(), true).map_err(io_err(&path))?;
            log.segments.insert(base, reopened);
        }
        if let Some(first) = log.segments.values().next() {
            log_start_offset = log_start_offset.max(first.base_offset());
        }
        log.log_end_offset = log
            .segments
            .values()
            .next_back()
            .map_or(log_start_offset, |s| s.next_offset());
        log_start_offset = log_start_offset.min(log.log_end_offset);
        if log.segments.is_empty() {
            log.new_segment(log_start_offset)?;
        }
        log.log_start_offset = log_start_offset;
        log.recovery_point = if clean_shutdown {
            log.log_end_offset
        } else {
            recovery_point.min(log.log_end_offset)
        };
        log.reconcile_epochs()?;
        Ok((log, report))
    }

    fn sizes(&self) -> SegmentSizes {
        SegmentSizes {
            capacity: self
                .config
                .segment_bytes
                .max(self.config.max_message_bytes as u64 + batch::HEADER_LEN as u64),
            index_bytes: self.config.segment_index_bytes,
            index_interval_bytes: self.config.index_interval_bytes,
        }
    }

    fn new_segment(&mut self, base_offset: i64) -> Result<(), LogError> {
        if let Some(active) = self.segments.values_mut().next_back() {
            active.seal().map_err(io_err(&self.dir))?;
        }
        let seg =
            Segment::open(&self.dir, base_offset, self.sizes(), true).map_err(io_err(&self.dir))?;
        self.segments.insert(base_offset, seg);
        // Make the new file's directory entry durable along with its first data.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn active(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// Checks `batches` against this log's settings (see [`validate_produced`]).
    pub fn validate(&self, batches: &[u8]) -> Result<i64, LogError> {
        validate_produced(&self.config, batches)
    }

    /// Appends validated batches as leader: stamps offsets from the log end and `leader_epoch`
    /// into each header (and the time, for LogAppendTime topics), rolls when due, and writes.
    pub fn append(
        &mut self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let base_offset = self.log_end_offset;
        let mut next = base_offset;
        let mut max_timestamp = -1;
        let mut pos = 0usize;
        while pos < batches.len() {
            let (len, count) = {
                let h = BatchHeader::parse(&batches[pos..]).expect("validated");
                (h.total_len(), h.last_offset_delta() as i64 + 1)
            };
            let one = &mut batches[pos..pos + len];
            batch::stamp_offset_and_epoch(one, next, leader_epoch);
            if self.config.log_append_time {
                batch::stamp_log_append_time(one, now_ms);
            }
            max_timestamp =
                max_timestamp.max(BatchHeader::parse(one).expect("validated").max_timestamp());
            next += count;
            pos += len;
        }
        self.maybe_roll(batches.len() as u64, max_timestamp)?;
        let active = self.active();
        let path = active.log_path().to_path_buf();
        active.append(batches).map_err(io_err(&path))?;
        self.log_end_offset = next;
        self.epochs
            .assign(leader_epoch, base_offset)
            .map_err(io_err(&self.dir))?;
        let log_append_time = if self.config.log_append_time {
            now_ms
        } else {
            -1
        };
        Ok(AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time,
        })
    }

    /// Rolls a new active segment when `len` more bytes would pass `segment_bytes`, the mapping or
    /// an index is full, or the segment's first batch is older than `segment_ms`.
    fn maybe_roll(&mut self, len: u64, max_timestamp: i64) -> Result<bool, LogError> {
        let (segment_bytes, segment_ms) = (self.config.segment_bytes, self.config.segment_ms);
        let active = self.active();
        if active.is_empty() {
            return Ok(false);
        }
        let too_big = active.size() + len > segment_bytes || !active.has_room(len);
        let too_old = active
            .first_batch_timestamp()
            .is_some_and(|t| max_timestamp.saturating_sub(t) > segment_ms);
        if too_big || too_old {
            let base = self.log_end_offset;
            self.new_segment(base)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whole batches from `offset`, at most `max_bytes` (but at least one batch), none reaching
    /// `upper_bound` (the high watermark for consumers). `Ok(None)` when nothing is there yet.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
    ) -> Result<Option<Bytes>, LogError> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end: self.log_end_offset,
            });
        }
        for seg in self
            .segments
            .range(..=offset)
            .next_back()
            .into_iter()
            .map(|(_, s)| s)
            .chain(self.segments.range(offset + 1..).map(|(_, s)| s))
        {
            if let Some(bytes) = seg.read(offset.max(seg.base_offset()), max_bytes, upper_bound) {
                // Nothing that fails its CRC is ever served (a flipped bit on disk).
                for (at, h) in batch::batches(&bytes) {
                    if !batch::crc_matches(&bytes[at..at + h.total_len()]) {
                        return Err(LogError::Corrupt {
                            path: seg.log_path().to_path_buf(),
                            segment: seg.base_offset(),
                            offset: h.base_offset(),
                        });
                    }
                }
                return Ok(Some(bytes));
            }
            if seg.next_offset() > offset {
                break;
            }
        }
        Ok(None)
    }

    /// Whole batches (as bytes) from the batch holding `offset`, lazily, across segments.
    pub fn batch_bytes_from(&self, offset: i64) -> impl Iterator<Item = Bytes> + '_ {
        let first = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        self.segments
            .range(first..)
            .flat_map(move |(_, s)| s.batch_bytes_from(offset.max(s.base_offset())))
    }

    /// Start offsets, per segment, for a search by timestamp: (segment max timestamp, offset).
    pub fn timestamp_search_start(&self, timestamp: i64) -> Option<i64> {
        self.segments
            .values()
            .find(|s| s.max_timestamp() >= timestamp)
            .map(|s| s.time_lookup(timestamp))
    }

    /// The log end offset and the files holding data not yet known to be on stable storage.
    pub fn flush_files(&self) -> (i64, Vec<Arc<File>>) {
        let from = self
            .segments
            .range(..=self.recovery_point)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        let files = self
            .segments
            .range(from..)
            .flat_map(|(_, s)| [s.file(), s.txn_file()])
            .collect();
        (self.log_end_offset, files)
    }

    /// After corruption was found in the segment at `segment`: the recovery point moves back to
    /// it (persisted), so the next start validates from there and cuts the bad tail.
    pub fn mark_corrupt(&mut self, segment: i64) -> Result<(), LogError> {
        self.recovery_point = self.recovery_point.min(segment);
        self.checkpoint()
    }

    /// Records that everything below `offset` is on stable storage.
    pub fn mark_flushed(&mut self, offset: i64) {
        self.recovery_point = self.recovery_point.max(offset.min(self.log_end_offset));
    }

    /// Deletes whole segments past `retention_ms` (by their largest timestamp) or beyond
    /// `retention_bytes`, never reading past `upper_bound`. Returns how many were deleted.
    pub fn apply_retention(&mut self, now_ms: i64, upper_bound: i64) -> Result<usize, LogError> {
        if !self.config.retention_enabled {
            return Ok(0);
        }
        let (retention_ms, retention_bytes) =
            (self.config.retention_ms, self.config.retention_bytes);
        let mut excess = if retention_bytes >= 0 {
            self.size_bytes() as i64 - retention_bytes
        } else {
            0
        };
        let mut doomed = Vec::new();
        for seg in self.segments.values() {
            let expired = retention_ms >= 0
                && seg.max_timestamp() >= 0
                && now_ms - seg.max_timestamp() > retention_ms;
            let oversize = excess - seg.size() as i64 >= 0 && retention_bytes >= 0;
            if seg.is_empty() || seg.next_offset() > upper_bound || !(expired || oversize) {
                break;
            }
            excess -= seg.size() as i64;
            doomed.push(seg.base_offset());
        }
        if doomed.len() == self.segments.len() {
            // Everything expired, the active segment included: roll so the log keeps a segment.
            let base = self.log_end_offset;
            self.new_segment(base)?;
        }
        for base in &doomed {
            let seg = self.segments.remove(base).expect("listed above");
            let path = seg.log_path().to_path_buf();
            seg.delete().map_err(io_err(&path))?;
        }
        if !doomed.is_empty() {
            let first = *self
                .segments
                .keys()
                .next()
                .expect("a log always has a segment");
            self.log_start_offset = self.log_start_offset.max(first);
            self.checkpoint()?;
            self.epochs
                .truncate_from_start(self.log_start_offset)
                .map_err(io_err(&self.dir))?;
        }
        Ok(doomed.len())
    }

    /// Moves the log start offset up to `offset` (DeleteRecords): reads below it are out of
    /// range from now on, and segments wholly below it are deleted. The new start is persisted
    /// before this returns.
    pub fn advance_log_start(&mut self, offset: i64) -> Result<(), LogError> {
        if offset <= self.log_start_offset {
            return Ok(());
        }
        if offset > self.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end: self.log_end_offset,
            });
        }
        self.log_start_offset = offset;
        let doomed: Vec<i64> = self
            .segments
            .values()
            .filter(|s| !s.is_empty() && s.next_offset() <= offset)
            .map(Segment::base_offset)
            .collect();
        if doomed.len() == self.segments.len() {
            let base = self.log_end_offset;
            self.new_segment(base)?;
        }
        self.checkpoint()?;
        self.epochs
            .truncate_from_start(offset)
            .map_err(io_err(&self.dir))?;
        for base in doomed {
            let seg = self.segments.remove(&base).expect("listed above");
            let path = seg.log_path().to_path_buf();
            seg.delete().map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// Persists the recovery point and log start offset (atomically, by rename).
    pub fn checkpoint(&self) -> Result<(), LogError> {
        write_offset_file(&self.dir.join(RECOVERY_POINT_FILE), self.recovery_point)
            .map_err(io_err(&self.dir))?;
        write_offset_file(&self.dir.join(LOG_START_FILE), self.log_start_offset)
            .map_err(io_err(&self.dir))
    }

    /// Writes the active segment's index maps to disk (at shutdown).
    pub fn flush_indexes(&self) -> Result<(), LogError> {
        for seg in self.segments.values() {
            seg.flush_indexes().map_err(io_err(seg.log_path()))?;
        }
        Ok(())
    }

    /// At a clean shutdown: writes the index maps back and trims the active segment's index
    /// files to the entries they hold, as Kafka's segment close does. A preallocated index file
    /// reads back as full of zero entries, which fails the sanity check and would make the next
    /// open after a clean shutdown rescan that segment.
    pub fn close_indexes(&mut self) -> Result<(), LogError> {
        self.flush_indexes()?;
        if let Some(active) = self.segments.values_mut().next_back() {
            active.seal().map_err(io_err(active.log_path()))?;
        }
        Ok(())
    }

    /// Removes the log's directory and everything in it.
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))
    }
}

/// Checks each batch in `batches` (whole v2 batches as a producer sent them) against a log's
/// settings: the size limit, then the header and every record through the hardened reader
/// (`records::validate_produced`); returns the record count. A pure function of the bytes and
/// the settings, so it runs outside the partition's lock.
pub fn validate_produced(config: &LogConfig, batches: &[u8]) -> Result<i64, LogError> {
    let checks = records::ProducedChecks {
        max_record_bytes: config.max_message_bytes as u64,
        max_uncompressed_bytes: records::MAX_UNCOMPRESSED_BATCH_BYTES,
        require_keys: config.compaction.is_some(),
    };
    let mut pos = 0usize;
    let mut count = 0i64;
    while pos < batches.len() {
        let h = BatchHeader::parse(&batches[pos..])
            .ok_or(BatchError::Truncated("shorter than a header"))?;
        let len = h.total_len();
        if len > config.max_message_bytes {
            return Err(LogError::TooLarge {
                size: len,
                max: config.max_message_bytes,
            });
        }
        let end = pos.checked_add(len).filter(|e| *e <= batches.len());
        let end = end.ok_or(BatchError::Truncated("batch length runs past the records"))?;
        records::validate_produced(&batches[pos..end], &checks)?;
        count += h.records_count() as i64;
        pos = end;
    }
    if count == 0 {
        return Err(BatchError::Invalid("no record batches".into()).into());
    }
    Ok(count)
}

fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(base) = stem.parse::<i64>() {
                bases.push(base);
            }
        }
    }
    Ok(bases)
}

fn read_offset_file(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Writes `value` to `path` through a synced temporary file and a rename.
pub fn write_offset_file(path: &Path, value: i64) -> io::Result<()> {
    write_atomically(path, format!("{value}\n").as_bytes())
}

/// Replaces `path` with `contents` so a crash leaves either the old or the new file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // A bare file name has an empty parent: the current directory.
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests;

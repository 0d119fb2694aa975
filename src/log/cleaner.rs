//! Log compaction (`cleanup.policy=compact`): keep the latest record of each key.
//!
//! A pass has three steps, so appends and fetches are never blocked for long:
//! 1. `Log::cleaning_plan` (under the partition lock, cheap): picks the sealed segments wholly
//!    below the first uncleanable offset (the active segment, the last stable offset, and
//!    `min.compaction.lag.ms` bound it), when the dirty share passes
//!    `min.cleanable.dirty.ratio` or a dirty record is older than `max.compaction.lag.ms`; it
//!    hands out their bytes (immutable `Bytes` of the maps) and the aborted transactions.
//! 2. `build` (no lock, on a blocking thread): maps each key in the dirty part (from the
//!    cleaner checkpoint on) to its last offset, then rewrites each group of segments into one
//!    `<base>.cleaned` file (and `<base>.txnindex.cleaned`), synced. A record survives unless a
//!    later record has its key, or it is a tombstone older than `delete.retention.ms`. Data of
//!    aborted transactions is dropped (no reader may see it, and it must not hide a committed
//!    value); control batches are kept. A batch keeping every record is copied as is; one
//!    keeping some is re-encoded with its own compression.
//! 3. `Log::install_cleaned` (under the lock, short): writes the intent file `clean-swap`
//!    (synced: the commit point), renames each cleaned file over its group's first segment,
//!    removes the group's other segments, and removes the intent. `Log::open` finishes an
//!    interrupted swap from the intent, or drops stray `.cleaned` files when there is none: the
//!    old segments stay valid until the swap is decided.

use super::batch::{self, BatchHeader};
use super::txn_index::AbortedTxn;
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const INTENT_FILE: &str = "clean-swap";
pub const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Most distinct keys one pass maps; a larger dirty part is cleaned over several passes.
const MAX_KEYS: usize = 4_000_000;

/// A sealed segment handed to the cleaner.
#[derive(Clone)]
pub struct SegmentData {
    pub base_offset: i64,
    pub next_offset: i64,
    pub bytes: Bytes,
    pub aborted: Vec<AbortedTxn>,
}

/// What one pass cleans.
pub struct CleanPlan {
    pub dir: PathBuf,
    /// Groups of consecutive segments; each becomes one segment named by its first base.
    pub groups: Vec<Vec<SegmentData>>,
    /// Records from here on are dirty (not yet compacted against later ones).
    pub first_dirty: i64,
    /// Every transaction aborted in the cleaned range.
    pub aborted: Vec<AbortedTxn>,
    pub now_ms: i64,
    pub delete_retention_ms: i64,
}

impl CleanPlan {
    /// One past the last offset the plan covers.
    pub fn end(&self) -> i64 {
        self.groups
            .last()
            .and_then(|g| g.last())
            .map_or(self.first_dirty, |s| s.next_offset)
    }
}

/// The result of `build`: cleaned files on disk, ready to install.
pub struct Cleaned {
    /// (first base, old bases replaced, whether a cleaned file was written)
    pub groups: Vec<(i64, Vec<i64>, bool)>,
    pub end: i64,
    pub records_before: u64,
    pub records_after: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// When the oldest tombstone kept may go (a later pass is due then even without new data).
    pub next_tombstone_expiry: Option<i64>,
}

pub fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(super::segment::file_name(base, "cleaned"))
}

pub fn cleaned_txn_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(super::segment::file_name(base, "txnindex.cleaned"))
}

fn is_aborted(aborted: &[AbortedTxn], producer_id: i64, offset: i64) -> bool {
    aborted
        .iter()
        .any(|a| a.producer_id == producer_id && a.first_offset <= offset && offset < a.last_offset)
}

/// Whether a data batch holds aborted transactional records.
fn aborted_batch(plan: &CleanPlan, h: &BatchHeader<'_>) -> bool {
    h.is_transactional()
        && !h.is_control()
        && is_aborted(&plan.aborted, h.producer_id(), h.base_offset())
}

/// Step 2: maps the dirty keys and writes the cleaned files. Nothing of the live log changes.
pub fn build(plan: &CleanPlan) -> io::Result<Cleaned> {
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    let mut end = plan.first_dirty;
    'map: for seg in plan.groups.iter().flatten() {
        for (at, h) in batch::batches(&seg.bytes) {
            if h.last_offset() < plan.first_dirty || h.is_control() || aborted_batch(plan, &h) {
                continue;
            }
            let one = seg.bytes.slice(at..at + h.total_len());
            for r in decode(one)? {
                if let Some(key) = r.key {
                    latest.insert(key, r.offset);
                }
            }
            if latest.len() > MAX_KEYS {
                end = seg.next_offset;
                break 'map;
            }
        }
        end = seg.next_offset;
    }
    let mut out = Cleaned {
        groups: Vec::new(),
        end,
        records_before: 0,
        records_after: 0,
        bytes_before: 0,
        bytes_after: 0,
        next_tombstone_expiry: None,
    };
    let horizon = plan.now_ms.saturating_sub(plan.delete_retention_ms);
    for group in &plan.groups {
        if group[0].base_offset >= end {
            break;
        }
        let base = group[0].base_offset;
        let mut data = Vec::new();
        let mut txn_entries = Vec::new();
        let mut changed = false;
        for seg in group {
            out.bytes_before += seg.bytes.len() as u64;
            txn_entries.extend(seg.aborted.iter().copied());
            for (at, h) in batch::batches(&seg.bytes) {
                let one = seg.bytes.slice(at..at + h.total_len());
                out.records_before += h.records_count().max(0) as u64;
                if h.is_control() {
                    out.records_after += 1;
                    data.extend_from_slice(&one);
                    continue;
                }
                if aborted_batch(plan, &h) {
                    changed = true;
                    continue;
                }
                let mut records = decode(one.clone())?;
                let total = records.len();
                records.retain(|r| {
                    let superseded = r
                        .key
                        .as_ref()
                        .and_then(|k| latest.get(k))
                        .is_some_and(|last| *last > r.offset);
                    let expired_tombstone = r.value.is_none() && r.timestamp < horizon;
                    !superseded && !expired_tombstone
                });
                out.records_after += records.len() as u64;
                for r in records.iter().filter(|r| r.value.is_none()) {
                    let expiry = r.timestamp.saturating_add(plan.delete_retention_ms);
                    let next = out.next_tombstone_expiry.get_or_insert(expiry);
                    *next = (*next).min(expiry);
                }
                changed |= records.len() != total;
                if records.len() == total {
                    data.extend_from_slice(&one);
                } else if !records.is_empty() {
                    // The encoder keeps records in one batch while offset - sequence stays
                    // constant; without a producer every sequence reads -1, so give them one
                    // that keeps the batch whole and its base sequence at -1.
                    if h.base_sequence() < 0 {
                        let first = records[0].offset;
                        for r in &mut records {
                            r.sequence = (r.offset - first) as i32 - 1;
                        }
                    }
                    let compression = compression_of(&h);
                    let mut buf = BytesMut::new();
                    RecordBatchEncoder::encode(
                        &mut buf,
                        &records,
                        &RecordEncodeOptions {
                            version: 2,
                            compression,
                        },
                    )
                    .map_err(|e| io::Error::other(format!("re-encoding a cleaned batch: {e}")))?;
                    data.extend_from_slice(&buf);
                }
            }
        }
        if !changed {
            // Nothing to drop here: the segments stay as they are.
            continue;
        }
        let replaced: Vec<i64> = group.iter().map(|s| s.base_offset).collect();
        let has_data = !data.is_empty();
        if has_data {
            out.bytes_after += data.len() as u64;
            write_synced(&cleaned_path(&plan.dir, base), &data)?;
            let mut index = Vec::with_capacity(txn_entries.len() * 34);
            for e in &txn_entries {
                index.extend_from_slice(&super::txn_index::encode_entry(e));
            }
            write_synced(&cleaned_txn_path(&plan.dir, base), &index)?;
        }
        out.groups.push((base, replaced, has_data));
    }
    Ok(out)
}

fn decode(mut one: Bytes) -> io::Result<Vec<kafka_protocol::records::Record>> {
    RecordBatchDecoder::decode(&mut one)
        .map(|set| set.records)
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("decoding a batch to clean: {e}"),
            )
        })
}

fn compression_of(h: &BatchHeader<'_>) -> kafka_protocol::records::Compression {
    use kafka_protocol::records::Compression;
    match h.compression() {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// The intent of a swap: for each group, its first base and the old bases it replaces.
pub fn write_intent(dir: &Path, groups: &[(i64, Vec<i64>, bool)]) -> io::Result<()> {
    let mut text = String::new();
    for (base, replaced, has_data) in groups {
        let list: Vec<String> = replaced.iter().map(i64::to_string).collect();
        text.push_str(&format!(
            "{base} {} {}\n",
            u8::from(*has_data),
            list.join(",")
        ));
    }
    super::write_atomically(&dir.join(INTENT_FILE), text.as_bytes())
}

/// Carries out a decided swap (also after a crash): renames the cleaned files over each group's
/// first segment and removes the rest of the group. Idempotent.
pub fn finish_swap(dir: &Path, groups: &[(i64, Vec<i64>, bool)]) -> io::Result<()> {
    for (base, replaced, has_data) in groups {
        let cleaned = cleaned_path(dir, *base);
        if *has_data && cleaned.exists() {
            let txn = cleaned_txn_path(dir, *base);
            if txn.exists() {
                std::fs::rename(&txn, dir.join(super::segment::file_name(*base, "txnindex")))?;
            }
            std::fs::rename(&cleaned, dir.join(super::segment::file_name(*base, "log")))?;
            // The indexes of the old first segment no longer match: rebuilt on open.
            for ext in ["index", "timeindex"] {
                remove_if_present(&dir.join(super::segment::file_name(*base, ext)))?;
            }
        }
        for old in replaced {
            if *has_data && old == base {
                continue;
            }
            for ext in ["log", "index", "timeindex", "txnindex"] {
                remove_if_present(&dir.join(super::segment::file_name(*old, ext)))?;
            }
        }
    }
    File::open(dir)?.sync_all()?;
    remove_if_present(&dir.join(INTENT_FILE))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// At open: finishes a swap that was decided before a crash, and removes cleaned files of a pass
/// that never reached its decision.
pub fn recover(dir: &Path) -> io::Result<Option<String>> {
    let intent = dir.join(INTENT_FILE);
    let mut note = None;
    if let Ok(text) = std::fs::read_to_string(&intent) {
        let groups: Option<Vec<(i64, Vec<i64>, bool)>> = text
            .lines()
            .map(|l| {
                let mut f = l.split(' ');
                let base = f.next()?.parse().ok()?;
                let has_data = f.next()? == "1";
                let replaced = f
                    .next()?
                    .split(',')
                    .map(|b| b.parse().ok())
                    .collect::<Option<Vec<i64>>>()?;
                Some((base, replaced, has_data))
            })
            .collect();
        match groups {
            Some(groups) => {
                finish_swap(dir, &groups)?;
                note = Some(format!(
                    "finished a compaction swap of {} group(s)",
                    groups.len()
                ));
            }
            None => {
                // A torn intent was never the commit point (it is written atomically).
                remove_if_present(&intent)?;
            }
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".cleaned") {
            remove_if_present(&path)?;
            note.get_or_insert_with(|| "removed the files of an unfinished compaction".into());
        }
    }
    Ok(note)
}

/// The persisted first dirty offset (0 when never cleaned).
pub fn read_checkpoint(dir: &Path) -> i64 {
    std::fs::read_to_string(dir.join(CHECKPOINT_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

pub fn write_checkpoint(dir: &Path, offset: i64) -> io::Result<()> {
    super::write_offset_file(&dir.join(CHECKPOINT_FILE), offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{CompactionConfig, Log, LogConfig};
    use kafka_protocol::records::{Compression, Record, TimestampType};

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 2048,
            segment_ms: i64::MAX,
            segment_index_bytes: 4096,
            index_interval_bytes: 100,
            retention_ms: -1,
            retention_bytes: -1,
            max_message_bytes: 1 << 20,
            log_append_time: false,
            retention_enabled: false,
            compaction: Some(CompactionConfig {
                delete_retention_ms: 1000,
                min_compaction_lag_ms: 0,
                max_compaction_lag_ms: i64::MAX,
                min_cleanable_dirty_ratio: 0.0,
            }),
        }
    }

    /// One batch of (key, value) records at `ts`, with `compression`.
    fn batch(records: &[(&str, Option<&str>)], ts: i64, compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // One batch: the encoder splits where offset - sequence changes.
                sequence: i as i32 - 1,
                timestamp: ts,
                key: Some(Bytes::copy_from_slice(k.as_bytes())),
                value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    fn append(log: &mut Log, b: Vec<u8>, now: i64) {
        let mut b = b;
        log.validate(&b).unwrap();
        log.append(&mut b, 0, now).unwrap();
    }

    /// Every (offset, key, value) readable from the log start, in order.
    fn contents(log: &Log) -> Vec<(i64, String, Option<String>)> {
        let mut out = Vec::new();
        for mut b in log.batch_bytes_from(log.log_start_offset()) {
            let set = RecordBatchDecoder::decode(&mut b).unwrap();
            for r in set.records {
                let s = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
                out.push((r.offset, s(r.key.unwrap()), r.value.map(s)));
            }
        }
        out
    }

    /// 300 records over keys k0..k9, k3 deleted long ago and k4 deleted just now, in small
    /// segments, the last batch alone in the active segment.
    fn filled(dir: &Path, now: i64) -> Log {
        let (mut log, _) = Log::open(dir, config(), true).unwrap();
        for round in 0..30 {
            let values: Vec<String> = (0..10).map(|k| format!("v{round}-{k}")).collect();
            let records: Vec<(String, Option<&str>)> = (0..10)
                .map(|k| (format!("k{k}"), Some(values[k].as_str())))
                .collect();
            let refs: Vec<(&str, Option<&str>)> =
                records.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let codec = if round % 2 == 1 {
                Compression::Gzip
            } else {
                Compression::None
            };
            append(&mut log, batch(&refs, now - 10_000, codec), now);
        }
        append(
            &mut log,
            batch(&[("k3", None)], now - 5_000, Compression::None),
            now,
        );
        append(
            &mut log,
            batch(&[("k4", None)], now, Compression::None),
            now,
        );
        let mut filler = vec![("pad", Some("x")); 60];
        filler.truncate(60);
        append(&mut log, batch(&filler, now, Compression::None), now);
        log
    }

    fn expect_compacted(log: &Log) {
        let got = contents(log);
        let (kept, active): (Vec<_>, Vec<_>) = got.iter().partition(|(o, _, _)| *o < 302);
        let keys: Vec<&str> = kept.iter().map(|(_, k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec!["k0", "k1", "k2", "k5", "k6", "k7", "k8", "k9", "k4"]
        );
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0), "offset order");
        for (_, k, v) in &kept {
            match k.as_str() {
                "k4" => assert_eq!(v, &None, "a recent tombstone stays"),
                k => assert_eq!(v.as_deref(), Some(format!("v29-{}", &k[1..]).as_str())),
            }
        }
        assert_eq!(active.len(), 60, "the active segment is never cleaned");
        let first = log.batch_bytes_from(log.log_start_offset()).next().unwrap();
        let h = BatchHeader::parse(&first).unwrap();
        assert_eq!(h.compression(), 1, "a partly kept gzip batch stays gzip");
        assert_eq!(
            h.records_count(),
            8,
            "k3 and k4 of the last round were superseded"
        );
        assert_eq!(log.log_end_offset(), 362);
    }

    #[test]
    fn keeps_the_latest_value_per_key_and_drops_old_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::model::now_ms();
        let mut log = filled(dir.path(), now);
        let plan = log.cleaning_plan(now, i64::MAX).expect("dirty enough");
        let cleaned = build(&plan).unwrap();
        assert!(cleaned.records_after < cleaned.records_before);
        assert!(log.install_cleaned(&cleaned).unwrap());
        expect_compacted(&log);
        // A second pass finds nothing new to do.
        assert!(log.cleaning_plan(now, i64::MAX).is_none());
        drop(log);
        let (log, _) = Log::open(dir.path(), config(), false).unwrap();
        expect_compacted(&log);
    }

    #[test]
    fn a_crash_before_the_decision_keeps_the_old_log_and_after_it_finishes_the_swap() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::model::now_ms();
        let log = filled(dir.path(), now);
        let before = contents(&log);
        let plan = log.cleaning_plan(now, i64::MAX).unwrap();
        let cleaned = build(&plan).unwrap();
        drop(log);
        // Crash after the cleaned files were written, before the intent.
        let (log, report) = Log::open(dir.path(), config(), false).unwrap();
        assert_eq!(contents(&log), before);
        assert!(report
            .problems
            .iter()
            .any(|p| p.contains("unfinished compaction")));
        let plan = log.cleaning_plan(now, i64::MAX).unwrap();
        let cleaned_again = build(&plan).unwrap();
        assert_eq!(cleaned_again.groups, cleaned.groups);
        drop(log);
        // Crash right after the decision: the next open carries the swap out.
        write_intent(dir.path(), &cleaned_again.groups).unwrap();
        let (log, report) = Log::open(dir.path(), config(), false).unwrap();
        assert!(report
            .problems
            .iter()
            .any(|p| p.contains("finished a compaction swap")));
        expect_compacted(&log);
    }
}

#[cfg(test)]
mod txn_tests {
    use super::*;
    use crate::log::batch::{marker_batch, Marker};
    use crate::log::{CompactionConfig, Log, LogConfig};
    use kafka_protocol::records::{Compression, Record, TimestampType};

    fn config(min_lag: i64, max_lag: i64, ratio: f64) -> LogConfig {
        LogConfig {
            segment_bytes: 1024,
            segment_ms: i64::MAX,
            segment_index_bytes: 4096,
            index_interval_bytes: 100,
            retention_ms: -1,
            retention_bytes: -1,
            max_message_bytes: 1 << 20,
            log_append_time: false,
            retention_enabled: false,
            compaction: Some(CompactionConfig {
                delete_retention_ms: 1000,
                min_compaction_lag_ms: min_lag,
                max_compaction_lag_ms: max_lag,
                min_cleanable_dirty_ratio: ratio,
            }),
        }
    }

    fn one(key: &str, value: &str, ts: i64, producer: Option<(i64, i16)>) -> Vec<u8> {
        let (pid, epoch) = producer.unwrap_or((-1, -1));
        let r = Record {
            transactional: producer.is_some(),
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: if producer.is_some() { 0 } else { -1 },
            timestamp: ts,
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Default::default(),
            delete_horizon: false,
        };
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &[r],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    fn append(log: &mut Log, mut b: Vec<u8>, now: i64) -> i64 {
        log.validate(&b).unwrap();
        log.append(&mut b, 0, now).unwrap().base_offset
    }

    /// Pushes the active segment past `segment_bytes` so what came before is sealed.
    fn seal(log: &mut Log, now: i64) {
        let pad = "p".repeat(1100);
        append(log, one("pad", &pad, now, None), now);
        append(log, one("pad", "end", now, None), now);
    }

    #[test]
    fn aborted_data_is_dropped_and_cannot_hide_a_committed_value() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::model::now_ms();
        let (mut log, _) = Log::open(dir.path(), config(0, i64::MAX, 0.0), true).unwrap();
        append(&mut log, one("k", "committed", now, None), now);
        let first = append(&mut log, one("k", "aborted", now, Some((7, 0))), now);
        let mut marker = marker_batch(7, 0, Marker::Abort, 0, now);
        let marker_offset = log.append(&mut marker, 0, now).unwrap().base_offset;
        log.add_aborted_txn(AbortedTxn {
            producer_id: 7,
            first_offset: first,
            last_offset: marker_offset,
            last_stable_offset: marker_offset + 1,
        })
        .unwrap();
        seal(&mut log, now);
        let plan = log.cleaning_plan(now, i64::MAX).unwrap();
        let cleaned = build(&plan).unwrap();
        assert!(log.install_cleaned(&cleaned).unwrap());
        let mut seen = Vec::new();
        for b in log.batch_bytes_from(0) {
            let h = BatchHeader::parse(&b).unwrap();
            if h.is_control() {
                seen.push((h.base_offset(), "marker".to_string()));
                continue;
            }
            let set = RecordBatchDecoder::decode(&mut b.clone()).unwrap();
            for r in set.records {
                seen.push((
                    r.offset,
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                ));
            }
        }
        assert_eq!(seen[0], (0, "committed".to_string()));
        assert_eq!(seen[1], (marker_offset, "marker".to_string()));
        assert!(!seen.iter().any(|(_, v)| v == "aborted"));
        assert_eq!(
            log.aborted_txns(0, marker_offset + 1).len(),
            1,
            "index entry kept"
        );
    }

    #[test]
    fn compaction_lags_and_the_dirty_ratio_decide_when_a_pass_runs() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::model::now_ms();
        // Records newer than min.compaction.lag.ms are not cleanable yet.
        let (mut log, _) = Log::open(dir.path(), config(60_000, i64::MAX, 0.0), true).unwrap();
        append(&mut log, one("k", "a", now, None), now);
        append(&mut log, one("k", "b", now, None), now);
        seal(&mut log, now);
        assert!(log.cleaning_plan(now, i64::MAX).is_none());
        assert!(log.cleaning_plan(now + 61_000, i64::MAX).is_some());
        // A dirty share below min.cleanable.dirty.ratio waits, unless max.compaction.lag.ms
        // has passed for the oldest dirty record.
        log.set_config(config(0, 3_600_000, 0.99));
        log.tombstone_expiry = None;
        assert!(
            log.cleaning_plan(now, i64::MAX).is_some(),
            "everything is dirty at first"
        );
        let plan = log.cleaning_plan(now, i64::MAX).unwrap();
        let cleaned = build(&plan).unwrap();
        log.install_cleaned(&cleaned).unwrap();
        append(&mut log, one("k", "c", now, None), now);
        seal(&mut log, now);
        assert!(
            log.cleaning_plan(now, i64::MAX).is_none(),
            "a small dirty share waits"
        );
        assert!(
            log.cleaning_plan(now + 3_700_000, i64::MAX).is_some(),
            "max.compaction.lag.ms forces a pass"
        );
        // Undecided transactions (the last stable offset) bound what may be cleaned.
        assert!(log.cleaning_plan(now + 3_700_000, 0).is_none());
    }
}

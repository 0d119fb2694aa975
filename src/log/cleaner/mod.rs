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
use super::segment::{self, Segment};
use super::txn_index::AbortedTxn;
use super::{io_err, Log, LogError};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{RecordBatchEncoder, RecordEncodeOptions};
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
    let (latest, end) = map_dirty_keys(plan)?;
    let mut out = Cleaned {
        groups: Vec::new(),
        end,
        records_before: 0,
        records_after: 0,
        bytes_before: 0,
        bytes_after: 0,
        next_tombstone_expiry: None,
    };
    for group in plan.groups.iter().take_while(|g| g[0].base_offset < end) {
        if let Some(written) = clean_group(plan, group, &latest, &mut out)? {
            out.groups.push(written);
        }
    }
    Ok(out)
}

/// The last offset of each key in the dirty part, and where the mapped part ends (earlier than
/// the plan's end when the map filled up).
fn map_dirty_keys(plan: &CleanPlan) -> io::Result<(HashMap<Bytes, i64>, i64)> {
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    let mut end = plan.first_dirty;
    for seg in plan.groups.iter().flatten() {
        for (at, h) in batch::batches(&seg.bytes) {
            if h.last_offset() < plan.first_dirty || h.is_control() || aborted_batch(plan, &h) {
                continue;
            }
            for r in decode(seg.bytes.slice(at..at + h.total_len()))? {
                if let Some(key) = r.key {
                    latest.insert(key, r.offset);
                }
            }
        }
        end = seg.next_offset;
        if latest.len() > MAX_KEYS {
            break;
        }
    }
    Ok((latest, end))
}

/// Rewrites one group of segments into `<base>.cleaned` (and its transaction index), synced.
/// `None` when nothing in the group can go, so its segments stay as they are.
fn clean_group(
    plan: &CleanPlan,
    group: &[SegmentData],
    latest: &HashMap<Bytes, i64>,
    out: &mut Cleaned,
) -> io::Result<Option<(i64, Vec<i64>, bool)>> {
    let base = group[0].base_offset;
    let horizon = plan.now_ms.saturating_sub(plan.delete_retention_ms);
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
                data.extend_from_slice(&reencode(&h, records)?);
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    let replaced: Vec<i64> = group.iter().map(|s| s.base_offset).collect();
    let has_data = !data.is_empty();
    if has_data {
        out.bytes_after += data.len() as u64;
        write_synced(&cleaned_path(&plan.dir, base), &data)?;
        let mut index = Vec::with_capacity(txn_entries.len() * super::txn_index::ENTRY_LEN);
        for e in &txn_entries {
            index.extend_from_slice(&super::txn_index::encode_entry(e));
        }
        write_synced(&cleaned_txn_path(&plan.dir, base), &index)?;
    }
    Ok(Some((base, replaced, has_data)))
}

/// The records kept from a batch, as one batch with the original's compression.
fn reencode(
    h: &BatchHeader<'_>,
    mut records: Vec<kafka_protocol::records::Record>,
) -> io::Result<BytesMut> {
    // The encoder keeps records in one batch while offset - sequence stays constant; without a
    // producer every sequence reads -1, so give them one that keeps the batch whole and its
    // base sequence at -1.
    if h.base_sequence() < 0 {
        let first = records[0].offset;
        for r in &mut records {
            r.sequence = (r.offset - first) as i32 - 1;
        }
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: compression_of(h),
        },
    )
    .map_err(|e| io::Error::other(format!("re-encoding a cleaned batch: {e}")))?;
    Ok(buf)
}

fn decode(one: Bytes) -> io::Result<Vec<kafka_protocol::records::Record>> {
    super::records::decode_for_encoder(&one).map_err(|e| {
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

impl Log {
    /// Step 1 of a compaction pass (see `cleaner`): what to clean now, if anything. `stable` is
    /// the last stable offset: undecided transactions are never cleaned.
    pub fn cleaning_plan(&self, now_ms: i64, stable: i64) -> Option<CleanPlan> {
        let c = self.config.compaction.clone()?;
        let active_base = self.segments.keys().next_back().copied()?;
        let too_new = now_ms.saturating_sub(c.min_compaction_lag_ms);
        let lag_bound = self
            .segments
            .values()
            .find(|s| s.max_timestamp() > too_new)
            .map_or(i64::MAX, Segment::base_offset);
        let first_uncleanable = active_base.min(stable).min(lag_bound);
        let first_dirty = self.cleaner_checkpoint.max(self.log_start_offset);
        let sealed: Vec<&Segment> = self
            .segments
            .values()
            .filter(|s| !s.is_empty() && s.next_offset() <= first_uncleanable)
            .collect();
        let total: u64 = sealed.iter().map(|s| s.size()).sum();
        let dirty: u64 = sealed
            .iter()
            .filter(|s| s.next_offset() > first_dirty)
            .map(|s| s.size())
            .sum();
        let tombstones_due = self.tombstone_expiry.is_some_and(|t| now_ms >= t);
        if dirty == 0 && !(tombstones_due && total > 0) {
            return None;
        }
        let overdue = sealed
            .iter()
            .find(|s| s.next_offset() > first_dirty)
            .and_then(|s| s.first_batch_timestamp())
            .is_some_and(|t| now_ms.saturating_sub(t) > c.max_compaction_lag_ms);
        if (dirty as f64) < c.min_cleanable_dirty_ratio * total as f64
            && !overdue
            && !tombstones_due
        {
            return None;
        }
        let limit = self.config.segment_bytes;
        let mut groups: Vec<Vec<SegmentData>> = Vec::new();
        let mut group_bytes = 0u64;
        for s in sealed {
            let data = SegmentData {
                base_offset: s.base_offset(),
                next_offset: s.next_offset(),
                bytes: s.bytes(),
                aborted: s.aborted_txns().to_vec(),
            };
            match groups.last_mut() {
                Some(g) if group_bytes + s.size() <= limit => {
                    group_bytes += s.size();
                    g.push(data);
                }
                _ => {
                    group_bytes = s.size();
                    groups.push(vec![data]);
                }
            }
        }
        let end = groups.last()?.last()?.next_offset;
        Some(CleanPlan {
            dir: self.dir.clone(),
            aborted: self.aborted_txns(self.log_start_offset, end),
            groups,
            first_dirty,
            now_ms,
            delete_retention_ms: c.delete_retention_ms,
        })
    }

    /// Step 3 of a compaction pass: swaps the cleaned files in. When the log changed meanwhile
    /// (retention or DeleteRecords removed a segment of the plan) the pass is dropped instead.
    /// Returns whether the swap happened.
    pub fn install_cleaned(&mut self, cleaned: &Cleaned) -> Result<bool, LogError> {
        let intact = cleaned
            .groups
            .iter()
            .flat_map(|(_, replaced, _)| replaced)
            .all(|b| self.segments.contains_key(b));
        if !intact {
            for (base, _, _) in &cleaned.groups {
                let _ = std::fs::remove_file(cleaned_path(&self.dir, *base));
                let _ = std::fs::remove_file(cleaned_txn_path(&self.dir, *base));
            }
            return Ok(false);
        }
        if cleaned.groups.is_empty() {
            // Nothing was dropped: the log stays, but it counts as cleaned up to `end`.
            self.cleaner_checkpoint = cleaned.end;
            self.tombstone_expiry = cleaned.next_tombstone_expiry;
            write_checkpoint(&self.dir, cleaned.end).map_err(io_err(&self.dir))?;
            return Ok(false);
        }
        write_intent(&self.dir, &cleaned.groups).map_err(io_err(&self.dir))?;
        for (_, replaced, _) in &cleaned.groups {
            for b in replaced {
                // Readers holding slices of the old maps keep them alive.
                self.segments.remove(b);
            }
        }
        finish_swap(&self.dir, &cleaned.groups).map_err(io_err(&self.dir))?;
        for (base, _, has_data) in &cleaned.groups {
            if !has_data {
                continue;
            }
            let path = self.dir.join(segment::file_name(*base, "log"));
            let mut seg =
                Segment::open(&self.dir, *base, self.sizes(), true).map_err(io_err(&path))?;
            seg.reindex();
            seg.seal().map_err(io_err(&path))?;
            self.segments.insert(*base, seg);
        }
        self.cleaner_checkpoint = cleaned.end;
        self.tombstone_expiry = cleaned.next_tombstone_expiry;
        write_checkpoint(&self.dir, cleaned.end).map_err(io_err(&self.dir))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;

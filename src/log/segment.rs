//! One segment: a `.log` file of whole v2 batches, its `.index`, `.timeindex` and `.txnindex`.
//!
//! Appends go through `pwrite` at the segment's size (measured here: appending through a writable
//! map ran about 40 % slower than `write`). Reads go through one read-only map of the file whose
//! length is the segment's capacity, so the map never moves while readers hold `Bytes` slices of
//! it; only bytes below `size` (already written) are ever sliced.

use super::batch::{self, BatchHeader};
use super::index::{OffsetIndex, TimeIndex};
use super::txn_index::{AbortedTxn, TxnIndex};
use bytes::Bytes;
use memmap2::MmapOptions;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Sizes that shape a segment's files.
#[derive(Debug, Clone, Copy)]
pub struct SegmentSizes {
    /// Bytes of log the mapping covers; appends beyond it roll a new segment.
    pub capacity: u64,
    pub index_bytes: usize,
    pub index_interval_bytes: u64,
}

pub fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    file: Arc<File>,
    /// The whole mapping; valid bytes are `data[..size]`.
    data: Bytes,
    capacity: u64,
    size: u64,
    /// One past the last offset held (equals `base_offset` while empty).
    next_offset: i64,
    max_timestamp: i64,
    /// Max timestamp of the first batch, which `segment_ms` rolling is measured from.
    first_batch_timestamp: Option<i64>,
    bytes_since_index: u64,
    index_interval_bytes: u64,
    index: OffsetIndex,
    time_index: TimeIndex,
    txn_index: TxnIndex,
}

/// What a scan of a segment's batches found.
pub struct Scan {
    pub valid_bytes: u64,
    pub batches: usize,
    pub error: Option<String>,
}

impl Segment {
    /// Opens the segment at `base_offset` in `dir`, creating empty files when absent. An active
    /// segment is mapped at `sizes.capacity` (or its size, if larger) and its indexes preallocated.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        sizes: SegmentSizes,
        active: bool,
    ) -> io::Result<Self> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)?;
        let size = file.metadata()?.len();
        let capacity = if active {
            sizes.capacity.max(size)
        } else {
            size
        };
        let index = OffsetIndex::open(
            &dir.join(file_name(base_offset, "index")),
            base_offset,
            sizes.index_bytes,
            active,
        )?;
        let time_index = TimeIndex::open(
            &dir.join(file_name(base_offset, "timeindex")),
            base_offset,
            sizes.index_bytes,
            active,
        )?;
        let txn_index = TxnIndex::open(&dir.join(file_name(base_offset, "txnindex")))?;
        let data = map(&file, capacity)?;
        let mut segment = Self {
            base_offset,
            log_path,
            file: Arc::new(file),
            data,
            capacity,
            size,
            next_offset: base_offset,
            max_timestamp: -1,
            first_batch_timestamp: None,
            bytes_since_index: 0,
            index_interval_bytes: sizes.index_interval_bytes,
            index,
            time_index,
            txn_index,
        };
        segment.load_summary();
        Ok(segment)
    }

    /// Reads next offset, max timestamp and first timestamp from the batch headers.
    fn load_summary(&mut self) {
        let valid = &self.data[..self.size as usize];
        let mut first = None;
        for (_, h) in batch::batches(valid) {
            first.get_or_insert(h.max_timestamp());
            self.next_offset = h.last_offset() + 1;
            self.max_timestamp = self.max_timestamp.max(h.max_timestamp());
        }
        self.first_batch_timestamp = first;
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub fn first_batch_timestamp(&self) -> Option<i64> {
        self.first_batch_timestamp
    }
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }
    /// The segment's valid bytes (whole batches), as an immutable slice of the map.
    pub fn bytes(&self) -> Bytes {
        self.data.slice(..self.size as usize)
    }
    pub fn txn_file(&self) -> Arc<File> {
        self.txn_index.file()
    }
    pub fn aborted_txns(&self) -> &[AbortedTxn] {
        self.txn_index.entries()
    }
    pub fn add_aborted_txn(&mut self, entry: AbortedTxn) -> io::Result<()> {
        self.txn_index.append(entry)
    }
    /// Forgets aborted transactions whose marker is at or above `offset` (they are replayed).
    pub fn truncate_aborted_from(&mut self, offset: i64) -> io::Result<()> {
        self.txn_index.truncate_from(offset)
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Whether `len` more bytes fit in the mapping and the indexes have room.
    pub fn has_room(&self, len: u64) -> bool {
        self.size + len <= self.capacity && !self.index.is_full() && !self.time_index.is_full()
    }

    /// Appends whole, already stamped batches. On a failed or short write the file is cut back
    /// to its previous size, so the segment holds only whole batches.
    pub fn append(&mut self, batches: &[u8]) -> io::Result<()> {
        let position = self.size;
        if let Err(e) = self.file.write_all_at(batches, position) {
            let _ = self.file.set_len(position);
            return Err(e);
        }
        self.size += batches.len() as u64;
        self.index_batches(position, batches);
        Ok(())
    }

    /// Updates summary and indexes for batches just placed at `position`.
    fn index_batches(&mut self, position: u64, batches: &[u8]) {
        for (at, h) in batch::batches(batches) {
            if self.bytes_since_index >= self.index_interval_bytes
                || self.next_offset == self.base_offset
            {
                // A full index makes `has_room` false, so the next append rolls.
                self.index
                    .append(h.base_offset(), (position + at as u64) as u32);
                self.time_index
                    .maybe_append(self.max_timestamp.max(h.max_timestamp()), h.last_offset());
                self.bytes_since_index = 0;
            }
            self.bytes_since_index += h.total_len() as u64;
            self.first_batch_timestamp.get_or_insert(h.max_timestamp());
            self.max_timestamp = self.max_timestamp.max(h.max_timestamp());
            self.next_offset = h.last_offset() + 1;
        }
    }

    /// The batches holding offsets from `offset` on: whole batches only, at least one, then more
    /// while within `max_bytes`, none whose last offset reaches `upper_bound`.
    pub fn read(&self, offset: i64, max_bytes: usize, upper_bound: i64) -> Option<Bytes> {
        let start = self.position_of(offset)?;
        let valid = &self.data[start..self.size as usize];
        let mut end = 0usize;
        for (at, h) in batch::batches(valid) {
            if h.last_offset() >= upper_bound || (at > 0 && at + h.total_len() > max_bytes) {
                break;
            }
            end = at + h.total_len();
        }
        (end > 0).then(|| self.data.slice(start..start + end))
    }

    /// File position of the batch holding `offset`, if the segment has one.
    fn position_of(&self, offset: i64) -> Option<usize> {
        let from = self.index.lookup(offset) as usize;
        let valid = &self.data[..self.size as usize];
        batch::batches(&valid[from.min(valid.len())..])
            .find(|(_, h)| h.last_offset() >= offset)
            .map(|(at, _)| from + at)
    }

    /// The batches starting at the one holding `offset`, as header views for scanning.
    pub fn batches_from(&self, offset: i64) -> impl Iterator<Item = BatchHeader<'_>> {
        let from = self.position_of(offset).unwrap_or(self.size as usize);
        batch::batches(&self.data[from..self.size as usize]).map(|(_, h)| h)
    }

    /// The whole batch bytes starting at the one holding `offset`.
    pub fn batch_bytes_from(&self, offset: i64) -> impl Iterator<Item = Bytes> + '_ {
        let from = self.position_of(offset).unwrap_or(self.size as usize);
        batch::batches(&self.data[from..self.size as usize])
            .map(move |(at, h)| self.data.slice(from + at..from + at + h.total_len()))
    }

    /// A start offset for a search by timestamp: no record before it has a timestamp at or
    /// above `timestamp`.
    pub fn time_lookup(&self, timestamp: i64) -> i64 {
        self.time_index.lookup(timestamp)
    }

    /// Empties the indexes and the summary of the batches, before they are rebuilt by a scan.
    fn forget_contents(&mut self) {
        self.index.clear();
        self.time_index.clear();
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.first_batch_timestamp = None;
        self.bytes_since_index = 0;
    }

    /// Validates every batch from the start, rebuilding both indexes, and cuts a torn or corrupt
    /// tail. Returns what was found; after it the segment holds only valid batches.
    pub fn recover(&mut self) -> io::Result<Scan> {
        self.forget_contents();
        let mut scan = Scan {
            valid_bytes: 0,
            batches: 0,
            error: None,
        };
        let all = self.data.slice(..self.size as usize);
        let mut pos = 0usize;
        while pos < all.len() {
            let Some(h) = BatchHeader::parse(&all[pos..]) else {
                scan.error = Some(format!("torn batch header at byte {pos}"));
                break;
            };
            let end = pos + h.total_len();
            if h.batch_length() < (batch::HEADER_LEN - batch::LOG_OVERHEAD) as i32
                || end > all.len()
            {
                scan.error = Some(format!("torn batch at byte {pos}"));
                break;
            }
            if let Err(e) = batch::validate_stored(&all[pos..end]) {
                scan.error = Some(format!("{e} at byte {pos}"));
                break;
            }
            if h.base_offset() < self.next_offset {
                scan.error = Some(format!(
                    "offset {} goes backwards at byte {pos}",
                    h.base_offset()
                ));
                break;
            }
            self.index_batches(pos as u64, &all[pos..end]);
            scan.batches += 1;
            pos = end;
        }
        scan.valid_bytes = pos as u64;
        if scan.valid_bytes < self.size {
            self.file.set_len(scan.valid_bytes)?;
            self.size = scan.valid_bytes;
        }
        self.txn_index.truncate_from(self.next_offset)?;
        Ok(scan)
    }

    /// Rebuilds both indexes from the batch headers, without checking CRCs: for a segment this
    /// node has just written and synced (a compaction result).
    pub fn reindex(&mut self) {
        self.forget_contents();
        let all = self.data.slice(..self.size as usize);
        self.index_batches(0, &all);
    }

    /// Whether the indexes on disk look consistent with the log (after a clean shutdown).
    pub fn indexes_sane(&self) -> bool {
        self.index.is_sane(self.size) && self.time_index.is_sane()
    }

    /// Removes every batch at or above `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let cut = self.position_of(offset).unwrap_or(self.size as usize) as u64;
        self.file.set_len(cut)?;
        self.size = cut;
        self.index.truncate_from(offset);
        self.time_index.truncate_from(offset);
        self.txn_index.truncate_from(offset)?;
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.first_batch_timestamp = None;
        self.load_summary();
        Ok(())
    }

    /// The segment stops taking appends: indexes trimmed to their entries and synced.
    pub fn seal(&mut self) -> io::Result<()> {
        self.index.trim()?;
        self.time_index.trim()
    }

    /// Writes the index maps back to their files (the log file is synced through `file()`).
    pub fn flush_indexes(&self) -> io::Result<()> {
        self.index.flush()?;
        self.time_index.flush()
    }

    /// Deletes the segment's files. Readers holding slices keep the unlinked pages alive.
    pub fn delete(self) -> io::Result<()> {
        let paths = [
            self.log_path.clone(),
            self.index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
            self.txn_index.path().to_path_buf(),
        ];
        drop(self);
        for p in paths {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Maps `len` bytes of `file` read-only as `Bytes` (empty for zero length).
fn map(file: &File, len: u64) -> io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: spool only ever appends to a segment file or cuts it back during recovery or
    // truncation, and only bytes below the segment's written size are sliced from this map; pages
    // past the file's end are never touched. The file is not modified by other processes.
    let map = unsafe { MmapOptions::new().len(len as usize).map(file)? };
    Ok(Bytes::from_owner(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{stamp_offset_and_epoch, tests::make_batch};

    const SIZES: SegmentSizes = SegmentSizes {
        capacity: 1 << 20,
        index_bytes: 1024,
        index_interval_bytes: 0,
    };

    fn batch_at(offset: i64, count: i32) -> Vec<u8> {
        let mut b = make_batch(0, count, 1000 + offset, (-1, -1, -1));
        stamp_offset_and_epoch(&mut b, offset, 0);
        b
    }

    #[test]
    fn append_read_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::open(dir.path(), 0, SIZES, true).unwrap();
        s.append(&batch_at(0, 3)).unwrap();
        s.append(&batch_at(3, 2)).unwrap();
        assert_eq!(s.next_offset(), 5);
        let all = s.read(0, 1 << 20, i64::MAX).unwrap();
        assert_eq!(all.len() as u64, s.size());
        let second = s.read(4, 1 << 20, i64::MAX).unwrap();
        assert_eq!(BatchHeader::parse(&second).unwrap().base_offset(), 3);
        assert!(
            s.read(0, 1 << 20, 3).unwrap().len() < all.len(),
            "upper bound stops before batch 2"
        );
        assert!(s.read(5, 1 << 20, i64::MAX).is_none());
        s.seal().unwrap();
        drop(s);
        let s = Segment::open(dir.path(), 0, SIZES, false).unwrap();
        assert_eq!(s.next_offset(), 5);
        assert!(s.indexes_sane());
    }

    #[test]
    fn first_batch_is_returned_even_when_larger_than_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::open(dir.path(), 0, SIZES, true).unwrap();
        s.append(&batch_at(0, 50)).unwrap();
        s.append(&batch_at(50, 50)).unwrap();
        let one = s.read(0, 10, i64::MAX).unwrap();
        assert_eq!(BatchHeader::parse(&one).unwrap().total_len(), one.len());
    }

    #[test]
    fn recover_truncates_torn_and_corrupt_tails() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::open(dir.path(), 0, SIZES, true).unwrap();
        s.append(&batch_at(0, 3)).unwrap();
        let good = s.size();
        let mut bad = batch_at(3, 3);
        bad[70] ^= 0x40;
        s.append(&bad).unwrap();
        s.append(&batch_at(6, 1)[..30]).unwrap();
        let scan = s.recover().unwrap();
        assert_eq!((scan.valid_bytes, scan.batches), (good, 1));
        assert!(scan.error.unwrap().contains("CRC"));
        assert_eq!(s.next_offset(), 3);
        assert_eq!(std::fs::metadata(s.log_path()).unwrap().len(), good);
    }

    #[test]
    fn truncate_to_drops_later_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Segment::open(dir.path(), 0, SIZES, true).unwrap();
        for i in 0..4 {
            s.append(&batch_at(i * 2, 2)).unwrap();
        }
        s.truncate_to(4).unwrap();
        assert_eq!(s.next_offset(), 4);
        assert!(s.read(4, 1 << 20, i64::MAX).is_none());
    }
}

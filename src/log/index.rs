//! Sparse, memory-mapped indexes of one segment.
//!
//! - `.index`: entries of (offset - base_offset: u32, file position: u32), 8 bytes, ascending.
//! - `.timeindex`: entries of (max timestamp so far: i64, offset - base_offset: u32), 12 bytes,
//!   ascending in both fields.
//!
//! While a segment is active its index files are preallocated to `segment_index_bytes` and
//! mapped read-write; when the segment rolls or closes they are trimmed to their entries. A file
//! whose entries are not ascending (a crash while preallocated) is detected and rebuilt from the
//! log by the caller.

use memmap2::{MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// One index file: fixed-size big-endian entries in a mapped, preallocated file.
pub struct MappedIndex {
    path: PathBuf,
    file: File,
    map: Option<MmapMut>,
    entry_size: usize,
    entries: usize,
    capacity: usize,
    /// Bytes from the start known to have disk blocks (see `push`).
    allocated: usize,
}

/// Disk blocks are reserved ahead of index writes in chunks of this many bytes.
const ALLOCATION_CHUNK: usize = 64 * 1024;

impl MappedIndex {
    /// Opens (or creates) the index at `path` holding `entries` valid entries, preallocated to
    /// `max_bytes` when `active`.
    fn open(path: &Path, entry_size: usize, max_bytes: usize, active: bool) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len() as usize;
        let entries = len / entry_size;
        let capacity = if active {
            (max_bytes / entry_size).max(entries)
        } else {
            entries
        };
        let mut index = Self {
            path: path.to_path_buf(),
            file,
            map: None,
            entry_size,
            entries,
            capacity,
            allocated: 0,
        };
        index.remap()?;
        Ok(index)
    }

    fn remap(&mut self) -> io::Result<()> {
        let bytes = self.capacity * self.entry_size;
        self.map = None;
        self.allocated = self.allocated.min(bytes);
        self.file.set_len(bytes as u64)?;
        if bytes > 0 {
            // SAFETY: the file is owned by this index and sized to `bytes` just above; spool
            // never truncates an index file while it is mapped except through `remap`, which
            // drops the old map first.
            self.map = Some(unsafe { MmapOptions::new().len(bytes).map_mut(&self.file)? });
        }
        Ok(())
    }

    fn entry(&self, i: usize) -> &[u8] {
        let map = self.map.as_ref().expect("an index with entries is mapped");
        &map[i * self.entry_size..(i + 1) * self.entry_size]
    }

    /// Appends an entry; false when the index is full or no disk block could be reserved for it
    /// (a full disk: the entry is skipped, which a sparse index allows). The preallocated file is
    /// sparse, and a store into a mapped page the file system cannot back would kill the process
    /// (SIGBUS), so blocks are reserved with fallocate before the map is written.
    fn push(&mut self, entry: &[u8]) -> bool {
        if self.entries >= self.capacity {
            return false;
        }
        let at = self.entries * self.entry_size;
        if at + self.entry_size > self.allocated {
            let len = ALLOCATION_CHUNK.min(self.capacity * self.entry_size - at);
            let reserved = rustix::fs::fallocate(
                &self.file,
                rustix::fs::FallocateFlags::KEEP_SIZE,
                at as u64,
                len.max(self.entry_size) as u64,
            );
            match reserved {
                Ok(()) => self.allocated = at + len.max(self.entry_size),
                // A file system without fallocate: nothing can be reserved ahead.
                Err(rustix::io::Errno::OPNOTSUPP) => self.allocated = usize::MAX,
                Err(e) => {
                    tracing::warn!(index = %self.path.display(), error = %e, "cannot reserve disk space for an index entry; skipping it");
                    return false;
                }
            }
        }
        let map = self.map.as_mut().expect("an index with capacity is mapped");
        map[at..at + self.entry_size].copy_from_slice(entry);
        self.entries += 1;
        true
    }

    pub fn is_full(&self) -> bool {
        self.entries >= self.capacity
    }

    /// Shrinks the file to its entries (segment rolled or closed).
    pub fn trim(&mut self) -> io::Result<()> {
        self.flush()?;
        self.capacity = self.entries;
        self.remap()
    }

    /// Largest entry index `i` with `key(i) <= target`, if any.
    fn floor(&self, target: i64, key: impl Fn(&[u8]) -> i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if key(self.entry(mid)) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    fn truncate_entries(&mut self, keep: usize) {
        self.entries = self.entries.min(keep);
    }

    pub fn flush(&self) -> io::Result<()> {
        match &self.map {
            Some(map) => map.flush(),
            None => Ok(()),
        }
    }

    pub fn clear(&mut self) {
        self.entries = 0;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Both indexes expose the file operations of their `MappedIndex` (full, trim, flush, clear).
macro_rules! deref_to_mapped {
    ($index:ty) => {
        impl std::ops::Deref for $index {
            type Target = MappedIndex;
            fn deref(&self) -> &MappedIndex {
                &self.inner
            }
        }
        impl std::ops::DerefMut for $index {
            fn deref_mut(&mut self) -> &mut MappedIndex {
                &mut self.inner
            }
        }
    };
}
deref_to_mapped!(OffsetIndex);
deref_to_mapped!(TimeIndex);

/// Maps offsets to file positions in a segment.
pub struct OffsetIndex {
    inner: MappedIndex,
    base_offset: i64,
}

impl OffsetIndex {
    pub const ENTRY: usize = 8;

    pub fn open(path: &Path, base_offset: i64, max_bytes: usize, active: bool) -> io::Result<Self> {
        Ok(Self {
            inner: MappedIndex::open(path, Self::ENTRY, max_bytes, active)?,
            base_offset,
        })
    }

    fn offset_at(&self, i: usize) -> i64 {
        self.base_offset + u32_at(self.inner.entry(i), 0) as i64
    }

    /// Adds an entry; returns false when the index is full (the segment must roll).
    pub fn append(&mut self, offset: i64, position: u32) -> bool {
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.inner.push(&e)
    }

    /// File position of the last indexed batch starting at or before `offset` (0 if none).
    pub fn lookup(&self, offset: i64) -> u32 {
        let base = self.base_offset;
        self.inner
            .floor(offset, |e| base + u32_at(e, 0) as i64)
            .map(|i| u32_at(self.inner.entry(i), 4))
            .unwrap_or(0)
    }

    /// Drops entries for offsets at or above `offset`.
    pub fn truncate_from(&mut self, offset: i64) {
        let keep = self
            .inner
            .floor(offset - 1, |e| self.base_offset + u32_at(e, 0) as i64);
        self.inner.truncate_entries(keep.map_or(0, |i| i + 1));
    }

    /// True when entries ascend strictly and point below `log_size`.
    pub fn is_sane(&self, log_size: u64) -> bool {
        (0..self.inner.entries).all(|i| {
            u32_at(self.inner.entry(i), 4) as u64 <= log_size
                && (i == 0 || self.offset_at(i) > self.offset_at(i - 1))
        })
    }
}

/// Maps timestamps to offsets in a segment.
pub struct TimeIndex {
    inner: MappedIndex,
    base_offset: i64,
}

impl TimeIndex {
    pub const ENTRY: usize = 12;

    pub fn open(path: &Path, base_offset: i64, max_bytes: usize, active: bool) -> io::Result<Self> {
        Ok(Self {
            inner: MappedIndex::open(path, Self::ENTRY, max_bytes, active)?,
            base_offset,
        })
    }

    fn timestamp_at(&self, i: usize) -> i64 {
        i64::from_be_bytes(self.inner.entry(i)[..8].try_into().expect("8 bytes"))
    }

    fn last_timestamp(&self) -> Option<i64> {
        self.inner
            .entries
            .checked_sub(1)
            .map(|i| self.timestamp_at(i))
    }

    /// Adds (timestamp, offset) when `timestamp` is above the last entry's; false when full.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> bool {
        if self.last_timestamp().is_some_and(|t| timestamp <= t) {
            return true;
        }
        let mut e = [0u8; 12];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        self.inner.push(&e)
    }

    /// The offset of the last entry whose timestamp is below `timestamp`, a safe place to start
    /// scanning for the first record at or after it (the segment's base offset if none).
    pub fn lookup(&self, timestamp: i64) -> i64 {
        self.inner
            .floor(timestamp - 1, |e| {
                i64::from_be_bytes(e[..8].try_into().expect("8 bytes"))
            })
            .map(|i| self.base_offset + u32_at(self.inner.entry(i), 8) as i64)
            .unwrap_or(self.base_offset)
    }

    /// Drops entries pointing at offsets at or above `offset`.
    pub fn truncate_from(&mut self, offset: i64) {
        let mut keep = self.inner.entries;
        while keep > 0 && self.base_offset + u32_at(self.inner.entry(keep - 1), 8) as i64 >= offset
        {
            keep -= 1;
        }
        self.inner.truncate_entries(keep);
    }

    pub fn is_sane(&self) -> bool {
        (1..self.inner.entries).all(|i| self.timestamp_at(i) > self.timestamp_at(i - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_floor_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("0.index"), 100, 80, true).unwrap();
        assert_eq!(idx.lookup(150), 0);
        assert!(idx.append(100, 0));
        assert!(idx.append(110, 4096));
        assert!(idx.append(120, 8192));
        assert_eq!(idx.lookup(99), 0);
        assert_eq!(idx.lookup(115), 4096);
        assert_eq!(idx.lookup(500), 8192);
        idx.truncate_from(120);
        assert_eq!(idx.lookup(500), 4096);
        assert!(idx.is_sane(10_000));
        idx.trim().unwrap();
        assert_eq!(std::fs::metadata(idx.path()).unwrap().len(), 16);
        let reopened = OffsetIndex::open(&dir.path().join("0.index"), 100, 80, false).unwrap();
        assert_eq!(reopened.lookup(111), 4096);
    }

    #[test]
    fn offset_index_reports_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("0.index"), 0, 16, true).unwrap();
        assert!(idx.append(1, 1) && idx.append(2, 2));
        assert!(idx.is_full());
        assert!(!idx.append(3, 3));
    }

    #[test]
    fn time_index_keeps_only_rising_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = TimeIndex::open(&dir.path().join("0.timeindex"), 0, 120, true).unwrap();
        idx.maybe_append(1000, 0);
        idx.maybe_append(900, 5);
        idx.maybe_append(2000, 10);
        assert_eq!(idx.lookup(1500), 0);
        assert_eq!(idx.lookup(2500), 10);
        assert_eq!(idx.lookup(10), 0);
        assert!(idx.is_sane());
        idx.truncate_from(10);
        assert_eq!(idx.lookup(2500), 0);
    }
}

//! A segment's transaction index (`.txnindex`): the transactions aborted by a marker held in the
//! segment, so a read_committed fetch can tell clients which records to skip.
//!
//! Entries are Kafka's layout, 34 bytes each, big-endian: `version:i16 (0) producer_id:i64
//! first_offset:i64 last_offset:i64 last_stable_offset:i64`, appended in marker order. The file
//! is small; it is read whole when the segment opens and kept in memory alongside.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{io_err, LogError};

pub const ENTRY_LEN: usize = 34;

/// One aborted transaction: the producer's records from `first_offset` up to the abort marker at
/// `last_offset` are not to be delivered to read_committed consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The last stable offset once this transaction was completed.
    pub last_stable_offset: i64,
}

/// One entry in the file's layout.
pub fn encode_entry(entry: &AbortedTxn) -> [u8; ENTRY_LEN] {
    entry.encode()
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let version = i16::from_be_bytes([b[0], b[1]]);
        (version == 0).then(|| Self {
            producer_id: at(2),
            first_offset: at(10),
            last_offset: at(18),
            last_stable_offset: at(26),
        })
    }
}

pub struct TxnIndex {
    path: PathBuf,
    file: Arc<File>,
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// Opens (or creates) the index at `path`. A torn or unreadable trailing entry is cut off.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut entries = Vec::with_capacity(bytes.len() / ENTRY_LEN);
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            match AbortedTxn::decode(chunk) {
                Some(e) => entries.push(e),
                None => break,
            }
        }
        let valid = (entries.len() * ENTRY_LEN) as u64;
        if valid != bytes.len() as u64 {
            file.set_len(valid)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file: Arc::new(file),
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    pub fn append(&mut self, entry: AbortedTxn) -> io::Result<()> {
        let at = (self.entries.len() * ENTRY_LEN) as u64;
        self.file.write_all_at(&entry.encode(), at)?;
        self.entries.push(entry);
        Ok(())
    }

    /// Drops every entry whose abort marker is at or above `offset`.
    pub fn truncate_from(&mut self, offset: i64) -> io::Result<()> {
        let keep = self
            .entries
            .iter()
            .position(|e| e.last_offset >= offset)
            .unwrap_or(self.entries.len());
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.file.set_len((keep * ENTRY_LEN) as u64)?;
        }
        Ok(())
    }
}

/// The log's transaction indexes, across its segments.
impl super::Log {
    /// Records an aborted transaction in the index of the segment holding its marker.
    pub fn add_aborted_txn(&mut self, entry: AbortedTxn) -> Result<(), LogError> {
        let Some((_, seg)) = self.segments.range_mut(..=entry.last_offset).next_back() else {
            return Ok(());
        };
        let path = seg.log_path().to_path_buf();
        seg.add_aborted_txn(entry).map_err(io_err(&path))
    }

    /// Forgets indexed aborted transactions whose marker is at or above `offset`, before the
    /// batches from `offset` on are replayed into producer state.
    pub fn truncate_aborted_from(&mut self, offset: i64) -> Result<(), LogError> {
        let first = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        for (_, seg) in self.segments.range_mut(first..) {
            let path = seg.log_path().to_path_buf();
            seg.truncate_aborted_from(offset).map_err(io_err(&path))?;
        }
        Ok(())
    }

    /// Transactions aborted in `[from, to)`: those whose marker is at or after `from` and whose
    /// first record is before `to`, as a read_committed fetch of that range must report.
    pub fn aborted_txns(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let first = self
            .segments
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        let mut out = Vec::new();
        for (_, seg) in self.segments.range(first..) {
            let mut past_upper_bound = false;
            for e in seg.aborted_txns() {
                if e.last_offset >= from && e.first_offset < to {
                    out.push(*e);
                }
                past_upper_bound |= e.last_offset >= to;
            }
            if past_upper_bound {
                break;
            }
        }
        out
    }

    /// Syncs every segment's transaction index (before a producer snapshot trusts them).
    pub fn sync_txn_indexes(&self) -> Result<(), LogError> {
        for seg in self.segments.values() {
            if !seg.aborted_txns().is_empty() {
                seg.txn_file().sync_data().map_err(io_err(seg.log_path()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_survive_reopen_and_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.txnindex");
        let mut idx = TxnIndex::open(&path).unwrap();
        idx.append(e(1, 0, 5)).unwrap();
        idx.append(e(2, 3, 9)).unwrap();
        drop(idx);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, &[0u8; 10]).unwrap();
        let mut idx = TxnIndex::open(&path).unwrap();
        assert_eq!(idx.entries(), &[e(1, 0, 5), e(2, 3, 9)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 68);
        idx.truncate_from(9).unwrap();
        assert_eq!(idx.entries(), &[e(1, 0, 5)]);
        assert_eq!(TxnIndex::open(&path).unwrap().entries().len(), 1);
    }
}

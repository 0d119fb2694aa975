//! The Raft log of the metadata quorum, with the vote and the committed log id: openraft's
//! [`RaftLogStorage`].
//!
//! On disk, in the quorum directory:
//! - `log.jsonl`: one [`Entry`] as JSON per line, in index order with no gaps. Appends are
//!   written and fsynced before openraft's flush callback runs. Truncation (a new leader
//!   overwriting an uncommitted suffix) cuts the file at the first removed entry's byte offset.
//! - `purged.json`: the last purged log id. Purging writes it first, then rewrites `log.jsonl`
//!   without the purged prefix (temp file and rename), so a crash between the two leaves entries
//!   that reopening drops.
//! - `vote.json`, `committed.json`: replaced atomically.
//!
//! Reopening tolerates a torn last line (a crash in the middle of an append, which openraft had
//! not been told was durable) by cutting it off; anything else that does not parse, or a gap in
//! the indexes, is corruption and stops the node.
//!
//! Locking: the entry cache is shared with the [`LogReader`]s that replication uses and guarded by
//! a `RwLock` held only to copy entries in or out. The file writer is touched only by this store,
//! inside `spawn_blocking`, so its mutex is never contended on an async worker.

use super::durable::{self, io_error};
use super::{ClusterError, TypeConfig};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

type NodeLogId = LogId<u64>;

const LOG_FILE: &str = "log.jsonl";
const VOTE_FILE: &str = "vote.json";
const COMMITTED_FILE: &str = "committed.json";
const PURGED_FILE: &str = "purged.json";

/// Entries not yet purged, by index. Mirrors `log.jsonl` after every completed write.
#[derive(Default)]
struct LogCache {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<NodeLogId>,
}

/// The append handle of `log.jsonl` and where each entry starts in it. One writer per log.
struct LogWriter {
    path: PathBuf,
    file: File,
    /// The file's length in bytes: the end of the last complete line.
    len: u64,
    /// Byte offset of each entry's line, by log index.
    offsets: BTreeMap<u64, u64>,
}

/// The log store handed to openraft. Clone-free: openraft owns it; readers share the cache.
pub struct LogStore {
    dir: PathBuf,
    cache: Arc<RwLock<LogCache>>,
    writer: Arc<Mutex<LogWriter>>,
    vote: Option<Vote<u64>>,
}

/// A read-only view of the log for openraft's replication tasks.
#[derive(Clone)]
pub struct LogReader {
    cache: Arc<RwLock<LogCache>>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`. Blocking: it reads the whole log and may cut a torn
    /// last line.
    pub fn open(dir: &Path) -> Result<Self, ClusterError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let last_purged: Option<NodeLogId> = durable::read_json(&dir.join(PURGED_FILE))?;
        let vote = durable::read_json(&dir.join(VOTE_FILE))?;
        let (writer, mut entries) = LogWriter::open(&dir.join(LOG_FILE))?;
        // Entries at or below the purge point survive only a crash in the middle of a purge.
        if let Some(purged) = &last_purged {
            entries = entries.split_off(&(purged.index + 1));
        }
        let cache = LogCache {
            entries,
            last_purged,
        };
        Ok(LogStore {
            dir: dir.to_path_buf(),
            cache: Arc::new(RwLock::new(cache)),
            writer: Arc::new(Mutex::new(writer)),
            vote,
        })
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, LogCache> {
        self.cache
            .read()
            .expect("the log cache lock is never poisoned")
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, LogCache> {
        self.cache
            .write()
            .expect("the log cache lock is never poisoned")
    }

    /// Runs `f` on the writer on a blocking thread.
    async fn with_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut LogWriter) -> Result<T, ClusterError> + Send + 'static,
    ) -> Result<T, StorageError<u64>> {
        let writer = self.writer.clone();
        let job = move || f(&mut writer.lock().expect("the log writer is never poisoned"));
        durable::blocking(job)
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

impl LogWriter {
    /// Opens `log.jsonl`, loads its entries and cuts a torn last line off.
    fn open(path: &Path) -> Result<(Self, BTreeMap<u64, Entry<TypeConfig>>), ClusterError> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_error(path))?;
        if !existed {
            durable::sync_parent(path)?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error(path))?;
        let (entries, offsets, valid_len) = parse_log(path, &bytes)?;
        if valid_len < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                valid_len,
                file_len = bytes.len(),
                "cutting a torn last line off the quorum log"
            );
            file.set_len(valid_len).map_err(io_error(path))?;
            file.sync_all().map_err(io_error(path))?;
        }
        let writer = LogWriter {
            path: path.to_path_buf(),
            file,
            len: valid_len,
            offsets,
        };
        Ok((writer, entries))
    }

    /// Appends whole lines and fsyncs them.
    fn append(&mut self, lines: &[u8], starts: &[(u64, u64)]) -> Result<(), ClusterError> {
        let written = self
            .file
            .write_all(lines)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Best effort: cut a partial line so that it cannot end up before later lines.
            let _ = self.file.set_len(self.len);
            return Err(io_error(&self.path)(e));
        }
        for (index, relative) in starts {
            self.offsets.insert(*index, self.len + relative);
        }
        self.len += lines.len() as u64;
        Ok(())
    }

    /// Removes every entry at or after `index`.
    fn truncate(&mut self, index: u64) -> Result<(), ClusterError> {
        let Some(cut) = self.offsets.range(index..).next().map(|(_, &o)| o) else {
            return Ok(());
        };
        self.file.set_len(cut).map_err(io_error(&self.path))?;
        self.file.sync_data().map_err(io_error(&self.path))?;
        self.offsets.split_off(&index);
        self.len = cut;
        Ok(())
    }

    /// Rewrites the file without the entries up to and including `index`.
    fn drop_prefix(&mut self, index: u64) -> Result<(), ClusterError> {
        let keep_from = self
            .offsets
            .range(index + 1..)
            .next()
            .map_or(self.len, |(_, &o)| o);
        let mut rest = Vec::with_capacity((self.len - keep_from) as usize);
        self.file
            .seek(SeekFrom::Start(keep_from))
            .map_err(io_error(&self.path))?;
        (&self.file)
            .take(self.len - keep_from)
            .read_to_end(&mut rest)
            .map_err(io_error(&self.path))?;
        durable::write_atomic(&self.path, &rest)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io_error(&self.path))?;
        self.offsets = self
            .offsets
            .split_off(&(index + 1))
            .into_iter()
            .map(|(i, o)| (i, o - keep_from))
            .collect();
        self.len -= keep_from;
        Ok(())
    }
}

type ParsedLog = (BTreeMap<u64, Entry<TypeConfig>>, BTreeMap<u64, u64>, u64);

/// Parses complete lines; returns the entries, their offsets and the length of the valid prefix.
fn parse_log(path: &Path, bytes: &[u8]) -> Result<ParsedLog, ClusterError> {
    let mut entries = BTreeMap::new();
    let mut offsets = BTreeMap::new();
    let mut pos = 0usize;
    while let Some(newline) = bytes[pos..].iter().position(|&b| b == b'\n') {
        let end = pos + newline;
        let corrupt = |reason: String| ClusterError::Corrupt {
            path: path.to_path_buf(),
            offset: pos as u64,
            reason,
        };
        let entry: Entry<TypeConfig> = match serde_json::from_slice(&bytes[pos..end]) {
            Ok(entry) => entry,
            // The last line: a torn append whose bytes reached the disk out of order.
            Err(_) if end + 1 == bytes.len() => break,
            Err(e) => return Err(corrupt(e.to_string())),
        };
        let index = entry.log_id.index;
        if let Some((&last, _)) = entries.last_key_value() {
            if index != last + 1 {
                return Err(corrupt(format!("entry {index} follows entry {last}")));
            }
        }
        offsets.insert(index, pos as u64);
        entries.insert(index, entry);
        pos = end + 1;
    }
    Ok((entries, offsets, pos as u64))
}

fn entries_in<RB: RangeBounds<u64>>(cache: &RwLock<LogCache>, range: RB) -> Vec<Entry<TypeConfig>> {
    let cache = cache.read().expect("the log cache lock is never poisoned");
    cache.entries.range(range).map(|(_, e)| e.clone()).collect()
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(entries_in(&self.cache, range))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(entries_in(&self.cache, range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let cache = self.read_cache();
        let last_log_id = cache
            .entries
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(cache.last_purged);
        Ok(LogState {
            last_purged_log_id: cache.last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            cache: self.cache.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let path = self.dir.join(VOTE_FILE);
        let value = *vote;
        durable::blocking(move || durable::write_json(&path, &value))
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<NodeLogId>,
    ) -> Result<(), StorageError<u64>> {
        let path = self.dir.join(COMMITTED_FILE);
        durable::blocking(move || durable::write_json(&path, &committed))
            .await
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<NodeLogId>, StorageError<u64>> {
        let path = self.dir.join(COMMITTED_FILE);
        let committed: Option<Option<NodeLogId>> =
            durable::blocking(move || durable::read_json(&path))
                .await
                .map_err(|e| StorageIOError::read(&e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let mut lines = Vec::new();
        let mut starts = Vec::with_capacity(entries.len());
        for entry in &entries {
            starts.push((entry.log_id.index, lines.len() as u64));
            serde_json::to_writer(&mut lines, entry)
                .map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            lines.push(b'\n');
        }
        let result = self.with_writer(move |w| w.append(&lines, &starts)).await;
        if let Err(e) = &result {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return result;
        }
        let mut cache = self.write_cache();
        cache
            .entries
            .extend(entries.into_iter().map(|e| (e.log_id.index, e)));
        drop(cache);
        // Only now are the entries durable.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: NodeLogId) -> Result<(), StorageError<u64>> {
        let index = log_id.index;
        self.with_writer(move |w| w.truncate(index)).await?;
        self.write_cache().entries.split_off(&index);
        Ok(())
    }

    async fn purge(&mut self, log_id: NodeLogId) -> Result<(), StorageError<u64>> {
        let purged_path = self.dir.join(PURGED_FILE);
        let index = log_id.index;
        self.with_writer(move |w| {
            durable::write_json(&purged_path, &log_id)?;
            w.drop_prefix(index)
        })
        .await?;
        let mut cache = self.write_cache();
        cache.entries = cache.entries.split_off(&(index + 1));
        cache.last_purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::MetadataCommand;
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(MetadataCommand::DeleteTopic {
                name: format!("t{index}"),
            }),
        }
    }

    async fn indexes(store: &mut LogStore) -> Vec<u64> {
        let entries = store.try_get_log_entries(..).await.unwrap();
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn log_and_vote_survive_a_reopen_and_a_torn_last_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store
            .blocking_append((1..=3).map(|i| entry(1, i)))
            .await
            .unwrap();
        store.save_vote(&Vote::new(2, 1)).await.unwrap();
        drop(store);

        // A crash in the middle of appending entry 4.
        let log_path = dir.path().join(LOG_FILE);
        let mut file = OpenOptions::new().append(true).open(&log_path).unwrap();
        file.write_all(br#"{"log_id":{"leader_id":{"term":1,"#)
            .unwrap();
        drop(file);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![1, 2, 3]);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 1)));
        store.blocking_append([entry(2, 4)]).await.unwrap();
        drop(store);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![1, 2, 3, 4]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id.map(|id| id.index), Some(4));
    }

    #[tokio::test]
    async fn truncate_and_purge_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store
            .blocking_append((1..=5).map(|i| entry(1, i)))
            .await
            .unwrap();
        store.truncate(entry(1, 4).log_id).await.unwrap();
        store.purge(entry(1, 1).log_id).await.unwrap();
        store.blocking_append([entry(2, 4)]).await.unwrap();
        drop(store);

        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&mut store).await, vec![2, 3, 4]);
        let entries = store.try_get_log_entries(4..5).await.unwrap();
        assert_eq!(entries[0].log_id.leader_id.term, 2);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(1, 1).log_id));

        // Purging past the end (a follower that installed a newer snapshot) empties the log.
        store.purge(entry(3, 9).log_id).await.unwrap();
        drop(store);
        let mut store = LogStore::open(dir.path()).unwrap();
        assert!(indexes(&mut store).await.is_empty());
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(entry(3, 9).log_id));
        store.blocking_append([entry(3, 10)]).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![10]);
    }

    #[test]
    fn a_bad_line_before_the_last_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let good = serde_json::to_string(&entry(1, 1)).unwrap();
        let text = format!("{good}\nnot json\n{good}\n");
        std::fs::write(dir.path().join(LOG_FILE), text).unwrap();
        let opened = LogStore::open(dir.path());
        assert!(
            matches!(opened, Err(ClusterError::Corrupt { offset, .. }) if offset == good.len() as u64 + 1)
        );
    }
}

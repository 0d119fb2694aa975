//! The applied side of the quorum: the [`MetadataImage`], the last applied log id and membership,
//! and their snapshots: openraft's [`RaftStateMachine`].
//!
//! The image lives in memory and is published on a `watch` channel after every applied batch.
//! Only snapshots reach the disk (`snapshot.json`, replaced atomically, holding the snapshot's
//! meta and image): on restart the state machine starts from the snapshot and openraft re-applies
//! the committed entries after it from the log (the log store keeps the committed id for that).
//!
//! A snapshot's data, as sent to a lagging follower, is the image as JSON; its meta carries the
//! last included log id and the membership.

use super::durable::{self, io_error};
use super::image::MetadataImage;
use super::{ClusterError, MetadataResponse, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

const SNAPSHOT_FILE: &str = "snapshot.json";

type Meta = SnapshotMeta<u64, BasicNode>;

/// `snapshot.json`.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: Meta,
    image: MetadataImage,
}

/// The current snapshot, kept in memory as the bytes openraft streams to followers.
#[derive(Clone)]
struct StoredSnapshot {
    meta: Meta,
    data: Vec<u8>,
}

/// Snapshot persistence, shared by the state machine and its snapshot builders (which run as
/// separate tasks). The mutex is taken only on blocking threads, around the file replacement,
/// so a snapshot built from an older state can never overwrite a newer installed one.
struct SnapshotStore {
    path: PathBuf,
    current: Mutex<Option<StoredSnapshot>>,
    /// Makes snapshot ids unique within this process run.
    built: AtomicU64,
}

impl SnapshotStore {
    /// Persists `snapshot` unless the current one already covers as much of the log. Blocking.
    fn save(&self, snapshot: StoredSnapshot, image: &MetadataImage) -> Result<(), ClusterError> {
        let mut current = self
            .current
            .lock()
            .expect("the snapshot lock is never poisoned");
        if let Some(existing) = current.as_ref() {
            if existing.meta.last_log_id >= snapshot.meta.last_log_id {
                return Ok(());
            }
        }
        let file = SnapshotFile {
            meta: snapshot.meta.clone(),
            image: image.clone(),
        };
        durable::write_json(&self.path, &file)?;
        *current = Some(snapshot);
        Ok(())
    }

    fn current(&self) -> Option<StoredSnapshot> {
        self.current
            .lock()
            .expect("the snapshot lock is never poisoned")
            .clone()
    }
}

/// What the state machine has applied.
#[derive(Clone, Default)]
struct Applied {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    image: Arc<MetadataImage>,
}

/// The state machine handed to openraft.
pub struct StateMachineStore {
    applied: Applied,
    snapshots: Arc<SnapshotStore>,
    published: watch::Sender<Arc<MetadataImage>>,
}

/// Builds a snapshot from the state as it was when openraft asked for the builder.
pub struct SnapshotBuilder {
    applied: Applied,
    snapshots: Arc<SnapshotStore>,
}

impl StateMachineStore {
    /// Opens the state machine in `dir`, starting from `snapshot.json` when there is one.
    /// Blocking. The receiver sees every newly applied image.
    pub fn open(dir: &Path) -> Result<(Self, watch::Receiver<Arc<MetadataImage>>), ClusterError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = dir.join(SNAPSHOT_FILE);
        let file: Option<SnapshotFile> = durable::read_json(&path)?;
        let (applied, current) = match file {
            Some(SnapshotFile { meta, image }) => {
                let data = encode_image(&image).map_err(|e| ClusterError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    reason: e.to_string(),
                })?;
                let applied = Applied {
                    last_applied: meta.last_log_id,
                    membership: meta.last_membership.clone(),
                    image: Arc::new(image),
                };
                (applied, Some(StoredSnapshot { meta, data }))
            }
            None => (Applied::default(), None),
        };
        let (published, receiver) = watch::channel(applied.image.clone());
        let snapshots = Arc::new(SnapshotStore {
            path,
            current: Mutex::new(current),
            built: AtomicU64::new(0),
        });
        let store = StateMachineStore {
            applied,
            snapshots,
            published,
        };
        Ok((store, receiver))
    }

    fn publish(&self) {
        self.published.send_replace(self.applied.image.clone());
    }
}

fn encode_image(image: &MetadataImage) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(image)
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let applied = self.applied.clone();
        let data =
            encode_image(&applied.image).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let seq = self.snapshots.built.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match applied.last_applied {
            Some(id) => format!(
                "{}-{}-{}-{seq}",
                id.leader_id.term, id.leader_id.node_id, id.index
            ),
            None => format!("empty-{seq}"),
        };
        let meta = Meta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let snapshots = self.snapshots.clone();
        let image = applied.image;
        durable::blocking(move || snapshots.save(stored, &image))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.applied.last_applied, self.applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetadataResponse>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.applied.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => MetadataResponse::Ok,
                EntryPayload::Normal(command) => {
                    // Copy-on-write: the published image stays as it was for its readers.
                    Arc::make_mut(&mut self.applied.image).apply(&command)
                }
                EntryPayload::Membership(membership) => {
                    self.applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    MetadataResponse::Ok
                }
            };
            responses.push(response);
        }
        self.publish();
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            applied: self.applied.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let image: MetadataImage = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let image = Arc::new(image);
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let snapshots = self.snapshots.clone();
        let to_save = image.clone();
        durable::blocking(move || snapshots.save(stored, &to_save))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.applied = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            image,
        };
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let snapshots = self.snapshots.clone();
        let current = durable::blocking(move || Ok(snapshots.current()))
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(current.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::log_store::LogStore;
    use openraft::testing::{StoreBuilder, Suite};

    struct DiskStores;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for DiskStores {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
            let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
            let log = LogStore::open(dir.path()).map_err(|e| StorageIOError::write_logs(&e))?;
            let (sm, _) = StateMachineStore::open(dir.path())
                .map_err(|e| StorageIOError::write_state_machine(&e))?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own conformance suite for log stores and state machines.
    #[test]
    fn stores_pass_the_openraft_storage_suite() {
        Suite::test_all(DiskStores).unwrap();
    }

    #[tokio::test]
    async fn an_installed_snapshot_is_the_state_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sm, mut images) = StateMachineStore::open(dir.path()).unwrap();
        let mut image = MetadataImage::default();
        image.apply(&crate::cluster::MetadataCommand::RegisterNode {
            node_id: 7,
            host: "h".into(),
            port: 1,
            rack: None,
            incarnation: None,
            listeners: Vec::new(),
        });
        let last = LogId::new(openraft::CommittedLeaderId::new(3, 1), 42);
        let meta = Meta {
            last_log_id: Some(last),
            last_membership: StoredMembership::default(),
            snapshot_id: "s".into(),
        };
        let data = Box::new(Cursor::new(encode_image(&image).unwrap()));
        sm.install_snapshot(&meta, data).await.unwrap();
        assert_eq!(**images.borrow_and_update(), image);
        drop(sm);

        let (mut sm, images) = StateMachineStore::open(dir.path()).unwrap();
        assert_eq!(**images.borrow(), image);
        assert_eq!(sm.applied_state().await.unwrap().0, Some(last));
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta.last_log_id, Some(last));
    }
}

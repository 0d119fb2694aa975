//! The classic consumer group coordinator: membership (join, sync, heartbeat, leave, session
//! expiry), committed offsets, and their persistence in `__consumer_offsets`.
//!
//! Locking rule: all groups sit behind one std mutex, held only for short, non-blocking work
//! (state changes and a page-cache append); requests that must wait (a parked join or sync,
//! an fsync of committed offsets) wait on channels or futures after it is released. No group
//! can stall another: nothing blocks while the lock is held.

pub mod membership;
pub mod offsets;
pub mod state;
pub mod store;
mod timers;

use crate::partition::{Partition, PartitionError};
use crate::replication::LeadershipListener;
use bytes::Bytes;
use state::{Group, GroupState};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Kafka error codes used by the coordinator (named as in Kafka's `Errors`).
pub mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const INVALID_REQUEST: i16 = 42;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
}

/// Coordinator settings (Kafka's `group.*` and `offsets.*` broker configs).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: u64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub offsets_retention_ms: i64,
    pub offset_metadata_max_bytes: usize,
}

/// An answer now, or one that arrives when the group moves on.
pub enum Pending<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

pub struct GroupCoordinator {
    config: GroupConfig,
    /// The partitions of `__consumer_offsets` this node leads and has loaded, by index; a
    /// group whose partition is not here is coordinated elsewhere (NOT_COORDINATOR).
    partitions: std::sync::RwLock<Vec<Option<Arc<Partition>>>>,
    groups: Mutex<HashMap<String, Group>>,
}

impl GroupCoordinator {
    /// A coordinator for an offsets topic of `partitions` partitions, coordinating nothing
    /// until this node leads some of them ([`GroupCoordinator::load_partition`]).
    pub fn new(config: GroupConfig, partitions: i32) -> Self {
        GroupCoordinator {
            config,
            partitions: std::sync::RwLock::new(vec![None; partitions.max(1) as usize]),
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this node coordinates `group` (it leads the group's offsets partition and has
    /// loaded it); `Err` carries NOT_COORDINATOR.
    pub fn owns(&self, group: &str) -> Result<(), i16> {
        self.partition_of(group)
            .map(|_| ())
            .map_err(|_| code::NOT_COORDINATOR)
    }

    fn slots(&self) -> std::sync::RwLockReadGuard<'_, Vec<Option<Arc<Partition>>>> {
        self.partitions
            .read()
            .expect("offsets partitions lock poisoned")
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().expect("group coordinator lock poisoned")
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn partition_of(&self, group: &str) -> Result<Arc<Partition>, PartitionError> {
        let index = self.partition_index(group);
        self.slots()[index as usize]
            .clone()
            .ok_or_else(|| PartitionError::NotLeader {
                tp: crate::model::TopicPartition::new(store::OFFSETS_TOPIC, index),
                leader: None,
                epoch: -1,
            })
    }

    /// The index of the offsets partition holding `group`.
    pub fn partition_index(&self, group: &str) -> i32 {
        store::partition_for(group, self.partition_count())
    }

    pub fn partition_count(&self) -> i32 {
        self.slots().len() as i32
    }

    /// Appends records for `group` to its offsets partition; returns the partition and the
    /// offset that must be durable for the records to be.
    fn append(
        &self,
        group: &str,
        records: &[(Bytes, Option<Bytes>)],
    ) -> Result<(Arc<Partition>, i64), PartitionError> {
        let partition = self.partition_of(group)?;
        let appended =
            partition.append_as_leader(&store::batch(records, crate::model::now_ms()))?;
        Ok((partition, appended.info.last_offset + 1))
    }

    /// This node now leads offsets partition `partition`: rebuilds its groups by replaying
    /// its records in order, then coordinates them. The replay runs before the groups lock is
    /// taken; until it is done the groups answer NOT_COORDINATOR.
    pub fn load_partition(&self, partition: &Arc<Partition>) -> Result<(), PartitionError> {
        let index = partition.tp().partition;
        let Some(slot) = usize::try_from(index)
            .ok()
            .filter(|i| *i < self.slots().len())
        else {
            return Ok(());
        };
        let mut loaded = HashMap::new();
        let now = tokio::time::Instant::now();
        store::for_each_record(partition, |r| {
            if r.control {
                // An end-transaction marker: key `version:i16 type:i16`.
                if let Some(kind) = r.key.as_deref().and_then(|k| k.get(2..4)) {
                    let commit = i16::from_be_bytes([kind[0], kind[1]]) == 1;
                    offsets::resolve_txn(&mut loaded, r.producer_id, |_| true, commit);
                }
                return;
            }
            let Some(key) = &r.key else { return };
            let Some(stored) = store::decode(key, r.value.as_deref()) else {
                return;
            };
            if r.transactional {
                offsets::replay_txn(&mut loaded, r.producer_id, stored);
            } else {
                offsets::replay(&mut loaded, stored, now);
            }
        })?;
        let count = loaded.len();
        let mut groups = self.groups();
        let total = self.partition_count();
        groups.retain(|id, _| store::partition_for(id, total) != index);
        groups.extend(loaded);
        self.partitions
            .write()
            .expect("offsets partitions lock poisoned")[slot] = Some(partition.clone());
        drop(groups);
        tracing::info!(
            partition = index,
            groups = count,
            "group coordinator loaded a partition"
        );
        Ok(())
    }

    /// This node no longer leads offsets partition `index`: its groups are dropped here (their
    /// waiting members are answered as the channels close) and coordinated by the new leader.
    pub fn unload_partition(&self, index: i32) {
        let mut groups = self.groups();
        let total = self.partition_count();
        if let Some(slot) = self
            .partitions
            .write()
            .expect("offsets partitions lock poisoned")
            .get_mut(index as usize)
        {
            *slot = None;
        }
        groups.retain(|id, _| store::partition_for(id, total) != index);
        tracing::info!(partition = index, "group coordinator unloaded a partition");
    }

    /// Group ids with their protocol type and state, for ListGroups.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let groups = self.groups();
        let mut out: Vec<_> = groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

impl LeadershipListener for GroupCoordinator {
    fn topic(&self) -> &str {
        store::OFFSETS_TOPIC
    }

    fn on_leadership(&self, partition: &Arc<Partition>, leader: bool) {
        if leader {
            if let Err(e) = self.load_partition(partition) {
                tracing::error!(partition = %partition.tp(), error = %e, "loading groups failed");
            }
        } else {
            self.unload_partition(partition.tp().partition);
        }
    }

    fn on_topics_deleted(&self, topics: &[String]) {
        let removed = self.remove_topic_offsets(topics);
        if removed > 0 {
            tracing::info!(
                ?topics,
                offsets = removed,
                "committed offsets of deleted topics removed"
            );
        }
    }
}

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
    /// The partitions of `__consumer_offsets`, by index.
    partitions: Vec<Arc<Partition>>,
    groups: Mutex<HashMap<String, Group>>,
}

impl GroupCoordinator {
    /// A coordinator over the offsets topic's partitions, with the groups they hold loaded.
    pub fn open(
        config: GroupConfig,
        partitions: Vec<Arc<Partition>>,
    ) -> Result<Self, PartitionError> {
        let coordinator = GroupCoordinator {
            config,
            partitions,
            groups: Mutex::new(HashMap::new()),
        };
        coordinator.load()?;
        Ok(coordinator)
    }

    fn groups(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().expect("group coordinator lock poisoned")
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn partition_of(&self, group: &str) -> &Arc<Partition> {
        &self.partitions[self.partition_index(group) as usize]
    }

    /// The index of the offsets partition holding `group`.
    pub fn partition_index(&self, group: &str) -> i32 {
        store::partition_for(group, self.partitions.len() as i32)
    }

    /// Appends records for `group` to its offsets partition; returns the partition and the
    /// offset that must be durable for the records to be.
    fn append(
        &self,
        group: &str,
        records: &[(Bytes, Option<Bytes>)],
    ) -> Result<(Arc<Partition>, i64), PartitionError> {
        let partition = self.partition_of(group).clone();
        let appended =
            partition.append_as_leader(&store::batch(records, crate::model::now_ms()))?;
        Ok((partition, appended.info.last_offset + 1))
    }

    /// Rebuilds every group from the offsets topic, replaying records in order.
    fn load(&self) -> Result<(), PartitionError> {
        let mut groups = self.groups();
        let now = tokio::time::Instant::now();
        for partition in &self.partitions {
            store::for_each_record(partition, |r| {
                if r.control {
                    // An end-transaction marker: key `version:i16 type:i16`.
                    if let Some(kind) = r.key.as_deref().and_then(|k| k.get(2..4)) {
                        let commit = i16::from_be_bytes([kind[0], kind[1]]) == 1;
                        offsets::resolve_txn(&mut groups, r.producer_id, |_| true, commit);
                    }
                    return;
                }
                let Some(key) = &r.key else { return };
                let Some(stored) = store::decode(key, r.value.as_deref()) else {
                    return;
                };
                if r.transactional {
                    offsets::replay_txn(&mut groups, r.producer_id, stored);
                } else {
                    offsets::replay(&mut groups, stored, now);
                }
            })?;
        }
        let count = groups.len();
        drop(groups);
        tracing::info!(groups = count, "group coordinator loaded");
        Ok(())
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

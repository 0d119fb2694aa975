//! Committed offsets and group administration: OffsetCommit, OffsetFetch, DescribeGroups,
//! DeleteGroups, OffsetDelete, offset expiry, and replaying the offsets topic at start-up.

use super::membership::remove_member;
use super::state::{CommittedOffset, Group, GroupState, Member};
use super::store::{self, Stored};
use super::{code, GroupCoordinator};
use crate::model::now_ms;
use crate::partition::{Partition, PartitionError};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub struct CommitRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// OffsetCommit v2-4 retention time, or -1.
    pub retention_ms: i64,
    /// (topic, partition, offset, leader epoch, metadata): partitions known to exist.
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
    pub version: i16,
}

/// Per-partition results of a commit, and what must be durable before answering.
pub struct CommitResult {
    pub errors: Vec<i16>,
    pub durable: Option<(Arc<Partition>, i64)>,
}

/// A group as DescribeGroups reports it.
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

fn storage_code(e: &PartitionError) -> i16 {
    tracing::error!(error = %e, "writing to the offsets topic failed");
    code::NOT_COORDINATOR
}

impl GroupCoordinator {
    pub fn commit(&self, r: CommitRequest) -> CommitResult {
        let fail = |e: i16| CommitResult {
            errors: vec![e; r.offsets.len()],
            durable: None,
        };
        if let Err(e) = self.owns(&r.group_id) {
            return fail(e);
        }
        let now_ms = now_ms();
        let mut groups = self.groups();
        if !groups.contains_key(&r.group_id) {
            if r.generation_id >= 0 {
                return fail(if r.version >= 9 {
                    code::GROUP_ID_NOT_FOUND
                } else {
                    code::ILLEGAL_GENERATION
                });
            }
            groups.insert(r.group_id.clone(), Group::new(&r.group_id, now_ms));
        }
        let g = groups.get_mut(&r.group_id).expect("present");
        if let Err(e) = check_commit(g, &r) {
            return fail(e);
        }
        if let Some(m) = g.members.get_mut(&r.member_id) {
            if matches!(g.state, GroupState::Stable | GroupState::PreparingRebalance) {
                m.deadline = Instant::now() + Duration::from_millis(m.session_timeout_ms as u64);
            }
        }
        let expire_timestamp = if r.retention_ms >= 0 {
            now_ms + r.retention_ms
        } else {
            -1
        };
        let Prepared {
            errors,
            records,
            accepted,
        } = self.prepare(&r.group_id, &r.offsets, now_ms, expire_timestamp);
        if records.is_empty() {
            return CommitResult {
                errors,
                durable: None,
            };
        }
        match self.append(&r.group_id, &records) {
            Ok(durable) => {
                g.offsets.extend(accepted);
                CommitResult {
                    errors,
                    durable: Some(durable),
                }
            }
            Err(e) => fail(storage_code(&e)),
        }
    }

    /// Committed offsets of a group: all of them (`None`), or those asked for (missing ones as
    /// `None`). A group that does not exist has none.
    #[allow(clippy::type_complexity)]
    pub fn fetch(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<(String, Vec<(i32, Option<CommittedOffset>)>)> {
        let groups = self.groups();
        let offsets = groups
            .get(group_id)
            .filter(|g| !g.is(GroupState::Dead))
            .map(|g| &g.offsets);
        match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| (p, offsets.and_then(|o| o.get(&(topic.clone(), p)).cloned())))
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: Vec<(String, Vec<(i32, Option<CommittedOffset>)>)> = Vec::new();
                for ((topic, p), o) in offsets.into_iter().flatten() {
                    match by_topic.last_mut() {
                        Some((t, list)) if t == topic => list.push((*p, Some(o.clone()))),
                        _ => by_topic.push((topic.clone(), vec![(*p, Some(o.clone()))])),
                    }
                }
                by_topic
            }
        }
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.groups();
        let g = groups.get(group_id).filter(|g| !g.is(GroupState::Dead))?;
        let stable = g.is(GroupState::Stable);
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let members = g
            .members
            .values()
            .map(|m: &Member| {
                let metadata = if stable {
                    m.metadata_for(&protocol)
                } else {
                    Bytes::new()
                };
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.client_id.clone(),
                    m.client_host.clone(),
                    metadata,
                    m.assignment.clone(),
                )
            })
            .collect();
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable { protocol } else { String::new() },
            members,
        })
    }

    /// Deletes empty groups with their offsets; one error per group.
    pub fn delete_groups(&self, ids: &[String]) -> Vec<i16> {
        let mut groups = self.groups();
        ids.iter()
            .map(|id| {
                if let Err(e) = self.owns(id) {
                    return e;
                }
                let Some(g) = groups.get(id).filter(|g| !g.is(GroupState::Dead)) else {
                    return code::GROUP_ID_NOT_FOUND;
                };
                if !g.is(GroupState::Empty) {
                    return code::NON_EMPTY_GROUP;
                }
                let mut records: Vec<(Bytes, Option<Bytes>)> = g
                    .offsets
                    .keys()
                    .map(|(t, p)| (store::offset_key(id, t, *p), None))
                    .collect();
                records.push((store::group_key(id), None));
                match self.append(id, &records) {
                    Ok(_) => {
                        groups.remove(id);
                        code::NONE
                    }
                    Err(e) => storage_code(&e),
                }
            })
            .collect()
    }

    /// Deletes committed offsets of topics the group does not consume; returns the group error
    /// and per-topic errors.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> (i16, Vec<Vec<i16>>) {
        let none = |e: i16| {
            (
                e,
                topics
                    .iter()
                    .map(|(_, ps)| vec![code::NONE; ps.len()])
                    .collect(),
            )
        };
        if group_id.is_empty() {
            return none(code::INVALID_GROUP_ID);
        }
        if let Err(e) = self.owns(group_id) {
            return none(e);
        }
        let mut groups = self.groups();
        let Some(g) = groups.get_mut(group_id).filter(|g| !g.is(GroupState::Dead)) else {
            return none(code::GROUP_ID_NOT_FOUND);
        };
        if !g.is(GroupState::Empty) && g.protocol_type.as_deref() != Some("consumer") {
            return none(code::NON_EMPTY_GROUP);
        }
        let mut records = Vec::new();
        let mut doomed = Vec::new();
        let errors = topics
            .iter()
            .map(|(topic, partitions)| {
                if g.is_subscribed_to(topic) {
                    return vec![code::GROUP_SUBSCRIBED_TO_TOPIC; partitions.len()];
                }
                for p in partitions {
                    if g.offsets.contains_key(&(topic.clone(), *p)) {
                        records.push((store::offset_key(group_id, topic, *p), None));
                        doomed.push((topic.clone(), *p));
                    }
                }
                vec![code::NONE; partitions.len()]
            })
            .collect();
        if !records.is_empty() {
            if let Err(e) = self.append(group_id, &records) {
                return none(storage_code(&e));
            }
            for key in doomed {
                g.offsets.remove(&key);
            }
        }
        (code::NONE, errors)
    }

    /// Removes every committed (and pending transactional) offset of `topics` from the groups
    /// this node coordinates, writing tombstones, as Kafka does when topics are deleted: a
    /// topic created again under the same name is then read from its start, not skipped to
    /// the old topic's positions. Returns how many committed offsets went.
    pub fn remove_topic_offsets(&self, topics: &[String]) -> usize {
        let mut groups = self.groups();
        let mut removed = 0;
        for g in groups.values_mut() {
            for pending in g.pending_txn.values_mut() {
                pending.retain(|(t, _), _| !topics.contains(t));
            }
            let doomed: Vec<(String, i32)> = g
                .offsets
                .keys()
                .filter(|(t, _)| topics.contains(t))
                .cloned()
                .collect();
            if doomed.is_empty() {
                continue;
            }
            let records: Vec<(Bytes, Option<Bytes>)> = doomed
                .iter()
                .map(|(t, p)| (store::offset_key(&g.id, t, *p), None))
                .collect();
            if let Err(e) = self.append(&g.id, &records) {
                // The offsets stay until retention expires them.
                crate::warn_limited!(group = %g.id, error = %e, "cannot remove the offsets of deleted topics");
                continue;
            }
            for k in &doomed {
                g.offsets.remove(k);
            }
            removed += doomed.len();
        }
        removed
    }

    /// Removes offsets past retention (Kafka's rules by group state) and groups left with
    /// nothing, writing tombstones. Returns how many offsets expired.
    pub fn expire_offsets(&self) -> usize {
        let now = now_ms();
        let retention = self.config.offsets_retention_ms;
        let mut groups = self.groups();
        let mut expired_total = 0;
        let mut emptied = Vec::new();
        for g in groups.values_mut() {
            let subscribed = g.subscribed_topics();
            let base_is_state = g.protocol_type.is_some() && g.is(GroupState::Empty);
            let can_expire = |topic: &str| match g.state {
                GroupState::Empty => true,
                GroupState::Stable if g.protocol_type.as_deref() == Some("consumer") => {
                    subscribed.as_ref().is_some_and(|s| !s.contains(topic))
                }
                _ => g.protocol_type.is_none(),
            };
            let doomed: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|((topic, _), o)| {
                    if o.expire_timestamp >= 0 {
                        return now >= o.expire_timestamp;
                    }
                    let base = if base_is_state {
                        g.state_since_ms
                    } else {
                        o.commit_timestamp
                    };
                    can_expire(topic) && now - base >= retention
                })
                .map(|(k, _)| k.clone())
                .collect();
            if doomed.is_empty() {
                continue;
            }
            let mut records: Vec<(Bytes, Option<Bytes>)> = doomed
                .iter()
                .map(|(t, p)| (store::offset_key(&g.id, t, *p), None))
                .collect();
            let drop_group = g.is(GroupState::Empty) && doomed.len() == g.offsets.len();
            if drop_group {
                records.push((store::group_key(&g.id), None));
            }
            if let Err(e) = self.append(&g.id, &records) {
                storage_code(&e);
                continue;
            }
            for k in &doomed {
                g.offsets.remove(k);
            }
            expired_total += doomed.len();
            if drop_group {
                emptied.push(g.id.clone());
            }
        }
        for id in emptied {
            groups.remove(&id);
        }
        expired_total
    }
}

/// A commit's offsets as records to write, the values to apply once written, and one error per
/// offset given (metadata too large, or none).
struct Prepared {
    errors: Vec<i16>,
    records: Vec<(Bytes, Option<Bytes>)>,
    accepted: Vec<((String, i32), CommittedOffset)>,
}

impl GroupCoordinator {
    fn prepare(
        &self,
        group_id: &str,
        offsets: &[(String, i32, i64, i32, Option<String>)],
        now_ms: i64,
        expire_timestamp: i64,
    ) -> Prepared {
        let mut out = Prepared {
            errors: Vec::with_capacity(offsets.len()),
            records: Vec::new(),
            accepted: Vec::new(),
        };
        for (topic, partition, offset, leader_epoch, metadata) in offsets {
            let metadata = metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                out.errors.push(code::OFFSET_METADATA_TOO_LARGE);
                continue;
            }
            let value = CommittedOffset {
                offset: *offset,
                leader_epoch: *leader_epoch,
                metadata,
                commit_timestamp: now_ms,
                expire_timestamp,
            };
            out.records.push((
                store::offset_key(group_id, topic, *partition),
                Some(store::offset_value(&value)),
            ));
            out.accepted.push(((topic.clone(), *partition), value));
            out.errors.push(code::NONE);
        }
        out
    }
}

/// A TxnOffsetCommit: offsets written for a transactional producer, applied when its
/// transaction commits.
pub struct TxnCommitRequest {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub generation_id: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    /// (topic, partition, offset, leader epoch, metadata): partitions known to exist.
    pub offsets: Vec<(String, i32, i64, i32, Option<String>)>,
}

impl GroupCoordinator {
    /// Writes transactional offsets as a transactional batch of the producer and keeps them
    /// pending; `complete_txn` applies or drops them when the marker is written.
    pub fn txn_commit(&self, r: TxnCommitRequest) -> CommitResult {
        let fail = |e: i16| CommitResult {
            errors: vec![e; r.offsets.len()],
            durable: None,
        };
        if let Err(e) = self.owns(&r.group_id) {
            return fail(e);
        }
        let now_ms = now_ms();
        let mut groups = self.groups();
        let g = groups
            .entry(r.group_id.clone())
            .or_insert_with(|| Group::new(&r.group_id, now_ms));
        if g.is(GroupState::Dead) {
            return fail(code::COORDINATOR_NOT_AVAILABLE);
        }
        // Member checks apply when the producer names its consumer's generation (KIP-447).
        if r.generation_id >= 0 || !r.member_id.is_empty() {
            if let Some(instance) = &r.instance_id {
                if g.static_members
                    .get(instance)
                    .is_some_and(|id| *id != r.member_id)
                {
                    return fail(code::FENCED_INSTANCE_ID);
                }
            }
            if !g.members.contains_key(&r.member_id) {
                return fail(code::UNKNOWN_MEMBER_ID);
            }
            if r.generation_id != g.generation_id {
                return fail(code::ILLEGAL_GENERATION);
            }
        }
        let Prepared {
            errors,
            records,
            accepted,
        } = self.prepare(&r.group_id, &r.offsets, now_ms, -1);
        if records.is_empty() {
            return CommitResult {
                errors,
                durable: None,
            };
        }
        let partition = match self.partition_of(&r.group_id) {
            Ok(p) => p,
            Err(e) => return fail(storage_code(&e)),
        };
        let batch =
            store::producer_batch(&records, now_ms, Some((r.producer_id, r.producer_epoch)));
        match partition.append_as_leader(&batch) {
            Ok(appended) => {
                g.pending_txn
                    .entry(r.producer_id)
                    .or_default()
                    .extend(accepted);
                CommitResult {
                    errors,
                    durable: Some((partition, appended.info.last_offset + 1)),
                }
            }
            Err(PartitionError::Producer { .. }) => fail(code::INVALID_PRODUCER_EPOCH),
            Err(e) => fail(storage_code(&e)),
        }
    }

    /// A transaction marker for `producer_id` was written to offsets partition `partition`:
    /// its pending offsets for the groups of that partition are applied (commit) or dropped.
    pub fn complete_txn(&self, producer_id: i64, partition: i32, commit: bool) {
        let count = self.partition_count();
        let mut groups = self.groups();
        resolve_txn(
            &mut groups,
            producer_id,
            |group| store::partition_for(group, count) == partition,
            commit,
        );
    }

    /// Whether a transaction has offsets pending for this group and partition (OffsetFetch
    /// with require_stable answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let groups = self.groups();
        groups.get(group_id).is_some_and(|g| {
            g.pending_txn
                .values()
                .any(|p| p.contains_key(&(topic.to_string(), partition)))
        })
    }
}

/// Applies (commit) or drops (abort) the pending offsets of `producer_id` in the groups chosen.
pub(super) fn resolve_txn(
    groups: &mut HashMap<String, Group>,
    producer_id: i64,
    chosen: impl Fn(&str) -> bool,
    commit: bool,
) {
    for g in groups.values_mut().filter(|g| chosen(&g.id)) {
        if let Some(pending) = g.pending_txn.remove(&producer_id) {
            if commit {
                g.offsets.extend(pending);
            }
        }
    }
}

/// Records a transactional offset commit read back from the offsets topic as pending.
pub(super) fn replay_txn(groups: &mut HashMap<String, Group>, producer_id: i64, stored: Stored) {
    if let Stored::Offset {
        group,
        topic,
        partition,
        value: Some(v),
    } = stored
    {
        groups
            .entry(group.clone())
            .or_insert_with(|| Group::new(&group, now_ms()))
            .pending_txn
            .entry(producer_id)
            .or_default()
            .insert((topic, partition), v);
    }
}

/// OffsetCommit's group-level checks (the error applies to every partition).
fn check_commit(g: &Group, r: &CommitRequest) -> Result<(), i16> {
    if g.is(GroupState::Dead) {
        return Err(code::COORDINATOR_NOT_AVAILABLE);
    }
    if r.generation_id < 0 && g.is(GroupState::Empty) {
        return Ok(());
    }
    if r.generation_id >= 0 || !r.member_id.is_empty() || r.instance_id.is_some() {
        if let Some(instance) = &r.instance_id {
            match g.static_members.get(instance) {
                Some(id) if *id != r.member_id => return Err(code::FENCED_INSTANCE_ID),
                None => return Err(code::UNKNOWN_MEMBER_ID),
                _ => {}
            }
        }
        if !g.members.contains_key(&r.member_id) {
            return Err(code::UNKNOWN_MEMBER_ID);
        }
        if r.generation_id != g.generation_id {
            return Err(code::ILLEGAL_GENERATION);
        }
    } else {
        return Err(code::UNKNOWN_MEMBER_ID);
    }
    if g.is(GroupState::CompletingRebalance) {
        return Err(code::REBALANCE_IN_PROGRESS);
    }
    Ok(())
}

/// Applies one record of the offsets topic while loading.
pub(super) fn replay(groups: &mut HashMap<String, Group>, stored: Stored, now: Instant) {
    match stored {
        Stored::Offset {
            group,
            topic,
            partition,
            value,
        } => {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group, now_ms()));
            match value {
                Some(v) => {
                    g.offsets.insert((topic, partition), v);
                }
                None => {
                    g.offsets.remove(&(topic, partition));
                }
            }
        }
        Stored::Group { group, value: None } => {
            groups.remove(&group);
        }
        Stored::Group {
            group,
            value: Some(record),
        } => {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(&group, now_ms()));
            let ids: Vec<String> = g.members.keys().cloned().collect();
            for id in ids {
                remove_member(g, &id);
            }
            g.generation_id = record.generation_id;
            g.protocol_type = Some(record.protocol_type).filter(|t| !t.is_empty());
            g.protocol_name = record.protocol_name.clone();
            g.leader = record.leader;
            let protocol = record.protocol_name.unwrap_or_default();
            for m in record.members {
                if let Some(instance) = &m.instance_id {
                    g.static_members
                        .insert(instance.clone(), m.member_id.clone());
                }
                let rebalance = if m.rebalance_timeout_ms < 0 {
                    m.session_timeout_ms
                } else {
                    m.rebalance_timeout_ms
                };
                g.members.insert(
                    m.member_id.clone(),
                    Member {
                        id: m.member_id,
                        instance_id: m.instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        rebalance_timeout_ms: rebalance,
                        session_timeout_ms: m.session_timeout_ms,
                        protocol_type: g.protocol_type.clone().unwrap_or_default(),
                        protocols: vec![(protocol.clone(), m.subscription)],
                        assignment: m.assignment,
                        awaiting_join: None,
                        awaiting_sync: None,
                        deadline: now + Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                        is_new: false,
                    },
                );
            }
            let state = if g.members.is_empty() {
                GroupState::Empty
            } else {
                GroupState::Stable
            };
            g.transition(
                state,
                if record.state_since_ms >= 0 {
                    record.state_since_ms
                } else {
                    now_ms()
                },
            );
        }
    }
}

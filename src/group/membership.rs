//! Group membership as Kafka's classic protocol runs it: JoinGroup (with KIP-394 member ids and
//! KIP-345 static members), SyncGroup, Heartbeat, LeaveGroup, the delayed initial rebalance,
//! and session, join and sync timeouts (driven by `tick`).

use super::state::{Group, GroupState, JoinOutcome, Member, SyncOutcome};
use super::store::{self, GroupRecord, MemberRecord};
use super::{code, GroupCoordinator, Pending};
use crate::model::now_ms;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long a new member may stay in a join before it must heartbeat (Kafka's constant).
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new dynamic member must first get its member id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
    /// v9+: a replaced static leader learns it may skip the assignment.
    pub version: i16,
}

pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

fn after_ms(now: Instant, ms: u64) -> Instant {
    now + Duration::from_millis(ms)
}

/// Checks that `member_id` (and `instance_id`, if given) name a current member.
fn validate_member(g: &Group, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
    if let Some(instance) = instance_id {
        match g.static_members.get(instance) {
            Some(known) if known != member_id => return Err(code::FENCED_INSTANCE_ID),
            None => return Err(code::UNKNOWN_MEMBER_ID),
            _ => {}
        }
    }
    if g.members.contains_key(member_id) {
        Ok(())
    } else {
        Err(code::UNKNOWN_MEMBER_ID)
    }
}

/// The answer a member gets for the current generation (the leader also gets the members).
fn current_generation(g: &Group, member_id: &str) -> JoinOutcome {
    let protocol = g.protocol_name.clone().unwrap_or_default();
    let leader = g.leader.clone().unwrap_or_default();
    let members = if leader == member_id {
        g.members
            .values()
            .map(|m| {
                (
                    m.id.clone(),
                    m.instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinOutcome {
        error: code::NONE,
        generation_id: g.generation_id,
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol_name.clone(),
        leader,
        member_id: member_id.to_string(),
        skip_assignment: false,
        members,
    }
}

impl GroupCoordinator {
    pub fn join(&self, r: JoinRequest) -> Pending<JoinOutcome> {
        let fail = |error| Pending::Now(JoinOutcome::error(error, &r.member_id));
        if r.group_id.is_empty() {
            return fail(code::INVALID_GROUP_ID);
        }
        if let Err(e) = self.owns(&r.group_id) {
            return fail(e);
        }
        let c = &self.config;
        if r.session_timeout_ms < c.min_session_timeout_ms
            || r.session_timeout_ms > c.max_session_timeout_ms
        {
            return fail(code::INVALID_SESSION_TIMEOUT);
        }
        let (now, now_ms) = (Instant::now(), now_ms());
        let mut groups = self.groups();
        if !groups.contains_key(&r.group_id) {
            if !r.member_id.is_empty() {
                return fail(code::UNKNOWN_MEMBER_ID);
            }
            groups.insert(r.group_id.clone(), Group::new(&r.group_id, now_ms));
        }
        let g = groups.get_mut(&r.group_id).expect("inserted above");
        if g.is(GroupState::Dead) {
            return fail(code::COORDINATOR_NOT_AVAILABLE);
        }
        if !self.accepts_joining(g, &r.member_id) {
            return Pending::Now(JoinOutcome::error(code::GROUP_MAX_SIZE_REACHED, ""));
        }
        if !g.supports(&r.protocol_type, &r.protocols) {
            return fail(code::INCONSISTENT_GROUP_PROTOCOL);
        }
        if r.member_id.is_empty() {
            self.join_new(g, r, now)
        } else {
            self.join_known(g, r, now)
        }
    }

    fn accepts_joining(&self, g: &Group, member_id: &str) -> bool {
        let known = g.members.contains_key(member_id) || g.pending_join.contains_key(member_id);
        match g.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                known
                    || g.members
                        .values()
                        .filter(|m| m.awaiting_join.is_some())
                        .count()
                        < self.config.max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                known || g.members.len() < self.config.max_size
            }
        }
    }

    fn join_new(&self, g: &mut Group, r: JoinRequest, now: Instant) -> Pending<JoinOutcome> {
        let prefix = r.instance_id.clone().unwrap_or_else(|| r.client_id.clone());
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(instance) = r.instance_id.clone() {
            if let Some(old_id) = g.static_members.get(&instance).cloned() {
                return self.replace_static_member(g, r, &old_id, &new_id, now);
            }
            return self.add_member_and_rebalance(g, r, new_id, now);
        }
        if r.require_known_member_id {
            g.pending_join
                .insert(new_id.clone(), after_ms(now, r.session_timeout_ms as u64));
            return Pending::Now(JoinOutcome::error(code::MEMBER_ID_REQUIRED, &new_id));
        }
        self.add_member_and_rebalance(g, r, new_id, now)
    }

    fn join_known(&self, g: &mut Group, r: JoinRequest, now: Instant) -> Pending<JoinOutcome> {
        if g.pending_join.contains_key(&r.member_id) {
            let id = r.member_id.clone();
            return self.add_member_and_rebalance(g, r, id, now);
        }
        if let Err(e) = validate_member(g, &r.member_id, r.instance_id.as_deref()) {
            return Pending::Now(JoinOutcome::error(e, &r.member_id));
        }
        let member = g.members.get(&r.member_id).expect("validated");
        let same_protocols = member.protocols == r.protocols;
        let is_leader = g.leader.as_deref() == Some(r.member_id.as_str());
        match g.state {
            GroupState::PreparingRebalance => {
                let rx = self.update_and_park(g, &r);
                self.maybe_complete_join(g, now);
                Pending::Later(rx)
            }
            GroupState::CompletingRebalance if same_protocols => {
                Pending::Now(current_generation(g, &r.member_id))
            }
            GroupState::Stable if same_protocols && !is_leader => {
                let mut outcome = current_generation(g, &r.member_id);
                outcome.members.clear();
                Pending::Now(outcome)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let rx = self.update_and_park(g, &r);
                self.prepare_rebalance(g, now);
                Pending::Later(rx)
            }
            GroupState::Empty | GroupState::Dead => {
                Pending::Now(JoinOutcome::error(code::UNKNOWN_MEMBER_ID, &r.member_id))
            }
        }
    }

    /// Updates a known member from its join request and parks the join.
    fn update_and_park(&self, g: &mut Group, r: &JoinRequest) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let m = g.members.get_mut(&r.member_id).expect("validated");
        m.protocols = r.protocols.clone();
        m.session_timeout_ms = r.session_timeout_ms;
        m.rebalance_timeout_ms = r.rebalance_timeout_ms;
        if let Some(old) = m.awaiting_join.replace(tx) {
            let _ = old.send(JoinOutcome::error(
                code::REBALANCE_IN_PROGRESS,
                &r.member_id,
            ));
        }
        rx
    }

    fn add_member_and_rebalance(
        &self,
        g: &mut Group,
        r: JoinRequest,
        id: String,
        now: Instant,
    ) -> Pending<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if g.members.is_empty() {
            g.protocol_type = Some(r.protocol_type.clone());
        }
        if g.is(GroupState::PreparingRebalance) && g.initial_delay_remaining_ms.is_some() {
            g.new_member_added = true;
        }
        if g.leader.is_none() {
            g.leader = Some(id.clone());
        }
        if let Some(instance) = &r.instance_id {
            g.static_members.insert(instance.clone(), id.clone());
        }
        g.pending_join.remove(&id);
        g.members.insert(
            id.clone(),
            Member {
                id,
                instance_id: r.instance_id,
                client_id: r.client_id,
                client_host: r.client_host,
                rebalance_timeout_ms: r.rebalance_timeout_ms,
                session_timeout_ms: r.session_timeout_ms,
                protocol_type: r.protocol_type,
                protocols: r.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(tx),
                awaiting_sync: None,
                deadline: now + NEW_MEMBER_JOIN_TIMEOUT,
                is_new: true,
            },
        );
        match g.state {
            GroupState::PreparingRebalance => self.maybe_complete_join(g, now),
            _ => self.prepare_rebalance(g, now),
        }
        Pending::Later(rx)
    }

    /// KIP-345: a static member rejoining without its member id takes over its old identity.
    fn replace_static_member(
        &self,
        g: &mut Group,
        r: JoinRequest,
        old_id: &str,
        new_id: &str,
        now: Instant,
    ) -> Pending<JoinOutcome> {
        let Some(mut member) = g.members.remove(old_id) else {
            let id = new_id.to_string();
            return self.add_member_and_rebalance(g, r, id, now);
        };
        if let Some(tx) = member.awaiting_join.take() {
            let _ = tx.send(JoinOutcome::error(code::FENCED_INSTANCE_ID, old_id));
        }
        if let Some(tx) = member.awaiting_sync.take() {
            let _ = tx.send(SyncOutcome::error(code::FENCED_INSTANCE_ID));
        }
        let old_leader = g.leader.clone();
        let protocol_unchanged = g
            .protocol_name
            .as_ref()
            .is_none_or(|p| r.protocols.iter().any(|(n, _)| n == p))
            && member.protocols == r.protocols;
        member.id = new_id.to_string();
        member.protocols = r.protocols.clone();
        member.session_timeout_ms = r.session_timeout_ms;
        member.rebalance_timeout_ms = r.rebalance_timeout_ms;
        member.deadline = after_ms(now, r.session_timeout_ms as u64);
        g.members.insert(new_id.to_string(), member);
        g.static_members
            .insert(r.instance_id.clone().expect("static"), new_id.to_string());
        if g.leader.as_deref() == Some(old_id) {
            g.leader = Some(new_id.to_string());
        }
        g.pending_sync.remove(old_id);
        match g.state {
            GroupState::Stable if protocol_unchanged => {
                let records = [(
                    store::group_key(&g.id),
                    Some(store::group_value(&group_record(g))),
                )];
                if let Err(e) = self.append(&g.id, &records) {
                    tracing::error!(group = %g.id, error = %e, "persisting a static member replacement failed");
                }
                let mut outcome = current_generation(g, new_id);
                if r.version < 9 {
                    outcome.leader = old_leader.unwrap_or_default();
                    outcome.members.clear();
                } else {
                    outcome.skip_assignment = outcome.leader == new_id;
                }
                Pending::Now(outcome)
            }
            GroupState::PreparingRebalance => {
                let rx = self.park_join(g, new_id);
                self.maybe_complete_join(g, now);
                Pending::Later(rx)
            }
            _ => {
                let rx = self.park_join(g, new_id);
                self.prepare_rebalance(g, now);
                Pending::Later(rx)
            }
        }
    }

    fn park_join(&self, g: &mut Group, member_id: &str) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        g.members.get_mut(member_id).expect("present").awaiting_join = Some(tx);
        rx
    }

    /// Moves the group to PreparingRebalance; from Empty, through the initial delay.
    pub(super) fn prepare_rebalance(&self, g: &mut Group, now: Instant) {
        if g.is(GroupState::CompletingRebalance) {
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.awaiting_sync.take() {
                    let _ = tx.send(SyncOutcome::error(code::REBALANCE_IN_PROGRESS));
                }
            }
        }
        g.sync_deadline = None;
        let was_empty = g.is(GroupState::Empty);
        g.transition(GroupState::PreparingRebalance, now_ms());
        let timeout = g.rebalance_timeout_ms();
        if was_empty {
            let delay = self.config.initial_rebalance_delay_ms;
            g.initial_delay_remaining_ms = Some(timeout.saturating_sub(delay));
            g.new_member_added = false;
            g.join_deadline = Some(after_ms(now, delay));
        } else {
            g.initial_delay_remaining_ms = None;
            g.join_deadline = Some(after_ms(now, timeout));
            self.maybe_complete_join(g, now);
        }
    }

    pub(super) fn maybe_complete_join(&self, g: &mut Group, now: Instant) {
        if g.is(GroupState::PreparingRebalance)
            && g.initial_delay_remaining_ms.is_none()
            && g.all_joined()
        {
            self.complete_join(g, now);
        }
    }

    /// Ends the join phase: drops dynamic members that did not rejoin, starts the next
    /// generation and answers every parked join.
    pub(super) fn complete_join(&self, g: &mut Group, now: Instant) {
        g.join_deadline = None;
        g.initial_delay_remaining_ms = None;
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            remove_member(g, &id);
        }
        if !g.members.is_empty() && g.members.values().all(|m| m.awaiting_join.is_none()) {
            g.join_deadline = Some(after_ms(now, g.rebalance_timeout_ms()));
            return;
        }
        g.generation_id += 1;
        if g.members.is_empty() {
            g.protocol_name = None;
            g.transition(GroupState::Empty, now_ms());
            self.persist_group(g);
            return;
        }
        g.protocol_name = g.select_protocol();
        g.transition(GroupState::CompletingRebalance, now_ms());
        let leader_joined = g
            .leader
            .as_ref()
            .and_then(|l| g.members.get(l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if !leader_joined {
            g.leader = g
                .members
                .values()
                .find(|m| m.awaiting_join.is_some())
                .map(|m| m.id.clone());
        }
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in &ids {
            let outcome = current_generation(g, id);
            let m = g.members.get_mut(id).expect("listed");
            if let Some(tx) = m.awaiting_join.take() {
                let _ = tx.send(outcome);
            }
            m.deadline = after_ms(now, m.session_timeout_ms as u64);
            m.is_new = false;
        }
        g.pending_sync = ids.into_iter().collect();
        g.sync_deadline = Some((after_ms(now, g.rebalance_timeout_ms()), g.generation_id));
    }

    fn persist_group(&self, g: &Group) {
        let records = [(
            store::group_key(&g.id),
            Some(store::group_value(&group_record(g))),
        )];
        if let Err(e) = self.append(&g.id, &records) {
            tracing::error!(group = %g.id, error = %e, "persisting group metadata failed");
        }
    }

    pub fn sync(&self, r: SyncRequest) -> Pending<SyncOutcome> {
        let fail = |e| Pending::Now(SyncOutcome::error(e));
        if r.group_id.is_empty() {
            return fail(code::INVALID_GROUP_ID);
        }
        if let Err(e) = self.owns(&r.group_id) {
            return fail(e);
        }
        let now = Instant::now();
        let mut groups = self.groups();
        let Some(g) = groups.get_mut(&r.group_id) else {
            return fail(code::UNKNOWN_MEMBER_ID);
        };
        match g.state {
            GroupState::Empty => return fail(code::UNKNOWN_MEMBER_ID),
            GroupState::Dead => return fail(code::COORDINATOR_NOT_AVAILABLE),
            _ => {}
        }
        if let Err(e) = validate_member(g, &r.member_id, r.instance_id.as_deref()) {
            return fail(e);
        }
        if r.generation_id != g.generation_id {
            return fail(code::ILLEGAL_GENERATION);
        }
        let inconsistent = |asked: &Option<String>, have: &Option<String>| matches!((asked, have), (Some(a), Some(h)) if a != h);
        if inconsistent(&r.protocol_type, &g.protocol_type)
            || inconsistent(&r.protocol_name, &g.protocol_name)
        {
            return fail(code::INCONSISTENT_GROUP_PROTOCOL);
        }
        match g.state {
            GroupState::PreparingRebalance => fail(code::REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                g.pending_sync.remove(&r.member_id);
                let m = g.members.get(&r.member_id).expect("validated");
                Pending::Now(SyncOutcome {
                    error: code::NONE,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                })
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                g.members
                    .get_mut(&r.member_id)
                    .expect("validated")
                    .awaiting_sync = Some(tx);
                g.pending_sync.remove(&r.member_id);
                if g.leader.as_deref() == Some(r.member_id.as_str()) {
                    self.complete_sync(g, r.assignments, now);
                }
                Pending::Later(rx)
            }
        }
    }

    /// The leader's assignment arrived: store it, persist the group, answer every parked sync.
    fn complete_sync(&self, g: &mut Group, assignments: Vec<(String, Bytes)>, now: Instant) {
        let by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
        for m in g.members.values_mut() {
            m.assignment = by_member.get(&m.id).cloned().unwrap_or_default();
        }
        self.persist_group(g);
        for m in g.members.values_mut() {
            if let Some(tx) = m.awaiting_sync.take() {
                let _ = tx.send(SyncOutcome {
                    error: code::NONE,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                });
                m.deadline = after_ms(now, m.session_timeout_ms as u64);
            }
        }
        g.sync_deadline = None;
        g.transition(GroupState::Stable, now_ms());
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        if group_id.is_empty() {
            return code::INVALID_GROUP_ID;
        }
        if let Err(e) = self.owns(group_id) {
            return e;
        }
        let mut groups = self.groups();
        let Some(g) = groups.get_mut(group_id) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        if g.is(GroupState::Dead) {
            return code::COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(e) = validate_member(g, member_id, instance_id) {
            return e;
        }
        if generation_id != g.generation_id {
            return code::ILLEGAL_GENERATION;
        }
        let m = g.members.get_mut(member_id).expect("validated");
        m.deadline = after_ms(Instant::now(), m.session_timeout_ms as u64);
        match g.state {
            GroupState::Empty | GroupState::Dead => code::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => code::REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => code::NONE,
        }
    }

    /// Removes members; returns the group-level error and one error per member.
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> (i16, Vec<i16>) {
        if group_id.is_empty() {
            return (
                code::INVALID_GROUP_ID,
                vec![code::INVALID_GROUP_ID; members.len()],
            );
        }
        if let Err(e) = self.owns(group_id) {
            return (e, vec![e; members.len()]);
        }
        let now = Instant::now();
        let mut groups = self.groups();
        let Some(g) = groups.get_mut(group_id) else {
            return (code::NONE, vec![code::UNKNOWN_MEMBER_ID; members.len()]);
        };
        if g.is(GroupState::Dead) {
            return (
                code::COORDINATOR_NOT_AVAILABLE,
                vec![code::COORDINATOR_NOT_AVAILABLE; members.len()],
            );
        }
        let mut left = false;
        let errors = members
            .iter()
            .map(|(member_id, instance_id)| {
                let id = if member_id.is_empty() {
                    match instance_id.as_ref().and_then(|i| g.static_members.get(i)) {
                        Some(id) => id.clone(),
                        None => return code::UNKNOWN_MEMBER_ID,
                    }
                } else {
                    member_id.clone()
                };
                if g.pending_join.remove(&id).is_some() {
                    return code::NONE;
                }
                let instance = if member_id.is_empty() {
                    None
                } else {
                    instance_id.as_deref()
                };
                if let Err(e) = validate_member(g, &id, instance) {
                    return e;
                }
                remove_member(g, &id);
                left = true;
                code::NONE
            })
            .collect();
        if left {
            match g.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.prepare_rebalance(g, now)
                }
                GroupState::PreparingRebalance => self.maybe_complete_join(g, now),
                _ => {}
            }
        }
        (code::NONE, errors)
    }
}

/// Drops a member: answers its parked requests, forgets its static id and pending sync, and
/// hands leadership on if it led.
pub(super) fn remove_member(g: &mut Group, id: &str) {
    let Some(mut m) = g.members.remove(id) else {
        return;
    };
    if let Some(tx) = m.awaiting_join.take() {
        let _ = tx.send(JoinOutcome::error(code::UNKNOWN_MEMBER_ID, ""));
    }
    if let Some(tx) = m.awaiting_sync.take() {
        let _ = tx.send(SyncOutcome::error(code::REBALANCE_IN_PROGRESS));
    }
    if let Some(instance) = &m.instance_id {
        if g.static_members.get(instance).is_some_and(|i| i == id) {
            g.static_members.remove(instance);
        }
    }
    g.pending_sync.remove(id);
    if g.leader.as_deref() == Some(id) {
        g.leader = g.members.keys().next().cloned();
    }
}

/// The group as GroupMetadataValue stores it.
pub(super) fn group_record(g: &Group) -> GroupRecord {
    let protocol = g.protocol_name.clone().unwrap_or_default();
    GroupRecord {
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        generation_id: g.generation_id,
        protocol_name: g.protocol_name.clone(),
        leader: g.leader.clone(),
        state_since_ms: g.state_since_ms,
        members: g
            .members
            .values()
            .map(|m| MemberRecord {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect(),
    }
}

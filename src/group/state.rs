//! The in-memory model of classic consumer groups: members, states, generations, committed
//! offsets. Pure data and small helpers; the protocol rules live in `membership` and `offsets`.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Kafka's classic group states, with their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a parked or immediate JoinGroup gets back.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// (member id, group instance id, metadata): only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn error(error: i16, member_id: &str) -> Self {
        JoinOutcome {
            error,
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a parked or immediate SyncGroup gets back.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: i16) -> Self {
        SyncOutcome {
            error,
            ..Default::default()
        }
    }
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (protocol name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    pub awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
    /// When the member expires unless it heartbeats (or rejoins) first.
    pub deadline: Instant,
    pub is_new: bool,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Explicit expiry (OffsetCommit v2-4 retention time), or -1.
    pub expire_timestamp: i64,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    /// When the current state was entered (ms since the epoch).
    pub state_since_ms: i64,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pub pending_join: HashMap<String, Instant>,
    pub pending_sync: HashSet<String>,
    pub new_member_added: bool,
    /// When the join phase completes (rebalance timeout, or the initial delay).
    pub join_deadline: Option<Instant>,
    /// While in the initial rebalance delay: how much of the rebalance timeout is left.
    pub initial_delay_remaining_ms: Option<u64>,
    /// When unsynced members of this generation are removed.
    pub sync_deadline: Option<(Instant, i32)>,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Offsets committed inside transactions not yet decided, by producer id: applied by a
    /// commit marker, dropped by an abort marker.
    pub pending_txn: HashMap<i64, BTreeMap<(String, i32), CommittedOffset>>,
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Self {
        Group {
            pending_txn: HashMap::new(),
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_join: HashMap::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            join_deadline: None,
            initial_delay_remaining_ms: None,
            sync_deadline: None,
            offsets: BTreeMap::new(),
        }
    }

    pub fn transition(&mut self, to: GroupState, now_ms: i64) {
        self.state = to;
        self.state_since_ms = now_ms;
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    /// The largest rebalance timeout of the members (how long a join phase may take).
    pub fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0)
    }

    /// Whether a member with this protocol type and protocols may join.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocols.is_empty() || protocol_type.is_empty() {
            return false;
        }
        if self.members.is_empty() && self.pending_join.is_empty() {
            return true;
        }
        if self.members.is_empty() {
            return self
                .protocol_type
                .as_deref()
                .is_none_or(|t| t == protocol_type);
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// Each member votes for its first protocol that every member supports; most votes wins
    /// (ties: the name first in order).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates: Vec<&String> = self
            .members
            .values()
            .next()?
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((vote, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                *votes.entry(vote).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(n, _)| n.clone())
    }

    /// Whether every member has rejoined and no MEMBER_ID_REQUIRED id is outstanding.
    pub fn all_joined(&self) -> bool {
        self.pending_join.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// The topics the group's members subscribe to, from their "consumer" protocol metadata;
    /// `None` when that cannot be known (another protocol type, or metadata that does not parse).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(consumer_subscription_topics(&m.metadata_for(protocol))?);
        }
        Some(topics)
    }

    /// Whether the group's members consume `topic` (so its offsets may not be deleted).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        if self.members.is_empty() {
            return false;
        }
        match self.subscribed_topics() {
            Some(t) => t.contains(topic),
            None => self.protocol_type.as_deref() == Some("consumer"),
        }
    }
}

/// The `topics` of a ConsumerProtocolSubscription (any version: later versions only append).
pub fn consumer_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = crate::group::store::Reader::new(metadata);
    let _version = r.i16()?;
    let count = r.i32()?;
    if count < 0 || count as usize > metadata.len() {
        return None;
    }
    (0..count).map(|_| r.string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 1000,
            session_timeout_ms: 1000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::new()))
                .collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            deadline: Instant::now(),
            is_new: false,
        }
    }

    #[test]
    fn protocol_selection_takes_the_most_voted_common_protocol() {
        let mut g = Group::new("g", 0);
        g.protocol_type = Some("consumer".into());
        g.members
            .insert("a".into(), member("a", &["range", "roundrobin"]));
        g.members
            .insert("b".into(), member("b", &["roundrobin", "range"]));
        g.members
            .insert("c".into(), member("c", &["roundrobin", "sticky"]));
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
        assert!(g.supports("consumer", &[("roundrobin".into(), Bytes::new())]));
        assert!(!g.supports("consumer", &[("sticky".into(), Bytes::new())]));
        assert!(!g.supports("connect", &[("roundrobin".into(), Bytes::new())]));
    }

    #[test]
    fn subscription_topics_are_read_from_consumer_metadata() {
        // version 1, topics ["a", "bb"], user data null, owned partitions []
        let meta = [
            0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'b', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
        ];
        assert_eq!(
            consumer_subscription_topics(&meta),
            Some(vec!["a".to_string(), "bb".to_string()])
        );
        assert_eq!(consumer_subscription_topics(&[0, 1, 0x7f, 0, 0, 0]), None);
    }
}

//! The quorum as Kafka's DescribeQuorum reports it: the leader, its term (Kafka's leader epoch),
//! the high watermark, and each voter's and observer's (learner's) log end offset with the last
//! times the leader saw it replicate and be caught up.
//!
//! openraft reports, on the leader, the last log id each follower has matched, but no times:
//! [`track`] watches the leader's metrics and notes, per follower, when its matched position
//! last moved (Kafka's last fetch) and when it last equalled the leader's log end (last caught
//! up). The log grows at least every heartbeat interval, so both move while a follower keeps up.
//! Offsets are Raft log indexes plus one: the next entry, as Kafka counts its metadata log.

use super::{MetadataRaft, RaftNodeId};
use crate::model::now_ms;
use openraft::ServerState;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// What the leader last saw of one follower.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    matched: Option<u64>,
    last_fetch_ms: i64,
    last_caught_up_ms: i64,
}

/// Per-follower times, kept while this node leads.
#[derive(Debug, Default)]
pub struct QuorumTimes {
    seen: Mutex<BTreeMap<RaftNodeId, Seen>>,
}

/// One replica of the metadata log as DescribeQuorum reports it (-1: unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaView {
    pub node_id: RaftNodeId,
    pub log_end_offset: i64,
    pub last_fetch_ms: i64,
    pub last_caught_up_ms: i64,
}

/// The quorum as this node sees it; `replicas` only when it leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    pub leader: Option<RaftNodeId>,
    pub is_leader: bool,
    pub term: u64,
    pub high_watermark: i64,
    pub voters: Vec<ReplicaView>,
    pub observers: Vec<ReplicaView>,
}

fn offset(index: Option<u64>) -> i64 {
    index.map_or(-1, |i| i as i64 + 1)
}

/// Keeps `times` up to date from the Raft metrics until `stop`.
pub async fn track(raft: MetadataRaft, times: Arc<QuorumTimes>, stop: CancellationToken) {
    let mut metrics = raft.metrics();
    loop {
        {
            let m = metrics.borrow_and_update();
            let mut seen = times.seen.lock().expect("quorum times lock");
            match (&m.state, &m.replication) {
                (ServerState::Leader, Some(replication)) => {
                    let now = now_ms();
                    let end = m.last_log_index;
                    for (id, matched) in replication {
                        let index = matched.map(|l| l.index);
                        let s = seen.entry(*id).or_default();
                        if index != s.matched {
                            s.matched = index;
                            s.last_fetch_ms = now;
                        }
                        if index.is_some() && index >= end {
                            s.last_caught_up_ms = now;
                        }
                    }
                }
                _ => seen.clear(),
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
        }
    }
}

/// The quorum as this node's Raft reports it now.
pub fn view(raft: &MetadataRaft, times: &QuorumTimes) -> QuorumView {
    let m = raft.metrics().borrow().clone();
    let is_leader = m.state == ServerState::Leader;
    let membership = m.membership_config.membership();
    let seen = times.seen.lock().expect("quorum times lock").clone();
    let now = now_ms();
    let replica = |id: RaftNodeId| {
        if id == m.id {
            // Kafka reports the leader itself as caught up now, with no fetch time.
            return ReplicaView {
                node_id: id,
                log_end_offset: offset(m.last_log_index),
                last_fetch_ms: -1,
                last_caught_up_ms: now,
            };
        }
        let s = seen.get(&id).copied().unwrap_or_default();
        let known = |t: i64| if t > 0 { t } else { -1 };
        ReplicaView {
            node_id: id,
            log_end_offset: offset(s.matched),
            last_fetch_ms: known(s.last_fetch_ms),
            last_caught_up_ms: known(s.last_caught_up_ms),
        }
    };
    let (voters, observers) = if is_leader {
        (
            membership.voter_ids().map(replica).collect(),
            membership.learner_ids().map(replica).collect(),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    QuorumView {
        leader: m.current_leader,
        is_leader,
        term: m.current_term,
        high_watermark: offset(m.last_applied.map(|l| l.index)),
        voters,
        observers,
    }
}

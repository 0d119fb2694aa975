//! A partition's replicas as this node sees them: its role (leader or follower, at which leader
//! epoch), and, while it leads, each follower's progress, the in-sync replica set and the high
//! watermark (Kafka's `Partition` and `Replica` state on the leader).
//!
//! The rules, as in Kafka:
//! - A follower's log end offset is the offset it asks for in its fetch.
//! - A follower is caught up when it fetches at or past the leader's log end, or at or past the
//!   log end the leader had at its previous fetch (then it was caught up at that earlier time).
//!   One not caught up for `replica.lag.time.max.ms` leaves the ISR; one outside the ISR whose
//!   log end reaches the high watermark (and the start of the leader's epoch) joins it.
//! - The high watermark is the least log end offset over the "maximal" ISR: the committed ISR
//!   together with a change in flight, so a shrink counts only once committed and an expansion
//!   counts at once. It never moves back while this node leads.
//! - ISR changes are proposed to the quorum by the leader (`AlterIsr`) and take effect when the
//!   new metadata image arrives; one change is in flight at a time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What this node is for a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not assigned a role yet (opened from disk before the metadata arrived).
    None,
    Leader,
    Follower {
        leader: u64,
    },
    /// Assigned, but the partition has no leader (every ISR member is fenced).
    Leaderless,
}

/// A change of the ISR the leader wants committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Follower {
    log_end_offset: i64,
    last_caught_up: Instant,
    last_fetch: Instant,
    /// The leader's log end at this follower's previous fetch.
    leader_end_at_last_fetch: i64,
}

#[derive(Debug)]
pub struct ReplicaSet {
    pub local: u64,
    pub role: Role,
    pub replicas: Vec<u64>,
    pub isr: Vec<u64>,
    pub partition_epoch: i32,
    /// An ISR change proposed and not yet seen in the metadata.
    pub pending: Option<IsrChange>,
    /// The offset at which this node's current leadership began.
    pub epoch_start_offset: i64,
    followers: BTreeMap<u64, Follower>,
}

impl ReplicaSet {
    /// A partition opened alone: this node is its only replica and leads it (a node that is its
    /// own cluster, until the metadata says otherwise).
    pub fn new(local: u64) -> Self {
        ReplicaSet {
            local,
            role: Role::None,
            replicas: vec![local],
            isr: vec![local],
            partition_epoch: 0,
            pending: None,
            epoch_start_offset: 0,
            followers: BTreeMap::new(),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The leader as this node knows it.
    pub fn leader(&self) -> Option<u64> {
        match self.role {
            Role::Leader => Some(self.local),
            Role::Follower { leader } => Some(leader),
            Role::None | Role::Leaderless => None,
        }
    }

    /// Takes the metadata's view. Becoming leader (or a new epoch as leader) resets what is
    /// known of the followers: they are presumed caught up now, so a slow one leaves the ISR
    /// only after a full lag time under this leader, as in Kafka.
    pub fn update(
        &mut self,
        role: Role,
        replicas: Vec<u64>,
        isr: Vec<u64>,
        partition_epoch: i32,
        new_leadership: Option<i64>,
        now: Instant,
    ) {
        self.role = role;
        self.replicas = replicas;
        self.isr = isr;
        self.partition_epoch = partition_epoch;
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.partition_epoch < partition_epoch || role != Role::Leader)
        {
            self.pending = None;
        }
        if let Some(start) = new_leadership {
            self.epoch_start_offset = start;
            self.pending = None;
            self.followers.clear();
        }
        let local = self.local;
        self.followers.retain(|id, _| *id != local);
        for id in self.replicas.iter().filter(|id| **id != local) {
            self.followers.entry(*id).or_insert(Follower {
                log_end_offset: -1,
                last_caught_up: now,
                last_fetch: now,
                leader_end_at_last_fetch: -1,
            });
        }
        let replicas = self.replicas.clone();
        self.followers.retain(|id, _| replicas.contains(id));
    }

    /// Records a follower's fetch at `fetch_offset` while the leader's log ends at `leader_end`.
    /// Returns false for a node that is not a replica.
    pub fn record_fetch(
        &mut self,
        replica: u64,
        fetch_offset: i64,
        leader_end: i64,
        now: Instant,
    ) -> bool {
        let Some(f) = self.followers.get_mut(&replica) else {
            return false;
        };
        // A follower cannot hold records the leader does not have: an offset past the
        // leader's end is not progress (it would count toward the high watermark and the ISR
        // for records the follower never fetched). The fetch is refused with
        // OFFSET_OUT_OF_RANGE.
        if fetch_offset > leader_end || fetch_offset < 0 {
            return false;
        }
        if fetch_offset >= leader_end {
            f.last_caught_up = now;
        } else if fetch_offset >= f.leader_end_at_last_fetch {
            f.last_caught_up = f.last_caught_up.max(f.last_fetch);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch = now;
        f.leader_end_at_last_fetch = leader_end;
        true
    }

    /// The ISR counted for the high watermark: the committed one plus a change in flight.
    fn maximal_isr(&self) -> Vec<u64> {
        let mut all = self.isr.clone();
        if let Some(p) = &self.pending {
            all.extend(p.isr.iter().filter(|id| !self.isr.contains(id)));
        }
        all
    }

    /// The high watermark the ISR allows, given the local log end; `None` while some ISR member's
    /// progress is unknown.
    pub fn high_watermark(&self, local_end: i64) -> Option<i64> {
        let mut hw = local_end;
        for id in self.maximal_isr() {
            if id == self.local {
                continue;
            }
            let end = self.followers.get(&id)?.log_end_offset;
            if end < 0 {
                return None;
            }
            hw = hw.min(end);
        }
        Some(hw)
    }

    /// An ISR change to propose now, if any: followers that lagged too long leave, followers
    /// that caught up join (only those fetching within the lag time and `eligible`: not fenced).
    /// Nothing while a change is in flight or this node does not lead.
    pub fn wanted_isr_change(
        &self,
        hw: i64,
        lag: Duration,
        now: Instant,
        eligible: impl Fn(u64) -> bool,
    ) -> Option<IsrChange> {
        if self.role != Role::Leader || self.pending.is_some() {
            return None;
        }
        let mut isr: Vec<u64> = self
            .isr
            .iter()
            .copied()
            .filter(|id| {
                *id == self.local
                    || self
                        .followers
                        .get(id)
                        .is_some_and(|f| now.saturating_duration_since(f.last_caught_up) <= lag)
            })
            .collect();
        // Only a follower outside the committed ISR can join (one just found lagging stays out
        // until it reaches the high watermark that its leaving lets move).
        for (id, f) in &self.followers {
            let caught_up = f.log_end_offset >= hw && f.log_end_offset >= self.epoch_start_offset;
            let fetching = now.saturating_duration_since(f.last_fetch) <= lag;
            if !self.isr.contains(id) && caught_up && fetching && eligible(*id) {
                isr.push(*id);
            }
        }
        isr.sort_by_key(|id| self.replicas.iter().position(|r| r == id));
        let mut current = self.isr.clone();
        current.sort_by_key(|id| self.replicas.iter().position(|r| r == id));
        (isr != current).then_some(IsrChange {
            leader_epoch: 0,
            partition_epoch: self.partition_epoch,
            isr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader_set(now: Instant) -> ReplicaSet {
        let mut set = ReplicaSet::new(1);
        set.update(Role::Leader, vec![1, 2, 3], vec![1, 2, 3], 0, Some(0), now);
        set
    }

    #[test]
    fn high_watermark_is_the_least_isr_end_and_waits_for_unknown_followers() {
        let now = Instant::now();
        let mut set = leader_set(now);
        assert_eq!(set.high_watermark(10), None);
        set.record_fetch(2, 10, 10, now);
        assert_eq!(set.high_watermark(10), None);
        set.record_fetch(3, 4, 10, now);
        assert_eq!(set.high_watermark(10), Some(4));
        set.record_fetch(3, 10, 10, now);
        assert_eq!(set.high_watermark(12), Some(10));
    }

    #[test]
    fn a_follower_claiming_more_than_the_leader_has_is_not_progress() {
        let now = Instant::now();
        let mut set = leader_set(now);
        assert!(!set.record_fetch(2, 1_000_000, 10, now));
        assert!(!set.record_fetch(3, -5, 10, now));
        assert_eq!(
            set.high_watermark(10),
            None,
            "no follower progress was recorded"
        );
        set.record_fetch(2, 10, 10, now);
        set.record_fetch(3, 7, 10, now);
        assert!(!set.record_fetch(3, 11, 10, now));
        assert_eq!(
            set.high_watermark(10),
            Some(7),
            "the forged fetch moved nothing"
        );
    }

    #[test]
    fn a_lagging_follower_leaves_and_a_caught_up_one_rejoins() {
        let start = Instant::now();
        let mut set = leader_set(start);
        let lag = Duration::from_millis(100);
        set.record_fetch(2, 10, 10, start);
        set.record_fetch(3, 5, 10, start);
        assert_eq!(set.wanted_isr_change(5, lag, start, |_| true), None);
        let later = start + Duration::from_millis(150);
        set.record_fetch(2, 10, 10, later);
        let change = set
            .wanted_isr_change(5, lag, later, |_| true)
            .expect("shrink");
        assert_eq!(change.isr, vec![1, 2]);
        // Applied: node 3 is out; once it reaches the high watermark it comes back.
        set.update(Role::Leader, vec![1, 2, 3], vec![1, 2], 1, None, later);
        set.record_fetch(3, 10, 10, later);
        let change = set
            .wanted_isr_change(10, lag, later, |_| true)
            .expect("expand");
        assert_eq!(change.isr, vec![1, 2, 3]);
        assert_eq!(change.partition_epoch, 1);
    }

    #[test]
    fn a_pending_expansion_counts_for_the_high_watermark_at_once() {
        let now = Instant::now();
        let mut set = ReplicaSet::new(1);
        set.update(Role::Leader, vec![1, 2], vec![1], 0, Some(0), now);
        assert_eq!(set.high_watermark(8), Some(8));
        set.record_fetch(2, 6, 8, now);
        set.pending = Some(IsrChange {
            leader_epoch: 0,
            partition_epoch: 0,
            isr: vec![1, 2],
        });
        assert_eq!(set.high_watermark(8), Some(6));
    }

    #[test]
    fn a_follower_is_caught_up_as_of_its_previous_fetch_when_it_reached_that_end() {
        let start = Instant::now();
        let mut set = leader_set(start);
        let lag = Duration::from_millis(100);
        set.record_fetch(2, 10, 10, start);
        set.record_fetch(3, 10, 10, start);
        // The leader keeps appending; node 3 always fetches what the leader had last time.
        let t1 = start + Duration::from_millis(80);
        set.record_fetch(3, 10, 20, t1);
        let t2 = start + Duration::from_millis(160);
        set.record_fetch(3, 20, 30, t2);
        set.record_fetch(2, 30, 30, t2);
        assert_eq!(set.wanted_isr_change(20, lag, t2, |_| true), None);
    }
}

//! Group timers, run every 100 ms by the broker: expired MEMBER_ID_REQUIRED ids and member
//! sessions, the end of a join phase (rebalance timeout or initial delay), and members that did
//! not sync in time.

use super::membership::remove_member;
use super::state::{Group, GroupState};
use super::GroupCoordinator;
use std::time::Duration;
use tokio::time::Instant;

impl GroupCoordinator {
    /// Runs due timers: expired member ids and members, join-phase ends, unsynced members.
    pub fn tick(&self) {
        let now = Instant::now();
        let mut groups = self.groups();
        for g in groups.values_mut() {
            self.tick_group(g, now);
        }
    }

    fn tick_group(&self, g: &mut Group, now: Instant) {
        let before = g.pending_join.len();
        g.pending_join.retain(|_, deadline| *deadline > now);
        let mut changed = before != g.pending_join.len();
        let expired: Vec<String> = g
            .members
            .values()
            .filter(|m| {
                m.deadline <= now
                    && (m.is_new || (m.awaiting_join.is_none() && m.awaiting_sync.is_none()))
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %g.id, member = %id, "member session expired");
            remove_member(g, id);
            changed = true;
        }
        if changed {
            match g.state {
                GroupState::Stable | GroupState::CompletingRebalance if !expired.is_empty() => {
                    self.prepare_rebalance(g, now)
                }
                GroupState::PreparingRebalance => self.maybe_complete_join(g, now),
                _ => {}
            }
        }
        if g.is(GroupState::PreparingRebalance) && g.join_deadline.is_some_and(|d| d <= now) {
            self.join_deadline_passed(g, now);
        }
        if let Some((deadline, generation)) = g.sync_deadline {
            if deadline <= now && generation == g.generation_id && !g.pending_sync.is_empty() {
                let unsynced: Vec<String> = g.pending_sync.drain().collect();
                for id in &unsynced {
                    remove_member(g, id);
                }
                tracing::info!(group = %g.id, members = unsynced.len(), "members did not sync in time");
                self.prepare_rebalance(g, now);
            }
        }
    }

    fn join_deadline_passed(&self, g: &mut Group, now: Instant) {
        match g.initial_delay_remaining_ms {
            Some(remaining) if g.new_member_added && remaining > 0 => {
                let delay = self.config.initial_rebalance_delay_ms.min(remaining);
                g.new_member_added = false;
                g.initial_delay_remaining_ms = Some(remaining - delay);
                g.join_deadline = Some(now + Duration::from_millis(delay));
            }
            _ => self.complete_join(g, now),
        }
    }
}

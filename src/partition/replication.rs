//! A partition's side of replication: taking the role the metadata gives (leader, follower,
//! leaderless), appending a leader's batches as a follower, truncating to where a new leader's
//! log agrees, and as leader tracking follower fetches, the ISR and the high watermark, and
//! holding acks=-1 produce requests until the ISR has their records.
//!
//! Locking: `state` (the log) before `replicas`, each held briefly and never across `.await`.

use super::replicas::{IsrChange, ReplicaSet, Role};
use super::{load_producer_state, Partition, PartitionError, PRODUCER_SNAPSHOT};
use crate::log::batch;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

/// The metadata's view of one partition, as the reconciler hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub leader: Option<u64>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<u64>,
    pub isr: Vec<u64>,
}

/// What a role change did, for the caller to act on (start or stop fetching, load or unload a
/// coordinator's state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    BecameLeader,
    BecameFollower { leader: u64 },
    BecameLeaderless,
}

impl Partition {
    pub(super) fn replica_set(&self) -> MutexGuard<'_, ReplicaSet> {
        self.replicas.lock().expect("replica set lock poisoned")
    }

    pub(super) fn check_leader(&self) -> Result<(), PartitionError> {
        let set = self.replica_set();
        if set.is_leader() {
            return Ok(());
        }
        Err(PartitionError::NotLeader {
            tp: self.tp.clone(),
            leader: set.leader(),
            epoch: self.leader_epoch(),
        })
    }

    /// The role this node has, with the leader it knows and the current ISR.
    pub fn role(&self) -> Role {
        self.replica_set().role
    }

    /// The leader as this node knows it.
    pub fn leader(&self) -> Option<u64> {
        self.replica_set().leader()
    }

    /// Takes the metadata's view of this partition. A new leader epoch with this node as leader
    /// starts a new leadership at the log end (Kafka's `makeLeader`); as follower the high
    /// watermark is cut to the log end (Kafka's `makeFollower`).
    pub fn apply_assignment(&self, a: &Assignment) -> Result<Transition, PartitionError> {
        let local = self.replica_set().local;
        let role = match a.leader {
            Some(l) if l == local => Role::Leader,
            Some(l) => Role::Follower { leader: l },
            None => Role::Leaderless,
        };
        let (before, partition_epoch, isr_before) = {
            let set = self.replica_set();
            (set.role, set.partition_epoch, set.isr.clone())
        };
        let epoch_changed = a.leader_epoch != self.leader_epoch();
        if role == before && !epoch_changed && a.partition_epoch == partition_epoch {
            return Ok(Transition::Unchanged);
        }
        if role == Role::Leader && before == Role::Leader && !epoch_changed {
            // The ISR of a leadership this node holds changed in the metadata: counted here,
            // whoever caused it (this leader's own proposal, or the controller fencing a dead
            // follower first), as Kafka's leader counts isrShrinks/isrExpands.
            let m = crate::metrics::metrics();
            if isr_before.iter().any(|r| !a.isr.contains(r)) {
                m.isr_shrinks.inc();
            }
            if a.isr.iter().any(|r| !isr_before.contains(r)) {
                m.isr_expands.inc();
            }
        }
        let now = Instant::now();
        let mut new_leadership = None;
        if role == Role::Leader && (before != Role::Leader || epoch_changed) {
            let mut st = self.state();
            st.log
                .assign_epoch(a.leader_epoch)
                .map_err(|e| self.log_err(e))?;
            new_leadership = Some(st.log.log_end_offset());
        }
        self.leader_epoch.store(a.leader_epoch, Ordering::Release);
        self.replica_set().update(
            role,
            a.replicas.clone(),
            a.isr.clone(),
            a.partition_epoch,
            new_leadership,
            now,
        );
        if role != Role::Leader {
            let end = self.log_end_offset();
            self.high_watermark.fetch_min(end, Ordering::AcqRel);
        } else {
            self.advance_high_watermark();
        }
        self.hw_changed.send_replace(());
        self.wake_fetchers();
        Ok(match role {
            _ if role == before && !epoch_changed => Transition::Unchanged,
            Role::Leader => Transition::BecameLeader,
            Role::Follower { leader } => Transition::BecameFollower { leader },
            Role::Leaderless | Role::None => Transition::BecameLeaderless,
        })
    }

    /// Moves the high watermark up to what the ISR has (never down while leading), waking
    /// consumers and acks=-1 producers when it moved.
    pub(super) fn advance_high_watermark(&self) {
        let end = self.log_end_offset();
        let Some(hw) = self.replica_set().high_watermark(end) else {
            return;
        };
        if hw > self.high_watermark.fetch_max(hw, Ordering::AcqRel) {
            self.hw_changed.send_replace(());
            self.wake_fetchers();
        }
    }

    /// As leader: a follower fetched at `fetch_offset`. Returns an ISR change to propose, if
    /// the fetch made one due.
    pub fn record_follower_fetch(
        &self,
        replica: u64,
        fetch_offset: i64,
        lag: Duration,
        eligible: impl Fn(u64) -> bool,
    ) -> Option<IsrChange> {
        let end = self.log_end_offset();
        let now = Instant::now();
        if !self
            .replica_set()
            .record_fetch(replica, fetch_offset, end, now)
        {
            return None;
        }
        self.advance_high_watermark();
        self.wanted_isr_change(lag, eligible)
    }

    /// As leader: the ISR change due now (lagging followers out, caught-up `eligible` ones in),
    /// if any.
    pub fn wanted_isr_change(
        &self,
        lag: Duration,
        eligible: impl Fn(u64) -> bool,
    ) -> Option<IsrChange> {
        let hw = self.high_watermark();
        let epoch = self.leader_epoch();
        let set = self.replica_set();
        set.wanted_isr_change(hw, lag, Instant::now(), eligible)
            .map(|c| IsrChange {
                leader_epoch: epoch,
                ..c
            })
    }

    /// Marks an ISR change as in flight (proposed to the quorum), or clears it (refused).
    pub fn set_pending_isr(&self, change: Option<IsrChange>) {
        self.replica_set().pending = change;
        self.advance_high_watermark();
    }

    /// Whether a node is a replica this node, as leader, takes fetches from.
    pub fn is_replica(&self, node: u64) -> bool {
        self.replica_set().replicas.contains(&node)
    }

    /// As follower: appends batches fetched from the leader and takes the leader's high
    /// watermark (capped at the log end). Producer state follows the batches, so a follower
    /// that becomes leader deduplicates retries and knows open transactions.
    pub fn append_as_follower(&self, records: &[u8], leader_hw: i64) -> Result<(), PartitionError> {
        self.check_online()?;
        let mut st = self.state();
        if !records.is_empty() {
            let info = st
                .log
                .append_as_follower(records)
                .map_err(|e| self.log_err(e))?;
            for (at, h) in batch::batches(records) {
                let bytes = &records[at..at + h.total_len()];
                if let Some(done) = st.producers.replay(bytes) {
                    let hw = h.last_offset() + 1;
                    super::txn::index_completed(&mut st, done, hw).map_err(|e| self.log_err(e))?;
                }
            }
            st.unflushed_messages += info.last_offset - info.base_offset + 1;
        }
        let end = st.log.log_end_offset();
        drop(st);
        let hw = leader_hw.min(end);
        if hw != self.high_watermark.swap(hw, Ordering::AcqRel) {
            self.hw_changed.send_replace(());
        }
        Ok(())
    }

    /// As follower: removes everything at or after `offset` (where this log diverged from the
    /// leader's) and rebuilds producer state for what is left.
    pub fn truncate_to(&self, offset: i64) -> Result<(), PartitionError> {
        let mut st = self.state();
        if offset >= st.log.log_end_offset() {
            return st.log.truncate_to(offset).map_err(|e| self.log_err(e));
        }
        tracing::info!(partition = %self.tp, from = st.log.log_end_offset(), to = offset, "truncating to the leader's log");
        st.log.truncate_to(offset).map_err(|e| self.log_err(e))?;
        let snapshot = st.log.dir().join(PRODUCER_SNAPSHOT);
        if let Err(e) = std::fs::remove_file(&snapshot) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(self.log_err(crate::log::LogError::Io {
                    path: snapshot,
                    source: e,
                }));
            }
        }
        st.producers = load_producer_state(&mut st.log).map_err(|e| self.log_err(e))?;
        let end = st.log.log_end_offset();
        drop(st);
        self.high_watermark.fetch_min(end, Ordering::AcqRel);
        Ok(())
    }

    /// As follower: the leader's log start moved past this log's end (what this log would
    /// fetch next is gone there): this log restarts empty at `offset`.
    pub fn reset_to(&self, offset: i64) -> Result<(), PartitionError> {
        let mut st = self.state();
        tracing::warn!(partition = %self.tp, from = st.log.log_end_offset(), to = offset, "the leader no longer has this log's next records; starting over at its log start");
        st.log.reset_to(offset).map_err(|e| self.log_err(e))?;
        st.producers = Default::default();
        let snapshot = st.log.dir().join(PRODUCER_SNAPSHOT);
        let _ = std::fs::remove_file(snapshot);
        drop(st);
        self.high_watermark.store(offset, Ordering::Release);
        Ok(())
    }

    /// As follower: follows the leader's log start (retention, DeleteRecords) up to this log's
    /// end.
    pub fn follow_log_start(&self, leader_start: i64) -> Result<(), PartitionError> {
        let mut st = self.state();
        let target = leader_start.min(st.log.log_end_offset());
        if target <= st.log.log_start_offset() {
            return Ok(());
        }
        st.log
            .advance_log_start(target)
            .map_err(|e| self.log_err(e))
    }

    /// The last leader epoch of this log's last batch, for a follower's fetch (KIP-320).
    pub fn last_fetched_epoch(&self) -> i32 {
        let st = self.state();
        st.log
            .epoch_entries()
            .last()
            .map_or(-1, |(epoch, _)| *epoch)
    }

    /// For a follower's fetch as leader (KIP-320): when the follower's log, ending at
    /// `fetch_offset` with `last_fetched_epoch`, diverges from this one, the epoch and end
    /// offset to truncate to.
    pub fn diverging_epoch(
        &self,
        fetch_offset: i64,
        last_fetched_epoch: i32,
    ) -> Option<(i32, i64)> {
        if last_fetched_epoch < 0 {
            return None;
        }
        let (epoch, end) = self.end_offset_for_epoch(last_fetched_epoch);
        (epoch != last_fetched_epoch || end < fetch_offset).then_some((epoch, end))
    }

    /// Waits, as leader, until the high watermark reaches `offset` (acks=-1), then checks that
    /// the ISR still has at least `min_isr` replicas (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    pub async fn wait_for_isr(
        &self,
        offset: i64,
        min_isr: usize,
        timeout: Duration,
    ) -> Result<(), PartitionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.hw_changed.subscribe();
        loop {
            changed.mark_unchanged();
            self.check_leader()?;
            if self.high_watermark() >= offset {
                let isr = self.replica_set().isr.len();
                if isr < min_isr {
                    return Err(PartitionError::NotEnoughReplicasAfterAppend {
                        tp: self.tp.clone(),
                        isr,
                        min: min_isr,
                    });
                }
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Err(PartitionError::ReplicationTimeout {
                    tp: self.tp.clone(),
                    offset,
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
        }
    }

    /// As leader, before an acks=-1 append: refuses when the ISR is below `min_isr`
    /// (NOT_ENOUGH_REPLICAS).
    pub fn check_min_isr(&self, min_isr: usize) -> Result<(), PartitionError> {
        let isr = self.replica_set().isr.len();
        if isr < min_isr {
            return Err(PartitionError::NotEnoughReplicas {
                tp: self.tp.clone(),
                isr,
                min: min_isr,
            });
        }
        Ok(())
    }

    /// As leader, for a follower: whole batches from `offset` up to the log end (not the high
    /// watermark), with the high watermark the follower takes.
    pub fn read_for_follower(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<super::ReadResult, PartitionError> {
        self.check_online()?;
        let st = self.state();
        let end = st.log.log_end_offset();
        let records = st
            .log
            .read(offset, max_bytes, end)
            .map_err(|e| self.log_err(e))?;
        let high_watermark = self.high_watermark();
        Ok(super::ReadResult {
            records,
            high_watermark,
            last_stable_offset: st.producers.last_stable_offset(high_watermark),
            log_start_offset: st.log.log_start_offset(),
            log_end_offset: end,
            aborted: None,
        })
    }
}

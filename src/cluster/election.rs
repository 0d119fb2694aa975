//! The partition rules of the metadata image: who leads a partition and who is in sync, as
//! brokers are fenced and come back, as leaders report ISR changes, and as replicas are
//! reassigned. They follow Kafka's KRaft controller (`ReplicationControlManager` and
//! `PartitionChangeBuilder`) with unclean leader election off: a leader is only ever chosen from
//! the ISR, and when no ISR member can lead the partition stays leaderless until one can.
//!
//! Like the rest of [`MetadataImage::apply`], every rule is deterministic and validates in full
//! before changing anything: single-partition commands compute the new record on a copy and
//! store it only once accepted.
//!
//! Epochs: `leader_epoch` moves by one whenever the leader changes; `partition_epoch` moves by
//! one for every command that changes a partition's record, however many fields change (Kafka
//! writes one `PartitionChangeRecord` per partition per operation). ISR-only changes leave the
//! leader epoch alone, as KRaft does by default.

use super::command::Rejection;
use super::image::{
    has_duplicates, invalid_assignment, MetadataImage, NodeRegistration, PartitionImage,
};
use std::collections::BTreeMap;

/// Whether `node_id` may lead or join an ISR: it is registered and not fenced.
pub fn is_eligible(nodes: &BTreeMap<u64, NodeRegistration>, node_id: u64) -> bool {
    nodes.get(&node_id).is_some_and(|node| !node.fenced)
}

impl PartitionImage {
    /// Whether a reassignment is in progress (some replicas are being added or removed).
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas the partition will have once its reassignment completes (all of them when
    /// none is in progress), in replica order.
    pub fn target_replicas(&self) -> Vec<u64> {
        without(&self.replicas, &self.removing_replicas)
    }

    /// The replicas the partition had before its reassignment started (all of them when none is
    /// in progress), in replica order.
    pub fn original_replicas(&self) -> Vec<u64> {
        without(&self.replicas, &self.adding_replicas)
    }

    /// A clean election, as Kafka's `PartitionChangeBuilder` with unclean election off: the first
    /// node in replica order that is in the ISR, eligible, and not `exclude`.
    pub fn elect(&self, eligible: impl Fn(u64) -> bool, exclude: Option<u64>) -> Option<u64> {
        self.replicas
            .iter()
            .copied()
            .find(|&id| Some(id) != exclude && self.isr.contains(&id) && eligible(id))
    }

    /// `node_id` can no longer be trusted (fenced, or restarted with a new incarnation), as
    /// Kafka's `ReplicationControlManager.handleBrokerFenced`:
    /// - it leads: the next eligible ISR member in replica order takes over and `node_id` leaves
    ///   the ISR; when there is none the partition becomes leaderless and the ISR is kept, so
    ///   the last in-sync replica keeps its claim (no unclean election). Both epochs move.
    /// - it follows and others are in sync: it leaves the ISR (partition epoch only).
    /// - it is the only ISR member and does not lead: nothing changes.
    fn remove_node(&mut self, node_id: u64, eligible: impl Fn(u64) -> bool) {
        if !self.isr.contains(&node_id) {
            return;
        }
        if self.leader == Some(node_id) {
            self.leader = self.elect(eligible, Some(node_id));
            if self.leader.is_some() {
                self.isr.retain(|&id| id != node_id);
            }
            bump(&mut self.leader_epoch);
            bump(&mut self.partition_epoch);
        } else if self.isr.len() > 1 {
            self.isr.retain(|&id| id != node_id);
            bump(&mut self.partition_epoch);
        }
    }

    /// Keeps only the ISR members that are replicas, and when the leader is none or no longer a
    /// replica, elects one among them (bumping the leader epoch if the leader changes).
    fn fit_to_replicas(&mut self, eligible: impl Fn(u64) -> bool) {
        let replicas = self.replicas.clone();
        self.isr.retain(|id| replicas.contains(id));
        if self.leader.is_some_and(|leader| replicas.contains(&leader)) {
            return;
        }
        let leader = self.elect(eligible, None);
        if leader != self.leader {
            self.leader = leader;
            bump(&mut self.leader_epoch);
        }
    }

    /// Completes the reassignment in progress once every target replica is in the ISR (Kafka's
    /// `PartitionReassignmentReplicas.maybeCompleteReassignment`): the replicas become the
    /// targets, the removed ones leave the ISR, and a leader that was removed is replaced by
    /// an election among the targets. Leaves the partition epoch to the caller.
    fn complete_reassignment_if_done(&mut self, eligible: impl Fn(u64) -> bool) {
        let target = self.target_replicas();
        if !self.is_reassigning() || !target.iter().all(|id| self.isr.contains(id)) {
            return;
        }
        self.replicas = target;
        self.adding_replicas.clear();
        self.removing_replicas.clear();
        self.fit_to_replicas(eligible);
    }
}

impl MetadataImage {
    /// Whether `node_id` is registered and not fenced.
    pub fn is_eligible(&self, node_id: u64) -> bool {
        is_eligible(&self.nodes, node_id)
    }

    /// The leader of a new partition (Kafka's `CreateTopics`/`CreatePartitions`): the first
    /// eligible replica, or none when every replica is fenced.
    pub fn first_eligible(&self, replicas: &[u64]) -> Option<u64> {
        replicas.iter().copied().find(|&id| self.is_eligible(id))
    }

    /// The partition effects of fencing `node_id` ([`PartitionImage::remove_node`]) on every
    /// partition. Idempotent: it may run again for a node already fenced.
    pub(super) fn fence_partitions(&mut self, node_id: u64) {
        let nodes = &self.nodes;
        let partitions = self.topics.values_mut().flat_map(|t| &mut t.partitions);
        for partition in partitions {
            partition.remove_node(node_id, |id| is_eligible(nodes, id));
        }
    }

    /// After a heartbeat, as Kafka's `handleBrokerUnfenced`: when `node_id` is eligible, every
    /// leaderless partition it is in sync for gets a clean election (which may pick another ISR
    /// member that comes first in replica order). Both epochs move when a leader is found.
    pub(super) fn elect_leaderless(&mut self, node_id: u64) {
        if !self.is_eligible(node_id) {
            return;
        }
        let nodes = &self.nodes;
        let partitions = self.topics.values_mut().flat_map(|t| &mut t.partitions);
        for partition in partitions {
            if partition.leader.is_some() || !partition.isr.contains(&node_id) {
                continue;
            }
            if let Some(leader) = partition.elect(|id| is_eligible(nodes, id), None) {
                partition.leader = Some(leader);
                bump(&mut partition.leader_epoch);
                bump(&mut partition.partition_epoch);
            }
        }
    }

    /// The leader's new ISR, as Kafka's `ReplicationControlManager.alterPartition`. `claim` is
    /// the sender's `(leader, leader_epoch, partition_epoch)`. Checked in Kafka's order:
    /// - the sender must lead at the current leader epoch (`FencedLeaderEpoch`, also when the
    ///   partition has no leader);
    /// - it must have seen the current partition epoch (`InvalidUpdateVersion`);
    /// - the ISR must be replicas, without duplicates, containing the leader (`InvalidIsr`);
    /// - every node joining the ISR must be eligible (`IneligibleReplica`).
    ///
    /// Accepted: the ISR is replaced and the partition epoch moves; the leader epoch does not. A
    /// reassignment whose targets are now all in sync completes in the same step.
    pub(super) fn alter_isr(
        &mut self,
        topic: &str,
        partition: i32,
        (leader, leader_epoch, partition_epoch): (u64, i32, i32),
        isr: &[u64],
    ) -> Result<(), Rejection> {
        let current = self.partition_or_reject(topic, partition)?;
        if current.leader != Some(leader) || current.leader_epoch != leader_epoch {
            return Err(Rejection::FencedLeaderEpoch {
                topic: topic.to_string(),
                partition,
                current_leader_epoch: current.leader_epoch,
                given: leader_epoch,
            });
        }
        if current.partition_epoch != partition_epoch {
            return Err(Rejection::InvalidUpdateVersion {
                topic: topic.to_string(),
                partition,
                current: current.partition_epoch,
                given: partition_epoch,
            });
        }
        self.check_new_isr(topic, partition, current, leader, isr)?;
        let mut record = current.clone();
        record.isr = isr.to_vec();
        record.complete_reassignment_if_done(|id| self.is_eligible(id));
        bump(&mut record.partition_epoch);
        self.store_partition(topic, partition, record);
        Ok(())
    }

    fn check_new_isr(
        &self,
        topic: &str,
        partition: i32,
        current: &PartitionImage,
        leader: u64,
        isr: &[u64],
    ) -> Result<(), Rejection> {
        super::image::check_isr_shape(topic, partition, current, isr)?;
        if !isr.contains(&leader) {
            return Err(Rejection::InvalidIsr {
                topic: topic.to_string(),
                partition,
                isr: isr.to_vec(),
                reason: "the leader is not in it".into(),
            });
        }
        let ineligible_joiner = |&id: &u64| !current.isr.contains(&id) && !self.is_eligible(id);
        if let Some(node_id) = isr.iter().copied().find(ineligible_joiner) {
            return Err(Rejection::IneligibleReplica {
                topic: topic.to_string(),
                partition,
                node_id,
            });
        }
        Ok(())
    }

    /// Moves leadership to the first replica, as Kafka's `ElectLeaders` with the PREFERRED
    /// election type: `ElectionNotNeeded` when it already leads, `PreferredLeaderNotAvailable`
    /// when it is out of the ISR or not eligible. Both epochs move.
    pub(super) fn elect_preferred(&mut self, topic: &str, partition: i32) -> Result<(), Rejection> {
        let current = self.partition_or_reject(topic, partition)?;
        let preferred = current.replicas[0];
        if current.leader == Some(preferred) {
            return Err(Rejection::ElectionNotNeeded {
                topic: topic.to_string(),
                partition,
            });
        }
        if !current.isr.contains(&preferred) || !self.is_eligible(preferred) {
            return Err(Rejection::PreferredLeaderNotAvailable {
                topic: topic.to_string(),
                partition,
            });
        }
        let mut record = current.clone();
        record.leader = Some(preferred);
        bump(&mut record.leader_epoch);
        bump(&mut record.partition_epoch);
        self.store_partition(topic, partition, record);
        Ok(())
    }

    /// Starts, replaces or cancels (`target` is `None`) a reassignment, as Kafka's
    /// `AlterPartitionReassignments`. With `keep_replication_factor`, a target whose size is not
    /// the original replica count is refused (Kafka's `validatePartitionReplicationFactorUnchanged`).
    /// The partition epoch moves once.
    pub(super) fn reassign(
        &mut self,
        topic: &str,
        partition: i32,
        target: Option<&[u64]>,
        keep_replication_factor: bool,
    ) -> Result<(), Rejection> {
        let current = self.partition_or_reject(topic, partition)?;
        let mut record = current.clone();
        match target {
            Some(target) => {
                self.check_target(topic, partition, target)?;
                let from = current.original_replicas().len();
                if keep_replication_factor && target.len() != from {
                    return Err(Rejection::ReplicationFactorChange {
                        topic: topic.to_string(),
                        partition,
                        from,
                        to: target.len(),
                    });
                }
                record.start_reassignment(target, |id| self.is_eligible(id));
            }
            None if current.is_reassigning() => {
                record.cancel_reassignment(|id| self.is_eligible(id));
            }
            None => {
                return Err(Rejection::NoReassignmentInProgress {
                    topic: topic.to_string(),
                    partition,
                })
            }
        }
        bump(&mut record.partition_epoch);
        self.store_partition(topic, partition, record);
        Ok(())
    }

    /// A reassignment target needs at least one replica, no replica twice, registered nodes only.
    fn check_target(&self, topic: &str, partition: i32, target: &[u64]) -> Result<(), Rejection> {
        if target.is_empty() {
            let reason = format!("partition {partition}: the reassignment target is empty");
            return Err(invalid_assignment(topic, &reason));
        }
        if has_duplicates(target) {
            let reason =
                format!("partition {partition}: the target lists a replica twice: {target:?}");
            return Err(invalid_assignment(topic, &reason));
        }
        match target.iter().find(|id| !self.nodes.contains_key(id)) {
            Some(&node_id) => Err(Rejection::UnknownNode { node_id }),
            None => Ok(()),
        }
    }
}

impl PartitionImage {
    /// Starts a reassignment to `target` (Kafka's `PartitionReassignmentReplicas`): from the
    /// original replicas (those before any reassignment in progress, which this one replaces),
    /// `adding` = target − original, `removing` = original − target, and the replicas become the
    /// target followed by the removing ones. ISR members that are no longer replicas (adding
    /// replicas of a replaced reassignment) leave the ISR, and a leader among them (or a missing
    /// one) is replaced by a clean election. Completes at once when every target is already in
    /// sync.
    fn start_reassignment(&mut self, target: &[u64], eligible: impl Fn(u64) -> bool) {
        let original = self.original_replicas();
        self.adding_replicas = without(target, &original);
        self.removing_replicas = without(&original, target);
        self.replicas = target.to_vec();
        self.replicas.extend(&self.removing_replicas);
        self.fit_to_replicas(&eligible);
        self.complete_reassignment_if_done(&eligible);
    }

    /// Cancels the reassignment in progress (Kafka's `PartitionReassignmentRevert`): the
    /// replicas go back to the original ones, the ISR keeps its members among them, and a
    /// leader that was an added replica is replaced by a clean election.
    ///
    /// When no original replica is in sync the ISR becomes empty and the partition leaderless.
    /// Kafka would instead put every original replica in the ISR and elect uncleanly; with
    /// unclean election off the partition stays offline until an explicit `ChangePartition`.
    fn cancel_reassignment(&mut self, eligible: impl Fn(u64) -> bool) {
        self.replicas = self.original_replicas();
        self.adding_replicas.clear();
        self.removing_replicas.clear();
        self.fit_to_replicas(eligible);
    }
}

/// `ids` without the members of `removed`, in `ids` order.
fn without(ids: &[u64], removed: &[u64]) -> Vec<u64> {
    ids.iter()
        .copied()
        .filter(|id| !removed.contains(id))
        .collect()
}

fn bump(epoch: &mut i32) {
    *epoch = epoch.saturating_add(1);
}

#[cfg(test)]
mod tests;

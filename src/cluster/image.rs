//! The metadata image: the cluster metadata as of one applied log index, and the rules that turn
//! a [`MetadataCommand`] into a new image.
//!
//! Applying is deterministic: it reads nothing but the image and the command (no clock, no
//! randomness, ordered maps only), so every node that applies the same log holds the same image.
//! A command is validated in full before anything changes, so a rejected command leaves the image
//! untouched.
//!
//! The partition rules (fencing, elections, ISR changes, reassignments) are in
//! [`election`](super::election).

use super::command::{MetadataCommand, MetadataResponse, Rejection};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The whole cluster metadata. Small (nodes, topics, partitions), cloned copy-on-write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub nodes: BTreeMap<u64, NodeRegistration>,
    pub topics: BTreeMap<String, TopicImage>,
    /// The first producer id no node has been given yet.
    #[serde(default)]
    pub next_producer_id: i64,
    /// SCRAM credentials by user, then by mechanism name (`SCRAM-SHA-256`): Kafka's
    /// UserScramCredentialRecords.
    #[serde(default)]
    pub scram_credentials: BTreeMap<String, BTreeMap<String, ScramCredential>>,
}

/// A user's salted SCRAM credential for one mechanism: never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRegistration {
    pub host: String,
    /// The Kafka listener's port.
    pub port: u16,
    pub rack: Option<String>,
    /// The `at_ms` of the latest heartbeat (ms since the Unix epoch), if any since registering.
    pub last_heartbeat_ms: Option<i64>,
    /// A fenced broker leads nothing and is not offered to clients: it registered and has not
    /// heartbeated since, or the controller fenced it.
    pub fenced: bool,
    /// The registering process's incarnation (random per start).
    #[serde(default)]
    pub incarnation: Option<u64>,
    /// Every client listener's advertised address (see `RegisterNode`).
    #[serde(default)]
    pub listeners: Vec<crate::config::listeners::Endpoint>,
}

impl NodeRegistration {
    /// Where a client that came in on `listener` reaches this node: that listener's advertised
    /// address; `host`/`port` for a node that registered no listeners; none when the node does
    /// not have that listener (Kafka leaves such nodes out of what it tells that client).
    pub fn endpoint_for(&self, listener: &str) -> Option<(String, i32)> {
        if self.listeners.is_empty() {
            return Some((self.host.clone(), self.port as i32));
        }
        self.listeners
            .iter()
            .find(|e| e.name == listener)
            .map(|e| (e.host.clone(), e.port as i32))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// A UUID in its hyphenated text form.
    pub topic_id: String,
    /// Per-topic overrides by Kafka's dotted config names (`retention.ms`).
    pub configs: BTreeMap<String, String>,
    /// Indexed by partition number.
    pub partitions: Vec<PartitionImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// During a reassignment: the target replicas followed by the ones being removed.
    pub replicas: Vec<u64>,
    /// A subset of `replicas`; contains `leader` when there is one.
    pub isr: Vec<u64>,
    pub leader: Option<u64>,
    /// Bumped by exactly one on every leader change (and on every accepted `ChangePartition`).
    pub leader_epoch: i32,
    /// Bumped by one on every command that changes this partition's record.
    pub partition_epoch: i32,
    /// Target replicas of the reassignment in progress that were not replicas before it.
    #[serde(default)]
    pub adding_replicas: Vec<u64>,
    /// Replicas from before the reassignment in progress that are not among its targets.
    #[serde(default)]
    pub removing_replicas: Vec<u64>,
}

impl PartitionImage {
    /// A new partition at epoch 0 with every replica in sync, led by `leader`.
    fn new(replicas: Vec<u64>, leader: Option<u64>) -> Self {
        PartitionImage {
            leader,
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(index)
    }

    /// Applies one command; on rejection the image is unchanged.
    pub fn apply(&mut self, command: &MetadataCommand) -> MetadataResponse {
        if let MetadataCommand::AllocateProducerIds {
            node_id,
            count,
            at_least,
        } = command
        {
            return self.allocate_producer_ids(*node_id, *count, *at_least);
        }
        match self.try_apply(command) {
            Ok(()) => MetadataResponse::Ok,
            Err(rejection) => MetadataResponse::Rejected(rejection),
        }
    }

    fn allocate_producer_ids(
        &mut self,
        node_id: u64,
        count: i64,
        at_least: i64,
    ) -> MetadataResponse {
        if !self.nodes.contains_key(&node_id) {
            return MetadataResponse::Rejected(Rejection::UnknownNode { node_id });
        }
        let first = self.next_producer_id.max(at_least);
        let Some(next) = first.checked_add(count).filter(|_| count > 0) else {
            return MetadataResponse::Rejected(Rejection::InvalidProducerIdBlock { count });
        };
        self.next_producer_id = next;
        MetadataResponse::ProducerIds { first, count }
    }

    fn try_apply(&mut self, command: &MetadataCommand) -> Result<(), Rejection> {
        match command {
            MetadataCommand::RegisterNode {
                node_id,
                host,
                port,
                rack,
                incarnation,
                listeners,
            } => {
                self.register_node(*node_id, host, *port, rack.as_deref(), *incarnation);
                if let Some(node) = self.nodes.get_mut(node_id) {
                    node.listeners = listeners.clone();
                }
                Ok(())
            }
            MetadataCommand::Heartbeat { node_id, at_ms } => self.heartbeat(*node_id, *at_ms),
            MetadataCommand::FenceNode {
                node_id,
                if_last_heartbeat_ms,
            } => {
                let node = self.node_mut(*node_id)?;
                if let Some(seen) = if_last_heartbeat_ms {
                    if node.last_heartbeat_ms.unwrap_or(-1) != *seen {
                        return Err(Rejection::StaleFence { node_id: *node_id });
                    }
                }
                node.fenced = true;
                self.fence_partitions(*node_id);
                Ok(())
            }
            MetadataCommand::CreateTopic {
                name,
                topic_id,
                partitions,
                configs,
            } => self.create_topic(name, topic_id, partitions, configs),
            MetadataCommand::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => Ok(()),
                None => Err(unknown_topic(name)),
            },
            MetadataCommand::AlterTopicConfigs { name, configs } => {
                self.alter_topic_configs(name, configs)
            }
            MetadataCommand::ChangePartition {
                topic,
                partition,
                leader,
                isr,
                leader_epoch,
            } => self.change_partition(topic, *partition, *leader, isr, *leader_epoch),
            MetadataCommand::AddPartitions { topic, assignments } => {
                self.add_partitions(topic, assignments)
            }
            MetadataCommand::AlterIsr {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let claim = (*leader, *leader_epoch, *partition_epoch);
                self.alter_isr(topic, *partition, claim, isr)
            }
            MetadataCommand::ElectPreferred { topic, partition } => {
                self.elect_preferred(topic, *partition)
            }
            MetadataCommand::Reassign {
                topic,
                partition,
                target,
                keep_replication_factor,
            } => self.reassign(
                topic,
                *partition,
                target.as_deref(),
                *keep_replication_factor,
            ),
            // Answered with the block in `apply`.
            MetadataCommand::AllocateProducerIds { .. } => Ok(()),
            MetadataCommand::AlterScramCredentials {
                user,
                deletions,
                upsertions,
            } => self.alter_scram_credentials(user, deletions, upsertions),
        }
    }

    /// Removes, then sets, one user's SCRAM credentials; a deletion of a credential that does
    /// not exist rejects the whole command.
    fn alter_scram_credentials(
        &mut self,
        user: &str,
        deletions: &[String],
        upsertions: &BTreeMap<String, ScramCredential>,
    ) -> Result<(), Rejection> {
        let current = self.scram_credentials.get(user);
        if let Some(missing) = deletions
            .iter()
            .find(|m| !current.is_some_and(|c| c.contains_key(*m)))
        {
            return Err(Rejection::UnknownScramCredential {
                user: user.to_string(),
                mechanism: missing.clone(),
            });
        }
        let entry = self.scram_credentials.entry(user.to_string()).or_default();
        for m in deletions {
            entry.remove(m);
        }
        for (m, credential) in upsertions {
            entry.insert(m.clone(), credential.clone());
        }
        if entry.is_empty() {
            self.scram_credentials.remove(user);
        }
        Ok(())
    }

    /// A first registration, or a restart: then the new incarnation may have lost unsynced
    /// data, so it first loses its partitions as if fenced (Kafka fences a broker that registers
    /// a new incarnation, and KRaft takes it out of its partitions' leadership and ISRs).
    /// Either way the node starts fenced, until its next heartbeat.
    fn register_node(
        &mut self,
        node_id: u64,
        host: &str,
        port: u16,
        rack: Option<&str>,
        incarnation: Option<u64>,
    ) {
        if self.nodes.contains_key(&node_id) {
            self.fence_partitions(node_id);
        }
        let registration = NodeRegistration {
            host: host.to_string(),
            port,
            rack: rack.map(str::to_string),
            last_heartbeat_ms: None,
            fenced: true,
            incarnation,
            listeners: Vec::new(),
        };
        self.nodes.insert(node_id, registration);
    }

    /// Unfences the node and elects leaders for the leaderless partitions it is in sync for.
    fn heartbeat(&mut self, node_id: u64, at_ms: i64) -> Result<(), Rejection> {
        let node = self.node_mut(node_id)?;
        node.last_heartbeat_ms = Some(node.last_heartbeat_ms.map_or(at_ms, |t| t.max(at_ms)));
        node.fenced = false;
        self.elect_leaderless(node_id);
        Ok(())
    }

    fn alter_topic_configs(
        &mut self,
        name: &str,
        configs: &BTreeMap<String, Option<String>>,
    ) -> Result<(), Rejection> {
        let topic = self
            .topics
            .get_mut(name)
            .ok_or_else(|| unknown_topic(name))?;
        for (key, value) in configs {
            match value {
                Some(v) => topic.configs.insert(key.clone(), v.clone()),
                None => topic.configs.remove(key),
            };
        }
        Ok(())
    }

    /// The partition, or the rejection naming what is missing (the topic or the partition).
    pub(super) fn partition_or_reject(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<&PartitionImage, Rejection> {
        self.partition(topic, partition)
            .ok_or_else(|| match self.topics.contains_key(topic) {
                true => Rejection::UnknownPartition {
                    topic: topic.to_string(),
                    partition,
                },
                false => unknown_topic(topic),
            })
    }

    /// Replaces a partition's record; the partition must exist (found by `partition_or_reject`).
    pub(super) fn store_partition(&mut self, topic: &str, partition: i32, record: PartitionImage) {
        let index = usize::try_from(partition).expect("an existing partition's index");
        let topic = self.topics.get_mut(topic).expect("an existing topic");
        topic.partitions[index] = record;
    }

    fn node_mut(&mut self, node_id: u64) -> Result<&mut NodeRegistration, Rejection> {
        self.nodes
            .get_mut(&node_id)
            .ok_or(Rejection::UnknownNode { node_id })
    }

    fn create_topic(
        &mut self,
        name: &str,
        topic_id: &str,
        partitions: &[Vec<u64>],
        configs: &BTreeMap<String, String>,
    ) -> Result<(), Rejection> {
        if name.is_empty() {
            return Err(Rejection::InvalidTopicName {
                name: name.to_string(),
            });
        }
        if self.topics.contains_key(name) {
            return Err(Rejection::TopicExists {
                name: name.to_string(),
            });
        }
        if uuid::Uuid::parse_str(topic_id).is_err() {
            return Err(Rejection::InvalidTopicId {
                name: name.to_string(),
                topic_id: topic_id.to_string(),
            });
        }
        if let Some((other, _)) = self.topics.iter().find(|(_, t)| t.topic_id == topic_id) {
            return Err(Rejection::TopicIdExists {
                topic_id: topic_id.to_string(),
                name: other.clone(),
            });
        }
        self.check_assignments(name, partitions)?;
        let topic = TopicImage {
            topic_id: topic_id.to_string(),
            configs: configs.clone(),
            partitions: self.new_partitions(partitions),
        };
        self.topics.insert(name.to_string(), topic);
        Ok(())
    }

    fn add_partitions(&mut self, topic: &str, assignments: &[Vec<u64>]) -> Result<(), Rejection> {
        if !self.topics.contains_key(topic) {
            return Err(unknown_topic(topic));
        }
        self.check_assignments(topic, assignments)?;
        let existing = self.topics[topic].partitions.len();
        if existing + assignments.len() > i32::MAX as usize {
            return Err(invalid_assignment(topic, "more than i32::MAX partitions"));
        }
        let partitions = self.new_partitions(assignments);
        let entry = self.topics.get_mut(topic).expect("checked above");
        entry.partitions.extend(partitions);
        Ok(())
    }

    /// New partitions, each led by its first eligible replica (none when all are fenced).
    fn new_partitions(&self, assignments: &[Vec<u64>]) -> Vec<PartitionImage> {
        assignments
            .iter()
            .map(|replicas| PartitionImage::new(replicas.clone(), self.first_eligible(replicas)))
            .collect()
    }

    /// Every partition needs at least one replica, no replica twice, and only registered nodes.
    fn check_assignments(&self, topic: &str, assignments: &[Vec<u64>]) -> Result<(), Rejection> {
        if assignments.is_empty() {
            return Err(invalid_assignment(topic, "no partitions"));
        }
        if assignments.len() > i32::MAX as usize {
            return Err(invalid_assignment(topic, "more than i32::MAX partitions"));
        }
        for (index, replicas) in assignments.iter().enumerate() {
            if replicas.is_empty() {
                return Err(invalid_assignment(
                    topic,
                    &format!("partition {index} has no replicas"),
                ));
            }
            if has_duplicates(replicas) {
                return Err(invalid_assignment(
                    topic,
                    &format!("partition {index} lists a replica twice: {replicas:?}"),
                ));
            }
            if let Some(&node_id) = replicas.iter().find(|id| !self.nodes.contains_key(id)) {
                return Err(Rejection::UnknownNode { node_id });
            }
        }
        Ok(())
    }

    fn change_partition(
        &mut self,
        topic: &str,
        partition: i32,
        leader: Option<u64>,
        isr: &[u64],
        leader_epoch: i32,
    ) -> Result<(), Rejection> {
        let current = self.partition_or_reject(topic, partition)?;
        if current.leader_epoch.checked_add(1) != Some(leader_epoch) {
            return Err(Rejection::StaleEpoch {
                topic: topic.to_string(),
                partition,
                current: current.leader_epoch,
                given: leader_epoch,
            });
        }
        check_isr_shape(topic, partition, current, isr)?;
        if let Some(leader) = leader.filter(|l| !isr.contains(l)) {
            return Err(Rejection::LeaderNotInIsr {
                topic: topic.to_string(),
                partition,
                leader,
                isr: isr.to_vec(),
            });
        }
        let mut record = current.clone();
        record.leader = leader;
        record.isr = isr.to_vec();
        record.leader_epoch = leader_epoch;
        record.partition_epoch = record.partition_epoch.saturating_add(1);
        self.store_partition(topic, partition, record);
        Ok(())
    }
}

/// An ISR must list each replica at most once and only replicas.
pub(super) fn check_isr_shape(
    topic: &str,
    partition: i32,
    current: &PartitionImage,
    isr: &[u64],
) -> Result<(), Rejection> {
    let invalid_isr = |reason: &str| Rejection::InvalidIsr {
        topic: topic.to_string(),
        partition,
        isr: isr.to_vec(),
        reason: reason.to_string(),
    };
    if has_duplicates(isr) {
        return Err(invalid_isr("a replica is listed twice"));
    }
    if isr.iter().any(|id| !current.replicas.contains(id)) {
        return Err(invalid_isr("not a subset of the replicas"));
    }
    Ok(())
}

pub(super) fn unknown_topic(name: &str) -> Rejection {
    Rejection::UnknownTopic {
        name: name.to_string(),
    }
}

pub(super) fn invalid_assignment(topic: &str, reason: &str) -> Rejection {
    Rejection::InvalidReplicaAssignment {
        topic: topic.to_string(),
        reason: reason.to_string(),
    }
}

pub(super) fn has_duplicates(ids: &[u64]) -> bool {
    ids.iter().collect::<BTreeSet<_>>().len() != ids.len()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn register(image: &mut MetadataImage, node_id: u64) {
        let cmd = MetadataCommand::RegisterNode {
            node_id,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            incarnation: None,
            listeners: Vec::new(),
        };
        assert_eq!(image.apply(&cmd), MetadataResponse::Ok);
    }

    /// Registered and unfenced.
    fn live(image: &mut MetadataImage, node_id: u64) {
        register(image, node_id);
        let beat = MetadataCommand::Heartbeat { node_id, at_ms: 1 };
        assert_eq!(image.apply(&beat), MetadataResponse::Ok);
    }

    fn create(name: &str, partitions: Vec<Vec<u64>>) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            name: name.into(),
            topic_id: uuid::Uuid::new_v4().to_string(),
            partitions,
            configs: BTreeMap::new(),
        }
    }

    fn change(leader: Option<u64>, isr: Vec<u64>, leader_epoch: i32) -> MetadataCommand {
        MetadataCommand::ChangePartition {
            topic: "t".into(),
            partition: 0,
            leader,
            isr,
            leader_epoch,
        }
    }

    /// Applies `cmd`, which must be rejected without changing the image.
    pub(in crate::cluster) fn rejection(
        image: &mut MetadataImage,
        cmd: &MetadataCommand,
    ) -> Rejection {
        let before = image.clone();
        let rejection = image
            .apply(cmd)
            .into_result()
            .expect_err("the command must be rejected");
        assert_eq!(*image, before, "a rejected command changes nothing");
        rejection
    }

    #[test]
    fn create_topic_elects_first_replica_at_epoch_zero_with_full_isr() {
        let mut image = MetadataImage::default();
        (1..=3).for_each(|id| live(&mut image, id));
        let cmd = create("t", vec![vec![2, 1, 3], vec![3, 2, 1]]);
        assert_eq!(image.apply(&cmd), MetadataResponse::Ok);
        let p1 = image.partition("t", 1).unwrap();
        assert_eq!((p1.leader, p1.leader_epoch), (Some(3), 0));
        assert_eq!(p1.isr, vec![3, 2, 1]);
        assert!(matches!(
            rejection(&mut image, &cmd),
            Rejection::TopicExists { .. }
        ));
    }

    #[test]
    fn create_topic_rejects_bad_assignments_and_ids() {
        let mut image = MetadataImage::default();
        register(&mut image, 1);
        let unknown = create("t", vec![vec![1, 7]]);
        assert_eq!(
            rejection(&mut image, &unknown),
            Rejection::UnknownNode { node_id: 7 }
        );
        let twice = create("t", vec![vec![1, 1]]);
        assert!(matches!(
            rejection(&mut image, &twice),
            Rejection::InvalidReplicaAssignment { .. }
        ));
        let bad_id = MetadataCommand::CreateTopic {
            name: "t".into(),
            topic_id: "not-a-uuid".into(),
            partitions: vec![vec![1]],
            configs: BTreeMap::new(),
        };
        assert!(matches!(
            rejection(&mut image, &bad_id),
            Rejection::InvalidTopicId { .. }
        ));
    }

    #[test]
    fn change_partition_requires_the_next_epoch_and_a_leader_in_the_isr() {
        let mut image = MetadataImage::default();
        (1..=3).for_each(|id| register(&mut image, id));
        image.apply(&create("t", vec![vec![1, 2, 3]]));

        let stale = rejection(&mut image, &change(Some(2), vec![2, 3], 0));
        assert!(matches!(
            stale,
            Rejection::StaleEpoch {
                current: 0,
                given: 0,
                ..
            }
        ));
        let skipped = rejection(&mut image, &change(Some(2), vec![2, 3], 2));
        assert!(matches!(
            skipped,
            Rejection::StaleEpoch {
                current: 0,
                given: 2,
                ..
            }
        ));
        let outside = rejection(&mut image, &change(Some(1), vec![2, 3], 1));
        assert!(matches!(
            outside,
            Rejection::LeaderNotInIsr { leader: 1, .. }
        ));
        let foreign = rejection(&mut image, &change(Some(2), vec![2, 9], 1));
        assert!(matches!(foreign, Rejection::InvalidIsr { .. }));

        assert_eq!(
            image.apply(&change(Some(2), vec![2, 3], 1)),
            MetadataResponse::Ok
        );
        let p = image.partition("t", 0).unwrap();
        assert_eq!(
            (p.leader, p.leader_epoch, p.partition_epoch),
            (Some(2), 1, 1)
        );
        assert_eq!(image.apply(&change(None, vec![], 2)), MetadataResponse::Ok);
        assert_eq!(image.partition("t", 0).unwrap().leader, None);
    }

    #[test]
    fn heartbeat_unfences_and_keeps_the_latest_time() {
        let mut image = MetadataImage::default();
        let beat = |at_ms| MetadataCommand::Heartbeat { node_id: 1, at_ms };
        assert_eq!(
            rejection(&mut image, &beat(5)),
            Rejection::UnknownNode { node_id: 1 }
        );
        register(&mut image, 1);
        assert!(image.nodes[&1].fenced);
        image.apply(&beat(20));
        image.apply(&beat(10));
        assert_eq!(image.nodes[&1].last_heartbeat_ms, Some(20));
        assert!(!image.nodes[&1].fenced);
        image.apply(&MetadataCommand::FenceNode {
            node_id: 1,
            if_last_heartbeat_ms: None,
        });
        assert!(image.nodes[&1].fenced);
    }

    #[test]
    fn configs_alter_merge_and_partitions_append() {
        let mut image = MetadataImage::default();
        (1..=2).for_each(|id| live(&mut image, id));
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        configs.insert("cleanup.policy".to_string(), "delete".to_string());
        let cmd = MetadataCommand::CreateTopic {
            name: "t".into(),
            topic_id: uuid::Uuid::new_v4().to_string(),
            partitions: vec![vec![1]],
            configs,
        };
        image.apply(&cmd);
        let mut alter = BTreeMap::new();
        alter.insert("retention.ms".to_string(), None);
        alter.insert("segment.bytes".to_string(), Some("1024".to_string()));
        let cmd = MetadataCommand::AlterTopicConfigs {
            name: "t".into(),
            configs: alter,
        };
        assert_eq!(image.apply(&cmd), MetadataResponse::Ok);
        let keys: Vec<_> = image.topics["t"].configs.keys().cloned().collect();
        assert_eq!(keys, vec!["cleanup.policy", "segment.bytes"]);

        let add = MetadataCommand::AddPartitions {
            topic: "t".into(),
            assignments: vec![vec![2, 1]],
        };
        assert_eq!(image.apply(&add), MetadataResponse::Ok);
        assert_eq!(image.partition("t", 1).unwrap().leader, Some(2));
        let delete = MetadataCommand::DeleteTopic { name: "t".into() };
        assert_eq!(image.apply(&delete), MetadataResponse::Ok);
        assert!(matches!(
            rejection(&mut image, &delete),
            Rejection::UnknownTopic { .. }
        ));
    }

    #[test]
    fn producer_id_blocks_never_overlap_and_respect_the_floor() {
        let mut image = MetadataImage::default();
        let alloc = |image: &mut MetadataImage, node_id, at_least| {
            image.apply(&MetadataCommand::AllocateProducerIds {
                node_id,
                count: 1000,
                at_least,
            })
        };
        assert!(matches!(
            alloc(&mut image, 1, 0),
            MetadataResponse::Rejected(Rejection::UnknownNode { node_id: 1 })
        ));
        register(&mut image, 1);
        register(&mut image, 2);
        assert_eq!(
            alloc(&mut image, 1, 0),
            MetadataResponse::ProducerIds {
                first: 0,
                count: 1000
            }
        );
        assert_eq!(
            alloc(&mut image, 2, 0),
            MetadataResponse::ProducerIds {
                first: 1000,
                count: 1000
            }
        );
        // A node that handed out ids up to 5000 before it joined the quorum.
        assert_eq!(
            alloc(&mut image, 1, 5000),
            MetadataResponse::ProducerIds {
                first: 5000,
                count: 1000
            }
        );
        assert_eq!(image.next_producer_id, 6000);
    }

    #[test]
    fn a_fence_decided_before_a_newer_heartbeat_is_refused() {
        let mut image = MetadataImage::default();
        register(&mut image, 1);
        let beat = |image: &mut MetadataImage, at_ms| {
            image.apply(&MetadataCommand::Heartbeat { node_id: 1, at_ms })
        };
        let fence = |image: &mut MetadataImage, seen| {
            image.apply(&MetadataCommand::FenceNode {
                node_id: 1,
                if_last_heartbeat_ms: Some(seen),
            })
        };
        assert_eq!(beat(&mut image, 10), MetadataResponse::Ok);
        assert_eq!(beat(&mut image, 20), MetadataResponse::Ok);
        assert_eq!(
            fence(&mut image, 10),
            MetadataResponse::Rejected(Rejection::StaleFence { node_id: 1 })
        );
        assert!(!image.nodes[&1].fenced);
        assert_eq!(fence(&mut image, 20), MetadataResponse::Ok);
        assert!(image.nodes[&1].fenced);
    }
}

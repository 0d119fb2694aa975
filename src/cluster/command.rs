//! What the quorum orders ([`MetadataCommand`], one per log entry) and what applying one answers
//! ([`MetadataResponse`]). Both travel in the Raft log and over the controller RPC as JSON, so
//! their serde shape is part of the on-disk format: add variants, never rename them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One change to the cluster metadata. Node ids are Raft node ids (`u64`); partition indexes and
/// epochs use Kafka's `i32`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataCommand {
    /// A broker announces itself, or re-announces itself after a restart (which fences it again
    /// until its next heartbeat, with the partition effects of `FenceNode`). `port` is its Kafka
    /// listener.
    RegisterNode {
        node_id: u64,
        host: String,
        port: u16,
        rack: Option<String>,
        /// Random per process start: a node knows its image is at least as new as its own
        /// registration when it finds this value there.
        #[serde(default)]
        incarnation: Option<u64>,
        /// Every client listener's advertised address, by listener name: clients are told the
        /// addresses of the listener they connected to. Empty from nodes that registered only
        /// `host`/`port`.
        #[serde(default)]
        listeners: Vec<crate::config::listeners::Endpoint>,
    },
    /// A registered broker is alive at `at_ms` (milliseconds since the Unix epoch, the broker's
    /// clock). Unfences it, and elects a leader for the leaderless partitions it is in sync for.
    /// The clock is carried in the command so that applying stays deterministic.
    Heartbeat {
        node_id: u64,
        at_ms: i64,
    },
    /// The active controller saw a broker's heartbeats lapse: fence it until its next heartbeat.
    /// Its partitions lose it as leader (another in-sync replica takes over when one is
    /// eligible) and as ISR member (unless it is the last one).
    FenceNode {
        node_id: u64,
        /// Fence only if the node's latest heartbeat is still this one (its `at_ms`, -1 for
        /// none yet); `None`: whatever it is (a node fencing itself at shutdown). A monitor
        /// that fell behind the quorum (cut off, then healed) cannot fence a node that
        /// heartbeated since.
        #[serde(default)]
        if_last_heartbeat_ms: Option<i64>,
    },
    /// A new topic; `partitions[i]` is partition `i`'s replica list. The first eligible
    /// (registered, unfenced) replica becomes its leader at epoch 0, or none when every replica
    /// is fenced; the ISR is the full replica list.
    CreateTopic {
        name: String,
        /// A UUID in its usual hyphenated text form.
        topic_id: String,
        partitions: Vec<Vec<u64>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Per-topic config overrides: `Some(value)` sets a key, `None` removes the override. Keys not
    /// named are left as they are, so two concurrent alters of different keys both take effect.
    AlterTopicConfigs {
        name: String,
        configs: BTreeMap<String, Option<String>>,
    },
    /// A new leader and/or ISR for one partition. `leader_epoch` must be exactly the current one
    /// plus one, and the leader (when there is one) must be in the ISR.
    ChangePartition {
        topic: String,
        partition: i32,
        leader: Option<u64>,
        isr: Vec<u64>,
        leader_epoch: i32,
    },
    /// More partitions for an existing topic, numbered after the existing ones; each new one is
    /// set up as in `CreateTopic`.
    AddPartitions {
        topic: String,
        assignments: Vec<Vec<u64>>,
    },
    /// The partition leader's new ISR (Kafka's AlterPartition). Accepted only from the current
    /// leader at the current leader epoch and partition epoch; nodes joining the ISR must be
    /// eligible (registered and unfenced). Completes a reassignment once every target replica is
    /// in sync. See `election.rs`.
    AlterIsr {
        topic: String,
        partition: i32,
        leader: u64,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<u64>,
    },
    /// Moves leadership to the first replica (Kafka's ElectLeaders with the PREFERRED type).
    ElectPreferred {
        topic: String,
        partition: i32,
    },
    /// Starts (or replaces) a reassignment of one partition's replicas to `target`, or cancels
    /// the one in progress when `target` is `None` (Kafka's AlterPartitionReassignments).
    Reassign {
        topic: String,
        partition: i32,
        target: Option<Vec<u64>>,
        /// Refuse a target whose size differs from the original replica count (Kafka's
        /// `allow_replication_factor_change = false`, KIP-860). Checked where the command is
        /// applied, so it holds against concurrent reassignments. Absent in older entries.
        #[serde(default)]
        keep_replication_factor: bool,
    },
    /// A block of `count` producer ids for `node_id` to hand out (Kafka's
    /// AllocateProducerIds): ids from the cluster-wide counter, never below `at_least` (ids a
    /// node handed out before it joined a quorum). Answered with
    /// [`MetadataResponse::ProducerIds`].
    AllocateProducerIds {
        node_id: u64,
        count: i64,
        at_least: i64,
    },
    /// One user's SCRAM credentials (Kafka's AlterUserScramCredentials): the `deletions`
    /// (mechanism names) are removed, then the `upsertions` set. Rejected as a whole when a
    /// deletion names a credential that does not exist.
    AlterScramCredentials {
        user: String,
        deletions: Vec<String>,
        upsertions: BTreeMap<String, super::image::ScramCredential>,
    },
}

/// The state machine's answer to one applied log entry. A rejected command changed nothing;
/// it still occupies its log entry, and every node rejects it the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", content = "rejection", rename_all = "snake_case")]
pub enum MetadataResponse {
    Ok,
    Rejected(Rejection),
    /// The block `[first, first + count)` of producer ids, for `AllocateProducerIds`.
    ProducerIds {
        first: i64,
        count: i64,
    },
}

impl MetadataResponse {
    pub fn into_result(self) -> Result<(), Rejection> {
        match self {
            MetadataResponse::Ok | MetadataResponse::ProducerIds { .. } => Ok(()),
            MetadataResponse::Rejected(r) => Err(r),
        }
    }
}

/// Why a command was not applied. These are outcomes of the metadata rules, not failures of the
/// quorum: the entry was committed and every node agrees on the rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum Rejection {
    #[error("node {node_id} heartbeated since the fence was decided")]
    StaleFence { node_id: u64 },
    #[error("user {user} has no {mechanism} credential")]
    UnknownScramCredential { user: String, mechanism: String },
    #[error("a block of {count} producer ids cannot be allocated")]
    InvalidProducerIdBlock { count: i64 },
    #[error("topic {name} already exists")]
    TopicExists { name: String },
    #[error("topic id {topic_id} is already used by topic {name}")]
    TopicIdExists { topic_id: String, name: String },
    #[error("topic {name} does not exist")]
    UnknownTopic { name: String },
    #[error("partition {topic}-{partition} does not exist")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("node {node_id} is not registered")]
    UnknownNode { node_id: u64 },
    #[error(
        "partition {topic}-{partition}: leader epoch {given} is not the successor of the current epoch {current}"
    )]
    StaleEpoch {
        topic: String,
        partition: i32,
        current: i32,
        given: i32,
    },
    #[error("partition {topic}-{partition}: leader {leader} is not in the ISR {isr:?}")]
    LeaderNotInIsr {
        topic: String,
        partition: i32,
        leader: u64,
        isr: Vec<u64>,
    },
    #[error("partition {topic}-{partition}: invalid ISR {isr:?}: {reason}")]
    InvalidIsr {
        topic: String,
        partition: i32,
        isr: Vec<u64>,
        reason: String,
    },
    #[error("topic {topic}: invalid replica assignment: {reason}")]
    InvalidReplicaAssignment { topic: String, reason: String },
    #[error("topic {name}: invalid topic id {topic_id:?}")]
    InvalidTopicId { name: String, topic_id: String },
    #[error("invalid topic name {name:?}")]
    InvalidTopicName { name: String },
    #[error(
        "partition {topic}-{partition}: the sender is not the leader at leader epoch {given} (current leader epoch {current_leader_epoch})"
    )]
    FencedLeaderEpoch {
        topic: String,
        partition: i32,
        current_leader_epoch: i32,
        given: i32,
    },
    #[error(
        "partition {topic}-{partition}: partition epoch {given} is not the current partition epoch {current}"
    )]
    InvalidUpdateVersion {
        topic: String,
        partition: i32,
        current: i32,
        given: i32,
    },
    #[error(
        "partition {topic}-{partition}: node {node_id} cannot join the ISR: it is fenced or not registered"
    )]
    IneligibleReplica {
        topic: String,
        partition: i32,
        node_id: u64,
    },
    #[error("partition {topic}-{partition}: the preferred replica already leads")]
    ElectionNotNeeded { topic: String, partition: i32 },
    #[error("partition {topic}-{partition}: the preferred replica is not in the ISR or is fenced")]
    PreferredLeaderNotAvailable { topic: String, partition: i32 },
    #[error("partition {topic}-{partition}: no reassignment is in progress")]
    NoReassignmentInProgress { topic: String, partition: i32 },
    #[error(
        "partition {topic}-{partition}: the replication factor would change from {from} to {to}"
    )]
    ReplicationFactorChange {
        topic: String,
        partition: i32,
        from: usize,
        to: usize,
    },
}

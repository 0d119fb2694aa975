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
    /// until its next heartbeat). `port` is its Kafka listener.
    RegisterNode {
        node_id: u64,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// A registered broker is alive at `at_ms` (milliseconds since the Unix epoch, the broker's
    /// clock). Unfences it. The clock is carried in the command so that applying stays
    /// deterministic.
    Heartbeat {
        node_id: u64,
        at_ms: i64,
    },
    /// The active controller saw a broker's heartbeats lapse: fence it until its next heartbeat.
    FenceNode {
        node_id: u64,
    },
    /// A new topic; `partitions[i]` is partition `i`'s replica list, the first replica becomes
    /// its leader at epoch 0 with the full replica list as ISR.
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
}

/// The state machine's answer to one applied log entry. A rejected command changed nothing;
/// it still occupies its log entry, and every node rejects it the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", content = "rejection", rename_all = "snake_case")]
pub enum MetadataResponse {
    Ok,
    Rejected(Rejection),
}

impl MetadataResponse {
    pub fn into_result(self) -> Result<(), Rejection> {
        match self {
            MetadataResponse::Ok => Ok(()),
            MetadataResponse::Rejected(r) => Err(r),
        }
    }
}

/// Why a command was not applied. These are outcomes of the metadata rules, not failures of the
/// quorum: the entry was committed and every node agrees on the rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum Rejection {
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
}

//! The cluster metadata quorum: a replicated log of [`MetadataCommand`]s, ordered by Raft
//! (the `openraft` crate), applied by every node to the same [`MetadataImage`].
//!
//! What the quorum holds: the registered brokers (Kafka endpoint, rack, last heartbeat, fenced
//! or not) and the topics (id, config overrides, and per partition its replicas, ISR, leader,
//! leader epoch and partition epoch). Nothing else: records, offsets and groups live elsewhere.
//!
//! How a node uses it: [`Controller::start`] opens the node's quorum directory, binds the
//! controller listener and starts Raft. On a brand-new cluster one call to
//! [`Controller::initialize`] with the voters (node id → controller address) forms the quorum;
//! a single voter is a quorum of one. Any node then [`Controller::propose`]s commands, which are
//! forwarded to the leader when it is not the leader itself, and reads [`Controller::image`] (or
//! waits for a new one on [`Controller::subscribe`]): voters and learners alike apply every
//! committed command. [`Controller::shutdown`] stops Raft and the listener; restarting from the
//! same directory keeps the vote, the log and the last snapshot, and replays committed entries.
//!
//! The parts, each in its own file:
//! - [`command`]: the commands and the typed answers ([`MetadataResponse`], [`Rejection`]).
//! - [`image`]: the image and the deterministic rules that apply a command to it.
//! - [`election`]: the partition rules of the image: fencing, clean leader elections, ISR
//!   changes from leaders, preferred elections and replica reassignments (Kafka's KRaft rules).
//! - [`log_store`]: the Raft log, vote and committed id on disk (openraft's `RaftLogStorage`).
//! - [`state_machine`]: the applied image and its snapshots (openraft's `RaftStateMachine`).
//! - [`network`]: length-prefixed JSON frames over TCP between controllers, both sides.
//! - [`controller`]: the handle a node holds.
//! - [`quorum`]: the quorum's state as DescribeQuorum reports it.
//! - `durable`: crash-safe file writes shared by the two stores.
//!
//! On disk, in the quorum directory: `vote.json`, `committed.json`, `purged.json` and
//! `snapshot.json` are replaced atomically (temp file, fsync, rename, fsync of the directory);
//! `log.jsonl` holds one log entry per line, appended and fsynced before Raft is told the entries
//! are durable. A torn last line (a crash mid-append) is cut off on reopen.

pub mod command;
pub mod controller;
mod durable;
pub mod election;
pub mod image;
pub mod log_store;
pub mod membership;
pub mod network;
pub mod quorum;
pub mod state_machine;
#[cfg(test)]
mod tests;

use std::io::Cursor;
use std::path::PathBuf;

pub use command::{MetadataCommand, MetadataResponse, Rejection};
pub use controller::{Controller, ControllerConfig};
pub use image::{MetadataImage, NodeRegistration, PartitionImage, TopicImage};

/// A Raft node id: the same number as the broker's `node.id`.
pub type RaftNodeId = u64;

openraft::declare_raft_types!(
    /// openraft's type configuration for the metadata quorum. A node's [`openraft::BasicNode`]
    /// address is its controller listener as `host:port`.
    pub TypeConfig:
        D = MetadataCommand,
        R = MetadataResponse,
        NodeId = RaftNodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The running Raft instance of the metadata quorum.
pub type MetadataRaft = openraft::Raft<TypeConfig>;

/// The errors of the cluster module (openraft's large error values boxed). Rejected commands are not errors here: they are a
/// [`MetadataResponse::Rejected`] answer from an applied entry.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("quorum file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("quorum file {path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("controller listener {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid quorum settings: {0}")]
    Config(#[source] Box<openraft::ConfigError>),
    #[error("controller {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("controller {addr}: {source}")]
    Transport {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("controller {addr}: a frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { addr: String, size: u64, max: u64 },
    #[error("controller {addr}: a frame is not valid JSON for its message: {source}")]
    Decode {
        addr: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("controller {addr}: no answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    #[error("controller {addr} answered a different request than the one sent")]
    UnexpectedResponse { addr: String },
    #[error("node {node_id} cannot initialize the quorum: {source}")]
    Initialize {
        node_id: RaftNodeId,
        #[source]
        source: Box<
            openraft::error::RaftError<
                RaftNodeId,
                openraft::error::InitializeError<RaftNodeId, openraft::BasicNode>,
            >,
        >,
    },
    #[error("node {node_id}: the write was refused: {source}")]
    Write {
        node_id: RaftNodeId,
        #[source]
        source: Box<
            openraft::error::RaftError<
                RaftNodeId,
                openraft::error::ClientWriteError<RaftNodeId, openraft::BasicNode>,
            >,
        >,
    },
    #[error(
        "node {node_id}: no leader was reachable within {waited_ms} ms (last known: {leader:?})"
    )]
    NoLeader {
        node_id: RaftNodeId,
        leader: Option<RaftNodeId>,
        waited_ms: u64,
    },
    #[error("node {node_id}: raft stopped: {source}")]
    Stopped {
        node_id: RaftNodeId,
        #[source]
        source: Box<openraft::error::Fatal<RaftNodeId>>,
    },
    #[error("a blocking quorum file task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

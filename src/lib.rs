//! spool: a Kafka-compatible broker.
//!
//! A map of the crate, in the order a request flows (dependencies point down this list):
//!
//! - [`server`]: the listener (bounded connections) and one session per connection: frames in,
//!   responses out, in order. Knows nothing about topics.
//! - [`protocol`]: frame bounds, decoding through the pinned and patched `kafka-protocol`
//!   crate, the route table that drives both dispatch and ApiVersions, and the single mapping
//!   from spool errors to Kafka error codes.
//! - [`handlers`]: one module per Kafka API, each a `handle` function from a decoded request to
//!   a `Reply`; never touches a socket.
//! - [`group`]: the consumer group coordinator and committed offsets (`__consumer_offsets`),
//!   transactional offsets included.
//! - [`txn`]: per-partition producer state (idempotence, open transactions, the last stable
//!   offset), producer id allocation, and the transaction coordinator (`__transaction_state`,
//!   markers, timeouts). The coordinator calls partitions and the group coordinator.
//! - [`replication`]: the metadata image made real on this node: the reconciler opens and
//!   removes local partitions and gives each its role (leader, follower) and epoch; follower
//!   fetchers; ISR changes proposed by leaders; topic administration through the quorum
//!   (`replication::admin`).
//! - [`partition`]: partitions: append as leader (producer checks, transaction markers) or as
//!   follower, truncation, follower progress, ISR and high watermark, reads up to the high
//!   watermark or last stable offset, acks=-1 waits, group-committed fsync, fetch wake-ups; and
//!   the local topic catalog (`TopicManager`).
//! - [`cluster`]: the cluster metadata quorum on openraft: the replicated log of metadata
//!   commands, the metadata image every node applies (with the election rules), node
//!   registration, heartbeats and fencing, the controller RPC.
//! - [`net`]: outgoing connections between nodes.
//! - [`log`]: segments (`.log`, `.index`, `.timeindex`, `.txnindex`), the v2 batch header,
//!   recovery, retention. Knows nothing about the wire protocol.
//! - [`model`]: small shared types. [`ratelog`]: rate-limited warnings for refusals a peer causes.
//! - [`config`]: loading and validating `config/spool.toml`, Kafka's config names and defaults,
//!   per-topic overrides.
//! - [`broker`]: builds and wires all of the above; start and graceful shutdown.
//! - [`cli`]: the `spool` command line: `serve`, and the console tools (`produce`, `consume`,
//!   `topic`, `group`, `txn`), which are Kafka clients (librdkafka, or a small protocol client
//!   for the transaction admin calls) and use nothing of the broker.
//!
//! The produce path: `server::session` reads a frame → `protocol::codec::decode` →
//! `handlers::produce` → `partition::Partition::append_as_leader` → `log::Log::append` →
//! `log::segment::Segment::append`; acks=-1 then awaits `Partition::wait_for_isr` (followers'
//! fetches, `handlers::fetch` with a replica id, move the high watermark) and, in durable mode,
//! `Partition::flush_to`, before the session writes the response.
//!
//! The metadata path: a handler (CreateTopics, say) → `replication::admin` →
//! `cluster::Controller::propose` → Raft → every node's `cluster::image` → `replication`'s
//! reconciler → `partition::manager::TopicManager::apply` and `Partition::apply_assignment`.

pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod group;
pub mod handlers;
pub mod log;
pub mod metrics;
pub mod model;
pub mod net;
pub mod partition;
pub mod protocol;
pub mod ratelog;
pub mod replication;
pub mod server;
pub mod txn;

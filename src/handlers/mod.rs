//! One module per Kafka API, each with one `handle` function that takes the decoded request and
//! returns a `Reply`. Handlers never touch the socket, so they are tested without one.

pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
pub mod cluster_view;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_log_dirs;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod group;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl;
pub mod scram_credentials;
pub mod txn;

use kafka_protocol::protocol::StrBytes;

/// `authorized_operations` bitfield value meaning "not requested".
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// ACL operation codes (Kafka's `AclOperation`), as bits of an authorized-operations field.
fn operations_bits(ops: &[u8]) -> i32 {
    ops.iter().fold(0, |acc, op| acc | (1 << op))
}

/// Everything a client may do to a topic: with no authorizer configured, all of it.
pub fn topic_operations() -> i32 {
    // READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS
    operations_bits(&[3, 4, 5, 6, 7, 8, 10, 11])
}

/// Everything a client may do to the cluster: with no authorizer configured, all of it.
pub fn cluster_operations() -> i32 {
    // CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE
    operations_bits(&[5, 7, 8, 9, 10, 11, 12])
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

//! The one place spool errors become Kafka error codes. Every match is exhaustive: a new error
//! variant does not compile until it is given its code here.

use crate::cluster::{ClusterError, Rejection};
use crate::log::batch::BatchError;
use crate::log::LogError;
use crate::partition::manager::TopicError;
use crate::partition::PartitionError;
use crate::txn::producer_state::ProducerError;
use kafka_protocol::ResponseError;

pub fn batch(e: &BatchError) -> ResponseError {
    match e {
        BatchError::Truncated(_) | BatchError::CrcMismatch { .. } | BatchError::Corrupt(_) => {
            ResponseError::CorruptMessage
        }
        BatchError::UnsupportedMagic(_) | BatchError::Invalid(_) => ResponseError::InvalidRecord,
        BatchError::RecordTooLarge { .. } | BatchError::UncompressedTooLarge { .. } => {
            ResponseError::MessageTooLarge
        }
    }
}

pub fn log(e: &LogError) -> ResponseError {
    match e {
        LogError::Io { .. } | LogError::Corrupt { .. } => ResponseError::KafkaStorageError,
        LogError::Batch(b) => batch(b),
        LogError::TooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
    }
}

pub fn producer(e: &ProducerError) -> ResponseError {
    match e {
        ProducerError::InvalidEpoch { .. } => ResponseError::InvalidProducerEpoch,
        ProducerError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
    }
}

pub fn partition(e: &PartitionError) -> ResponseError {
    match e {
        PartitionError::Log { source, .. } => log(source),
        PartitionError::Producer { source, .. } => producer(source),
        PartitionError::NotOneBatch { .. } => ResponseError::InvalidRecord,
        PartitionError::Offline { .. } | PartitionError::Sync { .. } => {
            ResponseError::KafkaStorageError
        }
        PartitionError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
        PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        PartitionError::NotEnoughReplicasAfterAppend { .. } => {
            ResponseError::NotEnoughReplicasAfterAppend
        }
        PartitionError::ReplicationTimeout { .. } => ResponseError::RequestTimedOut,
    }
}

pub fn topic(e: &TopicError) -> ResponseError {
    match e {
        TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists,
        TopicError::InvalidName { .. } => ResponseError::InvalidTopicException,
        TopicError::InvalidPartitions(_) | TopicError::TooManyPartitions { .. } => {
            ResponseError::InvalidPartitions
        }
        // Kafka's answer to a request that a broker-side policy refuses.
        TopicError::OverCapacity { .. } => ResponseError::PolicyViolation,
        TopicError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        TopicError::NotAvailable(_) => ResponseError::RequestTimedOut,
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::DeletionDisabled => ResponseError::TopicDeletionDisabled,
        TopicError::FewerPartitions { .. } | TopicError::SamePartitions(_) => {
            ResponseError::InvalidPartitions
        }
        TopicError::InvalidRequest(_) | TopicError::Protected(_) => ResponseError::InvalidRequest,
        TopicError::Storage { .. } => ResponseError::KafkaStorageError,
        TopicError::Partition(p) => partition(p),
    }
}

/// A metadata command the quorum refused, as Kafka's controller answers the same refusal.
pub fn rejection(r: &Rejection) -> ResponseError {
    match r {
        Rejection::TopicExists { .. } | Rejection::TopicIdExists { .. } => {
            ResponseError::TopicAlreadyExists
        }
        Rejection::UnknownTopic { .. } | Rejection::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        // Naming an unregistered node is an invalid assignment (Kafka's
        // `validateManualPartitionAssignment`).
        Rejection::UnknownNode { .. } | Rejection::InvalidReplicaAssignment { .. } => {
            ResponseError::InvalidReplicaAssignment
        }
        Rejection::StaleEpoch { .. } | Rejection::FencedLeaderEpoch { .. } => {
            ResponseError::FencedLeaderEpoch
        }
        Rejection::LeaderNotInIsr { .. }
        | Rejection::InvalidIsr { .. }
        | Rejection::InvalidTopicId { .. } => ResponseError::InvalidRequest,
        Rejection::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
        Rejection::InvalidUpdateVersion { .. } => ResponseError::InvalidUpdateVersion,
        Rejection::IneligibleReplica { .. } => ResponseError::IneligibleReplica,
        Rejection::ElectionNotNeeded { .. } => ResponseError::ElectionNotNeeded,
        Rejection::PreferredLeaderNotAvailable { .. } => ResponseError::PreferredLeaderNotAvailable,
        Rejection::NoReassignmentInProgress { .. } => ResponseError::NoReassignmentInProgress,
        Rejection::ReplicationFactorChange { .. } => ResponseError::InvalidReplicationFactor,
        Rejection::UnknownScramCredential { .. } => ResponseError::ResourceNotFound,
        Rejection::InvalidProducerIdBlock { .. } | Rejection::StaleFence { .. } => {
            ResponseError::InvalidRequest
        }
    }
}

/// A metadata command that got no answer from the quorum: it may or may not have been applied,
/// which Kafka's controller answers as a timeout.
pub fn quorum(_: &ClusterError) -> ResponseError {
    ResponseError::RequestTimedOut
}

/// The code to put on the wire for an optional error.
pub fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

//! The one place spool errors become Kafka error codes. Every match is exhaustive: a new error
//! variant does not compile until it is given its code here.

use crate::log::batch::BatchError;
use crate::log::LogError;
use crate::partition::manager::TopicError;
use crate::partition::PartitionError;
use crate::txn::producer_state::ProducerError;
use kafka_protocol::ResponseError;

pub fn batch(e: &BatchError) -> ResponseError {
    match e {
        BatchError::Truncated(_) | BatchError::CrcMismatch { .. } => ResponseError::CorruptMessage,
        BatchError::UnsupportedMagic(_) | BatchError::Invalid(_) => ResponseError::InvalidRecord,
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
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        TopicError::NotAvailable(_) => ResponseError::RequestTimedOut,
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::DeletionDisabled => ResponseError::TopicDeletionDisabled,
        TopicError::FewerPartitions { .. } | TopicError::SamePartitions(_) => {
            ResponseError::InvalidPartitions
        }
        TopicError::InvalidRequest(_) => ResponseError::InvalidRequest,
        TopicError::Storage { .. } => ResponseError::KafkaStorageError,
        TopicError::Partition(p) => partition(p),
    }
}

/// The code to put on the wire for an optional error.
pub fn code(e: Option<ResponseError>) -> i16 {
    e.map_or(0, |e| e.code())
}

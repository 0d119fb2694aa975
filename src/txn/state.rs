//! A transactional id's state as the coordinator keeps it (Kafka's `TransactionMetadata`).

use crate::model::TopicPartition;
use std::collections::BTreeSet;

/// Kafka's transaction states, numbered as stored in `__transaction_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnState {
    pub fn from_i8(v: i8) -> Option<Self> {
        Some(match v {
            0 => Self::Empty,
            1 => Self::Ongoing,
            2 => Self::PrepareCommit,
            3 => Self::PrepareAbort,
            4 => Self::CompleteCommit,
            5 => Self::CompleteAbort,
            6 => Self::Dead,
            7 => Self::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
            Self::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        (0..=7)
            .filter_map(Self::from_i8)
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// A commit or abort is decided but its markers are not all written.
    pub fn is_prepared(self) -> bool {
        matches!(self, Self::PrepareCommit | Self::PrepareAbort)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Partitions in the current transaction (data partitions and offsets partitions).
    pub partitions: BTreeSet<TopicPartition>,
    /// When the current transaction started (-1 when none is ongoing).
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// The producer id and epoch before the last InitProducerId bump, so a retried
    /// InitProducerId whose answer was lost is recognised (KIP-360). Kept in memory only.
    pub previous: Option<(i64, i16)>,
}

//! The transaction APIs: the coordinator side (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
//! DescribeTransactions, ListTransactions), the group side (TxnOffsetCommit) and the partition
//! side (WriteTxnMarkers, DescribeProducers).

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod describe_producers;
pub mod describe_transactions;
pub mod end_txn;
pub mod list_transactions;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use crate::txn::coordinator::code;

/// Clients older than KIP-588 do not know PRODUCER_FENCED: they get INVALID_PRODUCER_EPOCH,
/// as Kafka answers them. `first_with_fenced` is the API version that introduced it.
pub fn for_version(error: i16, version: i16, first_with_fenced: i16) -> i16 {
    if error == code::PRODUCER_FENCED && version < first_with_fenced {
        code::INVALID_PRODUCER_EPOCH
    } else {
        error
    }
}

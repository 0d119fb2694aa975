//! A partition's side of transactions: which producers have a transaction open here (for
//! KIP-890's check), the producers DescribeProducers shows, and commit/abort markers written as
//! leader, with aborted transactions indexed for read_committed readers.

use super::{Partition, PartitionError, PartitionState, TxnProbe};
use crate::log::batch::{self, BatchHeader, Marker};
use crate::log::txn_index::AbortedTxn;
use crate::log::LogError;
use crate::model::now_ms;
use crate::txn::producer_state::{CompletedTxn, ProducerView};

impl Partition {
    /// For a transactional batch: its producer and whether it already has a transaction here.
    pub fn txn_probe(&self, records: &[u8]) -> Option<TxnProbe> {
        let h = BatchHeader::parse(records)?;
        if !h.is_transactional() || h.is_control() || h.producer_id() < 0 {
            return None;
        }
        Some(TxnProbe {
            producer_id: h.producer_id(),
            epoch: h.producer_epoch(),
            in_transaction: self.state().producers.in_transaction(h.producer_id()),
        })
    }
    /// The producers this partition knows, for DescribeProducers.
    pub fn producers(&self) -> Vec<ProducerView> {
        self.state().producers.views()
    }

    /// Writes a transaction marker for `producer_id` as leader (WriteTxnMarkers): closes the
    /// producer's transaction here and, for an abort, indexes the aborted range. Returns the
    /// offset after the marker, which must be durable before the marker counts as written.
    pub fn write_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        coordinator_epoch: i32,
    ) -> Result<i64, PartitionError> {
        self.check_online()?;
        self.check_leader()?;
        let mut st = self.state();
        st.producers
            .check_marker(producer_id, epoch)
            .map_err(|source| PartitionError::Producer {
                tp: self.tp.clone(),
                source,
            })?;
        let now = now_ms();
        let mut bytes = batch::marker_batch(producer_id, epoch, marker, coordinator_epoch, now);
        let info = st
            .log
            .append(&mut bytes, self.leader_epoch(), now)
            .map_err(|e| self.log_err(e))?;
        let done = st.producers.complete_txn(
            producer_id,
            epoch,
            marker,
            info.base_offset,
            coordinator_epoch,
            now,
        );
        let hw_after = info.last_offset + 1;
        if let Some(done) = done {
            index_completed(&mut st, done, hw_after).map_err(|e| self.log_err(e))?;
        }
        st.unflushed_messages += 1;
        drop(st);
        self.advance_high_watermark();
        self.wake_fetchers();
        Ok(hw_after)
    }
}

/// Indexes a transaction a marker closed, when it was aborted. `hw` is the high watermark just
/// after the marker; the stable offset after it is recorded with the entry.
pub(super) fn index_completed(
    st: &mut PartitionState,
    done: CompletedTxn,
    hw: i64,
) -> Result<(), LogError> {
    if done.marker != Marker::Abort {
        return Ok(());
    }
    let last_stable_offset = st.producers.last_stable_offset(hw);
    st.log.add_aborted_txn(AbortedTxn {
        producer_id: done.producer_id,
        first_offset: done.first_offset,
        last_offset: done.marker_offset,
        last_stable_offset,
    })
}

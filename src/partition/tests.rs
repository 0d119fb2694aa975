//! Tests of a partition's transactions: the last stable offset, markers, and the aborted
//! transaction index across a crash.

use super::*;
use crate::log::batch::tests::make_batch;

/// This node (1) leads the partition alone, as the metadata would say for a single node.
fn lead_alone(p: &Partition) {
    p.apply_assignment(&replication::Assignment {
        leader: Some(1),
        leader_epoch: 0,
        partition_epoch: 0,
        replicas: vec![1],
        isr: vec![1],
    })
    .unwrap();
}

fn config() -> LogConfig {
    LogConfig::for_tests(1 << 20)
}

/// A transactional batch: `make_batch` with the transactional attribute and a fresh CRC.
fn txn_batch(count: i32, pid: i64, epoch: i16, seq: i32) -> Bytes {
    let mut b = make_batch(0, count, 1000, (pid, epoch, seq));
    b[21..23].copy_from_slice(&(1i16 << 4).to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

#[test]
fn aborted_transactions_are_indexed_and_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("t", 0);
    let (p, _) = Partition::open(tp.clone(), dir.path(), config(), true, 1).unwrap();
    lead_alone(&p);
    p.append_as_leader(&Bytes::from(make_batch(0, 1, 1000, (-1, -1, -1))))
        .unwrap();
    p.append_as_leader(&txn_batch(2, 7, 0, 0)).unwrap();
    p.append_as_leader(&Bytes::from(make_batch(0, 1, 1000, (-1, -1, -1))))
        .unwrap();
    assert_eq!(p.last_stable_offset(), 1);
    let r = p
        .read_isolated(0, 1 << 20, Isolation::ReadCommitted)
        .unwrap();
    assert_eq!(r.aborted, Some(vec![]));
    let end = p.write_marker(7, 0, Marker::Abort, 0).unwrap();
    assert_eq!((end, p.last_stable_offset()), (5, 5));
    let r = p
        .read_isolated(0, 1 << 20, Isolation::ReadCommitted)
        .unwrap();
    let aborted = r.aborted.unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].first_offset, aborted[0].last_offset), (1, 4));
    // A crash: no checkpoint, no clean shutdown; the index is rebuilt by replay.
    drop(p);
    let (p, _) = Partition::open(tp, dir.path(), config(), false, 1).unwrap();
    lead_alone(&p);
    assert_eq!(p.last_stable_offset(), 5);
    let r = p
        .read_isolated(0, 1 << 20, Isolation::ReadCommitted)
        .unwrap();
    assert_eq!(r.aborted.unwrap().len(), 1);
    assert_eq!(p.read(0, 1 << 20).unwrap().log_start_offset, 0);
}

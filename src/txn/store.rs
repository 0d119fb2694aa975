//! Transaction state on disk: records in the internal topic `__transaction_state`, in Kafka's
//! layouts (TransactionLogKey v0: `version:i16 transactional_id:string`; TransactionLogValue v0:
//! `version:i16 producer_id:i64 producer_epoch:i16 transaction_timeout_ms:i32 status:i8
//! partitions:[topic:string partition_ids:[i32]] last_update_timestamp_ms:i64
//! start_timestamp_ms:i64`), one record per batch, a null value as tombstone. A transactional id
//! lives in partition `abs(java_hash(id)) % partitions`, as in Kafka.

use super::state::{TxnMetadata, TxnState};
use crate::group::store::Reader;
use crate::model::TopicPartition;
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::BTreeSet;

pub const TXN_TOPIC: &str = "__transaction_state";

fn put_string(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

pub fn key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    put_string(&mut b, transactional_id);
    b.freeze()
}

pub fn value(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state as i8);
    let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in &m.partitions {
        match by_topic.last_mut() {
            Some((t, ps)) if *t == tp.topic => ps.push(tp.partition),
            _ => by_topic.push((&tp.topic, vec![tp.partition])),
        }
    }
    b.put_i32(by_topic.len() as i32);
    for (topic, ps) in by_topic {
        put_string(&mut b, topic);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(p);
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

/// The transactional id of a key (`None` for unknown versions).
pub fn decode_key(key: &[u8]) -> Option<String> {
    let mut r = Reader::new(key);
    (r.i16()? == 0).then_some(())?;
    r.string()
}

/// A stored transaction, or `None` when the bytes are not a known value layout.
pub fn decode_value(transactional_id: &str, value: &[u8]) -> Option<TxnMetadata> {
    let mut r = Reader::new(value);
    let version = r.i16()?;
    if version != 0 {
        return None;
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let state = TxnState::from_i8(r.i8()?)?;
    let topics = r.i32()?;
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.clamp(0, 1 << 20) {
        let topic = r.string()?;
        let n = r.i32()?;
        for _ in 0..n.clamp(0, 1 << 20) {
            partitions.insert(TopicPartition::new(topic.clone(), r.i32()?));
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    Some(TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
        previous: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trip() {
        let m = TxnMetadata {
            transactional_id: "t".into(),
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [
                TopicPartition::new("a", 0),
                TopicPartition::new("a", 2),
                TopicPartition::new("b", 1),
            ]
            .into_iter()
            .collect(),
            start_ms: 10,
            last_update_ms: 20,
            previous: None,
        };
        assert_eq!(decode_key(&key("t")).as_deref(), Some("t"));
        let back = decode_value("t", &value(&m)).unwrap();
        assert_eq!(back, m);
    }
}

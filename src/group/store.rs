//! Group state on disk: records in the internal topic `__consumer_offsets`, in Kafka's layouts
//! (OffsetCommitKey v1 / OffsetCommitValue v1 and v3, GroupMetadataKey v2 / GroupMetadataValue
//! v3), one v2 batch per write, a null value as tombstone. A group lives in partition
//! `abs(java_hash(group)) % partitions`, as in Kafka.

use super::state::CommittedOffset;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
const OFFSET_KEY: i16 = 1;
const GROUP_KEY: i16 = 2;

/// Java's `String.hashCode` over UTF-16 code units, and Kafka's `Utils.abs`.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// Bounds-checked big-endian reads of Kafka's non-flexible types.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.buf.get(..n)?, self.buf.get(n..)?);
        self.buf = rest;
        Some(head)
    }
    pub fn i8(&mut self) -> Option<i8> {
        Some(self.take(1)?[0] as i8)
    }
    pub fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    pub fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    pub fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    pub fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        Some(Some(
            String::from_utf8(self.take(len as usize)?.to_vec()).ok()?,
        ))
    }
    pub fn string(&mut self) -> Option<String> {
        self.nullable_string()?
    }
    pub fn bytes(&mut self) -> Option<Bytes> {
        let len = self.i32()?;
        if len < 0 {
            return Some(Bytes::new());
        }
        Some(Bytes::copy_from_slice(self.take(len as usize)?))
    }
}

fn put_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => {
            b.put_i16(s.len() as i16);
            b.put_slice(s.as_bytes());
        }
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

/// A member as stored in GroupMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group as stored in GroupMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub state_since_ms: i64,
    pub members: Vec<MemberRecord>,
}

/// One decoded record of the offsets topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<GroupRecord>,
    },
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(OFFSET_KEY);
    put_string(&mut b, Some(group));
    put_string(&mut b, Some(topic));
    b.put_i32(partition);
    b.freeze()
}

pub fn offset_value(o: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::new();
    if o.expire_timestamp >= 0 {
        b.put_i16(1);
        b.put_i64(o.offset);
        put_string(&mut b, Some(&o.metadata));
        b.put_i64(o.commit_timestamp);
        b.put_i64(o.expire_timestamp);
    } else {
        b.put_i16(3);
        b.put_i64(o.offset);
        b.put_i32(o.leader_epoch);
        put_string(&mut b, Some(&o.metadata));
        b.put_i64(o.commit_timestamp);
    }
    b.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_KEY);
    put_string(&mut b, Some(group));
    b.freeze()
}

pub fn group_value(g: &GroupRecord) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    put_string(&mut b, Some(&g.protocol_type));
    b.put_i32(g.generation_id);
    put_string(&mut b, g.protocol_name.as_deref());
    put_string(&mut b, g.leader.as_deref());
    b.put_i64(g.state_since_ms);
    b.put_i32(g.members.len() as i32);
    for m in &g.members {
        put_string(&mut b, Some(&m.member_id));
        put_string(&mut b, m.instance_id.as_deref());
        put_string(&mut b, Some(&m.client_id));
        put_string(&mut b, Some(&m.client_host));
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// Decodes a record; `None` for record types spool does not keep (or damaged ones).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<Stored> {
    let mut k = Reader::new(key);
    match k.i16()? {
        0 | OFFSET_KEY => {
            let (group, topic, partition) = (k.string()?, k.string()?, k.i32()?);
            let value = match value {
                None => None,
                Some(v) => Some(decode_offset(v)?),
            };
            Some(Stored::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        GROUP_KEY => {
            let group = k.string()?;
            let value = match value {
                None => None,
                Some(v) => Some(decode_group(v)?),
            };
            Some(Stored::Group { group, value })
        }
        _ => None,
    }
}

fn decode_offset(v: &[u8]) -> Option<CommittedOffset> {
    let mut r = Reader::new(v);
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

fn decode_group(v: &[u8]) -> Option<GroupRecord> {
    let mut r = Reader::new(v);
    let version = r.i16()?;
    let protocol_type = r.string()?;
    let generation_id = r.i32()?;
    let protocol_name = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let state_since_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    if count < 0 || count as usize > v.len() {
        return None;
    }
    let mut members = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let member_id = r.string()?;
        let instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        members.push(MemberRecord {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(GroupRecord {
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        state_since_ms,
        members,
    })
}

/// Calls `f` with every record of an internal topic's partition, in offset order, up to its high
/// watermark. A batch that does not decode ends the replay of that partition (logged).
pub fn for_each_record(
    partition: &crate::partition::Partition,
    mut f: impl FnMut(Record),
) -> Result<(), crate::partition::PartitionError> {
    let mut offset = partition.log_start_offset();
    let end = partition.high_watermark();
    let mut rounds = 0u64;
    while offset < end && rounds < u32::MAX as u64 {
        rounds += 1;
        let Some(records) = partition.read(offset, 1 << 20)?.records else {
            break;
        };
        let before = offset;
        for (at, h) in crate::log::batch::batches(&records) {
            let one = &records[at..at + h.total_len()];
            let decoded = match crate::log::records::decode_for_encoder(one) {
                Ok(decoded) => decoded,
                Err(e) => {
                    tracing::error!(partition = %partition.tp(), offset = h.base_offset(), error = %e, "internal topic batch does not decode; stopping its replay");
                    return Ok(());
                }
            };
            offset = offset.max(h.last_offset() + 1);
            decoded.into_iter().for_each(&mut f);
        }
        if offset == before {
            break;
        }
    }
    Ok(())
}

/// One v2 batch of (key, value) records; a `None` value is a tombstone.
pub fn batch(records: &[(Bytes, Option<Bytes>)], now_ms: i64) -> Bytes {
    producer_batch(records, now_ms, None)
}

/// One v2 batch written for a transactional producer `(producer id, epoch)`: marked
/// transactional, without sequence numbers (as Kafka writes TxnOffsetCommit records).
pub fn producer_batch(
    records: &[(Bytes, Option<Bytes>)],
    now_ms: i64,
    producer: Option<(i64, i16)>,
) -> Bytes {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: producer.is_some(),
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence is constant; the
            // batch's base sequence is -1 (no producer).
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(k.clone()),
            value: v.clone(),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encoding in-memory records cannot fail");
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash() {
        // "hello".hashCode() == 99162322; 99162322 % 50 == 22
        assert_eq!(partition_for("hello", 50), 22);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE, and Utils.abs maps it to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
    }

    #[test]
    fn records_round_trip() {
        let o = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 7,
            expire_timestamp: -1,
        };
        let got = decode(&offset_key("g", "t", 2), Some(&offset_value(&o)));
        assert_eq!(
            got,
            Some(Stored::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 2,
                value: Some(o.clone())
            })
        );
        let expiring = CommittedOffset {
            expire_timestamp: 99,
            leader_epoch: -1,
            ..o
        };
        let got = decode(&offset_key("g", "t", 2), Some(&offset_value(&expiring)));
        assert!(matches!(got, Some(Stored::Offset { value: Some(v), .. }) if v == expiring));
        let g = GroupRecord {
            protocol_type: "consumer".into(),
            generation_id: 4,
            protocol_name: Some("range".into()),
            leader: Some("m1".into()),
            state_since_ms: 5,
            members: vec![MemberRecord {
                member_id: "m1".into(),
                instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 10,
                session_timeout_ms: 20,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(
            decode(&group_key("g"), Some(&group_value(&g))),
            Some(Stored::Group {
                group: "g".into(),
                value: Some(g)
            })
        );
        assert_eq!(
            decode(&group_key("g"), None),
            Some(Stored::Group {
                group: "g".into(),
                value: None
            })
        );
        assert_eq!(decode(&[0, 9, 1], None), None);
        assert_eq!(decode(&offset_key("g", "t", 1)[..5], None), None);
    }
}

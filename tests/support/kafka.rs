//! Building Kafka requests for raw protocol tests.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Who writes a batch: (producer id, epoch, first sequence); `None` for a plain producer.
pub type Writer = Option<(i64, i16, i32)>;

/// One v2 batch of `values` at `timestamp`, optionally compressed.
pub fn batch_with(
    values: &[&str],
    timestamp: i64,
    writer: Writer,
    compression: Compression,
) -> Bytes {
    encode(&records(values, timestamp, writer), compression)
}

/// One uncompressed transactional batch of `values` by producer `(id, epoch, first sequence)`.
pub fn txn_batch(values: &[&str], writer: (i64, i16, i32)) -> Bytes {
    let mut records = records(values, now_ms(), Some(writer));
    for r in &mut records {
        r.transactional = true;
    }
    encode(&records, Compression::None)
}

fn records(values: &[&str], timestamp: i64, writer: Writer) -> Vec<Record> {
    let (pid, epoch, first_seq) = writer.unwrap_or((-1, -1, -1));
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence stays constant.
            sequence: first_seq + i as i32,
            timestamp: timestamp + i as i64,
            key: Some(Bytes::copy_from_slice(format!("key-{v}").as_bytes())),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect()
}

fn encode(records: &[Record], compression: Compression) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn batch(values: &[&str], timestamp: i64) -> Bytes {
    batch_with(values, timestamp, None, Compression::None)
}

pub fn produce(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

pub fn create(topic: &str, partitions: i32, configs: &[(&str, &str)]) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )])
}

/// CreatePartitions growing `topic` to `count` partitions.
pub fn create_partitions(topic: &str, count: i32) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(count),
        ])
}

pub fn fetch(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 * 1024 * 1024)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)])])
}

pub fn list_offsets(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])])
}

/// (base offset, record values) of each batch in fetched record bytes.
pub fn decode_batches(mut records: Bytes) -> Vec<(i64, Vec<String>)> {
    let mut out = Vec::new();
    for set in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).unwrap() {
        let base = set.records.first().map_or(-1, |r| r.offset);
        let values = set
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string())
            .collect();
        out.push((base, values));
    }
    out
}

/// A v2 batch header around a hand-made `payload` claiming `count` records and compression
/// `codec`, with a correct length and CRC: for batches no encoder would write.
pub fn raw_batch(payload: &[u8], count: i32, codec: i16, timestamp: i64) -> Bytes {
    let mut b = Vec::with_capacity(61 + payload.len());
    b.extend(0i64.to_be_bytes());
    b.extend(((49 + payload.len()) as i32).to_be_bytes());
    b.extend(0i32.to_be_bytes());
    b.push(2);
    b.extend(0u32.to_be_bytes());
    b.extend(codec.to_be_bytes());
    b.extend((count.max(1) - 1).to_be_bytes());
    b.extend(timestamp.to_be_bytes());
    b.extend(timestamp.to_be_bytes());
    b.extend((-1i64).to_be_bytes());
    b.extend((-1i16).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.extend(count.to_be_bytes());
    b.extend(payload);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// A zigzag varint, as records encode their lengths and deltas.
pub fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One hand-made record: a key, a one-byte value and a raw header count followed by `tail`.
pub fn raw_record(offset_delta: i64, key: &[u8], header_count: i64, tail: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    varint(&mut body, 0);
    varint(&mut body, offset_delta);
    varint(&mut body, key.len() as i64);
    body.extend(key);
    varint(&mut body, 1);
    body.push(b'x');
    varint(&mut body, header_count);
    body.extend(tail);
    let mut out = Vec::new();
    varint(&mut out, body.len() as i64);
    out.extend(body);
    out
}

//! Log compaction end to end: a real spool process, librdkafka as the producer and consumer.
//! 100,000 records over 1,000 keys, then tombstones for 100 of them; once the cleaner has run,
//! a consumer from the beginning sees exactly the latest value of each live key, in offset
//! order, and no tombstone older than delete.retention.ms; the result survives a SIGKILL.

mod support;

use kafka_protocol::messages::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::TopicPartitionList;
use std::time::{Duration, Instant};
use support::kafka;
use support::rdk::{self, Deliveries};
use support::{wait_for, Raw, Spool};

const RECORDS: usize = 100_000;
const KEYS: usize = 1_000;
const DELETED: usize = 100;
const DELETE_RETENTION_MS: u64 = 3_000;

/// Every record of partition 0 from the beginning to the high watermark: (offset, key, value).
fn read_all(addr: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("log_level", "3")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                m.payload().map(|p| String::from_utf8_lossy(p).into_owned()),
            )),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    panic!("reading {topic} did not reach its end within 60 s");
}

/// What a fully compacted read must be: each live key once, with its last value, then `end`.
fn expected() -> Vec<(String, Option<String>)> {
    let mut live: Vec<(usize, String, Option<String>)> = (DELETED..KEYS)
        .map(|k| {
            let last = RECORDS - KEYS + k;
            (last, format!("k{k}"), Some(format!("v{last}")))
        })
        .collect();
    live.sort();
    let mut out: Vec<(String, Option<String>)> = live.into_iter().map(|(_, k, v)| (k, v)).collect();
    out.push(("end".into(), Some("sentinel".into())));
    out
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_drops_old_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Spool::start(dir.path(), &["--set", "log_cleaner_backoff_ms=200"]);
    let mut c = Raw::connect(&broker.addr);
    let retention = DELETE_RETENTION_MS.to_string();
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "131072"),
        ("segment.ms", "1000"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", retention.as_str()),
    ];
    let created: CreateTopicsResponse =
        c.request(ApiKey::CreateTopics, 5, &kafka::create("c", 1, &configs));
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);

    // A compacted topic refuses records without a key (Kafka: INVALID_RECORD).
    let no_key = {
        use kafka_protocol::records::*;
        let r = Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: kafka::now_ms(),
            key: None,
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: Default::default(),
            delete_horizon: false,
        };
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &[r],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    };
    let r: ProduceResponse = c.request(ApiKey::Produce, 9, &kafka::produce("c", 0, 1, no_key));
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 87,
        "INVALID_RECORD"
    );

    let deliveries = Deliveries::default();
    let producer = rdk::producer(
        &broker.addr,
        &[
            ("acks", "all"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
        ],
        &deliveries,
    );
    let send = |key: &str, value: Option<&str>| {
        let mut record: BaseRecord<'_, str, str> = BaseRecord::to("c").key(key).partition(0);
        if let Some(v) = value {
            record = record.payload(v);
        }
        let mut record = Some(record);
        let ok = wait_for(Duration::from_secs(30), || {
            match producer.send(record.take().unwrap()) {
                Ok(()) => Some(()),
                Err((_, back)) => {
                    record = Some(back);
                    producer.poll(Duration::from_millis(10));
                    None
                }
            }
        });
        assert!(ok.is_some(), "producer queue stayed full");
    };
    for i in 0..RECORDS {
        send(&format!("k{}", i % KEYS), Some(&format!("v{i}")));
    }
    for k in 0..DELETED {
        send(&format!("k{k}"), None);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let tombstones_at = Instant::now();
    assert!(deliveries.failed.lock().unwrap().is_empty());
    assert_eq!(deliveries.acked.lock().unwrap().len(), RECORDS + DELETED);

    // Once the tombstones are older than delete.retention.ms (and segment.ms has passed), one
    // more record rolls the segment holding them, so the cleaner may take them.
    let wait = Duration::from_millis(DELETE_RETENTION_MS + 1_500);
    assert!(wait_for(wait * 2, || (tombstones_at.elapsed() >= wait).then_some(())).is_some());
    send("end", Some("sentinel"));
    producer.flush(Duration::from_secs(30)).unwrap();

    let want = expected();
    let compacted = wait_for(Duration::from_secs(90), || {
        let got = read_all(&broker.addr, "c");
        let pairs: Vec<(String, Option<String>)> =
            got.iter().map(|(_, k, v)| (k.clone(), v.clone())).collect();
        (pairs == want).then_some(got)
    });
    let Some(got) = compacted else {
        let got = read_all(&broker.addr, "c");
        panic!(
            "not compacted within 90 s: {} records read, {} tombstones; log:\n{}",
            got.len(),
            got.iter().filter(|r| r.2.is_none()).count(),
            broker.log_tail()
        );
    };
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "offset order");
    assert_eq!(
        got.last().unwrap().0,
        (RECORDS + DELETED) as i64,
        "offsets are kept"
    );

    // The compacted log survives a crash as it is.
    broker.kill9();
    broker.restart();
    let after: Vec<(String, Option<String>)> = read_all(&broker.addr, "c")
        .into_iter()
        .map(|(_, k, v)| (k, v))
        .collect();
    assert_eq!(after, want);
    let listed: ListOffsetsResponse = Raw::connect(&broker.addr).request(
        ApiKey::ListOffsets,
        7,
        &kafka::list_offsets("c", 0, -1),
    );
    assert_eq!(
        listed.topics[0].partitions[0].offset,
        (RECORDS + DELETED + 1) as i64
    );
}

//! Produce, Fetch and ListOffsets over the wire: offsets, limits, long polls woken by appends,
//! idempotent retries and gaps, pipelining, timestamps, and state across restarts.

mod support;

use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;
use std::time::{Duration, Instant};
use support::kafka::{batch, batch_with, create, decode_batches, fetch, list_offsets, produce};
use support::{Raw, Spool};

fn produced(r: &ProduceResponse) -> (i16, i64) {
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn setup(extra: &[&str]) -> (tempfile::TempDir, Spool, Raw) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), extra);
    let mut c = Raw::connect(&spool.addr);
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &create("t", 1, &[]));
    assert_eq!(r.topics[0].error_code, 0);
    (dir, spool, c)
}

#[test]
fn offsets_are_assigned_in_order_and_fetched_back_as_whole_batches() {
    let (_dir, _spool, mut c) = setup(&[]);
    for (i, values) in [&["a", "b"][..], &["c"], &["d", "e", "f"]]
        .iter()
        .enumerate()
    {
        let r: ProduceResponse = c.request(
            ApiKey::Produce,
            9,
            &produce("t", 0, -1, batch(values, 1000 + i as i64)),
        );
        assert_eq!(produced(&r), (0, [0, 2, 3][i]));
    }
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("t", 0, 0, 0, 1 << 20));
    let p = &f.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.high_watermark, p.log_start_offset),
        (0, 6, 0)
    );
    let batches = decode_batches(p.records.clone().unwrap());
    assert_eq!(batches.iter().map(|b| b.0).collect::<Vec<_>>(), [0, 2, 3]);
    assert_eq!(batches[2].1, ["d", "e", "f"]);
    // From the middle of a batch: that whole batch comes back.
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("t", 0, 4, 0, 1 << 20));
    assert_eq!(
        decode_batches(f.responses[0].partitions[0].records.clone().unwrap())[0].0,
        3
    );
    // A one-byte limit still returns the first whole batch.
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("t", 0, 0, 0, 1));
    assert_eq!(
        decode_batches(f.responses[0].partitions[0].records.clone().unwrap()).len(),
        1
    );
    // Past the end, and below the start.
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("t", 0, 99, 0, 1 << 20));
    assert_eq!(
        f.responses[0].partitions[0].error_code, 1,
        "OFFSET_OUT_OF_RANGE"
    );
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("t", 0, -5, 0, 1 << 20));
    assert_eq!(
        f.responses[0].partitions[0].error_code, 1,
        "OFFSET_OUT_OF_RANGE"
    );
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("nope", 0, 0, 0, 1 << 20));
    assert_eq!(
        f.responses[0].partitions[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    // Compressed batches are stored and served as sent.
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce(
            "t",
            0,
            1,
            batch_with(&["z1", "z2"], 5, None, Compression::Gzip),
        ),
    );
    assert_eq!(produced(&r), (0, 6));
    let f: FetchResponse = c.request(ApiKey::Fetch, 4, &fetch("t", 0, 6, 0, 1 << 20));
    assert_eq!(
        decode_batches(f.responses[0].partitions[0].records.clone().unwrap())[0].1,
        ["z1", "z2"]
    );
}

#[test]
fn a_waiting_fetch_is_woken_by_an_append() {
    let (_dir, spool, mut c) = setup(&[]);
    let started = Instant::now();
    c.send(ApiKey::Fetch, 12, &fetch("t", 0, 0, 20_000, 1 << 20));
    let mut other = Raw::connect(&spool.addr);
    let r: ProduceResponse = other.request(
        ApiKey::Produce,
        9,
        &produce("t", 0, 1, batch(&["wake"], support::kafka::now_ms())),
    );
    assert_eq!(produced(&r).0, 0);
    let (_, f): (i32, FetchResponse) = c.recv(ApiKey::Fetch, 12);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the fetch waited out its max_wait instead of waking"
    );
    assert_eq!(
        decode_batches(f.responses[0].partitions[0].records.clone().unwrap())[0].1,
        ["wake"]
    );
    // With nothing new it answers empty when max_wait passes.
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("t", 0, 1, 200, 1 << 20));
    assert!(f.responses[0].partitions[0]
        .records
        .as_ref()
        .is_none_or(|r| r.is_empty()));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_dir, _spool, mut c) = setup(&[]);
    let mut sent = Vec::new();
    for i in 0..60 {
        sent.push(match i % 3 {
            0 => c.send(ApiKey::Produce, 9, &produce("t", 0, -1, batch(&["p"], i))),
            1 => c.send(
                ApiKey::Metadata,
                12,
                &MetadataRequest::default().with_topics(None),
            ),
            _ => c.send(ApiKey::Fetch, 12, &fetch("t", 0, 0, 0, 1024)),
        });
    }
    for (i, want) in sent.into_iter().enumerate() {
        let got = match i % 3 {
            0 => {
                let (id, r): (i32, ProduceResponse) = c.recv(ApiKey::Produce, 9);
                assert_eq!(produced(&r), (0, i as i64 / 3));
                id
            }
            1 => c.recv::<MetadataResponse>(ApiKey::Metadata, 12).0,
            _ => c.recv::<FetchResponse>(ApiKey::Fetch, 12).0,
        };
        assert_eq!(got, want, "response {i} out of order");
    }
    // acks=0 gets no response at all: the next answer is the ApiVersions after it.
    c.send(
        ApiKey::Produce,
        9,
        &produce("t", 0, 0, batch(&["silent"], support::kafka::now_ms())),
    );
    let id = c.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    assert_eq!(c.recv::<ApiVersionsResponse>(ApiKey::ApiVersions, 0).0, id);
}

#[test]
fn idempotent_retries_keep_their_offsets_and_gaps_are_refused() {
    let (_dir, mut spool, mut c) = setup(&[]);
    let init: InitProducerIdResponse = c.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    // Real timestamps: idle producers expire by their batches' timestamps, as in Kafka.
    let now = spool::model::now_ms();
    let send = |c: &mut Raw, epoch: i16, seq: i32, values: &[&str]| -> (i16, i64) {
        let r: ProduceResponse = c.request(
            ApiKey::Produce,
            9,
            &produce(
                "t",
                0,
                -1,
                batch_with(values, now, Some((pid, epoch, seq)), Compression::None),
            ),
        );
        produced(&r)
    };
    assert_eq!(send(&mut c, 0, 0, &["a", "b"]), (0, 0));
    assert_eq!(send(&mut c, 0, 2, &["c"]), (0, 2));
    assert_eq!(
        send(&mut c, 0, 0, &["a", "b"]),
        (0, 0),
        "a retried batch keeps its offset"
    );
    assert_eq!(
        send(&mut c, 0, 5, &["gap"]).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        send(&mut c, 1, 3, &["new-epoch"]).0,
        45,
        "a new epoch starts at sequence 0"
    );
    assert_eq!(send(&mut c, 1, 0, &["e1"]), (0, 3));
    assert_eq!(send(&mut c, 0, 3, &["old"]).0, 47, "INVALID_PRODUCER_EPOCH");
    // The producer state survives a graceful restart and a SIGKILL.
    assert!(spool.terminate());
    spool.restart();
    let mut c = Raw::connect(&spool.addr);
    assert_eq!(
        send(&mut c, 1, 0, &["e1"]),
        (0, 3),
        "duplicate after restart"
    );
    assert_eq!(send(&mut c, 1, 1, &["e2"]), (0, 4));
    spool.kill9();
    spool.restart();
    let mut c = Raw::connect(&spool.addr);
    assert_eq!(
        send(&mut c, 1, 1, &["e2"]),
        (0, 4),
        "duplicate after SIGKILL"
    );
    assert_eq!(send(&mut c, 1, 3, &["gap"]).0, 45);
    let next: InitProducerIdResponse = c.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert!(
        next.producer_id.0 > pid,
        "producer ids are never reused across restarts"
    );
    let txn: InitProducerIdResponse = c.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(support::kafka::s("tx")))),
    );
    assert_ne!(
        txn.error_code, 0,
        "transactional ids are refused until transactions are served"
    );
}

#[test]
fn list_offsets_by_position_and_timestamp() {
    let (_dir, _spool, mut c) = setup(&[]);
    let lo = |c: &mut Raw, ts: i64, version: i16| -> (i16, i64, i64) {
        let r: ListOffsetsResponse =
            c.request(ApiKey::ListOffsets, version, &list_offsets("t", 0, ts));
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    assert_eq!(lo(&mut c, -1, 7).1, 0);
    // Timestamps 1000.., 5000.., 3000.. (compressed), 9000.
    let _: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce("t", 0, 1, batch(&["a", "b", "c"], 1000)),
    );
    let _: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce("t", 0, 1, batch(&["d", "e"], 5000)),
    );
    let _: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce(
            "t",
            0,
            1,
            batch_with(&["f", "g"], 3000, None, Compression::Lz4),
        ),
    );
    let _: ProduceResponse =
        c.request(ApiKey::Produce, 9, &produce("t", 0, 1, batch(&["h"], 9000)));
    assert_eq!(lo(&mut c, -2, 1), (0, 0, -1));
    assert_eq!(lo(&mut c, -1, 1), (0, 8, -1));
    assert_eq!(
        lo(&mut c, 1001, 5),
        (0, 1, 1001),
        "first record at or after the time"
    );
    assert_eq!(
        lo(&mut c, 3001, 5),
        (0, 3, 5000),
        "the first record at or after, in offset order"
    );
    assert_eq!(lo(&mut c, 9000, 5), (0, 7, 9000));
    assert_eq!(lo(&mut c, 9001, 5), (0, -1, -1), "nothing that late");
    assert_eq!(lo(&mut c, -3, 7), (0, 7, 9000), "MAX_TIMESTAMP");
    let r: ListOffsetsResponse = c.request(ApiKey::ListOffsets, 7, &list_offsets("nope", 0, -1));
    assert_eq!(r.topics[0].partitions[0].error_code, 3);
}

#[test]
fn log_append_time_topics_stamp_the_broker_clock() {
    let (_dir, _spool, mut c) = setup(&[]);
    let r: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &create("lat", 1, &[("message.timestamp.type", "LogAppendTime")]),
    );
    assert_eq!(r.topics[0].error_code, 0);
    let before = spool::model::now_ms();
    let r: ProduceResponse =
        c.request(ApiKey::Produce, 9, &produce("lat", 0, 1, batch(&["x"], 42)));
    let stamped = r.responses[0].partition_responses[0].log_append_time_ms;
    assert!(stamped >= before && stamped <= spool::model::now_ms());
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("lat", 0, 0, 0, 1 << 20));
    let records = f.responses[0].partitions[0].records.clone().unwrap();
    // The batch is marked LogAppendTime (attribute bit 3) with the stamped max timestamp.
    assert_ne!(i16::from_be_bytes([records[21], records[22]]) & 0b1000, 0);
    assert_eq!(
        i64::from_be_bytes(records[35..43].try_into().unwrap()),
        stamped
    );
}

#[test]
fn oversized_batches_are_refused_per_topic() {
    let (_dir, _spool, mut c) = setup(&[]);
    let _: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &create("small", 1, &[("max.message.bytes", "100")]),
    );
    let big = "x".repeat(500);
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce("small", 0, 1, batch(&[&big], support::kafka::now_ms())),
    );
    assert_eq!(produced(&r).0, 10, "MESSAGE_TOO_LARGE");
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce("t", 0, 1, batch(&[&big], support::kafka::now_ms())),
    );
    assert_eq!(produced(&r), (0, 0), "other topics keep the broker limit");
}

#[test]
fn min_insync_replicas_above_one_refuses_acks_all() {
    let (_dir, _spool, mut c) = setup(&[]);
    let _: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &create("isr2", 1, &[("min.insync.replicas", "2")]),
    );
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce("isr2", 0, -1, batch(&["x"], support::kafka::now_ms())),
    );
    assert_eq!(produced(&r).0, 19, "NOT_ENOUGH_REPLICAS");
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce("isr2", 0, 1, batch(&["x"], support::kafka::now_ms())),
    );
    assert_eq!(produced(&r), (0, 0), "acks=1 does not need the ISR");
}

#[test]
fn retention_deletes_old_segments_and_moves_the_log_start() {
    let (_dir, _spool, mut c) = setup(&[
        "--set",
        "retention_check_interval_ms=100",
        "--set",
        "segment_bytes=1024",
    ]);
    let _: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &create("old", 1, &[("retention.ms", "60000")]),
    );
    let value = "v".repeat(300);
    let now = spool::model::now_ms();
    for i in 0..20 {
        // The first 15 batches are a day old; the last 5 are fresh.
        let ts = if i < 15 { now - 86_400_000 } else { now };
        let r: ProduceResponse = c.request(
            ApiKey::Produce,
            9,
            &produce("old", 0, 1, batch(&[&value], ts)),
        );
        assert_eq!(produced(&r), (0, i));
    }
    let start = support::wait_for(Duration::from_secs(30), || {
        let r: ListOffsetsResponse = c.request(ApiKey::ListOffsets, 7, &list_offsets("old", 0, -2));
        let start = r.topics[0].partitions[0].offset;
        (start >= 12).then_some(start)
    });
    let start = start.expect("retention moved the log start offset");
    assert!(
        start <= 15,
        "fresh records were deleted (log start {start})"
    );
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("old", 0, 0, 0, 1 << 20));
    assert_eq!(
        f.responses[0].partitions[0].error_code, 1,
        "OFFSET_OUT_OF_RANGE below the log start"
    );
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("old", 0, start, 0, 1 << 20));
    assert_eq!(f.responses[0].partitions[0].log_start_offset, start);
}

#[test]
fn graceful_shutdown_marks_a_clean_log_and_data_survives() {
    let (_dir, mut spool, mut c) = setup(&["--set", "segment_bytes=2048"]);
    for i in 0..50 {
        let r: ProduceResponse = c.request(
            ApiKey::Produce,
            9,
            &produce("t", 0, -1, batch(&["a", "b"], spool::model::now_ms())),
        );
        assert_eq!(produced(&r), (0, i * 2));
    }
    drop(c);
    assert!(spool.terminate(), "exit 0 on SIGTERM");
    assert!(spool.data_dir.join(".clean-shutdown").exists());
    spool.restart();
    assert!(std::fs::read_to_string(&spool.log_path)
        .unwrap()
        .contains("clean_shutdown=true"));
    let mut c = Raw::connect(&spool.addr);
    let r: ListOffsetsResponse = c.request(ApiKey::ListOffsets, 7, &list_offsets("t", 0, -1));
    assert_eq!(r.topics[0].partitions[0].offset, 100);
    let f: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("t", 0, 51, 0, 1 << 20));
    let p = &f.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.high_watermark),
        (0, 100),
        "{}",
        spool.log_tail()
    );
    assert_eq!(
        decode_batches(f.responses[0].partitions[0].records.clone().unwrap())[0].0,
        50
    );
}

/// Record bytes of every partition in a fetch response.
fn fetched_sizes(r: &FetchResponse) -> Vec<usize> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |b| b.len()))
        .collect()
}

#[test]
fn fetch_max_bytes_bounds_the_whole_response_as_kip_74_says() {
    let (_dir, spool, mut c) = setup(&["--set", "fetch_max_bytes=300000"]);
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &create("two", 2, &[]));
    assert_eq!(r.topics[0].error_code, 0);
    // Ten batches of ~50 KiB (the key repeats the value) in each partition of `two`.
    let value = "x".repeat(25 * 1024);
    for p in 0..2 {
        for _ in 0..10 {
            let r: ProduceResponse = c.request(
                ApiKey::Produce,
                9,
                &produce("two", p, 1, batch(&[&value], support::kafka::now_ms())),
            );
            assert_eq!(produced(&r).0, 0);
        }
    }
    let both = |max_bytes: i32, partition_max: i32| {
        let mut f = fetch("two", 0, 0, 0, partition_max).with_max_bytes(max_bytes);
        let mut second = f.topics[0].partitions[0].clone();
        second.partition = 1;
        f.topics[0].partitions.push(second);
        let r: FetchResponse = Raw::connect(&spool.addr).request(ApiKey::Fetch, 12, &f);
        fetched_sizes(&r)
    };
    // The request's limit bounds the first partition too, whatever its partition limit.
    let sizes = both(120 * 1024, 100 << 20);
    assert!(sizes[0] > 0 && sizes[0] <= 120 * 1024, "{sizes:?}");
    assert!(sizes.iter().sum::<usize>() <= 120 * 1024, "{sizes:?}");
    // A limit below one batch still returns the first batch of the first partition, whole.
    let sizes = both(1, 100 << 20);
    assert!(sizes[0] > 50 * 1024 && sizes[0] < 100 * 1024, "{sizes:?}");
    assert_eq!(sizes[1], 0, "{sizes:?}");
    // The broker's fetch_max_bytes caps a request that asks for more.
    let sizes = both(50 << 20, 100 << 20);
    assert!(sizes.iter().sum::<usize>() <= 300_000, "{sizes:?}");
    assert!(
        sizes[0] > 200_000,
        "the first partition fills the budget: {sizes:?}"
    );
    // The partition limit holds for every partition.
    let sizes = both(50 << 20, 60 * 1024);
    assert!(sizes.iter().all(|s| *s > 0 && *s <= 60 * 1024), "{sizes:?}");
}

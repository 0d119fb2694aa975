//! Partition admission: requests a node cannot honour are refused before anything is created,
//! a partition that cannot be opened is served as offline without stopping the broker, and
//! topic names up to Kafka's 249 characters are created and deleted.

mod support;

use kafka_protocol::messages::*;
use std::time::{Duration, Instant};
use support::kafka::{batch, create, name, produce};
use support::{wait_for, Raw, Spool};

const INVALID_PARTITIONS: i16 = 37;
const POLICY_VIOLATION: i16 = 44;
const KAFKA_STORAGE_ERROR: i16 = 56;

fn create_code(c: &mut Raw, topic: &str, partitions: i32, validate_only: bool) -> (i16, String) {
    let r: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        5,
        &create(topic, partitions, &[]).with_validate_only(validate_only),
    );
    let t = &r.topics[0];
    (
        t.error_code,
        t.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

fn add_partitions(c: &mut Raw, topic: &str, count: i32) -> i16 {
    let r: CreatePartitionsResponse = c.request(
        ApiKey::CreatePartitions,
        3,
        &support::kafka::create_partitions(topic, count),
    );
    r.results[0].error_code
}

fn topics(c: &mut Raw) -> Vec<(String, usize)> {
    let r: MetadataResponse = c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    r.topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().to_string(), t.partitions.len()))
        .collect()
}

fn produce_code(c: &mut Raw, topic: &str, partition: i32) -> i16 {
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce(topic, partition, 1, batch(&["v"], support::kafka::now_ms())),
    );
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn a_create_the_open_file_limit_cannot_hold_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    // 2048 descriptors: 1024 kept for connections and 512 for the rest leave room for 128
    // partitions of which __consumer_offsets takes 50.
    let mut spool = Spool::start_with_nofile(dir.path(), &[], 2048);
    let mut c = Raw::connect(&spool.addr);
    let (code, message) = create_code(&mut c, "huge", 10_000, false);
    assert_eq!(code, POLICY_VIOLATION, "{message}");
    assert!(message.contains("RLIMIT_NOFILE"), "{message}");
    assert!(
        !topics(&mut c).iter().any(|(t, _)| t == "huge"),
        "nothing was created"
    );
    // What fits is created, up to the capacity, and the growth past it is refused.
    assert_eq!(create_code(&mut c, "fits", 60, false).0, 0);
    assert_eq!(add_partitions(&mut c, "fits", 80), POLICY_VIOLATION);
    assert_eq!(add_partitions(&mut c, "fits", 70), 0);
    assert_eq!(produce_code(&mut c, "fits", 69), 0);
    // The broker restarts on the same data with every partition open.
    assert!(spool.terminate(), "clean shutdown");
    spool.restart();
    let mut c = Raw::connect(&spool.addr);
    let listed = topics(&mut c);
    assert!(listed.contains(&("fits".to_string(), 70)), "{listed:?}");
    assert_eq!(produce_code(&mut c, "fits", 0), 0);
}

#[test]
fn oversized_and_validate_only_requests_cost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &["--set", "max_broker_partitions=200"]);
    let mut c = Raw::connect(&spool.addr);
    let before = spool.memory_kib("VmHWM");
    let started = Instant::now();
    let (code, message) = create_code(&mut c, "t", 10_000_000, true);
    assert_eq!(code, INVALID_PARTITIONS, "{message}");
    assert!(message.contains("max_partitions_per_request"), "{message}");
    let (code, message) = create_code(&mut c, "t", 100_000, true);
    assert_eq!(code, POLICY_VIOLATION, "{message}");
    assert!(message.contains("max_broker_partitions 200"), "{message}");
    let grown_mib = (spool.memory_kib("VmHWM") - before) / 1024;
    assert!(grown_mib < 64, "validate_only grew RSS by {grown_mib} MiB");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        create_code(&mut c, "t", 150, true).0,
        0,
        "what fits validates"
    );
    assert!(
        !topics(&mut c).iter().any(|(t, _)| t == "t"),
        "validate_only creates nothing"
    );
}

#[test]
fn a_partition_that_cannot_open_is_offline_and_the_rest_serve() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&spool.addr);
    assert_eq!(create_code(&mut c, "t", 3, false).0, 0);
    for p in 0..3 {
        assert_eq!(produce_code(&mut c, "t", p), 0);
    }
    assert!(spool.terminate());
    // Partition 1's offset index becomes a directory: it can no longer be opened.
    let index = spool
        .data_dir
        .join("t-1")
        .join("00000000000000000000.index");
    std::fs::remove_file(&index).unwrap();
    std::fs::create_dir(&index).unwrap();
    spool.restart();
    let mut c = Raw::connect(&spool.addr);
    assert_eq!(produce_code(&mut c, "t", 1), KAFKA_STORAGE_ERROR);
    assert_eq!(produce_code(&mut c, "t", 0), 0);
    assert_eq!(produce_code(&mut c, "t", 2), 0);
    let log = std::fs::read_to_string(&spool.log_path).unwrap();
    assert!(
        log.contains("serving it as offline"),
        "{}",
        spool.log_tail()
    );
    // Repaired, it opens again at the next restart.
    std::fs::remove_dir(&index).unwrap();
    assert!(spool.terminate());
    spool.restart();
    let mut c = Raw::connect(&spool.addr);
    let served = wait_for(Duration::from_secs(20), || {
        (produce_code(&mut c, "t", 1) == 0).then_some(())
    });
    assert!(served.is_some(), "the repaired partition serves again");
}

#[test]
fn topic_names_of_249_characters_are_created_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&spool.addr);
    let long = "x".repeat(249);
    assert_eq!(create_code(&mut c, &long, 2, false).0, 0);
    assert_eq!(produce_code(&mut c, &long, 1), 0);
    let r: DeleteTopicsResponse = c.request(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topic_names(vec![name(&long)]),
    );
    assert_eq!(r.responses[0].error_code, 0);
    assert!(
        !topics(&mut c).iter().any(|(t, _)| *t == long),
        "the topic stayed"
    );
    let gone = wait_for(Duration::from_secs(10), || {
        let left: Vec<_> = std::fs::read_dir(&spool.data_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("xxxx"))
            .collect();
        left.is_empty().then_some(())
    });
    assert!(gone.is_some(), "its directories were left behind");
    assert_eq!(
        create_code(&mut c, &"x".repeat(250), 1, false).0,
        17,
        "INVALID_TOPIC_EXCEPTION"
    );
    assert_eq!(create_code(&mut c, &long, 1, false).0, 0, "created again");
}

//! Coordinators in a cluster: the transaction and group coordinators are the leaders of the
//! partitions of `__transaction_state` and `__consumer_offsets` their keys hash to, and they
//! move with those partitions when their node dies. A transactional producer (librdkafka)
//! commits and aborts; the coordinator's node is SIGKILLed; a new producer with the same
//! transactional id carries on through the new coordinator; committed offsets and committed
//! transactions are all still there, and nothing aborted is visible to read_committed.

mod support;

use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::TopicPartitionList;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::cluster::Cluster;
use support::kafka::{self, s};
use support::rdk::{self, Deliveries};
use support::{wait_for, Raw};

const SETTINGS: &[&str] = &[
    "default_replication_factor=3",
    "min_insync_replicas=2",
    "offsets_topic_replication_factor=3",
    "offsets_topic_num_partitions=3",
    "transaction_state_log_replication_factor=3",
    "transaction_state_log_num_partitions=3",
    "transaction_state_log_min_isr=2",
    "group_initial_rebalance_delay_ms=0",
];
const TOPIC: &str = "ledger";
const PARTITIONS: i32 = 3;
const TXN_ID: &str = "ledger-writer";
const GROUP: &str = "auditors";

/// The node coordinating `key` (0: group, 1: transaction), asked of node `via`.
fn coordinator(cluster: &Cluster, via: u64, key_type: i8, key: &str) -> Option<u64> {
    let stream = std::net::TcpStream::connect(cluster.addr(via)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let found: FindCoordinatorResponse = Raw::from_stream(stream).try_request(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![s(key)]),
    )?;
    let c = found.coordinators.first()?;
    (c.error_code == 0).then_some(c.node_id.0 as u64)
}

/// Writes `count` records numbered from `first` in one transaction, committed or aborted.
fn transaction(
    producer: &rdkafka::producer::BaseProducer<Deliveries>,
    first: usize,
    count: usize,
    commit: bool,
) {
    producer.begin_transaction().unwrap();
    for i in first..first + count {
        let (k, v) = (
            format!("k{i}"),
            format!("{}-{i}", if commit { "ok" } else { "no" }),
        );
        while producer
            .send(BaseRecord::to(TOPIC).key(&k).payload(&v))
            .is_err()
        {
            producer.poll(Duration::from_millis(5));
        }
    }
    let timeout = Duration::from_secs(60);
    // A BaseProducer's delivery reports are served by polling: flush first.
    producer.flush(timeout).unwrap();
    if commit {
        producer.commit_transaction(timeout).unwrap();
    } else {
        producer.abort_transaction(timeout).unwrap();
    }
}

fn transactional_producer(
    bootstrap: &str,
    deliveries: &Deliveries,
) -> rdkafka::producer::BaseProducer<Deliveries> {
    let p = rdk::producer(
        bootstrap,
        &[
            ("transactional.id", TXN_ID),
            ("transaction.timeout.ms", "60000"),
            ("linger.ms", "5"),
        ],
        deliveries,
    );
    p.init_transactions(Duration::from_secs(60)).unwrap();
    p
}

/// Values read with read_committed from the beginning of every partition, until `expected`
/// arrived or the deadline.
fn read_committed(bootstrap: &str, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ledger-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("log_level", "3")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while values.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    // Anything past the expected count (an aborted record leaking) shows up within a moment.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    values
}

/// The group's committed offsets, by partition.
fn committed(bootstrap: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("log_level", "3")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let found = wait_for(Duration::from_secs(60), || {
        consumer
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .ok()
    })
    .expect("committed offsets");
    found
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
        .collect()
}

#[test]
fn transactions_and_committed_offsets_survive_their_coordinator_dying() {
    let mut cluster = Cluster::start_all(3, SETTINGS);
    let bootstrap = cluster.bootstrap();
    let created: kafka_protocol::messages::CreateTopicsResponse = Raw::connect(&cluster.addr(1))
        .request(
            ApiKey::CreateTopics,
            7,
            &kafka::create(TOPIC, PARTITIONS, &[]),
        );
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");

    let deliveries = Deliveries::default();
    let producer = transactional_producer(&bootstrap, &deliveries);
    transaction(&producer, 0, 100, true);
    transaction(&producer, 100, 50, false);
    drop(producer);

    // A group reads the committed records and commits its positions.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("log_level", "3")
        .create()
        .unwrap();
    reader.subscribe(&[TOPIC]).unwrap();
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < 100 && Instant::now() < deadline {
        if let Some(Ok(_)) = reader.poll(Duration::from_millis(200)) {
            seen += 1;
        }
    }
    assert_eq!(
        seen, 100,
        "the group did not read the committed transaction"
    );
    reader.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(reader);
    let before = committed(&bootstrap);
    assert!(before.values().all(|o| *o >= 0), "{before:?}");

    // Kill the transaction coordinator's node (the group's may be the same one).
    let txn_node = coordinator(&cluster, 1, 1, TXN_ID).expect("a transaction coordinator");
    let group_node = coordinator(&cluster, 1, 0, GROUP).expect("a group coordinator");
    cluster.kill9(txn_node);
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != txn_node).collect();
    let moved = wait_for(Duration::from_secs(30), || {
        coordinator(&cluster, survivors[0], 1, TXN_ID).filter(|n| *n != txn_node)
    });
    assert!(
        moved.is_some(),
        "the transaction coordinator did not move\n{}",
        cluster.logs()
    );
    let bootstrap = cluster.bootstrap();

    // A new incarnation of the producer carries on through the new coordinator.
    let producer = transactional_producer(&bootstrap, &deliveries);
    transaction(&producer, 150, 100, true);
    drop(producer);

    let values = read_committed(&bootstrap, 200);
    let mut want: Vec<String> = (0..100)
        .chain(150..250)
        .map(|i| format!("ok-{i}"))
        .collect();
    let mut got = values.clone();
    want.sort();
    got.sort();
    assert_eq!(
        got.len(),
        want.len(),
        "read_committed saw {} records (aborted ones: {})",
        values.len(),
        values.iter().filter(|v| v.starts_with("no-")).count()
    );
    assert_eq!(got, want);

    // The group's committed offsets are the same through the coordinator it has now.
    let after = committed(&bootstrap);
    assert_eq!(
        before, after,
        "committed offsets changed (group coordinator was node {group_node}, node {txn_node} died)"
    );

    // The dead node comes back as a follower and catches up.
    cluster.restart(txn_node);
    cluster.wait_brokers(&[1, 2, 3], Duration::from_secs(60));
}

//! Clusters of real spool processes: partition reassignment while an idempotent producer
//! writes, and cancelling a reassignment that cannot complete.
//!
//! Each test runs four nodes, all voters of the metadata quorum from the start (a four-voter
//! quorum forms with three and survives one node down), so a node can leave and come back
//! without changing the quorum's membership; the target node of a reassignment is a registered
//! broker like any other.

mod support;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::list_partition_reassignments_response::OngoingPartitionReassignment;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    CreateTopicsRequest, CreateTopicsResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
};
use rdkafka::producer::{BaseRecord, Producer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::cli::spool;
use support::cluster::Cluster;
use support::kafka::{name, s};
use support::rdk::{self, Deliveries};
use support::{wait_for, Raw};

/// Creates `topic` with one partition on `replicas` and min.insync.replicas=2, through `via`.
fn create_topic(cluster: &Cluster, via: u64, topic: &str, replicas: &[i32]) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(replicas.iter().map(|&id| BrokerId(id)).collect())])
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("min.insync.replicas"))
                .with_value(Some(s("2")))])]);
    let response: CreateTopicsResponse =
        Raw::connect(&cluster.addr(via)).request(ApiKey::CreateTopics, 7, &request);
    let t = &response.topics[0];
    assert_eq!(t.error_code, 0, "create {topic}: {:?}", t.error_message);
}

/// Waits until every running node in `via` reports `topic`-0 on `replicas` with all of them
/// in sync.
fn wait_in_sync(cluster: &Cluster, via: &[u64], topic: &str, replicas: &[i32]) {
    let mut want = replicas.to_vec();
    want.sort_unstable();
    let ok = wait_for(Duration::from_secs(30), || {
        via.iter()
            .all(|&id| {
                cluster.partition(id, topic, 0).is_some_and(|p| {
                    let (mut r, mut isr) = (p.replicas.clone(), p.isr.clone());
                    r.sort_unstable();
                    isr.sort_unstable();
                    r == want && isr == want && p.leader >= 0
                })
            })
            .then_some(())
    });
    assert!(
        ok.is_some(),
        "{topic}-0 not on {replicas:?} in sync: {:?}\n{}",
        cluster.partition(via[0], topic, 0),
        cluster.logs()
    );
}

fn alter(
    cluster: &Cluster,
    via: u64,
    topic: &str,
    target: Option<&[i32]>,
) -> AlterPartitionReassignmentsResponse {
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_allow_replication_factor_change(false)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(
                    target.map(|t| t.iter().map(|&id| BrokerId(id)).collect()),
                )])]);
    Raw::connect(&cluster.addr(via)).request(ApiKey::AlterPartitionReassignments, 1, &request)
}

/// The reassignment of `topic`-0 in progress, as node `via` lists it (None when there is none
/// or the node cannot be asked).
fn listed(cluster: &Cluster, via: u64, topic: &str) -> Option<OngoingPartitionReassignment> {
    let stream = std::net::TcpStream::connect(cluster.addr(via)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let response: ListPartitionReassignmentsResponse = Raw::from_stream(stream).try_request(
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest::default(),
    )?;
    assert_eq!(response.error_code, 0);
    let t = response.topics.into_iter().find(|t| *t.name.0 == *topic)?;
    t.partitions.into_iter().find(|p| p.partition_index == 0)
}

fn ids(ids: &[BrokerId]) -> Vec<i32> {
    ids.iter().map(|id| id.0).collect()
}

/// Writes numbered records (`record-000000`, ...) with an idempotent acks=all producer until
/// `stop`, then flushes; returns the delivery reports.
fn produce_until(bootstrap: String, topic: &'static str, stop: Arc<AtomicBool>) -> Deliveries {
    let deliveries = Deliveries::default();
    let producer = rdk::producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("message.timeout.ms", "120000"),
        ],
        &deliveries,
    );
    let mut n = 0u64;
    while !stop.load(Ordering::Acquire) {
        let value = format!("record-{n:06}");
        let key = n.to_string();
        let record = BaseRecord::to(topic).key(&key).payload(&value).partition(0);
        match producer.send(record) {
            Ok(()) => n += 1,
            Err((e, _)) => eprintln!("send {value}: {e}; retrying"),
        }
        producer.poll(Duration::from_millis(2));
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    deliveries
}

fn log_file(cluster: &Cluster, node: u64, topic: &str) -> std::path::PathBuf {
    cluster
        .data_dir(node)
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log")
}

#[test]
fn reassignment_under_load_moves_every_acknowledged_record_to_the_new_replica() {
    const TOPIC: &str = "moving";
    let started = Instant::now();
    let mut cluster = Cluster::start_all(4, &[]);
    create_topic(&cluster, 1, TOPIC, &[1, 2, 3]);
    wait_in_sync(&cluster, &[1, 2, 3, 4], TOPIC, &[1, 2, 3]);
    eprintln!("cluster and topic ready after {:?}", started.elapsed());

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (bootstrap, stop) = (cluster.bootstrap(), stop.clone());
        std::thread::spawn(move || produce_until(bootstrap, TOPIC, stop))
    };
    std::thread::sleep(Duration::from_secs(2));

    let response = alter(&cluster, 2, TOPIC, Some(&[1, 2, 4]));
    let code = response.responses[0].partitions[0].error_code;
    assert_eq!(code, 0, "{:?}", response.responses[0].partitions[0]);
    let moved = wait_for(Duration::from_secs(60), || {
        let done = listed(&cluster, 2, TOPIC).is_none();
        let p = cluster.partition(2, TOPIC, 0)?;
        let mut replicas = p.replicas.clone();
        replicas.sort_unstable();
        (done && replicas == [1, 2, 4]).then_some(p)
    });
    let moved = moved.unwrap_or_else(|| {
        panic!(
            "reassignment did not complete: {:?} {:?}\n{}",
            listed(&cluster, 2, TOPIC),
            cluster.partition(2, TOPIC, 0),
            cluster.logs()
        )
    });
    eprintln!("reassigned after {:?}: {moved:?}", started.elapsed());
    // Keep writing on the new replica set for a while.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Release);
    let deliveries = writer.join().expect("producer thread");
    let acked = deliveries.acked.lock().unwrap().clone();
    let failed = deliveries.failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "failed deliveries: {failed:?}");
    assert!(
        acked.len() > 100,
        "only {} records acknowledged",
        acked.len()
    );

    let read = rdk::consume_all(
        &cluster.bootstrap(),
        TOPIC,
        1,
        acked.len(),
        Duration::from_secs(60),
    );
    let read_values: Vec<&str> = read.iter().map(|r| r.value.as_str()).collect();
    let mut acked_values: Vec<&str> = acked.iter().map(|r| r.value.as_str()).collect();
    acked_values.sort_unstable();
    assert_eq!(
        read_values.len(),
        acked_values.len(),
        "read {} of {} acknowledged records",
        read_values.len(),
        acked_values.len()
    );
    // Exactly once and in order: the log is the numbered sequence itself.
    assert_eq!(read_values, acked_values);
    assert!(read.windows(2).all(|w| w[0].offset < w[1].offset));

    // The new replica's log is the leader's, byte for byte, once it has caught up.
    let leader = moved.leader as u64;
    let same = wait_for(Duration::from_secs(30), || {
        let a = std::fs::read(log_file(&cluster, leader, TOPIC)).ok()?;
        let b = std::fs::read(log_file(&cluster, 4, TOPIC)).ok()?;
        (!a.is_empty() && a == b).then_some(a.len())
    });
    assert!(
        same.is_some(),
        "node 4's log differs from leader {leader}'s\n{}",
        cluster.logs()
    );
    let in_sync = cluster.partition(leader, TOPIC, 0).unwrap();
    assert!(in_sync.isr.contains(&4), "{in_sync:?}");

    // The removed replica's directory is gone.
    let gone = wait_for(Duration::from_secs(30), || {
        (!cluster.data_dir(3).join(format!("{TOPIC}-0")).exists()).then_some(())
    });
    assert!(
        gone.is_some(),
        "node 3 still holds {TOPIC}-0\n{}",
        cluster.log_tail(3)
    );
    // ... and node 3 no longer fetches it (the leader would refuse every fetch).
    let refusals = || {
        let log = std::fs::read_to_string(&cluster.node(3).spool.log_path).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("leader refused the fetch") && l.contains("moving-0"))
            .count()
    };
    let before = refusals();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        refusals(),
        before,
        "node 3 still fetches {TOPIC}-0\n{}",
        cluster.log_tail(3)
    );
    eprintln!(
        "{} records, {} log bytes, done after {:?}",
        acked.len(),
        same.unwrap(),
        started.elapsed()
    );
}

#[test]
fn a_reassignment_to_a_stopped_node_stays_in_progress_until_cancelled() {
    const TOPIC: &str = "stuck";
    let mut cluster = Cluster::start_all(4, &[]);
    assert!(cluster.terminate(4), "node 4 did not stop cleanly");
    let fenced = wait_for(Duration::from_secs(30), || {
        (!cluster.brokers(1).contains(&4)).then_some(())
    });
    assert!(fenced.is_some(), "node 4 still listed\n{}", cluster.logs());
    create_topic(&cluster, 1, TOPIC, &[1, 2, 3]);
    wait_in_sync(&cluster, &[1, 2, 3], TOPIC, &[1, 2, 3]);
    let bootstrap = cluster.addr(1);

    let cli = |args: &[&str]| {
        let mut all = vec!["topic"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--bootstrap-server", &bootstrap, "--output", "json"]);
        spool(&all)
    };
    let started = cli(&[
        "reassign",
        "--topic",
        TOPIC,
        "--partition",
        "0",
        "--replicas",
        "1,2,4",
    ])
    .ok();
    assert_eq!(started.json()["replicas"], serde_json::json!([1, 2, 4]));

    // Node 4 cannot catch up: the move stays in progress.
    std::thread::sleep(Duration::from_secs(3));
    let ongoing = listed(&cluster, 1, TOPIC).expect("the reassignment is listed");
    assert_eq!(ids(&ongoing.replicas), [1, 2, 4, 3]);
    assert_eq!(ids(&ongoing.adding_replicas), [4]);
    assert_eq!(ids(&ongoing.removing_replicas), [3]);
    let listed_json = cli(&["reassignments"]).ok().json();
    assert_eq!(
        listed_json,
        serde_json::json!([{
            "topic": TOPIC, "partition": 0, "replicas": [1, 2, 4, 3],
            "adding_replicas": [4], "removing_replicas": [3],
        }])
    );
    let p = cluster.partition(1, TOPIC, 0).unwrap();
    assert!(!p.isr.contains(&4), "{p:?}");

    let cancelled = cli(&["reassign", "--topic", TOPIC, "--partition", "0", "--cancel"]).ok();
    assert_eq!(cancelled.json()["cancelled"], true);
    assert!(listed(&cluster, 1, TOPIC).is_none());
    wait_in_sync(&cluster, &[1, 2, 3], TOPIC, &[1, 2, 3]);
    let p = cluster.partition(1, TOPIC, 0).unwrap();
    assert_eq!(p.replicas, [1, 2, 3]);

    let again = cli(&["reassign", "--topic", TOPIC, "--partition", "0", "--cancel"]).failed();
    assert!(again.contains("NoReassignmentInProgress"), "{again}");
}

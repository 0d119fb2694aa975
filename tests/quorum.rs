//! The metadata quorum as operators query it: DescribeQuorum (what
//! `kafka-metadata-quorum describe --status/--replication` asks) from any node, and
//! `spool health` for orchestrators, on a three-node cluster that loses its quorum leader.

mod support;

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::*;
use std::time::Duration;
use support::cli::{spool, spool_env};
use support::cluster::Cluster;
use support::kafka::s;
use support::{wait_for, Raw};

fn describe_quorum(addr: &str, version: i16) -> Option<DescribeQuorumResponse> {
    let stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut raw = Raw::from_stream(stream);
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(s("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default()])]);
    raw.try_request(ApiKey::DescribeQuorum, version, &request)
}

fn partition(r: &DescribeQuorumResponse) -> &describe_quorum_response::PartitionData {
    &r.topics[0].partitions[0]
}

/// Polls node `via` until its DescribeQuorum answers with a leader in `leaders` and `accept`.
fn quorum_via(
    cluster: &Cluster,
    via: u64,
    accept: impl Fn(&describe_quorum_response::PartitionData) -> bool,
) -> DescribeQuorumResponse {
    wait_for(Duration::from_secs(30), || {
        let r = describe_quorum(&cluster.addr(via), 2)?;
        let p = partition(&r);
        (p.error_code == 0 && accept(p)).then_some(r)
    })
    .unwrap_or_else(|| {
        panic!(
            "node {via}: {:?}\n{}",
            describe_quorum(&cluster.addr(via), 2),
            cluster.logs()
        )
    })
}

#[test]
fn describe_quorum_reports_the_leader_and_its_voters_from_any_node() {
    let mut cluster = Cluster::start_all(3, &[]);
    cluster.wait_brokers(&[1, 2, 3], Duration::from_secs(30));
    let caught_up = |p: &describe_quorum_response::PartitionData| {
        p.current_voters.len() == 3
            && p.current_voters
                .iter()
                .all(|v| v.log_end_offset > 0 && v.last_caught_up_timestamp > 0)
    };
    let first = quorum_via(&cluster, 1, caught_up);
    let p = partition(&first);
    let leader = p.leader_id.0 as u64;
    assert!((1..=3).contains(&leader), "{p:?}");
    assert!(p.high_watermark > 0, "{p:?}");
    assert!(p.leader_epoch > 0, "{p:?}");
    let mut voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
    voters.sort_unstable();
    assert_eq!(voters, [1, 2, 3]);
    assert!(p.observers.is_empty(), "{p:?}");
    // v2 names each voter's controller listener.
    let mut nodes: Vec<(i32, u16)> = first
        .nodes
        .iter()
        .map(|n| (n.node_id.0, n.listeners[0].port))
        .collect();
    nodes.sort_unstable();
    assert_eq!(nodes.len(), 3, "{:?}", first.nodes);
    assert!(nodes.iter().all(|(_, port)| *port > 0));
    // The other nodes forward to the leader: the same leader and epoch, and old versions too.
    for via in [2, 3] {
        let r = quorum_via(&cluster, via, |_| true);
        assert_eq!(partition(&r).leader_id.0 as u64, leader);
        assert_eq!(partition(&r).leader_epoch, p.leader_epoch);
        let v0 = describe_quorum(&cluster.addr(via), 0).unwrap();
        assert_eq!(partition(&v0).leader_id.0 as u64, leader);
    }
    for via in 1..=3 {
        spool(&[
            "health",
            "--bootstrap-server",
            &cluster.addr(via),
            "--node-id",
            &via.to_string(),
        ])
        .ok();
    }
    // The leader dies: a survivor reports a new leader in a later epoch, the dead voter
    // falling behind, and health names the dead node as not live.
    cluster.kill9(leader);
    let survivor = if leader == 1 { 2 } else { 1 };
    let after = quorum_via(&cluster, survivor, |q| {
        q.leader_id.0 >= 0 && q.leader_id.0 as u64 != leader && q.leader_epoch > p.leader_epoch
    });
    let q = partition(&after);
    let dead = q
        .current_voters
        .iter()
        .find(|v| v.replica_id.0 as u64 == leader)
        .expect("the dead node stays a voter");
    assert!(dead.log_end_offset < q.high_watermark + 1, "{q:?}");
    let not_live = wait_for(Duration::from_secs(30), || {
        let ran = support::cli::spool(&[
            "health",
            "--bootstrap-server",
            &cluster.addr(survivor),
            "--node-id",
            &leader.to_string(),
        ]);
        (!ran.status.success()).then_some(ran.stderr)
    })
    .expect("health fails for a dead node");
    assert!(not_live.contains("is not a live broker"), "{not_live}");
    spool(&["health", "--bootstrap-server", &cluster.addr(survivor)]).ok();
    // Nothing listens on the dead node's address: health fails at once with why.
    let err = spool(&[
        "health",
        "--bootstrap-server",
        &cluster.addr(leader),
        "--timeout-ms",
        "2000",
    ])
    .failed();
    assert!(err.contains("not ready"), "{err}");
}

#[test]
fn describe_quorum_refuses_other_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let spool_node = support::Spool::start(dir.path(), &[]);
    let stream = std::net::TcpStream::connect(&spool_node.addr).unwrap();
    let mut raw = Raw::from_stream(stream);
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(s("orders")))
        .with_partitions(vec![PartitionData::default()])]);
    let r: DescribeQuorumResponse = raw.request(ApiKey::DescribeQuorum, 1, &request);
    assert_eq!(
        partition(&r).error_code,
        kafka_protocol::ResponseError::UnknownTopicOrPartition.code()
    );
    // A single node leads its own quorum.
    let r = describe_quorum(&spool_node.addr, 1).unwrap();
    assert_eq!(partition(&r).error_code, 0);
    assert_eq!(partition(&r).current_voters.len(), 1);
    spool(&[
        "health",
        "--bootstrap-server",
        &spool_node.addr,
        "--node-id",
        "1",
    ])
    .ok();
    // Without --bootstrap-server it asks the first client listener the environment configures
    // (as in the container image), on 127.0.0.1 when that listener takes every address.
    let port = spool_node.addr.rsplit(':').next().unwrap();
    let listeners = format!("PLAINTEXT://:{port}");
    let ran = spool_env(
        &["health"],
        &[("KAFKA_LISTENERS", &listeners), ("KAFKA_NODE_ID", "1")],
    )
    .ok();
    assert!(ran.stdout.starts_with("ready: 1 live broker(s)"), "{ran:?}");
    // A listener nothing serves: not ready, and the message names why.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unused = free.local_addr().unwrap().port().to_string();
    drop(free);
    let listeners = format!("PLAINTEXT://127.0.0.1:{unused}");
    let err = spool_env(&["health"], &[("KAFKA_LISTENERS", &listeners)]).failed();
    assert!(err.contains("not ready"), "{err}");
}

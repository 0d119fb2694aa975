//! Automatic leader rebalance in a cluster: when a node that is the preferred (first) replica
//! of a partition comes back after a failure and is in sync again, the quorum leader moves the
//! partition's leadership back to it (Kafka's `auto.leader.rebalance.enable`), here checked
//! every second.

mod support;

use kafka_protocol::messages::ApiKey;
use std::time::Duration;
use support::cluster::Cluster;
use support::{kafka, wait_for, Raw};

#[test]
fn leadership_returns_to_the_preferred_replica_once_it_is_back_in_sync() {
    let settings = [
        "default_replication_factor=3",
        "leader_imbalance_check_interval_seconds=1",
    ];
    let mut cluster = Cluster::start_all(3, &settings);
    let created: kafka_protocol::messages::CreateTopicsResponse = Raw::connect(&cluster.addr(1))
        .request(ApiKey::CreateTopics, 7, &kafka::create("spread", 3, &[]));
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let view = wait_for(Duration::from_secs(30), || {
        cluster
            .partition(1, "spread", 0)
            .filter(|p| p.isr.len() == 3)
    })
    .expect("partition 0 in sync");
    let preferred = view.replicas[0];
    assert_eq!(
        view.leader, preferred,
        "a new partition is led by its first replica"
    );
    let other = (1..=3).find(|id| *id != preferred as u64).unwrap();

    cluster.kill9(preferred as u64);
    let moved = wait_for(Duration::from_secs(30), || {
        cluster
            .partition(other, "spread", 0)
            .filter(|p| p.leader >= 0 && p.leader != preferred)
    });
    assert!(moved.is_some(), "no failover\n{}", cluster.logs());

    cluster.restart(preferred as u64);
    let back = wait_for(Duration::from_secs(60), || {
        cluster
            .partition(other, "spread", 0)
            .filter(|p| p.leader == preferred && p.isr.len() == 3)
    });
    assert!(
        back.is_some(),
        "leadership did not return to node {preferred}: {:?}\n{}",
        cluster.partition(other, "spread", 0),
        cluster.logs()
    );
}

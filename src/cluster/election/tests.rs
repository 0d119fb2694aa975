//! The partition rules, command by command, on small images built through `apply`.

use super::*;
use crate::cluster::command::{MetadataCommand, MetadataResponse};
use crate::cluster::image::tests::rejection;

fn register(node_id: u64) -> MetadataCommand {
    MetadataCommand::RegisterNode {
        node_id,
        host: "127.0.0.1".into(),
        port: 9092,
        rack: None,
        incarnation: None,
        listeners: Vec::new(),
    }
}

fn beat(node_id: u64) -> MetadataCommand {
    MetadataCommand::Heartbeat { node_id, at_ms: 1 }
}

fn fence(node_id: u64) -> MetadataCommand {
    MetadataCommand::FenceNode {
        node_id,
        if_last_heartbeat_ms: None,
    }
}

fn create(partitions: Vec<Vec<u64>>) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: "t".into(),
        topic_id: "3f2a7c1e-9b4d-4e8a-a1c2-0d5e6f708192".into(),
        partitions,
        configs: BTreeMap::new(),
    }
}

fn alter_isr(leader: u64, epochs: (i32, i32), isr: Vec<u64>) -> MetadataCommand {
    MetadataCommand::AlterIsr {
        topic: "t".into(),
        partition: 0,
        leader,
        leader_epoch: epochs.0,
        partition_epoch: epochs.1,
        isr,
    }
}

fn reassign(target: Option<Vec<u64>>) -> MetadataCommand {
    MetadataCommand::Reassign {
        topic: "t".into(),
        partition: 0,
        target,
        keep_replication_factor: false,
    }
}

fn preferred() -> MetadataCommand {
    MetadataCommand::ElectPreferred {
        topic: "t".into(),
        partition: 0,
    }
}

fn ok(image: &mut MetadataImage, cmd: &MetadataCommand) {
    assert_eq!(image.apply(cmd), MetadataResponse::Ok, "{cmd:?}");
}

/// Nodes `1..=nodes` registered and unfenced, and topic `t` with one partition on `replicas`.
fn cluster(nodes: u64, replicas: Vec<u64>) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=nodes {
        ok(&mut image, &register(id));
        ok(&mut image, &beat(id));
    }
    ok(&mut image, &create(vec![replicas]));
    image
}

fn p0(image: &MetadataImage) -> &PartitionImage {
    image.partition("t", 0).expect("partition t-0")
}

/// (leader, isr, leader_epoch, partition_epoch)
fn state(image: &MetadataImage) -> (Option<u64>, Vec<u64>, i32, i32) {
    let p = p0(image);
    (p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch)
}

#[test]
fn new_partitions_are_led_by_the_first_eligible_replica() {
    let mut image = MetadataImage::default();
    (1..=3).for_each(|id| ok(&mut image, &register(id)));
    ok(&mut image, &beat(2));
    ok(&mut image, &create(vec![vec![1, 2, 3], vec![1, 3]]));
    let p1 = image.partition("t", 1).unwrap();
    assert_eq!((p1.leader, p1.isr.clone()), (None, vec![1, 3]));
    assert_eq!(state(&image), (Some(2), vec![1, 2, 3], 0, 0));
    // The first heartbeat of an ISR member elects the leaderless partition.
    ok(&mut image, &beat(3));
    let p1 = image.partition("t", 1).unwrap();
    assert_eq!(
        (p1.leader, p1.leader_epoch, p1.partition_epoch),
        (Some(3), 1, 1)
    );
    assert_eq!(state(&image), (Some(2), vec![1, 2, 3], 0, 0));
}

#[test]
fn a_fenced_leader_hands_over_to_the_next_isr_replica() {
    let mut image = cluster(3, vec![1, 2, 3]);
    ok(&mut image, &fence(1));
    assert_eq!(state(&image), (Some(2), vec![2, 3], 1, 1));
    // Fenced replicas are skipped: 3 leads after 2, and 2 leaves the ISR.
    ok(&mut image, &fence(2));
    assert_eq!(state(&image), (Some(3), vec![3], 2, 2));
    // Coming back does not take leadership or rejoin the ISR by itself.
    ok(&mut image, &beat(1));
    assert_eq!(state(&image), (Some(3), vec![3], 2, 2));
}

#[test]
fn the_last_isr_member_keeps_its_claim_and_leads_again_after_its_heartbeat() {
    let mut image = cluster(2, vec![1, 2]);
    ok(&mut image, &alter_isr(1, (0, 0), vec![1]));
    ok(&mut image, &fence(1));
    assert_eq!(state(&image), (None, vec![1], 1, 2));
    // Fencing again applies the same rules: nothing left to change.
    ok(&mut image, &fence(1));
    assert_eq!(state(&image), (None, vec![1], 1, 2));
    // Node 2 is out of sync: its heartbeat elects nobody (no unclean election).
    ok(&mut image, &beat(2));
    assert_eq!(state(&image), (None, vec![1], 1, 2));
    ok(&mut image, &beat(1));
    assert_eq!(state(&image), (Some(1), vec![1], 2, 3));
}

#[test]
fn a_fenced_follower_leaves_the_isr_unless_it_is_the_last_member() {
    let mut image = cluster(3, vec![1, 2, 3]);
    ok(&mut image, &fence(3));
    assert_eq!(state(&image), (Some(1), vec![1, 2], 0, 1));
    ok(&mut image, &fence(3));
    assert_eq!(state(&image), (Some(1), vec![1, 2], 0, 1));

    // The only ISR member, not leading (the partition is leaderless), stays in the ISR.
    let mut image = cluster(2, vec![1, 2]);
    ok(&mut image, &alter_isr(1, (0, 0), vec![1]));
    ok(&mut image, &fence(1));
    ok(&mut image, &beat(1));
    ok(&mut image, &fence(2));
    assert_eq!(state(&image), (Some(1), vec![1], 2, 3));
    image.topics.get_mut("t").unwrap().partitions[0].leader = None;
    ok(&mut image, &fence(1));
    assert_eq!(state(&image), (None, vec![1], 2, 3));
}

#[test]
fn a_re_registration_has_the_effects_of_fencing() {
    let mut image = cluster(3, vec![1, 2, 3]);
    ok(&mut image, &register(1));
    assert!(image.nodes[&1].fenced);
    assert_eq!(state(&image), (Some(2), vec![2, 3], 1, 1));
    ok(&mut image, &register(3));
    assert_eq!(state(&image), (Some(2), vec![2], 1, 2));
    // A first registration touches no partition.
    ok(&mut image, &register(4));
    assert_eq!(state(&image), (Some(2), vec![2], 1, 2));
}

#[test]
fn alter_isr_from_the_current_leader_replaces_the_isr() {
    let mut image = cluster(3, vec![1, 2, 3]);
    ok(&mut image, &alter_isr(1, (0, 0), vec![1, 3]));
    assert_eq!(state(&image), (Some(1), vec![1, 3], 0, 1));
    ok(&mut image, &alter_isr(1, (0, 1), vec![3, 1, 2]));
    assert_eq!(state(&image), (Some(1), vec![3, 1, 2], 0, 2));
    // A fenced node already in the ISR may stay in it.
    ok(&mut image, &alter_isr(1, (0, 2), vec![1, 2, 3]));
    image.nodes.get_mut(&3).unwrap().fenced = true;
    ok(&mut image, &alter_isr(1, (0, 3), vec![1, 3]));
    assert_eq!(state(&image), (Some(1), vec![1, 3], 0, 4));
}

#[test]
fn alter_isr_rejections() {
    let mut image = cluster(3, vec![1, 2, 3]);
    let mut other = alter_isr(1, (0, 0), vec![1]);
    if let MetadataCommand::AlterIsr { partition, .. } = &mut other {
        *partition = 1;
    }
    assert!(matches!(
        rejection(&mut image, &other),
        Rejection::UnknownPartition { partition: 1, .. }
    ));
    let fenced_epoch = |current_leader_epoch, given| Rejection::FencedLeaderEpoch {
        topic: "t".into(),
        partition: 0,
        current_leader_epoch,
        given,
    };
    let not_leader = alter_isr(2, (0, 0), vec![1, 2]);
    assert_eq!(rejection(&mut image, &not_leader), fenced_epoch(0, 0));
    let future_epoch = alter_isr(1, (1, 0), vec![1, 2]);
    assert_eq!(rejection(&mut image, &future_epoch), fenced_epoch(0, 1));
    let stale_version = alter_isr(1, (0, 3), vec![1, 2]);
    assert_eq!(
        rejection(&mut image, &stale_version),
        Rejection::InvalidUpdateVersion {
            topic: "t".into(),
            partition: 0,
            current: 0,
            given: 3
        }
    );
    for bad in [vec![1, 1, 2], vec![1, 4], vec![2, 3]] {
        assert!(matches!(
            rejection(&mut image, &alter_isr(1, (0, 0), bad)),
            Rejection::InvalidIsr { .. }
        ));
    }
    ok(&mut image, &alter_isr(1, (0, 0), vec![1]));
    ok(&mut image, &fence(2));
    let ineligible = Rejection::IneligibleReplica {
        topic: "t".into(),
        partition: 0,
        node_id: 2,
    };
    let rejoin = alter_isr(1, (0, 1), vec![1, 3, 2]);
    assert_eq!(rejection(&mut image, &rejoin), ineligible);
    ok(&mut image, &fence(1));
    assert_eq!(state(&image), (None, vec![1], 1, 2));
    let no_leader = alter_isr(1, (1, 2), vec![1]);
    assert_eq!(rejection(&mut image, &no_leader), fenced_epoch(1, 1));
}

#[test]
fn a_leader_with_a_stale_partition_epoch_is_refused_after_a_concurrent_change() {
    let mut image = cluster(3, vec![1, 2, 3]);
    ok(&mut image, &fence(3));
    let stale = alter_isr(1, (0, 0), vec![1, 2, 3]);
    assert!(matches!(
        rejection(&mut image, &stale),
        Rejection::InvalidUpdateVersion {
            current: 1,
            given: 0,
            ..
        }
    ));
}

#[test]
fn elect_preferred_outcomes() {
    let mut image = cluster(3, vec![1, 2, 3]);
    let not_needed = Rejection::ElectionNotNeeded {
        topic: "t".into(),
        partition: 0,
    };
    let unavailable = Rejection::PreferredLeaderNotAvailable {
        topic: "t".into(),
        partition: 0,
    };
    assert_eq!(rejection(&mut image, &preferred()), not_needed);
    ok(&mut image, &fence(1));
    assert_eq!(state(&image), (Some(2), vec![2, 3], 1, 1));
    // Out of the ISR.
    ok(&mut image, &beat(1));
    assert_eq!(rejection(&mut image, &preferred()), unavailable);
    // Back in the ISR but fenced.
    ok(&mut image, &alter_isr(2, (1, 1), vec![2, 3, 1]));
    image.nodes.get_mut(&1).unwrap().fenced = true;
    assert_eq!(rejection(&mut image, &preferred()), unavailable);
    image.nodes.get_mut(&1).unwrap().fenced = false;
    ok(&mut image, &preferred());
    assert_eq!(state(&image), (Some(1), vec![2, 3, 1], 2, 3));
    let missing = MetadataCommand::ElectPreferred {
        topic: "u".into(),
        partition: 0,
    };
    assert!(matches!(
        rejection(&mut image, &missing),
        Rejection::UnknownTopic { .. }
    ));
}

#[test]
fn a_reassignment_adds_then_completes_when_the_new_replica_is_in_sync() {
    let mut image = cluster(4, vec![1, 2, 3]);
    ok(&mut image, &reassign(Some(vec![1, 2, 4])));
    let p = p0(&image);
    assert_eq!(p.replicas, vec![1, 2, 4, 3]);
    assert_eq!(
        (p.adding_replicas.clone(), p.removing_replicas.clone()),
        (vec![4], vec![3])
    );
    assert!(p.is_reassigning());
    assert_eq!(state(&image), (Some(1), vec![1, 2, 3], 0, 1));

    ok(&mut image, &alter_isr(1, (0, 1), vec![1, 2, 3, 4]));
    let p = p0(&image);
    assert_eq!(p.replicas, vec![1, 2, 4]);
    assert!(!p.is_reassigning());
    assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
    assert_eq!(state(&image), (Some(1), vec![1, 2, 4], 0, 2));
}

#[test]
fn a_reassignment_that_drops_the_leader_elects_among_the_targets() {
    let mut image = cluster(4, vec![1, 2, 3]);
    ok(&mut image, &reassign(Some(vec![4, 3, 2])));
    assert_eq!(p0(&image).replicas, vec![4, 3, 2, 1]);
    assert_eq!(state(&image), (Some(1), vec![1, 2, 3], 0, 1));
    ok(&mut image, &alter_isr(1, (0, 1), vec![1, 2, 3, 4]));
    // 4 comes first among the targets and is in sync.
    assert_eq!(p0(&image).replicas, vec![4, 3, 2]);
    assert_eq!(state(&image), (Some(4), vec![2, 3, 4], 1, 2));
}

#[test]
fn a_reassignment_to_in_sync_replicas_completes_at_once() {
    let mut image = cluster(3, vec![1, 2, 3]);
    ok(&mut image, &reassign(Some(vec![3, 2])));
    let p = p0(&image);
    assert_eq!(
        (p.replicas.clone(), p.is_reassigning()),
        (vec![3, 2], false)
    );
    assert_eq!(state(&image), (Some(3), vec![2, 3], 1, 1));
}

#[test]
fn cancelling_restores_the_original_replicas() {
    let mut image = cluster(5, vec![1, 2, 3]);
    let none = Rejection::NoReassignmentInProgress {
        topic: "t".into(),
        partition: 0,
    };
    assert_eq!(rejection(&mut image, &reassign(None)), none);
    ok(&mut image, &reassign(Some(vec![4, 5])));
    assert_eq!(p0(&image).replicas, vec![4, 5, 1, 2, 3]);
    ok(&mut image, &alter_isr(1, (0, 1), vec![1, 2, 3, 4]));
    // Elections follow replica order, where the targets come first: 4 takes over.
    ok(&mut image, &fence(1));
    assert_eq!(state(&image), (Some(4), vec![2, 3, 4], 1, 3));
    ok(&mut image, &fence(2));
    ok(&mut image, &fence(3));
    assert_eq!(state(&image), (Some(4), vec![4], 1, 5));

    // Replacing starts from the original replicas [1, 2, 3]: 4 is no longer a replica, so it
    // leaves the ISR and its leadership goes to nobody (no original replica is in sync).
    ok(&mut image, &reassign(Some(vec![5, 3])));
    let p = p0(&image);
    assert_eq!(p.replicas, vec![5, 3, 1, 2]);
    assert_eq!(
        (p.adding_replicas.clone(), p.removing_replicas.clone()),
        (vec![5], vec![1, 2])
    );
    assert_eq!(state(&image), (None, vec![], 2, 6));

    ok(&mut image, &reassign(None));
    let p = p0(&image);
    assert_eq!(p.replicas, vec![3, 1, 2]);
    assert!(!p.is_reassigning());
    assert_eq!(state(&image), (None, vec![], 2, 7));
    assert_eq!(rejection(&mut image, &reassign(None)), none);
}

#[test]
fn cancelling_re_elects_a_leader_that_was_being_added() {
    let mut image = cluster(4, vec![1, 2]);
    ok(&mut image, &reassign(Some(vec![4, 3])));
    ok(&mut image, &alter_isr(1, (0, 1), vec![1, 2, 4]));
    ok(&mut image, &fence(1));
    assert_eq!(state(&image), (Some(4), vec![2, 4], 1, 3));
    ok(&mut image, &reassign(None));
    let p = p0(&image);
    assert_eq!(p.replicas, vec![1, 2]);
    assert_eq!(state(&image), (Some(2), vec![2], 2, 4));
}

#[test]
fn reassign_rejects_bad_targets() {
    let mut image = cluster(3, vec![1, 2, 3]);
    for bad in [vec![], vec![1, 1]] {
        assert!(matches!(
            rejection(&mut image, &reassign(Some(bad))),
            Rejection::InvalidReplicaAssignment { .. }
        ));
    }
    assert_eq!(
        rejection(&mut image, &reassign(Some(vec![1, 9]))),
        Rejection::UnknownNode { node_id: 9 }
    );
}

#[test]
fn reassign_keeping_the_replication_factor_counts_the_original_replicas() {
    let mut image = cluster(4, vec![1, 2, 3]);
    let keep = |target: Vec<u64>| MetadataCommand::Reassign {
        topic: "t".into(),
        partition: 0,
        target: Some(target),
        keep_replication_factor: true,
    };
    assert!(matches!(
        rejection(&mut image, &keep(vec![1, 2])),
        Rejection::ReplicationFactorChange { from: 3, to: 2, .. }
    ));
    ok(&mut image, &keep(vec![1, 2, 4]));
    // Replacing the one in progress: still measured against the original three.
    assert!(matches!(
        rejection(&mut image, &keep(vec![1, 2, 3, 4])),
        Rejection::ReplicationFactorChange { from: 3, to: 4, .. }
    ));
    ok(&mut image, &keep(vec![4, 3, 2]));
}

#[test]
fn a_reassign_command_without_the_replication_factor_flag_still_loads() {
    let old = r#"{"type":"reassign","topic":"t","partition":0,"target":null}"#;
    let command: MetadataCommand = serde_json::from_str(old).unwrap();
    assert_eq!(command, reassign(None));
}

#[test]
fn a_partition_image_without_reassignment_fields_still_loads() {
    let old = r#"{"replicas":[1,2],"isr":[1],"leader":1,"leader_epoch":3,"partition_epoch":5}"#;
    let image: PartitionImage = serde_json::from_str(old).unwrap();
    assert!(!image.is_reassigning());
    assert_eq!((image.leader, image.partition_epoch), (Some(1), 5));
    let back: PartitionImage =
        serde_json::from_str(&serde_json::to_string(&image).unwrap()).unwrap();
    assert_eq!(back, image);
}

#[test]
fn the_same_commands_give_the_same_image() {
    let commands = vec![
        register(1),
        register(2),
        register(3),
        register(4),
        beat(2),
        beat(3),
        create(vec![vec![1, 2, 3], vec![3, 1]]),
        beat(1),
        fence(2),
        reassign(Some(vec![4, 1])),
        beat(4),
        alter_isr(3, (1, 2), vec![3, 1, 4]),
        preferred(),
        register(3),
        reassign(None),
        fence(1),
    ];
    let run = || {
        let mut image = MetadataImage::default();
        let answers: Vec<_> = commands.iter().map(|c| image.apply(c)).collect();
        (image, answers)
    };
    let (first, answers) = run();
    assert_eq!(run(), (first.clone(), answers));
    assert!(first.topics["t"]
        .partitions
        .iter()
        .all(|p| p.partition_epoch > 0));
}

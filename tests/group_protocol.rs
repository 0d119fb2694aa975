//! The group APIs at the protocol level: Kafka's error codes per state, KIP-394 member ids,
//! batched FindCoordinator, standalone commits, and a stalled group not holding up others.

mod support;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use support::kafka::{create, name, s};
use support::{Raw, Spool};

fn join(group: &str, member: &str, session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(60_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(&[
                0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
            ]))])
}

fn commit(group: &str, generation: i32, member: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name("t"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])])
}

#[test]
fn membership_follows_kafka_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &["--set", "group_initial_rebalance_delay_ms=0"]);
    let mut c = Raw::connect(&spool.addr);
    let _: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &create("t", 1, &[]));

    let r: FindCoordinatorResponse = c.request(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![s("a"), s("b")]),
    );
    assert_eq!(r.coordinators.len(), 2);
    assert!(r
        .coordinators
        .iter()
        .all(|k| k.error_code == 0 && k.node_id == BrokerId(1)));
    let r: FindCoordinatorResponse = c.request(
        ApiKey::FindCoordinator,
        1,
        &FindCoordinatorRequest::default().with_key(s("g")),
    );
    assert_eq!((r.error_code, r.node_id), (0, BrokerId(1)));

    let r: JoinGroupResponse = c.request(ApiKey::JoinGroup, 5, &join("g", "", 1000));
    assert_eq!(
        r.error_code, 26,
        "INVALID_SESSION_TIMEOUT below group_min_session_timeout_ms"
    );
    let r: JoinGroupResponse = c.request(ApiKey::JoinGroup, 5, &join("", "", 10_000));
    assert_eq!(r.error_code, 24, "INVALID_GROUP_ID");
    let first: JoinGroupResponse = c.request(ApiKey::JoinGroup, 5, &join("g", "", 10_000));
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED (KIP-394)");
    let member = first.member_id.to_string();
    assert!(member.starts_with("spool-test-"), "{member}");
    let joined: JoinGroupResponse = c.request(ApiKey::JoinGroup, 5, &join("g", &member, 10_000));
    assert_eq!(
        (
            joined.error_code,
            joined.generation_id,
            joined.leader.as_str()
        ),
        (0, 1, member.as_str())
    );
    assert_eq!(joined.members.len(), 1, "the leader gets the members");
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));

    let hb = |c: &mut Raw, generation: i32, member: &str| -> i16 {
        let r: HeartbeatResponse = c.request(
            ApiKey::Heartbeat,
            4,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(generation)
                .with_member_id(s(member)),
        );
        r.error_code
    };
    assert_eq!(hb(&mut c, 1, "nobody"), 25, "UNKNOWN_MEMBER_ID");
    assert_eq!(hb(&mut c, 7, &member), 22, "ILLEGAL_GENERATION");
    assert_eq!(
        hb(&mut c, 1, &member),
        0,
        "CompletingRebalance heartbeats are fine"
    );
    let sync = |generation: i32| {
        SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(generation)
            .with_member_id(s(&member))
            .with_assignments(vec![
                kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(Bytes::from_static(b"mine")),
            ])
    };
    let r: SyncGroupResponse = c.request(ApiKey::SyncGroup, 3, &sync(9));
    assert_eq!(r.error_code, 22, "ILLEGAL_GENERATION");
    let r: SyncGroupResponse = c.request(ApiKey::SyncGroup, 3, &sync(1));
    assert_eq!((r.error_code, &r.assignment[..]), (0, &b"mine"[..]));

    // Commits: a member of the generation may; a standalone commit into an active group may not.
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &commit("g", 1, &member, 5));
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &commit("g", -1, "", 6));
    assert_eq!(
        r.topics[0].partitions[0].error_code, 25,
        "UNKNOWN_MEMBER_ID for a standalone commit"
    );
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &commit("g", 0, &member, 6));
    assert_eq!(
        r.topics[0].partitions[0].error_code, 22,
        "ILLEGAL_GENERATION"
    );
    let mut unknown = commit("g", 1, &member, 6);
    unknown.topics[0].name = name("nope");
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 8, &unknown);
    assert_eq!(
        r.topics[0].partitions[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    let r: OffsetCommitResponse = c.request(ApiKey::OffsetCommit, 9, &commit("fresh", 3, "m", 1));
    assert_eq!(
        r.topics[0].partitions[0].error_code, 69,
        "GROUP_ID_NOT_FOUND (v9)"
    );

    let described: DescribeGroupsResponse = c.request(
        ApiKey::DescribeGroups,
        6,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g")), GroupId(s("missing"))]),
    );
    assert_eq!(described.groups[0].group_state.as_str(), "Stable");
    assert_eq!(described.groups[0].protocol_data.as_str(), "range");
    assert_eq!(
        &described.groups[0].members[0].member_assignment[..],
        b"mine"
    );
    assert_eq!(
        (
            described.groups[1].error_code,
            described.groups[1].group_state.as_str()
        ),
        (69, "Dead")
    );
    let deleted: DeleteGroupsResponse = c.request(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s("g")), GroupId(s("missing"))]),
    );
    assert_eq!(
        deleted
            .results
            .iter()
            .map(|r| r.error_code)
            .collect::<Vec<_>>(),
        [68, 69],
        "NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND"
    );

    let left: LeaveGroupResponse = c.request(
        ApiKey::LeaveGroup,
        4,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_members(vec![
                kafka_protocol::messages::leave_group_request::MemberIdentity::default()
                    .with_member_id(s(&member)),
                kafka_protocol::messages::leave_group_request::MemberIdentity::default()
                    .with_member_id(s("ghost")),
            ]),
    );
    assert_eq!(
        left.members
            .iter()
            .map(|m| m.error_code)
            .collect::<Vec<_>>(),
        [0, 25]
    );
    let listed: ListGroupsResponse = c.request(
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default().with_states_filter(vec![s("Empty")]),
    );
    assert!(listed
        .groups
        .iter()
        .any(|g| &*g.group_id.0 == "g" && g.group_state.as_str() == "Empty"));
    let fetched: OffsetFetchResponse = c.request(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(None),
        ]),
    );
    assert_eq!(
        fetched.groups[0].topics[0].partitions[0].committed_offset,
        5
    );
    let deleted: DeleteGroupsResponse = c.request(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]),
    );
    assert_eq!(deleted.results[0].error_code, 0);
    let fetched: OffsetFetchResponse = c.request(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(None),
        ]),
    );
    assert!(
        fetched.groups[0].topics.is_empty(),
        "deleted with its offsets"
    );
}

#[test]
fn a_stalled_group_does_not_hold_up_another() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &["--set", "group_initial_rebalance_delay_ms=0"]);
    // Group "stuck": a member joins, then a second joins and its join waits for the first
    // member, which never rejoins, for the whole rebalance timeout (60 s).
    let mut a = Raw::connect(&spool.addr);
    let id: JoinGroupResponse = a.request(ApiKey::JoinGroup, 5, &join("stuck", "", 30_000));
    let joined: JoinGroupResponse =
        a.request(ApiKey::JoinGroup, 5, &join("stuck", &id.member_id, 30_000));
    assert_eq!(joined.error_code, 0);
    let mut b = Raw::connect(&spool.addr);
    let id_b: JoinGroupResponse = b.request(ApiKey::JoinGroup, 5, &join("stuck", "", 30_000));
    b.send(
        ApiKey::JoinGroup,
        5,
        &join("stuck", &id_b.member_id, 30_000),
    );
    // Meanwhile another group forms, syncs and commits at once.
    let mut c = Raw::connect(&spool.addr);
    let _: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &create("t", 1, &[]));
    let started = std::time::Instant::now();
    let id_c: JoinGroupResponse = c.request(ApiKey::JoinGroup, 5, &join("free", "", 30_000));
    let joined_c: JoinGroupResponse =
        c.request(ApiKey::JoinGroup, 5, &join("free", &id_c.member_id, 30_000));
    assert_eq!(joined_c.error_code, 0);
    let r: OffsetCommitResponse = c.request(
        ApiKey::OffsetCommit,
        8,
        &commit("free", joined_c.generation_id, &id_c.member_id, 1),
    );
    assert_eq!(
        r.topics[0].partitions[0].error_code, 27,
        "REBALANCE_IN_PROGRESS until synced"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the free group waited on the stuck one"
    );
}

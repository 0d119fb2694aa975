//! The quorum end to end: real controllers on 127.0.0.1 ephemeral ports with temp dirs. Waits
//! poll with a deadline; nothing sleeps to synchronise.

use super::network::{self, LeaderReply, LeaderRequest, RpcSettings, MAX_FRAME_BYTES};
use super::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Generous: two cores may be busy compiling while these run.
const DEADLINE: Duration = Duration::from_secs(30);

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start(node_id: RaftNodeId, dir: &Path, listen: &str) -> Controller {
    Controller::start(ControllerConfig::new(node_id, dir, listen))
        .await
        .expect("the controller starts")
}

/// A loopback address whose port was free a moment ago.
fn free_addr() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().to_string()
}

/// Starts `count` controllers (ids 1..=count), each configured with all of them as voters (as
/// a broker is), and forms a quorum of them.
async fn start_quorum(count: u64) -> (Vec<TempDir>, Vec<Controller>) {
    let dirs: Vec<TempDir> = (0..count).map(|_| tempfile::tempdir().unwrap()).collect();
    let voters: BTreeMap<RaftNodeId, String> = (1..=count).map(|id| (id, free_addr())).collect();
    let mut nodes = Vec::new();
    for (id, dir) in (1..=count).zip(&dirs) {
        let mut config = ControllerConfig::new(id, dir.path(), voters[&id].clone());
        config.voters = voters.clone();
        nodes.push(
            Controller::start(config)
                .await
                .expect("the controller starts"),
        );
    }
    nodes[0]
        .initialize(voters)
        .await
        .expect("a fresh quorum initializes");
    (dirs, nodes)
}

/// Waits until every node names the same leader, one of them, and returns it.
async fn agreed_leader(nodes: &[Controller]) -> RaftNodeId {
    let agreed = || {
        let first = nodes[0].leader()?;
        let all_agree = nodes.iter().all(|c| c.leader() == Some(first));
        let leads = nodes.iter().any(|c| c.node_id() == first && c.is_leader());
        (all_agree && leads).then_some(first)
    };
    eventually("an agreed leader", || agreed().is_some()).await;
    agreed().expect("checked above")
}

/// Waits until every node has applied the same image as `nodes[0]`, containing `topic`.
async fn converged(nodes: &[Controller], topic: &str) -> Arc<MetadataImage> {
    let same = || {
        let first = nodes[0].image();
        first.topics.contains_key(topic) && nodes.iter().all(|c| *c.image() == *first)
    };
    eventually(&format!("every node to apply topic {topic}"), same).await;
    nodes[0].image()
}

fn register(node_id: RaftNodeId) -> MetadataCommand {
    MetadataCommand::RegisterNode {
        node_id,
        host: "127.0.0.1".into(),
        port: 9092 + node_id as u16,
        rack: Some(format!("rack-{}", node_id % 2)),
        incarnation: None,
        listeners: Vec::new(),
    }
}

fn create_topic(name: &str, partitions: Vec<Vec<u64>>) -> MetadataCommand {
    let mut configs = BTreeMap::new();
    configs.insert("retention.ms".to_string(), "3600000".to_string());
    MetadataCommand::CreateTopic {
        name: name.into(),
        topic_id: uuid::Uuid::new_v4().to_string(),
        partitions,
        configs,
    }
}

fn change_partition(topic: &str, leader: u64, isr: Vec<u64>, leader_epoch: i32) -> MetadataCommand {
    MetadataCommand::ChangePartition {
        topic: topic.into(),
        partition: 0,
        leader: Some(leader),
        isr,
        leader_epoch,
    }
}

async fn propose_ok(node: &Controller, command: MetadataCommand) {
    let what = format!("{command:?}");
    let response = node.propose(command).await.expect("the quorum answers");
    assert_eq!(response, MetadataResponse::Ok, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_of_one_keeps_its_image_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(1, dir.path(), "127.0.0.1:0").await;
    let addr = node.local_addr().to_string();
    node.initialize(BTreeMap::from([(1, addr.clone())]))
        .await
        .unwrap();
    propose_ok(&node, register(1)).await;
    propose_ok(
        &node,
        MetadataCommand::Heartbeat {
            node_id: 1,
            at_ms: 1_000,
        },
    )
    .await;
    propose_ok(&node, create_topic("orders", vec![vec![1], vec![1]])).await;
    let again = node
        .propose(create_topic("orders", vec![vec![1]]))
        .await
        .unwrap();
    assert!(matches!(
        again,
        MetadataResponse::Rejected(Rejection::TopicExists { .. })
    ));

    let before = node.image();
    assert_eq!(before.partition("orders", 1).unwrap().leader, Some(1));
    assert!(!before.nodes[&1].fenced);
    node.shutdown().await.unwrap();

    let node = start(1, dir.path(), &addr).await;
    // Committed entries are re-applied at start, before any election.
    assert_eq!(*node.image(), *before, "the image right after the restart");
    assert!(node.is_initialized().await.unwrap());
    // Forming the quorum again changes nothing.
    node.initialize(BTreeMap::from([(1, addr)])).await.unwrap();
    assert_eq!(*node.image(), *before);
    propose_ok(&node, create_topic("payments", vec![vec![1]])).await;
    assert_eq!(node.image().topics.len(), 2);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_apply_every_command_everywhere() {
    let (_dirs, nodes) = start_quorum(3).await;
    let leader = agreed_leader(&nodes).await;
    // Each node proposes its own registration: two of them are forwarded to the leader.
    for node in &nodes {
        propose_ok(node, register(node.node_id())).await;
    }
    // Unfenced, so that the first replica of each new partition can lead it.
    for node in &nodes {
        let heartbeat = MetadataCommand::Heartbeat {
            node_id: node.node_id(),
            at_ms: 1_000,
        };
        propose_ok(node, heartbeat).await;
    }
    let follower = nodes.iter().find(|c| c.node_id() != leader).unwrap();
    propose_ok(
        follower,
        create_topic("orders", vec![vec![1, 2, 3], vec![2, 3, 1]]),
    )
    .await;
    let image = converged(&nodes, "orders").await;
    let p0 = image.partition("orders", 0).unwrap();
    assert_eq!(
        (p0.leader, p0.leader_epoch, p0.isr.clone()),
        (Some(1), 0, vec![1, 2, 3])
    );
    assert_eq!(image.nodes.len(), 3);

    let stale = follower
        .propose(change_partition("orders", 2, vec![2, 3], 0))
        .await
        .unwrap();
    let expected = Rejection::StaleEpoch {
        topic: "orders".into(),
        partition: 0,
        current: 0,
        given: 0,
    };
    assert_eq!(stale, MetadataResponse::Rejected(expected));
    propose_ok(follower, change_partition("orders", 2, vec![2, 3], 1)).await;
    let moved =
        |c: &Controller| c.image().partition("orders", 0).map(|p| p.leader_epoch) == Some(1);
    eventually("every node to apply the leader change", || {
        nodes.iter().all(moved)
    })
    .await;
    converged(&nodes, "orders").await;

    // A node that is not a voter still applies everything.
    let learner_dir = tempfile::tempdir().unwrap();
    // It knows the voters, as a node joining a cluster is configured with them: until it hears
    // from the quorum, they are the only peers its controller serves.
    let mut config = ControllerConfig::new(4, learner_dir.path(), "127.0.0.1:0");
    config.voters = nodes
        .iter()
        .map(|c| (c.node_id(), c.local_addr().to_string()))
        .collect();
    let learner = Controller::start(config).await.unwrap();
    follower
        .add_learner(4, learner.local_addr().to_string())
        .await
        .unwrap();
    let caught_up = || *learner.image() == *nodes[0].image();
    eventually("the learner to catch up", caught_up).await;
    let membership = learner.raft().metrics().borrow().membership_config.clone();
    assert!(!membership.membership().voter_ids().any(|id| id == 4));

    learner.shutdown().await.unwrap();
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivors_elect_a_new_leader_and_the_old_one_catches_up() {
    let (dirs, mut nodes) = start_quorum(3).await;
    let old_leader = agreed_leader(&nodes).await;
    for id in 1..=3 {
        propose_ok(&nodes[0], register(id)).await;
    }
    propose_ok(&nodes[1], create_topic("orders", vec![vec![1, 2, 3]])).await;
    converged(&nodes, "orders").await;

    let position = nodes
        .iter()
        .position(|c| c.node_id() == old_leader)
        .unwrap();
    let old = nodes.remove(position);
    let old_addr = old.local_addr().to_string();
    let stopped_at = Instant::now();
    old.shutdown().await.unwrap();

    let new_leader = agreed_leader(&nodes).await;
    assert_ne!(new_leader, old_leader);
    let failover = stopped_at.elapsed();
    assert!(
        failover < Duration::from_secs(10),
        "failover took {failover:?}"
    );

    // The survivors keep applying: the old leader loses its partition leadership.
    let isr: Vec<u64> = nodes.iter().map(|c| c.node_id()).collect();
    propose_ok(
        &nodes[0],
        change_partition("orders", new_leader, isr.clone(), 1),
    )
    .await;
    propose_ok(
        &nodes[1],
        MetadataCommand::FenceNode {
            node_id: old_leader,
            if_last_heartbeat_ms: None,
        },
    )
    .await;
    propose_ok(&nodes[1], create_topic("after-failover", vec![isr])).await;
    converged(&nodes, "after-failover").await;

    // Compact the leader's log past everything the old node has, so that it can only catch up
    // through InstallSnapshot.
    let leader = nodes.iter().find(|c| c.node_id() == new_leader).unwrap();
    let applied = leader.applied_index().unwrap();
    leader.raft().trigger().snapshot().await.unwrap();
    let snapshotted =
        || leader.raft().metrics().borrow().snapshot.map(|s| s.index) >= Some(applied);
    eventually("the leader's snapshot", snapshotted).await;
    leader.raft().trigger().purge_log(applied).await.unwrap();
    let purged = || leader.raft().metrics().borrow().purged.map(|p| p.index) >= Some(applied);
    eventually("the leader's log purge", purged).await;

    let old = start(old_leader, dirs[position].path(), &old_addr).await;
    nodes.push(old);
    let image = converged(&nodes, "after-failover").await;
    assert_eq!(image.partition("orders", 0).unwrap().leader_epoch, 1);
    assert!(image.nodes[&old_leader].fenced);
    let old = nodes.last().unwrap();
    // Its log was purged on the leader: only the leader's snapshot can have brought it here.
    let installed = || old.raft().metrics().borrow().snapshot.map(|s| s.index) >= Some(applied);
    eventually(
        "the old node's metrics to show the installed snapshot",
        installed,
    )
    .await;
    // And it can write again, through the new leader.
    propose_ok(
        old,
        MetadataCommand::Heartbeat {
            node_id: old_leader,
            at_ms: 5,
        },
    )
    .await;
    let unfenced = |c: &Controller| !c.image().nodes[&old_leader].fenced;
    eventually("every node to apply the heartbeat", || {
        nodes.iter().all(unfenced)
    })
    .await;

    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_is_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(1, dir.path(), "127.0.0.1:0").await;
    let addr = node.local_addr().to_string();
    node.initialize(BTreeMap::from([(1, addr.clone())]))
        .await
        .unwrap();

    eventually("leadership", || node.is_leader()).await;

    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    socket
        .write_all(&(MAX_FRAME_BYTES + 1).to_be_bytes())
        .await
        .unwrap();
    // The server may close as soon as it has read the size.
    let _ = socket.write_all(b"{\"vote\":").await;
    let mut answer = [0u8; 16];
    let read = tokio::time::timeout(DEADLINE, socket.read(&mut answer))
        .await
        .expect("the server closes the connection");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "nothing but a close: {read:?}"
    );

    // A well-formed request on a new connection is still served.
    let settings = client_settings(MAX_FRAME_BYTES);
    let request = LeaderRequest::Propose(register(1));
    let node_info = openraft::BasicNode::new(addr);
    let reply = network::forward(&settings, 1, node_info, request, DEADLINE)
        .await
        .expect("the RPC listener answers");
    assert!(
        matches!(reply, Ok(LeaderReply::Applied(MetadataResponse::Ok))),
        "{reply:?}"
    );
    assert!(node.image().nodes.contains_key(&1));
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn frame_bounds_are_checked_before_allocating() {
    // Announces 4 GiB - 1 and carries nothing: the size check must come first.
    let mut huge: &[u8] = &u32::MAX.to_be_bytes();
    let refused = network::read_frame(&mut huge, "peer", MAX_FRAME_BYTES).await;
    assert!(
        matches!(refused, Err(ClusterError::FrameTooLarge { size, .. }) if size == u64::from(u32::MAX))
    );

    let mut framed = Vec::new();
    network::write_frame(&mut framed, "peer", b"{}")
        .await
        .unwrap();
    let mut reader: &[u8] = &framed;
    let body = network::read_frame(&mut reader, "peer", 2).await.unwrap();
    assert_eq!(body.as_deref(), Some(&b"{}"[..]));
    assert!(network::read_frame(&mut reader, "peer", 2)
        .await
        .unwrap()
        .is_none());
}

fn client_settings(max_frame_bytes: u32) -> RpcSettings {
    RpcSettings {
        node_id: 99,
        connect_timeout: Duration::from_secs(1),
        max_frame_bytes,
        source: None,
    }
}

#[tokio::test]
async fn unreachable_peer_is_reported_as_unreachable() {
    use openraft::error::RPCError;
    use openraft::network::RPCOption;
    use openraft::RaftNetwork;
    // A port that was just free: nothing listens there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let node = openraft::BasicNode::new(addr);
    let mut client = network::PeerClient::new(client_settings(MAX_FRAME_BYTES), 2, node);
    let vote = openraft::raft::VoteRequest {
        vote: openraft::Vote::new(1, 99),
        last_log_id: None,
    };
    let answer = client.vote(vote, RPCOption::new(DEADLINE)).await;
    assert!(
        matches!(answer, Err(RPCError::Unreachable(_))),
        "{answer:?}"
    );
}

#[tokio::test]
async fn an_oversized_append_asks_openraft_for_smaller_batches() {
    use openraft::error::RPCError;
    use openraft::network::RPCOption;
    use openraft::RaftNetwork;
    let node = openraft::BasicNode::new("127.0.0.1:9".to_string());
    let mut client = network::PeerClient::new(client_settings(64), 2, node);
    let entries = (1..=4)
        .map(|index| openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Normal(register(index)),
        })
        .collect();
    let append = openraft::raft::AppendEntriesRequest {
        vote: openraft::Vote::new_committed(1, 1),
        prev_log_id: None,
        entries,
        leader_commit: None,
    };
    // Refused before connecting: nothing listens on the discard port here.
    let answer = client
        .append_entries(append, RPCOption::new(DEADLINE))
        .await;
    match answer {
        Err(RPCError::PayloadTooLarge(hint)) => assert_eq!(hint.entries_hint(), 2),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
}

/// A raw RPC exchange: `Some(answer)` or `None` when the server closed the connection.
async fn raw_rpc(
    socket: &mut tokio::net::TcpStream,
    request: &network::RpcRequest,
) -> Option<Vec<u8>> {
    let body = serde_json::to_vec(request).unwrap();
    network::write_frame(socket, "node", &body).await.ok()?;
    tokio::time::timeout(
        DEADLINE,
        network::read_frame(socket, "node", MAX_FRAME_BYTES),
    )
    .await
    .expect("an answer or a close, not silence")
    .ok()
    .flatten()
}

async fn connect_from(source: &str, addr: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr.parse().unwrap()).await.unwrap()
}

async fn closed(socket: &mut tokio::net::TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(DEADLINE, socket.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_serves_only_its_voters() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ControllerConfig::new(1, dir.path(), "127.0.0.1:0");
    config.rpc_limits = network::RpcLimits {
        max_connections: 8,
        idle: Duration::from_millis(500),
        read_timeout: Duration::from_millis(500),
    };
    let node = Controller::start(config).await.unwrap();
    let addr = node.local_addr().to_string();
    node.initialize(BTreeMap::from([(1, addr.clone())]))
        .await
        .unwrap();
    eventually("leadership", || node.is_leader()).await;
    let term = || node.raft().metrics().borrow().current_term;
    let term_before = term();

    // From an address that is no member's: closed before anything is read.
    let mut stranger = connect_from("127.0.0.2", &addr).await;
    let propose = network::RpcRequest::Leader(LeaderRequest::Propose(register(7)));
    assert_eq!(raw_rpc(&mut stranger, &propose).await, None);
    let mut settings = client_settings(MAX_FRAME_BYTES);
    settings.source = Some("127.0.0.2".parse().unwrap());
    let forwarded = network::forward(
        &settings,
        1,
        openraft::BasicNode::new(addr.clone()),
        LeaderRequest::Propose(register(7)),
        DEADLINE,
    )
    .await;
    assert!(forwarded.is_err(), "a stranger's write was answered");
    assert!(
        !node.image().nodes.contains_key(&7),
        "a stranger's write was applied"
    );

    // From the member's address, a vote for a node that is not a voter: refused, and the
    // leader keeps its term.
    let mut forger = connect_from("127.0.0.1", &addr).await;
    let vote = network::RpcRequest::Vote(openraft::raft::VoteRequest::new(
        openraft::Vote::new(term_before + 5, 9),
        None,
    ));
    assert_eq!(
        raw_rpc(&mut forger, &vote).await,
        None,
        "the forged vote was answered"
    );
    assert_eq!(term(), term_before, "a forged vote changed the term");
    assert!(node.is_leader());

    // Idle connections are closed, and connections past the limit are closed at once rather
    // than left waiting.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(connect_from("127.0.0.1", &addr).await);
    }
    let mut ninth = connect_from("127.0.0.1", &addr).await;
    assert!(
        closed(&mut ninth).await,
        "a connection past the limit was kept"
    );
    let started = Instant::now();
    for socket in &mut idle {
        assert!(closed(socket).await, "an idle connection was kept");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // A frame begun and not finished is cut off.
    let mut slow = connect_from("127.0.0.1", &addr).await;
    slow.write_all(&[0, 0, 1, 0, b'{']).await.unwrap();
    assert!(closed(&mut slow).await, "a trickling frame was kept");

    // The member itself is served throughout.
    let reply = network::forward(
        &client_settings(MAX_FRAME_BYTES),
        1,
        openraft::BasicNode::new(addr),
        LeaderRequest::Propose(register(1)),
        DEADLINE,
    )
    .await
    .expect("the member is answered");
    assert!(
        matches!(reply, Ok(LeaderReply::Applied(MetadataResponse::Ok))),
        "{reply:?}"
    );
    node.shutdown().await.unwrap();
}

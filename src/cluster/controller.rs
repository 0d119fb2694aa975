//! [`Controller`]: the handle a node holds on the metadata quorum. It owns the Raft instance,
//! the controller RPC listener, and a view of the applied image.

use super::durable;
use super::image::MetadataImage;
use super::log_store::LogStore;
use super::network::{self, CallError, LeaderReply, LeaderRequest, NetworkFactory, RpcSettings};
use super::quorum::{self, QuorumTimes, QuorumView};
use super::state_machine::StateMachineStore;
use super::{ClusterError, MetadataCommand, MetadataRaft, MetadataResponse, RaftNodeId};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How a node runs its part of the quorum.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub node_id: RaftNodeId,
    /// The quorum directory: log, vote, committed id, snapshot. One per node.
    pub dir: PathBuf,
    /// Where the controller RPC listens, `host:port` (port 0 picks a free one).
    pub listen: String,
    /// The address other controllers use to reach this one; the bound address when `None`.
    pub advertised_addr: Option<String>,
    /// The configured voters (`controller_quorum_voters`), id to `host:port`. With the quorum's
    /// own membership they decide who may talk to the controller RPC (see
    /// [`network::PeerAccess`]); empty for a quorum of one.
    pub voters: std::collections::BTreeMap<RaftNodeId, String>,
    /// Limits of the controller RPC listener's connections.
    pub rpc_limits: network::RpcLimits,
    /// How often the leader replicates or heartbeats; also the AppendEntries RPC timeout.
    pub heartbeat_interval: Duration,
    /// A follower that hears no leader for a random time in [min, max) starts an election.
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// How long a TCP connect to another controller may take.
    pub connect_timeout: Duration,
    /// How long [`Controller::propose`] keeps looking for a leader that accepts the write.
    pub propose_timeout: Duration,
    /// Build a snapshot once this many entries were applied since the last one.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log behind a snapshot, so that slightly lagging followers catch up
    /// from the log rather than by a snapshot.
    pub entries_kept_after_snapshot: u64,
}

impl ControllerConfig {
    /// Defaults sized for a small cluster on ordinary disks: elections tolerate an fsync stall of
    /// a few hundred milliseconds.
    pub fn new(node_id: RaftNodeId, dir: impl Into<PathBuf>, listen: impl Into<String>) -> Self {
        ControllerConfig {
            node_id,
            dir: dir.into(),
            listen: listen.into(),
            advertised_addr: None,
            voters: Default::default(),
            rpc_limits: network::RpcLimits::default(),
            heartbeat_interval: Duration::from_millis(150),
            election_timeout_min: Duration::from_millis(750),
            election_timeout_max: Duration::from_millis(1500),
            connect_timeout: Duration::from_millis(500),
            propose_timeout: Duration::from_secs(10),
            snapshot_after_entries: 1000,
            entries_kept_after_snapshot: 100,
        }
    }

    fn raft_config(&self) -> Result<openraft::Config, ClusterError> {
        let millis = |d: Duration| d.as_millis() as u64;
        let config = openraft::Config {
            cluster_name: "spool-metadata".to_string(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            install_snapshot_timeout: millis(self.election_timeout_max),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_entries),
            max_in_snapshot_log_to_keep: self.entries_kept_after_snapshot,
            // About 2 MiB as a JSON frame, well under the frame limit.
            snapshot_max_chunk_size: 512 * 1024,
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|e| ClusterError::Config(Box::new(e)))
    }
}

/// A node's handle on the metadata quorum. Cheap to share behind an `Arc`; every method takes
/// `&self` except [`Controller::shutdown`].
pub struct Controller {
    node_id: RaftNodeId,
    raft: MetadataRaft,
    image: watch::Receiver<Arc<MetadataImage>>,
    local_addr: SocketAddr,
    rpc: RpcSettings,
    propose_timeout: Duration,
    election_timeout_max: Duration,
    shutdown: CancellationToken,
    /// Taken by [`Controller::shutdown`].
    server: std::sync::Mutex<Option<JoinHandle<()>>>,
    quorum_times: Arc<QuorumTimes>,
}

impl Controller {
    /// Opens the quorum directory (keeping any vote, log and snapshot from a previous run), binds
    /// the controller listener and starts Raft. A restarted node rejoins on its own; a brand-new
    /// cluster waits for [`Controller::initialize`].
    pub async fn start(config: ControllerConfig) -> Result<Controller, ClusterError> {
        let node_id = config.node_id;
        let raft_config = Arc::new(config.raft_config()?);
        let dir = config.dir.clone();
        let (log_store, (state_machine, image)) = durable::blocking(move || {
            let log_store = LogStore::open(&dir)?;
            Ok((log_store, StateMachineStore::open(&dir)?))
        })
        .await?;
        let bind_error = |source| ClusterError::Bind {
            addr: config.listen.clone(),
            source,
        };
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let rpc = RpcSettings {
            node_id,
            connect_timeout: config.connect_timeout,
            max_frame_bytes: network::MAX_FRAME_BYTES,
            source: crate::net::source_of(local_addr),
        };
        let factory = NetworkFactory::new(rpc.clone());
        let raft = openraft::Raft::new(node_id, raft_config, factory, log_store, state_machine)
            .await
            .map_err(|source| ClusterError::Stopped {
                node_id,
                source: Box::new(source),
            })?;
        let shutdown = CancellationToken::new();
        let access = network::PeerAccess::new(raft.clone(), config.voters.clone());
        let server = tokio::spawn(network::serve(
            listener,
            raft.clone(),
            access,
            config.rpc_limits.clone(),
            shutdown.clone(),
        ));
        let quorum_times = Arc::new(QuorumTimes::default());
        tokio::spawn(quorum::track(
            raft.clone(),
            quorum_times.clone(),
            shutdown.clone(),
        ));
        tracing::info!(node_id, addr = %local_addr, dir = %config.dir.display(), "controller started");
        Ok(Controller {
            node_id,
            raft,
            image,
            local_addr,
            rpc,
            propose_timeout: config.propose_timeout,
            election_timeout_max: config.election_timeout_max,
            shutdown,
            server: std::sync::Mutex::new(Some(server)),
            quorum_times,
        })
    }

    pub fn node_id(&self) -> RaftNodeId {
        self.node_id
    }

    /// The bound address of the controller listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Forms a brand-new quorum with these voters (node id → controller address, this node
    /// among them); they elect a leader among themselves. Call it once, on one node, or on
    /// several with the same voters. A node that already holds a log refuses
    /// ([`openraft::error::InitializeError::NotAllowed`]).
    pub async fn initialize(
        &self,
        voters: BTreeMap<RaftNodeId, String>,
    ) -> Result<(), ClusterError> {
        let nodes: BTreeMap<RaftNodeId, BasicNode> = voters
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr)))
            .collect();
        match self.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            // Another voter formed the quorum first and this node already heard from it.
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(e),
            )) => {
                tracing::info!(node_id = self.node_id, reason = %e, "the quorum is already formed");
                Ok(())
            }
            Err(source) => Err(ClusterError::Initialize {
                node_id: self.node_id,
                source: Box::new(source),
            }),
        }
    }

    /// Orders `command` through the quorum and returns the state machine's answer once it is
    /// applied on the leader. On a node that is not the leader the command is forwarded to the
    /// leader over the controller RPC; while there is no leader (an election), it waits for one,
    /// up to the propose timeout.
    ///
    /// At least once, not exactly once: when a leader loses its leadership with the command in
    /// flight, the command may still commit under the next leader while this call retries it.
    /// Commands are therefore safe to repeat (a repeated `CreateTopic` is answered
    /// `TopicExists`, a repeated `ChangePartition` `StaleEpoch`). A write that gets no answer
    /// within the propose timeout (here, or forwarded) returns [`ClusterError::Timeout`]: it may
    /// or may not have been applied.
    pub async fn propose(
        &self,
        command: MetadataCommand,
    ) -> Result<MetadataResponse, ClusterError> {
        match self.on_leader(LeaderRequest::Propose(command)).await? {
            LeaderReply::Applied(response) => Ok(response),
            LeaderReply::LearnerAdded => Err(ClusterError::UnexpectedResponse {
                addr: self.local_addr.to_string(),
            }),
        }
    }

    /// Adds a non-voting member that receives and applies the whole log (a broker that is not a
    /// controller), forwarded to the leader like [`Controller::propose`]. Returns once the
    /// membership change is committed, not when the learner has caught up.
    pub async fn add_learner(&self, node_id: RaftNodeId, addr: String) -> Result<(), ClusterError> {
        match self
            .on_leader(LeaderRequest::AddLearner { node_id, addr })
            .await?
        {
            LeaderReply::LearnerAdded => Ok(()),
            LeaderReply::Applied(_) => Err(ClusterError::UnexpectedResponse {
                addr: self.local_addr.to_string(),
            }),
        }
    }

    /// Whether this node already belongs to a quorum (it holds a vote, a log or a snapshot).
    pub async fn is_initialized(&self) -> Result<bool, ClusterError> {
        self.raft
            .is_initialized()
            .await
            .map_err(|source| ClusterError::Stopped {
                node_id: self.node_id,
                source: Box::new(source),
            })
    }

    /// The image as of the last entry this node applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    /// A receiver that is told about every newly applied image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.clone()
    }

    /// The leader this node currently knows of.
    pub fn leader(&self) -> Option<RaftNodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// The index of the last log entry this node applied.
    pub fn applied_index(&self) -> Option<u64> {
        self.raft.metrics().borrow().last_applied.map(|id| id.index)
    }

    /// The quorum as DescribeQuorum reports it (voters' states only on the leader).
    pub fn quorum(&self) -> QuorumView {
        quorum::view(&self.raft, &self.quorum_times)
    }

    /// The underlying Raft instance, for metrics and membership changes.
    pub fn raft(&self) -> &MetadataRaft {
        &self.raft
    }

    /// Stops the listener (dropping requests in progress) and Raft. The directory keeps
    /// everything needed to start again.
    pub async fn shutdown(&self) -> Result<(), ClusterError> {
        self.shutdown.cancel();
        let server = self.server.lock().expect("server handle lock").take();
        if let Some(server) = server {
            if let Err(e) = server.await {
                tracing::error!(node_id = self.node_id, error = %e, "controller listener task failed");
            }
        }
        let stopped = self.raft.shutdown().await;
        tracing::info!(node_id = self.node_id, "controller stopped");
        stopped.map_err(ClusterError::Task)
    }

    /// Runs a leader-only write here or on the leader, retrying while leadership moves.
    async fn on_leader(&self, request: LeaderRequest) -> Result<LeaderReply, ClusterError> {
        let started = Instant::now();
        let deadline = started + self.propose_timeout;
        loop {
            // A leader that lost its quorum keeps a write pending: bound the wait.
            let local = network::execute_on_leader(&self.raft, request.clone());
            let error = match tokio::time::timeout_at(deadline.into(), local).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(error)) => error,
                Err(_) => {
                    return Err(ClusterError::Timeout {
                        addr: self.local_addr.to_string(),
                        timeout_ms: self.propose_timeout.as_millis() as u64,
                    })
                }
            };
            let Some(forward) = error.forward_to_leader::<BasicNode>().cloned() else {
                return Err(ClusterError::Write {
                    node_id: self.node_id,
                    source: Box::new(error),
                });
            };
            if let (Some(leader), Some(node)) = (forward.leader_id, forward.leader_node) {
                if leader != self.node_id {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let sent =
                        network::forward(&self.rpc, leader, node, request.clone(), remaining);
                    match sent.await {
                        Ok(Ok(reply)) => return Ok(reply),
                        Ok(Err(remote)) if leadership_moved(&remote) => {}
                        Ok(Err(remote)) => {
                            return Err(ClusterError::Write {
                                node_id: leader,
                                source: Box::new(remote),
                            })
                        }
                        Err(CallError::Unreachable(e)) => {
                            tracing::debug!(leader, error = %e, "leader unreachable, waiting for another");
                        }
                        Err(other) => return Err(other.into_inner()),
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::NoLeader {
                    node_id: self.node_id,
                    leader: forward.leader_id,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
            self.wait_for_leader_other_than(forward.leader_id, deadline)
                .await;
        }
    }

    /// Waits until this node knows of a leader other than `stale`, for at most one election
    /// timeout (the stale leader may have been briefly unreachable and still lead) and never
    /// past `deadline`.
    async fn wait_for_leader_other_than(&self, stale: Option<RaftNodeId>, deadline: Instant) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeout = remaining.min(self.election_timeout_max);
        let changed = |m: &openraft::RaftMetrics<RaftNodeId, BasicNode>| {
            m.current_leader.is_some() && m.current_leader != stale
        };
        // A timeout is fine: the caller retries against whatever leader is known then.
        let _ = self
            .raft
            .wait(Some(timeout))
            .metrics(changed, "a new leader")
            .await;
    }
}

impl Drop for Controller {
    /// Without [`Controller::shutdown`], at least stop serving RPCs, so that the listener does
    /// not keep Raft alive on its own.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The remote node was not (or no longer) the leader, or was stopping: the write was not
/// accepted there, so trying the next leader is right.
fn leadership_moved(
    error: &RaftError<RaftNodeId, ClientWriteError<RaftNodeId, BasicNode>>,
) -> bool {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => true,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(_)) => false,
        RaftError::Fatal(openraft::error::Fatal::Stopped) => true,
        RaftError::Fatal(_) => false,
    }
}

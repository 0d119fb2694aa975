//! The controller RPC: Raft's AppendEntries, Vote and InstallSnapshot between controllers, and
//! writes forwarded to the leader, as JSON frames over TCP.
//!
//! A frame is a 4-byte big-endian length and that many bytes of JSON. The length is checked
//! against [`MAX_FRAME_BYTES`] before anything is allocated, on both sides: the server closes a
//! connection that announces a larger frame, and the client refuses to send one (asking openraft
//! for smaller AppendEntries batches instead). A connection carries one request at a time; the
//! answer to a request is the next frame.
//!
//! Who may talk to it: a connection is served only from an address of a quorum member (the
//! configured voters and the quorum's current membership), and a Raft RPC only when the node it
//! claims to come from (the candidate of a vote, the leader of an append or snapshot) is a voter
//! reached at that address. Anything else closes the connection with a rate-limited log line.
//! Connections are bounded in number ([`RpcLimits`]), closed when idle, and a frame once begun
//! must arrive within a deadline. (Authentication of peers is the job of TLS, not of this check.)
//!
//! The client side ([`NetworkFactory`], [`PeerClient`]) keeps one connection per peer client and
//! drops it on any failure or timeout, so an abandoned answer can never be read as the answer to
//! the next request. A peer that cannot be connected to is reported to openraft as
//! `Unreachable`, which makes it back off before retrying.

use super::{
    ClusterError, MetadataCommand, MetadataRaft, MetadataResponse, RaftNodeId, TypeConfig,
};
use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError,
    RemoteError, Timeout, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes, RaftNetwork, RaftNetworkFactory};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The largest frame either side sends or accepts, in bytes. Snapshot chunks are sized well
/// below it (a chunk's bytes grow about 4x as a JSON array).
pub const MAX_FRAME_BYTES: u32 = 8 << 20;

/// Bounds of the controller RPC listener's connections.
#[derive(Debug, Clone)]
pub struct RpcLimits {
    /// Connections served at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// A connection with no request for this long is closed (peers reconnect on their next
    /// call; the leader's heartbeats keep its connections busy).
    pub idle: Duration,
    /// A frame whose first byte has arrived must arrive whole within this.
    pub read_timeout: Duration,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            max_connections: 64,
            idle: Duration::from_secs(600),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// Decides which peers the controller RPC serves, from the configured voters and the quorum's
/// current membership (so a learner added at run time is reachable, and a removed node is not).
pub struct PeerAccess {
    raft: MetadataRaft,
    configured: BTreeMap<RaftNodeId, String>,
    /// Addresses resolved once per `host:port`.
    resolved: Mutex<HashMap<String, Vec<IpAddr>>>,
}

/// Why a peer was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotAMember(IpAddr),
    NotAVoter { claimed: RaftNodeId },
    WrongAddress { claimed: RaftNodeId, ip: IpAddr },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotAMember(ip) => write!(f, "{ip} is no quorum member's address"),
            Refusal::NotAVoter { claimed } => write!(f, "node {claimed} is not a voter"),
            Refusal::WrongAddress { claimed, ip } => {
                write!(f, "node {claimed} is not at {ip}")
            }
        }
    }
}

impl PeerAccess {
    pub fn new(raft: MetadataRaft, configured: BTreeMap<RaftNodeId, String>) -> Arc<Self> {
        Arc::new(PeerAccess {
            raft,
            configured,
            resolved: Mutex::new(HashMap::new()),
        })
    }

    /// Every member, id to (address, voter?): the configured voters and the current
    /// membership, which wins where both name a node.
    fn members(&self) -> BTreeMap<RaftNodeId, (String, bool)> {
        let mut members: BTreeMap<RaftNodeId, (String, bool)> = self
            .configured
            .iter()
            .map(|(id, addr)| (*id, (addr.clone(), true)))
            .collect();
        let metrics = self.raft.metrics().borrow().membership_config.clone();
        let membership = metrics.membership();
        let voters: std::collections::BTreeSet<RaftNodeId> = membership.voter_ids().collect();
        for (id, node) in membership.nodes() {
            let voter = voters.contains(id) || self.configured.contains_key(id);
            members.insert(*id, (node.addr.clone(), voter));
        }
        members
    }

    async fn ips_of(&self, addr: &str) -> Vec<IpAddr> {
        if let Some(ips) = self.resolved.lock().expect("never poisoned").get(addr) {
            return ips.clone();
        }
        let ips: Vec<IpAddr> = match addr.parse::<std::net::SocketAddr>() {
            Ok(a) => vec![a.ip()],
            Err(_) => match tokio::net::lookup_host(addr).await {
                Ok(found) => found.map(|a| a.ip().to_canonical()).collect(),
                // Not cached: a name that does not resolve now may later.
                Err(_) => return Vec::new(),
            },
        };
        self.resolved
            .lock()
            .expect("never poisoned")
            .insert(addr.to_string(), ips.clone());
        ips
    }

    /// Whether a connection from `ip` may be served at all.
    pub(crate) async fn admits(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        for (addr, _) in self.members().values() {
            if self.ips_of(addr).await.contains(&ip) {
                return Ok(());
            }
        }
        Err(Refusal::NotAMember(ip))
    }

    /// Whether `request`, from `ip`, may be acted on: a Raft RPC must come from the voter it
    /// names, at that voter's address.
    pub(crate) async fn allows(&self, ip: IpAddr, request: &RpcRequest) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        let claimed = match request {
            RpcRequest::AppendEntries(rpc) => rpc.vote.leader_id().voted_for(),
            RpcRequest::Vote(rpc) => rpc.vote.leader_id().voted_for(),
            RpcRequest::InstallSnapshot(rpc) => rpc.vote.leader_id().voted_for(),
            RpcRequest::Leader(_) => return self.admits(ip).await,
        };
        let Some(claimed) = claimed else {
            return Err(Refusal::NotAMember(ip));
        };
        match self.members().get(&claimed) {
            Some((addr, true)) => {
                if self.ips_of(addr).await.contains(&ip) {
                    Ok(())
                } else {
                    Err(Refusal::WrongAddress { claimed, ip })
                }
            }
            _ => Err(Refusal::NotAVoter { claimed }),
        }
    }
}

/// A write that only the leader can perform, sent to it by another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaderRequest {
    Propose(MetadataCommand),
    AddLearner { node_id: RaftNodeId, addr: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LeaderReply {
    Applied(MetadataResponse),
    LearnerAdded,
}

pub(crate) type WriteError = RaftError<RaftNodeId, ClientWriteError<RaftNodeId, BasicNode>>;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
/// A frame a controller receives. Public for the fuzz target that decodes it.
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<RaftNodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Leader(LeaderRequest),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<RaftNodeId>, RaftError<RaftNodeId>>),
    Vote(Result<VoteResponse<RaftNodeId>, RaftError<RaftNodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<RaftNodeId>, RaftError<RaftNodeId, InstallSnapshotError>>,
    ),
    Leader(Result<LeaderReply, WriteError>),
}

/// Reads one frame; `None` when the peer closed the connection between frames.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    addr: &str,
    max: u32,
) -> Result<Option<Vec<u8>>, ClusterError> {
    let transport = |source| ClusterError::Transport {
        addr: addr.to_string(),
        source,
    };
    let mut header = [0u8; 4];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(transport(e)),
    }
    let size = u32::from_be_bytes(header);
    if size > max {
        return Err(ClusterError::FrameTooLarge {
            addr: addr.to_string(),
            size: u64::from(size),
            max: u64::from(max),
        });
    }
    // Grown as bytes arrive: a peer that announces a large frame and sends nothing costs nothing.
    let mut body = Vec::with_capacity((size as usize).min(64 * 1024));
    let got = reader
        .take(u64::from(size))
        .read_to_end(&mut body)
        .await
        .map_err(transport)?;
    if got != size as usize {
        return Err(transport(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(Some(body))
}

pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    addr: &str,
    body: &[u8],
) -> Result<(), ClusterError> {
    let transport = |source| ClusterError::Transport {
        addr: addr.to_string(),
        source,
    };
    if body.len() > u32::MAX as usize {
        return Err(ClusterError::FrameTooLarge {
            addr: addr.to_string(),
            size: body.len() as u64,
            max: u64::from(u32::MAX),
        });
    }
    let size = body.len() as u32;
    writer
        .write_all(&size.to_be_bytes())
        .await
        .map_err(transport)?;
    writer.write_all(body).await.map_err(transport)?;
    writer.flush().await.map_err(transport)
}

/// Serves the controller RPC on `listener` for `raft` until `shutdown`, then waits for every
/// connection task to end (each stops at its next await once `shutdown` fires; a request in
/// progress is dropped, and its caller sees a closed connection).
pub async fn serve(
    listener: TcpListener,
    raft: MetadataRaft,
    access: Arc<PeerAccess>,
    limits: RpcLimits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                if let Err(refusal) = access.admits(peer.ip()).await {
                    crate::warn_limited!(%peer, reason = %refusal, "controller connection refused");
                    continue;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    crate::warn_limited!(%peer, max = limits.max_connections, "controller connection refused: too many connections");
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let (raft, access, limits) = (raft.clone(), access.clone(), limits.clone());
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    serve_connection(socket, peer, raft, access, limits, shutdown).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: log, back off briefly, keep serving.
                crate::warn_limited!(error = %e, "controller accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// One connection: frame in, check, dispatch, frame out, until the peer closes, goes idle, a
/// frame is refused, or shutdown.
async fn serve_connection(
    mut socket: TcpStream,
    peer_addr: std::net::SocketAddr,
    raft: MetadataRaft,
    access: Arc<PeerAccess>,
    limits: RpcLimits,
    shutdown: CancellationToken,
) {
    let peer = peer_addr.to_string();
    loop {
        let mut first = [0u8; 1];
        let arrived = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(limits.idle, socket.peek(&mut first)) => r,
        };
        match arrived {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => {
                tracing::debug!(%peer, "closing idle controller connection");
                return;
            }
        }
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return,
            f = tokio::time::timeout(limits.read_timeout, read_frame(&mut socket, &peer, MAX_FRAME_BYTES)) => f,
        };
        let body = match frame {
            Ok(Ok(Some(body))) => body,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                crate::warn_limited!(error = %e, "closing controller connection");
                return;
            }
            Err(_) => {
                crate::warn_limited!(%peer, "closing controller connection: frame not received in time");
                return;
            }
        };
        let request: RpcRequest = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(source) => {
                let e = ClusterError::Decode { addr: peer, source };
                crate::warn_limited!(error = %e, "closing controller connection");
                return;
            }
        };
        if let Err(refusal) = access.allows(peer_addr.ip(), &request).await {
            crate::warn_limited!(%peer, reason = %refusal, "closing controller connection: request refused");
            return;
        }
        let response = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = dispatch(&raft, request) => r,
        };
        let body = match serde_json::to_vec(&response) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(peer = %peer, error = %e, "cannot encode a controller response");
                return;
            }
        };
        if let Err(e) = write_frame(&mut socket, &peer, &body).await {
            tracing::debug!(error = %e, "controller connection lost");
            return;
        }
    }
}

async fn dispatch(raft: &MetadataRaft, request: RpcRequest) -> RpcResponse {
    match request {
        RpcRequest::AppendEntries(rpc) => {
            RpcResponse::AppendEntries(raft.append_entries(rpc).await)
        }
        RpcRequest::Vote(rpc) => RpcResponse::Vote(raft.vote(rpc).await),
        RpcRequest::InstallSnapshot(rpc) => {
            RpcResponse::InstallSnapshot(raft.install_snapshot(rpc).await)
        }
        RpcRequest::Leader(request) => RpcResponse::Leader(execute_on_leader(raft, request).await),
    }
}

/// Performs a leader-only write on this node. Never forwards: a node that is not the leader
/// answers `ForwardToLeader`, and the caller decides where to go next.
pub(crate) async fn execute_on_leader(
    raft: &MetadataRaft,
    request: LeaderRequest,
) -> Result<LeaderReply, WriteError> {
    match request {
        LeaderRequest::Propose(command) => {
            let written = raft.client_write(command).await?;
            Ok(LeaderReply::Applied(written.data))
        }
        LeaderRequest::AddLearner { node_id, addr } => {
            raft.add_learner(node_id, BasicNode::new(addr), false)
                .await?;
            Ok(LeaderReply::LearnerAdded)
        }
    }
}

/// Client-side settings shared by all peer clients of a node.
#[derive(Debug, Clone)]
pub struct RpcSettings {
    /// This node's id, named in timeout errors.
    pub node_id: RaftNodeId,
    /// How long a TCP connect to a peer may take before the peer counts as unreachable.
    pub connect_timeout: Duration,
    pub max_frame_bytes: u32,
    /// The address connections leave from (see [`crate::net`]).
    pub source: Option<std::net::IpAddr>,
}

/// Makes openraft's per-peer clients.
pub struct NetworkFactory {
    settings: RpcSettings,
}

impl NetworkFactory {
    pub fn new(settings: RpcSettings) -> Self {
        NetworkFactory { settings }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: RaftNodeId, node: &BasicNode) -> PeerClient {
        PeerClient::new(self.settings.clone(), target, node.clone())
    }
}

/// Why a call failed, sorted by what it tells about the request.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No connection could be made: the request was not sent.
    Unreachable(ClusterError),
    /// The request was too large to send: it was not sent.
    TooLarge(ClusterError),
    /// No answer in time: the peer may or may not have acted on the request.
    Timeout(ClusterError),
    /// The connection failed or the answer made no sense: the request may have been acted on.
    Failed(ClusterError),
}

impl CallError {
    pub(crate) fn into_inner(self) -> ClusterError {
        match self {
            CallError::Unreachable(e)
            | CallError::TooLarge(e)
            | CallError::Timeout(e)
            | CallError::Failed(e) => e,
        }
    }
}

/// One peer's client: one connection at a time, one request at a time.
pub struct PeerClient {
    settings: RpcSettings,
    target: RaftNodeId,
    node: BasicNode,
    connection: Option<TcpStream>,
}

impl PeerClient {
    pub(crate) fn new(settings: RpcSettings, target: RaftNodeId, node: BasicNode) -> Self {
        PeerClient {
            settings,
            target,
            node,
            connection: None,
        }
    }

    /// Sends `request` and waits up to `timeout` for its answer. A kept connection that turns
    /// out to be dead (the peer restarted) is replaced once by a fresh one; Raft's RPCs are
    /// idempotent, and forwarded writes always use a fresh client, so nothing runs twice.
    pub(crate) async fn call(
        &mut self,
        request: &RpcRequest,
        timeout: Duration,
    ) -> Result<RpcResponse, CallError> {
        let addr = self.node.addr.clone();
        let body = serde_json::to_vec(request).map_err(|source| {
            CallError::Failed(ClusterError::Decode {
                addr: addr.clone(),
                source,
            })
        })?;
        if body.len() > self.settings.max_frame_bytes as usize {
            return Err(CallError::TooLarge(ClusterError::FrameTooLarge {
                addr,
                size: body.len() as u64,
                max: u64::from(self.settings.max_frame_bytes),
            }));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(connection) = self.connection.take() {
            match self.exchange(connection, &body, deadline, timeout).await {
                Err(CallError::Failed(ClusterError::Transport { .. })) => {}
                other => return other,
            }
        }
        let connection = self.connect(deadline).await?;
        self.exchange(connection, &body, deadline, timeout).await
    }

    /// A fresh connection, within the connect timeout and never past `deadline`.
    async fn connect(&self, deadline: tokio::time::Instant) -> Result<TcpStream, CallError> {
        let addr = self.node.addr.as_str();
        let connect_by = deadline.min(tokio::time::Instant::now() + self.settings.connect_timeout);
        let connecting = crate::net::connect_from(addr, self.settings.source);
        let source = match tokio::time::timeout_at(connect_by, connecting).await {
            Ok(Ok(connection)) => {
                let _ = connection.set_nodelay(true);
                return Ok(connection);
            }
            Ok(Err(source)) => source,
            Err(_) => std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        };
        let addr = addr.to_string();
        Err(CallError::Unreachable(ClusterError::Connect {
            addr,
            source,
        }))
    }

    /// Writes one frame and reads the answer; keeps the connection only on success.
    async fn exchange(
        &mut self,
        mut connection: TcpStream,
        body: &[u8],
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<RpcResponse, CallError> {
        let addr = self.node.addr.as_str();
        let max = self.settings.max_frame_bytes;
        let round_trip = async {
            write_frame(&mut connection, addr, body).await?;
            match read_frame(&mut connection, addr, max).await? {
                Some(answer) => Ok(answer),
                None => Err(ClusterError::Transport {
                    addr: addr.to_string(),
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                }),
            }
        };
        let answer = match tokio::time::timeout_at(deadline, round_trip).await {
            Err(_) => {
                let timeout_ms = timeout.as_millis() as u64;
                let addr = addr.to_string();
                return Err(CallError::Timeout(ClusterError::Timeout {
                    addr,
                    timeout_ms,
                }));
            }
            Ok(Err(e)) => return Err(CallError::Failed(e)),
            Ok(Ok(answer)) => answer,
        };
        let response = serde_json::from_slice(&answer).map_err(|source| {
            let addr = addr.to_string();
            CallError::Failed(ClusterError::Decode { addr, source })
        })?;
        self.connection = Some(connection);
        Ok(response)
    }

    /// Maps a failed call to openraft's error, so that it backs off from unreachable peers and
    /// sends smaller batches after `PayloadTooLarge`.
    fn rpc_error<E: std::error::Error>(
        &self,
        action: RPCTypes,
        error: CallError,
        timeout: Duration,
        entries: u64,
    ) -> RPCError<RaftNodeId, BasicNode, E> {
        match error {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Timeout(_) => RPCError::Timeout(Timeout {
                action,
                id: self.settings.node_id,
                target: self.target,
                timeout,
            }),
            CallError::TooLarge(e) if action == RPCTypes::AppendEntries && entries > 1 => {
                let hint = PayloadTooLarge::new_entries_hint(entries / 2);
                RPCError::PayloadTooLarge(hint.with_source_error(&e))
            }
            CallError::TooLarge(e) | CallError::Failed(e) => {
                RPCError::Network(NetworkError::new(&e))
            }
        }
    }

    fn remote<E: std::error::Error>(&self, error: E) -> RPCError<RaftNodeId, BasicNode, E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            self.node.clone(),
            error,
        ))
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<RaftNodeId, BasicNode, E> {
        let addr = self.node.addr.clone();
        RPCError::Network(NetworkError::new(&ClusterError::UnexpectedResponse {
            addr,
        }))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        AppendEntriesResponse<RaftNodeId>,
        RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId>>,
    > {
        let entries = rpc.entries.len() as u64;
        let timeout = option.hard_ttl();
        match self.call(&RpcRequest::AppendEntries(rpc), timeout).await {
            Ok(RpcResponse::AppendEntries(answer)) => answer.map_err(|e| self.remote(e)),
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(self.rpc_error(RPCTypes::AppendEntries, e, timeout, entries)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<RaftNodeId>,
        RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId, InstallSnapshotError>>,
    > {
        let timeout = option.hard_ttl();
        match self.call(&RpcRequest::InstallSnapshot(rpc), timeout).await {
            Ok(RpcResponse::InstallSnapshot(answer)) => answer.map_err(|e| self.remote(e)),
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(self.rpc_error(RPCTypes::InstallSnapshot, e, timeout, 0)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftNodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftNodeId>, RPCError<RaftNodeId, BasicNode, RaftError<RaftNodeId>>>
    {
        let timeout = option.hard_ttl();
        match self.call(&RpcRequest::Vote(rpc), timeout).await {
            Ok(RpcResponse::Vote(answer)) => answer.map_err(|e| self.remote(e)),
            Ok(_) => Err(self.unexpected()),
            Err(e) => Err(self.rpc_error(RPCTypes::Vote, e, timeout, 0)),
        }
    }
}

/// Sends a leader-only write to `leader` over a fresh connection.
pub(crate) async fn forward(
    settings: &RpcSettings,
    leader: RaftNodeId,
    node: BasicNode,
    request: LeaderRequest,
    timeout: Duration,
) -> Result<Result<LeaderReply, WriteError>, CallError> {
    let addr = node.addr.clone();
    let mut client = PeerClient::new(settings.clone(), leader, node);
    match client.call(&RpcRequest::Leader(request), timeout).await? {
        RpcResponse::Leader(answer) => Ok(answer),
        _ => Err(CallError::Failed(ClusterError::UnexpectedResponse { addr })),
    }
}

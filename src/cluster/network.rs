//! The controller RPC: Raft's AppendEntries, Vote and InstallSnapshot between controllers, and
//! writes forwarded to the leader, as JSON frames over TCP.
//!
//! A frame is a 4-byte big-endian length and that many bytes of JSON. The length is checked
//! against [`MAX_FRAME_BYTES`] before anything is allocated, on both sides: the server closes a
//! connection that announces a larger frame, and the client refuses to send one (asking openraft
//! for smaller AppendEntries batches instead). A connection carries one request at a time; the
//! answer to a request is the next frame.
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
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The largest frame either side sends or accepts, in bytes. Snapshot chunks are sized well
/// below it (a chunk's bytes grow about 4x as a JSON array).
pub const MAX_FRAME_BYTES: u32 = 8 << 20;

/// Connections the RPC listener serves at once; further ones wait to be accepted.
const MAX_RPC_CONNECTIONS: usize = 64;

/// A write that only the leader can perform, sent to it by another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LeaderRequest {
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
pub(crate) enum RpcRequest {
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
    let mut body = vec![0u8; size as usize];
    reader.read_exact(&mut body).await.map_err(transport)?;
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
pub async fn serve(listener: TcpListener, raft: MetadataRaft, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_RPC_CONNECTIONS));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("the connection semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                let _ = socket.set_nodelay(true);
                let raft = raft.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    serve_connection(socket, peer.to_string(), raft, shutdown).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: log, back off briefly, keep serving.
                tracing::warn!(error = %e, "controller accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// One connection: frame in, dispatch, frame out, until the peer closes, a frame is refused, or
/// shutdown.
async fn serve_connection(
    mut socket: TcpStream,
    peer: String,
    raft: MetadataRaft,
    shutdown: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = shutdown.cancelled() => return,
            f = read_frame(&mut socket, &peer, MAX_FRAME_BYTES) => f,
        };
        let body = match frame {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "closing controller connection");
                return;
            }
        };
        let request: RpcRequest = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(source) => {
                let e = ClusterError::Decode { addr: peer, source };
                tracing::warn!(error = %e, "closing controller connection");
                return;
            }
        };
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

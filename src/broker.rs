//! The one place that builds and wires the components, starts the listener and background
//! tasks, and shuts everything down in order.
//!
//! Start: lock the data dir, note whether the last run shut down cleanly, open the topic
//! catalog (recovering logs after a crash), start this node's part of the metadata quorum
//! (forming it on first start), start applying metadata (replication), register and heartbeat,
//! bind, serve. A node that is its own quorum waits until it leads its partitions before it
//! serves, so a single broker is ready when `start` returns; a cluster node serves at once and
//! answers retriable errors until the quorum has it.
//!
//! Shutdown: move leadership away (controlled shutdown), stop accepting, let requests in hand
//! finish (bounded by `shutdown_timeout_ms`), stop the quorum, sync and checkpoint every
//! partition, and write the clean-shutdown marker last.

use crate::cluster::membership::{self, Registration};
use crate::cluster::{ClusterError, Controller, ControllerConfig, MetadataCommand};
use crate::config::listeners::{ClientListener, Endpoint};
use crate::config::{Config, FlushMode};
use crate::group::store::OFFSETS_TOPIC;
use crate::group::GroupCoordinator;
use crate::partition::manager::{NewTopic, TopicError, TopicManager};
use crate::partition::Partition;
use crate::protocol::frame::FrameLimits;
use crate::replication::admin::TopicAdmin;
use crate::replication::fetcher::{FetchSettings, Fetchers};
use crate::replication::Replication;
use crate::server::listener;
use crate::server::quotas::ConnectionQuotas;
use crate::server::session::SessionLimits;
use crate::server::tls::Tls;
use crate::txn::coordinator::{TxnConfig, TxnCoordinator};
use crate::txn::producer_id::ProducerIdManager;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const CLEAN_SHUTDOWN: &str = ".clean-shutdown";
const LOCK_FILE: &str = ".lock";
const META: &str = "meta.properties";

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data dir {0} is in use by another spool process")]
    Locked(PathBuf),
    #[error(transparent)]
    Topics(#[from] TopicError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for metrics on {addr}: {source}")]
    MetricsBind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Tls(#[from] crate::server::tls::TlsError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    ProducerIds(#[from] crate::txn::producer_id::ProducerIdError),
    #[error("node {node_id} did not join its own quorum within {waited_ms} ms")]
    NotJoined { node_id: i32, waited_ms: u64 },
}

pub struct Broker {
    pub config: Arc<Config>,
    pub topics: Arc<TopicManager>,
    pub replication: Arc<Replication>,
    pub admin: TopicAdmin,
    pub groups: Arc<GroupCoordinator>,
    pub txns: Arc<TxnCoordinator>,
    pub producer_ids: Arc<ProducerIdManager>,
    pub cluster_id: String,
    pub shutdown: CancellationToken,
    /// Stops this node's heartbeats (controlled shutdown), separately from `shutdown`.
    heartbeats: CancellationToken,
}

impl Broker {
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Creates a topic with the broker's defaults (Metadata auto-creation).
    pub async fn auto_create(&self, name: &str) -> Result<(), TopicError> {
        let new = NewTopic {
            name: name.to_string(),
            num_partitions: self.config.num_partitions,
            replication_factor: self.config.default_replication_factor,
            overrides: Default::default(),
        };
        self.admin.create_or_get(new).await
    }

    /// The metadata as this node last applied it.
    pub fn image(&self) -> Arc<crate::cluster::MetadataImage> {
        self.replication.image()
    }

    /// Whether this node is its own quorum (a single-node cluster).
    pub fn is_single_node(&self) -> bool {
        self.config.controller_quorum_voters.trim().is_empty()
    }

    /// Applies `flush_messages` after an append: a partition with that many unsynced messages
    /// is synced in the background.
    pub fn after_append(&self, partition: &Arc<Partition>) {
        if partition.unflushed_messages() >= self.config.flush_messages {
            let p = partition.clone();
            tokio::spawn(async move {
                if let Err(e) = p.flush().await {
                    tracing::error!(error = %e, "flush failed");
                }
            });
        }
    }
}

/// A started broker.
pub struct RunningBroker {
    pub broker: Arc<Broker>,
    pub local_addr: SocketAddr,
    tracker: TaskTracker,
    controller: Arc<Controller>,
    _lock: File,
}

/// Opens the data dir and starts serving.
pub async fn start(config: Config) -> Result<RunningBroker, BrokerError> {
    let data_dir = config.data_dir.clone();
    let dir_err = |source| BrokerError::DataDir {
        path: data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&data_dir).map_err(dir_err)?;
    let lock = File::create(data_dir.join(LOCK_FILE)).map_err(dir_err)?;
    if lock.try_lock().is_err() {
        return Err(BrokerError::Locked(data_dir));
    }
    let marker = data_dir.join(CLEAN_SHUTDOWN);
    let clean = marker.exists();
    let cluster_id = load_cluster_id(&data_dir, &config).map_err(dir_err)?;
    let addrs = config.listen_addrs()?;
    let plan = config.listener_plan()?;
    // Each listener's security (TLS keystore and truststore, principal rules, SASL settings),
    // loaded before anything is bound or recovered so that a bad setting stops start-up at once.
    let mut security = Vec::with_capacity(plan.clients.len());
    for c in &plan.clients {
        let name = &c.bind.name;
        let (tls, principal_rules) = match c.is_tls() {
            true => (
                Some(Arc::new(Tls::new(config.tls_settings(name))?)),
                Some(Arc::new(config.principal_rules(name)?)),
            ),
            false => (None, None),
        };
        let sasl = match c.is_sasl() {
            true => Some(Arc::new(config.sasl_settings(name)?)),
            false => None,
        };
        let protocol = c.protocol.clone();
        security.push((
            protocol,
            listener::Security {
                tls,
                principal_rules,
                sasl,
            },
        ));
    }
    // Bound before the logs are loaded, as Kafka binds its acceptors first: a client that
    // connects during recovery waits in the accept queue (its request answered once this node
    // serves) instead of being refused and backing off, and a port already in use stops
    // start-up before any recovery work.
    let mut listeners = Vec::with_capacity(addrs.len());
    for (name, addr) in addrs {
        let bind_error = |source| BrokerError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        listeners.push((name, local, listener));
    }
    let config = Arc::new(config);
    let open_files = crate::partition::admission::raise_fd_limit();
    tracing::debug!(?open_files, "open-file limit");
    let started = std::time::Instant::now();
    let topics = Arc::new(TopicManager::open(config.clone(), clean)?);
    // From here on a crash must trigger recovery again.
    if clean {
        std::fs::remove_file(&marker).map_err(dir_err)?;
        File::open(&data_dir)
            .and_then(|d| d.sync_all())
            .map_err(dir_err)?;
    }
    tracing::info!(
        clean_shutdown = clean,
        topics = topics.list().len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "logs loaded"
    );
    let controller = Arc::new(start_controller(&config).await?);
    let local_addr = listeners[0].1;
    let inter_broker_addr = listeners[plan.inter_broker].1;
    let advertised: Vec<Endpoint> = plan
        .clients
        .iter()
        .zip(&listeners)
        .map(|(c, (_, local, _))| advertised(c, *local))
        .collect();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let node_id = config.node_id as u64;
    let incarnation = uuid::Uuid::new_v4().as_u64_pair().0;
    let fetchers = Fetchers::new(
        FetchSettings {
            local: node_id,
            source: crate::net::source_of(inter_broker_addr),
            max_wait_ms: config.replica_fetch_wait_max_ms,
            partition_max_bytes: config.replica_fetch_max_bytes,
            response_max_bytes: config.replica_fetch_response_max_bytes,
            backoff: Duration::from_millis(config.replica_fetch_backoff_ms),
            durable: config.flush_mode == FlushMode::Durable,
        },
        tracker.clone(),
        shutdown.clone(),
    );
    let replication = Arc::new(Replication::new(
        node_id,
        crate::net::source_of(inter_broker_addr),
        incarnation,
        controller.clone(),
        topics.clone(),
        fetchers,
        Duration::from_millis(config.replica_lag_time_max_ms),
    ));
    let admin = TopicAdmin::new(config.clone(), replication.clone());
    let groups = Arc::new(GroupCoordinator::new(
        config.group_config(),
        config.offsets_topic_num_partitions,
    ));
    replication.add_listener(groups.clone());
    let producer_ids = Arc::new(ProducerIdManager::open(
        controller.clone(),
        node_id,
        &data_dir.join("producer-id-block"),
    )?);
    let txns = Arc::new(TxnCoordinator::new(
        TxnConfig {
            max_timeout_ms: config.transaction_max_timeout_ms,
            id_expiration_ms: config.transactional_id_expiration_ms,
            state_log_partitions: config.transaction_state_log_num_partitions,
        },
        topics.clone(),
        groups.clone(),
        producer_ids.clone(),
        replication.clone(),
    ));
    replication.add_listener(txns.clone());
    tracker.spawn(replication.clone().run(shutdown.clone()));
    let heartbeats = shutdown.child_token();
    let inter_broker = &advertised[plan.inter_broker];
    tracker.spawn(membership::heartbeat(
        controller.clone(),
        Registration {
            node_id,
            incarnation,
            host: inter_broker.host.clone(),
            port: inter_broker.port,
            endpoints: advertised.clone(),
        },
        Duration::from_millis(config.broker_heartbeat_interval_ms),
        Duration::from_millis(config.broker_session_timeout_ms / 2),
        heartbeats.clone(),
    ));
    if config.auto_leader_rebalance_enable {
        tracker.spawn(membership::leader_rebalancer(
            controller.clone(),
            Duration::from_secs(config.leader_imbalance_check_interval_seconds.max(1)),
            config.leader_imbalance_per_broker_percentage,
            shutdown.clone(),
        ));
    }
    tracker.spawn(membership::fence_monitor(
        controller.clone(),
        Duration::from_millis(config.broker_session_timeout_ms),
        shutdown.clone(),
    ));
    let broker = Arc::new(Broker {
        config: config.clone(),
        topics,
        replication,
        admin,
        groups,
        txns,
        producer_ids,
        cluster_id,
        shutdown,
        heartbeats,
    });
    if broker.is_single_node() {
        join_alone(&broker).await?;
    }
    let quotas = Arc::new(ConnectionQuotas::new(
        config.max_connections,
        config.max_connections_per_ip,
        config.connection_overrides()?,
    ));
    let limits = SessionLimits {
        frame: FrameLimits {
            max_bytes: config.socket_request_max_bytes,
            min_bytes: crate::protocol::frame::MIN_REQUEST,
            read_timeout: Duration::from_millis(config.request_read_timeout_ms),
            memory: (config.queued_max_request_bytes >= 0)
                .then(|| Arc::new(Semaphore::new(config.queued_max_request_bytes as usize))),
        },
        idle: Duration::from_millis(config.connections_max_idle_ms),
    };
    for ((name, local, listener), (protocol, security)) in listeners.into_iter().zip(security) {
        let mechanisms: Vec<&str> = security
            .sasl
            .iter()
            .flat_map(|s| s.mechanisms.iter().map(|m| m.name()))
            .collect();
        tracing::info!(listener = %name, %local, %protocol, ?mechanisms, "listening");
        tracker.spawn(listener::run(
            broker.clone(),
            listener,
            name.into(),
            quotas.clone(),
            limits.clone(),
            security,
            tracker.clone(),
        ));
    }
    if !config.metrics_listener.trim().is_empty() {
        let addr = config.metrics_listener.trim();
        let metrics = TcpListener::bind(addr)
            .await
            .map_err(|source| BrokerError::MetricsBind {
                addr: addr.to_string(),
                source,
            })?;
        tracing::info!(addr = %metrics.local_addr().map_or_else(|_| addr.to_string(), |a| a.to_string()), "serving metrics and /health");
        tracker.spawn(crate::metrics::http::serve(broker.clone(), metrics));
    }
    tracker.spawn(background(broker.clone()));
    if config.log_cleaner_enable {
        tracker.spawn(cleaner(broker.clone()));
    }
    tracing::info!(%local_addr, node_id = config.node_id, cluster_id = %broker.cluster_id, "spool is serving");
    Ok(RunningBroker {
        broker,
        local_addr,
        tracker,
        controller,
        _lock: lock,
    })
}

/// Starts this node's controller in `<data_dir>/quorum` and, on the very first start, forms
/// the quorum: with the configured voters, or with this node alone.
async fn start_controller(config: &Config) -> Result<Controller, BrokerError> {
    let voters = config.voters()?;
    let node_id = config.node_id as u64;
    let mut cc = ControllerConfig::new(
        node_id,
        config.data_dir.join("quorum"),
        config.controller_addr()?,
    );
    cc.advertised_addr = voters.get(&node_id).cloned();
    cc.voters = voters.clone();
    cc.rpc_limits = crate::cluster::network::RpcLimits {
        idle: Duration::from_millis(config.connections_max_idle_ms),
        read_timeout: Duration::from_millis(config.request_read_timeout_ms),
        ..Default::default()
    };
    let controller = Controller::start(cc).await?;
    if !controller.is_initialized().await? {
        let members = if voters.is_empty() {
            [(node_id, controller.local_addr().to_string())].into()
        } else {
            voters
        };
        tracing::info!(?members, "forming the metadata quorum");
        controller.initialize(members).await?;
    }
    Ok(controller)
}

/// A node that is its own quorum: waits until its registration is applied and it leads its
/// partitions, brings topics from a data dir older than the quorum into the metadata, and
/// creates the offsets topic, so that the broker is fully ready when it starts serving.
async fn join_alone(broker: &Arc<Broker>) -> Result<(), BrokerError> {
    let node_id = broker.config.node_id;
    let wait = Duration::from_secs(30);
    let mut images = broker.replication.reconciled();
    let me = node_id as u64;
    let joined = tokio::time::timeout(
        wait,
        images.wait_for(|image| {
            broker.replication.is_registered(image)
                && image.nodes.get(&me).is_some_and(|n| !n.fenced)
        }),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if !joined {
        return Err(BrokerError::NotJoined {
            node_id,
            waited_ms: wait.as_millis() as u64,
        });
    }
    drop(images);
    import_local_topics(broker).await?;
    broker
        .admin
        .ensure_internal(
            OFFSETS_TOPIC,
            broker.config.offsets_topic_num_partitions,
            broker.config.offsets_topic_replication_factor,
            None,
        )
        .await?;
    // Transactions decided before a crash are completed before any client is served.
    broker.txns.recover().await;
    Ok(())
}

/// Topics in the local catalog that the metadata does not know (a data dir from before the
/// quorum) are entered into it with their ids, sizes and configs, all on this node.
async fn import_local_topics(broker: &Arc<Broker>) -> Result<(), BrokerError> {
    let image = broker.image();
    let me = broker.config.node_id as u64;
    for t in broker.topics.list() {
        if image.topic(&t.name).is_some() {
            continue;
        }
        let command = MetadataCommand::CreateTopic {
            name: t.name.clone(),
            topic_id: t.id.hyphenated().to_string(),
            partitions: vec![vec![me]; t.partition_count() as usize],
            configs: t.overrides.clone(),
        };
        tracing::info!(topic = %t.name, "entering a local topic into the metadata");
        let answer = broker.replication.controller().propose(command).await?;
        if let Err(r) = answer.into_result() {
            tracing::warn!(topic = %t.name, rejection = %r, "local topic not entered");
        }
    }
    Ok(())
}

/// What a client listener tells clients: its `advertised.listeners` entry (port 0 there: the
/// bound port), else where it is bound, with this host's name for a wildcard address, as Kafka
/// does.
fn advertised(listener: &ClientListener, local: SocketAddr) -> Endpoint {
    let name = listener.bind.name.clone();
    if let Some(a) = &listener.advertised {
        let port = if a.port == 0 { local.port() } else { a.port };
        return Endpoint {
            name,
            host: a.host.clone(),
            port,
        };
    }
    let host = if local.ip().is_unspecified() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    } else {
        local.ip().to_string()
    };
    Endpoint {
        name,
        host,
        port: local.port(),
    }
}

/// Reads the cluster id from `meta.properties`, creating it (from the config, or a fresh random
/// id) on first start.
fn load_cluster_id(dir: &Path, config: &Config) -> std::io::Result<String> {
    let path = dir.join(META);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = text.lines().find_map(|l| l.strip_prefix("cluster.id=")) {
            return Ok(id.trim().to_string());
        }
    }
    let id = if config.cluster_id.is_empty() {
        base64_uuid(uuid::Uuid::new_v4())
    } else {
        config.cluster_id.clone()
    };
    let text = format!("version=1\ncluster.id={id}\nnode.id={}\n", config.node_id);
    crate::log::write_atomically(&path, text.as_bytes())?;
    Ok(id)
}

/// Kafka prints uuids as URL-safe base64 without padding (22 characters).
fn base64_uuid(id: uuid::Uuid) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

/// Retention, periodic flush (`flush_ms`) and checkpoints, until shutdown.
async fn background(broker: Arc<Broker>) {
    let c = &broker.config;
    let mut retention =
        tokio::time::interval(Duration::from_millis(c.retention_check_interval_ms.max(1)));
    let mut checkpoint =
        tokio::time::interval(Duration::from_millis(c.checkpoint_interval_ms.max(1)));
    let flush_every = u64::try_from(c.flush_ms)
        .ok()
        .filter(|ms| *ms < 365 * 24 * 3600 * 1000);
    let mut flush = tokio::time::interval(Duration::from_millis(
        flush_every.unwrap_or(3_600_000).max(1),
    ));
    // Group timers (sessions, join and sync deadlines) are checked every 100 ms.
    let mut group_timers = tokio::time::interval(Duration::from_millis(100));
    let mut offsets_expiry = tokio::time::interval(Duration::from_millis(
        c.offsets_retention_check_interval_ms.max(1),
    ));
    let mut txn_timeouts = tokio::time::interval(Duration::from_millis(
        c.transaction_abort_timed_out_transaction_cleanup_interval_ms
            .max(1),
    ));
    let mut txn_id_expiry = tokio::time::interval(Duration::from_millis(
        c.transaction_remove_expired_transaction_cleanup_interval_ms
            .max(1),
    ));
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = retention.tick() => {
                for p in broker.topics.all_partitions() {
                    match p.apply_retention() {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(partition = %p.tp(), segments = n, "retention deleted segments"),
                        Err(e) => tracing::error!(error = %e, "retention failed"),
                    }
                }
            }
            _ = group_timers.tick() => broker.groups.tick(),
            _ = txn_timeouts.tick() => broker.txns.abort_timed_out().await,
            _ = txn_id_expiry.tick() => broker.txns.expire_ids().await,
            _ = offsets_expiry.tick() => {
                let expired = broker.groups.expire_offsets();
                if expired > 0 {
                    tracing::info!(offsets = expired, "expired committed offsets");
                }
            }
            _ = checkpoint.tick() => {
                for p in broker.topics.all_partitions() {
                    if let Err(e) = p.checkpoint(c.producer_id_expiration_ms) {
                        tracing::error!(error = %e, "checkpoint failed");
                    }
                }
            }
            _ = flush.tick(), if flush_every.is_some() => {
                for p in broker.topics.all_partitions() {
                    if p.unflushed_messages() > 0 {
                        if let Err(e) = p.flush().await {
                            tracing::error!(error = %e, "periodic flush failed");
                        }
                    }
                }
            }
        }
    }
}

/// The log cleaner: one pass over the compacted partitions every `log_cleaner_backoff_ms`, one
/// partition at a time on the blocking pool (as Kafka's single cleaner thread), until shutdown.
async fn cleaner(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(Duration::from_millis(
        broker.config.log_cleaner_backoff_ms.max(1),
    ));
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for p in broker.topics.all_partitions() {
            if broker.shutdown.is_cancelled() {
                return;
            }
            if !p.is_compacted() {
                continue;
            }
            let partition = p.clone();
            let started = std::time::Instant::now();
            match tokio::task::spawn_blocking(move || partition.clean()).await {
                Ok(Ok(Some(c))) => tracing::info!(
                    partition = %p.tp(),
                    records_before = c.records_before,
                    records_after = c.records_after,
                    bytes_before = c.bytes_before,
                    bytes_after = c.bytes_after,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "compacted"
                ),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "compaction failed"),
                Err(e) => tracing::error!(error = %e, "compaction task failed"),
            }
        }
    }
}

impl RunningBroker {
    /// Graceful shutdown: stop accepting and reading, let requests in hand finish (bounded),
    /// sync and checkpoint every partition, then write the clean-shutdown marker.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let broker = self.broker;
        let deadline = Duration::from_millis(broker.config.shutdown_timeout_ms);
        if broker.config.controlled_shutdown_enable && !broker.is_single_node() {
            controlled_shutdown(&broker, deadline).await;
        }
        broker.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("requests still in hand after {deadline:?}; closing the logs anyway");
        }
        if let Err(e) = self.controller.shutdown().await {
            tracing::error!(error = %e, "stopping the controller failed");
        }
        let mut clean = true;
        for p in broker.topics.all_partitions() {
            if let Err(e) = p.close(broker.config.producer_id_expiration_ms).await {
                tracing::error!(error = %e, "closing partition failed");
                clean = false;
            }
        }
        let dir = &broker.config.data_dir;
        let dir_err = |source| BrokerError::DataDir {
            path: dir.clone(),
            source,
        };
        if clean {
            crate::log::write_atomically(&dir.join(CLEAN_SHUTDOWN), b"clean\n").map_err(dir_err)?;
        }
        tracing::info!(clean, "spool stopped");
        Ok(())
    }
}

/// Kafka's controlled shutdown: this node stops heartbeating and asks the quorum to fence it,
/// which moves the leadership of its partitions to other in-sync replicas and takes it out of
/// every ISR; it then waits (bounded) until it has applied that, so clients are already sent
/// elsewhere when it stops.
async fn controlled_shutdown(broker: &Arc<Broker>, deadline: Duration) {
    broker.heartbeats.cancel();
    let node_id = broker.config.node_id as u64;
    let started = std::time::Instant::now();
    let fenced = broker
        .replication
        .controller()
        .propose(MetadataCommand::FenceNode {
            node_id,
            if_last_heartbeat_ms: None,
        });
    match tokio::time::timeout(deadline, fenced).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "controlled shutdown: the quorum did not fence this node");
            return;
        }
        Err(_) => {
            tracing::warn!("controlled shutdown: no answer from the quorum");
            return;
        }
    }
    let mut images = broker.replication.reconciled();
    let applied = images.wait_for(|image| image.nodes.get(&node_id).is_none_or(|n| n.fenced));
    let _ = tokio::time::timeout(deadline, applied).await;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "controlled shutdown: leadership moved away"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_uuids_are_22_url_safe_characters() {
        let s = super::base64_uuid(uuid::Uuid::from_u128(u128::MAX));
        assert_eq!(s.len(), 22);
        assert!(s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}

//! A cluster of real `spool serve` processes on one machine: node `n` listens on loopback
//! address 127.0.0.(n+1) (Kafka and controller ports picked free), has its own data dir, and
//! every node is a voter of the metadata quorum. A node can be declared without being started
//! (it is in the voter list, so a quorum of N-1 still forms), killed, stopped and restarted.
//!
//! Short timings (heartbeats every 300 ms, fencing after 2 s, replica lag 4 s) keep
//! membership and ISR changes within a test's patience.
#![allow(dead_code)]

use super::kafka::name;
use super::{wait_for, Raw, Spool};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

const CLUSTER_ID: &str = "c3Bvb2wtbG9jYWwtY2x1c3Q";

/// Timings that make fencing and ISR changes quick.
const QUICK: &[&str] = &[
    "broker_heartbeat_interval_ms=300",
    "broker_session_timeout_ms=2000",
    "replica_lag_time_max_ms=4000",
    "replica_fetch_backoff_ms=200",
    "replica_fetch_wait_max_ms=200",
];

pub struct Node {
    pub id: u64,
    pub ip: String,
    pub spool: Spool,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// A port on `ip` that was free a moment ago.
fn free_port_on(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Declares `size` nodes (ids 1..=size, all voters) with `extra` settings (`key=value`, as
    /// `--set` takes them) and starts those in `start`, without waiting for them to be brokers.
    pub fn new(size: u64, start: &[u64], extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ips: Vec<String> = (1..=size).map(|id| format!("127.0.0.{}", id + 1)).collect();
        let controller_ports: Vec<u16> = ips.iter().map(|ip| free_port_on(ip)).collect();
        let voters = (1..=size)
            .zip(ips.iter().zip(&controller_ports))
            .map(|(id, (ip, port))| format!("{id}@{ip}:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, id) in (1..=size).enumerate() {
            let ip = ips[i].clone();
            let node_dir = dir.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let mut settings = vec![
                format!("node_id={id}"),
                format!("cluster_id={CLUSTER_ID}"),
                format!("controller_listener={ip}:{}", controller_ports[i]),
                format!("controller_quorum_voters={voters}"),
            ];
            // `{ip}` in a setting is the node's own address (e.g. for its metrics listener).
            settings.extend(QUICK.iter().chain(extra).map(|s| s.replace("{ip}", &ip)));
            let mut args = Vec::new();
            for s in settings {
                args.push("--set".to_string());
                args.push(s);
            }
            let spool = Spool {
                child: None,
                addr: String::new(),
                data_dir: node_dir.join("data"),
                log_path: node_dir.join("spool.log"),
                host: ip.clone(),
                port: free_port_on(&ip),
                extra: args,
                env: Vec::new(),
                nofile: None,
            };
            nodes.push(Node { id, ip, spool });
        }
        let mut cluster = Cluster { nodes, _dir: dir };
        for &id in start {
            cluster.start(id);
        }
        cluster
    }

    /// `size` nodes, all started, each listed as a broker by every other.
    pub fn start_all(size: u64, extra: &[&str]) -> Self {
        let ids: Vec<u64> = (1..=size).collect();
        let cluster = Self::new(size, &ids, extra);
        cluster.wait_brokers(&ids, Duration::from_secs(60));
        cluster
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("a node id")
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("a node id")
    }

    /// Node `id`'s Kafka listener, host:port (known before it starts).
    pub fn addr(&self, id: u64) -> String {
        let n = self.node(id);
        format!("{}:{}", n.ip, n.spool.port())
    }

    /// Node `id`'s data dir.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.node(id).spool.data_dir.clone()
    }

    /// The running nodes' listeners, comma-separated.
    pub fn bootstrap(&mut self) -> String {
        let running: Vec<u64> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.spool.is_running().then_some(n.id))
            .collect();
        running
            .iter()
            .map(|&id| self.addr(id))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts (or restarts) node `id` on its own address and data dir.
    pub fn start(&mut self, id: u64) {
        self.node_mut(id).spool.launch();
    }

    /// SIGKILL node `id`.
    pub fn kill9(&mut self, id: u64) {
        self.node_mut(id).spool.kill9();
    }

    /// SIGTERM node `id` (controlled shutdown) and wait; returns whether it exited 0.
    pub fn terminate(&mut self, id: u64) -> bool {
        self.node_mut(id).spool.terminate()
    }

    pub fn restart(&mut self, id: u64) {
        self.node_mut(id).spool.restart();
    }

    /// The last lines of node `id`'s log.
    pub fn log_tail(&self, id: u64) -> String {
        self.node(id).spool.log_tail()
    }

    /// Every node's log tail, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("---- node {} log ----\n{}\n", n.id, n.spool.log_tail()))
            .collect()
    }

    /// Metadata (v12) from node `via`, for `topics` (all when empty); `None` when it cannot be
    /// asked.
    pub fn metadata(&self, via: u64, topics: &[&str]) -> Option<MetadataResponse> {
        let stream = std::net::TcpStream::connect(self.addr(via)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let mut raw = Raw::from_stream(stream);
        let request = MetadataRequest::default().with_topics(match topics {
            [] => None,
            names => Some(
                names
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(name(t))))
                    .collect(),
            ),
        });
        raw.try_request(ApiKey::Metadata, 12, &request)
    }

    /// The broker ids node `via` lists, sorted.
    pub fn brokers(&self, via: u64) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .metadata(via, &[])
            .map(|m| m.brokers.iter().map(|b| b.node_id.0).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    /// Waits until every node in `ids` lists every node in `ids` as a broker.
    pub fn wait_brokers(&self, ids: &[u64], timeout: Duration) {
        let want: Vec<i32> = ids.iter().map(|&id| id as i32).collect();
        let all = wait_for(timeout, || {
            ids.iter()
                .all(|&via| {
                    let have = self.brokers(via);
                    want.iter().all(|id| have.contains(id))
                })
                .then_some(())
        });
        assert!(
            all.is_some(),
            "nodes {ids:?} did not all become brokers\n{}",
            self.logs()
        );
    }

    /// (leader, replicas, isr) of one partition as node `via` reports it.
    pub fn partition(&self, via: u64, topic: &str, partition: i32) -> Option<PartitionView> {
        let m = self.metadata(via, &[topic])?;
        let t = m.topics.iter().find(|t| t.error_code == 0)?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition_index == partition && p.error_code == 0)?;
        Some(PartitionView {
            leader: p.leader_id.0,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

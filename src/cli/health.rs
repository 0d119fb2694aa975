//! `spool health`: whether a broker is ready for clients, for orchestrators' health checks
//! (the container image's HEALTHCHECK runs it). Ready means the broker answers ApiVersions and
//! Metadata, the metadata quorum has a leader that answers DescribeQuorum, and, when a node id is
//! given or found in the environment the image reads (`SPOOL_NODE_ID`, `KAFKA_NODE_ID`), lists
//! that node among its live brokers: registered with the quorum and not fenced. Exits 0 with
//! one line when ready, non-zero with the reason otherwise.

use super::error_name;
use super::wire::{Connection, WireError};
use crate::config::Config;
use crate::handlers::describe_quorum::METADATA_TOPIC;
use clap::Args;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    ApiVersionsRequest, DescribeQuorumRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;
use thiserror::Error;

#[derive(Args, Debug)]
pub struct HealthArgs {
    /// The broker to ask, host:port (default: this node's first client listener, from the
    /// environment `spool serve` reads, on 127.0.0.1 when it listens on every address).
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap_server: Option<String>,
    /// The node that must be live (default: `SPOOL_NODE_ID`, else `KAFKA_NODE_ID`, when set).
    #[arg(long, value_name = "ID")]
    node_id: Option<i32>,
    /// How long to wait for each answer, in ms.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    timeout_ms: u64,
}

#[derive(Debug, Error)]
pub enum HealthError {
    #[error("not ready: {0}")]
    Wire(#[from] WireError),
    #[error("not ready: ApiVersions answered {}", error_name(*.0))]
    ApiVersions(i16),
    #[error("not ready: the metadata quorum has no leader{}", quorum_reason(*.0))]
    NoQuorum(i16),
    #[error("not ready: node {node} is not a live broker (live: {live:?})")]
    NotLive { node: i32, live: Vec<i32> },
}

fn quorum_reason(code: i16) -> String {
    match code {
        0 => String::new(),
        code => format!(" (DescribeQuorum answered {})", error_name(code)),
    }
}

/// Where this node serves clients, from the configuration `spool serve` would build out of the
/// environment alone (the container image's case): its first client listener, on 127.0.0.1
/// when that listener is bound to every address.
fn own_listener() -> String {
    let first = Config::load(None, std::env::vars(), &[])
        .ok()
        .and_then(|c| c.listen_addrs().ok())
        .and_then(|addrs| addrs.into_iter().next());
    match first {
        Some((_, addr)) if addr.ip().is_unspecified() => format!("127.0.0.1:{}", addr.port()),
        Some((_, addr)) => addr.to_string(),
        None => "127.0.0.1:9092".to_string(),
    }
}

fn node_from_env() -> Option<i32> {
    ["SPOOL_NODE_ID", "KAFKA_NODE_ID"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

pub fn run(args: HealthArgs) -> anyhow::Result<()> {
    Ok(check(&args).map(|line| println!("{line}"))?)
}

/// The one line that says the broker is ready, or why it is not.
fn check(args: &HealthArgs) -> Result<String, HealthError> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let address = args.bootstrap_server.clone().unwrap_or_else(own_listener);
    let mut conn = Connection::open(&address, timeout)?;
    let versions = conn.call(&ApiVersionsRequest::default(), 0)?;
    if versions.error_code != 0 {
        return Err(HealthError::ApiVersions(versions.error_code));
    }
    let metadata = conn.call(&MetadataRequest::default().with_topics(Some(Vec::new())), 1)?;
    let quorum = conn.call(
        &DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![PartitionData::default()])]),
        0,
    )?;
    let leader = quorum
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or(HealthError::NoQuorum(quorum.error_code))?;
    if quorum.error_code != 0 {
        return Err(HealthError::NoQuorum(quorum.error_code));
    }
    if leader.error_code != 0 || leader.leader_id.0 < 0 {
        return Err(HealthError::NoQuorum(leader.error_code));
    }
    let live: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
    if let Some(node) = args.node_id.or_else(node_from_env) {
        if !live.contains(&node) {
            return Err(HealthError::NotLive { node, live });
        }
    }
    Ok(format!(
        "ready: {} live broker(s), quorum leader {} (epoch {}, high watermark {})",
        live.len(),
        leader.leader_id.0,
        leader.leader_epoch,
        leader.high_watermark
    ))
}

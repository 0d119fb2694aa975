//! `spool topic reassign` and `spool topic reassignments`: move a partition's replicas to other
//! nodes, cancel such a move, and list the moves in progress, as Kafka's
//! `kafka-reassign-partitions.sh` does for one partition at a time. librdkafka has no call for
//! these APIs, so they go through the small protocol client (AlterPartitionReassignments,
//! ListPartitionReassignments).

use super::client::{self, AdminArgs, ClientError, Output};
use super::error_name;
use super::table;
use super::wire::{Connection, WireError};
use clap::{ArgGroup, Args};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use serde_json::{json, Value};
use thiserror::Error;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("change").required(true).args(["replicas", "cancel"])))]
pub struct ReassignArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    partition: i32,
    /// The node ids the partition should end up on, comma-separated; the first is the
    /// preferred leader.
    #[arg(long, value_name = "ID,...", value_delimiter = ',', num_args = 1..)]
    replicas: Vec<i32>,
    /// Cancel the reassignment in progress: the partition goes back to its original replicas.
    #[arg(long)]
    cancel: bool,
    /// Refuse a target with another number of replicas than the partition has (Kafka's
    /// `--disallow-replication-factor-change`).
    #[arg(long, conflicts_with = "cancel")]
    disallow_replication_factor_change: bool,
}

#[derive(Args, Debug)]
pub struct ReassignmentsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Only this topic's reassignments (default: all in progress).
    #[arg(long)]
    topic: Option<String>,
    /// Only this partition of --topic.
    #[arg(long, requires = "topic")]
    partition: Option<i32>,
}

#[derive(Debug, Error)]
pub enum ReassignError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{what}: {}{}", error_name(*.code), .message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        what: String,
        code: i16,
        message: Option<String>,
    },
}

fn check(what: String, code: i16, message: Option<&StrBytes>) -> Result<(), ReassignError> {
    match code {
        0 => Ok(()),
        _ => Err(ReassignError::Kafka {
            what,
            code,
            message: message.map(|m| m.to_string()),
        }),
    }
}

pub fn reassign(args: &ReassignArgs) -> Result<(), ReassignError> {
    let mut conn = Connection::open(&args.admin.client.bootstrap_server, args.admin.timeout())?;
    let target = (!args.cancel).then(|| args.replicas.iter().map(|&id| BrokerId(id)).collect());
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(i32::try_from(args.admin.timeout_ms).unwrap_or(i32::MAX))
        .with_allow_replication_factor_change(!args.disallow_replication_factor_change)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_string(args.topic.clone())))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(args.partition)
                .with_replicas(target)])]);
    // v1 only when it says something v0 cannot: a broker without v1 still serves the rest.
    let version = i16::from(args.disallow_replication_factor_change);
    let response = conn.call(&request, version)?;
    let tp = format!("{}-{}", args.topic, args.partition);
    let action = match args.cancel {
        true => format!("cancelling the reassignment of {tp}"),
        false => format!("reassigning {tp}"),
    };
    check(
        action.clone(),
        response.error_code,
        response.error_message.as_ref(),
    )?;
    let result = response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition_index == args.partition);
    match result {
        Some(p) => check(action, p.error_code, p.error_message.as_ref())?,
        None => check(action, ResponseError::UnknownServerError.code(), None)?,
    }
    let replicas = args
        .replicas
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    match (args.admin.output, args.cancel) {
        (Output::Human, true) => client::print(&format!(
            "Cancelled the reassignment of {tp}: it is back on its original replicas.\n"
        ))?,
        (Output::Human, false) => client::print(&format!(
            "Reassigning {tp} to replicas {replicas}; `spool topic reassignments` shows it until it completes.\n"
        ))?,
        (Output::Json, cancel) => client::print_json(&json!({
            "topic": args.topic,
            "partition": args.partition,
            "replicas": (!cancel).then_some(&args.replicas),
            "cancelled": cancel,
        }))?,
    }
    Ok(())
}

pub fn list(args: &ReassignmentsArgs) -> Result<(), ReassignError> {
    let mut conn = Connection::open(&args.admin.client.bootstrap_server, args.admin.timeout())?;
    // The request names partitions, not whole topics: a topic alone is filtered here.
    let named = args.topic.as_ref().zip(args.partition).map(|(name, p)| {
        vec![ListPartitionReassignmentsTopics::default()
            .with_name(TopicName(StrBytes::from_string(name.clone())))
            .with_partition_indexes(vec![p])]
    });
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(i32::try_from(args.admin.timeout_ms).unwrap_or(i32::MAX))
        .with_topics(named);
    let response = conn.call(&request, 0)?;
    check(
        "listing partition reassignments".into(),
        response.error_code,
        response.error_message.as_ref(),
    )?;
    let ids = |ids: &[BrokerId]| ids.iter().map(|id| id.0).collect::<Vec<i32>>();
    let mut rows: Vec<Value> = Vec::new();
    for t in &response.topics {
        if args.topic.as_deref().is_some_and(|name| *t.name.0 != *name) {
            continue;
        }
        for p in &t.partitions {
            if args.partition.is_some_and(|want| want != p.partition_index) {
                continue;
            }
            rows.push(json!({
                "topic": t.name.0.to_string(),
                "partition": p.partition_index,
                "replicas": ids(&p.replicas),
                "adding_replicas": ids(&p.adding_replicas),
                "removing_replicas": ids(&p.removing_replicas),
            }));
        }
    }
    rows.sort_by_key(|r| (r["topic"].to_string(), r["partition"].as_i64()));
    match args.admin.output {
        Output::Human => client::print(&table::render(
            &["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"],
            &rows.iter().map(row_text).collect::<Vec<_>>(),
        ))?,
        Output::Json => client::print_json(&Value::Array(rows))?,
    }
    Ok(())
}

fn row_text(row: &Value) -> Vec<String> {
    let list = |v: &Value| {
        let items: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(Value::to_string)
            .collect();
        match items.is_empty() {
            true => "-".to_string(),
            false => items.join(","),
        }
    };
    vec![
        row["topic"].as_str().unwrap_or_default().to_string(),
        row["partition"].to_string(),
        list(&row["replicas"]),
        list(&row["adding_replicas"]),
        list(&row["removing_replicas"]),
    ]
}

//! `spool txn`: find and abort hanging transactions, as Kafka's `kafka-transactions.sh` does.
//! `list` asks ListTransactions, `describe` the transaction coordinator (DescribeTransactions),
//! and `abort` finds the producer whose transaction starts at an offset of a partition
//! (DescribeProducers) and writes an abort marker there (WriteTxnMarkers).

use super::client::{self, AdminArgs, ClientError, Output};
use super::error_name;
use super::table;
use super::wire::{Connection, WireError};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::ProducerState;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use serde_json::{json, Value};
use thiserror::Error;

#[derive(Subcommand, Debug)]
pub enum TxnCommand {
    /// List transactional ids with their producer id and state.
    List(ListArgs),
    /// Show a transactional id's state, producer, timeout and partitions.
    Describe(DescribeArgs),
    /// Show the producers a partition knows and where their open transactions start.
    Producers(ProducersArgs),
    /// Abort a hanging transaction on one partition by writing an abort marker.
    Abort(AbortArgs),
}

#[derive(Args, Debug)]
pub struct ProducersArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    partition: i32,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Only transactions in this state (Empty, Ongoing, PrepareCommit, ...); repeatable.
    #[arg(long = "state", value_name = "STATE")]
    states: Vec<String>,
    /// Only transactions of this producer id; repeatable.
    #[arg(long = "producer-id", value_name = "ID")]
    producer_ids: Vec<i64>,
    /// Only transactions running for at least this long, in ms.
    #[arg(long, value_name = "MS")]
    duration_ms: Option<i64>,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[arg(long, value_name = "ID")]
    transactional_id: String,
}

#[derive(Args, Debug)]
pub struct AbortArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    partition: i32,
    /// The first offset of the transaction to abort (as `spool txn producers` shows it); the
    /// producer is looked up from it.
    #[arg(long, value_name = "OFFSET", conflicts_with = "producer_id")]
    start_offset: Option<i64>,
    /// The producer whose transaction to abort (with --producer-epoch).
    #[arg(long, value_name = "ID", requires = "producer_epoch")]
    producer_id: Option<i64>,
    #[arg(long, value_name = "EPOCH")]
    producer_epoch: Option<i16>,
    /// The coordinator epoch to write in the marker.
    #[arg(long, value_name = "EPOCH", default_value_t = 0)]
    coordinator_epoch: i32,
}

#[derive(Debug, Error)]
pub enum TxnError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{what}: {}", error_name(*.code))]
    Kafka { what: String, code: i16 },
    #[error("no producer has a transaction starting at offset {offset} of {topic}-{partition}")]
    NoSuchTransaction {
        topic: String,
        partition: i32,
        offset: i64,
    },
    #[error("give --start-offset, or --producer-id with --producer-epoch")]
    WhichTransaction,
}

fn str_bytes(s: String) -> StrBytes {
    StrBytes::from_string(s)
}

fn check(what: impl Into<String>, code: i16) -> Result<(), TxnError> {
    if code == 0 {
        Ok(())
    } else {
        Err(TxnError::Kafka {
            what: what.into(),
            code,
        })
    }
}

pub fn run(command: TxnCommand) -> anyhow::Result<()> {
    match command {
        TxnCommand::List(args) => list(&args)?,
        TxnCommand::Describe(args) => describe(&args)?,
        TxnCommand::Producers(args) => producers(&args)?,
        TxnCommand::Abort(args) => abort(&args)?,
    }
    Ok(())
}

fn connect(admin: &AdminArgs) -> Result<Connection, WireError> {
    Connection::open(&admin.client.bootstrap_server, admin.timeout())
}

fn list(args: &ListArgs) -> Result<(), TxnError> {
    let mut conn = connect(&args.admin)?;
    let request = ListTransactionsRequest::default()
        .with_state_filters(args.states.iter().map(|s| str_bytes(s.clone())).collect())
        .with_producer_id_filters(args.producer_ids.iter().map(|p| ProducerId(*p)).collect())
        .with_duration_filter(args.duration_ms.unwrap_or(-1));
    let version = if args.duration_ms.is_some() { 1 } else { 0 };
    let response = conn.call(&request, version)?;
    check("listing transactions", response.error_code)?;
    let rows: Vec<Vec<String>> = response
        .transaction_states
        .iter()
        .map(|t| {
            vec![
                t.transactional_id.0.to_string(),
                t.producer_id.0.to_string(),
                t.transaction_state.to_string(),
            ]
        })
        .collect();
    match args.admin.output {
        Output::Human => client::print(&table::render(
            &["TransactionalId", "ProducerId", "TransactionState"],
            &rows,
        ))?,
        Output::Json => client::print_json(&Value::Array(
            rows.iter()
                .map(|r| json!({"transactional_id": r[0], "producer_id": r[1].parse::<i64>().unwrap_or(-1), "state": r[2]}))
                .collect(),
        ))?,
    }
    Ok(())
}

fn describe(args: &DescribeArgs) -> Result<(), TxnError> {
    let mut conn = connect(&args.admin)?;
    // The coordinator of the id answers; find it first, as Kafka's admin client does.
    let found = conn.call(
        &FindCoordinatorRequest::default()
            .with_key(str_bytes(args.transactional_id.clone()))
            .with_key_type(1),
        3,
    )?;
    check("finding the transaction coordinator", found.error_code)?;
    let here = format!("{}:{}", found.host, found.port);
    if !args
        .admin
        .client
        .bootstrap_server
        .split(',')
        .any(|a| a.trim() == here)
    {
        conn = Connection::open(&here, args.admin.timeout())?;
    }
    let response = conn.call(
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
            str_bytes(args.transactional_id.clone()),
        )]),
        0,
    )?;
    let Some(t) = response.transaction_states.first() else {
        return Err(TxnError::Kafka {
            what: "describing the transaction".into(),
            code: ResponseError::UnknownServerError.code(),
        });
    };
    check(
        format!("transactional id `{}`", args.transactional_id),
        t.error_code,
    )?;
    let partitions: Vec<String> = t
        .topics
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| format!("{}-{p}", tp.topic.0))
        })
        .collect();
    match args.admin.output {
        Output::Human => client::print(&table::render(
            &[
                "TransactionalId",
                "ProducerId",
                "ProducerEpoch",
                "TransactionState",
                "TransactionTimeoutMs",
                "TransactionStartTimeMs",
                "TopicPartitions",
            ],
            &[vec![
                t.transactional_id.0.to_string(),
                t.producer_id.0.to_string(),
                t.producer_epoch.to_string(),
                t.transaction_state.to_string(),
                t.transaction_timeout_ms.to_string(),
                t.transaction_start_time_ms.to_string(),
                partitions.join(","),
            ]],
        ))?,
        Output::Json => client::print_json(&json!({
            "transactional_id": t.transactional_id.0.to_string(),
            "producer_id": t.producer_id.0,
            "producer_epoch": t.producer_epoch,
            "state": t.transaction_state.to_string(),
            "timeout_ms": t.transaction_timeout_ms,
            "start_time_ms": t.transaction_start_time_ms,
            "partitions": partitions,
        }))?,
    }
    Ok(())
}

/// The producers of one partition (DescribeProducers).
fn describe_producers(
    conn: &mut Connection,
    topic: &str,
    partition: i32,
) -> Result<Vec<ProducerState>, TxnError> {
    let what = format!("describing producers of {topic}-{partition}");
    let response = conn.call(
        &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(TopicName(str_bytes(topic.to_string())))
            .with_partition_indexes(vec![partition])]),
        0,
    )?;
    let p = response
        .topics
        .into_iter()
        .next()
        .and_then(|t| t.partitions.into_iter().next())
        .ok_or(TxnError::Kafka {
            what: what.clone(),
            code: ResponseError::UnknownServerError.code(),
        })?;
    check(what, p.error_code)?;
    Ok(p.active_producers)
}

fn producers(args: &ProducersArgs) -> Result<(), TxnError> {
    let mut conn = connect(&args.admin)?;
    let found = describe_producers(&mut conn, &args.topic, args.partition)?;
    match args.admin.output {
        Output::Human => {
            let rows: Vec<Vec<String>> = found
                .iter()
                .map(|p| {
                    vec![
                        p.producer_id.0.to_string(),
                        p.producer_epoch.to_string(),
                        p.last_sequence.to_string(),
                        p.last_timestamp.to_string(),
                        p.coordinator_epoch.to_string(),
                        p.current_txn_start_offset.to_string(),
                    ]
                })
                .collect();
            client::print(&table::render(
                &[
                    "ProducerId",
                    "ProducerEpoch",
                    "LastSequence",
                    "LastTimestamp",
                    "CoordinatorEpoch",
                    "CurrentTransactionStartOffset",
                ],
                &rows,
            ))?
        }
        Output::Json => client::print_json(&Value::Array(
            found
                .iter()
                .map(|p| {
                    json!({
                        "producer_id": p.producer_id.0,
                        "producer_epoch": p.producer_epoch,
                        "last_sequence": p.last_sequence,
                        "last_timestamp": p.last_timestamp,
                        "coordinator_epoch": p.coordinator_epoch,
                        "current_transaction_start_offset": p.current_txn_start_offset,
                    })
                })
                .collect(),
        ))?,
    }
    Ok(())
}

fn abort(args: &AbortArgs) -> Result<(), TxnError> {
    let mut conn = connect(&args.admin)?;
    let (producer_id, epoch) = match (args.start_offset, args.producer_id, args.producer_epoch) {
        (Some(offset), _, _) => {
            let producers = describe_producers(&mut conn, &args.topic, args.partition)?;
            let producer = producers
                .iter()
                .find(|s| s.current_txn_start_offset == offset)
                .ok_or_else(|| TxnError::NoSuchTransaction {
                    topic: args.topic.clone(),
                    partition: args.partition,
                    offset,
                })?;
            (producer.producer_id.0, producer.producer_epoch as i16)
        }
        (None, Some(id), Some(epoch)) => (id, epoch),
        _ => return Err(TxnError::WhichTransaction),
    };
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(args.coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(str_bytes(args.topic.clone())))
                .with_partition_indexes(vec![args.partition])])]);
    let response = conn.call(&request, 1)?;
    let code = response
        .markers
        .first()
        .and_then(|m| m.topics.first())
        .and_then(|t| t.partitions.first())
        .map_or(ResponseError::UnknownServerError.code(), |p| p.error_code);
    check(
        format!(
            "aborting producer {producer_id}'s transaction on {}-{}",
            args.topic, args.partition
        ),
        code,
    )?;
    client::print(&format!(
        "Aborted the transaction of producer {producer_id} (epoch {epoch}) on {}-{}.\n",
        args.topic, args.partition
    ))?;
    Ok(())
}

//! The `spool` command line: `serve` runs the broker; `produce`, `consume`, `topic` and
//! `group` are console tools, Kafka clients built on librdkafka (through the rdkafka crate);
//! `txn` and `topic reassign` speak the admin APIs librdkafka lacks through a small protocol
//! client.
//!
//! Each client command's `run` returns `anyhow::Result` and is the only place errors are
//! gathered; each module below has its own error enum naming the topic, group or broker.

// librdkafka's error type is large (up to four strings), and these errors carry it with the
// names of what failed. Each ends a command, once; boxing them would buy nothing.
#![allow(clippy::result_large_err)]

mod alter_config;
mod client;
mod consume;
mod group;
mod health;
mod line_reader;
mod produce;
mod reassign;
mod record_format;
mod reset_offsets;
pub mod serve;
mod table;
mod topic;
mod txn;
mod user;
mod wire;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// A Kafka error code as the console commands show it: `NotLeaderOrFollower (6): <message>`.
fn error_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?} ({code}): {e}"),
        None => format!("error code {code}"),
    }
}

#[derive(Parser)]
#[command(
    name = "spool",
    version,
    about = "A Kafka-compatible broker in one small binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (defaults: 127.0.0.1:9092, data under ./spool-data).
    Serve(serve::ServeArgs),
    /// Write lines of standard input to a topic, one record each.
    Produce(produce::ProduceArgs),
    /// Print a topic's records.
    Consume(consume::ConsumeArgs),
    /// Create, list, describe, delete topics, alter their configs, reassign their replicas.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// List, describe, delete consumer groups and reset their offsets.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// List and describe transactions, show a partition's producers, abort a hanging
    /// transaction.
    #[command(subcommand)]
    Txn(txn::TxnCommand),
    /// Add, list and delete the SCRAM users kept in the metadata quorum.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Exit 0 when a broker is ready for clients (answers, knows its controller, and the node
    /// given or in the environment is live); for health checks.
    Health(health::HealthArgs),
}

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => return serve::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Topic(command) => topic::run(command),
        Command::Group(command) => group::run(command),
        Command::Txn(command) => txn::run(command),
        Command::User(command) => user::run(command),
        Command::Health(args) => health::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Every error's message already includes its cause (they name the object and say
        // why), so the chain is not printed again.
        Err(e) => {
            eprintln!("spool: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `spool consume`: print a topic's records, like Kafka's console consumer. With `--group` it
//! subscribes as a member of that group and commits what it printed; without, it reads every
//! partition (or the one of `--partition`) with no group and commits nothing.

use super::client::{self, CliContext, ClientArgs, ClientError, Output, PropertyError};
use super::record_format::{self, TextFormat};
use clap::{Args, ValueEnum};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The topic to read.
    #[arg(long)]
    topic: String,
    /// Start at the earliest record (with --group: when the group has no committed offset).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Consume as a member of this group, committing offsets.
    #[arg(long, conflicts_with = "partition")]
    group: Option<String>,
    /// Read only this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// Where to start in --partition: an offset, earliest, or latest (the default).
    #[arg(long, requires = "partition", allow_hyphen_values = true, value_parser = parse_start_offset)]
    offset: Option<StartOffset>,
    /// Exit after printing this many records.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    /// Exit after this long without a record, in ms (also the deadline to reach the broker).
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Whether to show records of transactions that are still open or were aborted.
    #[arg(long, value_enum, default_value_t = IsolationLevel::ReadUncommitted)]
    isolation_level: IsolationLevel,
    /// What to print, as in Kafka's console consumer: print.key, print.headers,
    /// print.timestamp, print.partition, print.offset, print.value, key.separator,
    /// line.separator, headers.separator, headers.key.separator, null.literal. Repeatable.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    property: Vec<String>,
    /// Any librdkafka consumer setting, as key=value. Repeatable.
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    consumer_property: Vec<String>,
    /// `json`: one object per record and line (the print.* properties do not apply).
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IsolationLevel {
    #[value(name = "read_uncommitted")]
    ReadUncommitted,
    #[value(name = "read_committed")]
    ReadCommitted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

fn parse_start_offset(raw: &str) -> Result<StartOffset, String> {
    match raw {
        "earliest" => Ok(StartOffset::Earliest),
        "latest" => Ok(StartOffset::Latest),
        n => match n.parse::<i64>() {
            Ok(o) if o >= 0 => Ok(StartOffset::At(o)),
            _ => Err(format!(
                "`{n}` is not an offset: expected a number >= 0, earliest or latest"
            )),
        },
    }
}

#[derive(Debug, Error)]
pub enum ConsumeError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Property(#[from] PropertyError),
    #[error("cannot read topic `{topic}`: {source}")]
    Start { topic: String, source: KafkaError },
    #[error("consuming topic `{topic}` failed: {source}")]
    Fatal { topic: String, source: KafkaError },
    #[error(
        "cannot consume as group `{group}`: the broker at {bootstrap} does not serve consumer \
         groups (leave out --group to read without one)"
    )]
    GroupsUnsupported { bootstrap: String, group: String },
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let format = TextFormat::from_properties(&client::key_values("--property", &args.property)?)?;
    let (_signals, stop) = client::stop_flag()?;
    let consumer = create_consumer(&args)?;
    let startup = Duration::from_millis(args.timeout_ms.unwrap_or(30_000));
    let partitions = wait_for_topic(&args, &consumer, startup, &stop)?;
    let start = |e: KafkaError| ConsumeError::Start {
        topic: args.topic.clone(),
        source: e,
    };
    if let Some(group) = &args.group {
        check_groups_served(&args, &consumer, group, startup)?;
        consumer.subscribe(&[&args.topic]).map_err(start)?;
    } else {
        let tpl = assignment(&args, &partitions)?;
        consumer.assign(&tpl).map_err(start)?;
    }
    let count = print_records(&args, &consumer, &format, &stop)?;
    eprintln!("Processed a total of {count} messages");
    Ok(())
}

/// The topic's partitions once it exists. Asking for it lets the broker create it where it
/// allows (as Kafka's console consumer does); otherwise this waits for it to be created, as
/// Kafka's console consumer does, until `--timeout-ms` if given, else until interrupted.
fn wait_for_topic(
    args: &ConsumeArgs,
    consumer: &BaseConsumer<CliContext>,
    startup: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Vec<i32>, ClientError> {
    let deadline = args
        .timeout_ms
        .map(|ms| std::time::Instant::now() + Duration::from_millis(ms));
    let mut told = false;
    loop {
        let metadata =
            client::metadata(consumer.client(), &args.client, Some(&args.topic), startup)?;
        match client::partitions(&metadata, &args.topic) {
            Ok(p) if !p.is_empty() => return Ok(p),
            Ok(_) | Err(ClientError::UnknownTopic(_)) => {}
            Err(e) => return Err(e),
        }
        let out_of_time = deadline.is_some_and(|d| std::time::Instant::now() >= d);
        if out_of_time || stop.load(std::sync::atomic::Ordering::Acquire) {
            return Err(ClientError::UnknownTopic(args.topic.clone()));
        }
        if !told {
            eprintln!("waiting for topic {} to be created", args.topic);
            told = true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Without group APIs librdkafka would wait for a coordinator forever, saying nothing; a
/// DescribeGroups first turns that into a clear error.
fn check_groups_served(
    args: &ConsumeArgs,
    consumer: &BaseConsumer<CliContext>,
    group: &str,
    timeout: Duration,
) -> Result<(), ConsumeError> {
    match consumer.client().fetch_group_list(Some(group), timeout) {
        Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnsupportedFeature) => {
            Err(ConsumeError::GroupsUnsupported {
                bootstrap: args.client.bootstrap_server.clone(),
                group: group.to_string(),
            })
        }
        // Anything else is left to the consumer itself, which retries.
        _ => Ok(()),
    }
}

fn create_consumer(args: &ConsumeArgs) -> Result<BaseConsumer<CliContext>, ConsumeError> {
    let mut c = client::config(&args.client);
    let reset = if args.from_beginning || args.offset == Some(StartOffset::Earliest) {
        "earliest"
    } else {
        "latest"
    };
    // Asking for the topic may create it where the broker allows, as Kafka's consumer does.
    c.set("allow.auto.create.topics", "true");
    c.set("auto.offset.reset", reset).set(
        "isolation.level",
        match args.isolation_level {
            IsolationLevel::ReadCommitted => "read_committed",
            IsolationLevel::ReadUncommitted => "read_uncommitted",
        },
    );
    match &args.group {
        // Offsets are stored by hand once a record is printed: the client's own store would
        // also count records fetched ahead and drained, unprinted, when the consumer closes.
        Some(g) => c
            .set("group.id", g)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false"),
        // librdkafka's consumer needs a group id even to assign partitions by hand. This one
        // is never joined and never committed to: offsets are always given explicitly.
        None => c
            .set(
                "group.id",
                format!("spool-console-consumer-{}", std::process::id()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false"),
    };
    client::set_properties(
        &mut c,
        &client::key_values("--consumer-property", &args.consumer_property)?,
    );
    c.create_with_context(CliContext::default())
        .map_err(|source| {
            ClientError::Create {
                bootstrap: args.client.bootstrap_server.clone(),
                source,
            }
            .into()
        })
}

/// The partitions to read without a group, each with its starting offset.
fn assignment(args: &ConsumeArgs, partitions: &[i32]) -> Result<TopicPartitionList, ConsumeError> {
    let mut tpl = TopicPartitionList::new();
    let from = match (args.offset, args.from_beginning) {
        (Some(StartOffset::At(o)), _) => Offset::Offset(o),
        (Some(StartOffset::Earliest), _) | (None, true) => Offset::Beginning,
        (Some(StartOffset::Latest), _) | (None, false) => Offset::End,
    };
    let chosen: Vec<i32> = match args.partition {
        Some(p) if partitions.contains(&p) => vec![p],
        Some(p) => {
            return Err(ClientError::UnknownPartition {
                topic: args.topic.clone(),
                partition: p,
                count: partitions.len(),
            }
            .into())
        }
        None => partitions.to_vec(),
    };
    for p in chosen {
        tpl.add_partition_offset(&args.topic, p, from)
            .map_err(|source| ConsumeError::Start {
                topic: args.topic.clone(),
                source,
            })?;
    }
    Ok(tpl)
}

/// Prints records until --max-messages, --timeout-ms without a record, SIGINT/SIGTERM, or a
/// closed standard output; returns how many were printed.
fn print_records(
    args: &ConsumeArgs,
    consumer: &BaseConsumer<CliContext>,
    format: &TextFormat,
    stop: &AtomicBool,
) -> Result<u64, ConsumeError> {
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut last_record = Instant::now();
    let mut last_warning = String::new();
    let mut out = std::io::stdout().lock();
    let mut count = 0u64;
    while args.max_messages.is_none_or(|max| count < max) && !stop.load(Ordering::SeqCst) {
        if idle_limit.is_some_and(|limit| last_record.elapsed() >= limit) {
            break;
        }
        let message = match consumer.poll(Duration::from_millis(100)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Ok(m)) => m,
            Some(Err(source @ KafkaError::MessageConsumptionFatal(_))) => {
                return Err(ConsumeError::Fatal {
                    topic: args.topic.clone(),
                    source,
                })
            }
            Some(Err(e)) => {
                // librdkafka retries these itself (a broker restarting, a leader moving);
                // say so once, as Kafka's console consumer logs them and carries on.
                let text = e.to_string();
                if text != last_warning {
                    eprintln!("spool: warning: {text}");
                    last_warning = text;
                }
                continue;
            }
        };
        match write_record(&mut out, args.output, format, &message) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::BrokenPipe => break,
            Err(e) => return Err(ConsumeError::Stdout(e)),
        }
        if args.group.is_some() {
            if let Err(e) = consumer.store_offset_from_message(&message) {
                eprintln!("spool: warning: cannot store the offset of a printed record: {e}");
            }
        }
        count += 1;
        last_record = Instant::now();
    }
    Ok(count)
}

fn write_record(
    out: &mut impl Write,
    output: Output,
    format: &TextFormat,
    message: &BorrowedMessage<'_>,
) -> std::io::Result<()> {
    match output {
        Output::Human => format.write(out, message)?,
        Output::Json => {
            serde_json::to_writer(&mut *out, &record_format::json(message))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets_parse_like_kafkas_console_consumer() {
        assert_eq!(parse_start_offset("earliest"), Ok(StartOffset::Earliest));
        assert_eq!(parse_start_offset("latest"), Ok(StartOffset::Latest));
        assert_eq!(parse_start_offset("12"), Ok(StartOffset::At(12)));
        assert!(parse_start_offset("-1").unwrap_err().contains("`-1`"));
        assert!(parse_start_offset("soon").is_err());
    }
}

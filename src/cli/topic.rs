//! `spool topic create|list|describe|delete|alter-config`: topic administration through
//! librdkafka's admin API (CreateTopics, DeleteTopics, Metadata, DescribeConfigs and
//! IncrementalAlterConfigs); `reassign` and `reassignments` are in [`super::reassign`].

use super::alter_config::{self, ConfigOp};
use super::client::{self, AdminArgs, ClientError, Output};
use super::reassign;
use clap::{ArgGroup, Args, Subcommand};
use rdkafka::admin::{ConfigSource, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::{Metadata, MetadataTopic};
use serde_json::{json, Value};
use std::fmt::Write;
use thiserror::Error;

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List the topics, one name a line.
    List(ListArgs),
    /// Show a topic's partitions (leader, replicas, ISR) and configs.
    Describe(DescribeArgs),
    /// Delete a topic and its data.
    Delete(DeleteArgs),
    /// Set or remove per-topic configs (IncrementalAlterConfigs).
    AlterConfig(AlterConfigArgs),
    /// Move a partition's replicas to other nodes, or cancel such a move
    /// (AlterPartitionReassignments).
    Reassign(reassign::ReassignArgs),
    /// List the reassignments in progress (ListPartitionReassignments).
    Reassignments(reassign::ReassignmentsArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Leave out Kafka's internal topics (__consumer_offsets, __transaction_state).
    #[arg(long)]
    exclude_internal: bool,
}

/// Kafka's internal topic names.
const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[arg(long)]
    topic: String,
    /// Partition count (default: the broker's num_partitions).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    partitions: i32,
    /// Replication factor (default: the broker's default_replication_factor).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    replication_factor: i32,
    /// A topic config, name=value (e.g. retention.ms=86400000). Repeatable.
    #[arg(long = "config", value_name = "NAME=VALUE")]
    config: Vec<String>,
    /// Succeed when the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The topic to describe (default: every topic).
    #[arg(long)]
    topic: Option<String>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[arg(long)]
    topic: String,
    /// Succeed when the topic does not exist.
    #[arg(long)]
    if_exists: bool,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["add_config", "delete_config"])))]
pub struct AlterConfigArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[arg(long)]
    topic: String,
    /// Configs to set, name=value, comma-separated or repeated; a value holding commas goes in
    /// brackets: cleanup.policy=[compact,delete].
    #[arg(long, value_name = "NAME=VALUE,...")]
    add_config: Vec<String>,
    /// Configs to return to their defaults, comma-separated or repeated.
    #[arg(long, value_name = "NAME,...")]
    delete_config: Vec<String>,
}

#[derive(Debug, Error)]
pub enum TopicError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("--config: {0}")]
    Config(#[from] client::PropertyError),
    #[error("cannot {action} topic `{topic}`: {source}")]
    Request {
        action: &'static str,
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot {action} topic `{topic}`: {code}")]
    Refused {
        action: &'static str,
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("topic `{0}` already exists")]
    Exists(String),
    #[error(transparent)]
    AlterConfig(#[from] alter_config::AlterConfigError),
    #[error(transparent)]
    Reassign(#[from] reassign::ReassignError),
}

pub fn run(command: TopicCommand) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create(a) => create(&a)?,
        TopicCommand::List(a) => list(&a)?,
        TopicCommand::Describe(a) => describe(&a)?,
        TopicCommand::Delete(a) => delete(&a)?,
        TopicCommand::AlterConfig(a) => alter(&a)?,
        TopicCommand::Reassign(a) => reassign::reassign(&a)?,
        TopicCommand::Reassignments(a) => reassign::list(&a)?,
    }
    Ok(())
}

fn create(args: &CreateArgs) -> Result<(), TopicError> {
    let configs = client::key_values("--config", &args.config)?;
    let (admin, _) = args.admin.admin_with_metadata()?;
    let mut topic = NewTopic::new(
        &args.topic,
        args.partitions,
        TopicReplication::Fixed(args.replication_factor),
    );
    for (k, v) in &configs {
        topic = topic.set(k, v);
    }
    let results = client::runtime()?
        .block_on(admin.create_topics([&topic], &args.admin.options()))
        .map_err(|source| TopicError::Request {
            action: "create",
            topic: args.topic.clone(),
            source,
        })?;
    let created = match one_result(results, "create", &args.topic) {
        Ok(()) => true,
        Err(TopicError::Refused {
            code: RDKafkaErrorCode::TopicAlreadyExists,
            ..
        }) if args.if_not_exists => false,
        Err(TopicError::Refused {
            code: RDKafkaErrorCode::TopicAlreadyExists,
            ..
        }) => return Err(TopicError::Exists(args.topic.clone())),
        Err(e) => return Err(e),
    };
    match args.admin.output {
        Output::Human if created => client::print(&format!("Created topic {}.\n", args.topic))?,
        Output::Human => client::print(&format!("Topic {} already exists.\n", args.topic))?,
        Output::Json => client::print_json(&json!({"topic": args.topic, "created": created}))?,
    }
    Ok(())
}

/// The single result of a one-topic admin call, as `Ok` or [`TopicError::Refused`].
fn one_result(
    results: Vec<rdkafka::admin::TopicResult>,
    action: &'static str,
    topic: &str,
) -> Result<(), TopicError> {
    match results.into_iter().next() {
        Some(Ok(_)) | None => Ok(()),
        Some(Err((_, code))) => Err(TopicError::Refused {
            action,
            topic: topic.to_string(),
            code,
        }),
    }
}

fn list(list: &ListArgs) -> Result<(), TopicError> {
    let args = &list.admin;
    let (_admin, metadata) = args.admin_with_metadata()?;
    let mut names: Vec<&str> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| !(list.exclude_internal && INTERNAL_TOPICS.contains(n)))
        .collect();
    names.sort_unstable();
    match args.output {
        Output::Human => {
            client::print(&names.iter().map(|n| format!("{n}\n")).collect::<String>())?
        }
        Output::Json => client::print_json(&json!(names))?,
    }
    Ok(())
}

fn describe(args: &DescribeArgs) -> Result<(), TopicError> {
    let (admin, metadata) = args.admin.admin_with_metadata()?;
    let topics = chosen_topics(&metadata, args.topic.as_deref())?;
    let specifiers: Vec<ResourceSpecifier<'_>> = topics
        .iter()
        .map(|t| ResourceSpecifier::Topic(t.name()))
        .collect();
    let configs = client::runtime()?
        .block_on(admin.describe_configs(&specifiers, &args.admin.options()))
        .map_err(|source| TopicError::Request {
            action: "describe the configs of",
            topic: args.topic.clone().unwrap_or_else(|| "*".into()),
            source,
        })?;
    let mut described = Vec::new();
    for (topic, result) in topics.iter().zip(configs) {
        let resource = result.map_err(|code| TopicError::Refused {
            action: "describe the configs of",
            topic: topic.name().to_string(),
            code,
        })?;
        described.push(topic_json(topic, &resource));
    }
    match args.admin.output {
        Output::Human => client::print(&described.iter().map(describe_text).collect::<String>())?,
        Output::Json => client::print_json(&Value::Array(described))?,
    }
    Ok(())
}

/// The topics to describe, sorted by name: the one named, or all.
fn chosen_topics<'m>(
    metadata: &'m Metadata,
    topic: Option<&str>,
) -> Result<Vec<&'m MetadataTopic>, TopicError> {
    if let Some(name) = topic {
        client::partitions(metadata, name)?;
    }
    let mut topics: Vec<&MetadataTopic> = metadata
        .topics()
        .iter()
        .filter(|t| topic.is_none_or(|name| t.name() == name))
        .collect();
    topics.sort_unstable_by_key(|t| t.name());
    Ok(topics)
}

fn topic_json(topic: &MetadataTopic, resource: &rdkafka::admin::ConfigResource) -> Value {
    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_unstable_by_key(|p| p.id());
    let partitions: Vec<Value> = partitions
        .iter()
        .map(|p| json!({"partition": p.id(), "leader": p.leader(), "replicas": p.replicas(), "isr": p.isr()}))
        .collect();
    let mut entries: Vec<_> = resource.entries.iter().collect();
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let configs: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "value": e.value,
                "default": e.is_default || e.source == ConfigSource::Default,
                "source": source_name(&e.source),
                "read_only": e.is_read_only,
                "sensitive": e.is_sensitive,
            })
        })
        .collect();
    json!({
        "topic": topic.name(),
        "partition_count": partitions.len(),
        "replication_factor": topic.partitions().first().map_or(0, |p| p.replicas().len()),
        "partitions": partitions,
        "configs": configs,
    })
}

/// Kafka's names for config sources (as `kafka-configs.sh --describe` prints them).
fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "UNKNOWN",
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
        ConfigSource::Default => "DEFAULT_CONFIG",
    }
}

/// Kafka's `kafka-topics.sh --describe` layout, then the configs, non-default ones starred.
fn describe_text(topic: &Value) -> String {
    let list = |v: &Value| -> String {
        let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
        items
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let name = topic["topic"].as_str().unwrap_or_default();
    let mut s = format!(
        "Topic: {name}\tPartitionCount: {}\tReplicationFactor: {}\n",
        topic["partition_count"], topic["replication_factor"]
    );
    for p in topic["partitions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
            p["partition"],
            p["leader"],
            list(&p["replicas"]),
            list(&p["isr"])
        );
    }
    s.push_str("\tConfigs (* = not the default):\n");
    for c in topic["configs"].as_array().into_iter().flatten() {
        let mark = if c["default"] == Value::Bool(true) {
            ' '
        } else {
            '*'
        };
        let value = match (&c["value"], c["sensitive"] == Value::Bool(true)) {
            (_, true) => "(sensitive)".to_string(),
            (Value::String(v), _) => v.clone(),
            _ => "(null)".to_string(),
        };
        let _ = writeln!(
            s,
            "\t{mark} {}={value}",
            c["name"].as_str().unwrap_or_default()
        );
    }
    s
}

fn delete(args: &DeleteArgs) -> Result<(), TopicError> {
    let (admin, metadata) = args.admin.admin_with_metadata()?;
    match client::partitions(&metadata, &args.topic) {
        Err(ClientError::UnknownTopic(_)) if args.if_exists => return Ok(()),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let results = client::runtime()?
        .block_on(admin.delete_topics(&[&args.topic], &args.admin.options()))
        .map_err(|source| TopicError::Request {
            action: "delete",
            topic: args.topic.clone(),
            source,
        })?;
    one_result(results, "delete", &args.topic)?;
    match args.admin.output {
        Output::Human => client::print(&format!("Deleted topic {}.\n", args.topic))?,
        Output::Json => client::print_json(&json!({"topic": args.topic, "deleted": true}))?,
    }
    Ok(())
}

fn alter(args: &AlterConfigArgs) -> Result<(), TopicError> {
    let mut ops = Vec::new();
    for raw in args.add_config.iter().flat_map(|a| split_configs(a)) {
        let pair = client::key_values("--add-config", &[raw])?;
        ops.extend(
            pair.into_iter()
                .map(|(k, v)| ConfigOp::Set(k, unbracket(&v))),
        );
    }
    for raw in &args.delete_config {
        ops.extend(split_configs(raw).into_iter().map(ConfigOp::Delete));
    }
    let (admin, metadata) = args.admin.admin_with_metadata()?;
    client::partitions(&metadata, &args.topic)?;
    alter_config::incremental_alter_topic(
        admin.inner(),
        &args.admin.client.bootstrap_server,
        &args.topic,
        &ops,
        args.admin.timeout(),
    )?;
    match args.admin.output {
        Output::Human => client::print(&format!("Altered the configs of topic {}.\n", args.topic))?,
        Output::Json => client::print_json(&json!({"topic": args.topic, "altered": true}))?,
    }
    Ok(())
}

/// Splits `a=1,b=[x,y]` at the commas outside brackets, as `kafka-configs.sh` does.
fn split_configs(raw: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in raw.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn unbracket(value: &str) -> String {
    value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_split_outside_brackets() {
        assert_eq!(
            split_configs("retention.ms=5, cleanup.policy=[compact,delete],"),
            ["retention.ms=5", "cleanup.policy=[compact,delete]"]
        );
        assert_eq!(unbracket("[compact,delete]"), "compact,delete");
        assert_eq!(unbracket("5"), "5");
    }
}

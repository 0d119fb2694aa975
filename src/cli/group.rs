//! `spool group list|describe|reset-offsets|delete`: consumer groups through librdkafka
//! (ListGroups and DescribeGroups, OffsetFetch and OffsetCommit by a consumer that never
//! joins, ListOffsets for log end offsets, DeleteGroups).

use super::client::{self, AdminArgs, CliContext, ClientError, Output};
use super::reset_offsets::{self, ResetArgs};
use super::table;
use bytes::Bytes;
use clap::{Args, Subcommand};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::groups::GroupInfo;
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use thiserror::Error;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List the consumer groups, one name a line.
    List(AdminArgs),
    /// Show a group's state, members, and per partition its committed offset, log end offset
    /// and lag.
    Describe(GroupArgs),
    /// Move a group's committed offsets (a dry run unless --execute).
    ResetOffsets(ResetArgs),
    /// Delete a group that has no active members, with its committed offsets.
    Delete(GroupArgs),
}

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[arg(long)]
    pub group: String,
}

#[derive(Debug, Error)]
pub enum GroupError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot {what}: the broker at {bootstrap} does not support it (it does not serve consumer groups)")]
    Unsupported { bootstrap: String, what: String },
    #[error("group `{group}`: cannot {what}: {source}")]
    Request {
        what: String,
        group: String,
        source: KafkaError,
    },
    #[error(
        "group `{group}`: cannot {what}: no answer within {timeout_ms} ms \
         (no group coordinator is available; does the broker serve consumer groups?)"
    )]
    NoAnswer {
        what: String,
        group: String,
        timeout_ms: u64,
    },
    #[error("group `{0}` does not exist")]
    UnknownGroup(String),
    #[error("cannot delete group `{group}`: {code}")]
    Delete {
        group: String,
        code: RDKafkaErrorCode,
    },
    #[error("cannot read offsets of topic `{topic}` partition {partition}: {source}")]
    Watermarks {
        topic: String,
        partition: i32,
        source: KafkaError,
    },
    #[error(transparent)]
    Reset(#[from] reset_offsets::ResetError),
}

impl GroupError {
    /// A failed request, or [`GroupError::Unsupported`] when the broker lacks the API.
    pub fn request(admin: &AdminArgs, group: &str, what: &str, source: KafkaError) -> Self {
        match source.rdkafka_error_code() {
            Some(RDKafkaErrorCode::UnsupportedFeature) => GroupError::Unsupported {
                bootstrap: admin.client.bootstrap_server.clone(),
                what: what.to_string(),
            },
            Some(code) if is_timeout(code) => GroupError::NoAnswer {
                what: what.to_string(),
                group: group.to_string(),
                timeout_ms: admin.timeout_ms,
            },
            _ => GroupError::Request {
                what: what.to_string(),
                group: group.to_string(),
                source,
            },
        }
    }
}

fn is_timeout(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::OperationTimedOut | RDKafkaErrorCode::RequestTimedOut
    )
}

pub fn run(command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::List(a) => list(&a)?,
        GroupCommand::Describe(a) => describe(&a)?,
        GroupCommand::ResetOffsets(a) => reset_offsets::run(&a)?,
        GroupCommand::Delete(a) => delete(&a)?,
    }
    Ok(())
}

fn list(args: &AdminArgs) -> Result<(), GroupError> {
    let (admin, _) = args.admin_with_metadata()?;
    let groups = admin
        .inner()
        .fetch_group_list(None, args.timeout())
        .map_err(|e| GroupError::request(args, "(all)", "list groups", e))?;
    let mut groups: Vec<&GroupInfo> = groups.groups().iter().collect();
    groups.sort_unstable_by_key(|g| g.name());
    match args.output {
        Output::Human => {
            client::print(&groups.iter().map(|g| format!("{}\n", g.name())).collect::<String>())?
        }
        Output::Json => client::print_json(&Value::Array(
            groups
                .iter()
                .map(|g| json!({"group": g.name(), "state": g.state(), "protocol_type": g.protocol_type(), "members": g.members().len()}))
                .collect(),
        ))?,
    }
    Ok(())
}

/// What DescribeGroups says of one group.
pub struct GroupState {
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<Member>,
}

pub struct Member {
    pub id: String,
    pub client_id: String,
    pub host: String,
    /// Topic to partitions, from the consumer protocol assignment.
    pub assignment: BTreeMap<String, Vec<i32>>,
}

impl GroupState {
    /// Kafka lets offsets be reset only in a group nobody is consuming in.
    pub fn is_inactive(&self) -> bool {
        self.members.is_empty() && matches!(self.state.as_str(), "Empty" | "Dead" | "")
    }

    fn member_of(&self, topic: &str, partition: i32) -> Option<&Member> {
        self.members.iter().find(|m| {
            m.assignment
                .get(topic)
                .is_some_and(|ps| ps.contains(&partition))
        })
    }
}

/// The group's state and members (DescribeGroups).
pub fn group_state(
    admin: &AdminArgs,
    client: &rdkafka::client::Client<CliContext>,
    group: &str,
) -> Result<GroupState, GroupError> {
    let list = client
        .fetch_group_list(Some(group), admin.timeout())
        .map_err(|e| GroupError::request(admin, group, "describe the group", e))?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        return Ok(GroupState {
            state: "Dead".into(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        });
    };
    let members = info
        .members()
        .iter()
        .map(|m| Member {
            id: m.id().to_string(),
            client_id: m.client_id().to_string(),
            host: m.client_host().to_string(),
            assignment: m.assignment().map(decode_assignment).unwrap_or_default(),
        })
        .collect();
    Ok(GroupState {
        state: info.state().to_string(),
        protocol_type: info.protocol_type().to_string(),
        protocol: info.protocol().to_string(),
        members,
    })
}

/// A consumer-protocol assignment (version, then topics and partitions); anything that does
/// not decode (another protocol type) shows as no assignment.
fn decode_assignment(raw: &[u8]) -> BTreeMap<String, Vec<i32>> {
    let mut buf = Bytes::copy_from_slice(raw);
    if buf.len() < 2 {
        return BTreeMap::new();
    }
    let version = i16::from_be_bytes([raw[0], raw[1]]);
    let _ = bytes::Buf::get_i16(&mut buf);
    // Later versions only add fields at the end: read them as the newest this crate knows.
    let decoded = ConsumerProtocolAssignment::decode(&mut buf, version.clamp(0, 3));
    decoded
        .map(|a| {
            a.assigned_partitions
                .into_iter()
                .map(|tp| (tp.topic.0.to_string(), tp.partitions))
                .collect()
        })
        .unwrap_or_default()
}

/// A consumer in `group` that never joins it: for reading and committing its offsets.
pub fn offsets_consumer(
    admin: &AdminArgs,
    group: &str,
) -> Result<BaseConsumer<CliContext>, ClientError> {
    client::config(&admin.client)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create_with_context(CliContext::default())
        .map_err(|source| ClientError::Create {
            bootstrap: admin.client.bootstrap_server.clone(),
            source,
        })
}

/// The group's committed offset of every partition in `metadata` that has one.
pub fn committed_offsets(
    admin: &AdminArgs,
    consumer: &BaseConsumer<CliContext>,
    metadata: &Metadata,
    group: &str,
) -> Result<BTreeMap<(String, i32), i64>, GroupError> {
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    if tpl.count() == 0 {
        return Ok(BTreeMap::new());
    }
    let committed = consumer
        .committed_offsets(tpl, admin.timeout())
        .map_err(|e| GroupError::request(admin, group, "fetch committed offsets", e))?;
    Ok(concrete_offsets(&committed))
}

/// The entries of `list` that hold an actual offset, by (topic, partition).
pub fn concrete_offsets(list: &TopicPartitionList) -> BTreeMap<(String, i32), i64> {
    list.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect()
}

/// (log start offset, log end offset) of one partition.
pub fn watermarks(
    admin: &AdminArgs,
    client: &rdkafka::client::Client<CliContext>,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), GroupError> {
    client
        .fetch_watermarks(topic, partition, admin.timeout())
        .map_err(|source| GroupError::Watermarks {
            topic: topic.to_string(),
            partition,
            source,
        })
}

fn describe(args: &GroupArgs) -> Result<(), GroupError> {
    let (admin, metadata) = args.admin.admin_with_metadata()?;
    let state = group_state(&args.admin, admin.inner(), &args.group)?;
    let consumer = offsets_consumer(&args.admin, &args.group)?;
    let committed = committed_offsets(&args.admin, &consumer, &metadata, &args.group)?;
    if state.members.is_empty() && state.state == "Dead" && committed.is_empty() {
        return Err(GroupError::UnknownGroup(args.group.clone()));
    }
    // Every partition with a committed offset or an owner.
    let mut partitions: Vec<(String, i32)> = committed.keys().cloned().collect();
    for m in &state.members {
        for (t, ps) in &m.assignment {
            partitions.extend(ps.iter().map(|p| (t.clone(), *p)));
        }
    }
    partitions.sort_unstable();
    partitions.dedup();
    let mut offsets = Vec::new();
    for (topic, partition) in partitions {
        let (_, log_end) = watermarks(&args.admin, admin.inner(), &topic, partition)?;
        let current = committed.get(&(topic.clone(), partition)).copied();
        offsets.push(json!({
            "topic": topic,
            "partition": partition,
            "committed_offset": current,
            "log_end_offset": log_end,
            "lag": current.map(|c| (log_end - c).max(0)),
            "member_id": state.member_of(&topic, partition).map(|m| m.id.clone()),
        }));
    }
    let described = describe_json(&args.group, &state, offsets);
    match args.admin.output {
        Output::Human => client::print(&describe_text(&described))?,
        Output::Json => client::print_json(&described)?,
    }
    Ok(())
}

fn describe_json(group: &str, state: &GroupState, offsets: Vec<Value>) -> Value {
    let members: Vec<Value> = state
        .members
        .iter()
        .map(|m| {
            let assignment: Vec<Value> = m
                .assignment
                .iter()
                .map(|(t, ps)| json!({"topic": t, "partitions": ps}))
                .collect();
            json!({"member_id": m.id, "client_id": m.client_id, "host": m.host, "assignment": assignment})
        })
        .collect();
    json!({
        "group": group,
        "state": state.state,
        "protocol_type": state.protocol_type,
        "protocol": state.protocol,
        "members": members,
        "offsets": offsets,
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A state line, the members table (when there are members), then the offsets table, with
/// the columns of `kafka-consumer-groups.sh --describe`.
fn describe_text(d: &Value) -> String {
    let members = d["members"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = format!(
        "Group {} is {} with {} member(s).\n\n",
        cell(&d["group"]),
        cell(&d["state"]),
        members.len()
    );
    if !members.is_empty() {
        out.push_str(&members_text(members));
        out.push('\n');
    }
    let rows: Vec<Vec<String>> = d["offsets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let columns = [
                "topic",
                "partition",
                "committed_offset",
                "log_end_offset",
                "lag",
                "member_id",
            ];
            columns.iter().map(|k| cell(&o[*k])).collect()
        })
        .collect();
    out.push_str(&table::render(
        &[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
        ],
        &rows,
    ));
    out
}

fn members_text(members: &[Value]) -> String {
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            let assignment: Vec<String> = m["assignment"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let partitions = a["partitions"].as_array().into_iter().flatten();
                    let partitions: Vec<String> = partitions.map(Value::to_string).collect();
                    format!("{}:{}", cell(&a["topic"]), partitions.join(","))
                })
                .collect();
            let id = |k: &str| cell(&m[k]);
            vec![
                id("member_id"),
                id("client_id"),
                id("host"),
                assignment.join(" "),
            ]
        })
        .collect();
    table::render(&["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"], &rows)
}

fn delete(args: &GroupArgs) -> Result<(), GroupError> {
    let (admin, _) = args.admin.admin_with_metadata()?;
    let results = client::runtime()?
        .block_on(admin.delete_groups(&[&args.group], &args.admin.options()))
        .map_err(|e| GroupError::request(&args.admin, &args.group, "delete the group", e))?;
    match results.into_iter().next() {
        Some(Err((_, RDKafkaErrorCode::GroupIdNotFound))) => {
            return Err(GroupError::UnknownGroup(args.group.clone()))
        }
        Some(Err((_, code))) if is_timeout(code) => {
            return Err(GroupError::NoAnswer {
                what: "delete the group".into(),
                group: args.group.clone(),
                timeout_ms: args.admin.timeout_ms,
            })
        }
        Some(Err((_, code))) => {
            return Err(GroupError::Delete {
                group: args.group.clone(),
                code,
            })
        }
        Some(Ok(_)) | None => {}
    }
    match args.admin.output {
        Output::Human => client::print(&format!("Deleted group {}.\n", args.group))?,
        Output::Json => client::print_json(&json!({"group": args.group, "deleted": true}))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn assignments_decode_from_the_consumer_protocol() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![0, 2]),
        ]);
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&1i16.to_be_bytes());
        assignment.encode(&mut buf, 1).unwrap();
        let decoded = decode_assignment(&buf);
        assert_eq!(
            decoded,
            BTreeMap::from([("orders".to_string(), vec![0, 2])])
        );
        assert!(
            decode_assignment(&[0, 1, 0xff]).is_empty(),
            "garbage decodes to nothing"
        );
    }
}

//! The admin APIs beyond topics and groups, over the wire against a real spool process:
//! configs changed at run time (topic and broker, legacy and incremental), CreatePartitions,
//! DeleteRecords, DescribeLogDirs, OffsetForLeaderEpoch, DescribeTopicPartitions, ElectLeaders.
//! Each change is checked against the state that follows, and across a restart.

mod support;

use kafka_protocol::messages::*;
use support::kafka::{self, name, s};
use support::{Raw, Spool};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const ELECTION_NOT_NEEDED: i16 = 84;

fn create(c: &mut Raw, topic: &str, partitions: i32) {
    let created: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        5,
        &kafka::create(topic, partitions, &[]),
    );
    assert_eq!(created.topics[0].error_code, 0);
}

/// (operation, name, value) changes to one resource; returns (error, message).
fn incremental(
    c: &mut Raw,
    resource_type: i8,
    resource: &str,
    ops: &[(i8, &str, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    use kafka_protocol::messages::incremental_alter_configs_request::*;
    let configs = ops
        .iter()
        .map(|(op, n, v)| {
            AlterableConfig::default()
                .with_name(s(n))
                .with_config_operation(*op)
                .with_value(v.map(s))
        })
        .collect();
    let r: IncrementalAlterConfigsResponse = c.request(
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(resource))
                .with_configs(configs)]),
    );
    let r = &r.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// (value, source, read-only) of config `key` of a resource.
fn described(
    c: &mut Raw,
    resource_type: i8,
    resource: &str,
    key: &str,
) -> (Option<String>, i8, bool) {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let r: DescribeConfigsResponse = c.request(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(resource))
            .with_configuration_keys(Some(vec![s(key)]))]),
    );
    let result = &r.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    let e = &result.configs[0];
    (
        e.value.as_ref().map(|v| v.to_string()),
        e.config_source,
        e.read_only,
    )
}

fn produce_error(c: &mut Raw, topic: &str, partition: i32, value_len: usize) -> i16 {
    let value = "x".repeat(value_len);
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &kafka::produce(
            topic,
            partition,
            1,
            kafka::batch(&[&value], kafka::now_ms()),
        ),
    );
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn configs_change_at_run_time_and_survive_a_restart() {
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    const APPEND: i8 = 2;
    const SUBTRACT: i8 = 3;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&broker.addr);
    create(&mut c, "t", 1);

    // A smaller max.message.bytes takes effect on the next produce; deleting it restores.
    assert_eq!(produce_error(&mut c, "t", 0, 2000), 0);
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "t",
            &[(SET, "max.message.bytes", Some("1000"))],
            true
        )
        .0,
        0
    );
    assert_eq!(
        described(&mut c, TOPIC, "t", "max.message.bytes").1,
        5,
        "validate_only"
    );
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "t",
            &[(SET, "max.message.bytes", Some("1000"))],
            false
        )
        .0,
        0
    );
    assert_eq!(produce_error(&mut c, "t", 0, 2000), MESSAGE_TOO_LARGE);
    assert_eq!(
        described(&mut c, TOPIC, "t", "max.message.bytes"),
        (Some("1000".into()), 1, false)
    );
    let (e, message) = incremental(
        &mut c,
        TOPIC,
        "t",
        &[(SET, "retention.ms", Some("soon"))],
        false,
    );
    assert_eq!(e, INVALID_CONFIG);
    assert!(message.unwrap().contains("retention.ms"));
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "nope",
            &[(SET, "retention.ms", Some("1"))],
            false
        )
        .0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // List configs: APPEND and SUBTRACT work on the inherited value.
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "t",
            &[(APPEND, "cleanup.policy", Some("delete"))],
            false
        )
        .0,
        0
    );
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "t",
            &[(APPEND, "retention.ms", Some("1"))],
            false
        )
        .0,
        INVALID_CONFIG
    );
    assert_eq!(
        incremental(
            &mut c,
            TOPIC,
            "t",
            &[(SUBTRACT, "cleanup.policy", Some("compact"))],
            false
        )
        .0,
        0
    );
    assert_eq!(
        described(&mut c, TOPIC, "t", "cleanup.policy"),
        (Some("delete".into()), 1, false),
        "appending a present item and subtracting an absent one change nothing"
    );

    // Dynamic broker configs: topics without an override follow them.
    let (e, _) = incremental(
        &mut c,
        BROKER,
        "1",
        &[(SET, "log.retention.ms", Some("7200000"))],
        false,
    );
    assert_eq!(e, 0);
    assert_eq!(
        described(&mut c, TOPIC, "t", "retention.ms"),
        (Some("7200000".into()), 2, false)
    );
    assert_eq!(
        described(&mut c, BROKER, "1", "log.retention.ms"),
        (Some("7200000".into()), 2, false)
    );
    assert!(described(&mut c, BROKER, "1", "node.id").2, "read-only");
    assert_eq!(
        incremental(&mut c, BROKER, "1", &[(SET, "node.id", Some("2"))], false).0,
        INVALID_REQUEST
    );
    assert_eq!(
        incremental(
            &mut c,
            BROKER,
            "",
            &[(SET, "log.segment.bytes", Some("2097152"))],
            false
        )
        .0,
        0
    );
    assert_eq!(
        described(&mut c, TOPIC, "t", "segment.bytes"),
        (Some("2097152".into()), 3, false)
    );

    // Legacy AlterConfigs replaces the topic's whole set of overrides.
    use kafka_protocol::messages::alter_configs_request::*;
    let r: AlterConfigsResponse = c.request(
        ApiKey::AlterConfigs,
        1,
        &AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(TOPIC)
            .with_resource_name(s("t"))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("60000")))])]),
    );
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(described(&mut c, TOPIC, "t", "max.message.bytes").1, 5);
    assert_eq!(produce_error(&mut c, "t", 0, 2000), 0);

    assert!(broker.terminate());
    broker.restart();
    let mut c = Raw::connect(&broker.addr);
    assert_eq!(
        described(&mut c, TOPIC, "t", "retention.ms"),
        (Some("60000".into()), 1, false)
    );
    assert_eq!(
        described(&mut c, TOPIC, "t", "segment.bytes"),
        (Some("2097152".into()), 3, false)
    );
    assert_eq!(
        incremental(&mut c, TOPIC, "t", &[(DELETE, "retention.ms", None)], false).0,
        0
    );
    assert_eq!(
        described(&mut c, TOPIC, "t", "retention.ms"),
        (Some("7200000".into()), 2, false)
    );
}

#[test]
fn partitions_records_and_log_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&broker.addr);
    create(&mut c, "p", 1);

    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    let grow = |c: &mut Raw, count: i32, validate_only: bool| -> i16 {
        let r: CreatePartitionsResponse = c.request(
            ApiKey::CreatePartitions,
            3,
            &CreatePartitionsRequest::default()
                .with_validate_only(validate_only)
                .with_timeout_ms(5000)
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(name("p"))
                    .with_count(count)]),
        );
        r.results[0].error_code
    };
    assert_eq!(grow(&mut c, 3, true), 0);
    assert_eq!(
        produce_error(&mut c, "p", 2, 10),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(grow(&mut c, 3, false), 0);
    assert_eq!(grow(&mut c, 2, false), INVALID_PARTITIONS);
    assert_eq!(grow(&mut c, 3, false), INVALID_PARTITIONS);
    assert_eq!(produce_error(&mut c, "p", 2, 10), 0);

    // DeleteRecords moves the log start; reads below it are out of range.
    for _ in 0..9 {
        assert_eq!(produce_error(&mut c, "p", 0, 10), 0);
    }
    use kafka_protocol::messages::delete_records_request::*;
    let delete = |c: &mut Raw, offset: i64| -> (i16, i64) {
        let r: DeleteRecordsResponse = c.request(
            ApiKey::DeleteRecords,
            2,
            &DeleteRecordsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(name("p"))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(offset)])]),
        );
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    assert_eq!(delete(&mut c, 4), (0, 4));
    assert_eq!(delete(&mut c, 10).0, OFFSET_OUT_OF_RANGE);
    let fetched: FetchResponse = c.request(ApiKey::Fetch, 11, &kafka::fetch("p", 0, 2, 0, 1 << 20));
    assert_eq!(
        fetched.responses[0].partitions[0].error_code,
        OFFSET_OUT_OF_RANGE
    );
    assert_eq!(fetched.responses[0].partitions[0].log_start_offset, 4);
    let earliest: ListOffsetsResponse =
        c.request(ApiKey::ListOffsets, 7, &kafka::list_offsets("p", 0, -2));
    assert_eq!(earliest.topics[0].partitions[0].offset, 4);

    // DescribeLogDirs: one dir, partitions with their sizes, the volume's size.
    let dirs: DescribeLogDirsResponse = c.request(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    );
    assert_eq!(dirs.results.len(), 1);
    let d = &dirs.results[0];
    assert!(d.log_dir.starts_with('/'), "{}", d.log_dir);
    assert!(d.total_bytes > 0 && d.usable_bytes > 0 && d.usable_bytes <= d.total_bytes);
    let p = d.topics.iter().find(|t| &*t.name.0 == "p").unwrap();
    assert_eq!(p.partitions.len(), 3);
    let size = |i: i32| {
        p.partitions
            .iter()
            .find(|x| x.partition_index == i)
            .unwrap()
            .partition_size
    };
    assert!(size(0) > size(2) && size(2) > 0 && size(1) == 0);

    assert_eq!(delete(&mut c, -1), (0, 9));
    assert!(broker.terminate());
    broker.restart();
    let mut c = Raw::connect(&broker.addr);
    let earliest: ListOffsetsResponse =
        c.request(ApiKey::ListOffsets, 7, &kafka::list_offsets("p", 0, -2));
    assert_eq!(earliest.topics[0].partitions[0].offset, 9);
    assert_eq!(
        produce_error(&mut c, "p", 2, 10),
        0,
        "three partitions after the restart"
    );
}

#[test]
fn leader_epochs_topic_partitions_and_elections_on_one_node() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&broker.addr);
    create(&mut c, "e", 3);
    create(&mut c, "f", 1);
    assert_eq!(produce_error(&mut c, "e", 0, 10), 0);

    use kafka_protocol::messages::offset_for_leader_epoch_request::*;
    let epoch_end = |c: &mut Raw, current: i32, epoch: i32| -> (i16, i32, i64) {
        let r: OffsetForLeaderEpochResponse = c.request(
            ApiKey::OffsetForLeaderEpoch,
            4,
            &OffsetForLeaderEpochRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![OffsetForLeaderTopic::default()
                    .with_topic(name("e"))
                    .with_partitions(vec![OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch)])]),
        );
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    };
    assert_eq!(epoch_end(&mut c, 0, 0), (0, 0, 1));
    assert_eq!(epoch_end(&mut c, -1, 7), (0, -1, -1));
    assert_eq!(epoch_end(&mut c, 3, 0).0, UNKNOWN_LEADER_EPOCH);

    // DescribeTopicPartitions pages by partitions with a cursor.
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let page = |c: &mut Raw, cursor: Option<Cursor>| -> DescribeTopicPartitionsResponse {
        c.request(
            ApiKey::DescribeTopicPartitions,
            0,
            &DescribeTopicPartitionsRequest::default()
                .with_topics(vec![
                    TopicRequest::default().with_name(name("f")),
                    TopicRequest::default().with_name(name("e")),
                    TopicRequest::default().with_name(name("missing")),
                ])
                .with_response_partition_limit(2)
                .with_cursor(cursor),
        )
    };
    let first = page(&mut c, None);
    assert_eq!(first.topics.len(), 1);
    assert_eq!(first.topics[0].name.as_ref().unwrap().0.to_string(), "e");
    assert_eq!(first.topics[0].partitions.len(), 2);
    assert_eq!(first.topics[0].partitions[0].leader_id, BrokerId(1));
    assert_eq!(first.topics[0].partitions[0].isr_nodes, vec![BrokerId(1)]);
    let next = first.next_cursor.clone().unwrap();
    assert_eq!(
        (next.topic_name.0.to_string(), next.partition_index),
        ("e".into(), 2)
    );
    let second = page(
        &mut c,
        Some(
            Cursor::default()
                .with_topic_name(next.topic_name)
                .with_partition_index(2),
        ),
    );
    let names: Vec<String> = second
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.to_string())
        .collect();
    assert_eq!(names, vec!["e", "f", "missing"]);
    assert_eq!(second.topics[0].partitions[0].partition_index, 2);
    assert_eq!(second.topics[2].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(second.next_cursor.is_none());

    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    let elect = |c: &mut Raw, partitions: Option<Vec<TopicPartitions>>| -> ElectLeadersResponse {
        c.request(
            ApiKey::ElectLeaders,
            2,
            &ElectLeadersRequest::default()
                .with_election_type(0)
                .with_timeout_ms(5000)
                .with_topic_partitions(partitions),
        )
    };
    let named = elect(
        &mut c,
        Some(vec![TopicPartitions::default()
            .with_topic(name("e"))
            .with_partitions(vec![0, 9])]),
    );
    let codes: Vec<i16> = named.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![ELECTION_NOT_NEEDED, UNKNOWN_TOPIC_OR_PARTITION]);
    let all = elect(&mut c, None);
    assert_eq!((all.error_code, all.replica_election_results.len()), (0, 0));
}

//! The internal topics are the broker's own: clients cannot create, delete, grow or
//! un-compact them, nor create Kafka's metadata log; and a deleted topic takes the groups'
//! committed offsets for it along.

mod support;

use kafka_protocol::messages::*;
use std::time::Duration;
use support::kafka::{create, name, s};
use support::{wait_for, Raw, Spool};

const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

fn create_code(c: &mut Raw, topic: &str, partitions: i32) -> i16 {
    let r: CreateTopicsResponse =
        c.request(ApiKey::CreateTopics, 5, &create(topic, partitions, &[]));
    r.topics[0].error_code
}

fn delete_code(c: &mut Raw, topic: &str) -> i16 {
    let r: DeleteTopicsResponse = c.request(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topic_names(vec![name(topic)]),
    );
    r.responses[0].error_code
}

fn partitions_of(c: &mut Raw, topic: &str) -> Option<usize> {
    let r: MetadataResponse = c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false),
    );
    r.topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .map(|t| t.partitions.len())
}

/// IncrementalAlterConfigs SET of one topic config; the resource's error code.
fn alter(c: &mut Raw, topic: &str, config: &str, value: &str) -> i16 {
    let r: IncrementalAlterConfigsResponse = c.request(
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(topic))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s(config))
                        .with_config_operation(0)
                        .with_value(Some(s(value))),
                ]),
        ]),
    );
    r.responses[0].error_code
}

#[test]
fn clients_cannot_create_delete_grow_or_uncompact_internal_topics() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&spool.addr);
    // Creating the transaction log first (with one partition) would send most transactional
    // ids to a partition that does not exist.
    assert_eq!(
        create_code(&mut c, "__transaction_state", 1),
        INVALID_REQUEST
    );
    assert_eq!(
        create_code(&mut c, "__cluster_metadata", 1),
        INVALID_REQUEST
    );
    assert_eq!(
        create_code(&mut c, "__consumer_offsets", 1),
        INVALID_REQUEST
    );
    // Nor through auto-creation.
    let _: MetadataResponse = c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(name("__transaction_state")))]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(partitions_of(&mut c, "__transaction_state"), None);

    assert_eq!(delete_code(&mut c, "__consumer_offsets"), INVALID_REQUEST);
    let r: CreatePartitionsResponse = c.request(
        ApiKey::CreatePartitions,
        3,
        &support::kafka::create_partitions("__consumer_offsets", 60),
    );
    assert_eq!(r.results[0].error_code, INVALID_REQUEST);
    assert_eq!(
        alter(&mut c, "__consumer_offsets", "cleanup.policy", "delete"),
        INVALID_CONFIG
    );
    assert_eq!(partitions_of(&mut c, "__consumer_offsets"), Some(50));
    // Other configs of an internal topic may still change.
    assert_eq!(
        alter(
            &mut c,
            "__consumer_offsets",
            "min.cleanable.dirty.ratio",
            "0.3"
        ),
        0
    );
}

fn commit(c: &mut Raw, group: &str, topic: &str, offset: i64) {
    let r: OffsetCommitResponse = c.request(
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ]),
    );
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
}

fn committed(c: &mut Raw, group: &str, topic: &str) -> i64 {
    let r: OffsetFetchResponse = c.request(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(name(topic))
                        .with_partition_indexes(vec![0]),
                ])),
        ]),
    );
    r.groups[0].topics[0].partitions[0].committed_offset
}

#[test]
fn deleting_a_topic_removes_its_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&spool.addr);
    assert_eq!(create_code(&mut c, "gone", 1), 0);
    assert_eq!(create_code(&mut c, "kept", 1), 0);
    commit(&mut c, "g", "gone", 5);
    commit(&mut c, "g", "kept", 7);
    assert_eq!(committed(&mut c, "g", "gone"), 5);
    assert_eq!(delete_code(&mut c, "gone"), 0);
    assert_eq!(create_code(&mut c, "gone", 1), 0);
    let removed = wait_for(Duration::from_secs(10), || {
        (committed(&mut c, "g", "gone") == -1).then_some(())
    });
    assert!(removed.is_some(), "the deleted topic's offset survived it");
    assert_eq!(
        committed(&mut c, "g", "kept"),
        7,
        "other topics' offsets stay"
    );
    // The removal is written down: it holds after a restart.
    assert!(spool.terminate());
    spool.restart();
    let mut c = Raw::connect(&spool.addr);
    assert_eq!(committed(&mut c, "g", "gone"), -1);
    assert_eq!(committed(&mut c, "g", "kept"), 7);
}

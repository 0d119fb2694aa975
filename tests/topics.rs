//! Topic administration over the wire: ApiVersions, Metadata (with auto-creation),
//! CreateTopics, DeleteTopics, DescribeConfigs, DescribeCluster.

mod support;

use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::*;
use support::kafka::{create, name, s};
use support::{Raw, Spool};

fn api_versions(c: &mut Raw) -> ApiVersionsResponse {
    c.request(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(s("spool-test"))
            .with_client_software_version(s("1.0")),
    )
}

#[test]
fn api_versions_advertises_exactly_the_route_table() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&spool.addr);
    let r = api_versions(&mut c);
    assert_eq!(r.error_code, 0);
    let got: Vec<(i16, i16, i16)> = r
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    let want: Vec<(i16, i16, i16)> = spool::protocol::routes::ROUTES
        .iter()
        .map(|r| (r.api_key as i16, r.min_version, r.max_version))
        .collect();
    assert_eq!(got, want);
    // Kafka 4.x floors: no Produce below v3, no Fetch below v4.
    assert!(got.contains(&(0, 3, 13)) && got.contains(&(1, 4, 18)) && got.contains(&(18, 0, 4)));
    // Bad client software names are INVALID_REQUEST (v3+).
    let bad: ApiVersionsResponse = c.request(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(s("bad name!"))
            .with_client_software_version(s("1")),
    );
    assert_eq!(bad.error_code, 42);
}

#[test]
fn metadata_auto_creates_topics_and_describes_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &["--set", "num_partitions=4"]);
    let mut c = Raw::connect(&spool.addr);
    let topics = |names: &[&str]| {
        Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(name(n))))
                .collect(),
        )
    };
    let r: MetadataResponse = c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(topics(&["auto-x", "bad/name"]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(
        r.brokers[0].port.to_string(),
        spool.addr.rsplit(':').next().unwrap()
    );
    assert_eq!(r.controller_id, BrokerId(1));
    assert!(r.cluster_id.as_ref().is_some_and(|c| c.len() == 22));
    let auto = &r.topics[0];
    assert_eq!((auto.error_code, auto.partitions.len()), (0, 4));
    assert!(!auto.topic_id.is_nil());
    assert!(auto
        .partitions
        .iter()
        .all(|p| p.leader_id == BrokerId(1) && p.isr_nodes == vec![BrokerId(1)]));
    assert_eq!(r.topics[1].error_code, 17, "INVALID_TOPIC_EXCEPTION");

    let r: MetadataResponse = c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(topics(&["not-created"]))
            .with_allow_auto_topic_creation(false),
    );
    assert_eq!(r.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    // Null topic list: every topic; lookup by id (v10+).
    let all: MetadataResponse = c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let visible: Vec<_> = all.topics.iter().filter(|t| !t.is_internal).collect();
    assert_eq!(visible.len(), 1);
    let internal = |t: &&MetadataResponseTopic| {
        t.is_internal
            && t.name
                .as_ref()
                .is_some_and(|n| &*n.0 == "__consumer_offsets")
    };
    assert_eq!(all.topics.iter().filter(internal).count(), 1);
    let id = visible[0].topic_id;
    let by_id: MetadataResponse = c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_topic_id(id)
        ])),
    );
    assert_eq!(
        by_id.topics[0].name.as_ref().map(|n| n.0.to_string()),
        Some("auto-x".to_string())
    );
    // Old versions still answer (v0: empty list means all).
    let v0: MetadataResponse = c.request(
        ApiKey::Metadata,
        0,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    assert_eq!(v0.topics.len(), 2, "auto-x and the offsets topic");
}

#[test]
fn create_topics_validates_and_delete_topics_by_name_and_id() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&spool.addr);
    let code = |r: &CreateTopicsResponse| r.topics[0].error_code;
    let ok: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &create("t1", 3, &[("retention.ms", "1000")]),
    );
    assert_eq!(code(&ok), 0);
    assert_eq!(
        (ok.topics[0].num_partitions, ok.topics[0].replication_factor),
        (3, 1)
    );
    let retention = ok.topics[0]
        .configs
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| &*c.name == "retention.ms")
        .unwrap();
    assert_eq!(
        (retention.value.as_deref(), retention.config_source),
        (Some("1000"), 1)
    );
    let again: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &create("t1", 3, &[]));
    assert_eq!(code(&again), 36, "TOPIC_ALREADY_EXISTS");
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &create("t2", 0, &[]));
    assert_eq!(code(&r), 37, "INVALID_PARTITIONS");
    let mut rf3 = create("t2", 1, &[]);
    rf3.topics[0].replication_factor = 3;
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &rf3);
    assert_eq!(code(&r), 38, "INVALID_REPLICATION_FACTOR");
    let r: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &create("t2", 1, &[("retention.ms", "soon")]),
    );
    assert_eq!(code(&r), 40, "INVALID_CONFIG");
    let r: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &create("t2", 1, &[("no.such.config", "1")]),
    );
    assert_eq!(code(&r), 40, "INVALID_CONFIG");
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &create("bad name", 1, &[]));
    assert_eq!(code(&r), 17, "INVALID_TOPIC_EXCEPTION");
    let r: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &create("t2", 1, &[]).with_validate_only(true),
    );
    assert_eq!(code(&r), 0);
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &create("t2", 1, &[]));
    assert_eq!(code(&r), 0, "validate_only created nothing");
    let id = r.topics[0].topic_id;

    let by_name: DeleteTopicsResponse = c.request(
        ApiKey::DeleteTopics,
        5,
        &DeleteTopicsRequest::default().with_topic_names(vec![name("t1"), name("nope")]),
    );
    assert_eq!(
        by_name
            .responses
            .iter()
            .map(|r| r.error_code)
            .collect::<Vec<_>>(),
        [0, 3]
    );
    let by_id: DeleteTopicsResponse = c.request(
        ApiKey::DeleteTopics,
        6,
        &DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default().with_topic_id(id),
            DeleteTopicState::default().with_topic_id(uuid::Uuid::new_v4()),
        ]),
    );
    assert_eq!(
        by_id
            .responses
            .iter()
            .map(|r| r.error_code)
            .collect::<Vec<_>>(),
        [0, 100]
    );
    assert!(!spool.data_dir.join("t1-0").exists() && !spool.data_dir.join("t2-0").exists());
    // The name is free again.
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 7, &create("t1", 1, &[]));
    assert_eq!(code(&r), 0);
}

#[test]
fn describe_configs_reports_kafka_names_sources_and_synonyms() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &["--set", "retention_ms=3600000"]);
    let mut c = Raw::connect(&spool.addr);
    let _: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        7,
        &create("cfg", 1, &[("segment.bytes", "1048576")]),
    );
    let r: DescribeConfigsResponse = c.request(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_include_documentation(true)
            .with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("cfg")),
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("1")),
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("missing")),
            ]),
    );
    let topic = &r.results[0];
    assert_eq!(topic.error_code, 0);
    let get = |n: &str| {
        topic
            .configs
            .iter()
            .find(|c| &*c.name == n)
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    let seg = get("segment.bytes");
    assert_eq!(
        (seg.value.as_deref(), seg.config_source, seg.config_type),
        (Some("1048576"), 1, 3)
    );
    assert_eq!(seg.synonyms[0].source, 1);
    assert_eq!(seg.synonyms[1].name.as_str(), "log.segment.bytes");
    let retention = get("retention.ms");
    assert_eq!(
        (retention.value.as_deref(), retention.config_source),
        (Some("3600000"), 4)
    );
    assert_eq!(get("cleanup.policy").value.as_deref(), Some("delete"));
    assert!(get("max.message.bytes")
        .documentation
        .as_ref()
        .is_some_and(|d| !d.is_empty()));
    let broker = &r.results[1];
    assert_eq!(broker.error_code, 0);
    let node = broker
        .configs
        .iter()
        .find(|c| &*c.name == "node.id")
        .unwrap();
    assert_eq!(node.value.as_deref(), Some("1"));
    assert_eq!(r.results[2].error_code, 3);
}

#[test]
fn describe_cluster_names_this_node() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&spool.addr);
    let r: DescribeClusterResponse = c.request(
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default().with_endpoint_type(1),
    );
    assert_eq!(
        (r.error_code, r.controller_id, r.brokers.len()),
        (0, BrokerId(1), 1)
    );
    assert_eq!(
        r.brokers[0].port.to_string(),
        spool.addr.rsplit(':').next().unwrap()
    );
    let controllers: DescribeClusterResponse = c.request(
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default().with_endpoint_type(2),
    );
    assert_eq!(controllers.error_code, 115, "UNSUPPORTED_ENDPOINT_TYPE");
}

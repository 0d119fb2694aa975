//! Kafka's configuration as users already write it: a `server.properties` and the Kafka
//! container image's environment variables start a working spool; a name that is neither
//! spool's nor Kafka's stops start-up with a suggestion.

mod support;

use kafka_protocol::messages::*;
use support::kafka::name;
use support::{Raw, Spool};

fn auto_created_partitions(addr: &str, topic: &str) -> usize {
    let mut c = Raw::connect(addr);
    let r: MetadataResponse = c.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(name(topic)))]))
            .with_allow_auto_topic_creation(true),
    );
    assert_eq!(r.topics[0].error_code, 0, "{topic}");
    r.topics[0].partitions.len()
}

#[test]
fn a_server_properties_file_configures_spool() {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("server.properties");
    let (port, controller_port) = (support::free_port(), support::free_port());
    // A KRaft combined node's file as Kafka 4 ships it, on loopback ports (the data dir comes
    // from the test's flag, which wins).
    std::fs::write(
        &props,
        format!(
            "# Kafka server.properties\n\
         process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}\n\
         listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
         inter.broker.listener.name=PLAINTEXT\n\
         advertised.listeners=PLAINTEXT://localhost:{port},CONTROLLER://localhost:{controller_port}\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n\
         num.network.threads=3\n\
         num.io.threads=8\n\
         socket.send.buffer.bytes=102400\n\
         socket.receive.buffer.bytes=102400\n\
         socket.request.max.bytes=104857600\n\
         num.partitions=3\n\
         num.recovery.threads.per.data.dir=1\n\
         offsets.topic.replication.factor=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         log.retention.hours=168\n\
         log.segment.bytes=1073741824\n\
         log.retention.check.interval.ms=300000\n"
        ),
    )
    .unwrap();
    let spool = Spool::start_own_listeners(dir.path(), &["--config", props.to_str().unwrap()]);
    assert_eq!(spool.addr, format!("127.0.0.1:{port}"));
    assert_eq!(auto_created_partitions(&spool.addr, "from-properties"), 3);
    // Clients are told the advertised address, and the controller took its listener.
    let mut c = Raw::connect(&spool.addr);
    let r: MetadataResponse = c.request(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_eq!(
        (r.brokers[0].host.as_str(), r.brokers[0].port),
        ("localhost", port as i32)
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", controller_port)).is_ok(),
        "the controller listens on the CONTROLLER listener"
    );
    // DescribeConfigs tells what the file set from what it left at the default, and which
    // broker configs can change at run time.
    let d: DescribeConfigsResponse = c.request(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(support::kafka::s("1"))
                .with_configuration_keys(Some(vec![
                    support::kafka::s("num.partitions"),
                    support::kafka::s("log.retention.ms"),
                    support::kafka::s("message.max.bytes"),
                ])),
        ]),
    );
    let seen: Vec<(String, String, i8, bool)> = d.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_deref().unwrap_or("").to_string(),
                c.config_source,
                c.read_only,
            )
        })
        .collect();
    const STATIC_BROKER_CONFIG: i8 = 4;
    const DEFAULT_CONFIG: i8 = 5;
    assert_eq!(
        seen,
        [
            (
                "log.retention.ms".into(),
                "604800000".into(),
                STATIC_BROKER_CONFIG,
                false
            ),
            (
                "message.max.bytes".into(),
                "1048588".into(),
                DEFAULT_CONFIG,
                false
            ),
            (
                "num.partitions".into(),
                "3".into(),
                STATIC_BROKER_CONFIG,
                true
            ),
        ]
    );
    let log = std::fs::read_to_string(&spool.log_path).unwrap();
    assert!(
        log.contains("ignoring Kafka settings spool does not implement: process.roles, controller.quorum.bootstrap.servers, num.network.threads"),
        "{log}"
    );
}

#[test]
fn the_kafka_image_environment_configures_spool() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start_env(
        dir.path(),
        &[],
        &[
            ("KAFKA_NODE_ID", "1"),
            ("KAFKA_PROCESS_ROLES", "broker,controller"),
            ("KAFKA_NUM_PARTITIONS", "2"),
            ("KAFKA_HEAP_OPTS", "-Xmx512m"),
            ("CLUSTER_ID", "4L6g3nShT-eMCtK--X86sw"),
        ],
    );
    assert_eq!(auto_created_partitions(&spool.addr, "from-env"), 2);
    let mut c = Raw::connect(&spool.addr);
    let r: MetadataResponse = c.request(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_eq!(r.cluster_id.as_deref(), Some("4L6g3nShT-eMCtK--X86sw"));
}

#[test]
fn a_misspelt_key_stops_start_up_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let err = support::cli::spool(&[
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--set",
        "log.retension.hours=5",
    ])
    .failed();
    assert!(err.contains("did you mean `log.retention.hours`"), "{err}");
}

#[test]
fn bad_listener_values_each_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (set, want) in [
        ("listeners=PLAINTEXT://127.0.0.1", "has no port"),
        (
            "listeners=PLAINTEXT://:9092,OTHER://:9092",
            "both use port 9092",
        ),
        (
            "advertised_listeners=PLAINTEXT://0.0.0.0:9092",
            "not an address clients",
        ),
        (
            "advertised.listeners=EXTERNAL://h:9092",
            "EXTERNAL is not one of",
        ),
        (
            "listeners=INTERNAL://127.0.0.1:0",
            "INTERNAL has no security protocol",
        ),
    ] {
        let err =
            support::cli::spool(&["serve", "--data-dir", data.to_str().unwrap(), "--set", set])
                .failed();
        assert!(err.contains(want), "{set}: {err}");
    }
}

/// What a client connected to `addr` is told: the brokers of Metadata and DescribeCluster, and
/// the group coordinator's address.
type Address = (String, i32);

fn told(addr: &str) -> (Vec<Address>, Vec<Address>, Address) {
    let mut c = Raw::connect(addr);
    let m: MetadataResponse = c.request(ApiKey::Metadata, 12, &MetadataRequest::default());
    let d: DescribeClusterResponse = c.request(
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    );
    let f = support::wait_for(std::time::Duration::from_secs(20), || {
        let f: FindCoordinatorResponse = c.request(
            ApiKey::FindCoordinator,
            3,
            &FindCoordinatorRequest::default().with_key(support::kafka::s("g")),
        );
        (f.error_code == 0).then_some(f)
    })
    .expect("a group coordinator");
    (
        m.brokers
            .iter()
            .map(|b| (b.host.to_string(), b.port))
            .collect(),
        d.brokers
            .iter()
            .map(|b| (b.host.to_string(), b.port))
            .collect(),
        (f.host.to_string(), f.port),
    )
}

#[test]
fn each_listener_tells_clients_its_own_advertised_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let (internal, external) = (support::free_port(), support::free_port());
    let spool = Spool::start_own_listeners(
        dir.path(),
        &[
            "--set",
            &format!("listeners=INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external}"),
            "--set",
            &format!("advertised.listeners=INTERNAL://127.0.0.1:{internal},EXTERNAL://localhost:{external}"),
            "--set",
            "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
            "--set",
            "inter.broker.listener.name=INTERNAL",
        ],
    );
    let inside = ("127.0.0.1".to_string(), internal as i32);
    let outside = ("localhost".to_string(), external as i32);
    assert_eq!(
        told(&format!("127.0.0.1:{internal}")),
        (vec![inside.clone()], vec![inside.clone()], inside)
    );
    assert_eq!(
        told(&format!("127.0.0.1:{external}")),
        (vec![outside.clone()], vec![outside.clone()], outside)
    );
    // Both listeners serve the same broker: a topic made through one is read through the other.
    assert_eq!(auto_created_partitions(&spool.addr, "two-doors"), 1);
    assert_eq!(
        auto_created_partitions(&format!("127.0.0.1:{external}"), "two-doors"),
        1
    );
}

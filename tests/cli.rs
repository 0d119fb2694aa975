//! The console tools (`spool produce`, `consume`, `topic ...`) against a real spool broker,
//! including their error paths: unknown topics, bad input, an unreachable broker, and the
//! config changes the broker does not serve yet. Group commands are in `cli_groups.rs`.

mod support;

use std::time::Duration;
use support::cli::{spool, spool_with, Ran};
use support::{free_port, Spool};

fn broker(extra: &[&str]) -> (tempfile::TempDir, Spool) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), extra);
    (dir, spool)
}

fn produce(addr: &str, topic: &str, lines: &str, extra: &[&str]) -> Ran {
    let mut args = vec!["produce", "--bootstrap-server", addr, "--topic", topic];
    args.extend_from_slice(extra);
    spool_with(&args, lines, Duration::from_secs(60))
}

fn consume(addr: &str, topic: &str, extra: &[&str]) -> Ran {
    let mut args = vec!["consume", "--bootstrap-server", addr, "--topic", topic];
    args.extend_from_slice(extra);
    spool(&args)
}

fn topic(command: &str, addr: &str, extra: &[&str]) -> Ran {
    let mut args = vec!["topic", command, "--bootstrap-server", addr];
    args.extend_from_slice(extra);
    spool(&args)
}

const KEYED_WITH_HEADERS: &[&str] = &[
    "--property",
    "parse.key=true",
    "--property",
    "key.separator=:",
    "--property",
    "parse.headers=true",
    "--property",
    "headers.delimiter=|",
];

#[test]
fn produced_keys_and_headers_come_back_exactly_as_printed_by_consume() {
    let (_dir, spool) = broker(&[]);
    let lines = "h1:a,h2:b|k1:v1\n|k2:v2\nx:y|k3:value:3\n";
    produce(&spool.addr, "greetings", lines, KEYED_WITH_HEADERS).ok();
    let ran = consume(
        &spool.addr,
        "greetings",
        &[
            "--from-beginning",
            "--max-messages",
            "3",
            "--property",
            "print.key=true",
            "--property",
            "print.headers=true",
            "--property",
            "print.partition=true",
            "--property",
            "print.offset=true",
            "--property",
            "key.separator= | ",
        ],
    )
    .ok();
    assert_eq!(
        ran.stdout,
        "Partition:0 | Offset:0 | h1:a,h2:b | k1 | v1\n\
         Partition:0 | Offset:1 | NO_HEADERS | k2 | v2\n\
         Partition:0 | Offset:2 | x:y | k3 | value:3\n"
    );
    assert!(
        ran.stderr.contains("Processed a total of 3 messages"),
        "{}",
        ran.stderr
    );
}

#[test]
fn consume_json_prints_one_object_per_record() {
    let (_dir, spool) = broker(&[]);
    produce(&spool.addr, "j", "h:1|k1:v1\n|k2:v2\n", KEYED_WITH_HEADERS).ok();
    let ran = consume(
        &spool.addr,
        "j",
        &[
            "--from-beginning",
            "--max-messages",
            "2",
            "--output",
            "json",
            "--property",
            "print.timestamp=true",
        ],
    )
    .ok();
    let records: Vec<serde_json::Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{}", ran.stdout);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["topic"], "j");
        assert_eq!(r["partition"], 0);
        assert_eq!(r["offset"], i as i64);
        assert_eq!(r["key"], format!("k{}", i + 1));
        assert_eq!(r["value"], format!("v{}", i + 1));
        assert_eq!(r["timestamp_type"], "CreateTime");
        assert!(r["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    }
    assert_eq!(
        records[0]["headers"],
        serde_json::json!([{"key": "h", "value": "1"}])
    );
    assert_eq!(records[1]["headers"], serde_json::json!([]));
}

#[test]
fn consume_from_a_partition_and_offset_and_stop_when_idle() {
    let (_dir, spool) = broker(&[]);
    produce(&spool.addr, "p", "a\nb\nc\nd\n", &[]).ok();
    let from = |offset: &str, extra: &[&str]| {
        let mut args = vec!["--partition", "0", "--offset", offset];
        args.extend_from_slice(extra);
        consume(&spool.addr, "p", &args).ok()
    };
    assert_eq!(
        from("2", &["--max-messages", "5", "--timeout-ms", "1500"]).stdout,
        "c\nd\n"
    );
    assert_eq!(from("earliest", &["--max-messages", "1"]).stdout, "a\n");
    let idle = from("latest", &["--timeout-ms", "1000"]);
    assert_eq!(idle.stdout, "");
    assert!(idle.stderr.contains("Processed a total of 0 messages"));
    assert!(idle.elapsed < Duration::from_secs(20), "{:?}", idle.elapsed);

    let err = consume(
        &spool.addr,
        "p",
        &["--partition", "7", "--timeout-ms", "1000"],
    )
    .failed();
    assert_eq!(err, "spool: topic `p` has no partition 7 (it has 1)\n");
    let err = consume(&spool.addr, "p", &["--partition", "0", "--offset", "-3"]).failed();
    assert!(err.contains("`-3` is not an offset"), "{err}");
    let err = consume(&spool.addr, "p", &["--offset", "3"]).failed();
    assert!(
        err.contains("--partition"),
        "--offset needs --partition: {err}"
    );
}

#[test]
fn every_codec_and_acks_setting_round_trips() {
    let (_dir, spool) = broker(&[]);
    let settings = [
        ("none", "0"),
        ("gzip", "1"),
        ("snappy", "all"),
        ("lz4", "-1"),
        ("zstd", "all"),
    ];
    for (codec, acks) in settings {
        let topic = format!("codec-{codec}");
        let lines = format!("{codec}-1\n{codec}-2\n");
        let args = [
            "--compression",
            codec,
            "--acks",
            acks,
            "--batch-size",
            "65536",
            "--linger-ms",
            "5",
        ];
        produce(&spool.addr, &topic, &lines, &args).ok();
        let got = consume(
            &spool.addr,
            &topic,
            &["--from-beginning", "--max-messages", "2"],
        )
        .ok();
        assert_eq!(got.stdout, lines, "codec {codec}, acks {acks}");
    }
    let err = produce(&spool.addr, "x", "a\n", &["--compression", "brotli"]).failed();
    assert!(err.contains("brotli"), "{err}");
}

#[test]
fn unknown_topics_are_reported_by_name() {
    let (_dir, spool) = broker(&["--set", "auto_create_topics_enable=false"]);
    let err = produce(&spool.addr, "nope", "a\n", &["--timeout-ms", "5000"]).failed();
    assert_eq!(err, "spool: topic `nope` does not exist\n");
    // The consumer waits for the topic (here until its --timeout-ms), as Kafka's does.
    let err = consume(&spool.addr, "nope", &["--timeout-ms", "2000"]).failed();
    assert_eq!(
        err,
        "waiting for topic nope to be created\nspool: topic `nope` does not exist\n"
    );
    for command in ["describe", "delete"] {
        let err = topic(command, &spool.addr, &["--topic", "nope"]).failed();
        assert_eq!(
            err, "spool: topic `nope` does not exist\n",
            "topic {command}"
        );
    }
    let err = topic(
        "alter-config",
        &spool.addr,
        &["--topic", "nope", "--add-config", "retention.ms=1"],
    )
    .failed();
    assert_eq!(err, "spool: topic `nope` does not exist\n");
    topic("delete", &spool.addr, &["--topic", "nope", "--if-exists"]).ok();
}

/// `GET /metrics` of a broker's metrics listener.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn consume_waits_for_a_topic_that_does_not_exist_yet() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let (_dir, spool) = broker(&[
        "--set",
        "auto_create_topics_enable=false",
        "--set",
        &format!("metrics_listener={metrics}"),
    ]);
    let addr = spool.addr.clone();
    let waiting = std::thread::spawn(move || {
        consume(
            &addr,
            "later",
            &[
                "--from-beginning",
                "--max-messages",
                "1",
                "--timeout-ms",
                "60000",
            ],
        )
    });
    // The consumer has asked for the topic and been told it does not exist.
    let asked = support::wait_for(Duration::from_secs(30), || {
        scrape(&metrics)
            .contains("request=\"Metadata\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"")
            .then_some(())
    });
    assert!(asked.is_some(), "{}", scrape(&metrics));
    topic("create", &spool.addr, &["--topic", "later"]).ok();
    produce(&spool.addr, "later", "arrived\n", &[]).ok();
    let got = waiting.join().unwrap().ok();
    assert_eq!(got.stdout, "arrived\n");
    // Where the broker allows, asking creates it.
    let (_dir, auto) = broker(&[]);
    consume(&auto.addr, "made-by-reading", &["--timeout-ms", "2000"]).ok();
    topic("describe", &auto.addr, &["--topic", "made-by-reading"]).ok();
}

#[test]
fn bad_input_lines_and_properties_are_named() {
    let (_dir, spool) = broker(&[]);
    let keyed = [
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=:",
    ];
    let err = produce(&spool.addr, "bad", "k:v\nno separator\nk:w\n", &keyed).failed();
    assert_eq!(
        err,
        "spool: line 2: no key separator `:` in `no separator` (1 records before it were delivered)\n"
    );
    let got = consume(
        &spool.addr,
        "bad",
        &["--from-beginning", "--max-messages", "1"],
    )
    .ok();
    assert_eq!(
        got.stdout, "v\n",
        "the line before the bad one was delivered"
    );
    let err = produce(&spool.addr, "bad", "a\n", &["--property", "parse.kee=true"]).failed();
    assert!(err.contains("unknown --property `parse.kee`"), "{err}");
    let err = consume(&spool.addr, "bad", &["--property", "print.key"]).failed();
    assert!(
        err.contains("--property `print.key`: expected key=value"),
        "{err}"
    );
}

#[test]
fn an_unreachable_broker_fails_every_command_within_its_timeout() {
    let addr = format!("127.0.0.1:{}", free_port());
    let b = ["--bootstrap-server", addr.as_str(), "--timeout-ms", "2000"];
    let commands: Vec<Vec<&str>> = vec![
        vec!["produce", "--topic", "t"],
        vec!["consume", "--topic", "t"],
        vec!["topic", "list"],
        vec!["topic", "describe", "--topic", "t"],
        vec!["topic", "create", "--topic", "t"],
        vec!["topic", "delete", "--topic", "t"],
        vec![
            "topic",
            "alter-config",
            "--topic",
            "t",
            "--delete-config",
            "retention.ms",
        ],
        vec!["group", "list"],
        vec!["group", "describe", "--group", "g"],
        vec!["group", "delete", "--group", "g"],
        vec![
            "group",
            "reset-offsets",
            "--group",
            "g",
            "--all-topics",
            "--to-earliest",
        ],
    ];
    for command in commands {
        let mut args = command.clone();
        args.extend_from_slice(&b);
        let ran = spool_with(&args, "a\n", Duration::from_secs(30));
        assert!(
            ran.elapsed < Duration::from_secs(15),
            "{command:?} took {:?}",
            ran.elapsed
        );
        let err = ran.failed();
        let expected = format!("spool: cannot reach the broker at {addr} within 2000 ms");
        assert!(err.starts_with(&expected), "{command:?}: {err}");
    }
}

#[test]
fn topics_are_created_listed_described_and_deleted() {
    let (_dir, spool) = broker(&[]);
    let a = spool.addr.as_str();
    let created = topic(
        "create",
        a,
        &[
            "--topic",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=86400000",
        ],
    )
    .ok();
    assert_eq!(created.stdout, "Created topic orders.\n");
    let err = topic("create", a, &["--topic", "orders"]).failed();
    assert_eq!(err, "spool: topic `orders` already exists\n");
    topic("create", a, &["--topic", "orders", "--if-not-exists"]).ok();
    topic("create", a, &["--topic", "audit", "--partitions", "1"]).ok();
    assert_eq!(
        topic("list", a, &[]).ok().stdout,
        "__consumer_offsets\naudit\norders\n",
        "internal topics are listed, as by Kafka's tool"
    );
    assert_eq!(
        topic("list", a, &["--exclude-internal", "--output", "json"])
            .ok()
            .json(),
        serde_json::json!(["audit", "orders"])
    );

    let described = topic("describe", a, &["--topic", "orders"]).ok().stdout;
    let head: Vec<&str> = described.lines().take(5).collect();
    assert_eq!(
        head,
        [
            "Topic: orders\tPartitionCount: 3\tReplicationFactor: 1",
            "\tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1",
            "\tTopic: orders\tPartition: 1\tLeader: 1\tReplicas: 1\tIsr: 1",
            "\tTopic: orders\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1",
            "\tConfigs (* = not the default):",
        ]
    );
    assert!(
        described.contains("\n\t* retention.ms=86400000\n"),
        "{described}"
    );
    assert!(
        described.contains("\n\t  cleanup.policy=delete\n"),
        "{described}"
    );

    let json = topic("describe", a, &["--topic", "orders", "--output", "json"])
        .ok()
        .json();
    let orders = &json[0];
    assert_eq!(orders["topic"], "orders");
    assert_eq!(orders["partition_count"], 3);
    assert_eq!(
        orders["partitions"][2],
        serde_json::json!({"partition": 2, "leader": 1, "replicas": [1], "isr": [1]})
    );
    let config = |name: &str| {
        orders["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no config {name}"))
    };
    assert_eq!(config("retention.ms")["value"], "86400000");
    assert_eq!(config("retention.ms")["default"], false);
    assert_eq!(config("retention.ms")["source"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(config("cleanup.policy")["default"], true);
    let all = topic("describe", a, &["--output", "json"]).ok().json();
    assert_eq!(
        all.as_array().unwrap().len(),
        3,
        "every topic without --topic, the internal offsets topic included"
    );

    assert_eq!(
        topic("delete", a, &["--topic", "orders"]).ok().stdout,
        "Deleted topic orders.\n"
    );
    assert_eq!(
        topic("list", a, &["--exclude-internal"]).ok().stdout,
        "audit\n"
    );
    let err = topic(
        "create",
        a,
        &["--topic", "bad", "--config", "retention.ms=soon"],
    )
    .failed();
    assert!(
        err.starts_with("spool: cannot create topic `bad`: "),
        "{err}"
    );
    assert!(err.contains("InvalidConfig"), "{err}");
}

/// `topic alter-config` sets and removes topic overrides through IncrementalAlterConfigs; the
/// change shows in `describe` at once and a bad value changes nothing.
#[test]
fn alter_config_sets_and_removes_topic_overrides() {
    let (_dir, spool) = broker(&[]);
    let a = spool.addr.as_str();
    topic(
        "create",
        a,
        &[
            "--topic",
            "t",
            "--config",
            "retention.ms=1000",
            "--config",
            "segment.bytes=1048576",
        ],
    )
    .ok();
    topic(
        "alter-config",
        a,
        &[
            "--topic",
            "t",
            "--add-config",
            "retention.ms=5000,cleanup.policy=[delete]",
            "--delete-config",
            "segment.bytes",
        ],
    )
    .ok();
    let described = topic("describe", a, &["--topic", "t"]).ok().stdout;
    assert!(described.contains("\t* retention.ms=5000\n"), "{described}");
    assert!(
        described.contains("\t* cleanup.policy=delete\n"),
        "{described}"
    );
    assert!(!described.contains("* segment.bytes"), "{described}");
    let err = topic(
        "alter-config",
        a,
        &["--topic", "t", "--add-config", "retention.ms=soon"],
    )
    .failed();
    assert!(err.contains("InvalidConfig"), "{err}");
    let described = topic("describe", a, &["--topic", "t"]).ok().stdout;
    assert!(described.contains("\t* retention.ms=5000\n"), "{described}");
    let err = topic("alter-config", a, &["--topic", "t"]).failed();
    assert!(
        err.contains("--add-config"),
        "one change is required: {err}"
    );
}

#[test]
fn reassign_reports_refusals_by_name_and_lists_nothing_when_idle() {
    let (_dir, spool) = broker(&[]);
    let addr = spool.addr.as_str();
    topic("create", addr, &["--topic", "moves", "--partitions", "1"]).ok();
    let reassign = |extra: &[&str]| {
        let mut args = vec!["--topic", "moves", "--partition", "0"];
        args.extend_from_slice(extra);
        topic("reassign", addr, &args)
    };

    // Already on node 1 and in sync: the reassignment completes at once.
    let done = reassign(&["--replicas", "1", "--output", "json"]).ok();
    assert_eq!(
        done.json(),
        serde_json::json!({"topic": "moves", "partition": 0, "replicas": [1], "cancelled": false})
    );
    assert_eq!(
        topic("reassignments", addr, &["--output", "json"])
            .ok()
            .json(),
        serde_json::json!([])
    );
    let idle = topic("reassignments", addr, &[]).ok();
    assert_eq!(
        idle.stdout,
        "TOPIC  PARTITION  REPLICAS  ADDING  REMOVING\n"
    );

    let cancel = reassign(&["--cancel"]).failed();
    assert!(
        cancel
            .starts_with("spool: cancelling the reassignment of moves-0: NoReassignmentInProgress"),
        "{cancel}"
    );
    let unknown_node = reassign(&["--replicas", "1,7"]).failed();
    assert!(
        unknown_node.contains("InvalidReplicaAssignment") && unknown_node.contains("node 7"),
        "{unknown_node}"
    );
    let unknown_topic = topic(
        "reassign",
        addr,
        &["--topic", "nope", "--partition", "0", "--replicas", "1"],
    )
    .failed();
    assert!(
        unknown_topic.contains("UnknownTopicOrPartition"),
        "{unknown_topic}"
    );
    // Exactly one of --replicas and --cancel.
    let both = reassign(&["--replicas", "1", "--cancel"]).failed();
    assert!(both.contains("cannot be used with"), "{both}");
    let neither = reassign(&[]).failed();
    assert!(neither.contains("required"), "{neither}");
}

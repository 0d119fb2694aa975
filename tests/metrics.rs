//! Metrics as operators see them: a real Prometheus server (`prometheus` on PATH; the README's
//! test command installs Debian's) scrapes a three-node cluster under load, and the series
//! move as they must: bytes in grow with production, a consumer group's lag falls as it
//! catches up, under-replicated partitions rise when a follower stops. `/health` answers 200
//! on a ready node.

mod support;

use rdkafka::producer::{BaseRecord, Producer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::cli::spool;
use support::cluster::Cluster;
use support::rdk::{self, Deliveries};
use support::wait_for;

/// A Prometheus server on loopback, stopped on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on 127.0.0.1:port: (status code, body).
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

impl Prometheus {
    fn start(targets: &[String]) -> Self {
        let which = Command::new("sh")
            .args(["-c", "command -v prometheus"])
            .output();
        assert!(
            which.is_ok_and(|o| o.status.success()),
            "the prometheus server is needed (Debian's package `prometheus`; scripts/test.sh installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n\
                 scrape_configs:\n  - job_name: spool\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ),
        )
        .unwrap();
        let port = support::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        let up = wait_for(Duration::from_secs(30), || {
            http_get(&p.addr(), "/-/ready").filter(|(code, _)| *code == 200)
        });
        assert!(up.is_some(), "prometheus did not become ready");
        p
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The value of an instant query that yields one number, if it yields one.
    fn value(&self, query: &str) -> Option<f64> {
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (code, body) = http_get(&self.addr(), &format!("/api/v1/query?query={encoded}"))?;
        assert_eq!(code, 200, "{query}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let result = json["data"]["result"].as_array()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls `query` until `accept` takes its value.
    fn wait_value(&self, query: &str, accept: impl Fn(f64) -> bool, what: &str) -> f64 {
        wait_for(Duration::from_secs(60), || {
            self.value(query).filter(|v| accept(*v))
        })
        .unwrap_or_else(|| panic!("{what}: {query} is {:?}", self.value(query)))
    }
}

fn produce(bootstrap: &str, topic: &str, count: usize) {
    let deliveries = Deliveries::default();
    let producer = rdk::producer(
        bootstrap,
        &[("acks", "all"), ("linger.ms", "5")],
        &deliveries,
    );
    for n in 0..count {
        let value = format!("record-{n:06}");
        let mut pending = BaseRecord::<(), String>::to(topic)
            .payload(&value)
            .partition(0);
        for _ in 0..1000 {
            match producer.send(pending) {
                Ok(()) => break,
                Err((_, back)) => {
                    pending = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let acked = deliveries.acked.lock().unwrap().len();
    assert_eq!(acked, count, "{:?}", deliveries.failed.lock().unwrap());
}

#[test]
fn prometheus_scrapes_series_that_follow_the_cluster() {
    let port = support::free_port();
    let setting = format!("metrics_listener={{ip}}:{port}");
    let mut cluster = Cluster::start_all(3, &[&setting]);
    let targets: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("{}:{port}", n.ip))
        .collect();
    for t in &targets {
        let health = wait_for(Duration::from_secs(30), || {
            http_get(t, "/health").filter(|(code, _)| *code == 200)
        });
        assert!(health.is_some(), "{t}/health: {:?}", http_get(t, "/health"));
        assert_eq!(http_get(t, "/nothing").map(|r| r.0), Some(404));
    }
    let bootstrap = cluster.bootstrap();
    spool(&[
        "topic",
        "create",
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        "watched",
        "--partitions",
        "1",
        "--replication-factor",
        "3",
    ])
    .ok();
    let prometheus = Prometheus::start(&targets);
    prometheus.wait_value("sum(up)", |v| v == 3.0, "every node is scraped");

    // Bytes in grow with production.
    let bytes_in = "sum(kafka_server_brokertopicmetrics_bytesin_total{topic=\"watched\"})";
    produce(&bootstrap, "watched", 500);
    let first = prometheus.wait_value(bytes_in, |v| v > 0.0, "bytes in after 500 records");
    produce(&bootstrap, "watched", 500);
    let second = prometheus.wait_value(bytes_in, |v| v > first, "bytes in after 500 more");
    let messages = "sum(kafka_server_brokertopicmetrics_messagesin_total{topic=\"watched\"})";
    prometheus.wait_value(messages, |v| v == 1000.0, "messages in");
    eprintln!("bytes in: {first} then {second}");

    // A group that has read 100 of 1000 lags by 900; when it has read all, by 0.
    let lag = "sum(kafka_consumergroup_lag{consumergroup=\"watchers\",topic=\"watched\"})";
    let read = |n: &str| {
        spool(&[
            "consume",
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "watched",
            "--group",
            "watchers",
            "--from-beginning",
            "--max-messages",
            n,
            "--timeout-ms",
            "30000",
        ])
        .ok()
    };
    read("100");
    prometheus.wait_value(lag, |v| v == 900.0, "lag after reading 100");
    read("900");
    prometheus.wait_value(lag, |v| v == 0.0, "lag after catching up");
    let out = "sum(kafka_server_brokertopicmetrics_bytesout_total{topic=\"watched\"})";
    prometheus.wait_value(out, |v| v >= second, "bytes out to the group");

    // A follower stops: its leader reports the partition under-replicated.
    let leader = cluster
        .partition(1, "watched", 0)
        .map(|p| p.leader)
        .filter(|l| *l > 0)
        .expect("a leader");
    let follower = (1..=3u64).find(|id| *id as i32 != leader).unwrap();
    let under = "sum(kafka_server_replicamanager_underreplicatedpartitions)";
    prometheus.wait_value(under, |v| v == 0.0, "nothing under-replicated before");
    cluster.kill9(follower);
    prometheus.wait_value(
        under,
        |v| v >= 1.0,
        "under-replicated after a follower stopped",
    );
    prometheus.wait_value(
        "sum(kafka_server_replicamanager_isrshrinks_total)",
        |v| v >= 1.0,
        "an ISR shrink counted",
    );
    prometheus.wait_value(
        "sum(kafka_controller_kafkacontroller_activecontrollercount)",
        |v| v == 1.0,
        "one active controller",
    );
}

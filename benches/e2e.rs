//! End-to-end produce benchmark through librdkafka: real spool processes (release build) on
//! loopback, 1 KiB records, one topic with 6 partitions.
//!
//! Scenarios: one node at acks=1 and acks=all (durable mode) at full speed, and acks=1 /
//! acks=all paced at 50 MB/s for latency; then a 3-node cluster (127.0.0.2-4, replication
//! factor 3, min.insync.replicas 2) at acks=all, full speed and paced. Reports MB/s, produce
//! latency p50/p99 (send to delivery report), and the CPU seconds per GB produced of all the
//! nodes together. Clients and nodes share the machine.
//!
//! `cargo bench --bench e2e` (SPOOL_BENCH_SECS sets seconds per scenario, default 8).
//!
//! Comparison mode, `SPOOL_BENCH_COMPARE=name=/path/to/spool[,...]`: interleaved rounds
//! (`SPOOL_BENCH_ROUNDS`, default 5; the order alternates) of one node at acks=1 producing
//! 1 KiB lz4-compressed records for SPOOL_BENCH_SECS, then one consumer fetching them all from
//! the start, on this build and on each binary named; prints every round, the medians and each
//! binary's ratio to this build.

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RECORD: usize = 1024;
const PARTITIONS: i32 = 6;

/// Delivery latencies in microseconds, and failures. The opaque of each record is its send time
/// in microseconds since `base`, so no allocation is made per record.
#[derive(Clone)]
struct Latencies {
    base: Instant,
    micros: Arc<Mutex<Vec<u64>>>,
    failed: Arc<Mutex<u64>>,
}

impl Latencies {
    fn now_us(&self) -> usize {
        self.base.elapsed().as_micros() as usize
    }
}

impl ClientContext for Latencies {}
impl ProducerContext for Latencies {
    type DeliveryOpaque = usize;
    fn delivery(&self, r: &DeliveryResult<'_>, sent_us: usize) {
        if r.is_ok() {
            let latency = self.now_us().saturating_sub(sent_us) as u64;
            self.micros.lock().unwrap().push(latency);
        } else {
            *self.failed.lock().unwrap() += 1;
        }
    }
}

/// One spool node, or a cluster of them.
struct Broker {
    children: Vec<Child>,
    /// The bootstrap list.
    addr: String,
    replication_factor: i32,
    _dir: tempfile::TempDir,
}

/// Starts one node; returns it and the address it serves on.
fn spawn(dir: &std::path::Path, listen: &str, args: &[String]) -> (Child, String) {
    spawn_bin(env!("CARGO_BIN_EXE_spool"), dir, listen, args)
}

fn spawn_bin(bin: &str, dir: &std::path::Path, listen: &str, args: &[String]) -> (Child, String) {
    let ready = dir.join("ready");
    let child = Command::new(bin)
        .args(["serve", "--listeners", listen])
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--ready-file")
        .arg(&ready)
        .env("RUST_LOG", "warn")
        // The benchmark's own settings are not the broker's.
        .env_remove("SPOOL_BENCH_SECS")
        .env_remove("SPOOL_BENCH_COMPARE")
        .env_remove("SPOOL_BENCH_ROUNDS")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("spool.log")).expect("log file"))
        .spawn()
        .expect("spawn spool");
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Ok(s) = std::fs::read_to_string(&ready) {
            if !s.trim().is_empty() {
                break s.trim().to_string();
            }
        }
        assert!(Instant::now() < deadline, "spool did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    (child, addr)
}

/// A loopback port that was free a moment ago.
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    fn start(flush_mode: &str) -> Self {
        Self::start_bin(env!("CARGO_BIN_EXE_spool"), flush_mode)
    }

    fn start_bin(bin: &str, flush_mode: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let args = ["--set".to_string(), format!("flush_mode={flush_mode}")];
        let (child, addr) = spawn_bin(bin, dir.path(), "127.0.0.1:0", &args);
        Broker {
            children: vec![child],
            addr,
            replication_factor: 1,
            _dir: dir,
        }
    }

    /// Three nodes on 127.0.0.2-4, every one a quorum voter; waits until all serve metadata.
    fn start_cluster(flush_mode: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<(u64, String, u16, u16)> = (2..=4)
            .map(|id| {
                let ip = format!("127.0.0.{id}");
                let (k, c) = (free_port(&ip), free_port(&ip));
                (id, ip, k, c)
            })
            .collect();
        let voters: Vec<String> = nodes
            .iter()
            .map(|(id, ip, _, c)| format!("{id}@{ip}:{c}"))
            .collect();
        let mut children = Vec::new();
        let mut addrs = Vec::new();
        for (id, ip, k, c) in &nodes {
            let node_dir = dir.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let settings = [
                format!("flush_mode={flush_mode}"),
                format!("node_id={id}"),
                "cluster_id=c3Bvb2wtYmVuY2gtY2x1c3Q".to_string(),
                format!("controller_listener={ip}:{c}"),
                format!("controller_quorum_voters={}", voters.join(",")),
                "min_insync_replicas=2".to_string(),
            ];
            let args: Vec<String> = settings
                .iter()
                .flat_map(|s| ["--set".to_string(), s.clone()])
                .collect();
            let (child, addr) = spawn(&node_dir, &format!("{ip}:{k}"), &args);
            children.push(child);
            addrs.push(addr);
        }
        let broker = Broker {
            children,
            addr: addrs.join(","),
            replication_factor: 3,
            _dir: dir,
        };
        broker.wait_for_brokers(3);
        broker
    }

    fn wait_for_brokers(&self, count: usize) {
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .create()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            use rdkafka::consumer::Consumer;
            let n = consumer
                .fetch_metadata(None, Duration::from_secs(5))
                .map_or(0, |m| m.brokers().len());
            if n >= count {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not form");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// User + system CPU seconds used by the nodes so far.
    fn cpu_seconds(&self) -> f64 {
        self.children.iter().map(|c| cpu_seconds(c.id())).sum()
    }
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

impl Drop for Broker {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Outcome {
    mb_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_s_per_gb: f64,
    failed: u64,
}

fn run(broker: &Broker, topic: &str, acks: &str, seconds: u64, rate_mb_s: Option<f64>) -> Outcome {
    run_with(broker, topic, acks, seconds, rate_mb_s, "none").0
}

/// Produces for `seconds`; returns the outcome and how many records were acknowledged.
fn run_with(
    broker: &Broker,
    topic: &str,
    acks: &str,
    seconds: u64,
    rate_mb_s: Option<f64>,
    compression: &str,
) -> (Outcome, u64) {
    let lat = Latencies {
        base: Instant::now(),
        micros: Default::default(),
        failed: Default::default(),
    };
    let producer: BaseProducer<Latencies> = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("acks", acks)
        // Full speed batches for throughput; paced runs measure latency, so linger only 1 ms.
        .set("linger.ms", if rate_mb_s.is_some() { "1" } else { "5" })
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("log_level", "3")
        .set("compression.type", compression)
        .create_with_context(lat.clone())
        .unwrap();
    let payload = payload();
    // Warm up: metadata and connections.
    let _ = producer.send(
        BaseRecord::with_opaque_to(topic, lat.now_us())
            .payload(&payload)
            .key("w"),
    );
    producer.flush(Duration::from_secs(30)).unwrap();
    lat.micros.lock().unwrap().clear();
    let cpu_before = broker.cpu_seconds();
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut sent: u64 = 0;
    let mut i: u64 = 0;
    while Instant::now() < end {
        if let Some(rate) = rate_mb_s {
            let due = (start.elapsed().as_secs_f64() * rate * 1e6 / RECORD as f64) as u64;
            if sent >= due {
                producer.poll(Duration::from_micros(200));
                continue;
            }
        }
        let key = (i % 1024).to_string();
        let record = BaseRecord::with_opaque_to(topic, lat.now_us())
            .payload(&payload)
            .key(&key);
        match producer.send(record) {
            Ok(()) => {
                sent += 1;
                i += 1;
            }
            Err(_) => {
                producer.poll(Duration::from_millis(1));
            }
        }
        if sent.is_multiple_of(256) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = broker.cpu_seconds() - cpu_before;
    let mut l = lat.micros.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let bytes = l.len() as f64 * RECORD as f64;
    let failed = *lat.failed.lock().unwrap();
    let outcome = Outcome {
        mb_per_s: bytes / elapsed / 1e6,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        cpu_s_per_gb: cpu / (bytes / 1e9),
        failed,
    };
    // The warm-up record counts too.
    (outcome, l.len() as u64 + 1)
}

/// A 1 KiB record that compresses about as text does (a repeating phrase with varying digits).
fn payload() -> Vec<u8> {
    let mut p = Vec::with_capacity(RECORD);
    let mut i = 0u32;
    while p.len() < RECORD {
        p.extend_from_slice(
            format!("order {i:05} item {} qty {};", i * 7 % 1000, i % 13).as_bytes(),
        );
        i += 1;
    }
    p.truncate(RECORD);
    p
}

/// Fetches `records` records of `topic` from the start with one consumer; MB/s of record bytes.
fn consume_all(broker: &Broker, topic: &str, records: u64) -> f64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("log_level", "3")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);
    let (mut got, mut bytes) = (0u64, 0u64);
    while got < records {
        assert!(Instant::now() < deadline, "consumed {got} of {records}");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("fetch error");
            bytes += m.payload_len() as u64;
            got += 1;
        }
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Interleaved rounds of lz4 produce and fetch on this build and the binaries named.
fn compare(spec: &str, seconds: u64) {
    let rounds: usize = std::env::var("SPOOL_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut bins: Vec<(String, String)> =
        vec![("this".to_string(), env!("CARGO_BIN_EXE_spool").to_string())];
    for entry in spec.split(',').filter(|e| !e.is_empty()) {
        let (name, path) = entry.split_once('=').expect("name=path");
        bins.push((name.to_string(), path.to_string()));
    }
    println!("interleaved rounds: {rounds} x {} builds, 1 KiB lz4 records, acks=1, {seconds} s of produce, then a fetch of it all", bins.len());
    let mut produce: Vec<Vec<f64>> = vec![Vec::new(); bins.len()];
    let mut fetch: Vec<Vec<f64>> = vec![Vec::new(); bins.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..bins.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (name, bin) = &bins[i];
            let broker = Broker::start_bin(bin, "durable");
            create_topic(&broker.addr, "lz4", 1);
            let (o, records) = run_with(&broker, "lz4", "1", seconds, None, "lz4");
            let f = consume_all(&broker, "lz4", records);
            println!(
                "round {round} {name:<8} produce {:>7.1} MB/s  fetch {f:>7.1} MB/s  failed {}",
                o.mb_per_s, o.failed
            );
            produce[i].push(o.mb_per_s);
            fetch[i].push(f);
        }
    }
    let base = (median(produce[0].clone()), median(fetch[0].clone()));
    for (i, (name, _)) in bins.iter().enumerate() {
        let (p, f) = (median(produce[i].clone()), median(fetch[i].clone()));
        println!(
            "median {name:<8} produce {p:>7.1} MB/s ({:.3} of this)  fetch {f:>7.1} MB/s ({:.3} of this)",
            p / base.0,
            f / base.1
        );
    }
}

fn create_topic(addr: &str, topic: &str, replication_factor: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let created = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(
                topic,
                PARTITIONS,
                TopicReplication::Fixed(replication_factor),
            )],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing we need to honour.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds: u64 = std::env::var("SPOOL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    if let Ok(spec) = std::env::var("SPOOL_BENCH_COMPARE") {
        compare(&spec, seconds);
        return;
    }
    println!("spool end-to-end produce: 1 KiB records, 1 topic x {PARTITIONS} partitions, {seconds} s per scenario");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>12} {:>7}",
        "scenario", "MB/s", "p50 ms", "p99 ms", "CPU s/GB", "failed"
    );
    // (name, acks, flush mode, pace, nodes)
    let scenarios: [(&str, &str, &str, Option<f64>, usize); 7] = [
        ("acks=1, full speed", "1", "durable", None, 1),
        ("acks=all durable, full speed", "all", "durable", None, 1),
        ("acks=1, paced 50 MB/s", "1", "durable", Some(50.0), 1),
        (
            "acks=all durable, paced 50 MB/s",
            "all",
            "durable",
            Some(50.0),
            1,
        ),
        ("3 nodes acks=all durable, full", "all", "durable", None, 3),
        (
            "3 nodes acks=all durable, 50 MB/s",
            "all",
            "durable",
            Some(50.0),
            3,
        ),
        (
            "3 nodes acks=all interval, full",
            "all",
            "interval",
            None,
            3,
        ),
    ];
    for (i, (name, acks, mode, rate, nodes)) in scenarios.into_iter().enumerate() {
        let broker = if nodes == 1 {
            Broker::start(mode)
        } else {
            Broker::start_cluster(mode)
        };
        let topic = format!("bench-{i}");
        create_topic(&broker.addr, &topic, broker.replication_factor);
        let o = run(&broker, &topic, acks, seconds, rate);
        println!(
            "{name:<34} {:>9.1} {:>9.2} {:>9.2} {:>12.2} {:>7}",
            o.mb_per_s, o.p50_ms, o.p99_ms, o.cpu_s_per_gb, o.failed
        );
    }
}

//! Consumer groups through librdkafka against a real spool: members share the partitions, a
//! member leaving hands its partitions over with nothing lost or repeated, and committed
//! offsets survive a broker restart.

mod support;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::ClientContext;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::rdk::{self, Deliveries};
use support::{free_port, wait_for, Spool};

const RECORDS: usize = 30_000;
const PARTITIONS: i32 = 6;

/// Commits what was processed before partitions are taken away (eager rebalance).
#[derive(Clone, Default)]
struct CommitOnRevoke;
impl ClientContext for CommitOnRevoke {}
impl ConsumerContext for CommitOnRevoke {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Revoke(_)) {
            let _ = consumer.commit_consumer_state(CommitMode::Sync);
        }
    }
}

fn consumer(addr: &str, group: &str) -> BaseConsumer<CommitOnRevoke> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .set("log_level", "3");
    c.create_with_context(CommitOnRevoke).expect("consumer")
}

/// Processes records until `stop`, committing after every 200 and before leaving.
fn member(
    addr: String,
    processed: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let c = consumer(&addr, "workers");
        c.subscribe(&["jobs"]).unwrap();
        let mut since_commit = 0;
        let deadline = Instant::now() + Duration::from_secs(240);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    processed
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(m.payload().unwrap()).into());
                    since_commit += 1;
                    if since_commit >= 200 {
                        let _ = c.commit_consumer_state(CommitMode::Sync);
                        since_commit = 0;
                    }
                }
                Some(Err(e)) => eprintln!("consumer: {e}"),
                None => {}
            }
        }
        let _ = c.commit_consumer_state(CommitMode::Sync);
        c.unsubscribe();
    })
}

#[test]
fn a_group_processes_every_record_once_through_a_leave_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::start_on(
        dir.path(),
        free_port(),
        &[
            "--set",
            "num_partitions=6",
            "--set",
            "group_initial_rebalance_delay_ms=500",
        ],
    );
    let addr = spool.addr.clone();
    let processed = Arc::new(Mutex::new(Vec::new()));
    let stops: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let members: Vec<_> = stops
        .iter()
        .map(|s| member(addr.clone(), processed.clone(), s.clone()))
        .collect();

    let deliveries = Deliveries::default();
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (addr, deliveries, sent) = (addr.clone(), deliveries.clone(), sent.clone());
        std::thread::spawn(move || {
            let p = rdk::producer(
                &addr,
                &[("enable.idempotence", "true"), ("linger.ms", "5")],
                &deliveries,
            );
            for i in 0..RECORDS {
                let (k, v) = (format!("k{}", i % 97), format!("job-{i}"));
                while p.send(BaseRecord::to("jobs").key(&k).payload(&v)).is_err() {
                    p.poll(Duration::from_millis(5));
                }
                sent.fetch_add(1, Ordering::Relaxed);
                if i % 100 == 99 {
                    // Spread the stream over a few seconds so members come and go mid-stream.
                    p.poll(Duration::from_millis(10));
                }
            }
            p.flush(Duration::from_secs(120)).unwrap();
        })
    };
    let count = |n: usize| {
        let processed = processed.clone();
        wait_for(Duration::from_secs(120), move || {
            (processed.lock().unwrap().len() >= n).then_some(())
        })
    };
    assert!(
        count(RECORDS / 3).is_some(),
        "the group did not get going; log:\n{}",
        spool.log_tail()
    );
    stops[2].store(true, Ordering::Relaxed);
    assert!(
        count(RECORDS * 2 / 3).is_some(),
        "the group stalled after a member left"
    );
    assert!(spool.terminate(), "graceful stop");
    spool.restart();
    producer.join().unwrap();
    assert!(
        count(RECORDS).is_some(),
        "not every record was processed; log:\n{}",
        spool.log_tail()
    );
    for s in &stops {
        s.store(true, Ordering::Relaxed);
    }
    for m in members {
        m.join().unwrap();
    }
    assert_eq!(deliveries.acked.lock().unwrap().len(), RECORDS);
    let processed = processed.lock().unwrap().clone();
    let unique: HashSet<&String> = processed.iter().collect();
    assert_eq!(unique.len(), RECORDS, "records lost");
    assert_eq!(
        processed.len(),
        RECORDS,
        "{} records processed twice",
        processed.len() - RECORDS
    );

    // A new member of the group resumes from the committed offsets: nothing is left to read.
    spool.terminate();
    spool.restart();
    let late = consumer(&addr, "workers");
    late.subscribe(&["jobs"]).unwrap();
    let assigned = wait_for(Duration::from_secs(30), || {
        let _ = late
            .poll(Duration::from_millis(100))
            .map(|m| panic!("re-read a committed record: {:?}", m.map(|m| m.offset())));
        (late.assignment().unwrap().count() == PARTITIONS as usize).then_some(())
    });
    assert!(assigned.is_some(), "the late member got no assignment");
    let committed = late.committed(Duration::from_secs(10)).unwrap();
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| e.offset().to_raw().unwrap_or(0))
        .sum();
    assert_eq!(
        total, RECORDS as i64,
        "committed offsets add up to every record"
    );
    let quiet = Instant::now() + Duration::from_secs(2);
    while Instant::now() < quiet {
        if let Some(Ok(m)) = late.poll(Duration::from_millis(100)) {
            panic!("re-read a committed record at offset {}", m.offset());
        }
    }
}

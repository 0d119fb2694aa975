//! SIGKILL in the middle of an idempotent acks=all stream, twenty times over (set
//! `CRASH_CYCLES` for a longer soak run by hand), in durable mode: every acknowledged record is
//! present exactly once, in order, at its acknowledged offset.

mod support;

use rdkafka::producer::{BaseRecord, Producer};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::rdk::{self, Deliveries};
use support::{free_port, wait_for, Spool};

const PARTITIONS: i32 = 3;
/// SIGKILLs in one run unless `CRASH_CYCLES` says otherwise.
const DEFAULT_CYCLES: usize = 20;
/// Records acknowledged between two kills.
const PER_CYCLE: usize = 10_000;

#[test]
fn acknowledged_records_survive_repeated_sigkill() {
    let cycles: usize = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::start_on(
        dir.path(),
        free_port(),
        &["--set", "flush_mode=durable", "--set", "num_partitions=3"],
    );
    let addr = spool.addr.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let deliveries = Deliveries::default();
    let producer = {
        let (addr, stop, deliveries) = (addr.clone(), stop.clone(), deliveries.clone());
        std::thread::spawn(move || {
            let settings = [
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "2"),
                ("message.timeout.ms", "120000"),
                ("reconnect.backoff.ms", "20"),
                ("reconnect.backoff.max.ms", "200"),
            ];
            let p = rdk::producer(&addr, &settings, &deliveries);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 5_000_000 {
                let key = format!("k{}", i % 64);
                let value = format!("v{i}");
                match p.send(BaseRecord::to("crash").key(&key).payload(&value)) {
                    Ok(()) => i += 1,
                    Err(_) => {
                        p.poll(Duration::from_millis(5));
                    }
                }
                p.poll(Duration::ZERO);
                if i.is_multiple_of(64) {
                    // Keep a bounded backlog so kills land mid-stream, not in a huge queue.
                    while p.in_flight_count() > 5000 && !stop.load(Ordering::Relaxed) {
                        p.poll(Duration::from_millis(5));
                    }
                }
            }
            p.flush(Duration::from_secs(120))
                .expect("flush after the last restart");
            i
        })
    };

    let acked = |d: &Deliveries| d.acked.lock().unwrap().len();
    for cycle in 0..cycles {
        let before = acked(&deliveries);
        let progressed = wait_for(Duration::from_secs(60), || {
            (acked(&deliveries) >= before + PER_CYCLE).then_some(())
        });
        assert!(
            progressed.is_some(),
            "cycle {cycle}: no progress; log:\n{}",
            spool.log_tail()
        );
        spool.kill9();
        spool.restart();
        assert_eq!(spool.addr, addr, "restarted on the same port");
    }
    let before = acked(&deliveries);
    assert!(wait_for(Duration::from_secs(60), || (acked(&deliveries)
        >= before + PER_CYCLE)
        .then_some(()))
    .is_some());
    stop.store(true, Ordering::Relaxed);
    let sent = producer.join().unwrap();

    let failed = deliveries.failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} deliveries failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    let acked = deliveries.acked.lock().unwrap().clone();
    assert_eq!(
        acked.len() as u64,
        sent,
        "every record sent was acknowledged"
    );

    let stored = rdk::consume_all(
        &addr,
        "crash",
        PARTITIONS,
        acked.len(),
        Duration::from_secs(120),
    );
    let mut by_value = HashMap::new();
    for r in &stored {
        assert!(
            by_value
                .insert(r.value.clone(), (r.partition, r.offset))
                .is_none(),
            "duplicate record {}",
            r.value
        );
    }
    for a in &acked {
        assert_eq!(
            by_value.get(&a.value),
            Some(&(a.partition, a.offset)),
            "acknowledged record {} lost or moved",
            a.value
        );
    }
    // Each partition is gap-free and in the order the producer sent.
    for p in 0..PARTITIONS {
        let mine: Vec<_> = stored.iter().filter(|r| r.partition == p).collect();
        for (i, r) in mine.iter().enumerate() {
            assert_eq!(r.offset, i as i64, "partition {p} has a gap");
        }
        let seq: Vec<u64> = mine.iter().map(|r| r.value[1..].parse().unwrap()).collect();
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "partition {p} out of order"
        );
    }
    let log = std::fs::read_to_string(&spool.log_path).unwrap();
    assert_eq!(
        log.matches("clean_shutdown=false").count(),
        cycles + 1,
        "every restart after SIGKILL recovered"
    );
    println!(
        "{} records acknowledged across {cycles} SIGKILLs; {} recovery lines",
        acked.len(),
        log.matches("recovered log").count()
    );
    let keys: HashSet<_> = stored.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys.len(), 64);
    assert!(spool.terminate(), "graceful shutdown after the test");
}

//! The disk's bad days, against a real spool process: a full disk (a small tmpfs), a bit flipped
//! in a segment, fsync errors and power loss (through a fault-injecting layer preloaded into the
//! broker, `support/faultfs.c`). Acknowledged data is never lost or damaged, nothing corrupt is
//! served, and the broker keeps serving everyone else.

mod support;

use kafka_protocol::messages::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::kafka;
use support::{wait_for, Raw, Spool};

const KAFKA_STORAGE_ERROR: i16 = 56;

fn create(c: &mut Raw, topic: &str, configs: &[(&str, &str)]) {
    let created: CreateTopicsResponse =
        c.request(ApiKey::CreateTopics, 5, &kafka::create(topic, 1, configs));
    assert_eq!(created.topics[0].error_code, 0);
}

/// Produces one record (acks=all); returns (error, base offset).
fn produce(c: &mut Raw, topic: &str, value: &str) -> (i16, i64) {
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &kafka::produce(topic, 0, -1, kafka::batch(&[value], kafka::now_ms())),
    );
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Reads partition 0 from `from` to its end: the values, or the first error code met.
fn read_values(c: &mut Raw, topic: &str, from: i64) -> Result<Vec<(i64, String)>, i16> {
    let mut out = Vec::new();
    let mut offset = from;
    for _ in 0..100_000 {
        let r: FetchResponse = c.request(
            ApiKey::Fetch,
            11,
            &kafka::fetch(topic, 0, offset, 0, 1 << 20),
        );
        let p = &r.responses[0].partitions[0];
        if p.error_code != 0 {
            return Err(p.error_code);
        }
        let records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            return Ok(out);
        }
        for (base, values) in kafka::decode_batches(records) {
            for (i, v) in values.into_iter().enumerate() {
                out.push((base + i as i64, v));
            }
        }
        offset = out.last().map_or(offset, |(o, _)| o + 1);
    }
    panic!("{topic} never reached its end");
}

/// A tmpfs mounted at a path for the life of the value (unmounted lazily on drop).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (the disk-full test runs as root, as CI does)"
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_produce_keeps_reads_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(&dir.path().join("data"), "24m");
    let ballast = dir.path().join("data").join("ballast");
    std::fs::write(&ballast, vec![7u8; 4 << 20]).unwrap();
    let mut broker = Spool::start(dir.path(), &["--set", "offsets_topic_num_partitions=1"]);
    let mut c = Raw::connect(&broker.addr);
    create(&mut c, "full", &[]);
    let value = |i: usize| format!("{i:06}-{}", "x".repeat(60_000));

    let mut acked = 0usize;
    let mut refused = false;
    for i in 0..1_000 {
        match produce(&mut c, "full", &value(i)) {
            (0, offset) => {
                assert_eq!(offset, i as i64);
                acked += 1;
            }
            (KAFKA_STORAGE_ERROR, _) => {
                refused = true;
                break;
            }
            (e, _) => panic!("unexpected error {e} at record {i}"),
        }
    }
    assert!(
        refused && acked > 10,
        "the disk filled after {acked} records"
    );
    assert!(broker.is_running(), "a full disk must not kill the broker");
    // Reads keep working, and everything acknowledged is intact.
    let stored = read_values(&mut c, "full", 0).unwrap();
    assert_eq!(stored.len(), acked);
    for (i, (offset, v)) in stored.iter().enumerate() {
        assert_eq!((*offset, v.as_str()), (i as i64, value(i).as_str()));
    }
    // Still full: still refused, nothing changes.
    assert_eq!(
        produce(&mut c, "full", &value(acked)).0,
        KAFKA_STORAGE_ERROR
    );

    // Space comes back: producing resumes by itself.
    std::fs::remove_file(&ballast).unwrap();
    let resumed = wait_for(Duration::from_secs(30), || {
        (produce(&mut c, "full", &value(acked)).0 == 0).then_some(())
    });
    assert!(resumed.is_some(), "{}", broker.log_tail());
    for i in acked + 1..acked + 10 {
        assert_eq!(produce(&mut c, "full", &value(i)), (0, i as i64));
    }
    let total = acked + 10;
    assert!(broker.terminate());
    broker.restart();
    let mut c = Raw::connect(&broker.addr);
    let stored = read_values(&mut c, "full", 0).unwrap();
    assert_eq!(stored.len(), total);
    assert!(stored
        .iter()
        .enumerate()
        .all(|(i, (o, v))| *o == i as i64 && *v == value(i)));
}

/// Flips one bit of the record bytes of the batch at file position `at` or after.
fn flip_bit(path: &Path, at: usize) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    // Walk to the batch holding `at` and flip a bit in its last record byte.
    let mut pos = 0usize;
    loop {
        let len = 12 + i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        if pos + len > at {
            bytes[pos + len - 1] ^= 0x10;
            std::fs::write(path, &bytes).unwrap();
            return pos;
        }
        pos += len;
    }
}

#[test]
fn a_flipped_bit_is_never_served_and_recovery_cuts_the_bad_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&broker.addr);
    create(&mut c, "c", &[("segment.bytes", "16384")]);
    create(&mut c, "ok", &[]);
    let value = |i: usize| format!("{i:04}-{}", "y".repeat(1000));
    for i in 0..100 {
        assert_eq!(produce(&mut c, "c", &value(i)), (0, i as i64));
    }
    assert!(
        broker.terminate(),
        "a clean shutdown: no recovery scan will look"
    );

    let part = broker.data_dir.join("c-0");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 4, "{segments:?}");
    let victim = &segments[1];
    let victim_base: i64 = victim
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let size = std::fs::metadata(victim).unwrap().len() as usize;
    let batch_pos = flip_bit(victim, size / 2);
    let first_bad = {
        let bytes = std::fs::read(victim).unwrap();
        i64::from_be_bytes(bytes[batch_pos..batch_pos + 8].try_into().unwrap())
    };
    assert!(first_bad > victim_base);

    broker.restart();
    let mut c = Raw::connect(&broker.addr);
    // Reading up to the bad batch works; the bad batch is refused, never served.
    assert_eq!(
        read_values(&mut c, "c", first_bad),
        Err(KAFKA_STORAGE_ERROR)
    );
    assert_eq!(
        read_values(&mut c, "c", 0),
        Err(KAFKA_STORAGE_ERROR),
        "offline now"
    );
    assert_eq!(produce(&mut c, "c", "late").0, KAFKA_STORAGE_ERROR);
    // Everyone else is served.
    assert_eq!(produce(&mut c, "ok", "fine"), (0, 0));

    // The next start validates from the damaged segment and cuts the tail there.
    // An offline partition cannot be closed cleanly, so no clean-shutdown marker is written.
    broker.terminate();
    assert!(!broker.data_dir.join(".clean-shutdown").exists());
    broker.restart();
    let mut c = Raw::connect(&broker.addr);
    let stored = read_values(&mut c, "c", 0).unwrap();
    assert_eq!(stored.len() as i64, first_bad, "{}", broker.log_tail());
    assert!(stored
        .iter()
        .enumerate()
        .all(|(i, (o, v))| *o == i as i64 && *v == value(i)));
    assert_eq!(produce(&mut c, "c", "again"), (0, first_bad));
    assert_eq!(read_values(&mut c, "ok", 0).unwrap().len(), 1);
}

/// Builds the fault-injecting layer into `dir` and returns the shared object's path.
fn faultfs(dir: &Path) -> PathBuf {
    let so = dir.join("faultfs.so");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/faultfs.c");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
        .arg(&so)
        .arg(&source)
        .args(["-ldl", "-lpthread"])
        .status()
        .expect("run cc (a C compiler is needed to build the fault-injecting layer)");
    assert!(status.success());
    so
}

#[test]
fn an_fsync_error_is_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let so = faultfs(dir.path());
    let flag = dir.path().join("fail-fsync");
    let mut broker = Spool::start_env(
        dir.path(),
        &[],
        &[
            ("LD_PRELOAD", so.to_str().unwrap()),
            ("FAULTFS_FAIL_FSYNC_IF", flag.to_str().unwrap()),
        ],
    );
    let mut c = Raw::connect(&broker.addr);
    create(&mut c, "f", &[]);
    create(&mut c, "g", &[]);
    assert_eq!(produce(&mut c, "f", "before"), (0, 0));

    std::fs::write(&flag, b"").unwrap();
    assert_eq!(produce(&mut c, "f", "during").0, KAFKA_STORAGE_ERROR);
    assert_eq!(produce(&mut c, "f", "during-2").0, KAFKA_STORAGE_ERROR);
    std::fs::remove_file(&flag).unwrap();
    // The partition stays offline: its fate on disk is unknown until a restart recovers it.
    assert_eq!(produce(&mut c, "f", "after").0, KAFKA_STORAGE_ERROR);
    // Other partitions whose syncs work are served.
    assert_eq!(produce(&mut c, "g", "fine"), (0, 0));
    assert!(broker.is_running());

    broker.terminate();
    broker.env.clear();
    broker.restart();
    let mut c = Raw::connect(&broker.addr);
    let stored = read_values(&mut c, "f", 0).unwrap();
    assert_eq!(
        stored.first().map(|(o, v)| (*o, v.as_str())),
        Some((0, "before"))
    );
    let (e, offset) = produce(&mut c, "f", "again");
    assert_eq!(e, 0);
    assert_eq!(offset, stored.len() as i64);
}

#[test]
fn power_loss_keeps_every_acknowledged_record_and_a_prefix() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let so = faultfs(dir.path());
    let journal = dir.path().join("journal");
    let env = [
        ("LD_PRELOAD", so.to_str().unwrap().to_string()),
        ("FAULTFS_JOURNAL", journal.to_str().unwrap().to_string()),
    ];
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut broker = Spool::start_env(dir.path(), &[], &env_ref);
    let mut c = Raw::connect(&broker.addr);
    create(&mut c, "p", &[("segment.bytes", "65536")]);
    let mut acked_total = 0usize;
    for cycle in 0..3 {
        // A writer acknowledges records one by one until the power goes.
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (addr, acked, stop) = (broker.addr.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Raw::connect(&addr);
                for i in 0..1_000_000usize {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let value = format!("c{cycle}-{i:07}-{}", "z".repeat(200));
                    let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        produce(&mut c, "p", &value)
                    }));
                    match sent {
                        Ok((0, offset)) => acked.lock().unwrap().push((offset, value)),
                        _ => return,
                    }
                }
            })
        };
        let enough = wait_for(Duration::from_secs(60), || {
            (acked.lock().unwrap().len() >= 400).then_some(())
        });
        assert!(enough.is_some(), "{}", broker.log_tail());
        broker.kill9();
        stop.store(true, Ordering::Release);
        writer.join().unwrap();

        // Power loss: every segment file loses what was written after its last sync.
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        let mut synced = std::collections::HashMap::new();
        for line in text.lines() {
            let (size, path) = line.split_once(' ').unwrap();
            synced.insert(path.to_string(), size.parse::<u64>().unwrap());
        }
        let part = broker.data_dir.join("p-0");
        let mut cut = 0u64;
        for entry in std::fs::read_dir(&part).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                let keep = synced.get(path.to_str().unwrap()).copied().unwrap_or(0);
                let len = std::fs::metadata(&path).unwrap().len();
                if keep < len {
                    cut += len - keep;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .unwrap()
                        .set_len(keep)
                        .unwrap();
                }
            }
        }
        // The journal is kept across cycles: a sealed segment synced in an earlier cycle keeps
        // its synced size (the last line for a path wins).
        broker.restart();
        let mut c = Raw::connect(&broker.addr);
        let stored = read_values(&mut c, "p", 0).unwrap();
        // A prefix: contiguous offsets from 0, and every acknowledged record in its place.
        assert!(stored.iter().enumerate().all(|(i, (o, _))| *o == i as i64));
        let acked = acked.lock().unwrap();
        for (offset, value) in acked.iter() {
            let found = stored.get(*offset as usize).map(|(_, v)| v);
            assert_eq!(
                found,
                Some(value),
                "cycle {cycle}: acknowledged offset {offset} lost (cut {cut} bytes)"
            );
        }
        acked_total += acked.len();
    }
    assert!(acked_total >= 1200);
}

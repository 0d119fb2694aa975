//! Log micro-benchmarks with baselines measured in the same run:
//! - append: `Log::validate` + `Log::append` of a 16 KiB batch (16 x 1 KiB records) against a
//!   bare `pwrite` of the same bytes to a plain file;
//! - read: `Log::read` of up to 1 MiB at a random offset (a zero-copy `Bytes` slice of the map)
//!   against copying 1 MiB out of memory.
//!
//! `cargo bench --bench log`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spool::log::{Log, LogConfig};
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

#[path = "../tests/support/kafka.rs"]
mod kafka;

/// `records` records of `size` bytes each, in one uncompressed v2 batch.
fn batch(records: usize, size: usize) -> Bytes {
    let value = "x".repeat(size);
    let values: Vec<&str> = (0..records).map(|_| value.as_str()).collect();
    kafka::batch(&values, spool::model::now_ms())
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 20,
        segment_ms: i64::MAX,
        segment_index_bytes: 10 << 20,
        index_interval_bytes: 4096,
        retention_ms: -1,
        retention_bytes: -1,
        max_message_bytes: 1 << 20,
        log_append_time: false,
        retention_enabled: true,
        compaction: None,
    }
}

fn append(c: &mut Criterion) {
    let b = batch(16, 1024);
    let mut group = c.benchmark_group("append_16KiB_batch");
    group.throughput(Throughput::Bytes(b.len() as u64));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("baseline_pwrite", |bench| {
        bench.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let f = std::fs::File::create(dir.path().join("raw")).unwrap();
            let start = Instant::now();
            for i in 0..iters {
                f.write_all_at(&b, i * b.len() as u64).unwrap();
            }
            start.elapsed()
        })
    });
    group.bench_function("log_validate_and_append", |bench| {
        bench.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let (mut log, _) = Log::open(dir.path(), config(), true).unwrap();
            let mut owned = vec![0u8; b.len()];
            let start = Instant::now();
            for _ in 0..iters {
                log.validate(&b).unwrap();
                owned.copy_from_slice(&b);
                black_box(log.append(&mut owned, 0, 0).unwrap());
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), config(), true).unwrap();
    let b = batch(16, 1024);
    let mut owned = b.to_vec();
    for _ in 0..4096 {
        owned.copy_from_slice(&b);
        log.append(&mut owned, 0, 0).unwrap();
    }
    let end = log.log_end_offset();
    let source = vec![7u8; 1 << 20];
    let mut group = c.benchmark_group("read_1MiB");
    group.throughput(Throughput::Bytes(1 << 20));
    group.bench_function(BenchmarkId::new("baseline_memcpy", "1MiB"), |bench| {
        let mut dest = vec![0u8; 1 << 20];
        bench.iter(|| {
            dest.copy_from_slice(black_box(&source));
            black_box(&dest);
        })
    });
    group.bench_function(BenchmarkId::new("log_read", "1MiB"), |bench| {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        bench.iter(|| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = (x % end as u64) as i64;
            let bytes = log.read(offset, 1 << 20, end).unwrap().unwrap();
            black_box(bytes.len())
        })
    });
    group.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);

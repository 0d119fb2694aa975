//! Tests of the log: rolling, reading across segments, recovery, retention, DeleteRecords.

use super::*;
use batch::tests::make_batch;

fn config() -> LogConfig {
    LogConfig::for_tests(1024)
}

fn append_n(log: &mut Log, n: usize, ts: i64) {
    for _ in 0..n {
        let mut b = make_batch(0, 5, ts, (-1, -1, -1));
        log.validate(&b).unwrap();
        log.append(&mut b, 0, ts).unwrap();
    }
}

#[test]
fn appends_roll_segments_and_reads_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), config(), true).unwrap();
    append_n(&mut log, 40, 1000);
    assert_eq!(log.log_end_offset(), 200);
    assert!(log.segment_count() > 3);
    let mut offset = 0;
    let mut steps = 0;
    while offset < 200 && steps < 1000 {
        let bytes = log.read(offset, 10_000, i64::MAX).unwrap().unwrap();
        for (_, h) in batch::batches(&bytes) {
            assert_eq!(h.base_offset(), offset);
            offset = h.last_offset() + 1;
        }
        steps += 1;
    }
    assert_eq!(offset, 200);
    assert!(log.read(200, 100, i64::MAX).unwrap().is_none());
    assert!(matches!(
        log.read(201, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn reopen_after_unclean_shutdown_cuts_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), config(), true).unwrap();
    append_n(&mut log, 10, 1000);
    let active = log
        .segments
        .values()
        .next_back()
        .unwrap()
        .log_path()
        .to_path_buf();
    drop(log);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 37]).unwrap();
    let (log, report) = Log::open(dir.path(), config(), false).unwrap();
    assert_eq!(log.log_end_offset(), 50);
    assert_eq!(report.truncated_bytes, 37);
}

#[test]
fn reopen_after_clean_close_scans_no_segment_and_keeps_appending() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let (mut log, report) = Log::open(dir.path(), config(), true).unwrap();
        assert_eq!(report.recovered_segments, 0, "round {round}: {report:?}");
        assert_eq!(log.log_end_offset(), round * 50);
        append_n(&mut log, 10, 1000 + round);
        log.close_indexes().unwrap();
    }
    // The trimmed active index still finds every batch after the reopen.
    let (log, _) = Log::open(dir.path(), config(), true).unwrap();
    for offset in [0, 75, 149] {
        let bytes = log.read(offset, 100, i64::MAX).unwrap().unwrap();
        let (_, h) = batch::batches(&bytes).next().unwrap();
        assert!(
            h.base_offset() <= offset && offset <= h.last_offset(),
            "{offset}"
        );
    }
    // An index left preallocated (no clean close) is not trusted: that segment is rescanned.
    drop(log);
    let (mut log, _) = Log::open(dir.path(), config(), true).unwrap();
    append_n(&mut log, 1, 1000);
    drop(log);
    let (_, report) = Log::open(dir.path(), config(), true).unwrap();
    assert_eq!(report.recovered_segments, 1, "{report:?}");
}

#[test]
fn advancing_log_start_deletes_segments_below_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = Log::open(dir.path(), config(), true).unwrap();
    append_n(&mut log, 40, 1000);
    let before = log.segment_count();
    log.advance_log_start(103).unwrap();
    assert_eq!(log.log_start_offset(), 103);
    assert!(log.segment_count() < before);
    assert!(matches!(
        log.read(102, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(103, 100, i64::MAX).unwrap().is_some());
    assert!(log.advance_log_start(500).is_err());
    log.advance_log_start(200).unwrap();
    drop(log);
    let (log, _) = Log::open(dir.path(), config(), false).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (200, 200));
}

#[test]
fn retention_by_bytes_and_time_moves_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.retention_bytes = 2048;
    let (mut log, _) = Log::open(dir.path(), cfg, true).unwrap();
    append_n(&mut log, 40, 1000);
    let deleted = log.apply_retention(2000, i64::MAX).unwrap();
    assert!(deleted > 0);
    assert!(log.size_bytes() <= 2048 + 1024);
    assert!(log.log_start_offset() > 0);
    let mut cfg = log.config().clone();
    cfg.retention_bytes = -1;
    cfg.retention_ms = 10;
    log.set_config(cfg);
    log.apply_retention(10_000, i64::MAX).unwrap();
    assert_eq!(log.log_start_offset(), 200);
    assert_eq!(log.log_end_offset(), 200);
    append_n(&mut log, 1, 20_000);
    assert_eq!(log.log_end_offset(), 205);
}

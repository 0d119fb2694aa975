//! Tests of compaction passes: what is kept, crashes around the swap, transactions, and the
//! conditions that make a pass due.

mod compaction {
    use super::super::*;
    use crate::log::{CompactionConfig, Log, LogConfig};
    use kafka_protocol::records::{Compression, Record, TimestampType};

    fn config() -> LogConfig {
        LogConfig::compacted_for_tests(
            2048,
            CompactionConfig {
                delete_retention_ms: 1000,
                min_compaction_lag_ms: 0,
                max_compaction_lag_ms: i64::MAX,
                min_cleanable_dirty_ratio: 0.0,
            },
        )
    }

    /// One batch of (key, value) records at `ts`, with `compression`.
    fn batch(records: &[(&str, Option<&str>)], ts: i64, compression: Compression) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // One batch: the encoder splits where offset - sequence changes.
                sequence: i as i32 - 1,
                timestamp: ts,
                key: Some(Bytes::copy_from_slice(k.as_bytes())),
                value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    fn append(log: &mut Log, b: Vec<u8>, now: i64) {
        let mut b = b;
        log.validate(&b).unwrap();
        log.append(&mut b, 0, now).unwrap();
    }

    /// Every (offset, key, value) readable from the log start, in order.
    fn contents(log: &Log) -> Vec<(i64, String, Option<String>)> {
        let mut out = Vec::new();
        for mut b in log.batch_bytes_from(log.log_start_offset()) {
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut b).unwrap();
            for r in set.records {
                let s = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
                out.push((r.offset, s(r.key.unwrap()), r.value.map(s)));
            }
        }
        out
    }

    /// 300 records over keys k0..k9, k3 deleted long ago and k4 deleted just now, in small
    /// segments, the last batch alone in the active segment.
    fn filled(dir: &Path, now: i64) -> Log {
        let (mut log, _) = Log::open(dir, config(), true).unwrap();
        for round in 0..30 {
            let values: Vec<String> = (0..10).map(|k| format!("v{round}-{k}")).collect();
            let records: Vec<(String, Option<&str>)> = (0..10)
                .map(|k| (format!("k{k}"), Some(values[k].as_str())))
                .collect();
            let refs: Vec<(&str, Option<&str>)> =
                records.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let codec = if round % 2 == 1 {
                Compression::Gzip
            } else {
                Compression::None
            };
            append(&mut log, batch(&refs, now - 10_000, codec), now);
        }
        append(
            &mut log,
            batch(&[("k3", None)], now - 5_000, Compression::None),
            now,
        );
        append(
            &mut log,
            batch(&[("k4", None)], now, Compression::None),
            now,
        );
        let mut filler = vec![("pad", Some("x")); 60];
        filler.truncate(60);
        append(&mut log, batch(&filler, now, Compression::None), now);
        log
    }

    fn expect_compacted(log: &Log) {
        let got = contents(log);
        let (kept, active): (Vec<_>, Vec<_>) = got.iter().partition(|(o, _, _)| *o < 302);
        let keys: Vec<&str> = kept.iter().map(|(_, k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec!["k0", "k1", "k2", "k5", "k6", "k7", "k8", "k9", "k4"]
        );
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0), "offset order");
        for (_, k, v) in &kept {
            match k.as_str() {
                "k4" => assert_eq!(v, &None, "a recent tombstone stays"),
                k => assert_eq!(v.as_deref(), Some(format!("v29-{}", &k[1..]).as_str())),
            }
        }
        assert_eq!(active.len(), 60, "the active segment is never cleaned");
        let first = log.batch_bytes_from(log.log_start_offset()).next().unwrap();
        let h = BatchHeader::parse(&first).unwrap();
        assert_eq!(h.compression(), 1, "a partly kept gzip batch stays gzip");
        assert_eq!(
            h.records_count(),
            8,
            "k3 and k4 of the last round were superseded"
        );
        assert_eq!(log.log_end_offset(), 362);
    }

    #[test]
    fn keeps_the_latest_value_per_key_and_drops_old_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::model::now_ms();
        let mut log = filled(dir.path(), now);
        let plan = log.cleaning_plan(now, i64::MAX).expect("dirty enough");
        let cleaned = build(&plan).unwrap();
        assert!(cleaned.records_after < cleaned.records_before);
        assert!(log.install_cleaned(&cleaned).unwrap());
        expect_compacted(&log);
        // A second pass finds nothing new to do.
        assert!(log.cleaning_plan(now, i64::MAX).is_none());
        drop(log);
        let (log, _) = Log::open(dir.path(), config(), false).unwrap();
        expect_compacted(&log);
    }

    #[test]
    fn a_crash_before_the_decision_keeps_the_old_log_and_after_it_finishes_the_swap() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::model::now_ms();
        let log = filled(dir.path(), now);
        let before = contents(&log);
        let plan = log.cleaning_plan(now, i64::MAX).unwrap();
        let cleaned = build(&plan).unwrap();
        drop(log);
        // Crash after the cleaned files were written, before the intent.
        let (log, report) = Log::open(dir.path(), config(), false).unwrap();
        assert_eq!(contents(&log), before);
        assert!(report
            .problems
            .iter()
            .any(|p| p.contains("unfinished compaction")));
        let plan = log.cleaning_plan(now, i64::MAX).unwrap();
        let cleaned_again = build(&plan).unwrap();
        assert_eq!(cleaned_again.groups, cleaned.groups);
        drop(log);
        // Crash right after the decision: the next open carries the swap out.
        write_intent(dir.path(), &cleaned_again.groups).unwrap();
        let (log, report) = Log::open(dir.path(), config(), false).unwrap();
        assert!(report
            .problems
            .iter()
            .any(|p| p.contains("finished a compaction swap")));
        expect_compacted(&log);
    }
}

mod transactions {
    use super::super::*;
    use crate::log::batch::{marker_batch, Marker};
    use crate::log::{CompactionConfig, Log, LogConfig};
    use kafka_protocol::records::{Compression, Record, TimestampType};

    fn config(min_lag: i64, max_lag: i64, ratio: f64) -> LogConfig {
        LogConfig::compacted_for_tests(
            1024,
            CompactionConfig {
                delete_retention_ms: 1000,
                min_compaction_lag_ms: min_lag,
                max_compaction_lag_ms: max_lag,
                min_cleanable_dirty_ratio: ratio,
            },
        )
    }

    fn one(key: &str, value: &str, ts: i64, producer: Option<(i64, i16)>) -> Vec<u8> {
        let (pid, epoch) = producer.unwrap_or((-1, -1));
        let r = Record {
            transactional: producer.is_some(),
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: if producer.is_some() { 0 } else { -1 },
            timestamp: ts,
            key: Some(Bytes::copy_from_slice(key.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Default::default(),
            delete_horizon: false,
        };
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &[r],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    fn append(log: &mut Log, mut b: Vec<u8>, now: i64) -> i64 {
        log.validate(&b).unwrap();
        log.append(&mut b, 0, now).unwrap().base_offset
    }

    /// Pushes the active segment past `segment_bytes` so what came before is sealed.
    fn seal(log: &mut Log, now: i64) {
        let pad = "p".repeat(1100);
        append(log, one("pad", &pad, now, None), now);
        append(log, one("pad", "end", now, None), now);
    }

    #[test]
    fn aborted_data_is_dropped_and_cannot_hide_a_committed_value() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::model::now_ms();
        let (mut log, _) = Log::open(dir.path(), config(0, i64::MAX, 0.0), true).unwrap();
        append(&mut log, one("k", "committed", now, None), now);
        let first = append(&mut log, one("k", "aborted", now, Some((7, 0))), now);
        let mut marker = marker_batch(7, 0, Marker::Abort, 0, now);
        let marker_offset = log.append(&mut marker, 0, now).unwrap().base_offset;
        log.add_aborted_txn(AbortedTxn {
            producer_id: 7,
            first_offset: first,
            last_offset: marker_offset,
            last_stable_offset: marker_offset + 1,
        })
        .unwrap();
        seal(&mut log, now);
        let plan = log.cleaning_plan(now, i64::MAX).unwrap();
        let cleaned = build(&plan).unwrap();
        assert!(log.install_cleaned(&cleaned).unwrap());
        let mut seen = Vec::new();
        for b in log.batch_bytes_from(0) {
            let h = BatchHeader::parse(&b).unwrap();
            if h.is_control() {
                seen.push((h.base_offset(), "marker".to_string()));
                continue;
            }
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut b.clone()).unwrap();
            for r in set.records {
                seen.push((
                    r.offset,
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                ));
            }
        }
        assert_eq!(seen[0], (0, "committed".to_string()));
        assert_eq!(seen[1], (marker_offset, "marker".to_string()));
        assert!(!seen.iter().any(|(_, v)| v == "aborted"));
        assert_eq!(
            log.aborted_txns(0, marker_offset + 1).len(),
            1,
            "index entry kept"
        );
    }

    #[test]
    fn compaction_lags_and_the_dirty_ratio_decide_when_a_pass_runs() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::model::now_ms();
        // Records newer than min.compaction.lag.ms are not cleanable yet.
        let (mut log, _) = Log::open(dir.path(), config(60_000, i64::MAX, 0.0), true).unwrap();
        append(&mut log, one("k", "a", now, None), now);
        append(&mut log, one("k", "b", now, None), now);
        seal(&mut log, now);
        assert!(log.cleaning_plan(now, i64::MAX).is_none());
        assert!(log.cleaning_plan(now + 61_000, i64::MAX).is_some());
        // A dirty share below min.cleanable.dirty.ratio waits, unless max.compaction.lag.ms
        // has passed for the oldest dirty record.
        log.set_config(config(0, 3_600_000, 0.99));
        log.tombstone_expiry = None;
        assert!(
            log.cleaning_plan(now, i64::MAX).is_some(),
            "everything is dirty at first"
        );
        let plan = log.cleaning_plan(now, i64::MAX).unwrap();
        let cleaned = build(&plan).unwrap();
        log.install_cleaned(&cleaned).unwrap();
        append(&mut log, one("k", "c", now, None), now);
        seal(&mut log, now);
        assert!(
            log.cleaning_plan(now, i64::MAX).is_none(),
            "a small dirty share waits"
        );
        assert!(
            log.cleaning_plan(now + 3_700_000, i64::MAX).is_some(),
            "max.compaction.lag.ms forces a pass"
        );
        // Undecided transactions (the last stable offset) bound what may be cleaned.
        assert!(log.cleaning_plan(now + 3_700_000, 0).is_none());
    }
}

//! The hardened record reader against well-formed batches of every codec and against forged
//! counts, lengths and payloads.

use super::*;
use crate::log::batch::{tests::make_batch, write_varint};
use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const CRC_START: usize = 21;

fn produced(max_record_bytes: u64, max_uncompressed_bytes: u64) -> ProducedChecks {
    ProducedChecks {
        max_record_bytes,
        max_uncompressed_bytes,
        require_keys: false,
    }
}

fn encoded(compression: Compression, n: usize) -> Vec<u8> {
    let records: Vec<KRecord> = (0..n)
        .map(|i| {
            let mut headers = kafka_protocol::indexmap::IndexMap::new();
            headers.insert(
                kafka_protocol::protocol::StrBytes::from_static_str("h"),
                Some(Bytes::from(format!("hv{i}"))),
            );
            KRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: 1_000 + i as i64,
                key: (i % 3 != 0).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; 100 + i])),
                headers,
            }
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

/// A batch header around `payload`, claiming `count` records and `codec`, with a valid CRC.
fn frame(payload: &[u8], count: i32, codec: i16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(0i64.to_be_bytes());
    b.extend(((HEADER_LEN - 12 + payload.len()) as i32).to_be_bytes());
    b.extend(0i32.to_be_bytes());
    b.push(2);
    b.extend(0u32.to_be_bytes());
    b.extend(codec.to_be_bytes());
    b.extend((count - 1).to_be_bytes());
    b.extend(0i64.to_be_bytes());
    b.extend(0i64.to_be_bytes());
    b.extend((-1i64).to_be_bytes());
    b.extend((-1i16).to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.extend(count.to_be_bytes());
    b.extend(payload);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// One record's bytes: attributes, deltas, key, value and `headers` as given (raw count).
fn record(offset_delta: i64, key: Option<&[u8]>, header_count: i64, tail: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    write_varint(&mut body, 0);
    write_varint(&mut body, offset_delta);
    match key {
        Some(k) => {
            write_varint(&mut body, k.len() as i64);
            body.extend(k);
        }
        None => write_varint(&mut body, -1),
    }
    write_varint(&mut body, 1);
    body.push(b'x');
    write_varint(&mut body, header_count);
    body.extend(tail);
    let mut out = Vec::new();
    write_varint(&mut out, body.len() as i64);
    out.extend(body);
    out
}

#[test]
fn every_codec_reads_back_what_was_encoded() {
    for c in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let b = encoded(c, 50);
        validate_produced(&b, &produced(1 << 20, MAX_UNCOMPRESSED_BATCH_BYTES)).unwrap();
        let got = decode_for_encoder(&b).unwrap();
        assert_eq!(got.len(), 50, "{c:?}");
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.timestamp, 1_000 + i as i64);
            assert_eq!(r.key, (i % 3 != 0).then(|| Bytes::from(format!("k{i}"))));
            assert_eq!(r.value.as_ref().unwrap().len(), 100 + i);
            assert_eq!(r.headers.len(), 1);
            assert_eq!(r.sequence, i as i32);
        }
        let compacted = ProducedChecks {
            require_keys: true,
            ..produced(1 << 20, MAX_UNCOMPRESSED_BATCH_BYTES)
        };
        assert!(
            matches!(validate_produced(&b, &compacted), Err(BatchError::Invalid(m)) if m.contains("without key")),
            "{c:?}"
        );
    }
}

#[test]
fn a_header_count_near_2_pow_31_is_refused_without_allocating() {
    let b = frame(&record(0, Some(b"k"), i32::MAX as i64 - 1, &[]), 1, 0);
    let e = validate_produced(&b, &produced(1 << 20, 1 << 20)).unwrap_err();
    assert!(
        matches!(e, BatchError::Invalid(ref m) if m.contains("header count")),
        "{e}"
    );
    assert!(decode_for_encoder(&b).is_err());
}

#[test]
fn a_gzip_record_count_near_2_pow_31_is_refused() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&record(0, Some(b"k"), 0, &[])).unwrap();
    let b = frame(&gz.finish().unwrap(), i32::MAX, 1);
    let e = validate_produced(&b, &produced(1 << 20, 1 << 20)).unwrap_err();
    assert!(
        matches!(e, BatchError::Invalid(ref m) if m.contains("records count")),
        "{e}"
    );
}

#[test]
fn decompression_stops_at_the_limit() {
    use std::io::Write;
    // 8 MiB of records that compress to a few KiB, against a 1 MiB budget.
    let zeros = vec![0u8; 64 << 10];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let n = 128;
    for i in 0..n {
        gz.write_all(&record(i as i64, Some(&zeros), 0, &[]))
            .unwrap();
    }
    let payload = gz.finish().unwrap();
    assert!(payload.len() < 64 << 10, "{} bytes", payload.len());
    let b = frame(&payload, n, 1);
    let e = validate_produced(&b, &produced(1 << 20, 1 << 20)).unwrap_err();
    assert!(
        matches!(e, BatchError::UncompressedTooLarge { max } if max == 1 << 20),
        "{e}"
    );
}

#[test]
fn a_payload_flagged_gzip_that_is_not_gzip_is_corrupt() {
    let b = frame(&record(0, Some(b"k"), 0, &[]), 1, 1);
    let e = validate_produced(&b, &produced(1 << 20, 1 << 20)).unwrap_err();
    assert!(matches!(e, BatchError::Corrupt(_)), "{e}");
    for codec in [2, 3, 4] {
        let b = frame(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8], 1, codec);
        let e = validate_produced(&b, &produced(1 << 20, 1 << 20)).unwrap_err();
        assert!(
            matches!(e, BatchError::Corrupt(_) | BatchError::Invalid(_)),
            "codec {codec}: {e}"
        );
    }
}

#[test]
fn a_snappy_block_that_claims_more_than_it_can_hold_is_refused() {
    // Raw snappy whose length preamble claims 2^31 bytes from 6 bytes of input.
    let mut raw = Vec::new();
    let mut v: u64 = 1 << 31;
    while v >= 0x80 {
        raw.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    raw.push(v as u8);
    raw.extend([0, 0]);
    let b = frame(&raw, 1, 2);
    let e = validate_produced(&b, &produced(1 << 20, MAX_UNCOMPRESSED_BATCH_BYTES)).unwrap_err();
    assert!(matches!(e, BatchError::Corrupt(_)), "{e}");
}

#[test]
fn framing_that_disagrees_with_the_bytes_is_invalid() {
    let checks = produced(1 << 20, 1 << 20);
    // Offsets out of order.
    let mut payload = record(0, Some(b"a"), 0, &[]);
    payload.extend(record(5, Some(b"b"), 0, &[]));
    let e = validate_produced(&frame(&payload, 2, 0), &checks).unwrap_err();
    assert!(
        matches!(e, BatchError::Invalid(ref m) if m.contains("offset delta")),
        "{e}"
    );
    // A record longer than its fields.
    let e = validate_produced(&frame(&record(0, Some(b"a"), 0, &[9, 9]), 1, 0), &checks);
    assert!(matches!(e, Err(BatchError::Invalid(ref m)) if m.contains("disagrees")));
    // A key length that runs past the record.
    let mut r = record(0, Some(b"a"), 0, &[]);
    let key_len_at = 4; // length, attributes, timestamp delta, offset delta
    r[key_len_at] = 100;
    let e = validate_produced(&frame(&r, 1, 0), &checks).unwrap_err();
    assert!(
        matches!(e, BatchError::Invalid(ref m) if m.contains("key length")),
        "{e}"
    );
    // A record bigger than the record limit.
    let big = record(0, Some(&[b'k'; 2000]), 0, &[]);
    let e = validate_produced(&frame(&big, 1, 0), &produced(1000, 1 << 20)).unwrap_err();
    assert!(matches!(e, BatchError::RecordTooLarge { .. }), "{e}");
    // Fewer records than counted.
    let e = validate_produced(&frame(&record(0, None, 0, &[]), 2, 0), &checks).unwrap_err();
    assert!(
        matches!(e, BatchError::Invalid(ref m) if m.contains("records count")),
        "{e}"
    );
}

#[test]
fn skipping_mode_keeps_presence_only() {
    let b = make_batch(0, 3, 1000, (-1, -1, -1));
    let mut seen = Vec::new();
    for_each(&b, Limits::stored(Fields::Skip), |r| {
        seen.push((r.offset_delta, r.key.is_some(), r.value.map(|v| v.len())));
        Ok(true)
    })
    .unwrap();
    assert_eq!(
        seen,
        [
            (0, false, Some(0)),
            (1, false, Some(0)),
            (2, false, Some(0))
        ]
    );
    let kept = decode_for_encoder(&b).unwrap();
    assert_eq!(kept[2].value.as_deref(), Some(&b"value-2"[..]));
}

#[test]
fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
    let zstd_with_window = |log: u32| {
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.window_log(log).unwrap();
        std::io::Write::write_all(&mut e, &record(0, Some(b"k"), 0, &[])).unwrap();
        e.finish().unwrap()
    };
    let ok = frame(&zstd_with_window(ZSTD_WINDOW_LOG_MAX), 1, 4);
    validate_produced(&ok, &produced(1 << 20, 1 << 20)).unwrap();
    // A 64 MiB window (within zstd's own default limit), which the decoder would allocate
    // before decoding a byte.
    let huge = frame(&zstd_with_window(26), 1, 4);
    let e = validate_produced(&huge, &produced(1 << 20, 1 << 20)).unwrap_err();
    assert!(matches!(e, BatchError::Corrupt(_)), "{e}");
}

//! The v2 record batch header: the only part of a record batch the log reads or writes.
//!
//! Layout (big-endian), offsets in bytes from the start of the batch:
//! `base_offset:i64@0 batch_length:i32@8 partition_leader_epoch:i32@12 magic:i8@16 crc:u32@17
//!  attributes:i16@21 last_offset_delta:i32@23 base_timestamp:i64@27 max_timestamp:i64@35
//!  producer_id:i64@43 producer_epoch:i16@51 base_sequence:i32@53 records_count:i32@57`,
//! then the records. The CRC-32C covers everything from `attributes` to the end, so the base
//! offset and the leader epoch can be stamped without recomputing it.

use thiserror::Error;

/// Bytes before `batch_length`'s coverage starts (base offset + length field).
pub const LOG_OVERHEAD: usize = 12;
/// Size of the full v2 batch header.
pub const HEADER_LEN: usize = 61;
const CRC_START: usize = 21;
const ATTR_TIMESTAMP_TYPE: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;
pub const NO_PRODUCER_ID: i64 = -1;

/// Why a batch was refused. Mapped to Kafka error codes in `protocol::errors`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch is truncated: {0}")]
    Truncated(&'static str),
    #[error("record batch has magic {0}; only magic 2 is accepted")]
    UnsupportedMagic(i8),
    #[error("record batch CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record batch is invalid: {0}")]
    Invalid(String),
    #[error("record batch is corrupt: {0}")]
    Corrupt(String),
    #[error("record of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: u64, max: u64 },
    #[error("record batch decompresses to more than {max} bytes")]
    UncompressedTooLarge { max: u64 },
}

/// A read-only view of a batch header over a byte slice that holds at least the header.
#[derive(Clone, Copy)]
pub struct BatchHeader<'a>(&'a [u8]);

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl<'a> BatchHeader<'a> {
    /// Views the header at the start of `bytes`, or `None` when fewer than a header's bytes remain.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        (bytes.len() >= HEADER_LEN).then_some(Self(bytes))
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.0, 0)
    }
    /// Total size of the batch on disk, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length().max(0) as usize
    }
    pub fn batch_length(&self) -> i32 {
        be_i32(self.0, 8)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.0, 12)
    }
    pub fn magic(&self) -> i8 {
        self.0[16] as i8
    }
    pub fn crc(&self) -> u32 {
        u32::from_be_bytes(self.0[17..21].try_into().expect("4 bytes"))
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.0, 21)
    }
    pub fn compression(&self) -> i16 {
        self.attributes() & 0x7
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & ATTR_TIMESTAMP_TYPE != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.0, 23)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + self.last_offset_delta() as i64
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.0, 27)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.0, 35)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.0, 43)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.0, 51)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.0, 53)
    }
    pub fn records_count(&self) -> i32 {
        be_i32(self.0, 57)
    }
    /// The sequence of the batch's last record, wrapping at `i32::MAX` as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence() < 0 {
            return -1;
        }
        let last = self.base_sequence() as i64 + self.last_offset_delta() as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
}

/// Walks the batches in `bytes`, yielding `(position, header)` for each complete batch and stopping
/// at the first incomplete one.
pub fn batches(bytes: &[u8]) -> impl Iterator<Item = (usize, BatchHeader<'_>)> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let header = BatchHeader::parse(&bytes[pos..])?;
        let len = header.total_len();
        if header.batch_length() < (HEADER_LEN - LOG_OVERHEAD) as i32 || pos + len > bytes.len() {
            return None;
        }
        let at = pos;
        pos += len;
        Some((at, header))
    })
}

/// The length of the complete batches at the start of `bytes` (a fetch may end mid-batch).
pub fn whole_batches_len(bytes: &[u8]) -> usize {
    batches(bytes)
        .last()
        .map_or(0, |(at, h)| at + h.total_len())
}

/// Whether a complete batch's stored CRC-32C matches its bytes.
pub fn crc_matches(batch: &[u8]) -> bool {
    batch.len() >= HEADER_LEN && crc32c::crc32c(&batch[CRC_START..]) == be_u32(batch, 17)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Checks one complete batch as a producer sent it: its header (length, magic, CRC-32C, record
/// count against the offset span) and every record, through the hardened reader, for any codec.
pub fn validate(batch: &[u8]) -> Result<(), BatchError> {
    super::records::validate_produced(
        batch,
        &super::records::ProducedChecks {
            max_record_bytes: u64::MAX,
            max_uncompressed_bytes: super::records::MAX_UNCOMPRESSED_BATCH_BYTES,
            require_keys: false,
        },
    )
}

/// Checks one batch read back from a segment: its header as `validate` does, except that a
/// compacted batch may hold fewer records than its offset span; an uncompressed batch's records
/// are walked and counted (compressed ones are read, bounded, only when something needs them).
pub fn validate_stored(batch: &[u8]) -> Result<(), BatchError> {
    let header = check_header(batch, true)?;
    if header.compression() == 0 {
        let limits = super::records::Limits::stored(super::records::Fields::Skip);
        let walked = super::records::for_each(batch, limits, |_| Ok(true))?;
        super::records::require_count(&header, walked)?;
    }
    Ok(())
}

/// The checks of a batch header: magic 2, a length that matches the bytes, the CRC-32C, a
/// positive record count that matches the offset span (or, `compacted`, fits within it) and a
/// known codec.
pub(crate) fn check_header(batch: &[u8], compacted: bool) -> Result<BatchHeader<'_>, BatchError> {
    let header = BatchHeader::parse(batch).ok_or(BatchError::Truncated("shorter than a header"))?;
    if header.magic() != 2 {
        return Err(BatchError::UnsupportedMagic(header.magic()));
    }
    if header.batch_length() < (HEADER_LEN - LOG_OVERHEAD) as i32
        || header.total_len() != batch.len()
    {
        return Err(BatchError::Truncated(
            "batch length disagrees with the bytes given",
        ));
    }
    let computed = crc32c::crc32c(&batch[CRC_START..]);
    if computed != header.crc() {
        return Err(BatchError::CrcMismatch {
            stored: header.crc(),
            computed,
        });
    }
    let count = header.records_count();
    let span = header.last_offset_delta() as i64 + 1;
    let fits = if compacted {
        count as i64 <= span
    } else {
        count as i64 == span
    };
    if count <= 0 || !fits {
        return Err(BatchError::Invalid(format!(
            "records count {count} does not match last offset delta {}",
            header.last_offset_delta()
        )));
    }
    if header.compression() > 4 {
        return Err(BatchError::Invalid(format!(
            "unknown compression codec {}",
            header.compression()
        )));
    }
    Ok(header)
}

/// The outcome a transaction marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Abort,
    Commit,
}

/// Builds a control batch holding one transaction marker (Kafka's end-transaction marker:
/// key `version:i16=0 type:i16` (0 abort, 1 commit), value `version:i16=0 coordinator_epoch:i32`),
/// with the producer's id and epoch and no sequence. The base offset is stamped at append.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    coordinator_epoch: i32,
    now_ms: i64,
) -> Vec<u8> {
    let kind: i16 = match marker {
        Marker::Abort => 0,
        Marker::Commit => 1,
    };
    let mut body = vec![0u8]; // record attributes
    write_varint(&mut body, 0); // timestamp delta
    write_varint(&mut body, 0); // offset delta
    write_varint(&mut body, 4);
    body.extend(0i16.to_be_bytes());
    body.extend(kind.to_be_bytes());
    write_varint(&mut body, 6);
    body.extend(0i16.to_be_bytes());
    body.extend(coordinator_epoch.to_be_bytes());
    write_varint(&mut body, 0); // no headers
    let mut record = Vec::with_capacity(body.len() + 2);
    write_varint(&mut record, body.len() as i64);
    record.extend(body);
    let mut b = Vec::with_capacity(HEADER_LEN + record.len());
    b.extend(0i64.to_be_bytes());
    b.extend(((HEADER_LEN - LOG_OVERHEAD + record.len()) as i32).to_be_bytes());
    b.extend(0i32.to_be_bytes());
    b.push(2);
    b.extend(0u32.to_be_bytes());
    b.extend((ATTR_CONTROL | ATTR_TRANSACTIONAL).to_be_bytes());
    b.extend(0i32.to_be_bytes()); // last offset delta
    b.extend(now_ms.to_be_bytes());
    b.extend(now_ms.to_be_bytes());
    b.extend(producer_id.to_be_bytes());
    b.extend(producer_epoch.to_be_bytes());
    b.extend((-1i32).to_be_bytes());
    b.extend(1i32.to_be_bytes());
    b.extend(record);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The marker a control batch holds and the coordinator epoch written with it (`None` for
/// other control records or damaged ones).
pub fn marker_of(batch: &[u8]) -> Option<(Marker, i32)> {
    let h = BatchHeader::parse(batch)?;
    if !h.is_control() || h.compression() != 0 {
        return None;
    }
    let limits = super::records::Limits::stored(super::records::Fields::Keep);
    let mut first = None;
    super::records::for_each(batch, limits, |r| {
        first = Some(r);
        Ok(false)
    })
    .ok()?;
    let record = first?;
    let key = record.key.filter(|k| k.len() >= 4)?;
    let marker = match i16::from_be_bytes([key[2], key[3]]) {
        0 => Marker::Abort,
        1 => Marker::Commit,
        _ => return None,
    };
    let value = record.value.filter(|v| v.len() >= 6)?;
    let coordinator_epoch = i32::from_be_bytes(value[2..6].try_into().ok()?);
    Some((marker, coordinator_epoch))
}

/// Appends `v` as a zig-zag varint.
pub fn write_varint(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8 & 0x7f) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// Writes the base offset and partition leader epoch into a batch's header (not CRC-covered).
pub fn stamp_offset_and_epoch(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Marks a batch as LogAppendTime with `now_ms` as its max timestamp, and recomputes the CRC.
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, 21) | ATTR_TIMESTAMP_TYPE;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a valid uncompressed batch of `count` records with empty keys and the given values.
    pub fn make_batch(
        base_offset: i64,
        count: i32,
        timestamp: i64,
        producer: (i64, i16, i32),
    ) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..count {
            let mut body = vec![0u8]; // attributes
            body.push(0); // timestamp delta 0
            body.extend(zigzag(i as i64)); // offset delta
            body.extend(zigzag(-1)); // null key
            let value = format!("value-{i}");
            body.extend(zigzag(value.len() as i64));
            body.extend(value.as_bytes());
            body.extend(zigzag(0)); // no headers
            records.extend(zigzag(body.len() as i64));
            records.extend(body);
        }
        let mut b = Vec::new();
        b.extend(base_offset.to_be_bytes());
        b.extend(((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
        b.extend(0i32.to_be_bytes());
        b.push(2);
        b.extend(0u32.to_be_bytes());
        b.extend(0i16.to_be_bytes());
        b.extend((count - 1).to_be_bytes());
        b.extend(timestamp.to_be_bytes());
        b.extend(timestamp.to_be_bytes());
        b.extend(producer.0.to_be_bytes());
        b.extend(producer.1.to_be_bytes());
        b.extend(producer.2.to_be_bytes());
        b.extend(count.to_be_bytes());
        b.extend(records);
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn zigzag(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint(&mut out, v);
        out
    }

    #[test]
    fn marker_batches_validate_and_read_back() {
        for m in [Marker::Abort, Marker::Commit] {
            let b = marker_batch(42, 3, m, 5, 1000);
            validate(&b).unwrap();
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id(), h.producer_epoch()), (42, 3));
            assert_eq!(marker_of(&b), Some((m, 5)));
        }
        assert_eq!(marker_of(&make_batch(0, 1, 0, (1, 0, 0))), None);
    }

    #[test]
    fn valid_batch_passes_and_reads_back() {
        let b = make_batch(0, 3, 1000, (7, 1, 10));
        validate(&b).unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(
            (h.records_count(), h.last_offset_delta(), h.producer_id()),
            (3, 2, 7)
        );
        assert_eq!((h.base_sequence(), h.last_sequence()), (10, 12));
    }

    #[test]
    fn flipped_bit_is_a_crc_mismatch() {
        let mut b = make_batch(0, 3, 1000, (-1, -1, -1));
        let last = b.len() - 1;
        b[last] ^= 1;
        assert!(matches!(validate(&b), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn count_that_disagrees_with_records_is_invalid() {
        let mut b = make_batch(0, 3, 1000, (-1, -1, -1));
        b[57..61].copy_from_slice(&2i32.to_be_bytes());
        b[23..27].copy_from_slice(&1i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate(&b), Err(BatchError::Invalid(_))));
    }

    #[test]
    fn stamping_offset_keeps_crc_valid() {
        let mut b = make_batch(0, 2, 1000, (-1, -1, -1));
        stamp_offset_and_epoch(&mut b, 42, 3);
        validate(&b).unwrap();
        stamp_log_append_time(&mut b, 5555);
        validate(&b).unwrap();
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(
            (
                h.base_offset(),
                h.partition_leader_epoch(),
                h.max_timestamp()
            ),
            (42, 3, 5555)
        );
        assert!(h.is_log_append_time());
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let b = make_batch(0, 3, 0, (1, 0, i32::MAX - 1));
        assert_eq!(BatchHeader::parse(&b).unwrap().last_sequence(), 0);
    }
}

//! The records inside a v2 batch, read by spool's own hardened reader.
//!
//! Everything the log, the cleaner, ListOffsets and the validator of produced batches learn
//! about single records comes through here. Every count and length is checked against the bytes
//! that remain before anything is allocated or skipped, and compressed records are decompressed
//! as a stream through a bounded reader: a batch never yields more than
//! [`MAX_UNCOMPRESSED_BATCH_BYTES`], a record never more than the caller's record limit, and in
//! the skipping mode (validation, timestamp look-ups) memory stays at one read buffer whatever
//! the batch claims.
//!
//! Record layout (varints are zig-zag): `length:varint attributes:i8 timestamp_delta:varlong
//! offset_delta:varint key_length:varint key value_length:varint value header_count:varint
//! (header_key_length:varint header_key header_value_length:varint header_value)*`.

use super::batch::{BatchError, BatchHeader, HEADER_LEN};
use std::io::{self, BufRead, BufReader, Read};

/// Most uncompressed bytes one batch may hold: a spool limit (Kafka bounds only the compressed
/// size); past it a batch is refused with MESSAGE_TOO_LARGE, however well it compresses.
pub const MAX_UNCOMPRESSED_BATCH_BYTES: u64 = 256 << 20;
/// Smallest possible record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, one byte each.
const MIN_RECORD_BYTES: u64 = 7;
/// Read buffer of the streaming decompressors.
const STREAM_BUFFER: usize = 32 * 1024;

/// One record. In the skipping mode the key, value and header bytes are not kept: `key` and
/// `value` are `Some(empty)` when present, and `headers` holds empty names and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub attributes: i8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Record {
    /// The record's offset, from its batch's base offset.
    pub fn offset(&self, batch: &BatchHeader<'_>) -> i64 {
        batch.base_offset() + self.offset_delta as i64
    }
    /// The record's timestamp, from its batch's base timestamp.
    pub fn timestamp(&self, batch: &BatchHeader<'_>) -> i64 {
        batch.base_timestamp().wrapping_add(self.timestamp_delta)
    }
}

/// Whether the reader keeps field bytes or only checks and skips them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fields {
    Keep,
    Skip,
}

/// The limits applied while reading one batch's records.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest single record, its length prefix excluded.
    pub max_record_bytes: u64,
    /// Most bytes a compressed batch may decompress to.
    pub max_uncompressed_bytes: u64,
    pub fields: Fields,
}

impl Limits {
    /// The limits for records already in a log (validated when they were appended, or written
    /// by an older spool): no record limit beyond the batch's.
    pub fn stored(fields: Fields) -> Self {
        Limits {
            max_record_bytes: u64::MAX,
            max_uncompressed_bytes: MAX_UNCOMPRESSED_BATCH_BYTES,
            fields,
        }
    }
}

/// Largest zstd window accepted, as a power of two (8 MiB).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Walks the records of one complete batch (its header already checked), calling `visit` for
/// each in order until it returns `false`. Refuses a record whose framing disagrees with its
/// bytes, a batch whose compressed payload does not decompress, and one that would decompress
/// past the limits. Returns the number of records read.
pub fn for_each(
    batch: &[u8],
    limits: Limits,
    mut visit: impl FnMut(Record) -> Result<bool, BatchError>,
) -> Result<usize, BatchError> {
    let header = BatchHeader::parse(batch).ok_or(BatchError::Truncated("shorter than a header"))?;
    let payload = batch
        .get(HEADER_LEN..header.total_len())
        .ok_or(BatchError::Truncated(
            "batch length runs past the bytes given",
        ))?;
    let count = header.records_count();
    let most = limits.max_uncompressed_bytes;
    match header.compression() {
        0 => walk(
            Input::new(payload, payload.len() as u64),
            count,
            limits,
            &mut visit,
        ),
        1 => {
            let gz = flate2::bufread::MultiGzDecoder::new(payload);
            walk(Input::stream(gz, most), count, limits, &mut visit)
        }
        2 => walk(
            Input::inflated(SnappyReader::new(payload, most), most),
            count,
            limits,
            &mut visit,
        ),
        3 => {
            let lz4 = lz4::Decoder::new(payload).map_err(corrupt("lz4"))?;
            walk(Input::stream(lz4, most), count, limits, &mut visit)
        }
        4 => {
            let mut zstd =
                zstd::stream::read::Decoder::with_buffer(payload).map_err(corrupt("zstd"))?;
            // A frame may ask for a window of up to 2 GiB, allocated before a byte is decoded;
            // 8 MiB is what the zstd format asks every decoder to support, and more than any
            // producer's level uses for a batch.
            zstd.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(corrupt("zstd"))?;
            walk(Input::stream(zstd, most), count, limits, &mut visit)
        }
        c => Err(BatchError::Invalid(format!(
            "unknown compression codec {c}"
        ))),
    }
}

/// What a produced batch must satisfy beyond its header.
#[derive(Debug, Clone, Copy)]
pub struct ProducedChecks {
    /// The topic's `max.message.bytes`, applied to each uncompressed record as well.
    pub max_record_bytes: u64,
    /// Most bytes a compressed batch may decompress to ([`MAX_UNCOMPRESSED_BATCH_BYTES`]).
    pub max_uncompressed_bytes: u64,
    /// A compacted topic needs a key on every record.
    pub require_keys: bool,
}

/// Validates a batch as a producer sent it, as Kafka's LogValidator does before an append: the
/// header ([`super::batch::check_header`]), then every record, decompressed through the bounded
/// reader: well framed, offset deltas 0, 1, 2, ... and exactly `records_count` of them, each
/// within the record limit, and keyed where the topic is compacted.
pub fn validate_produced(batch: &[u8], checks: &ProducedChecks) -> Result<(), BatchError> {
    let header = super::batch::check_header(batch, false)?;
    let require_keys = checks.require_keys && !header.is_control();
    let limits = Limits {
        max_record_bytes: checks.max_record_bytes,
        max_uncompressed_bytes: checks.max_uncompressed_bytes,
        fields: Fields::Skip,
    };
    let mut expected = 0i32;
    let walked = for_each(batch, limits, |r| {
        if r.offset_delta != expected {
            return Err(BatchError::Invalid(format!(
                "record offset delta {} where {expected} was expected: offsets must be \
                 consecutive",
                r.offset_delta
            )));
        }
        if require_keys && r.key.is_none() {
            return Err(BatchError::Invalid(
                "Compacted topic cannot accept message without key".into(),
            ));
        }
        expected += 1;
        Ok(true)
    })?;
    require_count(&header, walked)
}

/// The records a walk found must be the records the header counts.
pub(crate) fn require_count(header: &BatchHeader<'_>, walked: usize) -> Result<(), BatchError> {
    if walked != header.records_count() as usize {
        return Err(BatchError::Invalid(format!(
            "records count {} but the batch holds {walked} records",
            header.records_count()
        )));
    }
    Ok(())
}

/// Every record of a batch in the protocol crate's record type, which its encoder takes: the
/// cleaner re-encodes what it keeps, the coordinators replay their internal topics.
pub fn decode_for_encoder(
    batch: &[u8],
) -> Result<Vec<kafka_protocol::records::Record>, BatchError> {
    use kafka_protocol::records::TimestampType;
    let h = BatchHeader::parse(batch).ok_or(BatchError::Truncated("shorter than a header"))?;
    let mut out = Vec::new();
    for_each(batch, Limits::stored(Fields::Keep), |mut r| {
        let mut headers = kafka_protocol::indexmap::IndexMap::with_capacity(r.headers.len());
        for (name, value) in std::mem::take(&mut r.headers) {
            let name = kafka_protocol::protocol::StrBytes::try_from(bytes::Bytes::from(name))
                .map_err(|e| BatchError::Invalid(format!("record header key: {e}")))?;
            headers.insert(name, value.map(bytes::Bytes::from));
        }
        out.push(kafka_protocol::records::Record {
            transactional: h.is_transactional(),
            control: h.is_control(),
            delete_horizon: h.attributes() & 0x40 != 0,
            partition_leader_epoch: h.partition_leader_epoch(),
            producer_id: h.producer_id(),
            producer_epoch: h.producer_epoch(),
            timestamp_type: if h.is_log_append_time() {
                TimestampType::LogAppend
            } else {
                TimestampType::Creation
            },
            offset: r.offset(&h),
            sequence: if h.base_sequence() < 0 {
                -1
            } else {
                h.base_sequence().wrapping_add(r.offset_delta)
            },
            timestamp: r.timestamp(&h),
            key: r.key.take().map(bytes::Bytes::from),
            value: r.value.take().map(bytes::Bytes::from),
            headers,
        });
        Ok(true)
    })?;
    Ok(out)
}

fn corrupt(codec: &'static str) -> impl Fn(io::Error) -> BatchError {
    move |e| BatchError::Corrupt(format!("{codec} payload does not decompress: {e}"))
}

fn walk<R: BufRead>(
    mut input: Input<R>,
    count: i32,
    limits: Limits,
    visit: &mut impl FnMut(Record) -> Result<bool, BatchError>,
) -> Result<usize, BatchError> {
    let mut n = 0usize;
    while !input.at_end()? {
        // A count can never exceed what the remaining bytes could hold.
        if n as i64 >= count as i64 {
            return Err(BatchError::Invalid(format!(
                "records count {count} but the batch holds more records"
            )));
        }
        let record = read_record(&mut input, limits)?;
        n += 1;
        if !visit(record)? {
            return Ok(n);
        }
    }
    Ok(n)
}

fn read_record<R: BufRead>(input: &mut Input<R>, limits: Limits) -> Result<Record, BatchError> {
    let length = input.varint()?;
    let length = u64::try_from(length)
        .map_err(|_| BatchError::Invalid(format!("negative record length {length}")))?;
    if length > limits.max_record_bytes {
        return Err(BatchError::RecordTooLarge {
            size: length,
            max: limits.max_record_bytes,
        });
    }
    if length < MIN_RECORD_BYTES - 1 {
        return Err(BatchError::Invalid(format!(
            "record length {length} is too small"
        )));
    }
    input.check_room(length)?;
    // The common case: the whole record is buffered, and is read from a plain slice.
    let buffered = input.fill()?;
    if buffered.len() as u64 >= length {
        let mut whole = Input::new(&buffered[..length as usize], length);
        let record = read_body(&mut whole, length, limits)?;
        input.reader.consume(length as usize);
        input.used += length;
        return Ok(record);
    }
    read_body(input, length, limits)
}

/// A record's fields after its length, `length` bytes from where `input` stands.
fn read_body<R: BufRead>(
    input: &mut Input<R>,
    length: u64,
    limits: Limits,
) -> Result<Record, BatchError> {
    let end = input.used + length;
    let attributes = input.byte(end)? as i8;
    let timestamp_delta = input.varint_within(end)?;
    let offset_delta = i32::try_from(input.varint_within(end)?)
        .map_err(|_| BatchError::Invalid("record offset delta is out of range".into()))?;
    let key = input.field(end, limits.fields, "key")?;
    let value = input.field(end, limits.fields, "value")?;
    let header_count = input.varint_within(end)?;
    // Each header takes at least two bytes (its two lengths).
    let room = end - input.used;
    if header_count < 0 || header_count as u64 > room / 2 {
        return Err(BatchError::Invalid(format!(
            "record header count {header_count} does not fit the {room} bytes left in the record"
        )));
    }
    let mut headers = Vec::with_capacity(header_count as usize);
    for _ in 0..header_count {
        let name = input
            .field(end, limits.fields, "header key")?
            .ok_or_else(|| BatchError::Invalid("record header key is null".into()))?;
        let value = input.field(end, limits.fields, "header value")?;
        headers.push((name, value));
    }
    if input.used != end {
        return Err(BatchError::Invalid(format!(
            "record length {length} disagrees with its fields ({} bytes)",
            length - (end - input.used)
        )));
    }
    Ok(Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

/// A byte source with a budget: `used` counts what was read, `limit` is the most that may be.
struct Input<R> {
    reader: R,
    used: u64,
    limit: u64,
    /// The bytes come out of a decompressor: reaching `limit` means the batch inflates too far,
    /// not that a length ran past the batch.
    inflated: bool,
}

impl<R: Read> Input<BufReader<R>> {
    fn stream(reader: R, limit: u64) -> Self {
        Input::inflated(BufReader::with_capacity(STREAM_BUFFER, reader), limit)
    }
}

impl<R: BufRead> Input<R> {
    fn new(reader: R, limit: u64) -> Self {
        Input {
            reader,
            used: 0,
            limit,
            inflated: false,
        }
    }

    fn inflated(reader: R, limit: u64) -> Self {
        Input {
            inflated: true,
            ..Input::new(reader, limit)
        }
    }

    fn fill(&mut self) -> Result<&[u8], BatchError> {
        self.reader
            .fill_buf()
            .map_err(|e| BatchError::Corrupt(format!("compressed records do not decompress: {e}")))
    }

    fn at_end(&mut self) -> Result<bool, BatchError> {
        Ok(self.fill()?.is_empty())
    }

    /// Refuses to go on when `n` more bytes would pass the batch's budget.
    fn check_room(&self, n: u64) -> Result<(), BatchError> {
        if self.used.saturating_add(n) > self.limit {
            return Err(if self.inflated {
                BatchError::UncompressedTooLarge { max: self.limit }
            } else {
                BatchError::Invalid("record length runs past the batch".into())
            });
        }
        Ok(())
    }

    fn next_byte(&mut self) -> Result<u8, BatchError> {
        self.check_room(1)?;
        // Built only when needed: this runs for every byte of every record's framing.
        let b = *self
            .fill()?
            .first()
            .ok_or_else(|| BatchError::Invalid("records end in the middle of a record".into()))?;
        self.reader.consume(1);
        self.used += 1;
        Ok(b)
    }

    /// One byte of a record that ends at `end`.
    fn byte(&mut self, end: u64) -> Result<u8, BatchError> {
        if self.used >= end {
            return Err(BatchError::Invalid(
                "record fields run past its length".into(),
            ));
        }
        self.next_byte()
    }

    /// A zig-zag varint of at most 10 bytes.
    fn varint(&mut self) -> Result<i64, BatchError> {
        // The common case, decoded in place: the whole varint is in the buffer.
        let buffered = self.fill()?;
        let mut value: u64 = 0;
        let mut whole = None;
        for (i, b) in buffered.iter().take(10).enumerate() {
            value |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                whole = Some(i + 1);
                break;
            }
        }
        if let Some(n) = whole {
            self.check_room(n as u64)?;
            self.reader.consume(n);
            self.used += n as u64;
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
        // Split across buffer refills (or too long): byte by byte.
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = self.next_byte()?;
            value |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(BatchError::Invalid("varint longer than 10 bytes".into()))
    }

    fn varint_within(&mut self, end: u64) -> Result<i64, BatchError> {
        let v = self.varint()?;
        if self.used > end {
            return Err(BatchError::Invalid(
                "record fields run past its length".into(),
            ));
        }
        Ok(v)
    }

    /// A length-prefixed field (-1 is null) inside a record that ends at `end`.
    fn field(
        &mut self,
        end: u64,
        fields: Fields,
        what: &str,
    ) -> Result<Option<Vec<u8>>, BatchError> {
        let len = self.varint_within(end)?;
        if len == -1 {
            return Ok(None);
        }
        let room = end - self.used;
        let len = u64::try_from(len)
            .ok()
            .filter(|l| *l <= room)
            .ok_or_else(|| {
                BatchError::Invalid(format!(
                    "record {what} length {len} does not fit the {room} bytes left in the record"
                ))
            })?;
        let mut kept = Vec::new();
        let mut left = len;
        while left > 0 {
            let chunk = self.fill()?;
            if chunk.is_empty() {
                return Err(BatchError::Invalid(
                    "records end in the middle of a record".into(),
                ));
            }
            let n = chunk.len().min(left as usize);
            if fields == Fields::Keep {
                kept.extend_from_slice(&chunk[..n]);
            }
            self.reader.consume(n);
            self.used += n as u64;
            left -= n as u64;
        }
        Ok(Some(kept))
    }
}

/// Snappy as Kafka's clients write it: the xerial stream (a magic header, then blocks each
/// prefixed by its compressed length), or one raw snappy block without the header. Blocks are
/// decompressed one at a time; a block that claims more than snappy could expand its bytes to,
/// or more than the batch's budget, is refused before its buffer is allocated.
struct SnappyReader<'a> {
    input: &'a [u8],
    framed: bool,
    out: Vec<u8>,
    pos: usize,
    produced: u64,
    limit: u64,
    failed: Option<String>,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// Snappy's worst expansion: a 3-byte copy element writes 64 bytes.
const SNAPPY_MAX_RATIO: u64 = 22;

impl<'a> SnappyReader<'a> {
    fn new(payload: &'a [u8], limit: u64) -> Self {
        let framed = payload.len() >= XERIAL_HEADER_LEN && payload.starts_with(XERIAL_MAGIC);
        SnappyReader {
            input: if framed {
                &payload[XERIAL_HEADER_LEN..]
            } else {
                payload
            },
            framed,
            out: Vec::new(),
            pos: 0,
            produced: 0,
            limit,
            failed: None,
        }
    }

    fn next_block(&mut self) -> Result<(), String> {
        let block = if self.framed {
            let len = self
                .input
                .get(..4)
                .ok_or("snappy block length is truncated")?;
            let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
            let block = self
                .input
                .get(4..4usize.saturating_add(len))
                .ok_or("snappy block runs past the batch")?;
            self.input = &self.input[4 + len..];
            block
        } else {
            std::mem::take(&mut self.input)
        };
        let claimed = snap::raw::decompress_len(block).map_err(|e| e.to_string())? as u64;
        let most = (block.len() as u64).saturating_mul(SNAPPY_MAX_RATIO);
        if claimed > most || self.produced + claimed > self.limit {
            return Err(format!(
                "snappy block of {} bytes claims {claimed} uncompressed bytes",
                block.len()
            ));
        }
        self.out.clear();
        self.out.resize(claimed as usize, 0);
        let n = snap::raw::Decoder::new()
            .decompress(block, &mut self.out)
            .map_err(|e| e.to_string())?;
        self.out.truncate(n);
        self.pos = 0;
        self.produced += n as u64;
        Ok(())
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for SnappyReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.out.len() && !self.input.is_empty() && self.failed.is_none() {
            if let Err(e) = self.next_block() {
                self.failed = Some(e);
            }
        }
        if let Some(e) = &self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e.clone()));
        }
        Ok(&self.out[self.pos..])
    }
    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.out.len());
    }
}

#[cfg(test)]
mod tests;

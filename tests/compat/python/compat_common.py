"""Client-independent pieces of the Python compatibility suite.

Pins the data set every client test produces (distinct key, value, two headers
and an explicit CreateTime timestamp per record, partition = index % partitions)
and the checks applied to what comes back: delivery reports must give each
partition the offsets 0..n-1 exactly once, and a consumer reading each
partition from the beginning must see exactly those offsets, in order, with
each record's key, value, headers and timestamp identical to what was sent at
that offset. A raw Fetch v4 of each partition then checks the stored batch
headers: v2 format, the requested codec, and (idempotent producer) one producer
id with gapless sequence numbers.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid
from dataclasses import dataclass, field

COMPRESSIONS = ["none", "gzip", "snappy", "lz4", "zstd"]
NUM_PARTITIONS = 3
NUM_RECORDS = 10_000
NUM_IDEMPOTENT_RECORDS = 5_000
# How long producing (until every ack is in) and consuming may take, each.
PRODUCE_DEADLINE_S = 90.0
CONSUME_DEADLINE_S = 60.0
# Per-test safety net (pytest-timeout); the deadlines above should fire first.
TEST_TIMEOUT_S = 300
MAX_REPORTED_PROBLEMS = 25

_WORDS = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"foxtrot", b"golf", b"hotel"]


@dataclass(frozen=True)
class Rec:
    index: int
    key: bytes
    value: bytes
    headers: tuple  # ((str, bytes), (str, bytes))
    timestamp_ms: int
    partition: int


def unique_topic(client: str, label: str) -> str:
    return f"compat-{client}-{label}-{uuid.uuid4().hex[:8]}"


def make_records(n: int, tag: str, partitions: int = NUM_PARTITIONS) -> list[Rec]:
    """Deterministic records: distinct keys/values, varied sizes, compressible content."""
    # CreateTime a little in the past so no broker-side timestamp validation can object.
    base_ts = int(time.time() * 1000) - 60_000
    tag_b = tag.encode()
    recs = []
    for i in range(n):
        key = b"key-%06d" % i
        filler = b" ".join(_WORDS[(i + j) % len(_WORDS)] for j in range((i * 7) % 61))
        value = b"value-%06d|" % i + tag_b + b"|" + filler
        headers = (
            ("compat-index", b"%d" % i),
            ("compat-bin", bytes([i % 256, 0, 0xFF, (i * 31) % 256]) + tag_b),
        )
        recs.append(Rec(i, key, value, headers, base_ts + i, i % partitions))
    return recs


@dataclass
class Delivery:
    index: int
    partition: int
    offset: int


@dataclass
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list  # [(str, bytes)]
    timestamp_ms: int


@dataclass
class Problems:
    items: list = field(default_factory=list)
    count: int = 0

    def add(self, msg: str) -> None:
        self.count += 1
        if len(self.items) < MAX_REPORTED_PROBLEMS:
            self.items.append(msg)

    def check(self, what: str) -> None:
        if self.count:
            more = self.count - len(self.items)
            tail = f"\n  ... and {more} more" if more > 0 else ""
            raise AssertionError(
                f"{what}: {self.count} problem(s):\n  " + "\n  ".join(self.items) + tail
            )


def check_deliveries(records: list[Rec], deliveries: list[Delivery]) -> dict:
    """Delivery reports: one per record, in the requested partition, offsets 0..n-1 per partition.

    Returns {(partition, offset): index}.
    """
    p = Problems()
    by_index: dict[int, Delivery] = {}
    for d in deliveries:
        if d.index in by_index:
            p.add(f"record {d.index}: more than one delivery report")
        by_index[d.index] = d
    at: dict[tuple, int] = {}
    for r in records:
        d = by_index.get(r.index)
        if d is None:
            p.add(f"record {r.index}: no delivery report")
            continue
        if d.partition != r.partition:
            p.add(f"record {r.index}: sent to partition {r.partition}, report says {d.partition}")
        if (d.partition, d.offset) in at:
            p.add(
                f"records {at[(d.partition, d.offset)]} and {r.index} both reported at "
                f"partition {d.partition} offset {d.offset}"
            )
        at[(d.partition, d.offset)] = r.index
    p.check("delivery reports")

    for part in sorted({r.partition for r in records}):
        offsets = sorted(o for (pp, o) in at if pp == part)
        if offsets != list(range(len(offsets))):
            gaps = sorted(set(range(len(offsets))) - set(offsets))[:10]
            p.add(
                f"partition {part}: reported offsets are not 0..{len(offsets) - 1} "
                f"(min {offsets[0] if offsets else None}, max {offsets[-1] if offsets else None}, "
                f"first missing {gaps})"
            )
    p.check("delivery report offsets")
    return at


def check_in_order(records: list[Rec], at: dict) -> None:
    """Within each partition, offsets follow the order the records were sent in."""
    p = Problems()
    last: dict[int, tuple] = {}
    for (part, off) in sorted(at):
        idx = at[(part, off)]
        prev = last.get(part)
        if prev is not None and idx < prev[1]:
            p.add(
                f"partition {part}: record {idx} at offset {off} comes after record "
                f"{prev[1]} at offset {prev[0]}"
            )
        last[part] = (off, idx)
    p.check("per-partition order (idempotent producer)")


def check_consumed(records: list[Rec], at: dict, consumed_by_partition: dict) -> None:
    """Consumed records match the delivery reports exactly, offset by offset, in order."""
    p = Problems()
    by_index = {r.index: r for r in records}
    expected_counts: dict[int, int] = {}
    for (part, _off) in at:
        expected_counts[part] = expected_counts.get(part, 0) + 1
    for part in sorted(set(expected_counts) | set(consumed_by_partition)):
        got = consumed_by_partition.get(part, [])
        offsets = [c.offset for c in got]
        want = list(range(expected_counts.get(part, 0)))
        if offsets != want:
            dupes = len(offsets) - len(set(offsets))
            missing = sorted(set(want) - set(offsets))
            extra = sorted(set(offsets) - set(want))
            first_bad = next(
                (k for k, (a, b) in enumerate(zip(offsets, want)) if a != b), None
            )
            p.add(
                f"partition {part}: consumed {len(offsets)} records, expected offsets 0..{len(want) - 1}; "
                f"duplicates={dupes} missing={len(missing)} (first {missing[:10]}) "
                f"unexpected={extra[:10]} first out-of-order position={first_bad}"
            )
        for c in got:
            idx = at.get((part, c.offset))
            if idx is None:
                continue
            r = by_index[idx]
            if c.key != r.key:
                p.add(f"p{part}@{c.offset} (record {idx}): key {c.key!r} != {r.key!r}")
            if c.value != r.value:
                p.add(
                    f"p{part}@{c.offset} (record {idx}): value {c.value[:40]!r}... "
                    f"!= {r.value[:40]!r}..."
                    if c.value is not None
                    else f"p{part}@{c.offset} (record {idx}): value is None"
                )
            got_headers = [(k, bytes(v) if v is not None else None) for k, v in (c.headers or [])]
            if got_headers != list(r.headers):
                p.add(f"p{part}@{c.offset} (record {idx}): headers {got_headers!r} != {list(r.headers)!r}")
            if c.timestamp_ms != r.timestamp_ms:
                p.add(f"p{part}@{c.offset} (record {idx}): timestamp {c.timestamp_ms} != {r.timestamp_ms}")
    p.check("consumed records")


def check_watermarks(at: dict, low: dict, high: dict) -> None:
    """ListOffsets: earliest is 0 and latest is the record count for every partition."""
    p = Problems()
    counts: dict[int, int] = {}
    for (part, _off) in at:
        counts[part] = counts.get(part, 0) + 1
    for part in range(NUM_PARTITIONS):
        if low.get(part) != 0:
            p.add(f"partition {part}: earliest offset {low.get(part)} != 0")
        if high.get(part) != counts.get(part, 0):
            p.add(f"partition {part}: latest offset {high.get(part)} != {counts.get(part, 0)}")
    p.check("ListOffsets watermarks")


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end


# --- Raw wire check of what the broker stored -------------------------------------------
#
# A client that thinks the broker can't take a codec may silently send uncompressed
# batches (librdkafka does this), and every record would still round-trip. So the suite
# also reads the partitions back with a plain Fetch v4 over a socket of its own and looks
# at the record-batch headers: codec, magic, producer id and sequence numbers.

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")  # 61 bytes, record batch v2 header


@dataclass(frozen=True)
class StoredBatch:
    base_offset: int
    record_count: int
    magic: int
    codec: int
    producer_id: int
    producer_epoch: int
    base_sequence: int


def _wire_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"broker closed the connection after {len(buf)}/{n} bytes")
        buf += chunk
    return bytes(buf)


def _fetch_v4(sock, corr: int, topic: str, partition: int, offset: int):
    body = struct.pack(">iiiib", -1, 100, 1, 64 << 20, 0)  # replica, max_wait, min_bytes, max_bytes, isolation
    body += struct.pack(">i", 1) + _wire_str(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", partition, offset, 64 << 20)
    header = struct.pack(">hhi", 1, 4, corr) + _wire_str("compat-raw-fetch")
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    data = _recv_exact(sock, size)
    pos = 0
    (rcorr,) = struct.unpack_from(">i", data, pos); pos += 4
    assert rcorr == corr, f"correlation id {rcorr} != {corr}"
    pos += 4  # throttle_time_ms
    (ntopics,) = struct.unpack_from(">i", data, pos); pos += 4
    assert ntopics == 1, f"Fetch v4 response has {ntopics} topics"
    (tlen,) = struct.unpack_from(">h", data, pos); pos += 2 + tlen
    (nparts,) = struct.unpack_from(">i", data, pos); pos += 4
    assert nparts == 1, f"Fetch v4 response has {nparts} partitions"
    part, err, hwm, _lso = struct.unpack_from(">ihqq", data, pos); pos += 22
    (naborted,) = struct.unpack_from(">i", data, pos); pos += 4
    if naborted > 0:
        pos += 16 * naborted
    (rlen,) = struct.unpack_from(">i", data, pos); pos += 4
    records = data[pos:pos + rlen] if rlen > 0 else b""
    assert part == partition and err == 0, f"Fetch v4 {topic}-{partition}@{offset}: partition {part} error {err}"
    return hwm, records


def stored_batches(bootstrap: str, topic: str, partition: int, timeout_s: float = 30.0) -> list[StoredBatch]:
    """All record-batch headers of a partition, read with raw Fetch v4 requests."""
    host, _, port = bootstrap.rpartition(":")
    deadline = Deadline(timeout_s)
    batches: list[StoredBatch] = []
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        offset, corr, hwm = 0, 0, None
        while (hwm is None or offset < hwm) and not deadline.expired() and corr < 10_000:
            corr += 1
            hwm, records = _fetch_v4(sock, corr, topic, partition, offset)
            pos = 0
            progressed = False
            while pos + _BATCH_HEADER.size <= len(records):
                (base, blen, _epoch, magic, _crc, attrs, last_delta, _bts, _mts,
                 pid, pepoch, bseq, count) = _BATCH_HEADER.unpack_from(records, pos)
                if pos + 12 + blen > len(records):
                    break  # partial trailing batch: fetch again from here
                if base + last_delta >= offset:
                    batches.append(StoredBatch(base, count, magic, attrs & 0x7, pid, pepoch, bseq))
                offset = max(offset, base + last_delta + 1)
                progressed = True
                pos += 12 + blen
            if not progressed and offset < hwm:
                raise AssertionError(
                    f"Fetch v4 {topic}-{partition}@{offset} returned no complete batch "
                    f"({len(records)} bytes) below high watermark {hwm}"
                )
    assert hwm is not None and offset >= hwm, f"raw fetch of {topic}-{partition} stopped at {offset}/{hwm}"
    return batches


def check_stored_batches(bootstrap: str, topic: str, at: dict, codec: str, idempotent: bool) -> None:
    """What the broker hands back on the wire: v2 batches in the requested codec, and for an
    idempotent producer one producer id/epoch with gapless sequences from 0 per partition;
    without idempotence, no producer id."""
    p = Problems()
    want_codec = CODEC_IDS[codec]
    counts: dict[int, int] = {}
    for (part, _off) in at:
        counts[part] = counts.get(part, 0) + 1
    pids = set()
    downgraded = False
    for part in range(NUM_PARTITIONS):
        batches = stored_batches(bootstrap, topic, part)
        total = sum(b.record_count for b in batches)
        if total != counts.get(part, 0):
            p.add(f"partition {part}: batches hold {total} records, expected {counts.get(part, 0)}")
        # Clients (kafka-python's _maybe_compress, librdkafka's msgset writer) send a batch
        # uncompressed when compressing it would not make it smaller, which happens for batches
        # of one or two records. Those are accepted; anything else in another codec is not, and
        # most batches must carry the requested codec.
        tiny_plain = [b for b in batches if want_codec and b.codec == 0 and b.record_count <= 2]
        wrong = [b for b in batches if b.codec != want_codec and b not in tiny_plain]
        if batches and len(tiny_plain) * 2 > len(batches):
            p.add(f"partition {part}: {len(tiny_plain)}/{len(batches)} batches stored uncompressed")
        if wrong:
            p.add(
                f"partition {part}: {len(wrong)}/{len(batches)} batches stored with codec "
                f"{sorted({b.codec for b in wrong})} instead of {want_codec} ({codec}); first at "
                f"offset {wrong[0].base_offset}"
            )
            if want_codec and all(b.codec == 0 for b in wrong):
                downgraded = True
        if any(b.magic != 2 for b in batches):
            p.add(f"partition {part}: batches with magic {sorted({b.magic for b in batches})}, expected 2")
        seq = 0
        for b in batches:
            if idempotent:
                pids.add((b.producer_id, b.producer_epoch))
                if b.producer_id < 0:
                    p.add(f"partition {part}: batch at {b.base_offset} has no producer id")
                if b.base_sequence != seq:
                    p.add(f"partition {part}: batch at {b.base_offset} has base sequence {b.base_sequence}, expected {seq}")
                seq = b.base_sequence + b.record_count
            elif b.producer_id != -1:
                p.add(f"partition {part}: non-idempotent batch at {b.base_offset} has producer id {b.producer_id}")
    if downgraded:
        p.add(
            "hint: they all came back uncompressed; if the client sent them that way (its debug log "
            "says so), it judged from ApiVersions that the broker can't take this codec (librdkafka enables lz4 only when FindCoordinator "
            "v0 is advertised, zstd only with Produce v7 + Fetch v10)"
        )
    if idempotent and len(pids) > 1:
        p.add(f"more than one producer id/epoch across batches: {sorted(pids)}")
    p.check(f"stored record batches ({codec}{', idempotent' if idempotent else ''})")

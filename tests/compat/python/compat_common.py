"""Client-independent pieces of the Python compatibility suite.

Pins the data set every client test produces (distinct key, value, two headers
and an explicit CreateTime timestamp per record, partition = index % partitions)
and the checks applied to what comes back: delivery reports must give each
partition the offsets 0..n-1 exactly once, and a consumer reading each
partition from the beginning must see exactly those offsets, in order, with
each record's key, value, headers and timestamp identical to what was sent at
that offset.
"""

from __future__ import annotations

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

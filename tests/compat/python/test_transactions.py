"""spool transactions (KIP-98 / KIP-447 / KIP-360) with confluent-kafka 2.16.1 (librdkafka 2.16).

Pins the transactional producer and read_committed consumer semantics (InitProducerId with a
transactional.id, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn, control
markers, the last stable offset, aborted-transaction lists in Fetch, transaction timeouts):

1. Consume-transform-produce, exactly once. 20,000 keyed records are written to a 3-partition
   input topic (idempotent producer). One transactional producer and one read_committed
   consumer (subscribe, no auto-commit) copy them to a 3-partition output topic in
   transactions of 500-1000 records: each transaction produces the transformed records
   ("out-" + value, same key and partition, headers naming the transaction and the source
   record) and sends the consumer's positions with send_offsets_to_transaction. Every 5th
   transaction is flushed (so its records are in the log) and then aborted on purpose, and the
   consumer is rewound to the offsets of the last commit, so those records are copied again by
   a later transaction. Then a read_committed consumer of the output sees every input record
   exactly once, with its key and transformed value, in source order per partition, only from
   committed transactions, each committed transaction complete; a read_uncommitted consumer
   sees every produced record, the aborted transactions' too. The group's committed offsets
   (OffsetFetch with require_stable) are the input's end offsets.
2. Fencing. Producer A (transactional.id "t-fence") begins a transaction and writes records;
   producer B with the same transactional.id calls init_transactions, which must abort A's
   open transaction and fence A: A's next produce/commit fails with a fatal (_FENCED) error
   and its post-fence records never reach the log. B then commits a transaction that a
   read_committed consumer sees, without any of A's records; a read_uncommitted consumer sees
   A's pre-fence records (they were written, then aborted). B's batches carry A's producer id
   with a higher epoch.
3. Transaction timeout. With transaction.timeout.ms=2000 (and the broker's timed-out
   transaction check every 500 ms) a producer begins a transaction, writes records and goes
   quiet. A later non-transactional record sits behind the open transaction (the last stable
   offset is held at its first record) until the broker aborts it: a read_committed consumer
   must receive that record within 30 s, and not before the 2 s timeout could have expired;
   the timed-out records never become visible to read_committed. The old producer's
   commit_transaction then fails, and a new producer with the same transactional.id works.
4. Crash safety (flush_mode=durable). A transactional producer thread commits transactions
   of 150 records spread over 3 partitions, each record naming (transaction, index, count);
   the broker is SIGKILLed 5 times mid-transaction and restarted on the same data: twice with
   a transaction held open (first half flushed) across the crash - once the producer then
   finishes and commits it (it must commit), once it is abandoned and a new producer's
   init_transactions must abort it - and otherwise while records are produced or a commit is
   in flight. On errors the producer aborts, or re-creates itself (init_transactions fences
   and finishes the old incarnation's transaction). After each restart (with the producer
   paused between transactions) and at the end, a read_committed consumer reading from the
   beginning sees every visible transaction complete (never a partial one, no duplicate),
   every transaction whose commit_transaction succeeded, none that was aborted or abandoned,
   and per partition the records in production order; read_uncommitted still shows the
   abandoned transaction's flushed records.

A read "to the end" is done with enable.partition.eof: librdkafka reports EOF at the high
watermark (read_uncommitted) or at the last stable offset (read_committed), after skipping
control records and aborted batches; the read ends once every partition reported EOF at the
partition's current high watermark (queried with ListOffsets), i.e. nothing is pending.

Threads: every client object is created, used and closed by one thread. Waits are bounded
(Deadline) and wait on conditions; nothing sleeps to synchronise.
"""

from __future__ import annotations

import collections
import random
import threading
import time
import traceback
import uuid
import warnings
from dataclasses import dataclass, field

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from compat_common import Deadline, Problems, stored_batches

NUM_PARTITIONS = 3

# Every blocking transactional call (init/commit/abort/send_offsets) gets this timeout.
TXN_CALL_TIMEOUT_S = 30.0
READ_DEADLINE_S = 90.0
TOPIC_READY_DEADLINE_S = 30.0

# 1. consume-transform-produce
CTP_RECORDS = 20_000
CTP_TXN_MIN, CTP_TXN_MAX = 500, 1_000
CTP_ABORT_EVERY = 5
CTP_MAX_TXNS = 200
CTP_DEADLINE_S = 240.0

# 2. fencing
FENCE_RECORDS = 30

# 3. timeout
TXN_TIMEOUT_MS = 2_000
CLEANUP_INTERVAL_MS = 500
LSO_DEADLINE_S = 30.0
# Client and broker clocks are the same machine's; a little slack for rounding.
TIMEOUT_SLACK_S = 0.1

# 4. kill -9
CRASH_ROUNDS = 5
CRASH_TXN_RECORDS = 150
CRASH_COMMITS_PER_ROUND = 3
CRASH_TXN_TIMEOUT_MS = 30_000
CRASH_COMMIT_ATTEMPTS = 2
CRASH_ABORT_ATTEMPTS = 2
CRASH_INIT_ATTEMPTS = 3
CRASH_PROGRESS_DEADLINE_S = 120.0
CRASH_PHASE_DEADLINE_S = 30.0
# Worst case of a producer recovery: commit attempts + abort attempts + re-creation.
CRASH_PAUSE_DEADLINE_S = 240.0
CRASH_PRODUCER_DEADLINE_S = 1_500.0

FENCED_CODES = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


def unique(label: str) -> str:
    return f"compat-ck-txn-{label}-{uuid.uuid4().hex[:8]}"


def describe(err) -> str:
    if isinstance(err, KafkaError):
        flags = [f for f, on in (("fatal", err.fatal()), ("retriable", err.retriable()),
                                 ("txn_requires_abort", err.txn_requires_abort())) if on]
        return f"{err.name()}({err.code()}) [{','.join(flags)}]: {err.str()}"
    return repr(err)


class ErrorLog:
    """error_cb sink: every client-level error is kept (the first few printed)."""

    def __init__(self, who: str):
        self.who = who
        self.errors: list[KafkaError] = []

    def __call__(self, err: KafkaError) -> None:
        self.errors.append(err)
        if len(self.errors) <= 20:
            print(f"[{self.who}] error_cb: {describe(err)}")

    def fatal(self) -> list:
        return [e for e in self.errors if e.fatal()]

    def assert_no_fatal(self) -> None:
        fatal = self.fatal()
        assert not fatal, f"{self.who}: fatal librdkafka error(s): {[describe(e) for e in fatal]}"


def ck_config(bootstrap: str, who: str, errors: ErrorLog) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": f"compat-ck-txn-{who}",
        "broker.address.family": "v4",
        "log_level": 3,
        "error_cb": errors,
        # A restarted broker is back within seconds: don't back off for long.
        "reconnect.backoff.ms": 50,
        "reconnect.backoff.max.ms": 1_000,
    }


def txn_producer_config(bootstrap: str, who: str, txn_id: str, errors: ErrorLog, **extra) -> dict:
    config = ck_config(bootstrap, who, errors)
    # transactional.id implies enable.idempotence=true and acks=all.
    config.update({"transactional.id": txn_id, "linger.ms": 5})
    config.update(extra)
    return config


def reader_config(bootstrap: str, who: str, errors: ErrorLog, isolation: str) -> dict:
    config = ck_config(bootstrap, who, errors)
    config.update(
        {
            # Required by the constructor; never used: no subscribe(), no commit.
            "group.id": f"compat-ck-txn-unused-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "fetch.wait.max.ms": 100,
        }
    )
    return config


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    errors = ErrorLog("admin")
    admin = AdminClient(ck_config(bootstrap, "admin", errors))
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=n, replication_factor=1) for t, n in topics.items()],
        request_timeout=30,
        operation_timeout=30,
    )
    for t in topics:
        futures[t].result(timeout=60)  # raises KafkaException on a CreateTopics error
    deadline = Deadline(TOPIC_READY_DEADLINE_S)
    state = None
    for _ in range(1_000):
        md = admin.list_topics(timeout=10)
        state = {}
        for t, n in topics.items():
            tmd = md.topics.get(t)
            if tmd is None or tmd.error is not None:
                state[t] = tmd.error if tmd is not None else "missing"
            elif sorted(tmd.partitions) != list(range(n)) or any(
                p.error is not None or p.leader < 0 for p in tmd.partitions.values()
            ):
                state[t] = {pid: (p.leader, p.error) for pid, p in tmd.partitions.items()}
        if not state or deadline.expired():
            break
        time.sleep(0.1)  # metadata propagation poll, bounded by the deadline
    if state:
        pytest.fail(f"topics not ready in Metadata within {TOPIC_READY_DEADLINE_S}s: {state}")
    errors.assert_no_fatal()


def produce_with_retry(producer: Producer, deadline: Deadline, topic: str, **kwargs) -> None:
    """produce(), serving delivery reports while the local queue is full (bounded)."""
    for _ in range(100_000):
        try:
            producer.produce(topic, **kwargs)
            break
        except BufferError:
            if deadline.expired():
                pytest.fail("local producer queue still full at the deadline")
            producer.poll(0.05)
    else:
        pytest.fail("local producer queue stayed full")
    producer.poll(0)


def produce_plain(bootstrap: str, topic: str, records, who: str, **extra) -> dict:
    """Non-transactional produce of (partition, key, value) records; returns
    {index: (partition, offset)} from the delivery reports (all must succeed)."""
    errors = ErrorLog(who)
    config = ck_config(bootstrap, who, errors)
    config.update({"acks": "all", "linger.ms": 10, "message.timeout.ms": 60_000})
    config.update(extra)
    producer = Producer(config)
    at: dict[int, tuple] = {}
    failures: list[str] = []

    def report(i, err, msg):
        if err is not None:
            failures.append(f"record {i}: {describe(err)}")
        else:
            at[i] = (msg.partition(), msg.offset())

    deadline = Deadline(90)
    for i, (part, key, value) in enumerate(records):
        produce_with_retry(
            producer, deadline, topic, partition=part, key=key, value=value,
            on_delivery=lambda err, msg, i=i: report(i, err, msg),
        )
    remaining = producer.flush(max(1.0, deadline.remaining()))
    errors.assert_no_fatal()
    assert remaining == 0 and not failures, (
        f"{who}: {remaining} records undelivered; failures {failures[:10]}; errors {errors.errors[:5]}"
    )
    return at


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict


def as_rec(msg) -> Rec:
    headers = {k: (bytes(v) if v is not None else None) for k, v in (msg.headers() or [])}
    return Rec(msg.partition(), msg.offset(), msg.key(), msg.value(), headers)


def high_watermarks(probe: Consumer, topic: str, partitions: int) -> dict | None:
    out = {}
    for p in range(partitions):
        wm = probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        if wm is None:
            return None
        out[p] = wm[1]
    return out


def read_topic(bootstrap: str, topic: str, partitions: int, isolation: str,
               deadline_s: float = READ_DEADLINE_S) -> tuple[list[Rec], dict]:
    """Every record a fresh consumer with this isolation level gets, from the beginning to the
    end: until each partition reported EOF at its current high watermark (for read_committed
    that means the last stable offset caught up: no open transaction, no pending marker).
    Returns the records (in per-partition order) and the high watermarks."""
    errors = ErrorLog(f"reader-{isolation}")
    consumer = Consumer(dict(reader_config(bootstrap, f"reader-{isolation}", errors, isolation),
                             **{"enable.partition.eof": True}))
    probe_errors = ErrorLog("watermark-probe")
    probe = Consumer(reader_config(bootstrap, "watermark-probe", probe_errors, "read_uncommitted"))
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: list[Rec] = []
        eof: dict[int, int] = {}
        msg_errors: list[str] = []
        hwm = None
        deadline = Deadline(deadline_s)
        next_check = 0.0
        for _ in range(1_000_000):
            for msg in consumer.consume(num_messages=1_000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof[msg.partition()] = msg.offset()
                    else:
                        msg_errors.append(describe(err))
                    continue
                assert msg.topic() == topic
                out.append(as_rec(msg))
            assert not msg_errors, f"{isolation} reader of {topic}: message errors {msg_errors[:10]}"
            if len(eof) == partitions and time.monotonic() >= next_check:
                next_check = time.monotonic() + 0.3
                hwm = high_watermarks(probe, topic, partitions)
                if hwm is not None and all(eof[p] >= hwm[p] for p in range(partitions)):
                    errors.assert_no_fatal()
                    return out, hwm
            if deadline.expired():
                break
        pytest.fail(
            f"{isolation} reader of {topic}: did not reach the end within {deadline_s}s: "
            f"EOF at {eof}, high watermarks {hwm}, {len(out)} records read"
            + (" (read_committed stuck below the high watermark: a transaction stays open or "
               "its markers were never written, so the last stable offset does not advance)"
               if isolation == "read_committed" and len(eof) == partitions else "")
            + f"; client errors {[describe(e) for e in errors.errors[:5]]}"
        )
    finally:
        consumer.close()
        probe.close()


def close_quietly(*clients) -> None:
    """Closes clients now (not whenever a traceback holding them is collected), so none is left
    reconnecting to a broker that is gone."""
    for c in clients:
        try:
            with warnings.catch_warnings():
                # A fenced producer warns that close() could not abort its transaction.
                warnings.simplefilter("ignore", RuntimeWarning)
                c.close()
        except Exception:  # noqa: BLE001 - e.g. a fenced producer: it is closed all the same
            pass


@pytest.fixture
def clients(spool_broker):
    """Client objects a test appends here are closed when it ends, before its broker stops."""
    out: list = []
    yield out
    close_quietly(*reversed(out))


def header_int(rec: Rec, name: str) -> int | None:
    v = rec.headers.get(name)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


# --- 1. consume-transform-produce --------------------------------------------------------


@pytest.mark.timeout(420)
@pytest.mark.spool_settings("group_initial_rebalance_delay_ms=200")
def test_consume_transform_produce_exactly_once(spool_broker, clients):
    bootstrap = spool_broker.bootstrap
    src, dst = unique("ctp-in"), unique("ctp-out")
    create_topics(bootstrap, {src: NUM_PARTITIONS, dst: NUM_PARTITIONS})

    records = [(i % NUM_PARTITIONS, b"k%05d" % i, b"v%d" % i) for i in range(CTP_RECORDS)]
    at = produce_plain(bootstrap, src, records, "ctp-input", **{"enable.idempotence": True})
    input_at: dict[tuple, tuple] = {}  # (partition, offset) -> (key, value)
    for i, (part, off) in at.items():
        assert part == records[i][0], f"input record {i} went to partition {part}"
        input_at[(part, off)] = records[i][1:]
    end = {p: 0 for p in range(NUM_PARTITIONS)}
    for part, off in at.values():
        end[part] = max(end[part], off + 1)
    assert sum(end.values()) == CTP_RECORDS and len(input_at) == CTP_RECORDS, end

    group = unique("ctp-group")
    c_errors, p_errors = ErrorLog("ctp-consumer"), ErrorLog("ctp-producer")
    consumer_config = ck_config(bootstrap, "ctp-consumer", c_errors)
    consumer_config.update(
        {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer = Consumer(consumer_config)
    producer = Producer(txn_producer_config(bootstrap, "ctp-producer", unique("ctp-txn"), p_errors))
    clients.append(producer)
    rng = random.Random(20_000)

    committed_pos = {p: 0 for p in range(NUM_PARTITIONS)}  # offsets sent with the last commit
    committed_txns: list[int] = []
    aborted_txns: list[int] = []
    txn_size: dict[int, int] = {}
    delivered: collections.Counter = collections.Counter()
    delivery_failures: list[str] = []
    assignments: list = []

    def report(txn, err, _msg):
        if err is not None:
            delivery_failures.append(f"txn {txn}: {describe(err)}")
        else:
            delivered[txn] += 1

    try:
        producer.init_transactions(TXN_CALL_TIMEOUT_S)
        consumer.subscribe(
            [src], on_assign=lambda _c, parts: assignments.append(sorted(tp.partition for tp in parts))
        )
        deadline = Deadline(CTP_DEADLINE_S)
        txn = 0
        empty_rounds = 0
        for _ in range(10_000):
            if committed_pos == end:
                break
            if deadline.expired() or txn >= CTP_MAX_TXNS:
                pytest.fail(
                    f"copy not done after {txn} transactions / {CTP_DEADLINE_S}s: committed "
                    f"positions {committed_pos}, input ends {end}; assignments {assignments}; "
                    f"consumer errors {[describe(e) for e in c_errors.errors[:5]]}"
                )
            # Consume the next batch; the consumer stands at committed_pos.
            want = rng.randint(CTP_TXN_MIN, CTP_TXN_MAX)
            pos = dict(committed_pos)
            batch = []
            fill = Deadline(10)
            for _ in range(1_000):
                if len(batch) >= want or pos == end or fill.expired():
                    break
                for m in consumer.consume(num_messages=want - len(batch), timeout=0.2):
                    if m.error() is not None:
                        pytest.fail(f"input consumer message error: {describe(m.error())}")
                    part, off = m.partition(), m.offset()
                    if m.topic() != src or off != pos[part]:
                        pytest.fail(
                            f"input consumer returned {m.topic()}-{part}@{off}, expected "
                            f"{src}-{part}@{pos[part]} (committed {committed_pos}, txn {txn + 1})"
                        )
                    batch.append(m)
                    pos[part] = off + 1
            if not batch:
                empty_rounds += 1
                continue

            txn += 1
            txn_size[txn] = len(batch)
            producer.begin_transaction()
            for m in batch:
                produce_with_retry(
                    producer, deadline, dst,
                    partition=m.partition(), key=m.key(), value=b"out-" + m.value(),
                    headers=[("txn", b"%d" % txn), ("src", b"%d:%d" % (m.partition(), m.offset()))],
                    on_delivery=lambda err, msg, t=txn: report(t, err, msg),
                )
            positions = consumer.position([TopicPartition(src, p) for p in range(NUM_PARTITIONS)])
            for tp in positions:
                if tp.offset >= 0:
                    assert tp.offset == pos[tp.partition], (
                        f"consumer.position {src}-{tp.partition} = {tp.offset}, but the last "
                        f"record returned was at {pos[tp.partition] - 1}"
                    )
            offsets = [TopicPartition(src, p, pos[p]) for p in range(NUM_PARTITIONS)]
            producer.send_offsets_to_transaction(
                offsets, consumer.consumer_group_metadata(), TXN_CALL_TIMEOUT_S
            )
            if txn % CTP_ABORT_EVERY == 0:
                # Make sure the records are in the log before the abort, so read_uncommitted
                # must show them and read_committed must hide them.
                remaining = producer.flush(TXN_CALL_TIMEOUT_S)
                assert remaining == 0, f"txn {txn}: {remaining} records not delivered before the abort"
                producer.abort_transaction(TXN_CALL_TIMEOUT_S)
                aborted_txns.append(txn)
                for p in range(NUM_PARTITIONS):
                    consumer.seek(TopicPartition(src, p, committed_pos[p]))
            else:
                producer.commit_transaction(TXN_CALL_TIMEOUT_S)
                committed_txns.append(txn)
                committed_pos = pos
        assert committed_pos == end, f"copy loop ended at {committed_pos}, input ends {end}"

        # The consumer's own view of its group's committed offsets (OffsetFetch; librdkafka
        # asks for stable offsets with read_committed).
        got = consumer.committed([TopicPartition(src, p) for p in range(NUM_PARTITIONS)], timeout=30)
        assert {tp.partition: tp.offset for tp in got} == end, (
            f"consumer.committed {[(tp.partition, tp.offset, tp.error) for tp in got]} != input ends {end}"
        )
    finally:
        consumer.close()
    assert not delivery_failures, f"delivery failures: {delivery_failures[:10]}"
    p_errors.assert_no_fatal()
    c_errors.assert_no_fatal()
    print(
        f"ctp: {len(committed_txns)} committed, {len(aborted_txns)} aborted transactions, "
        f"{empty_rounds} empty polls, assignments {assignments}"
    )
    assert len(aborted_txns) >= 3, f"only {len(aborted_txns)} aborted transactions: {aborted_txns}"
    for t in committed_txns + aborted_txns:
        assert delivered[t] == txn_size[t], f"txn {t}: {delivered[t]}/{txn_size[t]} delivery reports"

    # Group offsets through the admin API (OffsetFetch, require_stable).
    assert group_offsets(bootstrap, group, src) == end

    # read_committed: every input record exactly once, only from committed transactions.
    committed_set, aborted_set = set(committed_txns), set(aborted_txns)
    recs, hwm = read_topic(bootstrap, dst, NUM_PARTITIONS, "read_committed")
    p = Problems()
    seen: dict[tuple, tuple] = {}
    per_txn: collections.Counter = collections.Counter()
    last_src: dict[int, int] = {}
    for r in recs:
        t = header_int(r, "txn")
        src_h = r.headers.get("src")
        try:
            sp, so = (int(x) for x in src_h.split(b":"))
        except (AttributeError, ValueError):
            p.add(f"output {r.partition}@{r.offset}: bad headers {r.headers}")
            continue
        per_txn[t] += 1
        if t in aborted_set:
            p.add(f"output {r.partition}@{r.offset}: from aborted txn {t} (source {sp}:{so})")
        elif t not in committed_set:
            p.add(f"output {r.partition}@{r.offset}: from unknown txn {t}")
        if r.partition != sp:
            p.add(f"output {r.partition}@{r.offset}: copy of source partition {sp}")
        want = input_at.get((sp, so))
        if want is None:
            p.add(f"output {r.partition}@{r.offset}: source {sp}:{so} does not exist")
        elif (r.key, r.value) != (want[0], b"out-" + want[1]):
            p.add(f"output {r.partition}@{r.offset}: {(r.key, r.value)} is not the copy of {want}")
        if (sp, so) in seen:
            p.add(f"source {sp}:{so} copied twice: output {seen[(sp, so)]} and {(r.partition, r.offset)} (txn {t})")
        seen[(sp, so)] = (r.partition, r.offset)
        if last_src.get(r.partition, -1) >= so:
            p.add(f"output partition {r.partition}: source offset {so} after {last_src[r.partition]}")
        last_src[r.partition] = so
    missing = sorted(set(input_at) - set(seen))
    if missing:
        p.add(f"{len(missing)} input records missing from read_committed output; first {missing[:10]}")
    for t in committed_txns:
        if per_txn[t] != txn_size[t]:
            p.add(f"committed txn {t}: {per_txn[t]}/{txn_size[t]} records visible to read_committed")
    p.check(f"read_committed view of {dst} ({len(recs)} records, high watermarks {hwm})")
    assert len(recs) == CTP_RECORDS

    # read_uncommitted: everything that was written, the aborted transactions included.
    recs_u, _ = read_topic(bootstrap, dst, NUM_PARTITIONS, "read_uncommitted")
    per_txn_u = collections.Counter(header_int(r, "txn") for r in recs_u)
    p = Problems()
    for t in committed_txns + aborted_txns:
        if per_txn_u[t] != txn_size[t]:
            kind = "aborted" if t in aborted_set else "committed"
            p.add(f"{kind} txn {t}: {per_txn_u[t]}/{txn_size[t]} records visible to read_uncommitted")
    p.check(f"read_uncommitted view of {dst}")
    assert len(recs_u) == sum(txn_size.values()) > CTP_RECORDS, (len(recs_u), sum(txn_size.values()))


def group_offsets(bootstrap: str, group: str, topic: str, deadline_s: float = 30.0) -> dict:
    """The group's committed offsets for topic (OffsetFetch, require_stable), retried while the
    broker answers UNSTABLE_OFFSET_COMMIT (a transaction's offsets not yet final)."""
    errors = ErrorLog("admin")
    admin = AdminClient(ck_config(bootstrap, "admin", errors))
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(NUM_PARTITIONS)])]
    deadline = Deadline(deadline_s)
    last = None
    for _ in range(1_000):
        try:
            res = admin.list_consumer_group_offsets(request, require_stable=True, request_timeout=10)[group].result(
                timeout=30
            )
            bad = [(tp.partition, tp.error) for tp in res.topic_partitions if tp.error is not None]
            if not bad:
                return {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic}
            last = bad
        except KafkaException as exc:
            last = describe(exc.args[0])
        if deadline.expired():
            break
        time.sleep(0.2)  # retry pacing, bounded by the deadline
    pytest.fail(f"OffsetFetch(require_stable) for {group} kept failing for {deadline_s}s: {last}")


# --- 2. fencing --------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_producer_fencing_aborts_zombie_transaction(spool_broker, clients):
    bootstrap = spool_broker.bootstrap
    topic = unique("fence")
    create_topics(bootstrap, {topic: NUM_PARTITIONS})
    deadline = Deadline(120)

    a_errors, b_errors = ErrorLog("producer-a"), ErrorLog("producer-b")
    a = Producer(txn_producer_config(bootstrap, "producer-a", "t-fence", a_errors))
    clients.append(a)
    a.init_transactions(TXN_CALL_TIMEOUT_S)
    a.begin_transaction()
    a_at: dict[int, tuple] = {}
    a_late_ok: list = []
    a_failures: list = []

    def a_report(i, err, msg):
        if err is not None:
            a_failures.append((i, err))
        elif i >= FENCE_RECORDS:
            a_late_ok.append((i, msg.partition(), msg.offset()))
        else:
            a_at[i] = (msg.partition(), msg.offset())

    for i in range(FENCE_RECORDS):
        produce_with_retry(
            a, deadline, topic, partition=i % NUM_PARTITIONS, key=b"a-%d" % i, value=b"A|before-fence|%d" % i,
            on_delivery=lambda err, msg, i=i: a_report(i, err, msg),
        )
    assert a.flush(TXN_CALL_TIMEOUT_S) == 0 and not a_failures, f"A's records not delivered: {a_failures[:5]}"
    assert len(a_at) == FENCE_RECORDS
    a_errors.assert_no_fatal()

    # Same transactional.id: must abort A's open transaction and fence A.
    b = Producer(txn_producer_config(bootstrap, "producer-b", "t-fence", b_errors))
    clients.append(b)
    b.init_transactions(60)

    # A, the zombie, carries on: more records (to partitions already in its transaction), commit.
    with pytest.raises(KafkaException) as fenced:
        for i in range(FENCE_RECORDS, FENCE_RECORDS + NUM_PARTITIONS):
            a.produce(topic, partition=i % NUM_PARTITIONS, key=b"a-%d" % i, value=b"A|after-fence|%d" % i,
                      on_delivery=lambda err, msg, i=i: a_report(i, err, msg))
        a.flush(TXN_CALL_TIMEOUT_S)
        a.commit_transaction(TXN_CALL_TIMEOUT_S)
    err = fenced.value.args[0]
    assert isinstance(err, KafkaError), fenced.value
    assert err.fatal() or err.code() in FENCED_CODES, (
        f"fenced producer A failed with {describe(err)}, expected a fatal fencing error (_FENCED)"
    )
    print(f"producer A fenced: {describe(err)}; A error_cb: {[describe(e) for e in a_errors.errors[:5]]}")
    assert not a_late_ok, f"the partition accepted records from fenced producer A: {a_late_ok}"

    # B runs a full transaction.
    b_at: dict[int, tuple] = {}
    b_failures: list = []

    def b_report(i, err, msg):
        if err is not None:
            b_failures.append((i, describe(err)))
        else:
            b_at[i] = (msg.partition(), msg.offset())

    b.begin_transaction()
    for i in range(FENCE_RECORDS):
        produce_with_retry(
            b, deadline, topic, partition=i % NUM_PARTITIONS, key=b"b-%d" % i, value=b"B|%d" % i,
            on_delivery=lambda err, msg, i=i: b_report(i, err, msg),
        )
    b.commit_transaction(TXN_CALL_TIMEOUT_S)
    assert not b_failures and len(b_at) == FENCE_RECORDS, f"B: {len(b_at)} delivered, failures {b_failures[:5]}"
    b_errors.assert_no_fatal()

    committed, _ = read_topic(bootstrap, topic, NUM_PARTITIONS, "read_committed")
    values = [r.value for r in committed]
    assert not [v for v in values if v.startswith(b"A|")], f"read_committed shows A's records: {values[:10]}"
    assert sorted(values) == sorted(b"B|%d" % i for i in range(FENCE_RECORDS)), values
    for r in committed:
        i = int(r.value.split(b"|")[1])
        assert b_at[i] == (r.partition, r.offset), f"B record {i} at {r.partition}@{r.offset}, reported {b_at[i]}"

    uncommitted, _ = read_topic(bootstrap, topic, NUM_PARTITIONS, "read_uncommitted")
    u_values = [r.value for r in uncommitted]
    assert sorted(v for v in u_values if v.startswith(b"A|")) == sorted(
        b"A|before-fence|%d" % i for i in range(FENCE_RECORDS)
    ), f"read_uncommitted should show exactly A's pre-fence records: {sorted(u_values)[:10]}..."
    assert len(u_values) == 2 * FENCE_RECORDS, len(u_values)

    # The fencing bumped the epoch of the transactional.id's producer id (as Kafka does).
    def ids_of(positions) -> set:
        ids = set()
        for part in range(NUM_PARTITIONS):
            batches = stored_batches(bootstrap, topic, part)
            for pp, off in positions:
                if pp != part:
                    continue
                for bt in batches:
                    if bt.base_offset <= off < bt.base_offset + bt.record_count:
                        ids.add((bt.producer_id, bt.producer_epoch))
        return ids

    a_ids, b_ids = ids_of(a_at.values()), ids_of(b_at.values())
    assert len(a_ids) == 1 and len(b_ids) == 1, (a_ids, b_ids)
    (a_pid, a_epoch), (b_pid, b_epoch) = a_ids.pop(), b_ids.pop()
    assert a_pid >= 0 and b_pid == a_pid and b_epoch > a_epoch, (
        f"A wrote as producer {a_pid} epoch {a_epoch}, B as producer {b_pid} epoch {b_epoch}: "
        "expected the same producer id with a higher epoch"
    )


# --- 3. transaction timeout --------------------------------------------------------------


@pytest.mark.timeout(150)
@pytest.mark.spool_settings(
    f"transaction_abort_timed_out_transaction_cleanup_interval_ms={CLEANUP_INTERVAL_MS}"
)
def test_transaction_timeout_aborts_and_releases_lso(spool_broker, clients):
    bootstrap = spool_broker.bootstrap
    topic = unique("timeout")
    create_topics(bootstrap, {topic: 1})
    deadline = Deadline(60)

    t_errors = ErrorLog("producer-timeout")
    producer = Producer(
        txn_producer_config(bootstrap, "producer-timeout", "t-timeout", t_errors,
                            **{"transaction.timeout.ms": TXN_TIMEOUT_MS})
    )
    clients.append(producer)
    producer.init_transactions(TXN_CALL_TIMEOUT_S)
    txn_at: dict[int, int] = {}
    failures: list = []

    def report(i, err, msg):
        if err is not None:
            failures.append((i, describe(err)))
        else:
            txn_at[i] = msg.offset()

    began = time.monotonic()
    producer.begin_transaction()
    for i in range(10):
        produce_with_retry(
            producer, deadline, topic, partition=0, key=b"t-%d" % i, value=b"TXN|%d" % i,
            on_delivery=lambda err, msg, i=i: report(i, err, msg),
        )
    assert producer.flush(TXN_CALL_TIMEOUT_S) == 0 and not failures and len(txn_at) == 10, (
        f"transactional records not delivered: {failures[:5]}"
    )
    # The producer now goes quiet. A later non-transactional record:
    after_at = produce_plain(bootstrap, topic, [(0, b"after", b"AFTER")], "producer-after")
    after_offset = after_at[0][1]
    assert after_offset > max(txn_at.values()), (after_offset, txn_at)

    # read_committed can only get it once the broker aborted the timed-out transaction.
    errors = ErrorLog("reader-lso")
    consumer = Consumer(reader_config(bootstrap, "reader-lso", errors, "read_committed"))
    seen: list[Rec] = []
    seen_at = None
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        wait = Deadline(LSO_DEADLINE_S)
        for _ in range(100_000):
            for m in consumer.consume(num_messages=100, timeout=0.2):
                if m.error() is not None:
                    pytest.fail(f"read_committed consumer error: {describe(m.error())}")
                seen.append(as_rec(m))
                if m.value() == b"AFTER" and seen_at is None:
                    seen_at = time.monotonic()
            if seen_at is not None or wait.expired():
                break
    finally:
        consumer.close()
    assert seen_at is not None, (
        f"read_committed never got the record at offset {after_offset} within {LSO_DEADLINE_S}s: the "
        f"last stable offset stayed behind the transaction that timed out after {TXN_TIMEOUT_MS} ms "
        f"(got {[r.value for r in seen]})"
    )
    elapsed = seen_at - began
    print(f"timed-out transaction released the LSO {elapsed:.2f}s after it began")
    assert elapsed >= TXN_TIMEOUT_MS / 1000 - TIMEOUT_SLACK_S, (
        f"read_committed got offset {after_offset} only {elapsed:.2f}s after the transaction began, "
        f"before its {TXN_TIMEOUT_MS} ms timeout: the last stable offset did not wait for it"
    )
    assert [r.value for r in seen] == [b"AFTER"], f"read_committed got {[r.value for r in seen]}"

    # The old producer's transaction is gone: committing it fails.
    with pytest.raises(KafkaException) as failed:
        producer.commit_transaction(TXN_CALL_TIMEOUT_S)
    print(f"commit of the timed-out transaction: {describe(failed.value.args[0])}")

    # The transactional.id is usable again.
    n_errors = ErrorLog("producer-timeout-2")
    fresh = Producer(txn_producer_config(bootstrap, "producer-timeout-2", "t-timeout", n_errors))
    clients.append(fresh)
    fresh.init_transactions(TXN_CALL_TIMEOUT_S)
    fresh.begin_transaction()
    for i in range(5):
        produce_with_retry(fresh, deadline, topic, partition=0, key=b"n-%d" % i, value=b"NEW|%d" % i)
    fresh.commit_transaction(TXN_CALL_TIMEOUT_S)
    n_errors.assert_no_fatal()

    committed, _ = read_topic(bootstrap, topic, 1, "read_committed")
    assert [r.value for r in committed] == [b"AFTER"] + [b"NEW|%d" % i for i in range(5)], (
        [r.value for r in committed]
    )
    uncommitted, _ = read_topic(bootstrap, topic, 1, "read_uncommitted")
    assert [r.value for r in uncommitted] == (
        [b"TXN|%d" % i for i in range(10)] + [b"AFTER"] + [b"NEW|%d" % i for i in range(5)]
    ), [r.value for r in uncommitted]


# --- 4. kill -9 in the middle of transactions --------------------------------------------

# What each kill -9 round does (cycled):
#   hold-continue: the producer flushes the first half of a transaction (durable, open), holds;
#                  the broker is killed and restarted; the producer then writes the second half
#                  to the restarted broker and commits: the open transaction must survive.
#   committing:    kill while commit_transaction is in flight (as close as the client lets us).
#   hold-abandon:  as hold-continue, but after the restart the producer is thrown away and a new
#                  one with the same transactional.id runs init_transactions, which must abort
#                  the transaction that was open at the crash.
#   producing:     kill while records are being produced.
CRASH_MODES = ["hold-continue", "committing", "hold-abandon", "producing", "committing"]


@dataclass
class TxnSnapshot:
    started: dict = field(default_factory=dict)  # txn -> record count
    committed: set = field(default_factory=set)  # commit_transaction returned
    aborted: set = field(default_factory=set)  # abort_transaction returned
    abandoned: set = field(default_factory=set)  # left open at a crash, producer re-created
    half_durable: set = field(default_factory=set)  # first half flushed before a hold
    uncertain: set = field(default_factory=set)  # ended by re-creating the producer after errors


def crash_key(txn: int, i: int) -> bytes:
    return b"t%06d-%05d" % (txn, i)


def crash_value(txn: int, i: int, n: int) -> bytes:
    return b"txn=%d|i=%d|n=%d|" % (txn, i, n) + b"x" * ((txn * 7 + i) % 50)


class CrashProducer(threading.Thread):
    """Runs transactions back to back until stopped. Can be paused between transactions (then
    none of its transactions is open: each ended by commit, abort or a re-initialisation), and
    asked to hold in the middle of one (first half flushed) until released."""

    def __init__(self, bootstrap: str, topic: str, txn_id: str):
        super().__init__(name="crash-producer", daemon=True)
        self.bootstrap, self.topic, self.txn_id = bootstrap, topic, txn_id
        self.cond = threading.Condition()
        self.phase = "starting"  # recovering | producing | holding | committing | paused | done
        self.current_txn = 0
        self.pause_req = False
        self.stop_req = False
        self.hold_req: str | None = None  # "continue" | "abandon"
        self.hold_release = False
        self.held: list[tuple] = []  # (txn, mode)
        self.snap = TxnSnapshot()
        self.events: collections.deque = collections.deque(maxlen=60)
        self.producers_created = 0
        self.failure: str | None = None
        self.errors = ErrorLog("crash-producer")

    # --- control, from the test thread ---

    def wait_until(self, pred, seconds: float, what: str) -> None:
        with self.cond:
            ok = self.cond.wait_for(lambda: pred() or self.phase == "done", timeout=seconds)
            ok = ok and pred()
        if not ok:
            pytest.fail(f"{what}: not within {seconds}s; {self.diagnostics()}")

    def committed_count(self) -> int:
        with self.cond:
            return len(self.snap.committed)

    def request_hold(self, mode: str) -> None:
        with self.cond:
            self.hold_req, self.hold_release = mode, False
            self.cond.notify_all()

    def release_hold(self) -> None:
        with self.cond:
            self.hold_release = True
            self.cond.notify_all()

    def pause(self) -> TxnSnapshot:
        with self.cond:
            self.pause_req = True
            self.cond.notify_all()
        self.wait_until(lambda: self.phase == "paused", CRASH_PAUSE_DEADLINE_S, "producer pause")
        return self.snapshot()

    def resume(self) -> None:
        with self.cond:
            self.pause_req = False
            self.cond.notify_all()

    def stop(self, seconds: float) -> None:
        with self.cond:
            self.stop_req = True
            self.cond.notify_all()
        self.join(timeout=seconds)
        assert not self.is_alive(), f"producer thread did not stop within {seconds}s; {self.diagnostics()}"

    def snapshot(self) -> TxnSnapshot:
        with self.cond:
            s = self.snap
            return TxnSnapshot(dict(s.started), set(s.committed), set(s.aborted), set(s.abandoned),
                               set(s.half_durable), set(s.uncertain))

    def diagnostics(self) -> str:
        with self.cond:
            s = self.snap
            return (
                f"producer phase {self.phase} (txn {self.current_txn}), {len(s.started)} begun, "
                f"{len(s.committed)} committed, {len(s.aborted)} aborted, {len(s.abandoned)} abandoned, "
                f"{len(s.uncertain)} uncertain, {self.producers_created} producers created; "
                f"thread failure: {self.failure}; recent events: {list(self.events)[-15:]}"
            )

    # --- the producer thread ---

    def _set(self, **kw) -> None:
        with self.cond:
            for k, v in kw.items():
                setattr(self, k, v)
            self.cond.notify_all()

    def _event(self, txn: int, stage: str, err) -> None:
        with self.cond:
            self.events.append(f"txn {txn} {stage}: {describe(err)}")

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test, with the traceback
            self.failure = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        finally:
            self._set(phase="done")

    def _run(self) -> None:
        producer = None
        deadline = Deadline(CRASH_PRODUCER_DEADLINE_S)
        txn = 0
        try:
            for _ in range(100_000):
                if deadline.expired():
                    raise RuntimeError(f"producer still running after {CRASH_PRODUCER_DEADLINE_S}s")
                if producer is None:
                    # init_transactions also finishes (fences, aborts) the previous incarnation's
                    # transaction, so only a producer that got through it may pause or stop.
                    self._set(phase="recovering")
                    producer = self._new_producer(txn)
                    if producer is None:
                        with self.cond:
                            if self.cond.wait_for(lambda: self.stop_req, timeout=0.5):  # retry pacing
                                return
                        continue
                with self.cond:
                    if self.pause_req and not self.stop_req:
                        self.phase = "paused"
                        self.cond.notify_all()
                        self.cond.wait_for(lambda: not self.pause_req or self.stop_req,
                                           timeout=max(1.0, deadline.remaining()))
                    if self.stop_req:
                        return
                txn += 1
                if not self._one_txn(producer, txn):
                    self._drop(producer)
                    producer = None
            raise RuntimeError("producer loop bound reached")
        finally:
            if producer is not None:
                self._drop(producer)

    def _new_producer(self, txn: int):
        config = txn_producer_config(
            self.bootstrap, "crash-producer", self.txn_id, self.errors,
            **{"transaction.timeout.ms": CRASH_TXN_TIMEOUT_MS},
        )
        producer = Producer(config)
        with self.cond:
            self.producers_created += 1
        for attempt in range(CRASH_INIT_ATTEMPTS):
            try:
                producer.init_transactions(TXN_CALL_TIMEOUT_S)
                return producer
            except KafkaException as exc:
                err = exc.args[0]
                self._event(txn, f"init_transactions attempt {attempt}", err)
                if not err.retriable() or err.fatal():
                    break
        self._drop(producer)
        return None

    def _drop(self, producer) -> None:
        """Throws a producer away without ending its transaction (the next init_transactions
        with the same transactional.id has to). Destroyed when the last reference goes."""
        try:
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.flush(5)
        except Exception as exc:  # noqa: BLE001 - a fenced/fatal producer may refuse; it goes anyway
            with self.cond:
                self.events.append(f"dropping producer: {exc!r}")

    def _hold(self, producer, txn: int, mode: str) -> bool:
        """Mid-transaction hold: first half flushed, wait (bounded) for the test to release.
        Returns False when the transaction is to be abandoned."""
        remaining = producer.flush(TXN_CALL_TIMEOUT_S)
        with self.cond:
            if remaining == 0:
                self.snap.half_durable.add(txn)
            else:
                self.events.append(f"txn {txn}: {remaining} records undelivered before the hold")
            self.held.append((txn, mode))
            self.phase = "holding"
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.hold_release or self.stop_req, timeout=CRASH_PAUSE_DEADLINE_S)
            self.hold_req, self.hold_release = None, False
            if mode == "abandon":
                self.snap.abandoned.add(txn)
                return False
            self.phase = "producing"
            self.cond.notify_all()
        return True

    def _one_txn(self, producer, txn: int) -> bool:
        """One transaction. True if the producer can go on (committed, or aborted), False if it
        must be re-created."""
        n = CRASH_TXN_RECORDS
        self._set(phase="producing", current_txn=txn)
        stage = "begin_transaction"
        deadline = Deadline(120)
        try:
            producer.begin_transaction()
            with self.cond:
                self.snap.started[txn] = n
                hold = self.hold_req
            stage = "produce"
            for i in range(n):
                if hold is not None and i == n // 2:
                    if not self._hold(producer, txn, hold):
                        return False
                for _ in range(100_000):
                    try:
                        producer.produce(
                            self.topic, partition=i % NUM_PARTITIONS, key=crash_key(txn, i),
                            value=crash_value(txn, i, n),
                            headers=[("txn", b"%d" % txn), ("i", b"%d" % i), ("n", b"%d" % n)],
                        )
                        break
                    except BufferError:
                        if deadline.expired():
                            raise RuntimeError(f"txn {txn}: local queue full for 120s")
                        producer.poll(0.05)
                producer.poll(0)
            self._set(phase="committing")
            stage = "commit_transaction"
            for attempt in range(CRASH_COMMIT_ATTEMPTS):
                try:
                    producer.commit_transaction(TXN_CALL_TIMEOUT_S)
                except KafkaException as exc:
                    err = exc.args[0]
                    self._event(txn, f"commit attempt {attempt}", err)
                    if err.retriable() and not err.fatal() and not err.txn_requires_abort():
                        continue  # librdkafka: a retriable commit error may be retried
                    raise
                with self.cond:
                    self.snap.committed.add(txn)
                    self.cond.notify_all()
                return True
            with self.cond:
                self.snap.uncertain.add(txn)
            return False
        except KafkaException as exc:
            err = exc.args[0]
            self._event(txn, stage, err)
            if stage == "begin_transaction" and not err.fatal():
                return False
            if not err.fatal() and err.txn_requires_abort():
                self._set(phase="recovering")
                for attempt in range(CRASH_ABORT_ATTEMPTS):
                    try:
                        producer.abort_transaction(TXN_CALL_TIMEOUT_S)
                    except KafkaException as exc2:
                        err2 = exc2.args[0]
                        self._event(txn, f"abort attempt {attempt}", err2)
                        if err2.retriable() and not err2.fatal():
                            continue
                        break
                    with self.cond:
                        self.snap.aborted.add(txn)
                    return True
            with self.cond:
                if txn in self.snap.started:
                    self.snap.uncertain.add(txn)
            return False


def check_crash_view(recs: list[Rec], snap: TxnSnapshot, what: str) -> dict:
    """What read_committed shows: complete transactions only, each record once, in production
    order per partition; every committed transaction; no aborted or abandoned one."""
    p = Problems()
    by_txn: dict[int, tuple] = {}  # txn -> (n, Counter of indexes)
    last: dict[int, tuple] = {}
    for r in recs:
        txn, i, n = header_int(r, "txn"), header_int(r, "i"), header_int(r, "n")
        if txn is None or i is None or n is None:
            p.add(f"{r.partition}@{r.offset}: bad headers {r.headers}")
            continue
        if r.key != crash_key(txn, i) or r.value != crash_value(txn, i, n):
            p.add(f"{r.partition}@{r.offset}: txn {txn} record {i}: key/value {r.key!r}/{r.value[:30]!r}... damaged")
        if r.partition != i % NUM_PARTITIONS:
            p.add(f"{r.partition}@{r.offset}: txn {txn} record {i} belongs in partition {i % NUM_PARTITIONS}")
        prev = last.get(r.partition)
        if prev is not None and (txn, i) <= prev:
            p.add(f"partition {r.partition}: txn {txn} record {i} at offset {r.offset} comes after txn {prev[0]} record {prev[1]}")
        last[r.partition] = (txn, i)
        entry = by_txn.setdefault(txn, (n, collections.Counter()))
        if entry[0] != n:
            p.add(f"txn {txn}: records disagree on the count ({entry[0]} vs {n})")
        entry[1][i] += 1
    for txn, (n, idx) in sorted(by_txn.items()):
        if txn not in snap.started:
            p.add(f"txn {txn}: visible but never begun")
        elif snap.started[txn] != n:
            p.add(f"txn {txn}: records say {n} records, {snap.started[txn]} were produced")
        dups = sorted(i for i, c in idx.items() if c > 1)
        if dups:
            p.add(f"txn {txn}: records visible more than once: {dups[:10]}")
        missing = [i for i in range(n) if i not in idx]
        if missing:
            p.add(f"txn {txn}: PARTIAL: {n - len(missing)}/{n} records visible; first missing {missing[:10]}")
        if txn in snap.aborted:
            p.add(f"txn {txn}: visible although abort_transaction succeeded")
        if txn in snap.abandoned:
            p.add(f"txn {txn}: visible although it was left open at a crash and its producer re-initialised")
    lost = sorted(snap.committed - set(by_txn))
    if lost:
        p.add(f"{len(lost)} transactions whose commit_transaction succeeded are not visible: {lost[:20]}")
    p.check(what)
    return by_txn


@pytest.mark.timeout(1_800)
@pytest.mark.spool_settings("flush_mode=durable")
def test_transactions_survive_kill9(spool_broker):
    bootstrap = spool_broker.bootstrap
    topic = unique("crash")
    create_topics(bootstrap, {topic: NUM_PARTITIONS})

    producer = CrashProducer(bootstrap, topic, "t-crash")
    producer.start()
    kills = []
    try:
        for rnd, mode in enumerate(CRASH_MODES[:CRASH_ROUNDS]):
            what = f"kill -9 #{rnd + 1} ({mode})"
            base = producer.committed_count()
            producer.wait_until(
                lambda: len(producer.snap.committed) >= base + CRASH_COMMITS_PER_ROUND,
                CRASH_PROGRESS_DEADLINE_S,
                f"{what}: {CRASH_COMMITS_PER_ROUND} more commits" + (" after the previous restart" if rnd else ""),
            )
            if mode.startswith("hold-"):
                producer.request_hold(mode[len("hold-"):])
                target = "holding"
            else:
                target = mode
            producer.wait_until(lambda: producer.phase == target, CRASH_PHASE_DEADLINE_S,
                                f"{what}: producer {target}")
            with producer.cond:
                kills.append((rnd + 1, mode, producer.phase, producer.current_txn))
            spool_broker.kill9()
            spool_broker.restart()
            if mode.startswith("hold-"):
                producer.release_hold()

            snap = producer.pause()
            recs, hwm = read_topic(bootstrap, topic, NUM_PARTITIONS, "read_committed")
            by_txn = check_crash_view(recs, snap, f"read_committed after {what}")
            print(
                f"{what}, txn {kills[-1][3]} ({kills[-1][2]}): {len(by_txn)} transactions visible, "
                f"{len(snap.committed)} committed, {len(snap.aborted)} aborted, {len(snap.abandoned)} "
                f"abandoned, {len(snap.uncertain)} uncertain; high watermarks {hwm}"
            )
            producer.resume()

        base = producer.committed_count()
        producer.wait_until(
            lambda: len(producer.snap.committed) >= base + CRASH_COMMITS_PER_ROUND,
            CRASH_PROGRESS_DEADLINE_S,
            f"{CRASH_COMMITS_PER_ROUND} commits after the last restart",
        )
    finally:
        producer.stop(CRASH_PAUSE_DEADLINE_S)
    assert producer.failure is None, f"producer thread failed: {producer.failure}"

    snap = producer.snapshot()
    recs, hwm = read_topic(bootstrap, topic, NUM_PARTITIONS, "read_committed")
    by_txn = check_crash_view(recs, snap, "read_committed at the end")
    print(
        f"kills {kills}; holds {producer.held}; {len(snap.started)} transactions begun, "
        f"{len(snap.committed)} committed, {len(snap.aborted)} aborted, {len(snap.abandoned)} abandoned, "
        f"{len(snap.uncertain)} uncertain, {len(by_txn)} visible; {producer.producers_created} producers; "
        f"events: {list(producer.events)[-20:]}"
    )
    assert len(kills) == CRASH_ROUNDS
    assert len(snap.committed) >= (CRASH_ROUNDS + 1) * CRASH_COMMITS_PER_ROUND

    # A transaction held open across a crash was still committable afterwards (Kafka keeps
    # ongoing transactions in the transaction log and producer state in the partitions).
    for txn, mode in producer.held:
        if mode == "continue":
            assert txn in snap.committed, (
                f"txn {txn} was open (first half durable) when the broker was killed; after the "
                f"restart its second half and commit_transaction failed: {list(producer.events)[-10:]}"
            )
    # The abandoned transactions' first halves are in the log, aborted: read_uncommitted shows them.
    recs_u, _ = read_topic(bootstrap, topic, NUM_PARTITIONS, "read_uncommitted")
    visible_u = collections.Counter(header_int(r, "txn") for r in recs_u)
    for txn in snap.abandoned & snap.half_durable:
        assert visible_u[txn] >= CRASH_TXN_RECORDS // 2, (
            f"abandoned txn {txn}: only {visible_u[txn]} of its {CRASH_TXN_RECORDS // 2} flushed records in the log"
        )
    assert snap.abandoned, f"no transaction was abandoned at a crash: holds {producer.held}"

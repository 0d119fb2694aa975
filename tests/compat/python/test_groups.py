"""spool consumer groups with real clients: kafka-python 3.0.12 and confluent-kafka 2.16.1.

Pins Kafka's classic consumer-group semantics (FindCoordinator, JoinGroup, SyncGroup,
Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups):

1. Processing exactly once across a group (one test per client). Three consumers in one
   group, each in its own thread, share a 6-partition topic while a producer thread writes
   30,000 records (15,000, then - once a consumer has left - 15,000 more). Auto-commit is
   off: a consumer commits what it has processed (synchronously, after processing, every
   COMMIT_EVERY records) and commits the rest when partitions are revoked (rebalance
   listener / on_revoke; also run by close()). Mid-stream one consumer close()s and leaves;
   the other two take its partitions over exactly where it stopped. Every record must be
   processed exactly once, by whichever member owned its partition, and every handover of a
   partition must continue at the next offset (no gap, no overlap). The committed offsets
   (read back with the client's admin API) are then the log end offsets; the broker is
   restarted (same port, same data dir) and they are still there, and a new consumer in the
   group reads only records produced after the last commit.
2. Static membership (KIP-345, confluent-kafka): two members with group.instance.id; one is
   closed (a static member sends no LeaveGroup) and replaced by a new consumer with the same
   group.instance.id within session.timeout.ms. It gets the same partitions back and the
   other member's rebalance callbacks never fire.
3. Group administration through each client's admin client: ListGroups (states),
   DescribeGroups (state, members, assignments), OffsetFetch (committed offsets),
   DeleteGroups (NON_EMPTY_GROUP for a group with members, success for an empty one, which
   then is gone with its offsets).

kafka-python 3.0 names its admin methods list_groups / describe_groups / list_group_offsets /
delete_groups (2.x: list_consumer_groups, ...); those are the ones used here.

Threads: every client object is created, used and closed by one thread. Waits are bounded
(Deadline) and wait on conditions the worker threads signal; nothing sleeps to synchronise.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid

import pytest

from compat_common import Deadline, Problems

NUM_PARTITIONS = 6
NUM_RECORDS = 30_000
FIRST_HALF = NUM_RECORDS // 2
# The leaving consumer goes once the group has processed this many records.
LEAVE_AFTER = 7_500
# A consumer commits after processing once this many of its records are uncommitted; the
# rest is committed on revoke (rebalance or close).
COMMIT_EVERY = 1_000
# Records produced while the group is down, read after the broker restart.
EXTRA_PER_PARTITION = 100
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 300
# Also the rebalance timeout: how long a join waits for members that must rejoin.
MAX_POLL_INTERVAL_MS = 30_000
REBALANCE_DELAY_MS = 200

ASSIGN_DEADLINE_S = 30.0
PHASE_DEADLINE_S = 60.0
CLOSE_DEADLINE_S = 30.0
# How long the surviving static member is watched for a rebalance after its peer's
# replacement got its partitions: several heartbeat intervals (a rebalance reaches a member
# through its next heartbeat), and at least until both members consumed fresh records.
STATIC_WATCH_S = 6 * HEARTBEAT_INTERVAL_MS / 1000

pytestmark = pytest.mark.spool_settings(
    f"group_initial_rebalance_delay_ms={REBALANCE_DELAY_MS}",
    f"num_partitions={NUM_PARTITIONS}",
)


def new_name(client: str, label: str) -> str:
    return f"compat-{client}-{label}-{uuid.uuid4().hex[:8]}"


def rec_key(i: int) -> bytes:
    return b"key-%06d" % i


def rec_value(i: int) -> bytes:
    return b"rec-%06d|" % i + b"x" * (i % 97)


def index_of(value: bytes) -> int:
    return int(value[4:10])


# --- What the group processed ------------------------------------------------------------


class Ledger:
    """Every record handed to the application, in processing order, plus a condition the
    worker threads notify on every change (records, assignments, closes)."""

    def __init__(self):
        self.cond = threading.Condition()
        self.entries: list[tuple] = []  # (worker, partition, offset, index)
        self.indexes: set[int] = set()

    def record(self, worker: str, partition: int, offset: int, value: bytes) -> None:
        idx = index_of(value)
        with self.cond:
            self.entries.append((worker, partition, offset, idx))
            self.indexes.add(idx)
            self.cond.notify_all()

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, pred, deadline: Deadline) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout=deadline.remaining())

    def snapshot(self) -> list[tuple]:
        with self.cond:
            return list(self.entries)


def check_exactly_once(entries: list[tuple], produced: dict, what: str) -> None:
    """Each produced (partition, offset) processed exactly once, carrying its own record."""
    p = Problems()
    seen: dict[tuple, str] = {}
    for worker, part, off, idx in entries:
        want = produced.get((part, off))
        if want is None:
            p.add(f"{worker} processed p{part}@{off} (record {idx}), which was not produced here")
        elif want != idx:
            p.add(f"{worker} processed p{part}@{off} as record {idx}; the producer put record {want} there")
        if (part, off) in seen:
            p.add(f"p{part}@{off} (record {idx}) processed twice: by {seen[(part, off)]} and by {worker}")
        else:
            seen[(part, off)] = worker
    missing = sorted(set(produced) - set(seen))
    if missing:
        p.add(f"{len(missing)} produced records never processed; first {missing[:10]}")
    p.check(what)


def ownership_runs(entries: list[tuple]) -> dict[int, list[list]]:
    """Per partition, the runs of consecutive processing by one worker: [worker, first, last]."""
    runs: dict[int, list[list]] = {}
    for worker, part, off, _idx in entries:
        r = runs.setdefault(part, [])
        if r and r[-1][0] == worker:
            r[-1][2] = off
        else:
            r.append([worker, off, off])
    return runs


def check_handovers(entries: list[tuple]) -> dict[int, list[list]]:
    """Within a run offsets go up by one; a new owner starts right after the old one's last."""
    p = Problems()
    last: dict[int, tuple] = {}
    for worker, part, off, _idx in entries:
        prev = last.get(part)
        expected = 0 if prev is None else prev[1] + 1
        if off != expected:
            who = "start" if prev is None else (
                f"after {prev[0]} processed offset {prev[1]}" if prev[0] == worker
                else f"handover {prev[0]} -> {worker}: {prev[0]} last processed {prev[1]}"
            )
            p.add(f"p{part}: {worker} processed offset {off}, expected {expected} ({who})")
        last[part] = (worker, off)
    p.check("partition handovers (no gap, no overlap)")
    return ownership_runs(entries)


# --- Worker threads: one consumer each ---------------------------------------------------


class Worker(threading.Thread):
    """A group member in its own thread: poll, process (into the ledger), commit after
    processing every `commit_every` records, commit the rest on revoke. Stops (close()) when
    `stop_event` is set."""

    client = "?"

    def __init__(self, name, bootstrap, group, topic, ledger, commit_every=COMMIT_EVERY, extra=None):
        super().__init__(name=name, daemon=True)
        self.bootstrap, self.group, self.topic, self.ledger = bootstrap, group, topic, ledger
        self.commit_every = commit_every
        self.extra = dict(extra or {})
        self.stop_event = threading.Event()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.assigned: set[int] = set()
        self.assignments: list[tuple] = []  # every assignment callback, in order
        self.revocations: list[tuple] = []
        self.lost: list[tuple] = []
        self.pending: dict[int, int] = {}  # partition -> next offset, processed but not committed
        self.uncommitted = 0
        self.processed = 0
        self.commits = 0  # successful commits after processing
        self.revoke_commits = 0  # successful commits from the revoke callback
        self.commit_errors: list[str] = []
        self.errors: list[str] = []
        self.pending_at_close: dict[int, int] = {}

    # Called on the consumer's thread (or its I/O thread while the consumer thread is
    # blocked in poll/close).
    def on_assigned(self, partitions) -> None:
        parts = sorted(p for t, p in partitions if t == self.topic)
        with self.lock:
            self.assigned |= set(parts)
            self.assignments.append(tuple(parts))
        self.ledger.notify()

    def on_revoked(self, partitions, lost=False) -> dict[int, int]:
        """Forgets the partitions; returns what must be committed for them (nothing if lost)."""
        parts = sorted(p for t, p in partitions if t == self.topic)
        with self.lock:
            (self.lost if lost else self.revocations).append(tuple(parts))
            self.assigned -= set(parts)
            to_commit = {p: self.pending[p] for p in parts if p in self.pending}
        self.ledger.notify()
        return to_commit

    def committed_ok(self, offsets: dict[int, int], on_revoke: bool) -> None:
        with self.lock:
            for p, off in offsets.items():
                if self.pending.get(p) == off:
                    del self.pending[p]
            if on_revoke:
                self.revoke_commits += 1
            else:
                self.uncommitted = 0
                self.commits += 1
        self.ledger.notify()

    def revoked_done(self, partitions) -> None:
        """After the revoke commit (or a failed one): nothing is owed for revoked partitions."""
        with self.lock:
            for t, p in partitions:
                if t == self.topic:
                    self.pending.pop(p, None)

    def process(self, partition: int, offset: int, value: bytes) -> None:
        self.ledger.record(self.name, partition, offset, value)
        with self.lock:
            self.pending[partition] = offset + 1
            self.uncommitted += 1
            self.processed += 1

    def due_commit(self) -> dict[int, int]:
        with self.lock:
            if self.uncommitted >= self.commit_every and self.pending:
                return dict(self.pending)
        return {}

    def current(self) -> set[int]:
        with self.lock:
            return set(self.assigned)

    def run(self) -> None:
        try:
            self.consume_loop()
        except BaseException as exc:  # reported by the test, with the traceback
            self.errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        finally:
            self.closed.set()
            self.ledger.notify()

    def consume_loop(self) -> None:
        raise NotImplementedError

    def stop(self, deadline: Deadline) -> None:
        self.stop_event.set()
        self.join(timeout=max(0.1, deadline.remaining()))
        assert not self.is_alive(), f"{self.name}: consumer thread did not finish close() in time"

    def assert_clean(self) -> None:
        assert not self.errors, f"{self.name}: consumer thread failed:\n" + "\n".join(self.errors)
        assert not self.commit_errors, f"{self.name}: offset commits failed: {self.commit_errors[:10]}"
        assert not self.lost, f"{self.name}: partitions lost (member evicted?): {self.lost}"


def start_workers(workers) -> None:
    for w in workers:
        w.start()


def stop_all(workers, deadline: Deadline) -> None:
    for w in workers:
        w.stop_event.set()
    for w in workers:
        w.join(timeout=max(0.1, deadline.remaining()))
    alive = [w.name for w in workers if w.is_alive()]
    assert not alive, f"consumer threads did not finish close() in time: {alive}"


def wait_assigned(ledger: Ledger, workers, deadline: Deadline, what: str) -> None:
    """Until the workers split all partitions between them, each holding at least one."""

    def ok():
        sets = [w.current() for w in workers]
        union = set().union(*sets)
        return (
            all(sets)
            and sum(len(s) for s in sets) == NUM_PARTITIONS
            and union == set(range(NUM_PARTITIONS))
        )

    if not ledger.wait_for(lambda: ok() or any(w.errors for w in workers), deadline):
        pytest.fail(
            f"{what}: partitions not split between {len(workers)} members within "
            f"{deadline.seconds}s: { {w.name: sorted(w.current()) for w in workers} }; "
            f"assignments so far: { {w.name: w.assignments for w in workers} }"
        )
    for w in workers:
        assert not w.errors, f"{w.name}: " + "\n".join(w.errors)


# --- kafka-python ------------------------------------------------------------------------

from kafka import (  # noqa: E402
    AsyncConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition as KTopicPartition,
)
from kafka.structs import OffsetAndMetadata  # noqa: E402


class KpyWorker(Worker):
    client = "kafka-python"

    def consume_loop(self) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=self.name,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
            fetch_max_wait_ms=100,
            **self.extra,
        )
        worker = self

        def as_offsets(offsets):
            return {
                KTopicPartition(worker.topic, p): OffsetAndMetadata(off, "", -1)
                for p, off in offsets.items()
            }

        class Listener(AsyncConsumerRebalanceListener):
            # Runs on the consumer's I/O loop while the consumer thread is blocked in poll() or
            # close(); a blocking consumer call would deadlock there, so the commit is awaited.
            async def on_partitions_revoked(self, revoked):
                parts = [(tp.topic, tp.partition) for tp in revoked]
                to_commit = worker.on_revoked(parts)
                try:
                    if to_commit:
                        await consumer.commit_async(as_offsets(to_commit))
                        worker.committed_ok(to_commit, on_revoke=True)
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    worker.commit_errors.append(f"on revoke {to_commit}: {type(exc).__name__}: {exc}")
                finally:
                    worker.revoked_done(parts)

            async def on_partitions_assigned(self, assigned):
                worker.on_assigned([(tp.topic, tp.partition) for tp in assigned])

            async def on_partitions_lost(self, lost):
                parts = [(tp.topic, tp.partition) for tp in lost]
                worker.on_revoked(parts, lost=True)
                worker.revoked_done(parts)

        try:
            consumer.subscribe([self.topic], listener=Listener())
            for _ in range(1_000_000):
                batch = consumer.poll(timeout_ms=100, max_records=500)
                for _tp, msgs in batch.items():
                    for m in msgs:
                        self.process(m.partition, m.offset, m.value)
                if self.stop_event.is_set():
                    break  # what is left uncommitted is committed on revoke, in close()
                due = self.due_commit()
                if due:
                    try:
                        consumer.commit(as_offsets(due))
                        self.committed_ok(due, on_revoke=False)
                    except Exception as exc:  # noqa: BLE001
                        self.commit_errors.append(f"after processing {due}: {type(exc).__name__}: {exc}")
        finally:
            self.pending_at_close = dict(self.pending)
            # Revokes the assignment (the listener commits what is left), then LeaveGroup.
            consumer.close(timeout_ms=int(CLOSE_DEADLINE_S * 1000))


def kpy_create_topic(bootstrap: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="compat-kpy-admin")
    try:
        admin.create_topics(
            {topic: {"num_partitions": NUM_PARTITIONS, "replication_factor": 1}},
            timeout_ms=30_000,
            raise_errors=True,
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def kpy_produce(bootstrap: str, topic: str, indexes) -> dict:
    """Writes records `indexes` to partition index % 6; returns {(partition, offset): index}."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="compat-kpy-producer",
        acks="all",
        linger_ms=5,
        request_timeout_ms=30_000,
        delivery_timeout_ms=60_000,
        max_block_ms=30_000,
    )
    try:
        futures = [
            (i, producer.send(topic, key=rec_key(i), value=rec_value(i), partition=i % NUM_PARTITIONS))
            for i in indexes
        ]
        producer.flush(timeout=60)
        at = {}
        for i, f in futures:
            md = f.get(timeout=30)
            at[(md.partition, md.offset)] = i
        return at
    finally:
        producer.close(timeout=10)


def kpy_committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="compat-kpy-admin")
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic}


# --- confluent-kafka ---------------------------------------------------------------------

from confluent_kafka import (  # noqa: E402
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition as CTopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def ck_base(bootstrap: str, who: str) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": who,
        "broker.address.family": "v4",
    }


class CkWorker(Worker):
    client = "confluent-kafka"

    def consume_loop(self) -> None:
        self.client_errors: list = []
        config = ck_base(self.bootstrap, self.name)
        config.update(
            {
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
                "session.timeout.ms": SESSION_TIMEOUT_MS,
                "heartbeat.interval.ms": HEARTBEAT_INTERVAL_MS,
                "max.poll.interval.ms": MAX_POLL_INTERVAL_MS,
                "fetch.wait.max.ms": 100,
                "error_cb": self.client_errors.append,
            }
        )
        config.update(self.extra)
        consumer = Consumer(config)

        def commit(offsets: dict[int, int]) -> None:
            result = consumer.commit(
                offsets=[CTopicPartition(self.topic, p, off) for p, off in offsets.items()],
                asynchronous=False,
            )
            bad = [(tp.partition, tp.error) for tp in result or [] if tp.error is not None]
            if bad:
                raise KafkaException(f"partition errors {bad}")

        def on_assign(_c, partitions):
            self.on_assigned([(tp.topic, tp.partition) for tp in partitions])

        def on_revoke(_c, partitions):
            parts = [(tp.topic, tp.partition) for tp in partitions]
            to_commit = self.on_revoked(parts)
            try:
                if to_commit:
                    commit(to_commit)
                    self.committed_ok(to_commit, on_revoke=True)
            except Exception as exc:  # noqa: BLE001
                self.commit_errors.append(f"on revoke {to_commit}: {exc}")
            finally:
                self.revoked_done(parts)

        def on_lost(_c, partitions):
            parts = [(tp.topic, tp.partition) for tp in partitions]
            self.on_revoked(parts, lost=True)
            self.revoked_done(parts)

        try:
            consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
            for _ in range(1_000_000):
                for m in consumer.consume(num_messages=500, timeout=0.1):
                    if m.error() is not None:
                        self.errors.append(f"message error: {m.error()}")
                        continue
                    self.process(m.partition(), m.offset(), m.value())
                if self.stop_event.is_set():
                    break  # what is left uncommitted is committed on revoke, in close()
                due = self.due_commit()
                if due:
                    try:
                        commit(due)
                        self.committed_ok(due, on_revoke=False)
                    except Exception as exc:  # noqa: BLE001
                        self.commit_errors.append(f"after processing {due}: {exc}")
        finally:
            self.pending_at_close = dict(self.pending)
            # Serves the revoke callback (which commits what is left), then leaves the group
            # (a static member does not send LeaveGroup).
            consumer.close()
        fatal = [e for e in self.client_errors if e.fatal()]
        if fatal:
            self.errors.append(f"fatal client errors: {fatal}")


def ck_admin(bootstrap: str) -> AdminClient:
    return AdminClient(ck_base(bootstrap, "compat-ck-admin"))


def ck_create_topic(bootstrap: str, topic: str) -> None:
    admin = ck_admin(bootstrap)
    fs = admin.create_topics(
        [NewTopic(topic, num_partitions=NUM_PARTITIONS, replication_factor=1)],
        request_timeout=30,
        operation_timeout=30,
    )
    fs[topic].result(timeout=60)
    deadline = Deadline(30)
    while not deadline.expired():
        tmd = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if tmd is not None and tmd.error is None and sorted(tmd.partitions) == list(range(NUM_PARTITIONS)) and all(
            p.leader >= 0 for p in tmd.partitions.values()
        ):
            return
        time.sleep(0.1)  # metadata propagation poll, bounded by the deadline
    pytest.fail(f"topic {topic} not ready in Metadata within 30s")


def ck_produce(bootstrap: str, topic: str, indexes) -> dict:
    config = ck_base(bootstrap, "compat-ck-producer")
    config.update({"acks": "all", "linger.ms": 5, "message.timeout.ms": 60_000})
    producer = Producer(config)
    at: dict = {}
    failures: list = []

    def report(i, err, msg):
        if err is not None:
            failures.append(f"record {i}: {err}")
        else:
            at[(msg.partition(), msg.offset())] = i

    deadline = Deadline(60)
    for i in indexes:
        while True:
            try:
                producer.produce(
                    topic, key=rec_key(i), value=rec_value(i), partition=i % NUM_PARTITIONS,
                    on_delivery=lambda err, msg, i=i: report(i, err, msg),
                )
                break
            except BufferError:
                assert not deadline.expired(), "producer queue full for 60s"
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(max(1.0, deadline.remaining()))
    assert remaining == 0 and not failures, f"{remaining} undelivered; failures {failures[:10]}"
    return at


def ck_committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = ck_admin(bootstrap)
    fs = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=30)
    res = fs[group].result(timeout=60)
    out = {}
    for tp in res.topic_partitions:
        assert tp.error is None, f"OffsetFetch {group} {tp.topic}-{tp.partition}: {tp.error}"
        if tp.topic == topic and tp.offset >= 0:
            out[tp.partition] = tp.offset
    return out


# --- 1. exactly once across a group, a member leaving, a broker restart ------------------

CLIENTS = {
    "kafka-python": dict(tag="kpy", worker=KpyWorker, create=kpy_create_topic, produce=kpy_produce,
                         committed=kpy_committed),
    "confluent-kafka": dict(tag="ck", worker=CkWorker, create=ck_create_topic, produce=ck_produce,
                            committed=ck_committed),
}


class ProducerThread(threading.Thread):
    """Produces the first half, waits (bounded) for the go-ahead, produces the second half."""

    def __init__(self, produce, bootstrap, topic, go_on: threading.Event, ledger: Ledger):
        super().__init__(name="producer", daemon=True)
        self.produce, self.bootstrap, self.topic, self.go_on = produce, bootstrap, topic, go_on
        self.ledger = ledger
        self.at: dict = {}
        self.errors: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.at.update(self.produce(self.bootstrap, self.topic, range(FIRST_HALF)))
            if not self.go_on.wait(timeout=PHASE_DEADLINE_S):
                self.errors.append("no go-ahead for the second half")
                return
            self.at.update(self.produce(self.bootstrap, self.topic, range(FIRST_HALF, NUM_RECORDS)))
        except BaseException as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        finally:
            self.done.set()
            self.ledger.notify()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", list(CLIENTS))
def test_group_exactly_once_leave_and_broker_restart(spool_broker, client):
    c = CLIENTS[client]
    bootstrap = spool_broker.bootstrap
    topic = new_name(c["tag"], "eo")
    group = new_name(c["tag"], "eo-group")
    c["create"](bootstrap, topic)
    t0 = time.monotonic()

    ledger = Ledger()
    workers = [c["worker"](f"{c['tag']}-member-{n}", bootstrap, group, topic, ledger) for n in "abc"]
    leaver = workers[2]
    go_on = threading.Event()
    producer = ProducerThread(c["produce"], bootstrap, topic, go_on, ledger)
    try:
        start_workers(workers)
        wait_assigned(ledger, workers, Deadline(ASSIGN_DEADLINE_S), "3 members")
        producer.start()

        # Mid-stream: one member leaves once the group is well into the first half and it has
        # processed records of every partition it owns.
        def leaver_progress():
            return {p: sum(1 for e in ledger.entries if e[0] == leaver.name and e[1] == p)
                    for p in leaver.current()}

        deadline = Deadline(PHASE_DEADLINE_S)
        if not ledger.wait_for(
            lambda: (len(ledger.entries) >= LEAVE_AFTER and (lp := leaver_progress()) and all(lp.values()))
            or producer.errors or leaver.errors,
            deadline,
        ):
            pytest.fail(
                f"within {deadline.seconds}s the group processed {len(ledger.entries)}/{LEAVE_AFTER} records "
                f"and {leaver.name} processed {leaver_progress()} (records per owned partition); "
                f"assignments { {w.name: w.assignments for w in workers} }"
            )
        assert not producer.errors, producer.errors
        leaver_had = leaver.current()
        assert leaver_had, f"{leaver.name} owned no partition when it left"
        leaver.stop(Deadline(CLOSE_DEADLINE_S))
        go_on.set()
        t_leave = time.monotonic()

        # The other two take over and the group finishes all 30,000.
        survivors = workers[:2]
        deadline = Deadline(PHASE_DEADLINE_S)
        if not ledger.wait_for(
            lambda: (len(ledger.indexes) >= NUM_RECORDS and producer.done.is_set())
            or producer.errors or any(w.errors for w in survivors),
            deadline,
        ):
            pytest.fail(
                f"group processed {len(ledger.indexes)}/{NUM_RECORDS} distinct records in "
                f"{deadline.seconds}s after {leaver.name} left; per member "
                f"{ {w.name: (w.processed, sorted(w.current())) for w in workers} }"
            )
        producer.join(timeout=5)
        assert not producer.errors, producer.errors
        t_done = time.monotonic()
        survivors_final = {w.name: sorted(w.current()) for w in survivors}
    finally:
        go_on.set()
        stop_all(workers, Deadline(CLOSE_DEADLINE_S))

    for w in workers:
        w.assert_clean()
    entries = ledger.snapshot()
    assert len(producer.at) == NUM_RECORDS
    check_exactly_once(entries, producer.at, f"{client}: 3-member group, {NUM_RECORDS} records")
    runs = check_handovers(entries)
    # The leaver's partitions continued with another member right after its last record.
    p = Problems()
    for part in sorted(leaver_had):
        owners = [r[0] for r in runs.get(part, [])]
        if leaver.name not in owners or owners[-1] == leaver.name:
            p.add(
                f"p{part}: owned by {leaver.name} when it left, but processed by {owners}; "
                f"assignments { {w.name: w.assignments for w in workers} }, "
                f"revocations { {w.name: w.revocations for w in workers} }"
            )
    p.check(f"takeover of {leaver.name}'s partitions")
    assert not leaver.pending_at_close or leaver.revoke_commits >= 1, (
        f"{leaver.name} closed with processed, uncommitted offsets {leaver.pending_at_close} "
        "and its revoke callback committed nothing"
    )
    assert sorted(set().union(*map(set, survivors_final.values()))) == list(range(NUM_PARTITIONS)), (
        f"after the leave the survivors hold {survivors_final}"
    )

    # Everything processed is committed: at the log end offsets.
    per_partition = {p: 0 for p in range(NUM_PARTITIONS)}
    for (part, _off) in producer.at:
        per_partition[part] += 1
    committed = c["committed"](bootstrap, group, topic)
    assert committed == per_partition, f"committed offsets {committed} != log end offsets {per_partition}"

    # The group is down; more records arrive; the broker restarts on the same port and data.
    extra_at = c["produce"](bootstrap, topic, range(NUM_RECORDS, NUM_RECORDS + EXTRA_PER_PARTITION * NUM_PARTITIONS))
    t_restart = time.monotonic()
    spool_broker.restart()
    restart_s = time.monotonic() - t_restart
    committed_after = c["committed"](bootstrap, group, topic)
    assert committed_after == per_partition, (
        f"committed offsets after the restart {committed_after} != before {per_partition}"
    )

    # A new member resumes from the committed offsets: only the new records, each once.
    ledger2 = Ledger()
    newcomer = c["worker"](f"{c['tag']}-member-d", bootstrap, group, topic, ledger2)
    try:
        newcomer.start()
        deadline = Deadline(PHASE_DEADLINE_S)
        if not ledger2.wait_for(lambda: len(ledger2.indexes) >= len(extra_at) or newcomer.errors, deadline):
            pytest.fail(
                f"after the restart the new member processed {len(ledger2.indexes)}/{len(extra_at)} "
                f"records in {deadline.seconds}s; assignments {newcomer.assignments}"
            )
    finally:
        stop_all([newcomer], Deadline(CLOSE_DEADLINE_S))
    newcomer.assert_clean()
    entries2 = ledger2.snapshot()
    old = [e for e in entries2 if e[2] < per_partition[e[1]]]
    assert not old, (
        f"after the restart the new member re-read {len(old)} records below the committed offsets "
        f"{per_partition}; first {old[:5]}"
    )
    check_exactly_once(entries2, extra_at, f"{client}: new member after the broker restart")
    final = c["committed"](bootstrap, group, topic)
    want = {p: n + EXTRA_PER_PARTITION for p, n in per_partition.items()}
    assert final == want, f"committed offsets at the end {final} != {want}"
    print(
        f"{client}: group ready {t_leave - t0:.1f}s to leave, done {t_done - t_leave:.1f}s later; "
        f"restart {restart_s:.1f}s; total {time.monotonic() - t0:.1f}s; "
        f"(processed, commits, revoke commits, assignments, pending at close) "
        f"{ {w.name: (w.processed, w.commits, w.revoke_commits, len(w.assignments), w.pending_at_close) for w in workers} }; "
        f"runs { {p: [(r[0][-1], r[1], r[2]) for r in rs] for p, rs in runs.items()} }"
    )


# --- 2. static membership (confluent-kafka) ----------------------------------------------


@pytest.mark.timeout(120)
def test_ck_static_member_rejoins_without_rebalance(spool_broker):
    bootstrap = spool_broker.bootstrap
    topic = new_name("ck", "static")
    group = new_name("ck", "static-group")
    ck_create_topic(bootstrap, topic)
    ledger = Ledger()

    def member(name, instance):
        return CkWorker(name, bootstrap, group, topic, ledger, commit_every=1,
                        extra={"group.instance.id": instance})

    a = member("ck-static-a", "instance-a")
    b = member("ck-static-b", "instance-b")
    a2 = None
    try:
        start_workers([a, b])
        wait_assigned(ledger, [a, b], Deadline(ASSIGN_DEADLINE_S), "2 static members")
        a_parts, b_parts = a.current(), b.current()
        b_before = (list(b.assignments), list(b.revocations))
        admin = ck_admin(bootstrap)
        desc = admin.describe_consumer_groups([group], request_timeout=30)[group].result(timeout=60)
        ids_before = {m.group_instance_id: m.member_id for m in desc.members}
        assert sorted(ids_before) == ["instance-a", "instance-b"], ids_before

        # a goes away (no LeaveGroup: static) and comes back as a new consumer, same instance id.
        t_close = time.monotonic()
        a.stop(Deadline(CLOSE_DEADLINE_S))
        a2 = member("ck-static-a2", "instance-a")
        a2.start()
        if not ledger.wait_for(lambda: a2.current() or a2.errors, Deadline(ASSIGN_DEADLINE_S)):
            pytest.fail(f"replacement of instance-a got no assignment; b: {b.assignments} / {b.revocations}")
        rejoin_s = time.monotonic() - t_close
        assert rejoin_s < SESSION_TIMEOUT_MS / 1000, f"rejoin took {rejoin_s:.1f}s, beyond session.timeout.ms"
        assert a2.current() == a_parts, (
            f"instance-a had {sorted(a_parts)} and got {sorted(a2.current())} back (b holds {sorted(b.current())})"
        )

        # Fresh records on every partition: both members consume theirs, b without a rebalance.
        at = ck_produce(bootstrap, topic, range(60))
        mine_a = {(p, o) for (p, o) in at if p in a_parts}
        mine_b = {(p, o) for (p, o) in at if p in b_parts}
        watch = Deadline(PHASE_DEADLINE_S)
        min_watch_end = time.monotonic() + STATIC_WATCH_S

        def seen_by(worker):
            return {(e[1], e[2]) for e in ledger.entries if e[0] == worker.name}

        def done():
            return (
                seen_by(a2) >= mine_a and seen_by(b) >= mine_b
                and time.monotonic() >= min_watch_end
            ) or a2.errors or b.errors or len(b.assignments) != len(b_before[0])

        # wait_for re-checks on every notification; the watch window end has none, so wake
        # up on it with a bounded wait_for chain.
        while not watch.expired() and not ledger.wait_for(done, Deadline(min(0.3, watch.remaining()))):
            pass
        b_after = (list(b.assignments), list(b.revocations))
        assert b_after == b_before, (
            f"the other static member saw a rebalance when instance-a was replaced: "
            f"assignments/revocations before {b_before}, after {b_after}"
        )
        assert seen_by(b) >= mine_b, "b did not consume the new records on its partitions"
        assert seen_by(a2) >= mine_a, "the replacement did not consume the new records on its partitions"

        # DescribeGroups: the two static members, with the replacement's new member id.
        desc = admin.describe_consumer_groups([group], request_timeout=30)[group].result(timeout=60)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        by_instance = {m.group_instance_id: m for m in desc.members}
        assert sorted(by_instance) == ["instance-a", "instance-b"], [
            (m.member_id, m.group_instance_id) for m in desc.members
        ]
        assert by_instance["instance-b"].member_id == ids_before["instance-b"]
        assert by_instance["instance-a"].member_id != ids_before["instance-a"], (
            "the replacement static member kept the old member id"
        )
        # Kafka replaces the member id only: client id and host stay those of the first
        # instance (GroupMetadata.replaceStaticMember / ClassicGroup.replaceStaticMember).
        assert by_instance["instance-a"].client_id == "ck-static-a"
        assert {tp.partition for tp in by_instance["instance-a"].assignment.topic_partitions} == a_parts
        assert {tp.partition for tp in by_instance["instance-b"].assignment.topic_partitions} == b_parts
    finally:
        stop_all([w for w in (a, b, a2) if w is not None and w.is_alive()], Deadline(CLOSE_DEADLINE_S))
    for w in (a, b, a2):
        w.assert_clean()


# --- 3. group administration -------------------------------------------------------------


def consume_until(ledger: Ledger, workers, n: int, what: str) -> None:
    """Until the workers processed n distinct records and committed all of them."""

    def ok():
        return len(ledger.indexes) >= n and all(not w.pending for w in workers)

    if not ledger.wait_for(lambda: ok() or any(w.errors or w.commit_errors for w in workers),
                           Deadline(PHASE_DEADLINE_S)):
        pytest.fail(f"{what}: processed {len(ledger.indexes)}/{n}; pending {[w.pending for w in workers]}")
    for w in workers:
        w.assert_clean()


def setup_groups(spool_broker, tag, worker_cls, create, produce):
    """A topic with 10 records per partition, an active group of two members that committed
    them all, and an empty group (its only member closed) that committed them all."""
    bootstrap = spool_broker.bootstrap
    topic = new_name(tag, "admin")
    active, empty = new_name(tag, "active"), new_name(tag, "empty")
    create(bootstrap, topic)
    at = produce(bootstrap, topic, range(10 * NUM_PARTITIONS))
    ledger_e = Ledger()
    solo = worker_cls(f"{tag}-solo", bootstrap, empty, topic, ledger_e, commit_every=1)
    solo.start()
    try:
        consume_until(ledger_e, [solo], len(at), "empty group's member")
    finally:
        stop_all([solo], Deadline(CLOSE_DEADLINE_S))
    solo.assert_clean()
    ledger_a = Ledger()
    members = [worker_cls(f"{tag}-m{n}", bootstrap, active, topic, ledger_a, commit_every=1) for n in (1, 2)]
    start_workers(members)
    wait_assigned(ledger_a, members, Deadline(ASSIGN_DEADLINE_S), "active group")
    consume_until(ledger_a, members, len(at), "active group")
    # Both members hold partitions and have committed: the group must be Stable right now
    # (no member is joining or leaving).
    return topic, active, empty, members


@pytest.mark.timeout(120)
def test_ck_admin_list_describe_delete_groups(spool_broker):
    bootstrap = spool_broker.bootstrap
    topic, active, empty, members = setup_groups(spool_broker, "ck", CkWorker, ck_create_topic, ck_produce)
    try:
        admin = ck_admin(bootstrap)
        assignment = {w.name: w.current() for w in members}

        listed = admin.list_consumer_groups(request_timeout=30).result(timeout=60)
        assert not listed.errors, listed.errors
        states = {g.group_id: g for g in listed.valid}
        assert active in states and empty in states, sorted(states)
        assert states[active].state == ConsumerGroupState.STABLE, states[active].state
        assert states[empty].state == ConsumerGroupState.EMPTY, states[empty].state
        assert not states[active].is_simple_consumer_group
        only_empty = admin.list_consumer_groups(
            request_timeout=30, states={ConsumerGroupState.EMPTY}
        ).result(timeout=60)
        ids = {g.group_id for g in only_empty.valid}
        assert empty in ids and active not in ids, f"states=EMPTY filter listed {sorted(ids)}"

        fs = admin.describe_consumer_groups([active, empty], request_timeout=30)
        d_active, d_empty = fs[active].result(timeout=60), fs[empty].result(timeout=60)
        assert d_active.state == ConsumerGroupState.STABLE, d_active.state
        assert d_active.partition_assignor in ("range", "roundrobin"), d_active.partition_assignor
        assert not d_active.is_simple_consumer_group
        brokers = admin.list_topics(timeout=10).brokers
        assert d_active.coordinator is not None and d_active.coordinator.id in brokers, (
            d_active.coordinator, brokers)
        assert f"{d_active.coordinator.host}:{d_active.coordinator.port}" == bootstrap
        described = {}
        for m in d_active.members:
            assert m.member_id.startswith(m.client_id + "-"), (m.member_id, m.client_id)
            assert m.host, f"member {m.member_id} has no host"
            assert m.group_instance_id is None
            assert all(tp.topic == topic for tp in m.assignment.topic_partitions)
            described[m.client_id] = {tp.partition for tp in m.assignment.topic_partitions}
        assert described == assignment, f"DescribeGroups assignments {described} != members' own {assignment}"
        assert d_empty.state == ConsumerGroupState.EMPTY and d_empty.members == [], (
            d_empty.state, d_empty.members)

        for g in (active, empty):
            assert ck_committed(bootstrap, g, topic) == {p: 10 for p in range(NUM_PARTITIONS)}, g

        # DeleteGroups: refused while the group has members, done once it is empty.
        with pytest.raises(KafkaException) as exc:
            admin.delete_consumer_groups([active], request_timeout=30)[active].result(timeout=60)
        assert exc.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, exc.value
        assert admin.delete_consumer_groups([empty], request_timeout=30)[empty].result(timeout=60) is None
        with pytest.raises(KafkaException) as exc:
            admin.delete_consumer_groups([empty], request_timeout=30)[empty].result(timeout=60)
        assert exc.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, exc.value
        ids = {g.group_id for g in admin.list_consumer_groups(request_timeout=30).result(timeout=60).valid}
        assert empty not in ids and active in ids, sorted(ids)
        assert ck_committed(bootstrap, empty, topic) == {}, "the deleted group still has committed offsets"
        gone = admin.describe_consumer_groups([empty], request_timeout=30)[empty].result(timeout=60)
        assert gone.state == ConsumerGroupState.DEAD and gone.members == [], (gone.state, gone.members)
        assert ck_committed(bootstrap, active, topic) == {p: 10 for p in range(NUM_PARTITIONS)}

        # Once its members are gone the active group is empty, keeps its offsets, and goes.
        stop_all(members, Deadline(CLOSE_DEADLINE_S))
        d = admin.describe_consumer_groups([active], request_timeout=30)[active].result(timeout=60)
        assert d.state == ConsumerGroupState.EMPTY and d.members == [], (d.state, d.members)
        assert ck_committed(bootstrap, active, topic) == {p: 10 for p in range(NUM_PARTITIONS)}
        assert admin.delete_consumer_groups([active], request_timeout=30)[active].result(timeout=60) is None
        ids = {g.group_id for g in admin.list_consumer_groups(request_timeout=30).result(timeout=60).valid}
        assert active not in ids, sorted(ids)
    finally:
        stop_all(members, Deadline(CLOSE_DEADLINE_S))
    for w in members:
        w.assert_clean()


@pytest.mark.timeout(120)
def test_kpy_admin_list_describe_delete_groups(spool_broker):
    bootstrap = spool_broker.bootstrap
    topic, active, empty, members = setup_groups(spool_broker, "kpy", KpyWorker, kpy_create_topic, kpy_produce)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="compat-kpy-admin")
    try:
        assignment = {w.name: w.current() for w in members}

        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert active in listed and empty in listed, sorted(listed)
        assert listed[active]["protocol_type"] == "consumer", listed[active]
        assert listed[active].get("group_state") == "Stable", listed[active]
        assert listed[empty].get("group_state") == "Empty", listed[empty]
        ids = {g["group_id"] for g in admin.list_groups(states_filter=["Empty"])}
        assert empty in ids and active not in ids, f"states_filter=Empty listed {sorted(ids)}"

        desc = admin.describe_groups([active, empty])
        d_active, d_empty = desc[active], desc[empty]
        assert d_active["error"] is None, d_active
        assert d_active["group_state"] == "Stable", d_active
        assert d_active["protocol_type"] == "consumer", d_active
        assert d_active["protocol_data"] in ("range", "roundrobin"), d_active
        described = {}
        for m in d_active["members"]:
            assert m["member_id"].startswith(m["client_id"] + "-"), m
            assert m["client_host"], m
            assert m["group_instance_id"] is None, m
            # Decoded ConsumerProtocol subscription and assignment.
            assert m["member_metadata"]["topics"] == [topic], m
            parts = set()
            for t in m["member_assignment"]["assigned_partitions"]:
                assert t["topic"] == topic, m
                parts |= set(t["partitions"])
            described[m["client_id"]] = parts
        assert described == assignment, f"DescribeGroups assignments {described} != members' own {assignment}"
        assert d_empty["group_state"] == "Empty" and d_empty["members"] == [], d_empty

        for g in (active, empty):
            assert kpy_committed(bootstrap, g, topic) == {p: 10 for p in range(NUM_PARTITIONS)}, g

        result = admin.delete_groups([active, empty])
        assert result == {active: "NonEmptyGroupError", empty: "OK"}, result
        assert admin.delete_groups([empty]) == {empty: "GroupIdNotFoundError"}
        ids = {g["group_id"] for g in admin.list_groups()}
        assert empty not in ids and active in ids, sorted(ids)
        assert kpy_committed(bootstrap, empty, topic) == {}, "the deleted group still has committed offsets"
        # DescribeGroups v6 (KIP-1043): an unknown group is "Dead" with GROUP_ID_NOT_FOUND.
        gone = admin.describe_groups([empty])[empty]
        assert gone["group_state"] == "Dead" and gone["members"] == [], gone
        assert "GroupIdNotFoundError" in (gone["error"] or ""), gone

        stop_all(members, Deadline(CLOSE_DEADLINE_S))
        d = admin.describe_groups([active])[active]
        assert d["group_state"] == "Empty" and d["members"] == [], d
        assert kpy_committed(bootstrap, active, topic) == {p: 10 for p in range(NUM_PARTITIONS)}
        assert admin.delete_groups([active]) == {active: "OK"}
        assert active not in {g["group_id"] for g in admin.list_groups()}
    finally:
        admin.close()
        stop_all(members, Deadline(CLOSE_DEADLINE_S))
    for w in members:
        w.assert_clean()

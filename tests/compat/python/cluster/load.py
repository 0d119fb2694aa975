"""Client load for the cluster tests: idempotent acks=all producers (confluent-kafka and
kafka-python) that record every delivery report, and a committing consumer group member."""

from __future__ import annotations

import threading
import time
from collections import Counter

# Errors a producer may report for a record that was not acknowledged without anything being
# wrong with the broker's answers: timeouts and transient leadership/ISR conditions.
RETRIABLE_NAMES = {
    "_MSG_TIMED_OUT", "_TIMED_OUT", "REQUEST_TIMED_OUT", "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND", "NOT_LEADER_FOR_PARTITION", "NOT_LEADER_OR_FOLLOWER",
    "LEADER_NOT_AVAILABLE", "_TRANSPORT", "NETWORK_EXCEPTION", "KafkaTimeoutError",
    "RequestTimedOutError", "NotEnoughReplicasError", "NotEnoughReplicasAfterAppendError",
    "NotLeaderForPartitionError", "LeaderNotAvailableError", "KafkaConnectionError",
}
MAX_OUTSTANDING = 2000


class ProducerLog:
    """What one producer sent and what came back. Values are b"<name>-<seq>"."""

    def __init__(self, name: str):
        self.name = name
        self.lock = threading.Lock()
        self.sent: dict[int, float] = {}          # seq -> monotonic send time
        self.acked: dict[bytes, tuple] = {}        # value -> (partition, offset, t_ack)
        self.failed: Counter = Counter()           # error name -> count
        self.nonretriable: list[str] = []
        self.reports = 0

    def value(self, seq: int) -> bytes:
        return b"%s-%08d" % (self.name.encode(), seq)

    def ack(self, value: bytes, partition: int, offset: int) -> None:
        with self.lock:
            self.reports += 1
            if value in self.acked:
                self.nonretriable.append(f"second delivery report for {value!r}")
            self.acked[value] = (partition, offset, time.monotonic())

    def fail(self, value: bytes, name: str, retriable: bool) -> None:
        with self.lock:
            self.reports += 1
            self.failed[name] += 1
            if not (retriable or name in RETRIABLE_NAMES):
                self.nonretriable.append(f"{value!r}: {name}")

    def outstanding(self) -> int:
        return len(self.sent) - self.reports


def order_key(value: bytes) -> tuple[str, int]:
    name, _, seq = value.rpartition(b"-")
    return name.decode(), int(seq)


class ConfluentProducer(threading.Thread):
    def __init__(self, bootstrap: str, topic: str, name: str, rate: float, extra: dict | None = None):
        super().__init__(daemon=True, name=name)
        from confluent_kafka import Producer
        self.topic, self.rate, self.log = topic, rate, ProducerLog(name)
        self.stop_event = threading.Event()
        self.p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                           "acks": "all", "message.timeout.ms": 60000, "linger.ms": 5,
                           "socket.timeout.ms": 5000, "topic.metadata.refresh.interval.ms": 2000,
                           "retry.backoff.ms": 100, "error_cb": self._error, **(extra or {})})
        self.fatal = None
        self.crashed = None

    def _error(self, err):
        if err.fatal():
            self.fatal = str(err)

    def _cb(self, err, msg):
        if err is None:
            self.log.ack(msg.value(), msg.partition(), msg.offset())
        else:
            if err.fatal():
                self.fatal = str(err)
            self.log.fail(msg.value(), err.name(), err.retriable() and not err.fatal())

    def run(self):
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.crashed = repr(exc)

    def _run(self):
        seq = 0
        t0 = time.monotonic()
        while not self.stop_event.is_set() and self.fatal is None:
            if seq < (time.monotonic() - t0) * self.rate and self.log.outstanding() < MAX_OUTSTANDING:
                v = self.log.value(seq)
                self.log.sent[seq] = time.monotonic()
                try:
                    self.p.produce(self.topic, key=b"k%d" % seq, value=v, on_delivery=self._cb)
                except BufferError:
                    del self.log.sent[seq]
                    self.p.poll(0.05)
                    continue
                seq += 1
            self.p.poll(0.005)

    def finish(self, timeout: float) -> int:
        self.stop_event.set()
        self.join(timeout=10)
        if self.fatal or self.crashed:
            # Nothing more will be delivered: fail what is queued rather than wait for it.
            self.p.purge()
            return self.p.flush(5)
        return self.p.flush(timeout)


class KafkaPythonProducer(threading.Thread):
    def __init__(self, bootstrap: str, topic: str, name: str, rate: float):
        super().__init__(daemon=True, name=name)
        from kafka import KafkaProducer
        self.topic, self.rate, self.log = topic, rate, ProducerLog(name)
        self.stop_event = threading.Event()
        self.p = KafkaProducer(bootstrap_servers=bootstrap.split(","), enable_idempotence=True,
                               acks="all", delivery_timeout_ms=60000, request_timeout_ms=5000,
                               metadata_max_age_ms=2000, linger_ms=5, retry_backoff_ms=100,
                               reconnect_backoff_max_ms=1000)
        self.crashed = None

    fatal = None

    def run(self):
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.crashed = repr(exc)

    def _run(self):
        from kafka.errors import KafkaError
        seq = 0
        t0 = time.monotonic()
        while not self.stop_event.is_set():
            if seq < (time.monotonic() - t0) * self.rate and self.log.outstanding() < MAX_OUTSTANDING:
                v = self.log.value(seq)
                self.log.sent[seq] = time.monotonic()
                try:
                    fut = self.p.send(self.topic, key=b"k%d" % seq, value=v)
                except KafkaError as exc:
                    self.log.fail(v, type(exc).__name__, getattr(exc, "retriable", False))
                    seq += 1
                    continue
                fut.add_callback(lambda md, v=v: self.log.ack(v, md.partition, md.offset))
                fut.add_errback(lambda exc, v=v: self.log.fail(
                    v, type(exc).__name__, getattr(exc, "retriable", False)))
                seq += 1
            else:
                time.sleep(0.005)

    def finish(self, timeout: float) -> int:
        self.stop_event.set()
        self.join(timeout=10)
        self.p.flush(timeout=timeout)
        self.p.close(timeout=5)
        return self.log.outstanding()


class GroupMember(threading.Thread):
    """A confluent-kafka group member: reads, records every (partition, offset) it saw, and
    commits synchronously about twice a second; keeps the offsets of its successful commits."""

    def __init__(self, bootstrap: str, topic: str, group: str, name: str):
        super().__init__(daemon=True, name=name)
        from confluent_kafka import Consumer
        self.topic = topic
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                           "enable.auto.commit": False, "auto.offset.reset": "earliest",
                           "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
                           "socket.timeout.ms": 5000, "topic.metadata.refresh.interval.ms": 2000})
        self.seen: dict[int, set[int]] = {}
        self.commits: list[tuple[float, dict[int, int]]] = []
        self.commit_errors: Counter = Counter()
        self.stop_event = threading.Event()
        self.errors: list[str] = []
        self.assigned: list[int] = []

    def summary(self) -> dict:
        """For the report: what this member saw and committed, and when it last did."""
        now = time.monotonic()
        return {"assigned": self.assigned, "seen": {p: len(s) for p, s in sorted(self.seen.items())},
                "commits": len(self.commits), "commit_errors": dict(self.commit_errors),
                "last_commit_s_ago": round(now - self.commits[-1][0], 1) if self.commits else None,
                "last_committed": self.commits[-1][1] if self.commits else None}

    def commit(self):
        from confluent_kafka import KafkaException
        try:
            res = self.c.commit(asynchronous=False)
        except KafkaException as exc:
            self.commit_errors[exc.args[0].name()] += 1
            return
        if res:
            self.commits.append((time.monotonic(), {tp.partition: tp.offset for tp in res if tp.offset >= 0}))

    def run(self):
        self.c.subscribe([self.topic])
        last_commit = time.monotonic()
        while not self.stop_event.is_set():
            for m in self.c.consume(200, timeout=0.2):
                if m.error():
                    if not m.error().retriable() and m.error().name() != "_PARTITION_EOF":
                        self.errors.append(str(m.error()))
                    continue
                self.seen.setdefault(m.partition(), set()).add(m.offset())
            if time.monotonic() - last_commit > 0.5:
                self.commit()
                last_commit = time.monotonic()
                self.assigned = sorted(tp.partition for tp in self.c.assignment())
        self.commit()
        self.c.close()

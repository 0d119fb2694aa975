"""spool admin APIs with real clients: kafka-python 3.0.12 (KafkaAdminClient) and confluent-kafka
2.16.1 (AdminClient, librdkafka 2.16).

Pins Kafka's semantics for the admin APIs, each call checked against the state that follows it
(DescribeConfigs, Metadata, ListOffsets, Produce, Fetch), and again after a broker restart where
the change is meant to be durable:

1. Topic configs, IncrementalAlterConfigs (key 44): SET (several at once), DELETE (back to the
   broker's value), APPEND / SUBTRACT on list configs (leader.replication.throttled.replicas,
   cleanup.policy), validate_only (validates, changes nothing), INVALID_CONFIG for a bad value, an
   unknown name, an out-of-range value and APPEND/SUBTRACT on a non-list config, with nothing of
   the resource applied; UNKNOWN_TOPIC_OR_PARTITION for an unknown topic. Changes are visible at
   once in DescribeConfigs (value, source DYNAMIC_TOPIC_CONFIG) and take effect without restart
   (max.message.bytes=1000: a 2000-byte record is refused with MESSAGE_TOO_LARGE; after DELETE it
   is accepted). They survive a restart.
2. Topic configs, legacy AlterConfigs (key 33): the request replaces the topic's whole set of
   overrides (configs not named go back to their defaults); validate_only; errors. With
   confluent-kafka's alter_configs (sends exactly what it is given) and kafka-python's
   alter_configs/reset_configs(incremental=False) (which re-sends the other modified configs, so
   a partial reset drops exactly the named ones).
3. Retention takes effect: 50 records with hour-old timestamps, then (segment.ms=100 makes the
   next batch roll a new segment) 50 current ones; retention.ms=600000 on the topic, or
   log.retention.ms=600000 on the broker for a topic without an override, deletes the old segment
   and ListOffsets earliest becomes exactly 50.
4. Broker configs: resource BROKER "1" (this node) and "" (cluster default). Dynamic configs are
   not read_only in DescribeConfigs, read-only ones (node.id, log.dirs) are, and altering them is
   INVALID_REQUEST. Set on "1" -> source DYNAMIC_BROKER_CONFIG; set on "" -> the node reports
   DYNAMIC_DEFAULT_BROKER_CONFIG; per-broker wins over the cluster default; topics without an
   override inherit the value (and its effect); DELETE falls back a level; legacy AlterConfigs on
   "1" replaces the per-broker set; all of it survives a restart. Neither client can name the
   cluster-default resource "" (both parse the name as a broker id), so that resource is
   reached with kafka-python's protocol classes over its own connection.
5. CreatePartitions (key 37): 2 -> 5 partitions; validate_only changes nothing; Metadata shows 5
   led partitions; the new ones take produce and fetch; equal or fewer -> INVALID_PARTITIONS;
   unknown topic -> UNKNOWN_TOPIC_OR_PARTITION; survives restart.
6. DeleteRecords (key 21): 100 records, delete before 40 -> low watermark 40 = ListOffsets
   earliest; a consumer positioned at 10 gets OFFSET_OUT_OF_RANGE (auto.offset.reset=none/error)
   or starts at 40 (earliest); a lower offset is a no-op; beyond the high watermark ->
   OFFSET_OUT_OF_RANGE; -1 means the high watermark; survives restart.
7. DescribeLogDirs (key 35, kafka-python only: confluent-kafka has no describe_log_dirs): one log
   dir, the broker's data dir (absolute), every partition with its size (= the bytes of its
   .log files; > 0 once written, growing with more data), offset lag 0.
8. ListOffsets: confluent AdminClient.list_offsets and kafka-python list_partition_offsets:
   earliest, latest, by timestamp (first offset with timestamp >= target; -1 past the end), max
   timestamp (KIP-734: the record with the largest timestamp, not the last one).
9. DescribeTopicPartitions (key 75; kafka-python describe_topic_partitions, with its cursor
   paging), Metadata (confluent describe_topics), ElectLeaders (key 43; both clients):
   PREFERRED and UNCLEAN on a led partition -> ELECTION_NOT_NEEDED, an unknown partition ->
   UNKNOWN_TOPIC_OR_PARTITION, "all partitions" -> an empty result (Kafka leaves out partitions
   that need no election). OffsetForLeaderEpoch (key 23; kafka-python's consumer sends it, it
   has no admin method, so the request is sent with its protocol classes): the current epoch ->
   the log end offset; a newer current_leader_epoch -> UNKNOWN_LEADER_EPOCH, an older one ->
   FENCED_LEADER_EPOCH; an epoch above every known one -> (-1, -1).

Every test gets its own broker. Waits are bounded polls (Deadline); nothing sleeps to synchronise.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
import warnings
from pathlib import Path

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ElectionType,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition as CTopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec as COffsetSpec,
)
import kafka.errors as KErrors
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition as KTopicPartition
from kafka.admin import (
    AlterConfigOp,
    ConfigResource as KConfigResource,
    ConfigResourceType,
    OffsetSpec as KOffsetSpec,
)
from kafka.protocol.admin import DescribeConfigsRequest, IncrementalAlterConfigsRequest
from kafka.protocol.consumer import OffsetForLeaderEpochRequest

from compat_common import Deadline

NODE_ID = 1
TOPIC_READY_S = 30.0
CALL_TIMEOUT_S = 30.0
PRODUCE_DEADLINE_S = 30.0
READ_DEADLINE_S = 30.0
# How long a config change may take to show its effect (retention runs every RETENTION_CHECK_MS).
EFFECT_DEADLINE_S = 30.0
RETENTION_CHECK_MS = 200
POLL_INTERVAL_S = 0.1

TOPIC = ConfigResource.Type.TOPIC
BROKER = ConfigResource.Type.BROKER
SET, DELETE = AlterConfigOpType.SET, AlterConfigOpType.DELETE
APPEND, SUBTRACT = AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT

SRC_TOPIC = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
SRC_BROKER = ConfigSource.DYNAMIC_BROKER_CONFIG.value
SRC_DEFAULT_BROKER = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
SRC_STATIC = ConfigSource.STATIC_BROKER_CONFIG.value
SRC_DEFAULT = ConfigSource.DEFAULT_CONFIG.value
# A topic config without an override reports where its value comes from: Kafka names the broker
# synonym's source (DYNAMIC_BROKER_CONFIG / DYNAMIC_DEFAULT_BROKER_CONFIG for a dynamic broker
# config); DEFAULT_CONFIG is tolerated too. Never DYNAMIC_TOPIC_CONFIG.
INHERITED_DYNAMIC = {SRC_BROKER, SRC_DEFAULT_BROKER, SRC_DEFAULT}
NOT_OVERRIDDEN = {SRC_STATIC, SRC_DEFAULT}

MAX_MSG_DEFAULT = "1048588"
THROTTLED = "leader.replication.throttled.replicas"

# Kafka error codes, for the responses read through kafka-python's protocol classes.
ERR_NONE = 0
ERR_OFFSET_OUT_OF_RANGE = 1
ERR_UNKNOWN_TOPIC_OR_PARTITION = 3
ERR_INVALID_PARTITIONS = 37
ERR_INVALID_REQUEST = 42
ERR_FENCED_LEADER_EPOCH = 74
ERR_UNKNOWN_LEADER_EPOCH = 75
ERR_ELECTION_NOT_NEEDED = 84


def new_name(client: str, label: str) -> str:
    return f"compat-{client}-{label}-{uuid.uuid4().hex[:8]}"


def src_name(source: int) -> str:
    try:
        return ConfigSource(source).name
    except ValueError:
        return str(source)


def poll_until(what: str, probe, timeout_s: float = EFFECT_DEADLINE_S):
    """Calls probe() -> (done, observed) until done, within timeout_s (bounded count and time).
    Returns the last observation."""
    deadline = Deadline(timeout_s)
    observed = None
    for _ in range(int(timeout_s / POLL_INTERVAL_S) + 10):
        done, observed = probe()
        if done:
            return observed
        if deadline.expired():
            break
        time.sleep(POLL_INTERVAL_S)  # poll interval, bounded by the deadline
    pytest.fail(f"{what}: not reached within {timeout_s}s (last observed: {observed!r})")


# --- confluent-kafka helpers ---------------------------------------------------------------


def ck_config(bootstrap: str, who: str) -> dict:
    return {"bootstrap.servers": bootstrap, "client.id": f"compat-ck-{who}", "broker.address.family": "v4"}


def ck_admin(bootstrap: str) -> AdminClient:
    return AdminClient(ck_config(bootstrap, "admin"))


def ck_partition_count(admin: AdminClient, topic: str) -> int | None:
    tmd = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
    if tmd is None or tmd.error is not None:
        return None
    return len(tmd.partitions)


def wait_partitions_led(admin: AdminClient, topic: str, count: int) -> None:
    def probe():
        tmd = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if tmd is None or tmd.error is not None:
            return False, tmd.error if tmd is not None else "absent"
        parts = {p: (m.leader, list(m.replicas), list(m.isrs)) for p, m in tmd.partitions.items()}
        ok = sorted(parts) == list(range(count)) and all(v[0] == NODE_ID for v in parts.values())
        return ok, parts

    poll_until(f"{topic}: {count} partitions led by node {NODE_ID} in Metadata", probe, TOPIC_READY_S)


def ck_create_topic(admin: AdminClient, topic: str, partitions: int, config: dict | None = None) -> None:
    fs = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        request_timeout=CALL_TIMEOUT_S,
        operation_timeout=CALL_TIMEOUT_S,
    )
    fs[topic].result(timeout=60)
    wait_partitions_led(admin, topic, partitions)


def restart_broker(spool_broker, admin: AdminClient, topics: dict) -> None:
    """Restarts the broker (same port, same data) and waits until Metadata shows `topics`
    ({name: partition count}) led again, so that clients looking up leaders find them."""
    spool_broker.restart()
    for topic, count in topics.items():
        wait_partitions_led(admin, topic, count)


def ck_describe(admin: AdminClient, restype, name: str) -> dict:
    res = ConfigResource(restype, name)
    return admin.describe_configs([res], request_timeout=CALL_TIMEOUT_S)[res].result(timeout=60)


def ck_incremental(admin: AdminClient, restype, name: str, ops, validate_only: bool = False):
    """IncrementalAlterConfigs of one resource; ops is [(config, AlterConfigOpType, value)]."""
    res = ConfigResource(
        restype, name,
        incremental_configs=[ConfigEntry(k, v, incremental_operation=op) for k, op, v in ops],
    )
    fs = admin.incremental_alter_configs([res], request_timeout=CALL_TIMEOUT_S, validate_only=validate_only)
    return fs[res].result(timeout=60)


def ck_legacy_alter(admin: AdminClient, restype, name: str, configs: dict, validate_only: bool = False):
    """Legacy AlterConfigs of one resource with exactly `configs` (confluent-kafka sends what it is
    given: no merging with the current overrides)."""
    res = ConfigResource(restype, name, set_config=configs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = admin.alter_configs([res], request_timeout=CALL_TIMEOUT_S, validate_only=validate_only)
    return fs[res].result(timeout=60)


def ck_error(call) -> KafkaError:
    with pytest.raises(KafkaException) as exc:
        call()
    return exc.value.args[0]


def expect_error(call, code: int, what: str) -> KafkaError:
    err = ck_error(call)
    assert err.code() == code, f"{what}: expected {KafkaError(code).name()}, got {err.name()}: {err.str()}"
    return err


def error_code(e) -> int | None:
    """A per-item result of confluent-kafka: None, a KafkaError or a KafkaException."""
    if e is None:
        return None
    return e.code() if isinstance(e, KafkaError) else e.args[0].code()


def expect_override(configs: dict, name: str, value: str, where: str = "") -> None:
    e = configs[name]
    assert (e.value, e.source) == (value, SRC_TOPIC), (
        f"{where}{name}: expected override {value!r} (DYNAMIC_TOPIC_CONFIG), "
        f"got {e.value!r} ({src_name(e.source)})"
    )
    assert not e.is_default, f"{where}{name} is an override but is_default is set"


def expect_not_overridden(configs: dict, name: str, value: str, where: str = "", sources=NOT_OVERRIDDEN) -> None:
    e = configs[name]
    assert e.value == value and e.source in sources, (
        f"{where}{name}: expected {value!r} from {sorted(src_name(s) for s in sources)}, "
        f"got {e.value!r} ({src_name(e.source)})"
    )


def ck_produce(bootstrap: str, topic: str, records) -> list:
    """Produces [(partition, value, timestamp_ms or None)] one by one in order; returns per record
    (KafkaError or None, offset)."""
    cfg = ck_config(bootstrap, "producer")
    cfg.update({"acks": "all", "linger.ms": 5, "message.timeout.ms": 20_000, "retries": 2})
    producer = Producer(cfg)
    results: list = [None] * len(records)

    def report(i, err, msg):
        results[i] = (err, msg.offset() if err is None else None)

    for i, (partition, value, ts) in enumerate(records):
        kwargs = {"timestamp": ts} if ts is not None else {}
        producer.produce(
            topic, value=value, key=b"k%d" % i, partition=partition,
            on_delivery=lambda err, msg, i=i: report(i, err, msg), **kwargs,
        )
        producer.poll(0)
    remaining = producer.flush(PRODUCE_DEADLINE_S)
    assert remaining == 0, f"{remaining} records without a delivery report after {PRODUCE_DEADLINE_S}s"
    return results


def ck_produce_ok(bootstrap: str, topic: str, records) -> list[int]:
    results = ck_produce(bootstrap, topic, records)
    bad = [(i, r[0]) for i, r in enumerate(results) if r[0] is not None]
    assert not bad, f"produce to {topic} failed: {bad[:5]}"
    return [r[1] for r in results]


def expect_too_large(bootstrap: str, topic: str, partition: int, size: int, what: str) -> None:
    (err, _), = ck_produce(bootstrap, topic, [(partition, b"L" * size, None)])
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, (
        f"{what}: a {size}-byte record should be refused with MESSAGE_TOO_LARGE, got {err}"
    )


def ck_offsets(admin: AdminClient, topic: str, partitions, spec) -> dict:
    """ListOffsets through AdminClient.list_offsets: {partition: ListOffsetsResultInfo}."""
    req = {CTopicPartition(topic, p): spec for p in partitions}
    fs = admin.list_offsets(req, request_timeout=CALL_TIMEOUT_S)
    return {tp.partition: f.result(timeout=60) for tp, f in fs.items()}


def ck_earliest(admin, topic, partitions=(0,)) -> dict[int, int]:
    return {p: r.offset for p, r in ck_offsets(admin, topic, partitions, COffsetSpec.earliest()).items()}


def ck_latest(admin, topic, partitions=(0,)) -> dict[int, int]:
    return {p: r.offset for p, r in ck_offsets(admin, topic, partitions, COffsetSpec.latest()).items()}


class ClientLog(logging.Handler):
    """Collects a librdkafka client's log lines (its `logger`), for failure messages."""

    def __init__(self, who: str):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.logger = logging.getLogger(f"compat.rdkafka.{who}.{uuid.uuid4().hex[:6]}")
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record) -> None:
        if len(self.lines) < 1000:
            self.lines.append(record.getMessage())

    def tail(self, n: int = 5) -> str:
        return "\n  ".join(self.lines[-n:]) or "<nothing logged>"


def ck_read(bootstrap: str, topic: str, partition: int, start: int, count: int, reset: str = "earliest") -> list:
    """Reads `count` records of one partition from `start` (assign, no group): [(offset, value)]."""
    cfg = ck_config(bootstrap, "reader")
    cfg.update({
        "group.id": new_name("ck", "reader"),  # required by the constructor; nothing is committed
        "enable.auto.commit": False,
        "auto.offset.reset": reset,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
    })
    log = ClientLog("reader")
    consumer = Consumer(cfg, logger=log.logger)
    out: list = []
    try:
        consumer.assign([CTopicPartition(topic, partition, start)])
        deadline = Deadline(READ_DEADLINE_S)
        for _ in range(10_000):
            if len(out) >= count or deadline.expired():
                break
            for m in consumer.consume(num_messages=500, timeout=0.2):
                assert m.error() is None, f"consume {topic}-{partition}: {m.error()}"
                out.append((m.offset(), m.value()))
    finally:
        consumer.close()
    assert len(out) >= count, (
        f"read {len(out)}/{count} records of {topic}-{partition} from {start}; librdkafka logged:\n  {log.tail()}")
    return out


def ck_read_error(bootstrap: str, topic: str, partition: int, start: int) -> KafkaError:
    """Positions a consumer (auto.offset.reset=error) at `start`; returns the first error it reports."""
    cfg = ck_config(bootstrap, "reader")
    cfg.update({
        "group.id": new_name("ck", "reader"),
        "enable.auto.commit": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": False,
        "fetch.wait.max.ms": 100,
    })
    log = ClientLog("reader")
    consumer = Consumer(cfg, logger=log.logger)
    try:
        consumer.assign([CTopicPartition(topic, partition, start)])
        deadline = Deadline(READ_DEADLINE_S)
        for _ in range(10_000):
            if deadline.expired():
                break
            for m in consumer.consume(num_messages=100, timeout=0.2):
                if m.error() is not None:
                    return m.error()
                pytest.fail(f"{topic}-{partition}: positioned at {start}, got a record at offset {m.offset()}")
    finally:
        consumer.close()
    pytest.fail(f"{topic}-{partition}: no error within {READ_DEADLINE_S}s for position {start}; "
                f"librdkafka logged:\n  {log.tail()}")


# --- kafka-python helpers ------------------------------------------------------------------


def kpy_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="compat-kpy-admin",
                            request_timeout_ms=int(CALL_TIMEOUT_S * 1000))


def kpy_send(admin: KafkaAdminClient, request, node_id: int | None = None):
    """Sends one protocol request over the admin client's own connections and returns the
    response (for what KafkaAdminClient has no method for)."""
    async def go():
        return await admin._manager.send(request, node_id=node_id)

    return admin._manager.run(go)


def kpy_alter(admin, rtype, name, configs, incremental=True, validate_only=False) -> str:
    """kafka-python alter_configs of one resource, without its client-side name check (the broker
    is under test); returns 'OK' or the error as a string ('[Error 40] InvalidConfigurationError: ...')."""
    res = admin.alter_configs([KConfigResource(rtype, name, dict(configs))], validate_only=validate_only,
                              raise_on_unknown=False, incremental=incremental)
    return res[rtype.name.lower()][name]


def kpy_describe(admin, rtype, name, keys=None) -> dict:
    out = admin.describe_configs([KConfigResource(rtype, name, keys)], config_filter="all")
    return out[rtype.name.lower()][name]


def kpy_raw_incremental(admin, rtype: int, name: str, ops, validate_only=False, node_id=NODE_ID):
    """IncrementalAlterConfigs with any resource name (the clients refuse a BROKER name that is not
    an integer, e.g. "" for the cluster default). ops: [(config, op int, value)].
    Returns (error_code, error_message)."""
    req = IncrementalAlterConfigsRequest(resources=[(rtype, name, list(ops))], validate_only=validate_only)
    resp = kpy_send(admin, req, node_id)
    (r,) = resp.responses
    return r.error_code, r.error_message


def kpy_raw_describe(admin, rtype: int, name: str, keys=None, node_id=NODE_ID) -> tuple:
    """DescribeConfigs of any resource name: (error_code, {config: (value, source, read_only)})."""
    resp = kpy_send(admin, DescribeConfigsRequest(resources=[(rtype, name, keys)], include_synonyms=False), node_id)
    (r,) = resp.results
    return r.error_code, {c.name: (c.value, c.config_source, c.read_only) for c in r.configs}


def kpy_read_error(bootstrap: str, topic: str, partition: int, start: int):
    """kafka-python consumer (auto_offset_reset='none') seeked to `start`: the exception poll raises."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="compat-kpy-reader",
                             auto_offset_reset="none", enable_auto_commit=False, fetch_max_wait_ms=100)
    tp = KTopicPartition(topic, partition)
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = Deadline(READ_DEADLINE_S)
        for _ in range(10_000):
            if deadline.expired():
                break
            try:
                got = consumer.poll(timeout_ms=200)
            except KErrors.KafkaError as exc:
                return exc
            recs = [r for rs in got.values() for r in rs]
            if recs:
                pytest.fail(f"{topic}-{partition}: positioned at {start}, got a record at offset {recs[0].offset}")
    finally:
        consumer.close()
    pytest.fail(f"{topic}-{partition}: no error within {READ_DEADLINE_S}s for position {start}")


def kpy_read(bootstrap: str, topic: str, partition: int, start: int, count: int, reset="earliest") -> list:
    """kafka-python consumer seeked to `start`: the first `count` records as ConsumerRecords."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="compat-kpy-reader",
                             auto_offset_reset=reset, enable_auto_commit=False, fetch_max_wait_ms=100)
    tp = KTopicPartition(topic, partition)
    out: list = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = Deadline(READ_DEADLINE_S)
        for _ in range(10_000):
            if len(out) >= count or deadline.expired():
                break
            for recs in consumer.poll(timeout_ms=200).values():
                out.extend(recs)
    finally:
        consumer.close()
    assert len(out) >= count, f"read {len(out)}/{count} records of {topic}-{partition} from {start}"
    return out


# --- 1. topic configs: IncrementalAlterConfigs -------------------------------------------


@pytest.mark.timeout(180)
def test_ck_incremental_alter_configs_topic(spool_broker):
    bootstrap = spool_broker.bootstrap
    admin = ck_admin(bootstrap)
    topic, other = new_name("ck", "iac"), new_name("ck", "iac-other")
    ck_create_topic(admin, topic, 3)
    ck_create_topic(admin, other, 1)

    before = ck_describe(admin, TOPIC, topic)
    base = {k: before[k].value for k in ("retention.ms", "max.message.bytes", "segment.ms", "segment.bytes")}
    assert base["max.message.bytes"] == MAX_MSG_DEFAULT, base
    for k in base:
        assert before[k].source in NOT_OVERRIDDEN, f"{k} of a fresh topic: {src_name(before[k].source)}"
    assert (before[THROTTLED].value, before["cleanup.policy"].value) == ("", "delete")

    # SET, two configs in one request.
    assert ck_incremental(admin, TOPIC, topic, [("retention.ms", SET, "3600000"),
                                                ("max.message.bytes", SET, "1000")]) is None
    d = ck_describe(admin, TOPIC, topic)
    expect_override(d, "retention.ms", "3600000")
    expect_override(d, "max.message.bytes", "1000")
    expect_not_overridden(d, "segment.ms", base["segment.ms"])
    o = ck_describe(admin, TOPIC, other)
    expect_not_overridden(o, "retention.ms", base["retention.ms"], "other topic: ")
    expect_not_overridden(o, "max.message.bytes", MAX_MSG_DEFAULT, "other topic: ")

    # In effect without a restart: 2000 bytes are too large for this topic, not for the other.
    expect_too_large(bootstrap, topic, 0, 2000, "max.message.bytes=1000")
    ck_produce_ok(bootstrap, topic, [(0, b"s" * 300, None)])
    ck_produce_ok(bootstrap, other, [(0, b"L" * 2000, None)])

    # validate_only: validated, not applied.
    assert ck_incremental(admin, TOPIC, topic, [("retention.ms", SET, "1")], validate_only=True) is None
    expect_override(ck_describe(admin, TOPIC, topic), "retention.ms", "3600000", "after validate_only: ")
    expect_error(lambda: ck_incremental(admin, TOPIC, topic, [("retention.ms", SET, "abc")], validate_only=True),
                 KafkaError.INVALID_CONFIG, "validate_only with an invalid value")

    # Invalid changes: INVALID_CONFIG with a message, and nothing of the resource applied.
    bad = {
        "non-numeric retention.ms": [("retention.ms", SET, "abc")],
        "unknown config name": [("no.such.topic.config", SET, "1")],
        "segment.bytes below its minimum": [("segment.bytes", SET, "1")],
        "valid change next to an invalid one": [("retention.ms", SET, "7200000"), ("segment.bytes", SET, "1")],
        "APPEND to a non-list config": [("retention.ms", APPEND, "1000")],
        "SUBTRACT from a non-list config": [("max.message.bytes", SUBTRACT, "1000")],
    }
    for what, ops in bad.items():
        err = expect_error(lambda: ck_incremental(admin, TOPIC, topic, ops), KafkaError.INVALID_CONFIG, what)
        assert err.str(), f"{what}: INVALID_CONFIG without a message"
        d = ck_describe(admin, TOPIC, topic)
        expect_override(d, "retention.ms", "3600000", f"after refused {what}: ")
        expect_override(d, "max.message.bytes", "1000", f"after refused {what}: ")
        expect_not_overridden(d, "segment.bytes", base["segment.bytes"], f"after refused {what}: ")

    expect_error(lambda: ck_incremental(admin, TOPIC, "compat-no-such-topic", [("retention.ms", SET, "1000")]),
                 KafkaError.UNKNOWN_TOPIC_OR_PART, "unknown topic")

    # APPEND / SUBTRACT on list configs (Kafka: APPEND adds what is missing, in order; SUBTRACT
    # removes; both start from the current value, or the default).
    steps = [
        (APPEND, "0:1", "0:1"),
        (APPEND, "1:1,0:1", "0:1,1:1"),
        (APPEND, "2:1", "0:1,1:1,2:1"),
        (SUBTRACT, "0:1,2:1", "1:1"),
    ]
    for op, value, want in steps:
        assert ck_incremental(admin, TOPIC, topic, [(THROTTLED, op, value)]) is None
        expect_override(ck_describe(admin, TOPIC, topic), THROTTLED, want, f"after {op.name} {value!r}: ")
    # cleanup.policy: APPEND of a policy already in the default makes it an explicit override.
    assert ck_incremental(admin, TOPIC, topic, [("cleanup.policy", APPEND, "delete")]) is None
    expect_override(ck_describe(admin, TOPIC, topic), "cleanup.policy", "delete")

    # DELETE: back to the broker's value, and its effect with it.
    assert ck_incremental(admin, TOPIC, topic, [("max.message.bytes", DELETE, None)]) is None
    d = ck_describe(admin, TOPIC, topic)
    expect_not_overridden(d, "max.message.bytes", MAX_MSG_DEFAULT, "after DELETE: ")
    assert d["max.message.bytes"].is_default
    ck_produce_ok(bootstrap, topic, [(1, b"L" * 2000, None)])
    # DELETE of a config without an override is a no-op.
    assert ck_incremental(admin, TOPIC, topic, [("segment.ms", DELETE, None)]) is None
    expect_not_overridden(ck_describe(admin, TOPIC, topic), "segment.ms", base["segment.ms"])

    # Durable.
    restart_broker(spool_broker, admin, {topic: 3, other: 1})
    d = ck_describe(admin, TOPIC, topic)
    expect_override(d, "retention.ms", "3600000", "after restart: ")
    expect_override(d, THROTTLED, "1:1", "after restart: ")
    expect_override(d, "cleanup.policy", "delete", "after restart: ")
    expect_not_overridden(d, "max.message.bytes", MAX_MSG_DEFAULT, "after restart: ")
    expect_not_overridden(ck_describe(admin, TOPIC, other), "retention.ms", base["retention.ms"], "after restart: ")
    ck_produce_ok(bootstrap, topic, [(2, b"L" * 2000, None)])
    assert ck_incremental(admin, TOPIC, topic, [("max.message.bytes", SET, "1000")]) is None
    expect_too_large(bootstrap, topic, 2, 2000, "max.message.bytes=1000 set after a restart")


@pytest.mark.timeout(180)
def test_kpy_alter_configs_topic(spool_broker):
    bootstrap = spool_broker.bootstrap
    admin = kpy_admin(bootstrap)
    ck = ck_admin(bootstrap)
    T = ConfigResourceType.TOPIC
    try:
        topic = new_name("kpy", "cfg")
        admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}},
                            raise_errors=True, wait_for_metadata=True)
        wait_partitions_led(ck, topic, 2)
        base = kpy_describe(admin, T, topic)
        defaults = {k: base[k]["value"] for k in ("retention.ms", "segment.ms", "max.message.bytes")}
        assert all(base[k]["config_source"] in ("DEFAULT_CONFIG", "STATIC_BROKER_CONFIG") for k in defaults), base

        def check(want_overrides: dict, where: str):
            d = kpy_describe(admin, T, topic)
            for k, v in want_overrides.items():
                assert (d[k]["value"], d[k]["config_source"]) == (v, "DYNAMIC_TOPIC_CONFIG"), (where, k, d[k])
            for k, v in defaults.items():
                if k not in want_overrides:
                    assert d[k]["value"] == v and d[k]["config_source"] != "DYNAMIC_TOPIC_CONFIG", (where, k, d[k])
            # kafka-python's default filter ('modified') keeps exactly the overrides.
            modified = admin.describe_configs([KConfigResource(T, topic)])["topic"][topic]
            assert set(modified) == set(want_overrides), f"{where}: modified configs {sorted(modified)}"

        # IncrementalAlterConfigs SET.
        assert kpy_alter(admin, T, topic, {"retention.ms": "3600000", "segment.ms": "600000"}) == "OK"
        check({"retention.ms": "3600000", "segment.ms": "600000"}, "after SET")
        # APPEND / SUBTRACT.
        assert kpy_alter(admin, T, topic, {THROTTLED: (AlterConfigOp.APPEND, "0:1,1:1")}) == "OK"
        assert kpy_alter(admin, T, topic, {THROTTLED: (AlterConfigOp.SUBTRACT, "1:1")}) == "OK"
        check({"retention.ms": "3600000", "segment.ms": "600000", THROTTLED: "0:1"}, "after APPEND/SUBTRACT")
        # validate_only.
        assert kpy_alter(admin, T, topic, {"retention.ms": "1"}, validate_only=True) == "OK"
        check({"retention.ms": "3600000", "segment.ms": "600000", THROTTLED: "0:1"}, "after validate_only")

        # Legacy AlterConfigs as kafka-python does it: it re-sends the other modified configs, so
        # only max.message.bytes is added.
        assert kpy_alter(admin, T, topic, {"max.message.bytes": "1000"}, incremental=False) == "OK"
        overrides = {"retention.ms": "3600000", "segment.ms": "600000", THROTTLED: "0:1", "max.message.bytes": "1000"}
        check(overrides, "after legacy AlterConfigs")
        expect_too_large(bootstrap, topic, 0, 2000, "max.message.bytes=1000 (legacy AlterConfigs)")

        # reset_configs: incremental DELETE of one config ...
        res = admin.reset_configs([KConfigResource(T, topic, ["max.message.bytes"])], incremental=True)
        assert res == {"topic": {topic: "OK"}}, res
        del overrides["max.message.bytes"]
        check(overrides, "after incremental reset")
        ck_produce_ok(bootstrap, topic, [(0, b"L" * 2000, None)])
        # ... and a legacy partial reset: AlterConfigs with every override but segment.ms, which
        # the broker must then drop (legacy AlterConfigs replaces the whole set).
        res = admin.reset_configs([KConfigResource(T, topic, ["segment.ms"])], incremental=False)
        assert res == {"topic": {topic: "OK"}}, res
        del overrides["segment.ms"]
        check(overrides, "after legacy partial reset")

        # Errors, for both request kinds.
        for incremental in (True, False):
            kind = "IncrementalAlterConfigs" if incremental else "AlterConfigs"
            for what, configs in {
                "non-numeric retention.ms": {"retention.ms": "abc"},
                "unknown config name": {"no.such.topic.config": "1"},
                "segment.bytes below its minimum": {"segment.bytes": "1"},
            }.items():
                r = kpy_alter(admin, T, topic, configs, incremental=incremental)
                assert "InvalidConfigurationError" in r, f"{kind}, {what}: {r}"
                check(overrides, f"after refused {kind} ({what})")
            r = kpy_alter(admin, T, "compat-no-such-topic", {"retention.ms": "1000"}, incremental=incremental)
            assert "UnknownTopicOrPartitionError" in r, f"{kind}, unknown topic: {r}"
        r = kpy_alter(admin, T, topic, {"retention.ms": (AlterConfigOp.APPEND, "5")})
        assert "InvalidConfigurationError" in r, f"APPEND to a non-list config: {r}"

        restart_broker(spool_broker, ck, {topic: 2})
        check(overrides, "after restart")
    finally:
        admin.close()


# --- 2. topic configs: legacy AlterConfigs replaces the set ------------------------------


@pytest.mark.timeout(120)
def test_ck_legacy_alter_configs_replaces_topic_overrides(spool_broker):
    bootstrap = spool_broker.bootstrap
    admin = ck_admin(bootstrap)
    topic = new_name("ck", "legacy")
    ck_create_topic(admin, topic, 1, {"retention.ms": "3600000", "max.message.bytes": "1000"})
    d = ck_describe(admin, TOPIC, topic)
    expect_override(d, "retention.ms", "3600000", "created with: ")
    expect_override(d, "max.message.bytes", "1000", "created with: ")
    base_segment_ms = d["segment.ms"].value
    expect_too_large(bootstrap, topic, 0, 2000, "created with max.message.bytes=1000")

    # The set named replaces the overrides: max.message.bytes goes back to the default.
    assert ck_legacy_alter(admin, TOPIC, topic, {"retention.ms": "7200000", "segment.ms": "600000"}) is None

    def expect_state(where):
        d = ck_describe(admin, TOPIC, topic)
        expect_override(d, "retention.ms", "7200000", where)
        expect_override(d, "segment.ms", "600000", where)
        expect_not_overridden(d, "max.message.bytes", MAX_MSG_DEFAULT, where)

    expect_state("after AlterConfigs: ")
    ck_produce_ok(bootstrap, topic, [(0, b"L" * 2000, None)])

    assert ck_legacy_alter(admin, TOPIC, topic, {"max.message.bytes": "1000"}, validate_only=True) is None
    expect_state("after validate_only AlterConfigs: ")
    for what, configs in {
        "non-numeric retention.ms": {"retention.ms": "abc"},
        "unknown config name": {"segment.ms": "600000", "no.such.topic.config": "1"},
        "segment.bytes below its minimum": {"segment.bytes": "1"},
    }.items():
        err = expect_error(lambda: ck_legacy_alter(admin, TOPIC, topic, configs), KafkaError.INVALID_CONFIG, what)
        assert err.str(), f"{what}: INVALID_CONFIG without a message"
        expect_state(f"after refused AlterConfigs ({what}): ")
    expect_error(lambda: ck_legacy_alter(admin, TOPIC, "compat-no-such-topic", {"retention.ms": "1000"}),
                 KafkaError.UNKNOWN_TOPIC_OR_PART, "AlterConfigs of an unknown topic")

    restart_broker(spool_broker, admin, {topic: 1})
    expect_state("after restart: ")

    # Replacing with a set that names none of them drops them all.
    assert ck_legacy_alter(admin, TOPIC, topic, {"max.message.bytes": "1000"}) is None
    d = ck_describe(admin, TOPIC, topic)
    expect_override(d, "max.message.bytes", "1000")
    assert d["retention.ms"].source != SRC_TOPIC, src_name(d["retention.ms"].source)
    expect_not_overridden(d, "segment.ms", base_segment_ms)
    expect_too_large(bootstrap, topic, 0, 2000, "max.message.bytes=1000 (legacy AlterConfigs)")


# --- 3. retention takes effect -------------------------------------------------------------


def write_old(bootstrap: str, topic: str) -> None:
    """Partition 0, offsets 0..49: records an hour old (timestamps within 50 ms of each other).
    With segment.ms=100 in force before write_new, the first batch of write_new rolls a new
    segment at offset 50 (its timestamp is an hour past the segment's first one) and the rest of
    write_new stays in that segment."""
    old = int(time.time() * 1000) - 3_600_000
    offs = ck_produce_ok(bootstrap, topic, [(0, b"old-%02d" % i, old + i) for i in range(50)])
    assert offs == list(range(50)), offs


def write_new(bootstrap: str, topic: str) -> None:
    now = int(time.time() * 1000)
    offs = ck_produce_ok(bootstrap, topic, [(0, b"new-%02d" % i, now + i) for i in range(50)])
    assert offs == list(range(50, 100)), offs


def wait_earliest(admin, topic: str, want: int, what: str) -> None:
    def probe():
        e = ck_earliest(admin, topic)[0]
        return e != 0, e

    got = poll_until(f"{what}: earliest offset of {topic}-0 moving up from 0", probe)
    assert got == want, f"{what}: earliest offset {got}, expected {want} (the start of the second segment)"


@pytest.mark.timeout(120)
@pytest.mark.spool_settings(f"retention_check_interval_ms={RETENTION_CHECK_MS}")
def test_topic_retention_ms_takes_effect(spool_broker):
    bootstrap = spool_broker.bootstrap
    admin = ck_admin(bootstrap)
    topic = new_name("ck", "retention")
    ck_create_topic(admin, topic, 1)
    write_old(bootstrap, topic)
    assert ck_incremental(admin, TOPIC, topic, [("segment.ms", SET, "100")]) is None
    write_new(bootstrap, topic)
    assert (ck_earliest(admin, topic)[0], ck_latest(admin, topic)[0]) == (0, 100)

    assert ck_incremental(admin, TOPIC, topic, [("retention.ms", SET, "600000")]) is None
    wait_earliest(admin, topic, 50, "retention.ms=600000")
    assert ck_latest(admin, topic)[0] == 100
    got = ck_read(bootstrap, topic, 0, OFFSET_BEGINNING, 50)
    assert [(o, v) for o, v in got[:50]] == [(50 + i, b"new-%02d" % i) for i in range(50)], got[:3]

    assert ck_incremental(admin, TOPIC, topic, [("retention.ms", DELETE, None)]) is None
    restart_broker(spool_broker, admin, {topic: 1})
    assert (ck_earliest(admin, topic)[0], ck_latest(admin, topic)[0]) == (50, 100), "after restart"
    d = ck_describe(admin, TOPIC, topic)
    expect_override(d, "segment.ms", "100", "after restart: ")
    assert d["retention.ms"].source != SRC_TOPIC


# --- 4. broker configs ---------------------------------------------------------------------

BROKER_DYNAMIC = ("log.retention.ms", "message.max.bytes", "log.segment.bytes", "log.cleanup.policy")
BROKER_READ_ONLY = {"node.id": "7", "log.dirs": "/tmp/compat-elsewhere"}


@pytest.mark.timeout(180)
@pytest.mark.spool_settings(f"retention_check_interval_ms={RETENTION_CHECK_MS}")
def test_ck_broker_configs(spool_broker):
    bootstrap = spool_broker.bootstrap
    admin = ck_admin(bootstrap)
    kadmin = kpy_admin(bootstrap)
    B = int(ConfigResourceType.BROKER)
    node = str(NODE_ID)
    try:
        d = ck_describe(admin, BROKER, node)
        for k in BROKER_READ_ONLY:
            assert d[k].is_read_only, f"{k} must be read-only in DescribeConfigs"
        # (That dynamic configs are not read_only is checked at the end, so that a wrong flag does
        # not hide how they behave.)
        dynamic_read_only = {k: d[k].is_read_only for k in BROKER_DYNAMIC}
        assert d["node.id"].value == node
        assert os.path.realpath(d["log.dirs"].value) == os.path.realpath(spool_broker.data_dir), (
            d["log.dirs"].value, spool_broker.data_dir)
        orig = {k: (d[k].value, d[k].source) for k in BROKER_DYNAMIC}

        # Read-only configs cannot be altered: INVALID_REQUEST, nothing changes.
        for k, v in BROKER_READ_ONLY.items():
            err = expect_error(lambda: ck_incremental(admin, BROKER, node, [(k, SET, v)]),
                               KafkaError.INVALID_REQUEST, f"altering read-only {k}")
            assert err.str(), f"altering {k}: no message"
        d = ck_describe(admin, BROKER, node)
        assert d["node.id"].value == node, d["node.id"].value
        assert os.path.realpath(d["log.dirs"].value) == os.path.realpath(spool_broker.data_dir), (
            d["log.dirs"].value, spool_broker.data_dir)
        # Not this node: INVALID_REQUEST (Kafka: "Unexpected broker id").
        code, msg = kpy_raw_incremental(kadmin, B, "2", [("log.retention.ms", 0, "600000")])
        assert code == ERR_INVALID_REQUEST, (code, msg)

        # Topics: A inherits everything, B overrides retention.ms. A's segments roll on age so
        # that its hour-old half can expire on its own.
        ta, tb = new_name("ck", "brk-a"), new_name("ck", "brk-b")
        ck_create_topic(admin, ta, 1, {"segment.ms": "100"})
        ck_create_topic(admin, tb, 1, {"retention.ms": "3600000"})
        write_old(bootstrap, ta)
        write_new(bootstrap, ta)
        assert ck_earliest(admin, ta)[0] == 0

        # Per broker: log.retention.ms.
        assert ck_incremental(admin, BROKER, node, [("log.retention.ms", SET, "1")], validate_only=True) is None
        assert ck_describe(admin, BROKER, node)["log.retention.ms"].source == orig["log.retention.ms"][1]
        err = ck_error(lambda: ck_incremental(admin, BROKER, node, [("log.retention.ms", SET, "abc")]))
        # Kafka answers an invalid broker value with INVALID_REQUEST (KAFKA-13609); INVALID_CONFIG
        # would be the better code and is accepted.
        assert err.code() in (KafkaError.INVALID_REQUEST, KafkaError.INVALID_CONFIG), err
        assert ck_incremental(admin, BROKER, node, [("log.retention.ms", SET, "600000")]) is None
        d = ck_describe(admin, BROKER, node)
        assert (d["log.retention.ms"].value, d["log.retention.ms"].source) == ("600000", SRC_BROKER), (
            d["log.retention.ms"].value, src_name(d["log.retention.ms"].source))
        expect_not_overridden(ck_describe(admin, TOPIC, ta), "retention.ms", "600000", "topic A: ", INHERITED_DYNAMIC)
        expect_override(ck_describe(admin, TOPIC, tb), "retention.ms", "3600000", "topic B: ")
        wait_earliest(admin, ta, 50, "broker log.retention.ms=600000")

        # Cluster default (resource ""): message.max.bytes=1000.
        code, msg = kpy_raw_incremental(kadmin, B, "", [("message.max.bytes", 0, "1000")], validate_only=True)
        assert code == ERR_NONE, (code, msg)
        assert ck_describe(admin, BROKER, node)["message.max.bytes"].source == orig["message.max.bytes"][1]
        code, msg = kpy_raw_incremental(kadmin, B, "", [("message.max.bytes", 0, "1000")])
        assert code == ERR_NONE, (code, msg)
        d = ck_describe(admin, BROKER, node)
        assert (d["message.max.bytes"].value, d["message.max.bytes"].source) == ("1000", SRC_DEFAULT_BROKER), (
            d["message.max.bytes"].value, src_name(d["message.max.bytes"].source))
        code, cluster = kpy_raw_describe(kadmin, B, "")
        assert code == ERR_NONE and cluster.get("message.max.bytes", (None,))[:2] == ("1000", SRC_DEFAULT_BROKER), cluster
        expect_not_overridden(ck_describe(admin, TOPIC, tb), "max.message.bytes", "1000", "topic B: ", INHERITED_DYNAMIC)
        expect_too_large(bootstrap, tb, 0, 2000, "cluster default message.max.bytes=1000")

        # Per broker wins over the cluster default.
        assert ck_incremental(admin, BROKER, node, [("message.max.bytes", SET, "3000")]) is None
        d = ck_describe(admin, BROKER, node)
        assert (d["message.max.bytes"].value, d["message.max.bytes"].source) == ("3000", SRC_BROKER)
        expect_not_overridden(ck_describe(admin, TOPIC, tb), "max.message.bytes", "3000", "topic B: ", INHERITED_DYNAMIC)
        ck_produce_ok(bootstrap, tb, [(0, b"L" * 2000, None)])

        # Durable.
        restart_broker(spool_broker, admin, {ta: 1, tb: 1})
        d = ck_describe(admin, BROKER, node)
        assert (d["log.retention.ms"].value, d["log.retention.ms"].source) == ("600000", SRC_BROKER), "after restart"
        assert (d["message.max.bytes"].value, d["message.max.bytes"].source) == ("3000", SRC_BROKER), "after restart"
        code, cluster = kpy_raw_describe(kadmin, B, "")
        assert cluster.get("message.max.bytes", (None,))[:2] == ("1000", SRC_DEFAULT_BROKER), cluster
        expect_not_overridden(ck_describe(admin, TOPIC, ta), "retention.ms", "600000", "after restart, A: ",
                              INHERITED_DYNAMIC)
        assert ck_earliest(admin, ta)[0] == 50

        # DELETE falls back one level: per broker -> cluster default -> static/default.
        assert ck_incremental(admin, BROKER, node, [("message.max.bytes", DELETE, None)]) is None
        d = ck_describe(admin, BROKER, node)
        assert (d["message.max.bytes"].value, d["message.max.bytes"].source) == ("1000", SRC_DEFAULT_BROKER)
        expect_too_large(bootstrap, tb, 0, 2000, "per-broker message.max.bytes deleted, cluster default 1000")
        code, msg = kpy_raw_incremental(kadmin, B, "", [("message.max.bytes", 1, None)])
        assert code == ERR_NONE, (code, msg)
        d = ck_describe(admin, BROKER, node)
        assert (d["message.max.bytes"].value, d["message.max.bytes"].source) == orig["message.max.bytes"]
        ck_produce_ok(bootstrap, tb, [(0, b"L" * 2000, None)])

        # Legacy AlterConfigs on the node replaces its whole per-broker set: log.retention.ms goes.
        assert ck_legacy_alter(admin, BROKER, node, {"log.segment.bytes": "2000000"}) is None
        d = ck_describe(admin, BROKER, node)
        assert (d["log.segment.bytes"].value, d["log.segment.bytes"].source) == ("2000000", SRC_BROKER)
        assert (d["log.retention.ms"].value, d["log.retention.ms"].source) == orig["log.retention.ms"], (
            "legacy AlterConfigs did not drop the per-broker log.retention.ms",
            d["log.retention.ms"].value, src_name(d["log.retention.ms"].source))
        err = ck_error(lambda: ck_legacy_alter(admin, BROKER, node, {"node.id": "7"}))
        assert err.code() == KafkaError.INVALID_REQUEST, err

        # log.cleanup.policy is dynamic too (Kafka: every broker synonym of a topic config is).
        assert ck_incremental(admin, BROKER, node, [("log.cleanup.policy", SET, "delete")]) is None
        e = ck_describe(admin, BROKER, node)["log.cleanup.policy"]
        assert (e.value, e.source) == ("delete", SRC_BROKER), (e.value, src_name(e.source))
        assert ck_incremental(admin, BROKER, node, [("log.cleanup.policy", DELETE, None)]) is None
        e = ck_describe(admin, BROKER, node)["log.cleanup.policy"]
        assert (e.value, e.source) == orig["log.cleanup.policy"], (e.value, src_name(e.source))

        # Kafka: a broker config is read_only unless it is dynamic (DynamicBrokerConfig.AllDynamicConfigs,
        # which holds the broker synonym of every topic config: log.retention.ms, message.max.bytes,
        # log.segment.bytes, log.cleanup.policy, ...).
        assert not any(dynamic_read_only.values()), (
            f"dynamic broker configs reported read_only: {[k for k, ro in dynamic_read_only.items() if ro]}")
    finally:
        kadmin.close()


@pytest.mark.timeout(120)
def test_kpy_broker_configs(spool_broker):
    admin = kpy_admin(spool_broker.bootstrap)
    B = ConfigResourceType.BROKER
    node = str(NODE_ID)
    try:
        d = kpy_describe(admin, B, node)
        assert d["node.id"]["read_only"] and d["log.dirs"]["read_only"], (d["node.id"], d["log.dirs"])
        assert not d["log.retention.ms"]["read_only"], d["log.retention.ms"]
        orig = (d["log.retention.ms"]["value"], d["log.retention.ms"]["config_source"])

        # kafka-python's default path: it checks the names against DescribeConfigs (dynamic, i.e.
        # not read-only, configs only), then sends IncrementalAlterConfigs to node 1.
        res = admin.alter_configs([KConfigResource(B, node, {"log.retention.ms": "600000"})])
        assert res == {"broker": {node: "OK"}}, res
        e = kpy_describe(admin, B, node, ["log.retention.ms"])["log.retention.ms"]
        assert (e["value"], e["config_source"]) == ("600000", "DYNAMIC_BROKER_CONFIG"), e
        with pytest.raises(ValueError):
            # The client refuses a config DescribeConfigs marks read-only.
            admin.alter_configs([KConfigResource(B, node, {"node.id": "7"})])
        for incremental in (True, False):
            r = kpy_alter(admin, B, node, {"node.id": "7"}, incremental=incremental)
            assert "InvalidRequestError" in r, (incremental, r)

        spool_broker.restart()
        e = kpy_describe(admin, B, node, ["log.retention.ms"])["log.retention.ms"]
        assert (e["value"], e["config_source"]) == ("600000", "DYNAMIC_BROKER_CONFIG"), e

        res = admin.reset_configs([KConfigResource(B, node, ["log.retention.ms"])], incremental=True)
        assert res == {"broker": {node: "OK"}}, res
        e = kpy_describe(admin, B, node, ["log.retention.ms"])["log.retention.ms"]
        assert (e["value"], e["config_source"]) == orig, e
    finally:
        admin.close()


# --- 5. CreatePartitions -------------------------------------------------------------------

CLIENTS = ["confluent-kafka", "kafka-python"]


def create_partitions(client: str, bootstrap: str, topic: str, count: int, validate_only=False):
    """CreatePartitions through the client; returns None or (error code, message)."""
    if client == "confluent-kafka":
        admin = ck_admin(bootstrap)
        fs = admin.create_partitions([NewPartitions(topic, count)], request_timeout=CALL_TIMEOUT_S,
                                     operation_timeout=CALL_TIMEOUT_S, validate_only=validate_only)
        try:
            fs[topic].result(timeout=60)
        except KafkaException as exc:
            return exc.args[0].code(), exc.args[0].str()
        return None
    admin = kpy_admin(bootstrap)
    try:
        resp = admin.create_partitions({topic: count}, timeout_ms=int(CALL_TIMEOUT_S * 1000),
                                       validate_only=validate_only, raise_errors=False)
    finally:
        admin.close()
    (r,) = resp.results
    assert r.name == topic, r
    return None if r.error_code == ERR_NONE else (r.error_code, r.error_message)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("client", CLIENTS)
def test_create_partitions(spool_broker, client):
    bootstrap = spool_broker.bootstrap
    admin = ck_admin(bootstrap)
    topic = new_name(client[:3], "cp")
    ck_create_topic(admin, topic, 2)
    ck_produce_ok(bootstrap, topic, [(0, b"p0-0", None), (1, b"p1-0", None)])

    assert create_partitions(client, bootstrap, topic, 5, validate_only=True) is None
    assert ck_partition_count(admin, topic) == 2, "validate_only CreatePartitions added partitions"

    assert create_partitions(client, bootstrap, topic, 5) is None
    wait_partitions_led(admin, topic, 5)
    desc = admin.describe_topics(TopicCollection([topic]), request_timeout=CALL_TIMEOUT_S)[topic].result(timeout=60)
    assert [(p.id, p.leader.id, [r.id for r in p.replicas], [r.id for r in p.isr]) for p in desc.partitions] == [
        (p, NODE_ID, [NODE_ID], [NODE_ID]) for p in range(5)]

    # New partitions take records from offset 0 and serve them.
    offs = ck_produce_ok(bootstrap, topic, [(p, b"p%d-%d" % (p, i), None) for p in range(5) for i in (1, 2)])
    assert offs == [1, 2, 1, 2, 0, 1, 0, 1, 0, 1], offs
    for p in (2, 3, 4):
        got = ck_read(bootstrap, topic, p, 0, 2)
        assert got[:2] == [(0, b"p%d-1" % p), (1, b"p%d-2" % p)], (p, got)

    for count, what in ((5, "the same count"), (3, "fewer partitions")):
        r = create_partitions(client, bootstrap, topic, count)
        assert r is not None and r[0] == ERR_INVALID_PARTITIONS, f"CreatePartitions to {what}: {r}"
        assert r[1], f"CreatePartitions to {what}: INVALID_PARTITIONS without a message"
    r = create_partitions(client, bootstrap, "compat-no-such-topic", 4)
    assert r is not None and r[0] == ERR_UNKNOWN_TOPIC_OR_PARTITION, r
    assert ck_partition_count(admin, topic) == 5

    restart_broker(spool_broker, admin, {topic: 5})
    assert ck_latest(admin, topic, range(5)) == {0: 3, 1: 3, 2: 2, 3: 2, 4: 2}
    got = ck_read(bootstrap, topic, 4, 0, 2)
    assert got[:2] == [(0, b"p4-1"), (1, b"p4-2")], got


# --- 6. DeleteRecords ----------------------------------------------------------------------


def delete_records(client: str, bootstrap: str, topic: str, partition: int, offset: int):
    """DeleteRecords through the client: ('ok', low_watermark) or ('error', code)."""
    if client == "confluent-kafka":
        admin = ck_admin(bootstrap)
        fs = admin.delete_records([CTopicPartition(topic, partition, offset)], request_timeout=CALL_TIMEOUT_S,
                                  operation_timeout=CALL_TIMEOUT_S)
        (f,) = fs.values()
        try:
            return "ok", f.result(timeout=60).low_watermark
        except KafkaException as exc:
            return "error", exc.args[0].code()
    admin = kpy_admin(bootstrap)
    tp = KTopicPartition(topic, partition)
    try:
        res = admin.delete_records({tp: offset}, timeout_ms=int(CALL_TIMEOUT_S * 1000))
        return "ok", res[tp]["low_watermark"]
    except KErrors.BrokerResponseError as exc:
        return "error", exc.errno
    finally:
        admin.close()


@pytest.mark.timeout(150)
@pytest.mark.parametrize("client", CLIENTS)
def test_delete_records(spool_broker, client):
    bootstrap = spool_broker.bootstrap
    admin = ck_admin(bootstrap)
    topic = new_name(client[:3], "dr")
    ck_create_topic(admin, topic, 2)
    ck_produce_ok(bootstrap, topic, [(0, b"r-%03d" % i, None) for i in range(100)])
    ck_produce_ok(bootstrap, topic, [(1, b"q-%03d" % i, None) for i in range(10)])

    assert delete_records(client, bootstrap, topic, 0, 40) == ("ok", 40)
    assert ck_earliest(admin, topic, (0, 1)) == {0: 40, 1: 0}
    assert ck_latest(admin, topic, (0, 1)) == {0: 100, 1: 10}
    # Below the current log start: nothing to do, the low watermark stays.
    assert delete_records(client, bootstrap, topic, 0, 30) == ("ok", 40)
    # Beyond the high watermark: OFFSET_OUT_OF_RANGE, nothing deleted.
    assert delete_records(client, bootstrap, topic, 0, 150) == ("error", ERR_OFFSET_OUT_OF_RANGE)
    assert ck_earliest(admin, topic, (0,)) == {0: 40}
    # -1: up to the high watermark.
    assert delete_records(client, bootstrap, topic, 1, -1) == ("ok", 10)
    assert ck_earliest(admin, topic, (0, 1)) == {0: 40, 1: 10}
    assert ck_latest(admin, topic, (1,)) == {1: 10}
    # Appends continue at the log end.
    assert ck_produce_ok(bootstrap, topic, [(1, b"q-010", None), (0, b"r-100", None)]) == [10, 100]

    restart_broker(spool_broker, admin, {topic: 2})
    assert ck_earliest(admin, topic, (0, 1)) == {0: 40, 1: 10}, "after restart"
    assert ck_latest(admin, topic, (0, 1)) == {0: 101, 1: 11}, "after restart"

    # Readers (last, so that a reader problem does not hide the DeleteRecords checks above).
    want = [(40 + i, b"r-%03d" % (40 + i)) for i in range(61)]
    if client == "confluent-kafka":
        got = ck_read(bootstrap, topic, 0, OFFSET_BEGINNING, 61)
        assert got[:61] == want, got[:3]
        # Positioned below the log start: OFFSET_OUT_OF_RANGE, which librdkafka reports as
        # _AUTO_OFFSET_RESET under auto.offset.reset=error, or resets from under =earliest.
        err = ck_read_error(bootstrap, topic, 0, 10)
        assert err.code() == KafkaError._AUTO_OFFSET_RESET and "out of range" in err.str().lower(), err
        got = ck_read(bootstrap, topic, 0, 10, 61)
        assert got[:61] == want, got[:3]
    else:
        got = kpy_read(bootstrap, topic, 0, 40, 61)
        assert [(r.offset, r.value) for r in got[:61]] == want, [(r.offset, r.value) for r in got[:3]]
        exc = kpy_read_error(bootstrap, topic, 0, 10)
        assert isinstance(exc, KErrors.OffsetOutOfRangeError), repr(exc)
        got = kpy_read(bootstrap, topic, 0, 10, 61)
        assert [(r.offset, r.value) for r in got[:61]] == want, [(r.offset, r.value) for r in got[:3]]


# --- 7. DescribeLogDirs --------------------------------------------------------------------


def log_dirs_sizes(admin, topic_partitions=None):
    """kafka-python describe_log_dirs -> (log dir result, {(topic, partition): partition dict})."""
    resp = admin.describe_log_dirs(topic_partitions)
    assert [r["broker"] for r in resp] == [NODE_ID], resp
    dirs = resp[0]["log_dirs"]
    assert len(dirs) == 1, f"expected one log dir, got {[d.get('log_dir') for d in dirs]}"
    (d,) = dirs
    assert d["error_code"] == ERR_NONE, d
    parts = {}
    for t in d["topics"]:
        for p in t["partitions"]:
            key = (t["name"], p["partition_index"])
            assert key not in parts, f"{key} listed twice"
            parts[key] = p
    return d, parts


def on_disk_size(data_dir: Path, topic: str, partition: int) -> int:
    return sum(f.stat().st_size for f in (data_dir / f"{topic}-{partition}").glob("*.log"))


@pytest.mark.timeout(120)
def test_kpy_describe_log_dirs(spool_broker):
    bootstrap = spool_broker.bootstrap
    ck = ck_admin(bootstrap)
    admin = kpy_admin(bootstrap)
    try:
        ta, tb = new_name("kpy", "ld-a"), new_name("kpy", "ld-b")
        ck_create_topic(ck, ta, 3)
        ck_create_topic(ck, tb, 1)
        ck_produce_ok(bootstrap, ta, [(0, b"a" * 500, None) for _ in range(20)] + [(1, b"b" * 100, None)])

        d, parts = log_dirs_sizes(admin)
        assert os.path.isabs(d["log_dir"]), d["log_dir"]
        assert os.path.realpath(d["log_dir"]) == os.path.realpath(spool_broker.data_dir), (
            d["log_dir"], spool_broker.data_dir)
        for key in [(ta, 0), (ta, 1), (ta, 2), (tb, 0)]:
            assert key in parts, f"{key} missing from DescribeLogDirs: {sorted(parts)[:20]}"
            p = parts[key]
            assert p["offset_lag"] == 0 and not p["is_future_key"], p
            assert p["partition_size"] == on_disk_size(spool_broker.data_dir, *key), (
                key, p["partition_size"], on_disk_size(spool_broker.data_dir, *key))
        sizes = {k: parts[k]["partition_size"] for k in [(ta, 0), (ta, 1), (ta, 2), (tb, 0)]}
        assert sizes[(ta, 0)] > 20 * 500 and sizes[(ta, 1)] > 100, sizes
        assert sizes[(ta, 2)] == 0 and sizes[(tb, 0)] == 0, sizes
        if d.get("total_bytes", -1) != -1:  # v4+
            assert 0 < d["usable_bytes"] <= d["total_bytes"], d

        # Only what is asked for.
        _, only = log_dirs_sizes(admin, {ta: [0]})
        assert set(only) == {(ta, 0)}, sorted(only)

        # Grows with more data.
        ck_produce_ok(bootstrap, ta, [(0, b"c" * 1000, None) for _ in range(10)])
        _, after = log_dirs_sizes(admin, {ta: [0, 1]})
        assert after[(ta, 0)]["partition_size"] >= sizes[(ta, 0)] + 10 * 1000, (after, sizes)
        assert after[(ta, 1)]["partition_size"] == sizes[(ta, 1)]

        restart_broker(spool_broker, ck, {ta: 3, tb: 1})
        _, restarted = log_dirs_sizes(admin, {ta: [0, 1, 2]})
        assert {k: v["partition_size"] for k, v in restarted.items()} == {
            (ta, 0): after[(ta, 0)]["partition_size"], (ta, 1): sizes[(ta, 1)], (ta, 2): 0}
    finally:
        admin.close()


# --- 8. ListOffsets ------------------------------------------------------------------------

# Partition 0: 20 records, record i at BASE + i s, except record 7 which is the newest.
TS_RECORDS = 20
TS_MAX_INDEX = 7


def write_timestamps(bootstrap: str, topic: str) -> tuple[int, list[int]]:
    base = int(time.time() * 1000) - 3_600_000
    ts = [base + i * 1000 for i in range(TS_RECORDS)]
    ts[TS_MAX_INDEX] = base + 100_000
    offs = ck_produce_ok(bootstrap, topic, [(0, b"t-%02d" % i, ts[i]) for i in range(TS_RECORDS)])
    assert offs == list(range(TS_RECORDS)), offs
    return base, ts


@pytest.mark.timeout(120)
def test_ck_list_offsets(spool_broker):
    bootstrap = spool_broker.bootstrap
    admin = ck_admin(bootstrap)
    topic = new_name("ck", "lo")
    ck_create_topic(admin, topic, 2)
    base, ts = write_timestamps(bootstrap, topic)

    def one(spec, p=0):
        r = ck_offsets(admin, topic, (p,), spec)[p]
        return r.offset, r.timestamp

    assert one(COffsetSpec.earliest())[0] == 0
    assert one(COffsetSpec.latest())[0] == TS_RECORDS
    assert one(COffsetSpec.for_timestamp(base + 5_000)) == (5, base + 5_000)
    # First offset whose timestamp is >= target: record 7 (the newest) comes before 8.
    assert one(COffsetSpec.for_timestamp(base + 7_500)) == (TS_MAX_INDEX, base + 100_000)
    assert one(COffsetSpec.for_timestamp(base - 10_000)) == (0, base)
    assert one(COffsetSpec.for_timestamp(base + 100_001))[0] == -1
    assert one(COffsetSpec.max_timestamp()) == (TS_MAX_INDEX, base + 100_000)
    # Empty partition.
    assert one(COffsetSpec.earliest(), 1)[0] == 0 and one(COffsetSpec.latest(), 1)[0] == 0
    assert one(COffsetSpec.max_timestamp(), 1)[0] == -1
    assert one(COffsetSpec.for_timestamp(base), 1)[0] == -1

    # The consumer's views of the same.
    cfg = ck_config(bootstrap, "wm")
    cfg.update({"group.id": new_name("ck", "wm"), "enable.auto.commit": False})
    consumer = Consumer(cfg)
    try:
        assert consumer.get_watermark_offsets(CTopicPartition(topic, 0), timeout=10, cached=False) == (0, TS_RECORDS)
        found = consumer.offsets_for_times([CTopicPartition(topic, 0, base + 7_500),
                                            CTopicPartition(topic, 1, base)], timeout=10)
        assert [(tp.partition, tp.offset) for tp in found] == [(0, TS_MAX_INDEX), (1, -1)], found
    finally:
        consumer.close()

    # After DeleteRecords the earliest offset follows the log start.
    (f,) = admin.delete_records([CTopicPartition(topic, 0, 3)], request_timeout=CALL_TIMEOUT_S).values()
    assert f.result(timeout=60).low_watermark == 3
    assert one(COffsetSpec.earliest())[0] == 3
    # Kafka searches by timestamp from the log start offset (UnifiedLog.fetchOffsetByTimestamp ->
    # segment.findOffsetByTimestamp(target, logStartOffset)): never a deleted offset.
    got = one(COffsetSpec.for_timestamp(base))
    assert got == (3, ts[3]), f"ListOffsets(timestamp={base}) after DeleteRecords(3): {got}, expected (3, {ts[3]})"


@pytest.mark.timeout(120)
def test_kpy_list_partition_offsets(spool_broker):
    bootstrap = spool_broker.bootstrap
    ck = ck_admin(bootstrap)
    ck_create_topic(ck, topic := new_name("kpy", "lo"), 2)
    base, ts = write_timestamps(bootstrap, topic)
    admin = kpy_admin(bootstrap)
    p0, p1 = KTopicPartition(topic, 0), KTopicPartition(topic, 1)
    try:
        def one(spec, tp=p0):
            r = admin.list_partition_offsets({tp: spec})[tp]
            return r.offset, r.timestamp

        assert one(KOffsetSpec.EARLIEST)[0] == 0
        assert one(KOffsetSpec.LATEST)[0] == TS_RECORDS
        assert one(base + 5_000) == (5, base + 5_000)
        assert one(base + 7_500) == (TS_MAX_INDEX, base + 100_000)
        assert one(base + 100_001)[0] == -1
        assert one(KOffsetSpec.MAX_TIMESTAMP) == (TS_MAX_INDEX, base + 100_000)
        assert one(KOffsetSpec.LATEST, p1)[0] == 0 and one(KOffsetSpec.MAX_TIMESTAMP, p1)[0] == -1
        both = admin.list_partition_offsets({p0: KOffsetSpec.LATEST, p1: KOffsetSpec.EARLIEST})
        assert {tp.partition: r.offset for tp, r in both.items()} == {0: TS_RECORDS, 1: 0}
    finally:
        admin.close()


# --- 9. DescribeTopicPartitions, ElectLeaders, OffsetForLeaderEpoch ------------------------


@pytest.mark.timeout(120)
def test_ck_describe_topics_and_elect_leaders(spool_broker):
    bootstrap = spool_broker.bootstrap
    admin = ck_admin(bootstrap)
    topic = new_name("ck", "el")
    ck_create_topic(admin, topic, 3)

    desc = admin.describe_topics(TopicCollection([topic]), request_timeout=CALL_TIMEOUT_S)[topic].result(timeout=60)
    assert desc.name == topic and not desc.is_internal
    assert [(p.id, p.leader.id, [r.id for r in p.replicas], [r.id for r in p.isr]) for p in desc.partitions] == [
        (p, NODE_ID, [NODE_ID], [NODE_ID]) for p in range(3)]
    expect_error(
        lambda: admin.describe_topics(TopicCollection(["compat-no-such-topic"]),
                                      request_timeout=CALL_TIMEOUT_S)["compat-no-such-topic"].result(timeout=60),
        KafkaError.UNKNOWN_TOPIC_OR_PART, "describe_topics of an unknown topic")

    for etype in (ElectionType.PREFERRED, ElectionType.UNCLEAN):
        # No request_timeout/operation_timeout: confluent-kafka 2.16.1's elect_leaders raises
        # SystemError for either (its C argument parser lists fewer keywords than its format).
        res = admin.elect_leaders(etype, [CTopicPartition(topic, 0), CTopicPartition(topic, 2),
                                          CTopicPartition(topic, 9)]).result(timeout=60)
        got = {tp.partition: error_code(e) for tp, e in res.items()}
        assert got == {0: KafkaError.ELECTION_NOT_NEEDED, 2: KafkaError.ELECTION_NOT_NEEDED,
                       9: KafkaError.UNKNOWN_TOPIC_OR_PART}, (etype, got)
    # All partitions: Kafka leaves out those that need no election.
    res = admin.elect_leaders(ElectionType.PREFERRED, None).result(timeout=60)
    assert res == {}, res
    # Nothing moved.
    wait_partitions_led(admin, topic, 3)


def kpy_ofle(admin, topic: str, asks):
    """OffsetForLeaderEpoch for [(partition, current_leader_epoch, leader_epoch)]:
    {partition: (error_code, leader_epoch, end_offset)}."""
    P = OffsetForLeaderEpochRequest.OffsetForLeaderTopic.OffsetForLeaderPartition
    req = OffsetForLeaderEpochRequest(
        replica_id=-1,
        topics=[(topic, [P(partition=p, current_leader_epoch=c, leader_epoch=e) for p, c, e in asks])],
    )
    resp = kpy_send(admin, req, NODE_ID)
    out = {}
    for t in resp.topics:
        assert t.topic == topic, t
        for p in t.partitions:
            out[p.partition] = (p.error_code, p.leader_epoch, p.end_offset)
    return out


@pytest.mark.timeout(150)
def test_kpy_describe_topic_partitions_elect_leaders_offset_for_leader_epoch(spool_broker):
    bootstrap = spool_broker.bootstrap
    ck = ck_admin(bootstrap)
    topic = new_name("kpy", "dtp")
    ck_create_topic(ck, topic, 5)
    admin = kpy_admin(bootstrap)
    try:
        (md,) = admin.describe_topics([topic])
        md_epochs = {p["partition_index"]: p["leader_epoch"] for p in md["partitions"]}

        # DescribeTopicPartitions: the whole topic ...
        res = admin.describe_topic_partitions([topic])
        assert res["next_cursor"] is None, res["next_cursor"]
        (t,) = res["topics"]
        assert (t["error_code"], t["name"], t["is_internal"]) == (ERR_NONE, topic, False), t
        assert str(t["topic_id"]) == str(md["topic_id"]), (t["topic_id"], md["topic_id"])
        parts = t["partitions"]
        assert [(p["partition_index"], p["error_code"], p["leader_id"], p["replica_nodes"], p["isr_nodes"],
                 p["offline_replicas"]) for p in parts] == [
            (i, ERR_NONE, NODE_ID, [NODE_ID], [NODE_ID], []) for i in range(5)], parts
        epochs = {p["partition_index"]: p["leader_epoch"] for p in parts}
        assert epochs == md_epochs and all(e >= 0 for e in epochs.values()), (epochs, md_epochs)
        # ... in pages of 2 (response_partition_limit), following the cursor.
        seen, cursor, pages = [], None, 0
        for _ in range(10):
            page = admin.describe_topic_partitions([topic], response_partition_limit=2, cursor=cursor)
            pages += 1
            for tt in page["topics"]:
                assert tt["name"] == topic, tt
                seen += [p["partition_index"] for p in tt["partitions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert cursor == {"topic_name": topic, "partition_index": len(seen)}, (cursor, seen)
        assert (seen, pages) == ([0, 1, 2, 3, 4], 3), (seen, pages)
        # An unknown topic is reported, not dropped.
        (u,) = admin.describe_topic_partitions(["compat-no-such-topic"])["topics"]
        assert u["error_code"] == ERR_UNKNOWN_TOPIC_OR_PARTITION and u["partitions"] == [], u

        # ElectLeaders: nothing to elect on a single node that leads everything.
        for etype in (0, 1):  # PREFERRED, UNCLEAN
            resp = admin.elect_leaders(etype, {topic: [0, 3]}, raise_errors=False)
            assert getattr(resp, "error_code", ERR_NONE) == ERR_NONE, resp
            got = {(r.topic, p.partition_id): p.error_code
                   for r in resp.replica_election_results for p in r.partition_result}
            assert got == {(topic, 0): ERR_ELECTION_NOT_NEEDED, (topic, 3): ERR_ELECTION_NOT_NEEDED}, (etype, got)
        resp = admin.elect_leaders(0, {topic: [7]}, raise_errors=False)
        got = {(r.topic, p.partition_id): p.error_code for r in resp.replica_election_results for p in r.partition_result}
        assert got == {(topic, 7): ERR_UNKNOWN_TOPIC_OR_PARTITION}, got

        # OffsetForLeaderEpoch against the current epoch: the log end offset.
        ck_produce_ok(bootstrap, topic, [(0, b"e-%d" % i, None) for i in range(10)])
        e0 = epochs[0]
        assert kpy_ofle(admin, topic, [(0, e0, e0), (1, -1, epochs[1])]) == {
            0: (ERR_NONE, e0, 10), 1: (ERR_NONE, epochs[1], 0)}
        # current_leader_epoch newer than the leader's: UNKNOWN_LEADER_EPOCH; older: FENCED.
        assert kpy_ofle(admin, topic, [(0, e0 + 1, e0)])[0][0] == ERR_UNKNOWN_LEADER_EPOCH
        if e0 > 0:
            assert kpy_ofle(admin, topic, [(0, e0 - 1, e0)])[0][0] == ERR_FENCED_LEADER_EPOCH
        # An epoch above every known one: undefined epoch and offset.
        assert kpy_ofle(admin, topic, [(0, -1, e0 + 5)]) == {0: (ERR_NONE, -1, -1)}
        # Unknown partition.
        assert kpy_ofle(admin, topic, [(9, -1, 0)])[9][0] == ERR_UNKNOWN_TOPIC_OR_PARTITION
        # The fetched batches carry the leader epoch they were written in.
        recs = kpy_read(bootstrap, topic, 0, 0, 10)
        assert {r.leader_epoch for r in recs[:10]} == {e0}, [(r.offset, r.leader_epoch) for r in recs[:10]]

        # After a restart the leader may have a new epoch; the old one then ends where the new
        # one starts (offset 10), and the new one at the log end.
        restart_broker(spool_broker, ck, {topic: 5})
        (md,) = admin.describe_topics([topic])
        e1 = {p["partition_index"]: p["leader_epoch"] for p in md["partitions"]}[0]
        assert e1 >= e0, (e0, e1)
        ck_produce_ok(bootstrap, topic, [(0, b"f-%d" % i, None) for i in range(5)])
        assert kpy_ofle(admin, topic, [(0, e1, e1)]) == {0: (ERR_NONE, e1, 15)}
        if e1 > e0:
            assert kpy_ofle(admin, topic, [(0, -1, e0)]) == {0: (ERR_NONE, e0, 10)}
    finally:
        admin.close()

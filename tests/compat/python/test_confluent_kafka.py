"""spool compatibility with confluent-kafka 2.16.1 (librdkafka 2.16 bundled in the wheel).

Pins, for each compression codec (none, gzip, snappy, lz4, zstd):
  * AdminClient.create_topics creates a 3-partition topic (CreateTopics) that
    list_topics (Metadata) then reports with 3 led partitions;
  * Producer (acks=all, enable.idempotence=false) writes 10,000 keyed records
    with 2 headers and explicit timestamps to partition index % 3, and the
    delivery reports assign offsets 0..n-1 per partition;
  * Consumer with manual assign() at OFFSET_BEGINNING (no subscribe, no commit;
    group.id is set only because the constructor demands one) reads every
    record back with identical key/value/headers/timestamp at the reported
    partition/offset, in offset order; get_watermark_offsets (ListOffsets)
    agrees.
  * a raw Fetch v4 shows every stored batch is a v2 batch in the requested codec
    (so a client that silently falls back to uncompressed is caught).
Plus: an idempotent producer (enable.idempotence=true, acks=all; InitProducerId)
writes 5,000 records that are present exactly once, in send order, stored in
batches with one producer id and gapless sequence numbers from 0 per partition.
librdkafka may log that it cannot find a group coordinator (the broker has no
FindCoordinator yet); such non-fatal errors are printed, not failed on.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from compat_common import (
    COMPRESSIONS,
    CONSUME_DEADLINE_S,
    NUM_IDEMPOTENT_RECORDS,
    NUM_PARTITIONS,
    NUM_RECORDS,
    PRODUCE_DEADLINE_S,
    TEST_TIMEOUT_S,
    Consumed,
    Deadline,
    Delivery,
    check_consumed,
    check_deliveries,
    check_in_order,
    check_stored_batches,
    check_watermarks,
    make_records,
    unique_topic,
)

CLIENT = "ck"


class ErrorLog:
    """error_cb sink: every client-level error is kept; fatal ones fail the test."""

    def __init__(self, who: str):
        self.who = who
        self.errors: list[KafkaError] = []

    def __call__(self, err: KafkaError) -> None:
        self.errors.append(err)
        print(f"[{self.who}] error_cb: {err}")

    def assert_no_fatal(self) -> None:
        fatal = [e for e in self.errors if e.fatal()]
        assert not fatal, f"{self.who}: fatal librdkafka error(s): {fatal}"


def base_config(bootstrap: str, who: str, errors: ErrorLog) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": f"compat-ck-{who}",
        "broker.address.family": "v4",
        # Construction fails unless this librdkafka build has every codec under test.
        "builtin.features": "gzip,snappy,lz4,zstd",
        "error_cb": errors,
    }


def create_topic(bootstrap: str, topic: str) -> None:
    errors = ErrorLog("admin")
    admin = AdminClient(base_config(bootstrap, "admin", errors))
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=NUM_PARTITIONS, replication_factor=1)],
        request_timeout=30,
        operation_timeout=30,
    )
    futures[topic].result(timeout=60)  # raises KafkaException on a CreateTopics error

    deadline = Deadline(30)
    state = None
    while not deadline.expired():
        md = admin.list_topics(topic=topic, timeout=10)
        tmd = md.topics.get(topic)
        if tmd is not None and tmd.error is None:
            parts = tmd.partitions
            if sorted(parts) == list(range(NUM_PARTITIONS)) and all(
                p.error is None and p.leader >= 0 for p in parts.values()
            ):
                state = None
                break
            state = {pid: (p.leader, p.error) for pid, p in parts.items()}
        else:
            state = tmd.error if tmd is not None else "missing"
        time.sleep(0.1)
    else:
        pytest.fail(f"topic {topic} not ready in Metadata within 30s: {state}")
    errors.assert_no_fatal()


def produce(bootstrap: str, topic: str, records, **extra) -> list[Delivery]:
    errors = ErrorLog("producer")
    config = base_config(bootstrap, "producer", errors)
    config.update(
        {
            "acks": "all",
            "linger.ms": 10,
            "message.timeout.ms": int(PRODUCE_DEADLINE_S * 1000),
            "request.timeout.ms": 30_000,
        }
    )
    config.update(extra)
    producer = Producer(config)

    deliveries: list[Delivery] = []
    failures: list[str] = []

    def on_delivery(index, err, msg):
        if err is not None:
            failures.append(f"record {index}: {err}")
        else:
            assert msg.topic() == topic
            deliveries.append(Delivery(index, msg.partition(), msg.offset()))

    deadline = Deadline(PRODUCE_DEADLINE_S)
    for r in records:
        while True:
            try:
                producer.produce(
                    topic,
                    key=r.key,
                    value=r.value,
                    partition=r.partition,
                    headers=list(r.headers),
                    timestamp=r.timestamp_ms,
                    on_delivery=lambda err, msg, i=r.index: on_delivery(i, err, msg),
                )
                break
            except BufferError:
                # Local queue full: serve delivery reports, then retry (bounded by deadline).
                if deadline.expired():
                    pytest.fail(f"local producer queue still full after {PRODUCE_DEADLINE_S}s")
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(max(1.0, deadline.remaining()))
    errors.assert_no_fatal()
    assert remaining == 0, (
        f"{remaining} records still undelivered after {PRODUCE_DEADLINE_S}s; "
        f"{len(deliveries)} delivered, errors: {errors.errors[:5]}"
    )
    assert not failures, f"{len(failures)} delivery failures, first: {failures[:10]}"
    return deliveries


def consume_all(bootstrap: str, topic: str, expected_total: int):
    errors = ErrorLog("consumer")
    config = base_config(bootstrap, "consumer", errors)
    config.update(
        {
            # Required by the constructor; never used: no subscribe(), no commit.
            "group.id": "compat-ck-unused-group",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 200,
        }
    )
    consumer = Consumer(config)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(NUM_PARTITIONS)])
        by_partition: dict[int, list[Consumed]] = {p: [] for p in range(NUM_PARTITIONS)}
        total = 0
        msg_errors = []
        deadline = Deadline(CONSUME_DEADLINE_S)
        polls = 0
        while total < expected_total and not deadline.expired() and polls < 100_000:
            polls += 1
            for msg in consumer.consume(num_messages=1_000, timeout=0.5):
                if msg.error() is not None:
                    msg_errors.append(msg.error())
                    continue
                assert msg.topic() == topic
                ts_type, ts = msg.timestamp()
                assert ts_type == TIMESTAMP_CREATE_TIME, f"timestamp type {ts_type} at {msg.partition()}@{msg.offset()}"
                by_partition[msg.partition()].append(
                    Consumed(msg.partition(), msg.offset(), msg.key(), msg.value(), list(msg.headers() or []), ts)
                )
                total += 1
            if msg_errors:
                break
        errors.assert_no_fatal()
        assert not msg_errors, f"consumer message errors: {msg_errors[:10]}"
        assert total >= expected_total, (
            f"consumed only {total}/{expected_total} records within {CONSUME_DEADLINE_S}s "
            f"({polls} polls); per partition: { {p: len(v) for p, v in by_partition.items()} }; "
            f"client errors: {errors.errors[:10]}"
        )
        low, high = {}, {}
        for p in range(NUM_PARTITIONS):
            lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            low[p], high[p] = lo, hi
        return by_partition, low, high
    finally:
        consumer.close()


@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_produce_consume_roundtrip(bootstrap, compression):
    topic = unique_topic(CLIENT, compression)
    create_topic(bootstrap, topic)
    records = make_records(NUM_RECORDS, tag=f"{CLIENT}-{compression}")

    t0 = time.monotonic()
    deliveries = produce(
        bootstrap,
        topic,
        records,
        **{"compression.type": compression, "enable.idempotence": False},
    )
    at = check_deliveries(records, deliveries)
    t1 = time.monotonic()

    consumed, low, high = consume_all(bootstrap, topic, len(records))
    check_consumed(records, at, consumed)
    check_watermarks(at, low, high)
    check_stored_batches(bootstrap, topic, at, compression, idempotent=False)
    print(f"confluent-kafka {compression}: produce {t1 - t0:.1f}s, consume {time.monotonic() - t1:.1f}s")


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_idempotent_producer_exactly_once_in_order(bootstrap):
    topic = unique_topic(CLIENT, "idempotent")
    create_topic(bootstrap, topic)
    records = make_records(NUM_IDEMPOTENT_RECORDS, tag=f"{CLIENT}-idempotent")

    deliveries = produce(
        bootstrap,
        topic,
        records,
        **{
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            # Any gap/duplicate/ordering problem on the broker side becomes a fatal error.
            "enable.gapless.guarantee": True,
        },
    )
    at = check_deliveries(records, deliveries)
    check_in_order(records, at)

    consumed, low, high = consume_all(bootstrap, topic, len(records))
    check_consumed(records, at, consumed)
    check_watermarks(at, low, high)
    check_stored_batches(bootstrap, topic, at, "none", idempotent=True)

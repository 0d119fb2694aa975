"""spool compatibility with aiokafka 0.14.0 (asyncio client).

aiokafka 0.14 only speaks old protocol versions (Produce v0-7, Fetch v1-11,
Metadata v0-5, ListOffsets v0-3, CreateTopics v0-3, InitProducerId v0,
ApiVersions v0); this suite therefore also pins that spool keeps accepting them.

Pins, for each compression codec (none, gzip, snappy, lz4, zstd):
  * AIOKafkaAdminClient.create_topics creates a 3-partition topic (CreateTopics
    sent to the Metadata controller) that describe_topics then reports with 3
    led partitions;
  * AIOKafkaProducer (acks=all, idempotence off) writes 10,000 keyed records
    with 2 headers and explicit timestamps to partition index % 3, and the
    RecordMetadata results assign offsets 0..n-1 per partition;
  * AIOKafkaConsumer with group_id=None, manual assign() + seek_to_beginning(),
    reads every record back with identical key/value/headers/timestamp at the
    acked partition/offset, in offset order; beginning/end offsets (ListOffsets)
    agree.
  * a raw Fetch v4 shows every stored batch is a v2 batch in the requested codec
    (so a client that silently falls back to uncompressed is caught).
Plus: an idempotent producer (enable_idempotence=True, acks=all; InitProducerId)
writes 5,000 records that are present exactly once, in send order, stored in
batches with one producer id and gapless sequence numbers from 0 per partition.
Tests are plain functions that drive their own event loop with asyncio.run.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

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

CLIENT = "aio"


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="compat-aio-admin")
    await admin.start()
    try:
        resp = await admin.create_topics(
            [NewTopic(topic, num_partitions=NUM_PARTITIONS, replication_factor=1)],
            timeout_ms=30_000,
        )
        # aiokafka returns the raw response: (topic, error_code[, error_message]) per topic.
        errors = [tuple(t) for t in resp.topic_errors if t[1] != 0]
        assert not errors, f"CreateTopics errors: {errors}"
        assert [t[0] for t in resp.topic_errors] == [topic], resp.topic_errors

        deadline = Deadline(30)
        state = None
        while not deadline.expired():
            topics = await admin.describe_topics([topic])
            if len(topics) == 1 and topics[0]["error_code"] == 0:
                parts = topics[0]["partitions"]
                if sorted(p["partition"] for p in parts) == list(range(NUM_PARTITIONS)) and all(
                    p["error_code"] == 0 and p["leader"] >= 0 for p in parts
                ):
                    return
                state = parts
            else:
                state = topics
            await asyncio.sleep(0.1)
        pytest.fail(f"topic {topic} not ready in Metadata within 30s: {state}")
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, records, **producer_config) -> list[Delivery]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="compat-aio-producer",
        acks="all",
        linger_ms=10,
        request_timeout_ms=30_000,
        **producer_config,
    )
    await producer.start()
    try:
        deadline = Deadline(PRODUCE_DEADLINE_S)
        pending = []
        for r in records:
            # send() returns once the record is in the accumulator (it waits while
            # the accumulator is full); the returned future resolves on the ack.
            fut = await asyncio.wait_for(
                producer.send(
                    topic,
                    key=r.key,
                    value=r.value,
                    partition=r.partition,
                    timestamp_ms=r.timestamp_ms,
                    headers=list(r.headers),
                ),
                timeout=max(1.0, deadline.remaining()),
            )
            pending.append((r.index, fut))
        await asyncio.wait_for(producer.flush(), timeout=max(1.0, deadline.remaining()))
        results = await asyncio.wait_for(
            asyncio.gather(*(f for _, f in pending)), timeout=max(1.0, deadline.remaining())
        )
        deliveries = []
        for (index, _), md in zip(pending, results):
            assert md.topic == topic
            deliveries.append(Delivery(index, md.partition, md.offset))
        if producer_config.get("enable_idempotence"):
            # Idempotence really in effect: a producer id was obtained via InitProducerId.
            txn = producer._txn_manager
            assert txn is not None and txn.has_pid(), "aiokafka producer has no producer id"
        return deliveries
    finally:
        await asyncio.wait_for(producer.stop(), timeout=30)


async def consume_all(bootstrap: str, topic: str, expected_total: int):
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="compat-aio-consumer",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
        request_timeout_ms=30_000,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(NUM_PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        by_partition: dict[int, list[Consumed]] = {p: [] for p in range(NUM_PARTITIONS)}
        total = 0
        deadline = Deadline(CONSUME_DEADLINE_S)
        polls = 0
        while total < expected_total and not deadline.expired() and polls < 100_000:
            polls += 1
            batch = await consumer.getmany(timeout_ms=500, max_records=2_000)
            for tp, recs in batch.items():
                assert tp.topic == topic
                for rec in recs:
                    # aiokafka: 0 = CreateTime, 1 = LogAppendTime
                    assert rec.timestamp_type == 0, f"timestamp_type {rec.timestamp_type} at {tp}@{rec.offset}"
                    by_partition[rec.partition].append(
                        Consumed(rec.partition, rec.offset, rec.key, rec.value, list(rec.headers or []), rec.timestamp)
                    )
                    total += 1
        assert total >= expected_total, (
            f"consumed only {total}/{expected_total} records within {CONSUME_DEADLINE_S}s "
            f"({polls} polls); per partition: { {p: len(v) for p, v in by_partition.items()} }"
        )
        low = {tp.partition: o for tp, o in (await consumer.beginning_offsets(tps)).items()}
        high = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
        return by_partition, low, high
    finally:
        await asyncio.wait_for(consumer.stop(), timeout=30)


async def roundtrip(bootstrap: str, topic: str, records, *, idempotent: bool, codec: str, **producer_config):
    await create_topic(bootstrap, topic)
    t0 = time.monotonic()
    deliveries = await produce(bootstrap, topic, records, **producer_config)
    at = check_deliveries(records, deliveries)
    if idempotent:
        check_in_order(records, at)
    t1 = time.monotonic()
    consumed, low, high = await consume_all(bootstrap, topic, len(records))
    check_consumed(records, at, consumed)
    check_watermarks(at, low, high)
    check_stored_batches(bootstrap, topic, at, codec, idempotent=idempotent)
    return t1 - t0, time.monotonic() - t1


@pytest.mark.timeout(TEST_TIMEOUT_S)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_produce_consume_roundtrip(bootstrap, compression):
    topic = unique_topic(CLIENT, compression)
    records = make_records(NUM_RECORDS, tag=f"{CLIENT}-{compression}")
    produce_s, consume_s = asyncio.run(
        roundtrip(
            bootstrap,
            topic,
            records,
            idempotent=False,
            codec=compression,
            compression_type=None if compression == "none" else compression,
            enable_idempotence=False,
        )
    )
    print(f"aiokafka {compression}: produce {produce_s:.1f}s, consume {consume_s:.1f}s")


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_idempotent_producer_exactly_once_in_order(bootstrap):
    topic = unique_topic(CLIENT, "idempotent")
    records = make_records(NUM_IDEMPOTENT_RECORDS, tag=f"{CLIENT}-idempotent")
    asyncio.run(roundtrip(bootstrap, topic, records, idempotent=True, codec="none", enable_idempotence=True))

"""spool compatibility with kafka-python 3.0.12 (pure-Python client).

Pins, for each compression codec (none, gzip, snappy, lz4, zstd):
  * KafkaAdminClient.create_topics creates a 3-partition topic (CreateTopics,
    Metadata, with the broker version auto-detected from ApiVersions);
  * KafkaProducer (acks=all, idempotence off) writes 10,000 keyed records with
    2 headers and explicit timestamps to partition index % 3, and the acks
    (RecordMetadata) assign offsets 0..n-1 per partition;
  * KafkaConsumer with group_id=None, manual assign() + seek_to_beginning(),
    reads every record back with identical key/value/headers/timestamp at the
    acked partition/offset, in offset order, and end/beginning offsets
    (ListOffsets) agree.
  * a raw Fetch v4 shows every stored batch is a v2 batch in the requested codec
    (so a client that silently falls back to uncompressed is caught).
Plus: an idempotent producer (enable_idempotence=True, acks=all; InitProducerId)
writes 5,000 records that are present exactly once, in send order, stored in
batches with one producer id and gapless sequence numbers from 0 per partition.
No consumer group APIs are used (the broker has no FindCoordinator yet).
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

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

CLIENT = "kpy"


def create_topic(bootstrap: str, topic: str) -> None:
    # api_version is left unset: kafka-python infers the broker version from ApiVersions.
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="compat-kpy-admin")
    try:
        result = admin.create_topics(
            {topic: {"num_partitions": NUM_PARTITIONS, "replication_factor": 1}},
            timeout_ms=30_000,
            raise_errors=True,
            # Polls Metadata until every partition has a leader.
            wait_for_metadata=True,
        )
        errors = [(t["name"], t["error_code"]) for t in result["topics"] if t["error_code"] != 0]
        assert not errors, f"CreateTopics errors: {errors}"
        topics = admin.describe_topics([topic])
        assert len(topics) == 1 and topics[0]["name"] == topic, topics
        parts = sorted(p["partition_index"] for p in topics[0]["partitions"])
        assert parts == list(range(NUM_PARTITIONS)), f"Metadata partitions for {topic}: {parts}"
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, records, **producer_config) -> list[Delivery]:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="compat-kpy-producer",
        acks="all",
        linger_ms=10,
        request_timeout_ms=30_000,
        delivery_timeout_ms=int(PRODUCE_DEADLINE_S * 1000),
        max_block_ms=30_000,
        **producer_config,
    )
    deadline = Deadline(PRODUCE_DEADLINE_S)
    try:
        futures = []
        for r in records:
            fut = producer.send(
                topic,
                key=r.key,
                value=r.value,
                headers=list(r.headers),
                partition=r.partition,
                timestamp_ms=r.timestamp_ms,
            )
            futures.append((r.index, fut))
        producer.flush(timeout=max(1.0, deadline.remaining()))
        deliveries = []
        for index, fut in futures:
            md = fut.get(timeout=max(1.0, deadline.remaining()))
            assert md.topic == topic
            deliveries.append(Delivery(index, md.partition, md.offset))
        if producer_config.get("enable_idempotence"):
            # Make sure idempotence really was in effect (a producer id was obtained
            # via InitProducerId), not silently turned off by the client.
            txn = producer._transaction_manager
            assert txn is not None, "kafka-python did not enable idempotence"
            pid = txn.producer_id_and_epoch
            assert pid.producer_id >= 0 and pid.epoch >= 0, f"no producer id: {pid.producer_id}/{pid.epoch}"
        return deliveries
    finally:
        producer.close(timeout=10)


def consume_all(bootstrap: str, topic: str, expected_total: int):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="compat-kpy-consumer",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
        request_timeout_ms=30_000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(NUM_PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        by_partition: dict[int, list[Consumed]] = {p: [] for p in range(NUM_PARTITIONS)}
        total = 0
        deadline = Deadline(CONSUME_DEADLINE_S)
        polls = 0
        while total < expected_total and not deadline.expired() and polls < 100_000:
            polls += 1
            batch = consumer.poll(timeout_ms=500, max_records=2_000)
            for tp, recs in batch.items():
                assert tp.topic == topic
                for rec in recs:
                    by_partition[rec.partition].append(
                        Consumed(
                            rec.partition,
                            rec.offset,
                            rec.key,
                            rec.value,
                            list(rec.headers or []),
                            rec.timestamp,
                        )
                    )
                    # kafka-python: 0 = CreateTime, 1 = LogAppendTime
                    assert rec.timestamp_type == 0, f"timestamp_type {rec.timestamp_type} at {tp}@{rec.offset}"
                    total += 1
        assert total >= expected_total, (
            f"consumed only {total}/{expected_total} records within {CONSUME_DEADLINE_S}s "
            f"({polls} polls); per partition: { {p: len(v) for p, v in by_partition.items()} }"
        )
        low = {tp.partition: o for tp, o in consumer.beginning_offsets(tps, timeout_ms=30_000).items()}
        high = {tp.partition: o for tp, o in consumer.end_offsets(tps, timeout_ms=30_000).items()}
        return by_partition, low, high
    finally:
        consumer.close(autocommit=False)


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
        compression_type=None if compression == "none" else compression,
        # The plain (non-idempotent) produce path; idempotence has its own test.
        enable_idempotence=False,
    )
    at = check_deliveries(records, deliveries)
    t1 = time.monotonic()

    consumed, low, high = consume_all(bootstrap, topic, len(records))
    check_consumed(records, at, consumed)
    check_watermarks(at, low, high)
    check_stored_batches(bootstrap, topic, at, compression, idempotent=False)
    print(f"kafka-python {compression}: produce {t1 - t0:.1f}s, consume {time.monotonic() - t1:.1f}s")


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_idempotent_producer_exactly_once_in_order(bootstrap):
    topic = unique_topic(CLIENT, "idempotent")
    create_topic(bootstrap, topic)
    records = make_records(NUM_IDEMPOTENT_RECORDS, tag=f"{CLIENT}-idempotent")

    deliveries = produce(
        bootstrap,
        topic,
        records,
        enable_idempotence=True,
        max_in_flight_requests_per_connection=5,
    )
    at = check_deliveries(records, deliveries)
    check_in_order(records, at)

    consumed, low, high = consume_all(bootstrap, topic, len(records))
    check_consumed(records, at, consumed)
    check_watermarks(at, low, high)
    check_stored_batches(bootstrap, topic, at, "none", idempotent=True)

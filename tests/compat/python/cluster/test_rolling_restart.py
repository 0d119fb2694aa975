"""Rolling restart under load: each node in turn gets SIGTERM (controlled shutdown moves its
leadership away), exits 0, restarts and rejoins every ISR, while an idempotent acks=all
confluent-kafka producer keeps writing. No non-retriable error; every acknowledged record
present exactly once, in order."""

from __future__ import annotations

import time

import pytest

import cluster_harness as ch
from load import ConfluentProducer, order_key

PARTITIONS = 6


@pytest.mark.timeout(300)
def test_rolling_restart_under_load(cluster):
    topic = "rolling"
    cluster.create_topic(topic, PARTITIONS)
    prod = ConfluentProducer(cluster.bootstrap, topic, "rr-confluent", rate=200)
    prod.start()
    timings = []
    try:
        time.sleep(2)
        for n in ch.NODE_IDS:
            node = cluster.nodes[n]
            t0 = time.monotonic()
            rc = node.terminate(timeout=30)
            t_exit = time.monotonic()
            assert rc == 0, f"node {n} exited with code {rc} after SIGTERM"
            node.restart_after_exit()
            back = cluster.wait_healthy([topic], timeout=60)
            timings.append((n, round(t_exit - t0, 2), round(time.monotonic() - t0, 2)))
            assert prod.fatal is None, f"producer fatal error: {prod.fatal}"
            time.sleep(1)
    finally:
        left = prod.finish(timeout=60)
    log = prod.log
    print(f"rolling restart (node, s to exit, s until back in every ISR): {timings}")
    print(f"acknowledged {len(log.acked)} of {len(log.sent)}; failed {dict(log.failed)}; "
          f"not reported after flush {left}")
    assert not log.nonretriable, f"non-retriable produce errors: {log.nonretriable[:10]}"
    assert left == 0, f"{left} records without a delivery report after flush"
    assert len(log.acked) > 0
    acked = {v: (p, o) for v, (p, o, _t) in log.acked.items()}
    read = ch.read_partitions(cluster.bootstrap, topic, list(range(PARTITIONS)))
    counts = ch.check_exactly_once(acked, read, "after rolling restart", order_key=order_key)
    print(f"rolling restart: {counts}")

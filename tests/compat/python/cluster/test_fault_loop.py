"""Fault loop: two idempotent acks=all producers (confluent-kafka, kafka-python) and a consumer
group of two confluent-kafka members run while one random node at a time is SIGKILLed and
restarted, SIGSTOPped and resumed, or cut off from the other nodes and the clients, for 2-4 s
every 3-5 s. Then: every acknowledged record present exactly once, in each producer's order,
offsets gap-free, the group's committed progress skipped nothing, no non-retriable error.
Failover times (fault -> first acknowledged write sent after it, per partition the faulty node
led) are printed with p50/p99 and written to <tmp>/fault_loop_report.json."""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter

import pytest

import cluster_harness as ch
from compat_common import Problems, stored_batches
from load import ConfluentProducer, GroupMember, KafkaPythonProducer, order_key

PARTITIONS = 6
SOAK_S = float(os.environ.get("SPOOL_CLUSTER_SOAK_S", "60"))
FAULTS = ("kill", "stop", "cut")


def percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def inject(cluster, n: int, kind: str, hold: float) -> None:
    node = cluster.nodes[n]
    if kind == "kill":
        node.kill9()
        time.sleep(hold)
        node.restart_after_exit()
    elif kind == "stop":
        node.sigstop()
        time.sleep(hold)
        node.sigcont()
    else:
        cluster.firewall.cut(n, clients=True)
        time.sleep(hold)
        cluster.firewall.heal(n)


@pytest.mark.timeout(int(SOAK_S) + 420, method="thread")
def test_fault_loop(cluster, tmp_path):
    topic = "faults"
    cluster.create_topic(topic, PARTITIONS)
    rng = random.Random(int(os.environ.get("SPOOL_CLUSTER_SEED", str(time.time_ns()))))
    producers = [ConfluentProducer(cluster.bootstrap, topic, "ck", rate=150),
                 KafkaPythonProducer(cluster.bootstrap, topic, "kp", rate=150)]
    group = [GroupMember(cluster.bootstrap, topic, "fault-loop-group", f"member-{i}") for i in range(2)]
    for t in producers + group:
        t.start()
    faults = []  # (kind, node, t_fault, led partitions, hold, recovery seconds)
    try:
        time.sleep(3)
        loop_end = time.monotonic() + SOAK_S
        while time.monotonic() < loop_end and len(faults) < 1000:
            time.sleep(rng.uniform(3, 5))
            n, kind, hold = rng.choice(ch.NODE_IDS), rng.choice(FAULTS), rng.uniform(2, 4)
            led = sorted(p for p, l in cluster.leaders(topic).items() if l == n)
            t_fault = time.monotonic()
            inject(cluster, n, kind, hold)
            back = cluster.wait_healthy([topic], timeout=90)
            faults.append((kind, n, t_fault, led, round(hold, 2), round(back, 2)))
            print(f"fault {len(faults)}: {kind} node {n} for {hold:.1f}s (led {led}); "
                  f"healthy {back:.1f}s after healing", flush=True)
            broken = [(p.name, p.fatal, p.crashed) for p in producers if p.fatal or not p.is_alive()]
            assert not broken, f"producer stopped (name, fatal error, exception): {broken}"
        time.sleep(3)  # acknowledged writes after the last fault
    finally:
        cluster.firewall.heal_all()
        for node in cluster.nodes.values():
            node.sigcont()
        unreported = [p.finish(timeout=90) for p in producers]

    # Let the group catch up with everything, then stop it (it commits on the way out).
    from confluent_kafka import Consumer, TopicPartition
    probe = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "probe"})
    hwm = {p: probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    probe.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = {p: set().union(*(m.seen.get(p, set()) for m in group)) for p in range(PARTITIONS)}
        if all(hwm[p] == 0 or hwm[p] - 1 in seen[p] for p in range(PARTITIONS)):
            break
        time.sleep(0.5)
    time.sleep(1.5)  # at least one more periodic commit of the final positions
    for m in group:
        m.stop_event.set()
    for m in group:
        m.join(timeout=30)

    # Delivery reports and errors.
    logs = [p.log for p in producers]
    acked = {v: (p, o) for lg in logs for v, (p, o, _t) in lg.acked.items()}
    failed = Counter()
    for lg in logs:
        failed.update(lg.failed)
    nonretriable = [e for lg in logs for e in lg.nonretriable]

    # Failover: for each fault, partitions the node led, first ack of a record sent after it.
    samples, unrecovered, per_fault = [], [], []
    acks_by_part: dict[int, list[tuple[float, float]]] = {}
    for lg in logs:
        for v, (p, _o, t_ack) in lg.acked.items():
            acks_by_part.setdefault(p, []).append((lg.sent[order_key(v)[1]], t_ack))
    for kind, n, t_fault, led, _hold, _back in faults:
        mine = {}
        for p in led:
            after = [t_ack for t_sent, t_ack in acks_by_part.get(p, []) if t_sent >= t_fault]
            if after:
                samples.append(min(after) - t_fault)
                mine[p] = round(min(after) - t_fault, 3)
            else:
                unrecovered.append((kind, n, p))
        per_fault.append(mine)
    report = {
        "soak_s": SOAK_S,
        "faults": [{"kind": k, "node": n, "led": led, "hold_s": h, "healthy_after_heal_s": b,
                    "failover_s": fo} for (k, n, _t, led, h, b), fo in zip(faults, per_fault)],
        "faults_by_kind": dict(Counter(f[0] for f in faults)),
        "acknowledged": len(acked),
        "sent": sum(len(lg.sent) for lg in logs),
        "failed_by_error": dict(failed),
        "failover_s": {"count": len(samples), "p50": percentile(samples, 0.5),
                       "p99": percentile(samples, 0.99), "max": max(samples, default=None)},
        "group_commit_errors": dict(sum((m.commit_errors for m in group), Counter())),
    }

    p = Problems()
    if nonretriable:
        p.add(f"non-retriable produce errors reached the application: {nonretriable[:10]}")
    if any(unreported):
        p.add(f"records without a delivery report after flush: {unreported}")
    for pr in producers:
        if pr.fatal or pr.crashed:
            p.add(f"{pr.log.name}: fatal producer error {pr.fatal}, exception {pr.crashed}")
    if unrecovered:
        p.add(f"no acknowledged write after the fault for (kind, node, partition): {unrecovered}")
    for m in group:
        if m.errors:
            p.add(f"{m.name}: consumer errors {m.errors[:5]}")

    # Every acknowledged record exactly once, in order, offsets gap-free.
    read = ch.read_partitions(cluster.bootstrap, topic, list(range(PARTITIONS)))
    try:
        report["verification"] = ch.check_exactly_once(acked, read, "after the fault loop",
                                                       order_key=order_key)
    except AssertionError as exc:
        p.add(str(exc))
    # Raw per-partition read of the stored batches from offset 0: contiguous up to the watermark.
    leaders = cluster.leaders(topic)
    for part in range(PARTITIONS):
        batches = stored_batches(cluster.nodes[leaders[part]].addr, topic, part)
        nxt = 0
        for b in batches:
            if b.base_offset != nxt:
                p.add(f"partition {part}: stored batch at {b.base_offset}, expected {nxt}")
                break
            nxt = b.base_offset + b.record_count
        if nxt != len(read[part]):
            p.add(f"partition {part}: stored batches end at {nxt}, read {len(read[part])} records")

    # The group: below the last committed offset of each partition, it saw every acknowledged record.
    committed: dict[int, int] = {}
    for m in group:
        for t, offs in m.commits:
            for part, off in offs.items():
                committed[part] = max(committed.get(part, 0), off)
    seen = {part: set().union(*(m.seen.get(part, set()) for m in group)) for part in range(PARTITIONS)}
    skipped = [(part, o) for (part, o) in acked.values() if o < committed.get(part, 0) and o not in seen[part]]
    if skipped:
        p.add(f"group committed past {len(skipped)} acknowledged records it never saw: {sorted(skipped)[:10]}")
    behind = {part: (committed.get(part, 0), hwm[part]) for part in range(PARTITIONS)
              if committed.get(part, 0) < hwm[part]}
    if behind:
        p.add(f"group's committed offsets behind the high watermarks (committed, hwm): {behind}")
    report["group_committed"] = committed
    report["group_members"] = {m.name: m.summary() for m in group}

    print(json.dumps(report, indent=1), flush=True)
    (tmp_path / "fault_loop_report.json").write_text(json.dumps(report, indent=1))
    print(f"report: {tmp_path / 'fault_loop_report.json'}")
    assert len(acked) > 0 and len(faults) > 0
    p.check("fault loop")

"""A leader cut off from the other nodes cannot acknowledge acks=all writes; the rest elect a new
leader that does; after healing the old leader rejoins as a follower with an identical log."""

from __future__ import annotations

import threading
import time

import pytest

import cluster_harness as ch
from compat_common import Deadline

RETRIABLE = {6: "NOT_LEADER_OR_FOLLOWER", 7: "REQUEST_TIMED_OUT", 19: "NOT_ENOUGH_REPLICAS",
             20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND", 5: "LEADER_NOT_AVAILABLE", 3: "UNKNOWN_TOPIC_OR_PARTITION"}


def produce_acked(addr: str, topic: str, values: list[bytes], deadline_s: float = 30.0) -> int:
    """Raw acks=-1 produce of `values` (one batch), retried on retriable errors; returns base offset."""
    deadline = Deadline(deadline_s)
    last = None
    while not deadline.expired():
        try:
            err, base = ch.produce_v3(addr, topic, 0, [(b"k", v) for v in values])
        except OSError as exc:
            last = repr(exc)
        else:
            if err == 0:
                return base
            assert err in RETRIABLE, f"non-retriable produce error {err} from {addr}"
            last = RETRIABLE[err]
        time.sleep(0.2)
    raise AssertionError(f"produce to {addr} not acknowledged within {deadline_s}s: {last}")


@pytest.mark.timeout(180)
def test_isolated_leader_cannot_acknowledge(cluster):
    topic = "isolation"
    cluster.create_topic(topic, 1)
    acked: dict[bytes, tuple[int, int]] = {}

    leader = cluster.leaders(topic)[0]
    pre = [b"pre-%03d" % i for i in range(20)]
    base = produce_acked(cluster.nodes[leader].addr, topic, pre)
    acked.update({v: (0, base + i) for i, v in enumerate(pre)})
    cluster.wait_healthy([topic])

    others = [n for n in ch.NODE_IDS if n != leader]
    log_dir = cluster.node_dir(leader, topic, 0)
    size_before = sum(f.stat().st_size for f in log_dir.glob("*.log"))
    cluster.firewall.cut(leader, clients=False)
    t_cut = time.monotonic()

    # Writes straight to the cut-off leader (in a thread, while the election is watched):
    # none may be acknowledged.
    outcomes: list = []
    cut_values = [b"cut-%03d" % i for i in range(3)]

    def write_to_isolated():
        for v in cut_values:
            try:
                err, _base = ch.produce_v3(cluster.nodes[leader].addr, topic, 0, [(b"k", v)],
                                           timeout_ms=3000, socket_timeout=8.0)
                outcomes.append(RETRIABLE.get(err, err))
            except OSError as exc:
                outcomes.append(f"socket: {exc!r}")

    writer = threading.Thread(target=write_to_isolated, daemon=True)
    writer.start()

    # The majority side elects a new leader.
    deadline = Deadline(30)
    new_leader = None
    while not deadline.expired():
        views = [cluster.leaders(topic, via=n).get(0) for n in others]
        if views[0] == views[1] and views[0] in others:
            new_leader = views[0]
            break
        time.sleep(0.05)
    assert new_leader is not None, f"no new leader among {others} within 30s (views {views})"
    t_elected = time.monotonic()
    post = [b"post-%03d" % i for i in range(20)]
    base = produce_acked(cluster.nodes[new_leader].addr, topic, post)
    acked.update({v: (0, base + i) for i, v in enumerate(post)})
    t_acked = time.monotonic()
    writer.join(timeout=40)
    assert not writer.is_alive(), "writes to the isolated leader did not finish"
    print(f"writes to isolated leader {leader}: {outcomes}")
    assert all(o != 0 for o in outcomes), f"isolated leader acknowledged a write: {outcomes}"
    assert all(not isinstance(o, int) for o in outcomes), f"non-retriable error from isolated leader: {outcomes}"
    diverged = sum(f.stat().st_size for f in log_dir.glob("*.log")) > size_before

    print(f"new leader {new_leader} elected {t_elected - t_cut:.2f}s after the cut, "
          f"first acknowledged write {t_acked - t_cut:.2f}s after it; old leader log diverged: {diverged}")

    # One more write to the isolated node after the election: still not acknowledged.
    try:
        err, _ = ch.produce_v3(cluster.nodes[leader].addr, topic, 0, [(b"k", b"cut-late")],
                               timeout_ms=2000, socket_timeout=6.0)
        assert err != 0, "isolated old leader acknowledged a write after the new election"
    except OSError:
        pass
    cut_values.append(b"cut-late")

    cluster.firewall.heal(leader)
    healed_in = cluster.wait_healthy([topic], timeout=60)
    views = {n: cluster.leaders(topic, via=n).get(0) for n in ch.NODE_IDS}
    assert len(set(views.values())) == 1 and views[leader] in others, (
        f"after healing, the old leader {leader} must follow; leader views {views}")
    if views[leader] != new_leader:
        print(f"note: leadership moved from {new_leader} to {views[leader]} around the heal")
    print(f"ISR full again {healed_in:.2f}s after healing; old leader {leader} follows {views[leader]}")

    # The old leader's log converges to the new leader's byte for byte (divergent tail truncated).
    deadline = Deadline(30)
    while True:
        logs = {n: cluster.log_bytes(n, topic, 0) for n in ch.NODE_IDS}
        if len(set(logs.values())) == 1:
            break
        if deadline.expired():
            sizes = {n: len(b) for n, b in logs.items()}
            raise AssertionError(f"partition logs differ 30s after healing: sizes {sizes}")
        time.sleep(0.2)

    read = ch.read_partitions(cluster.bootstrap, topic, [0])
    counts = ch.check_exactly_once(acked, read, "after leader isolation")
    present = {v for _o, _k, v in read[0]}
    leftover = [v for v in cut_values if v in present]
    assert not leftover, f"writes refused during the isolation survived: {leftover}"
    print(f"isolation: {counts}")

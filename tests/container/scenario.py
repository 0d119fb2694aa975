"""The host side of the container test (tests/container/run.sh): real clients (confluent-kafka,
that is librdkafka) against the three-node compose cluster, through its published ports.

  1. Waits until the cluster lists three brokers and a controller.
  2. Creates a topic with three replicas, waits until every partition has a leader and three
     in-sync replicas.
  3. Produces (acks=all, idempotent) while a consumer in a group reads, at once: the producer
     goes on until the consumer has received records, so the two overlap.
  4. Kills one node (SIGKILL, through the engine) while producing goes on; with
     min.insync.replicas 2, acks=all writes must resume once leadership has moved.
  5. Reads every partition from the beginning and checks that every acknowledged record is
     there, once, at the offset its acknowledgement gave.
  6. Starts the node again and waits until it is listed and every partition has three in-sync
     replicas, then writes once more.

Every wait is bounded by a deadline. Prints what it measured; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "container-test"
PARTITIONS = 6
REPLICAS = 3


def log(message: str) -> None:
    print(f"[scenario {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Failure(Exception):
    pass


def metadata(bootstrap: str, timeout: float = 3.0):
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000})
    return admin.list_topics(timeout=timeout)


def poll_until(what: str, deadline_s: float, probe, interval: float = 0.5):
    """Calls `probe` until it returns a true value or `deadline_s` passes; returns the value and
    the seconds it took. The loop is bounded by the deadline and by a count."""
    start = time.monotonic()
    last = None
    for _ in range(int(deadline_s / interval) + 1):
        try:
            got = probe()
            if got:
                return got, time.monotonic() - start
            last = "not yet"
        except Exception as e:  # a node still starting refuses connections
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() - start > deadline_s:
            break
        time.sleep(interval)
    raise Failure(f"{what}: not within {deadline_s:.0f} s (last: {last})")


def topic_state(bootstrap: str):
    md = metadata(bootstrap)
    t = md.topics.get(TOPIC)
    if t is None or t.error is not None:
        return md, None
    return md, t.partitions


def wait_for_cluster(bootstrap: str, brokers: int, deadline_s: float) -> float:
    def probe():
        md = metadata(bootstrap)
        return len(md.brokers) == brokers and md.controller_id >= 0

    _, took = poll_until(f"{brokers} brokers and a controller", deadline_s, probe)
    return took


def wait_for_full_isr(bootstrap: str, brokers: set[int], deadline_s: float) -> float:
    def probe():
        md, parts = topic_state(bootstrap)
        if parts is None or len(parts) != PARTITIONS or set(md.brokers) != brokers:
            return False
        return all(p.leader >= 0 and len(p.isrs) == REPLICAS for p in parts.values())

    _, took = poll_until(f"{TOPIC}: a leader and {REPLICAS} in-sync replicas for every partition",
                         deadline_s, probe)
    return took


@dataclass
class Acks:
    """What the broker acknowledged, from the delivery reports."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_key: dict = field(default_factory=dict)  # key -> (partition, offset)
    failed: list = field(default_factory=list)  # (key, error)
    first_ack_after: dict = field(default_factory=dict)  # partition -> monotonic time

    def callback(self, sent_at: dict, kill_time: list):
        def on_delivery(err, msg):
            key = msg.key().decode()
            with self.lock:
                if err is not None:
                    self.failed.append((key, str(err)))
                    return
                self.by_key[key] = (msg.partition(), msg.offset())
                if kill_time and sent_at.get(key, 0) > kill_time[0]:
                    self.first_ack_after.setdefault(msg.partition(), time.monotonic())

        return on_delivery


def new_producer(bootstrap: str, on_delivery) -> Producer:
    return Producer({
        "bootstrap.servers": bootstrap,
        "on_delivery": on_delivery,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        # Long enough to ride out a leader's death: the dead node is fenced after
        # broker_session_timeout_ms (9 s) and its partitions get new leaders.
        "message.timeout.ms": 60000,
    })


def produce_paced(producer: Producer, prefix: str, rate: int, keep_going,
                  deadline_s: float, sent_at: dict) -> int:
    """Sends records `prefix-N` at about `rate` a second while `keep_going(count)` holds, for
    at most `deadline_s`; returns how many were sent."""
    start = time.monotonic()
    count = 0
    for i in range(int(deadline_s * rate) + 1):
        if not keep_going(count) or time.monotonic() - start > deadline_s:
            break
        key = f"{prefix}-{i:07d}"
        sent_at[key] = time.monotonic()
        while True:
            try:
                producer.produce(TOPIC, key=key, value=f"value of {key}")
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        producer.poll(0)
        # Pace by the clock, not by sleeping a fixed time per record.
        ahead = start + count / rate - time.monotonic()
        if ahead > 0:
            producer.poll(ahead)
    return count


def flush(producer: Producer, deadline_s: float) -> None:
    left = producer.flush(deadline_s)
    if left:
        raise Failure(f"{left} records still unacknowledged after {deadline_s:.0f} s")


def consume_all(bootstrap: str, deadline_s: float):
    """Reads every partition of the topic from offset 0 up to its high watermark; returns
    {(partition, offset): key} and the list of keys read (with any repeats)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "container-test-verify",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    try:
        ends = {}
        for p in range(PARTITIONS):
            _, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)
            ends[p] = high
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        at: dict = {}
        keys: list = []
        done = {p for p, high in ends.items() if high == 0}
        start = time.monotonic()
        while len(done) < PARTITIONS:
            if time.monotonic() - start > deadline_s:
                short = {p: ends[p] for p in range(PARTITIONS) if p not in done}
                raise Failure(f"reading back: partitions {short} (high watermarks) not read "
                              f"to the end within {deadline_s:.0f} s")
            for msg in consumer.consume(500, timeout=1.0):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise Failure(f"reading back: {msg.error()}")
                key = msg.key().decode()
                at[(msg.partition(), msg.offset())] = key
                keys.append(key)
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
        return at, keys, ends
    finally:
        consumer.close()


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True, help="host:port,... of every node")
    ap.add_argument("--container", action="append", required=True,
                    help="NODE_ID=CONTAINER, for each node")
    ap.add_argument("--messages", type=int, default=3000, help="records in the first phase")
    ap.add_argument("--rate", type=int, default=500, help="records a second while producing")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds each wait may take")
    args = ap.parse_args()
    containers = {int(k): v for k, v in (c.split("=", 1) for c in args.container)}
    bootstrap = args.bootstrap
    deadline = args.deadline
    measured: list[str] = []

    took = wait_for_cluster(bootstrap, len(containers), deadline)
    log(f"cluster lists {len(containers)} brokers and a controller ({took:.1f} s)")

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(TOPIC, PARTITIONS, REPLICAS)], operation_timeout=30)
    futures[TOPIC].result(timeout=60)
    took = wait_for_full_isr(bootstrap, set(containers), deadline)
    log(f"created {TOPIC}: {PARTITIONS} partitions, {REPLICAS} replicas, full ISR ({took:.1f} s)")

    # --- 3. produce and consume at once ------------------------------------------------------
    acks = Acks()
    sent_at: dict = {}
    kill_time: list = []
    producer = new_producer(bootstrap, acks.callback(sent_at, kill_time))

    seen: dict = {}
    seen_lock = threading.Lock()
    producing = threading.Event()
    producing.set()
    overlap = [0]  # records the consumer received while the producer was still sending
    stop_consumer = threading.Event()
    consumer_error: list = []

    def consume_live():
        c = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": "container-test-live",
            "auto.offset.reset": "earliest",
        })
        try:
            c.subscribe([TOPIC])
            while not stop_consumer.is_set():
                for msg in c.consume(500, timeout=0.5):
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            consumer_error.append(str(msg.error()))
                        continue
                    with seen_lock:
                        seen[msg.key().decode()] = time.monotonic()
                        if producing.is_set():
                            overlap[0] += 1
        except Exception as e:
            consumer_error.append(f"{type(e).__name__}: {e}")
        finally:
            c.close()

    live = threading.Thread(target=consume_live, daemon=True)
    live.start()
    phase_start = time.monotonic()

    def until_overlap(count):
        if count < args.messages:
            return True
        with seen_lock:
            return overlap[0] == 0  # go on until the consumer has received while we send

    sent_a = produce_paced(producer, "a", args.rate, until_overlap, deadline, sent_at)
    producing.clear()
    flush(producer, deadline)
    with acks.lock:
        acked_a = {k for k in acks.by_key if k.startswith("a-")}
        failed_a = [f for f in acks.failed if f[0].startswith("a-")]

    def consumer_has_all():
        with seen_lock:
            return acked_a <= seen.keys()

    try:
        _, took = poll_until("the live consumer receiving every acknowledged record", deadline,
                             consumer_has_all, interval=0.2)
    finally:
        stop_consumer.set()
        live.join(timeout=30)
    if consumer_error:
        raise Failure(f"live consumer: {consumer_error[:3]}")
    if overlap[0] == 0:
        raise Failure("the consumer received nothing while the producer was sending")
    line = (f"produce and consume at once: sent {sent_a}, acked {len(acked_a)}, failed "
            f"{len(failed_a)}, consumed {len(seen)} ({overlap[0]} while the producer was still "
            f"sending); all acked consumed {took:.1f} s after the last ack "
            f"({time.monotonic() - phase_start:.1f} s in all)")
    log(line)
    measured.append(line)
    if failed_a:
        raise Failure(f"acks=all writes failed with every node up: {failed_a[:3]}")

    # --- 4. kill a node while producing ------------------------------------------------------
    md, parts = topic_state(bootstrap)
    led: dict = {}
    for p in parts.values():
        led.setdefault(p.leader, []).append(p.id)
    victim = md.controller_id if led.get(md.controller_id) else max(led, key=lambda n: len(led[n]))
    victim_parts = sorted(led.get(victim, []))
    role = "the active controller, " if victim == md.controller_id else ""
    log(f"will kill node {victim} ({role}leader of partitions {victim_parts}) while producing")

    killed = threading.Event()
    resumed_for_all = threading.Event()
    after_kill_s = 5.0  # keep producing this long once every partition acks again

    def killer():
        # Once a steady stream is acknowledged, kill the node.
        def enough():
            with acks.lock:
                return sum(1 for k in acks.by_key if k.startswith("b-")) >= args.rate
        try:
            poll_until("acks before the kill", deadline, enough, interval=0.1)
        finally:
            docker("kill", "--signal", "KILL", containers[victim])
            # Taken once the engine says the process is dead: what is sent from here on
            # cannot have reached it.
            kill_time.append(time.monotonic())
            killed.set()

    killer_thread = threading.Thread(target=killer, daemon=True)
    killer_thread.start()
    resumed_at = [None]

    def keep_producing(count):
        if not killed.is_set():
            return True
        with acks.lock:
            ok = all(p in acks.first_ack_after for p in range(PARTITIONS))
        if ok and resumed_at[0] is None:
            resumed_at[0] = time.monotonic()
        return resumed_at[0] is None or time.monotonic() - resumed_at[0] < after_kill_s

    sent_b = produce_paced(producer, "b", args.rate, keep_producing, deadline * 2, sent_at)
    killer_thread.join(timeout=deadline)
    flush(producer, deadline)
    if not killed.is_set():
        raise Failure("the node was never killed")
    kill_t = kill_time[0]
    with acks.lock:
        acked_b = {k for k in acks.by_key if k.startswith("b-")}
        failed_b = list(f for f in acks.failed if f[0].startswith("b-"))
        first_after = dict(acks.first_ack_after)
    missing_parts = [p for p in range(PARTITIONS) if p not in first_after]
    if missing_parts:
        raise Failure(f"after the kill, partitions {missing_parts} acknowledged no write sent "
                      f"after it (deadline {deadline * 2:.0f} s)")
    moved = {p: first_after[p] - kill_t for p in victim_parts}
    others = {p: first_after[p] - kill_t for p in range(PARTITIONS) if p not in victim_parts}
    acked_after = sum(1 for k in acked_b if sent_at[k] > kill_t)
    line = (f"kill node {victim}: sent {sent_b}, acked {len(acked_b)} ({acked_after} sent after "
            f"the kill), failed {len(failed_b)}; writes resumed on the dead leader's partitions "
            f"{max(moved.values(), default=0.0):.1f} s after the kill"
            f" (others: {max(others.values(), default=0.0):.1f} s)")
    log(line)
    measured.append(line)
    if failed_b:
        log(f"failed deliveries (not acknowledged, so not required): {failed_b[:3]}")

    # --- 5. every acknowledged record is there -----------------------------------------------
    with acks.lock:
        acked = dict(acks.by_key)
    at, keys, ends = consume_all(bootstrap, deadline)
    read = set(keys)
    lost = sorted(k for k in acked if k not in read)
    moved_offset = sorted(k for k, (p, o) in acked.items() if k in read and at.get((p, o)) != k)
    repeats = len(keys) - len(read)
    unknown = sorted(k for k in read if k not in sent_at)
    line = (f"read back from offset 0: {len(keys)} records ({sum(ends.values())} by the high "
            f"watermarks), {len(acked)} acked: {len(lost)} lost, {len(moved_offset)} at another "
            f"offset than acknowledged, {repeats} repeated, {len(unknown)} never sent")
    log(line)
    measured.append(line)
    if lost or moved_offset or repeats or unknown:
        raise Failure(f"read back: lost {lost[:5]}, moved {moved_offset[:5]}, "
                      f"{repeats} repeated, unknown {unknown[:5]}")

    # --- 6. the node comes back --------------------------------------------------------------
    restart_t = time.monotonic()
    docker("start", containers[victim])
    listed_s = wait_for_cluster(bootstrap, len(containers), deadline)
    full_s = wait_for_full_isr(bootstrap, set(containers), deadline)
    line = (f"restart node {victim}: listed again after {listed_s:.1f} s, every partition back "
            f"to {REPLICAS} in-sync replicas after {time.monotonic() - restart_t:.1f} s")
    log(line)
    measured.append(line)

    final = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                      "enable.idempotence": True, "message.timeout.ms": 30000})
    final_acks: list = []
    for i in range(100):
        final.produce(TOPIC, key=f"c-{i:07d}", value="after the restart",
                      on_delivery=lambda err, msg: final_acks.append(err))
    if final.flush(deadline):
        raise Failure("writes after the restart were not all acknowledged")
    bad = [e for e in final_acks if e is not None]
    if bad:
        raise Failure(f"writes after the restart failed: {bad[:3]}")
    log("100 acks=all writes after the restart: all acknowledged")

    print("\nmeasured:")
    for m in measured:
        print(f"  {m}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (Failure, KafkaException) as e:
        log(f"FAILED: {e}")
        sys.exit(1)

"""Multi-node spool cluster harness for the Python client suite (tests/compat/python/cluster).

Starts three spool nodes on one host, each on its own loopback address (node 2 on 127.0.0.2,
node 3 on 127.0.0.3, node 4 on 127.0.0.4, same Kafka and controller ports on each), every node a
voter of the Raft metadata quorum, with fast failover settings (CLUSTER_SETTINGS). Clients connect
from 127.0.0.1, so iptables rules on source/destination address can cut one node off from the
other nodes (inter-node traffic leaves from the node's own address) or from everyone.

The suite changes the firewall, so it only runs inside a private network namespace holding
nothing but `lo` (and as root); elsewhere it skips, or fails with SPOOL_CLUSTER_REQUIRED=1.
Run it as scripts/test.sh does:

    unshare -n -- bash -c 'ip link set lo up && target/compat-venv/bin/python \\
        -m pytest tests/compat/python/cluster -q -p no:cacheprovider'

Soak: SPOOL_CLUSTER_SOAK_S=600 (seconds of fault loop in test_fault_loop; default 60).
Figures of the fault loop (failover times, counts) are printed and written to
<tmp>/fault_loop_report.json.

Environment: SPOOL_BIN (broker binary), SPOOL_CLUSTER_REQUIRED, SPOOL_CLUSTER_SOAK_S.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # compat_common, conftest helpers of the single-node suite

from compat_common import Deadline, Problems  # noqa: E402


def _single_node_conftest():
    # By path, under its own name: pytest drops "conftest" from sys.modules between conftests.
    import importlib.util
    spec = importlib.util.spec_from_file_location("spool_compat_conftest", HERE.parent / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_base = _single_node_conftest()
SpoolBroker, spool_bin, log_tail = _base.SpoolBroker, _base.spool_bin, _base.log_tail

CLUSTER_ID = "c3Bvb2wtbG9jYWwtY2x1c3Q"
NODE_IDS = (2, 3, 4)
CLIENT_IP = "127.0.0.1"
CLUSTER_SETTINGS = [
    "broker_heartbeat_interval_ms=300",
    "broker_session_timeout_ms=2000",
    "replica_lag_time_max_ms=4000",
    "replica_fetch_backoff_ms=200",
    "replica_fetch_wait_max_ms=200",
    "default_replication_factor=3",
    "min_insync_replicas=2",
    "offsets_topic_replication_factor=3",
    "offsets_topic_num_partitions=6",
    "transaction_state_log_replication_factor=3",
    "transaction_state_log_num_partitions=6",
    "transaction_state_log_min_isr=2",
    "group_initial_rebalance_delay_ms=0",
]
STOP_TIMEOUT_S = 30.0
HEALTH_TIMEOUT_S = 60.0


def node_ip(n: int) -> str:
    return f"127.0.0.{n}"


def private_netns_problem() -> str | None:
    """None when this process is root in a network namespace with only `lo`; else why not."""
    if os.geteuid() != 0:
        return "not root: the cluster suite needs iptables in a private network namespace"
    names = sorted(name for _i, name in socket.if_nameindex())
    if names != ["lo"]:
        return (f"network namespace has interfaces {names}, not just lo: run the suite under "
                "`unshare -n` so its iptables rules cannot touch the host's firewall")
    if subprocess.run(["iptables", "-w", "-S", "INPUT"], capture_output=True).returncode != 0:
        return "iptables is not usable (install the Debian package iptables)"
    return None


class Firewall:
    """DROP rules on the INPUT chain (loopback traffic passes INPUT on receipt, so one rule per
    direction cuts both ways). Tracks what it added; heal deletes exactly those rules."""

    def __init__(self):
        self.rules: dict[int, list[tuple[str, str]]] = {}

    def _ipt(self, op: str, src: str, dst: str) -> None:
        subprocess.run(["iptables", "-w", op, "INPUT", "-s", src, "-d", dst, "-j", "DROP"],
                       check=True, capture_output=True)

    def cut(self, k: int, clients: bool) -> None:
        assert k not in self.rules, f"node {k} is already cut"
        peers = [node_ip(j) for j in NODE_IDS if j != k] + ([CLIENT_IP] if clients else [])
        pairs = [(node_ip(k), p) for p in peers] + [(p, node_ip(k)) for p in peers]
        self.rules[k] = []
        for src, dst in pairs:
            self._ipt("-A", src, dst)
            self.rules[k].append((src, dst))

    def heal(self, k: int) -> None:
        for src, dst in self.rules.pop(k, []):
            self._ipt("-D", src, dst)

    def heal_all(self) -> None:
        for k in list(self.rules):
            self.heal(k)


class SpoolNode(SpoolBroker):
    """One cluster node: a SpoolBroker on 127.0.0.<id> with the cluster settings."""

    def __init__(self, workdir: Path, node_id: int, kport: int, cport: int, extra: list[str],
                 binary: Path):
        voters = ",".join(f"{n}@{node_ip(n)}:{cport}" for n in NODE_IDS)
        settings = [f"node_id={node_id}", f"cluster_id={CLUSTER_ID}",
                    f"controller_listener={node_ip(node_id)}:{cport}",
                    f"controller_quorum_voters={voters}"] + CLUSTER_SETTINGS + extra
        super().__init__(workdir, settings)
        self.node_id = node_id
        self.listen = f"{node_ip(node_id)}:{kport}"
        self.addr = self.listen
        self.stopped = False  # SIGSTOPped
        self.binary = binary

    @property
    def argv(self) -> list[str]:
        # A private copy of the binary: a rebuild of target/debug/spool mid-test must not
        # give a restarted node another version than its peers.
        return [str(self.binary)] + super().argv[1:]

    def spawn(self) -> None:
        """Starts the process without waiting for its ready file (nodes start together)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        self._log_fh = open(self.log_path, "ab")
        self.starts += 1
        self._log_fh.write(f"===== cluster suite: node start #{self.starts} =====\n".encode())
        self._log_fh.flush()
        env = dict(os.environ, RUST_BACKTRACE="1")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log_fh,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                     preexec_fn=_base._die_with_parent if _base._PRCTL else None)

    def wait_ready(self) -> None:
        self.bootstrap = self._wait_ready()
        assert self.bootstrap == self.addr, f"node {self.node_id} serves {self.bootstrap}"

    def sigstop(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self) -> None:
        if self.stopped and self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait (bounded); returns the exit code, raises on timeout (after SIGKILL)."""
        self.sigcont()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError(f"node {self.node_id} did not exit within {timeout}s of SIGTERM")
        finally:
            self._log_fh.close()
            self.proc = None
        return rc

    def restart_after_exit(self) -> None:
        self.spawn()
        self.wait_ready()


def _free_port_pair() -> tuple[int, int]:
    """Two ports free on all node addresses."""
    for _ in range(50):
        socks, ok = [], True
        s = socket.socket()
        s.bind((node_ip(NODE_IDS[0]), 0))
        socks.append(s)
        kport = s.getsockname()[1]
        s2 = socket.socket()
        s2.bind((node_ip(NODE_IDS[0]), 0))
        socks.append(s2)
        cport = s2.getsockname()[1]
        try:
            for n in NODE_IDS[1:]:
                for p in (kport, cport):
                    t = socket.socket()
                    socks.append(t)
                    t.bind((node_ip(n), p))
        except OSError:
            ok = False
        for t in socks:
            t.close()
        if ok:
            return kport, cport
    raise RuntimeError("no free port pair on the node addresses")


class Cluster:
    def __init__(self, tmp: Path, binary: Path, extra: list[str] | None = None):
        kport, cport = _free_port_pair()
        self.nodes = {n: SpoolNode(tmp / f"node-{n}", n, kport, cport, extra or [], binary)
                      for n in NODE_IDS}
        self.firewall = Firewall()
        self.bootstrap = ",".join(node.addr for node in self.nodes.values())

    def start(self) -> None:
        for node in self.nodes.values():
            node.spawn()
        for node in self.nodes.values():
            node.wait_ready()
        self.wait_healthy()

    def stop(self) -> list[str]:
        """Heals, resumes and stops every node (SIGTERM to all, then a bounded wait for each,
        SIGKILL after it). Returns problems: an early exit, a non-zero exit code, a timeout."""
        problems = []
        self.firewall.heal_all()
        running = []
        for node in self.nodes.values():
            node.sigcont()
            if node.proc is None:
                continue
            rc = node.proc.poll()
            if rc is not None:
                problems.append(f"node {node.node_id} had exited on its own (code {rc})")
            else:
                node.proc.send_signal(signal.SIGTERM)
                running.append(node)
        deadline = Deadline(STOP_TIMEOUT_S)
        for node in running:
            try:
                rc = node.proc.wait(timeout=max(0.1, deadline.remaining()))
                if rc != 0:
                    problems.append(f"node {node.node_id} exited with code {rc} after SIGTERM")
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(timeout=5)
                problems.append(f"node {node.node_id} did not exit within {STOP_TIMEOUT_S}s of SIGTERM")
        for node in self.nodes.values():
            if node._log_fh is not None:
                node._log_fh.close()
                node._log_fh = None
            node.proc = None
        return problems

    def log_tails(self) -> list[tuple[str, str]]:
        return [(f"node {n} log tail ({node.log_path})", log_tail(node.log_path))
                for n, node in self.nodes.items()]

    def node_dir(self, n: int, topic: str, partition: int) -> Path:
        return self.nodes[n].data_dir / f"{topic}-{partition}"

    def log_bytes(self, n: int, topic: str, partition: int) -> bytes:
        """The partition's log on node n: its .log segments concatenated in offset order
        (segment boundaries may differ between replicas; a truncation rolls a segment)."""
        segs = sorted(self.node_dir(n, topic, partition).glob("*.log"), key=lambda f: int(f.stem))
        return b"".join(f.read_bytes() for f in segs)

    # --- health -----------------------------------------------------------------------------

    def metadata(self, n: int, topics: list[str] | None = None, timeout: float = 3.0):
        return metadata_v1(self.nodes[n].addr, topics, timeout)

    def healthy(self, topics: list[str]) -> str | None:
        """None when every node lists all nodes and every partition of `topics` has a leader
        and a full ISR (on every node's view); else what is missing."""
        for n in NODE_IDS:
            try:
                brokers, parts = self.metadata(n, topics)
            except (OSError, ConnectionError, AssertionError, struct.error) as exc:
                return f"node {n}: metadata failed: {exc!r}"
            if sorted(brokers) != list(NODE_IDS):
                return f"node {n} lists brokers {sorted(brokers)}"
            for t in topics:
                if not any(k[0] == t for k in parts):
                    return f"node {n} does not know topic {t}"
            for (t, p), (err, leader, replicas, isr) in parts.items():
                if err or leader not in NODE_IDS or sorted(isr) != sorted(replicas):
                    return f"node {n}: {t}-{p} err={err} leader={leader} isr={isr}"
        return None

    def wait_healthy(self, topics: list[str] = (), timeout: float = HEALTH_TIMEOUT_S) -> float:
        started = time.monotonic()
        deadline = Deadline(timeout)
        why = "?"
        while not deadline.expired():
            why = self.healthy(list(topics))
            if why is None:
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"cluster not healthy within {timeout}s: {why}")

    def leaders(self, topic: str, via: int | None = None) -> dict[int, int]:
        for n in ([via] if via else NODE_IDS):
            if self.nodes[n].stopped or n in self.firewall.rules:
                continue
            try:
                _b, parts = self.metadata(n, [topic], timeout=1.0)
                return {p: v[1] for (t, p), v in parts.items() if t == topic}
            except (OSError, ConnectionError, AssertionError, struct.error):
                continue
        return {}

    def create_topic(self, topic: str, partitions: int, rf: int = 3) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        fut = admin.create_topics([NewTopic(topic, partitions, rf)], request_timeout=20)
        fut[topic].result(timeout=30)
        self.wait_healthy([topic], timeout=30)


# --- raw protocol: Metadata v1, Produce v3 (record batch v2) ------------------------------

_corr = [0]
_corr_lock = threading.Lock()


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return bytes(buf)


def raw_request(addr: str, api_key: int, version: int, body: bytes, timeout: float) -> bytes:
    host, _, port = addr.rpartition(":")
    with _corr_lock:
        _corr[0] += 1
        corr = _corr[0]
    msg = struct.pack(">hhi", api_key, version, corr) + _str("cluster-suite") + body
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        data = _recv_exact(sock, size)
    assert struct.unpack_from(">i", data)[0] == corr, "correlation id mismatch"
    return data[4:]


class _Reader:
    def __init__(self, data: bytes):
        self.d, self.p = data, 0

    def take(self, fmt: str):
        v = struct.unpack_from(fmt, self.d, self.p)
        self.p += struct.calcsize(fmt)
        return v if len(v) > 1 else v[0]

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.d[self.p:self.p + n].decode()
        self.p += n
        return s

    def ints(self):
        return [self.take(">i") for _ in range(self.take(">i"))]


def metadata_v1(addr: str, topics: list[str] | None, timeout: float = 3.0):
    """Returns ({node_id: "host:port"}, {(topic, partition): (error, leader, replicas, isr)})."""
    body = struct.pack(">i", -1) if topics is None else (
        struct.pack(">i", len(topics)) + b"".join(_str(t) for t in topics))
    r = _Reader(raw_request(addr, 3, 1, body, timeout))
    brokers = {}
    for _ in range(r.take(">i")):
        nid = r.take(">i")
        host = r.string()
        port = r.take(">i")
        r.string()  # rack
        brokers[nid] = f"{host}:{port}"
    r.take(">i")  # controller
    parts = {}
    for _ in range(r.take(">i")):
        terr = r.take(">h")
        name = r.string()
        r.take(">b")
        for _ in range(r.take(">i")):
            perr, pid, leader = r.take(">hii")
            replicas, isr = r.ints(), r.ints()
            parts[(name, pid)] = (perr or terr, leader, replicas, isr)
    return brokers, parts


def _varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def record_batch(records: list[tuple[bytes, bytes]]) -> bytes:
    """A v2 record batch (no compression, no producer id) of (key, value) pairs."""
    import crc32c
    ts = int(time.time() * 1000)
    recs = b""
    for i, (k, v) in enumerate(records):
        body = b"\x00" + _varint(0) + _varint(i) + _varint(len(k)) + k + _varint(len(v)) + v + _varint(0)
        recs += _varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, len(records) - 1, ts, ts, -1, -1, -1, len(records)) + recs
    crc = crc32c.crc32c(after_crc)
    after_len = struct.pack(">ibI", -1, 2, crc) + after_crc
    return struct.pack(">qi", 0, len(after_len)) + after_len


def produce_v3(addr: str, topic: str, partition: int, records: list[tuple[bytes, bytes]],
               acks: int = -1, timeout_ms: int = 3000, socket_timeout: float = 8.0):
    """One raw Produce v3. Returns (error_code, base_offset); raises OSError on a socket timeout."""
    batch = record_batch(records)
    body = (struct.pack(">hhi", -1, acks, timeout_ms) + struct.pack(">i", 1) + _str(topic)
            + struct.pack(">i", 1) + struct.pack(">ii", partition, len(batch)) + batch)
    r = _Reader(raw_request(addr, 0, 3, body, socket_timeout))
    assert r.take(">i") == 1
    r.string()
    assert r.take(">i") == 1
    _p, err, base, _lat = r.take(">ihqq")
    return err, base


# --- reading back ---------------------------------------------------------------------------

def read_partitions(bootstrap: str, topic: str, partitions: list[int],
                    timeout: float = 60.0) -> dict[int, list[tuple[int, bytes, bytes]]]:
    """Every record of each partition from offset 0 to its high watermark, via a fresh
    assign()ed confluent-kafka consumer (no group commits). {partition: [(offset, key, value)]}."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": "read_uncommitted", "enable.partition.eof": False})
    try:
        hwm = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        out = {p: [] for p in partitions}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = Deadline(timeout)
        todo = {p for p in partitions if hwm[p] > 0}
        while todo and not deadline.expired():
            for m in c.consume(500, timeout=0.5):
                if m.error():
                    raise AssertionError(f"verification consumer: {m.error()}")
                out[m.partition()].append((m.offset(), m.key(), m.value()))
                if m.offset() >= hwm[m.partition()] - 1:
                    todo.discard(m.partition())
        assert not todo, f"verification read did not reach the high watermark of {sorted(todo)}: {hwm}"
        return {p: [r for r in recs if r[0] < hwm[p]] for p, recs in out.items()}
    finally:
        c.close()


def check_exactly_once(acked: dict[bytes, tuple[int, int]], read: dict[int, list], what: str,
                       order_key=None) -> dict:
    """acked: {value: (partition, offset)}. Each acknowledged record is present exactly once, at
    the acknowledged partition and offset; offsets read are 0..n-1 per partition; records of one
    producer (order_key(value) -> (producer, seq)) appear in send order. Returns counts."""
    p = Problems()
    seen: dict[bytes, list[tuple[int, int]]] = {}
    for part, recs in read.items():
        offsets = [o for o, _k, _v in recs]
        if offsets != list(range(len(offsets))):
            missing = sorted(set(range(len(offsets))) - set(offsets))[:10]
            p.add(f"{what}: partition {part} offsets are not gap-free 0..{len(offsets) - 1}: "
                  f"first missing {missing}")
        for o, _k, v in recs:
            seen.setdefault(v, []).append((part, o))
    lost = dup = misplaced = 0
    for v, where in acked.items():
        got = seen.get(v, [])
        if not got:
            lost += 1
            p.add(f"{what}: acknowledged record {v[:40]!r} at {where} is missing")
        elif len(got) > 1:
            dup += 1
            p.add(f"{what}: acknowledged record {v[:40]!r} present {len(got)} times: {got}")
        elif got[0] != where:
            misplaced += 1
            p.add(f"{what}: acknowledged record {v[:40]!r} acknowledged at {where}, found at {got[0]}")
    dup_unacked = sum(1 for v, w in seen.items() if len(w) > 1 and v not in acked)
    if dup_unacked:
        p.add(f"{what}: {dup_unacked} unacknowledged records present more than once")
    if order_key is not None:
        for part, recs in read.items():
            last: dict = {}
            for o, _k, v in recs:
                if v not in acked:
                    continue
                prod, seq = order_key(v)
                if prod in last and seq < last[prod][0]:
                    p.add(f"{what}: partition {part}: {prod} record {seq} at offset {o} after "
                          f"record {last[prod][0]} at offset {last[prod][1]}")
                last[prod] = (seq, o)
    unacked_present = sum(1 for v in seen if v not in acked)
    p.check(what)
    return {"acknowledged": len(acked), "lost": lost, "duplicates": dup, "misplaced": misplaced,
            "unacknowledged_present": unacked_present}

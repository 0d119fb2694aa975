"""spool's SASL listeners with real clients: confluent-kafka, kafka-python and aiokafka produce and
consume over SASL_PLAINTEXT and SASL_SSL with PLAIN (users from the listener's JAAS text),
SCRAM-SHA-256 and SCRAM-SHA-512 (credentials in the metadata quorum, set through the admin API
and through `spool user`). Wrong passwords, unknown users, mechanisms not offered and clients
that skip authentication are refused as Kafka refuses them (after the failed-authentication
delay, and logged), while the broker goes on serving the others; credentials survive a
restart; with connections.max.reauth.ms a session is given its lifetime, re-authenticates in
place, and is closed if it does not.

Each broker listens on SASL_PLAINTEXT (first, so its ready file names it), SASL_SSL and a
PLAINTEXT listener, which is the one nodes use between themselves and the admin CLI uses here.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialDeletion, UserScramCredentialUpsertion)

from compat_common import unique_topic
from conftest import SpoolBroker, log_tail, spool_bin
from test_tls import certs, ck_round_trip, start_broker  # noqa: F401  (certs: the fixture)

DEADLINE_S = 30.0
USERS = {"alice": "alice-secret", "bob": "bob-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sasl_broker(request, workdir: Path, certs: Path, extra: list[str] = ()) -> SpoolBroker:
    ports = {name: free_port() for name in ("SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT")}
    settings = [
        "listener.security.protocol.map="
        "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name=PLAINTEXT",
        "sasl.enabled.mechanisms=" + ",".join(MECHANISMS),
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}",
        f"listener.name.sasl_ssl.plain.sasl.jaas.config={JAAS}",
        f"ssl.keystore.location={certs / 'broker.keystore.pem'}",
        *extra,
    ]
    listen = ",".join(f"{n}://127.0.0.1:{p}" for n, p in ports.items())
    broker = start_broker(request, workdir, settings, listen)
    broker.plaintext = f"127.0.0.1:{ports['PLAINTEXT']}"
    broker.sasl_ssl = f"127.0.0.1:{ports['SASL_SSL']}"
    return broker


@pytest.fixture
def sasl_broker(request, tmp_path, certs):
    broker = start_sasl_broker(request, tmp_path, certs)
    # SCRAM users for both mechanisms, through the console tool (AlterUserScramCredentials).
    for user, password in USERS.items():
        for m in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            spool_user("add", user, "--mechanism", m, "--password", password,
                       bootstrap=broker.plaintext)
    yield broker
    problem = broker.stop()
    if problem:
        pytest.fail(f"{problem}\n{log_tail(broker.log_path)}", pytrace=False)


def spool_user(*args: str, bootstrap: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(spool_bin()), "user", args[0], "--bootstrap-server", bootstrap,
                           *args[1:]], text=True, capture_output=True, timeout=60, check=check)


def ck_conf(bootstrap: str, mechanism: str, user: str, password: str, certs: Path | None = None,
            **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_SSL" if certs else "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
        "socket.timeout.ms": 10000,
    }
    if certs:
        conf["ssl.ca.location"] = str(certs / "ca.pem")
    conf.update(extra)
    return conf


def ck_refused(conf: dict) -> str:
    with pytest.raises(KafkaException) as exc:
        AdminClient(conf).list_topics(timeout=5.0)
    return str(exc.value)


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_confluent_kafka_over_sasl_plaintext_and_sasl_ssl(sasl_broker, certs, mechanism):
    ck_round_trip(ck_conf(sasl_broker.bootstrap, mechanism, "alice", USERS["alice"]))
    ck_round_trip(ck_conf(sasl_broker.sasl_ssl, mechanism, "bob", USERS["bob"], certs))


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_kafka_python_over_sasl(sasl_broker, certs, mechanism):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP

    for bootstrap, tls in ((sasl_broker.bootstrap, False), (sasl_broker.sasl_ssl, True)):
        args = dict(security_protocol="SASL_SSL" if tls else "SASL_PLAINTEXT",
                    sasl_mechanism=mechanism, sasl_plain_username="alice",
                    sasl_plain_password=USERS["alice"])
        if tls:
            args["ssl_cafile"] = str(certs / "ca.pem")
        topic = unique_topic("kpy", "sasl")
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **args)
        for i in range(20):
            producer.send(topic, value=b"v%d" % i, partition=0).get(timeout=DEADLINE_S)
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **args)
        consumer.assign([KTP(topic, 0)])
        consumer.seek_to_beginning()
        got = []
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < 20 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in batch)
        consumer.close()
        assert got == [b"v%d" % i for i in range(20)]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_aiokafka_over_sasl(sasl_broker, certs, mechanism):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition as ATP
    from aiokafka.helpers import create_ssl_context

    async def run(bootstrap: str, tls: bool) -> list:
        args = dict(security_protocol="SASL_SSL" if tls else "SASL_PLAINTEXT",
                    sasl_mechanism=mechanism, sasl_plain_username="bob",
                    sasl_plain_password=USERS["bob"])
        if tls:
            args["ssl_context"] = create_ssl_context(cafile=str(certs / "ca.pem"))
        topic = unique_topic("aio", "sasl")
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **args)
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait(topic, b"v%d" % i, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **args)
        await consumer.start()
        try:
            tp = ATP(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got = []
            deadline = time.monotonic() + DEADLINE_S
            while len(got) < 20 and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(r.value for r in batch)
            return got
        finally:
            await consumer.stop()

    for bootstrap, tls in ((sasl_broker.bootstrap, False), (sasl_broker.sasl_ssl, True)):
        assert asyncio.run(run(bootstrap, tls)) == [b"v%d" % i for i in range(20)]


# --- The protocol by hand: what a refused or unauthenticated client is told, and when.

def _frame(api_key: int, version: int, corr: int, body: bytes) -> bytes:
    header = struct.pack(">hhih", api_key, version, corr, 4) + b"test"
    return struct.pack(">i", len(header) + len(body)) + header + body


def _read_frame(s: socket.socket) -> bytes | None:
    def exact(n: int) -> bytes | None:
        out = b""
        while len(out) < n:
            chunk = s.recv(n - len(out))
            if not chunk:
                return None
            out += chunk
        return out
    size = exact(4)
    if size is None:
        return None
    return exact(struct.unpack(">i", size)[0])


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout):
        return True


def handshake(s: socket.socket, mechanism: str, version: int = 1) -> tuple[int, list[str]]:
    m = mechanism.encode()
    s.sendall(_frame(17, version, 1, struct.pack(">h", len(m)) + m))
    body = _read_frame(s)
    assert body is not None, "closed instead of answering SaslHandshake"
    err, n = struct.unpack(">hi", body[4:10])
    names, at = [], 10
    for _ in range(n):
        (ln,) = struct.unpack(">h", body[at:at + 2])
        names.append(body[at + 2:at + 2 + ln].decode())
        at += 2 + ln
    return err, names


def authenticate(s: socket.socket, token: bytes) -> tuple[int, str | None, bytes, int]:
    """SaslAuthenticate v1: (error code, message, auth bytes, session lifetime ms)."""
    s.sendall(_frame(36, 1, 2, struct.pack(">i", len(token)) + token))
    body = _read_frame(s)
    assert body is not None, "closed instead of answering SaslAuthenticate"
    at = 4
    (err, mlen) = struct.unpack(">hh", body[at:at + 4])
    at += 4
    message = None
    if mlen >= 0:
        message = body[at:at + mlen].decode()
        at += mlen
    (blen,) = struct.unpack(">i", body[at:at + 4])
    auth = body[at + 4:at + 4 + blen]
    at += 4 + blen
    (lifetime,) = struct.unpack(">q", body[at:at + 8])
    return err, message, auth, lifetime


METADATA_V1_ALL = struct.pack(">i", -1)


def connect(addr: str) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    return s


def test_refusals_are_kafkas_and_others_go_on(sasl_broker, certs):
    good = ck_conf(sasl_broker.bootstrap, "SCRAM-SHA-512", "alice", USERS["alice"])
    # Wrong password, unknown user, each mechanism.
    for m in MECHANISMS:
        ck_refused(ck_conf(sasl_broker.bootstrap, m, "alice", "wrong"))
        ck_refused(ck_conf(sasl_broker.bootstrap, m, "mallory", "x"))
    # A plaintext client on the SASL port.
    ck_refused({"bootstrap.servers": sasl_broker.bootstrap, "socket.timeout.ms": 5000})

    # By hand: a mechanism not offered is UNSUPPORTED_SASL_MECHANISM (33) with the list.
    with connect(sasl_broker.bootstrap) as s:
        err, names = handshake(s, "GSSAPI")
        assert (err, names) == (33, MECHANISMS)
        assert _closed(s)
    # A wrong PLAIN password: SASL_AUTHENTICATION_FAILED (58) with Kafka's message, not before
    # the failed-authentication delay (100 ms), then the connection closes.
    with connect(sasl_broker.bootstrap) as s:
        assert handshake(s, "PLAIN") == (0, MECHANISMS)
        started = time.monotonic()
        err, message, _, _ = authenticate(s, b"\0alice\0nope")
        waited = time.monotonic() - started
        assert (err, message) == (58, "Authentication failed: Invalid username or password")
        assert waited >= 0.09, waited
        assert _closed(s)
    # A request other than ApiVersions / SaslHandshake before authenticating: closed.
    with connect(sasl_broker.bootstrap) as s:
        s.sendall(_frame(3, 1, 1, METADATA_V1_ALL))
        assert _read_frame(s) is None
    # A frame over sasl.server.max.receive.size before authenticating: closed unread.
    with connect(sasl_broker.bootstrap) as s:
        assert handshake(s, "PLAIN") == (0, MECHANISMS)
        s.sendall(struct.pack(">i", 600_000) + b"\0" * 1000)
        assert _read_frame(s) is None
    # ApiVersions is answered before authentication.
    with connect(sasl_broker.bootstrap) as s:
        s.sendall(_frame(18, 0, 9, b""))
        body = _read_frame(s)
        assert body is not None and struct.unpack(">ih", body[:6]) == (9, 0)
    # SaslHandshake v0, then a bare PLAIN token: answered with an empty bare token.
    with connect(sasl_broker.bootstrap) as s:
        assert handshake(s, "PLAIN", version=0) == (0, MECHANISMS)
        token = b"\0bob\0bob-secret"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert _read_frame(s) == b""
        s.sendall(_frame(3, 1, 5, METADATA_V1_ALL))
        body = _read_frame(s)
        assert body is not None and struct.unpack(">i", body[:4]) == (5,)
    # On the PLAINTEXT listener SASL requests are ILLEGAL_SASL_STATE (34).
    with connect(sasl_broker.plaintext) as s:
        assert handshake(s, "PLAIN")[0] == 34

    ck_round_trip(good)
    log = sasl_broker.log_path.read_text(errors="replace")
    assert "authentication failed" in log, log_tail(sasl_broker.log_path)


def test_credentials_through_the_admin_api_apply_to_new_connections_and_survive_restart(
        sasl_broker, certs):
    admin = AdminClient({"bootstrap.servers": sasl_broker.plaintext})
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
                                     b"carol-1"),
    ])
    for f in futures.values():
        f.result(timeout=DEADLINE_S)
    described = admin.describe_user_scram_credentials(["carol"])
    infos = described["carol"].result(timeout=DEADLINE_S).scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == [(ScramMechanism.SCRAM_SHA_256, 4096)]
    conf = ck_conf(sasl_broker.bootstrap, "SCRAM-SHA-256", "carol", "carol-1")
    ck_round_trip(conf)
    # PLAIN also accepts a SCRAM user.
    ck_round_trip(ck_conf(sasl_broker.bootstrap, "PLAIN", "carol", "carol-1"))
    # A changed password: the old one is refused, the new one accepted.
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192),
                                     b"carol-2"),
    ])
    for f in futures.values():
        f.result(timeout=DEADLINE_S)
    ck_refused(conf)
    conf = ck_conf(sasl_broker.bootstrap, "SCRAM-SHA-256", "carol", "carol-2")
    ck_round_trip(conf)
    # A mechanism carol has no credential for.
    ck_refused(ck_conf(sasl_broker.bootstrap, "SCRAM-SHA-512", "carol", "carol-2"))
    # Deleting what does not exist: RESOURCE_NOT_FOUND.
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialDeletion("carol", ScramMechanism.SCRAM_SHA_512)])
    with pytest.raises(KafkaException) as exc:
        for f in futures.values():
            f.result(timeout=DEADLINE_S)
    assert "RESOURCE_NOT_FOUND" in str(exc.value) or "does not exist" in str(exc.value)

    # Kept by the metadata quorum across a restart (the salted form only: no password on disk).
    assert sasl_broker.stop() is None
    sasl_broker.start()
    ck_round_trip(conf)
    ck_round_trip(ck_conf(sasl_broker.bootstrap, "SCRAM-SHA-512", "alice", USERS["alice"]))
    stored = b"".join(p.read_bytes() for p in sasl_broker.data_dir.rglob("*") if p.is_file())
    assert b"carol-2" not in stored and b"alice-secret" not in stored

    # The console tool lists and deletes.
    listed = spool_user("list", bootstrap=sasl_broker.plaintext).stdout
    assert "carol" in listed and "SCRAM-SHA-256" in listed and "8192" in listed, listed
    spool_user("delete", "carol", bootstrap=sasl_broker.plaintext)
    ck_refused(conf)
    gone = spool_user("list", "carol", bootstrap=sasl_broker.plaintext, check=False)
    assert gone.returncode != 0 and "ResourceNotFound (91)" in gone.stderr, gone


@pytest.fixture
def reauth_broker(request, tmp_path, certs):
    broker = start_sasl_broker(request, tmp_path, certs, ["connections.max.reauth.ms=1500"])
    yield broker
    problem = broker.stop()
    if problem:
        pytest.fail(f"{problem}\n{log_tail(broker.log_path)}", pytrace=False)


def test_sessions_expire_and_reauthenticate(reauth_broker):
    # The lifetime is told to v1 clients; a request after it ends closes the connection.
    with connect(reauth_broker.bootstrap) as s:
        assert handshake(s, "PLAIN")[0] == 0
        err, _, _, lifetime = authenticate(s, b"\0alice\0alice-secret")
        assert (err, lifetime) == (0, 1500)
        # Re-authenticating in place, as the same user, is accepted and renews the session.
        assert handshake(s, "PLAIN")[0] == 0
        assert authenticate(s, b"\0alice\0alice-secret")[0] == 0
        s.sendall(_frame(3, 1, 7, METADATA_V1_ALL))
        assert _read_frame(s) is not None
        # Re-authenticating as someone else is refused.
        assert handshake(s, "PLAIN")[0] == 0
        err, message, _, _ = authenticate(s, b"\0bob\0bob-secret")
        assert err == 58 and "Cannot change principals" in message, message
    with connect(reauth_broker.bootstrap) as s:
        assert handshake(s, "PLAIN")[0] == 0
        assert authenticate(s, b"\0alice\0alice-secret")[0] == 0
        deadline = time.monotonic() + 10
        closed = False
        while time.monotonic() < deadline and not closed:
            s.sendall(_frame(3, 1, 8, METADATA_V1_ALL))
            closed = _read_frame(s) is None
        assert closed, "the expired session went on being served"
    # librdkafka re-authenticates by itself (KIP-368): a producer outlives several sessions.
    conf = ck_conf(reauth_broker.bootstrap, "SCRAM-SHA-512", "alice", USERS["alice"])
    spool_user("add", "alice", "--mechanism", "SCRAM-SHA-512", "--password", USERS["alice"],
               bootstrap=reauth_broker.plaintext)
    topic = unique_topic("ck", "reauth")
    errors: list = []
    stats: list = []
    p = Producer({**conf, "acks": "all", "linger.ms": 0, "statistics.interval.ms": 200,
                  "stats_cb": lambda j: stats.append(json.loads(j))})
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 4.0 and sent < 20_000:
        p.produce(topic, value=b"r%d" % sent, partition=0,
                  on_delivery=lambda err, _msg: err and errors.append(err))
        sent += 1
        assert p.flush(DEADLINE_S) == 0
    assert p.flush(DEADLINE_S) == 0 and not errors, errors
    assert time.monotonic() - started >= 3.0, "the producer did not outlive two sessions"
    # In place: the connection to the node was never dropped across its sessions.
    node = [b for b in stats[-1]["brokers"].values() if b["nodeid"] == 1]
    assert node and node[0]["disconnects"] == 0 and node[0]["connects"] == 1, node
    c = Consumer({**conf, "group.id": unique_topic("ck", "reauth-g"), "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = 0
    deadline = time.monotonic() + DEADLINE_S
    while got < sent and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got += 1
    c.close()
    assert got == sent

"""spool's SSL listeners with real clients: confluent-kafka (librdkafka's OpenSSL), kcat (Debian's,
on the system's librdkafka and OpenSSL), kafka-python and aiokafka (Python's ssl module) produce
and consume over TLS, with and without client
certificates; clients that cannot authenticate the broker, or that the broker cannot
authenticate, fail their handshake while the broker goes on serving the others; and a
certificate replaced on disk is served to new connections without a restart.

The certificates are made here with the openssl command-line tool: a CA, the broker's
certificate for 127.0.0.1, a client certificate from the same CA, and a second CA with a client
certificate of its own that the broker must refuse.

Each broker listens on SSL (first, so its ready file names it) and on a PLAINTEXT listener,
which is the one nodes use between themselves.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from compat_common import unique_topic
from conftest import SpoolBroker, log_tail

LISTENERS = "SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"
DEADLINE_S = 30.0


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_cert(d: Path, name: str, ca: str, ext: str) -> None:
    """{name}.key, {name}.pem signed by {ca}, and {name}.keystore.pem (key then chain)."""
    (d / f"{name}.ext").write_text(ext)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
            cwd=d)
    keystore = (d / f"{name}.key").read_text() + (d / f"{name}.pem").read_text()
    (d / f"{name}.keystore.pem").write_text(keystore)


SERVER_EXT = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
CLIENT_EXT = "extendedKeyUsage=clientAuth\n"


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "ca")
    make_ca(d, "rogue-ca")
    make_cert(d, "broker", "ca", SERVER_EXT)
    make_cert(d, "broker2", "ca", SERVER_EXT)
    make_cert(d, "client", "ca", CLIENT_EXT)
    make_cert(d, "rogue-client", "rogue-ca", CLIENT_EXT)
    return d


def start_broker(request, workdir: Path, settings: list[str], listen: str = LISTENERS) -> SpoolBroker:
    broker = SpoolBroker(workdir, settings)
    broker.listen = listen
    request.node._spool_broker = broker
    try:
        broker.start()
    except BaseException:
        broker.stop()
        raise
    return broker


@pytest.fixture
def tls_broker(request, tmp_path, certs):
    """A broker whose SSL listener serves a copy of broker.keystore.pem (the copy may be replaced),
    with ssl.client.auth from the test's `client_auth` marker (default none)."""
    marker = request.node.get_closest_marker("client_auth")
    client_auth = marker.args[0] if marker else "none"
    keystore = tmp_path / "keystore.pem"
    keystore.write_bytes((certs / "broker.keystore.pem").read_bytes())
    settings = [
        f"ssl.keystore.location={keystore}",
        f"ssl.truststore.location={certs / 'ca.pem'}",
        f"ssl.client.auth={client_auth}",
    ]
    broker = start_broker(request, tmp_path, settings)
    broker.keystore = keystore
    yield broker
    problem = broker.stop()
    if problem:
        pytest.fail(f"{problem}\n{log_tail(broker.log_path)}", pytrace=False)


def ck_ssl(bootstrap: str, certs: Path, client: str | None = None, ca: str = "ca", **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": str(certs / f"{ca}.pem"),
        "socket.timeout.ms": 10000,
    }
    if client:
        conf["ssl.certificate.location"] = str(certs / f"{client}.pem")
        conf["ssl.key.location"] = str(certs / f"{client}.key")
    conf.update(extra)
    return conf


def ck_metadata(conf: dict, timeout: float = 10.0):
    return AdminClient(conf).list_topics(timeout=timeout)


def ck_round_trip(conf: dict, n: int = 50) -> None:
    """Produces n records to a new topic (auto-created) and reads them back."""
    topic = unique_topic("ck", "tls")
    errors: list = []
    p = Producer({**conf, "acks": "all"})
    for i in range(n):
        p.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=0,
                  on_delivery=lambda err, _msg: err and errors.append(err))
    assert p.flush(DEADLINE_S) == 0, "records left undelivered"
    assert not errors, errors
    c = Consumer({**conf, "group.id": unique_topic("ck", "tls-g"), "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = []
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.append((m.key(), m.value()))
    c.close()
    assert got == [(b"k%d" % i, b"v%d" % i) for i in range(n)]


def refused(conf: dict) -> str:
    with pytest.raises(KafkaException) as exc:
        ck_metadata(conf, timeout=5.0)
    return str(exc.value)


def test_confluent_kafka_over_tls_and_the_ssl_listener_advertised(tls_broker, certs):
    conf = ck_ssl(tls_broker.bootstrap, certs)
    md = ck_metadata(conf)
    port = int(tls_broker.bootstrap.rsplit(":", 1)[1])
    assert [(b.host, b.port) for b in md.brokers.values()] == [("127.0.0.1", port)], md.brokers
    ck_round_trip(conf)


def test_clients_that_cannot_trust_or_speak_tls_fail_and_others_go_on(tls_broker, certs):
    good = ck_ssl(tls_broker.bootstrap, certs)
    # The broker's certificate is not signed by the CA this client trusts.
    refused(ck_ssl(tls_broker.bootstrap, certs, ca="rogue-ca"))
    # A plaintext client on the TLS port.
    refused({"bootstrap.servers": tls_broker.bootstrap, "socket.timeout.ms": 5000})
    # Raw garbage and a silent connection on the TLS port: closed, nothing else affected.
    with socket.create_connection(("127.0.0.1", int(tls_broker.bootstrap.rsplit(":", 1)[1])), 5) as s:
        s.sendall(b"\x00\x00\x00\x10not a tls record")
        s.settimeout(10)
        s.recv(100)  # an alert or the close; socket.timeout if the broker did neither
    ck_round_trip(good)
    assert "TLS handshake failed" in tls_broker.log_path.read_text(errors="replace")


@pytest.mark.client_auth("required")
def test_mutual_tls_required(tls_broker, certs):
    ck_round_trip(ck_ssl(tls_broker.bootstrap, certs, client="client"))
    # No certificate, and one from a CA the broker does not trust: both refused.
    refused(ck_ssl(tls_broker.bootstrap, certs))
    refused(ck_ssl(tls_broker.bootstrap, certs, client="rogue-client"))
    assert not api_versions_over_tls(tls_broker.bootstrap, certs, "rogue-client")
    assert not api_versions_over_tls(tls_broker.bootstrap, certs, None)
    assert api_versions_over_tls(tls_broker.bootstrap, certs, "client")
    ck_metadata(ck_ssl(tls_broker.bootstrap, certs, client="client"))


# ApiVersions v0, correlation id 1, no client id.
API_VERSIONS_V0 = b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff"


def api_versions_over_tls(addr: str, certs: Path, client: str | None) -> bool:
    """Whether ApiVersions is answered on a TLS connection presenting `client`'s certificate.
    Python's ssl module sends the certificate whatever CAs the broker names (librdkafka sends
    none when the broker's CA list does not match, so it cannot show a refused certificate)."""
    host, port = addr.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if client:
        ctx.load_cert_chain(str(certs / f"{client}.pem"), str(certs / f"{client}.key"))
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=host) as s:
                s.sendall(API_VERSIONS_V0)
                return len(s.recv(4)) == 4
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return False


@pytest.mark.client_auth("requested")
def test_mutual_tls_requested(tls_broker, certs):
    # Without a certificate, or with a trusted one: served. With an untrusted one: refused.
    ck_round_trip(ck_ssl(tls_broker.bootstrap, certs))
    assert api_versions_over_tls(tls_broker.bootstrap, certs, None)
    assert api_versions_over_tls(tls_broker.bootstrap, certs, "client")
    assert not api_versions_over_tls(tls_broker.bootstrap, certs, "rogue-client")
    ck_metadata(ck_ssl(tls_broker.bootstrap, certs, client="client"))


@pytest.mark.client_auth("required")
def test_kcat_over_mutual_tls(tls_broker, certs):
    tls = ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={certs / 'ca.pem'}",
           "-X", f"ssl.certificate.location={certs / 'client.pem'}",
           "-X", f"ssl.key.location={certs / 'client.key'}"]
    kcat = ["kcat", "-b", tls_broker.bootstrap, *tls]
    topic = unique_topic("kcat", "tls")
    lines = "".join(f"k{i}:v{i}\n" for i in range(30))
    subprocess.run([*kcat, "-t", topic, "-p", "0", "-K:", "-P"], input=lines, text=True,
                   check=True, capture_output=True, timeout=60)
    out = subprocess.run([*kcat, "-t", topic, "-p", "0", "-C", "-e", "-o", "beginning",
                          "-f", "%k:%s\n"], text=True, check=True, capture_output=True,
                         timeout=60).stdout
    assert out == lines
    # Without the client certificate: no metadata.
    ran = subprocess.run(["kcat", "-b", tls_broker.bootstrap, *tls[:4], "-L", "-m", "5"],
                         text=True, capture_output=True, timeout=60)
    assert ran.returncode != 0, ran.stdout


@pytest.mark.client_auth("required")
def test_kafka_python_over_mutual_tls(tls_broker, certs):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP

    ssl_args = dict(security_protocol="SSL", ssl_cafile=str(certs / "ca.pem"),
                    ssl_certfile=str(certs / "client.pem"), ssl_keyfile=str(certs / "client.key"))
    topic = unique_topic("kpy", "tls")
    producer = KafkaProducer(bootstrap_servers=tls_broker.bootstrap, acks="all", **ssl_args)
    for i in range(20):
        producer.send(topic, key=b"k%d" % i, value=b"v%d" % i, partition=0).get(timeout=DEADLINE_S)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=tls_broker.bootstrap, group_id=None,
                             consumer_timeout_ms=3000, **ssl_args)
    consumer.assign([KTP(topic, 0)])
    consumer.seek_to_beginning()
    got = []
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < 20 and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            got.extend((r.key, r.value) for r in batch)
    consumer.close()
    assert got == [(b"k%d" % i, b"v%d" % i) for i in range(20)]


def test_aiokafka_over_tls(tls_broker, certs):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context

    topic = unique_topic("aio", "tls")

    async def go():
        ctx = create_ssl_context(cafile=str(certs / "ca.pem"))
        producer = AIOKafkaProducer(bootstrap_servers=tls_broker.bootstrap,
                                    security_protocol="SSL", ssl_context=ctx, acks="all")
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait(topic, b"v%d" % i, key=b"k%d" % i, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=tls_broker.bootstrap,
                                    security_protocol="SSL", ssl_context=ctx,
                                    auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        got = []
        try:
            async with asyncio.timeout(DEADLINE_S):
                async for m in consumer:
                    got.append((m.key, m.value))
                    if len(got) == 20:
                        break
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(go()) == [(b"k%d" % i, b"v%d" % i) for i in range(20)]


def served_certificate(addr: str, certs: Path) -> bytes:
    host, port = addr.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            return s.getpeercert(binary_form=True)


def test_a_replaced_certificate_is_served_without_a_restart(tls_broker, certs):
    first = ssl.PEM_cert_to_DER_cert((certs / "broker.pem").read_text())
    second = ssl.PEM_cert_to_DER_cert((certs / "broker2.pem").read_text())
    assert served_certificate(tls_broker.bootstrap, certs) == first
    # A client connected before the change keeps working across it.
    producer = Producer({**ck_ssl(tls_broker.bootstrap, certs), "acks": "all"})
    topic = unique_topic("ck", "rotate")
    producer.produce(topic, b"before", partition=0)
    assert producer.flush(DEADLINE_S) == 0
    # Written aside and renamed in, as certificate tools do.
    staged = tls_broker.keystore.with_suffix(".new")
    staged.write_bytes((certs / "broker2.keystore.pem").read_bytes())
    staged.replace(tls_broker.keystore)
    deadline = time.monotonic() + DEADLINE_S
    served = first
    while served != second and time.monotonic() < deadline:
        served = served_certificate(tls_broker.bootstrap, certs)
        if served != second:
            time.sleep(0.2)
    assert served == second, "the new certificate was not served within the deadline"
    producer.produce(topic, b"after", partition=0)
    assert producer.flush(DEADLINE_S) == 0
    # A broken replacement keeps the current certificate.
    staged.write_text("not a certificate")
    staged.replace(tls_broker.keystore)
    deadline = time.monotonic() + 5
    while "do not load" not in tls_broker.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the broken keystore was not noticed"
        served_certificate(tls_broker.bootstrap, certs)
        time.sleep(0.2)
    assert served_certificate(tls_broker.bootstrap, certs) == second


def test_bad_tls_settings_stop_start_up_naming_the_setting(request, tmp_path, certs):
    cases = [
        ([], "ssl.keystore.location"),
        ([f"ssl.keystore.location={certs / 'broker.pem'}"], "no usable private key"),
        ([f"ssl.keystore.location={certs / 'broker.keystore.pem'}", "ssl.keystore.type=JKS"],
         "PEM stores only"),
        ([f"ssl.keystore.location={certs / 'broker.keystore.pem'}", "ssl.client.auth=required"],
         "ssl.truststore.location"),
        ([f"listener.name.ssl.ssl.keystore.location={tmp_path / 'missing.pem'}"],
         "listener.name.ssl.ssl.keystore.location"),
    ]
    for i, (settings, want) in enumerate(cases):
        workdir = tmp_path / f"case{i}"
        workdir.mkdir()
        argv = SpoolBroker(workdir, settings).argv
        argv[argv.index("--listeners") + 1] = LISTENERS
        ran = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert ran.returncode != 0, (settings, ran.stderr)
        assert want in ran.stderr, (settings, ran.stderr)


def test_the_certificate_subject_is_the_principal_as_the_rules_map_it(request, tmp_path, certs,
                                                                    monkeypatch):
    # Request logs at debug name each request's principal.
    monkeypatch.setenv("RUST_LOG", "info,spool::request=debug")
    settings = [
        f"ssl.keystore.location={certs / 'broker.keystore.pem'}",
        f"ssl.truststore.location={certs / 'ca.pem'}",
        "ssl.client.auth=required",
        # Kafka's rule form: the CN, suffixed, upper-cased; names no rule matches are refused.
        "ssl.principal.mapping.rules=RULE:^CN=(client)$/$1-app/U",
    ]
    broker = start_broker(request, tmp_path, settings)
    try:
        ck_round_trip(ck_ssl(broker.bootstrap, certs, client="client"))
        log = broker.log_path.read_text(errors="replace")
        assert "User:CLIENT-APP" in log, log_tail(broker.log_path)
    finally:
        problem = broker.stop()
    assert problem is None, problem

    settings[-1] = "ssl.principal.mapping.rules=RULE:^CN=someone-else$/x/"
    broker = start_broker(request, tmp_path / "second", settings)
    try:
        refused(ck_ssl(broker.bootstrap, certs, client="client"))
        assert "no ssl.principal.mapping.rules rule applies" in \
            broker.log_path.read_text(errors="replace")
    finally:
        problem = broker.stop()
    assert problem is None, problem

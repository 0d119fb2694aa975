"""Produce and consume throughput over SASL_SSL (SCRAM-SHA-512) and SSL listeners beside a
PLAINTEXT one of the same spool process, through confluent-kafka (librdkafka, with the OpenSSL
its wheel bundles).

Interleaved rounds (the order rotates): each round produces RECORDS records of 1 KiB,
uncompressed (so TLS carries every byte), at acks=1 to a fresh one-partition topic, then one
consumer reads them all back from the start. Prints every round, the medians, and each secure
listener's throughput as a share of PLAINTEXT's measured in the same run.

    python benches/tls.py [--spool target/release/spool] [--rounds 5] [--records 200000]

Needs the openssl command-line tool (for the test CA) and confluent-kafka (the client suite's
venv has it: target/compat-venv/bin/python benches/tls.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

RECORD = 1024


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(d: Path) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE", cwd=d)
    openssl("req", *ec, "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=broker",
            cwd=d)
    (d / "broker.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "broker.pem", "-days", "1", "-extfile", "broker.ext",
            cwd=d)
    (d / "keystore.pem").write_text((d / "broker.key").read_text() + (d / "broker.pem").read_text())


def start(spool: str, d: Path) -> tuple[subprocess.Popen, str, str, str]:
    ready = d / "ready"
    proc = subprocess.Popen(
        [spool, "serve", "--listeners",
         "SASL_SSL://127.0.0.1:0,SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
         "--data-dir", str(d / "data"), "--ready-file", str(ready),
         "--set", "listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,PLAINTEXT:PLAINTEXT",
         "--set", "inter.broker.listener.name=PLAINTEXT",
         "--set", "sasl.enabled.mechanisms=SCRAM-SHA-512",
         "--set", f"ssl.keystore.location={d / 'keystore.pem'}"],
        stdout=open(d / "spool.log", "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (ready.exists() and ready.read_text().endswith("\n")):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"spool did not start; see {d / 'spool.log'}")
        time.sleep(0.05)
    sasl_addr = ready.read_text().strip()
    found = {}
    for line in (d / "spool.log").read_text().splitlines():
        for name in ("SSL", "PLAINTEXT"):
            if f"listening listener={name} " in line:
                found[name] = line.split("local=")[1].split()[0]
    if len(found) != 2:
        sys.exit(f"listener addresses missing from the log: {found}")
    subprocess.run([spool, "user", "add", "bench", "--mechanism", "SCRAM-SHA-512",
                    "--password", "bench-secret", "--bootstrap-server", found["PLAINTEXT"]],
                   check=True, capture_output=True, timeout=60)
    return proc, sasl_addr, found["SSL"], found["PLAINTEXT"]


def one_round(conf: dict, topic: str, records: int) -> tuple[float, float]:
    payload = os.urandom(RECORD)
    p = Producer({**conf, "acks": "1", "linger.ms": 5, "batch.size": 1 << 20,
                  "queue.buffering.max.kbytes": 1 << 20})
    started = time.monotonic()
    for i in range(records):
        while True:
            try:
                p.produce(topic, payload, partition=0)
                break
            except BufferError:
                p.poll(0.01)
    if p.flush(120) != 0:
        sys.exit("records left undelivered")
    produce_s = time.monotonic() - started
    c = Consumer({**conf, "group.id": topic, "enable.auto.commit": False,
                  "fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 10 << 20})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = 0
    started = time.monotonic()
    deadline = started + 120
    while got < records and time.monotonic() < deadline:
        for m in c.consume(10000, 0.5):
            if m.error() is None:
                got += 1
    consume_s = time.monotonic() - started
    c.close()
    if got != records:
        sys.exit(f"read back {got} of {records}")
    mb = records * RECORD / 1e6
    return mb / produce_s, mb / consume_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default="target/release/spool")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--records", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_certs(d)
        proc, sasl_addr, ssl_addr, plain_addr = start(args.spool, d)
        try:
            confs = {
                "PLAINTEXT": {"bootstrap.servers": plain_addr},
                "SSL": {"bootstrap.servers": ssl_addr, "security.protocol": "SSL",
                        "ssl.ca.location": str(d / "ca.pem")},
                "SASL_SSL": {"bootstrap.servers": sasl_addr, "security.protocol": "SASL_SSL",
                             "ssl.ca.location": str(d / "ca.pem"),
                             "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench",
                             "sasl.password": "bench-secret"},
            }
            results: dict[str, list[tuple[float, float]]] = {k: [] for k in confs}
            for r in range(args.rounds):
                names = list(confs)
                order = names[r % len(names):] + names[:r % len(names)]
                for name in order:
                    got = one_round(confs[name], f"bench-{name.lower()}-{r}", args.records)
                    results[name].append(got)
                    print(f"round {r + 1} {name:9} produce {got[0]:7.1f} MB/s  consume {got[1]:7.1f} MB/s",
                          flush=True)
            med = {k: (statistics.median(x for x, _ in v), statistics.median(y for _, y in v))
                   for k, v in results.items()}
            for k, (p, c) in med.items():
                print(f"median   {k:9} produce {p:7.1f} MB/s  consume {c:7.1f} MB/s")
            for k in ("SSL", "SASL_SSL"):
                print(f"{k} / PLAINTEXT: produce {med[k][0] / med['PLAINTEXT'][0]:.2f}, "
                      f"consume {med[k][1] / med['PLAINTEXT'][1]:.2f}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()

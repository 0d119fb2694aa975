#!/usr/bin/env bash
# Runs every spool test on a fresh machine: installs what the client suites need, builds spool,
# then runs the Rust unit and integration tests (the metrics test scrapes with a real Prometheus
# server, installed here), a bounded run of each fuzz target (nightly
# toolchain; cargo-fuzz is installed if missing), the Python client suite (kafka-python,
# confluent-kafka, aiokafka), the three-node cluster suite with the same Python clients (inside a
# private network namespace, where it cuts links with iptables), the Node client suite
# (kafkajs), and the container image with the three-node compose cluster (installs Debian's
# docker.io and docker-compose and starts the daemon when none runs). Exits non-zero on any
# failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n=== %s\n' "$*"; }

step "build"
cargo build --bins
# Where cargo put it: CARGO_TARGET_DIR when set (relative to the repository, as cargo reads it).
target_dir="${CARGO_TARGET_DIR:-$root/target}"
export SPOOL_BIN="$target_dir/debug/spool"
mkdir -p "$root/target"

step "prometheus server for the metrics test: install"
if ! command -v prometheus >/dev/null 2>&1; then
    apt-get install -y prometheus || { apt-get update && apt-get install -y prometheus; }
fi

step "rust: unit and integration tests"
cargo test --no-fail-fast

step "fuzz: each target for ${FUZZ_SECONDS:-30}s from its committed seeds"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}"

step "python client suite: install"
venv="$root/target/compat-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/compat/python/requirements.txt
step "container image and three-node compose cluster"
cargo build --release --bins
SPOOL_RELEASE_BIN="$target_dir/release/spool" SPOOL_VENV="$venv" bash tests/container/run.sh

step "python client suite: run"
# The TLS tests make their CA and certificates with the openssl command-line tool, and run kcat.
for tool in openssl kcat; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        apt-get install -y "$tool" || { apt-get update && apt-get install -y "$tool"; }
    fi
done
"$venv/bin/python" -m pytest tests/compat/python -q -p no:cacheprovider --ignore=tests/compat/python/cluster

step "python cluster suite: install iptables"
if ! command -v iptables >/dev/null 2>&1; then
    apt-get install -y iptables || { apt-get update && apt-get install -y iptables; }
fi
step "python cluster suite: run (in a private network namespace)"
# A fresh network namespace holding only lo: the suite's iptables rules never reach the host's
# firewall. SPOOL_CLUSTER_REQUIRED=1 makes it fail rather than skip if it finds itself elsewhere.
SPOOL_CLUSTER_REQUIRED=1 unshare -n -- bash -c \
    'ip link set lo up && "$0/bin/python" -m pytest tests/compat/python/cluster -q -p no:cacheprovider' "$venv"

step "node client suite: install"
npm ci --prefix tests/compat/node --no-audit --no-fund --loglevel=error
step "node client suite: run"
(cd tests/compat/node && node --test)

step "all suites passed"

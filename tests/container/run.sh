#!/usr/bin/env bash
# The container test: builds spool's image (docker/build.sh), starts the three-node cluster of
# docker/compose.yaml, and checks it with real clients from this machine
# (tests/container/scenario.py, confluent-kafka): produce and consume at once, kill a node
# while producing with acks=all and find every acknowledged record, start it again and see it
# rejoin. A container on the cluster's network then reads the topic by service name.
#
#   tests/container/run.sh
#
# SPOOL_RELEASE_BIN   the spool binary to put in the image (default
#                     ${CARGO_TARGET_DIR:-target}/release/spool)
# SPOOL_VENV          a venv with tests/compat/python/requirements.txt (default
#                     target/compat-venv; made when missing)
# SPOOL_CONTAINER_REQUIRED=1   fail, instead of skipping, when no container engine can be
#                     installed or started
#
# Installs docker.io and docker-compose with apt-get when missing and starts dockerd when no
# daemon answers. Everything it makes is removed at exit (containers, network, volumes, image
# tags), and the daemon is stopped if this script started it. Logs of the nodes are kept in
# target/container-test/. Every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

bin=${SPOOL_RELEASE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/spool}
venv=${SPOOL_VENV:-$root/target/compat-venv}
out="$root/target/container-test"
run_id="spooltest$$"
image="spool-test:$run_id"
base="spool-test-base:$run_id"
project=$run_id
test_start=$SECONDS

say() { printf '[container-test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fail() {
    say "FAILED: $*" >&2
    exit 1
}
skip() {
    if [ "${SPOOL_CONTAINER_REQUIRED:-0}" = 1 ]; then
        fail "no container engine ($*), and SPOOL_CONTAINER_REQUIRED=1"
    fi
    {
        echo
        echo "################################################################################"
        echo "## SKIPPED: the container test did not run: $*"
        echo "## (set SPOOL_CONTAINER_REQUIRED=1 to make this a failure)"
        echo "################################################################################"
        echo
    } >&2
    exit 0
}

mkdir -p "$out"
[ -x "$bin" ] || fail "$bin is not an executable (build it: cargo build --release --bins)"

# --- 1. the engine ----------------------------------------------------------------------------
as_root() { [ "$(id -u)" = 0 ]; }
missing=()
command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 || missing+=(docker.io)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
    missing+=(docker-compose)
fi
if [ ${#missing[@]} -gt 0 ]; then
    as_root || skip "${missing[*]} missing, and not root to install them"
    command -v apt-get >/dev/null 2>&1 || skip "${missing[*]} missing, and no apt-get"
    say "installing ${missing[*]}"
    apt-get install -y "${missing[@]}" || { apt-get update && apt-get install -y "${missing[@]}"; } ||
        skip "apt-get could not install ${missing[*]}"
fi
if command -v docker-compose >/dev/null 2>&1; then
    compose_cmd=(docker-compose)
else
    compose_cmd=(docker compose)
fi

dockerd_pid=""
engine_up() { docker info >/dev/null 2>&1; }
# Polls `$1` (a command) every 0.5 s until it succeeds or `$2` seconds pass.
poll() {
    local probe=$1 seconds=$2 i
    for ((i = 0; i < seconds * 2; i++)); do
        if $probe; then return 0; fi
        sleep 0.5
    done
    $probe
}
if ! engine_up; then
    if [ -e /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        say "a docker daemon is running but not answering yet; waiting for it"
        poll engine_up 60 || skip "the running docker daemon does not answer (docker info)"
    else
        as_root || skip "no docker daemon answers, and not root to start one"
        say "starting dockerd (log: $out/dockerd.log)"
        dockerd >"$out/dockerd.log" 2>&1 &
        dockerd_pid=$!
        daemon_alive_and_up() { kill -0 "$dockerd_pid" 2>/dev/null || return 2; engine_up; }
        if ! poll daemon_alive_and_up 60; then
            tail -n 20 "$out/dockerd.log" >&2 || true
            kill "$dockerd_pid" 2>/dev/null || true
            dockerd_pid=""
            skip "dockerd did not start (see $out/dockerd.log)"
        fi
    fi
fi
say "engine: $(docker version -f 'docker {{.Server.Version}}' 2>/dev/null), $("${compose_cmd[@]}" version --short 2>/dev/null || echo compose)"

compose() {
    SPOOL_IMAGE=$image "${compose_cmd[@]}" -f "$root/docker/compose.yaml" -p "$project" "$@"
}

cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "${compose_started:-}" ]; then
        compose logs --no-color -t >"$out/$project.log" 2>&1
        if [ "$status" != 0 ]; then
            say "the nodes' last log lines (all of them: $out/$project.log)" >&2
            compose logs --no-color --tail=60 >&2 2>&1
        fi
        timeout 120 "${compose_cmd[@]}" -f "$root/docker/compose.yaml" -p "$project" \
            down --volumes --remove-orphans --timeout 20 >/dev/null 2>&1 ||
            say "compose down failed; remove the project $project by hand" >&2
    fi
    [ -n "${helper_name:-}" ] && docker rm -f "$helper_name" >/dev/null 2>&1
    docker image rm "$image" >/dev/null 2>&1
    docker image rm "$base" >/dev/null 2>&1
    if [ -n "$dockerd_pid" ]; then
        say "stopping the dockerd this test started"
        kill -TERM "$dockerd_pid" 2>/dev/null
        local i
        for ((i = 0; i < 60; i++)); do
            kill -0 "$dockerd_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -0 "$dockerd_pid" 2>/dev/null && kill -KILL "$dockerd_pid" 2>/dev/null
    fi
    say "$([ "$status" = 0 ] && echo passed || echo "failed (exit $status)") in $((SECONDS - test_start)) s"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the clients' venv ------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
    say "making the client venv $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/compat/python/requirements.txt
fi
"$venv/bin/python" -c 'import confluent_kafka' || fail "$venv has no confluent_kafka"

# --- 2. the images ----------------------------------------------------------------------------
t=$SECONDS
bash docker/build.sh "$bin" "$image" "$base"
say "images $base and $image built in $((SECONDS - t)) s"

# Host ports: 29091..29093 when free, else any three free ones.
read -r port1 port2 port3 < <("$venv/bin/python" - <<'EOF'
import socket
def free(ports):
    socks = []
    try:
        for p in ports:
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
try:
    print(*free([29091, 29092, 29093]))
except OSError:
    print(*free([0, 0, 0]))
EOF
)
export SPOOL_PORT_1=$port1 SPOOL_PORT_2=$port2 SPOOL_PORT_3=$port3
bootstrap="127.0.0.1:$port1,127.0.0.1:$port2,127.0.0.1:$port3"

# --- 3. the cluster ---------------------------------------------------------------------------
t=$SECONDS
compose_started=1
compose up -d --no-build >"$out/compose-up.log" 2>&1 || {
    cat "$out/compose-up.log" >&2
    fail "compose up"
}
declare -A cid
for n in 1 2 3; do
    cid[$n]=$(compose ps -q "spool$n")
    [ -n "${cid[$n]}" ] || fail "compose made no container for spool$n"
done

# Waits until every container given is running and healthy, for at most $1 seconds.
wait_healthy() {
    local seconds=$1 i c state all
    shift
    for ((i = 0; i < seconds * 2; i++)); do
        all=1
        for c in "$@"; do
            state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$c")
            case $state in
                "running healthy") ;;
                running*) all=0 ;;
                *) fail "$(docker inspect -f '{{.Name}} is {{.State.Status}} (exit code {{.State.ExitCode}})' "$c")" ;;
            esac
        done
        [ "$all" = 1 ] && return 0
        sleep 0.5
    done
    for c in "$@"; do
        say "$(docker inspect -f '{{.Name}} {{.State.Health.Status}}: {{range .State.Health.Log}}{{.Output}}{{end}}' "$c" | tail -n 3)" >&2
    done
    fail "not every node healthy within $seconds s"
}
wait_healthy 120 "${cid[@]}"
say "three nodes up and healthy in $((SECONDS - t)) s (clients on $bootstrap)"

# --- 4 to 6. the clients ------------------------------------------------------------------------
containers=()
for n in 1 2 3; do containers+=(--container "$n=${cid[$n]}"); done
timeout 900 "$venv/bin/python" tests/container/scenario.py --bootstrap "$bootstrap" \
    "${containers[@]}" || fail "the client scenario (tests/container/scenario.py)"

t=$SECONDS
wait_healthy 120 "${cid[@]}"
say "every node healthy again $((SECONDS - t)) s after the scenario ended"

# A container on the cluster's network reads the topic through the internal listener, by
# service name (what the nodes advertise there).
network=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' "${cid[1]}")
helper_name="$project-reader"
lines=$(timeout 120 docker run --rm --name "$helper_name" --network "$network" \
    --entrypoint /usr/local/bin/spool "$image" consume --bootstrap-server spool2:19092 \
    --topic container-test --from-beginning --max-messages 100 --timeout-ms 30000 2>/dev/null |
    grep -c '^value of ' || true)
[ "$lines" = 100 ] || fail "a container on $network read $lines of 100 records from spool2:19092"
say "a container on $network read 100 records from spool2:19092"

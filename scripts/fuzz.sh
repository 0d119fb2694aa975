#!/usr/bin/env bash
# Fuzzes spool's parsers with libFuzzer (cargo fuzz, on the nightly toolchain): the request
# decoder (every served API and version), the produced-batch validator (every codec), the
# controller RPC decoder, and what reaches a SASL listener before authentication (with the
# JAAS, principal-rule and certificate-subject parsers). Each target starts from its committed
# seeds in fuzz/seeds/<target> (new inputs go to target/fuzz-corpus/<target>, never into the seeds) and runs for SECONDS
# (default 60) under an allocator that aborts on any allocation larger than 64 x the input
# + 16 MiB. A crash, a panic or such an allocation fails the run and leaves the input in
# fuzz/artifacts/<target>/.
#
#   bash scripts/fuzz.sh            # 60 s per target
#   bash scripts/fuzz.sh 3600       # an hour per target, by hand
#   FUZZ_TARGETS=records bash scripts/fuzz.sh 600
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=${FUZZ_TARGETS:-"request records controller_rpc sasl"}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# No sanitizer: the targets run safe code, and the allocation bound is the targets' own; debug
# assertions turn arithmetic overflow into a finding.
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"
for target in $targets; do
    corpus="target/fuzz-corpus/$target"
    mkdir -p "$corpus"
    printf '\n=== fuzz %s for %ss\n' "$target" "$seconds"
    cargo +nightly fuzz run "${flags[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done

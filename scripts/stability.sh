#!/usr/bin/env bash
# Runs the full default matrix N times in a row (default 20) and prints how many runs failed.
# Zero spurious failures are expected: any failure is a bug (in a program, the engine or the
# harness), and its reports are kept for the post-mortem.
#
#   scripts/stability.sh [N] [harness arguments...]
#   scripts/stability.sh 5 --kernel 5.10 --kernel 7.2
#
# Environment: STABILITY_DIR (default target/stability) holds each run's JSON/JUnit reports and
# output. Exit status: 0 when every run passed, 1 otherwise.
set -u
cd "$(dirname "$0")/.."

n=${1:-20}
shift || true
case "$n" in
    '' | *[!0-9]*) echo "usage: $0 [N] [harness arguments...]" >&2; exit 2 ;;
esac
out=${STABILITY_DIR:-target/stability}
mkdir -p "$out"
cargo build -q -p harness || exit 2
bin=target/debug/harness

failures=0
failed_runs=()
start=$(date +%s)
for i in $(seq 1 "$n"); do
    t0=$(date +%s)
    "$bin" --matrix kernels.toml --color never -q \
        --report-json "$out/run-$i.json" --junit "$out/run-$i.xml" "$@" \
        >"$out/run-$i.out" 2>&1
    status=$?
    t1=$(date +%s)
    if [ "$status" -eq 0 ]; then
        echo "run $i/$n: ok ($((t1 - t0)) s)"
    else
        failures=$((failures + 1))
        failed_runs+=("$i")
        echo "run $i/$n: FAILED with exit $status ($((t1 - t0)) s); see $out/run-$i.out"
        grep -E '^test .* FAILED|^---- ' "$out/run-$i.out" | head -20 | sed 's/^/    /'
    fi
    [ "$status" -eq 130 ] && { echo "interrupted"; break; }
done
echo
echo "stability: $failures failures out of $n runs ($(( $(date +%s) - start )) s)"
[ "$failures" -eq 0 ] || { echo "failed runs: ${failed_runs[*]}"; exit 1; }

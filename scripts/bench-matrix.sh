#!/usr/bin/env bash
# Times the default matrix with a warm image cache: whole wall time, and per kernel the time
# from QEMU start to agent hello, to the last result, and to exit (from the JSON report).
#
#   scripts/bench-matrix.sh [RUNS] [-- extra harness arguments]
#
# Each run is a separate process, as a user or CI runs it. Prints every run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shift || true
[ "${1:-}" = "--" ] && shift

cargo build -q -p harness
bin=target/debug/harness
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Warm-up: provisions images, builds objects and the agent, so the timed runs measure the matrix.
"$bin" --matrix kernels.toml -q --color never "$@" >/dev/null 2>&1 || true

for i in $(seq 1 "$runs"); do
  start=$(date +%s.%N)
  "$bin" --matrix kernels.toml -q --color never --report-json "$out/run$i.json" "$@" >"$out/run$i.log" 2>&1 || {
    echo "run $i failed:"; tail -40 "$out/run$i.log"; exit 1; }
  end=$(date +%s.%N)
  echo "$start $end" >"$out/run$i.wall"
done

python3 - "$out" "$runs" <<'PY'
import json, sys, statistics, os
out, runs = sys.argv[1], int(sys.argv[2])
walls, per = [], {}
for i in range(1, runs + 1):
    a, b = map(float, open(os.path.join(out, f"run{i}.wall")).read().split())
    walls.append(b - a)
    report = json.load(open(os.path.join(out, f"run{i}.json")))
    for k in report["kernels"]:
        per.setdefault(k["name"], []).append(k)
    c = report["counts"]
    print(f"run {i}: wall {b - a:.2f} s, {c['passed']} passed, {c['failed']} failed, {c['unsupported']} unsupported")
med = lambda xs: statistics.median(xs) if xs else float('nan')
print(f"\nwhole matrix, wall (process start to exit): median {med(walls):.2f} s, min {min(walls):.2f}, max {max(walls):.2f} over {runs} runs")
print(f"{'kernel':8} {'release':28} {'accel':5} {'hello':>7} {'results':>8} {'exit':>7}   (median seconds from QEMU start)")
for name, ks in per.items():
    s = lambda key: med([k[key] / 1000 for k in ks if k.get(key) is not None])
    print(f"{name:8} {ks[0]['release'] or '-':28} {ks[0]['accel']:5} {s('boot_ms'):7.2f} {s('results_ms'):8.2f} {s('total_ms'):7.2f}")
PY

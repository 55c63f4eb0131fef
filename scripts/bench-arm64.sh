#!/usr/bin/env bash
# What arm64 kernels cost, to decide where they belong (issue 15):
#
#  1. each kernel of the `nightly` group (and 6.12 on x86_64 for comparison) alone, RUNS runs:
#     median seconds from QEMU start to the agent's hello, to the last result, the kernel's own
#     uptime at /init, and CPU seconds (the harness and its QEMU);
#  2. the default matrix, the default plus the nightly group, and the nightly group alone, RUNS
#     runs each, interleaved: whole wall and CPU time, trial counts.
#
#   scripts/bench-arm64.sh [RUNS]   (default 3)
#
# Each run is a separate process with a warm image cache. CPU seconds are the figure to trust
# on a shared machine: wall time moves with the load, CPU time hardly.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build -q -p harness
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 - "$out" "$runs" <<'PY'
import json, os, resource, statistics, subprocess, sys, time
out, runs = sys.argv[1], int(sys.argv[2])
report = os.path.join(out, "report.json")

def run(args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(["target/debug/harness", "--color", "never", "--report-json", report, *args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, proc.returncode, json.load(open(report))

def med(values, scale=1.0):
    values = [v / scale for v in values]
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

kernels = ["6.1-arm64", "6.12-arm64", "7.2-arm64", "6.12"]
alone = {k: [] for k in kernels}
for _ in range(runs):
    for k in kernels:
        _, cpu, _, r = run(["--kernel", k])
        g = r["kernels"][0]
        alone[k].append((g["boot_ms"] or 0, g["results_ms"] or 0, g["kernel_uptime_ms"] or 0, cpu))
print(f"one kernel alone, {runs} runs: median (min-max) seconds")
print("| kernel | QEMU start to hello | to results | kernel uptime at /init | CPU s |")
print("|---|---|---|---|---|")
for k, v in alone.items():
    print(f"| {k} | {med([x[0] for x in v], 1000)} | {med([x[1] for x in v], 1000)} "
          f"| {med([x[2] for x in v], 1000)} | {med([x[3] for x in v])} |")

selections = [
    ("default (4 x86_64)", []),
    ("default + nightly (+3 arm64)", ["--group", "default", "--group", "nightly"]),
    ("nightly alone (3 arm64)", ["--group", "nightly"]),
]
whole = {label: [] for label, _ in selections}
for _ in range(runs):
    for label, args in selections:
        wall, cpu, rc, r = run(args)
        whole[label].append((wall, cpu, rc, r["counts"]))
print(f"\nselections, {runs} runs: median (min-max)")
print("| selection | wall s | CPU s | trials passed / failed | exit |")
print("|---|---|---|---|---|")
for label, v in whole.items():
    c = v[-1][3]
    print(f"| {label} | {med([x[0] for x in v])} | {med([x[1] for x in v])} "
          f"| {c['passed']} / {c['failed']} | {sorted(set(x[2] for x in v))} |")
PY

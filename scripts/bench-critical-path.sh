#!/usr/bin/env bash
# Where one kernel's run spends its time, process start to results, from the snapshot (the
# default) and booted fresh: RUNS runs per mode, medians (and min-max) of
#   host   harness start -> QEMU start (plan, objects, images, predictions, snapshot check)
#   loaded QEMU start -> snapshot state loaded (VM paused)           [snapshot only]
#   ready  QEMU start -> agent has its bundle (snapshot) / hello (fresh)
#   bundle the bundle's read and decode in the guest, once its header is in (us) [snapshot]
#   btf    kernel BTF parsed (us), loads and cases: the agent's own time per phase (ms)
#   results QEMU start -> last result; exit: QEMU gone; after: QEMU gone -> report written
# and the whole wall of the process.
#
#   scripts/bench-critical-path.sh [KERNEL] [RUNS] [-- extra harness arguments]  (6.1, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
kernel=${1:-6.1}
runs=${2:-5}
shift 2 || shift $# || true
[ "${1:-}" = "--" ] && shift
cargo build -q -p harness
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 - "$out" "$kernel" "$runs" "$@" <<'PY'
import json, os, re, statistics, subprocess, sys, time
out, kernel, runs, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
binary = "target/debug/harness"

def one(mode):
    report = os.path.join(out, "r.json")
    start = time.monotonic()
    p = subprocess.run([binary, "--matrix", "kernels.toml", "--kernel", kernel, "-q", "--color", "never",
                        *mode, "--report-json", report, *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wall = (time.monotonic() - start) * 1000
    if p.returncode != 0:
        sys.exit(p.stdout.decode(errors="replace")[-3000:])
    r = json.load(open(report))
    run = r["replay"]["runs"][0]
    t, logs = run["timings"], "\n".join(run["logs"])
    num = lambda pattern: next((float(m.group(1)) for m in [re.search(pattern, logs)] if m), None)
    host = t.get("started_after_ms")
    return {
        "host": host,
        "loaded": num(r"state loaded (\d+) ms after QEMU start"),
        "ready": t.get("ready_ms") or t.get("hello_ms"),
        "hello": t.get("hello_ms"),
        "bundle_us": num(r"read and decoded in (\d+) us"),
        "btf_us": num(r"parsed in (\d+) us"),
        "loads": num(r"objects loaded in (\d+) ms"),
        "cases": num(r"cases run in (\d+) ms"),
        "results": t.get("results_ms"),
        "exit": t.get("exit_ms"),
        "after": r["wall_ms"] - host - t["exit_ms"] if host is not None else None,
        "wall": wall,
    }

for label, mode in [("snapshot", []), ("fresh", ["--fresh-boot"])]:
    one(mode)  # warm: the snapshot exists, objects are built
    rows = [one(mode) for _ in range(runs)]
    print(f"== {kernel}, {label}, {runs} runs: median (min-max), ms unless marked ==")
    for key in rows[0]:
        xs = [row[key] for row in rows if row[key] is not None]
        if xs:
            print(f"  {key:10} {statistics.median(xs):8.0f}   ({min(xs):.0f}-{max(xs):.0f})")
PY

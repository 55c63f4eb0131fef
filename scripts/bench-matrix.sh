#!/usr/bin/env bash
# Times the matrix with a warm image cache, guests restored from ready snapshots (the default)
# and booted fresh (`--fresh-boot`), so the two and their growth with matrix size compare:
#
#  1. the default matrix, RUNS runs per mode: whole wall and CPU time (the harness and every
#     QEMU it ran), and per kernel the median seconds from QEMU start to the snapshot's state
#     loaded (snapshot only), to the agent's ready point (snapshot: the restored agent's Ready
#     after its bundle arrived; fresh: its hello), to hello, to the last result, and to exit
#     (from the JSON report);
#  2. matrices of 1, 2, 4 and 8 guests (the matrix's Debian kernels repeated, each copy pinned
#     to the same packages, so the same images and snapshots), SCALE_RUNS runs per size and
#     mode: whole wall and CPU time.
#
#   scripts/bench-matrix.sh [RUNS] [SCALE_RUNS] [-- extra harness arguments]   (default 5, 2)
#
# Each run is a separate process, as a user or CI runs it. Warm-up runs build the snapshots.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
scale_runs=${2:-2}
shift 2 || shift $# || true
[ "${1:-}" = "--" ] && shift

cargo build -q -p harness
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 - "$out" "$runs" "$scale_runs" "$@" <<'PY'
import json, os, resource, statistics, subprocess, sys, time
out, runs, scale_runs, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
bin = "target/debug/harness"
# The default restores from snapshots; `--snapshot` names it (a no-op kept for compatibility).
modes = ["--snapshot", "--fresh-boot"]
import re

def run(matrix, mode, report, env=None):
    """One harness process: (wall s, CPU s of it and its children, the JSON report)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run([bin, "--matrix", matrix, "-q", "--color", "never", mode,
                           "--report-json", report, *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.exit(f"{matrix} {mode} failed:\n" + proc.stdout.decode(errors="replace")[-4000:])
    return wall, cpu, json.load(open(report))

med = lambda xs: statistics.median(xs) if xs else float("nan")

print(f"== default matrix, {runs} runs per mode (warm cache) ==")
for mode in modes:
    run("kernels.toml", mode, os.path.join(out, "warm.json"))  # builds snapshots, objects
    walls, cpus, per = [], [], {}
    for i in range(runs):
        wall, cpu, report = run("kernels.toml", mode, os.path.join(out, f"r{i}.json"))
        walls.append(wall); cpus.append(cpu)
        for r in report["replay"]["runs"]:
            t = r["timings"]
            ready = t.get("ready_ms") if mode == "--snapshot" else t.get("hello_ms")
            loaded = next((int(m.group(1)) for l in r["logs"]
                           for m in [re.search(r"state loaded (\d+) ms after QEMU start", l)] if m), None)
            per.setdefault(r["kernel"], []).append((loaded, ready, t.get("hello_ms"), t.get("results_ms"), t.get("exit_ms")))
        c = report["counts"]
        print(f"{mode:13} run {i + 1}: wall {wall:5.2f} s, CPU {cpu:5.2f} s, {c['passed']} passed, {c['failed']} failed")
    print(f"{mode:13} whole matrix: wall median {med(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f}), "
          f"CPU median {med(cpus):.2f} s")
    print(f"{'':13} {'kernel':7} {'loaded':>6} {'ready':>6} {'hello':>6} {'results':>8} {'exit':>6}   (median s from QEMU start)")
    for name, rows in per.items():
        col = lambda j: med([row[j] / 1000 for row in rows if row[j] is not None])
        span = lambda j: (min(row[j] for row in rows if row[j] is not None) / 1000,
                          max(row[j] for row in rows if row[j] is not None) / 1000)
        print(f"{'':13} {name:7} {col(0):6.2f} {col(1):6.2f} {col(2):6.2f} {col(3):8.2f} {col(4):6.2f}"
              f"   (results {span(3)[0]:.2f}-{span(3)[1]:.2f})")

# Scaling: the matrix's Debian kernels repeated to N guests, each copy pinned to the same
# packages (so the same cached image and the same snapshot as the original).
import tomllib
matrix_toml = tomllib.load(open("kernels.toml", "rb"))
lock_toml = tomllib.load(open("kernels.lock", "rb"))
# The default group's kernels (the arm64 ones are another architecture and group).
base = [k for k in matrix_toml["kernel"]
        if "debian" in k and k.get("enabled", True) and k.get("group", "default") == "default"]
memory = matrix_toml.get("defaults", {}).get("memory_mib", 1024)
locked = {k["name"]: k for k in lock_toml["kernel"]}
q = lambda v: json.dumps(v)  # TOML basic strings and arrays of them read like JSON
images = os.path.abspath("images")
print(f"\n== 1, 2, 4, 8 guests ({len(base)} kernels repeated), {scale_runs} runs per size and mode ==")
print(f"{'guests':>6} {'mode':13} {'wall':>6} {'CPU':>6}   (median s; per guest: wall/N, CPU/N)")
for n in (1, 2, 4, 8):
    matrix = os.path.join(out, f"matrix{n}.toml")
    with open(matrix, "w") as m, open(os.path.join(out, f"matrix{n}.lock"), "w") as l:
        m.write(f"[defaults]\nmemory_mib = {memory}\nboot_timeout_s = 60\ntest_timeout_s = 30\nguest_timeout_s = 180\n")
        l.write("version = 1\n")
        for i in range(n):
            k = base[i % len(base)]
            name = f"g{i + 1}-{k['name']}"
            d = k["debian"]
            m.write(f"\n[[kernel]]\nname = {q(name)}\ndebian = {{ suite = {q(d['suite'])}, packages = {q(d['packages'])} }}\n")
            lk = locked[k["name"]]
            l.write(f"\n[[kernel]]\nname = {q(name)}\nsuite = {q(lk['suite'])}\narch = {q(lk['arch'])}\n")
            for p in lk["package"]:
                l.write("\n[[kernel.package]]\n")
                for key, value in p.items():
                    l.write(f"{key} = {q(value)}\n")
    for mode in modes:
        # The matrix lives in a temporary directory: programs and images are the repository's.
        args = ["--programs", "programs", "--images", images]
        saved = list(extra)
        extra[:] = args + saved
        run(matrix, mode, os.path.join(out, "warm.json"))
        samples = [run(matrix, mode, os.path.join(out, f"s{i}.json"))[:2] for i in range(scale_runs)]
        extra[:] = saved
        wall, cpu = med([s[0] for s in samples]), med([s[1] for s in samples])
        print(f"{n:6} {mode:13} {wall:6.2f} {cpu:6.2f}   ({wall / n:.2f}, {cpu / n:.2f})")
PY

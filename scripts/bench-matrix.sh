#!/usr/bin/env bash
# Times the matrix with a warm image cache, guests restored from ready snapshots (`--snapshot`)
# and booted fresh (`--fresh-boot`), so the two and their growth with matrix size compare:
#
#  1. the default matrix, RUNS runs per mode: whole wall and CPU time (the harness and every
#     QEMU it ran), and per kernel the median seconds from QEMU start to the agent's ready point
#     (snapshot: the restored agent's Ready after its bundle arrived; fresh: its hello), to
#     hello, to the last result, and to exit (from the JSON report);
#  2. matrices of 1, 2, 4 and 8 guests (the four kernels as local `vmlinux` entries, repeated),
#     SCALE_RUNS runs per size and mode: whole wall and CPU time. These use a private image
#     cache (target/bench-matrix-images) so that their snapshots stay out of the shared one.
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
modes = ["--snapshot", "--fresh-boot"]

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
            per.setdefault(r["kernel"], []).append((ready, t.get("hello_ms"), t.get("results_ms"), t.get("exit_ms")))
        c = report["counts"]
        print(f"{mode:13} run {i + 1}: wall {wall:5.2f} s, CPU {cpu:5.2f} s, {c['passed']} passed, {c['failed']} failed")
    print(f"{mode:13} whole matrix: wall median {med(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f}), "
          f"CPU median {med(cpus):.2f} s")
    print(f"{'':13} {'kernel':7} {'ready':>6} {'hello':>6} {'results':>8} {'exit':>6}   (median s from QEMU start)")
    for name, rows in per.items():
        col = lambda j: med([row[j] / 1000 for row in rows if row[j] is not None])
        print(f"{'':13} {name:7} {col(0):6.2f} {col(1):6.2f} {col(2):8.2f} {col(3):6.2f}")

# Scaling: local vmlinux entries over the cached Debian images, repeated to N guests.
images = "images/kernels"
found = []
for key in sorted(os.listdir(images)):
    d = os.path.join(images, key)
    if all(os.path.isfile(os.path.join(d, f)) for f in ("vmlinux", "vmlinux.btf", "config", "release")):
        found.append((open(os.path.join(d, "release")).read().strip(), os.path.abspath(d)))
found.sort()
if not found:
    sys.exit("no cached kernel images: run the default matrix once first")
private = os.path.abspath("target/bench-matrix-images")
os.makedirs(private, exist_ok=True)
env = dict(os.environ, HARNESS_IMAGES=private)
print(f"\n== 1, 2, 4, 8 guests ({len(found)} kernels repeated), {scale_runs} runs per size and mode ==")
print(f"{'guests':>6} {'mode':13} {'wall':>6} {'CPU':>6}   (median s; per guest: wall/N, CPU/N)")
for n in (1, 2, 4, 8):
    matrix = os.path.join(out, f"matrix{n}.toml")
    with open(matrix, "w") as f:
        f.write("[defaults]\nmemory_mib = 256\nboot_timeout_s = 60\ntest_timeout_s = 30\nguest_timeout_s = 180\n")
        for i in range(n):
            release, d = found[i % len(found)]
            f.write(f'\n[[kernel]]\nname = "g{i + 1}-{release.split("-")[0]}"\n'
                    f'vmlinux = "{d}/vmlinux"\nbtf = "{d}/vmlinux.btf"\nconfig = "{d}/config"\n')
    for mode in modes:
        # The matrix file lives in a temporary directory: the programs are the repository's.
        base = ["--programs", "programs"]
        extra_saved = list(extra)
        extra[:] = base + extra_saved
        run(matrix, mode, os.path.join(out, "warm.json"), env)
        samples = [run(matrix, mode, os.path.join(out, f"s{i}.json"), env)[:2] for i in range(scale_runs)]
        extra[:] = extra_saved
        wall, cpu = med([s[0] for s in samples]), med([s[1] for s in samples])
        print(f"{n:6} {mode:13} {wall:6.2f} {cpu:6.2f}   ({wall / n:.2f}, {cpu / n:.2f})")
PY

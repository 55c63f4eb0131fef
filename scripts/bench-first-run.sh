#!/usr/bin/env bash
# The first run after the kernels are cached but before any ready snapshot exists (a new agent,
# QEMU or kernel; or `harness fetch` without `--snapshot`): the default run then boots each
# kernel to its ready point, saves it and restores it. Compared, in the same conditions, with a
# fresh-boot run and with the next (warm) default run, so the cost of making the snapshots is
# visible. Each round gets a private image cache holding links to the cached kernels (no
# snapshots), so nothing shared is touched.
#
#   scripts/bench-first-run.sh [ROUNDS] [-- extra harness arguments]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
shift 1 || true
[ "${1:-}" = "--" ] && shift
cargo build -q -p harness
bin=target/debug/harness
"$bin" --matrix kernels.toml --list >/dev/null   # objects built, not part of the figure
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A cache of links to the shared kernels' files, without their ready/ directories.
private_cache() {
  local dir=$1
  mkdir -p "$dir/kernels"
  ln -s "$PWD/images/debs" "$dir/debs"
  for k in images/kernels/*/; do
    local mine="$dir/kernels/$(basename "$k")"
    mkdir -p "$mine"
    for f in "$k"*; do [ -f "$f" ] && ln -s "$PWD/$f" "$mine/"; done
  done
}

timed() {  # label, cache, args...: prints wall and CPU seconds (harness + QEMU children)
  local label=$1 cache=$2; shift 2
  python3 - "$label" "$bin" "$cache" "$@" <<'PY'
import resource, subprocess, sys, time
label, binary, cache, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.monotonic()
p = subprocess.run([binary, "--matrix", "kernels.toml", "-q", "--color", "never", "--images", cache, *args],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
wall = time.monotonic() - start
after = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
out = p.stdout.decode(errors="replace")
if p.returncode != 0:
    sys.exit(f"{label} failed:\n{out[-3000:]}")
built = out.count("ready snapshot saved")
print(f"{label:34} wall {wall:5.2f} s  CPU {cpu:5.2f} s  snapshots built: {built}")
PY
}

for r in $(seq 1 "$rounds"); do
  echo "== round $r =="
  private_cache "$tmp/fresh$r"
  timed "fresh boot (--fresh-boot)" "$tmp/fresh$r" --fresh-boot "$@"
  private_cache "$tmp/snap$r"
  timed "first default run (makes snapshots)" "$tmp/snap$r" "$@"
  timed "next default run (restores them)" "$tmp/snap$r" "$@"
done

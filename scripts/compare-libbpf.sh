#!/bin/sh
# The harness against libbpf, program by program, on one kernel and one directory of objects:
# loaded by both, refused by both, and every disagreement named.
#
#   scripts/compare-libbpf.sh KERNEL OBJ_DIR [LIBBPF_TSV]
#
# KERNEL is a matrix kernel (5.10, 6.1, 6.12, 7.2) or `host`. The harness runs OBJ_DIR load-only
# on it (every *.bpf.o / BPF *.o, fixtures ignored) with a matrix whose guest may take an hour
# (and be silent 5 minutes in one verification: this is a measurement, not a gate);
# libbpf's verdict comes from scripts/libbpf-reference.sh in the same kernel, or from LIBBPF_TSV
# if given (its output, saved). Exit 1 when they disagree on any program.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 KERNEL OBJ_DIR [LIBBPF_TSV]" >&2; exit 2; }
KERNEL="$1"
DIR="$(cd "$2" && pwd -P)"
ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$ROOT"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Only the objects, no fixtures: load-only, the way a user hands in a build directory.
mkdir "$tmp/objects"
for o in "$DIR"/*.o; do ln -s "$o" "$tmp/objects/$(basename "$o")"; done
sed -e 's/^guest_timeout_s = .*/guest_timeout_s = 3600/' -e 's/^test_timeout_s = .*/test_timeout_s = 300/' -e 's/^memory_mib = .*/memory_mib = 1024/' \
    kernels.toml >"$tmp/kernels.toml"
cp kernels.lock "$tmp/kernels.lock"
# HARNESS_BIN: a harness binary to use (a test passes its own: a cargo build here would wait on
# the lock of the cargo that runs the test).
bin="${HARNESS_BIN:-}"
if [ -z "$bin" ]; then
    cargo build -q --release -p harness
    bin="$ROOT/target/release/harness"
fi
start=$(date +%s)
HARNESS_IMAGES="${HARNESS_IMAGES:-$ROOT/images}" "$bin" --matrix "$tmp/kernels.toml" \
    --kernel "$KERNEL" --programs "$tmp/objects" -q --color never \
    --report-json "$tmp/harness.json" >"$tmp/harness.log" 2>&1 || true
echo "harness: $(( $(date +%s) - start )) s"
[ -f "$tmp/harness.json" ] || { cat "$tmp/harness.log" >&2; exit 2; }

if [ $# -ge 3 ]; then
    cp "$3" "$tmp/libbpf.tsv"
else
    start=$(date +%s)
    if [ "$KERNEL" = host ]; then
        scripts/libbpf-reference.sh "$DIR" >"$tmp/libbpf.tsv"
    else
        scripts/libbpf-reference.sh --kernel "$KERNEL" "$DIR" >"$tmp/libbpf.tsv"
    fi
    echo "libbpf:  $(( $(date +%s) - start )) s"
fi

python3 - "$tmp/harness.json" "$tmp/libbpf.tsv" "$KERNEL" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
kernel = sys.argv[3]
ours = {}
for k in report["kernels"]:
    if k["name"] != kernel:
        continue
    for o in k["objects"]:
        for p in o["programs"]:
            detail = p["outcome"].get("error") or p["outcome"].get("reason") or ""
            ours[(o["object"], p["program"])] = (p["outcome"]["status"], detail.splitlines()[0] if detail else "")
    for line in k["logs"]:
        pass
libbpf = {}
for line in open(sys.argv[2]):
    if line.startswith("#") or "\t" not in line:
        continue
    cols = line.rstrip("\n").split("\t")
    if len(cols) < 4 or cols[3] not in ("loaded", "refused"):
        continue
    obj = cols[0]
    for suffix in (".bpf.o", ".o"):
        if obj.endswith(suffix):
            obj = obj[: -len(suffix)]
            break
    libbpf[(obj, cols[1])] = (cols[3], cols[4] if len(cols) > 4 else "")
both_loaded = both_refused = 0
disagree = []
for key in sorted(set(ours) | set(libbpf)):
    mine = ours.get(key, ("not reported", "the harness reported no such program (the object was refused whole)"))
    theirs = libbpf.get(key, ("not reported", "libbpf reported no such program"))
    loaded_mine = mine[0] == "loaded"
    loaded_theirs = theirs[0] == "loaded"
    if loaded_mine and loaded_theirs:
        both_loaded += 1
    elif not loaded_mine and not loaded_theirs:
        both_refused += 1
    else:
        disagree.append((key, mine, theirs))
print(f"kernel {kernel}: {len(set(ours) | set(libbpf))} programs; loaded by both {both_loaded}, "
      f"refused by both {both_refused}, disagreements {len(disagree)}")
for (obj, prog), mine, theirs in disagree:
    print(f"  {obj}:{prog}: harness {mine[0]} ({mine[1][:140]}); libbpf {theirs[0]} ({theirs[1][:140]})")
sys.exit(1 if disagree else 0)
PY

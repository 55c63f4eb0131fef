#!/bin/sh
# A matrix split into N partitions and merged, against one run of the whole matrix.
#
#   scripts/bench-partitions.sh [N] [-- HARNESS ARGS...]     (default N = 2)
#
# Runs the default matrix once whole, then each `--partition K/N` in turn (as N CI jobs would,
# here one after the other), then `harness merge`; prints each wall time and whether the merged
# report has the same trials with the same outcomes as the single run. Exit 1 if not.
set -eu
N="${1:-2}"
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
ROOT="$(cd "$(dirname "$0")/.." && pwd -P)"
cd "$ROOT"
cargo build -q --release -p harness
bin="$ROOT/target/release/harness"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

now() { date +%s.%N; }
elapsed() { echo "$1 $2" | awk '{printf "%.2f", $2 - $1}'; }

t0=$(now)
"$bin" --matrix kernels.toml -q --color never --report-json "$tmp/single.json" "$@" >"$tmp/single.log" 2>&1 || true
echo "single run:        $(elapsed "$t0" "$(now)") s"
k=1
reports=""
while [ "$k" -le "$N" ]; do
    t0=$(now)
    "$bin" --matrix kernels.toml -q --color never --partition "$k/$N" \
        --report-json "$tmp/part$k.json" "$@" >"$tmp/part$k.log" 2>&1 || true
    echo "partition $k/$N:    $(elapsed "$t0" "$(now)") s  ($(grep -o 'partition [0-9/]*: kernels .*' "$tmp/part$k.log" | head -1))"
    reports="$reports $tmp/part$k.json"
    k=$((k + 1))
done
t0=$(now)
# shellcheck disable=SC2086
"$bin" merge $reports --report-json "$tmp/merged.json" >"$tmp/merge.log" 2>&1 || true
echo "merge:             $(elapsed "$t0" "$(now)") s"
python3 - "$tmp/single.json" "$tmp/merged.json" <<'PY'
import json, sys
def trials(path):
    report = json.load(open(path))
    return {t["name"]: t["outcome"]["status"] for t in report["trials"]}, report["counts"]
single, single_counts = trials(sys.argv[1])
merged, merged_counts = trials(sys.argv[2])
diff = sorted(n for n in set(single) | set(merged) if single.get(n) != merged.get(n))
print(f"single: {len(single)} trials {single_counts}")
print(f"merged: {len(merged)} trials {merged_counts}")
if diff:
    print(f"DIFFERENT: {len(diff)} trials, e.g. " + ", ".join(f"{n} ({single.get(n)} vs {merged.get(n)})" for n in diff[:5]))
    sys.exit(1)
print("merged report equals the single run: same trials, same outcomes")
PY

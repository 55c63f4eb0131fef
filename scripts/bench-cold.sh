#!/usr/bin/env bash
# A cold run: an empty image cache, so every kernel is resolved from kernels.lock, downloaded,
# verified, unpacked and decompressed before the matrix boots. Prints wall time and bytes
# downloaded. The objects and the agent are built first so they are not part of the figure.
#
#   scripts/bench-cold.sh [extra harness arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p harness
bin=target/debug/harness
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
# Build objects and agent (warm) without touching the empty cache: list mode boots nothing.
"$bin" --matrix kernels.toml --list >/dev/null
start=$(date +%s.%N)
HARNESS_IMAGES="$cache" "$bin" --matrix kernels.toml -q --color never "$@" >"$cache/run.log" 2>&1 || {
  tail -40 "$cache/run.log"; exit 1; }
end=$(date +%s.%N)
bytes=$(du -sb "$cache/debs" | cut -f1)
python3 -c "import sys; print(f'cold run: wall {float(sys.argv[2]) - float(sys.argv[1]):.1f} s, downloaded {int(sys.argv[3]) / 1e6:.1f} MB into an empty cache')" "$start" "$end" "$bytes"
tail -12 "$cache/run.log"

#!/usr/bin/env bash
# Times `harness vmlinux-h` (release build) on a BTF file: the whole command (read, parse, render,
# write) and the renderer alone (as the command reports it), median of N runs; bpftool's
# `btf dump file BTF format c` alongside when bpftool is installed (not needed by the harness).
#
#   scripts/bench-vmlinux-h.sh [N] [BTF]      (default: 11 runs, /sys/kernel/btf/vmlinux)
set -euo pipefail
iters=${1:-11}
btf=${2:-/sys/kernel/btf/vmlinux}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$root"
cargo build -q --release -p harness
harness="$root/target/release/harness"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
now_ms() { date +%s%N | awk '{ printf "%.1f", $1 / 1e6 }'; }

: >"$out/wall" >"$out/render"
for _ in $(seq "$iters"); do
    start=$(now_ms)
    "$harness" vmlinux-h --btf "$btf" -o "$out/vmlinux.h" 2>"$out/log"
    end=$(now_ms)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", e - s }' >>"$out/wall"
    sed -n 's/.*rendered in \([0-9]*\) ms.*/\1/p' "$out/log" >>"$out/render"
done
size=$(stat -c %s "$btf")
echo "BTF: $btf ($size bytes); header: $(stat -c %s "$out/vmlinux.h") bytes, $(wc -l <"$out/vmlinux.h") lines"
echo "harness vmlinux-h, whole command: median $(median <"$out/wall") ms of $iters runs"
echo "harness vmlinux-h, render only:   median $(median <"$out/render") ms"
if command -v bpftool >/dev/null; then
    : >"$out/bpftool"
    for _ in $(seq "$iters"); do
        start=$(now_ms)
        bpftool btf dump file "$btf" format c >"$out/bpftool.h"
        end=$(now_ms)
        awk -v s="$start" -v e="$end" 'BEGIN { printf "%.1f\n", e - s }' >>"$out/bpftool"
    done
    echo "bpftool btf dump format c:        median $(median <"$out/bpftool") ms ($(bpftool version | head -1))"
fi

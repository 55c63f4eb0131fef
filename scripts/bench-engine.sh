#!/usr/bin/env bash
# Benchmarks the CO-RE engine (harness/core-reloc) against libbpf in the same run:
# parse + index the host's kernel BTF and look up one struct, then relocate the
# whole program corpus (programs/*.bpf.c) against it. Median of N runs and peak
# RSS for each, each engine in its own child process.
#
#   scripts/bench-engine.sh [N] [BTF]      (default: 21 runs, /sys/kernel/btf/vmlinux)
#
# libbpf's corpus step is bpf_object__open_file(btf_custom_path) + bpf_object__prepare,
# which also creates maps and loads BTF: it needs root and is reported as "-" otherwise.
set -euo pipefail
iters=${1:-21}
btf=${2:-/sys/kernel/btf/vmlinux}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for src in "$root"/programs/*.bpf.c; do
    clang-19 -g -O2 -target bpf -mcpu=v2 -D__TARGET_ARCH_x86 -fno-ident \
        -I "$root/programs/include" -c "$src" -o "$out/$(basename "$src" .c).o"
done
cd "$root"
# The comparison links libbpf (libbpf-sys), so it lives in the differential crate's workspace.
cargo build -q --release --manifest-path harness/core-reloc/differential/Cargo.toml \
  --target-dir "$root/target/libbpf-differential" --example bench_engine
"$root/target/libbpf-differential/release/examples/bench_engine" --iters "$iters" --btf "$btf" "$out"/*.o
echo "phases of our parse (read, parse_owned, index, lookup):"
cargo run -q --release -p core-reloc --example btf_phases -- "$btf" | tail -1

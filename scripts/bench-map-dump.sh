#!/usr/bin/env bash
# The largest map dump one case can carry back within the default timeouts: a test-only object
# whose XDP program inserts one 64-byte entry (u32 key, 60-byte value) into a hash map per
# BPF_PROG_TEST_RUN repetition, run with `repeat = N`, so the case's whole-state dump holds N
# entries (plus the one-entry .bss counter). For each N it prints the entries and bytes dumped,
# the time from agent hello to the last result (the run, the dump and its transfer over the
# serial channel), and whether the case passed or hit the dump bound.
#
#   scripts/bench-map-dump.sh [KERNEL] [ENTRIES...]     (default: 5.10; 1000 4000 16000 16383 16384)
set -euo pipefail
cd "$(dirname "$0")/.."
kernel=${1:-5.10}
shift || true
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(1000 4000 16000 16383 16384)

cargo build -q -p harness
bin=target/debug/harness
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/programs/include"
cat >"$work/programs/include/bench_types.h" <<'H'
typedef signed char __s8;
typedef unsigned char __u8;
typedef signed short __s16;
typedef unsigned short __u16;
typedef signed int __s32;
typedef unsigned int __u32;
typedef signed long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u16 __sum16;
typedef __u32 __wsum;
#define BPF_MAP_TYPE_HASH 1
#define XDP_PASS 2
struct xdp_md { __u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
H
cat >"$work/programs/map_dump.bpf.c" <<'C'
#include "bench_types.h"
#include <bpf/bpf_helpers.h>

struct entry { __u32 words[15]; };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct entry);
} big SEC(".maps");

__u32 next_key;

SEC("xdp")
int fill(struct xdp_md *ctx)
{
	struct entry e = {};
	__u32 key = next_key++;	/* one test run at a time: no race */

	e.words[0] = key;
	e.words[14] = ~key;
	bpf_map_update_elem(&big, &key, &e, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
C

printf "%-8s %8s %10s %10s  %s\n" kernel entries bytes seconds outcome
for n in "${sizes[@]}"; do
  cat >"$work/programs/map_dump.fixtures.toml" <<T
object = "map_dump"
[[case]]
name = "fill"
program = "fill"
packet = [ {eth = {}}, {ipv4 = {}}, {udp = {sport = 1, dport = 2}} ]
repeat = $n
[case.expect]
retval = "XDP_PASS"
T
  "$bin" --matrix kernels.toml --kernel "$kernel" --programs "$work/programs" -q --color never \
    --work-dir "$work/harness" --report-json "$work/report.json" "$kernel::map_dump::fill" \
    >"$work/log" 2>&1 || true
  [ -f "$work/report.json" ] || { echo "no report for $n entries:"; tail -20 "$work/log"; exit 1; }
  python3 - "$work/report.json" "$kernel" "$n" <<'PY'
import json, sys
report, kernel, n = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
k = next(k for k in report["kernels"] if k["name"] == kernel)
trial = next(t for t in report["trials"] if t["name"] == f"{kernel}::map_dump::fill")
result = trial.get("result") or {}
maps = result.get("maps", [])
entries = sum(len(m["entries"]) for m in maps)
# hex in the report: two characters per byte
size = sum((len(e["key"]) + len(e["value"])) // 2 for m in maps for e in m["entries"])
seconds = ((k["results_ms"] or 0) - (k["boot_ms"] or 0)) / 1000
status = trial["outcome"]["status"]
detail = (trial["outcome"].get("detail") or "").splitlines()
why = f" ({detail[0][:110]})" if status != "passed" and detail else ""
print(f"{kernel:<8} {entries:>8} {size:>10} {seconds:>10.2f}  {status} [{k['outcome']}]{why}")
PY
done

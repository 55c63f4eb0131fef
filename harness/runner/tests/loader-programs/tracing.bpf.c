// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tracing: one program of each tracing kind libbpf loads, all bumping a counter: fentry and
 * fexit (attach_btf_id of the FUNC bpf_fentry_test1, the kernel's own test target), tp_btf (the btf_trace_sched_switch typedef),
 * lsm (bpf_lsm_file_open), iter (bpf_iter_task), kprobe/kretprobe (kern_version set from the
 * running kernel), a tracepoint, a raw tracepoint, a perf_event program; and an XDP program
 * so the object has a case to run. Only loading is checked for the tracing programs.
 */
#include "loader_types.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static int bump(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&hits, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

SEC("fentry/bpf_fentry_test1")
int on_test1_entry(__u64 *ctx) { return bump(0); }

SEC("fexit/bpf_fentry_test1")
int on_test1_exit(__u64 *ctx) { return bump(1); }

SEC("tp_btf/sched_switch")
int on_switch_btf(__u64 *ctx) { return bump(2); }

SEC("lsm/file_open")
int on_file_open(__u64 *ctx) { bump(3); return 0; }

SEC("iter/task")
int each_task(void *ctx) { return bump(4); }

SEC("kprobe/do_unlinkat")
int on_unlink_kprobe(void *ctx) { return bump(5); }

SEC("kretprobe/do_unlinkat")
int on_unlink_kretprobe(void *ctx) { return bump(6); }

SEC("tracepoint/syscalls/sys_enter_openat")
int on_openat(void *ctx) { return bump(7); }

SEC("raw_tp/sched_switch")
int on_switch_raw(void *ctx) { return bump(8); }

SEC("perf_event")
int on_perf_event(void *ctx) { return bump(9); }

SEC("xdp")
int xdp_ok(struct xdp_md *ctx)
{
	bump(10);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

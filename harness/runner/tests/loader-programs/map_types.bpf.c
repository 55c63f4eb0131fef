// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * map_types: every map kind libbpf creates for such programs: ring buffer, perf event array
 * (max_entries 0: one per possible CPU), stack trace, per-CPU and LRU variants, an array of maps
 * and a hash of maps built from their inner definitions with `.values`, a prog_array whose
 * `.values` names a program (filled after loading: the tail call below proves it), sockmap and
 * sockhash. xdp_main counts in the inner map, emits a ring-buffer record and tail-calls into
 * xdp_target, which returns XDP_TX; a failed tail call would return XDP_DROP.
 */
#include "loader_types.h"
#include <bpf/bpf_helpers.h>

struct inner_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
};
struct inner_array inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_array);
} outer_array SEC(".maps") = { .values = { [0] = &inner_a, [1] = &inner_b } };

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner_array);
} outer_hash SEC(".maps") = { .values = { [1] = &inner_b } };

int xdp_target(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));
	__array(values, int(void *));
} jumps SEC(".maps") = { .values = { [0] = (void *)&xdp_target } };

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} per_cpu_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} per_cpu_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} lru_per_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} sock_hash SEC(".maps");

SEC("xdp")
int xdp_target(struct xdp_md *ctx)
{
	return XDP_TX;
}

SEC("xdp")
int xdp_main(struct xdp_md *ctx)
{
	__u32 zero = 0, one = 1;
	__u64 init = 1, *v;
	void *inner;

	inner = bpf_map_lookup_elem(&outer_array, &zero);
	if (!inner)
		return XDP_DROP;
	v = bpf_map_lookup_elem(inner, &zero);
	if (v)
		__sync_fetch_and_add(v, 1);
	inner = bpf_map_lookup_elem(&outer_hash, &one);
	if (!inner)
		return XDP_DROP;
	v = bpf_map_lookup_elem(inner, &one);
	if (v)
		__sync_fetch_and_add(v, 1);
	v = bpf_map_lookup_elem(&per_cpu_array, &zero);
	if (v)
		*v += 1;
	bpf_map_update_elem(&per_cpu_hash, &zero, &init, 0);
	bpf_map_update_elem(&lru, &zero, &init, 0);
	bpf_map_update_elem(&lru_per_cpu, &zero, &init, 0);
	bpf_ringbuf_output(&events, &init, sizeof(init), 0);
	bpf_tail_call(ctx, &jumps, 0);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

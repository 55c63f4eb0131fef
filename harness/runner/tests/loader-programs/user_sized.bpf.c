// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * user_sized: maps whose sizes the object leaves to its user space (bcc's libbpf-tools size their
 * stack maps this way) and a program that user space never loads. Without the fixture's
 * [maps.*] settings the kernel refuses the maps (max_entries 0, value_size 0); without its
 * [programs.*] setting the verifier refuses `never_loaded`.
 */
#include "loader_types.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
} sized_by_user SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(key_size, sizeof(__u32));
	__uint(max_entries, 16);
} value_sized_by_user SEC(".maps");

SEC("xdp")
int xdp_user_sized(struct xdp_md *ctx)
{
	__u32 last = 7;
	__u64 *slot = bpf_map_lookup_elem(&sized_by_user, &last);

	if (!slot)
		return XDP_DROP;
	*slot += 1;
	return XDP_PASS;
}

SEC("xdp")
int never_loaded(struct xdp_md *ctx)
{
	/* Reads past the context: the verifier refuses this program if it is ever loaded. */
	return *(__u32 *)((char *)ctx + 4096);
}

char LICENSE[] SEC("license") = "GPL";

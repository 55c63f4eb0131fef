// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pass: the smallest XDP program worth a fixture. Counts every packet in
 * seen[0] and passes packets of at least 14 bytes (it never sees shorter ones:
 * BPF_PROG_TEST_RUN refuses them).
 */
#include "fault_types.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&seen, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	if ((void *)(long)ctx->data + 14 > (void *)(long)ctx->data_end)
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

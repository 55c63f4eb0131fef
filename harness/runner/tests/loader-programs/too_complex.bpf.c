// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * too_complex: a bounded loop the verifier must walk iteration by iteration, with a branch per
 * iteration on packet data it cannot predict: it gives up after a million instructions (E2BIG,
 * "BPF program is too large"). The harness must report the rejection with the log's head within
 * the guest's time limit, not time out re-verifying it with ever larger log buffers.
 */
#include "loader_types.h"
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_endless(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 acc = 0;
	__u8 *p = data;

	if ((void *)(p + 1) > data_end)
		return XDP_DROP;
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < 1000000; i++) {
		if (*p & (1 << (i & 7)))
			acc += i;
		else
			acc ^= i;
	}
	return acc & 1 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

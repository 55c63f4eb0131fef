// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * hidden_subprog: a `__weak __hidden` subprogram that writes through a pointer argument, the
 * shape of libbpf's usdt.bpf.h (`bpf_usdt_arg`). libbpf loads it as a static function, which
 * the verifier checks per call; as a global one the write through a maybe-NULL pointer would be
 * refused (and before 5.12 the pointer argument itself).
 */
#include "loader_types.h"
#include <bpf/bpf_helpers.h>

__weak __hidden int frame_length(struct xdp_md *ctx, long *res)
{
	*res = 0;
	if (ctx->data_end < ctx->data)
		return -1;
	*res = ctx->data_end - ctx->data;
	return 0;
}

SEC("xdp")
int xdp_hidden_subprog(struct xdp_md *ctx)
{
	long length = 0;

	if (frame_length(ctx, &length))
		return XDP_DROP;
	return length == 60 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * lookup: an SK_LOOKUP program, run with a struct bpf_sk_lookup context and no packet.
 * Measured: Debian's 5.10 (5.10.223) test-runs it as well as 6.1 and later do.
 */
#include "fault_types.h"
#include <bpf/bpf_helpers.h>

SEC("sk_lookup")
int lookup_pass(struct bpf_sk_lookup *ctx)
{
	return ctx->local_port == 80 ? SK_PASS : SK_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

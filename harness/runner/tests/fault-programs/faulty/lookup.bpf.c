// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * lookup: an SK_LOOKUP program (added in 5.9, BPF_PROG_TEST_RUN for it in
 * 5.14). 5.10 loads the type but cannot test-run it: the case must be reported
 * unsupported there, never passed or failed. 6.1 and later run it.
 */
#include "fault_types.h"
#include <bpf/bpf_helpers.h>

SEC("sk_lookup")
int lookup_pass(struct bpf_sk_lookup *ctx)
{
	return ctx->local_port == 80 ? SK_PASS : SK_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

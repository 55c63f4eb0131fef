// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * syscall_type: a BPF_PROG_TYPE_SYSCALL program (type 31, added in 5.14). 5.10 does not know
 * the program type at all: the case must be reported unsupported there, never passed or
 * failed. 6.1 and later load and test-run it (context in, no packet).
 */
#include "fault_types.h"
#include <bpf/bpf_helpers.h>

struct args {
	__u32 a;
	__u32 b;
};

SEC("syscall")
int add_args(struct args *ctx)
{
	return ctx->a + ctx->b;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * poisoned: an unguarded CO-RE read of task_struct.__state, which 6.1 and
 * later have and 5.10 does not (it has `state`). On 5.10 the relocation cannot
 * be resolved: the engine poisons the instruction, the verifier reaches it, and
 * the load error must name the relocation. Elsewhere the program loads and
 * passes the packet (the field's offset is not 0).
 */
#include "fault_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct {
	unsigned int __state;
} __attribute__((preserve_access_index));

SEC("xdp")
int xdp_state_offset(struct xdp_md *ctx)
{
	return bpf_core_field_offset(struct task_struct, __state) > 0 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kernel_facts: records what CO-RE finds on the running kernel into maps no
 * expectation names. task_struct.__state exists from 5.14 on (5.10 has
 * `state`), so the `facts` entry and the ring buffer record differ between
 * 5.10 and 6.1 while the return value is XDP_PASS everywhere: only a verdict
 * that compares the whole state can tell the kernels apart.
 */
#include "verdict_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct___new {
	unsigned int __state;
} __attribute__((preserve_access_index));

struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

enum state_field {
	STATE_FIELD_NONE = 0,
	STATE_FIELD_OLD = 1,
	STATE_FIELD_NEW = 2,
};

struct kernel_fact {
	enum state_field state_field;
	__u32 state_size;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct kernel_fact);
} facts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

/* Varies on purpose (a per-run counter of the packet's length plus the time):
 * excluded by `ignore_maps` in the fixture. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} timestamps SEC(".maps");

SEC("xdp")
int record_facts(struct xdp_md *ctx)
{
	struct kernel_fact fact = {};
	__u32 key = 1;
	__u32 zero = 0;
	__u64 now = bpf_ktime_get_ns();

	if (bpf_core_field_exists(struct task_struct___new, __state)) {
		fact.state_field = STATE_FIELD_NEW;
		fact.state_size = bpf_core_field_size(struct task_struct___new, __state);
	} else if (bpf_core_field_exists(struct task_struct___old, state)) {
		fact.state_field = STATE_FIELD_OLD;
		fact.state_size = bpf_core_field_size(struct task_struct___old, state);
	}
	bpf_printk("state field %d size %u", fact.state_field, fact.state_size);
	bpf_map_update_elem(&facts, &key, &fact, 0);
	bpf_ringbuf_output(&events, &fact, sizeof(fact), 0);
	bpf_map_update_elem(&timestamps, &zero, &now, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

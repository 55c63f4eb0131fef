// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ksyms: an XDP program reading a typed __ksym (the per-CPU bpf_prog_active: BPF_PSEUDO_BTF_ID
 * with the id of the kernel's BTF VAR) and a typeless one (bpf_prog_fops: its address from
 * kallsyms), and checking that a weak __ksym no kernel has reads as absent (XDP_PASS).
 * Data symbols need CONFIG_KALLSYMS_ALL (Debian has it) and, for the typed one, a kernel BTF
 * that lists per-CPU variables: where either is missing libbpf refuses the object, and so must
 * the harness.
 */
#include "loader_types.h"
#include <bpf/bpf_helpers.h>

extern const int bpf_prog_active __ksym;
extern const void bpf_prog_fops __ksym;
extern const void no_such_symbol_in_any_kernel __ksym __weak;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

SEC("xdp")
int xdp_ksyms(struct xdp_md *ctx)
{
	const int *active = bpf_this_cpu_ptr(&bpf_prog_active);
	__u32 key = 0;
	__u64 value = *active;

	bpf_map_update_elem(&seen, &key, &value, 0);
	key = 1;
	value = (__u64)&bpf_prog_fops;
	bpf_map_update_elem(&seen, &key, &value, 0);
	if (ksym_exists(no_such_symbol_in_any_kernel))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

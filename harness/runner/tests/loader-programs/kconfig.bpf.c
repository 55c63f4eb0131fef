// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kconfig: an XDP program that passes a packet only if the .kconfig externs resolved as libbpf
 * resolves them: values from the kernel's own config (a bool, an int, a weak tristate, a weak
 * option no kernel has) and libbpf's virtual LINUX_KERNEL_VERSION and LINUX_HAS_BPF_COOKIE.
 * What it saw goes to `seen` (kernel-dependent, so not compared).
 */
#include "loader_types.h"
#include <bpf/bpf_helpers.h>

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern int CONFIG_HZ __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig __weak;
extern int CONFIG_NO_SUCH_OPTION_IN_ANY_KERNEL __kconfig __weak;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

static void record(__u32 key, __u64 value)
{
	bpf_map_update_elem(&seen, &key, &value, 0);
}

SEC("xdp")
int xdp_kconfig(struct xdp_md *ctx)
{
	record(0, LINUX_KERNEL_VERSION);
	record(1, CONFIG_HZ);
	record(2, LINUX_HAS_BPF_COOKIE);
	if (LINUX_KERNEL_VERSION < KERNEL_VERSION(5, 10, 0))
		return XDP_DROP;
	if (!CONFIG_BPF_SYSCALL || CONFIG_HZ <= 0 || CONFIG_BPF_JIT == TRI_NO)
		return XDP_DROP;
	if (CONFIG_NO_SUCH_OPTION_IN_ANY_KERNEL != 0)
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

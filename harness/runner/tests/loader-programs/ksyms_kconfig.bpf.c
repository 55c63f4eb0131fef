// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ksyms_kconfig: one XDP program that passes a packet only if every extern resolved as libbpf
 * resolves it: .kconfig values from the kernel's own config (bool, int, a weak tristate, a weak
 * absent option) and libbpf's virtual LINUX_KERNEL_VERSION; a typed __ksym (the per-CPU
 * bpf_prog_active, BPF_PSEUDO_BTF_ID) and a typeless one (bpf_prog_fops, from kallsyms); and a
 * weak __ksym no kernel has, which must read as absent. What it saw goes to `seen`. Data
 * symbols need CONFIG_KALLSYMS_ALL (Debian has it): without it the kernel (for the typed ksym)
 * and the loader (for the typeless one) refuse the object, as with libbpf.
 */
#include "loader_types.h"
#include <bpf/bpf_helpers.h>


extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig;
extern int CONFIG_HZ __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig __weak;
extern int CONFIG_NO_SUCH_OPTION_IN_ANY_KERNEL __kconfig __weak;

extern const int bpf_prog_active __ksym;
extern const void bpf_prog_fops __ksym;
extern const void no_such_symbol_in_any_kernel __ksym __weak;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

static void record(__u32 key, __u64 value)
{
	bpf_map_update_elem(&seen, &key, &value, 0);
}

SEC("xdp")
int xdp_externs(struct xdp_md *ctx)
{
	const int *active = bpf_this_cpu_ptr(&bpf_prog_active);

	record(0, LINUX_KERNEL_VERSION);
	record(1, CONFIG_HZ);
	record(2, LINUX_HAS_BPF_COOKIE);
	record(3, *active);
	record(4, (__u64)&bpf_prog_fops);
	if (LINUX_KERNEL_VERSION < KERNEL_VERSION(5, 10, 0))
		return XDP_DROP;
	if (!CONFIG_BPF_SYSCALL || CONFIG_HZ <= 0 || CONFIG_BPF_JIT == TRI_NO)
		return XDP_DROP;
	if (CONFIG_NO_SUCH_OPTION_IN_ANY_KERNEL != 0)
		return XDP_DROP;
	if (ksym_exists(no_such_symbol_in_any_kernel))
		return XDP_DROP;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";

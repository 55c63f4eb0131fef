// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* See README.md: workload cases whose results differ by kernel, on purpose. */
typedef signed char __s8;
typedef unsigned char __u8;
typedef signed short __s16;
typedef unsigned short __u16;
typedef signed int __s32;
typedef unsigned int __u32;
typedef signed long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u32 __wsum;
#define BPF_MAP_TYPE_ARRAY 2
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct {
	unsigned int __state;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

volatile __u32 target_tgid;

static __always_inline void add(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);

	if (v)
		__sync_fetch_and_add(v, n);
}

SEC("fentry/do_sys_openat2")
int fentry_open_weighted(__u64 *ctx)
{
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	add(0, bpf_core_field_exists(struct task_struct, __state) ? 2 : 1);
	return 0;
}

SEC("tracepoint/sock/sock_send_length")
int tp_sock_send_length(void *ctx)
{
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) == target_tgid)
		add(1, 1);
	return 0;
}

/* No kernel has this function: the kprobe cannot be placed anywhere. */
SEC("kprobe/harness_no_such_function")
int kprobe_nowhere(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

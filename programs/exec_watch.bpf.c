// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * exec_watch: execs of the workload process, seen on the way in (the
 * syscalls:sys_enter_execve tracepoint, the path the caller gave) and once
 * the new image is in place (tp_btf/sched_process_exec, the binprm's
 * filename read through CO-RE).
 *
 * Fixtures are workload cases: a child of the agent execs /proc/self/exe
 * `count` times (each exec'ed image goes on with the rest of the workload in
 * the same process), its pid in `target_tgid`.
 *
 * counters (ARRAY, u32 -> u64): 0 sys_enter_execve, 1 sched_process_exec.
 * events (RINGBUF): { u32 source (the slot), s32 len, char path[64] }.
 */
#include "harness_uapi.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tracing.h"

struct linux_binprm {
	const char *filename;
} __attribute__((preserve_access_index));

enum { SYS_ENTER_EXECVE, SCHED_PROCESS_EXEC, SLOTS };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} events SEC(".maps");

struct event {
	__u32 source;
	__s32 len;
	char path[64];
};

static __always_inline void count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("tracepoint/syscalls/sys_enter_execve")
int tp_sys_enter_execve(struct sys_enter_record *ctx)
{
	struct event e = { .source = SYS_ENTER_EXECVE };

	if (!from_workload())
		return 0;
	count(SYS_ENTER_EXECVE);
	e.len = bpf_probe_read_user_str(e.path, sizeof(e.path), (const void *)ctx->args[0]);
	bpf_ringbuf_output(&events, &e, sizeof(e), 0);
	return 0;
}

/* sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm) */
SEC("tp_btf/sched_process_exec")
int tp_btf_sched_process_exec(__u64 *ctx)
{
	struct linux_binprm *bprm = (struct linux_binprm *)ctx[2];
	struct event e = { .source = SCHED_PROCESS_EXEC };

	if (!from_workload())
		return 0;
	count(SCHED_PROCESS_EXEC);
	e.len = bpf_probe_read_kernel_str(e.path, sizeof(e.path), BPF_CORE_READ(bprm, filename));
	bpf_ringbuf_output(&events, &e, sizeof(e), 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

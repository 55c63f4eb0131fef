// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kfuncs: a SYSCALL program calls two kfuncs (bpf_task_from_pid, bpf_task_release: 6.2+)
 * resolved against the running kernel's BTF, reads the task through CO-RE, and guards a call
 * to a weak kfunc no kernel has with bpf_ksym_exists (the call is poisoned and dead).
 * The program returns 42.
 * 5.10 has no SYSCALL program type and no such kfuncs; 6.1 has no bpf_task_from_pid: libbpf
 * refuses the object there (strong extern not found), and so must the harness.
 */
#include "loader_types.h"
#include <bpf/bpf_helpers.h>

struct task_struct {
	int pid;
} __attribute__((preserve_access_index));

extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern void bpf_no_such_kfunc_in_any_kernel(void) __ksym __weak;

/* 42 whether or not pid 1 is visible (a host process may live in a pid namespace that hides
 * it); 43 only if the kfunc handed back a task that is not pid 1. */
SEC("syscall")
int task_of_pid1(void *ctx)
{
	struct task_struct *t;
	int pid;

	if (ksym_exists(bpf_no_such_kfunc_in_any_kernel))
		bpf_no_such_kfunc_in_any_kernel();
	t = bpf_task_from_pid(1);
	if (!t)
		return 42;
	pid = t->pid;
	bpf_task_release(t);
	return pid == 1 ? 42 : 43;
}

char LICENSE[] SEC("license") = "GPL";

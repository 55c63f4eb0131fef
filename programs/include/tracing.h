/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tracing.h - what the workload-driven tracing programs share: the x86_64
 * register frame a kprobe sees, the syscall tracepoint records, the ring
 * buffer map type, and the pid filter every program applies.
 *
 * The register frame and tracepoint records are fixed ABI (the verifier
 * checks ctx accesses by offset), so no preserve_access_index here.
 */
#ifndef HARNESS_TRACING_H
#define HARNESS_TRACING_H

#include "harness_uapi.h"

#define BPF_MAP_TYPE_RINGBUF 27

/* struct pt_regs of x86_64 (arch/x86/include/asm/ptrace.h), the kprobe ctx. */
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

/* The record of a syscalls:sys_enter_* tracepoint: struct trace_entry (8
 * bytes on 5.10 through 7.2), the syscall number, then six u64 arguments
 * (struct syscall_trace_enter, args at 16). */
struct sys_enter_record {
	__u64 trace_entry;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

#define NR_OPENAT 257 /* x86_64 */

/* The workload process's pid (its tgid), written by the harness
 * (`workload_pid = "target_tgid"`) before the workload starts. Until then it
 * is 0, which no process has: nothing is counted. */
volatile __u32 target_tgid;

static __always_inline int from_workload(void)
{
	return (__u32)(bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

#endif /* HARNESS_TRACING_H */

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * open_watch: the same file opens seen by every kind of tracing program.
 *
 * Fixtures of this object are workload cases: the harness attaches the
 * case's programs, a child process of the agent calls
 * openat(AT_FDCWD, path, O_RDONLY|O_CREAT|O_CLOEXEC) `count` times (raw
 * syscalls), the programs are detached, and `counters` and the `events` ring
 * buffer are dumped. The child's pid is written into `target_tgid` before it
 * starts (`workload_pid`), and every program ignores other processes.
 *
 * counters[i] (ARRAY, u32 -> u64), one slot per program:
 *   0 fentry/do_sys_openat2            every open (BPF trampoline, 5.5+)
 *   1 fexit/do_sys_openat2             opens that returned a descriptor
 *   2 tracepoint/syscalls/sys_enter_openat  (perf event on the tracepoint id)
 *   3 kprobe/do_sys_openat2            (kprobe PMU perf event)
 *   4 kretprobe/do_sys_openat2         opens that returned a descriptor
 *   5 tp_btf/sys_enter                 syscalls numbered openat
 *   6 raw_tp/sys_enter                 syscalls numbered openat
 *   7 lsm/file_open                    files opened (only where the bpf
 *                                      LSM is active: 6.1+ in Debian)
 * events (RINGBUF): one record per open from the programs that see the
 * path: { u32 source (the slot), s32 len (bpf_*_str's result), char[64] }.
 * fentry, the tracepoint and the kprobe copy the user's path; lsm copies the
 * opened dentry's name through CO-RE (file->f_path.dentry->d_name.name).
 */
#include "harness_uapi.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "tracing.h"

#define PAC __attribute__((preserve_access_index))

struct qstr {
	const unsigned char *name;
} PAC;
struct dentry {
	struct qstr d_name;
} PAC;
struct path {
	struct dentry *dentry;
} PAC;
struct file {
	struct path f_path;
} PAC;

enum {
	FENTRY,
	FEXIT,
	TRACEPOINT,
	KPROBE,
	KRETPROBE,
	TP_BTF,
	RAW_TP,
	LSM,
	SLOTS,
};

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
	char name[64];
};

static __always_inline void count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline void emit_user(__u32 slot, const void *user_path)
{
	struct event e = { .source = slot };

	e.len = bpf_probe_read_user_str(e.name, sizeof(e.name), user_path);
	bpf_ringbuf_output(&events, &e, sizeof(e), 0);
}

/* do_sys_openat2(int dfd, const char __user *filename, struct open_how *how):
 * the same three arguments on 5.10 through 7.2. */
SEC("fentry/do_sys_openat2")
int fentry_openat2(__u64 *ctx)
{
	if (!from_workload())
		return 0;
	count(FENTRY);
	emit_user(FENTRY, (const void *)ctx[1]);
	return 0;
}

SEC("fexit/do_sys_openat2")
int fexit_openat2(__u64 *ctx)
{
	if (from_workload() && (long)ctx[3] >= 0)
		count(FEXIT);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int tp_sys_enter_openat(struct sys_enter_record *ctx)
{
	if (!from_workload())
		return 0;
	count(TRACEPOINT);
	emit_user(TRACEPOINT, (const void *)ctx->args[1]);
	return 0;
}

SEC("kprobe/do_sys_openat2")
int kprobe_openat2(struct pt_regs *ctx)
{
	if (!from_workload())
		return 0;
	count(KPROBE);
	emit_user(KPROBE, (const void *)ctx->si);
	return 0;
}

SEC("kretprobe/do_sys_openat2")
int kretprobe_openat2(struct pt_regs *ctx)
{
	if (from_workload() && (long)ctx->ax >= 0)
		count(KRETPROBE);
	return 0;
}

/* sys_enter(struct pt_regs *regs, long id) */
SEC("tp_btf/sys_enter")
int tp_btf_sys_enter(__u64 *ctx)
{
	if (from_workload() && ctx[1] == NR_OPENAT)
		count(TP_BTF);
	return 0;
}

SEC("raw_tp/sys_enter")
int raw_tp_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (from_workload() && ctx->args[1] == NR_OPENAT)
		count(RAW_TP);
	return 0;
}

/* file_open(struct file *file): returns the LSM verdict, 0 = allow. */
SEC("lsm/file_open")
int lsm_file_open(__u64 *ctx)
{
	struct file *file = (struct file *)ctx[0];
	struct event e = { .source = LSM };

	if (!from_workload())
		return 0;
	count(LSM);
	e.len = bpf_probe_read_kernel_str(e.name, sizeof(e.name),
					  BPF_CORE_READ(file, f_path.dentry, d_name.name));
	bpf_ringbuf_output(&events, &e, sizeof(e), 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * task_walk: a raw tracepoint program that walks kernel data structures from
 * the current task through CO-RE, along pointer chains whose layouts really
 * differ across the matrix, and checks what it finds against what helpers
 * report (or against fixed kernel facts).
 *
 *   task->nsproxy->uts_ns->name.sysname  "Linux" (UTS_SYSNAME) in every
 *       kernel; the name sits behind a struct kref at offset 4 on 5.10 and
 *       at offset 0 since 5.11, and every task_struct offset differs.
 *   task->cred->uid / ->gid              == bpf_get_current_uid_gid()
 *   task->group_leader->pid              == tgid of bpf_get_current_pid_tgid()
 *   task->thread_pid->numbers[0].nr      == pid; struct pid grew members
 *       before numbers[] (6.12: pidfs inode, 7.x: more), and numbers[] went
 *       from `numbers[1]` (5.10) to a flexible array (5.17+).
 *   task->cpu (5.10) / task->thread_info.cpu (5.16+)
 *                                        == bpf_get_smp_processor_id()
 *
 * Every read goes through bpf_probe_read_kernel at an offset that CO-RE
 * relocated; an offset resolved against the wrong kernel reads another
 * member and breaks an identity (the local declarations in kernel_types.h
 * deliberately order members unlike any kernel).
 *
 * Relocation kinds: FIELD_BYTE_OFFSET, FIELD_BYTE_SIZE, FIELD_EXISTS,
 * FIELD_SIGNED, TYPE_ID_LOCAL, TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE,
 * ENUMVAL_EXISTS, ENUMVAL_VALUE, TYPE_MATCHES.
 *
 * Map walk (ARRAY, u32 key, u64 value): W_* below; 1 = the identity holds,
 * W_SYSNAME holds the first 8 bytes of sysname, W_UTSNAME_SIZE a size.
 * Map walk_observed: raw relocated values, kernel-dependent, for reports.
 */
#include "harness_uapi.h"
#include "kernel_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

enum {
	W_SYSNAME = 0,       /* value: sysname[0..8] as read ("Linux\0\0\0") */
	W_RELEASE = 1,       /* release starts "<digit>." or "<digit><digit>." */
	W_UID = 2,           /* cred->uid == current uid */
	W_GID = 3,           /* cred->gid == current gid */
	W_LEADER = 4,        /* group_leader->pid == tgid */
	W_PID_NR = 5,        /* thread_pid->numbers[0].nr == pid */
	W_CPU = 6,           /* task's cpu (either flavor) == current cpu */
	W_CPU_FLAVOR = 7,    /* exactly one cpu flavor exists */
	W_PID_LAYOUT = 8,    /* offsetof(numbers) + sizeof(numbers) == sizeof(struct pid) */
	W_PID_TASKS = 9,     /* tasks[] has PIDTYPE_MAX hlist_heads */
	W_SIGNED = 10,       /* upid.nr signed, kuid_t.val unsigned */
	W_TYPE_IDS = 11,     /* type ids: local distinct, target agree */
	W_TYPE_MATCHES = 12, /* upid___same matches, upid___wrong does not */
	W_UTSNAME_SIZE = 13, /* value: sizeof(struct new_utsname) */
	W_MAX = 16,
};

enum {
	WO_UTS_NAME_OFFSET = 0,
	WO_PID_NUMBERS_OFFSET = 1,
	WO_PID_NUMBERS_SIZE = 2,
	WO_PID_SIZE = 3,
	WO_CPU_OFFSET = 4,
	WO_TASK_TYPE_ID = 5,
	WO_MAX = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, W_MAX);
	__type(key, __u32);
	__type(value, __u64);
} walk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WO_MAX);
	__type(key, __u32);
	__type(value, __u64);
} walk_observed SEC(".maps");

static __always_inline void put(void *map, __u32 key, __u64 value)
{
	bpf_map_update_elem(map, &key, &value, BPF_ANY);
}

static __always_inline int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static __always_inline void uts_facts(struct task_struct *task)
{
	struct uts_namespace *uts = BPF_CORE_READ(task, nsproxy, uts_ns);
	__u64 sysname = 0;
	char rel[4] = {};

	/* 8 of the 65 bytes: "Linux" and its NUL padding */
	bpf_core_read(&sysname, sizeof(sysname), &uts->name.sysname);
	bpf_core_read(&rel, sizeof(rel), &uts->name.release);
	put(&walk, W_SYSNAME, sysname);
	put(&walk, W_RELEASE, is_digit(rel[0]) && (rel[1] == '.' || (is_digit(rel[1]) && rel[2] == '.')));
	put(&walk, W_UTSNAME_SIZE, bpf_core_type_size(struct new_utsname));
	put(&walk_observed, WO_UTS_NAME_OFFSET, bpf_core_field_offset(struct uts_namespace, name));
}

static __always_inline void cred_facts(struct task_struct *task)
{
	__u64 uid_gid = bpf_get_current_uid_gid();
	__u32 uid = BPF_CORE_READ(task, cred, uid.val);
	__u32 gid = BPF_CORE_READ(task, cred, gid.val);

	put(&walk, W_UID, uid == (__u32)uid_gid);
	put(&walk, W_GID, gid == (__u32)(uid_gid >> 32));
}

static __always_inline void pid_facts(struct task_struct *task)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 leader_pid = BPF_CORE_READ(task, group_leader, pid);
	struct pid *tp = BPF_CORE_READ(task, thread_pid);
	int nr = -1;
	__u32 numbers_off = bpf_core_field_offset(struct pid, numbers);
	__u32 numbers_size = bpf_core_field_size(struct pid, numbers);
	__u32 pid_size = bpf_core_type_size(struct pid);

	bpf_core_read(&nr, sizeof(nr), &tp->numbers[0].nr);
	put(&walk, W_LEADER, leader_pid == (__u32)(pid_tgid >> 32));
	put(&walk, W_PID_NR, nr == (int)(__u32)pid_tgid);

	/* 5.10: numbers[1], 16 bytes, ends the struct; later: numbers[] at
	 * the end, 0 bytes. Either way it ends where struct pid ends. */
	put(&walk, W_PID_LAYOUT, numbers_off + numbers_size == pid_size);
	put(&walk, W_PID_TASKS,
	    bpf_core_enum_value_exists(enum pid_type, PIDTYPE_MAX) &&
		    bpf_core_type_exists(struct hlist_head) &&
		    bpf_core_field_size(struct pid, tasks) ==
			    bpf_core_enum_value(enum pid_type, PIDTYPE_MAX) * bpf_core_type_size(struct hlist_head));
	put(&walk_observed, WO_PID_NUMBERS_OFFSET, numbers_off);
	put(&walk_observed, WO_PID_NUMBERS_SIZE, numbers_size);
	put(&walk_observed, WO_PID_SIZE, pid_size);
}

static __always_inline void cpu_facts(struct task_struct *task)
{
	int in_task = bpf_core_field_exists(struct task_struct___cpu, cpu);
	int in_ti = bpf_core_field_exists(struct task_struct___ti, thread_info.cpu);
	__u32 cpu = ~0U, off = 0;

	if (in_ti) {
		struct task_struct___ti *t = (void *)task;

		cpu = BPF_CORE_READ(t, thread_info.cpu);
		off = bpf_core_field_offset(struct task_struct___ti, thread_info.cpu);
	} else if (in_task) {
		struct task_struct___cpu *t = (void *)task;

		cpu = BPF_CORE_READ(t, cpu);
		off = bpf_core_field_offset(struct task_struct___cpu, cpu);
	}
	put(&walk, W_CPU, cpu == bpf_get_smp_processor_id());
	put(&walk, W_CPU_FLAVOR, in_task + in_ti == 1);
	put(&walk_observed, WO_CPU_OFFSET, off);
}

static __always_inline void type_facts(void)
{
	struct upid *u = 0;
	struct cred *c = 0;
	__u32 task_local = bpf_core_type_id_local(struct task_struct);
	__u32 cpu_local = bpf_core_type_id_local(struct task_struct___cpu);
	__u32 task_kernel = bpf_core_type_id_kernel(struct task_struct);
	__u32 ti_kernel = bpf_core_type_id_kernel(struct task_struct___ti);
	__u32 pid_kernel = bpf_core_type_id_kernel(struct pid);

	/* two local types have two ids; two flavors of task_struct are one
	 * kernel type, and struct pid is another */
	put(&walk, W_TYPE_IDS,
	    task_local && cpu_local && task_local != cpu_local && task_kernel && task_kernel == ti_kernel &&
		    pid_kernel && pid_kernel != task_kernel);
	put(&walk_observed, WO_TASK_TYPE_ID, task_kernel);

	put(&walk, W_SIGNED,
	    __builtin_preserve_field_info(u->nr, BPF_FIELD_SIGNED) &&
		    !__builtin_preserve_field_info(c->uid.val, BPF_FIELD_SIGNED));
	put(&walk, W_TYPE_MATCHES,
	    bpf_core_type_matches(struct upid___same) && !bpf_core_type_matches(struct upid___wrong));
}

SEC("raw_tp/sys_enter")
int raw_tp_walk(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	uts_facts(task);
	cred_facts(task);
	pid_facts(task);
	cpu_facts(task);
	type_facts();
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

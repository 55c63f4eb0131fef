/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kernel_types.h - kernel-internal types the CO-RE probes relocate against.
 *
 * Declared for this project with preserve_access_index; only the members the
 * programs use. Where the kernel changed a type across the matrix, each
 * variant is a "flavor" (name___suffix): CO-RE matches a flavor by its name
 * without the suffix, and the programs ask bpf_core_field_exists() which
 * flavor the running kernel has.
 *
 * Local member order and enumerator values are deliberately NOT the kernel's
 * (see the comments), so a relocation left unapplied gives a visibly wrong
 * result instead of a lucky right one.
 */
#ifndef HARNESS_KERNEL_TYPES_H
#define HARNESS_KERNEL_TYPES_H

#include "harness_uapi.h"

#ifndef PAC
#define PAC __attribute__((preserve_access_index))
#endif

typedef int pid_t;

struct nsproxy;
struct cred;
struct pid;

/* task_struct: 5.10 has `volatile long state`, 5.14+ `unsigned int __state`. */
struct task_struct {
	/* kernel order is pid, tgid; reversed with a gap here on purpose */
	pid_t tgid;
	int __local_gap;
	pid_t pid;
	unsigned int flags;
	char comm[16];
	/* kernel order: group_leader, thread_pid, cred, nsproxy */
	struct nsproxy *nsproxy;
	const struct cred *cred;
	struct pid *thread_pid;
	struct task_struct *group_leader;
} PAC;

/* The CPU a task runs on: task_struct.cpu up to 5.15, then moved into
 * task_struct.thread_info.cpu (x86 has THREAD_INFO_IN_TASK). */
struct task_struct___cpu {
	unsigned int cpu;
} PAC;

struct thread_info___cpu {
	__u32 cpu;
} PAC;

struct task_struct___ti {
	struct thread_info___cpu thread_info;
} PAC;

/* struct new_utsname (UAPI layout: six char[__NEW_UTS_LEN + 1 = 65]) inside
 * struct uts_namespace: behind a struct kref (offset 4) on 5.10, first
 * (offset 0) since 5.11. */
struct new_utsname {
	char sysname[65];
	char nodename[65];
	char release[65];
	char version[65];
	char machine[65];
	char domainname[65];
} PAC;

struct uts_namespace {
	struct new_utsname name;
} PAC;

struct nsproxy {
	struct uts_namespace *uts_ns;
} PAC;

/* kuid_t / kgid_t wrap the id in a struct so it is never mixed up. */
typedef struct {
	__u32 val;
} kuid_t;

typedef struct {
	__u32 val;
} kgid_t;

struct cred {
	kgid_t gid; /* kernel order: uid, gid */
	kuid_t uid;
} PAC;

struct hlist_head {
	void *first;
} PAC;

enum pid_type {
	PIDTYPE_MAX = 40, /* 4 in every kernel; deliberately wrong here */
};

/* struct pid: numbers[] is the last member, `struct upid numbers[1]` on
 * 5.10 and a flexible `numbers[]` since 5.17; 6.12 and 7.x add members before
 * tasks[] (pidfs), so every offset below moves. numbers[0] is the id in the
 * initial pid namespace, the one bpf_get_current_pid_tgid() reports. */
struct upid {
	int nr;
	void *ns;
} PAC;

struct pid {
	unsigned int level;
	struct hlist_head tasks[PIDTYPE_MAX];
	struct upid numbers[1];
} PAC;

/* TYPE_MATCHES: upid as every kernel has it (pointers match by name only),
 * and a shape no kernel has. */
struct pid_namespace;
struct upid___same {
	int nr;
	struct pid_namespace *ns;
} PAC;

struct upid___wrong {
	long nr;
	struct pid_namespace *ns;
} PAC;

struct task_struct___new {
	unsigned int __state;
} PAC;

struct task_struct___old {
	long state;
} PAC;

#define PF_KTHREAD 0x00200000

/* sk_buff: pkt_type:3 everywhere; mono_delivery_time:1 in 5.18-6.10,
 * replaced by tstamp_type:2 in 6.11; both sit in an anonymous struct inside
 * an anonymous union in the kernel (flat here: CO-RE walks anonymous
 * members). */
struct sk_buff {
	unsigned int len;
	__u32 mark;
	__u8 pkt_type : 3;
	/* for udp_drop_watch (kernel order: protocol, transport_header,
	 * network_header, mac_header, ..., head; all in anonymous
	 * struct_group()s since 5.19). head + *_header locates a header. */
	unsigned char *head;
	__u16 network_header;
	__u16 transport_header;
	__be16 protocol;
} PAC;

struct sk_buff___mono {
	__u8 mono_delivery_time : 1;
} PAC;

struct sk_buff___tstamp {
	__u8 tstamp_type : 2;
} PAC;

/* tcphdr: 7.x splits the 4 reserved bits into ae:1 (RFC 9768) and res1:3. */
struct tcphdr___ae {
	__u16 ae : 1;
	__u16 res1 : 3;
	__u16 doff : 4;
} PAC;

/* TYPE_MATCHES compares the names of integer types, and the kernel's BTF
 * (from gcc's DWARF) spells `unsigned short` as `short unsigned int`, so a
 * flavor with a __be16 member never matches: these two use only bytes. */
struct ethhdr___addrs {
	unsigned char h_dest[6];
	unsigned char h_source[6];
} PAC;

/* struct ethhdr as it is NOT: h_dest is unsigned char[6] in the kernel. */
struct ethhdr___mismatch {
	int h_dest;
} PAC;

/* enum skb_drop_reason: absent in 5.10; NOT_SPECIFIED = 1, NO_SOCKET = 2 in
 * 6.1; SKB_CONSUMED = 1 inserted in 6.12+, shifting them to 2 and 3. Local
 * values are deliberately unlike any kernel's. */
enum skb_drop_reason {
	SKB_CONSUMED = 101,
	SKB_DROP_REASON_NOT_SPECIFIED = 102,
	SKB_DROP_REASON_NO_SOCKET = 103,
};

/* enum bpf_func_id: stable UAPI; BPF_FUNC_map_lookup_elem is 1 everywhere. */
enum bpf_func_id {
	BPF_FUNC_map_lookup_elem = 77,
};

#endif /* HARNESS_KERNEL_TYPES_H */

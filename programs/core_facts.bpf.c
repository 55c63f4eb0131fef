// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * core_facts: CO-RE relocations against the kernel layouts that really differ
 * across the matrix (5.10, 6.1, 6.12, 7.2), turned into kernel-independent
 * facts a fixture can check.
 *
 * Each fact is an identity that holds on every kernel *when the relocations
 * were resolved against that kernel's BTF*, while the relocated values differ
 * per kernel (offsets, sizes, existence, enumerator values). An engine that
 * leaves a relocation unapplied, resolves it against the wrong kernel, or gets
 * bitfield arithmetic wrong breaks an identity. The raw relocated values go to
 * the `observed` map (not checked by fixtures; for reports).
 *
 *   tc_core_facts   (SCHED_CLS): layout facts (field existence/size/offset,
 *                   bitfields, enum values, type size/id/matches), and the TCP
 *                   AE bit read from the packet through kernel-version-
 *                   dependent bitfield layouts of struct tcphdr.
 *   raw_tp_task     (RAW_TRACEPOINT): reads the current task_struct through
 *                   CO-RE with bpf_probe_read_kernel and compares it with
 *                   what helpers report (pid, tgid, comm, state).
 *
 * Relocation kinds used: FIELD_BYTE_OFFSET, FIELD_BYTE_SIZE, FIELD_EXISTS,
 * FIELD_SIGNED, FIELD_LSHIFT_U64, FIELD_RSHIFT_U64, TYPE_ID_LOCAL,
 * TYPE_ID_TARGET, TYPE_EXISTS, TYPE_SIZE, TYPE_MATCHES, ENUMVAL_EXISTS,
 * ENUMVAL_VALUE.
 */
#include "harness_uapi.h"
#include "net_types.h"
#include "kernel_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

/* facts: 1 = the identity holds; for F_AE_BIT .. F_DOFF the value read. */
enum {
	F_STATE_ONE_FLAVOR = 0,  /* exactly one of __state / state exists */
	F_STATE_SIZE = 1,        /* __state is 4 bytes, state is 8 */
	F_STATE_OFFSET = 2,      /* its offset lies inside task_struct, aligned */
	F_PID_TGID = 3,          /* tgid follows pid directly, both 4 bytes */
	F_DROP_REASON = 4,       /* enum skb_drop_reason values consistent */
	F_SKB_SIZE = 5,          /* struct sk_buff size plausible, len 4 bytes */
	F_SKB_TSTAMP = 6,        /* mono_delivery_time:1 xor tstamp_type:2 or none */
	F_TCP_RES1_WIDTH = 7,    /* res1 is 3 bits iff tcphdr has ae, else 4 */
	F_AE_BIT = 8,            /* value: the packet's AE bit */
	F_RESERVED3 = 9,         /* value: the 3 reserved bits above AE */
	F_DOFF = 10,             /* value: the packet's data offset */
	F_TYPE_MATCHES = 11,     /* ethhdr matches, ethhdr___mismatch does not */
	F_TYPE_IDS = 12,         /* local and target type ids are non-zero */
	F_ENUM_STABLE = 13,      /* BPF_FUNC_map_lookup_elem == 1 */
	F_SKB_PKT_TYPE = 14,     /* pkt_type: 3-bit unsigned bitfield */
	F_MAX = 16,
};

/* observed: raw relocated values, kernel-dependent, for reports only. */
enum {
	O_STATE_OFFSET = 0,
	O_STATE_SIZE = 1,
	O_TASK_SIZE = 2,
	O_PID_OFFSET = 3,
	O_DROP_NOT_SPECIFIED = 4,
	O_DROP_NO_SOCKET = 5,
	O_SKB_SIZE = 6,
	O_SKB_LEN_OFFSET = 7,
	O_SKB_TYPE_ID_LOCAL = 8,
	O_SKB_TYPE_ID_TARGET = 9,
	O_TCP_RES1_BITS = 10,
	O_TCP_HAS_AE = 11,
	O_DROP_REASON_EXISTS = 12,
	O_SKB_TSTAMP_BITS = 13,
	O_MAX = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, F_MAX);
	__type(key, __u32);
	__type(value, __u64);
} facts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, O_MAX);
	__type(key, __u32);
	__type(value, __u64);
} observed SEC(".maps");

static __always_inline void put(void *map, __u32 key, __u64 value)
{
	bpf_map_update_elem(map, &key, &value, BPF_ANY);
}

/* Width in bits of an unsigned bitfield, from its relocated right shift. */
#define BITFIELD_BITS(s, field) (64 - __builtin_preserve_field_info((s)->field, BPF_FIELD_RSHIFT_U64))

static __always_inline void task_state_facts(void)
{
	int has_new = bpf_core_field_exists(struct task_struct___new, __state);
	int has_old = bpf_core_field_exists(struct task_struct___old, state);
	__u32 off = 0, size = 0, task_size = bpf_core_type_size(struct task_struct);

	if (has_new) {
		off = bpf_core_field_offset(struct task_struct___new, __state);
		size = bpf_core_field_size(struct task_struct___new, __state);
	} else if (has_old) {
		off = bpf_core_field_offset(struct task_struct___old, state);
		size = bpf_core_field_size(struct task_struct___old, state);
	}
	put(&facts, F_STATE_ONE_FLAVOR, has_new + has_old == 1);
	put(&facts, F_STATE_SIZE, (has_new && size == 4) || (has_old && size == 8));
	put(&facts, F_STATE_OFFSET, size && off >= 8 && off + size <= task_size && off % size == 0);
	put(&observed, O_STATE_OFFSET, off);
	put(&observed, O_STATE_SIZE, size);
	put(&observed, O_TASK_SIZE, task_size);

	{
		__u32 pid_off = bpf_core_field_offset(struct task_struct, pid);
		__u32 tgid_off = bpf_core_field_offset(struct task_struct, tgid);

		put(&facts, F_PID_TGID,
		    tgid_off == pid_off + 4 && bpf_core_field_size(struct task_struct, pid) == 4 &&
			    bpf_core_field_size(struct task_struct, tgid) == 4 && tgid_off < task_size);
		put(&observed, O_PID_OFFSET, pid_off);
	}
}

static __always_inline void drop_reason_facts(void)
{
	int type_exists = bpf_core_type_exists(enum skb_drop_reason);
	int ok;

	put(&observed, O_DROP_REASON_EXISTS, type_exists);
	if (!type_exists) {
		/* 5.10: no enum, so none of its values may exist */
		ok = !bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NO_SOCKET) &&
		     !bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED);
	} else {
		__u64 not_spec = bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED);
		__u64 no_sock = bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NO_SOCKET);
		int consumed = bpf_core_enum_value_exists(enum skb_drop_reason, SKB_CONSUMED);

		/* NOT_SPECIFIED follows SKB_NOT_DROPPED_YET (0) and, where it
		 * exists, SKB_CONSUMED; NO_SOCKET follows NOT_SPECIFIED. */
		ok = bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NO_SOCKET) &&
		     not_spec == 1 + (__u64)consumed && no_sock == not_spec + 1;
		put(&observed, O_DROP_NOT_SPECIFIED, not_spec);
		put(&observed, O_DROP_NO_SOCKET, no_sock);
	}
	put(&facts, F_DROP_REASON, ok);
}

static __always_inline void sk_buff_facts(void)
{
	struct sk_buff *skb = 0;
	struct sk_buff___mono *mono = 0;
	struct sk_buff___tstamp *ts = 0;
	__u32 size = bpf_core_type_size(struct sk_buff);
	__u32 len_off = bpf_core_field_offset(struct sk_buff, len);
	int has_mono = bpf_core_field_exists(struct sk_buff___mono, mono_delivery_time);
	int has_ts = bpf_core_field_exists(struct sk_buff___tstamp, tstamp_type);
	__u32 ts_bits = 0;
	int ok;

	put(&facts, F_SKB_SIZE,
	    bpf_core_type_exists(struct sk_buff) && size >= 160 && size <= 512 &&
		    bpf_core_field_size(struct sk_buff, len) == 4 && len_off + 4 <= size);
	put(&observed, O_SKB_SIZE, size);
	put(&observed, O_SKB_LEN_OFFSET, len_off);

	if (has_ts)
		ts_bits = BITFIELD_BITS(ts, tstamp_type);
	else if (has_mono)
		ts_bits = BITFIELD_BITS(mono, mono_delivery_time);
	ok = !(has_mono && has_ts) && (!has_ts || ts_bits == 2) && (!has_mono || ts_bits == 1);
	put(&facts, F_SKB_TSTAMP, ok);
	put(&observed, O_SKB_TSTAMP_BITS, ts_bits);

	put(&facts, F_SKB_PKT_TYPE,
	    BITFIELD_BITS(skb, pkt_type) == 3 && !__builtin_preserve_field_info(skb->pkt_type, BPF_FIELD_SIGNED) &&
		    bpf_core_field_size(struct sk_buff, pkt_type) == 1);

	{
		__u32 local_id = bpf_core_type_id_local(struct sk_buff);
		__u32 target_id = bpf_core_type_id_kernel(struct sk_buff);

		put(&facts, F_TYPE_IDS, local_id != 0 && target_id != 0);
		put(&observed, O_SKB_TYPE_ID_LOCAL, local_id);
		put(&observed, O_SKB_TYPE_ID_TARGET, target_id);
	}
}

static __always_inline void tcp_bitfield_facts(struct __sk_buff *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th;
	struct tcphdr___ae *th_ae;
	int has_ae = bpf_core_field_exists(struct tcphdr___ae, ae);
	__u32 res1_bits;
	__u64 ae = 0xff, reserved3 = 0xff, doff = 0xff;

	if (has_ae)
		res1_bits = 64 - __builtin_preserve_field_info(((struct tcphdr___ae *)0)->res1,
							       BPF_FIELD_RSHIFT_U64);
	else
		res1_bits = 64 - __builtin_preserve_field_info(((struct tcphdr *)0)->res1,
							       BPF_FIELD_RSHIFT_U64);
	put(&facts, F_TCP_RES1_WIDTH, res1_bits == (has_ae ? 3 : 4));
	put(&observed, O_TCP_RES1_BITS, res1_bits);
	put(&observed, O_TCP_HAS_AE, has_ae);

	/* the fixture sends Ethernet + IPv4 (ihl 5) + TCP */
	if ((void *)(ip + 1) > data_end || bpf_ntohs(eth->h_proto) != ETH_P_IP ||
	    ip->protocol != IPPROTO_TCP || BPF_CORE_READ_BITFIELD(ip, ihl) != 5)
		goto out;
	th = (void *)(ip + 1);
	th_ae = (void *)th;
	if ((void *)(th + 1) > data_end)
		goto out;
	doff = BPF_CORE_READ_BITFIELD(th, doff);
	if (has_ae) {
		/* 7.x: ae:1 then res1:3 */
		ae = BPF_CORE_READ_BITFIELD(th_ae, ae);
		reserved3 = BPF_CORE_READ_BITFIELD(th_ae, res1);
	} else {
		/* before: res1:4, AE its lowest bit */
		__u64 res1 = BPF_CORE_READ_BITFIELD(th, res1);

		ae = res1 & 1;
		reserved3 = res1 >> 1;
	}
out:
	put(&facts, F_AE_BIT, ae);
	put(&facts, F_RESERVED3, reserved3);
	put(&facts, F_DOFF, doff);
}

SEC("tc")
int tc_core_facts(struct __sk_buff *ctx)
{
	task_state_facts();
	drop_reason_facts();
	sk_buff_facts();
	tcp_bitfield_facts(ctx);
	put(&facts, F_TYPE_MATCHES,
	    bpf_core_type_matches(struct ethhdr___addrs) && !bpf_core_type_matches(struct ethhdr___mismatch));
	put(&facts, F_ENUM_STABLE, bpf_core_enum_value(enum bpf_func_id, BPF_FUNC_map_lookup_elem) == 1);
	return TC_ACT_OK;
}

/* task facts: 1 = holds; T_ARG0/T_ARG1 echo the raw_tp arguments. */
enum {
	T_PID = 0,      /* task->pid == low half of bpf_get_current_pid_tgid() */
	T_TGID = 1,     /* task->tgid == high half */
	T_COMM = 2,     /* task->comm == bpf_get_current_comm() */
	T_RUNNING = 3,  /* task->__state / ->state == TASK_RUNNING (0) */
	T_USER = 4,     /* !(task->flags & PF_KTHREAD) */
	T_ARG0 = 5,
	T_ARG1 = 6,
	T_MAX = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, T_MAX);
	__type(key, __u32);
	__type(value, __u64);
} task_facts SEC(".maps");

SEC("raw_tp/sys_enter")
int raw_tp_task(struct bpf_raw_tracepoint_args *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	union {
		char c[16];
		__u64 w[2];
	} comm = {}, kcomm = {};
	__u64 state = ~0ULL, diff;

	put(&task_facts, T_ARG0, ctx->args[0]);
	put(&task_facts, T_ARG1, ctx->args[1]);

	put(&task_facts, T_PID, (__u32)BPF_CORE_READ(task, pid) == (__u32)pid_tgid);
	put(&task_facts, T_TGID, (__u32)BPF_CORE_READ(task, tgid) == (__u32)(pid_tgid >> 32));

	/* Both copies are NUL-padded (strncpy / zero-initialized buffer). */
	bpf_get_current_comm(comm.c, sizeof(comm.c));
	BPF_CORE_READ_STR_INTO(&kcomm.c, task, comm);
	/* Compared as two words: a byte loop becomes one branch per byte, and
	 * 16 of those double the verifier's states until 5.10 and 6.1 give up
	 * at a million instructions. */
	diff = (comm.w[0] ^ kcomm.w[0]) | (comm.w[1] ^ kcomm.w[1]);
	put(&task_facts, T_COMM, diff == 0 && comm.c[0] != 0);

	if (bpf_core_field_exists(struct task_struct___new, __state)) {
		struct task_struct___new *t = (void *)task;

		state = BPF_CORE_READ(t, __state);
	} else if (bpf_core_field_exists(struct task_struct___old, state)) {
		struct task_struct___old *t = (void *)task;

		state = BPF_CORE_READ(t, state);
	}
	put(&task_facts, T_RUNNING, state == 0);
	put(&task_facts, T_USER, !(BPF_CORE_READ(task, flags) & PF_KTHREAD));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcp_watch: TCP connections over loopback made by the workload process,
 * seen at connect (kprobe and fexit on tcp_v4_connect, fentry on
 * tcp_v6_connect) and at accept (kretprobe on inet_csk_accept, whose
 * arguments changed in 6.10 but whose return value did not).
 *
 * Fixtures are workload cases: a child of the agent listens on loopback,
 * connects `count` times and accepts each connection; its pid is in
 * `target_tgid`.
 *
 * counters (ARRAY, u32 -> u64):
 *   0 kprobe/tcp_v4_connect   1 fexit/tcp_v4_connect returning 0
 *   2 kretprobe/inet_csk_accept returning a socket   3 fentry/tcp_v6_connect
 * events (RINGBUF): from fexit/tcp_v4_connect, the connected socket's
 * { u16 dport (host order), u16 family } read through CO-RE from
 * sk->__sk_common.
 */
#include "harness_uapi.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tracing.h"

struct sock_common {
	__be16 skc_dport;
	unsigned short skc_family;
} __attribute__((preserve_access_index));
struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

enum { KPROBE_CONNECT4, FEXIT_CONNECT4, KRETPROBE_ACCEPT, FENTRY_CONNECT6, SLOTS };

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
	__u16 dport;
	__u16 family;
};

static __always_inline void count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("kprobe/tcp_v4_connect")
int kprobe_tcp_v4_connect(struct pt_regs *ctx)
{
	if (from_workload())
		count(KPROBE_CONNECT4);
	return 0;
}

/* tcp_v4_connect(struct sock *sk, struct sockaddr *uaddr, int addr_len) */
SEC("fexit/tcp_v4_connect")
int fexit_tcp_v4_connect(__u64 *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	struct event e = {};

	if (!from_workload() || (int)ctx[3] != 0)
		return 0;
	count(FEXIT_CONNECT4);
	e.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	bpf_ringbuf_output(&events, &e, sizeof(e), 0);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int kretprobe_inet_csk_accept(struct pt_regs *ctx)
{
	if (from_workload() && ctx->ax != 0)
		count(KRETPROBE_ACCEPT);
	return 0;
}

SEC("fentry/tcp_v6_connect")
int fentry_tcp_v6_connect(__u64 *ctx)
{
	if (from_workload())
		count(FENTRY_CONNECT6);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * udp_drop_watch: watches real packets being freed as drops (tracepoint
 * skb:kfree_skb) and counts the UDP datagrams the harness agent sent over
 * loopback to a closed port, by protocol, lengths and drop reason.
 *
 * Fixtures of this object are traffic cases: the agent attaches the program
 * (BPF_RAW_TRACEPOINT_OPEN "kfree_skb"), sends exactly the datagrams the
 * fixture describes from 127.0.0.1 / ::1 to a port where nothing listens,
 * detaches and dumps `drops`. Every field of the key is read from the real
 * sk_buff through CO-RE: skb->len, skb->protocol, skb->head plus
 * skb->network_header (IPv4 / IPv6 header) and skb->transport_header (UDP
 * header) - offsets that differ per kernel.
 *
 * Only datagrams from a source port in [WATCH_SPORT_FIRST, WATCH_SPORT_LAST]
 * between loopback addresses are counted. Linux never hands out those ports
 * as ephemeral ones (32768-60999) and the agent binds the source port it
 * sends from, so no other UDP socket in the namespace can send from it: on
 * the host entry, other loopback traffic cannot pollute the counts, and two
 * agents at once fail to bind instead of counting each other's datagrams.
 *
 * The drop reason: kfree_skb's raw_tp arguments are (skb, location) on 5.10
 * and (skb, location, enum skb_drop_reason reason[, rx_sk]) from 5.17, where
 * SKB_DROP_REASON_NO_SOCKET is 2 on 6.1 and 3 on 6.12+. The enum value
 * relocation gives this kernel's number; a kernel without the enum (5.10)
 * has no reasons, and its UDP "no socket" path is the only kfree_skb a
 * datagram to a closed port meets. So the key's `reason` is kernel
 * independent: 1 = no socket (or no reasons on this kernel), 2 = any other.
 */
#include "harness_uapi.h"
#include "net_types.h"
#include "kernel_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#define WATCH_SPORT_FIRST 61500
#define WATCH_SPORT_LAST 61599

#define REASON_NO_SOCKET 1
#define REASON_OTHER 2

/* 20 bytes, no implicit padding: fixtures write it as
 * "u16:l3 u8:l4 u8:reason u16:sport u16:dport u16:udp_len u16:0 u32:skb_len u32:ip_len" */
struct drop_key {
	__u16 l3_proto; /* skb->protocol, host order: 0x0800 / 0x86DD */
	__u8 l4_proto;  /* IPv4 protocol / IPv6 next header: 17 */
	__u8 reason;    /* REASON_* */
	__u16 sport;    /* UDP header, host order */
	__u16 dport;
	__u16 udp_len;  /* UDP header's length field: 8 + payload */
	__u16 zero;
	__u32 skb_len;  /* skb->len at the drop: the IP header is pulled by then */
	__u32 ip_len;   /* IPv4 tot_len, or IPv6 40 + payload_len */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct drop_key);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline int is_loopback6(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] == 0 && a->in6_u.u6_addr32[1] == 0 &&
	       a->in6_u.u6_addr32[2] == 0 && a->in6_u.u6_addr32[3] == bpf_htonl(1);
}

SEC("raw_tp/kfree_skb")
int raw_tp_udp_drop(struct bpf_raw_tracepoint_args *ctx)
{
	struct sk_buff *skb = (struct sk_buff *)ctx->args[0];
	struct drop_key key = {};
	unsigned char *head;
	struct udphdr *uh;
	__u16 nh, th, sport;
	__u64 zero = 0, *count;

	head = BPF_CORE_READ(skb, head);
	nh = BPF_CORE_READ(skb, network_header);
	th = BPF_CORE_READ(skb, transport_header);
	key.l3_proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));

	if (key.l3_proto == ETH_P_IP) {
		struct iphdr *ip = (void *)(head + nh);

		if (BPF_CORE_READ(ip, protocol) != IPPROTO_UDP ||
		    BPF_CORE_READ(ip, saddr) != bpf_htonl(0x7f000001) ||
		    BPF_CORE_READ(ip, daddr) != bpf_htonl(0x7f000001))
			return 0;
		key.l4_proto = IPPROTO_UDP;
		key.ip_len = bpf_ntohs(BPF_CORE_READ(ip, tot_len));
	} else if (key.l3_proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = (void *)(head + nh);
		struct in6_addr saddr = {}, daddr = {};

		if (BPF_CORE_READ(ip6, nexthdr) != IPPROTO_UDP)
			return 0;
		BPF_CORE_READ_INTO(&saddr, ip6, saddr);
		BPF_CORE_READ_INTO(&daddr, ip6, daddr);
		if (!is_loopback6(&saddr) || !is_loopback6(&daddr))
			return 0;
		key.l4_proto = IPPROTO_UDP;
		key.ip_len = 40 + bpf_ntohs(BPF_CORE_READ(ip6, payload_len));
	} else {
		return 0;
	}

	uh = (void *)(head + th);
	sport = bpf_ntohs(BPF_CORE_READ(uh, source));
	if (sport < WATCH_SPORT_FIRST || sport > WATCH_SPORT_LAST)
		return 0;
	key.sport = sport;
	key.dport = bpf_ntohs(BPF_CORE_READ(uh, dest));
	key.udp_len = bpf_ntohs(BPF_CORE_READ(uh, len));
	key.skb_len = BPF_CORE_READ(skb, len);

	if (bpf_core_type_exists(enum skb_drop_reason)) {
		/* Only reached where the tracepoint has the reason argument:
		 * the relocation makes the condition a constant, and the
		 * verifier never visits (so never counts) the args[2] access
		 * on 5.10, whose raw_tracepoint_open would refuse a program
		 * reading past the tracepoint's two arguments. */
		__u64 reason = ctx->args[2];

		key.reason = reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NO_SOCKET)
				     ? REASON_NO_SOCKET
				     : REASON_OTHER;
	} else {
		key.reason = REASON_NO_SOCKET;
	}

	count = bpf_map_lookup_elem(&drops, &key);
	if (!count) {
		/* NOEXIST: if another CPU inserted the key meanwhile, its
		 * entry is kept and the lookup below finds it. */
		bpf_map_update_elem(&drops, &key, &zero, BPF_NOEXIST);
		count = bpf_map_lookup_elem(&drops, &key);
	}
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

/* The same datagrams on their way out, for a traffic case that attaches a
 * kprobe (the agent attaches any tracing kind, as for workload cases):
 * udp_sendmsg(struct sock *sk, ...) counted by the socket's local port, if
 * it is a watched source port. sk->__sk_common.skc_num through CO-RE. */
struct sock_common___w {
	__u16 skc_num;
} __attribute__((preserve_access_index));
struct sock___w {
	struct sock_common___w __sk_common;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u16);
	__type(value, __u64);
} sends SEC(".maps");

/* x86_64 kprobe context: the first argument is in rdi (struct pt_regs, offset 112). */
struct pt_regs___rdi {
	unsigned long regs[14];
	unsigned long di;
};

SEC("kprobe/udp_sendmsg")
int kprobe_udp_sendmsg(struct pt_regs___rdi *ctx)
{
	struct sock___w *sk = (struct sock___w *)ctx->di;
	__u16 port = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u64 one = 1, *count;

	if (port < WATCH_SPORT_FIRST || port > WATCH_SPORT_LAST)
		return 0;
	count = bpf_map_lookup_elem(&sends, &port);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&sends, &port, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ttl_rewrite: a tc (SCHED_CLS) program that forwards like a router would:
 * it decrements the IPv4 TTL, updating the header checksum incrementally
 * (RFC 1624), and the IPv6 hop limit. A packet whose TTL / hop limit is 0 or 1
 * would expire: it is dropped (TC_ACT_SHOT). Non-IP packets pass untouched
 * (TC_ACT_OK); IP packets with a truncated or inconsistent header are dropped.
 * Up to two VLAN tags are skipped.
 *
 * Header fields are reached through CO-RE (preserve_access_index structs), the
 * version/ihl bitfields through BPF_CORE_READ_BITFIELD.
 *
 * Map `ttl_stats` (ARRAY, u32 key, u64 value): [0] IPv4 rewritten,
 * [1] IPv6 rewritten, [2] expired (dropped), [3] not IP, [4] malformed.
 */
#include "harness_uapi.h"
#include "net_types.h"
#include "csum.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

enum {
	TTL_V4_REWRITTEN = 0,
	TTL_V6_REWRITTEN = 1,
	TTL_EXPIRED = 2,
	TTL_NOT_IP = 3,
	TTL_MALFORMED = 4,
	TTL_STAT_MAX = 8,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TTL_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ttl_stats SEC(".maps");

static __always_inline int count(__u32 key, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&ttl_stats, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	return verdict;
}

static __always_inline int rewrite_ipv4(struct iphdr *ip, void *data_end)
{
	__u16 old, new;
	__u8 ttl, proto;

	if ((void *)(ip + 1) > data_end)
		return count(TTL_MALFORMED, TC_ACT_SHOT);
	if (BPF_CORE_READ_BITFIELD(ip, version) != 4 || BPF_CORE_READ_BITFIELD(ip, ihl) < 5)
		return count(TTL_MALFORMED, TC_ACT_SHOT);
	ttl = ip->ttl;
	if (ttl <= 1)
		return count(TTL_EXPIRED, TC_ACT_SHOT);

	/* TTL and protocol form one 16-bit word of the header (bytes 8-9),
	 * which the checksum covers as a unit: the old and new words, in
	 * network order like the checksum as loaded. */
	proto = ip->protocol;
	old = bpf_htons(((__u16)ttl << 8) | proto);
	new = bpf_htons(((__u16)(ttl - 1) << 8) | proto);
	ip->ttl = ttl - 1;
	ip->check = csum_replace16(ip->check, old, new);
	return count(TTL_V4_REWRITTEN, TC_ACT_OK);
}

static __always_inline int rewrite_ipv6(struct ipv6hdr *ip6, void *data_end)
{
	__u8 hop;

	if ((void *)(ip6 + 1) > data_end)
		return count(TTL_MALFORMED, TC_ACT_SHOT);
	if (BPF_CORE_READ_BITFIELD(ip6, version) != 6)
		return count(TTL_MALFORMED, TC_ACT_SHOT);
	hop = ip6->hop_limit;
	if (hop <= 1)
		return count(TTL_EXPIRED, TC_ACT_SHOT);
	ip6->hop_limit = hop - 1;
	return count(TTL_V6_REWRITTEN, TC_ACT_OK);
}

SEC("tc")
int tc_ttl_rewrite(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	void *nh;
	__u16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return count(TTL_MALFORMED, TC_ACT_SHOT);
	proto = bpf_ntohs(eth->h_proto);
	nh = eth + 1;
#pragma unroll
	for (i = 0; i < 2; i++) {
		struct vlan_hdr *vh = nh;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(vh + 1) > data_end)
			return count(TTL_MALFORMED, TC_ACT_SHOT);
		proto = bpf_ntohs(vh->h_vlan_encapsulated_proto);
		nh = vh + 1;
	}
	if (proto == ETH_P_IP)
		return rewrite_ipv4(nh, data_end);
	if (proto == ETH_P_IPV6)
		return rewrite_ipv6(nh, data_end);
	return count(TTL_NOT_IP, TC_ACT_OK);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

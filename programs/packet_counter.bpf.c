// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * packet_counter: an XDP program that parses Ethernet (with up to two
 * 802.1Q/802.1ad tags), IPv4 (with options and fragments), IPv6 (with up to
 * four extension headers), and TCP/UDP/ICMP/ICMPv6, and counts packets.
 *
 * Every header read goes through a struct declared with preserve_access_index
 * (programs/include/net_types.h), and bitfields (iphdr.ihl/version,
 * ipv6hdr.version, tcphdr.doff) are read with BPF_CORE_READ_BITFIELD, so the
 * object carries FIELD_BYTE_OFFSET, FIELD_BYTE_SIZE, FIELD_LSHIFT_U64 and
 * FIELD_RSHIFT_U64 relocations as well as plain field offsets.
 *
 * Verdicts: malformed or truncated packets are dropped (XDP_DROP); everything
 * else passes (XDP_PASS).
 *
 * Maps (both ARRAY, u32 key, u64 value, zero at load):
 *   counters[proto]  packets whose L4 header was complete, by IP protocol
 *                    number (TCP 6, UDP 17, ICMP 1, ICMPv6 58, others as
 *                    their number without an L4 check);
 *   stats[STAT_*]    see below.
 */
#include "harness_uapi.h"
#include "net_types.h"
#include "verifier.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

enum {
	STAT_TOTAL = 0,     /* every packet the program saw */
	STAT_MALFORMED = 1, /* dropped: truncated or inconsistent headers */
	STAT_NON_IP = 2,    /* passed: neither IPv4 nor IPv6 */
	STAT_FRAGMENT = 3,  /* passed: non-first fragment, no L4 header */
	STAT_UNPARSED = 4,  /* passed: more IPv6 extension headers than we walk */
	STAT_MAX = 8,
};

#define MAX_VLAN_TAGS 2
#define MAX_IPV6_EXT 4

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void bump(void *map, __u32 key)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline int malformed(void)
{
	bump(&stats, STAT_MALFORMED);
	return XDP_DROP;
}

/* A header ending at p must lie within both the packet (data_end: the only
 * bound the verifier learns from) and the IP payload (end). */
#define BEYOND(p) ((void *)(p) > data_end || (void *)(p) > end)

/* Check the L4 header of `proto` starting at l4 (end: the IP payload end).
 * In a first fragment (more fragments follow) the UDP length covers the whole
 * datagram, so it is not checked against this packet's end.
 * Returns 0 if complete, -1 if not. */
static __always_inline int l4_complete(__u8 proto, void *l4, void *end, void *data_end,
				       int first_fragment)
{
	/* Hide from the compiler that end <= data_end is already known, or it
	 * drops the data_end half of BEYOND() and the verifier rejects. */
	VERIFIER_OPAQUE(end);
	switch (proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		__u32 doff;

		if (BEYOND(th + 1))
			return -1;
		doff = BPF_CORE_READ_BITFIELD(th, doff);
		if (doff < 5 || BEYOND(l4 + doff * 4))
			return -1;
		return 0;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;
		__u16 len;

		if (BEYOND(uh + 1))
			return -1;
		len = bpf_ntohs(uh->len);
		VERIFIER_MASK(len, 0xffff); /* byte swap: no bounds on 5.10-6.12 */
		if (len < sizeof(*uh) || (!first_fragment && BEYOND(l4 + len)))
			return -1;
		return 0;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *ih = l4;

		/* type, code, checksum and the 4-byte rest of header */
		if (BEYOND((void *)ih + 8))
			return -1;
		return 0;
	}
	case IPPROTO_ICMPV6: {
		struct icmp6hdr *ih = l4;

		if (BEYOND((void *)ih + 8))
			return -1;
		return 0;
	}
	default:
		return 0;
	}
}

static __always_inline int count_l4(__u8 proto, void *l4, void *end, void *data_end,
				    int first_fragment)
{
	if (l4_complete(proto, l4, end, data_end, first_fragment))
		return malformed();
	bump(&counters, proto);
	return XDP_PASS;
}

static __always_inline int handle_ipv4(void *nh, void *data_end)
{
	struct iphdr *ip = nh;
	__u32 ihl, version, tot_len;
	__u16 frag;

	if ((void *)(ip + 1) > data_end)
		return malformed();
	version = BPF_CORE_READ_BITFIELD(ip, version);
	ihl = BPF_CORE_READ_BITFIELD(ip, ihl);
	if (version != 4 || ihl < 5)
		return malformed();
	tot_len = bpf_ntohs(ip->tot_len);
	VERIFIER_MASK(tot_len, 0xffff); /* byte swap: no bounds on 5.10-6.12 */
	if (tot_len < ihl * 4 || nh + tot_len > data_end)
		return malformed();
	frag = bpf_ntohs(ip->frag_off);
	if (frag & IP_OFFSET) {
		bump(&stats, STAT_FRAGMENT);
		return XDP_PASS;
	}
	return count_l4(ip->protocol, nh + ihl * 4, nh + tot_len, data_end, !!(frag & IP_MF));
}

static __always_inline int handle_ipv6(void *nh, void *data_end)
{
	struct ipv6hdr *ip6 = nh;
	void *cur, *end;
	__u32 payload_len;
	__u8 next;
	int i, first_fragment = 0;

	if ((void *)(ip6 + 1) > data_end)
		return malformed();
	if (BPF_CORE_READ_BITFIELD(ip6, version) != 6)
		return malformed();
	payload_len = bpf_ntohs(ip6->payload_len);
	VERIFIER_MASK(payload_len, 0xffff); /* byte swap: no bounds on 5.10-6.12 */
	end = (void *)(ip6 + 1) + payload_len;
	if (end > data_end)
		return malformed();
	next = ip6->nexthdr;
	cur = ip6 + 1;
	VERIFIER_OPAQUE(end); /* see l4_complete() */

#pragma unroll
	for (i = 0; i < MAX_IPV6_EXT; i++) {
		switch (next) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS: {
			struct ipv6_opt_hdr *oh = cur;

			if (BEYOND(oh + 1))
				return malformed();
			next = oh->nexthdr;
			cur += ((__u32)oh->hdrlen + 1) * 8;
			break;
		}
		case IPPROTO_AH: {
			struct ipv6_opt_hdr *oh = cur;

			if (BEYOND(oh + 1))
				return malformed();
			next = oh->nexthdr;
			cur += ((__u32)oh->hdrlen + 2) * 4;
			break;
		}
		case IPPROTO_FRAGMENT: {
			struct frag_hdr *fh = cur;

			if (BEYOND(fh + 1))
				return malformed();
			if (bpf_ntohs(fh->frag_off) & 0xFFF8) {
				bump(&stats, STAT_FRAGMENT);
				return XDP_PASS;
			}
			first_fragment = bpf_ntohs(fh->frag_off) & 1;
			next = fh->nexthdr;
			cur += sizeof(*fh);
			break;
		}
		case IPPROTO_NONE:
			bump(&counters, IPPROTO_NONE);
			return XDP_PASS;
		default:
			if (cur > end)
				return malformed();
			return count_l4(next, cur, end, data_end, first_fragment);
		}
	}
	bump(&stats, STAT_UNPARSED);
	return XDP_PASS;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *nh;
	__u16 proto;
	int i;

	bump(&stats, STAT_TOTAL);
	if ((void *)(eth + 1) > data_end)
		return malformed();
	proto = bpf_ntohs(eth->h_proto);
	nh = eth + 1;

#pragma unroll
	for (i = 0; i < MAX_VLAN_TAGS; i++) {
		struct vlan_hdr *vh = nh;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(vh + 1) > data_end)
			return malformed();
		proto = bpf_ntohs(vh->h_vlan_encapsulated_proto);
		nh = vh + 1;
	}

	if (proto == ETH_P_IP)
		return handle_ipv4(nh, data_end);
	if (proto == ETH_P_IPV6)
		return handle_ipv6(nh, data_end);
	bump(&stats, STAT_NON_IP);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * udp_port_filter: a socket filter (SOCKET_FILTER) that accepts only UDP
 * datagrams to one destination port, over IPv4 or IPv6, and drops the rest.
 * The port is a `const volatile` global in .rodata (53 unless the loader
 * rewrites .rodata before loading), so the object needs global-data support.
 *
 * A socket filter returns how many bytes of the packet to keep: the whole
 * packet (skb->len) when accepted, 0 when dropped.
 *
 * Socket filters cannot read packet memory directly; headers are copied with
 * bpf_skb_load_bytes_relative() from the network header, at offsets computed
 * by CO-RE (bpf_core_field_offset), and parsed from the stack copy with CO-RE
 * field and bitfield reads. IPv4 non-first fragments carry no UDP header and
 * are dropped; IPv6 extension headers are not walked (next header must be
 * UDP).
 */
#include "harness_uapi.h"
#include "net_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#define BPF_HDR_START_NET 1

const volatile __u16 udp_port = 53;

static __always_inline int udp_dport_matches(struct __sk_buff *skb, __u32 l4_off)
{
	struct udphdr uh;

	if (bpf_skb_load_bytes_relative(skb, l4_off, &uh, sizeof(uh), BPF_HDR_START_NET))
		return 0;
	return bpf_ntohs(uh.dest) == udp_port;
}

SEC("socket")
int socket_udp_port(struct __sk_buff *skb)
{
	__u32 proto = skb->protocol;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		__u32 ihl;

		if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
			return 0;
		ihl = BPF_CORE_READ_BITFIELD(&ip, ihl);
		if (BPF_CORE_READ_BITFIELD(&ip, version) != 4 || ihl < 5)
			return 0;
		if (ip.protocol != IPPROTO_UDP || (bpf_ntohs(ip.frag_off) & IP_OFFSET))
			return 0;
		return udp_dport_matches(skb, ihl * 4) ? skb->len : 0;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		__u8 next;

		if (bpf_skb_load_bytes_relative(skb, bpf_core_field_offset(struct ipv6hdr, nexthdr),
						&next, 1, BPF_HDR_START_NET))
			return 0;
		if (next != IPPROTO_UDP)
			return 0;
		return udp_dport_matches(skb, sizeof(struct ipv6hdr)) ? skb->len : 0;
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * net_types.h - kernel network header structures, declared for CO-RE.
 *
 * Every struct carries preserve_access_index, so each member access in a
 * program becomes a CO-RE field relocation resolved against the running
 * kernel's BTF (struct ethhdr, iphdr, ... exist in the vmlinux BTF of every
 * kernel in the matrix). Only the members the corpus uses are declared; CO-RE
 * matches by name, so a partial declaration is fine. Bitfields are declared in
 * little-endian order (x86_64, arm64), as the kernel does.
 */
#ifndef HARNESS_NET_TYPES_H
#define HARNESS_NET_TYPES_H

#include "harness_uapi.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define IPPROTO_HOPOPTS 0
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH 51
#define IPPROTO_ICMPV6 58
#define IPPROTO_NONE 59
#define IPPROTO_DSTOPTS 60

/* iphdr.frag_off bits (host order after bpf_ntohs) */
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

#define PAC __attribute__((preserve_access_index))

struct ethhdr {
	unsigned char h_dest[6];
	unsigned char h_source[6];
	__be16 h_proto;
} PAC;

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
} PAC;

struct iphdr {
	__u8 ihl : 4;
	__u8 version : 4;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
} PAC;

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be16 u6_addr16[8];
		__be32 u6_addr32[4];
	} in6_u;
} PAC;

struct ipv6hdr {
	__u8 priority : 4;
	__u8 version : 4;
	__u8 flow_lbl[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	struct in6_addr saddr;
	struct in6_addr daddr;
} PAC;

/* hop-by-hop, routing and destination options headers share this prefix */
struct ipv6_opt_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
} PAC;

struct frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
} PAC;

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u16 res1 : 4;
	__u16 doff : 4;
	__u16 fin : 1;
	__u16 syn : 1;
	__u16 rst : 1;
	__u16 psh : 1;
	__u16 ack : 1;
	__u16 urg : 1;
	__u16 ece : 1;
	__u16 cwr : 1;
	__be16 window;
	__sum16 check;
	__be16 urg_ptr;
} PAC;

struct udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__sum16 check;
} PAC;

struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
} PAC;

struct icmp6hdr {
	__u8 icmp6_type;
	__u8 icmp6_code;
	__sum16 icmp6_cksum;
} PAC;

#endif /* HARNESS_NET_TYPES_H */

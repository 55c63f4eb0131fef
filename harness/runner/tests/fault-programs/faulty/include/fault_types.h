/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The few UAPI definitions the fault-test programs need (fixed ABI, no CO-RE). */
#ifndef FAULT_TYPES_H
#define FAULT_TYPES_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef signed short __s16;
typedef unsigned short __u16;
typedef signed int __s32;
typedef unsigned int __u32;
typedef signed long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u16 __sum16;
typedef __u32 __wsum;

#define BPF_MAP_TYPE_ARRAY 2
#define XDP_DROP 1
#define XDP_PASS 2
#define SK_DROP 0
#define SK_PASS 1

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

struct bpf_sk_lookup {
	__u64 cookie; /* union with struct bpf_sock *sk */
	__u32 family;
	__u32 protocol;
	__u32 remote_ip4;
	__u32 remote_ip6[4];
	__be16 remote_port;
	__u16 pad;
	__u32 local_ip4;
	__u32 local_ip6[4];
	__u32 local_port;
};

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * harness_uapi.h - the stable user-space ABI the corpus programs need.
 *
 * Written for this project (no kernel or libbpf header is included here),
 * so the build depends only on programs/include and libbpf's helper headers.
 *
 * Everything in this file is fixed ABI: the context structures are rewritten
 * by the verifier (ctx accesses are converted by offset), so they are declared
 * *without* preserve_access_index, exactly as the UAPI lays them out. Only the
 * leading members we use are declared; the verifier checks offsets, not the
 * size of our declaration.
 */
#ifndef HARNESS_UAPI_H
#define HARNESS_UAPI_H

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

/* map types (enum bpf_map_type) */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2

/* bpf_map_update_elem flags */
#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_EXIST 2

/* XDP verdicts (enum xdp_action) */
#define XDP_ABORTED 0
#define XDP_DROP 1
#define XDP_PASS 2
#define XDP_TX 3
#define XDP_REDIRECT 4

/* tc verdicts (linux/pkt_cls.h) */
#define TC_ACT_UNSPEC (-1)
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* struct xdp_md: UAPI, offsets fixed. */
struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

/* struct __sk_buff: UAPI, offsets fixed; the leading members up to data_end. */
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
};

/* struct bpf_raw_tracepoint_args: the raw_tp context, an array of u64 args. */
struct bpf_raw_tracepoint_args {
	__u64 args[0];
};

#endif /* HARNESS_UAPI_H */

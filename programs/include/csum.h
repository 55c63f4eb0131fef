/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* csum.h - Internet checksum arithmetic for BPF programs. */
#ifndef HARNESS_CSUM_H
#define HARNESS_CSUM_H

#include "harness_uapi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/*
 * RFC 1624 eqn. 3: the checksum after one 16-bit word of the covered data
 * changes from old to new: HC' = ~(~HC + ~m + m'). One's-complement sums are
 * byte-order independent, so the words may be used as loaded from the packet
 * (network order) without swapping, as long as all three are loaded alike.
 */
static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + (__u32) new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

#endif /* HARNESS_CSUM_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * verifier.h - small tricks that keep programs acceptable to the strictest
 * verifier in the matrix (5.10).
 *
 * The compiler optimizes for the machine, the verifier reasons about each
 * instruction alone, and older verifiers know less:
 *
 * - Up to 6.12 at least, the verifier does not track bounds through byte swaps
 *   (`r = be16 r` leaves r fully unknown), so a length read from the packet
 *   and converted with bpf_ntohs() cannot be added to a packet pointer, even
 *   though it is obviously 16 bits wide. The compiler knows that too and
 *   drops an explicit `& 0xffff`; VERIFIER_MASK() keeps the mask in the code.
 *
 * - VERIFIER_OPAQUE() hides what the compiler has proven about a value, so it
 *   keeps a comparison the verifier needs but the compiler thinks redundant.
 */
#ifndef HARNESS_VERIFIER_H
#define HARNESS_VERIFIER_H

/* v &= mask, in an instruction the compiler may not remove. */
#define VERIFIER_MASK(v, mask) asm volatile("%[x] &= %[m]" : [x] "+r"(v) : [m] "i"(mask))

/* The compiler forgets everything it knew about v. */
#define VERIFIER_OPAQUE(v) asm volatile("" : "+r"(v))

#endif /* HARNESS_VERIFIER_H */

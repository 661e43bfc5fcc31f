/*
 * seq.h — RTP sequence-number and timestamp wrap-around arithmetic, in ONE
 * place (every module that compares or unwraps 16-bit sequence numbers or
 * 32-bit timestamps uses these; nothing does it inline).
 *
 * Serial-number arithmetic (RFC 1982 style): `a` is newer than `b` when the
 * forward distance from b to a is less than half the space. The difference
 * is the signed distance a - b reduced to the half-open range
 * [-2^(n-1), 2^(n-1)). Exactly half the space apart (32768 / 2^31) counts as
 * "older", which keeps newer() antisymmetric.
 *
 * Unwrapping extends a 16- or 32-bit value to 64 bits relative to the newest
 * value seen so far: the result is the 64-bit value closest to that
 * reference. The first value unwraps to itself (cycle 0); a value just before
 * the first (a late packet from before the start) may unwrap below zero.
 * Older values never move the reference, so a late packet cannot pull the
 * cycle count backwards.
 */
#ifndef MC_SEQ_H
#define MC_SEQ_H

#include <stdint.h>

#include "compat.h"

/* a - b as a signed 16-bit distance, in [-32768, 32767]. */
MC_INLINE int32_t mc_seq_diff(uint16_t a, uint16_t b)
{
    uint16_t d = (uint16_t)(a - b);
    return d < 0x8000u ? (int32_t)d : (int32_t)d - 0x10000;
}

/* 1 when a is newer than b (a != b, forward distance < 2^15). */
MC_INLINE int mc_seq_newer(uint16_t a, uint16_t b) { return mc_seq_diff(a, b) > 0; }

/* a - b as a signed 32-bit distance, in [-2^31, 2^31 - 1]. */
MC_INLINE int64_t mc_ts_diff(uint32_t a, uint32_t b)
{
    uint32_t d = a - b;
    return d < 0x80000000u ? (int64_t)d : (int64_t)d - (int64_t)0x100000000LL;
}

MC_INLINE int mc_ts_newer(uint32_t a, uint32_t b) { return mc_ts_diff(a, b) > 0; }

/* Unwrap state: the newest extended value seen. Zero-initialise, then use. */
typedef struct mc_unwrap {
    int64_t last;   /* newest extended value */
    int32_t valid;  /* 0 until the first value */
} mc_unwrap;

/* Extend a 16-bit sequence number to 64 bits. */
MC_INLINE int64_t mc_seq_unwrap(mc_unwrap *u, uint16_t seq)
{
    if (!u->valid) {
        u->valid = 1;
        u->last = seq;
        return seq;
    }
    int64_t ext = u->last + mc_seq_diff(seq, (uint16_t)u->last);
    if (ext > u->last)
        u->last = ext;
    return ext;
}

/* Extended value without updating the reference (a peek). */
MC_INLINE int64_t mc_seq_unwrap_peek(const mc_unwrap *u, uint16_t seq)
{
    if (!u->valid)
        return seq;
    return u->last + mc_seq_diff(seq, (uint16_t)u->last);
}

/* Extend a 32-bit RTP timestamp to 64 bits. */
MC_INLINE int64_t mc_ts_unwrap(mc_unwrap *u, uint32_t ts)
{
    if (!u->valid) {
        u->valid = 1;
        u->last = ts;
        return ts;
    }
    int64_t ext = u->last + mc_ts_diff(ts, (uint32_t)u->last);
    if (ext > u->last)
        u->last = ext;
    return ext;
}

MC_INLINE int64_t mc_ts_unwrap_peek(const mc_unwrap *u, uint32_t ts)
{
    if (!u->valid)
        return ts;
    return u->last + mc_ts_diff(ts, (uint32_t)u->last);
}

#endif /* MC_SEQ_H */

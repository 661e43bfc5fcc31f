/*
 * rtcp.h — internal RTCP helpers (the parse/build API is public, in
 * mediacore.h region `rtp`).
 *
 * Common header (RFC 3550 6.4.1):
 *  0                   1                   2                   3
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P|  RC/FMT |      PT       |     length (words - 1)        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
#ifndef MC_RTCP_H
#define MC_RTCP_H

#include <stdint.h>

#include "compat.h"
#include "mediacore.h"

/* NTP timestamp (32.32 since 1900) from a Unix-epoch time in ns. */
uint64_t mc_ntp_from_unix_ns(int64_t unix_ns);
/* Middle 32 bits of an NTP timestamp (LSR, RFC 3550 6.4.1). */
MC_INLINE uint32_t mc_ntp_middle32(uint64_t ntp) { return (uint32_t)(ntp >> 16); }
/* Nanoseconds to 1/65536 s units (DLSR), saturating at 0 and 2^32-1. */
uint32_t mc_ns_to_q16(int64_t ns);

#endif /* MC_RTCP_H */

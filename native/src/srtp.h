/*
 * srtp.h — internal SRTP/SRTCP interface for the native engine.
 *
 * The public part (mc_srtp_create, mc_srtp_protect, mc_srtp_unprotect,
 * mc_srtcp_protect, mc_srtcp_unprotect, mc_srtp_get_stats, mc_srtp_free and
 * the profile / flag constants) lives in mediacore.h, region `srtp`, with the
 * full contract: statuses, thread roles, key formats. This header adds what
 * only C callers need.
 *
 * How the engine uses it (one context per direction of a session):
 *   rx = mc_srtp_create(profile, remote_key_salt, len, window, max_ssrcs, 0, &rx)
 *   tx = mc_srtp_create(profile, local_key_salt, len, 0, max_ssrcs, MC_SRTP_OUTBOUND, &tx)
 *   per datagram on the I/O thread:
 *     mc_srtp_is_rtcp(p, n) ? mc_srtcp_unprotect(rx, p, n, &n)
 *                           : mc_srtp_unprotect_rtp(rx, p, n, &n, &header_length)
 *   send: build RTP in a buffer with MC_SRTP_MAX_TRAILER spare bytes, then
 *     mc_srtp_protect(tx, p, n, capacity, &n)
 * A status < 0 is already counted in the context's stats; drop the packet.
 */
#ifndef MC_SRTP_H
#define MC_SRTP_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "mediacore.h"

#ifdef __cplusplus
extern "C" {
#endif

/* [io] mc_srtp_unprotect that also returns the RTP header length (12 + 4*CC
 * + header extension) found while walking the header, so the caller's RTP
 * parser can start at the payload. *header_length <= *out_length. */
mc_status mc_srtp_unprotect_rtp(mc_srtp *ctx, uint8_t *packet, size_t length, size_t *out_length,
                                size_t *header_length);

/* [any] RFC 5761 section 4 demultiplexing of RTP and RTCP on one port: an
 * RTCP packet has a second byte (M bit + PT) of 192..223 (PT 64..95 with the
 * marker bit set never occurs for RTP payload types in use). */
MC_INLINE int mc_srtp_is_rtcp(const uint8_t *packet, size_t length)
{
    return length >= 2 && packet[1] >= 192 && packet[1] <= 223;
}

#ifdef __cplusplus
}
#endif

#endif /* MC_SRTP_H */

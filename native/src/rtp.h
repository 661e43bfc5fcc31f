/*
 * rtp.h — internal RTP helpers for the engine (the public parse/serialize
 * API is in mediacore.h, region `rtp`).
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                           timestamp                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |           synchronization source (SSRC) identifier            |
 * +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 * |            contributing source (CSRC) identifiers             |
 * |                             ....                              |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | defined by profile (0xBEDE...) |           length (words)     |  if X
 * |                        header extension                       |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * RFC 3550 5.1 and 5.3.1; RFC 8285 for the extension elements.
 */
#ifndef MC_RTP_H
#define MC_RTP_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "mediacore.h"
#include "seq.h"

#define MC_RTP_FIXED_HEADER 12

/* mc_rtp_parse, telling a packet whose only fault is its padding (RFC 3550
 * 5.1: a count of 0, or more than the payload) apart from other malformed
 * ones: *bad_padding = 1 then (may be NULL). */
mc_status mc_rtp_parse_why(const uint8_t *data, size_t length, mc_rtp_header *out,
                           uint32_t *bad_padding);

MC_INLINE uint16_t mc_rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
MC_INLINE uint32_t mc_rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
MC_INLINE void mc_wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
MC_INLINE void mc_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The fixed header (RFC 3550 5.1), V=2, P=0, X=0, CC=0: what every sender
 * here (the engine, the H.264 packetizer, the pacer) writes. */
MC_INLINE void mc_rtp_write_fixed_header(uint8_t *p, int marker, uint8_t payload_type,
                                         uint16_t sequence, uint32_t timestamp, uint32_t ssrc)
{
    p[0] = 0x80;
    p[1] = (uint8_t)((marker ? 0x80 : 0) | (payload_type & 0x7F));
    mc_wr16(p + 2, sequence);
    mc_wr32(p + 4, timestamp);
    mc_wr32(p + 8, ssrc);
}

/* Length of the header (RFC 3550 5.1, 5.3.1): 12 fixed bytes, CC CSRCs and,
 * with X set, the 4-byte extension header and its 32-bit words (RFC 8285
 * profiles included). The one header walk: mc_rtp_parse builds on it, and
 * SRTP (which must find the payload before it can decrypt it) calls it. */
MC_INLINE mc_status mc_rtp_header_length(const uint8_t *p, size_t length, size_t *header_length)
{
    if (length < MC_RTP_FIXED_HEADER || (p[0] >> 6) != 2)
        return MC_E_MALFORMED;
    size_t h = MC_RTP_FIXED_HEADER + 4u * (size_t)(p[0] & 0x0F);
    if (p[0] & 0x10) {
        if (h + 4 > length)
            return MC_E_MALFORMED;
        h += 4 + 4u * (size_t)mc_rd16(p + h + 2);
    }
    if (h > length)
        return MC_E_MALFORMED;
    *header_length = h;
    return MC_OK;
}

/* RFC 5761 4 / RFC 7983: MC_PACKET_RTP, MC_PACKET_RTCP or MC_PACKET_OTHER by
 * looking at the first two bytes only (no validation beyond V=2). */
MC_INLINE uint32_t mc_packet_kind(const uint8_t *data, size_t length)
{
    if (length < 2 || (data[0] >> 6) != 2)
        return MC_PACKET_OTHER;
    return (data[1] >= 192 && data[1] <= 223) ? MC_PACKET_RTCP : MC_PACKET_RTP;
}

/* SSRC of an RTP packet or of the sender of an RTCP packet (bytes 8..11 and
 * 4..7): for demultiplexing before SRTP (the header is not encrypted). */
MC_INLINE int mc_packet_ssrc(const uint8_t *data, size_t length, uint32_t *ssrc)
{
    uint32_t kind = mc_packet_kind(data, length);
    if (kind == MC_PACKET_RTP && length >= MC_RTP_FIXED_HEADER) {
        *ssrc = mc_rd32(data + 8);
        return 1;
    }
    if (kind == MC_PACKET_RTCP && length >= 8) {
        *ssrc = mc_rd32(data + 4);
        return 1;
    }
    return 0;
}

#endif /* MC_RTP_H */

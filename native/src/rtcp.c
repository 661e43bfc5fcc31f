/*
 * rtcp.c — RTCP compound packets (RFC 3550 6.1, 6.4–6.6), generic NACK and
 * PLI (RFC 4585 6.2.1, 6.3.1), FIR (RFC 5104 4.3.1), RTT from LSR/DLSR and
 * the transmission interval (RFC 3550 6.3.1, A.7). Parsers take untrusted
 * bytes and return MC_E_MALFORMED on anything inconsistent; writers append
 * to a caller buffer and leave *used unchanged when they fail.
 *
 * Report block (RFC 3550 6.4.1), 24 bytes:
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                 SSRC_n (source identifier)                    |
 * | fraction lost |       cumulative number of packets lost       |
 * |           extended highest sequence number received           |
 * |                      interarrival jitter                      |
 * |                         last SR (LSR)                         |
 * |                   delay since last SR (DLSR)                  |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * Feedback (RFC 4585 6.1): header(PT=205/206, FMT), sender SSRC, media SSRC,
 * FCI. Generic NACK FCI: | PID (16) | BLP (16) |. FIR FCI: | SSRC | seq | 0 0 0 |.
 * APP (RFC 3550 6.7): | V=2|P| subtype | PT=204 | length | SSRC/CSRC | name (4 ASCII) |
 * application-dependent data (a multiple of 32 bits) |.
 */
#include <string.h>

#include "rtcp.h"
#include "rtp.h"
#include "seq.h"

#define RTCP_HEADER 4
#define REPORT_BLOCK 24
#define NACK_SORT_MAX 1024

MC_API mc_status mc_rtcp_next(const uint8_t *data, size_t length, uint32_t *cursor,
                              mc_rtcp_packet *out)
{
    if (!data || !cursor || !out)
        return MC_E_INVAL;
    size_t pos = *cursor;
    if (pos >= length)
        return MC_E_NOT_FOUND;
    if (length - pos < RTCP_HEADER || (data[pos] >> 6) != 2) {
        *cursor = (uint32_t)length;
        return MC_E_MALFORMED;
    }
    size_t size = 4u * ((size_t)mc_rd16(data + pos + 2) + 1);
    if (size > length - pos || length > 0xFFFFFFFFu) {
        *cursor = (uint32_t)length;
        return MC_E_MALFORMED;
    }
    out->padding = (data[pos] >> 5) & 1;
    out->count = data[pos] & 0x1F;
    out->packet_type = data[pos + 1];
    out->offset = (uint32_t)pos;
    out->length = (uint32_t)size;
    *cursor = (uint32_t)(pos + size);
    return MC_OK;
}

/* Validate one packet's header against its buffer and strip padding:
 * returns the usable length (header included) or 0 when malformed. */
static size_t packet_body(const uint8_t *data, size_t length, uint8_t type)
{
    if (!data || length < RTCP_HEADER || (data[0] >> 6) != 2 || data[1] != type)
        return 0;
    size_t size = 4u * ((size_t)mc_rd16(data + 2) + 1);
    if (size > length)
        return 0;
    if (data[0] & 0x20) {
        uint8_t pad = data[size - 1];
        if (pad == 0 || pad > size - RTCP_HEADER)
            return 0;
        size -= pad;
    }
    return size;
}

static void read_block(const uint8_t *p, mc_rtcp_report_block *b)
{
    b->ssrc = mc_rd32(p);
    b->fraction_lost = p[4];
    uint32_t cl = ((uint32_t)p[5] << 16) | ((uint32_t)p[6] << 8) | p[7];
    b->cumulative_lost = (cl & 0x800000u) ? (int32_t)cl - 0x1000000 : (int32_t)cl;
    b->extended_highest_seq = mc_rd32(p + 8);
    b->jitter = mc_rd32(p + 12);
    b->lsr = mc_rd32(p + 16);
    b->dlsr = mc_rd32(p + 20);
}

static void write_block(uint8_t *p, const mc_rtcp_report_block *b)
{
    mc_wr32(p, b->ssrc);
    p[4] = b->fraction_lost;
    int32_t cl = b->cumulative_lost;
    if (cl > 0x7FFFFF)
        cl = 0x7FFFFF;
    if (cl < -0x800000)
        cl = -0x800000;
    uint32_t u = (uint32_t)cl & 0xFFFFFFu;
    p[5] = (uint8_t)(u >> 16);
    p[6] = (uint8_t)(u >> 8);
    p[7] = (uint8_t)u;
    mc_wr32(p + 8, b->extended_highest_seq);
    mc_wr32(p + 12, b->jitter);
    mc_wr32(p + 16, b->lsr);
    mc_wr32(p + 20, b->dlsr);
}

static mc_status read_blocks(const uint8_t *p, size_t avail, uint32_t rc,
                             mc_rtcp_report_block *blocks, uint32_t max_blocks, uint32_t *count)
{
    if ((size_t)rc * REPORT_BLOCK > avail)
        return MC_E_MALFORMED;
    *count = rc;
    for (uint32_t i = 0; i < rc && i < max_blocks; i++)
        read_block(p + (size_t)i * REPORT_BLOCK, &blocks[i]);
    return MC_OK;
}

MC_API mc_status mc_rtcp_parse_sr(const uint8_t *data, size_t length, mc_rtcp_sender_info *sender,
                                  mc_rtcp_report_block *blocks, uint32_t max_blocks,
                                  uint32_t *count)
{
    if (!data || !sender || !count || (max_blocks && !blocks))
        return MC_E_INVAL;
    size_t size = packet_body(data, length, MC_RTCP_SR);
    if (size < 28)
        return MC_E_MALFORMED;
    sender->ssrc = mc_rd32(data + 4);
    sender->ntp_timestamp = ((uint64_t)mc_rd32(data + 8) << 32) | mc_rd32(data + 12);
    sender->rtp_timestamp = mc_rd32(data + 16);
    sender->packet_count = mc_rd32(data + 20);
    sender->octet_count = mc_rd32(data + 24);
    return read_blocks(data + 28, size - 28, data[0] & 0x1F, blocks, max_blocks, count);
}

MC_API mc_status mc_rtcp_parse_rr(const uint8_t *data, size_t length, uint32_t *ssrc,
                                  mc_rtcp_report_block *blocks, uint32_t max_blocks,
                                  uint32_t *count)
{
    if (!data || !ssrc || !count || (max_blocks && !blocks))
        return MC_E_INVAL;
    size_t size = packet_body(data, length, MC_RTCP_RR);
    if (size < 8)
        return MC_E_MALFORMED;
    *ssrc = mc_rd32(data + 4);
    return read_blocks(data + 8, size - 8, data[0] & 0x1F, blocks, max_blocks, count);
}

/* SDES (RFC 3550 6.5): SC chunks of | SSRC | items... | 0 | pad to 32 bits |,
 * item = | type | length | text |. The cursor is the index of the next item;
 * each call rescans from the start (SDES packets are small and rare). */
MC_API mc_status mc_rtcp_sdes_next(const uint8_t *data, size_t length, uint32_t *cursor,
                                   uint32_t *ssrc, uint8_t *item_type, uint32_t *offset,
                                   uint32_t *item_length)
{
    if (!data || !cursor || !ssrc || !item_type || !offset || !item_length)
        return MC_E_INVAL;
    size_t size = packet_body(data, length, MC_RTCP_SDES);
    if (size == 0)
        return MC_E_MALFORMED;
    uint32_t chunks = data[0] & 0x1F;
    uint32_t index = 0;
    size_t pos = RTCP_HEADER;
    for (uint32_t c = 0; c < chunks; c++) {
        if (pos + 4 > size)
            return MC_E_MALFORMED;
        uint32_t chunk_ssrc = mc_rd32(data + pos);
        pos += 4;
        for (;;) {
            if (pos >= size)
                return MC_E_MALFORMED;
            uint8_t type = data[pos];
            if (type == 0) {
                pos = (pos + 4) & ~(size_t)3; /* the null item, then pad to 32 bits */
                break;
            }
            if (pos + 2 > size || pos + 2 + data[pos + 1] > size)
                return MC_E_MALFORMED;
            if (index == *cursor) {
                *ssrc = chunk_ssrc;
                *item_type = type;
                *offset = (uint32_t)(pos + 2);
                *item_length = data[pos + 1];
                *cursor = index + 1;
                return MC_OK;
            }
            index++;
            pos += 2u + data[pos + 1];
        }
    }
    return MC_E_NOT_FOUND;
}

MC_API mc_status mc_rtcp_parse_bye(const uint8_t *data, size_t length, uint32_t *ssrcs,
                                   uint32_t max_ssrcs, uint32_t *count, uint32_t *reason_offset,
                                   uint32_t *reason_length)
{
    if (!data || !count || !reason_offset || !reason_length || (max_ssrcs && !ssrcs))
        return MC_E_INVAL;
    size_t size = packet_body(data, length, MC_RTCP_BYE);
    if (size == 0)
        return MC_E_MALFORMED;
    uint32_t sc = data[0] & 0x1F;
    size_t pos = RTCP_HEADER + 4u * sc;
    if (pos > size)
        return MC_E_MALFORMED;
    *count = sc;
    for (uint32_t i = 0; i < sc && i < max_ssrcs; i++)
        ssrcs[i] = mc_rd32(data + RTCP_HEADER + 4 * i);
    *reason_offset = 0;
    *reason_length = 0;
    if (pos < size) {
        uint8_t n = data[pos];
        if (pos + 1 + n > size)
            return MC_E_MALFORMED;
        *reason_offset = (uint32_t)(pos + 1);
        *reason_length = n;
    }
    return MC_OK;
}

static size_t feedback_body(const uint8_t *data, size_t length, uint8_t type, uint8_t fmt,
                            uint32_t *sender_ssrc, uint32_t *media_ssrc)
{
    size_t size = packet_body(data, length, type);
    if (size < 12 || (data[0] & 0x1F) != fmt)
        return 0;
    *sender_ssrc = mc_rd32(data + 4);
    if (media_ssrc)
        *media_ssrc = mc_rd32(data + 8);
    return size;
}

MC_API mc_status mc_rtcp_parse_nack(const uint8_t *data, size_t length, uint32_t *sender_ssrc,
                                    uint32_t *media_ssrc, uint16_t *lost, uint32_t max_lost,
                                    uint32_t *count)
{
    if (!data || !sender_ssrc || !media_ssrc || !count || (max_lost && !lost))
        return MC_E_INVAL;
    size_t size =
        feedback_body(data, length, MC_RTCP_RTPFB, MC_RTCP_FMT_NACK, sender_ssrc, media_ssrc);
    if (size == 0 || (size - 12) % 4 != 0)
        return MC_E_MALFORMED;
    uint32_t n = 0;
    for (size_t pos = 12; pos < size; pos += 4) {
        uint16_t pid = mc_rd16(data + pos), blp = mc_rd16(data + pos + 2);
        if (n < max_lost)
            lost[n] = pid;
        n++;
        for (unsigned bit = 0; bit < 16; bit++) {
            if (blp & (1u << bit)) {
                if (n < max_lost)
                    lost[n] = (uint16_t)(pid + bit + 1);
                n++;
            }
        }
    }
    *count = n;
    return MC_OK;
}

MC_API mc_status mc_rtcp_parse_pli(const uint8_t *data, size_t length, uint32_t *sender_ssrc,
                                   uint32_t *media_ssrc)
{
    if (!data || !sender_ssrc || !media_ssrc)
        return MC_E_INVAL;
    size_t size =
        feedback_body(data, length, MC_RTCP_PSFB, MC_RTCP_FMT_PLI, sender_ssrc, media_ssrc);
    return size ? MC_OK : MC_E_MALFORMED;
}

MC_API mc_status mc_rtcp_parse_fir(const uint8_t *data, size_t length, uint32_t *sender_ssrc,
                                   uint32_t *ssrcs, uint8_t *seq_nrs, uint32_t max_entries,
                                   uint32_t *count)
{
    if (!data || !sender_ssrc || !count || (max_entries && (!ssrcs || !seq_nrs)))
        return MC_E_INVAL;
    size_t size = feedback_body(data, length, MC_RTCP_PSFB, MC_RTCP_FMT_FIR, sender_ssrc, NULL);
    if (size == 0 || (size - 12) % 8 != 0)
        return MC_E_MALFORMED;
    uint32_t n = 0;
    for (size_t pos = 12; pos < size; pos += 8, n++) {
        if (n < max_entries) {
            ssrcs[n] = mc_rd32(data + pos);
            seq_nrs[n] = data[pos + 4];
        }
    }
    *count = n;
    return MC_OK;
}

/* APP, RFC 3550 6.7: header, SSRC/CSRC, 4-byte name, then the data. */
MC_API mc_status mc_rtcp_parse_app(const uint8_t *data, size_t length, uint32_t *ssrc,
                                   uint8_t *name, uint32_t *subtype, uint32_t *data_offset,
                                   uint32_t *data_length)
{
    if (!data || !ssrc || !name || !subtype || !data_offset || !data_length)
        return MC_E_INVAL;
    size_t size = packet_body(data, length, MC_RTCP_APP);
    /* padding removed, the data must still be whole 32-bit words (6.7) */
    if (size < 12 || (size - 12) % 4 != 0)
        return MC_E_MALFORMED;
    *ssrc = mc_rd32(data + 4);
    memcpy(name, data + 8, 4);
    *subtype = data[0] & 0x1F;
    *data_offset = 12;
    *data_length = (uint32_t)(size - 12);
    return MC_OK;
}

/* RFC 3550 A.2 (and 6.1) validity checks over the whole compound packet;
 * RFC 5506 3.4.2 lets a reduced-size packet start with feedback. Every
 * packet of a type the engine acts on is parsed here, so that acting on
 * the compound afterwards cannot meet a malformed packet half way. */
static mc_status check_packet(const uint8_t *p, size_t n, uint8_t type, uint8_t count)
{
    mc_rtcp_report_block blocks[1];
    uint32_t a, b, c, d, nb;
    uint8_t name[4], t;
    switch (type) {
    case MC_RTCP_SR: {
        mc_rtcp_sender_info si;
        return mc_rtcp_parse_sr(p, n, &si, blocks, 1, &nb);
    }
    case MC_RTCP_RR:
        return mc_rtcp_parse_rr(p, n, &a, blocks, 1, &nb);
    case MC_RTCP_SDES: {
        uint32_t cursor = 0;
        mc_status st;
        while ((st = mc_rtcp_sdes_next(p, n, &cursor, &a, &t, &b, &c)) == MC_OK)
            ;
        return st == MC_E_NOT_FOUND ? MC_OK : MC_E_MALFORMED;
    }
    case MC_RTCP_BYE:
        return mc_rtcp_parse_bye(p, n, &a, 1, &nb, &b, &c);
    case MC_RTCP_APP:
        return mc_rtcp_parse_app(p, n, &a, name, &b, &c, &d);
    case MC_RTCP_RTPFB:
        if (count == MC_RTCP_FMT_NACK) {
            uint16_t lost[1];
            return mc_rtcp_parse_nack(p, n, &a, &b, lost, 1, &nb);
        }
        return MC_OK;
    case MC_RTCP_PSFB:
        if (count == MC_RTCP_FMT_PLI)
            return mc_rtcp_parse_pli(p, n, &a, &b);
        if (count == MC_RTCP_FMT_FIR) {
            uint8_t seq[1];
            return mc_rtcp_parse_fir(p, n, &a, &b, seq, 1, &nb);
        }
        return MC_OK;
    default:
        return MC_OK; /* 6.1: unknown types are ignored, not fatal */
    }
}

MC_API mc_status mc_rtcp_check_compound(const uint8_t *data, size_t length, uint32_t *problem)
{
    uint32_t dummy;
    if (!problem)
        problem = &dummy;
    *problem = MC_RTCP_VALID;
    if (!data)
        return MC_E_INVAL;
    if (length < RTCP_HEADER || length % 4 != 0 || length > 0xFFFFFFFFu) {
        *problem = MC_RTCP_BAD_LENGTH;
        return MC_E_MALFORMED;
    }
    size_t pos = 0;
    while (pos < length) {
        const uint8_t *p = data + pos;
        if ((p[0] >> 6) != 2) {
            *problem = MC_RTCP_BAD_VERSION;
            return MC_E_MALFORMED;
        }
        size_t size = 4u * ((size_t)mc_rd16(p + 2) + 1);
        if (size > length - pos) {
            *problem = MC_RTCP_BAD_LENGTH;
            return MC_E_MALFORMED;
        }
        int last = pos + size == length;
        if (pos == 0 && p[1] != MC_RTCP_SR && p[1] != MC_RTCP_RR && p[1] != MC_RTCP_RTPFB &&
            p[1] != MC_RTCP_PSFB && p[1] != MC_RTCP_APP) {
            *problem = MC_RTCP_BAD_FIRST;
            return MC_E_MALFORMED;
        }
        if (p[0] & 0x20) {
            /* A.2: only the last packet may be padded; its last octet counts
             * the padding, itself included, inside the packet's body */
            uint8_t pad = p[size - 1];
            if (!last || pad == 0 || pad > size - RTCP_HEADER) {
                *problem = MC_RTCP_BAD_PADDING;
                return MC_E_MALFORMED;
            }
        }
        if (check_packet(p, size, p[1], (uint8_t)(p[0] & 0x1F)) != MC_OK) {
            *problem = MC_RTCP_BAD_PACKET;
            return MC_E_MALFORMED;
        }
        pos += size;
    }
    return MC_OK;
}

/* ---- writers -------------------------------------------------------------- */

static mc_status begin(uint8_t *buffer, size_t buffer_size, const size_t *used, size_t size,
                       uint8_t **p)
{
    if (!buffer || !used || *used > buffer_size)
        return MC_E_INVAL;
    if (size > 4u * 65536u)
        return MC_E_TOO_LARGE;
    if (buffer_size - *used < size)
        return MC_E_BUFFER;
    *p = buffer + *used;
    return MC_OK;
}

static void header(uint8_t *p, uint8_t count, uint8_t type, size_t size)
{
    p[0] = (uint8_t)(0x80 | (count & 0x1F));
    p[1] = type;
    mc_wr16(p + 2, (uint16_t)(size / 4 - 1));
}

MC_API mc_status mc_rtcp_write_sr(uint8_t *buffer, size_t buffer_size, size_t *used,
                                  const mc_rtcp_sender_info *sender,
                                  const mc_rtcp_report_block *blocks, uint32_t count)
{
    if (!sender || count > MC_RTCP_MAX_REPORTS || (count && !blocks))
        return MC_E_INVAL;
    size_t size = 28 + (size_t)count * REPORT_BLOCK;
    uint8_t *p;
    mc_status st = begin(buffer, buffer_size, used, size, &p);
    if (st != MC_OK)
        return st;
    header(p, (uint8_t)count, MC_RTCP_SR, size);
    mc_wr32(p + 4, sender->ssrc);
    mc_wr32(p + 8, (uint32_t)(sender->ntp_timestamp >> 32));
    mc_wr32(p + 12, (uint32_t)sender->ntp_timestamp);
    mc_wr32(p + 16, sender->rtp_timestamp);
    mc_wr32(p + 20, sender->packet_count);
    mc_wr32(p + 24, sender->octet_count);
    for (uint32_t i = 0; i < count; i++)
        write_block(p + 28 + (size_t)i * REPORT_BLOCK, &blocks[i]);
    *used += size;
    return MC_OK;
}

MC_API mc_status mc_rtcp_write_rr(uint8_t *buffer, size_t buffer_size, size_t *used, uint32_t ssrc,
                                  const mc_rtcp_report_block *blocks, uint32_t count)
{
    if (count > MC_RTCP_MAX_REPORTS || (count && !blocks))
        return MC_E_INVAL;
    size_t size = 8 + (size_t)count * REPORT_BLOCK;
    uint8_t *p;
    mc_status st = begin(buffer, buffer_size, used, size, &p);
    if (st != MC_OK)
        return st;
    header(p, (uint8_t)count, MC_RTCP_RR, size);
    mc_wr32(p + 4, ssrc);
    for (uint32_t i = 0; i < count; i++)
        write_block(p + 8 + (size_t)i * REPORT_BLOCK, &blocks[i]);
    *used += size;
    return MC_OK;
}

MC_API mc_status mc_rtcp_write_sdes_cname(uint8_t *buffer, size_t buffer_size, size_t *used,
                                          uint32_t ssrc, const uint8_t *cname,
                                          uint32_t cname_length)
{
    if (cname_length > 255 || (cname_length && !cname))
        return MC_E_INVAL;
    /* header, SSRC, CNAME item, null item, padding to 32 bits */
    size_t chunk = 4 + 2 + (size_t)cname_length + 1;
    chunk = (chunk + 3) & ~(size_t)3;
    size_t size = RTCP_HEADER + chunk;
    uint8_t *p;
    mc_status st = begin(buffer, buffer_size, used, size, &p);
    if (st != MC_OK)
        return st;
    memset(p, 0, size);
    header(p, 1, MC_RTCP_SDES, size);
    mc_wr32(p + 4, ssrc);
    p[8] = MC_RTCP_SDES_CNAME;
    p[9] = (uint8_t)cname_length;
    if (cname_length)
        memcpy(p + 10, cname, cname_length);
    *used += size;
    return MC_OK;
}

MC_API mc_status mc_rtcp_write_bye(uint8_t *buffer, size_t buffer_size, size_t *used,
                                   const uint32_t *ssrcs, uint32_t count, const uint8_t *reason,
                                   uint32_t reason_length)
{
    if (count > 31 || (count && !ssrcs) || reason_length > 255 || (reason_length && !reason))
        return MC_E_INVAL;
    size_t size = RTCP_HEADER + 4u * count;
    if (reason_length)
        size += (1 + (size_t)reason_length + 3) & ~(size_t)3;
    uint8_t *p;
    mc_status st = begin(buffer, buffer_size, used, size, &p);
    if (st != MC_OK)
        return st;
    memset(p, 0, size);
    header(p, (uint8_t)count, MC_RTCP_BYE, size);
    for (uint32_t i = 0; i < count; i++)
        mc_wr32(p + 4 + 4 * i, ssrcs[i]);
    if (reason_length) {
        p[4 + 4 * count] = (uint8_t)reason_length;
        memcpy(p + 5 + 4 * count, reason, reason_length);
    }
    *used += size;
    return MC_OK;
}

static void sort_i32(int32_t *a, uint32_t n)
{
    /* shell sort: small inputs, no allocation, no recursion */
    static const uint32_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (unsigned g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
        uint32_t gap = gaps[g];
        for (uint32_t i = gap; i < n; i++) {
            int32_t v = a[i];
            uint32_t j = i;
            for (; j >= gap && a[j - gap] > v; j -= gap)
                a[j] = a[j - gap];
            a[j] = v;
        }
    }
}

MC_API mc_status mc_rtcp_write_nack(uint8_t *buffer, size_t buffer_size, size_t *used,
                                    uint32_t sender_ssrc, uint32_t media_ssrc,
                                    const uint16_t *lost, uint32_t count)
{
    if (!lost || count == 0 || !buffer || !used || *used > buffer_size)
        return MC_E_INVAL;
    if (count > NACK_SORT_MAX)
        return MC_E_TOO_LARGE;
    /* order wrap-aware relative to the first entry, then pack greedily: each
     * PID covers itself and the next 16 sequence numbers through BLP */
    if (buffer_size - *used < 12)
        return MC_E_BUFFER;
    int32_t rel[NACK_SORT_MAX];
    for (uint32_t i = 0; i < count; i++)
        rel[i] = mc_seq_diff(lost[i], lost[0]);
    sort_i32(rel, count);
    size_t pos = *used + 12;
    uint32_t i = 0;
    while (i < count) {
        int32_t pid = rel[i];
        uint16_t blp = 0;
        i++;
        while (i < count && rel[i] - pid <= 16) {
            if (rel[i] != pid)
                blp |= (uint16_t)(1u << (rel[i] - pid - 1));
            i++;
        }
        if (buffer_size - pos < 4 || pos - *used + 4 > 4u * 65536u)
            return MC_E_BUFFER;
        mc_wr16(buffer + pos, (uint16_t)(lost[0] + pid));
        mc_wr16(buffer + pos + 2, blp);
        pos += 4;
    }
    uint8_t *p = buffer + *used;
    size_t size = pos - *used;
    header(p, MC_RTCP_FMT_NACK, MC_RTCP_RTPFB, size);
    mc_wr32(p + 4, sender_ssrc);
    mc_wr32(p + 8, media_ssrc);
    *used = pos;
    return MC_OK;
}

MC_API mc_status mc_rtcp_write_pli(uint8_t *buffer, size_t buffer_size, size_t *used,
                                   uint32_t sender_ssrc, uint32_t media_ssrc)
{
    uint8_t *p;
    mc_status st = begin(buffer, buffer_size, used, 12, &p);
    if (st != MC_OK)
        return st;
    header(p, MC_RTCP_FMT_PLI, MC_RTCP_PSFB, 12);
    mc_wr32(p + 4, sender_ssrc);
    mc_wr32(p + 8, media_ssrc);
    *used += 12;
    return MC_OK;
}

MC_API mc_status mc_rtcp_write_fir(uint8_t *buffer, size_t buffer_size, size_t *used,
                                   uint32_t sender_ssrc, const uint32_t *ssrcs,
                                   const uint8_t *seq_nrs, uint32_t count)
{
    if (count == 0 || !ssrcs || !seq_nrs || count > 8000)
        return MC_E_INVAL;
    size_t size = 12 + 8u * (size_t)count;
    uint8_t *p;
    mc_status st = begin(buffer, buffer_size, used, size, &p);
    if (st != MC_OK)
        return st;
    memset(p, 0, size);
    header(p, MC_RTCP_FMT_FIR, MC_RTCP_PSFB, size);
    mc_wr32(p + 4, sender_ssrc);
    mc_wr32(p + 8, 0); /* RFC 5104 4.3.1.2: media source SSRC unused, 0 */
    for (uint32_t i = 0; i < count; i++) {
        mc_wr32(p + 12 + 8 * i, ssrcs[i]);
        p[16 + 8 * i] = seq_nrs[i];
    }
    *used += size;
    return MC_OK;
}

MC_API mc_status mc_rtcp_write_app(uint8_t *buffer, size_t buffer_size, size_t *used,
                                   uint32_t ssrc, const uint8_t *name, uint32_t subtype,
                                   const uint8_t *data, uint32_t data_length)
{
    if (!name || subtype > 31 || data_length % 4 != 0 || (data_length && !data))
        return MC_E_INVAL;
    size_t size = 12 + (size_t)data_length;
    uint8_t *p;
    mc_status st = begin(buffer, buffer_size, used, size, &p);
    if (st != MC_OK)
        return st;
    header(p, (uint8_t)subtype, MC_RTCP_APP, size);
    mc_wr32(p + 4, ssrc);
    memcpy(p + 8, name, 4);
    if (data_length)
        memcpy(p + 12, data, data_length);
    *used += size;
    return MC_OK;
}

/* ---- timing ---------------------------------------------------------------- */

uint64_t mc_ntp_from_unix_ns(int64_t unix_ns)
{
    /* NTP era 0 starts 1900-01-01; Unix 1970-01-01 is 2208988800 s later */
    uint64_t sec = (uint64_t)(unix_ns / 1000000000) + 2208988800u;
    uint64_t frac = ((uint64_t)(unix_ns % 1000000000) << 32) / 1000000000u;
    return (sec << 32) | frac;
}

uint32_t mc_ns_to_q16(int64_t ns)
{
    if (ns <= 0)
        return 0;
    uint64_t q = ((uint64_t)(ns / 1000000000) << 16) +
                 (((uint64_t)(ns % 1000000000) << 16) / 1000000000u);
    return q > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)q;
}

MC_API mc_status mc_rtcp_rtt_ns(uint64_t arrival_ntp, uint32_t lsr, uint32_t dlsr, int64_t *rtt_ns)
{
    if (!rtt_ns)
        return MC_E_INVAL;
    if (lsr == 0)
        return MC_E_NOT_FOUND;
    /* 6.4.1: RTT = A - LSR - DLSR in 1/65536 s, modulo 2^32 */
    uint32_t rtt = mc_ntp_middle32(arrival_ntp) - lsr - dlsr;
    if (rtt >= 0x80000000u) /* clock skew made it negative */
        rtt = 0;
    *rtt_ns = (int64_t)(((uint64_t)rtt * 1000000000u) >> 16);
    return MC_OK;
}

/* RFC 3550 6.3.1 / A.7 rtcp_interval(), simplified:
 *  - no timer reconsideration (6.3.3 / 6.3.6) and no reverse reconsideration
 *    (6.3.4): the caller schedules the next report at now + interval;
 *  - the fixed 5 s minimum (2.5 s before the first report), not the optional
 *    "360 / session bandwidth in kbit/s" reduced minimum;
 *  - the random factor is the caller's draw in [0.5, 1.5], for testability. */
MC_API mc_status mc_rtcp_interval_ns(uint32_t members, uint32_t senders, double rtcp_bw_bytes_per_s,
                                     int32_t we_sent, double avg_rtcp_size_bytes, int32_t initial,
                                     double random_factor, int64_t *interval_ns)
{
    if (!interval_ns || !(rtcp_bw_bytes_per_s > 0) || !(avg_rtcp_size_bytes > 0) ||
        !(random_factor >= 0.5 && random_factor <= 1.5) || senders > members)
        return MC_E_INVAL;
    const double rtcp_min_time = initial ? 2.5 : 5.0;
    const double compensation = 2.71828 - 1.5; /* e - 3/2, A.7 */
    double bw = rtcp_bw_bytes_per_s;
    double n = members ? members : 1;
    if (senders <= members * 0.25) {
        if (we_sent) {
            bw *= 0.25;
            n = senders ? senders : 1;
        } else {
            bw *= 0.75;
            n = (members - senders) ? (members - senders) : 1;
        }
    }
    double t = avg_rtcp_size_bytes * n / bw;
    if (t < rtcp_min_time)
        t = rtcp_min_time;
    t = t * random_factor / compensation;
    *interval_ns = (int64_t)(t * 1e9);
    return MC_OK;
}

/* ---- compound packets ------------------------------------------------------ */

static mc_status put_blocks_rr(uint8_t *buffer, size_t buffer_size, size_t *used, uint32_t ssrc,
                               const mc_rtcp_report_block *blocks, uint32_t n)
{
    /* report blocks past the first packet's 31 continue in RRs (6.4.2) */
    while (n) {
        uint32_t k = n > MC_RTCP_MAX_REPORTS ? MC_RTCP_MAX_REPORTS : n;
        mc_status st = mc_rtcp_write_rr(buffer, buffer_size, used, ssrc, blocks, k);
        if (st != MC_OK)
            return st;
        blocks += k;
        n -= k;
    }
    return MC_OK;
}

mc_status mc_rtcp_build_report(uint8_t *buffer, size_t buffer_size, size_t *used, uint32_t ssrc,
                               const mc_rtcp_sender_info *senders, uint32_t n_senders,
                               const mc_rtcp_report_block *blocks, uint32_t n_blocks,
                               const uint8_t *cname, uint32_t cname_length)
{
    if (!buffer || !used || *used > buffer_size || (n_senders && !senders) ||
        (n_blocks && !blocks) || (n_senders && senders[0].ssrc != ssrc))
        return MC_E_INVAL;
    size_t at = *used;
    uint32_t first = n_blocks > MC_RTCP_MAX_REPORTS ? MC_RTCP_MAX_REPORTS : n_blocks;
    mc_status st = n_senders
        ? mc_rtcp_write_sr(buffer, buffer_size, used, &senders[0], blocks, first)
        : mc_rtcp_write_rr(buffer, buffer_size, used, ssrc, blocks, first);
    if (st == MC_OK)
        st = put_blocks_rr(buffer, buffer_size, used, ssrc, blocks + first, n_blocks - first);
    for (uint32_t i = 1; st == MC_OK && i < n_senders; i++)
        st = mc_rtcp_write_sr(buffer, buffer_size, used, &senders[i], NULL, 0);
    if (st == MC_OK)
        st = mc_rtcp_write_sdes_cname(buffer, buffer_size, used, ssrc, cname, cname_length);
    if (st != MC_OK)
        *used = at;
    return st;
}

mc_status mc_rtcp_build_feedback(uint8_t *buffer, size_t buffer_size, size_t *used, uint32_t ssrc,
                                 const uint8_t *cname, uint32_t cname_length, uint32_t media_ssrc,
                                 const uint16_t *lost, uint32_t n_lost, int pli, int32_t fir_seq)
{
    if (!buffer || !used || *used > buffer_size || (n_lost && !lost) ||
        (!n_lost && !pli && fir_seq < 0))
        return MC_E_INVAL;
    size_t at = *used;
    mc_status st = mc_rtcp_write_rr(buffer, buffer_size, used, ssrc, NULL, 0);
    if (st == MC_OK)
        st = mc_rtcp_write_sdes_cname(buffer, buffer_size, used, ssrc, cname, cname_length);
    if (st == MC_OK && n_lost)
        st = mc_rtcp_write_nack(buffer, buffer_size, used, ssrc, media_ssrc, lost, n_lost);
    if (st == MC_OK && pli)
        st = mc_rtcp_write_pli(buffer, buffer_size, used, ssrc, media_ssrc);
    if (st == MC_OK && fir_seq >= 0) {
        uint8_t seq = (uint8_t)fir_seq;
        st = mc_rtcp_write_fir(buffer, buffer_size, used, ssrc, &media_ssrc, &seq, 1);
    }
    if (st != MC_OK)
        *used = at;
    return st;
}

mc_status mc_rtcp_build_bye(uint8_t *buffer, size_t buffer_size, size_t *used,
                            const uint32_t *ssrcs, uint32_t n_ssrcs, const uint8_t *cname,
                            uint32_t cname_length, const uint8_t *reason, uint32_t reason_length)
{
    if (!buffer || !used || *used > buffer_size || !ssrcs || n_ssrcs == 0 || n_ssrcs > 31)
        return MC_E_INVAL;
    size_t at = *used;
    mc_status st = mc_rtcp_write_rr(buffer, buffer_size, used, ssrcs[0], NULL, 0);
    if (st == MC_OK)
        st = mc_rtcp_write_sdes_cname(buffer, buffer_size, used, ssrcs[0], cname, cname_length);
    if (st == MC_OK)
        st = mc_rtcp_write_bye(buffer, buffer_size, used, ssrcs, n_ssrcs, reason, reason_length);
    if (st != MC_OK)
        *used = at;
    return st;
}

mc_status mc_rtcp_build_app(uint8_t *buffer, size_t buffer_size, size_t *used, uint32_t ssrc,
                            const uint8_t *name, uint32_t subtype, const uint8_t *data,
                            uint32_t data_length)
{
    if (!buffer || !used || *used > buffer_size)
        return MC_E_INVAL;
    size_t at = *used;
    mc_status st = mc_rtcp_write_rr(buffer, buffer_size, used, ssrc, NULL, 0);
    if (st == MC_OK)
        st = mc_rtcp_write_app(buffer, buffer_size, used, ssrc, name, subtype, data, data_length);
    if (st != MC_OK)
        *used = at;
    return st;
}

/* ---- transmission timer (RFC 3550 6.3, A.7) ---------------------------------
 *
 * Implemented as in A.7: Td from members/senders/rtcp_bw/avg_rtcp_size with
 * the 25% sender share; the minimum interval (5 s, halved before the first
 * report); randomisation of T over [0.5, 1.5] Td and the division by
 * e - 3/2 = 1.21828 that compensates timer reconsideration's bias to lower
 * rates; timer reconsideration on expiry (OnExpire: if tp + T > now the
 * report is not sent, tn becomes tp + T); reverse reconsideration when
 * members drop (6.3.4); avg_rtcp_size smoothed with gain 1/16 over packet
 * size + 28 bytes of UDP/IPv4 header; we_sent/senders/members supplied by
 * the caller from its source tables.
 *
 * Simplified, on purpose:
 *  - The minimum interval is configurable (the engine's rtcp_interval_ms):
 *    RFC 3550 6.2 fixes 5 s but allows a smaller minimum for sessions that
 *    want faster reports, and AVPF sessions (RFC 4585 3.4, which the NACK/PLI
 *    feedback relies on) drop the 5 s floor. With reduced_minimum the
 *    6.2 "360 / session bandwidth in kbit/s" value is used when smaller.
 *  - Membership is counted from the caller's tables each pass, not kept as
 *    a member table of its own with 5-interval timeouts (6.3.5): an engine
 *    session has one remote peer and knows its sources.
 *  - BYE (6.3.7): with fewer than 50 members BYE is sent at once, which the
 *    RFC permits; the BYE back-off for larger groups is not implemented (the
 *    caller sends no BYE then).
 */

#define RTCP_E_MINUS_1_5 1.21828182845904523536 /* e - 3/2 */
#define RTCP_UDP_IP_OVERHEAD 28.0

static double timer_uniform(mc_rtcp_timer *t)
{
    /* xorshift64*: top 53 bits as a double in [0, 1) */
    uint64_t x = t->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

void mc_rtcp_timer_init(mc_rtcp_timer *t, int64_t now_ns, double session_bw_bytes_per_s,
                        int64_t tmin_ns, int reduced_minimum, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    if (!(session_bw_bytes_per_s > 0))
        session_bw_bytes_per_s = 8000.0; /* 64 kbit/s */
    t->rtcp_bw = 0.05 * session_bw_bytes_per_s;
    t->tmin_s = tmin_ns > 0 ? (double)tmin_ns / 1e9 : 5.0;
    if (reduced_minimum) {
        double reduced = 360.0 / (session_bw_bytes_per_s * 8.0 / 1000.0);
        if (reduced < t->tmin_s)
            t->tmin_s = reduced;
    }
    t->avg_rtcp_size = 100.0; /* a typical first guess: RR + SDES + headers */
    t->members = t->pmembers = 1;
    t->senders = 0;
    t->initial = 1;
    t->rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
    t->tp_ns = now_ns;
    t->tn_ns = now_ns + mc_rtcp_timer_draw_ns(t);
}

double mc_rtcp_timer_td_s(const mc_rtcp_timer *t)
{
    double tmin = t->initial ? t->tmin_s / 2.0 : t->tmin_s;
    double bw = t->rtcp_bw;
    double n = t->members ? (double)t->members : 1.0;
    if (t->senders <= t->members * 0.25) {
        if (t->we_sent) {
            bw *= 0.25;
            n = t->senders ? (double)t->senders : 1.0;
        } else {
            bw *= 0.75;
            n = t->members > t->senders ? (double)(t->members - t->senders) : 1.0;
        }
    }
    double td = t->avg_rtcp_size * n / bw;
    return td < tmin ? tmin : td;
}

int64_t mc_rtcp_timer_draw_ns(mc_rtcp_timer *t)
{
    double f = 0.5 + timer_uniform(t);
    return (int64_t)(mc_rtcp_timer_td_s(t) * f / RTCP_E_MINUS_1_5 * 1e9);
}

void mc_rtcp_timer_members(mc_rtcp_timer *t, int64_t now_ns, uint32_t members, uint32_t senders,
                           int32_t we_sent)
{
    if (members == 0)
        members = 1;
    if (senders > members)
        senders = members;
    t->senders = senders;
    t->we_sent = we_sent ? 1 : 0;
    if (members < t->pmembers) {
        /* 6.3.4 reverse reconsideration */
        double r = (double)members / (double)t->pmembers;
        t->tn_ns = now_ns + (int64_t)(r * (double)(t->tn_ns - now_ns));
        t->tp_ns = now_ns - (int64_t)(r * (double)(now_ns - t->tp_ns));
        t->pmembers = members;
    }
    t->members = members;
}

int mc_rtcp_timer_expired(mc_rtcp_timer *t, int64_t now_ns)
{
    if (now_ns < t->tn_ns)
        return 0;
    int64_t tt = mc_rtcp_timer_draw_ns(t);
    if (t->tp_ns + tt <= now_ns)
        return 1;
    t->tn_ns = t->tp_ns + tt; /* reconsidered: not yet */
    return 0;
}

void mc_rtcp_timer_sent(mc_rtcp_timer *t, int64_t now_ns, uint32_t bytes)
{
    t->avg_rtcp_size = ((double)bytes + RTCP_UDP_IP_OVERHEAD) / 16.0 + t->avg_rtcp_size * 15.0 / 16.0;
    t->tp_ns = now_ns;
    t->initial = 0;
    t->pmembers = t->members;
    t->tn_ns = now_ns + mc_rtcp_timer_draw_ns(t);
}

int mc_rtcp_timer_bye_now(const mc_rtcp_timer *t) { return t->members < 50; }

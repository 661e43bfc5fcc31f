/*
 * rtp.c — RTP parse and serialize (RFC 3550 5.1, 5.3.1), header extension
 * elements (RFC 8285), audio level (RFC 6464), RTP/RTCP demux (RFC 5761 4).
 * Allocation-free: parse fills a view of the caller's buffer, serialize
 * writes into a caller buffer. Packet diagram in rtp.h.
 */
#include <string.h>

#include "rtp.h"

MC_API mc_status mc_rtp_parse(const uint8_t *data, size_t length, mc_rtp_header *out)
{
    return mc_rtp_parse_why(data, length, out, NULL);
}

mc_status mc_rtp_parse_why(const uint8_t *data, size_t length, mc_rtp_header *out,
                           uint32_t *bad_padding)
{
    if (bad_padding)
        *bad_padding = 0;
    if (!data || !out)
        return MC_E_INVAL;
    /* length fits 32 bits for anything a UDP datagram carries */
    if (length > 0xFFFFFFFFu)
        return MC_E_MALFORMED;
    size_t pos;
    if (mc_rtp_header_length(data, length, &pos) != MC_OK) /* V=2, CSRCs, extension */
        return MC_E_MALFORMED;
    uint8_t b0 = data[0], b1 = data[1];
    out->version = 2;
    out->padding = (b0 >> 5) & 1;
    out->extension = (b0 >> 4) & 1;
    out->csrc_count = b0 & 0x0F;
    out->marker = b1 >> 7;
    out->payload_type = b1 & 0x7F;
    out->sequence_number = mc_rd16(data + 2);
    out->timestamp = mc_rd32(data + 4);
    out->ssrc = mc_rd32(data + 8);
    for (unsigned i = 0; i < out->csrc_count; i++)
        out->csrc[i] = mc_rd32(data + MC_RTP_FIXED_HEADER + 4 * i);
    out->extension_profile = 0;
    out->extension_words = 0;
    out->extension_offset = 0;
    if (out->extension) {
        /* 5.3.1: 16-bit profile-defined field, 16-bit length in words (the
         * walk above checked that both and the words lie inside) */
        size_t at = MC_RTP_FIXED_HEADER + 4u * out->csrc_count;
        out->extension_profile = mc_rd16(data + at);
        out->extension_words = mc_rd16(data + at + 2);
        out->extension_offset = (uint32_t)(at + 4);
    }

    size_t end = length;
    out->padding_length = 0;
    if (out->padding) {
        /* 5.1: the last octet counts the padding octets, itself included */
        uint8_t pad = data[length - 1];
        if (pad == 0 || pad > length - pos) {
            if (bad_padding)
                *bad_padding = 1; /* the header parsed: only the padding is wrong */
            return MC_E_MALFORMED;
        }
        out->padding_length = pad;
        end -= pad;
    }
    out->header_length = (uint32_t)pos;
    out->payload_offset = (uint32_t)pos;
    out->payload_length = (uint32_t)(end - pos);
    return MC_OK;
}

static mc_status header_size(const mc_rtp_header *h, uint32_t payload_length, size_t *size)
{
    if (h->csrc_count > MC_RTP_MAX_CSRC || h->payload_type > 127)
        return MC_E_INVAL;
    if (h->padding && h->padding_length == 0)
        return MC_E_INVAL;
    size_t n = MC_RTP_FIXED_HEADER + 4u * h->csrc_count;
    if (h->extension)
        n += 4 + 4u * (size_t)h->extension_words;
    n += payload_length;
    if (h->padding)
        n += h->padding_length;
    *size = n;
    return MC_OK;
}

MC_API mc_status mc_rtp_serialized_size(const mc_rtp_header *header, uint32_t payload_length,
                                        uint32_t *size)
{
    if (!header || !size)
        return MC_E_INVAL;
    size_t n;
    mc_status st = header_size(header, payload_length, &n);
    if (st != MC_OK)
        return st;
    if (n > 0xFFFFFFFFu)
        return MC_E_TOO_LARGE;
    *size = (uint32_t)n;
    return MC_OK;
}

MC_API mc_status mc_rtp_serialize(const mc_rtp_header *h, const uint8_t *extension_data,
                                  const uint8_t *payload, uint32_t payload_length, uint8_t *out,
                                  size_t out_size, size_t *written)
{
    if (!h || !out || !written || (payload_length && !payload) ||
        (h->extension && h->extension_words && !extension_data))
        return MC_E_INVAL;
    size_t total;
    mc_status st = header_size(h, payload_length, &total);
    if (st != MC_OK)
        return st;
    *written = total;
    if (total > out_size)
        return MC_E_BUFFER;
    size_t pos = MC_RTP_FIXED_HEADER + 4u * h->csrc_count;
    if (h->extension)
        pos += 4 + 4u * (size_t)h->extension_words;
    /* payload first: it may sit in `out` already, possibly overlapping the
     * header we are about to write (memmove handles either direction) */
    if (payload_length && payload != out + pos)
        memmove(out + pos, payload, payload_length);
    out[0] = (uint8_t)(0x80 | (h->padding ? 0x20 : 0) | (h->extension ? 0x10 : 0) |
                       h->csrc_count);
    out[1] = (uint8_t)((h->marker ? 0x80 : 0) | h->payload_type);
    mc_wr16(out + 2, h->sequence_number);
    mc_wr32(out + 4, h->timestamp);
    mc_wr32(out + 8, h->ssrc);
    size_t p = MC_RTP_FIXED_HEADER;
    for (unsigned i = 0; i < h->csrc_count; i++, p += 4)
        mc_wr32(out + p, h->csrc[i]);
    if (h->extension) {
        mc_wr16(out + p, h->extension_profile);
        mc_wr16(out + p + 2, h->extension_words);
        p += 4;
        if (h->extension_words)
            memcpy(out + p, extension_data, 4u * (size_t)h->extension_words);
    }
    if (h->padding) {
        size_t q = pos + payload_length;
        memset(out + q, 0, h->padding_length - 1u);
        out[q + h->padding_length - 1u] = h->padding_length;
    }
    return MC_OK;
}

MC_API mc_status mc_rtp_classify(const uint8_t *data, size_t length, uint32_t *kind)
{
    if (!kind || (!data && length))
        return MC_E_INVAL;
    *kind = mc_packet_kind(data, length);
    return MC_OK;
}

/* ---- RFC 8285 header extension elements -----------------------------------
 * One-byte form (profile 0xBEDE), per element:  | ID(4) | L(4) | data (L+1) |
 *   ID 0 = padding byte, ID 15 = stop parsing (reserved).
 * Two-byte form (profile 0x100X):               | ID(8) | L(8) | data (L) |
 *   ID 0 = padding byte. */

static int is_one_byte(uint16_t profile) { return profile == MC_RTP_EXT_ONE_BYTE; }
static int is_two_byte(uint16_t profile) { return (profile & 0xFFF0u) == MC_RTP_EXT_TWO_BYTE; }

MC_API mc_status mc_rtp_ext_next(const uint8_t *data, const mc_rtp_header *h, uint32_t *cursor,
                                 uint8_t *id, uint32_t *offset, uint32_t *length)
{
    if (!data || !h || !cursor || !id || !offset || !length)
        return MC_E_INVAL;
    if (!h->extension)
        return MC_E_NOT_FOUND;
    int one = is_one_byte(h->extension_profile);
    if (!one && !is_two_byte(h->extension_profile))
        return MC_E_UNSUPPORTED;
    const uint8_t *ext = data + h->extension_offset;
    uint32_t size = 4u * h->extension_words;
    uint32_t pos = *cursor;
    while (pos < size) {
        uint8_t b = ext[pos];
        if (b == 0) { /* padding */
            pos++;
            continue;
        }
        uint32_t len;
        uint32_t hdr;
        if (one) {
            if ((b >> 4) == 15) { /* reserved: stop, the rest is ignored */
                *cursor = size;
                return MC_E_NOT_FOUND;
            }
            *id = b >> 4;
            len = (b & 0x0Fu) + 1;
            hdr = 1;
            /* 4.2: ID 0 with non-zero length is malformed (b != 0 here) */
            if (*id == 0) {
                *cursor = size;
                return MC_E_MALFORMED;
            }
        } else {
            if (pos + 2 > size) {
                *cursor = size;
                return MC_E_MALFORMED;
            }
            *id = b;
            len = ext[pos + 1];
            hdr = 2;
        }
        if (pos + hdr + len > size) {
            *cursor = size;
            return MC_E_MALFORMED;
        }
        *offset = h->extension_offset + pos + hdr;
        *length = len;
        *cursor = pos + hdr + len;
        return MC_OK;
    }
    *cursor = pos;
    return MC_E_NOT_FOUND;
}

MC_API mc_status mc_rtp_ext_find(const uint8_t *data, const mc_rtp_header *h, uint8_t id,
                                 uint32_t *offset, uint32_t *length)
{
    if (!data || !h || !offset || !length || id == 0)
        return MC_E_INVAL;
    uint32_t cursor = 0;
    uint8_t got;
    for (;;) {
        mc_status st = mc_rtp_ext_next(data, h, &cursor, &got, offset, length);
        if (st != MC_OK)
            return st;
        if (got == id)
            return MC_OK;
    }
}

MC_API mc_status mc_rtp_ext_append(uint8_t *buffer, uint32_t buffer_size, uint32_t *used,
                                   uint16_t profile, uint8_t id, const uint8_t *element,
                                   uint32_t length)
{
    if (!buffer || !used || *used > buffer_size || (length && !element))
        return MC_E_INVAL;
    uint32_t hdr;
    if (is_one_byte(profile)) {
        if (id < 1 || id > 14 || length < 1 || length > 16)
            return MC_E_INVAL;
        hdr = 1;
    } else if (is_two_byte(profile)) {
        if (id < 1 || length > 255)
            return MC_E_INVAL;
        hdr = 2;
    } else {
        return MC_E_UNSUPPORTED;
    }
    if (buffer_size - *used < hdr + length)
        return MC_E_BUFFER;
    uint8_t *p = buffer + *used;
    if (hdr == 1) {
        p[0] = (uint8_t)((id << 4) | (length - 1));
    } else {
        p[0] = id;
        p[1] = (uint8_t)length;
    }
    if (length)
        memcpy(p + hdr, element, length);
    *used += hdr + length;
    return MC_OK;
}

MC_API mc_status mc_rtp_ext_finish(uint8_t *buffer, uint32_t buffer_size, uint32_t *used,
                                   uint16_t *words)
{
    if (!buffer || !used || !words || *used > buffer_size)
        return MC_E_INVAL;
    uint32_t padded = (*used + 3u) & ~3u;
    if (padded > buffer_size)
        return MC_E_BUFFER;
    if (padded / 4 > 0xFFFFu)
        return MC_E_TOO_LARGE;
    memset(buffer + *used, 0, padded - *used);
    *used = padded;
    *words = (uint16_t)(padded / 4);
    return MC_OK;
}

/* RFC 6464 3: one byte, | V | level (7 bits, -dBov) | */
MC_API mc_status mc_rtp_audio_level_read(const uint8_t *data, const mc_rtp_header *h, uint8_t id,
                                         uint8_t *voice, uint8_t *level_dbov)
{
    if (!voice || !level_dbov)
        return MC_E_INVAL;
    uint32_t offset, length;
    mc_status st = mc_rtp_ext_find(data, h, id, &offset, &length);
    if (st != MC_OK)
        return st;
    if (length < 1)
        return MC_E_MALFORMED;
    *voice = data[offset] >> 7;
    *level_dbov = data[offset] & 0x7F;
    return MC_OK;
}

MC_API mc_status mc_rtp_audio_level_append(uint8_t *buffer, uint32_t buffer_size, uint32_t *used,
                                           uint16_t profile, uint8_t id, uint8_t voice,
                                           uint8_t level_dbov)
{
    if (level_dbov > 127)
        return MC_E_INVAL;
    uint8_t b = (uint8_t)((voice ? 0x80 : 0) | level_dbov);
    return mc_rtp_ext_append(buffer, buffer_size, used, profile, id, &b, 1);
}

/* ---- wrap-around helpers exported for tests (seq.h is the implementation) */

MC_API mc_status mc_seq_compare(uint16_t a, uint16_t b, int32_t *diff, int32_t *newer)
{
    if (!diff || !newer)
        return MC_E_INVAL;
    *diff = mc_seq_diff(a, b);
    *newer = mc_seq_newer(a, b);
    return MC_OK;
}

MC_API mc_status mc_ts_compare(uint32_t a, uint32_t b, int64_t *diff, int32_t *newer)
{
    if (!diff || !newer)
        return MC_E_INVAL;
    *diff = mc_ts_diff(a, b);
    *newer = mc_ts_newer(a, b);
    return MC_OK;
}

MC_API mc_status mc_seq_unwrap_many(const uint16_t *seqs, uint32_t count, int64_t *out)
{
    if ((!seqs || !out) && count)
        return MC_E_INVAL;
    mc_unwrap u = {0, 0};
    for (uint32_t i = 0; i < count; i++)
        out[i] = mc_seq_unwrap(&u, seqs[i]);
    return MC_OK;
}

MC_API mc_status mc_ts_unwrap_many(const uint32_t *timestamps, uint32_t count, int64_t *out)
{
    if ((!timestamps || !out) && count)
        return MC_E_INVAL;
    mc_unwrap u = {0, 0};
    for (uint32_t i = 0; i < count; i++)
        out[i] = mc_ts_unwrap(&u, timestamps[i]);
    return MC_OK;
}

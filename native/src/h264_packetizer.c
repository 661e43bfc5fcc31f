/*
 * h264_packetizer.c — H.264 RTP payload format (RFC 6184,
 * packetization-mode 1), send side: an Annex-B access unit becomes RTP
 * packets of at most max_payload bytes (single NAL unit packets, STAP-A
 * aggregates, FU-A fragments), with the cached SPS/PPS inserted before an
 * IDR that lacks them. Contract in the `h264` section of mediacore.h; the
 * receive side is h264_depacketizer.c.
 */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "h264_rtp.h"
#include "mediacore.h"
#include "rtp.h"

/* ---- packetizer --------------------------------------------------------- */

#define MAX_AGGREGATE 64

typedef struct nal_ref {
    const uint8_t *data;
    uint32_t size;
} nal_ref;

struct mc_h264_packetizer {
    mc_h264_packetizer_config config;
    uint16_t sequence;
    uint32_t sps_len, pps_len;
    uint8_t sps[MC_H264_MAX_PARAM_SET];
    uint8_t pps[MC_H264_MAX_PARAM_SET];
    mc_h264_packetizer_stats stats;
};

MC_API mc_status mc_h264_packetizer_new(const mc_h264_packetizer_config *config,
                                        mc_h264_packetizer **out)
{
    if (!out)
        return MC_E_INVAL;
    *out = NULL;
    mc_h264_packetizer_config c;
    memset(&c, 0, sizeof c);
    if (config)
        c = *config;
    if (c.max_payload == 0)
        c.max_payload = MC_H264_DEFAULT_MAX_PAYLOAD;
    /* an FU-A needs 2 header bytes and at least one byte of data; 65535 keeps
     * STAP-A sizes within 16 bits */
    if (c.max_payload < 3 || c.max_payload > 65535 || c.payload_type > 127 || c.tail_room > 65535 ||
        c.rtp_header > MC_H264_HEADER_SEND_RECORD)
        return MC_E_INVAL;
    mc_h264_packetizer *p = (mc_h264_packetizer *)calloc(1, sizeof *p);
    if (!p)
        return MC_E_NOMEM;
    p->config = c;
    p->sequence = c.first_sequence;
    p->stats.next_sequence = p->sequence;
    *out = p;
    return MC_OK;
}

MC_API void mc_h264_packetizer_free(mc_h264_packetizer *p) { free(p); }

/* Where packets go: a caller buffer or a ring. */
typedef struct pkt_sink {
    mc_h264_packetizer *pz;
    uint32_t timestamp;
    /* buffer */
    uint8_t *out;
    size_t out_size, used;
    uint32_t *offsets, *lengths, max_packets;
    /* ring */
    mc_ring *ring;
    uint32_t record_type;
    uint32_t count;
    int failed;
    /* the packet being written */
    uint8_t *cur;
    uint32_t cur_len;
} pkt_sink;

static inline uint32_t rtp_header_len(const pkt_sink *s)
{
    switch (s->pz->config.rtp_header) {
    case MC_H264_HEADER_RTP:
        return 12u;
    case MC_H264_HEADER_SEND_RECORD:
        return (uint32_t)sizeof(mc_send_record);
    default:
        return 0u;
    }
}

/* Start a packet with room for `payload_len` bytes; returns the payload area or NULL. */
static uint8_t *sink_begin(pkt_sink *s, uint32_t payload_len, int marker)
{
    mc_h264_packetizer *pz = s->pz;
    uint32_t hlen = rtp_header_len(s);
    uint32_t total = hlen + payload_len;
    s->cur = NULL;
    if (s->failed)
        return NULL;
    if (s->ring) {
        void *mem = NULL;
        mc_status st = mc_ring_reserve(s->ring, total, &mem);
        if (st != MC_OK || !mem)
            return NULL; /* dropped by the ring's policy (counted there) */
        s->cur = (uint8_t *)mem;
    } else {
        size_t off = (s->used + 7) & ~(size_t)7;
        if (s->count >= s->max_packets || off > s->out_size ||
            s->out_size - off < (size_t)total + pz->config.tail_room) {
            s->failed = 1;
            return NULL;
        }
        s->cur = s->out + off;
        s->offsets[s->count] = (uint32_t)off;
        s->lengths[s->count] = total;
        s->used = off + total + pz->config.tail_room;
    }
    s->cur_len = total;
    if (pz->config.rtp_header == MC_H264_HEADER_SEND_RECORD) {
        mc_send_record rec;
        memset(&rec, 0, sizeof rec);
        rec.timestamp = s->timestamp;
        rec.marker = (uint8_t)(marker ? 1 : 0);
        rec.payload_type = (uint8_t)MC_SEND_PT_DEFAULT;
        memcpy(s->cur, &rec, sizeof rec);
    } else if (hlen) {
        uint8_t *h = s->cur;
        uint16_t seq = pz->sequence;
        uint32_t ts = s->timestamp, ssrc = pz->config.ssrc;
        mc_rtp_write_fixed_header(h, marker, pz->config.payload_type, seq, ts, ssrc);
    }
    return s->cur + hlen;
}

static void sink_end(pkt_sink *s, uint32_t payload_len)
{
    s->pz->sequence++;
    s->count++;
    mc_h264_bump(&s->pz->stats.packets, 1);
    mc_h264_bump(&s->pz->stats.payload_bytes, payload_len);
    if (s->ring && s->cur)
        mc_ring_commit(s->ring, s->record_type, s->cur_len);
}

/* Packets the ring refused still consume a sequence number (the receiver
 * sees a loss, as on the wire). */
static void emit_single(pkt_sink *s, const nal_ref *n, int marker)
{
    uint8_t *dst = sink_begin(s, n->size, marker);
    if (dst)
        memcpy(dst, n->data, n->size);
    if (!s->failed) {
        mc_h264_bump(&s->pz->stats.single_nal_packets, 1);
        sink_end(s, n->size);
    }
}

static void emit_stap_a(pkt_sink *s, const nal_ref *units, uint32_t count, uint32_t size,
                        int marker)
{
    uint8_t *dst = sink_begin(s, size, marker);
    if (dst) {
        uint8_t f = 0, nri = 0;
        for (uint32_t i = 0; i < count; i++) {
            f |= units[i].data[0] & 0x80;
            if ((units[i].data[0] & 0x60) > nri)
                nri = units[i].data[0] & 0x60;
        }
        dst[0] = (uint8_t)(f | nri | MC_NAL_STAP_A);
        uint32_t o = 1;
        for (uint32_t i = 0; i < count; i++) {
            dst[o] = (uint8_t)(units[i].size >> 8);
            dst[o + 1] = (uint8_t)units[i].size;
            memcpy(dst + o + 2, units[i].data, units[i].size);
            o += 2 + units[i].size;
        }
    }
    if (!s->failed) {
        mc_h264_bump(&s->pz->stats.stap_a_packets, 1);
        sink_end(s, size);
    }
}

static void emit_fu_a(pkt_sink *s, const nal_ref *n, int last_nal)
{
    uint32_t max_data = s->pz->config.max_payload - 2;
    uint32_t data = n->size - 1; /* the NAL header travels in the FU indicator/header */
    uint32_t frags = (data + max_data - 1) / max_data;
    uint32_t base = data / frags, extra = data % frags; /* balanced fragments */
    const uint8_t *src = n->data + 1;
    uint8_t indicator = (uint8_t)((n->data[0] & 0xe0) | MC_NAL_FU_A);
    uint8_t type = n->data[0] & 0x1f;
    for (uint32_t k = 0; k < frags && !s->failed; k++) {
        uint32_t chunk = base + (k < extra ? 1 : 0);
        int end = k + 1 == frags;
        uint8_t *dst = sink_begin(s, chunk + 2, end && last_nal);
        if (dst) {
            dst[0] = indicator;
            dst[1] = (uint8_t)((k == 0 ? 0x80 : 0) | (end ? 0x40 : 0) | type);
            memcpy(dst + 2, src, chunk);
        }
        if (!s->failed) {
            mc_h264_bump(&s->pz->stats.fu_a_packets, 1);
            sink_end(s, chunk + 2);
        }
        src += chunk;
    }
}

typedef struct aggregator {
    nal_ref units[MAX_AGGREGATE];
    uint32_t count;
    uint32_t size; /* STAP-A payload size if sent as one */
} aggregator;

static void flush(pkt_sink *s, aggregator *a, int marker)
{
    if (a->count == 1)
        emit_single(s, &a->units[0], marker);
    else if (a->count > 1)
        emit_stap_a(s, a->units, a->count, a->size, marker);
    a->count = 0;
    a->size = 1;
}

/* Queue one NAL unit; `last` says no unit follows it in this access unit. */
static void add_nal(pkt_sink *s, aggregator *a, const nal_ref *n, int last)
{
    uint32_t max = s->pz->config.max_payload;
    if (n->size > max) {
        flush(s, a, 0);
        emit_fu_a(s, n, last);
        return;
    }
    if (a->count == MAX_AGGREGATE || (a->count && a->size + 2 + n->size > max))
        flush(s, a, 0);
    a->units[a->count++] = *n;
    a->size += 2 + n->size;
    if (last)
        flush(s, a, 1);
}

static void cache_param(uint8_t *cache, uint32_t *cache_len, const nal_ref *n)
{
    if (n->size <= MC_H264_MAX_PARAM_SET) {
        memcpy(cache, n->data, n->size);
        *cache_len = n->size;
    }
}

static mc_status packetize(pkt_sink *s, const uint8_t *au, uint32_t length)
{
    mc_h264_packetizer *pz = s->pz;
    if (!au && length)
        return MC_E_INVAL;
    uint16_t first_sequence = pz->sequence;
    aggregator a;
    a.count = 0;
    a.size = 1;
    int has_sps = 0, has_pps = 0, vcl_seen = 0, inserted = 0, idr = 0;
    size_t pos = 0, start = 0, size = 0;
    int have = mc_h264_next_nal(au, length, &pos, &start, &size);
    if (!have) {
        mc_h264_bump(&pz->stats.errors, 1);
        return MC_E_MALFORMED;
    }
    while (have && !s->failed) {
        nal_ref n = {au + start, (uint32_t)size};
        size_t nstart = 0, nsize = 0;
        int next = mc_h264_next_nal(au, length, &pos, &nstart, &nsize);
        uint8_t type = n.data[0] & 0x1f;
        if (type == MC_NAL_SPS) {
            has_sps = 1;
            cache_param(pz->sps, &pz->sps_len, &n);
        } else if (type == MC_NAL_PPS) {
            has_pps = 1;
            cache_param(pz->pps, &pz->pps_len, &n);
        } else if (type >= 1 && type <= 5 && !vcl_seen) {
            vcl_seen = 1;
            if (type == MC_NAL_IDR) {
                idr = 1;
                if (!has_sps && pz->sps_len) {
                    nal_ref c = {pz->sps, pz->sps_len};
                    add_nal(s, &a, &c, 0);
                    inserted = 1;
                }
                if (!has_pps && pz->pps_len) {
                    nal_ref c = {pz->pps, pz->pps_len};
                    add_nal(s, &a, &c, 0);
                    inserted = 1;
                }
            }
        }
        add_nal(s, &a, &n, !next);
        have = next;
        start = nstart;
        size = nsize;
    }
    if (s->failed) {
        pz->sequence = first_sequence;
        mc_h264_bump(&pz->stats.errors, 1);
        return MC_E_BUFFER;
    }
    mc_h264_bump(&pz->stats.access_units, 1);
    if (idr)
        mc_h264_bump(&pz->stats.idr_access_units, 1);
    if (inserted)
        mc_h264_bump(&pz->stats.params_inserted, 1);
    mc_store_u32_relaxed(&pz->stats.next_sequence, pz->sequence);
    return MC_OK;
}

MC_API mc_status mc_h264_packetize(mc_h264_packetizer *pz, const uint8_t *access_unit,
                                   uint32_t length, uint32_t rtp_timestamp, uint8_t *out,
                                   size_t out_size, uint32_t *offsets, uint32_t *lengths,
                                   uint32_t max_packets, uint32_t *count)
{
    if (!pz || !out || !offsets || !lengths || !count)
        return MC_E_INVAL;
    *count = 0;
    pkt_sink s;
    memset(&s, 0, sizeof s);
    s.pz = pz;
    s.timestamp = rtp_timestamp;
    s.out = out;
    s.out_size = out_size;
    s.offsets = offsets;
    s.lengths = lengths;
    s.max_packets = max_packets;
    mc_status st = packetize(&s, access_unit, length);
    if (st == MC_OK)
        *count = s.count;
    return st;
}

MC_API mc_status mc_h264_packetize_to_ring(mc_h264_packetizer *pz, const uint8_t *access_unit,
                                           uint32_t length, uint32_t rtp_timestamp, mc_ring *ring,
                                           uint32_t record_type, uint32_t *count)
{
    if (!pz || !ring || !count || record_type == 0xffffffffu)
        return MC_E_INVAL;
    *count = 0;
    mc_ring_stats rs;
    mc_status st0 = mc_ring_get_stats(ring, &rs);
    if (st0 != MC_OK)
        return st0;
    if (rs.max_record < 12u + pz->config.max_payload)
        return MC_E_TOO_LARGE;
    pkt_sink s;
    memset(&s, 0, sizeof s);
    s.pz = pz;
    s.timestamp = rtp_timestamp;
    s.ring = ring;
    s.record_type = record_type;
    mc_status st = packetize(&s, access_unit, length);
    *count = s.count;
    return st;
}

MC_API mc_status mc_h264_packetizer_get_stats(mc_h264_packetizer *pz, mc_h264_packetizer_stats *out)
{
    if (!pz || !out)
        return MC_E_INVAL;
    const uint64_t *src = &pz->stats.access_units;
    uint64_t *dst = &out->access_units;
    size_t n64 = offsetof(mc_h264_packetizer_stats, next_sequence) / sizeof(uint64_t);
    for (size_t i = 0; i < n64; i++)
        dst[i] = mc_load_u64_relaxed(&src[i]);
    out->next_sequence = mc_load_u32_relaxed(&pz->stats.next_sequence);
    return MC_OK;
}

/*
 * engine_media.c — per-stream media work of the engine (see engine_media.h).
 */
#include "engine_media.h"

#include "srtp.h"

#include <stdlib.h>
#include <string.h>

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- SRTP: one context per direction of a session (srtp.h) ---------------------------- */

#define ENG_SRTP_MAX_SSRCS 64

mc_status eng_crypto_init(eng_session_crypto *c, int32_t profile, const uint8_t *tx_key,
                          uint32_t tx_len, const uint8_t *rx_key, uint32_t rx_len,
                          uint32_t replay_window, uint32_t flags)
{
    memset(c, 0, sizeof *c);
    c->profile = profile;
    c->replay_window = replay_window;
    if (profile == 0)
        return MC_OK;
    if (!tx_key || !rx_key)
        return MC_E_INVAL;
    mc_status st = mc_srtp_create(profile, rx_key, rx_len, replay_window, ENG_SRTP_MAX_SSRCS, flags,
                                  (mc_srtp **)&c->rx);
    if (st == MC_OK)
        st = mc_srtp_create(profile, tx_key, tx_len, replay_window, ENG_SRTP_MAX_SSRCS,
                            flags | MC_SRTP_OUTBOUND, (mc_srtp **)&c->tx);
    if (st != MC_OK)
        eng_crypto_free(c);
    return st;
}

void eng_crypto_free(eng_session_crypto *c)
{
    mc_srtp_free((mc_srtp *)c->rx);
    mc_srtp_free((mc_srtp *)c->tx);
    c->rx = NULL;
    c->tx = NULL;
}

mc_status eng_crypto_rx_rtp(eng_session_crypto *c, uint8_t *buf, uint32_t *len)
{
    if (!c->rx)
        return MC_OK;
    size_t out = 0;
    mc_status st = mc_srtp_unprotect((mc_srtp *)c->rx, buf, *len, &out);
    if (st == MC_OK)
        *len = (uint32_t)out;
    return st;
}

mc_status eng_crypto_rx_rtcp(eng_session_crypto *c, uint8_t *buf, uint32_t *len)
{
    if (!c->rx)
        return MC_OK;
    size_t out = 0;
    mc_status st = mc_srtcp_unprotect((mc_srtp *)c->rx, buf, *len, &out);
    if (st == MC_OK)
        *len = (uint32_t)out;
    return st;
}

mc_status eng_crypto_tx_rtp(eng_session_crypto *c, uint8_t *buf, uint32_t *len, uint32_t cap)
{
    if (!c->tx)
        return MC_OK;
    size_t out = 0;
    mc_status st = mc_srtp_protect((mc_srtp *)c->tx, buf, *len, cap, &out);
    if (st == MC_OK)
        *len = (uint32_t)out;
    return st;
}

mc_status eng_crypto_tx_rtcp(eng_session_crypto *c, uint8_t *buf, uint32_t *len, uint32_t cap)
{
    if (!c->tx)
        return MC_OK;
    size_t out = 0;
    mc_status st = mc_srtcp_protect((mc_srtp *)c->tx, buf, *len, cap, &out);
    if (st == MC_OK)
        *len = (uint32_t)out;
    return st;
}

/* ---- RTP parse (RFC 3550 5.1) ------------------------------------------------------------ */

mc_status eng_rtp_parse(const uint8_t *buf, uint32_t len, eng_rtp_view *v)
{
    if (len < 12 || (buf[0] >> 6) != 2)
        return MC_E_MALFORMED;
    uint32_t cc = buf[0] & 0x0f;
    uint32_t off = 12 + 4 * cc;
    if (off > len)
        return MC_E_MALFORMED;
    if (buf[0] & 0x10) {
        if (off + 4 > len)
            return MC_E_MALFORMED;
        uint32_t words = rd16(buf + off + 2);
        off += 4 + 4 * words;
        if (off > len)
            return MC_E_MALFORMED;
    }
    uint32_t end = len;
    if (buf[0] & 0x20) {
        uint32_t pad = buf[len - 1];
        if (pad == 0 || pad > len - off)
            return MC_E_MALFORMED;
        end -= pad;
    }
    v->marker = buf[1] >> 7;
    v->payload_type = buf[1] & 0x7f;
    v->sequence_number = rd16(buf + 2);
    v->timestamp = rd32(buf + 4);
    v->ssrc = rd32(buf + 8);
    v->payload_offset = off;
    v->payload_length = end - off;
    return MC_OK;
}

/* ---- receive statistics (RFC 3550 A.1, A.3, A.8) ------------------------------------------ */

typedef struct rx_stats {
    int started;
    int64_t base_ext;
    int64_t max_ext;
    uint64_t received;
    uint64_t bytes;
    uint64_t duplicates;
    uint64_t reordered;
    uint64_t expected_prior, received_prior;
    double jitter; /* timestamp units */
    int64_t last_transit;
    int have_transit;
    uint32_t lsr;
    int64_t lsr_arrival_ns;
    uint64_t window[16]; /* 1024 sequence numbers seen (duplicate detection) */
    uint32_t clock_rate;
} rx_stats;

static int64_t unwrap16(int64_t ref, uint16_t seq)
{
    int32_t d = (int32_t)(uint16_t)(seq - (uint16_t)ref);
    if (d >= 0x8000)
        d -= 0x10000;
    return ref + d;
}

static int window_test_set(rx_stats *s, int64_t ext)
{
    uint64_t bit = (uint64_t)ext & 1023u;
    uint64_t mask = 1ULL << (bit & 63u);
    int seen = (s->window[bit >> 6] & mask) != 0;
    s->window[bit >> 6] |= mask;
    return seen;
}

static void window_clear_range(rx_stats *s, int64_t from, int64_t to)
{
    if (to - from >= 1024) {
        memset(s->window, 0, sizeof s->window);
        return;
    }
    for (int64_t x = from; x < to; x++) {
        uint64_t bit = (uint64_t)x & 1023u;
        s->window[bit >> 6] &= ~(1ULL << (bit & 63u));
    }
}

/* Returns 1 when the packet is new (not a duplicate). */
static int rx_stats_update(rx_stats *s, uint16_t seq, uint32_t ts, uint32_t bytes, int64_t now)
{
    int64_t ext;
    if (!s->started) {
        s->started = 1;
        ext = seq;
        s->base_ext = ext;
        s->max_ext = ext;
    } else {
        ext = unwrap16(s->max_ext, seq);
        if (ext > s->max_ext) {
            window_clear_range(s, s->max_ext + 1, ext + 1);
            s->max_ext = ext;
        } else if (s->max_ext - ext >= 1024) {
            /* far behind the window: treat as old (counts as reordered) */
            s->received++;
            s->bytes += bytes;
            s->reordered++;
            return 1;
        }
    }
    if (window_test_set(s, ext) && s->received) {
        s->duplicates++;
        s->received++; /* A.3 counts duplicates as received */
        return 0;
    }
    if (ext < s->max_ext)
        s->reordered++;
    if (ext < s->base_ext)
        s->base_ext = ext;
    s->received++;
    s->bytes += bytes;
    /* A.8 interarrival jitter in timestamp units */
    if (s->clock_rate) {
        int64_t arrival = (int64_t)((double)now * s->clock_rate / 1e9);
        int64_t transit = arrival - (int64_t)ts;
        if (s->have_transit) {
            int64_t d = transit - s->last_transit;
            if (d < 0)
                d = -d;
            /* 32-bit wrap of ts shows up as a huge d: ignore such steps */
            if (d < (int64_t)s->clock_rate * 10)
                s->jitter += ((double)d - s->jitter) / 16.0;
        }
        s->last_transit = transit;
        s->have_transit = 1;
    }
    return 1;
}

static int64_t rx_stats_lost(const rx_stats *s)
{
    if (!s->started)
        return 0;
    int64_t expected = s->max_ext - s->base_ext + 1;
    return expected - (int64_t)(s->received - s->duplicates);
}

/* ---- receive side per stream ----------------------------------------------------------------- */

mc_status eng_rx_media_init(eng_rx_media *m, const mc_recv_stream_config *cfg, mc_engine *e)
{
    (void)e;
    memset(m, 0, sizeof *m);
    m->clock_rate = cfg->clock_rate;
    m->media = cfg->media;
    m->flags = cfg->flags;
    m->ssrc = cfg->ssrc;
    m->frame_ns = (int64_t)(cfg->frame_ms ? cfg->frame_ms : 20) * 1000000LL;
    rx_stats *s = (rx_stats *)calloc(1, sizeof *s);
    if (!s)
        return MC_E_NOMEM;
    s->clock_rate = cfg->clock_rate;
    m->stats = s;
    return MC_OK;
}

void eng_rx_media_free(eng_rx_media *m)
{
    free(m->stats);
    free(m->payload);
    m->stats = NULL;
    m->payload = NULL;
}

void eng_rx_media_packet(eng_rx_media *m, void *stream, const eng_rtp_view *v, const uint8_t *buf,
                         int64_t now)
{
    rx_stats *s = (rx_stats *)m->stats;
    if (!rx_stats_update(s, v->sequence_number, v->timestamp, v->payload_length, now))
        return; /* duplicate: counted, not delivered */
    mc_rtp_record rec;
    rec.arrival_ns = now;
    rec.ssrc = v->ssrc;
    rec.timestamp = v->timestamp;
    rec.sequence_number = v->sequence_number;
    rec.payload_type = v->payload_type;
    rec.marker = v->marker;
    rec.flags = 0;
    rec.lost_before = 0;
    eng_deliver(stream, &rec, buf + v->payload_offset, v->payload_length);
}

int64_t eng_rx_media_tick(eng_rx_media *m, mc_engine *e, void *stream, int64_t now)
{
    (void)m;
    (void)e;
    (void)stream;
    return now + 50000000LL;
}

mc_status eng_rx_media_report(eng_rx_media *m, uint32_t ssrc, int64_t now, eng_report *out)
{
    rx_stats *s = (rx_stats *)m->stats;
    if (!s->started)
        return MC_E_EMPTY;
    int64_t expected = s->max_ext - s->base_ext + 1;
    uint64_t received = s->received - s->duplicates;
    int64_t expected_interval = expected - (int64_t)s->expected_prior;
    int64_t received_interval = (int64_t)received - (int64_t)s->received_prior;
    s->expected_prior = (uint64_t)expected;
    s->received_prior = received;
    int64_t lost_interval = expected_interval - received_interval;
    memset(out, 0, sizeof *out);
    out->ssrc = ssrc;
    out->fraction_lost = (expected_interval <= 0 || lost_interval <= 0)
                             ? 0
                             : (uint32_t)((lost_interval << 8) / expected_interval);
    if (out->fraction_lost > 255)
        out->fraction_lost = 255;
    int64_t lost = rx_stats_lost(s);
    if (lost > 0x7FFFFF)
        lost = 0x7FFFFF;
    if (lost < -0x800000)
        lost = -0x800000;
    out->cumulative_lost = (int32_t)lost;
    out->extended_highest_seq = (uint32_t)s->max_ext;
    out->jitter = (uint32_t)s->jitter;
    if (s->lsr_arrival_ns) {
        out->lsr = s->lsr;
        out->dlsr = (uint32_t)(((now - s->lsr_arrival_ns) * 65536) / 1000000000LL);
    }
    out->rtt_ns = -1;
    return MC_OK;
}

void eng_rx_media_sr(eng_rx_media *m, uint64_t ntp, int64_t now)
{
    rx_stats *s = (rx_stats *)m->stats;
    s->lsr = (uint32_t)(ntp >> 16);
    s->lsr_arrival_ns = now;
}

void eng_rx_media_set_rtt(eng_rx_media *m, int64_t rtt_ns)
{
    (void)m;
    (void)rtt_ns;
}

void eng_rx_media_fill_stats(eng_rx_media *m, mc_recv_stream_stats *out)
{
    rx_stats *s = (rx_stats *)m->stats;
    out->lost = rx_stats_lost(s);
    out->duplicates = s->duplicates;
    out->reordered = s->reordered;
    out->extended_highest_seq = (uint32_t)s->max_ext;
    out->jitter_ms = s->clock_rate ? s->jitter * 1000.0 / s->clock_rate : 0.0;
}

/* ---- send side: retransmission history --------------------------------------------------------- */

mc_status eng_tx_media_init(eng_tx_media *m, uint32_t history)
{
    memset(m, 0, sizeof *m);
    if (!history)
        return MC_OK;
    uint32_t n = 1;
    while (n < history)
        n <<= 1;
    if (n > 4096)
        return MC_E_INVAL;
    m->history = n;
    m->packets = (uint8_t *)malloc((size_t)n * ENG_MAX_DATAGRAM);
    m->lengths = (uint32_t *)calloc(n, sizeof *m->lengths);
    m->seqs = (uint16_t *)calloc(n, sizeof *m->seqs);
    if (!m->packets || !m->lengths || !m->seqs) {
        eng_tx_media_free(m);
        return MC_E_NOMEM;
    }
    return MC_OK;
}

void eng_tx_media_free(eng_tx_media *m)
{
    free(m->packets);
    free(m->lengths);
    free(m->seqs);
    memset(m, 0, sizeof *m);
}

void eng_tx_media_sent(eng_tx_media *m, uint16_t seq, const uint8_t *pkt, uint32_t len)
{
    if (!m->history || len > ENG_MAX_DATAGRAM - 64)
        return;
    uint32_t i = seq & (m->history - 1);
    memcpy(m->packets + (size_t)i * ENG_MAX_DATAGRAM, pkt, len);
    m->lengths[i] = len;
    m->seqs[i] = seq;
}

void eng_tx_media_nack(eng_tx_media *m, mc_engine *e, void *stream, const uint16_t *lost,
                       uint32_t count)
{
    if (!m->history)
        return;
    for (uint32_t k = 0; k < count; k++) {
        uint32_t i = lost[k] & (m->history - 1);
        if (!m->lengths[i] || m->seqs[i] != lost[k])
            continue;
        mc_net_msg *msg;
        uint8_t *p = eng_tx_slot(e, &msg);
        memcpy(p, m->packets + (size_t)i * ENG_MAX_DATAGRAM, m->lengths[i]);
        /* same SSRC and sequence number (RFC 4588 RTX streams are not used):
         * SRTP protects it again with the same index, which receivers with a
         * replay window accept once */
        if (eng_send_rtp(e, stream, msg, m->lengths[i]))
            eng_count_retransmit(stream);
    }
}

/* ---- RTCP --------------------------------------------------------------------------------------- */

uint64_t eng_ntp_now(void)
{
    /* NTP time from the monotonic clock: RFC 3550 only needs a consistent
     * clock for LSR/DLSR round trips; wall-clock alignment is not needed
     * for RTT. Seconds since an arbitrary epoch, 32.32 fixed point. */
    int64_t ns = mc_now_ns();
    uint64_t sec = (uint64_t)(ns / 1000000000LL) + 2208988800ULL;
    uint64_t frac = ((uint64_t)(ns % 1000000000LL) << 32) / 1000000000ULL;
    return (sec << 32) | frac;
}

static int put_header(uint8_t *buf, uint32_t cap, uint32_t *used, uint32_t count, uint32_t pt,
                      uint32_t bytes)
{
    if (*used + bytes > cap || (bytes & 3))
        return 0;
    uint8_t *p = buf + *used;
    p[0] = (uint8_t)(0x80 | (count & 31));
    p[1] = (uint8_t)pt;
    wr16(p + 2, (uint16_t)(bytes / 4 - 1));
    return 1;
}

static void put_blocks(uint8_t *p, const eng_report *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++, p += 24) {
        wr32(p, b[i].ssrc);
        uint32_t cl = (uint32_t)b[i].cumulative_lost & 0xFFFFFF;
        wr32(p + 4, (b[i].fraction_lost << 24) | cl);
        wr32(p + 8, b[i].extended_highest_seq);
        wr32(p + 12, b[i].jitter);
        wr32(p + 16, b[i].lsr);
        wr32(p + 20, b[i].dlsr);
    }
}

void eng_rtcp_write_sr(uint8_t *buf, uint32_t cap, uint32_t *used, uint32_t ssrc, uint64_t ntp,
                       uint32_t rtp_ts, uint32_t packets, uint32_t octets, const eng_report *blocks,
                       uint32_t n)
{
    uint32_t bytes = 28 + 24 * n;
    if (!put_header(buf, cap, used, n, 200, bytes))
        return;
    uint8_t *p = buf + *used;
    wr32(p + 4, ssrc);
    wr32(p + 8, (uint32_t)(ntp >> 32));
    wr32(p + 12, (uint32_t)ntp);
    wr32(p + 16, rtp_ts);
    wr32(p + 20, packets);
    wr32(p + 24, octets);
    put_blocks(p + 28, blocks, n);
    *used += bytes;
}

void eng_rtcp_write_rr(uint8_t *buf, uint32_t cap, uint32_t *used, uint32_t ssrc,
                       const eng_report *blocks, uint32_t n)
{
    uint32_t bytes = 8 + 24 * n;
    if (!put_header(buf, cap, used, n, 201, bytes))
        return;
    uint8_t *p = buf + *used;
    wr32(p + 4, ssrc);
    put_blocks(p + 8, blocks, n);
    *used += bytes;
}

void eng_rtcp_write_cname(uint8_t *buf, uint32_t cap, uint32_t *used, uint32_t ssrc,
                          const char *cname)
{
    uint32_t len = (uint32_t)strlen(cname);
    if (len > 255)
        len = 255;
    /* header 4 + ssrc 4 + type 1 + len 1 + text, then at least one zero byte, padded to 4 */
    uint32_t bytes = (4 + 4 + 2 + len + 1 + 3) & ~3u;
    if (!put_header(buf, cap, used, 1, 202, bytes))
        return;
    uint8_t *p = buf + *used;
    memset(p + 4, 0, bytes - 4);
    wr32(p + 4, ssrc);
    p[8] = 1;
    p[9] = (uint8_t)len;
    memcpy(p + 10, cname, len);
    *used += bytes;
}

void eng_rtcp_write_nack(uint8_t *buf, uint32_t cap, uint32_t *used, uint32_t ssrc,
                         uint32_t media_ssrc, const uint16_t *lost, uint32_t n)
{
    /* RFC 4585 6.2.1: PID + BLP pairs; `lost` is in ascending order */
    uint32_t fci[64];
    uint32_t nf = 0;
    for (uint32_t i = 0; i < n && nf < 64;) {
        uint16_t pid = lost[i];
        uint16_t blp = 0;
        i++;
        while (i < n) {
            uint16_t d = (uint16_t)(lost[i] - pid);
            if (d == 0) {
                i++;
                continue;
            }
            if (d > 16)
                break;
            blp |= (uint16_t)(1u << (d - 1));
            i++;
        }
        fci[nf++] = ((uint32_t)pid << 16) | blp;
    }
    uint32_t bytes = 12 + 4 * nf;
    if (!nf || !put_header(buf, cap, used, 1, 205, bytes))
        return;
    uint8_t *p = buf + *used;
    wr32(p + 4, ssrc);
    wr32(p + 8, media_ssrc);
    for (uint32_t i = 0; i < nf; i++)
        wr32(p + 12 + 4 * i, fci[i]);
    *used += bytes;
}

void eng_rtcp_write_pli(uint8_t *buf, uint32_t cap, uint32_t *used, uint32_t ssrc,
                        uint32_t media_ssrc)
{
    if (!put_header(buf, cap, used, 1, 206, 12))
        return;
    uint8_t *p = buf + *used;
    wr32(p + 4, ssrc);
    wr32(p + 8, media_ssrc);
    *used += 12;
}

static void read_block(const uint8_t *p, eng_report *b, int64_t now)
{
    b->ssrc = rd32(p);
    b->fraction_lost = p[4];
    uint32_t cl = rd32(p + 4) & 0xFFFFFF;
    b->cumulative_lost = (cl & 0x800000) ? (int32_t)(cl | 0xFF000000u) : (int32_t)cl;
    b->extended_highest_seq = rd32(p + 8);
    b->jitter = rd32(p + 12);
    b->lsr = rd32(p + 16);
    b->dlsr = rd32(p + 20);
    b->rtt_ns = -1;
    if (b->lsr) {
        (void)now;
        uint32_t a = (uint32_t)(eng_ntp_now() >> 16);
        uint32_t rtt = a - b->lsr - b->dlsr; /* 1/65536 s, wraps correctly */
        if (rtt < 0x80000000u)
            b->rtt_ns = (int64_t)(((uint64_t)rtt * 1000000000ULL) >> 16);
    }
}

mc_status eng_rtcp_receive(eng_rtcp_ctx *ctx, const uint8_t *buf, uint32_t len)
{
    uint32_t off = 0;
    while (off + 4 <= len) {
        const uint8_t *p = buf + off;
        if ((p[0] >> 6) != 2)
            return MC_E_MALFORMED;
        uint32_t count = p[0] & 31;
        uint32_t pt = p[1];
        uint32_t bytes = (rd16(p + 2) + 1u) * 4u;
        if (off + bytes > len)
            return MC_E_MALFORMED;
        if (pt == 200 && bytes >= 28 && 28 + 24 * count <= bytes) {
            uint32_t ssrc = rd32(p + 4);
            uint64_t ntp = ((uint64_t)rd32(p + 8) << 32) | rd32(p + 12);
            eng_on_sender_report(ctx, ssrc, ntp);
            for (uint32_t i = 0; i < count; i++) {
                eng_report b;
                read_block(p + 28 + 24 * i, &b, ctx->now);
                eng_on_report_block(ctx, &b);
            }
        } else if (pt == 201 && bytes >= 8 && 8 + 24 * count <= bytes) {
            for (uint32_t i = 0; i < count; i++) {
                eng_report b;
                read_block(p + 8 + 24 * i, &b, ctx->now);
                eng_on_report_block(ctx, &b);
            }
        } else if (pt == 203) {
            for (uint32_t i = 0; i < count && 8 + 4 * i <= bytes; i++)
                eng_on_bye(ctx, rd32(p + 4 + 4 * i));
        } else if (pt == 205 && count == 1 && bytes >= 12) {
            uint16_t lost[256];
            uint32_t n = 0;
            for (uint32_t f = 12; f + 4 <= bytes && n + 17 <= 256; f += 4) {
                uint16_t pid = rd16(p + f);
                uint16_t blp = rd16(p + f + 2);
                lost[n++] = pid;
                for (uint32_t b = 0; b < 16; b++)
                    if (blp & (1u << b))
                        lost[n++] = (uint16_t)(pid + b + 1);
            }
            eng_on_feedback(ctx, MC_EVENT_NACK, rd32(p + 8), rd32(p + 4), lost, n);
        } else if (pt == 206 && count == 1 && bytes >= 12) {
            eng_on_feedback(ctx, MC_EVENT_PLI, rd32(p + 8), rd32(p + 4), NULL, 0);
        } else if (pt == 206 && count == 4 && bytes >= 20) {
            for (uint32_t f = 12; f + 8 <= bytes; f += 8)
                eng_on_feedback(ctx, MC_EVENT_FIR, rd32(p + f), rd32(p + 4), NULL, 0);
        }
        off += bytes;
    }
    return off == len ? MC_OK : MC_E_MALFORMED;
}

/*
 * engine_media.c — per-stream media work of the engine (see engine_media.h).
 */
#include "engine_media.h"

#include "rtp.h"
#include "rtpstats.h"
#include "srtp.h"

#include <stdlib.h>
#include <string.h>

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
    /* the rx key is what makes a session: without it nothing the remote
     * sends can be authenticated. No tx key (tx_len 0) is a receive-only
     * session: it never sends media or RTCP (eng_crypto_tx_* refuse) */
    if (!rx_key || !rx_len || (tx_len && !tx_key))
        return MC_E_INVAL;
    mc_status st = mc_srtp_create(profile, rx_key, rx_len, replay_window, ENG_SRTP_MAX_SSRCS, flags,
                                  (mc_srtp **)&c->rx);
    if (st == MC_OK && tx_len)
        st = mc_srtp_create(profile, tx_key, tx_len, replay_window, ENG_SRTP_MAX_SSRCS,
                            flags | MC_SRTP_OUTBOUND, (mc_srtp **)&c->tx);
    if (st != MC_OK)
        eng_crypto_free(c);
    return st;
}

int eng_crypto_can_send(const eng_session_crypto *c) { return c->profile == 0 || c->tx != NULL; }

void eng_crypto_free(eng_session_crypto *c)
{
    mc_srtp_free((mc_srtp *)c->rx);
    mc_srtp_free((mc_srtp *)c->tx);
    c->rx = NULL;
    c->tx = NULL;
}

mc_status eng_crypto_rx_rtp(eng_session_crypto *c, uint8_t *buf, uint32_t *len)
{
    if (c->profile == 0)
        return MC_OK;
    size_t out = 0;
    mc_status st = mc_srtp_unprotect((mc_srtp *)c->rx, buf, *len, &out);
    if (st == MC_OK)
        *len = (uint32_t)out;
    return st;
}

mc_status eng_crypto_rx_rtcp(eng_session_crypto *c, uint8_t *buf, uint32_t *len)
{
    if (c->profile == 0)
        return MC_OK;
    size_t out = 0;
    mc_status st = mc_srtcp_unprotect((mc_srtp *)c->rx, buf, *len, &out);
    if (st == MC_OK)
        *len = (uint32_t)out;
    return st;
}

mc_status eng_crypto_tx_rtp(eng_session_crypto *c, uint8_t *buf, uint32_t *len, uint32_t cap)
{
    if (c->profile == 0)
        return MC_OK;
    if (!c->tx)
        return MC_E_STATE; /* receive-only: never send in the clear */
    size_t out = 0;
    mc_status st = mc_srtp_protect((mc_srtp *)c->tx, buf, *len, cap, &out);
    if (st == MC_OK)
        *len = (uint32_t)out;
    return st;
}

mc_status eng_crypto_tx_rtcp(eng_session_crypto *c, uint8_t *buf, uint32_t *len, uint32_t cap)
{
    if (c->profile == 0)
        return MC_OK;
    if (!c->tx)
        return MC_E_STATE; /* receive-only: never send in the clear */
    size_t out = 0;
    mc_status st = mc_srtcp_protect((mc_srtp *)c->tx, buf, *len, cap, &out);
    if (st == MC_OK)
        *len = (uint32_t)out;
    return st;
}

/* ---- RTP parse (rtp.c) ---------------------------------------------------------------- */

mc_status eng_rtp_parse(const uint8_t *buf, uint32_t len, eng_rtp_view *v, uint32_t *bad_padding)
{
    mc_rtp_header h;
    mc_status st = mc_rtp_parse_why(buf, len, &h, bad_padding);
    if (st != MC_OK)
        return st;
    v->marker = h.marker;
    v->payload_type = h.payload_type;
    v->sequence_number = h.sequence_number;
    v->timestamp = h.timestamp;
    v->ssrc = h.ssrc;
    v->payload_offset = h.payload_offset;
    v->payload_length = h.payload_length;
    v->extension_profile = h.extension_profile;
    v->extension_words = h.extension ? h.extension_words : 0;
    v->extension_offset = h.extension_offset;
    return MC_OK;
}

uint16_t eng_audio_level_flags(uint32_t id, const eng_rtp_view *v, const uint8_t *buf)
{
    if (!id || !v->extension_words)
        return 0;
    mc_rtp_header h;
    memset(&h, 0, sizeof h);
    h.extension = 1;
    h.extension_profile = v->extension_profile;
    h.extension_words = v->extension_words;
    h.extension_offset = v->extension_offset;
    uint32_t offset = 0, length = 0;
    mc_status st = mc_rtp_ext_find(buf, &h, (uint8_t)id, &offset, &length);
    if (st == MC_E_NOT_FOUND || st == MC_E_UNSUPPORTED) /* absent, or another profile's block */
        return 0;
    if (st != MC_OK || length != 1) /* RFC 6464 3: exactly one byte */
        return MC_RECORD_FLAG_LEVEL_MALFORMED;
    uint8_t b = buf[offset];
    return (uint16_t)(MC_RECORD_FLAG_AUDIO_LEVEL | ((b & 0x80) ? MC_RECORD_FLAG_VOICE : 0) |
                      ((uint16_t)(b & 0x7F) << MC_RECORD_LEVEL_SHIFT));
}

/* ---- receive side per stream: statistics (rtpstats.c), jitter (jitter.c) and
 * reorder (reorder.c) buffers -------------------------------------------------------------- */

#define ENG_IDLE_STOP_NS 1000000000LL  /* audio: stop ticking after 1 s without packets */
#define ENG_VIDEO_TICK_NS 5000000LL

mc_status eng_rx_media_init(eng_rx_media *m, const mc_recv_stream_config *cfg, mc_engine *e)
{
    (void)e;
    memset(m, 0, sizeof *m);
    m->clock_rate = cfg->clock_rate;
    m->media = cfg->media;
    m->flags = cfg->flags;
    m->ssrc = cfg->ssrc;
    m->frame_ns = (int64_t)(cfg->frame_ms ? cfg->frame_ms : 20) * 1000000LL;
    m->audio_level_id = cfg->media == MC_MEDIA_AUDIO && cfg->audio_level_id <= 255
                            ? cfg->audio_level_id
                            : 0;
    /* payload types: an explicit set, or every type only when asked for; an
     * empty set would drop everything and is a configuration error */
    if (cfg->flags & MC_RECV_ANY_PAYLOAD_TYPE) {
        for (int i = 0; i < 4; i++)
            m->payload_types[i] = 0xFFFFFFFFu;
    } else {
        memcpy(m->payload_types, cfg->payload_types, sizeof m->payload_types);
        if (!(m->payload_types[0] | m->payload_types[1] | m->payload_types[2] |
              m->payload_types[3]))
            return MC_E_INVAL;
    }
    struct mc_rtpstats *st = (struct mc_rtpstats *)calloc(1, sizeof *st);
    if (!st)
        return MC_E_NOMEM;
    mc_rtpstats_init(st, cfg->clock_rate);
    m->stats = st;
    m->payload_cap = ENG_MAX_DATAGRAM;
    m->payload = (uint8_t *)malloc(m->payload_cap);
    if (!m->payload)
        return MC_E_NOMEM;
    if (cfg->flags & MC_RECV_DIRECT)
        return MC_OK;
    if (cfg->media == MC_MEDIA_AUDIO) {
        mc_jitter_config jc;
        memset(&jc, 0, sizeof jc);
        jc.clock_rate = cfg->clock_rate;
        jc.frame_ms = cfg->frame_ms ? cfg->frame_ms : 20;
        jc.min_delay_ms = cfg->jitter_min_ms ? cfg->jitter_min_ms : 2 * jc.frame_ms;
        jc.max_delay_ms = cfg->jitter_max_ms ? cfg->jitter_max_ms : 200;
        if (jc.max_delay_ms < jc.min_delay_ms)
            return MC_E_INVAL;
        uint32_t slots = 8;
        while (slots <= 2 * (jc.max_delay_ms / jc.frame_ms + 2))
            slots <<= 1;
        jc.capacity = slots;
        jc.max_payload = 1500;
        return mc_jitter_new(&jc, (mc_jitter **)&m->jitter);
    }
    mc_reorder_config rc;
    memset(&rc, 0, sizeof rc);
    rc.capacity = 512;
    rc.max_payload = ENG_MAX_DATAGRAM;
    rc.nack_max_retries = 3;
    rc.nack_min_interval_ns = 20000000LL;
    rc.max_wait_ns = (int64_t)(cfg->reorder_wait_ms ? cfg->reorder_wait_ms : 100) * 1000000LL;
    rc.pli_min_interval_ns = 500000000LL;
    return mc_reorder_new(&rc, (mc_reorder **)&m->reorder);
}

void eng_rx_media_free(eng_rx_media *m)
{
    mc_jitter_free((mc_jitter *)m->jitter);
    mc_reorder_free((mc_reorder *)m->reorder);
    free(m->stats);
    free(m->payload);
    memset(m, 0, sizeof *m);
}

static void deliver_reordered(eng_rx_media *m, void *stream, int64_t now)
{
    mc_reorder_packet pk;
    while (mc_reorder_pop((mc_reorder *)m->reorder, now, m->payload, m->payload_cap, &pk) == MC_OK) {
        mc_rtp_record rec;
        rec.arrival_ns = pk.arrival_ns;
        rec.ssrc = m->ssrc;
        rec.timestamp = pk.timestamp;
        rec.sequence_number = pk.sequence_number;
        rec.payload_type = pk.payload_type;
        rec.marker = pk.marker;
        rec.flags = pk.skipped_before ? MC_RECORD_FLAG_DISCONTINUITY : 0;
        rec.lost_before = pk.skipped_before > 0xFFFF ? 0xFFFF : (uint16_t)pk.skipped_before;
        eng_deliver(stream, &rec, m->payload, pk.payload_length);
    }
}

void eng_rx_media_packet(eng_rx_media *m, void *stream, const eng_rtp_view *v, const uint8_t *buf,
                         int64_t now)
{
    mc_status st = mc_rtpstats_on_packet((struct mc_rtpstats *)m->stats, now, v->sequence_number,
                                         v->timestamp, v->payload_length);
    if (st == MC_DROPPED)
        return; /* duplicate: counted by the statistics (duplicates), not delivered */
    if (st == MC_RTPSTATS_PROBATION) {
        m->probation++; /* A.1: a new numbering is taken once the next packet confirms it */
        return;
    }
    const uint8_t *payload = buf + v->payload_offset;
    uint16_t level = eng_audio_level_flags(m->audio_level_id, v, buf);
    if (m->jitter) {
        if (m->audio_level_id) { /* kept beside the jitter buffer, found again on pop */
            m->level_seq[v->sequence_number & 63] = v->sequence_number;
            m->level_flags[v->sequence_number & 63] = level;
        }
        mc_jitter_insert((mc_jitter *)m->jitter, now, v->sequence_number, v->timestamp, v->marker,
                         v->payload_type, payload, v->payload_length);
        if (!m->next_tick_ns)
            m->next_tick_ns = now + m->frame_ns;
        m->last_insert_ns = now;
        return;
    }
    if (m->reorder) {
        mc_reorder_insert((mc_reorder *)m->reorder, now, v->sequence_number, v->timestamp,
                          v->marker, v->payload_type, payload, v->payload_length);
        deliver_reordered(m, stream, now);
        if (!m->next_tick_ns)
            m->next_tick_ns = now + ENG_VIDEO_TICK_NS;
        return;
    }
    mc_rtp_record rec;
    rec.arrival_ns = now;
    rec.ssrc = v->ssrc;
    rec.timestamp = v->timestamp;
    rec.sequence_number = v->sequence_number;
    rec.payload_type = v->payload_type;
    rec.marker = v->marker;
    rec.flags = level;
    rec.lost_before = 0;
    eng_deliver(stream, &rec, payload, v->payload_length);
}

static void jitter_tick(eng_rx_media *m, void *stream, int64_t now)
{
    int n = 0;
    while (m->next_tick_ns && now >= m->next_tick_ns) {
        if (n++ > 10) { /* far behind (a stall): do not burst, resynchronise */
            m->next_tick_ns = now + m->frame_ns;
            break;
        }
        mc_jitter_frame f;
        mc_status st = mc_jitter_pop((mc_jitter *)m->jitter, now, m->payload, m->payload_cap, &f);
        if (st == MC_OK || f.kind == MC_JITTER_LOST || f.kind == MC_JITTER_UNDERRUN) {
            mc_rtp_record rec;
            rec.arrival_ns = st == MC_OK ? f.arrival_ns : now;
            rec.ssrc = m->ssrc;
            rec.timestamp = f.timestamp;
            rec.sequence_number = f.sequence_number;
            rec.payload_type = f.payload_type;
            rec.marker = f.marker;
            rec.flags = st == MC_OK ? 0 : MC_RECORD_FLAG_LOST;
            if (st == MC_OK && m->audio_level_id &&
                m->level_seq[f.sequence_number & 63] == f.sequence_number)
                rec.flags = m->level_flags[f.sequence_number & 63];
            rec.lost_before = 0;
            eng_deliver(stream, &rec, m->payload, st == MC_OK ? f.payload_length : 0);
        }
        m->next_tick_ns += m->frame_ns;
        if (now - m->last_insert_ns > ENG_IDLE_STOP_NS) {
            m->next_tick_ns = 0; /* the source went quiet: stop concealing */
            break;
        }
    }
}

int64_t eng_rx_media_tick(eng_rx_media *m, mc_engine *e, void *stream, int64_t now)
{
    if (m->jitter) {
        jitter_tick(m, stream, now);
        return m->next_tick_ns ? m->next_tick_ns : now + 50000000LL;
    }
    if (m->reorder) {
        if (!m->next_tick_ns || now < m->next_tick_ns)
            return m->next_tick_ns ? m->next_tick_ns : now + 50000000LL;
        mc_reorder *r = (mc_reorder *)m->reorder;
        deliver_reordered(m, stream, now);
        uint16_t lost[64];
        uint32_t n = 0;
        if (m->flags & MC_RECV_NACK)
            mc_reorder_nack_list(r, now, lost, 64, &n);
        int32_t pli = 0;
        if (m->flags & MC_RECV_PLI)
            mc_reorder_keyframe_needed(r, now, &pli);
        if (n || pli)
            eng_send_feedback(e, stream, lost, n, pli);
        m->next_tick_ns = now + ENG_VIDEO_TICK_NS;
        return m->next_tick_ns;
    }
    return now + 50000000LL;
}

mc_status eng_rx_media_report(eng_rx_media *m, uint32_t ssrc, int64_t now, eng_report *out)
{
    mc_rtcp_report_block b;
    mc_status st = mc_rtpstats_report_block((mc_rtpstats *)m->stats, ssrc, now, &b);
    if (st != MC_OK)
        return st;
    out->ssrc = b.ssrc;
    out->fraction_lost = b.fraction_lost;
    out->cumulative_lost = b.cumulative_lost;
    out->extended_highest_seq = b.extended_highest_seq;
    out->jitter = b.jitter;
    out->lsr = b.lsr;
    out->dlsr = b.dlsr;
    out->rtt_ns = -1;
    return MC_OK;
}

void eng_rx_media_sr(eng_rx_media *m, uint64_t ntp, int64_t now)
{
    mc_rtpstats_sr_received((mc_rtpstats *)m->stats, ntp, now);
}

void eng_rx_media_set_rtt(eng_rx_media *m, int64_t rtt_ns)
{
    if (m->reorder)
        mc_reorder_set_rtt((mc_reorder *)m->reorder, rtt_ns);
}

/* The statistics' and the buffer's counters into the stream's: every
 * accepted packet's fate (mediacore.h, mc_recv_stream_stats) except
 * delivered / ring_full, which eng_deliver counts. `late` is the buffers'
 * (a packet they refused for its slot's passing); the statistics' own
 * "too old to tell from a duplicate" packets go on to the buffer, which
 * decides their fate, so counting them too would count them twice. */
void eng_rx_media_fill_stats(eng_rx_media *m, mc_recv_stream_stats *out)
{
    mc_rtp_recv_stats s;
    mc_rtpstats_get((const mc_rtpstats *)m->stats, &s);
    out->lost = s.lost;
    out->duplicates = s.duplicates;
    out->reordered = s.reordered;
    out->late = 0;
    out->extended_highest_seq = s.extended_highest_seq;
    out->jitter_ms = s.jitter_ms;
    out->early = out->overflow = out->shrunk = out->reset = out->too_large = out->buffered = 0;
    out->probation = m->probation;
    if (m->jitter) {
        mc_jitter_stats j;
        mc_jitter_get_stats((const mc_jitter *)m->jitter, &j);
        out->duplicates += j.duplicates;
        out->late = j.late;
        out->early = j.early;
        out->shrunk = j.dropped_to_shrink;
        out->reset = j.reset_dropped;
        out->too_large = j.too_large;
        out->buffered = j.inserted - j.played - j.dropped_to_shrink - j.reset_dropped;
    } else if (m->reorder) {
        mc_reorder_stats r;
        mc_reorder_get_stats((const mc_reorder *)m->reorder, &r);
        out->duplicates += r.duplicates;
        out->late = r.late;
        out->overflow = r.overflow_dropped;
        out->reset = r.reset_dropped;
        out->too_large = r.too_large;
        out->buffered = r.inserted - r.released - r.overflow_dropped - r.reset_dropped;
    }
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

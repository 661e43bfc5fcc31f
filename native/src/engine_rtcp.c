/*
 * engine_rtcp.c — RTCP in the engine, both directions (the RTP half and the
 * I/O thread are engine.c; the threading contract is engine.h).
 *
 * Receive: the sender SSRC routes the compound to its session (or, for a
 * receive-only remote, the session whose SRTCP key authenticates it), SRTCP
 * unprotects it, the whole compound is validated (RFC 3550 6.1 / A.2, RFC
 * 5506) and only then acted on: SR (LSR for our RRs), report blocks about
 * our send streams (remote loss, jitter, RTT from LSR/DLSR, 6.4.1), NACK
 * (RFC 4585 6.2.1: retransmission), PLI and FIR (RFC 4585 6.3.1, RFC 5104
 * 4.3.1: events), BYE (6.6) and APP (6.7: variable-length events).
 * Send: the regular SR/RR + SDES report on the RFC 3550 6.3 timer, feedback
 * (NACK / PLI / FIR) as the receive buffers decide, BYE, and APP compounds
 * the control thread queues. rtcp.c builds and parses every packet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_state.h"
#include "rtp.h"

void eng_on_app(eng_rtcp_ctx *ctx, uint32_t sender, uint32_t ssrc, const uint8_t *name,
                uint32_t subtype, const uint8_t *data, uint32_t length)
{
    mc_engine *e = ctx->engine;
    eng_session *s = ctx->session;
    if (!s->events || length > MC_RTCP_APP_MAX_DATA) {
        e->c.app_dropped++;
        return;
    }
    void *p = NULL;
    uint32_t total = (uint32_t)sizeof(mc_engine_app_event) + length;
    if (mc_ring_reserve(s->events, total, &p) != MC_OK || !p) {
        e->c.app_dropped++; /* the full ring counted it too */
        return;
    }
    mc_engine_app_event ev;
    memset(&ev, 0, sizeof ev);
    ev.event.time_ns = ctx->now;
    ev.event.kind = MC_EVENT_APP;
    ev.event.ssrc = ssrc;
    ev.event.sender_ssrc = sender;
    ev.event.count = length;
    memcpy(ev.name, name, 4);
    ev.subtype = subtype;
    memcpy(p, &ev, sizeof ev);
    if (length)
        memcpy((uint8_t *)p + sizeof ev, data, length);
    mc_ring_commit(s->events, MC_RECORD_EVENT, total);
    e->c.app_received++;
}

static void count_rtcp_malformed(mc_engine *e, int bad_padding)
{
    if (bad_padding)
        e->c.rtcp_bad_padding++;
    else
        e->c.rtcp_malformed++;
    e->c.malformed++;
}

/* ---- RTCP receive ----------------------------------------------------------------- */

/* Does this (decrypted) compound RTCP packet mention one of the session's
 * send SSRCs (report block, feedback media SSRC)? */
static int rtcp_mentions_session(const eng_table *t, const eng_session *s, const uint8_t *buf,
                                 uint32_t len)
{
    uint32_t cursor = 0;
    mc_rtcp_packet pk;
    while (mc_rtcp_next(buf, len, &cursor, &pk) == MC_OK) {
        const uint8_t *p = buf + pk.offset;
        uint32_t first = 0, count = 0;
        if (pk.packet_type == MC_RTCP_SR) {
            first = 28;
            count = pk.count;
        } else if (pk.packet_type == MC_RTCP_RR) {
            first = 8;
            count = pk.count;
        } else if ((pk.packet_type == MC_RTCP_RTPFB || pk.packet_type == MC_RTCP_PSFB) &&
                   pk.length >= 12) {
            const eng_route *r = eng_route_lookup(t, mc_rd32(p + 8), ROUTE_SEND, NULL);
            if (r && r->session == s)
                return 1;
        }
        /* report blocks (RFC 3550 6.4.1): their first word is the SSRC */
        for (uint32_t i = 0; i < count && first + 24 * i + 4 <= pk.length; i++) {
            const eng_route *r = eng_route_lookup(t, mc_rd32(p + first + 24 * i), ROUTE_SEND, NULL);
            if (r && r->session == s)
                return 1;
        }
    }
    return 0;
}

/* RTCP from a sender SSRC we do not receive (a receive-only remote): find
 * its session by trying each session's inbound SRTCP context on a copy
 * (the tag proves the key: such a compound is the session's even when it
 * reports on nothing, e.g. an RR + APP), or, for plain RTP sessions, by the
 * send SSRCs the packet reports on. The answer is cached per sender SSRC.
 * On success `buf` holds the unprotected packet and *len its length. */
static eng_session *rtcp_find_session(mc_engine *e, const eng_table *t, uint8_t *buf,
                                      uint32_t *len, uint32_t sender)
{
    uint32_t slot = eng_route_hash(sender) & (ENG_RTCP_CACHE - 1);
    if (e->rtcp_cache[slot].ssrc == sender && e->rtcp_cache[slot].session_id) {
        for (uint32_t i = 0; i < t->n_sessions; i++) {
            eng_session *c = t->sessions[i].s;
            if (c->id != e->rtcp_cache[slot].session_id)
                continue;
            if (eng_crypto_rx_rtcp(&c->crypto, buf, len) == MC_OK)
                return c;
            break;
        }
    }
    for (uint32_t i = 0; i < t->n_sessions; i++) {
        eng_session *c = t->sessions[i].s;
        int keyed = c->crypto.rx != NULL;
        if (!keyed && !t->sessions[i].n_send)
            continue;
        uint32_t n = *len;
        memcpy(e->scratch, buf, n);
        if (eng_crypto_rx_rtcp(&c->crypto, e->scratch, &n) != MC_OK)
            continue;
        if (!keyed && !rtcp_mentions_session(t, c, e->scratch, n))
            continue;
        memcpy(buf, e->scratch, n);
        *len = n;
        e->rtcp_cache[slot].ssrc = sender;
        e->rtcp_cache[slot].session_id = c->id;
        return c;
    }
    return NULL;
}

void eng_handle_rtcp(mc_engine *e, const eng_table *t, uint8_t *buf, uint32_t len,
                        const mc_netaddr *from, int64_t now)
{
    uint32_t sender;
    if (!mc_packet_ssrc(buf, len, &sender)) { /* no room for the sender SSRC */
        count_rtcp_malformed(e, 0);
        return;
    }
    const eng_route *rt = eng_route_lookup(t, sender, ROUTE_RECV, from);
    eng_session *s = NULL;
    eng_recv *r = NULL;
    if (rt) {
        s = rt->session;
        r = (eng_recv *)rt->stream;
        if (!eng_source_ok(e, s, from))
            return;
        mc_status st = eng_crypto_rx_rtcp(&s->crypto, buf, &len);
        if (st != MC_OK) {
            if (st == MC_E_REPLAY) {
                e->c.replays++;
                e->c.rtcp_replays++;
                r->c.replays++;
            } else if (st == MC_E_AUTH) {
                e->c.auth_failures++;
                e->c.rtcp_auth_failures++;
                r->c.auth_failures++;
            } else {
                count_rtcp_malformed(e, 0);
            }
            return;
        }
    } else {
        s = rtcp_find_session(e, t, buf, &len, sender);
        if (!s) {
            e->c.unknown_ssrc++;
            return;
        }
        if (!eng_source_ok(e, s, from))
            return;
    }
    eng_rtcp_ctx ctx;
    ctx.engine = e;
    ctx.table = t;
    ctx.session = s;
    ctx.recv = r;
    ctx.now = now;
    uint32_t problem = MC_RTCP_VALID;
    if (eng_rtcp_receive(&ctx, buf, len, &problem) != MC_OK)
        count_rtcp_malformed(e, problem == MC_RTCP_BAD_PADDING);
    else
        e->c.rtcp_accepted++;
}

/* Hooks used by engine_media.c while walking a compound RTCP packet. */
void eng_on_sender_report(eng_rtcp_ctx *ctx, uint32_t ssrc, uint64_t ntp)
{
    const eng_route *rt = eng_route_lookup(ctx->table, ssrc, ROUTE_RECV, NULL);
    if (!rt || rt->session != ctx->session)
        return;
    eng_recv *r = (eng_recv *)rt->stream;
    r->c.sr_received++;
    eng_rx_media_sr(&r->m, ntp, ctx->now);
}

void eng_on_report_block(eng_rtcp_ctx *ctx, const eng_report *rb)
{
    const eng_route *rt = eng_route_lookup(ctx->table, rb->ssrc, ROUTE_SEND, NULL);
    if (!rt || rt->session != ctx->session)
        return;
    eng_send *s = (eng_send *)rt->stream;
    s->c.rr_received++;
    s->c.remote_fraction_lost = rb->fraction_lost;
    s->c.remote_cumulative_lost = rb->cumulative_lost;
    s->c.remote_jitter_ms = s->clock_rate ? rb->jitter * 1000.0 / s->clock_rate : 0.0;
    if (rb->rtt_ns >= 0) {
        s->c.rtt_ms = (double)rb->rtt_ns / 1e6;
        /* the receive streams of the session share the path: same RTT */
        for (uint32_t i = 0; i < ctx->table->n_sessions; i++) {
            const eng_tsess *ts = &ctx->table->sessions[i];
            if (ts->s != ctx->session)
                continue;
            for (uint32_t k = 0; k < ts->n_recv; k++) {
                ts->recv[k]->c.rtt_ms = s->c.rtt_ms;
                eng_rx_media_set_rtt(&ts->recv[k]->m, rb->rtt_ns);
            }
        }
    }
}

void eng_on_feedback(eng_rtcp_ctx *ctx, uint32_t kind, uint32_t media_ssrc, uint32_t sender,
                     const uint16_t *lost, uint32_t count)
{
    const eng_route *rt = eng_route_lookup(ctx->table, media_ssrc, ROUTE_SEND, NULL);
    if (!rt || rt->session != ctx->session)
        return;
    eng_send *s = (eng_send *)rt->stream;
    if (kind == MC_EVENT_PLI)
        s->c.plis_received++;
    else if (kind == MC_EVENT_FIR)
        s->c.firs_received++;
    else if (kind == MC_EVENT_NACK) {
        s->c.nacks_received += count;
        eng_tx_media_nack(&s->m, ctx->engine, s, lost, count);
    }
    eng_emit_event(ctx->session, kind, media_ssrc, sender, count, ctx->now);
}

void eng_on_bye(eng_rtcp_ctx *ctx, uint32_t ssrc)
{
    eng_emit_event(ctx->session, MC_EVENT_BYE, ssrc, ssrc, 0, ctx->now);
}

/* ---- RTCP send ---------------------------------------------------------------------- */

/* Protect a compound RTCP packet and queue it; 1 when queued. */
static int send_rtcp_buffer(mc_engine *e, eng_session *s, const uint8_t *pkt, uint32_t len)
{
    if (s->remote.family == 0 || len == 0)
        return 0;
    if (!eng_crypto_can_send(&s->crypto)) {
        e->c.tx_no_key++; /* receive-only: nothing goes out unprotected */
        return 0;
    }
    mc_net_msg *m;
    uint8_t *p = eng_tx_slot(e, &m);
    memcpy(p, pkt, len);
    if (eng_crypto_tx_rtcp(&s->crypto, p, &len, ENG_MAX_DATAGRAM) != MC_OK) {
        e->c.send_errors++;
        return 0;
    }
    m->length = len;
    m->addr = s->remote_rtcp.family ? s->remote_rtcp : s->remote;
    eng_tx_commit(e);
    e->c.rtcp_out++;
    return 1;
}

static uint32_t session_rtcp_ssrc(const eng_tsess *ts)
{
    for (uint32_t k = 0; k < ts->n_send; k++)
        if (ts->send[k]->sent_any)
            return ts->send[k]->ssrc;
    return ts->n_send ? ts->send[0]->ssrc : ts->s->rtcp_ssrc;
}

static void to_block(const eng_report *r, mc_rtcp_report_block *b)
{
    b->ssrc = r->ssrc;
    b->fraction_lost = (uint8_t)r->fraction_lost;
    b->cumulative_lost = r->cumulative_lost;
    b->extended_highest_seq = r->extended_highest_seq;
    b->jitter = r->jitter;
    b->lsr = r->lsr;
    b->dlsr = r->dlsr;
}

static void sender_info(const eng_send *o, uint64_t ntp, int64_t now, mc_rtcp_sender_info *si)
{
    uint32_t ts = o->last_rtp_ts;
    if (o->clock_rate)
        ts += (uint32_t)((now - o->last_send_ns) * (int64_t)o->clock_rate / 1000000000LL);
    si->ssrc = o->ssrc;
    si->ntp_timestamp = ntp;
    si->rtp_timestamp = ts;
    si->packet_count = o->packet_count;
    si->octet_count = o->octet_count;
}

/* The regular compound report (rtcp.c builds it): SR of the first sending
 * stream with the report blocks, SRs of other sending streams, or an RR when
 * nothing was sent; then SDES CNAME. Returns the bytes sent (0: none). */
static uint32_t session_rtcp(mc_engine *e, const eng_tsess *ts, int64_t now)
{
    uint8_t pkt[1200];
    size_t used = 0;
    eng_session *s = ts->s;
    uint32_t ssrc = session_rtcp_ssrc(ts);
    mc_rtcp_report_block blocks[MC_RTCP_MAX_REPORTS];
    uint32_t nb = 0;
    for (uint32_t k = 0; k < ts->n_recv && nb < MC_RTCP_MAX_REPORTS; k++) {
        eng_report r;
        if (eng_rx_media_report(&ts->recv[k]->m, ts->recv[k]->ssrc, now, &r) == MC_OK)
            to_block(&r, &blocks[nb++]);
    }
    mc_rtcp_sender_info senders[8];
    uint32_t ns = 0;
    uint64_t ntp = eng_ntp_now();
    for (uint32_t k = 0; k < ts->n_send; k++)
        if (ts->send[k]->ssrc == ssrc && ts->send[k]->sent_any)
            sender_info(ts->send[k], ntp, now, &senders[ns++]);
    for (uint32_t k = 0; ns && k < ts->n_send && ns < 8; k++) {
        const eng_send *o = ts->send[k];
        if (o->ssrc != ssrc && o->sent_any)
            sender_info(o, ntp, now, &senders[ns++]);
    }
    if (mc_rtcp_build_report(pkt, sizeof pkt, &used, ssrc, senders, ns, blocks, nb,
                             (const uint8_t *)s->cname, (uint32_t)strlen(s->cname)) != MC_OK)
        return 0;
    send_rtcp_buffer(e, s, pkt, (uint32_t)used);
    return (uint32_t)used;
}

/* Feedback (NACK / PLI / FIR) from a receive stream's buffer decisions or a
 * key-frame request from control. */
void eng_send_feedback(mc_engine *e, void *stream, const uint16_t *lost, uint32_t n_lost, int pli)
{
    eng_recv *r = (eng_recv *)stream;
    eng_session *s = r->session;
    uint8_t pkt[1200];
    size_t used = 0;
    /* RFC 4585: feedback goes in a compound packet: RR, SDES CNAME, then
     * the NACK / PLI / FIR (rtcp.c builds it). `pli` is a set of
     * MC_KEYFRAME_* bits; every FIR is a new command (RFC 5104 4.3.1.1: its
     * sequence number goes up by one) */
    uint8_t fir_seq = (uint8_t)(r->fir_seq + 1);
    if (mc_rtcp_build_feedback(pkt, sizeof pkt, &used, s->rtcp_ssrc, (const uint8_t *)s->cname,
                               (uint32_t)strlen(s->cname), r->ssrc, lost, n_lost,
                               pli & MC_KEYFRAME_PLI,
                               (pli & MC_KEYFRAME_FIR) ? (int32_t)fir_seq : -1) != MC_OK)
        return;
    if (n_lost)
        r->c.nacks_sent += n_lost;
    if (pli & MC_KEYFRAME_PLI)
        r->c.plis_sent++;
    if (pli & MC_KEYFRAME_FIR) {
        r->fir_seq = fir_seq;
        r->c.firs_sent++;
    }
    send_rtcp_buffer(e, s, pkt, (uint32_t)used);
}

/* Membership for the RTCP timer from the session's tables: our sending
 * SSRCs (or the RTCP-only one) plus every remote source heard from. */
static void session_members(const eng_tsess *ts, uint32_t *members, uint32_t *senders,
                            int32_t *we_sent, uint64_t *bytes)
{
    uint32_t ours = 0, heard = 0;
    uint64_t b = 0;
    for (uint32_t k = 0; k < ts->n_send; k++) {
        b += ts->send[k]->c.bytes;
        if (ts->send[k]->sent_any)
            ours++;
    }
    for (uint32_t k = 0; k < ts->n_recv; k++) {
        b += ts->recv[k]->c.bytes;
        if (ts->recv[k]->c.packets)
            heard++;
    }
    *we_sent = ours > 0;
    *members = (ours ? ours : 1) + heard;
    *senders = ours + heard;
    *bytes = b;
}

void eng_session_rtcp_timer(mc_engine *e, const eng_tsess *ts, int64_t now)
{
    eng_session *s = ts->s;
    uint32_t members, senders;
    int32_t we_sent;
    uint64_t bytes;
    session_members(ts, &members, &senders, &we_sent, &bytes);
    if (!s->rtcp_timer_ready) {
        mc_rtcp_timer_init(&s->rtcp_timer, now, ENG_SESSION_BW_MIN, e->rtcp_interval_ns, 0,
                           eng_rng_step(&e->io_rng));
        s->rtcp_timer_ready = 1;
        s->rtcp_bytes_mark = bytes;
        s->rtcp_mark_ns = now;
    }
    mc_rtcp_timer_members(&s->rtcp_timer, now, members, senders, we_sent);
    if (!mc_rtcp_timer_expired(&s->rtcp_timer, now))
        return;
    /* session bandwidth (6.2): the media rate seen since the last report,
     * payload bytes in both directions, at least ENG_SESSION_BW_MIN */
    if (now > s->rtcp_mark_ns) {
        double bw = (double)(bytes - s->rtcp_bytes_mark) * 1e9 / (double)(now - s->rtcp_mark_ns);
        s->rtcp_timer.rtcp_bw = 0.05 * (bw > ENG_SESSION_BW_MIN ? bw : ENG_SESSION_BW_MIN);
    }
    s->rtcp_bytes_mark = bytes;
    s->rtcp_mark_ns = now;
    uint32_t sent = session_rtcp(e, ts, now);
    mc_rtcp_timer_sent(&s->rtcp_timer, now, sent ? sent : 100);
}

/* BYE (RFC 3550 6.6) when a session is removed or the engine closes, from
 * the control thread once the I/O thread no longer sees the session (after
 * the table swap) or is not running. 6.3.7: sessions here have a handful of
 * members, so the BYE goes at once. */
void eng_session_bye(mc_engine *e, eng_session *s)
{
    if (!e->sock || s->remote.family == 0 || !eng_crypto_can_send(&s->crypto))
        return;
    if (s->rtcp_timer_ready && !mc_rtcp_timer_bye_now(&s->rtcp_timer))
        return;
    uint32_t ssrcs[31];
    uint32_t n = 0;
    for (uint32_t k = 0; k < s->n_send && n < 31; k++)
        if (s->send[k]->sent_any)
            ssrcs[n++] = s->send[k]->ssrc;
    if (n == 0)
        ssrcs[n++] = s->rtcp_ssrc;
    uint8_t pkt[ENG_MAX_DATAGRAM];
    size_t used = 0;
    static const char reason[] = "session closed";
    if (mc_rtcp_build_bye(pkt, 1200, &used, ssrcs, n, (const uint8_t *)s->cname,
                          (uint32_t)strlen(s->cname), (const uint8_t *)reason,
                          (uint32_t)sizeof reason - 1) != MC_OK)
        return;
    uint32_t len = (uint32_t)used;
    if (eng_crypto_tx_rtcp(&s->crypto, pkt, &len, sizeof pkt) != MC_OK)
        return;
    (void)mc_udp_send_to(e->sock, pkt, len, s->remote_rtcp.family ? &s->remote_rtcp : &s->remote);
}

/* Protect and queue the APP compounds the control thread left (I/O thread). */
void eng_send_pending_app(mc_engine *e, eng_session *s)
{
    if (!mc_load_u32_acquire(&s->app_pending))
        return;
    mc_mutex_lock(&s->app_lock);
    for (uint32_t i = 0; i < s->app_count; i++) {
        if (send_rtcp_buffer(e, s, s->app_queue + (size_t)i * ENG_APP_COMPOUND, s->app_length[i]))
            e->c.app_sent++;
    }
    s->app_count = 0;
    mc_store_u32_release(&s->app_pending, 0);
    mc_mutex_unlock(&s->app_lock);
}

/* ---- public API: RTCP APP ---------------------------------------------------------------- */

MC_API mc_status mc_engine_send_rtcp_app(mc_engine *e, uint32_t session_id, uint32_t ssrc,
                                         const uint8_t *name, uint32_t subtype,
                                         const uint8_t *data, uint32_t data_length)
{
    if (!e || !name || subtype > 31 || data_length % 4 != 0 || (data_length && !data))
        return MC_E_INVAL;
    if (data_length > MC_RTCP_APP_MAX_DATA)
        return MC_E_TOO_LARGE;
    eng_session *s = eng_find_session(e, session_id, NULL);
    if (!s)
        return MC_E_NOT_FOUND;
    if (!eng_crypto_can_send(&s->crypto) || !mc_load_u32_acquire(&s->remote_known))
        return MC_E_STATE;
    uint8_t pkt[ENG_MAX_DATAGRAM];
    size_t used = 0;
    mc_status st = mc_rtcp_build_app(pkt, ENG_APP_COMPOUND, &used, ssrc, name, subtype, data,
                                     data_length);
    if (st != MC_OK)
        return st;
    if (!eng_is_running(e)) {
        /* no I/O thread: this thread owns the outbound context and the batch */
        if (send_rtcp_buffer(e, s, pkt, (uint32_t)used))
            e->c.app_sent++;
        eng_flush_tx(e);
        return MC_OK;
    }
    mc_mutex_lock(&s->app_lock);
    if (!s->app_queue)
        s->app_queue = (uint8_t *)malloc((size_t)MC_ENGINE_APP_QUEUE * ENG_APP_COMPOUND);
    if (!s->app_queue) {
        mc_mutex_unlock(&s->app_lock);
        return MC_E_NOMEM;
    }
    if (s->app_count == MC_ENGINE_APP_QUEUE) {
        mc_mutex_unlock(&s->app_lock);
        return MC_E_FULL;
    }
    memcpy(s->app_queue + (size_t)s->app_count * ENG_APP_COMPOUND, pkt, used);
    s->app_length[s->app_count++] = (uint32_t)used;
    mc_store_u32_release(&s->app_pending, 1);
    mc_mutex_unlock(&s->app_lock);
    eng_wake_io(e);
    return MC_OK;
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

static void to_report(const mc_rtcp_report_block *b, eng_report *r)
{
    r->ssrc = b->ssrc;
    r->fraction_lost = b->fraction_lost;
    r->cumulative_lost = b->cumulative_lost;
    r->extended_highest_seq = b->extended_highest_seq;
    r->jitter = b->jitter;
    r->lsr = b->lsr;
    r->dlsr = b->dlsr;
    r->rtt_ns = -1;
    int64_t rtt;
    if (b->lsr && mc_rtcp_rtt_ns(eng_ntp_now(), b->lsr, b->dlsr, &rtt) == MC_OK && rtt >= 0)
        r->rtt_ns = rtt;
}

/* Act on a compound RTCP packet with the rtcp.c parsers (untrusted input).
 * The whole compound is validated first (RFC 3550 A.2, mc_rtcp_check_compound)
 * so that nothing in it is acted on when any part of it is malformed: an SR
 * ahead of a bad packet must not move our LSR/RTT state either. */
mc_status eng_rtcp_receive(eng_rtcp_ctx *ctx, const uint8_t *buf, uint32_t len, uint32_t *problem)
{
    if (mc_rtcp_check_compound(buf, len, problem) != MC_OK)
        return MC_E_MALFORMED;
    uint32_t sender = mc_rd32(buf + 4); /* the compound's first packet speaks for it */
    uint32_t cursor = 0;
    mc_rtcp_packet pk;
    while (mc_rtcp_next(buf, len, &cursor, &pk) == MC_OK) {
        const uint8_t *p = buf + pk.offset;
        size_t n = pk.length;
        mc_rtcp_report_block blocks[MC_RTCP_MAX_REPORTS];
        uint32_t count = 0;
        /* every parse below succeeded once in the check: the statuses are
         * known to be MC_OK, the checks only keep the compiler honest */
        if (pk.packet_type == MC_RTCP_SR) {
            mc_rtcp_sender_info si;
            if (mc_rtcp_parse_sr(p, n, &si, blocks, MC_RTCP_MAX_REPORTS, &count) != MC_OK)
                return MC_E_MALFORMED;
            eng_on_sender_report(ctx, si.ssrc, si.ntp_timestamp);
        } else if (pk.packet_type == MC_RTCP_RR) {
            uint32_t ssrc;
            if (mc_rtcp_parse_rr(p, n, &ssrc, blocks, MC_RTCP_MAX_REPORTS, &count) != MC_OK)
                return MC_E_MALFORMED;
        } else if (pk.packet_type == MC_RTCP_BYE) {
            uint32_t ssrcs[31], nb = 0, ro, rl;
            if (mc_rtcp_parse_bye(p, n, ssrcs, 31, &nb, &ro, &rl) != MC_OK)
                return MC_E_MALFORMED;
            for (uint32_t i = 0; i < nb && i < 31; i++)
                eng_on_bye(ctx, ssrcs[i]);
        } else if (pk.packet_type == MC_RTCP_APP) {
            uint32_t ssrc, subtype, off, dlen;
            uint8_t name[4];
            if (mc_rtcp_parse_app(p, n, &ssrc, name, &subtype, &off, &dlen) != MC_OK)
                return MC_E_MALFORMED;
            eng_on_app(ctx, sender, ssrc, name, subtype, p + off, dlen);
        } else if (pk.packet_type == MC_RTCP_RTPFB && pk.count == MC_RTCP_FMT_NACK) {
            uint32_t sender_ssrc, media, nl = 0;
            uint16_t lost[256];
            if (mc_rtcp_parse_nack(p, n, &sender_ssrc, &media, lost, 256, &nl) != MC_OK)
                return MC_E_MALFORMED;
            eng_on_feedback(ctx, MC_EVENT_NACK, media, sender_ssrc, lost, nl > 256 ? 256 : nl);
        } else if (pk.packet_type == MC_RTCP_PSFB && pk.count == MC_RTCP_FMT_PLI) {
            uint32_t sender_ssrc, media;
            if (mc_rtcp_parse_pli(p, n, &sender_ssrc, &media) != MC_OK)
                return MC_E_MALFORMED;
            eng_on_feedback(ctx, MC_EVENT_PLI, media, sender_ssrc, NULL, 0);
        } else if (pk.packet_type == MC_RTCP_PSFB && pk.count == MC_RTCP_FMT_FIR) {
            uint32_t sender_ssrc, ssrcs[16], nf = 0;
            uint8_t seqs[16];
            if (mc_rtcp_parse_fir(p, n, &sender_ssrc, ssrcs, seqs, 16, &nf) != MC_OK)
                return MC_E_MALFORMED;
            for (uint32_t i = 0; i < nf && i < 16; i++)
                eng_on_feedback(ctx, MC_EVENT_FIR, ssrcs[i], sender_ssrc, NULL, 0);
        }
        for (uint32_t i = 0; i < count && i < MC_RTCP_MAX_REPORTS; i++) {
            eng_report r;
            to_report(&blocks[i], &r);
            eng_on_report_block(ctx, &r);
        }
    }
    return MC_OK;
}

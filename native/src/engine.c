/*
 * engine.c — one UDP socket, many media sessions, one native I/O thread.
 *
 * Receive path per datagram (RFC 5761 demux on the second byte):
 *   RTP : SSRC lookup -> source check -> SRTP unprotect -> RTP parse ->
 *         per-stream stats -> jitter buffer (audio) / reorder buffer (video) /
 *         direct -> mc_rtp_record into the stream's ring (reserve/commit).
 *   RTCP: engine_rtcp.c (routing, SRTCP, the compound's validity, SR/RR,
 *         NACK/PLI/FIR, BYE, APP; and every RTCP packet we send).
 * Send path: send rings -> RTP header (seq, timestamp, SSRC) -> SRTP ->
 *   sendmmsg batch. Timers: jitter pops every frame, reorder give-up/NACK/PLI,
 *   the RTCP timer per session (engine_rtcp.c), stats snapshots.
 * The threading contract is in engine.h; the shared state engine_state.h.
 */
#include "engine_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtp.h"

/* ---- small helpers ---------------------------------------------------------------- */

/* splitmix64 over a caller-owned state: the control thread uses e->rng
 * (SSRCs, initial sequence numbers), the I/O thread e->io_rng (RTCP
 * interval randomisation) — never the same word from two threads. */
uint64_t eng_rng_step(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rng_next(mc_engine *e) { return eng_rng_step(&e->rng); }

int eng_is_running(const mc_engine *e) { return e->thread_running; }

/* ---- table build / publish / grace -------------------------------------------------- */

static void table_free(eng_table *t)
{
    if (!t)
        return;
    free(t->sessions);
    free(t->recv);
    free(t->send);
    free(t->routes);
    free(t);
}

static void route_insert(eng_table *t, uint32_t ssrc, uint32_t kind, void *stream, eng_session *s)
{
    uint32_t i = eng_route_hash(ssrc) & t->mask;
    while (t->routes[i].stream)
        i = (i + 1) & t->mask;
    t->routes[i].ssrc = ssrc;
    t->routes[i].kind = kind;
    t->routes[i].stream = stream;
    t->routes[i].session = s;
}

static eng_table *table_build(mc_engine *e)
{
    eng_table *t = (eng_table *)calloc(1, sizeof *t);
    if (!t)
        return NULL;
    uint32_t nr = 0, ns = 0;
    for (uint32_t i = 0; i < e->n_sessions; i++) {
        nr += e->sessions[i]->n_recv;
        ns += e->sessions[i]->n_send;
    }
    uint32_t cap = 16;
    while (cap < 2 * (nr + ns) + 2)
        cap <<= 1;
    t->n_sessions = e->n_sessions;
    t->sessions = (eng_tsess *)calloc(e->n_sessions ? e->n_sessions : 1, sizeof *t->sessions);
    t->recv = (eng_recv **)calloc(nr ? nr : 1, sizeof *t->recv);
    t->send = (eng_send **)calloc(ns ? ns : 1, sizeof *t->send);
    t->routes = (eng_route *)calloc(cap, sizeof *t->routes);
    t->mask = cap - 1;
    if (!t->sessions || !t->recv || !t->send || !t->routes) {
        table_free(t);
        return NULL;
    }
    for (uint32_t i = 0; i < e->n_sessions; i++) {
        eng_session *s = e->sessions[i];
        eng_tsess *ts = &t->sessions[i];
        ts->s = s;
        ts->recv = t->recv + t->n_recv;
        ts->n_recv = s->n_recv;
        ts->send = t->send + t->n_send;
        ts->n_send = s->n_send;
        for (uint32_t k = 0; k < s->n_recv; k++) {
            t->recv[t->n_recv++] = s->recv[k];
            route_insert(t, s->recv[k]->ssrc, ROUTE_RECV, s->recv[k], s);
        }
        for (uint32_t k = 0; k < s->n_send; k++) {
            t->send[t->n_send++] = s->send[k];
            route_insert(t, s->send[k]->ssrc, ROUTE_SEND, s->send[k], s);
        }
    }
    return t;
}

/* Bump the wake sequence and, if the I/O thread sleeps (or is about to),
 * send one byte to its wake socket. seq_cst pair against the I/O thread's
 * store of io_sleeping followed by its load of wake_seq. */
void eng_wake_io(mc_engine *e)
{
    mc_fetch_add_u32(&e->wake_seq, 1);
    if (mc_load_u32_seq_cst(&e->io_sleeping)) {
        uint8_t b = 0;
        mc_udp_send_to(e->wake, &b, 1, &e->wake_addr);
    }
}

/* Publish a freshly built table and return the one it replaced once the I/O
 * thread can no longer hold it (the caller frees it and whatever only it
 * referenced). */
static eng_table *table_publish(mc_engine *e, eng_table *t)
{
    eng_table *old = e->table;
    e->table = t;
    /* release: the table's contents are visible before the pointer */
    mc_store_u64_release(&e->table_ptr, (uint64_t)(uintptr_t)t);
    uint64_t gen = mc_load_u64_relaxed(&e->table_gen) + 1;
    /* release: a reader that sees gen also sees the pointer stored above */
    mc_store_u64_release(&e->table_gen, gen);
    if (eng_is_running(e)) {
        int64_t deadline = mc_now_ns() + 5000000000LL;
        while (mc_load_u64_acquire(&e->io_seen_gen) < gen) {
            eng_wake_io(e);
            mc_sleep_ns(20000);
            if (mc_now_ns() > deadline) {
                /* the I/O thread is stuck; never free under it (leak instead) */
                return NULL;
            }
        }
    }
    return old;
}

static mc_status republish(mc_engine *e)
{
    eng_table *t = table_build(e);
    if (!t)
        return MC_E_NOMEM;
    table_free(table_publish(e, t));
    return MC_OK;
}

/* ---- stream and session lifetime ---------------------------------------------------- */

static void recv_free(eng_recv *r)
{
    if (!r)
        return;
    eng_rx_media_free(&r->m);
    mc_mutex_destroy(&r->snap_lock);
    free(r);
}

static void send_free(eng_send *s)
{
    if (!s)
        return;
    eng_tx_media_free(&s->m);
    mc_mutex_destroy(&s->snap_lock);
    free(s);
}

static void session_free(eng_session *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n_recv; i++)
        recv_free(s->recv[i]);
    for (uint32_t i = 0; i < s->n_send; i++)
        send_free(s->send[i]);
    free(s->recv);
    free(s->send);
    eng_crypto_free(&s->crypto);
    mc_mutex_destroy(&s->remote_lock);
    mc_mutex_destroy(&s->app_lock);
    free(s->app_queue);
    free(s);
}

eng_session *eng_find_session(mc_engine *e, uint32_t id, uint32_t *index)
{
    for (uint32_t i = 0; i < e->n_sessions; i++)
        if (e->sessions[i]->id == id) {
            if (index)
                *index = i;
            return e->sessions[i];
        }
    return NULL;
}

static int grow(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap)
        return 1;
    uint32_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, (size_t)n * elem);
    if (!p)
        return 0;
    *arr = p;
    *cap = n;
    return 1;
}

/* ---- snapshots ---------------------------------------------------------------------- */

static void publish_snapshots(mc_engine *e, const eng_table *t)
{
    for (uint32_t i = 0; i < t->n_recv; i++) {
        eng_recv *r = t->recv[i];
        eng_rx_media_fill_stats(&r->m, &r->c);
        mc_mutex_lock(&r->snap_lock);
        r->snap = r->c;
        mc_mutex_unlock(&r->snap_lock);
    }
    for (uint32_t i = 0; i < t->n_send; i++) {
        eng_send *s = t->send[i];
        mc_mutex_lock(&s->snap_lock);
        s->snap = s->c;
        mc_mutex_unlock(&s->snap_lock);
    }
    e->c.sessions = t->n_sessions;
    e->c.recv_streams = t->n_recv;
    e->c.send_streams = t->n_send;
    mc_mutex_lock(&e->snap_lock);
    e->snap = e->c;
    mc_mutex_unlock(&e->snap_lock);
}

/* ---- events ------------------------------------------------------------------------- */

void eng_emit_event(eng_session *s, uint32_t kind, uint32_t ssrc, uint32_t sender, uint32_t count,
                       int64_t now)
{
    if (!s->events)
        return;
    mc_engine_event ev;
    ev.time_ns = now;
    ev.kind = kind;
    ev.ssrc = ssrc;
    ev.sender_ssrc = sender;
    ev.count = count;
    mc_ring_write(s->events, MC_RECORD_EVENT, &ev, (uint32_t)sizeof ev);
}

/* An RTCP APP packet as a variable-length event record (layout in
 * mediacore.h, mc_engine_app_event), written in place with reserve/commit. */
/* ---- receive path ------------------------------------------------------------------- */

const eng_route *eng_route_lookup(const eng_table *t, uint32_t ssrc, uint32_t kind,
                                     const mc_netaddr *from)
{
    uint32_t i = eng_route_hash(ssrc) & t->mask;
    const eng_route *fallback = NULL;
    for (;;) {
        const eng_route *r = &t->routes[i];
        if (!r->stream)
            return fallback;
        if (r->ssrc == ssrc && r->kind == kind) {
            const eng_session *s = r->session;
            /* an SSRC may exist in several sessions (different remotes): the
             * one whose remote matches wins; otherwise the first */
            if (!from || s->remote.family == 0 || mc_netaddr_equal(&s->remote, from) ||
                mc_netaddr_equal(&s->remote_rtcp, from))
                return r;
            if (!fallback)
                fallback = r;
        }
        i = (i + 1) & t->mask;
    }
}

int eng_source_ok(mc_engine *e, eng_session *s, const mc_netaddr *from)
{
    if (!(s->flags & MC_SESSION_STRICT_SOURCE) || s->remote.family == 0)
        return 1;
    if (mc_netaddr_equal(&s->remote, from) || mc_netaddr_equal(&s->remote_rtcp, from))
        return 1;
    e->c.unknown_source++;
    return 0;
}

static void maybe_latch(eng_session *s, const mc_netaddr *from, uint32_t ssrc, int64_t now)
{
    if ((s->flags & MC_SESSION_LATCH) && s->remote.family == 0) {
        s->remote = *from;
        s->remote_rtcp = *from;
        mc_store_u32_release(&s->remote_known, 1);
        eng_emit_event(s, MC_EVENT_REMOTE_LATCHED, ssrc, 0, 0, now);
    }
}

/* Write one record into the stream's ring; counts drops. */
void eng_deliver(void *stream, const mc_rtp_record *rec, const uint8_t *payload, uint32_t length)
{
    eng_recv *r = (eng_recv *)stream;
    void *p = NULL;
    int packet = !(rec->flags & MC_RECORD_FLAG_LOST); /* a packet's fate, or concealment */
    mc_status st = mc_ring_reserve(r->ring, (uint32_t)sizeof *rec + length, &p);
    if (st != MC_OK || !p) {
        r->c.ring_dropped++;
        if (packet)
            r->c.ring_full++;
        return;
    }
    memcpy(p, rec, sizeof *rec);
    if (length)
        memcpy((uint8_t *)p + sizeof *rec, payload, length);
    int wake = 1;
    if (r->flags & MC_RECV_WAKE_PER_FRAME) {
        /* a frame is whole at its marker bit; without one (lost, or a sender
         * that leaves it out) the next timestamp says the last frame ended */
        wake = rec->marker || (rec->flags & MC_RECORD_FLAG_LOST) ||
               (r->delivered_any && !r->last_marker && rec->timestamp != r->last_timestamp);
        r->last_timestamp = rec->timestamp;
        r->last_marker = rec->marker;
        r->delivered_any = 1;
    }
    if (wake)
        mc_ring_commit(r->ring, MC_RECORD_RTP, (uint32_t)sizeof *rec + length);
    else
        mc_ring_commit_quiet(r->ring, MC_RECORD_RTP, (uint32_t)sizeof *rec + length);
    r->c.records++;
    if (packet)
        r->c.delivered++;
    else
        r->c.concealed++;
}

/* Failure counters: each failed datagram lands in exactly one of the
 * per-protocol counters (mediacore.h, mc_engine_stats) and in the legacy
 * totals (auth_failures, replays, malformed). */
static void count_rtp_malformed(mc_engine *e, eng_recv *r, int bad_padding)
{
    if (bad_padding)
        e->c.rtp_bad_padding++;
    else
        e->c.rtp_malformed++;
    e->c.malformed++;
    if (r)
        r->c.malformed++;
}

static void handle_rtp(mc_engine *e, const eng_table *t, uint8_t *buf, uint32_t len,
                       const mc_netaddr *from, int64_t now)
{
    uint32_t ssrc;
    if (!mc_packet_ssrc(buf, len, &ssrc)) { /* shorter than a header */
        count_rtp_malformed(e, NULL, 0);
        return;
    }
    const eng_route *rt = eng_route_lookup(t, ssrc, ROUTE_RECV, from);
    if (!rt) {
        e->c.unknown_ssrc++;
        return;
    }
    eng_recv *r = (eng_recv *)rt->stream;
    eng_session *s = rt->session;
    if (!eng_source_ok(e, s, from))
        return;
    mc_status st = eng_crypto_rx_rtp(&s->crypto, buf, &len);
    if (st != MC_OK) {
        if (st == MC_E_REPLAY) {
            r->c.replays++;
            e->c.replays++;
            e->c.rtp_replays++;
        } else if (st == MC_E_AUTH) {
            r->c.auth_failures++;
            e->c.auth_failures++;
            e->c.rtp_auth_failures++;
        } else {
            count_rtp_malformed(e, r, 0);
        }
        return;
    }
    eng_rtp_view v;
    uint32_t bad_padding = 0;
    if (eng_rtp_parse(buf, len, &v, &bad_padding) != MC_OK) {
        count_rtp_malformed(e, r, (int)bad_padding);
        return;
    }
    /* only the negotiated payload types are the stream's media: anything
     * else (another codec, a type never offered) is dropped before it can
     * reach a decoder, and counted */
    if (!eng_rx_media_accepts(&r->m, v.payload_type)) {
        r->c.payload_type_mismatch++;
        e->c.payload_type_mismatch++;
        return;
    }
    maybe_latch(s, from, ssrc, now);
    e->c.rtp_in++;
    r->c.packets++;
    r->c.bytes += v.payload_length;
    eng_rx_media_packet(&r->m, r, &v, buf, now);
}


static void process_datagram(mc_engine *e, const eng_table *t, uint8_t *buf, uint32_t len,
                             uint32_t capacity, const mc_netaddr *from, int64_t now)
{
    e->c.datagrams_in++;
    if (len > capacity) { /* truncated by the socket: larger than any media packet we take */
        e->c.not_rtp++;
        e->c.malformed++;
        return;
    }
    e->c.bytes_in += len;
    uint32_t kind = mc_packet_kind(buf, len); /* RFC 5761 4 / RFC 7983 */
    if (kind == MC_PACKET_OTHER) {
        e->c.not_rtp++; /* STUN, DTLS or junk */
        e->c.malformed++;
        return;
    }
    if (kind == MC_PACKET_RTCP) {
        e->c.rtcp_in++;
        eng_handle_rtcp(e, t, buf, len, from, now);
    } else {
        handle_rtp(e, t, buf, len, from, now);
    }
}

/* ---- send path ---------------------------------------------------------------------- */

void eng_flush_tx(mc_engine *e)
{
    uint32_t done = 0;
    while (done < e->tx_count) {
        uint32_t sent = 0;
        mc_status st = mc_udp_send_batch(e->sock, e->tx_msgs + done, e->tx_count - done, &sent);
        if (st != MC_OK) {
            e->c.send_errors++;
            done++; /* skip the datagram that failed */
            continue;
        }
        for (uint32_t i = 0; i < sent; i++) {
            e->c.datagrams_out++;
            e->c.bytes_out += e->tx_msgs[done + i].length;
        }
        done += sent;
        if (sent == 0) {
            /* socket buffer full: drop the rest of this batch (real-time media) */
            e->c.send_errors += e->tx_count - done;
            break;
        }
    }
    e->tx_count = 0;
}

/* A free transmit buffer (flushing when the batch is full). */
uint8_t *eng_tx_slot(mc_engine *e, mc_net_msg **msg)
{
    if (e->tx_count == ENG_BATCH)
        eng_flush_tx(e);
    mc_net_msg *m = &e->tx_msgs[e->tx_count];
    *msg = m;
    return m->data;
}

void eng_tx_commit(mc_engine *e) { e->tx_count++; }

/* Protect an RTP packet of `len` bytes in `slot` for stream s and queue it. */
int eng_send_rtp(mc_engine *e, void *stream, mc_net_msg *m, uint32_t len)
{
    eng_send *s = (eng_send *)stream;
    eng_session *ss = s->session;
    if (ss->remote.family == 0) {
        s->c.records_dropped++;
        return 0;
    }
    if (eng_crypto_tx_rtp(&ss->crypto, m->data, &len, ENG_MAX_DATAGRAM) != MC_OK) {
        s->c.send_errors++;
        return 0;
    }
    m->length = len;
    m->addr = ss->remote;
    eng_tx_commit(e);
    return 1;
}

static void drain_send(mc_engine *e, eng_send *s, int64_t now)
{
    uint32_t offsets[ENG_BATCH], lengths[ENG_BATCH], types[ENG_BATCH], count = 0;
    for (int rounds = 0; rounds < 16; rounds++) {
        if (mc_ring_peek(s->ring, offsets, lengths, types, ENG_BATCH, &count) != MC_OK || !count)
            return;
        const uint8_t *data = mc_ring_data(s->ring);
        for (uint32_t i = 0; i < count; i++) {
            const uint8_t *rec = data + offsets[i];
            uint32_t n = lengths[i];
            if (n < MC_SEND_RECORD_SIZE || n - MC_SEND_RECORD_SIZE + 12 + 8 + MC_SRTP_MAX_TRAILER > ENG_MAX_DATAGRAM) {
                s->c.records_dropped++;
                continue;
            }
            mc_send_record h;
            memcpy(&h, rec, sizeof h);
            uint32_t plen = n - MC_SEND_RECORD_SIZE;
            mc_net_msg *m;
            uint8_t *p = eng_tx_slot(e, &m);
            uint8_t pt = h.payload_type == MC_SEND_PT_DEFAULT ? s->payload_type : (uint8_t)(h.payload_type & 0x7f);
            uint32_t ts = h.timestamp + s->ts_offset;
            mc_rtp_write_fixed_header(p, h.marker, pt, s->seq, ts, s->ssrc);
            uint32_t hlen = 12;
            if (s->audio_level_id && (h.flags & MC_RECORD_FLAG_AUDIO_LEVEL)) {
                /* RFC 6464 in the RFC 8285 one-byte (id <= 14) or two-byte form */
                uint8_t lv = (uint8_t)(((h.flags & MC_RECORD_FLAG_VOICE) ? 0x80 : 0) |
                                       ((h.flags >> MC_RECORD_LEVEL_SHIFT) & 0x7F));
                p[0] |= 0x10;
                mc_wr16(p + 14, 1);
                if (s->audio_level_id <= 14) {
                    mc_wr16(p + 12, MC_RTP_EXT_ONE_BYTE);
                    p[16] = (uint8_t)(s->audio_level_id << 4); /* L = 0: one byte */
                    p[17] = lv;
                    p[18] = p[19] = 0;
                } else {
                    mc_wr16(p + 12, MC_RTP_EXT_TWO_BYTE);
                    p[16] = (uint8_t)s->audio_level_id;
                    p[17] = 1;
                    p[18] = lv;
                    p[19] = 0;
                }
                hlen = 20;
            }
            memcpy(p + hlen, rec + MC_SEND_RECORD_SIZE, plen);
            eng_tx_media_sent(&s->m, s->seq, p, hlen + plen);
            if (eng_send_rtp(e, s, m, hlen + plen)) {
                s->c.packets++;
                s->c.bytes += plen;
                s->packet_count++;
                s->octet_count += plen;
                s->last_rtp_ts = ts;
                s->last_send_ns = now;
                s->sent_any = 1;
            }
            s->seq++;
        }
        mc_ring_release(s->ring, count);
        if (count < ENG_BATCH)
            return;
    }
}

void eng_count_retransmit(void *stream) { ((eng_send *)stream)->c.retransmitted++; }

/* ---- timers ------------------------------------------------------------------------- */

static void adopt_pending_remote(eng_session *s)
{
    uint32_t g = mc_load_u32_acquire(&s->remote_gen);
    if (g == s->remote_gen_seen)
        return;
    mc_mutex_lock(&s->remote_lock);
    s->remote = s->pending_remote;
    s->remote_rtcp = s->pending_remote_rtcp;
    s->remote_gen_seen = g;
    mc_mutex_unlock(&s->remote_lock);
}

static int64_t run_timers(mc_engine *e, const eng_table *t, int64_t now)
{
    int64_t next = now + 50000000LL;
    for (uint32_t i = 0; i < t->n_sessions; i++) {
        const eng_tsess *ts = &t->sessions[i];
        eng_session *s = ts->s;
        adopt_pending_remote(s);
        eng_send_pending_app(e, s);
        for (uint32_t k = 0; k < ts->n_recv; k++) {
            eng_recv *r = ts->recv[k];
            uint32_t kf = mc_load_u32_relaxed(&r->keyframe_request);
            if (kf) {
                while (!mc_cas_u32(&r->keyframe_request, kf, 0))
                    kf = mc_load_u32_relaxed(&r->keyframe_request);
                eng_send_feedback(e, r, NULL, 0, (int)kf);
            }
            int64_t d = eng_rx_media_tick(&r->m, e, r, now);
            if (d < next)
                next = d;
        }
        for (uint32_t k = 0; k < ts->n_send; k++)
            drain_send(e, ts->send[k], now);
        eng_session_rtcp_timer(e, ts, now);
        if (s->rtcp_timer.tn_ns < next)
            next = s->rtcp_timer.tn_ns;
    }
    if (now >= e->next_publish_ns) {
        publish_snapshots(e, t);
        e->next_publish_ns = now + ENG_PUBLISH_NS;
    }
    if (e->next_publish_ns < next)
        next = e->next_publish_ns;
    eng_flush_tx(e);
    return next;
}

/* ---- the I/O thread ----------------------------------------------------------------- */

static void receive_batches(mc_engine *e, const eng_table *t)
{
    for (int rounds = 0; rounds < 8; rounds++) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < ENG_BATCH; i++)
            e->rx_msgs[i].capacity = ENG_MAX_DATAGRAM;
        if (mc_udp_recv_batch(e->sock, e->rx_msgs, ENG_BATCH, &n) != MC_OK) {
            e->c.io_errors++;
            return;
        }
        if (n == 0)
            return;
        int64_t now = mc_now_ns();
        for (uint32_t i = 0; i < n; i++)
            process_datagram(e, t, e->rx_msgs[i].data, e->rx_msgs[i].length, ENG_MAX_DATAGRAM,
                             &e->rx_msgs[i].addr, now);
        eng_flush_tx(e); /* NACK/PLI decided during the batch */
        if (n < ENG_BATCH)
            return;
    }
}

static void io_main(void *arg)
{
    mc_engine *e = (mc_engine *)arg;
    uint32_t wake_seen = mc_load_u32_seq_cst(&e->wake_seq);
    int64_t next = 0;
    while (!mc_load_u32_acquire(&e->stop)) {
        uint64_t gen = mc_load_u64_acquire(&e->table_gen);
        const eng_table *t = (const eng_table *)(uintptr_t)mc_load_u64_acquire(&e->table_ptr);
        /* release: every use of older tables happened before this store */
        mc_store_u64_release(&e->io_seen_gen, gen);
        e->c.loops++;
        receive_batches(e, t);
        int64_t now = mc_now_ns();
        if (now >= next || mc_load_u32_relaxed(&e->wake_seq) != wake_seen) {
            wake_seen = mc_load_u32_relaxed(&e->wake_seq);
            next = run_timers(e, t, now);
            e->io_cpu_ns = mc_net_thread_cpu_ns();
            now = mc_now_ns();
        }
        int64_t timeout = next - now;
        if (timeout < 0)
            timeout = 0;
        /* Sleep protocol: announce, then re-check the wake sequence (both
         * seq_cst; pairs with wake_io's increment-then-load). */
        mc_store_u32_seq_cst(&e->io_sleeping, 1);
        if (mc_load_u32_seq_cst(&e->wake_seq) != wake_seen ||
            mc_load_u64_acquire(&e->table_gen) != gen || mc_load_u32_acquire(&e->stop)) {
            mc_store_u32_relaxed(&e->io_sleeping, 0);
            continue;
        }
        uint32_t ready = 0;
        mc_status st = mc_udp_wait(e->sock, e->wake, timeout, &ready);
        mc_store_u32_relaxed(&e->io_sleeping, 0);
        if (st == MC_OK && (ready & 2u))
            mc_udp_drain(e->wake);
        else if (st == MC_E_IO)
            e->c.io_errors++;
    }
    const eng_table *t = (const eng_table *)(uintptr_t)mc_load_u64_acquire(&e->table_ptr);
    publish_snapshots(e, t);
    e->io_cpu_ns = mc_net_thread_cpu_ns();
    mc_store_u64_release(&e->io_seen_gen, mc_load_u64_acquire(&e->table_gen));
}

/* ---- public API: lifetime -------------------------------------------------------------- */

MC_API mc_status mc_engine_new(const mc_engine_config *config, mc_engine **out)
{
    if (!config || !out)
        return MC_E_INVAL;
    *out = NULL;
    mc_netaddr bind_addr;
    if (mc_netaddr_parse(config->bind_host ? config->bind_host : "0.0.0.0", config->bind_port,
                         &bind_addr) != MC_OK)
        return MC_E_INVAL;
    mc_engine *e = (mc_engine *)mc_aligned_alloc(64, sizeof *e);
    if (!e)
        return MC_E_NOMEM;
    memset(e, 0, sizeof *e);
    mc_mutex_init(&e->snap_lock);
    e->flags = config->flags;
    e->rtcp_interval_ns = (int64_t)(config->rtcp_interval_ms ? config->rtcp_interval_ms : 1000) * 1000000LL;
    e->rng = (uint64_t)mc_now_ns() ^ ((uint64_t)(uintptr_t)e << 16);
    e->io_rng = rng_next(e);
    e->next_session_id = 1;
    mc_status st = mc_udp_open(&bind_addr, config->rcvbuf_bytes, config->sndbuf_bytes, &e->sock);
    if (st == MC_OK) {
        mc_netaddr lo;
        mc_netaddr_parse("127.0.0.1", 0, &lo);
        st = mc_udp_open(&lo, 4096, 4096, &e->wake);
        if (st == MC_OK) {
            mc_udp_local(e->wake, &e->wake_addr);
            e->wake_addr.family = MC_NET_AF_INET;
        }
    }
    size_t mem = (size_t)ENG_BATCH * ENG_BUF_STRIDE;
    e->rx_mem = (uint8_t *)mc_aligned_alloc(64, mem);
    e->tx_mem = (uint8_t *)mc_aligned_alloc(64, mem + 64);
    e->scratch = (uint8_t *)mc_aligned_alloc(64, ENG_MAX_DATAGRAM + 64);
    if (st == MC_OK && (!e->rx_mem || !e->tx_mem || !e->scratch))
        st = MC_E_NOMEM;
    if (st == MC_OK) {
        eng_table *t = table_build(e);
        if (!t)
            st = MC_E_NOMEM;
        else
            table_publish(e, t);
    }
    if (st != MC_OK) {
        mc_engine_free(e);
        return st;
    }
    for (uint32_t i = 0; i < ENG_BATCH; i++) {
        e->rx_msgs[i].data = e->rx_mem + (size_t)i * ENG_BUF_STRIDE;
        e->rx_msgs[i].capacity = ENG_MAX_DATAGRAM;
        /* tx buffers start 64 bytes further: rx and tx slot i never sit at the
         * same offset modulo 4096 (4K aliasing: on the Zen 3 development VM
         * with glibc 2.36 such copies ran up to 22x slower) */
        e->tx_msgs[i].data = e->tx_mem + 64 + (size_t)i * ENG_BUF_STRIDE;
        e->tx_msgs[i].capacity = ENG_MAX_DATAGRAM;
    }
    *out = e;
    return MC_OK;
}

MC_API mc_status mc_engine_start(mc_engine *e)
{
    if (!e)
        return MC_E_INVAL;
    if (e->flags & MC_ENGINE_NO_THREAD)
        return MC_E_STATE;
    if (e->thread_running)
        return MC_OK;
    mc_store_u32_release(&e->stop, 0);
    e->next_publish_ns = 0;
    mc_status st = mc_thread_start(&e->thread, io_main, e);
    if (st != MC_OK)
        return st;
    e->thread_running = 1;
    return MC_OK;
}

MC_API mc_status mc_engine_stop(mc_engine *e)
{
    if (!e)
        return MC_E_INVAL;
    if (!e->thread_running)
        return MC_OK;
    mc_store_u32_seq_cst(&e->stop, 1);
    eng_wake_io(e);
    {
        uint8_t b = 0; /* unconditional: the thread may be between checks */
        mc_udp_send_to(e->wake, &b, 1, &e->wake_addr);
    }
    mc_thread_join(&e->thread);
    e->thread_running = 0;
    return MC_OK;
}

MC_API void mc_engine_free(mc_engine *e)
{
    if (!e)
        return;
    mc_engine_stop(e);
    for (uint32_t i = 0; i < e->n_sessions; i++) {
        eng_session_bye(e, e->sessions[i]);
        session_free(e->sessions[i]);
    }
    free(e->sessions);
    table_free(e->table);
    mc_udp_close(e->sock);
    mc_udp_close(e->wake);
    mc_aligned_free(e->rx_mem);
    mc_aligned_free(e->tx_mem);
    mc_aligned_free(e->scratch);
    mc_mutex_destroy(&e->snap_lock);
    mc_aligned_free(e);
}

MC_API mc_status mc_engine_local_port(mc_engine *e, uint16_t *port)
{
    if (!e || !port)
        return MC_E_INVAL;
    mc_netaddr a;
    mc_status st = mc_udp_local(e->sock, &a);
    if (st == MC_OK)
        *port = a.port;
    return st;
}

MC_API mc_status mc_engine_wake(mc_engine *e)
{
    if (!e)
        return MC_E_INVAL;
    eng_wake_io(e);
    return MC_OK;
}

/* ---- public API: sessions and streams -------------------------------------------------- */

static mc_status parse_remote(const char *host, uint16_t port, uint16_t rtcp_port, mc_netaddr *rtp,
                              mc_netaddr *rtcp)
{
    memset(rtp, 0, sizeof *rtp);
    memset(rtcp, 0, sizeof *rtcp);
    if (!host)
        return MC_OK;
    if (mc_netaddr_parse(host, port, rtp) != MC_OK || port == 0)
        return MC_E_INVAL;
    *rtcp = *rtp;
    if (rtcp_port)
        rtcp->port = rtcp_port;
    return MC_OK;
}

MC_API mc_status mc_engine_add_session(mc_engine *e, const mc_session_config *cfg, uint32_t *id)
{
    if (!e || !cfg || !id)
        return MC_E_INVAL;
    eng_session *s = (eng_session *)calloc(1, sizeof *s);
    if (!s)
        return MC_E_NOMEM;
    mc_mutex_init(&s->remote_lock);
    mc_mutex_init(&s->app_lock);
    mc_status st = parse_remote(cfg->remote_host, cfg->remote_port, cfg->remote_rtcp_port, &s->remote,
                                &s->remote_rtcp);
    if (st == MC_OK)
        st = eng_crypto_init(&s->crypto, cfg->srtp_profile, cfg->tx_key, cfg->tx_key_length,
                             cfg->rx_key, cfg->rx_key_length,
                             cfg->replay_window ? cfg->replay_window : 128,
                             (cfg->flags & MC_SESSION_SRTCP_TAG_32) ? MC_SRTP_SRTCP_TAG_32 : 0);
    if (st != MC_OK) {
        session_free(s);
        return st;
    }
    s->flags = cfg->flags;
    s->events = cfg->events;
    s->remote_known = s->remote.family != 0;
    s->rtcp_ssrc = (uint32_t)rng_next(e);
    if (cfg->cname && cfg->cname[0]) {
        strncpy(s->cname, cfg->cname, sizeof s->cname - 1);
    } else {
        snprintf(s->cname, sizeof s->cname, "mediabot-%08x", (unsigned)rng_next(e));
    }
    if (!grow((void **)&e->sessions, &e->cap_sessions, e->n_sessions + 1, sizeof *e->sessions)) {
        session_free(s);
        return MC_E_NOMEM;
    }
    s->id = e->next_session_id++;
    e->sessions[e->n_sessions++] = s;
    st = republish(e);
    if (st != MC_OK) {
        e->n_sessions--;
        session_free(s);
        return st;
    }
    *id = s->id;
    return MC_OK;
}

MC_API mc_status mc_engine_remove_session(mc_engine *e, uint32_t session_id)
{
    if (!e)
        return MC_E_INVAL;
    uint32_t idx;
    eng_session *s = eng_find_session(e, session_id, &idx);
    if (!s)
        return MC_E_NOT_FOUND;
    e->sessions[idx] = e->sessions[--e->n_sessions];
    eng_table *t = table_build(e);
    if (!t) {
        e->sessions[e->n_sessions++] = s;
        return MC_E_NOMEM;
    }
    eng_table *old = table_publish(e, t);
    if (old || !eng_is_running(e)) {
        table_free(old);
        eng_session_bye(e, s);
        session_free(s);
    }
    return MC_OK;
}

MC_API mc_status mc_engine_set_remote(mc_engine *e, uint32_t session_id, const char *host,
                                      uint16_t port, uint16_t rtcp_port)
{
    if (!e || !host)
        return MC_E_INVAL;
    eng_session *s = eng_find_session(e, session_id, NULL);
    if (!s)
        return MC_E_NOT_FOUND;
    mc_netaddr rtp, rtcp;
    mc_status st = parse_remote(host, port, rtcp_port, &rtp, &rtcp);
    if (st != MC_OK)
        return st;
    mc_store_u32_release(&s->remote_known, 1);
    if (!eng_is_running(e)) {
        s->remote = rtp;
        s->remote_rtcp = rtcp;
        return MC_OK;
    }
    mc_mutex_lock(&s->remote_lock);
    s->pending_remote = rtp;
    s->pending_remote_rtcp = rtcp;
    mc_mutex_unlock(&s->remote_lock);
    /* release: the pending addresses before the generation */
    mc_store_u32_release(&s->remote_gen, mc_load_u32_relaxed(&s->remote_gen) + 1);
    eng_wake_io(e);
    return MC_OK;
}

static int ssrc_in_use(const eng_session *s, uint32_t ssrc, int recv)
{
    if (recv) {
        for (uint32_t i = 0; i < s->n_recv; i++)
            if (s->recv[i]->ssrc == ssrc)
                return 1;
    } else {
        for (uint32_t i = 0; i < s->n_send; i++)
            if (s->send[i]->ssrc == ssrc)
                return 1;
    }
    return 0;
}

MC_API mc_status mc_engine_add_recv_stream(mc_engine *e, uint32_t session_id,
                                           const mc_recv_stream_config *cfg)
{
    if (!e || !cfg || !cfg->ring || cfg->media > MC_MEDIA_VIDEO || !cfg->clock_rate)
        return MC_E_INVAL;
    eng_session *s = eng_find_session(e, session_id, NULL);
    if (!s)
        return MC_E_NOT_FOUND;
    if (ssrc_in_use(s, cfg->ssrc, 1))
        return MC_E_EXISTS;
    eng_recv *r = (eng_recv *)calloc(1, sizeof *r);
    if (!r)
        return MC_E_NOMEM;
    mc_mutex_init(&r->snap_lock);
    r->ssrc = cfg->ssrc;
    r->media = cfg->media;
    r->clock_rate = cfg->clock_rate;
    r->flags = cfg->flags;
    r->frame_ms = cfg->frame_ms ? cfg->frame_ms : 20;
    r->session = s;
    r->ring = cfg->ring;
    r->c.rtt_ms = -1.0;
    mc_status st = eng_rx_media_init(&r->m, cfg, e);
    if (st != MC_OK || !grow((void **)&s->recv, &s->cap_recv, s->n_recv + 1, sizeof *s->recv)) {
        recv_free(r);
        return st != MC_OK ? st : MC_E_NOMEM;
    }
    r->snap = r->c;
    s->recv[s->n_recv++] = r;
    st = republish(e);
    if (st != MC_OK) {
        s->n_recv--;
        recv_free(r);
    }
    return st;
}

MC_API mc_status mc_engine_remove_recv_stream(mc_engine *e, uint32_t session_id, uint32_t ssrc)
{
    if (!e)
        return MC_E_INVAL;
    eng_session *s = eng_find_session(e, session_id, NULL);
    if (!s)
        return MC_E_NOT_FOUND;
    for (uint32_t i = 0; i < s->n_recv; i++) {
        if (s->recv[i]->ssrc != ssrc)
            continue;
        eng_recv *r = s->recv[i];
        s->recv[i] = s->recv[--s->n_recv];
        eng_table *t = table_build(e);
        if (!t) {
            s->recv[s->n_recv++] = r;
            return MC_E_NOMEM;
        }
        eng_table *old = table_publish(e, t);
        if (old || !eng_is_running(e)) {
            table_free(old);
            recv_free(r);
        }
        return MC_OK;
    }
    return MC_E_NOT_FOUND;
}

MC_API mc_status mc_engine_add_send_stream(mc_engine *e, uint32_t session_id,
                                           const mc_send_stream_config *cfg)
{
    if (!e || !cfg || !cfg->ring || cfg->payload_type > 127 || cfg->media > MC_MEDIA_VIDEO ||
        !cfg->clock_rate)
        return MC_E_INVAL;
    eng_session *s = eng_find_session(e, session_id, NULL);
    if (!s)
        return MC_E_NOT_FOUND;
    if (!eng_crypto_can_send(&s->crypto))
        return MC_E_STATE; /* receive-only session: nothing to protect with */
    if (ssrc_in_use(s, cfg->ssrc, 0))
        return MC_E_EXISTS;
    eng_send *x = (eng_send *)calloc(1, sizeof *x);
    if (!x)
        return MC_E_NOMEM;
    mc_mutex_init(&x->snap_lock);
    x->ssrc = cfg->ssrc;
    x->media = cfg->media;
    x->clock_rate = cfg->clock_rate;
    x->payload_type = cfg->payload_type;
    x->audio_level_id = cfg->audio_level_id <= 255 ? cfg->audio_level_id : 0;
    x->seq = cfg->initial_sequence > 0xFFFF ? (uint16_t)(rng_next(e) & 0x7FFF) : (uint16_t)cfg->initial_sequence;
    x->ts_offset = cfg->timestamp_offset;
    x->session = s;
    x->ring = cfg->ring;
    x->c.rtt_ms = -1.0;
    mc_status st = eng_tx_media_init(&x->m, cfg->history);
    if (st != MC_OK || !grow((void **)&s->send, &s->cap_send, s->n_send + 1, sizeof *s->send)) {
        send_free(x);
        return st != MC_OK ? st : MC_E_NOMEM;
    }
    x->snap = x->c;
    /* the first send stream's SSRC speaks for the session in RTCP feedback */
    if (s->n_send == 0)
        s->rtcp_ssrc = cfg->ssrc;
    s->send[s->n_send++] = x;
    st = republish(e);
    if (st != MC_OK) {
        s->n_send--;
        send_free(x);
    }
    return st;
}

MC_API mc_status mc_engine_remove_send_stream(mc_engine *e, uint32_t session_id, uint32_t ssrc)
{
    if (!e)
        return MC_E_INVAL;
    eng_session *s = eng_find_session(e, session_id, NULL);
    if (!s)
        return MC_E_NOT_FOUND;
    for (uint32_t i = 0; i < s->n_send; i++) {
        if (s->send[i]->ssrc != ssrc)
            continue;
        eng_send *x = s->send[i];
        s->send[i] = s->send[--s->n_send];
        eng_table *t = table_build(e);
        if (!t) {
            s->send[s->n_send++] = x;
            return MC_E_NOMEM;
        }
        eng_table *old = table_publish(e, t);
        if (old || !eng_is_running(e)) {
            table_free(old);
            send_free(x);
        }
        return MC_OK;
    }
    return MC_E_NOT_FOUND;
}

MC_API mc_status mc_engine_request_keyframe(mc_engine *e, uint32_t session_id, uint32_t ssrc)
{
    return mc_engine_request_keyframe_methods(e, session_id, ssrc, MC_KEYFRAME_PLI);
}

MC_API mc_status mc_engine_request_keyframe_methods(mc_engine *e, uint32_t session_id,
                                                    uint32_t ssrc, uint32_t methods)
{
    if (!e || !methods || (methods & ~(uint32_t)(MC_KEYFRAME_PLI | MC_KEYFRAME_FIR)))
        return MC_E_INVAL;
    eng_session *s = eng_find_session(e, session_id, NULL);
    if (!s)
        return MC_E_NOT_FOUND;
    for (uint32_t i = 0; i < s->n_recv; i++)
        if (s->recv[i]->ssrc == ssrc) {
            volatile uint32_t *flag = &s->recv[i]->keyframe_request;
            uint32_t cur = mc_load_u32_relaxed(flag);
            while (!mc_cas_u32(flag, cur, cur | methods))
                cur = mc_load_u32_relaxed(flag);
            eng_wake_io(e);
            return MC_OK;
        }
    return MC_E_NOT_FOUND;
}

/* ---- public API: statistics ------------------------------------------------------------ */

MC_API mc_status mc_engine_get_stats(mc_engine *e, mc_engine_stats *out)
{
    if (!e || !out)
        return MC_E_INVAL;
    if (eng_is_running(e)) {
        mc_mutex_lock(&e->snap_lock);
        *out = e->snap;
        mc_mutex_unlock(&e->snap_lock);
    } else {
        *out = e->c;
        out->sessions = e->n_sessions;
        out->recv_streams = e->table ? e->table->n_recv : 0;
        out->send_streams = e->table ? e->table->n_send : 0;
    }
    out->running = (uint32_t)eng_is_running(e);
    return MC_OK;
}

MC_API mc_status mc_engine_get_recv_stats(mc_engine *e, uint32_t session_id, uint32_t ssrc,
                                          mc_recv_stream_stats *out)
{
    if (!e || !out)
        return MC_E_INVAL;
    eng_session *s = eng_find_session(e, session_id, NULL);
    if (!s)
        return MC_E_NOT_FOUND;
    for (uint32_t i = 0; i < s->n_recv; i++) {
        eng_recv *r = s->recv[i];
        if (r->ssrc != ssrc)
            continue;
        if (eng_is_running(e)) {
            mc_mutex_lock(&r->snap_lock);
            *out = r->snap;
            mc_mutex_unlock(&r->snap_lock);
        } else {
            eng_rx_media_fill_stats(&r->m, &r->c);
            *out = r->c;
        }
        return MC_OK;
    }
    return MC_E_NOT_FOUND;
}

MC_API mc_status mc_engine_get_send_stats(mc_engine *e, uint32_t session_id, uint32_t ssrc,
                                          mc_send_stream_stats *out)
{
    if (!e || !out)
        return MC_E_INVAL;
    eng_session *s = eng_find_session(e, session_id, NULL);
    if (!s)
        return MC_E_NOT_FOUND;
    for (uint32_t i = 0; i < s->n_send; i++) {
        eng_send *x = s->send[i];
        if (x->ssrc != ssrc)
            continue;
        if (eng_is_running(e)) {
            mc_mutex_lock(&x->snap_lock);
            *out = x->snap;
            mc_mutex_unlock(&x->snap_lock);
        } else {
            *out = x->c;
        }
        return MC_OK;
    }
    return MC_E_NOT_FOUND;
}

MC_API mc_status mc_engine_io_cpu_ns(mc_engine *e, int64_t *cpu_ns)
{
    if (!e || !cpu_ns)
        return MC_E_INVAL;
    *cpu_ns = e->io_cpu_ns;
    return MC_OK;
}

/* ---- public API: injection and polling (no I/O thread) --------------------------------- */

MC_API mc_status mc_engine_inject_batch(mc_engine *e, const uint8_t *data, const uint32_t *lengths,
                                        uint32_t count, const char *from_host, uint16_t from_port,
                                        int64_t now_ns, int64_t step_ns)
{
    if (!e || (count && (!data || !lengths)) || step_ns < 0)
        return MC_E_INVAL;
    if (eng_is_running(e))
        return MC_E_STATE;
    mc_netaddr from;
    if (mc_netaddr_parse(from_host ? from_host : "127.0.0.1", from_port, &from) != MC_OK)
        return MC_E_INVAL;
    const eng_table *t = e->table;
    size_t off = 0;
    uint32_t i = 0;
    int64_t base = now_ns ? now_ns : mc_now_ns();
    while (i < count) {
        /* copy into the receive buffers, as recvmmsg would, a batch at a time */
        uint32_t n = count - i < ENG_BATCH ? count - i : ENG_BATCH;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t len = lengths[i + k];
            uint32_t copy = len > ENG_MAX_DATAGRAM ? ENG_MAX_DATAGRAM : len;
            memcpy(e->rx_msgs[k].data, data + off, copy);
            off += len;
            e->rx_msgs[k].length = len;
            e->rx_msgs[k].addr = from;
        }
        for (uint32_t k = 0; k < n; k++) {
            int64_t now = base + (int64_t)(i + k) * step_ns;
            process_datagram(e, t, e->rx_msgs[k].data, e->rx_msgs[k].length, ENG_MAX_DATAGRAM,
                             &e->rx_msgs[k].addr, now);
            if (step_ns)
                for (uint32_t r = 0; r < t->n_recv; r++)
                    eng_rx_media_tick(&t->recv[r]->m, e, t->recv[r], now);
        }
        i += n;
    }
    eng_flush_tx(e);
    return MC_OK;
}

MC_API mc_status mc_engine_poll(mc_engine *e, int64_t now_ns)
{
    if (!e)
        return MC_E_INVAL;
    if (eng_is_running(e))
        return MC_E_STATE;
    const eng_table *t = e->table;
    int64_t now = now_ns ? now_ns : mc_now_ns();
    for (uint32_t i = 0; i < t->n_sessions; i++)
        adopt_pending_remote(t->sessions[i].s);
    run_timers(e, t, now);
    return MC_OK;
}

/* ---- split read of a receive ring (Python's batch read) --------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
#define ENG_PREFETCH(p) __builtin_prefetch((const void *)(p))
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define ENG_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#else
#define ENG_PREFETCH(p) ((void)(p))
#endif

MC_API mc_status mc_engine_read_records(mc_ring *ring, mc_rtp_record *headers, uint8_t *payloads,
                                        size_t payloads_size, uint32_t *payload_offsets,
                                        uint32_t *payload_lengths, uint32_t max_records,
                                        uint32_t *count)
{
    enum { CHUNK = 64 };
    if (!ring || !headers || !payload_offsets || !payload_lengths || !count ||
        (!payloads && payloads_size))
        return MC_E_INVAL;
    *count = 0;
    const uint8_t *data = mc_ring_data(ring);
    mc_ring_stats rs;
    uint64_t capacity = mc_ring_get_stats(ring, &rs) == MC_OK ? rs.capacity : 0;
    uint32_t offs[CHUNK], lens[CHUNK];
    size_t used = 0;
    uint32_t done = 0;
    mc_status first = MC_OK;
    int full = 0;
    while (done < max_records && !full) {
        uint32_t want = max_records - done < CHUNK ? max_records - done : CHUNK, n = 0;
        mc_status s = mc_ring_peek(ring, offs, lens, NULL, want, &n);
        if (s != MC_OK || n == 0) {
            if (done == 0)
                first = s != MC_OK ? s : MC_E_EMPTY;
            break;
        }
        /* peek finds each record from the one before (dependent loads, a
         * cache miss each once the ring is cold): fetch the next stretch
         * while this chunk is copied; every line asked for is read anyway */
        uint64_t end = (uint64_t)offs[n - 1] + lens[n - 1];
        uint64_t span = end > offs[0] ? end - offs[0] + 64 : 0;
        if (capacity && span) {
            if (span > capacity)
                span = capacity;
            for (uint64_t o = end & ~(uint64_t)63; o < end + span; o += 64)
                ENG_PREFETCH(data + (o % capacity));
        }
        uint32_t i = 0;
        for (; i < n; i++) {
            const uint8_t *rec = data + offs[i];
            uint32_t len = lens[i];
            uint32_t plen =
                len >= sizeof(mc_rtp_record) ? len - (uint32_t)sizeof(mc_rtp_record) : 0;
            if (used + plen > payloads_size) {
                full = 1;
                break;
            }
            mc_rtp_record *h = &headers[done + i];
            if (len >= sizeof(mc_rtp_record)) {
                memcpy(h, rec, sizeof(mc_rtp_record));
                memcpy(payloads + used, rec + sizeof(mc_rtp_record), plen);
            } else {
                memset(h, 0, sizeof(mc_rtp_record));
            }
            payload_offsets[done + i] = (uint32_t)used;
            payload_lengths[done + i] = plen;
            used = (used + plen + 7u) & ~(size_t)7u;
        }
        if (i) {
            mc_status r = mc_ring_release(ring, i);
            if (r != MC_OK)
                return r;
        }
        done += i;
    }
    if (done == 0)
        return first != MC_OK ? first : MC_E_BUFFER;
    *count = done;
    return MC_OK;
}

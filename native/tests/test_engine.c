/*
 * test_engine.c — C-level tests of the engine (engine.c, net.c) with real
 * loopback sockets and the I/O thread, built with ASan/UBSan and with TSan
 * in `make native-check`:
 *  1. two engines exchange SRTP both ways through rings;
 *  2. the control path under load: sessions and streams are added and removed
 *     while the other engine floods this one (RCU: no packet may reach a freed
 *     stream — ASan/TSan would catch it), then both are freed while active;
 *  3. garbage datagrams through the injection entry point: counted, no crash;
 *  4. RTCP APP packets sent from the control thread while the I/O threads run.
 * Usage: test_engine [rounds]   (default 200 control-path rounds)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "mediacore.h"
#include "check.h"

#define OK(expr) CHECK_OK(expr)

static mc_engine *engine(int threaded)
{
    mc_engine_config c;
    memset(&c, 0, sizeof c);
    c.bind_host = "127.0.0.1";
    c.rtcp_interval_ms = 100;
    c.flags = threaded ? 0 : MC_ENGINE_NO_THREAD;
    mc_engine *e = NULL;
    OK(mc_engine_new(&c, &e));
    if (e && threaded)
        OK(mc_engine_start(e));
    return e;
}

static uint32_t session(mc_engine *e, mc_engine *peer, const uint8_t *tx, const uint8_t *rx,
                        int32_t profile)
{
    uint16_t port = 0;
    mc_engine_local_port(peer, &port);
    mc_session_config c;
    memset(&c, 0, sizeof c);
    c.remote_host = "127.0.0.1";
    c.remote_port = port;
    c.srtp_profile = profile;
    c.tx_key = tx;
    c.tx_key_length = 30;
    c.rx_key = rx;
    c.rx_key_length = 30;
    uint32_t id = 0;
    OK(mc_engine_add_session(e, &c, &id));
    return id;
}

static mc_status recv_stream(mc_engine *e, uint32_t sid, uint32_t ssrc, mc_ring *ring, uint32_t flags)
{
    mc_recv_stream_config c;
    memset(&c, 0, sizeof c);
    c.ssrc = ssrc;
    c.media = MC_MEDIA_VIDEO;
    c.clock_rate = 90000;
    c.flags = flags;
    c.ring = ring;
    c.payload_types[96 >> 5] = 1u << (96 & 31); /* what send_stream sends */
    return mc_engine_add_recv_stream(e, sid, &c);
}

static mc_status send_stream(mc_engine *e, uint32_t sid, uint32_t ssrc, mc_ring *ring)
{
    mc_send_stream_config c;
    memset(&c, 0, sizeof c);
    c.ssrc = ssrc;
    c.media = MC_MEDIA_VIDEO;
    c.clock_rate = 90000;
    c.payload_type = 96;
    c.initial_sequence = 100;
    c.history = 64;
    c.ring = ring;
    return mc_engine_add_send_stream(e, sid, &c);
}

static void send_payloads(mc_ring *ring, uint32_t first, uint32_t count, uint32_t len)
{
    uint8_t buf[1500];
    for (uint32_t i = first; i < first + count; i++) {
        mc_send_record h;
        memset(&h, 0, sizeof h);
        h.timestamp = i * 3000;
        h.payload_type = MC_SEND_PT_DEFAULT;
        memcpy(buf, &h, sizeof h);
        for (uint32_t k = 0; k < len; k++)
            buf[sizeof h + k] = (uint8_t)(i + k);
        mc_ring_write(ring, 0, buf, (uint32_t)sizeof h + len);
    }
}

/* Read records until `want` arrived or 5 s passed; checks payload bytes. */
static uint32_t read_records(mc_ring *ring, uint32_t want, uint32_t len)
{
    uint8_t buf[2048];
    uint32_t got = 0;
    int64_t deadline = mc_now_ns() + 5000000000LL;
    while (got < want && mc_now_ns() < deadline) {
        uint32_t n = 0, type = 0;
        mc_status st = mc_ring_read(ring, buf, sizeof buf, &n, &type);
        if (st == MC_E_EMPTY) {
            mc_ring_wait(ring, 10000000LL, 0);
            continue;
        }
        CHECK(st == MC_OK && type == MC_RECORD_RTP && n == MC_RTP_RECORD_SIZE + len);
        mc_rtp_record rec;
        memcpy(&rec, buf, sizeof rec);
        uint32_t i = rec.timestamp / 3000;
        int good = 1;
        for (uint32_t k = 0; k < len; k++)
            good &= buf[MC_RTP_RECORD_SIZE + k] == (uint8_t)(i + k);
        CHECK(good);
        got++;
    }
    return got;
}

static void test_exchange(void)
{
    uint8_t k1[30], k2[30];
    for (int i = 0; i < 30; i++) {
        k1[i] = (uint8_t)(i * 7 + 1);
        k2[i] = (uint8_t)(i * 13 + 5);
    }
    mc_engine *a = engine(1), *b = engine(1);
    mc_ring *atx, *arx, *btx, *brx;
    OK(mc_ring_new(1 << 20, MC_RING_DROP_NEWEST, &atx));
    OK(mc_ring_new(1 << 20, MC_RING_DROP_NEWEST, &arx));
    OK(mc_ring_new(1 << 20, MC_RING_DROP_NEWEST, &btx));
    OK(mc_ring_new(1 << 20, MC_RING_DROP_NEWEST, &brx));
    uint32_t sa = session(a, b, k1, k2, MC_SRTP_AES_CM_128_HMAC_SHA1_80);
    uint32_t sb = session(b, a, k2, k1, MC_SRTP_AES_CM_128_HMAC_SHA1_80);
    OK(send_stream(a, sa, 0xA, atx));
    OK(send_stream(b, sb, 0xB, btx));
    OK(recv_stream(a, sa, 0xB, arx, MC_RECV_DIRECT));
    OK(recv_stream(b, sb, 0xA, brx, 0));
    send_payloads(atx, 0, 300, 200);
    send_payloads(btx, 0, 300, 900);
    mc_engine_wake(a);
    mc_engine_wake(b);
    CHECK(read_records(brx, 300, 200) == 300);
    CHECK(read_records(arx, 300, 900) == 300);
    mc_recv_stream_stats rs;
    OK(mc_engine_get_recv_stats(b, sb, 0xA, &rs));
    mc_engine_free(a);
    mc_engine_free(b);
    mc_ring_free(atx);
    mc_ring_free(arx);
    mc_ring_free(btx);
    mc_ring_free(brx);
}

/* RTCP APP (RFC 3550 6.7) from the control thread while both I/O threads
 * run: queued for the I/O thread (it owns the outbound SRTCP context), sent,
 * validated and delivered as variable-length event records, all of them in
 * order; a full queue answers MC_E_FULL and the caller retries. */
static void test_app_exchange(void)
{
    uint8_t k1[30], k2[30];
    for (int i = 0; i < 30; i++) {
        k1[i] = (uint8_t)(i * 5 + 2);
        k2[i] = (uint8_t)(i * 11 + 3);
    }
    mc_engine *a = engine(1), *b = engine(1);
    mc_ring *events, *brx;
    OK(mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &events));
    OK(mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &brx));
    uint32_t sa = session(a, b, k1, k2, MC_SRTP_AES_CM_128_HMAC_SHA1_80);
    uint16_t port = 0;
    mc_engine_local_port(a, &port);
    mc_session_config c;
    memset(&c, 0, sizeof c);
    c.remote_host = "127.0.0.1";
    c.remote_port = port;
    c.srtp_profile = MC_SRTP_AES_CM_128_HMAC_SHA1_80;
    c.tx_key = k2;
    c.tx_key_length = 30;
    c.rx_key = k1;
    c.rx_key_length = 30;
    c.events = events;
    uint32_t sb = 0;
    OK(mc_engine_add_session(b, &c, &sb));
    OK(recv_stream(b, sb, 0xA, brx, MC_RECV_DIRECT));
    enum { N = 40 };
    for (uint32_t i = 0; i < N; i++) {
        uint8_t data[8] = {0, 0, 0, (uint8_t)i, 1, 2, 3, 4};
        mc_status st;
        while ((st = mc_engine_send_rtcp_app(a, sa, 0xA, (const uint8_t *)"MBVS", i % 32, data,
                                             8)) == MC_E_FULL)
            mc_sleep_ns(1000000);
        CHECK_STATUS(st, MC_OK);
    }
    CHECK_STATUS(mc_engine_send_rtcp_app(a, sa, 0xA, (const uint8_t *)"MBVS", 0, k1, 6),
                 MC_E_INVAL);
    uint32_t got = 0;
    int64_t deadline = mc_now_ns() + 5000000000LL;
    uint8_t buf[256];
    while (got < N && mc_now_ns() < deadline) {
        uint32_t n = 0, type = 0;
        if (mc_ring_read(events, buf, sizeof buf, &n, &type) != MC_OK) {
            mc_sleep_ns(1000000);
            continue;
        }
        mc_engine_app_event ev;
        memcpy(&ev, buf, sizeof ev);
        if (ev.event.kind != MC_EVENT_APP)
            continue;
        CHECK(n == MC_ENGINE_APP_EVENT_SIZE + 8 && ev.event.count == 8);
        CHECK(ev.event.ssrc == 0xA && ev.event.sender_ssrc == 0xA);
        CHECK(memcmp(ev.name, "MBVS", 4) == 0 && ev.subtype == got % 32);
        CHECK(buf[MC_ENGINE_APP_EVENT_SIZE + 3] == (uint8_t)got);
        got++;
    }
    CHECK(got == N);
    mc_engine_stats st;
    mc_sleep_ns(50000000);
    OK(mc_engine_get_stats(a, &st));
    CHECK(st.app_sent == N);
    OK(mc_engine_get_stats(b, &st));
    CHECK(st.app_received == N && st.auth_failures == 0 && st.malformed == 0);
    mc_engine_free(a);
    mc_engine_free(b);
    mc_ring_free(events);
    mc_ring_free(brx);
}

typedef struct flood {
    mc_engine *e;
    mc_ring *tx;
    volatile uint32_t stop;
} flood;

static void flood_main(void *arg)
{
    flood *f = (flood *)arg;
    uint32_t i = 0;
    while (!mc_load_u32_acquire(&f->stop)) {
        send_payloads(f->tx, i, 32, 100);
        i += 32;
        mc_engine_wake(f->e);
        mc_sleep_ns(200000);
    }
}

static void test_control_path_under_load(int rounds)
{
    uint8_t k[30];
    memset(k, 3, sizeof k);
    mc_engine *src = engine(1), *dst = engine(1);
    mc_ring *tx;
    OK(mc_ring_new(1 << 22, MC_RING_DROP_NEWEST, &tx));
    uint32_t s_src = session(src, dst, k, k, MC_SRTP_AES_CM_128_HMAC_SHA1_80);
    OK(send_stream(src, s_src, 0x77, tx));
    flood f;
    f.e = src;
    f.tx = tx;
    f.stop = 0;
    mc_thread th;
    OK(mc_thread_start(&th, flood_main, &f));
    uint32_t ids[8] = {0};
    mc_ring *rings[8] = {0};
    for (int r = 0; r < rounds; r++) {
        int slot = r % 8;
        if (ids[slot]) { /* remove the session (streams go with it), then free its ring */
            OK(mc_engine_remove_session(dst, ids[slot]));
            mc_ring_free(rings[slot]);
            ids[slot] = 0;
        }
        ids[slot] = session(dst, src, k, k, MC_SRTP_AES_CM_128_HMAC_SHA1_80);
        OK(mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &rings[slot]));
        OK(recv_stream(dst, ids[slot], 0x77, rings[slot], (r & 1) ? MC_RECV_DIRECT : 0));
        if (r % 3 == 0) { /* and a stream-level removal */
            OK(mc_engine_remove_recv_stream(dst, ids[slot], 0x77));
            OK(recv_stream(dst, ids[slot], 0x77, rings[slot], 0));
        }
        mc_sleep_ns(1000000);
    }
    mc_engine_stats st;
    OK(mc_engine_get_stats(dst, &st));
    CHECK(st.datagrams_in > 0);
    CHECK(st.rtp_in > 0);
    /* no check on auth failures: a session created after the sender's
     * sequence numbers wrapped cannot know its ROC (RFC 3711 3.3.1) */
    mc_store_u32_release(&f.stop, 1);
    mc_thread_join(&th);
    /* free both while sessions are active: the engine stops using the rings first */
    mc_engine_free(dst);
    mc_engine_free(src);
    for (int i = 0; i < 8; i++)
        mc_ring_free(rings[i]);
    mc_ring_free(tx);
}

static void test_garbage(void)
{
    mc_engine *e = engine(0);
    mc_engine *peer = engine(0);
    uint8_t k[30];
    memset(k, 9, sizeof k);
    mc_ring *ring;
    OK(mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &ring));
    uint32_t s1 = session(e, peer, k, k, MC_SRTP_AES_CM_128_HMAC_SHA1_80);
    uint32_t s2 = session(e, peer, k, k, 0);
    OK(recv_stream(e, s1, 1, ring, 0));
    OK(recv_stream(e, s2, 2, ring, MC_RECV_NACK | MC_RECV_PLI));
    uint8_t data[64 * 300];
    uint32_t lengths[64];
    uint64_t x = 88172645463325252ULL;
    for (int round = 0; round < 200; round++) {
        size_t off = 0;
        for (int i = 0; i < 64; i++) {
            uint32_t len = (uint32_t)(x % 300);
            for (uint32_t k2 = 0; k2 < len; k2++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data[off + k2] = (uint8_t)x;
            }
            if (len >= 12 && (i & 1)) { /* plausible headers: V=2, known SSRCs, RTCP types */
                data[off] = (uint8_t)(0x80 | (data[off] & 0x3f));
                if (i & 2)
                    data[off + 1] = (uint8_t)(192 + (data[off + 1] & 31));
                data[off + 8] = data[off + 9] = data[off + 10] = 0;
                data[off + 11] = (uint8_t)(1 + (i & 2) / 2);
            }
            lengths[i] = len;
            off += len;
        }
        OK(mc_engine_inject_batch(e, data, lengths, 64, "127.0.0.1", 9, 0, (round & 1) * 1000000));
        OK(mc_engine_poll(e, 0));
        uint8_t out[2048];
        uint32_t n, type;
        while (mc_ring_read(ring, out, sizeof out, &n, &type) == MC_OK)
            ;
    }
    mc_engine_stats st;
    OK(mc_engine_get_stats(e, &st));
    CHECK(st.datagrams_in == 200 * 64);
    CHECK(st.malformed + st.unknown_ssrc + st.auth_failures > 0);
    mc_engine_free(e);
    mc_engine_free(peer);
    mc_ring_free(ring);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    test_exchange();
    test_app_exchange();
    test_control_path_under_load(rounds);
    test_garbage();
    if (failures) {
        fprintf(stderr, "test_engine: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_engine: ok\n");
    return 0;
}

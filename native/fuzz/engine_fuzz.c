/*
 * engine_fuzz.c — libFuzzer target for the engine's receive path: the input
 * is a sequence of datagrams, each prefixed by a 2-byte big-endian length,
 * injected into an engine (no I/O thread) with plain and SRTP sessions and
 * audio (jitter), video (reorder + NACK/PLI) and direct receive streams; the
 * timers run between datagrams. Nothing may crash, leak or read out of
 * bounds; everything lands in counters. Each session has an event ring:
 * RTCP APP packets (RFC 3550 6.7) in a valid compound become variable-length
 * records whose length must match their header (checked), and an input
 * whose first byte is odd also sends an APP (mc_engine_send_rtcp_app) with
 * its tail as data. Seeds: native/fuzz/corpus/engine.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mediacore.h"

static mc_engine *engine;
static mc_ring *ring;
static mc_ring *events;
static uint32_t session_ids[2];
static int64_t clock_ns = 1000000000000LL;

static void setup(void)
{
    mc_engine_config c;
    memset(&c, 0, sizeof c);
    c.bind_host = "127.0.0.1";
    c.flags = MC_ENGINE_NO_THREAD;
    if (mc_engine_new(&c, &engine) != MC_OK)
        abort();
    if (mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &ring) != MC_OK ||
        mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &events) != MC_OK)
        abort();
    static const uint8_t key[30] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30};
    for (int plain = 0; plain < 2; plain++) {
        mc_session_config s;
        memset(&s, 0, sizeof s);
        s.remote_host = "127.0.0.1";
        s.remote_port = 9;
        s.srtp_profile = plain ? 0 : MC_SRTP_AES_CM_128_HMAC_SHA1_80;
        s.tx_key = key;
        s.tx_key_length = 30;
        s.rx_key = key;
        s.rx_key_length = 30;
        s.events = events;
        uint32_t id;
        if (mc_engine_add_session(engine, &s, &id) != MC_OK)
            abort();
        session_ids[plain] = id;
        for (uint32_t k = 0; k < 3; k++) {
            mc_recv_stream_config r;
            memset(&r, 0, sizeof r);
            r.ssrc = (uint32_t)(plain * 16 + k + 1);
            r.media = k == 1 ? MC_MEDIA_VIDEO : MC_MEDIA_AUDIO;
            r.clock_rate = k == 1 ? 90000 : 48000;
            r.flags = k == 2 ? MC_RECV_DIRECT : (MC_RECV_NACK | MC_RECV_PLI);
            r.audio_level_id = k == 0 ? 1 : k == 2 ? 200 : 0; /* RFC 6464: one- and two-byte ids */
            r.ring = ring;
            if (k == 0) { /* Opus 111 and telephone-event 101 only: the rest is a mismatch */
                r.payload_types[111 >> 5] |= 1u << (111 & 31);
                r.payload_types[101 >> 5] |= 1u << (101 & 31);
            } else {
                r.flags |= MC_RECV_ANY_PAYLOAD_TYPE;
            }
            if (mc_engine_add_recv_stream(engine, id, &r) != MC_OK)
                abort();
        }
        mc_ring *tx;
        mc_ring_new(1 << 12, MC_RING_DROP_NEWEST, &tx); /* lives as long as the process */
        mc_send_stream_config t;
        memset(&t, 0, sizeof t);
        t.ssrc = (uint32_t)(plain * 16 + 8);
        t.media = MC_MEDIA_VIDEO;
        t.clock_rate = 90000;
        t.payload_type = 96;
        t.history = 16;
        t.ring = tx;
        if (mc_engine_add_send_stream(engine, id, &t) != MC_OK)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!engine)
        setup();
    size_t off = 0;
    while (off + 2 <= size) {
        uint32_t len = ((uint32_t)data[off] << 8) | data[off + 1];
        off += 2;
        if (len > size - off)
            len = (uint32_t)(size - off);
        clock_ns += 7000000;
        mc_engine_inject_batch(engine, data + off, &len, 1, "127.0.0.1", 9, clock_ns, 1000000);
        off += len;
    }
    if (size >= 6 && (data[0] & 1)) { /* name: data[2..5] */
        uint32_t dlen = (uint32_t)(size - 2) & ~3u;
        if (dlen > MC_RTCP_APP_MAX_DATA)
            dlen = MC_RTCP_APP_MAX_DATA;
        if (mc_engine_send_rtcp_app(engine, session_ids[data[1] & 1], data[1], data + 2,
                                    data[0] >> 3, data + 2, dlen) != MC_OK)
            abort(); /* valid arguments, a known remote, no I/O thread: it must go */
    }
    clock_ns += 25000000;
    mc_engine_poll(engine, clock_ns);
    static uint8_t out[1 << 15];
    uint32_t n, type;
    while (mc_ring_read(ring, out, sizeof out, &n, &type) == MC_OK)
        ;
    while (mc_ring_read(events, out, sizeof out, &n, &type) == MC_OK) {
        mc_engine_event ev;
        if (n < sizeof ev)
            __builtin_trap();
        memcpy(&ev, out, sizeof ev);
        if (ev.kind == MC_EVENT_APP &&
            (n != MC_ENGINE_APP_EVENT_SIZE + ev.count || ev.count % 4 != 0 ||
             ev.count > MC_RTCP_APP_MAX_DATA))
            __builtin_trap();
    }
    return 0;
}

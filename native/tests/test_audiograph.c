/*
 * test_audiograph.c — the audio graph under -Werror and ASan/UBSan: Opus
 * sources with loss, garbage records (random headers, payload types, SSRCs
 * past the source limit, lengths), the send path with DTMF, and a threaded
 * worker with graphs added and removed while it runs, ticking all graphs at
 * once and staggered over the period.
 * The engine is not linked: mc_engine_wake is stubbed (the graph only wakes it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mediacore.h"
#include "check.h"

mc_status mc_engine_wake(mc_engine *engine)
{
    (void)engine;
    return MC_OK;
}

static uint32_t rng_state = 777;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void put_record(mc_ring *ring, uint32_t ssrc, uint16_t seq, uint32_t ts, uint8_t pt,
                       uint16_t flags, const uint8_t *payload, uint32_t length)
{
    uint8_t buf[2048];
    mc_rtp_record rec;
    memset(&rec, 0, sizeof rec);
    rec.ssrc = ssrc;
    rec.timestamp = ts;
    rec.sequence_number = seq;
    rec.payload_type = pt;
    rec.flags = flags;
    memcpy(buf, &rec, sizeof rec);
    memcpy(buf + sizeof rec, payload, length);
    mc_ring_write(ring, MC_RECORD_RTP, buf, (uint32_t)sizeof rec + length);
}

static uint32_t count_frames(mc_ring *ring, uint32_t type)
{
    uint8_t buf[4096];
    uint32_t n = 0, len, t;
    while (mc_ring_read(ring, buf, sizeof buf, &len, &t) == MC_OK)
        if (t == type)
            n++;
    return n;
}

static void test_receive_with_garbage(void)
{
    mc_audio_worker *w;
    mc_ring *in, *out;
    CHECK(mc_audio_worker_new(MC_AUDIO_WORKER_NO_THREAD, &w) == MC_OK);
    CHECK(mc_ring_new(1 << 20, MC_RING_DROP_NEWEST, &in) == MC_OK);
    CHECK(mc_ring_new(1 << 22, MC_RING_DROP_NEWEST, &out) == MC_OK);
    mc_audio_graph_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.input = in;
    cfg.payload_types[0].payload_type = 111;
    cfg.payload_types[0].codec = MC_CODEC_OPUS;
    cfg.payload_types[1].payload_type = 0;
    cfg.payload_types[1].codec = MC_CODEC_PCMU;
    cfg.payload_type_count = 2;
    cfg.telephone_event_pt = 101;
    cfg.mixed = out;
    cfg.events = out;
    cfg.send_telephone_event_pt = -1;
    mc_audio_graph *g;
    CHECK(mc_audio_graph_new(w, &cfg, &g) == MC_OK);

    mc_audio_encoder_config ec;
    memset(&ec, 0, sizeof ec);
    ec.codec = MC_CODEC_OPUS;
    ec.inband_fec = 1;
    ec.packet_loss_pct = 20;
    mc_audio_encoder *enc;
    CHECK(mc_audio_encoder_new(&ec, &enc) == MC_OK);
    int16_t pcm[320];
    uint8_t pkt[1500], junk[1600];
    int64_t now = 1000000000;
    enum { TICKS = 300 };
    for (int k = 0; k < TICKS; k++) {
        for (int i = 0; i < 320; i++)
            pcm[i] = (int16_t)((rnd() % 8000) - 4000);
        uint32_t len = 0;
        CHECK(mc_audio_encode(enc, pcm, 320, pkt, sizeof pkt, &len) == MC_OK);
        for (uint32_t s = 1; s <= 3; s++) {
            uint16_t flags = (rnd() % 10 == 0) ? MC_RECORD_FLAG_LOST : 0;
            put_record(in, s, (uint16_t)(65500 + k), (uint32_t)k * 960, 111, flags, pkt, len);
        }
        uint8_t g711[160];
        memset(g711, 0xFF, sizeof g711);
        put_record(in, 9, (uint16_t)k, (uint32_t)k * 160, 0, 0, g711, sizeof g711);
        /* garbage: random header fields and payloads, random record lengths */
        for (int j = 0; j < 5; j++) {
            uint32_t n = rnd() % sizeof junk;
            for (uint32_t i = 0; i < n; i++)
                junk[i] = (uint8_t)rnd();
            if (j == 0)
                mc_ring_write(in, MC_RECORD_RTP, junk, n % 40); /* short or odd records */
            else if (j == 1)
                mc_ring_write(in, rnd(), junk, n);               /* another record type */
            else
                put_record(in, 100 + rnd() % 200, (uint16_t)rnd(), rnd(),
                           (uint8_t)(j == 2 ? 111 : j == 3 ? 101 : rnd()), (uint16_t)rnd(), junk,
                           n % 1550);
        }
        if (k == TICKS / 2) /* more sources than a graph takes */
            for (uint32_t s = 0; s < 100; s++)
                put_record(in, 1000 + s, 0, 0, 111, 0, pkt, len);
        CHECK(mc_audio_worker_tick(w, now) == MC_OK);
        now += MC_AUDIO_TICK_NS;
    }
    mc_audio_graph_stats st;
    CHECK(mc_audio_graph_get_stats(g, &st) == MC_OK);
    CHECK(st.ticks == TICKS && st.mixed_frames == TICKS);
    CHECK(st.sources <= MC_AUDIO_GRAPH_MAX_SOURCES && st.sources_refused > 0);
    CHECK(st.decoded > 3 * TICKS / 2 && st.unknown_payload_type > 0);
    CHECK(st.fec_recovered + st.concealed > 0);
    CHECK(count_frames(out, MC_RECORD_AUDIO_MIXED) == TICKS);
    mc_audio_encoder_free(enc);
    mc_audio_graph_free(g);
    mc_audio_worker_free(w);
    mc_ring_free(in);
    mc_ring_free(out);
}

/* flags 0: every graph on each 20 ms tick; MC_AUDIO_WORKER_STAGGER: each
 * graph on its own 2 ms phase of the period (graphs added and removed while
 * the thread runs, under TSan too). */
static void test_send_and_threaded_worker(uint32_t flags)
{
    mc_audio_worker *w;
    mc_ring *pcm_ring, *send_out;
    CHECK(mc_audio_worker_new(flags, &w) == MC_OK);
    CHECK(mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &pcm_ring) == MC_OK);
    CHECK(mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &send_out) == MC_OK);
    mc_audio_graph_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.telephone_event_pt = -1;
    cfg.send_pcm = pcm_ring;
    cfg.send_out = send_out;
    cfg.send_codec.codec = MC_CODEC_PCMA;
    cfg.send_payload_type = 8;
    cfg.send_telephone_event_pt = 101;
    mc_audio_graph *g;
    CHECK(mc_audio_graph_new(w, &cfg, &g) == MC_OK);
    CHECK(mc_audio_graph_send_dtmf(g, "12", 60, 40, 10) == MC_OK);
    CHECK(mc_audio_worker_start(w) == MC_OK);
    int16_t frame[320];
    memset(frame, 0, sizeof frame);
    uint32_t packets = 0;
    uint8_t buf[2048];
    for (int i = 0; i < 15; i++) {
        mc_ring_write(pcm_ring, 0, frame, sizeof frame);
        /* add and remove a receive-only graph while the worker runs */
        mc_audio_graph_config c2;
        memset(&c2, 0, sizeof c2);
        c2.telephone_event_pt = -1;
        c2.send_telephone_event_pt = -1;
        mc_audio_graph *g2;
        CHECK(mc_audio_graph_new(w, &c2, &g2) == MC_OK);
        mc_sleep_ns(20000000);
        mc_audio_graph_free(g2);
        uint32_t len, t;
        while (mc_ring_read(send_out, buf, sizeof buf, &len, &t) == MC_OK)
            packets++;
    }
    CHECK(mc_audio_worker_stop(w) == MC_OK);
    uint32_t len, t;
    while (mc_ring_read(send_out, buf, sizeof buf, &len, &t) == MC_OK)
        packets++;
    mc_audio_graph_stats st;
    CHECK(mc_audio_graph_get_stats(g, &st) == MC_OK);
    CHECK(st.send_dtmf_packets >= 2 * 3 + 4);
    CHECK(packets == st.send_packets + st.send_dtmf_packets && packets > 10);
    uint64_t ticks, late;
    int64_t busy;
    CHECK(mc_audio_worker_get_ticks(w, &ticks, &late, &busy) == MC_OK && ticks >= 10);
    mc_audio_graph_free(g);
    mc_audio_worker_free(w);
    mc_ring_free(pcm_ring);
    mc_ring_free(send_out);
}

int main(void)
{
    test_receive_with_garbage();
    test_send_and_threaded_worker(0);
    test_send_and_threaded_worker(MC_AUDIO_WORKER_STAGGER);
    if (failures) {
        fprintf(stderr, "test_audiograph: %d failures\n", failures);
        return 1;
    }
    printf("test_audiograph: ok\n");
    return 0;
}

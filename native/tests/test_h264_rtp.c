/*
 * test_h264_rtp.c — C-level tests of the RFC 6184 packetizer and
 * depacketizer: round trips over NAL sizes and payload sizes (buffer and ring
 * output), SPS/PPS insertion, losses (nothing undecodable is handed out, a
 * key-frame request is raised once, sync returns with the next IDR),
 * malformed and unsupported payloads. Built with -Werror, ASan/UBSan and
 * mingw-w64 (run under wine): no OpenSSL or opus needed.
 *
 * Usage: test_h264_rtp [rounds]   (default 300 for the randomized part)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "h264_rtp.h"
#include "mediacore.h"
#include "check.h"

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* An access unit built from NAL units; bodies avoid 00 00 0x sequences. */
typedef struct au_builder {
    uint8_t data[200000];
    uint32_t len;
} au_builder;

static void au_add(au_builder *b, uint8_t header, uint32_t body)
{
    static const uint8_t sc[4] = {0, 0, 0, 1};
    memcpy(b->data + b->len, sc, 4);
    b->len += 4;
    b->data[b->len++] = header;
    for (uint32_t i = 0; i < body; i++)
        b->data[b->len++] = (uint8_t)(1 + rnd() % 255);
}

#define MAX_PKTS 1024
typedef struct packets {
    uint8_t buf[MAX_PKTS * 1600];
    uint32_t offsets[MAX_PKTS], lengths[MAX_PKTS];
    uint32_t count;
} packets;

/* RTP packets (12-byte header) -> mc_h264_packet descriptors */
static void describe(const packets *p, mc_h264_packet *out)
{
    for (uint32_t i = 0; i < p->count; i++) {
        const uint8_t *h = p->buf + p->offsets[i];
        memset(&out[i], 0, sizeof out[i]);
        out[i].payload = h + 12;
        out[i].payload_length = p->lengths[i] - 12;
        out[i].sequence = (uint16_t)((h[2] << 8) | h[3]);
        out[i].timestamp = ((uint32_t)h[4] << 24) | ((uint32_t)h[5] << 16) | ((uint32_t)h[6] << 8) | h[7];
        out[i].marker = (h[1] & 0x80) ? 1 : 0;
        out[i].arrival_ns = 1000 + i;
    }
}

static uint8_t frame_buffer[MC_H264_FRAME_HEADER_SIZE + 300000] MC_ALIGNED(8);

static void test_round_trip_buffer(uint32_t max_payload)
{
    static au_builder b;
    static packets p;
    static mc_h264_packet d[MAX_PKTS];
    mc_h264_packetizer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_payload = max_payload;
    cfg.rtp_header = 1;
    cfg.payload_type = 96;
    cfg.ssrc = 0x1234;
    cfg.first_sequence = 65530; /* wraps during the test */
    mc_h264_packetizer *pz;
    mc_h264_depacketizer *dp;
    CHECK_STATUS(mc_h264_packetizer_new(&cfg, &pz), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_new(250000, 0x1234, &dp), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_set_buffer(dp, frame_buffer, sizeof frame_buffer), MC_OK);
    /* NAL sizes scale with the payload size so that packets fit MAX_PKTS */
    uint32_t big = (max_payload - 2) * 400 < 20000 ? (max_payload - 2) * 400 : 20000;
    for (int f = 0; f < 40; f++) {
        b.len = 0;
        if (f % 10 == 0) {
            au_add(&b, 0x67, 10 + rnd() % 30);
            au_add(&b, 0x68, 3 + rnd() % 5);
            au_add(&b, 0x65, rnd() % big);
            if (rnd() & 1)
                au_add(&b, 0x65, rnd() % (big / 4 + 1)); /* second slice */
        } else {
            if (rnd() & 1)
                au_add(&b, 0x06, rnd() % 40); /* SEI */
            au_add(&b, 0x41, rnd() % (f & 1 ? 200 : big / 3 + 1));
        }
        uint32_t ts = 90000u * (uint32_t)f / 30u;
        CHECK_STATUS(mc_h264_packetize(pz, b.data, b.len, ts, p.buf, sizeof p.buf, p.offsets,
                                       p.lengths, MAX_PKTS, &p.count),
                     MC_OK);
        CHECK(p.count > 0);
        for (uint32_t i = 0; i < p.count; i++) {
            CHECK(p.lengths[i] <= max_payload + 12);
            CHECK((p.buf[p.offsets[i] + 1] & 0x80) == (i + 1 == p.count ? 0x80 : 0));
        }
        describe(&p, d);
        uint32_t consumed = 0, frames = 0;
        CHECK_STATUS(mc_h264_depacketizer_push(dp, d, p.count, &consumed, &frames), MC_OK);
        CHECK(consumed == p.count);
        CHECK(frames == 1);
        mc_h264_frame_header h;
        CHECK_STATUS(mc_h264_depacketizer_take_frame(dp, &h), MC_OK);
        CHECK(h.rtp_timestamp == ts);
        CHECK(h.length == b.len);
        CHECK(h.packets == p.count);
        CHECK(h.ssrc == 0x1234);
        CHECK(memcmp(frame_buffer + MC_H264_FRAME_HEADER_SIZE, b.data, b.len) == 0);
        CHECK(((h.flags & MC_H264_FRAME_KEY) != 0) == (f % 10 == 0));
        CHECK_STATUS(mc_h264_depacketizer_take_frame(dp, &h), MC_E_EMPTY);
    }
    mc_h264_depacketizer_stats st;
    CHECK_STATUS(mc_h264_depacketizer_get_stats(dp, &st), MC_OK);
    CHECK(st.frames == 40 && st.key_frames == 4 && st.frames_dropped == 0);
    CHECK(st.sequence_gaps == 0 && st.malformed_packets == 0 && st.key_frame_requests == 0);
    mc_h264_depacketizer_free(dp);
    mc_h264_packetizer_free(pz);
}

/* SPS/PPS travel in one STAP-A; an IDR without them gets the cached ones. */
static void test_param_sets(void)
{
    static au_builder b;
    static packets p;
    mc_h264_packetizer *pz;
    CHECK_STATUS(mc_h264_packetizer_new(NULL, &pz), MC_OK); /* payloads only, 1200 */
    b.len = 0;
    au_add(&b, 0x67, 20);
    au_add(&b, 0x68, 4);
    au_add(&b, 0x65, 3000);
    CHECK_STATUS(mc_h264_packetize(pz, b.data, b.len, 0, p.buf, sizeof p.buf, p.offsets,
                                   p.lengths, MAX_PKTS, &p.count),
                 MC_OK);
    CHECK(p.count == 4); /* STAP-A(SPS, PPS), then 3 FU-A */
    CHECK((p.buf[p.offsets[0]] & 0x1f) == MC_NAL_STAP_A);
    CHECK(p.lengths[0] == 1 + 2 + 21 + 2 + 5);
    CHECK((p.buf[p.offsets[1]] & 0x1f) == MC_NAL_FU_A);
    CHECK(p.buf[p.offsets[1] + 1] == (0x80 | 5));
    CHECK(p.buf[p.offsets[3] + 1] == (0x40 | 5));
    /* balanced fragments: 3000 bytes of data in 3 pieces of 1000 */
    CHECK(p.lengths[1] == 1002 && p.lengths[2] == 1002 && p.lengths[3] == 1002);
    b.len = 0;
    au_add(&b, 0x65, 100);
    CHECK_STATUS(mc_h264_packetize(pz, b.data, b.len, 3000, p.buf, sizeof p.buf, p.offsets,
                                   p.lengths, MAX_PKTS, &p.count),
                 MC_OK);
    CHECK(p.count == 1);
    CHECK((p.buf[p.offsets[0]] & 0x1f) == MC_NAL_STAP_A); /* SPS, PPS, IDR aggregated */
    mc_h264_packetizer_stats st;
    CHECK_STATUS(mc_h264_packetizer_get_stats(pz, &st), MC_OK);
    CHECK(st.params_inserted == 1 && st.idr_access_units == 2 && st.access_units == 2);
    /* too small an output buffer: nothing written, sequence unchanged */
    CHECK_STATUS(mc_h264_packetize(pz, b.data, b.len, 3000, p.buf, 50, p.offsets, p.lengths,
                                   MAX_PKTS, &p.count),
                 MC_E_BUFFER);
    CHECK_STATUS(mc_h264_packetizer_get_stats(pz, &st), MC_OK);
    CHECK(st.next_sequence == 5);
    uint8_t zeros[16] = {0};
    CHECK_STATUS(mc_h264_packetize(pz, zeros, sizeof zeros, 0, p.buf, sizeof p.buf, p.offsets,
                                   p.lengths, MAX_PKTS, &p.count),
                 MC_E_MALFORMED);
    mc_h264_packetizer_free(pz);
}

/* A stream of GOPs through the packetizer, with packets removed at random;
 * every frame handed out must be an original access unit, key frames start
 * each chain, and no frame after a loss is handed out before a key frame. */
static void test_loss(int rounds, mc_ring *ring)
{
    static au_builder gop[30];
    static packets p;
    static mc_h264_packet d[MAX_PKTS];
    mc_h264_packetizer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_payload = 500;
    cfg.rtp_header = 1;
    mc_h264_packetizer *pz;
    mc_h264_depacketizer *dp;
    CHECK_STATUS(mc_h264_packetizer_new(&cfg, &pz), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_new(100000, 7, &dp), MC_OK);
    if (ring)
        CHECK_STATUS(mc_h264_depacketizer_set_ring(dp, ring), MC_OK);
    else
        CHECK_STATUS(mc_h264_depacketizer_set_buffer(dp, frame_buffer, sizeof frame_buffer), MC_OK);
    uint32_t expected_next = 0; /* index of the frame a chain may continue with */
    int in_chain = 0;
    uint64_t handed = 0, lost_packets = 0;
    for (int r = 0; r < rounds; r++) {
        int idx = r % 30;
        au_builder *b = &gop[idx];
        b->len = 0;
        if (idx == 0) {
            au_add(b, 0x67, 12);
            au_add(b, 0x68, 4);
            au_add(b, 0x65, 2000 + rnd() % 3000);
        } else {
            au_add(b, 0x41, 50 + rnd() % 1500);
        }
        CHECK_STATUS(mc_h264_packetize(pz, b->data, b->len, (uint32_t)r * 3000u, p.buf,
                                       sizeof p.buf, p.offsets, p.lengths, MAX_PKTS, &p.count),
                     MC_OK);
        describe(&p, d);
        /* drop packets with probability 3% */
        uint32_t n = 0;
        for (uint32_t i = 0; i < p.count; i++) {
            if (rnd() % 100 < 3) {
                lost_packets++;
                continue;
            }
            d[n++] = d[i];
        }
        uint32_t at = 0;
        while (at < n) {
            uint32_t consumed = 0, frames = 0;
            CHECK_STATUS(mc_h264_depacketizer_push(dp, d + at, n - at, &consumed, &frames), MC_OK);
            at += consumed;
            for (;;) {
                mc_h264_frame_header h;
                const uint8_t *body;
                if (ring) {
                    uint32_t off, len, type, cnt = 0;
                    mc_ring_peek(ring, &off, &len, &type, 1, &cnt);
                    if (!cnt)
                        break;
                    CHECK(type == MC_H264_RECORD_TYPE);
                    memcpy(&h, mc_ring_data(ring) + off, sizeof h);
                    body = mc_ring_data(ring) + off + MC_H264_FRAME_HEADER_SIZE;
                    CHECK(len == MC_H264_FRAME_HEADER_SIZE + h.length);
                } else {
                    if (mc_h264_depacketizer_take_frame(dp, &h) != MC_OK)
                        break;
                    body = frame_buffer + MC_H264_FRAME_HEADER_SIZE;
                }
                uint32_t fi = h.rtp_timestamp / 3000u;
                CHECK(fi <= (uint32_t)r);
                const au_builder *orig = &gop[fi % 30];
                int key = (h.flags & MC_H264_FRAME_KEY) != 0;
                if (!key)
                    CHECK(in_chain && fi == expected_next);
                else
                    CHECK(fi % 30 == 0);
                CHECK(h.length == orig->len && memcmp(body, orig->data, orig->len) == 0);
                in_chain = 1;
                expected_next = fi + 1;
                handed++;
                if (ring)
                    mc_ring_release(ring, 1);
            }
        }
        if (n < p.count)
            in_chain = 0; /* a loss breaks the chain until the next key frame */
    }
    mc_h264_depacketizer_stats st;
    CHECK_STATUS(mc_h264_depacketizer_get_stats(dp, &st), MC_OK);
    CHECK(st.frames == handed);
    CHECK(handed > (uint64_t)rounds / 10); /* not vacuous: chains do get through */
    if (lost_packets) {
        CHECK(st.key_frame_requests > 0);
        CHECK(st.frames_dropped > 0);
        CHECK(st.packets_lost >= st.sequence_gaps && st.sequence_gaps > 0);
    }
    uint32_t req = 0;
    CHECK_STATUS(mc_h264_depacketizer_take_key_frame_request(dp, &req), MC_OK);
    mc_h264_depacketizer_free(dp);
    mc_h264_packetizer_free(pz);
}

static void push1(mc_h264_depacketizer *dp, const uint8_t *pl, uint32_t n, uint16_t seq,
                  uint32_t ts, int marker, uint32_t *frames)
{
    mc_h264_packet pk;
    memset(&pk, 0, sizeof pk);
    pk.payload = pl;
    pk.payload_length = n;
    pk.sequence = seq;
    pk.timestamp = ts;
    pk.marker = (uint8_t)marker;
    uint32_t consumed = 0;
    CHECK_STATUS(mc_h264_depacketizer_push(dp, &pk, 1, &consumed, frames), MC_OK);
}

static void test_malformed_and_unsupported(void)
{
    mc_h264_depacketizer *dp;
    CHECK_STATUS(mc_h264_depacketizer_new(4096, 0, &dp), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_set_buffer(dp, frame_buffer, sizeof frame_buffer), MC_OK);
    uint32_t frames = 0;
    mc_h264_frame_header h;
    /* a key frame in one STAP-A */
    const uint8_t key[] = {0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3, 0, 3, 0x65, 9, 9};
    push1(dp, key, sizeof key, 1, 100, 1, &frames);
    CHECK(frames == 1);
    CHECK_STATUS(mc_h264_depacketizer_take_frame(dp, &h), MC_OK);
    CHECK(h.flags & MC_H264_FRAME_KEY);
    CHECK(h.length == 3 * 4 + 3 + 2 + 3);
    /* PACSI (type 30) is skipped; the frame is still whole */
    const uint8_t pacsi[] = {0x7e, 1, 2, 3};
    const uint8_t p_slice[] = {0x41, 5, 6, 7};
    push1(dp, pacsi, sizeof pacsi, 2, 200, 0, &frames);
    push1(dp, p_slice, sizeof p_slice, 3, 200, 1, &frames);
    CHECK(frames == 1);
    CHECK_STATUS(mc_h264_depacketizer_take_frame(dp, &h), MC_OK);
    CHECK(h.length == 8 && !(h.flags & MC_H264_FRAME_KEY));
    /* a STAP-A whose unit overruns the packet spoils its frame */
    const uint8_t bad_stap[] = {0x78, 0, 9, 0x41, 1};
    push1(dp, bad_stap, sizeof bad_stap, 4, 300, 1, &frames);
    CHECK(frames == 0);
    CHECK_STATUS(mc_h264_depacketizer_take_frame(dp, &h), MC_E_EMPTY);
    /* so are the frames after it, until a key frame */
    push1(dp, p_slice, sizeof p_slice, 5, 400, 1, &frames);
    CHECK(frames == 0);
    uint32_t req = 0;
    CHECK_STATUS(mc_h264_depacketizer_take_key_frame_request(dp, &req), MC_OK);
    CHECK(req == 1);
    CHECK_STATUS(mc_h264_depacketizer_take_key_frame_request(dp, &req), MC_OK);
    CHECK(req == 0);
    /* an IDR alone (start known, SPS/PPS cached) is a key frame with them inserted */
    const uint8_t idr[] = {0x65, 7, 7, 7};
    push1(dp, idr, sizeof idr, 6, 500, 1, &frames);
    CHECK(frames == 1);
    CHECK_STATUS(mc_h264_depacketizer_take_frame(dp, &h), MC_OK);
    CHECK((h.flags & (MC_H264_FRAME_KEY | MC_H264_FRAME_PARAMS_INSERTED | MC_H264_FRAME_RESYNC)) ==
          (MC_H264_FRAME_KEY | MC_H264_FRAME_PARAMS_INSERTED | MC_H264_FRAME_RESYNC));
    CHECK(h.length == 4 + 3 + 4 + 2 + 4 + 4);
    /* FU-A middle without a start; STAP-B; truncated FU-A; F bit; empty STAP-A */
    const uint8_t fu_mid[] = {0x7c, 0x01, 1, 2};
    const uint8_t stap_b[] = {0x79, 0, 0, 0, 2, 0x41, 1};
    const uint8_t fu_short[] = {0x7c};
    const uint8_t fbit[] = {0xc1, 1};
    const uint8_t stap_empty[] = {0x78};
    const uint8_t *bad[] = {fu_mid, stap_b, fu_short, fbit, stap_empty};
    const uint32_t bad_len[] = {sizeof fu_mid, sizeof stap_b, sizeof fu_short, sizeof fbit,
                                sizeof stap_empty};
    uint16_t seq = 7;
    for (int i = 0; i < 5; i++) {
        push1(dp, idr, sizeof idr, seq++, 600u + 10u * (uint32_t)i, 1, &frames);
        CHECK(frames == 1);
        CHECK_STATUS(mc_h264_depacketizer_take_frame(dp, &h), MC_OK);
        push1(dp, bad[i], bad_len[i], seq++, 605u + 10u * (uint32_t)i, 1, &frames);
        CHECK(frames == 0);
    }
    /* duplicates and late packets are dropped and counted */
    push1(dp, idr, sizeof idr, (uint16_t)(seq - 3), 900, 1, &frames);
    CHECK(frames == 0);
    /* a frame larger than max_frame_bytes is dropped */
    static uint8_t big[5000];
    memset(big, 0x11, sizeof big);
    big[0] = 0x65;
    push1(dp, big, sizeof big, seq++, 1000, 1, &frames);
    CHECK(frames == 0);
    mc_h264_depacketizer_stats st;
    CHECK_STATUS(mc_h264_depacketizer_get_stats(dp, &st), MC_OK);
    CHECK(st.malformed_packets == 4); /* bad STAP-A, truncated FU-A, F bit, empty STAP-A */
    CHECK(st.unsupported_packets == 2); /* PACSI, STAP-B */
    CHECK(st.packets_late == 1);
    CHECK(st.frames_too_large == 1);
    CHECK(st.params_inserted >= 1);
    CHECK(st.waiting_for_key_frame == 1);
    mc_h264_depacketizer_free(dp);
}

/* When the ring has no room, the frame is dropped, counted, and the chain
 * waits for a key frame. */
static void test_ring_full(void)
{
    mc_ring *ring;
    CHECK_STATUS(mc_ring_new(1 << 14, MC_RING_DROP_NEWEST, &ring), MC_OK);
    mc_h264_depacketizer *dp;
    CHECK_STATUS(mc_h264_depacketizer_new(4000, 0, &dp), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_set_ring(dp, ring), MC_OK);
    const uint8_t key[] = {0x78, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 3, 0, 3, 0x65, 9, 9};
    static uint8_t p_slice[2000];
    memset(p_slice, 0x22, sizeof p_slice);
    p_slice[0] = 0x41;
    uint32_t frames = 0, total = 0;
    push1(dp, key, sizeof key, 0, 0, 1, &frames);
    total += frames;
    for (uint16_t s = 1; s < 10; s++) {
        push1(dp, p_slice, sizeof p_slice, s, s * 10u, 1, &frames);
        total += frames;
    }
    mc_h264_depacketizer_stats st;
    CHECK_STATUS(mc_h264_depacketizer_get_stats(dp, &st), MC_OK);
    /* each frame takes ~2 KiB of the 16 KiB ring and a reservation needs ~4 KiB */
    CHECK(total >= 2 && total < 10);
    CHECK(st.ring_drops == 1);
    CHECK(st.frames + st.frames_dropped == 10);
    CHECK(st.waiting_for_key_frame == 1);
    mc_ring_stats rs;
    mc_ring_get_stats(ring, &rs);
    CHECK(rs.records_written == total);
    mc_h264_depacketizer_free(dp);
    mc_ring_free(ring);
}

static void test_annexb_scan(void)
{
    const uint8_t s[] = {0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 0, 0, 1, 0x65, 3, 0, 0};
    size_t pos = 0, start = 0, size = 0;
    CHECK(mc_h264_next_nal(s, sizeof s, &pos, &start, &size) == 1 && start == 4 && size == 2);
    CHECK(mc_h264_next_nal(s, sizeof s, &pos, &start, &size) == 1 && start == 9 && size == 2);
    CHECK(mc_h264_next_nal(s, sizeof s, &pos, &start, &size) == 1 && start == 16 && size == 2);
    CHECK(mc_h264_next_nal(s, sizeof s, &pos, &start, &size) == 0);
    const uint8_t bare[] = {0x41, 1, 2};
    pos = 0;
    CHECK(mc_h264_next_nal(bare, sizeof bare, &pos, &start, &size) == 1 && start == 0 && size == 3);
}

/* A packetizer that writes engine send records (what a send stream's ring holds). */
static mc_h264_packetizer *send_record_packetizer(uint32_t max_payload)
{
    mc_h264_packetizer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_payload = max_payload;
    cfg.rtp_header = MC_H264_HEADER_SEND_RECORD;
    mc_h264_packetizer *pz = NULL;
    CHECK_STATUS(mc_h264_packetizer_new(&cfg, &pz), MC_OK);
    return pz;
}

/* Turn the send records of `send_ring` into receive records of `rtp_ring`
 * (what the wire and the remote engine would do), sequence numbers from
 * *seq on; returns how many. */
static uint32_t send_to_receive(mc_ring *send_ring, mc_ring *rtp_ring, uint16_t *seq)
{
    uint32_t off[64], len[64], type[64], n = 0, total = 0;
    while (mc_ring_peek(send_ring, off, len, type, 64, &n) == MC_OK && n) {
        for (uint32_t i = 0; i < n; i++) {
            mc_send_record sr;
            memcpy(&sr, mc_ring_data(send_ring) + off[i], sizeof sr);
            uint32_t plen = len[i] - (uint32_t)sizeof sr;
            void *mem;
            CHECK_STATUS(mc_ring_reserve(rtp_ring, (uint32_t)sizeof(mc_rtp_record) + plen, &mem),
                         MC_OK);
            if (!mem)
                return total;
            mc_rtp_record rr;
            memset(&rr, 0, sizeof rr);
            rr.timestamp = sr.timestamp;
            rr.marker = sr.marker;
            rr.sequence_number = (*seq)++;
            memcpy(mem, &rr, sizeof rr);
            memcpy((uint8_t *)mem + sizeof rr, mc_ring_data(send_ring) + off[i] + sizeof sr, plen);
            CHECK_STATUS(mc_ring_commit(rtp_ring, MC_RECORD_RTP, (uint32_t)sizeof rr + plen),
                         MC_OK);
            total++;
        }
        mc_ring_release(send_ring, n);
    }
    return total;
}

/* Engine send-ring records and receive-ring records, end to end through rings. */
static void test_engine_records(void)
{
    static au_builder b;
    mc_ring *send_ring, *frames;
    CHECK_STATUS(mc_ring_new(1 << 20, MC_RING_DROP_NEWEST, &send_ring), MC_OK);
    CHECK_STATUS(mc_ring_new(1 << 22, MC_RING_DROP_NEWEST, &frames), MC_OK);
    mc_h264_packetizer *pz = send_record_packetizer(700);
    b.len = 0;
    au_add(&b, 0x67, 12);
    au_add(&b, 0x68, 4);
    au_add(&b, 0x65, 5000);
    uint32_t count = 0;
    CHECK_STATUS(mc_h264_packetize_to_ring(pz, b.data, b.len, 4242, send_ring, 1, &count), MC_OK);
    CHECK(count == 9); /* STAP-A + 8 FU-A of 625 bytes */
    /* what the wire and the remote engine would make of them, drained into frames */
    mc_ring *rtp_ring;
    CHECK_STATUS(mc_ring_new(1 << 20, MC_RING_DROP_NEWEST, &rtp_ring), MC_OK);
    uint32_t off[16], len[16], type[16], n = 0;
    CHECK_STATUS(mc_ring_peek(send_ring, off, len, type, 16, &n), MC_OK);
    CHECK(n == 9);
    for (uint32_t i = 0; i < n; i++) {
        mc_send_record sr;
        memcpy(&sr, mc_ring_data(send_ring) + off[i], sizeof sr);
        CHECK(sr.timestamp == 4242 && sr.payload_type == MC_SEND_PT_DEFAULT);
        CHECK(sr.marker == (i + 1 == n));
    }
    uint16_t seq = 100;
    CHECK(send_to_receive(send_ring, rtp_ring, &seq) == 9);
    mc_h264_depacketizer *dp;
    CHECK_STATUS(mc_h264_depacketizer_new(0, 0, &dp), MC_OK);
    uint32_t records = 0, made = 0;
    CHECK_STATUS(mc_h264_depacketizer_drain_ring(dp, rtp_ring, 1024, &records, &made), MC_E_INVAL);
    CHECK_STATUS(mc_h264_depacketizer_set_ring(dp, frames), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_drain_ring(dp, rtp_ring, 1024, &records, &made), MC_OK);
    CHECK(records == 9 && made == 1);
    CHECK_STATUS(mc_ring_peek(frames, off, len, type, 16, &n), MC_OK);
    CHECK(n == 1 && len[0] == MC_H264_FRAME_HEADER_SIZE + b.len);
    CHECK(memcmp(mc_ring_data(frames) + off[0] + MC_H264_FRAME_HEADER_SIZE, b.data, b.len) == 0);
    mc_h264_depacketizer_free(dp);
    mc_h264_packetizer_free(pz);
    mc_ring_free(rtp_ring);
    mc_ring_free(frames);
    mc_ring_free(send_ring);
}

/* drain_frames, one call per turn. Copying (in_place 0): frames far larger
 * than the first reservation grow it (moving past the end of the ring when
 * needed) and arrive intact; a frame ring without room for the next frame
 * leaves its packets in the receive ring (output_waits) instead of dropping
 * the frame; the frames of a turn stay in the ring until the next call;
 * rewinding rings. In place (1): the same frames, assembled over their
 * packets in the receive ring, arrive intact and in order, nothing waits. */
static void test_drain_frames(int in_place)
{
    static au_builder units[12];
    mc_ring *send_ring, *rtp_ring, *frames;
    CHECK_STATUS(mc_ring_new(1 << 22, MC_RING_DROP_NEWEST, &send_ring), MC_OK);
    CHECK_STATUS(mc_ring_new(1 << 22, MC_RING_DROP_NEWEST, &rtp_ring), MC_OK);
    /* 256 KiB: records up to 128 KiB, a key frame of ~100 KB among 30 KB ones */
    CHECK_STATUS(mc_ring_new(1 << 18, MC_RING_DROP_NEWEST, &frames), MC_OK);
    CHECK_STATUS(mc_ring_set_rewind(rtp_ring, 1 << 20), MC_OK);
    /* a rewinding frame ring needs room for the largest frame (128 KiB here):
     * a frame begun right after a rewind can only grow into what lies before
     * the padding until the consumer has passed it */
    CHECK_STATUS(mc_ring_set_rewind(frames, 1 << 18), MC_E_INVAL); /* the whole ring */
    CHECK_STATUS(mc_ring_set_rewind(frames, 1 << 17), MC_OK);
    mc_h264_packetizer *pz = send_record_packetizer(1200);
    mc_h264_depacketizer *dp;
    CHECK_STATUS(mc_h264_depacketizer_new(0, 7, &dp), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_set_ring(dp, frames), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_set_in_place(dp, in_place), MC_OK);
    mc_h264_frame_ref refs[256];
    uint32_t count = 0, records = 0, next = 0, total_packets = 0;
    uint16_t seq = 65000; /* wraps */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 12; i++) {
            au_builder *b = &units[i];
            b->len = 0;
            if (i == 0) {
                au_add(b, 0x67, 12);
                au_add(b, 0x68, 4);
                au_add(b, 0x65, 100000);
            } else {
                au_add(b, 0x41, 30000 + (uint32_t)i * 97);
            }
            uint32_t n = 0;
            CHECK_STATUS(mc_h264_packetize_to_ring(pz, b->data, b->len,
                                                   (uint32_t)(round * 12 + i) * 3000u, send_ring, 1,
                                                   &n),
                         MC_OK);
        }
        total_packets += send_to_receive(send_ring, rtp_ring, &seq);
        /* turns until the receive ring is empty: each hands out what fitted */
        next = 0;
        for (int turn = 0; turn < 40 && next < 12; turn++) {
            CHECK_STATUS(mc_h264_depacketizer_drain_frames(dp, rtp_ring, 1024, refs, 256, &count,
                                                           &records),
                         MC_OK);
            for (uint32_t k = 0; k < count && next < 12; k++, next++) {
                const au_builder *b = &units[next];
                CHECK(refs[k].length == b->len && refs[k].end == refs[k].offset + b->len);
                CHECK(refs[k].source == (in_place ? MC_H264_FRAME_SOURCE_INPUT
                                                  : MC_H264_FRAME_SOURCE_OUTPUT));
                const uint8_t *data = mc_ring_data(in_place ? rtp_ring : frames);
                CHECK(memcmp(data + refs[k].offset, b->data, b->len) == 0);
                CHECK(refs[k].rtp_timestamp == (uint32_t)(round * 12 + (int)next) * 3000u);
                CHECK(refs[k].ssrc == 7);
                CHECK(!!(refs[k].flags & MC_H264_FRAME_KEY) == (next == 0));
                CHECK(refs[k].packets ==
                      (uint16_t)(refs[k].last_sequence - refs[k].first_sequence + 1));
            }
        }
        CHECK(next == 12);
    }
    /* the last turn's frames are still in the ring until released */
    mc_ring_stats rs;
    CHECK_STATUS(mc_ring_get_stats(frames, &rs), MC_OK);
    CHECK(rs.used_bytes > 0 && (in_place || rs.rewinds > 0));
    mc_ring_stats in;
    CHECK_STATUS(mc_ring_get_stats(rtp_ring, &in), MC_OK);
    CHECK(in_place ? in.used_bytes > 0 : in.used_bytes == 0); /* held for the frames */
    CHECK_STATUS(mc_h264_depacketizer_release_frames(dp), MC_OK);
    CHECK_STATUS(mc_ring_get_stats(frames, &rs), MC_OK);
    CHECK(rs.used_bytes == 0 && rs.records_read == rs.records_written);
    CHECK_STATUS(mc_ring_get_stats(rtp_ring, &in), MC_OK);
    CHECK(in.used_bytes == 0 && in.records_read == in.records_written);
    mc_h264_depacketizer_stats st;
    CHECK_STATUS(mc_h264_depacketizer_get_stats(dp, &st), MC_OK);
    CHECK(st.frames == 36 && st.frames_dropped == 0 && st.ring_drops == 0);
    CHECK(st.packets == total_packets && st.frames_too_large == 0);
    /* copying, 12 frames of 30-100 KB never fit a 256 KiB ring at once */
    CHECK(in_place ? st.output_waits == 0 && st.frames_in_place == 36
                   : st.output_waits > 0 && st.frames_in_place == 0);
    CHECK(st.waiting_for_key_frame == 0);
    /* a frame above what the ring can hold is too large, and counted so */
    au_builder *big = &units[0];
    big->len = 0;
    au_add(big, 0x41, 150000);
    uint32_t n = 0;
    CHECK_STATUS(mc_h264_packetize_to_ring(pz, big->data, big->len, 999000u, send_ring, 1, &n),
                 MC_OK);
    send_to_receive(send_ring, rtp_ring, &seq);
    CHECK_STATUS(mc_h264_depacketizer_drain_frames(dp, rtp_ring, 1024, refs, 256, &count, &records),
                 MC_OK);
    CHECK(count == 0);
    CHECK_STATUS(mc_h264_depacketizer_get_stats(dp, &st), MC_OK);
    CHECK(st.frames_too_large == 1 && st.frames_dropped == 1);
    CHECK_STATUS(mc_h264_depacketizer_drain_frames(NULL, rtp_ring, 1, refs, 1, &count, NULL),
                 MC_E_INVAL);
    mc_h264_depacketizer_free(dp);
    mc_h264_packetizer_free(pz);
    mc_ring_free(frames);
    mc_ring_free(rtp_ring);
    mc_ring_free(send_ring);
}

/* Receive records written by hand (what the engine delivers), for the in-place tests. */
static uint16_t ip_seq = 65530; /* wraps */

static void put_packet(mc_ring *rtp, const uint8_t *payload, uint32_t n, uint32_t ts, int marker)
{
    void *mem = NULL;
    CHECK_STATUS(mc_ring_reserve(rtp, (uint32_t)sizeof(mc_rtp_record) + n, &mem), MC_OK);
    CHECK(mem != NULL);
    mc_rtp_record rr;
    memset(&rr, 0, sizeof rr);
    rr.timestamp = ts;
    rr.marker = (uint8_t)marker;
    rr.sequence_number = ip_seq++;
    memcpy(mem, &rr, sizeof rr);
    memcpy((uint8_t *)mem + sizeof rr, payload, n);
    CHECK_STATUS(mc_ring_commit(rtp, MC_RECORD_RTP, (uint32_t)sizeof rr + n), MC_OK);
}

/* One NAL unit (header + body of random bytes) as FU-A packets of `frag`
 * bytes, appended to `expect` in Annex-B; an event record after the first. */
static void put_fu_a(mc_ring *rtp, au_builder *expect, uint8_t header, uint32_t body,
                     uint32_t frag, uint32_t ts, int last_nal, int with_event)
{
    uint32_t at = expect->len + 5;
    au_add(expect, header, body);
    uint8_t pkt[1600];
    for (uint32_t off = 0; off < body;) {
        uint32_t n = body - off < frag ? body - off : frag;
        pkt[0] = (uint8_t)((header & 0xe0) | MC_NAL_FU_A);
        pkt[1] = (uint8_t)((off == 0 ? 0x80 : 0) | (off + n == body ? 0x40 : 0) | (header & 0x1f));
        memcpy(pkt + 2, expect->data + at + off, n);
        off += n;
        put_packet(rtp, pkt, n + 2, ts, last_nal && off == body);
        if (with_event && n == frag && off == frag) {
            uint8_t ev[16] = {1, 2, 3};
            CHECK_STATUS(mc_ring_write(rtp, 77, ev, sizeof ev), MC_OK);
        }
    }
}

static void put_single(mc_ring *rtp, au_builder *expect, uint8_t header, uint32_t body,
                       uint32_t ts, int marker)
{
    uint32_t at = expect->len + 4;
    au_add(expect, header, body);
    put_packet(rtp, expect->data + at, body + 1, ts, marker);
}

/* Frames are assembled in place over their packets in the receive ring and
 * handed out in order with those copied into the frame ring: an IDR that
 * needs the cached SPS/PPS inserted, or a first packet of many STAP-A units,
 * is copied from its start; a frame whose packets wrap around the end of the
 * receive ring moves to the frame ring mid-frame; event records between
 * packets are written over; the receive ring's records stay until the frames
 * are released; a full frame ring makes the drain wait. */
static void test_drain_in_place(void)
{
    static au_builder expect[64];
    mc_ring *rtp, *frames;
    CHECK_STATUS(mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &rtp), MC_OK);
    CHECK_STATUS(mc_ring_new(1 << 18, MC_RING_DROP_NEWEST, &frames), MC_OK);
    mc_h264_depacketizer *dp;
    CHECK_STATUS(mc_h264_depacketizer_new(0, 9, &dp), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_set_ring(dp, frames), MC_OK);
    mc_h264_frame_ref refs[256];
    uint32_t count = 0, records = 0;
    uint32_t ts = 0;
    int n = 0;
    /* 0: key frame, SPS/PPS/IDR as single NAL packets: in place */
    expect[n].len = 0;
    put_single(rtp, &expect[n], 0x67, 10, ts, 0);
    put_single(rtp, &expect[n], 0x68, 3, ts, 0);
    put_fu_a(rtp, &expect[n], 0x65, 3000, 1000, ts, 1, 1);
    n++, ts += 3000;
    /* 1: an IDR alone: the cached SPS/PPS go before it, more than a record's
     * header holds: copied */
    expect[n].len = 0;
    memcpy(expect[n].data, expect[0].data, 4 + 11 + 4 + 4); /* SPS, PPS with start codes */
    expect[n].len = 4 + 11 + 4 + 4;
    put_fu_a(rtp, &expect[n], 0x65, 2500, 1000, ts, 1, 0);
    n++, ts += 3000;
    /* 2: a P frame in place, an event record amid its packets */
    expect[n].len = 0;
    put_fu_a(rtp, &expect[n], 0x41, 4000, 1100, ts, 1, 1);
    n++, ts += 3000;
    /* 3: a first packet of 14 tiny STAP-A units (27 bytes more out than in,
     * beyond the 24 of the record header): copied */
    {
        uint8_t stap[1 + 14 * 4];
        uint32_t k = 0;
        stap[k++] = MC_NAL_STAP_A;
        expect[n].len = 0;
        for (int u = 0; u < 14; u++) {
            au_add(&expect[n], 0x06, 1); /* SEI, one byte of body */
            stap[k++] = 0;
            stap[k++] = 2;
            memcpy(stap + k, expect[n].data + expect[n].len - 2, 2);
            k += 2;
        }
        put_packet(rtp, stap, k, ts, 0);
        put_fu_a(rtp, &expect[n], 0x41, 2000, 1000, ts, 1, 0);
        n++, ts += 3000;
    }
    CHECK_STATUS(mc_h264_depacketizer_drain_frames(dp, rtp, 1024, refs, 256, &count, &records),
                 MC_OK);
    CHECK(count == 4);
    static const uint32_t source[4] = {MC_H264_FRAME_SOURCE_INPUT, MC_H264_FRAME_SOURCE_OUTPUT,
                                       MC_H264_FRAME_SOURCE_INPUT, MC_H264_FRAME_SOURCE_OUTPUT};
    for (uint32_t k = 0; k < count; k++) {
        CHECK(refs[k].source == source[k]);
        CHECK(refs[k].rtp_timestamp == k * 3000u && refs[k].length == expect[k].len);
        const uint8_t *data = mc_ring_data(refs[k].source ? rtp : frames);
        CHECK(memcmp(data + refs[k].offset, expect[k].data, expect[k].len) == 0);
    }
    CHECK(refs[0].flags & MC_H264_FRAME_KEY);
    CHECK((refs[1].flags & MC_H264_FRAME_KEY) && (refs[1].flags & MC_H264_FRAME_PARAMS_INSERTED));
    mc_ring_stats in;
    CHECK_STATUS(mc_ring_get_stats(rtp, &in), MC_OK);
    CHECK(in.used_bytes > 0); /* frames 0 and 2 still stand on their records */
    /* many turns through the 64 KiB receive ring: frames straddling its end
     * move to the frame ring mid-frame; every frame intact */
    int moved = 0, placed = 0;
    for (int turn = 0; turn < 40; turn++) {
        int first = n;
        for (int f = 0; f < 2; f++, n++, ts += 3000) {
            expect[n % 64].len = 0;
            put_fu_a(rtp, &expect[n % 64], 0x41, 7000 + (uint32_t)(turn * 331 % 5000), 1150, ts,
                     1, f);
        }
        CHECK_STATUS(mc_h264_depacketizer_drain_frames(dp, rtp, 1024, refs, 256, &count, &records),
                     MC_OK);
        CHECK(count == 2);
        for (uint32_t k = 0; k < count; k++) {
            const au_builder *e = &expect[(first + (int)k) % 64];
            CHECK(refs[k].length == e->len);
            const uint8_t *data = mc_ring_data(refs[k].source ? rtp : frames);
            CHECK(memcmp(data + refs[k].offset, e->data, e->len) == 0);
            moved += refs[k].source == MC_H264_FRAME_SOURCE_OUTPUT;
            placed += refs[k].source == MC_H264_FRAME_SOURCE_INPUT;
        }
    }
    CHECK(moved > 0 && placed > moved);
    mc_h264_depacketizer_stats st;
    CHECK_STATUS(mc_h264_depacketizer_get_stats(dp, &st), MC_OK);
    CHECK(st.frames == (uint64_t)n && st.frames_dropped == 0 && st.frames_in_place == 2u + (uint32_t)placed);
    CHECK_STATUS(mc_h264_depacketizer_release_frames(dp), MC_OK);
    CHECK_STATUS(mc_ring_get_stats(rtp, &in), MC_OK);
    CHECK(in.used_bytes == 0 && in.records_read == in.records_written);
    /* another input ring while frames of this one are held: refused */
    mc_ring *other;
    CHECK_STATUS(mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &other), MC_OK);
    expect[0].len = 0;
    put_fu_a(rtp, &expect[0], 0x41, 3000, 1000, ts, 1, 0);
    ts += 3000;
    CHECK_STATUS(mc_h264_depacketizer_drain_frames(dp, rtp, 1024, refs, 256, &count, &records),
                 MC_OK);
    CHECK(count == 1 && refs[0].source == MC_H264_FRAME_SOURCE_INPUT);
    CHECK_STATUS(mc_h264_depacketizer_drain_ring(dp, other, 16, &records, NULL), MC_E_STATE);
    mc_h264_depacketizer_free(dp);
    mc_ring_free(other);
    /* a frame ring with room for a few frame records: the drain waits, and
     * the rest follows turn by turn, in place */
    mc_ring *small;
    CHECK_STATUS(mc_ring_new(512, MC_RING_DROP_NEWEST, &small), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_new(0, 9, &dp), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_set_ring(dp, small), MC_OK);
    CHECK_STATUS(mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &other), MC_OK);
    uint8_t slice[40];
    for (int f = 0; f < 30; f++) {
        expect[f].len = 0;
        if (f == 0) {
            put_single(other, &expect[f], 0x67, 8, (uint32_t)f * 3000u, 0);
            put_single(other, &expect[f], 0x68, 3, (uint32_t)f * 3000u, 0);
        }
        put_single(other, &expect[f], f == 0 ? 0x65 : 0x41, 30, (uint32_t)f * 3000u, 1);
        (void)slice;
    }
    int got = 0, turns = 0;
    while (got < 30 && turns++ < 20) {
        CHECK_STATUS(mc_h264_depacketizer_drain_frames(dp, other, 1024, refs, 256, &count, NULL),
                     MC_OK);
        CHECK(count > 0);
        for (uint32_t k = 0; k < count; k++, got++) {
            CHECK(refs[k].source == MC_H264_FRAME_SOURCE_INPUT);
            CHECK(refs[k].rtp_timestamp == (uint32_t)got * 3000u);
            CHECK(memcmp(mc_ring_data(other) + refs[k].offset, expect[got].data,
                         expect[got].len) == 0);
        }
    }
    CHECK(got == 30 && turns > 1);
    CHECK_STATUS(mc_h264_depacketizer_get_stats(dp, &st), MC_OK);
    CHECK(st.output_waits > 0 && st.frames_dropped == 0 && st.frames_in_place == 30);
    mc_h264_depacketizer_free(dp);
    mc_ring_free(small);
    mc_ring_free(other);
    mc_ring_free(frames);
    mc_ring_free(rtp);
}

/* FIR fallback (RFC 5104 4.3.1): PLI at once, FIR after T, then both with
 * doubling intervals up to the cap, until a key frame is handed out; T grows
 * to 2 RTT; a request while in sync starts the same sequence. */
static void test_key_frame_policy(void)
{
    const int64_t ms = 1000000;
    mc_h264_depacketizer *dp;
    CHECK_STATUS(mc_h264_depacketizer_new(4096, 0, &dp), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_set_buffer(dp, frame_buffer, sizeof frame_buffer), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_set_key_frame_timing(dp, 100 * ms, 500 * ms), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_set_key_frame_timing(dp, -1, 0), MC_E_INVAL);
    uint32_t m = 99, frames = 0;
    mc_h264_frame_header h;
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, 0, -1, &m), MC_OK);
    CHECK(m == 0); /* nothing lost yet */
    const uint8_t slice[] = {0x41, 0x9a, 0x11, 0x22, 0x33};
    const uint8_t sps[] = {0x67, 0x42, 0xc0, 0x1e, 0x8c};
    const uint8_t pps[] = {0x68, 0xce, 0x3c, 0x80};
    const uint8_t idr[] = {0x65, 0x88, 0x84, 0x21, 0x44};
    /* a start mid-stream: a P frame cannot be decoded -> a need */
    push1(dp, slice, sizeof slice, 10, 3000, 1, &frames);
    CHECK(frames == 0);
    int64_t t = 1000 * ms;
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t, -1, &m), MC_OK);
    CHECK(m == MC_KEYFRAME_PLI);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 99 * ms, -1, &m), MC_OK);
    CHECK(m == 0);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 100 * ms, -1, &m), MC_OK);
    CHECK(m == MC_KEYFRAME_FIR);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 299 * ms, -1, &m), MC_OK);
    CHECK(m == 0);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 300 * ms, -1, &m), MC_OK);
    CHECK(m == (MC_KEYFRAME_PLI | MC_KEYFRAME_FIR)); /* +2T */
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 699 * ms, -1, &m), MC_OK);
    CHECK(m == 0);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 700 * ms, -1, &m), MC_OK);
    CHECK(m == (MC_KEYFRAME_PLI | MC_KEYFRAME_FIR)); /* +4T */
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 1199 * ms, -1, &m), MC_OK);
    CHECK(m == 0);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 1200 * ms, -1, &m), MC_OK);
    CHECK(m == (MC_KEYFRAME_PLI | MC_KEYFRAME_FIR)); /* +8T capped at 500 ms */
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 1700 * ms, -1, &m), MC_OK);
    CHECK(m == (MC_KEYFRAME_PLI | MC_KEYFRAME_FIR));
    /* more lost P frames while waiting: still the same request */
    push1(dp, slice, sizeof slice, 12, 6000, 1, &frames);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 1800 * ms, -1, &m), MC_OK);
    CHECK(m == 0);
    /* the key frame ends it */
    push1(dp, sps, sizeof sps, 13, 9000, 0, &frames);
    push1(dp, pps, sizeof pps, 14, 9000, 0, &frames);
    push1(dp, idr, sizeof idr, 15, 9000, 1, &frames);
    CHECK(frames == 1);
    CHECK_STATUS(mc_h264_depacketizer_take_frame(dp, &h), MC_OK);
    CHECK(h.flags & MC_H264_FRAME_KEY);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 5000 * ms, -1, &m), MC_OK);
    CHECK(m == 0);
    mc_h264_depacketizer_stats st;
    CHECK_STATUS(mc_h264_depacketizer_get_stats(dp, &st), MC_OK);
    CHECK(st.plis_requested == 5 && st.firs_requested == 5);
    /* in sync, the application asks: PLI now; with an RTT of 300 ms, T = 600 ms */
    t = 10000 * ms;
    CHECK_STATUS(mc_h264_depacketizer_request_key_frame(dp), MC_OK);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t, 300 * ms, &m), MC_OK);
    CHECK(m == MC_KEYFRAME_PLI);
    CHECK_STATUS(mc_h264_depacketizer_request_key_frame(dp), MC_OK); /* same request */
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 599 * ms, 300 * ms, &m), MC_OK);
    CHECK(m == 0);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 600 * ms, 300 * ms, &m), MC_OK);
    CHECK(m == MC_KEYFRAME_FIR);
    /* a P frame in sync does not answer it; the next IDR does */
    push1(dp, slice, sizeof slice, 16, 12000, 1, &frames);
    CHECK(frames == 1);
    CHECK_STATUS(mc_h264_depacketizer_take_frame(dp, &h), MC_OK);
    CHECK(!(h.flags & MC_H264_FRAME_KEY));
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 1800 * ms, 300 * ms, &m), MC_OK);
    CHECK(m == (MC_KEYFRAME_PLI | MC_KEYFRAME_FIR));
    push1(dp, idr, sizeof idr, 17, 15000, 1, &frames); /* SPS/PPS inserted from the cache */
    CHECK(frames == 1);
    CHECK_STATUS(mc_h264_depacketizer_take_frame(dp, &h), MC_OK);
    CHECK(h.flags & MC_H264_FRAME_KEY);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(dp, t + 9000 * ms, 300 * ms, &m), MC_OK);
    CHECK(m == 0);
    CHECK_STATUS(mc_h264_depacketizer_poll_key_frame(NULL, 0, 0, &m), MC_E_INVAL);
    CHECK_STATUS(mc_h264_depacketizer_request_key_frame(NULL), MC_E_INVAL);
    mc_h264_depacketizer_free(dp);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 300;
    test_annexb_scan();
    test_round_trip_buffer(1200);
    test_round_trip_buffer(100);
    test_round_trip_buffer(3);
    test_param_sets();
    test_malformed_and_unsupported();
    test_ring_full();
    test_engine_records();
    test_drain_frames(0);
    test_drain_frames(1);
    test_drain_in_place();
    test_key_frame_policy();
    test_loss(rounds, NULL);
    mc_ring *ring;
    CHECK_STATUS(mc_ring_new(1 << 20, MC_RING_DROP_NEWEST, &ring), MC_OK);
    test_loss(rounds, ring);
    mc_ring_free(ring);
    if (failures) {
        fprintf(stderr, "test_h264_rtp: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_h264_rtp: ok\n");
    return 0;
}

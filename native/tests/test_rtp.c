/*
 * test_rtp.c — C-level tests of seq.h, rtp.c, rtcp.c, rtpstats.c, jitter.c
 * and reorder.c: wrap-around, RTP serialize/parse round trips over random
 * headers, garbage (never a crash, statuses only), RTCP compound round trips,
 * NACK packing, receive statistics, and seeded jitter/reorder simulations.
 * Built with -Werror, ASan/UBSan and mingw-w64 (run under wine): these files
 * need no OpenSSL or opus.
 *
 * Usage: test_rtp [rounds]   (default 20000 for the randomized parts)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "mediacore.h"
#include "check.h"
#include "testing.h"
#include "rtcp.h"
#include "rtp.h"
#include "rtpstats.h"
#include "seq.h"

static uint32_t rng_state = 2463534242u;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

#define MS 1000000LL

static void test_seq(void)
{
    CHECK(mc_seq_diff(0, 65535) == 1);
    CHECK(mc_seq_diff(65535, 0) == -1);
    CHECK(mc_seq_newer(0, 65535) && !mc_seq_newer(65535, 0));
    CHECK(mc_seq_diff(32768, 0) == -32768 && mc_seq_diff(0, 32768) == -32768);
    CHECK(mc_ts_diff(0, 0xFFFFFFFFu) == 1 && mc_ts_diff(0xFFFFFFFFu, 0) == -1);
    CHECK(mc_ts_newer(480, 0xFFFFFFFFu - 479));
    mc_unwrap u = {0, 0};
    int64_t expect = 65530;
    for (int i = 0; i < 200000; i++, expect += 3)
        CHECK(mc_seq_unwrap(&u, (uint16_t)expect) == expect);
    CHECK(mc_seq_unwrap(&u, (uint16_t)(expect - 100)) == expect - 100); /* late: no move */
    CHECK(mc_seq_unwrap_peek(&u, (uint16_t)(expect - 3)) == expect - 3);
    mc_unwrap t = {0, 0};
    int64_t ts = 0xFFFFFFFFLL - 2000;
    for (int i = 0; i < 10; i++, ts += 960)
        CHECK(mc_ts_unwrap(&t, (uint32_t)ts) == ts);
}

static void random_header(mc_rtp_header *h, uint8_t *ext, uint32_t *ext_words)
{
    memset(h, 0, sizeof *h);
    h->version = 2;
    h->payload_type = (uint8_t)(rnd() & 0x7F);
    h->marker = (uint8_t)(rnd() & 1);
    h->sequence_number = (uint16_t)rnd();
    h->timestamp = rnd();
    h->ssrc = rnd();
    h->csrc_count = (uint8_t)(rnd() % 16);
    for (unsigned i = 0; i < h->csrc_count; i++)
        h->csrc[i] = rnd();
    *ext_words = 0;
    if (rnd() & 1) {
        h->extension = 1;
        h->extension_profile = (uint16_t)rnd();
        *ext_words = rnd() % 8;
        h->extension_words = (uint16_t)*ext_words;
        for (uint32_t i = 0; i < 4 * *ext_words; i++)
            ext[i] = (uint8_t)rnd();
    }
    if (rnd() & 1) {
        h->padding = 1;
        h->padding_length = (uint8_t)(1 + rnd() % 255);
    }
}

static void test_rtp_round_trip(int rounds)
{
    uint8_t ext[64], payload[300], out[2000];
    for (int r = 0; r < rounds; r++) {
        mc_rtp_header h, back;
        uint32_t words;
        random_header(&h, ext, &words);
        uint32_t plen = rnd() % sizeof payload;
        for (uint32_t i = 0; i < plen; i++)
            payload[i] = (uint8_t)rnd();
        size_t written = 0;
        CHECK_STATUS(mc_rtp_serialize(&h, ext, payload, plen, out, sizeof out, &written), MC_OK);
        uint32_t size = 0;
        CHECK_STATUS(mc_rtp_serialized_size(&h, plen, &size), MC_OK);
        CHECK(size == written);
        CHECK_STATUS(mc_rtp_parse(out, written, &back), MC_OK);
        CHECK(back.payload_type == h.payload_type && back.marker == h.marker);
        CHECK(back.sequence_number == h.sequence_number && back.timestamp == h.timestamp);
        CHECK(back.ssrc == h.ssrc && back.csrc_count == h.csrc_count);
        CHECK(memcmp(back.csrc, h.csrc, 4u * h.csrc_count) == 0);
        CHECK(back.extension == h.extension && back.extension_words == h.extension_words);
        if (h.extension)
            CHECK(memcmp(out + back.extension_offset, ext, 4u * words) == 0);
        CHECK(back.payload_length == plen && memcmp(out + back.payload_offset, payload, plen) == 0);
        CHECK(back.padding_length == (h.padding ? h.padding_length : 0));
        uint32_t kind;
        CHECK_STATUS(mc_rtp_classify(out, written, &kind), MC_OK);
        (void)kind;
        /* too small an output buffer reports the size needed */
        size_t need = 0;
        CHECK_STATUS(mc_rtp_serialize(&h, ext, payload, plen, out, written - 1, &need),
                     MC_E_BUFFER);
        CHECK(need == written);
    }
}

static void test_rtp_garbage(int rounds)
{
    uint8_t buf[128];
    mc_rtp_header h;
    for (int r = 0; r < rounds; r++) {
        size_t n = rnd() % sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd();
        if (n && (r & 1))
            buf[0] = (uint8_t)(0x80 | (buf[0] & 0x3F));
        /* an exactly sized heap copy so ASan sees any overread */
        uint8_t *p = (uint8_t *)malloc(n ? n : 1);
        memcpy(p, buf, n);
        mc_status st = mc_rtp_parse(p, n, &h);
        CHECK(st == MC_OK || st == MC_E_MALFORMED);
        if (st == MC_OK) {
            CHECK(h.payload_offset + h.payload_length + h.padding_length == n);
            uint32_t cursor = 0, off, len;
            uint8_t id;
            for (int k = 0; k < 300; k++) {
                mc_status e = mc_rtp_ext_next(p, &h, &cursor, &id, &off, &len);
                if (e != MC_OK)
                    break;
                CHECK(off + len <= n);
            }
            uint8_t v, lvl;
            mc_rtp_audio_level_read(p, &h, 1, &v, &lvl);
        }
        free(p);
    }
    /* the named cases */
    static const uint8_t wrong_version[12] = {0x40};
    CHECK_STATUS(mc_rtp_parse(wrong_version, 12, &h), MC_E_MALFORMED);
    uint8_t cc[16] = {0x8F};
    CHECK_STATUS(mc_rtp_parse(cc, 16, &h), MC_E_MALFORMED);
    uint8_t pad[16] = {0xA0};
    pad[15] = 5;
    CHECK_STATUS(mc_rtp_parse(pad, 16, &h), MC_E_MALFORMED);
    uint8_t huge[20] = {0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0xFF, 0xFF};
    CHECK_STATUS(mc_rtp_parse(huge, 20, &h), MC_E_MALFORMED);
    CHECK_STATUS(mc_rtp_parse(huge, 11, &h), MC_E_MALFORMED);
}

static void test_extensions(void)
{
    uint8_t ext[64];
    uint32_t used = 0;
    uint16_t words = 0;
    const uint8_t a[3] = {1, 2, 3};
    CHECK_STATUS(mc_rtp_ext_append(ext, sizeof ext, &used, MC_RTP_EXT_ONE_BYTE, 3, a, 3), MC_OK);
    CHECK_STATUS(mc_rtp_audio_level_append(ext, sizeof ext, &used, MC_RTP_EXT_ONE_BYTE, 1, 1, 42),
                 MC_OK);
    CHECK_STATUS(mc_rtp_ext_append(ext, sizeof ext, &used, MC_RTP_EXT_ONE_BYTE, 15, a, 1),
                 MC_E_INVAL);
    CHECK_STATUS(mc_rtp_ext_finish(ext, sizeof ext, &used, &words), MC_OK);
    CHECK(used == 8 && words == 2);
    mc_rtp_header h;
    memset(&h, 0, sizeof h);
    h.version = 2;
    h.extension = 1;
    h.extension_profile = MC_RTP_EXT_ONE_BYTE;
    h.extension_words = words;
    uint8_t pkt[64];
    size_t n;
    CHECK_STATUS(mc_rtp_serialize(&h, ext, (const uint8_t *)"pp", 2, pkt, sizeof pkt, &n), MC_OK);
    mc_rtp_header back;
    CHECK_STATUS(mc_rtp_parse(pkt, n, &back), MC_OK);
    uint32_t off, len;
    CHECK_STATUS(mc_rtp_ext_find(pkt, &back, 3, &off, &len), MC_OK);
    CHECK(len == 3 && memcmp(pkt + off, a, 3) == 0);
    uint8_t v = 0, lvl = 0;
    CHECK_STATUS(mc_rtp_audio_level_read(pkt, &back, 1, &v, &lvl), MC_OK);
    CHECK(v == 1 && lvl == 42);
    CHECK_STATUS(mc_rtp_ext_find(pkt, &back, 7, &off, &len), MC_E_NOT_FOUND);
}

static void test_rtcp(int rounds)
{
    uint8_t buf[1500];
    for (int r = 0; r < rounds / 20 + 1; r++) {
        mc_rtcp_report_block blocks[31], back[31];
        uint32_t nb = rnd() % 32;
        for (uint32_t i = 0; i < nb; i++) {
            blocks[i].ssrc = rnd();
            blocks[i].fraction_lost = (uint8_t)rnd();
            blocks[i].cumulative_lost = (int32_t)(rnd() % 0x1000000) - 0x800000;
            blocks[i].extended_highest_seq = rnd();
            blocks[i].jitter = rnd();
            blocks[i].lsr = rnd();
            blocks[i].dlsr = rnd();
        }
        mc_rtcp_sender_info si = {rnd(), ((uint64_t)rnd() << 32) | rnd(), rnd(), rnd(), rnd()}, so;
        size_t used = 0;
        CHECK_STATUS(mc_rtcp_write_sr(buf, sizeof buf, &used, &si, blocks, nb), MC_OK);
        CHECK_STATUS(mc_rtcp_write_sdes_cname(buf, sizeof buf, &used, si.ssrc,
                                              (const uint8_t *)"cname", 5), MC_OK);
        uint16_t lost[40];
        uint32_t nl = 1 + rnd() % 40;
        uint16_t base = (uint16_t)rnd();
        for (uint32_t i = 0; i < nl; i++, base = (uint16_t)(base + 1 + rnd() % 9))
            lost[i] = base; /* ascending (wrap-aware), no duplicates */
        CHECK_STATUS(mc_rtcp_write_nack(buf, sizeof buf, &used, 1, 2, lost, nl), MC_OK);
        CHECK_STATUS(mc_rtcp_write_pli(buf, sizeof buf, &used, 1, 2), MC_OK);
        uint32_t cursor = 0, count;
        mc_rtcp_packet p;
        int seen = 0;
        while (mc_rtcp_next(buf, used, &cursor, &p) == MC_OK) {
            const uint8_t *d = buf + p.offset;
            if (p.packet_type == MC_RTCP_SR) {
                CHECK_STATUS(mc_rtcp_parse_sr(d, p.length, &so, back, 31, &count), MC_OK);
                CHECK(count == nb && so.ntp_timestamp == si.ntp_timestamp);
                for (uint32_t i = 0; i < nb && i < count; i++) {
                    CHECK(back[i].ssrc == blocks[i].ssrc);
                    CHECK(back[i].fraction_lost == blocks[i].fraction_lost);
                    CHECK(back[i].cumulative_lost == blocks[i].cumulative_lost);
                    CHECK(back[i].extended_highest_seq == blocks[i].extended_highest_seq);
                    CHECK(back[i].jitter == blocks[i].jitter && back[i].lsr == blocks[i].lsr);
                    CHECK(back[i].dlsr == blocks[i].dlsr);
                }
            } else if (p.packet_type == MC_RTCP_RTPFB) {
                uint16_t out[64];
                uint32_t s1, s2;
                CHECK_STATUS(mc_rtcp_parse_nack(d, p.length, &s1, &s2, out, 64, &count), MC_OK);
                CHECK(count == nl);
                for (uint32_t i = 0; i < nl && i < count; i++)
                    CHECK(out[i] == lost[i]);
            }
            seen++;
        }
        CHECK(seen == 4);
    }
    /* bad lengths */
    const uint8_t bad[8] = {0x81, 201, 0, 1, 0, 0, 0, 1};
    uint32_t ssrc, count, cursor = 0;
    mc_rtcp_report_block b;
    CHECK_STATUS(mc_rtcp_parse_rr(bad, 8, &ssrc, &b, 1, &count), MC_E_MALFORMED);
    const uint8_t longer[8] = {0x80, 201, 0, 9, 0, 0, 0, 1};
    mc_rtcp_packet p;
    CHECK_STATUS(mc_rtcp_next(longer, 8, &cursor, &p), MC_E_MALFORMED);
    int64_t rtt;
    CHECK_STATUS(mc_rtcp_rtt_ns(((uint64_t)10 << 32), 0, 0, &rtt), MC_E_NOT_FOUND);
    CHECK_STATUS(mc_rtcp_rtt_ns(((uint64_t)10 << 32) | (1u << 31), (10u << 16), (1u << 14), &rtt),
                 MC_OK);
    CHECK(rtt == 250 * MS);
}

static void test_rtpstats(void)
{
    struct mc_rtpstats s;
    mc_rtpstats_init(&s, 8000);
    for (int i = 0; i < 100; i++)
        if (i != 50)
            mc_rtpstats_on_packet(&s, i * 20 * MS, (uint16_t)(65500 + i), (uint32_t)(160 * i), 160);
    CHECK_STATUS(mc_rtpstats_on_packet(&s, 3000 * MS, (uint16_t)(65500 + 10), 1600, 160),
                 MC_DROPPED); /* duplicate */
    mc_rtcp_report_block b;
    CHECK_STATUS(mc_rtpstats_report_block(&s, 7, 3000 * MS, &b), MC_OK);
    CHECK(b.extended_highest_seq == 65500 + 99);
    CHECK(b.cumulative_lost == 0); /* one lost, one duplicate (A.3) */
    CHECK(b.jitter <= 1);
    mc_rtp_recv_stats rs;
    CHECK_STATUS(mc_rtpstats_get(&s, &rs), MC_OK);
    CHECK(rs.duplicates == 1 && rs.expected == 100 && rs.received == 100);
}

static void test_jitter_sim(int rounds)
{
    mc_jitter_config cfg = {48000, 20, 40, 200, 64, 200};
    mc_jitter *jb;
    CHECK_STATUS(mc_jitter_new(&cfg, &jb), MC_OK);
    int n = rounds / 10 + 100;
    /* packet i sent at i*20 ms, delayed 0..60 ms; pop each 20 ms */
    int64_t *arrival = (int64_t *)malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        arrival[i] = i * 20 * MS + (int64_t)(rnd() % 60) * MS;
    uint8_t payload[200];
    mc_jitter_frame f;
    int64_t last = -1;
    mc_unwrap u = {0, 0};
    for (int tick = 0; tick < n + 20; tick++) {
        int64_t now = tick * 20 * MS;
        for (int i = 0; i < n; i++) /* O(n^2) but small */
            if (arrival[i] > now - 20 * MS && arrival[i] <= now) {
                uint8_t p[4] = {(uint8_t)i};
                mc_jitter_insert(jb, arrival[i], (uint16_t)(65000 + i), (uint32_t)(960 * i), 0, 111,
                                 p, 4);
            }
        mc_status st = mc_jitter_pop(jb, now, payload, sizeof payload, &f);
        CHECK(st == MC_OK || st == MC_E_EMPTY);
        if (st == MC_OK) {
            int64_t e = mc_seq_unwrap(&u, f.sequence_number);
            CHECK(e > last);
            last = e;
            CHECK(payload[0] == (uint8_t)(f.sequence_number - 65000));
        }
    }
    mc_jitter_stats s;
    CHECK_STATUS(mc_jitter_get_stats(jb, &s), MC_OK);
    CHECK(s.played > (uint64_t)n * 8 / 10);
    CHECK(s.target_delay_ms >= 40 && s.target_delay_ms <= 200);
    free(arrival);
    mc_jitter_free(jb);
}

static void test_reorder_sim(int rounds)
{
    mc_reorder_config cfg = {256, 64, 3, 10 * MS, 200 * MS, 100 * MS};
    mc_reorder *rb;
    CHECK_STATUS(mc_reorder_new(&cfg, &rb), MC_OK);
    uint8_t out[64];
    uint16_t nacks[256];
    mc_reorder_packet pk;
    mc_unwrap u = {0, 0};
    int64_t last = -1;
    int n = rounds / 4 + 100;
    for (int i = 0; i < n; i++) {
        int64_t now = i * MS;
        uint16_t seq = (uint16_t)(65400 + i);
        int r = (int)(rnd() % 100);
        if (r < 5)
            continue;                      /* lost */
        if (r < 10 && i > 0)               /* swap with the previous */
            mc_reorder_insert(rb, now, (uint16_t)(seq - 1), 0, 0, 96, out, 8);
        uint8_t p[8] = {(uint8_t)seq};
        mc_reorder_insert(rb, now, seq, 0, 0, 96, p, 8);
        uint32_t nn;
        CHECK_STATUS(mc_reorder_nack_list(rb, now, nacks, 256, &nn), MC_OK);
        int32_t pli;
        CHECK_STATUS(mc_reorder_keyframe_needed(rb, now, &pli), MC_OK);
        while (mc_reorder_pop(rb, now, out, sizeof out, &pk) == MC_OK) {
            int64_t e = mc_seq_unwrap(&u, pk.sequence_number);
            CHECK(e > last);
            last = e;
        }
    }
    mc_reorder_stats s;
    CHECK_STATUS(mc_reorder_get_stats(rb, &s), MC_OK);
    CHECK(s.released > 0 && s.nacks_sent > 0 && s.lost > 0 && s.pli_requests > 0);
    mc_reorder_free(rb);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20000;
    test_seq();
    test_rtp_round_trip(rounds);
    test_rtp_garbage(rounds * 5);
    test_extensions();
    test_rtcp(rounds);
    test_rtpstats();
    test_jitter_sim(rounds);
    test_reorder_sim(rounds);
    int64_t elapsed;
    uint8_t pkts[2 * 172];
    uint32_t lens[2] = {172, 172};
    for (int i = 0; i < 2; i++) {
        mc_rtp_header h;
        memset(&h, 0, sizeof h);
        h.version = 2;
        h.payload_type = 111;
        h.sequence_number = (uint16_t)i;
        h.timestamp = 960u * (uint32_t)i;
        size_t w;
        uint8_t body[160] = {0};
        CHECK_STATUS(mc_rtp_serialize(&h, NULL, body, 160, pkts + 172 * i, 172, &w), MC_OK);
    }
    CHECK_STATUS(mc_rtp_bench_parse_jitter(pkts, lens, 2, 100, &elapsed), MC_OK);
    if (failures) {
        fprintf(stderr, "test_rtp: %d failures\n", failures);
        return 1;
    }
    printf("test_rtp: ok\n");
    return 0;
}

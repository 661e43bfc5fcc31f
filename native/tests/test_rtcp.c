/*
 * test_rtcp.c — C tests of rtcp.c's outgoing side: compound packet builders
 * (report, feedback, BYE, APP) serialized then parsed back with the rtcp.c
 * parsers, and the RFC 3550 6.3 transmission timer (interval distribution
 * with a seeded generator, initial half interval, minimums, timer
 * reconsideration and reverse reconsideration), and the whole-compound
 * validity check (RFC 3550 A.2, RFC 5506). No OpenSSL or opus: built
 * with -Werror, ASan/UBSan and mingw-w64 (run under wine).
 *
 * Usage: test_rtcp [rounds]   (default 2000 randomized compound packets)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "mediacore.h"
#include "check.h"
#include "rtcp.h"

static uint64_t rng_state = 0x1234567887654321ULL;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void random_block(mc_rtcp_report_block *b)
{
    b->ssrc = rnd();
    b->fraction_lost = (uint8_t)rnd();
    b->cumulative_lost = (int32_t)(rnd() & 0xFFFFFF);
    if (b->cumulative_lost & 0x800000)
        b->cumulative_lost -= 0x1000000; /* 24-bit signed */
    b->extended_highest_seq = rnd();
    b->jitter = rnd();
    b->lsr = rnd();
    b->dlsr = rnd();
}

static int same_block(const mc_rtcp_report_block *a, const mc_rtcp_report_block *b)
{
    return a->ssrc == b->ssrc && a->fraction_lost == b->fraction_lost &&
           a->cumulative_lost == b->cumulative_lost &&
           a->extended_highest_seq == b->extended_highest_seq && a->jitter == b->jitter &&
           a->lsr == b->lsr && a->dlsr == b->dlsr;
}

/* Check the SDES packet carries exactly one chunk: ssrc, CNAME = cname. */
static void check_cname(const uint8_t *d, uint32_t n, uint32_t ssrc, const char *cname)
{
    uint32_t cursor = 0, s = 0, off = 0, len = 0;
    uint8_t type = 0;
    CHECK_STATUS(mc_rtcp_sdes_next(d, n, &cursor, &s, &type, &off, &len), MC_OK);
    CHECK(s == ssrc && type == MC_RTCP_SDES_CNAME);
    CHECK(len == strlen(cname) && memcmp(d + off, cname, len) == 0);
}

/* ---- report: SR/RR + extra RRs + further SRs + SDES ------------------------------------ */

static void test_report_round_trip(int rounds)
{
    static uint8_t buf[8192];
    for (int r = 0; r < rounds; r++) {
        mc_rtcp_report_block blocks[70], back[31];
        uint32_t nb = rnd() % 70, ns = rnd() % 4;
        for (uint32_t i = 0; i < nb; i++)
            random_block(&blocks[i]);
        uint32_t ssrc = rnd();
        mc_rtcp_sender_info si[3], so;
        for (uint32_t i = 0; i < 3; i++) {
            si[i].ssrc = i == 0 ? ssrc : rnd();
            si[i].ntp_timestamp = ((uint64_t)rnd() << 32) | rnd();
            si[i].rtp_timestamp = rnd();
            si[i].packet_count = rnd();
            si[i].octet_count = rnd();
        }
        if (ns > 3)
            ns = 3;
        char cname[40];
        snprintf(cname, sizeof cname, "user%u@host", (unsigned)rnd());
        size_t used = 4; /* appended after something already in the buffer */
        memset(buf, 0xAB, 4);
        CHECK_STATUS(mc_rtcp_build_report(buf, sizeof buf, &used, ssrc, si, ns, blocks, nb,
                                          (const uint8_t *)cname, (uint32_t)strlen(cname)),
                     MC_OK);
        CHECK(buf[0] == 0xAB && (used - 4) % 4 == 0);
        /* parse it back */
        const uint8_t *pkt = buf + 4;
        uint32_t len = (uint32_t)(used - 4), cursor = 0, index = 0, seen_blocks = 0;
        uint32_t seen_srs = 0, seen_sdes = 0;
        mc_rtcp_packet p;
        while (mc_rtcp_next(pkt, len, &cursor, &p) == MC_OK) {
            const uint8_t *d = pkt + p.offset;
            uint32_t count = 0, s = 0;
            if (index == 0)
                CHECK(p.packet_type == (ns ? MC_RTCP_SR : MC_RTCP_RR));
            if (p.packet_type == MC_RTCP_SR) {
                CHECK_STATUS(mc_rtcp_parse_sr(d, p.length, &so, back, 31, &count), MC_OK);
                CHECK(so.ssrc == si[seen_srs].ssrc && so.ntp_timestamp == si[seen_srs].ntp_timestamp &&
                      so.rtp_timestamp == si[seen_srs].rtp_timestamp &&
                      so.packet_count == si[seen_srs].packet_count &&
                      so.octet_count == si[seen_srs].octet_count);
                CHECK(seen_srs == 0 || count == 0);
                seen_srs++;
            } else if (p.packet_type == MC_RTCP_RR) {
                CHECK_STATUS(mc_rtcp_parse_rr(d, p.length, &s, back, 31, &count), MC_OK);
                CHECK(s == ssrc);
                CHECK(seen_srs <= 1); /* extra RRs come before other SRs */
            } else if (p.packet_type == MC_RTCP_SDES) {
                check_cname(d, p.length, ssrc, cname);
                seen_sdes++;
                CHECK(cursor == len); /* SDES last */
            } else {
                CHECK(0);
            }
            for (uint32_t i = 0; i < count && i < 31; i++)
                CHECK(same_block(&back[i], &blocks[seen_blocks + i]));
            seen_blocks += count;
            index++;
        }
        CHECK(cursor == len);
        CHECK(seen_blocks == nb && seen_srs == ns && seen_sdes == 1);
    }
    /* too small: MC_E_BUFFER, *used untouched at every size short of the packet */
    mc_rtcp_report_block b[5];
    for (int i = 0; i < 5; i++)
        random_block(&b[i]);
    size_t full = 0;
    CHECK_STATUS(mc_rtcp_build_report(buf, sizeof buf, &full, 7, NULL, 0, b, 5,
                                      (const uint8_t *)"x", 1), MC_OK);
    for (size_t cap = 0; cap < full; cap++) {
        size_t used = 0;
        CHECK_STATUS(mc_rtcp_build_report(buf, cap, &used, 7, NULL, 0, b, 5,
                                          (const uint8_t *)"x", 1), MC_E_BUFFER);
        CHECK(used == 0);
    }
    mc_rtcp_sender_info wrong = {8, 0, 0, 0, 0};
    size_t used = 0;
    CHECK_STATUS(mc_rtcp_build_report(buf, sizeof buf, &used, 7, &wrong, 1, NULL, 0, NULL, 0),
                 MC_E_INVAL);
}

/* ---- feedback: RR + SDES + NACK / PLI / FIR -------------------------------------------- */

static void test_feedback_round_trip(int rounds)
{
    static uint8_t buf[4096];
    for (int r = 0; r < rounds; r++) {
        uint16_t lost[200];
        uint32_t nl = rnd() % 200;
        uint16_t base = (uint16_t)rnd();
        for (uint32_t i = 0; i < nl; i++)
            lost[i] = (uint16_t)(base + rnd() % 300); /* may wrap past 65535 */
        int pli = (int)(rnd() & 1);
        int32_t fir = (rnd() & 1) ? (int32_t)(rnd() & 0xFF) : -1;
        if (!nl && !pli && fir < 0)
            pli = 1;
        uint32_t ssrc = rnd(), media = rnd();
        size_t used = 0;
        CHECK_STATUS(mc_rtcp_build_feedback(buf, sizeof buf, &used, ssrc,
                                            (const uint8_t *)"fb", 2, media, lost, nl, pli, fir),
                     MC_OK);
        uint32_t cursor = 0, index = 0, got_nack = 0, got_pli = 0, got_fir = 0;
        mc_rtcp_packet p;
        while (mc_rtcp_next(buf, used, &cursor, &p) == MC_OK) {
            const uint8_t *d = buf + p.offset;
            uint32_t s1 = 0, s2 = 0, count = 0;
            if (index == 0) {
                mc_rtcp_report_block b;
                CHECK(p.packet_type == MC_RTCP_RR);
                CHECK_STATUS(mc_rtcp_parse_rr(d, p.length, &s1, &b, 1, &count), MC_OK);
                CHECK(s1 == ssrc && count == 0);
            } else if (index == 1) {
                CHECK(p.packet_type == MC_RTCP_SDES);
                check_cname(d, p.length, ssrc, "fb");
            } else if (p.packet_type == MC_RTCP_RTPFB && p.count == MC_RTCP_FMT_NACK) {
                uint16_t out[512];
                CHECK_STATUS(mc_rtcp_parse_nack(d, p.length, &s1, &s2, out, 512, &count), MC_OK);
                CHECK(s1 == ssrc && s2 == media);
                /* the same set of sequence numbers */
                for (uint32_t i = 0; i < nl; i++) {
                    int found = 0;
                    for (uint32_t k = 0; k < count && !found; k++)
                        found = out[k] == lost[i];
                    CHECK(found);
                }
                for (uint32_t k = 0; k < count; k++) {
                    int found = 0;
                    for (uint32_t i = 0; i < nl && !found; i++)
                        found = out[k] == lost[i];
                    CHECK(found);
                }
                got_nack++;
            } else if (p.packet_type == MC_RTCP_PSFB && p.count == MC_RTCP_FMT_PLI) {
                CHECK_STATUS(mc_rtcp_parse_pli(d, p.length, &s1, &s2), MC_OK);
                CHECK(s1 == ssrc && s2 == media);
                got_pli++;
            } else if (p.packet_type == MC_RTCP_PSFB && p.count == MC_RTCP_FMT_FIR) {
                uint32_t fs[4];
                uint8_t seq[4];
                CHECK_STATUS(mc_rtcp_parse_fir(d, p.length, &s1, fs, seq, 4, &count), MC_OK);
                CHECK(s1 == ssrc && count == 1 && fs[0] == media && seq[0] == (uint8_t)fir);
                got_fir++;
            } else {
                CHECK(0);
            }
            index++;
        }
        CHECK(cursor == used);
        CHECK(got_nack == (nl > 0) && got_pli == (uint32_t)pli && got_fir == (fir >= 0));
    }
    size_t used = 0;
    CHECK_STATUS(mc_rtcp_build_feedback(buf, sizeof buf, &used, 1, NULL, 0, 2, NULL, 0, 0, -1),
                 MC_E_INVAL);
    CHECK_STATUS(mc_rtcp_build_feedback(buf, 20, &used, 1, NULL, 0, 2, NULL, 0, 1, -1),
                 MC_E_BUFFER);
    CHECK(used == 0);
}

/* ---- BYE: RR + SDES + BYE ---------------------------------------------------------------- */

static void test_bye_round_trip(void)
{
    uint8_t buf[512];
    uint32_t ssrcs[3] = {0x11111111, 0x22222222, 0x33333333};
    size_t used = 0;
    const char *reason = "session closed";
    CHECK_STATUS(mc_rtcp_build_bye(buf, sizeof buf, &used, ssrcs, 3, (const uint8_t *)"me", 2,
                                   (const uint8_t *)reason, (uint32_t)strlen(reason)), MC_OK);
    uint32_t cursor = 0, index = 0;
    mc_rtcp_packet p;
    while (mc_rtcp_next(buf, used, &cursor, &p) == MC_OK) {
        const uint8_t *d = buf + p.offset;
        if (index == 0) {
            uint32_t s = 0, count = 0;
            mc_rtcp_report_block b;
            CHECK(p.packet_type == MC_RTCP_RR);
            CHECK_STATUS(mc_rtcp_parse_rr(d, p.length, &s, &b, 1, &count), MC_OK);
            CHECK(s == ssrcs[0] && count == 0);
        } else if (index == 1) {
            CHECK(p.packet_type == MC_RTCP_SDES);
            check_cname(d, p.length, ssrcs[0], "me");
        } else {
            uint32_t out[8], count = 0, ro = 0, rl = 0;
            CHECK(p.packet_type == MC_RTCP_BYE && index == 2);
            CHECK_STATUS(mc_rtcp_parse_bye(d, p.length, out, 8, &count, &ro, &rl), MC_OK);
            CHECK(count == 3 && out[0] == ssrcs[0] && out[1] == ssrcs[1] && out[2] == ssrcs[2]);
            CHECK(rl == strlen(reason) && memcmp(d + ro, reason, rl) == 0);
        }
        index++;
    }
    CHECK(index == 3 && cursor == used);
    used = 0;
    CHECK_STATUS(mc_rtcp_build_bye(buf, sizeof buf, &used, ssrcs, 0, NULL, 0, NULL, 0),
                 MC_E_INVAL);
    CHECK_STATUS(mc_rtcp_build_bye(buf, 30, &used, ssrcs, 3, (const uint8_t *)"me", 2, NULL, 0),
                 MC_E_BUFFER);
    CHECK(used == 0);
}

/* APP (RFC 3550 6.7): the engine's RR + APP compound parsed back, and the
 * writer's refusals (subtype, data not whole words). */
static void test_app_round_trip(void)
{
    uint8_t buf[256], data[16];
    for (uint32_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7);
    size_t used = 0;
    CHECK_STATUS(mc_rtcp_build_app(buf, sizeof buf, &used, 0xA0A0A0A0u, (const uint8_t *)"MBVS",
                                   5, data, 16), MC_OK);
    CHECK(used == 8 + 12 + 16);
    uint32_t problem = 99;
    CHECK_STATUS(mc_rtcp_check_compound(buf, used, &problem), MC_OK);
    CHECK(problem == MC_RTCP_VALID);
    uint32_t cursor = 0;
    mc_rtcp_packet p;
    CHECK_STATUS(mc_rtcp_next(buf, used, &cursor, &p), MC_OK);
    CHECK(p.packet_type == MC_RTCP_RR && p.length == 8);
    CHECK_STATUS(mc_rtcp_next(buf, used, &cursor, &p), MC_OK);
    CHECK(p.packet_type == MC_RTCP_APP && p.count == 5);
    uint32_t ssrc = 0, subtype = 0, off = 0, len = 0;
    uint8_t name[4];
    CHECK_STATUS(mc_rtcp_parse_app(buf + p.offset, p.length, &ssrc, name, &subtype, &off, &len),
                 MC_OK);
    CHECK(ssrc == 0xA0A0A0A0u && memcmp(name, "MBVS", 4) == 0 && subtype == 5);
    CHECK(len == 16 && memcmp(buf + p.offset + off, data, 16) == 0);
    used = 0;
    CHECK_STATUS(mc_rtcp_write_app(buf, sizeof buf, &used, 1, (const uint8_t *)"MBVS", 32, NULL, 0),
                 MC_E_INVAL);
    CHECK_STATUS(mc_rtcp_write_app(buf, sizeof buf, &used, 1, (const uint8_t *)"MBVS", 0, data, 6),
                 MC_E_INVAL);
    CHECK_STATUS(mc_rtcp_write_app(buf, 20, &used, 1, (const uint8_t *)"MBVS", 0, data, 16),
                 MC_E_BUFFER);
    CHECK(used == 0);
}

/* Whole-compound validity (RFC 3550 A.2, RFC 5506): each failure class, and
 * that a valid SR ahead of a broken packet does not make the compound valid. */
static void test_check_compound(void)
{
    uint8_t buf[256];
    size_t used = 0;
    mc_rtcp_sender_info si = {7, 0x1111222233334444ULL, 9, 1, 100};
    CHECK_STATUS(mc_rtcp_write_sr(buf, sizeof buf, &used, &si, NULL, 0), MC_OK);
    size_t sr_end = used;
    CHECK_STATUS(mc_rtcp_write_pli(buf, sizeof buf, &used, 7, 8), MC_OK);
    uint32_t problem;
    CHECK_STATUS(mc_rtcp_check_compound(buf, used, &problem), MC_OK);
    /* reduced size (RFC 5506): a lone PLI is valid, a lone SDES is not */
    CHECK_STATUS(mc_rtcp_check_compound(buf + sr_end, used - sr_end, &problem), MC_OK);
    size_t sdes = 0;
    uint8_t lone[64];
    CHECK_STATUS(mc_rtcp_write_sdes_cname(lone, sizeof lone, &sdes, 7, (const uint8_t *)"x", 1),
                 MC_OK);
    CHECK_STATUS(mc_rtcp_check_compound(lone, sdes, &problem), MC_E_MALFORMED);
    CHECK(problem == MC_RTCP_BAD_FIRST);
    /* a length past the end, and a total that is not whole words */
    buf[sr_end + 3] = 9;
    CHECK_STATUS(mc_rtcp_check_compound(buf, used, &problem), MC_E_MALFORMED);
    CHECK(problem == MC_RTCP_BAD_LENGTH);
    buf[sr_end + 3] = 2;
    CHECK_STATUS(mc_rtcp_check_compound(buf, used - 2, &problem), MC_E_MALFORMED);
    CHECK(problem == MC_RTCP_BAD_LENGTH);
    /* version 1 in the second packet */
    buf[sr_end] = (uint8_t)((buf[sr_end] & 0x3F) | 0x40);
    CHECK_STATUS(mc_rtcp_check_compound(buf, used, &problem), MC_E_MALFORMED);
    CHECK(problem == MC_RTCP_BAD_VERSION);
    buf[sr_end] = (uint8_t)((buf[sr_end] & 0x3F) | 0x80);
    /* padding on the first of two packets; then a zero count on the last */
    buf[0] |= 0x20;
    CHECK_STATUS(mc_rtcp_check_compound(buf, used, &problem), MC_E_MALFORMED);
    CHECK(problem == MC_RTCP_BAD_PADDING);
    buf[0] &= (uint8_t)~0x20;
    buf[sr_end] |= 0x20;
    buf[used - 1] = 0;
    CHECK_STATUS(mc_rtcp_check_compound(buf, used, &problem), MC_E_MALFORMED);
    CHECK(problem == MC_RTCP_BAD_PADDING);
    buf[used - 1] = 9; /* more than the body */
    CHECK_STATUS(mc_rtcp_check_compound(buf, used, &problem), MC_E_MALFORMED);
    CHECK(problem == MC_RTCP_BAD_PADDING);
    buf[sr_end] &= (uint8_t)~0x20;
    /* an SR whose report count runs past its length, behind a valid RR */
    used = 0;
    CHECK_STATUS(mc_rtcp_write_rr(buf, sizeof buf, &used, 7, NULL, 0), MC_OK);
    size_t sr_at = used;
    CHECK_STATUS(mc_rtcp_write_sr(buf, sizeof buf, &used, &si, NULL, 0), MC_OK);
    buf[sr_at] = (uint8_t)(0x80 | 2);
    CHECK_STATUS(mc_rtcp_check_compound(buf, used, &problem), MC_E_MALFORMED);
    CHECK(problem == MC_RTCP_BAD_PACKET);
    /* unknown types (XR, 207) are skipped, not fatal */
    buf[sr_at] = 0x80;
    buf[sr_at + 1] = 207;
    CHECK_STATUS(mc_rtcp_check_compound(buf, used, &problem), MC_OK);
}

/* ---- transmission timer ------------------------------------------------------------------- */

#define E_MINUS_1_5 1.21828182845904523536

static void test_timer_distribution(void)
{
    /* 5 s minimum (tmin 0), 2 members: Td is the minimum */
    mc_rtcp_timer t;
    mc_rtcp_timer_init(&t, 0, 8000.0, 0, 0, 42);
    CHECK(fabs(t.tmin_s - 5.0) < 1e-9);
    CHECK(fabs(t.rtcp_bw - 400.0) < 1e-9);
    /* initial: half the minimum, randomised and compensated */
    CHECK(t.tn_ns >= (int64_t)(2.5 * 0.5 / E_MINUS_1_5 * 1e9) - 1);
    CHECK(t.tn_ns <= (int64_t)(2.5 * 1.5 / E_MINUS_1_5 * 1e9) + 1);
    CHECK(fabs(mc_rtcp_timer_td_s(&t) - 2.5) < 1e-9);
    /* after the first report: the full minimum */
    mc_rtcp_timer_members(&t, 0, 2, 2, 1);
    mc_rtcp_timer_sent(&t, 0, 100);
    CHECK(t.initial == 0 && fabs(mc_rtcp_timer_td_s(&t) - 5.0) < 1e-9);
    /* distribution of T = Td * U[0.5, 1.5] / (e - 3/2) with a seeded generator:
     * every draw in range, mean and spread of a uniform, both halves used */
    const int n = 20000;
    double sum = 0, sum2 = 0, lo = 1e18, hi = 0;
    int below = 0;
    for (int i = 0; i < n; i++) {
        double f = (double)mc_rtcp_timer_draw_ns(&t) / 1e9 * E_MINUS_1_5 / 5.0;
        sum += f;
        sum2 += f * f;
        lo = f < lo ? f : lo;
        hi = f > hi ? f : hi;
        below += f < 1.0;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    CHECK(lo >= 0.5 - 1e-9 && hi <= 1.5 + 1e-9);
    CHECK(lo < 0.51 && hi > 1.49);
    CHECK(fabs(mean - 1.0) < 0.01);
    CHECK(fabs(var - 1.0 / 12.0) < 0.005); /* uniform over a width of 1 */
    CHECK(below > n * 0.47 && below < n * 0.53);
    /* the same seed gives the same draws */
    mc_rtcp_timer a, b;
    mc_rtcp_timer_init(&a, 0, 8000.0, 0, 0, 7);
    mc_rtcp_timer_init(&b, 0, 8000.0, 0, 0, 7);
    CHECK(a.tn_ns == b.tn_ns && mc_rtcp_timer_draw_ns(&a) == mc_rtcp_timer_draw_ns(&b));
}

static void test_timer_minimums_and_bandwidth(void)
{
    mc_rtcp_timer t;
    /* configured minimum replaces 5 s */
    mc_rtcp_timer_init(&t, 0, 8000.0, 200000000, 0, 1);
    CHECK(fabs(t.tmin_s - 0.2) < 1e-9);
    /* 6.2 reduced minimum: 360 / kbit/s = 0.36 s at 1 Mbit/s */
    mc_rtcp_timer_init(&t, 0, 125000.0, 0, 1, 1);
    CHECK(fabs(t.tmin_s - 0.36) < 1e-9);
    /* ...not used when larger than the configured minimum */
    mc_rtcp_timer_init(&t, 0, 8000.0, 1000000000, 1, 1);
    CHECK(fabs(t.tmin_s - 1.0) < 1e-9);
    /* bandwidth-bound: 1000 members, 10 senders, 1000 B/s RTCP, 100-byte reports */
    mc_rtcp_timer_init(&t, 0, 20000.0, 0, 0, 1);
    t.initial = 0;
    t.avg_rtcp_size = 100.0;
    mc_rtcp_timer_members(&t, 0, 1000, 10, 0);
    /* receivers share 75%: 990 * 100 / 750 */
    CHECK(fabs(mc_rtcp_timer_td_s(&t) - 990.0 * 100.0 / 750.0) < 1e-6);
    mc_rtcp_timer_members(&t, 0, 1000, 10, 1);
    /* senders share 25%: 10 * 100 / 250 = 4 s -> the 5 s minimum */
    CHECK(fabs(mc_rtcp_timer_td_s(&t) - 5.0) < 1e-9);
    /* more than a quarter senders: everyone shares all of it */
    mc_rtcp_timer_members(&t, 0, 1000, 500, 1);
    CHECK(fabs(mc_rtcp_timer_td_s(&t) - 1000.0 * 100.0 / 1000.0) < 1e-6);
    /* avg_rtcp_size: 1/16 of each packet (+28 bytes UDP/IP) */
    double before = t.avg_rtcp_size;
    mc_rtcp_timer_sent(&t, 0, 372);
    CHECK(fabs(t.avg_rtcp_size - (before * 15.0 / 16.0 + 400.0 / 16.0)) < 1e-9);
}

static void test_timer_reconsideration(void)
{
    const int64_t S = 1000000000;
    mc_rtcp_timer t;
    /* steady state, 2 members: reports go out at every expiry with a mean
     * interval of Td / (e - 3/2) (no reconsideration effect when nothing
     * changes, apart from draws shorter than tn - tp) */
    mc_rtcp_timer_init(&t, 0, 8000.0, 0, 0, 99);
    mc_rtcp_timer_members(&t, 0, 2, 2, 1);
    int64_t now = 0, last = -1, sum = 0;
    int sent = 0, postponed = 0;
    while (sent < 2000) {
        now = t.tn_ns;
        if (mc_rtcp_timer_expired(&t, now)) {
            if (last >= 0)
                sum += now - last;
            last = now;
            sent++;
            mc_rtcp_timer_sent(&t, now, 72);
        } else {
            postponed++;
            CHECK(t.tn_ns > now); /* moved later, never earlier */
        }
    }
    double mean = (double)sum / (sent - 1) / 1e9;
    /* reconsideration at expiry resends only when the fresh draw allows it,
     * which lengthens intervals: the e - 3/2 divisor brings the mean back
     * towards Td (5 s) */
    CHECK(postponed > 0);
    CHECK(mean > 4.75 && mean < 5.25); /* the e - 3/2 compensation at work */
    printf("test_rtcp: steady state, 2 members, Td 5 s: mean interval %.3f s over %d reports, "
           "%d expiries reconsidered\n", mean, sent, postponed);

    /* forward reconsideration: many members join (low RTCP bandwidth), the
     * timer expires, the recomputed interval is longer -> not sent, tn moved
     * to tp + T */
    mc_rtcp_timer_init(&t, 0, 8000.0, 0, 0, 5);
    mc_rtcp_timer_members(&t, 0, 2, 2, 1);
    mc_rtcp_timer_sent(&t, 0, 72);
    int64_t tn = t.tn_ns;
    mc_rtcp_timer_members(&t, tn, 500, 2, 0); /* 498 receivers, 300 B/s, 100 B -> 166 s */
    CHECK(mc_rtcp_timer_td_s(&t) > 100.0);
    CHECK(mc_rtcp_timer_expired(&t, tn) == 0);
    CHECK(t.tn_ns > tn + 30 * S);
    CHECK(t.tp_ns == 0);
    /* before tn nothing happens */
    int64_t tn2 = t.tn_ns;
    CHECK(mc_rtcp_timer_expired(&t, tn2 - 1) == 0 && t.tn_ns == tn2);

    /* reverse reconsideration (6.3.4): members drop from 500 to 100 at tc:
     * tn = tc + 100/500 (tn - tc), tp = tc - 100/500 (tc - tp) */
    t.pmembers = 500;
    int64_t tc = 10 * S, tn_before = t.tn_ns, tp_before = t.tp_ns;
    mc_rtcp_timer_members(&t, tc, 100, 2, 0);
    CHECK(llabs(t.tn_ns - (tc + (tn_before - tc) / 5)) <= 1);
    CHECK(llabs(t.tp_ns - (tc - (tc - tp_before) / 5)) <= 1);
    CHECK(t.pmembers == 100 && t.members == 100);
    /* growth does not move the timer (forward reconsideration is at expiry) */
    int64_t tn3 = t.tn_ns;
    mc_rtcp_timer_members(&t, tc, 300, 2, 0);
    CHECK(t.tn_ns == tn3 && t.pmembers == 100);

    /* BYE at once below 50 members (6.3.7 simplified) */
    mc_rtcp_timer_members(&t, tc, 49, 2, 0);
    CHECK(mc_rtcp_timer_bye_now(&t) == 1);
    mc_rtcp_timer_members(&t, tc, 50, 2, 0);
    CHECK(mc_rtcp_timer_bye_now(&t) == 0);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 2000;
    test_report_round_trip(rounds);
    test_feedback_round_trip(rounds);
    test_bye_round_trip();
    test_app_round_trip();
    test_check_compound();
    test_timer_distribution();
    test_timer_minimums_and_bandwidth();
    test_timer_reconsideration();
    if (failures) {
        fprintf(stderr, "test_rtcp: %d failures\n", failures);
        return 1;
    }
    printf("test_rtcp: ok (%d rounds)\n", rounds);
    return 0;
}

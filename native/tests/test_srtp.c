/*
 * test_srtp.c — C-level tests of srtp.c, built with -Werror and run under
 * ASan+UBSan in `make native-check`: the RFC 7714 16.1 known answer, long
 * protect/unprotect runs for every profile across the 65535 -> 0 wrap with
 * varied header shapes (CSRCs, extensions), reordering, duplicates, tampered
 * and truncated copies, SRTCP round trips, and the counters.
 * (The RFC vectors and the libsrtp cross-checks live in tests/mediacore.)
 *
 * Usage: test_srtp [packets per profile]   (default 70,000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mediacore.h"
#include "check.h"
#include "srtp.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static size_t hex(const char *s, uint8_t *out)
{
    size_t n = 0;
    while (s[0] && s[1]) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1)
            break;
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void test_rfc7714_16_1(void)
{
    uint8_t key[28], pkt[128], want[128];
    size_t n, w, out;
    mc_srtp *tx, *rx;
    hex("000102030405060708090a0b0c0d0e0f517569642070726f2071756f", key);
    n = hex("8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e697320646976"
            "69736120696e207061727465732074726573", pkt);
    w = hex("8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd5"
            "0d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce", want);
    CHECK_STATUS(mc_srtp_create(MC_SRTP_AEAD_AES_128_GCM, key, 28, 0, 0,
                                MC_SRTP_OUTBOUND | MC_SRTP_SESSION_KEYS, &tx), MC_OK);
    CHECK_STATUS(mc_srtp_create(MC_SRTP_AEAD_AES_128_GCM, key, 28, 0, 0, MC_SRTP_SESSION_KEYS, &rx),
                 MC_OK);
    CHECK_STATUS(mc_srtp_protect(tx, pkt, n, sizeof pkt, &out), MC_OK);
    CHECK(out == w && memcmp(pkt, want, w) == 0);
    CHECK_STATUS(mc_srtp_unprotect(rx, pkt, out, &out), MC_OK);
    CHECK(out == n && memcmp(pkt, "\x80\x40\xf1\x7b", 4) == 0 && memcmp(pkt + 12, "Gallia", 6) == 0);
    mc_srtp_free(tx);
    mc_srtp_free(rx);
}

/* Build an RTP packet for `seq`: random CSRC count, extension, payload. */
static size_t make_rtp(uint8_t *p, uint16_t seq, uint32_t ssrc)
{
    uint32_t cc = rnd() % 4, ext_words = rnd() % 3, payload = rnd() % 300, i;
    int ext = (rnd() & 1) != 0;
    size_t n = 12;
    p[0] = (uint8_t)(0x80 | cc | (ext ? 0x10 : 0));
    p[1] = (uint8_t)(111 | ((rnd() & 1) << 7));
    p[2] = (uint8_t)(seq >> 8);
    p[3] = (uint8_t)seq;
    for (i = 0; i < 4; i++)
        p[4 + i] = (uint8_t)rnd();
    p[8] = (uint8_t)(ssrc >> 24);
    p[9] = (uint8_t)(ssrc >> 16);
    p[10] = (uint8_t)(ssrc >> 8);
    p[11] = (uint8_t)ssrc;
    for (i = 0; i < 4 * cc; i++)
        p[n++] = (uint8_t)rnd();
    if (ext) {
        p[n++] = 0xBE;
        p[n++] = 0xDE;
        p[n++] = 0;
        p[n++] = (uint8_t)ext_words;
        for (i = 0; i < 4 * ext_words; i++)
            p[n++] = (uint8_t)rnd();
    }
    for (i = 0; i < payload; i++)
        p[n++] = (uint8_t)rnd();
    return n;
}

static void test_profile(int32_t profile, uint32_t packets)
{
    uint8_t key[44];
    uint8_t plain[512], wire[512 + MC_SRTP_MAX_TRAILER], held[512 + MC_SRTP_MAX_TRAILER];
    uint8_t held_plain[512], scratch[512 + MC_SRTP_MAX_TRAILER];
    size_t held_len = 0, held_plain_len = 0;
    uint32_t held_at = 0;
    uint32_t key_length, rtp_tag, rtcp_tag, i;
    uint64_t ok = 0, replays = 0, auth = 0, malformed = 0, rtcp_ok = 0;
    mc_srtp *tx, *rx;
    mc_srtp_stats st;

    CHECK_STATUS(mc_srtp_profile_info(profile, 0, &key_length, &rtp_tag, &rtcp_tag), MC_OK);
    for (i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)rnd();
    CHECK_STATUS(mc_srtp_create(profile, key, key_length, 0, 0, MC_SRTP_OUTBOUND, &tx), MC_OK);
    CHECK_STATUS(mc_srtp_create(profile, key, key_length, 256, 0, 0, &rx), MC_OK);

    for (i = 0; i < packets; i++) {
        /* two SSRCs take turns; each counts up from 65000 and wraps 65535 -> 0 */
        uint32_t ssrc = (i & 1) ? 0x11111111u : 0x22222222u;
        size_t n = make_rtp(plain, (uint16_t)(65000u + i / 2), ssrc), out, back, h;
        memcpy(wire, plain, n);
        CHECK_STATUS(mc_srtp_protect(tx, wire, n, n + rtp_tag, &out), MC_OK);
        CHECK(out == n + rtp_tag);

        if (i % 13 == 5) { /* a tampered copy first: rejected, state untouched */
            memcpy(scratch, wire, out);
            scratch[rnd() % out] ^= (uint8_t)(1u << (rnd() % 8));
            {
                mc_status s = mc_srtp_unprotect(rx, scratch, out, &back);
                CHECK(s == MC_E_AUTH || s == MC_E_MALFORMED || s == MC_E_REPLAY);
                auth += s == MC_E_AUTH;
                malformed += s == MC_E_MALFORMED;
                replays += s == MC_E_REPLAY;
            }
        }
        if (i % 17 == 3) { /* a truncated copy */
            size_t cut = rnd() % out;
            mc_status s;
            memcpy(scratch, wire, cut);
            s = mc_srtp_unprotect(rx, scratch, cut, &back);
            CHECK(s == MC_E_AUTH || s == MC_E_MALFORMED);
            auth += s == MC_E_AUTH;
            malformed += s == MC_E_MALFORMED;
        }
        if (i % 7 == 0 && held_len == 0) { /* deliver after the next one of its SSRC */
            memcpy(held, wire, out);
            held_len = out;
            held_at = i;
            memcpy(held_plain, plain, n);
            held_plain_len = n;
            continue;
        }
        CHECK_STATUS(mc_srtp_unprotect_rtp(rx, wire, out, &back, &h), MC_OK);
        CHECK(back == n && memcmp(wire, plain, n) == 0 && h <= back);
        ok++;
        if (held_len && i == held_at + 2) {
            CHECK_STATUS(mc_srtp_unprotect(rx, held, held_len, &back), MC_OK);
            CHECK(back == held_plain_len && memcmp(held, held_plain, back) == 0);
            ok++;
            held_len = 0;
        }
        if (i % 11 == 0) { /* a duplicate of this packet: replay */
            memcpy(wire, plain, n);
            CHECK_STATUS(mc_srtp_protect(tx, wire, n, sizeof wire, &out), MC_OK);
            CHECK_STATUS(mc_srtp_unprotect(rx, wire, out, &back), MC_E_REPLAY);
            replays++;
        }
        if (i % 50 == 0) { /* SRTCP both ways through the same contexts */
            size_t rn = 8 + 4 * (rnd() % 40), j, rout;
            uint8_t rtcp[512];
            rtcp[0] = 0x80;
            rtcp[1] = 200;
            rtcp[2] = 0;
            rtcp[3] = (uint8_t)(rn / 4 - 1);
            memcpy(rtcp + 4, plain + 8, 4);
            for (j = 8; j < rn; j++)
                rtcp[j] = (uint8_t)rnd();
            memcpy(scratch, rtcp, rn);
            CHECK_STATUS(mc_srtcp_protect(tx, scratch, rn, rn + 4 + rtcp_tag, &rout), MC_OK);
            CHECK(rout == rn + 4 + rtcp_tag);
            CHECK_STATUS(mc_srtcp_unprotect(rx, scratch, rout, &back), MC_OK);
            CHECK(back == rn && memcmp(scratch, rtcp, rn) == 0);
            rtcp_ok++;
        }
    }
    CHECK_STATUS(mc_srtp_get_stats(rx, &st), MC_OK);
    CHECK(st.rtp_packets == ok);
    CHECK(st.rtcp_packets == rtcp_ok);
    CHECK(st.replays == replays);
    CHECK(st.auth_failures == auth);
    CHECK(st.malformed == malformed);
    CHECK(st.streams == 2);
    CHECK(st.replay_window == 256);
    mc_srtp_free(tx);
    mc_srtp_free(rx);
}

static void test_garbage(void)
{
    static const int32_t profiles[4] = {MC_SRTP_AES_CM_128_HMAC_SHA1_80,
                                        MC_SRTP_AES_CM_128_HMAC_SHA1_32, MC_SRTP_AEAD_AES_128_GCM,
                                        MC_SRTP_AEAD_AES_256_GCM};
    uint8_t key[44] = {1, 2, 3};
    int p;
    for (p = 0; p < 4; p++) {
        uint32_t key_length, i;
        uint64_t accepted = 0;
        mc_srtp *rx;
        mc_srtp_stats st;
        CHECK_STATUS(mc_srtp_profile_info(profiles[p], 0, &key_length, NULL, NULL), MC_OK);
        CHECK_STATUS(mc_srtp_create(profiles[p], key, key_length, 0, 4, 0, &rx), MC_OK);
        for (i = 0; i < 20000; i++) {
            size_t n = rnd() % 200, j, out;
            uint8_t *buf = (uint8_t *)malloc(n ? n : 1); /* exact size: ASan sees overreads */
            for (j = 0; j < n; j++)
                buf[j] = (uint8_t)rnd();
            if (n && (i & 1))
                buf[0] = (uint8_t)(0x80 | (buf[0] & 0x3F));
            accepted += (i & 2) ? mc_srtcp_unprotect(rx, buf, n, &out) == MC_OK
                                : mc_srtp_unprotect(rx, buf, n, &out) == MC_OK;
            free(buf);
        }
        CHECK(accepted == 0);
        CHECK_STATUS(mc_srtp_get_stats(rx, &st), MC_OK);
        CHECK(st.auth_failures + st.malformed + st.streams_refused + st.replays == 20000);
        CHECK(st.streams == 0);
        mc_srtp_free(rx);
    }
}

int main(int argc, char **argv)
{
    uint32_t packets = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 70000u;
    test_rfc7714_16_1();
    test_profile(MC_SRTP_AES_CM_128_HMAC_SHA1_80, packets);
    test_profile(MC_SRTP_AES_CM_128_HMAC_SHA1_32, packets);
    test_profile(MC_SRTP_AEAD_AES_128_GCM, packets);
    test_profile(MC_SRTP_AEAD_AES_256_GCM, packets);
    test_garbage();
    if (failures) {
        fprintf(stderr, "test_srtp: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_srtp: ok\n");
    return 0;
}

/*
 * srtp_fuzz.c — libFuzzer target for the SRTP/SRTCP transform (srtp.c).
 *
 * Input: one selector byte, then chunks of {u8 length, bytes}. The selector
 * picks the profile (bits 0-1), the mode (bits 2-3), the _32 SRTCP tag
 * variant (bit 4) and a 64- or 128-packet replay window (bit 5). Every input
 * gets fresh contexts, so a run is reproducible from its input alone; chunks
 * of one input share them, so stream state (ROC, replay bitmaps, the stream
 * table) evolves across chunks.
 *   mode 0: unprotect each chunk as SRTP      (untrusted bytes)
 *   mode 1: unprotect each chunk as SRTCP     (untrusted bytes)
 *   mode 2: protect each chunk as RTP; unprotect a copy with one bit flipped
 *           if the chunk asks for it (must fail), then the packet itself
 *           (must come back byte-identical, or be refused as a replay or for
 *           the stream limit)
 *   mode 3: the same round trip for RTCP
 * Each chunk sits in a malloc'd buffer of exactly its size (plus the trailer
 * room protect is told about), so ASan sees any read or write past it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mediacore.h"
#include "srtp.h"

static const int32_t fuzz_profiles[4] = {MC_SRTP_AES_CM_128_HMAC_SHA1_80,
                                         MC_SRTP_AES_CM_128_HMAC_SHA1_32,
                                         MC_SRTP_AEAD_AES_128_GCM, MC_SRTP_AEAD_AES_256_GCM};

static void check(int condition)
{
    if (!condition)
        abort();
}

static int acceptable_failure(mc_status st)
{
    return st == MC_E_REPLAY || st == MC_E_FULL;
}

/* short_tag: a 4-byte tag can collide (2^-32 per try), so a flipped packet
 * is only required to fail when the tag is at least 10 bytes. */
static mc_status unprotect(mc_srtp *rx, uint8_t *buf, size_t n, size_t *out, int rtcp)
{
    return rtcp ? mc_srtcp_unprotect(rx, buf, n, out) : mc_srtp_unprotect(rx, buf, n, out);
}

/* The receiver sees every packet the sender protects, in order, so both keep
 * the same ROC and highest index: an untouched packet must then come back
 * byte-identical unless it is a replay, too old, or over the stream limit.
 * A copy with one bit flipped goes first and must not authenticate (unless
 * the tag is only 4 bytes: those collide with probability 2^-32). */
static void round_trip(mc_srtp *tx, mc_srtp *rx, const uint8_t *chunk, size_t n, int rtcp,
                       uint8_t flip, int short_tag)
{
    size_t cap = n + MC_SRTP_MAX_TRAILER, out = 0, back = 0;
    uint8_t *buf = (uint8_t *)malloc(cap), *copy = NULL;
    mc_status st;
    check(buf != NULL);
    memcpy(buf, chunk, n);
    st = rtcp ? mc_srtcp_protect(tx, buf, n, cap, &out) : mc_srtp_protect(tx, buf, n, cap, &out);
    if (st == MC_OK) {
        check(out > n && out <= cap);
        if (flip) {
            copy = (uint8_t *)malloc(out);
            check(copy != NULL);
            memcpy(copy, buf, out);
            copy[flip % out] ^= (uint8_t)(1u << (flip & 7));
            st = unprotect(rx, copy, out, &back, rtcp);
            check(st != MC_OK || short_tag);
            free(copy);
        }
        st = unprotect(rx, buf, out, &back, rtcp);
        check(st == MC_OK || acceptable_failure(st));
        if (st == MC_OK)
            check(back == n && memcmp(buf, chunk, n) == 0);
    } else {
        check(st == MC_E_MALFORMED || st == MC_E_FULL || st == MC_E_REPLAY);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t key[44];
    size_t i, off = 1;
    uint8_t sel;
    int32_t profile;
    uint32_t flags, key_length = 0, window, rtp_tag = 0, rtcp_tag = 0;
    int mode;
    mc_srtp *tx = NULL, *rx = NULL;

    if (size < 1)
        return 0;
    sel = data[0];
    profile = fuzz_profiles[sel & 3];
    mode = (sel >> 2) & 3;
    flags = (profile == MC_SRTP_AES_CM_128_HMAC_SHA1_32 && (sel & 0x10)) ? MC_SRTP_SRTCP_TAG_32 : 0;
    window = (sel & 0x20) ? 128 : 64;
    for (i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(i * 37 + 11);
    check(mc_srtp_profile_info(profile, flags, &key_length, &rtp_tag, &rtcp_tag) == MC_OK);
    check(mc_srtp_create(profile, key, key_length, window, 4, flags, &rx) == MC_OK);
    check(mc_srtp_create(profile, key, key_length, 0, 4, flags | MC_SRTP_OUTBOUND, &tx) == MC_OK);

    while (off < size) {
        size_t n = data[off++];
        uint8_t flip = 0;
        if (mode >= 2 && off < size)
            flip = data[off++];
        if (n > size - off)
            n = size - off;
        if (mode < 2) {
            uint8_t *buf = (uint8_t *)malloc(n ? n : 1);
            size_t out = 0, header = 0;
            mc_status st;
            check(buf != NULL);
            memcpy(buf, data + off, n);
            if (mode == 0) {
                st = mc_srtp_unprotect_rtp(rx, buf, n, &out, &header);
                check(st != MC_OK || (header <= out && out < n));
            } else {
                st = mc_srtcp_unprotect(rx, buf, n, &out);
                check(st != MC_OK || out < n);
            }
            free(buf);
        } else {
            round_trip(tx, rx, data + off, n, mode == 3, flip, (mode == 3 ? rtcp_tag : rtp_tag) < 10);
        }
        off += n;
    }
    {
        mc_srtp_stats s;
        check(mc_srtp_get_stats(rx, &s) == MC_OK);
        check(s.streams <= 4);
    }
    mc_srtp_free(tx);
    mc_srtp_free(rx);
    return 0;
}

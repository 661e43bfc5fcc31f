/*
 * srtp_floor.c — mc_srtp_bench_crypto_floor (contract in testing.h): the
 * bare OpenSSL work of an SRTP unprotect on the keys an mc_srtp context set
 * up, the floor benchmarks/bench_srtp.py compares the transform with. It
 * needs that context's keyed cipher and HMAC pad states, which are private
 * to srtp.c, so it compiles srtp.c into itself instead of widening srtp.h
 * for a benchmark: whatever links this file links no other srtp.c (the
 * _mediacore_testing module builds the core without it). Not part of the
 * shipped library.
 */
#include "../../src/srtp.c"
#include "testing.h"

/* The floor's route: EVP AES-CTR with an IV reset (srtp.c's own ctr_xor
 * takes a precomputed ECB route for short payloads). */
static int ctr_xor_evp(EVP_CIPHER_CTX *c, const uint8_t iv[16], uint8_t *data, size_t length)
{
    int n = 0;
    if (EVP_CipherInit_ex(c, NULL, NULL, NULL, iv, -1) != 1)
        return 0;
    if (length == 0)
        return 1;
    return EVP_CipherUpdate(c, data, &n, data, (int)length) == 1;
}


#define BENCH_SCRATCH 2048

MC_API mc_status mc_srtp_bench_crypto_floor(int32_t profile, const uint8_t *key_salt,
                                            size_t key_salt_length, const uint8_t *packets,
                                            size_t stride, const uint32_t *lengths,
                                            uint32_t count_, uint32_t iterations,
                                            int64_t *elapsed_ns)
{
    MC_ALIGNED(64) uint8_t scratch[BENCH_SCRATCH];
    volatile uint32_t sink = 0;
    uint32_t it, i;
    mc_srtp *ctx;
    mc_status st;
    if (!packets || !lengths || !elapsed_ns || stride > BENCH_SCRATCH)
        return MC_E_INVAL;
    /* only for its keys: cipher contexts keyed once, HMAC pad states */
    st = mc_srtp_create(profile, key_salt, key_salt_length, 0, 0, 0, &ctx);
    if (st != MC_OK)
        return st;
    for (it = 0; it < iterations; it++) {
        int64_t t0 = mc_now_ns();
        for (i = 0; i < count_; i++) {
            uint32_t n = lengths[i], tag = ctx->rtp.tag_length;
            if (n > stride || n < 12 + tag) {
                mc_srtp_free(ctx);
                return MC_E_INVAL;
            }
            memcpy(scratch, packets + (size_t)i * stride, n);
            if (ctx->aead) {
                uint8_t iv[12];
                memcpy(iv, ctx->rtp.salt, 12);
                iv[11] ^= scratch[3];
                iv[10] ^= scratch[2];
                sink += (uint32_t)gcm_run(ctx->rtp.cipher, iv, scratch, 12, NULL, 0, scratch + 12,
                                          n - tag - 12, scratch + n - tag, 0);
            } else {
                uint8_t iv[16], mac[SHA1_LEN];
                static const uint8_t roc[4] = {0, 0, 0, 0};
                hmac_compute(&ctx->rtp.auth, scratch, n - tag, roc, 4, mac);
                sink += (uint32_t)CRYPTO_memcmp(mac, scratch + n - tag, tag);
                memcpy(iv, ctx->rtp.salt, 14);
                iv[14] = iv[15] = 0;
                iv[13] ^= scratch[3];
                iv[12] ^= scratch[2];
                sink += (uint32_t)ctr_xor_evp(ctx->rtp.cipher, iv, scratch + 12, n - tag - 12);
            }
        }
        elapsed_ns[it] = mc_now_ns() - t0;
    }
    mc_srtp_free(ctx);
    (void)sink;
    return MC_OK;
}

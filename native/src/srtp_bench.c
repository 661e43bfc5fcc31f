/*
 * srtp_bench.c — mc_srtp_bench_unprotect (contract in mediacore.h, region
 * `srtp`): the receive-path subject of benchmarks/bench_srtp.py, looped in C so
 * that no cffi crossing is timed. Per packet: copy the datagram to a scratch
 * buffer, mc_srtp_unprotect, then mc_rtp_parse as the engine's receive path
 * does. Kept apart from srtp.c so the transform links without the RTP parser.
 */
#include <string.h>

#include "compat.h"
#include "mediacore.h"

#define BENCH_SCRATCH 2048

MC_API mc_status mc_srtp_bench_unprotect(int32_t profile, const uint8_t *key_salt,
                                         size_t key_salt_length, const uint8_t *packets,
                                         size_t stride, const uint32_t *lengths, uint32_t count,
                                         uint32_t iterations, int64_t *elapsed_ns)
{
    MC_ALIGNED(64) uint8_t scratch[BENCH_SCRATCH];
    volatile uint32_t sink = 0;
    uint32_t it, i;
    if (!packets || !lengths || !elapsed_ns || stride > BENCH_SCRATCH)
        return MC_E_INVAL;
    for (it = 0; it < iterations; it++) {
        mc_srtp *ctx;
        int64_t t0;
        mc_status st = mc_srtp_create(profile, key_salt, key_salt_length, 0, 0, 0, &ctx);
        if (st != MC_OK)
            return st;
        t0 = mc_now_ns();
        for (i = 0; i < count; i++) {
            size_t n;
            mc_rtp_header h;
            if (lengths[i] > stride) {
                st = MC_E_INVAL;
                break;
            }
            memcpy(scratch, packets + (size_t)i * stride, lengths[i]);
            st = mc_srtp_unprotect(ctx, scratch, lengths[i], &n);
            if (st == MC_OK)
                st = mc_rtp_parse(scratch, n, &h);
            if (st != MC_OK)
                break;
            sink += h.sequence_number + h.timestamp + h.ssrc + h.payload_type + h.marker +
                    h.payload_offset + h.payload_length;
        }
        elapsed_ns[it] = mc_now_ns() - t0;
        mc_srtp_free(ctx);
        if (st != MC_OK)
            return st;
    }
    (void)sink;
    return MC_OK;
}

/*
 * jitter_bench.c — mc_rtp_bench_parse_jitter (contract in testing.h): parse
 * + jitter-buffer insert + pop per audio packet, looped in C for
 * benchmarks/bench_rtp.py and checked by native/tests/test_rtp.c. Not part
 * of the shipped library; needs only rtp.c and jitter.c.
 */
#include "compat.h"
#include "mediacore.h"
#include "testing.h"

/* The loop a receive thread runs per audio packet: parse, insert, and (one
 * per packet, as the 20 ms clock would) pop. Sequence numbers and timestamps
 * advance across rounds so every round feeds new packets. */
MC_API mc_status mc_rtp_bench_parse_jitter(const uint8_t *packets, const uint32_t *lengths,
                                           uint32_t count, uint32_t rounds, int64_t *elapsed_ns)
{
    if (!packets || !lengths || !elapsed_ns || count == 0)
        return MC_E_INVAL;
    mc_jitter_config cfg = {48000, 20, 40, 200, 64, 1500};
    mc_jitter *jb;
    mc_status st = mc_jitter_new(&cfg, &jb);
    if (st != MC_OK)
        return st;
    uint8_t out[1500];
    mc_jitter_frame frame;
    mc_rtp_header h;
    int64_t clock_ns = 0;
    uint64_t bad = 0;
    int64_t t0 = mc_now_ns();
    for (uint32_t r = 0; r < rounds; r++) {
        size_t off = 0;
        for (uint32_t i = 0; i < count; i++) {
            const uint8_t *p = packets + off;
            off += lengths[i];
            if (mc_rtp_parse(p, lengths[i], &h) != MC_OK) {
                bad++;
                continue;
            }
            uint32_t k = r * count + i;
            clock_ns += 20000000;
            /* the packets carry consecutive numbers; continue them across rounds */
            mc_jitter_insert(jb, clock_ns, (uint16_t)(h.sequence_number - i + k),
                             h.timestamp + (k - i) * 960u, h.marker, h.payload_type, p + h.payload_offset,
                             h.payload_length);
            mc_jitter_pop(jb, clock_ns, out, sizeof out, &frame);
        }
    }
    *elapsed_ns = mc_now_ns() - t0;
    mc_jitter_free(jb);
    return bad ? MC_E_MALFORMED : MC_OK;
}


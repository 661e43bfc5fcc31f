/*
 * rtpstats.h — per-stream receive statistics (RFC 3550 A.1 sequence
 * validation without probation, A.3 loss, A.8 interarrival jitter). The
 * engine embeds `struct mc_rtpstats` in each receive stream and calls
 * mc_rtpstats_init / mc_rtpstats_update from its I/O thread; RR generation
 * calls mc_rtpstats_report_block. Thread role: [owner] (one thread).
 *
 * Simplifications (documented): no probation (MIN_SEQUENTIAL) — packets
 * reach us after SRTP authentication, which already validates the source;
 * a jump of more than MC_RTPSTATS_MAX_DROPOUT is accepted as a restart when
 * the next packet is sequential to it (A.1's bad_seq rule).
 */
#ifndef MC_RTPSTATS_H
#define MC_RTPSTATS_H

#include <stdint.h>

#include "mediacore.h"

#define MC_RTPSTATS_MAX_DROPOUT 3000
#define MC_RTPSTATS_MAX_MISORDER 100
#define MC_RTPSTATS_WINDOW 512 /* duplicate detection window (sequence numbers) */

struct mc_rtpstats {
    uint32_t clock_rate;
    int32_t started;
    uint16_t max_seq;       /* highest sequence number seen */
    uint32_t cycles;        /* shifted count of sequence number cycles (<< 16) */
    uint32_t base_seq;
    uint32_t bad_seq;       /* last 'bad' seq + 1 (A.1) */
    uint64_t received;
    uint64_t bytes;
    uint64_t expected_prior;
    uint64_t received_prior;
    uint64_t duplicates;
    uint64_t reordered;
    uint64_t late;
    /* A.8 jitter: arrival in timestamp units since the first packet;
     * jitter_q4 = J * 16 */
    int64_t first_arrival_ns;
    int64_t prev_arrival;
    uint32_t prev_timestamp;
    int32_t have_prev;
    uint32_t jitter_q4;
    /* duplicate window: bit (ext & (WINDOW-1)) set when ext seen, for ext in
     * (highest - WINDOW, highest] */
    uint64_t seen[MC_RTPSTATS_WINDOW / 64];
    /* last SR for LSR/DLSR */
    uint32_t lsr;
    int64_t lsr_arrival_ns;
    uint8_t last_fraction_lost;
};

void mc_rtpstats_init(struct mc_rtpstats *s, uint32_t clock_rate);
/* Same as the public mc_rtpstats_update; returns MC_OK, MC_DROPPED for a
 * duplicate (still counted in `received`, as A.3 does), or
 * MC_RTPSTATS_PROBATION for the first packet after a jump of more than
 * MC_RTPSTATS_MAX_DROPOUT (A.1 bad_seq: not counted until the next packet
 * follows it). The public function maps PROBATION to MC_DROPPED. */
#define MC_RTPSTATS_PROBATION 2
mc_status mc_rtpstats_on_packet(struct mc_rtpstats *s, int64_t arrival_ns, uint16_t seq,
                                uint32_t timestamp, uint32_t payload_bytes);

#endif /* MC_RTPSTATS_H */

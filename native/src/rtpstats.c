/*
 * rtpstats.c — per-stream receive statistics: RFC 3550 A.1 (sequence
 * tracking, restart after a large jump), A.3 (expected, lost, fraction lost
 * per report interval) and A.8 (interarrival jitter, integer form). See
 * rtpstats.h for the simplifications.
 */
#include <stdlib.h>
#include <string.h>

#include "rtcp.h"
#include "rtpstats.h"
#include "seq.h"

#define WINDOW_MASK (MC_RTPSTATS_WINDOW - 1)

MC_STATIC_ASSERT((MC_RTPSTATS_WINDOW & (MC_RTPSTATS_WINDOW - 1)) == 0,
                 "duplicate window must be a power of two");

static void init_seq(struct mc_rtpstats *s, uint16_t seq)
{
    s->base_seq = seq;
    s->max_seq = seq;
    s->bad_seq = 0x10000u + 1; /* so seq == bad_seq is false */
    s->cycles = 0;
    s->received = 0;
    s->received_prior = 0;
    s->expected_prior = 0;
    memset(s->seen, 0, sizeof s->seen);
}

void mc_rtpstats_init(struct mc_rtpstats *s, uint32_t clock_rate)
{
    memset(s, 0, sizeof *s);
    s->clock_rate = clock_rate;
}

static uint64_t ext_max(const struct mc_rtpstats *s) { return (uint64_t)s->cycles + s->max_seq; }

static int seen_test(const struct mc_rtpstats *s, uint64_t ext)
{
    return (s->seen[(ext & WINDOW_MASK) / 64] >> (ext & 63)) & 1;
}

static void seen_set(struct mc_rtpstats *s, uint64_t ext)
{
    s->seen[(ext & WINDOW_MASK) / 64] |= (uint64_t)1 << (ext & 63);
}

static void seen_clear(struct mc_rtpstats *s, uint64_t ext)
{
    s->seen[(ext & WINDOW_MASK) / 64] &= ~((uint64_t)1 << (ext & 63));
}

/* arrival time in RTP timestamp units since the first packet, without
 * overflow for any realistic session length */
static int64_t arrival_units(const struct mc_rtpstats *s, int64_t arrival_ns)
{
    int64_t dt = arrival_ns - s->first_arrival_ns;
    int64_t sec = dt / 1000000000, rem = dt % 1000000000;
    return sec * (int64_t)s->clock_rate + rem * (int64_t)s->clock_rate / 1000000000;
}

mc_status mc_rtpstats_on_packet(struct mc_rtpstats *s, int64_t arrival_ns, uint16_t seq,
                                uint32_t timestamp, uint32_t payload_bytes)
{
    int duplicate = 0;
    if (!s->started) {
        s->started = 1;
        s->first_arrival_ns = arrival_ns;
        init_seq(s, seq);
        seen_set(s, ext_max(s));
    } else {
        int32_t diff = mc_seq_diff(seq, s->max_seq);
        if (diff > 0 && diff < MC_RTPSTATS_MAX_DROPOUT) {
            /* in order, possibly after a gap: advance, and clear the window
             * slots we pass over */
            uint64_t old = ext_max(s);
            if (seq < s->max_seq)
                s->cycles += 0x10000u; /* wrapped */
            s->max_seq = seq;
            uint64_t now = ext_max(s);
            if (now - old >= MC_RTPSTATS_WINDOW)
                memset(s->seen, 0, sizeof s->seen);
            else
                for (uint64_t e = old + 1; e <= now; e++)
                    seen_clear(s, e);
            seen_set(s, now);
        } else if (diff <= 0 && diff > -MC_RTPSTATS_WINDOW) {
            uint64_t ext = ext_max(s) - (uint64_t)(-(int64_t)diff);
            if (seen_test(s, ext)) {
                duplicate = 1;
                s->duplicates++;
            } else {
                s->reordered++;
                seen_set(s, ext);
            }
        } else if (diff <= -MC_RTPSTATS_WINDOW && diff > -MC_RTPSTATS_MAX_DROPOUT) {
            s->late++; /* too old to tell from a duplicate */
        } else {
            /* a very large jump (A.1): a restart only when the next packet
             * follows it; otherwise the packet is not counted */
            if ((uint32_t)seq != s->bad_seq) {
                s->bad_seq = (uint32_t)(uint16_t)(seq + 1);
                return MC_RTPSTATS_PROBATION;
            }
            init_seq(s, seq);
            seen_set(s, ext_max(s));
            s->have_prev = 0;
        }
    }
    s->received++;
    s->bytes += payload_bytes;
    if (duplicate)
        return MC_DROPPED;

    /* A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si) in timestamp units, taken over
     * consecutive arrivals; J += (|D| - J) / 16, kept as J * 16 in integers
     * exactly as the RFC's code does */
    int64_t arrival = arrival_units(s, arrival_ns);
    if (s->have_prev) {
        int64_t d = (arrival - s->prev_arrival) - mc_ts_diff(timestamp, s->prev_timestamp);
        if (d < 0)
            d = -d;
        if (d > 0x7FFFFFFF)
            d = 0x7FFFFFFF;
        s->jitter_q4 = (uint32_t)((int64_t)s->jitter_q4 + d - (((int64_t)s->jitter_q4 + 8) >> 4));
    }
    s->prev_arrival = arrival;
    s->prev_timestamp = timestamp;
    s->have_prev = 1;
    return MC_OK;
}

static uint64_t expected_count(const struct mc_rtpstats *s)
{
    return ext_max(s) - s->base_seq + 1;
}

/* ---- public API ------------------------------------------------------------ */

MC_API mc_status mc_rtpstats_new(uint32_t clock_rate, mc_rtpstats **out)
{
    if (!out || clock_rate == 0)
        return MC_E_INVAL;
    struct mc_rtpstats *s = (struct mc_rtpstats *)malloc(sizeof *s);
    if (!s)
        return MC_E_NOMEM;
    mc_rtpstats_init(s, clock_rate);
    *out = s;
    return MC_OK;
}

MC_API void mc_rtpstats_free(mc_rtpstats *stats) { free(stats); }

MC_API mc_status mc_rtpstats_update(mc_rtpstats *stats, int64_t arrival_ns,
                                    uint16_t sequence_number, uint32_t timestamp,
                                    uint32_t payload_bytes)
{
    if (!stats)
        return MC_E_INVAL;
    mc_status st =
        mc_rtpstats_on_packet(stats, arrival_ns, sequence_number, timestamp, payload_bytes);
    return st == MC_RTPSTATS_PROBATION ? MC_DROPPED : st;
}

MC_API mc_status mc_rtpstats_sr_received(mc_rtpstats *stats, uint64_t ntp_timestamp,
                                         int64_t arrival_ns)
{
    if (!stats)
        return MC_E_INVAL;
    stats->lsr = mc_ntp_middle32(ntp_timestamp);
    stats->lsr_arrival_ns = arrival_ns;
    return MC_OK;
}

MC_API mc_status mc_rtpstats_report_block(mc_rtpstats *s, uint32_t ssrc, int64_t now_ns,
                                          mc_rtcp_report_block *out)
{
    if (!s || !out)
        return MC_E_INVAL;
    if (!s->started)
        return MC_E_EMPTY;
    /* A.3 */
    uint64_t expected = expected_count(s);
    int64_t lost = (int64_t)expected - (int64_t)s->received;
    if (lost > 0x7FFFFF)
        lost = 0x7FFFFF;
    if (lost < -0x800000)
        lost = -0x800000;
    int64_t expected_interval = (int64_t)(expected - s->expected_prior);
    int64_t received_interval = (int64_t)(s->received - s->received_prior);
    int64_t lost_interval = expected_interval - received_interval;
    s->expected_prior = expected;
    s->received_prior = s->received;
    uint8_t fraction = 0;
    if (expected_interval > 0 && lost_interval > 0)
        fraction = (uint8_t)((lost_interval << 8) / expected_interval);
    s->last_fraction_lost = fraction;
    out->ssrc = ssrc;
    out->fraction_lost = fraction;
    out->cumulative_lost = (int32_t)lost;
    out->extended_highest_seq = (uint32_t)ext_max(s);
    out->jitter = s->jitter_q4 >> 4;
    out->lsr = s->lsr;
    out->dlsr = s->lsr ? mc_ns_to_q16(now_ns - s->lsr_arrival_ns) : 0;
    return MC_OK;
}

MC_API mc_status mc_rtpstats_get(const mc_rtpstats *s, mc_rtp_recv_stats *out)
{
    if (!s || !out)
        return MC_E_INVAL;
    memset(out, 0, sizeof *out);
    out->received = s->received;
    out->bytes = s->bytes;
    out->duplicates = s->duplicates;
    out->reordered = s->reordered;
    out->late = s->late;
    if (s->started) {
        out->expected = expected_count(s);
        out->lost = (int64_t)out->expected - (int64_t)s->received;
        out->extended_highest_seq = (uint32_t)ext_max(s);
    }
    out->jitter = s->jitter_q4 >> 4;
    out->jitter_ms = (double)s->jitter_q4 / 16.0 * 1000.0 / (double)s->clock_rate;
    out->last_fraction_lost = s->last_fraction_lost;
    return MC_OK;
}

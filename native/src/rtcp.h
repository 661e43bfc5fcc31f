/*
 * rtcp.h — internal RTCP helpers (the parse/build API is public, in
 * mediacore.h region `rtp`).
 *
 * Common header (RFC 3550 6.4.1):
 *  0                   1                   2                   3
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |V=2|P|  RC/FMT |      PT       |     length (words - 1)        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
#ifndef MC_RTCP_H
#define MC_RTCP_H

#include <stdint.h>

#include "compat.h"
#include "mediacore.h"

/* NTP timestamp (32.32 since 1900) from a Unix-epoch time in ns. */
uint64_t mc_ntp_from_unix_ns(int64_t unix_ns);
/* Middle 32 bits of an NTP timestamp (LSR, RFC 3550 6.4.1). */
MC_INLINE uint32_t mc_ntp_middle32(uint64_t ntp) { return (uint32_t)(ntp >> 16); }
/* Nanoseconds to 1/65536 s units (DLSR), saturating at 0 and 2^32-1. */
uint32_t mc_ns_to_q16(int64_t ns);


/* ---- compound packets (RFC 3550 6.1) --------------------------------------
 * Each builder appends one whole compound packet to `buffer` at *used, or
 * returns MC_E_BUFFER / MC_E_INVAL and leaves *used unchanged. Every compound
 * packet starts with an SR or RR and carries an SDES CNAME (6.1); report
 * blocks past 31 continue in extra RR packets (6.4.2). */

/* SR (when n_senders > 0: senders[0] is `ssrc` and carries the report
 * blocks; senders[1..] are further local sources, as SRs without blocks) or
 * RR (n_senders == 0), then SDES CNAME. */
mc_status mc_rtcp_build_report(uint8_t *buffer, size_t buffer_size, size_t *used, uint32_t ssrc,
                               const mc_rtcp_sender_info *senders, uint32_t n_senders,
                               const mc_rtcp_report_block *blocks, uint32_t n_blocks,
                               const uint8_t *cname, uint32_t cname_length);
/* Feedback (RFC 4585 3.1 / 6): an empty RR, SDES CNAME, then a generic NACK
 * of `lost` (n_lost > 0), a PLI (pli != 0) and a FIR with command sequence
 * number fir_seq (fir_seq >= 0), all about media_ssrc. */
mc_status mc_rtcp_build_feedback(uint8_t *buffer, size_t buffer_size, size_t *used, uint32_t ssrc,
                                 const uint8_t *cname, uint32_t cname_length, uint32_t media_ssrc,
                                 const uint16_t *lost, uint32_t n_lost, int pli, int32_t fir_seq);
/* BYE (6.6): an empty RR from ssrcs[0], SDES CNAME, then BYE of all ssrcs
 * with an optional reason. */
mc_status mc_rtcp_build_bye(uint8_t *buffer, size_t buffer_size, size_t *used,
                            const uint32_t *ssrcs, uint32_t n_ssrcs, const uint8_t *cname,
                            uint32_t cname_length, const uint8_t *reason, uint32_t reason_length);

/* APP (RFC 3550 6.7): an empty RR from `ssrc`, then the APP packet: the
 * compound mc_engine_send_rtcp_app sends. It carries no SDES CNAME: the
 * regular reports carry it, and the APP compound (a subscription list sent
 * every second) stays small; receivers validate it as A.2 does, which does
 * not look for a CNAME. */
mc_status mc_rtcp_build_app(uint8_t *buffer, size_t buffer_size, size_t *used, uint32_t ssrc,
                            const uint8_t *name, uint32_t subtype, const uint8_t *data,
                            uint32_t data_length);

/* ---- transmission timer (RFC 3550 6.3, A.7) -------------------------------
 * The sender-side state of 6.3 for one participant: tp, tn, pmembers,
 * members, senders, rtcp_bw, we_sent, avg_rtcp_size, initial. What is
 * implemented (and what is simplified) is described in rtcp.c. All times are
 * ns on the caller's monotonic clock; the random draws come from a seeded
 * xorshift generator in the state, so tests can reproduce them. */
typedef struct mc_rtcp_timer {
    double rtcp_bw;          /* bytes/s for RTCP: 5% of the session bandwidth */
    double tmin_s;           /* minimum interval (5 s, or configured / reduced) */
    double avg_rtcp_size;    /* bytes, incl. UDP/IP overhead, 1/16 smoothing */
    uint32_t members, pmembers, senders;
    int32_t we_sent, initial;
    int64_t tp_ns, tn_ns;    /* last and next transmission */
    uint64_t rng;
} mc_rtcp_timer;

/* session_bw_bytes_per_s > 0; tmin_ns > 0 replaces the 5 s minimum (0: 5 s;
 * with reduced_minimum the 6.2 "360 / session kbit/s" minimum is used when
 * smaller). The first report is due at now + T with the initial half
 * minimum. */
void mc_rtcp_timer_init(mc_rtcp_timer *t, int64_t now_ns, double session_bw_bytes_per_s,
                        int64_t tmin_ns, int reduced_minimum, uint64_t seed);
/* Deterministic interval Td (A.7 rtcp_interval() before randomisation). */
double mc_rtcp_timer_td_s(const mc_rtcp_timer *t);
/* Randomised, compensated interval T = Td * U[0.5, 1.5] / (e - 3/2). */
int64_t mc_rtcp_timer_draw_ns(mc_rtcp_timer *t);
/* Group membership from the caller's tables (members includes us). When
 * members drops, reverse reconsideration (6.3.4) pulls tn and tp in. */
void mc_rtcp_timer_members(mc_rtcp_timer *t, int64_t now_ns, uint32_t members, uint32_t senders,
                           int32_t we_sent);
/* Timer expiry with reconsideration (6.3.6 / A.7 OnExpire): 1 when a report
 * should be sent now (then call mc_rtcp_timer_sent), 0 when tn was moved
 * later instead. */
int mc_rtcp_timer_expired(mc_rtcp_timer *t, int64_t now_ns);
/* A compound packet of `bytes` (without UDP/IP) was sent at now_ns: update
 * avg_rtcp_size, tp, pmembers and draw the next tn. */
void mc_rtcp_timer_sent(mc_rtcp_timer *t, int64_t now_ns, uint32_t bytes);
/* 6.3.7 BYE, simplified: with fewer than 50 members a BYE may go at once
 * (returns 1); otherwise returns 0 and the caller should not flood BYEs (the
 * engine then sends none: its sessions have a handful of members). */
int mc_rtcp_timer_bye_now(const mc_rtcp_timer *t);

#endif /* MC_RTCP_H */

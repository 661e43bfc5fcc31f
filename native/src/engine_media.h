/*
 * engine_media.h — the engine's per-stream media work, kept apart from the
 * socket/threading skeleton in engine.c: SRTP contexts per session, RTP
 * parsing, receive statistics, jitter/reorder buffering and RTCP. All of it
 * runs on the I/O thread (or the control thread while no I/O thread runs);
 * the init/free functions run on the control thread.
 */
#ifndef MC_ENGINE_MEDIA_H
#define MC_ENGINE_MEDIA_H

#include "engine.h"

/* ---- SRTP, one session's contexts --------------------------------------------------- */

typedef struct eng_session_crypto {
    int32_t profile;
    uint32_t replay_window;
    void *rx; /* mc_srtp, inbound: every SSRC the remote sends, SRTP and SRTCP */
    void *tx; /* mc_srtp, outbound: our SSRCs */
} eng_session_crypto;

/* flags: MC_SRTP_SRTCP_TAG_32 or 0 */
mc_status eng_crypto_init(eng_session_crypto *c, int32_t profile, const uint8_t *tx_key,
                          uint32_t tx_len, const uint8_t *rx_key, uint32_t rx_len,
                          uint32_t replay_window, uint32_t flags);
void eng_crypto_free(eng_session_crypto *c);
/* 1 when the session can protect what it sends (plain RTP, or a tx key). */
int eng_crypto_can_send(const eng_session_crypto *c);
mc_status eng_crypto_rx_rtp(eng_session_crypto *c, uint8_t *buf, uint32_t *len);
mc_status eng_crypto_rx_rtcp(eng_session_crypto *c, uint8_t *buf, uint32_t *len);
mc_status eng_crypto_tx_rtp(eng_session_crypto *c, uint8_t *buf, uint32_t *len, uint32_t cap);
mc_status eng_crypto_tx_rtcp(eng_session_crypto *c, uint8_t *buf, uint32_t *len, uint32_t cap);

/* ---- RTP view ------------------------------------------------------------------------ */

typedef struct eng_rtp_view {
    uint8_t marker;
    uint8_t payload_type;
    uint16_t sequence_number;
    uint32_t timestamp;
    uint32_t ssrc;
    uint32_t payload_offset;
    uint32_t payload_length;
    uint16_t extension_profile; /* RFC 8285 header extension (extension_words 0: none) */
    uint16_t extension_words;
    uint32_t extension_offset;
} eng_rtp_view;

/* MC_OK, or MC_E_MALFORMED with *bad_padding = 1 when only the padding is wrong. */
mc_status eng_rtp_parse(const uint8_t *buf, uint32_t len, eng_rtp_view *out, uint32_t *bad_padding);

/* ---- receive side per stream ------------------------------------------------------------ */

typedef struct eng_rx_media {
    uint32_t clock_rate;
    uint32_t media;
    uint32_t flags;
    int64_t frame_ns;
    void *stats;   /* mc_rtpstats */
    void *jitter;  /* mc_jitter (audio) */
    void *reorder; /* mc_reorder (video) */
    int64_t next_tick_ns;
    uint8_t *payload; /* pop buffer */
    uint32_t payload_cap;
    uint32_t ssrc;
    int64_t last_insert_ns;
    uint32_t audio_level_id; /* RFC 6464 extension id, 0: none */
    uint16_t level_seq[64];  /* audio levels of buffered packets, by sequence number & 63 */
    uint16_t level_flags[64];
    uint32_t payload_types[4]; /* accepted payload types, a bit set (mc_recv_stream_config) */
    uint64_t probation;        /* packets the statistics held back after a big jump (A.1) */
} eng_rx_media;

/* 1 when the stream accepts payload type `pt`. */
MC_INLINE int eng_rx_media_accepts(const eng_rx_media *m, uint8_t pt)
{
    return (m->payload_types[(pt >> 5) & 3] >> (pt & 31)) & 1u;
}

/* The MC_RECORD_FLAG_AUDIO_LEVEL / VOICE / LEVEL_MALFORMED bits and level of
 * a packet (0 when the stream reads no level or the packet has none). */
uint16_t eng_audio_level_flags(uint32_t id, const eng_rtp_view *v, const uint8_t *buf);

typedef struct eng_report {
    uint32_t ssrc;
    uint32_t fraction_lost;
    int32_t cumulative_lost;
    uint32_t extended_highest_seq;
    uint32_t jitter;
    uint32_t lsr;
    uint32_t dlsr;
    int64_t rtt_ns; /* receive side: computed from lsr/dlsr, -1 unknown */
} eng_report;

mc_status eng_rx_media_init(eng_rx_media *m, const mc_recv_stream_config *cfg, mc_engine *e);
void eng_rx_media_free(eng_rx_media *m);
/* An authentic, parsed packet (buf holds the whole RTP packet). */
void eng_rx_media_packet(eng_rx_media *m, void *stream, const eng_rtp_view *v, const uint8_t *buf,
                         int64_t now);
/* Timers: jitter pops, reorder give-up, NACK/PLI. Returns the next deadline. */
int64_t eng_rx_media_tick(eng_rx_media *m, mc_engine *e, void *stream, int64_t now);
mc_status eng_rx_media_report(eng_rx_media *m, uint32_t ssrc, int64_t now, eng_report *out);
void eng_rx_media_sr(eng_rx_media *m, uint64_t ntp, int64_t now);
void eng_rx_media_set_rtt(eng_rx_media *m, int64_t rtt_ns);
void eng_rx_media_fill_stats(eng_rx_media *m, mc_recv_stream_stats *out);

/* ---- send side per stream ----------------------------------------------------------------- */

typedef struct eng_tx_media {
    uint32_t history; /* power of two or 0 */
    uint8_t *packets; /* history * ENG_MAX_DATAGRAM */
    uint32_t *lengths;
    uint16_t *seqs;
} eng_tx_media;

mc_status eng_tx_media_init(eng_tx_media *m, uint32_t history);
void eng_tx_media_free(eng_tx_media *m);
/* Remember an unprotected RTP packet for retransmission. */
void eng_tx_media_sent(eng_tx_media *m, uint16_t seq, const uint8_t *pkt, uint32_t len);
/* Retransmit what the history still holds of `lost`. */
void eng_tx_media_nack(eng_tx_media *m, mc_engine *e, void *stream, const uint16_t *lost,
                       uint32_t count);

/* ---- RTCP ---------------------------------------------------------------------------------- */

typedef struct eng_table eng_table;
typedef struct eng_recv eng_recv;

typedef struct eng_rtcp_ctx {
    mc_engine *engine;
    const eng_table *table;
    struct eng_session *session;
    eng_recv *recv;
    int64_t now;
} eng_rtcp_ctx;

/* Validate a whole (unprotected) compound packet, then act on it. MC_OK, or
 * MC_E_MALFORMED with *problem = MC_RTCP_BAD_* and nothing acted on. */
mc_status eng_rtcp_receive(eng_rtcp_ctx *ctx, const uint8_t *buf, uint32_t len, uint32_t *problem);
uint64_t eng_ntp_now(void);

/* ---- callbacks into engine.c ------------------------------------------------------------------ */

void eng_deliver(void *stream, const mc_rtp_record *rec, const uint8_t *payload, uint32_t length);
void eng_send_feedback(mc_engine *e, void *stream, const uint16_t *lost, uint32_t n_lost, int pli);
uint8_t *eng_tx_slot(mc_engine *e, mc_net_msg **msg);
void eng_tx_commit(mc_engine *e);
int eng_send_rtp(mc_engine *e, void *stream, mc_net_msg *m, uint32_t len);
void eng_count_retransmit(void *stream);
void eng_on_sender_report(eng_rtcp_ctx *ctx, uint32_t ssrc, uint64_t ntp);
void eng_on_report_block(eng_rtcp_ctx *ctx, const eng_report *rb);
void eng_on_feedback(eng_rtcp_ctx *ctx, uint32_t kind, uint32_t media_ssrc, uint32_t sender,
                     const uint16_t *lost, uint32_t count);
void eng_on_bye(eng_rtcp_ctx *ctx, uint32_t ssrc);
void eng_on_app(eng_rtcp_ctx *ctx, uint32_t sender, uint32_t ssrc, const uint8_t *name,
                uint32_t subtype, const uint8_t *data, uint32_t length);

#endif /* MC_ENGINE_MEDIA_H */

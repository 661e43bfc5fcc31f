/*
 * engine_state.h — the engine's state shared by engine.c (sockets, the I/O
 * thread, sessions and streams, the RTP receive and send paths) and
 * engine_rtcp.c (RTCP in both directions): stream, session, routing-table
 * and engine structures, and the helpers each file offers the other. The
 * threading contract is in engine.h; nothing here is seen by Python.
 */
#ifndef MC_ENGINE_STATE_H
#define MC_ENGINE_STATE_H

#include "engine.h"
#include "engine_media.h"
#include "rtcp.h"

#define ENG_RTCP_CACHE 256
/* an APP compound before SRTCP: empty RR (8) + APP header (12) + data */
#define ENG_APP_COMPOUND (8u + 12u + MC_RTCP_APP_MAX_DATA)
/* session bandwidth floor for the RTCP interval (RFC 3550 6.2): 64 kbit/s, in bytes/s */
#define ENG_SESSION_BW_MIN 8000.0

/* ---- counters (I/O-thread private; snapshotted under a mutex) ------------------- */

typedef struct eng_session eng_session;

typedef struct eng_recv {
    uint32_t ssrc;
    uint32_t media;
    uint32_t clock_rate;
    uint32_t flags;
    uint32_t frame_ms;
    eng_session *session;
    mc_ring *ring;
    eng_rx_media m; /* seq/stats/jitter/reorder state, engine_media.h */
    mc_recv_stream_stats c; /* live counters, I/O thread */
    mc_mutex snap_lock;
    mc_recv_stream_stats snap;
    int64_t pli_request_ns; /* control asked for a key frame (set via table swap-free flag) */
    volatile uint32_t keyframe_request; /* MC_KEYFRAME_* bits from control, taken by I/O */
    uint8_t fir_seq;                    /* RFC 5104 FIR command sequence number (I/O thread) */
    uint32_t last_timestamp;            /* MC_RECV_WAKE_PER_FRAME: the last record delivered */
    uint8_t last_marker;
    uint8_t delivered_any;
} eng_recv;

typedef struct eng_send {
    uint32_t ssrc;
    uint32_t media;
    uint32_t clock_rate;
    uint8_t payload_type;
    uint16_t seq;
    uint32_t ts_offset;
    uint32_t audio_level_id; /* RFC 6464 extension id written from record flags, 0: none */
    eng_session *session;
    mc_ring *ring;
    eng_tx_media m;
    uint32_t packet_count; /* RFC 3550 SR sender's packet / octet count */
    uint32_t octet_count;
    uint32_t last_rtp_ts;
    int64_t last_send_ns;
    int sent_any;
    mc_send_stream_stats c;
    mc_mutex snap_lock;
    mc_send_stream_stats snap;
} eng_send;

struct eng_session {
    uint32_t id;
    uint32_t flags;
    mc_netaddr remote;      /* where RTP (and muxed RTCP) goes; family 0 = unknown */
    mc_netaddr remote_rtcp; /* RTCP destination */
    eng_session_crypto crypto;
    char cname[64];
    uint32_t rtcp_ssrc; /* RTCP sender SSRC when the session sends no media */
    mc_ring *events;
    /* RTCP transmission timer (RFC 3550 6.3, rtcp.c), I/O thread */
    mc_rtcp_timer rtcp_timer;
    int rtcp_timer_ready;
    uint64_t rtcp_bytes_mark; /* payload bytes in + out at the last report */
    int64_t rtcp_mark_ns;
    /* control-owned lists */
    eng_recv **recv;
    uint32_t n_recv, cap_recv;
    eng_send **send;
    uint32_t n_send, cap_send;
    /* control -> I/O: a new remote to adopt (generation-checked) */
    volatile uint32_t remote_gen;
    uint32_t remote_gen_seen;
    mc_netaddr pending_remote, pending_remote_rtcp;
    mc_mutex remote_lock;
    /* 1 once a remote address is known (given, or latched by the I/O thread):
     * what mc_engine_send_rtcp_app checks on the control thread, which may
     * not read `remote` while the I/O thread can write it */
    volatile uint32_t remote_known;
    /* control -> I/O: APP compounds to protect and send (the outbound SRTP
     * context is the I/O thread's); app_pending mirrors app_count so the I/O
     * thread takes the lock only when something waits */
    mc_mutex app_lock;
    volatile uint32_t app_pending;
    uint32_t app_count;
    uint32_t app_length[MC_ENGINE_APP_QUEUE];
    uint8_t *app_queue; /* MC_ENGINE_APP_QUEUE x ENG_APP_COMPOUND bytes, allocated on first use */
};

/* ---- routing table (immutable once published) ------------------------------------ */

enum { ROUTE_RECV = 1, ROUTE_SEND = 2 };

typedef struct eng_route {
    uint32_t ssrc;
    uint32_t kind;
    void *stream;
    eng_session *session;
} eng_route;

typedef struct eng_tsess {
    eng_session *s;
    eng_recv **recv;
    uint32_t n_recv;
    eng_send **send;
    uint32_t n_send;
} eng_tsess;

typedef struct eng_table {
    uint32_t n_sessions;
    eng_tsess *sessions;
    uint32_t n_recv, n_send;
    eng_recv **recv;
    eng_send **send;
    uint32_t mask;
    eng_route *routes;
} eng_table;

/* ---- the engine -------------------------------------------------------------------- */

struct mc_engine {
    mc_udp *sock;
    mc_udp *wake;
    mc_netaddr wake_addr;
    uint32_t flags;
    int64_t rtcp_interval_ns;
    mc_thread thread;
    int thread_running;
    volatile uint32_t stop;

    /* RCU publication */
    volatile uint64_t table_ptr;
    volatile uint64_t table_gen;
    volatile uint64_t io_seen_gen;
    eng_table *table; /* control's copy of the current table */

    /* wake protocol (event count, see engine.h) */
    volatile uint32_t io_sleeping;
    volatile uint32_t wake_seq;

    /* control-owned */
    eng_session **sessions;
    uint32_t n_sessions, cap_sessions;
    uint32_t next_session_id;
    uint64_t rng;

    /* I/O-thread state */
    uint64_t io_rng;
    uint8_t *rx_mem;
    uint8_t *tx_mem;
    mc_net_msg rx_msgs[ENG_BATCH];
    mc_net_msg tx_msgs[ENG_BATCH];
    uint32_t tx_count;
    uint8_t *scratch; /* ENG_MAX_DATAGRAM bytes for buffer pops */
    int64_t next_publish_ns;
    int64_t next_tick_ns;
    mc_engine_stats c;
    mc_mutex snap_lock;
    mc_engine_stats snap;
    volatile int64_t io_cpu_ns;
    struct {
        uint32_t ssrc;
        uint32_t session_id;
    } rtcp_cache[ENG_RTCP_CACHE]; /* I/O thread: RTCP sender SSRC -> session id */
};

/* ---- engine.c helpers for engine_rtcp.c ----------------------------------------------- */

MC_INLINE uint32_t eng_route_hash(uint32_t ssrc) { return (ssrc * 2654435761u) ^ (ssrc >> 16); }
/* splitmix64 step over a caller-owned state (engine.c explains whose). */
uint64_t eng_rng_step(uint64_t *state);
int eng_is_running(const mc_engine *e);
/* Bump the wake sequence; wake the I/O thread if it sleeps. */
void eng_wake_io(mc_engine *e);
eng_session *eng_find_session(mc_engine *e, uint32_t id, uint32_t *index);
/* The stream for `ssrc` of `kind` (ROUTE_*); with `from`, the session whose
 * remote matches wins among sessions sharing the SSRC. */
const eng_route *eng_route_lookup(const eng_table *t, uint32_t ssrc, uint32_t kind,
                                  const mc_netaddr *from);
/* Strict sessions: 0 (counted) when `from` is not the remote. */
int eng_source_ok(mc_engine *e, eng_session *s, const mc_netaddr *from);
void eng_emit_event(eng_session *s, uint32_t kind, uint32_t ssrc, uint32_t sender, uint32_t count,
                    int64_t now);
/* Send the queued datagrams (one sendmmsg batch). */
void eng_flush_tx(mc_engine *e);

/* ---- engine_rtcp.c, for engine.c ------------------------------------------------------ */

/* An RTCP datagram (RFC 5761 demux said RTCP): route, unprotect, validate, act. */
void eng_handle_rtcp(mc_engine *e, const eng_table *t, uint8_t *buf, uint32_t len,
                     const mc_netaddr *from, int64_t now);
/* The RFC 3550 6.3 timer of one session; sends its report when due. */
void eng_session_rtcp_timer(mc_engine *e, const eng_tsess *ts, int64_t now);
/* BYE of a session the I/O thread no longer sees (control thread). */
void eng_session_bye(mc_engine *e, eng_session *s);
/* Protect and send the APP compounds the control thread queued (I/O thread). */
void eng_send_pending_app(mc_engine *e, eng_session *s);

#endif /* MC_ENGINE_STATE_H */

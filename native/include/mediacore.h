/*
 * mediacore.h — the one public header of mediabot's native core.
 *
 * Conventions
 *  - Every symbol carries the `mc_` prefix. Handles are opaque.
 *  - Every function returns an `mc_status` (0 = success, > 0 = success with
 *    information, < 0 = error) and writes its results through pointers.
 *    `mc_status_name()` and `mc_status_message()` describe any status.
 *  - Each function states which thread may call it:
 *      [any]       any thread, at any time;
 *      [control]   one control thread at a time (Python holds a lock per handle);
 *      [producer]  the single producer thread of a ring;
 *      [consumer]  the single consumer thread of a ring.
 *  - Nothing here calls back into a host language. Data crosses threads
 *    through rings and atomics only.
 *
 * The text between `@cdef-begin` and `@cdef-end` markers is also the cffi
 * declaration of the Python binding (native/build.py extracts it), so those
 * regions hold plain C declarations only: no macros, no inline functions.
 */
#ifndef MEDIACORE_H
#define MEDIACORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(MC_BUILD_DLL)
#define MC_API __declspec(dllexport)
#else
#define MC_API
#endif

/* @cdef-begin status */
typedef int32_t mc_status;

enum {
    MC_OK = 0,
    MC_DROPPED = 1,            /* success: the record was dropped by the ring's policy (counted) */

    MC_E_INVAL = -1,           /* an argument is out of range or a handle is NULL */
    MC_E_NOMEM = -2,           /* allocation failed */
    MC_E_FULL = -3,            /* ring full and its policy is to report it */
    MC_E_EMPTY = -4,           /* nothing to read */
    MC_E_TIMEOUT = -5,         /* a wait timed out */
    MC_E_TOO_LARGE = -6,       /* record or packet larger than allowed */
    MC_E_CLOSED = -7,          /* ring or engine closed and drained */
    MC_E_BAD_MAGIC = -8,       /* attached memory is not a mediacore ring */
    MC_E_BAD_VERSION = -9,     /* ring layout version not supported */
    MC_E_BAD_SIZE = -10,       /* memory too small for the ring it describes, or capacity invalid */
    MC_E_IO = -11,             /* socket or OS call failed (see mc_last_os_error) */
    MC_E_CRYPTO = -12,         /* the crypto library failed */
    MC_E_AUTH = -13,           /* SRTP authentication tag mismatch */
    MC_E_REPLAY = -14,         /* SRTP replay detected */
    MC_E_MALFORMED = -15,      /* packet or document does not parse */
    MC_E_STATE = -16,          /* call not valid in the current state */
    MC_E_UNSUPPORTED = -17,    /* feature, profile or codec not supported */
    MC_E_NOT_FOUND = -18,      /* unknown session, stream or id */
    MC_E_EXISTS = -19,         /* id already in use */
    MC_E_CODEC = -20,          /* codec library failed */
    MC_E_BUFFER = -21          /* output buffer too small */
};

/* [any] Stable identifier ("MC_E_FULL") and human message for a status. */
MC_API const char *mc_status_name(mc_status status);
MC_API const char *mc_status_message(mc_status status);
/* [any] errno / GetLastError() of the last failed OS call on this thread. */
MC_API int32_t mc_last_os_error(void);
/* [any] Version of this library as 0xMMmmpp. */
MC_API uint32_t mc_version(void);
/* @cdef-end */

/* @cdef-begin clock */
/* [any] The media clock: monotonic nanoseconds (CLOCK_MONOTONIC on Linux,
 * QueryPerformanceCounter on Windows). Its epoch is unspecified but shared by
 * every thread and, on one host, every process. Python's
 * time.monotonic_ns() reads the same clock on both platforms. */
MC_API int64_t mc_now_ns(void);
/* [any] Sleep at least `ns` nanoseconds. */
MC_API void mc_sleep_ns(int64_t ns);
/* @cdef-end */

/* ------------------------------------------------------------------------
 * Rings: single-producer / single-consumer, lock-free, variable-length
 * records, usable between threads of one process or across processes over
 * shared memory.
 *
 * Binary layout, version 1 (all integers little-endian, offsets in bytes;
 * another process or language attaches by following this table):
 *
 *   offset size  field
 *   ---- header line (read-only after init)
 *   0      4     magic          0x4752434D, the bytes "MCRG"
 *   4      2     version        1
 *   6      2     header_size    256; record data starts here
 *   8      8     capacity       data bytes, a power of two, 64 .. 2^40
 *   16     4     flags          bit 0: MC_RING_DROP_NEWEST (else report FULL)
 *                               bit 1: MC_RING_SHARED (waits use process-shared primitives)
 *   20     4     max_record     largest payload accepted: capacity/2 - 8
 *   24    40     reserved       zero
 *   ---- producer line, written by the producer only
 *   64     8     head           bytes ever committed (free-running, never wraps in practice)
 *   72     8     records_written
 *   80     8     records_dropped   records dropped by the DROP_NEWEST policy
 *   88     8     bytes_dropped     payload bytes of those records
 *   96     8     records_refused   writes refused with MC_E_FULL (report policy)
 *   104    4     closed         1 once the producer closed the ring
 *   108   20     reserved
 *   ---- consumer line, written by the consumer only
 *   128    8     tail           bytes ever released
 *   136    8     records_read
 *   144   48     reserved
 *   ---- wake line
 *   192    4     data_seq       incremented by the producer to wake a waiting consumer
 *   196    4     consumer_waiting  1 while the consumer is (about to be) asleep
 *   200    4     space_seq      incremented by the consumer to wake a waiting producer
 *   204    4     producer_waiting  1 while the producer is (about to be) asleep
 *   208   48     reserved
 *   ---- data
 *   256    capacity   records
 *
 * A record is an 8-byte header {u32 length; u32 type} followed by `length`
 * payload bytes, padded to a multiple of 8. Records never straddle the end of
 * the data area: when one does not fit, the producer writes a header with
 * type 0xFFFFFFFF (padding) and the record starts again at offset 0.
 * The byte offset of a record is (counter mod capacity).
 *
 * Memory ordering: the producer writes the record, then publishes `head` with
 * a release store; the consumer reads `head` with an acquire load before
 * touching the record. The consumer releases space by a release store of
 * `tail`, which the producer reads with acquire before overwriting it.
 * Sleep/wake is an event count: a waiter reads *_seq, sets its *_waiting
 * word (seq_cst), re-checks the counter (seq_cst) and only then sleeps on
 * *_seq; the other side publishes its counter (seq_cst), then reads the
 * waiting word (seq_cst) and makes the wake syscall (after bumping *_seq) only
 * if it is set — no syscall when nobody waits.
 * ---------------------------------------------------------------------- */

/* @cdef-begin ring */
typedef struct mc_ring mc_ring;

enum {
    MC_RING_DROP_NEWEST = 1,   /* when full: drop the new record, count it, return MC_DROPPED */
    MC_RING_SHARED = 2,         /* the ring lives in memory shared between processes */
    MC_RING_HEADER_SIZE = 256,
    MC_RING_VERSION = 1,
    MC_RING_MAGIC = 0x4752434D,
    MC_RING_TYPE_PAD = -1,      /* record type reserved for padding (0xFFFFFFFF) */
    MC_RING_SPIN_PACED = -1     /* mc_ring_wait spin_ns: poll when the producer's next record is due */
};

typedef struct mc_ring_stats {
    uint64_t capacity;
    uint64_t used_bytes;        /* head - tail at the time of reading */
    uint64_t records_written;
    uint64_t records_read;
    uint64_t records_dropped;
    uint64_t bytes_dropped;
    uint64_t records_refused;
    uint64_t wake_calls;        /* wake syscalls made through this handle (0 when nobody waited) */
    uint64_t rewinds;           /* mc_ring_set_rewind: times this handle's producer started over */
    uint32_t max_record;
    uint32_t flags;
    uint32_t closed;
} mc_ring_stats;

/* [any] Bytes of memory needed for a ring of `capacity` data bytes. */
MC_API size_t mc_ring_memory_size(uint64_t capacity);
/* [control] Initialise a ring in caller-provided memory (>= mc_ring_memory_size,
 * 64-byte aligned) and return a handle. The memory must outlive the handle. */
MC_API mc_status mc_ring_init(void *memory, size_t memory_size, uint64_t capacity,
                              uint32_t flags, mc_ring **out);
/* [control] Attach to a ring another party initialised. Validates magic,
 * version, header size and capacity against `memory_size`. */
MC_API mc_status mc_ring_attach(void *memory, size_t memory_size, mc_ring **out);
/* [control] Allocate memory (64-byte aligned) and initialise a private ring. */
MC_API mc_status mc_ring_new(uint64_t capacity, uint32_t flags, mc_ring **out);
/* [control] Free a handle (and the memory, if mc_ring_new allocated it).
 * Both sides must have stopped using the ring. */
MC_API void mc_ring_free(mc_ring *ring);
/* [any] Base address of the ring's memory (header included). */
MC_API void *mc_ring_memory(mc_ring *ring);

/* [producer] Copy one record in. MC_OK, MC_DROPPED (drop policy), MC_E_FULL
 * (report policy), MC_E_TOO_LARGE, MC_E_CLOSED. */
MC_API mc_status mc_ring_write(mc_ring *ring, uint32_t type, const void *data, uint32_t length);
/* [producer] Copy `count` records laid out back to back in `data` with
 * lengths `lengths[i]`; one publication and at most one wake for the lot.
 * `*written` receives how many were accepted (in order); the rest are
 * dropped (drop policy, counted) or left to the caller (report policy). */
MC_API mc_status mc_ring_write_batch(mc_ring *ring, uint32_t type, const uint8_t *data,
                                     const uint32_t *lengths, uint32_t count, uint32_t *written);
/* [producer] Zero-copy write: reserve space for up to `length` bytes, fill
 * *out, then mc_ring_commit with the length actually used (<= reserved).
 * Same statuses as mc_ring_write; on MC_DROPPED *out is NULL and nothing is
 * to be committed. */
MC_API mc_status mc_ring_reserve(mc_ring *ring, uint32_t length, void **out);
MC_API mc_status mc_ring_commit(mc_ring *ring, uint32_t type, uint32_t length);
/* [producer] mc_ring_commit without waking a waiting consumer: the record is
 * visible at once, and a consumer asleep in mc_ring_wait finds it when a
 * later commit wakes it (or at its timeout). For producers that know a
 * batch is not finished (the packets of a video frame before its last). */
MC_API mc_status mc_ring_commit_quiet(mc_ring *ring, uint32_t type, uint32_t length);
/* [producer] Wake a consumer waiting in mc_ring_wait for what is published
 * (after quiet commits): one wake for a batch of records. No syscall when
 * nobody waits. */
MC_API mc_status mc_ring_wake(mc_ring *ring);
/* [producer] Grow the pending reservation to `length` bytes; its first
 * `keep` bytes are kept (moved with it if it has to move to the start of
 * the ring). *out is the reservation's (possibly new) address. MC_E_FULL
 * (the old reservation stands) when the ring has no room for it. */
MC_API mc_status mc_ring_extend(mc_ring *ring, uint32_t length, uint32_t keep, void **out);
/* [producer] Rewinding: once the head is `room` bytes or more into the
 * ring and the consumer has taken every record, the next record starts at
 * the beginning of the ring again, so a consumer that keeps up reads the
 * same cache-warm memory over and over. Until the consumer passes that
 * point the ring takes at most the bytes before it (>= room), not its whole
 * capacity: choose room above the largest burst expected between two
 * consumer turns; a producer that grows records (mc_ring_extend) needs
 * room for the largest one, since a record begun right after a rewind can
 * only grow into the bytes before that point. 0 turns it off (the default).
 * MC_E_INVAL for room >= capacity. Set it before producing. */
MC_API mc_status mc_ring_set_rewind(mc_ring *ring, uint64_t room);
/* [producer] Abandon the pending reservation; nothing is published. */
MC_API mc_status mc_ring_cancel(mc_ring *ring);
/* [producer] Wait until `length` bytes could be written, or timeout.
 * timeout_ns < 0 waits forever; 0 polls. */
MC_API mc_status mc_ring_wait_writable(mc_ring *ring, uint32_t length, int64_t timeout_ns);
/* [producer] Mark the ring closed; the consumer drains it and then gets MC_E_CLOSED. */
MC_API mc_status mc_ring_close(mc_ring *ring);

/* [consumer] Copy the next record into `buffer`. MC_E_EMPTY when none;
 * MC_E_BUFFER (record left in place, *length = its size) when `buffer` is too
 * small; MC_E_CLOSED once closed and drained. */
MC_API mc_status mc_ring_read(mc_ring *ring, void *buffer, uint32_t buffer_size,
                              uint32_t *length, uint32_t *type);
/* [consumer] Copy up to `max_records` records back to back into `buffer`
 * (each at an 8-aligned offset), writing offsets[i], lengths[i] (and types[i]
 * if not NULL). Stops early when the next record does not fit. */
MC_API mc_status mc_ring_read_batch(mc_ring *ring, uint8_t *buffer, size_t buffer_size,
                                    uint32_t *offsets, uint32_t *lengths, uint32_t *types,
                                    uint32_t max_records, uint32_t *count);
/* [consumer] Zero-copy: locate up to `max_records` records in the ring
 * without consuming them; offsets are from the start of the data area
 * (mc_ring_data). Records stay valid until mc_ring_release. */
MC_API mc_status mc_ring_peek(mc_ring *ring, uint32_t *offsets, uint32_t *lengths,
                              uint32_t *types, uint32_t max_records, uint32_t *count);
/* [consumer] Consume the first `count` records returned by the last peek. */
MC_API mc_status mc_ring_release(mc_ring *ring, uint32_t count);
/* [consumer] Reading ahead of what is released, for a consumer that keeps
 * records it has read (and may write over them, e.g. to assemble a frame in
 * place) while it reads on. Positions are the ring's 64-bit byte counters:
 * mc_ring_read_position is where the oldest unreleased record starts.
 * mc_ring_peek_at locates up to `max_records` records from *position on
 * (a position from mc_ring_read_position or from an earlier call), advances
 * *position past them and, if `positions` is not NULL, writes where each
 * starts. mc_ring_release_at releases everything before `position` (a record
 * boundary those calls returned), counting `records` records as read, without
 * reading the records again. Both return MC_E_INVAL for a position outside
 * the unreleased records. */
MC_API uint64_t mc_ring_read_position(const mc_ring *ring);
MC_API mc_status mc_ring_peek_at(mc_ring *ring, uint64_t *position, uint64_t *positions,
                                 uint32_t *offsets, uint32_t *lengths, uint32_t *types,
                                 uint32_t max_records, uint32_t *count);
MC_API mc_status mc_ring_release_at(mc_ring *ring, uint64_t position, uint32_t records);
/* [consumer] Start of the data area. */
MC_API uint8_t *mc_ring_data(mc_ring *ring);
/* [consumer] Block until a record is available, the ring is closed, or the
 * timeout passes (timeout_ns < 0: forever; 0: poll). Spins `spin_ns` first
 * (0 = no spin, the default). spin_ns = MC_RING_SPIN_PACED: learn the pace of
 * a periodic producer from the arrivals and be awake when its next record is
 * due (park with a timeout that ends a guard before it, then poll the head
 * until shortly after it, then park until woken; the window is at most a
 * quarter of the period and 250 us, none while the arrivals follow no
 * steady pace). The consumer's state for it is private to the handle: no
 * change to the layout or the ordering above. MC_OK, MC_E_TIMEOUT,
 * MC_E_CLOSED. */
MC_API mc_status mc_ring_wait(mc_ring *ring, int64_t timeout_ns, int64_t spin_ns);

/* [any] Counters; safe while both sides run (values are a consistent-enough snapshot). */
MC_API mc_status mc_ring_get_stats(mc_ring *ring, mc_ring_stats *out);
/* @cdef-end */

/* ------------------------------------------------------------------------
 * SRTP / SRTCP (RFC 3711; AEAD AES-GCM per RFC 7714) on OpenSSL libcrypto.
 *
 * One context = one master key||salt and one direction (protect OR
 * unprotect). It derives the session keys once (RFC 3711 4.3, KDR 0), keeps
 * the AES key schedules and the HMAC-SHA1 inner/outer pad states, and per
 * SSRC a stream (ROC and highest index, RFC 3711 Appendix A; a replay bitmap
 * for SRTP and one for SRTCP). Streams are created on the first packet that
 * authenticates (receive) or is protected (send), up to `max_streams`.
 *
 * Packets are transformed in place in the caller's buffer; nothing is
 * allocated per packet. Per-packet failures return a status and bump a
 * counter, they never abort:
 *   MC_E_AUTH       tag mismatch (AES-CM: buffer untouched; AES-GCM: the
 *                   payload bytes are unspecified afterwards)
 *   MC_E_REPLAY     index already seen or older than the replay window
 *   MC_E_MALFORMED  truncated packet, version != 2, CSRC list or header
 *                   extension running past the end, no room for the tag
 *   MC_E_BUFFER     protect: capacity < length + trailer (MC_SRTP_MAX_TRAILER)
 *   MC_E_FULL       a new SSRC while `max_streams` streams exist
 *   MC_E_STATE      protect on an inbound context or unprotect on an outbound one
 *
 * Profiles (RFC 4568 names; values = the DTLS-SRTP protection profile ids of
 * RFC 5764 / RFC 7714):
 *   AES_CM_128_HMAC_SHA1_80  key 16 + salt 14, tag 10 (SRTP and SRTCP)
 *   AES_CM_128_HMAC_SHA1_32  key 16 + salt 14, SRTP tag 4, SRTCP tag 10 as in
 *                            RFC 5764 and libsrtp; with MC_SRTP_SRTCP_TAG_32
 *                            SRTCP gets a 4-byte tag too, as ffmpeg's suite
 *                            "AES_CM_128_HMAC_SHA1_32" does (docs/srtp.md).
 *   AEAD_AES_128_GCM         key 16 + salt 12, tag 16
 *   AEAD_AES_256_GCM         key 32 + salt 12, tag 16
 *
 * Threads: a context is used by one thread at a time ([io]); only
 * mc_srtp_get_stats may run concurrently with it ([any]: counters are
 * single-writer words read with relaxed loads).
 * ---------------------------------------------------------------------- */

/* @cdef-begin srtp */
typedef struct mc_srtp mc_srtp;

enum {
    MC_SRTP_AES_CM_128_HMAC_SHA1_80 = 1,
    MC_SRTP_AES_CM_128_HMAC_SHA1_32 = 2,
    MC_SRTP_AEAD_AES_128_GCM = 7,
    MC_SRTP_AEAD_AES_256_GCM = 8,

    /* flags of mc_srtp_create */
    MC_SRTP_OUTBOUND = 1,        /* the context protects; without it, it unprotects */
    MC_SRTP_SRTCP_TAG_32 = 2,    /* AES_CM_128_HMAC_SHA1_32: 4-byte SRTCP tag (ffmpeg's variant) */
    MC_SRTP_SESSION_KEYS = 4,    /* key_salt holds session keys, no KDF (known-answer tests):
                                    AES-CM: k_e(16) k_s(14) k_a(20); GCM: k_e k_s(12),
                                    the same keys for SRTP and SRTCP */

    MC_SRTP_DEFAULT_REPLAY_WINDOW = 128,
    MC_SRTP_MAX_REPLAY_WINDOW = 32768,
    MC_SRTP_DEFAULT_MAX_STREAMS = 16,
    MC_SRTP_MAX_STREAMS = 4096,
    MC_SRTP_MAX_TRAILER = 20     /* most bytes protect adds: SRTCP E+index (4) + tag (16) */
};

typedef struct mc_srtp_stats {
    uint64_t rtp_packets;        /* SRTP packets protected / unprotected successfully */
    uint64_t rtcp_packets;       /* SRTCP packets protected / unprotected successfully */
    uint64_t auth_failures;      /* MC_E_AUTH */
    uint64_t replays;            /* MC_E_REPLAY */
    uint64_t malformed;          /* MC_E_MALFORMED */
    uint64_t buffer_errors;      /* MC_E_BUFFER */
    uint64_t streams_refused;    /* MC_E_FULL: new SSRC over max_streams */
    uint32_t streams;            /* SSRCs with state */
    uint32_t replay_window;      /* effective window (rounded up to a power of two, >= 64) */
} mc_srtp_stats;

/* [any] Master key||salt length for a profile (30, 28 or 44 bytes), and the
 * SRTP / SRTCP tag lengths (flags: MC_SRTP_SRTCP_TAG_32). */
MC_API mc_status mc_srtp_profile_info(int32_t profile, uint32_t flags, uint32_t *key_salt_length,
                                      uint32_t *rtp_tag_length, uint32_t *rtcp_tag_length);
/* [control] Create a context. replay_window 0 = MC_SRTP_DEFAULT_REPLAY_WINDOW
 * (else 64 .. MC_SRTP_MAX_REPLAY_WINDOW, rounded up to a power of two);
 * max_streams 0 = MC_SRTP_DEFAULT_MAX_STREAMS. MC_E_INVAL on a wrong key
 * length, MC_E_UNSUPPORTED on an unknown profile, MC_E_CRYPTO if OpenSSL fails. */
MC_API mc_status mc_srtp_create(int32_t profile, const uint8_t *key_salt, size_t key_salt_length,
                                uint32_t replay_window, uint32_t max_streams, uint32_t flags,
                                mc_srtp **out);
/* [control] Free a context (NULL is ignored). No other call may be running on it. */
MC_API void mc_srtp_free(mc_srtp *ctx);
/* [io] RTP -> SRTP in place: `length` bytes of RTP in a buffer of `capacity`
 * bytes; *out_length = length + tag. */
MC_API mc_status mc_srtp_protect(mc_srtp *ctx, uint8_t *packet, size_t length, size_t capacity,
                                 size_t *out_length);
/* [io] SRTP -> RTP in place; *out_length = length - tag. */
MC_API mc_status mc_srtp_unprotect(mc_srtp *ctx, uint8_t *packet, size_t length,
                                   size_t *out_length);
/* [io] RTCP (compound) -> SRTCP in place (E flag set, next SRTCP index of the
 * sender SSRC); *out_length = length + 4 + tag. */
MC_API mc_status mc_srtcp_protect(mc_srtp *ctx, uint8_t *packet, size_t length, size_t capacity,
                                  size_t *out_length);
/* [io] SRTCP -> RTCP in place (E flag clear: authenticated only). */
MC_API mc_status mc_srtcp_unprotect(mc_srtp *ctx, uint8_t *packet, size_t length,
                                    size_t *out_length);
/* [any] Counters (relaxed snapshot). */
MC_API mc_status mc_srtp_get_stats(mc_srtp *ctx, mc_srtp_stats *out);

/* @cdef-end */

/* ------------------------------------------------------------------------
 * Engine: one UDP socket serving many media sessions (the way a Teams media
 * endpoint uses one public port per host), RTP and RTCP multiplexed on it
 * (RFC 5761), demultiplexed by SSRC and remote address. A native I/O thread
 * receives batches, unprotects (SRTP), parses, keeps per-stream statistics,
 * runs the jitter / reorder buffers and writes records into rings; it also
 * drains send rings, packetizes, protects and sends, and runs RTCP.
 *
 * Threads: functions marked [control] are called by one thread at a time
 * per engine (Python holds a lock per engine). Sessions and streams may be
 * added and removed while the engine runs: the control thread publishes a
 * new routing table and frees what it replaced only after the I/O thread has
 * passed a quiescent point (RCU style), so no packet reaches a freed stream.
 * Rings handed to the engine must outlive the stream that uses them.
 *
 * Receive ring records (record type MC_RECORD_RTP): an mc_rtp_record header
 * (24 bytes, little-endian host layout) followed by the payload. A record
 * with MC_RECORD_FLAG_LOST has no payload: the jitter buffer had nothing for
 * that 20 ms slot, so the decoder should conceal.
 * Send ring records (any type): an mc_send_record header (8 bytes) then the
 * payload. Event ring records (type MC_RECORD_EVENT): an mc_engine_event.
 * ---------------------------------------------------------------------- */

/* @cdef-begin engine */
typedef struct mc_engine mc_engine;

enum {
    MC_MEDIA_AUDIO = 0,
    MC_MEDIA_VIDEO = 1,

    MC_RECORD_RTP = 1,
    MC_RECORD_EVENT = 2,
    MC_RECORD_FLAG_LOST = 1,           /* no payload: conceal this slot */
    MC_RECORD_FLAG_DISCONTINUITY = 2,  /* packets were given up just before this one */
    MC_RECORD_FLAG_AUDIO_LEVEL = 4,    /* the packet carried an RFC 6464 audio level: V flag in
                                          MC_RECORD_FLAG_VOICE, level (0..127 -dBov) in
                                          bits 8..14 of flags (MC_RECORD_LEVEL_SHIFT) */
    MC_RECORD_FLAG_VOICE = 8,
    MC_RECORD_FLAG_LEVEL_MALFORMED = 16, /* its header extension was garbage: ignored, counted */
    MC_RECORD_LEVEL_SHIFT = 8,
    MC_RTP_RECORD_SIZE = 24,
    MC_SEND_RECORD_SIZE = 8,
    MC_SEND_PT_DEFAULT = 255,          /* mc_send_record.payload_type: use the stream's */

    MC_EVENT_PLI = 1,                  /* remote asked for a key frame (RFC 4585 PLI) */
    MC_EVENT_FIR = 2,                  /* remote asked for a key frame (RFC 5104 FIR) */
    MC_EVENT_NACK = 3,                 /* remote reported `count` lost packets */
    MC_EVENT_BYE = 4,                  /* remote source left */
    MC_EVENT_REMOTE_LATCHED = 5,       /* session learnt its remote address from traffic */
    MC_EVENT_APP = 6,                  /* an RTCP APP packet (RFC 3550 6.7): a variable-length
                                          record, mc_engine_app_event then the data */
    MC_ENGINE_APP_EVENT_SIZE = 32,     /* bytes before an APP event's data */

    MC_ENGINE_NO_THREAD = 1,           /* engine_config.flags: no I/O thread (inject / poll only) */
    MC_SESSION_STRICT_SOURCE = 1,      /* drop packets not from the remote address (counted) */
    MC_SESSION_LATCH = 2,              /* learn the remote address from the first authentic packet */
    MC_SESSION_SRTCP_TAG_32 = 4,       /* AES_CM_128_HMAC_SHA1_32 with a 4-byte SRTCP tag (ffmpeg) */
    MC_ENGINE_APP_QUEUE = 8,           /* APP packets a session may have waiting for the I/O thread */
    MC_RECV_DIRECT = 1,                /* recv flags: no jitter/reorder buffer, arrival order */
    MC_RECV_NACK = 2,                  /* video: send generic NACKs for gaps */
    MC_RECV_PLI = 4,                   /* video: send PLI when a gap cannot be repaired */
    MC_RECV_WAKE_PER_FRAME = 8,        /* video: wake the ring's consumer once per frame (its
                                          marker-bit packet; after a frame without one, the
                                          next frame's first packet), not for every packet */
    MC_RECV_ANY_PAYLOAD_TYPE = 16      /* accept every payload type (payload_types ignored);
                                          without it a stream accepts only its payload_types */
};

typedef struct mc_rtp_record {
    int64_t arrival_ns;                /* mc_now_ns() when the datagram was received */
    uint32_t ssrc;
    uint32_t timestamp;
    uint16_t sequence_number;
    uint8_t payload_type;
    uint8_t marker;
    uint16_t flags;                    /* MC_RECORD_FLAG_* */
    uint16_t lost_before;              /* packets given up just before this one */
} mc_rtp_record;

typedef struct mc_send_record {
    uint32_t timestamp;                /* RTP timestamp relative to the stream start */
    uint8_t marker;
    uint8_t payload_type;              /* MC_SEND_PT_DEFAULT: the stream's payload type */
    uint16_t flags;                    /* MC_RECORD_FLAG_AUDIO_LEVEL | VOICE | level << 8: the
                                          engine writes the RFC 6464 extension when the
                                          stream has an audio_level_id; else 0 */
} mc_send_record;

typedef struct mc_engine_event {
    int64_t time_ns;
    uint32_t kind;                     /* MC_EVENT_* */
    uint32_t ssrc;                     /* our send SSRC concerned (PLI/FIR/NACK) or the remote one (BYE) */
    uint32_t sender_ssrc;              /* RTCP sender */
    uint32_t count;                    /* NACK: sequence numbers reported lost */
} mc_engine_event;

/* Event record of an RTCP APP packet (kind MC_EVENT_APP), variable length:
 *   offset size
 *   0      24    mc_engine_event: time_ns; kind = MC_EVENT_APP; ssrc = the APP
 *                packet's SSRC/CSRC field; sender_ssrc = the SSRC of the
 *                compound's first packet (its SR/RR); count = data bytes
 *   24     4     name, the 4 ASCII bytes as on the wire (e.g. "MBVS")
 *   28     4     subtype (0..31)
 *   32     count application data (a multiple of 4 bytes, padding removed)
 * The record's length is 32 + count. Only APP packets of a compound that
 * authenticated (SRTCP) and passed mc_rtcp_check_compound are delivered;
 * data longer than MC_RTCP_APP_MAX_DATA is dropped and counted. */
typedef struct mc_engine_app_event {
    mc_engine_event event;
    uint8_t name[4];
    uint32_t subtype;
} mc_engine_app_event;

typedef struct mc_engine_config {
    const char *bind_host;             /* numeric IPv4/IPv6 literal, e.g. "0.0.0.0", "::", "127.0.0.1" */
    uint16_t bind_port;                /* 0: any free port */
    uint16_t reserved;
    int32_t rcvbuf_bytes;              /* 0: 4 MiB */
    int32_t sndbuf_bytes;              /* 0: 4 MiB */
    uint32_t rtcp_interval_ms;         /* mean RTCP report interval; 0: 1000 */
    uint32_t flags;                    /* MC_ENGINE_* */
} mc_engine_config;

typedef struct mc_session_config {
    const char *remote_host;           /* NULL: unknown until latched (MC_SESSION_LATCH) */
    uint16_t remote_port;
    uint16_t remote_rtcp_port;         /* 0: RTCP muxed on remote_port (RFC 5761) */
    int32_t srtp_profile;              /* 0: plain RTP; else an MC_SRTP_* profile */
    const uint8_t *tx_key;             /* master key || salt we protect with; with SRTP it may be
                                          absent (tx_key_length 0): a receive-only session, which
                                          takes no send streams and sends no RTCP (tx_no_key) */
    uint32_t tx_key_length;
    const uint8_t *rx_key;             /* master key || salt the remote protects with */
    uint32_t rx_key_length;
    uint32_t replay_window;            /* 0: 128 */
    uint32_t flags;                    /* MC_SESSION_* */
    const char *cname;                 /* RTCP SDES CNAME; NULL: generated */
    mc_ring *events;                   /* optional: mc_engine_event records */
} mc_session_config;

typedef struct mc_recv_stream_config {
    uint32_t ssrc;
    uint32_t media;                    /* MC_MEDIA_* */
    uint32_t clock_rate;               /* Hz: 48000 Opus, 90000 video */
    uint32_t flags;                    /* MC_RECV_* */
    uint32_t frame_ms;                 /* audio: packet duration (jitter pop period), 0: 20 */
    uint32_t jitter_min_ms;            /* audio jitter target range; 0: 20 / 200 */
    uint32_t jitter_max_ms;
    uint32_t reorder_wait_ms;          /* video: how long a gap may hold release; 0: 100 */
    mc_ring *ring;                     /* records go here (may be shared by several streams) */
    uint32_t audio_level_id;           /* RFC 6464 header extension id (RFC 8285 one- or two-byte
                                          form, 1..255) read into the records; 0: none */
    uint32_t payload_types[4];         /* the payload types this stream accepts, a bit set: PT p
                                          is bit (p & 31) of payload_types[p >> 5] (the
                                          negotiated codecs and the RFC 4733 telephone-event
                                          type). Other types are dropped and counted
                                          (payload_type_mismatch). An empty set is MC_E_INVAL
                                          unless flags has MC_RECV_ANY_PAYLOAD_TYPE. */
} mc_recv_stream_config;

typedef struct mc_send_stream_config {
    uint32_t ssrc;
    uint32_t media;                    /* MC_MEDIA_* */
    uint32_t clock_rate;
    uint8_t payload_type;
    uint8_t reserved[3];
    uint32_t initial_sequence;         /* > 0xFFFF: random */
    uint32_t timestamp_offset;         /* added to every record's timestamp */
    uint32_t history;                  /* packets kept for NACK retransmission (0: none) */
    mc_ring *ring;                     /* mc_send_record + payload records, written by the host */
    uint32_t audio_level_id;           /* RFC 6464 extension id written when a record carries a
                                          level (1..14: one-byte form, 15..255: two-byte); 0: none */
} mc_send_stream_config;

/* Every accepted packet (`packets`: authentic, parsed, of an accepted payload
 * type) ends in exactly one fate, so that
 *   packets == delivered + ring_full + duplicates + late + early + overflow
 *              + shrunk + reset + too_large + probation + buffered
 * at every snapshot (buffered: still held by the jitter / reorder buffer). */
typedef struct mc_recv_stream_stats {
    uint64_t packets;                  /* authentic RTP packets accepted (duplicates included) */
    uint64_t bytes;                    /* payload bytes */
    int64_t lost;                      /* RFC 3550 A.3 cumulative lost */
    uint64_t duplicates;               /* fate: dropped as a copy of a packet already taken (the
                                          statistics' window, or the buffer's) */
    uint64_t reordered;
    uint64_t late;                     /* fate: arrived after its slot was played or skipped */
    uint64_t auth_failures;
    uint64_t replays;
    uint64_t malformed;
    uint64_t records;                  /* records written to the ring */
    uint64_t ring_dropped;             /* records the full ring dropped */
    uint64_t concealed;                /* LOST records (audio slots without a packet) */
    uint64_t nacks_sent;               /* sequence numbers NACKed */
    uint64_t plis_sent;
    uint64_t firs_sent;                /* RFC 5104 FIR commands sent */
    uint64_t sr_received;
    uint32_t extended_highest_seq;
    uint32_t reserved;
    double jitter_ms;                  /* RFC 3550 A.8 interarrival jitter */
    double rtt_ms;                     /* from our SR and the remote's RR; -1 unknown */
    uint64_t payload_type_mismatch;    /* authentic packets of a type the stream does not accept:
                                          dropped before `packets` counts them */
    uint64_t delivered;                /* fate: written to the ring as a record */
    uint64_t ring_full;                /* fate: its record was dropped by the full ring (also
                                          counted in ring_dropped, with concealment records) */
    uint64_t early;                    /* fate: audio, too far ahead of the jitter buffer */
    uint64_t overflow;                 /* fate: video, held in the reorder buffer when a jump
                                          wider than the buffer gave it up */
    uint64_t shrunk;                   /* fate: audio, skipped to bring the delay down */
    uint64_t reset;                    /* fate: held in a buffer when the sender restarted its
                                          numbering (the buffer started over) */
    uint64_t too_large;                /* fate: payload larger than a buffer slot */
    uint64_t probation;                /* fate: first packet after a jump of more than 3000
                                          sequence numbers (RFC 3550 A.1): taken only when the
                                          next packet confirms the new numbering */
    uint64_t buffered;                 /* fate so far: held in the jitter / reorder buffer */
} mc_recv_stream_stats;

typedef struct mc_send_stream_stats {
    uint64_t packets;
    uint64_t bytes;                    /* payload bytes */
    uint64_t records_dropped;          /* records that could not be sent (no remote, too large) */
    uint64_t send_errors;
    uint64_t nacks_received;           /* sequence numbers the remote NACKed */
    uint64_t retransmitted;
    uint64_t plis_received;
    uint64_t firs_received;
    uint64_t rr_received;
    uint32_t remote_fraction_lost;     /* last report block, /256 */
    int32_t remote_cumulative_lost;
    double remote_jitter_ms;
    double rtt_ms;                     /* -1 unknown */
} mc_send_stream_stats;

/* Every datagram received ends in exactly one of: not_rtp, rtp_in,
 * rtcp_accepted, unknown_ssrc, unknown_source, rtp_/rtcp_auth_failures,
 * rtp_/rtcp_replays, rtp_/rtcp_malformed, rtp_/rtcp_bad_padding,
 * payload_type_mismatch; they add up to datagrams_in. auth_failures,
 * replays and malformed are the totals over RTP and RTCP (malformed also
 * counts not_rtp and bad padding). */
typedef struct mc_engine_stats {
    uint64_t datagrams_in;
    uint64_t bytes_in;
    uint64_t datagrams_out;
    uint64_t bytes_out;
    uint64_t rtp_in;                   /* RTP packets accepted (authentic, parsed, accepted type) */
    uint64_t rtcp_in;                  /* datagrams that look like RTCP (RFC 5761), before checks */
    uint64_t rtcp_out;
    uint64_t unknown_ssrc;             /* authentic-looking packets for no known stream */
    uint64_t unknown_source;           /* strict sessions: wrong remote address */
    uint64_t malformed;                /* not RTP/RTCP, truncated, bad lengths */
    uint64_t auth_failures;
    uint64_t replays;
    uint64_t send_errors;
    uint64_t io_errors;
    uint64_t loops;
    uint64_t app_received;             /* RTCP APP packets delivered as events */
    uint64_t app_sent;                 /* RTCP APP packets sent (mc_engine_send_rtcp_app) */
    uint64_t app_dropped;              /* APP packets not delivered: data longer than
                                          MC_RTCP_APP_MAX_DATA, or the session has no event ring */
    uint64_t tx_no_key;                /* RTCP packets a receive-only session (no tx key) could
                                          not protect, so did not send */
    uint64_t rtcp_accepted;            /* compound RTCP packets authentic and valid, acted on */
    uint64_t not_rtp;                  /* neither RTP nor RTCP (STUN, DTLS, junk, V != 2, shorter
                                          than 2 bytes) or truncated by the socket */
    uint64_t rtp_auth_failures;        /* SRTP / SRTCP tag mismatch */
    uint64_t rtcp_auth_failures;
    uint64_t rtp_replays;              /* SRTP / SRTCP replay window */
    uint64_t rtcp_replays;
    uint64_t rtp_malformed;            /* too short, header past the end (RFC 3550 5.1) */
    uint64_t rtcp_malformed;           /* too short, or a compound that fails RFC 3550 A.2 */
    uint64_t rtp_bad_padding;          /* P set with a count of 0 or past the payload */
    uint64_t rtcp_bad_padding;         /* padding on a packet other than the last, or a bad count */
    uint64_t payload_type_mismatch;    /* authentic RTP of a type its stream does not accept */
    uint32_t sessions;
    uint32_t recv_streams;
    uint32_t send_streams;
    uint32_t running;
} mc_engine_stats;

/* [control] Create an engine and bind its socket. */
MC_API mc_status mc_engine_new(const mc_engine_config *config, mc_engine **out);
/* [control] Start the I/O thread (not with MC_ENGINE_NO_THREAD). */
MC_API mc_status mc_engine_start(mc_engine *engine);
/* [control] Stop the I/O thread (sessions stay; start again is allowed). */
MC_API mc_status mc_engine_stop(mc_engine *engine);
/* [control] Stop, remove every session and stream, close the socket, free. */
MC_API void mc_engine_free(mc_engine *engine);
/* [any] The bound local port. */
MC_API mc_status mc_engine_local_port(mc_engine *engine, uint16_t *port);
/* [control] Add / remove a session; ids are assigned by the engine. */
MC_API mc_status mc_engine_add_session(mc_engine *engine, const mc_session_config *config,
                                       uint32_t *session_id);
MC_API mc_status mc_engine_remove_session(mc_engine *engine, uint32_t session_id);
/* [control] Set or change where a session sends (e.g. after signaling). */
MC_API mc_status mc_engine_set_remote(mc_engine *engine, uint32_t session_id,
                                      const char *remote_host, uint16_t remote_port,
                                      uint16_t remote_rtcp_port);
MC_API mc_status mc_engine_add_recv_stream(mc_engine *engine, uint32_t session_id,
                                           const mc_recv_stream_config *config);
MC_API mc_status mc_engine_remove_recv_stream(mc_engine *engine, uint32_t session_id,
                                              uint32_t ssrc);
/* [control] MC_E_STATE on a receive-only session (SRTP without a tx key). */
MC_API mc_status mc_engine_add_send_stream(mc_engine *engine, uint32_t session_id,
                                           const mc_send_stream_config *config);
MC_API mc_status mc_engine_remove_send_stream(mc_engine *engine, uint32_t session_id,
                                              uint32_t ssrc);
/* [any] Tell the I/O thread that send rings have new records (cheap when
 * it is awake: a flag check; one datagram to its wake socket otherwise). */
MC_API mc_status mc_engine_wake(mc_engine *engine);
/* [control] Ask the remote of a receive stream for a key frame (PLI). */
MC_API mc_status mc_engine_request_keyframe(mc_engine *engine, uint32_t session_id, uint32_t ssrc);
/* Key-frame request methods (a bit set). */
enum {
    MC_KEYFRAME_PLI = 1,               /* RTCP PLI (RFC 4585 6.3.1) */
    MC_KEYFRAME_FIR = 2                /* RTCP FIR (RFC 5104 4.3.1); each one a new command:
                                        * the stream's FIR sequence number goes up by one */
};
/* [control] Ask the remote of a receive stream for a key frame with the
 * given methods (MC_KEYFRAME_PLI | MC_KEYFRAME_FIR); the I/O thread sends
 * them in one compound RTCP packet and counts them (plis_sent, firs_sent). */
MC_API mc_status mc_engine_request_keyframe_methods(mc_engine *engine, uint32_t session_id,
                                                    uint32_t ssrc, uint32_t methods);
/* [control] Send an RTCP APP packet (RFC 3550 6.7) to the session's remote:
 * one compound of an empty RR from `ssrc` and the APP packet (name: 4 bytes,
 * subtype 0..31, data a multiple of 4 bytes up to MC_RTCP_APP_MAX_DATA),
 * SRTCP-protected with the session's tx key. While the I/O thread runs the
 * packet is queued for it (it owns the outbound SRTP context) and sent at its
 * next pass; otherwise it is sent from the calling thread. Counted in
 * app_sent when it leaves. MC_E_INVAL (name NULL, subtype > 31, data not a
 * multiple of 4), MC_E_TOO_LARGE (data), MC_E_NOT_FOUND (session),
 * MC_E_STATE (no remote address known yet, or a receive-only session without
 * a tx key), MC_E_FULL (MC_ENGINE_APP_QUEUE packets already wait). */
MC_API mc_status mc_engine_send_rtcp_app(mc_engine *engine, uint32_t session_id, uint32_t ssrc,
                                         const uint8_t *name, uint32_t subtype,
                                         const uint8_t *data, uint32_t data_length);
/* [control] Statistics; while running they are at most ~20 ms old. */
MC_API mc_status mc_engine_get_stats(mc_engine *engine, mc_engine_stats *out);
MC_API mc_status mc_engine_get_recv_stats(mc_engine *engine, uint32_t session_id, uint32_t ssrc,
                                          mc_recv_stream_stats *out);
MC_API mc_status mc_engine_get_send_stats(mc_engine *engine, uint32_t session_id, uint32_t ssrc,
                                          mc_send_stream_stats *out);
/* [control] Run the exact receive path on `count` datagrams laid out back to
 * back (lengths[i]) as if they came from from_host:from_port at now_ns
 * (0: mc_now_ns()), without the socket. With step_ns > 0 datagram i arrives
 * at now_ns + i * step_ns and the receive streams' timers (jitter-buffer
 * pops, reorder release) run after each one, as on the I/O thread with
 * real-time arrivals. Only while the I/O thread is not running. For
 * benchmarks and deterministic tests. */
MC_API mc_status mc_engine_inject_batch(mc_engine *engine, const uint8_t *data,
                                        const uint32_t *lengths, uint32_t count,
                                        const char *from_host, uint16_t from_port, int64_t now_ns,
                                        int64_t step_ns);
/* [control] One pass of the timer and send work (jitter ticks, reorder,
 * NACK/PLI, RTCP, send rings) at now_ns, without the I/O thread. */
MC_API mc_status mc_engine_poll(mc_engine *engine, int64_t now_ns);

/* [any] CPU time consumed by the engine's I/O thread so far (0 if unknown). */
MC_API mc_status mc_engine_io_cpu_ns(mc_engine *engine, int64_t *cpu_ns);
/* [consumer] Read up to `max_records` records of a receive ring, split:
 * headers[i] gets record i's mc_rtp_record and its payload is copied to
 * payloads + payload_offsets[i] (8-aligned), payload_lengths[i] bytes. Stops
 * early when the next payload does not fit in payloads_size. A record shorter
 * than a header gets a zeroed header and no payload. MC_E_EMPTY when none,
 * MC_E_CLOSED once closed and drained, MC_E_BUFFER if the first payload does
 * not fit. One call per batch: Python gets the headers as one array. */
MC_API mc_status mc_engine_read_records(mc_ring *ring, mc_rtp_record *headers, uint8_t *payloads,
                                        size_t payloads_size, uint32_t *payload_offsets,
                                        uint32_t *payload_lengths, uint32_t max_records,
                                        uint32_t *count);
/* @cdef-end */

/* ------------------------------------------------------------------------
 * Audio: codecs, resampling, mixing, DTMF, levels (mixer.c, opus_codec.c,
 * g711.c, resample.c, audio_codec.c, dtmf.c, audiolevel.c).
 *
 * The media format at every boundary is the Teams media SDK's Pcm16K:
 * 16 kHz, mono, signed 16-bit native-endian (little-endian on every
 * supported host), 20 ms = 320 samples = 640 bytes per frame.
 * Codec objects are single-threaded: one thread at a time per handle
 * ([owner]: the thread that owns the handle, e.g. the media thread).
 * ---------------------------------------------------------------------- */

/* @cdef-begin audio */
enum {
    MC_AUDIO_RATE_HZ = 16000,
    MC_AUDIO_FRAME_SAMPLES = 320,
    MC_AUDIO_FRAME_BYTES = 640,
    MC_AUDIO_MAX_FRAME_SAMPLES = 1920,   /* 120 ms at 16 kHz: the longest Opus packet */
    MC_OPUS_MAX_PACKET = 1275,

    MC_MIX_AUTO = 0,                     /* best kernel this CPU supports */
    MC_MIX_SCALAR = 1,
    MC_MIX_SSE2 = 2,
    MC_MIX_AVX2 = 3,
    MC_MIX_MAX_SOURCES = 1024,

    MC_CODEC_OPUS = 1,                   /* RTP clock 48000 (RFC 7587), decoded to 16 kHz */
    MC_CODEC_PCMU = 2,                   /* G.711 mu-law, 8000 Hz */
    MC_CODEC_PCMA = 3,                   /* G.711 A-law, 8000 Hz */
    MC_CODEC_L16 = 4,                    /* RFC 3551 L16 (big-endian), mono, 8000 or 16000 Hz */

    MC_OPUS_APPLICATION_VOIP = 0,
    MC_OPUS_APPLICATION_AUDIO = 1,

    MC_RESAMPLE_UP_8K_16K = 1,
    MC_RESAMPLE_DOWN_16K_8K = 2,

    MC_DTMF_PAYLOAD_BYTES = 4,
    MC_DTMF_MAX_PACKETS_PER_TICK = 4,
    MC_AUDIO_LEVEL_SILENT = 127          /* RFC 6464 level: -127 dBov and below */
};

/* ---- mixer: out[i] = saturate_int16(sum over sources of src[s][i]), int32
 * accumulation, saturation once. count may be 0 (silence). */
/* [any] Sources given as pointers (any order, any alignment). */
MC_API mc_status mc_mix_i16(const int16_t *const *sources, uint32_t count, uint32_t samples,
                            int16_t *out);
/* [any] Sources back to back, `stride_samples` apart (>= samples). */
MC_API mc_status mc_mix_i16_strided(const int16_t *frames, uint32_t count, uint32_t samples,
                                    uint32_t stride_samples, int16_t *out);
/* [any] Kernel in use (MC_MIX_SCALAR/SSE2/AVX2). */
MC_API mc_status mc_mix_get_impl(uint32_t *impl);
/* [control] Force a kernel (tests, benchmarks); MC_MIX_AUTO restores the best.
 * MC_E_UNSUPPORTED when this CPU cannot run it. Process-wide. */
MC_API mc_status mc_mix_set_impl(uint32_t impl);

/* ---- codecs: one interface over Opus, G.711 and L16. PCM is always 16 kHz
 * mono; `samples` counts 16 kHz samples. */
typedef struct mc_audio_decoder mc_audio_decoder;
typedef struct mc_audio_encoder mc_audio_encoder;

typedef struct mc_audio_decoder_stats {
    uint64_t frames;            /* payloads decoded */
    uint64_t concealed;         /* frames synthesised by packet-loss concealment */
    uint64_t fec_recovered;     /* lost frames rebuilt from the next packet's in-band FEC */
    uint64_t errors;            /* payloads rejected (corrupt, oversized); counted, not fatal */
    uint64_t samples_out;
} mc_audio_decoder_stats;

typedef struct mc_audio_encoder_config {
    uint32_t codec;             /* MC_CODEC_* */
    uint32_t clock_rate_hz;     /* RTP clock: 48000 Opus, 8000 G.711, 8000/16000 L16; 0 = default */
    uint32_t application;       /* Opus: MC_OPUS_APPLICATION_VOIP or _AUDIO */
    uint32_t bitrate_bps;       /* Opus: 6000..510000, 0 = libopus default */
    uint32_t complexity;        /* Opus: 0..10 (values > 10 mean the default, 10) */
    uint32_t inband_fec;        /* Opus: 1 = LBRR in-band FEC */
    uint32_t dtx;               /* Opus: 1 = discontinuous transmission */
    uint32_t packet_loss_pct;   /* Opus: expected loss 0..100 (drives FEC) */
} mc_audio_encoder_config;

/* [control] A decoder to 16 kHz mono. clock_rate_hz 0 = the codec's default. */
MC_API mc_status mc_audio_decoder_new(uint32_t codec, uint32_t clock_rate_hz,
                                      mc_audio_decoder **out);
/* [owner] Decode one RTP payload. MC_E_MALFORMED / MC_E_CODEC / MC_E_TOO_LARGE
 * for bad payloads (counted; the decoder stays usable); MC_E_BUFFER when
 * max_samples is too small for this payload. */
MC_API mc_status mc_audio_decode(mc_audio_decoder *dec, const uint8_t *payload, uint32_t length,
                                 int16_t *pcm, uint32_t max_samples, uint32_t *samples);
/* [owner] Conceal `samples` lost samples (Opus PLC; G.711/L16 fade the last
 * frame out). Counted once per call. */
MC_API mc_status mc_audio_decode_conceal(mc_audio_decoder *dec, uint32_t samples, int16_t *pcm);
/* [owner] Rebuild the `samples` lost just before `next_payload` from the
 * in-band FEC it carries (Opus decode_fec=1); falls back to concealment if it
 * carries none (*recovered = 0). Decode `next_payload` normally afterwards. */
MC_API mc_status mc_audio_decode_fec(mc_audio_decoder *dec, const uint8_t *next_payload,
                                     uint32_t length, uint32_t samples, int16_t *pcm,
                                     uint32_t *recovered);
/* [owner] Samples (16 kHz) that `payload` decodes to, without decoding. */
MC_API mc_status mc_audio_payload_samples(mc_audio_decoder *dec, const uint8_t *payload,
                                          uint32_t length, uint32_t *samples);
/* [any] Counters (plain reads; exact when read from the owner thread). */
MC_API mc_status mc_audio_decoder_get_stats(mc_audio_decoder *dec, mc_audio_decoder_stats *out);
/* [control] */
MC_API void mc_audio_decoder_free(mc_audio_decoder *dec);

/* [control] An encoder from 16 kHz mono. */
MC_API mc_status mc_audio_encoder_new(const mc_audio_encoder_config *config,
                                      mc_audio_encoder **out);
/* [owner] Change bitrate, FEC, DTX, loss, complexity of a running Opus encoder. */
MC_API mc_status mc_audio_encoder_configure(mc_audio_encoder *enc,
                                            const mc_audio_encoder_config *config);
/* [owner] Encode `samples` (a 16 kHz frame of 2.5..60 ms for Opus, a multiple
 * of 2 for G.711) into out. With DTX, *length <= 2 means "nothing worth
 * sending" (a DTX frame). */
MC_API mc_status mc_audio_encode(mc_audio_encoder *enc, const int16_t *pcm, uint32_t samples,
                                 uint8_t *out, uint32_t out_size, uint32_t *length);
/* [owner] RTP timestamp ticks that `samples` 16 kHz samples span on this codec's clock. */
MC_API mc_status mc_audio_encoder_ticks(mc_audio_encoder *enc, uint32_t samples, uint32_t *ticks);
/* [control] */
MC_API void mc_audio_encoder_free(mc_audio_encoder *enc);

/* ---- G.711 sample conversion (8 kHz, no resampling) and resampler. */
/* [any] law is MC_CODEC_PCMU or MC_CODEC_PCMA. */
MC_API mc_status mc_g711_encode(uint32_t law, const int16_t *pcm, uint32_t samples, uint8_t *out);
MC_API mc_status mc_g711_decode(uint32_t law, const uint8_t *in, uint32_t samples, int16_t *pcm);

typedef struct mc_resampler mc_resampler;
/* [control] A 2:1 polyphase half-band FIR resampler (63 taps, Kaiser window,
 * ~70 dB stopband, passband to ~3.4 kHz); state carries across calls. */
MC_API mc_status mc_resampler_new(uint32_t direction, mc_resampler **out);
/* [owner] Up: out gets 2*in_samples. Down: in_samples must be even, out gets
 * in_samples/2. in_samples <= 4096. */
MC_API mc_status mc_resample(mc_resampler *rs, const int16_t *in, uint32_t in_samples,
                             int16_t *out, uint32_t out_size, uint32_t *out_samples);
/* [owner] Group delay in output samples. */
MC_API mc_status mc_resampler_delay(mc_resampler *rs, uint32_t *delay_samples);
/* [owner] Forget the history (a new talk spurt / stream). */
MC_API mc_status mc_resampler_reset(mc_resampler *rs);
/* [control] */
MC_API void mc_resampler_free(mc_resampler *rs);

/* ---- DTMF, RFC 4733 telephone-event payloads.
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     event     |E|R| volume    |          duration             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * Events 0-9 = digits, 10 = '*', 11 = '#', 12-15 = A-D (RFC 4733 §3.2). */
typedef struct mc_dtmf_event {
    uint8_t event;              /* 0..255 */
    uint8_t end;                /* E bit */
    uint8_t volume;             /* 0..63, -dBm0 */
    uint16_t duration;          /* RTP clock ticks since the event's timestamp */
} mc_dtmf_event;

typedef struct mc_dtmf_digit {
    uint32_t digit;             /* ASCII: '0'-'9', '*', '#', 'A'-'D', or '?' for other events */
    uint32_t event;
    uint32_t end;               /* 0: the event started; 1: it ended */
    uint32_t duration_ticks;    /* so far (start) or total (end) */
    uint32_t rtp_timestamp;     /* the event's RTP timestamp */
    uint32_t volume;
} mc_dtmf_digit;

typedef struct mc_dtmf_packet {
    uint8_t payload[4];
    uint32_t rtp_timestamp;     /* the event's start timestamp (same for all its packets) */
    uint32_t marker;            /* 1 on the first packet of an event */
} mc_dtmf_packet;

typedef struct mc_dtmf_receiver_stats {
    uint64_t packets;
    uint64_t digits;            /* events that ended */
    uint64_t duplicates;        /* repeated end packets and stale updates ignored */
    uint64_t malformed;
} mc_dtmf_receiver_stats;

typedef struct mc_dtmf_receiver mc_dtmf_receiver;
typedef struct mc_dtmf_sender mc_dtmf_sender;

/* [any] Parse/serialize one 4-byte event (a longer payload carries more
 * events back to back only with RFC 2198 redundancy; we read the first). */
MC_API mc_status mc_dtmf_parse(const uint8_t *payload, uint32_t length, mc_dtmf_event *out);
MC_API mc_status mc_dtmf_build(const mc_dtmf_event *event, uint8_t *out, uint32_t out_size);
/* [any] '0'..'9', '*', '#', 'A'..'D' (also lower case) <-> event code. */
MC_API mc_status mc_dtmf_event_for_char(uint32_t ch, uint32_t *event);
MC_API mc_status mc_dtmf_char_for_event(uint32_t event, uint32_t *ch);

/* [control] */
MC_API mc_status mc_dtmf_receiver_new(mc_dtmf_receiver **out);
/* [owner] Feed one received telephone-event payload with its RTP timestamp
 * and marker. Writes 0..2 digit events to out[0..*count) (an unfinished
 * previous event is ended when a new one starts). Redundant end packets and
 * stale or duplicated updates produce nothing. */
MC_API mc_status mc_dtmf_receiver_push(mc_dtmf_receiver *rx, const uint8_t *payload,
                                       uint32_t length, uint32_t rtp_timestamp, uint32_t marker,
                                       mc_dtmf_digit *out, uint32_t *count);
/* [owner] End an event whose end packets never came (call on a timeout). */
MC_API mc_status mc_dtmf_receiver_flush(mc_dtmf_receiver *rx, mc_dtmf_digit *out,
                                        uint32_t *count);
MC_API mc_status mc_dtmf_receiver_get_stats(mc_dtmf_receiver *rx, mc_dtmf_receiver_stats *out);
/* [control] */
MC_API void mc_dtmf_receiver_free(mc_dtmf_receiver *rx);

/* [control] A sender ticking every packet_ms (usually 20) on an RTP clock of
 * clock_rate_hz (8000 or 48000). */
MC_API mc_status mc_dtmf_sender_new(uint32_t clock_rate_hz, uint32_t packet_ms,
                                    mc_dtmf_sender **out);
/* [owner] Queue tones (like Graph's sendDtmfTones): each tone lasts tone_ms
 * (>= packet_ms; capped at 65535 ticks), followed by gap_ms of silence.
 * MC_E_INVAL on a character that is not a DTMF tone; MC_E_STATE while a
 * previous string is still being sent. */
MC_API mc_status mc_dtmf_sender_start(mc_dtmf_sender *tx, const char *tones, uint32_t tone_ms,
                                      uint32_t gap_ms, uint32_t volume);
/* [owner] One packet_ms tick at RTP timestamp `rtp_timestamp`: writes 0..4
 * packets (the end packet goes out 3 times, RFC 4733 §2.5.1.4). *active = 1
 * while tones occupy this tick (the audio stream must not send media then). */
MC_API mc_status mc_dtmf_sender_tick(mc_dtmf_sender *tx, uint32_t rtp_timestamp,
                                     mc_dtmf_packet *out, uint32_t *count, uint32_t *active);
/* [owner] 1 once every queued tone and its end packets went out. */
MC_API mc_status mc_dtmf_sender_idle(mc_dtmf_sender *tx, uint32_t *idle);
/* [control] */
MC_API void mc_dtmf_sender_free(mc_dtmf_sender *tx);

/* ---- levels, for active-speaker detection. dBov as in RFC 6464: 0 is the
 * RMS of a full-scale square wave, so a full-scale sine is -3 dBov. */
/* [any] RMS level of pcm in dBov (-127 for digital silence). */
MC_API mc_status mc_audio_level_dbov(const int16_t *pcm, uint32_t samples, float *dbov);
/* [any] The RFC 6464 level (0..127 = -dBov, clamped) of pcm. */
MC_API mc_status mc_audio_level_rfc6464(const int16_t *pcm, uint32_t samples, uint8_t *level);
/* [any] Parse the one-byte RFC 6464 header-extension element (V bit, level). */
MC_API mc_status mc_audio_level_parse(const uint8_t *data, uint32_t length, uint8_t *voice,
                                      uint8_t *level);
/* @cdef-end */

/* ------------------------------------------------------------------------
 * H.264 over RTP (RFC 6184, packetization-mode 1).
 *
 * Depacketizer: RTP payloads of one stream, in sequence order (after the
 * reorder buffer), become whole Annex-B access units (4-byte start codes).
 * Single NAL unit packets, STAP-A and FU-A are understood; STAP-B, MTAP and
 * FU-B (interleaved mode, never negotiated) are counted, dropped, and spoil
 * their frame; NAL types 0, 30 and 31 (e.g. Lync's PACSI) are counted and
 * skipped. An access unit closes on the marker bit or on a timestamp change.
 *
 * Every frame handed out is decodable: after a sequence gap, a malformed or
 * unsupported payload, an oversized frame or a full output ring, the
 * depacketizer drops the incomplete frame and every frame after it until a
 * key frame, and raises a key-frame request (once per loss) that the owner
 * turns into RTCP PLI/FIR. A key frame is an IDR access unit with SPS and PPS
 * ahead of its first slice, or an IDR whose start is known (its first packet
 * directly follows the previous frame's last) when SPS/PPS seen earlier are
 * inserted (MC_H264_FRAME_PARAMS_INSERTED) — so a decoder reset just before
 * any key frame still decodes it.
 *
 * Output: each frame is an mc_h264_frame_header followed by `length` bytes
 * of Annex-B, either as one record (type MC_H264_RECORD_TYPE) of a ring the
 * depacketizer produces into, assembled in place through mc_ring_reserve /
 * mc_ring_commit (no copy), or in a caller buffer, one frame at a time.
 *
 * Packetizer: an Annex-B access unit becomes RTP packets of at most
 * max_payload payload bytes: small NAL units aggregated into STAP-A (SPS and
 * PPS always travel together), large ones fragmented into FU-A of balanced
 * size, the marker bit on the last packet, and the cached SPS/PPS inserted
 * before every IDR that lacks them. No allocation after creation.
 * ---------------------------------------------------------------------- */

/* @cdef-begin h264 */
typedef struct mc_h264_depacketizer mc_h264_depacketizer;
typedef struct mc_h264_packetizer mc_h264_packetizer;

enum {
    MC_H264_FRAME_KEY = 1,              /* decodable on its own: IDR with SPS/PPS ahead */
    MC_H264_FRAME_HAS_SPS = 2,          /* an SPS is in the frame (received or inserted) */
    MC_H264_FRAME_HAS_PPS = 4,
    MC_H264_FRAME_PARAMS_INSERTED = 8,  /* cached SPS/PPS were inserted before the IDR */
    MC_H264_FRAME_RESYNC = 16,          /* first frame after a start or a loss */
    MC_H264_FRAME_NO_MARKER = 32,       /* closed by a timestamp change, not the marker bit */
    MC_H264_RECORD_TYPE = 0x48323634,   /* ring record type of depacketized frames ("H264") */
    MC_H264_RECORD_IN_INPUT = 0x48323649, /* drain_frames: a frame assembled in the input ring
                                             ("H26I"): header + uint32 offset + uint32 0 */
    MC_H264_FRAME_SOURCE_OUTPUT = 0,    /* mc_h264_frame_ref.source: the output ring */
    MC_H264_FRAME_SOURCE_INPUT = 1,     /* ... the input (RTP) ring */
    MC_H264_DEFAULT_MAX_PAYLOAD = 1200,
    MC_H264_DEFAULT_MAX_FRAME = 1048576,
    MC_H264_HEADER_NONE = 0,            /* packetizer output: payloads only */
    MC_H264_HEADER_RTP = 1,             /* a 12-byte RTP header before each payload */
    MC_H264_HEADER_SEND_RECORD = 2      /* an mc_send_record (engine send ring) before each payload */
};

/* Header of every depacketized frame; the Annex-B bytes follow at offset 40. */
typedef struct mc_h264_frame_header {
    uint32_t rtp_timestamp;
    uint32_t flags;                     /* MC_H264_FRAME_* */
    uint32_t length;                    /* Annex-B bytes after this header */
    uint32_t ssrc;                      /* as given to mc_h264_depacketizer_new */
    uint16_t first_sequence;
    uint16_t last_sequence;
    uint32_t packets;
    int64_t first_arrival_ns;
    int64_t last_arrival_ns;
} mc_h264_frame_header;

/* Where a finished frame lies, with its header
 * (mc_h264_depacketizer_drain_frames): its Annex-B bytes are data[offset, end)
 * of the data area (mc_ring_data) of the output ring or, for a frame
 * assembled in place over its packets, of the input ring (`source`). */
typedef struct mc_h264_frame_ref {
    uint32_t rtp_timestamp;
    uint32_t flags;                     /* MC_H264_FRAME_* */
    uint32_t ssrc;
    uint16_t first_sequence;
    uint16_t last_sequence;
    uint32_t packets;
    uint32_t offset;
    int64_t first_arrival_ns;
    int64_t last_arrival_ns;
    uint32_t end;
    uint32_t length;                    /* end - offset */
    uint32_t source;                    /* MC_H264_FRAME_SOURCE_* */
    uint32_t reserved;
} mc_h264_frame_ref;

/* One received RTP packet, already parsed and SRTP-unprotected. */
typedef struct mc_h264_packet {
    const uint8_t *payload;             /* RTP payload (padding removed) */
    uint32_t payload_length;
    uint32_t timestamp;                 /* RTP timestamp (90 kHz) */
    int64_t arrival_ns;                 /* mc_now_ns() at receipt */
    uint16_t sequence;
    uint8_t marker;
    uint8_t reserved[5];
} mc_h264_packet;

typedef struct mc_h264_depacketizer_stats {
    uint64_t packets;                   /* packets pushed (late ones included) */
    uint64_t payload_bytes;
    uint64_t frames;                    /* access units handed out */
    uint64_t key_frames;
    uint64_t frames_dropped;            /* incomplete or undecodable, not handed out */
    uint64_t sequence_gaps;
    uint64_t packets_lost;              /* sum of gap sizes */
    uint64_t packets_late;              /* older than expected: duplicates, late reorders */
    uint64_t single_nal_packets;
    uint64_t stap_a_packets;
    uint64_t fu_a_packets;
    uint64_t unsupported_packets;       /* STAP-B, MTAP16/24, FU-B, types 0/30/31 */
    uint64_t malformed_packets;
    uint64_t frames_too_large;
    uint64_t ring_drops;                /* frames the output ring had no room for */
    uint64_t key_frame_requests;        /* times a key frame was asked for */
    uint64_t params_inserted;
    uint64_t plis_requested;            /* PLIs / FIRs the key-frame policy asked the */
    uint64_t firs_requested;            /* owner to send (mc_h264_depacketizer_poll_key_frame) */
    uint64_t output_waits;              /* drain_ring stopped before a frame the output ring
                                           had no room for yet (its packets wait in the input) */
    uint64_t frames_in_place;           /* drain_frames: frames assembled over their packets
                                           in the input ring (not copied to the output ring) */
    uint32_t waiting_for_key_frame;     /* 1 until a key frame restores sync */
    uint32_t key_frame_request_pending;
} mc_h264_depacketizer_stats;

typedef struct mc_h264_packetizer_config {
    uint32_t max_payload;               /* RTP payload bytes per packet; 0: 1200 */
    uint32_t ssrc;
    uint32_t tail_room;                 /* bytes left free after each packet (SRTP tag) */
    uint16_t first_sequence;
    uint8_t payload_type;
    uint8_t rtp_header;                 /* MC_H264_HEADER_*: what precedes each payload */
} mc_h264_packetizer_config;

typedef struct mc_h264_packetizer_stats {
    uint64_t access_units;
    uint64_t packets;
    uint64_t payload_bytes;
    uint64_t single_nal_packets;
    uint64_t stap_a_packets;
    uint64_t fu_a_packets;
    uint64_t idr_access_units;
    uint64_t params_inserted;           /* IDRs that got the cached SPS/PPS */
    uint64_t errors;                    /* access units refused (no NAL unit, buffer too small) */
    uint32_t next_sequence;
} mc_h264_packetizer_stats;

/* [control] A depacketizer for one stream. max_frame_bytes bounds an access
 * unit (0: MC_H264_DEFAULT_MAX_FRAME); larger frames are dropped and counted. */
MC_API mc_status mc_h264_depacketizer_new(uint32_t max_frame_bytes, uint32_t ssrc,
                                          mc_h264_depacketizer **out);
/* [control] Free (cancels a pending ring reservation). */
MC_API void mc_h264_depacketizer_free(mc_h264_depacketizer *depacketizer);
/* [control] Hand frames out as records of `ring`; the depacketizer's thread
 * becomes the ring's producer. Frames are assembled in place, so each frame
 * start reserves min(40 + max_frame_bytes, ring max record) bytes. */
MC_API mc_status mc_h264_depacketizer_set_ring(mc_h264_depacketizer *depacketizer, mc_ring *ring);
/* [control] Hand frames out in `buffer` (>= 40 bytes, 8-byte aligned): header
 * then Annex-B. Push stops after each frame until mc_h264_depacketizer_take_frame. */
MC_API mc_status mc_h264_depacketizer_set_buffer(mc_h264_depacketizer *depacketizer,
                                                 uint8_t *buffer, uint32_t size);
/* [io] Feed packets in sequence order. *consumed: packets taken (all of them
 * in ring mode; in buffer mode it stops at a finished frame); *frames: frames
 * handed out by this call. Bad payloads are counted, never an error. */
MC_API mc_status mc_h264_depacketizer_push(mc_h264_depacketizer *depacketizer,
                                           const mc_h264_packet *packets, uint32_t count,
                                           uint32_t *consumed, uint32_t *frames);
/* [io] Ring mode: feed up to `max_records` engine receive records (type
 * MC_RECORD_RTP: mc_rtp_record + payload, the stream's ring) straight from
 * `rtp_ring`, whose consumer this thread is; records without payload are
 * skipped. One call per batch, no copy but the payload into the frame.
 * *records: records consumed; *frames: frames handed out. */
MC_API mc_status mc_h264_depacketizer_drain_ring(mc_h264_depacketizer *depacketizer,
                                                 mc_ring *rtp_ring, uint32_t max_records,
                                                 uint32_t *records, uint32_t *frames);
/* [io] Ring mode, for a thread that is both the output ring's producer and
 * its consumer (a receive worker), one call per turn: release the frames the
 * previous call handed out, drain up to `max_records` records of `rtp_ring`
 * (as mc_h264_depacketizer_drain_ring), then hand out up to `max_refs` (at
 * most 256) frames in `refs` (*count of them; valid until the next call or
 * mc_h264_depacketizer_release_frames). A frame is assembled in place over
 * its own packets' records in `rtp_ring` whenever its bytes fit where the
 * packets' headers were (the common case: no second copy, no cold output
 * memory; those records stay unreleased until the frame is), else in the
 * output ring, which then holds a small MC_H264_RECORD_IN_INPUT record per
 * in-place frame to keep the order. Neither ring may have another consumer.
 * *records (may be NULL): records drained. */
MC_API mc_status mc_h264_depacketizer_drain_frames(mc_h264_depacketizer *depacketizer,
                                                   mc_ring *rtp_ring, uint32_t max_records,
                                                   mc_h264_frame_ref *refs, uint32_t max_refs,
                                                   uint32_t *count, uint32_t *records);
/* [control] Whether drain_frames may assemble frames in place (default 1);
 * 0: every frame is copied into the output ring. */
MC_API mc_status mc_h264_depacketizer_set_in_place(mc_h264_depacketizer *depacketizer,
                                                   int enabled);
/* [io] Release the frames the last mc_h264_depacketizer_drain_frames handed out. */
MC_API mc_status mc_h264_depacketizer_release_frames(mc_h264_depacketizer *depacketizer);
/* [io] Buffer mode: MC_OK and the header of the frame now in the buffer, which
 * is then free for the next frame once pushing resumes; MC_E_EMPTY if none. */
MC_API mc_status mc_h264_depacketizer_take_frame(mc_h264_depacketizer *depacketizer,
                                                 mc_h264_frame_header *out);
/* [io] *requested = 1 (and the request is cleared) if a loss raised a need
 * for a key frame since the last call: the raw flag, for owners with their
 * own policy. mc_h264_depacketizer_poll_key_frame (PLI, FIR as fallback)
 * consumes the same flag; use one or the other. */
MC_API mc_status mc_h264_depacketizer_take_key_frame_request(mc_h264_depacketizer *depacketizer,
                                                             uint32_t *requested);
/* [io] Key-frame requests with FIR as the fallback (RFC 5104 4.3.1): call
 * after each batch; *methods is 0 (nothing to send now) or a set of
 * MC_KEYFRAME_PLI / MC_KEYFRAME_FIR bits for the owner to send (e.g. with
 * mc_engine_request_keyframe_methods). A need for a key frame (a loss, a
 * start mid-stream, mc_h264_depacketizer_request_key_frame) is answered with
 * a PLI at once; if no key frame has been handed out T later, a FIR; then
 * PLI and FIR together after 2T, 4T, ... (each interval capped at
 * max_interval), until a key frame is handed out. T = max(timeout, 2 * RTT);
 * rtt_ns < 0: unknown. Defaults: timeout 500 ms, max_interval 2 s. */
MC_API mc_status mc_h264_depacketizer_poll_key_frame(mc_h264_depacketizer *depacketizer,
                                                     int64_t now_ns, int64_t rtt_ns,
                                                     uint32_t *methods);
/* [control] The timing of the policy above (0: the default). */
MC_API mc_status mc_h264_depacketizer_set_key_frame_timing(mc_h264_depacketizer *depacketizer,
                                                           int64_t timeout_ns,
                                                           int64_t max_interval_ns);
/* [any] Start a key-frame request (the policy above) even while in sync,
 * e.g. after a decoder error or when the application wants one. */
MC_API mc_status mc_h264_depacketizer_request_key_frame(mc_h264_depacketizer *depacketizer);
/* [io] Forget the stream position (new SSRC, seek): drop the partial frame
 * (releasing the input records it stood on when assembled in place; frames
 * handed out stay valid until released) and wait for a key frame. */
MC_API mc_status mc_h264_depacketizer_reset(mc_h264_depacketizer *depacketizer);
/* [any] Counters (each read atomically; the set is a snapshot). */
MC_API mc_status mc_h264_depacketizer_get_stats(mc_h264_depacketizer *depacketizer,
                                                mc_h264_depacketizer_stats *out);

/* [control] A packetizer for one stream (config NULL: defaults, no RTP header). */
MC_API mc_status mc_h264_packetizer_new(const mc_h264_packetizer_config *config,
                                        mc_h264_packetizer **out);
/* [control] */
MC_API void mc_h264_packetizer_free(mc_h264_packetizer *packetizer);
/* [producer] Packetize one Annex-B access unit into `out`: packet i at
 * offsets[i] (8-byte aligned), lengths[i] bytes, tail_room free bytes after
 * it; the last packet carries the marker bit. MC_E_BUFFER (nothing written,
 * sequence unchanged) if `out` or `max_packets` is too small; MC_E_MALFORMED
 * if the access unit holds no NAL unit. */
MC_API mc_status mc_h264_packetize(mc_h264_packetizer *packetizer, const uint8_t *access_unit,
                                   uint32_t length, uint32_t rtp_timestamp, uint8_t *out,
                                   size_t out_size, uint32_t *offsets, uint32_t *lengths,
                                   uint32_t max_packets, uint32_t *count);
/* [producer] The same, one ring record (of `record_type`) per packet, written
 * in place; the ring needs room for header + max_payload per
 * packet. A packet the ring refuses is dropped (counted by the ring). */
MC_API mc_status mc_h264_packetize_to_ring(mc_h264_packetizer *packetizer,
                                           const uint8_t *access_unit, uint32_t length,
                                           uint32_t rtp_timestamp, mc_ring *ring,
                                           uint32_t record_type, uint32_t *count);
/* [any] Counters. */
MC_API mc_status mc_h264_packetizer_get_stats(mc_h264_packetizer *packetizer,
                                              mc_h264_packetizer_stats *out);
/* @cdef-end */

/* ------------------------------------------------------------------------
 * RTP / RTCP (RFC 3550), header extensions (RFC 8285), audio level
 * (RFC 6464), feedback (RFC 4585, RFC 5104), and the receive buffers: an
 * adaptive audio jitter buffer and a video reorder buffer (NACK / PLI).
 *
 * Parsers never allocate: they fill a caller struct whose offsets point into
 * the caller's buffer. Writers serialize into a caller buffer and append at
 * `*used` (so compound RTCP packets are consecutive calls). Untrusted input
 * yields MC_E_MALFORMED, never a crash. The engine's I/O thread uses the
 * same functions (internal extras: native/src/rtp.h, rtcp.h, seq.h,
 * rtpstats.h, jitter.h, reorder.h).
 *
 * Buffers ([owner]): a jitter or reorder buffer belongs to one thread at a
 * time (the engine's I/O thread, or a test); it has no internal locking.
 * Every buffer function takes the current time `now_ns` (mc_now_ns() in
 * production, a test clock in tests).
 * ---------------------------------------------------------------------- */

/* @cdef-begin rtp */
enum {
    MC_RTP_MAX_CSRC = 15,
    MC_RTP_EXT_ONE_BYTE = 48862,       /* 0xBEDE, RFC 8285 4.2 */
    MC_RTP_EXT_TWO_BYTE = 4096,        /* 0x1000 (low 4 bits: appbits), RFC 8285 4.3 */
    MC_PACKET_OTHER = 0,               /* mc_rtp_classify: not RTP/RTCP (STUN, DTLS, junk) */
    MC_PACKET_RTP = 1,
    MC_PACKET_RTCP = 2                 /* RFC 5761 4: second byte 192..223 */
};

/* A parsed RTP header: a view of the caller's buffer (offsets from its start). */
typedef struct mc_rtp_header {
    uint8_t version;                   /* always 2 after a successful parse */
    uint8_t padding;                   /* P bit */
    uint8_t extension;                 /* X bit */
    uint8_t csrc_count;                /* CC */
    uint8_t marker;                    /* M bit */
    uint8_t payload_type;              /* PT, 0..127 */
    uint16_t sequence_number;
    uint32_t timestamp;
    uint32_t ssrc;
    uint32_t csrc[15];
    uint16_t extension_profile;        /* "defined by profile": 0xBEDE, 0x100X, or other */
    uint16_t extension_words;          /* length of the extension data in 32-bit words */
    uint32_t extension_offset;         /* start of the extension data (after its 4-byte header) */
    uint32_t header_length;            /* = payload_offset */
    uint32_t payload_offset;
    uint32_t payload_length;           /* without padding */
    uint8_t padding_length;            /* trailing padding bytes incl. the count byte (0 if P=0) */
} mc_rtp_header;

/* [any] Parse an RTP packet (RFC 3550 5.1). MC_OK or MC_E_MALFORMED (short,
 * version != 2, CSRCs or extension past the end, bad padding). */
MC_API mc_status mc_rtp_parse(const uint8_t *data, size_t length, mc_rtp_header *out);
/* [any] Bytes mc_rtp_serialize will write for `header` and a payload. */
MC_API mc_status mc_rtp_serialized_size(const mc_rtp_header *header, uint32_t payload_length,
                                        uint32_t *size);
/* [any] Write header (fixed part, CSRCs, extension from `extension_data`
 * of header->extension_words words when header->extension), then the
 * payload, then header->padding_length bytes of padding when header->padding
 * (the last byte holds the count). `payload` may overlap `out` at the
 * payload position. MC_E_BUFFER when out_size is too small (*written = the
 * size needed), MC_E_INVAL for out-of-range fields. */
MC_API mc_status mc_rtp_serialize(const mc_rtp_header *header, const uint8_t *extension_data,
                                  const uint8_t *payload, uint32_t payload_length, uint8_t *out,
                                  size_t out_size, size_t *written);
/* [any] Wrap-around arithmetic of native/src/seq.h, for tests and tools:
 * signed distance a - b and whether a is newer; and unwrapping of a
 * sequence of values to 64 bits (first value = cycle 0). */
MC_API mc_status mc_seq_compare(uint16_t a, uint16_t b, int32_t *diff, int32_t *newer);
MC_API mc_status mc_ts_compare(uint32_t a, uint32_t b, int64_t *diff, int32_t *newer);
MC_API mc_status mc_seq_unwrap_many(const uint16_t *seqs, uint32_t count, int64_t *out);
MC_API mc_status mc_ts_unwrap_many(const uint32_t *timestamps, uint32_t count, int64_t *out);
/* [any] RTP or RTCP on one port (RFC 5761 4), or other. */
MC_API mc_status mc_rtp_classify(const uint8_t *data, size_t length, uint32_t *kind);

/* [any] Iterate RFC 8285 elements of a parsed packet. Start with *cursor = 0;
 * each MC_OK gives one element (id, offset of its data in `data`, length);
 * MC_E_NOT_FOUND at the end; MC_E_MALFORMED for a bad element. Padding bytes
 * are skipped. Profiles other than one-/two-byte give MC_E_UNSUPPORTED. */
MC_API mc_status mc_rtp_ext_next(const uint8_t *data, const mc_rtp_header *header,
                                 uint32_t *cursor, uint8_t *id, uint32_t *offset,
                                 uint32_t *length);
/* [any] Find element `id`: MC_OK, MC_E_NOT_FOUND, MC_E_MALFORMED. */
MC_API mc_status mc_rtp_ext_find(const uint8_t *data, const mc_rtp_header *header, uint8_t id,
                                 uint32_t *offset, uint32_t *length);
/* [any] Append one element to extension data being built in `buffer` at
 * *used. profile MC_RTP_EXT_ONE_BYTE: id 1..14, length 1..16;
 * MC_RTP_EXT_TWO_BYTE: id 1..255, length 0..255. */
MC_API mc_status mc_rtp_ext_append(uint8_t *buffer, uint32_t buffer_size, uint32_t *used,
                                   uint16_t profile, uint8_t id, const uint8_t *element,
                                   uint32_t length);
/* [any] Zero-pad the extension data to a multiple of 4 bytes; *words gets
 * its length in 32-bit words (for mc_rtp_header.extension_words). */
MC_API mc_status mc_rtp_ext_finish(uint8_t *buffer, uint32_t buffer_size, uint32_t *used,
                                   uint16_t *words);
/* [any] RFC 6464 client-to-mixer audio level: voice activity flag and level
 * in -dBov (0..127). read: MC_OK / MC_E_NOT_FOUND / MC_E_MALFORMED. */
MC_API mc_status mc_rtp_audio_level_read(const uint8_t *data, const mc_rtp_header *header,
                                         uint8_t id, uint8_t *voice, uint8_t *level_dbov);
MC_API mc_status mc_rtp_audio_level_append(uint8_t *buffer, uint32_t buffer_size, uint32_t *used,
                                           uint16_t profile, uint8_t id, uint8_t voice,
                                           uint8_t level_dbov);

/* ---- RTCP ------------------------------------------------------------- */
enum {
    MC_RTCP_SR = 200,
    MC_RTCP_RR = 201,
    MC_RTCP_SDES = 202,
    MC_RTCP_BYE = 203,
    MC_RTCP_APP = 204,
    MC_RTCP_RTPFB = 205,               /* RFC 4585: FMT 1 = generic NACK */
    MC_RTCP_PSFB = 206,                /* RFC 4585: FMT 1 = PLI; RFC 5104: FMT 4 = FIR */
    MC_RTCP_FMT_NACK = 1,
    MC_RTCP_FMT_PLI = 1,
    MC_RTCP_FMT_FIR = 4,
    MC_RTCP_SDES_CNAME = 1,
    MC_RTCP_MAX_REPORTS = 31,
    MC_RTCP_APP_MAX_DATA = 1152,       /* APP application data we build or deliver: an SRTCP
                                          compound (RR + APP + index + tag) stays <= 1200 bytes */

    /* mc_rtcp_check_compound: what made a compound packet invalid */
    MC_RTCP_VALID = 0,
    MC_RTCP_BAD_LENGTH = 1,            /* empty, not a multiple of 4, or a length field past the end */
    MC_RTCP_BAD_VERSION = 2,           /* a packet with V != 2 */
    MC_RTCP_BAD_PADDING = 3,           /* P set on a packet other than the last, or a bad count */
    MC_RTCP_BAD_FIRST = 4,             /* first packet neither SR/RR nor (RFC 5506) feedback */
    MC_RTCP_BAD_PACKET = 5             /* a packet of a known type does not parse */
};

/* One packet of a compound RTCP packet (RFC 3550 6.1). */
typedef struct mc_rtcp_packet {
    uint8_t packet_type;               /* PT */
    uint8_t count;                     /* RC / SC / FMT (5 bits) */
    uint8_t padding;                   /* P bit */
    uint32_t offset;                   /* start of this packet in the compound buffer */
    uint32_t length;                   /* bytes incl. the 4-byte header, (length field + 1) * 4 */
} mc_rtcp_packet;

typedef struct mc_rtcp_report_block {  /* RFC 3550 6.4.1 */
    uint32_t ssrc;
    uint8_t fraction_lost;             /* 8-bit fixed point, lost/expected * 256 */
    int32_t cumulative_lost;           /* 24-bit signed */
    uint32_t extended_highest_seq;
    uint32_t jitter;                   /* timestamp units */
    uint32_t lsr;                      /* middle 32 bits of the last SR's NTP timestamp */
    uint32_t dlsr;                     /* delay since last SR, 1/65536 s */
} mc_rtcp_report_block;

typedef struct mc_rtcp_sender_info {   /* RFC 3550 6.4.1 */
    uint32_t ssrc;
    uint64_t ntp_timestamp;            /* 32.32 fixed point seconds since 1900 */
    uint32_t rtp_timestamp;
    uint32_t packet_count;
    uint32_t octet_count;
} mc_rtcp_sender_info;

/* [any] Iterate a compound packet: start *cursor = 0; MC_OK gives the next
 * packet, MC_E_NOT_FOUND at the end, MC_E_MALFORMED for a bad header or
 * length (iteration stops there). */
MC_API mc_status mc_rtcp_next(const uint8_t *data, size_t length, uint32_t *cursor,
                              mc_rtcp_packet *out);
/* [any] Parsers of one packet (`data`,`length` = that packet, as located by
 * mc_rtcp_next). Report blocks beyond max_blocks are not copied; *count is
 * the number in the packet. */
MC_API mc_status mc_rtcp_parse_sr(const uint8_t *data, size_t length, mc_rtcp_sender_info *sender,
                                  mc_rtcp_report_block *blocks, uint32_t max_blocks,
                                  uint32_t *count);
MC_API mc_status mc_rtcp_parse_rr(const uint8_t *data, size_t length, uint32_t *ssrc,
                                  mc_rtcp_report_block *blocks, uint32_t max_blocks,
                                  uint32_t *count);
/* [any] SDES items: start *cursor = 0; MC_OK per item (chunk ssrc, item
 * type, offset/length of its text in `data`), MC_E_NOT_FOUND at the end. */
MC_API mc_status mc_rtcp_sdes_next(const uint8_t *data, size_t length, uint32_t *cursor,
                                   uint32_t *ssrc, uint8_t *item_type, uint32_t *offset,
                                   uint32_t *item_length);
/* [any] BYE: up to max_ssrcs sources (*count = number in the packet) and the
 * optional reason (reason_length 0 when absent). */
MC_API mc_status mc_rtcp_parse_bye(const uint8_t *data, size_t length, uint32_t *ssrcs,
                                   uint32_t max_ssrcs, uint32_t *count, uint32_t *reason_offset,
                                   uint32_t *reason_length);
/* [any] Generic NACK (RFC 4585 6.2.1): the lost sequence numbers, expanded
 * from PID+BLP pairs in order; *count may exceed max_lost (rest not copied). */
MC_API mc_status mc_rtcp_parse_nack(const uint8_t *data, size_t length, uint32_t *sender_ssrc,
                                    uint32_t *media_ssrc, uint16_t *lost, uint32_t max_lost,
                                    uint32_t *count);
/* [any] PLI (RFC 4585 6.3.1). */
MC_API mc_status mc_rtcp_parse_pli(const uint8_t *data, size_t length, uint32_t *sender_ssrc,
                                   uint32_t *media_ssrc);
/* [any] FIR (RFC 5104 4.3.1): FCI entries (ssrc, command sequence number). */
MC_API mc_status mc_rtcp_parse_fir(const uint8_t *data, size_t length, uint32_t *sender_ssrc,
                                   uint32_t *ssrcs, uint8_t *seq_nrs, uint32_t max_entries,
                                   uint32_t *count);

/* [any] Writers: append one packet to `buffer` at *used (MC_E_BUFFER when it
 * does not fit; nothing written). */
MC_API mc_status mc_rtcp_write_sr(uint8_t *buffer, size_t buffer_size, size_t *used,
                                  const mc_rtcp_sender_info *sender,
                                  const mc_rtcp_report_block *blocks, uint32_t count);
MC_API mc_status mc_rtcp_write_rr(uint8_t *buffer, size_t buffer_size, size_t *used, uint32_t ssrc,
                                  const mc_rtcp_report_block *blocks, uint32_t count);
MC_API mc_status mc_rtcp_write_sdes_cname(uint8_t *buffer, size_t buffer_size, size_t *used,
                                          uint32_t ssrc, const uint8_t *cname,
                                          uint32_t cname_length);
MC_API mc_status mc_rtcp_write_bye(uint8_t *buffer, size_t buffer_size, size_t *used,
                                   const uint32_t *ssrcs, uint32_t count, const uint8_t *reason,
                                   uint32_t reason_length);
/* [any] Generic NACK from a list of lost sequence numbers (any order,
 * duplicates allowed; wrap-around aware): packed into PID+BLP pairs. */
MC_API mc_status mc_rtcp_write_nack(uint8_t *buffer, size_t buffer_size, size_t *used,
                                    uint32_t sender_ssrc, uint32_t media_ssrc,
                                    const uint16_t *lost, uint32_t count);
MC_API mc_status mc_rtcp_write_pli(uint8_t *buffer, size_t buffer_size, size_t *used,
                                   uint32_t sender_ssrc, uint32_t media_ssrc);
MC_API mc_status mc_rtcp_write_fir(uint8_t *buffer, size_t buffer_size, size_t *used,
                                   uint32_t sender_ssrc, const uint32_t *ssrcs,
                                   const uint8_t *seq_nrs, uint32_t count);
/* [any] APP (RFC 3550 6.7): subtype 0..31, a 4-byte name (ASCII by 6.7,
 * not checked), application data of a multiple of 4 bytes (MC_E_INVAL
 * otherwise; MC_E_TOO_LARGE past 65535 words). */
MC_API mc_status mc_rtcp_write_app(uint8_t *buffer, size_t buffer_size, size_t *used,
                                   uint32_t ssrc, const uint8_t *name, uint32_t subtype,
                                   const uint8_t *data, uint32_t data_length);
/* [any] APP: the SSRC/CSRC, name (4 bytes copied to `name`), subtype, and
 * where the application data lies in `data` (padding removed). */
MC_API mc_status mc_rtcp_parse_app(const uint8_t *data, size_t length, uint32_t *ssrc,
                                   uint8_t *name, uint32_t *subtype, uint32_t *data_offset,
                                   uint32_t *data_length);
/* [any] Validity of a whole compound packet before anything in it is acted
 * on (RFC 3550 6.1 and A.2; RFC 5506 3.4.2 for reduced-size packets):
 * length a multiple of 4 and the packets' lengths adding up to it, V = 2
 * throughout, padding only on the last packet with a count inside it, the
 * first packet an SR or RR (or, reduced-size, an RTPFB/PSFB feedback or an
 * APP), and every packet of a type parsed here (SR, RR, SDES, BYE, APP,
 * NACK, PLI, FIR) parsing. Unknown types are skipped as 6.1 asks. MC_OK or
 * MC_E_MALFORMED with *problem = MC_RTCP_BAD_* (may be NULL). */
MC_API mc_status mc_rtcp_check_compound(const uint8_t *data, size_t length, uint32_t *problem);

/* [any] Round-trip time from a report block received at NTP time
 * `arrival_ntp` (RFC 3550 6.4.1: A - LSR - DLSR). MC_E_NOT_FOUND when
 * lsr == 0 (no SR seen by the peer yet). */
MC_API mc_status mc_rtcp_rtt_ns(uint64_t arrival_ntp, uint32_t lsr, uint32_t dlsr, int64_t *rtt_ns);
/* [any] RTCP transmission interval (RFC 3550 6.3.1 and A.7, simplified: no
 * timer reconsideration; see rtcp.c). random_factor in [0.5, 1.5] is the
 * caller's random draw (injectable for tests). */
MC_API mc_status mc_rtcp_interval_ns(uint32_t members, uint32_t senders, double rtcp_bw_bytes_per_s,
                                     int32_t we_sent, double avg_rtcp_size_bytes, int32_t initial,
                                     double random_factor, int64_t *interval_ns);

/* ---- per-stream receive statistics (RFC 3550 A.1, A.3, A.8) ----------- */
typedef struct mc_rtp_recv_stats {
    uint64_t received;                 /* packets, duplicates included (RFC 3550 A.3) */
    uint64_t bytes;                    /* payload bytes */
    uint64_t expected;                 /* extended highest - base + 1 */
    int64_t lost;                      /* expected - received (may be negative with duplicates) */
    uint64_t duplicates;
    uint64_t reordered;                /* arrived after a higher sequence number */
    uint64_t late;                     /* arrived more than the duplicate window behind */
    uint32_t extended_highest_seq;
    uint32_t jitter;                   /* timestamp units (A.8) */
    double jitter_ms;
    uint8_t last_fraction_lost;        /* of the last report block generated */
} mc_rtp_recv_stats;

typedef struct mc_rtpstats mc_rtpstats;

/* [control] A standalone statistics object (the engine embeds the same
 * struct per receive stream, see rtpstats.h). clock_rate: RTP clock in Hz. */
MC_API mc_status mc_rtpstats_new(uint32_t clock_rate, mc_rtpstats **out);
MC_API void mc_rtpstats_free(mc_rtpstats *stats);
/* [owner] Account one received packet (after SRTP authentication). */
MC_API mc_status mc_rtpstats_update(mc_rtpstats *stats, int64_t arrival_ns,
                                    uint16_t sequence_number, uint32_t timestamp,
                                    uint32_t payload_bytes);
/* [owner] Remember an SR from this source for LSR/DLSR (its NTP timestamp). */
MC_API mc_status mc_rtpstats_sr_received(mc_rtpstats *stats, uint64_t ntp_timestamp,
                                         int64_t arrival_ns);
/* [owner] Fill a report block for `ssrc` (fraction lost since the previous
 * report block, A.3) and start a new interval. MC_E_EMPTY before any packet. */
MC_API mc_status mc_rtpstats_report_block(mc_rtpstats *stats, uint32_t ssrc, int64_t now_ns,
                                          mc_rtcp_report_block *out);
/* [any thread that owns it] Snapshot of the counters. */
MC_API mc_status mc_rtpstats_get(const mc_rtpstats *stats, mc_rtp_recv_stats *out);

/* ---- adaptive audio jitter buffer ------------------------------------ */
enum {
    MC_JITTER_FRAME = 0,               /* a packet for this slot: decode it */
    MC_JITTER_LOST = 1,                /* its packet is missing; later ones are here: conceal */
    MC_JITTER_UNDERRUN = 2,            /* buffer ran dry: conceal, the delay grows one slot */
    MC_JITTER_BUFFERING = 3            /* not started yet (filling to the target delay) */
};

typedef struct mc_jitter_config {
    uint32_t clock_rate;               /* RTP clock, e.g. 48000 for Opus */
    uint32_t frame_ms;                 /* packet duration = pop period, e.g. 20 */
    uint32_t min_delay_ms;
    uint32_t max_delay_ms;
    uint32_t capacity;                 /* slots, power of two, > max_delay_ms / frame_ms */
    uint32_t max_payload;              /* bytes stored per packet */
} mc_jitter_config;

typedef struct mc_jitter_frame {
    uint32_t kind;                     /* MC_JITTER_* */
    uint16_t sequence_number;
    uint8_t marker;
    uint8_t payload_type;
    uint32_t timestamp;
    uint32_t payload_length;
    int64_t arrival_ns;
} mc_jitter_frame;

typedef struct mc_jitter_stats {
    uint64_t inserted;
    uint64_t played;                   /* MC_JITTER_FRAME results */
    uint64_t lost;                     /* MC_JITTER_LOST results */
    uint64_t underruns;                /* MC_JITTER_UNDERRUN results */
    uint64_t late;                     /* arrived after their slot was played or given up */
    uint64_t early;                    /* too far ahead to store */
    uint64_t duplicates;
    uint64_t dropped_to_shrink;        /* skipped to bring the delay down to the target */
    uint64_t resets;                   /* re-synchronisations after a sequence jump */
    uint64_t too_large;                /* payload larger than max_payload */
    uint64_t reset_dropped;            /* stored packets discarded by those resets */
    uint32_t target_delay_ms;
    uint32_t current_delay_ms;         /* buffered span ahead of the next slot */
    double jitter_ms;                  /* interarrival jitter estimate (A.8 style) */
} mc_jitter_stats;

typedef struct mc_jitter mc_jitter;

/* [control] Create / free. */
MC_API mc_status mc_jitter_new(const mc_jitter_config *config, mc_jitter **out);
MC_API void mc_jitter_free(mc_jitter *jitter);
/* [owner] Insert a received packet (payload copied). MC_OK stored;
 * MC_DROPPED for duplicate, late, early or oversize (counted). */
MC_API mc_status mc_jitter_insert(mc_jitter *jitter, int64_t now_ns, uint16_t sequence_number,
                                  uint32_t timestamp, uint8_t marker, uint8_t payload_type,
                                  const uint8_t *payload, uint32_t payload_length);
/* [owner] Called once per frame_ms tick: the packet for the next slot
 * (MC_OK, kind FRAME, payload copied into `payload`), or MC_E_EMPTY with
 * kind LOST / UNDERRUN / BUFFERING. MC_E_BUFFER if payload_size is too small
 * (the packet stays). */
MC_API mc_status mc_jitter_pop(mc_jitter *jitter, int64_t now_ns, uint8_t *payload,
                               uint32_t payload_size, mc_jitter_frame *frame);
MC_API mc_status mc_jitter_get_stats(const mc_jitter *jitter, mc_jitter_stats *out);

/* ---- video reorder buffer with NACK and PLI decisions --------------- */
typedef struct mc_reorder_config {
    uint32_t capacity;                 /* slots, power of two (e.g. 512) */
    uint32_t max_payload;              /* bytes stored per packet (e.g. 1500) */
    uint32_t nack_max_retries;         /* NACKs per missing packet (e.g. 3) */
    int64_t nack_min_interval_ns;      /* spacing floor between NACKs of one packet */
    int64_t max_wait_ns;               /* how long a gap may hold back release before giving up */
    int64_t pli_min_interval_ns;       /* at most one key-frame request per interval */
} mc_reorder_config;

typedef struct mc_reorder_packet {
    uint16_t sequence_number;
    uint8_t marker;
    uint8_t payload_type;
    uint32_t timestamp;
    uint32_t payload_length;
    uint32_t skipped_before;           /* packets given up just before this one; 1 after a sequence restart */
    int64_t arrival_ns;
} mc_reorder_packet;

typedef struct mc_reorder_stats {
    uint64_t inserted;
    uint64_t released;
    uint64_t duplicates;
    uint64_t late;                     /* arrived after release moved past them */
    uint64_t recovered;                /* arrived after being NACKed */
    uint64_t lost;                     /* given up */
    uint64_t nacks_sent;               /* sequence numbers handed out for NACK */
    uint64_t pli_requests;
    uint64_t overflow_dropped;         /* buffered packets dropped when a jump overran capacity */
    uint64_t too_large;
    uint64_t reset_dropped;            /* buffered packets discarded when the sender restarted */
    int64_t rtt_ns;
} mc_reorder_stats;

typedef struct mc_reorder mc_reorder;

MC_API mc_status mc_reorder_new(const mc_reorder_config *config, mc_reorder **out);
MC_API void mc_reorder_free(mc_reorder *reorder);
/* [owner] Insert a packet (payload copied). MC_OK stored; MC_DROPPED for a
 * duplicate, late or oversize packet (counted). */
MC_API mc_status mc_reorder_insert(mc_reorder *reorder, int64_t now_ns, uint16_t sequence_number,
                                   uint32_t timestamp, uint8_t marker, uint8_t payload_type,
                                   const uint8_t *payload, uint32_t payload_length);
/* [owner] Release the next packet in sequence order (MC_OK), or MC_E_EMPTY
 * when the next one is missing and its gap is still repairable. A gap that
 * cannot be repaired in time is skipped (packet.skipped_before > 0). */
MC_API mc_status mc_reorder_pop(mc_reorder *reorder, int64_t now_ns, uint8_t *payload,
                                uint32_t payload_size, mc_reorder_packet *packet);
/* [owner] Sequence numbers to NACK now (oldest first): missing, fewer than
 * nack_max_retries NACKs so far, and the last one at least
 * max(nack_min_interval_ns, rtt) ago. Marks them as NACKed. */
MC_API mc_status mc_reorder_nack_list(mc_reorder *reorder, int64_t now_ns, uint16_t *seqs,
                                      uint32_t max_seqs, uint32_t *count);
/* [owner] *request = 1 when a key frame (PLI) should be requested now: a
 * gap was given up (too old, retries exhausted, or overrun) since the last
 * request and pli_min_interval_ns has passed. Clears the pending request. */
MC_API mc_status mc_reorder_keyframe_needed(mc_reorder *reorder, int64_t now_ns, int32_t *request);
/* [owner] RTT estimate for NACK spacing (from RTCP, mc_rtcp_rtt_ns). */
MC_API mc_status mc_reorder_set_rtt(mc_reorder *reorder, int64_t rtt_ns);
MC_API mc_status mc_reorder_get_stats(const mc_reorder *reorder, mc_reorder_stats *out);

/* @cdef-end */

/* ------------------------------------------------------------------------
 * Audio graph (audiograph.c): per call, on a 20 ms media clock.
 *
 * An audio worker is one native thread that ticks every 20 ms on the media
 * clock (mc_now_ns: CLOCK_MONOTONIC / QueryPerformanceCounter; absolute
 * deadlines, so the frame rate never drifts) and runs every graph attached
 * to it. Per tick a graph:
 *   1. drains its input ring: the engine's receive records (mc_rtp_record +
 *      payload, jitter-buffered per source, MC_RECORD_FLAG_LOST for slots
 *      without a packet) for any number of remote sources (SSRCs);
 *   2. per source: keeps `prebuffer_frames` records (default 2: one frame of
 *      look-ahead, which lets a lost slot be rebuilt from the next packet's
 *      Opus in-band FEC), decodes one 20 ms frame (conceals on loss or
 *      underrun), measures its level (RFC 6464 dBov) and voice activity:
 *      when the records carry the sender's RFC 6464 audio level
 *      (MC_RECORD_FLAG_AUDIO_LEVEL), activity and loudness for the active
 *      speakers and the dominant speaker come from it (active = V flag set
 *      or level above the threshold; the last level holds through lost
 *      slots, and after 50 frames without one the measured energy is used
 *      again); else from the measured energy;
 *   3. writes a mixed frame (all sources, saturating SIMD mix) and/or one
 *      unmixed frame per source (no limit of 4), each an
 *      mc_audio_frame_header + 640 bytes of PCM (16 kHz mono s16le), and
 *      dominant-speaker / DTMF events;
 *   4. send path: takes one 640-byte PCM record from `send_pcm` (or sends
 *      silence / nothing with DTX when it is empty), encodes it, writes an
 *      mc_send_record (with the RFC 6464 level and V flag of that PCM in its
 *      flags) + payload to the engine's send ring and wakes the
 *      engine; RFC 4733 DTMF replaces audio while tones play.
 *
 * Timestamps: `timestamp_100ns` = the tick's deadline on the media clock in
 * 100-ns units (mc_now_ns() / 100; Python: time.monotonic_ns() // 100).
 *
 * Threads: graphs are created, changed and freed from a control thread
 * ([control]) while the worker runs (a mutex per worker, held by the worker
 * for one tick: control calls wait at most one tick). The worker is the
 * consumer of `input` and `send_pcm`, the producer of `mixed`, `unmixed`,
 * `events` and `send_out`.
 * ---------------------------------------------------------------------- */

/* @cdef-begin audiograph */
typedef struct mc_audio_worker mc_audio_worker;
typedef struct mc_audio_graph mc_audio_graph;

enum {
    MC_AUDIO_TICK_NS = 20000000,
    MC_RECORD_AUDIO_MIXED = 16,          /* record types in the output rings */
    MC_RECORD_AUDIO_UNMIXED = 17,
    MC_RECORD_AUDIO_EVENT = 18,
    MC_AUDIO_FRAME_HEADER_SIZE = 80,
    MC_AUDIO_MAX_ACTIVE = 8,             /* active speaker ids carried per frame */
    MC_AUDIO_GRAPH_MAX_SOURCES = 64,
    MC_AUDIO_GRAPH_MAX_PAYLOAD_TYPES = 8,

    MC_AUDIO_FLAG_SILENCE = 1,           /* no source is speaking in this frame */
    MC_AUDIO_FLAG_CONCEALED = 2,         /* (part of) the frame is packet-loss concealment */
    MC_AUDIO_FLAG_FEC = 4,               /* (part of) the frame was rebuilt from in-band FEC */
    MC_AUDIO_FLAG_MIXED = 8,

    MC_AUDIO_EVENT_DOMINANT_SPEAKER = 1, /* source_id = new dominant (0: none), value = previous */
    MC_AUDIO_EVENT_DTMF = 2,             /* value = digit (ASCII), duration, end */
    MC_AUDIO_EVENT_SEND_LOW_WATER = 3,   /* value = frames still queued */
    MC_AUDIO_EVENT_SEND_STATE = 4,       /* value = MC_AUDIO_SEND_* */
    MC_AUDIO_EVENT_SOURCE_ADDED = 5,
    MC_AUDIO_EVENT_SOURCE_REMOVED = 6,

    MC_AUDIO_SEND_INACTIVE = 0,          /* nothing queued: silence or DTX goes out */
    MC_AUDIO_SEND_ACTIVE = 1,            /* frames from the host are going out */

    MC_AUDIO_WORKER_NO_THREAD = 1,       /* ticks only through mc_audio_worker_tick (tests) */
    MC_AUDIO_WORKER_STAGGER = 2,         /* spread the graphs' ticks over the 20 ms period (below) */
    MC_AUDIO_WORKER_STAGGER_SLOTS = 10   /* phases of a staggering worker, 2 ms apart */
};

typedef struct mc_audio_frame_header {
    int64_t timestamp_100ns;             /* the tick, media clock, 100-ns units */
    int64_t arrival_100ns;               /* unmixed: arrival of the packet decoded; mixed: 0 */
    uint64_t sequence;                   /* per output stream (mixed / each source), from 0 */
    uint32_t source_id;                  /* unmixed: the source's SSRC; mixed: 0 */
    uint32_t rtp_timestamp;              /* unmixed: sender's RTP timestamp of the first sample;
                                            mixed: the graph's 16 kHz sample count */
    uint16_t flags;                      /* MC_AUDIO_FLAG_* */
    uint16_t active_count;               /* entries used in active_speakers */
    uint16_t samples;                    /* 320 */
    uint16_t level;                      /* RFC 6464 level of this frame (0..127) */
    uint32_t active_speakers[8];         /* SSRCs of the active speakers, loudest first */
    uint32_t tag;                        /* the graph's tag (mc_audio_graph_config.tag) */
    uint32_t reserved;
} mc_audio_frame_header;

typedef struct mc_audio_event {
    int64_t timestamp_100ns;
    uint32_t kind;                       /* MC_AUDIO_EVENT_* */
    uint32_t source_id;
    uint32_t value;
    uint32_t duration;                   /* DTMF: RTP ticks */
    uint32_t end;                        /* DTMF: 0 started, 1 ended */
    uint32_t tag;                        /* the graph's tag */
} mc_audio_event;

typedef struct mc_audio_payload_map {
    uint32_t payload_type;
    uint32_t codec;                      /* MC_CODEC_* */
    uint32_t clock_rate_hz;              /* 0: the codec's default */
} mc_audio_payload_map;

typedef struct mc_audio_graph_config {
    mc_ring *input;                      /* receive records from the engine; NULL: send only */
    mc_audio_payload_map payload_types[8];
    uint32_t payload_type_count;
    int32_t telephone_event_pt;          /* received RFC 4733 payload type; -1: none */
    mc_ring *mixed;                      /* optional outputs (each may be NULL) */
    mc_ring *unmixed;
    mc_ring *events;
    uint32_t prebuffer_frames;           /* 0: 2 */
    int32_t activity_threshold_dbov;     /* 0: -50 */
    uint32_t hangover_ms;                /* 0: 300 */
    uint32_t source_timeout_ms;          /* 0: 1000; a silent source leaves the mix after this */
    /* send path (send_pcm NULL: none) */
    mc_ring *send_pcm;                   /* host -> native: 640-byte PCM records */
    mc_ring *send_out;                   /* native -> engine: mc_send_record + payload */
    mc_engine *engine;                   /* woken after a send; may be NULL */
    mc_audio_encoder_config send_codec;
    uint32_t send_payload_type;          /* 0..127 */
    int32_t send_telephone_event_pt;     /* -1: no DTMF sending */
    uint32_t low_water_frames;           /* 0: no low-water events */
    uint32_t tag;                        /* copied into every frame and event: lets many graphs of
                                            one worker share one output ring (one consumer) */
    uint32_t start_frames;               /* a new source plays once this many records are queued
                                            (1..prebuffer_frames; 0: prebuffer_frames): its first
                                            frame a tick or more sooner; the look-ahead it lacks
                                            is built later by one stretched frame (an underrun)
                                            while it is silent or before a lost slot, or by the
                                            first underrun */
} mc_audio_graph_config;

typedef struct mc_audio_graph_stats {
    uint64_t ticks;
    uint64_t records_in;
    uint64_t decoded;                    /* frames decoded from payloads */
    uint64_t concealed;                  /* frames concealed (loss or underrun) */
    uint64_t fec_recovered;
    uint64_t decode_errors;              /* corrupt / oversized payloads (concealed instead) */
    uint64_t unknown_payload_type;
    uint64_t underruns;                  /* a playing source had nothing for a tick */
    uint64_t overflow_dropped;           /* records dropped because a source's queue was full */
    uint64_t late;                       /* records for a slot already played, or duplicates */
    uint64_t sources_refused;            /* more than MC_AUDIO_GRAPH_MAX_SOURCES */
    uint64_t mixed_frames;
    uint64_t unmixed_frames;
    uint64_t output_dropped;             /* frames/events the full output rings dropped */
    uint64_t dtmf_digits;
    uint64_t dominant_changes;
    uint64_t send_frames;                /* host frames encoded and sent */
    uint64_t send_silence;               /* ticks with nothing queued */
    uint64_t send_packets;
    uint64_t send_dtx_skipped;
    uint64_t send_dtmf_packets;
    uint64_t send_dropped;               /* send_out full */
    uint64_t level_ext_frames;           /* source frames whose activity came from RFC 6464 levels */
    uint64_t level_ext_malformed;        /* records whose audio-level extension was garbage */
    uint32_t sources;
    uint32_t send_state;                 /* MC_AUDIO_SEND_* */
    uint32_t dominant_source;            /* 0: none */
    uint32_t shrunk;                     /* silent frames skipped to take back delay that
                                            underruns added (see receive_tick) */
    uint64_t input_waits;                /* ticks a source's full queue left records waiting
                                            in the input ring (back-pressure, not dropped) */
} mc_audio_graph_stats;

/* [control] A worker (its thread starts with mc_audio_worker_start).
 * flags: MC_AUDIO_WORKER_NO_THREAD, MC_AUDIO_WORKER_STAGGER. A staggering
 * worker gives each new graph the next of MC_AUDIO_WORKER_STAGGER_SLOTS
 * phases (round robin) and ticks each graph on its own 20 ms clock at
 * deadline + phase * 2 ms, so the decoding of many calls is spread over the
 * period instead of queueing behind one deadline (a frame's timestamp_100ns
 * is its own graph's deadline). mc_audio_worker_tick still ticks every graph. */
MC_API mc_status mc_audio_worker_new(uint32_t flags, mc_audio_worker **out);
MC_API mc_status mc_audio_worker_start(mc_audio_worker *worker);
MC_API mc_status mc_audio_worker_stop(mc_audio_worker *worker);
/* [control] Stops the thread; every graph must be freed first. */
MC_API void mc_audio_worker_free(mc_audio_worker *worker);
/* [control] One tick of every graph at now_ns (MC_AUDIO_WORKER_NO_THREAD). */
MC_API mc_status mc_audio_worker_tick(mc_audio_worker *worker, int64_t now_ns);
/* [any] Ticks run, ticks that started late by more than one period, and the
 * CPU time (thread CPU clock) spent in ticks. */
MC_API mc_status mc_audio_worker_get_ticks(mc_audio_worker *worker, uint64_t *ticks,
                                           uint64_t *late_ticks, int64_t *busy_ns);

/* [control] Create a graph and attach it to the worker (it runs from the next tick). */
MC_API mc_status mc_audio_graph_new(mc_audio_worker *worker, const mc_audio_graph_config *config,
                                    mc_audio_graph **out);
/* [control] Detach and free (the rings stay the caller's). */
MC_API void mc_audio_graph_free(mc_audio_graph *graph);
/* [control] Queue DTMF tones on the send path (see mc_dtmf_sender_start). */
MC_API mc_status mc_audio_graph_send_dtmf(mc_audio_graph *graph, const char *tones,
                                          uint32_t tone_ms, uint32_t gap_ms, uint32_t volume);
/* [control] Counters (taken under the worker's lock). */
MC_API mc_status mc_audio_graph_get_stats(mc_audio_graph *graph, mc_audio_graph_stats *out);
/* @cdef-end */

#ifdef __cplusplus
}
#endif

#endif /* MEDIACORE_H */

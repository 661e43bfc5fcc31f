/*
 * testing.h — native helpers for tests and benchmarks, kept out of the
 * shipped library (mediacore._native): ring self-test workers, loops in C
 * that benchmarks time without a cffi crossing per packet, and a paced RTP
 * load generator. They build into
 * the C tests that need them (Makefile) and into the `_mediacore_testing`
 * cffi module (native/build.py), which includes mediacore._native's
 * declarations so that its handles (mc_ring *, ...) pass straight through.
 * The text between `@cdef-begin` and `@cdef-end` markers is that module's
 * cffi declaration, as in mediacore.h.
 */
#ifndef MEDIACORE_TESTING_H
#define MEDIACORE_TESTING_H

#include "mediacore.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Self-test workers: native threads that drive a ring from the other side,
 * for tests and benchmarks of the native <-> Python hand-off.
 * Record format used by both: u64 sequence, u64 timestamp_ns (mc_now_ns at
 * write), u32 checksum (mc_checksum32 of the payload after this header), u32
 * payload length, then the payload (byte i = (seq + i) & 0xff).
 * ---------------------------------------------------------------------- */

/* @cdef-begin selftest */
typedef struct mc_selftest mc_selftest;

typedef struct mc_selftest_result {
    uint64_t records;           /* producer: written (accepted); consumer: read */
    uint64_t dropped;           /* producer: dropped or refused */
    uint64_t errors;            /* consumer: bad checksum, gap, duplicate or reorder */
    uint64_t last_sequence;
    int64_t elapsed_ns;
} mc_selftest_result;

/* [control] Start a native producer thread writing `count` records of
 * `record_length` bytes (>= 24). interval_ns > 0 paces the writes;
 * batch > 1 publishes that many records per mc_ring_write_batch call.
 * With block != 0 a full ring makes the producer wait instead of dropping. */
mc_status mc_selftest_producer_start(mc_ring *ring, uint64_t count, uint32_t record_length,
                                     int64_t interval_ns, uint32_t batch, int32_t block,
                                     mc_selftest **out);
/* [control] Start a native consumer thread that verifies every record and
 * stops after `count` records, MC_E_CLOSED, or `timeout_ns` of idleness. */
mc_status mc_selftest_consumer_start(mc_ring *ring, uint64_t count, int64_t timeout_ns,
                                     mc_selftest **out);
/* [control] Wait for the thread and collect its result; frees the handle. */
mc_status mc_selftest_join(mc_selftest *worker, mc_selftest_result *result);
/* [any] The self-test checksum: FNV-1a over little-endian 32-bit words
 * (a trailing partial word is zero-padded). */
uint32_t mc_checksum32(const uint8_t *data, size_t length);
/* @cdef-end */

/* ------------------------------------------------------------------------
 * Benchmark loops (bench.c, srtp_floor.c).
 * ---------------------------------------------------------------------- */

/* @cdef-begin bench */
/* Benchmark helpers: loops in C so that no per-packet cffi crossing is timed.
 * `packets` holds `count` SRTP packets at a stride of `stride` bytes, with
 * lengths `lengths[i]` (rising sequence numbers, one SSRC). Each of the
 * `iterations` rounds gets a fresh inbound context (created outside the
 * timing) and writes its elapsed time to elapsed_ns[round].
 * - bench_unprotect: copy each packet to a scratch buffer, mc_srtp_unprotect,
 *   then mc_rtp_parse, as a receive path does. Fails on the first non-OK status.
 * - bench_crypto_floor: the same copies and the bare OpenSSL work on the same
 *   bytes with keys set up once: AES-CM: EVP AES-CTR IV reset + decrypt and
 *   HMAC-SHA1 from precomputed pad states + tag compare; GCM: EVP GCM IV
 *   reset + AAD + decrypt + tag check. No SRTP logic (no header walk, no
 *   index/replay bookkeeping). */
/* [control] */
mc_status mc_srtp_bench_unprotect(int32_t profile, const uint8_t *key_salt,
                                  size_t key_salt_length, const uint8_t *packets,
                                  size_t stride, const uint32_t *lengths, uint32_t count,
                                  uint32_t iterations, int64_t *elapsed_ns);
/* [control] */
mc_status mc_srtp_bench_crypto_floor(int32_t profile, const uint8_t *key_salt,
                                     size_t key_salt_length, const uint8_t *packets,
                                     size_t stride, const uint32_t *lengths,
                                     uint32_t count, uint32_t iterations,
                                     int64_t *elapsed_ns);
/* [any] Benchmark helper: for each of `count` packets laid out back to back
 * (lengths[i]), mc_rtp_parse + mc_jitter_insert (and one pop per packet to
 * keep the buffer steady), `rounds` times. *elapsed_ns is the time of the
 * loop alone (no cffi in it). */
mc_status mc_rtp_bench_parse_jitter(const uint8_t *packets, const uint32_t *lengths,
                                    uint32_t count, uint32_t rounds, int64_t *elapsed_ns);
/* [control] Benchmark baseline: a native thread that does nothing but
 * recvmmsg batches on a UDP socket bound to host:port (port 0: any; the
 * bound port is written back) and counts datagrams until stopped. */
typedef struct mc_udp_sink mc_udp_sink;
mc_status mc_udp_sink_start(const char *host, uint16_t *port, mc_udp_sink **out);
mc_status mc_udp_sink_stop(mc_udp_sink *sink, uint64_t *datagrams, uint64_t *bytes,
                           int64_t *cpu_ns);
/* [control] Benchmark sender: send `count` copies of the datagrams in
 * `data` (round robin, lengths[i]) to host:port in sendmmsg batches, from a
 * native thread; returns once done. *elapsed_ns is its wall time. */
mc_status mc_udp_blast(const char *host, uint16_t port, const uint8_t *data,
                       const uint32_t *lengths, uint32_t n_datagrams, uint64_t count,
                       int64_t *elapsed_ns);
/* @cdef-end */

/* ------------------------------------------------------------------------
 * Paced RTP load generator (rtp_pacer.c), for benchmarks (the audio density
 * run): `streams` RTP streams sent to one host:port, one packet per stream
 * every period_ns on absolute deadlines, for `periods` periods. Packet k of
 * every stream has sequence number k, timestamp k * timestamp_step,
 * payload k % payload_count (payloads back to back, payload_lengths[i]); each stream is
 * SRTP-protected with its own master key || salt (keys: streams * key_length
 * bytes) when srtp_profile is not 0. Built, protected and sent in sendmmsg
 * batches from the calling thread; returns when done.
 * ---------------------------------------------------------------------- */

/* @cdef-begin rtppacer */
typedef struct mc_rtp_pacer_config {
    const char *host;
    uint16_t port;
    uint8_t payload_type;
    uint8_t reserved;
    uint32_t streams;
    const uint32_t *ssrcs;
    int32_t srtp_profile;                /* 0: plain RTP */
    const uint8_t *keys;
    uint32_t key_length;
    const uint8_t *payloads;
    const uint32_t *payload_lengths;
    uint32_t payload_count;
    uint32_t timestamp_step;
    int64_t period_ns;
    uint64_t periods;
} mc_rtp_pacer_config;

typedef struct mc_rtp_pacer_result {
    uint64_t packets;                    /* datagrams handed to the kernel */
    uint64_t errors;                     /* protect failures and datagrams given up */
    uint64_t retries;                    /* sendmmsg calls that sent nothing (buffer full) */
    uint64_t late_periods;               /* periods started more than one period late */
    int64_t elapsed_ns;
    int64_t cpu_ns;                      /* thread CPU time of the sender */
} mc_rtp_pacer_result;

/* [control] Run the generator (blocks for periods * period_ns). */
mc_status mc_rtp_pace(const mc_rtp_pacer_config *config, mc_rtp_pacer_result *out);
/* @cdef-end */

#ifdef __cplusplus
}
#endif

#endif /* MEDIACORE_TESTING_H */

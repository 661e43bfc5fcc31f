/*
 * bench.c — loops in C that benchmarks time without a cffi crossing per
 * packet, and the baselines they compare with (contracts in testing.h;
 * mc_rtp_bench_parse_jitter is jitter_bench.c, mc_srtp_bench_crypto_floor
 * srtp_floor.c). Not
 * part of the shipped library: built into the C tests that use them and into
 * the _mediacore_testing module (native/build.py).
 *  - mc_srtp_bench_unprotect: the receive-path subject of
 *    benchmarks/bench_srtp.py: copy the datagram to a scratch buffer,
 *    mc_srtp_unprotect, then mc_rtp_parse as the engine's receive path does;
 *  - mc_udp_sink_* / mc_udp_blast: a bare recvmmsg loop and a sendmmsg
 *    sender, the anchor of the loopback row of benchmarks/bench_engine.py.
 */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "engine.h"
#include "mediacore.h"
#include "net.h"
#include "testing.h"

/* ---- SRTP receive path ----------------------------------------------------------------- */

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

/* ---- benchmark baseline: a bare recvmmsg loop and a sendmmsg blaster ------------------- */

struct mc_udp_sink {
    mc_udp *sock;
    mc_thread thread;
    volatile uint32_t stop;
    uint64_t datagrams, bytes;
    int64_t cpu_ns;
    uint8_t *mem;
};

static void sink_main(void *arg)
{
    mc_udp_sink *k = (mc_udp_sink *)arg;
    mc_net_msg msgs[ENG_BATCH];
    for (uint32_t i = 0; i < ENG_BATCH; i++) {
        msgs[i].data = k->mem + (size_t)i * ENG_BUF_STRIDE;
        msgs[i].capacity = ENG_MAX_DATAGRAM;
    }
    int64_t cpu0 = mc_net_thread_cpu_ns();
    while (!mc_load_u32_acquire(&k->stop)) {
        uint32_t n = 0;
        mc_udp_recv_batch(k->sock, msgs, ENG_BATCH, &n);
        for (uint32_t i = 0; i < n; i++) {
            k->datagrams++;
            k->bytes += msgs[i].length;
        }
        if (n == 0) {
            uint32_t ready;
            mc_udp_wait(k->sock, NULL, 20000000LL, &ready);
        }
    }
    k->cpu_ns = mc_net_thread_cpu_ns() - cpu0;
}

MC_API mc_status mc_udp_sink_start(const char *host, uint16_t *port, mc_udp_sink **out)
{
    if (!port || !out)
        return MC_E_INVAL;
    mc_netaddr a;
    if (mc_netaddr_parse(host ? host : "127.0.0.1", *port, &a) != MC_OK)
        return MC_E_INVAL;
    mc_udp_sink *k = (mc_udp_sink *)calloc(1, sizeof *k);
    if (!k)
        return MC_E_NOMEM;
    k->mem = (uint8_t *)mc_aligned_alloc(64, (size_t)ENG_BATCH * ENG_BUF_STRIDE);
    mc_status st = k->mem ? mc_udp_open(&a, 0, 0, &k->sock) : MC_E_NOMEM;
    if (st == MC_OK) {
        mc_netaddr local;
        mc_udp_local(k->sock, &local);
        *port = local.port;
        st = mc_thread_start(&k->thread, sink_main, k);
    }
    if (st != MC_OK) {
        mc_udp_close(k->sock);
        mc_aligned_free(k->mem);
        free(k);
        return st;
    }
    *out = k;
    return MC_OK;
}

MC_API mc_status mc_udp_sink_stop(mc_udp_sink *k, uint64_t *datagrams, uint64_t *bytes, int64_t *cpu_ns)
{
    if (!k)
        return MC_E_INVAL;
    mc_store_u32_release(&k->stop, 1);
    mc_thread_join(&k->thread);
    if (datagrams)
        *datagrams = k->datagrams;
    if (bytes)
        *bytes = k->bytes;
    if (cpu_ns)
        *cpu_ns = k->cpu_ns;
    mc_udp_close(k->sock);
    mc_aligned_free(k->mem);
    free(k);
    return MC_OK;
}

MC_API mc_status mc_udp_blast(const char *host, uint16_t port, const uint8_t *data,
                              const uint32_t *lengths, uint32_t n_datagrams, uint64_t count,
                              int64_t *elapsed_ns)
{
    if (!host || !data || !lengths || !n_datagrams)
        return MC_E_INVAL;
    mc_netaddr to, any;
    if (mc_netaddr_parse(host, port, &to) != MC_OK)
        return MC_E_INVAL;
    mc_netaddr_parse(to.family == MC_NET_AF_INET6 ? "::" : "0.0.0.0", 0, &any);
    mc_udp *u;
    mc_status st = mc_udp_open(&any, 0, 0, &u);
    if (st != MC_OK)
        return st;
    size_t *offs = (size_t *)malloc(n_datagrams * sizeof *offs);
    if (!offs) {
        mc_udp_close(u);
        return MC_E_NOMEM;
    }
    size_t o = 0;
    for (uint32_t i = 0; i < n_datagrams; i++) {
        offs[i] = o;
        o += lengths[i];
    }
    mc_net_msg msgs[ENG_BATCH];
    int64_t t0 = mc_now_ns();
    uint64_t sent_total = 0, next = 0;
    while (sent_total < count) {
        uint32_t n = 0;
        while (n < ENG_BATCH && next < count) {
            uint32_t k = (uint32_t)(next % n_datagrams);
            msgs[n].data = (uint8_t *)(uintptr_t)(data + offs[k]);
            msgs[n].length = lengths[k];
            msgs[n].addr = to;
            n++;
            next++;
        }
        uint32_t sent = 0;
        mc_udp_send_batch(u, msgs, n, &sent);
        sent_total += n; /* a full socket buffer drops, as real-time senders do */
        if (sent < n) {
            uint32_t r;
            (void)r;
            mc_sleep_ns(20000);
        }
    }
    if (elapsed_ns)
        *elapsed_ns = mc_now_ns() - t0;
    free(offs);
    mc_udp_close(u);
    return MC_OK;
}

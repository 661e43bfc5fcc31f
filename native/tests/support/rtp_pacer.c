/*
 * rtp_pacer.c — mc_rtp_pace (contract in testing.h): a cheap, paced RTP load
 * generator for benchmarks (the audio density run, benchmarks/bench_audio.py):
 * many streams, one packet per stream per period, built, SRTP-protected and
 * sent in sendmmsg batches from the calling thread on absolute deadlines. It
 * stands in for a Teams media relay sending hundreds of calls from one port,
 * at a small fraction of a core, so the receiving side can be measured on a
 * shared machine. Not part of the shipped library: built into the
 * _mediacore_testing module (native/build.py).
 */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "mediacore.h"
#include "net.h"
#include "rtp.h"
#include "srtp.h"
#include "testing.h"

#define PACER_BATCH 64
#define PACER_SLOT 1600

MC_API mc_status mc_rtp_pace(const mc_rtp_pacer_config *cfg, mc_rtp_pacer_result *out)
{
    if (!cfg || !out || !cfg->host || !cfg->streams || !cfg->ssrcs || !cfg->payloads ||
        !cfg->payload_lengths || !cfg->payload_count || cfg->period_ns <= 0 ||
        (cfg->srtp_profile && (!cfg->keys || !cfg->key_length)))
        return MC_E_INVAL;
    for (uint32_t i = 0; i < cfg->payload_count; i++)
        if (cfg->payload_lengths[i] + 12 + MC_SRTP_MAX_TRAILER > PACER_SLOT)
            return MC_E_TOO_LARGE;
    memset(out, 0, sizeof *out);
    mc_netaddr to, any;
    if (mc_netaddr_parse(cfg->host, cfg->port, &to) != MC_OK)
        return MC_E_INVAL;
    mc_netaddr_parse(to.family == MC_NET_AF_INET6 ? "::" : "0.0.0.0", 0, &any);
    mc_udp *u = NULL;
    mc_status st = mc_udp_open(&any, 0, 8 << 20, &u);
    if (st != MC_OK)
        return st;
    size_t *offs = (size_t *)malloc(cfg->payload_count * sizeof *offs);
    mc_srtp **tx = (mc_srtp **)calloc(cfg->streams, sizeof *tx);
    uint8_t *slots = (uint8_t *)malloc((size_t)PACER_BATCH * PACER_SLOT);
    if (!offs || !tx || !slots) {
        st = MC_E_NOMEM;
        goto done;
    }
    size_t o = 0;
    for (uint32_t i = 0; i < cfg->payload_count; i++) {
        offs[i] = o;
        o += cfg->payload_lengths[i];
    }
    if (cfg->srtp_profile)
        for (uint32_t s = 0; s < cfg->streams; s++) {
            st = mc_srtp_create(cfg->srtp_profile, cfg->keys + (size_t)s * cfg->key_length,
                                cfg->key_length, 0, 1, MC_SRTP_OUTBOUND, &tx[s]);
            if (st != MC_OK)
                goto done;
        }
    mc_net_msg msgs[PACER_BATCH];
    int64_t cpu0 = mc_net_thread_cpu_ns();
    int64_t t0 = mc_now_ns();
    for (uint64_t k = 0; k < cfg->periods; k++) {
        int64_t deadline = t0 + (int64_t)k * cfg->period_ns;
        int64_t now = mc_now_ns();
        if (now < deadline)
            mc_sleep_ns(deadline - now);
        else if (now - deadline > cfg->period_ns)
            out->late_periods++;
        uint32_t p = (uint32_t)(k % cfg->payload_count);
        const uint8_t *payload = cfg->payloads + offs[p];
        uint32_t plen = cfg->payload_lengths[p];
        for (uint32_t s0 = 0; s0 < cfg->streams; s0 += PACER_BATCH) {
            uint32_t n = cfg->streams - s0 < PACER_BATCH ? cfg->streams - s0 : PACER_BATCH;
            for (uint32_t j = 0; j < n; j++) {
                uint8_t *pk = slots + (size_t)j * PACER_SLOT;
                mc_rtp_write_fixed_header(pk, k == 0, cfg->payload_type, (uint16_t)k,
                                          (uint32_t)(k * cfg->timestamp_step), cfg->ssrcs[s0 + j]);
                memcpy(pk + 12, payload, plen);
                size_t len = 12 + plen;
                if (tx[s0 + j] && mc_srtp_protect(tx[s0 + j], pk, len, PACER_SLOT, &len) != MC_OK) {
                    out->errors++;
                    len = 0;
                }
                msgs[j].data = pk;
                msgs[j].capacity = PACER_SLOT;
                msgs[j].length = (uint32_t)len;
                msgs[j].addr = to;
            }
            uint32_t done_n = 0;
            while (done_n < n) { /* a full socket buffer: retry the rest once it drains */
                uint32_t sent = 0;
                mc_udp_send_batch(u, msgs + done_n, n - done_n, &sent);
                if (!sent) {
                    out->retries++;
                    mc_sleep_ns(50000);
                    if (mc_now_ns() - deadline > cfg->period_ns) { /* give up on this batch */
                        out->errors += n - done_n;
                        break;
                    }
                    continue;
                }
                done_n += sent;
                out->packets += sent;
            }
        }
    }
    out->elapsed_ns = mc_now_ns() - t0;
    out->cpu_ns = mc_net_thread_cpu_ns() - cpu0;
    st = MC_OK;
done:
    if (tx)
        for (uint32_t s = 0; s < cfg->streams; s++)
            mc_srtp_free(tx[s]);
    free(tx);
    free(offs);
    free(slots);
    mc_udp_close(u);
    return st;
}

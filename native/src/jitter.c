/* jitter.c — adaptive audio jitter buffer (design in jitter.h). */
#include "jitter.h"

MC_API mc_status mc_jitter_new(const mc_jitter_config *config, mc_jitter **out)
{
    (void)config;
    (void)out;
    return MC_E_UNSUPPORTED;
}
MC_API void mc_jitter_free(mc_jitter *jitter) { (void)jitter; }
MC_API mc_status mc_jitter_insert(mc_jitter *jitter, int64_t now_ns, uint16_t sequence_number,
                                  uint32_t timestamp, uint8_t marker, uint8_t payload_type,
                                  const uint8_t *payload, uint32_t payload_length)
{
    (void)jitter, (void)now_ns, (void)sequence_number, (void)timestamp, (void)marker;
    (void)payload_type, (void)payload, (void)payload_length;
    return MC_E_UNSUPPORTED;
}
MC_API mc_status mc_jitter_pop(mc_jitter *jitter, int64_t now_ns, uint8_t *payload,
                               uint32_t payload_size, mc_jitter_frame *frame)
{
    (void)jitter, (void)now_ns, (void)payload, (void)payload_size, (void)frame;
    return MC_E_UNSUPPORTED;
}
MC_API mc_status mc_jitter_get_stats(const mc_jitter *jitter, mc_jitter_stats *out)
{
    (void)jitter, (void)out;
    return MC_E_UNSUPPORTED;
}
MC_API mc_status mc_rtp_bench_parse_jitter(const uint8_t *packets, const uint32_t *lengths,
                                           uint32_t count, uint32_t rounds, int64_t *elapsed_ns)
{
    (void)packets, (void)lengths, (void)count, (void)rounds, (void)elapsed_ns;
    return MC_E_UNSUPPORTED;
}

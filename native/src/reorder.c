/* reorder.c — video reorder buffer with NACK / PLI decisions (design in reorder.h). */
#include "reorder.h"

MC_API mc_status mc_reorder_new(const mc_reorder_config *config, mc_reorder **out)
{
    (void)config, (void)out;
    return MC_E_UNSUPPORTED;
}
MC_API void mc_reorder_free(mc_reorder *reorder) { (void)reorder; }
MC_API mc_status mc_reorder_insert(mc_reorder *reorder, int64_t now_ns, uint16_t sequence_number,
                                   uint32_t timestamp, uint8_t marker, uint8_t payload_type,
                                   const uint8_t *payload, uint32_t payload_length)
{
    (void)reorder, (void)now_ns, (void)sequence_number, (void)timestamp, (void)marker;
    (void)payload_type, (void)payload, (void)payload_length;
    return MC_E_UNSUPPORTED;
}
MC_API mc_status mc_reorder_pop(mc_reorder *reorder, int64_t now_ns, uint8_t *payload,
                                uint32_t payload_size, mc_reorder_packet *packet)
{
    (void)reorder, (void)now_ns, (void)payload, (void)payload_size, (void)packet;
    return MC_E_UNSUPPORTED;
}
MC_API mc_status mc_reorder_nack_list(mc_reorder *reorder, int64_t now_ns, uint16_t *seqs,
                                      uint32_t max_seqs, uint32_t *count)
{
    (void)reorder, (void)now_ns, (void)seqs, (void)max_seqs, (void)count;
    return MC_E_UNSUPPORTED;
}
MC_API mc_status mc_reorder_keyframe_needed(mc_reorder *reorder, int64_t now_ns, int32_t *request)
{
    (void)reorder, (void)now_ns, (void)request;
    return MC_E_UNSUPPORTED;
}
MC_API mc_status mc_reorder_set_rtt(mc_reorder *reorder, int64_t rtt_ns)
{
    (void)reorder, (void)rtt_ns;
    return MC_E_UNSUPPORTED;
}
MC_API mc_status mc_reorder_get_stats(const mc_reorder *reorder, mc_reorder_stats *out)
{
    (void)reorder, (void)out;
    return MC_E_UNSUPPORTED;
}

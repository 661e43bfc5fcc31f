/*
 * h264_rtp.h — internals of the H.264 RTP depacketizer (h264_depacketizer.c)
 * and packetizer (h264_packetizer.c) shared with each other (h264_rtp.c:
 * Annex-B scanning), the C tests and the fuzz target. The public API is the `h264` region of
 * mediacore.h.
 *
 * NAL unit header (RFC 6184 section 1.3, H.264 section 7.3.1):
 *
 *   +---------------+
 *   |0|1|2|3|4|5|6|7|
 *   +-+-+-+-+-+-+-+-+
 *   |F|NRI|  Type   |
 *   +---------------+
 *
 * FU-A (RFC 6184 section 5.8): FU indicator {F, NRI, 28}, then FU header
 *
 *   +---------------+
 *   |S|E|R|  Type   |
 *   +---------------+
 *
 * STAP-A (section 5.7.1): STAP-A NAL header {F, NRI, 24}, then units of
 * {16-bit network-order size, NAL unit}.
 */
#ifndef MC_H264_RTP_H
#define MC_H264_RTP_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "mediacore.h"

/* Counters are written by the io thread only and read by any thread: relaxed
 * single-word stores so readers see whole values (no read-modify-write race:
 * one writer). */
MC_INLINE void mc_h264_bump(uint64_t *counter, uint64_t n)
{
    mc_store_u64_relaxed(counter, mc_load_u64_relaxed(counter) + n);
}

enum {
    MC_NAL_SLICE = 1,
    MC_NAL_IDR = 5,
    MC_NAL_SEI = 6,
    MC_NAL_SPS = 7,
    MC_NAL_PPS = 8,
    MC_NAL_AUD = 9,
    MC_NAL_STAP_A = 24,
    MC_NAL_STAP_B = 25,
    MC_NAL_MTAP16 = 26,
    MC_NAL_MTAP24 = 27,
    MC_NAL_FU_A = 28,
    MC_NAL_FU_B = 29
};

/* Bytes of the header that precedes each depacketized frame. */
#define MC_H264_FRAME_HEADER_SIZE 40
/* Largest SPS / PPS the (de)packetizer caches for insertion before an IDR. */
#define MC_H264_MAX_PARAM_SET 256

/* Next Annex-B start code (00 00 01, possibly preceded by more zeros) at or
 * after `from`. Returns the offset of its `00 00 01`, or `length` if none. */
size_t mc_h264_find_start_code(const uint8_t *data, size_t length, size_t from);

/* Iterate the NAL units of an Annex-B buffer: *pos starts at 0; each call
 * returns 1 and the unit's [start, start+size) (start codes and trailing zero
 * bytes excluded), or 0 at the end. Bytes before the first start code are
 * taken as a NAL unit too (a bare NAL unit is accepted). */
int mc_h264_next_nal(const uint8_t *data, size_t length, size_t *pos, size_t *start, size_t *size);

#endif /* MC_H264_RTP_H */

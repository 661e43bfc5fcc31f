/*
 * h264_rtp.c — Annex-B scanning shared by the H.264 RTP depacketizer
 * (h264_depacketizer.c) and packetizer (h264_packetizer.c): start codes
 * and NAL unit boundaries (H.264 Annex B.1). The payload format is RFC 6184,
 * packetization-mode 1; packet formats are drawn in h264_rtp.h.
 */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "h264_rtp.h"
#include "mediacore.h"

/* ---- Annex-B scanning -------------------------------------------------- */

size_t mc_h264_find_start_code(const uint8_t *p, size_t n, size_t i)
{
    /* Look at every third byte: a start code's 01 can only follow 00 00, so
     * a byte > 1 at i+2 rules out start codes at i, i+1 and i+2. */
    while (i + 2 < n) {
        if (p[i + 2] > 1)
            i += 3;
        else if (p[i + 2] == 1 && p[i + 1] == 0 && p[i] == 0)
            return i;
        else
            i++;
    }
    return n;
}

int mc_h264_next_nal(const uint8_t *p, size_t n, size_t *pos, size_t *start, size_t *size)
{
    size_t i = *pos;
    for (;;) {
        if (i >= n)
            return 0;
        size_t sc = mc_h264_find_start_code(p, n, i);
        size_t begin;
        if (sc == i) {
            begin = i + 3; /* skip 00 00 01 */
        } else if (i == 0 && sc > 0) {
            /* bytes before the first start code: zeros of a 4-byte start code,
             * or a bare NAL unit */
            size_t z = 0;
            while (z < sc && p[z] == 0)
                z++;
            if (z == sc) {
                i = sc;
                continue;
            }
            begin = 0;
            sc = 0; /* the unit starts at 0; its end is the next start code */
        } else {
            return 0; /* only trailing bytes of a previous unit: cannot happen */
        }
        size_t end = mc_h264_find_start_code(p, n, begin);
        size_t next = end;
        /* trailing zero bytes belong to the next start code (or are
         * trailing_zero_8bits / cabac_zero_words): not part of the unit */
        while (end > begin && p[end - 1] == 0)
            end--;
        *pos = next;
        if (end > begin) {
            *start = begin;
            *size = end - begin;
            return 1;
        }
        i = next; /* empty unit between two start codes: skip */
    }
}


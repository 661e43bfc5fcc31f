/*
 * rtp_fuzz.c — libFuzzer target for the RTP parser (rtp.c), RFC 8285
 * extension iteration, and the receive state machines that take parsed
 * packets (rtpstats.c, jitter.c, reorder.c).
 *
 * Input: the whole buffer is parsed as one RTP packet; then it is split into
 * records {u16 length (big-endian), packet} which are parsed and fed, with a
 * clock advanced by the first byte of each record, to a receive-statistics
 * object, a jitter buffer and a reorder buffer (pops, NACK lists and key-frame
 * decisions interleaved).
 *
 * Invariants (trap on violation): a successful parse describes a layout that
 * fits the input exactly; extension elements lie inside the packet; a
 * serialize of the parsed header re-parses to the same fields; released
 * packets come out in increasing extended sequence order.
 *
 * Build and run: the `fuzz-rtp` target in the Makefile (seeded from
 * native/fuzz/corpus/rtp).
 */
#include <stdlib.h>
#include <string.h>

#include "mediacore.h"
#include "rtpstats.h"
#include "seq.h"

static uint8_t out[70000];

static void check_one(const uint8_t *data, size_t size, mc_rtp_header *h, int *ok)
{
    *ok = mc_rtp_parse(data, size, h) == MC_OK;
    if (!*ok)
        return;
    if ((size_t)h->payload_offset + h->payload_length + h->padding_length != size)
        __builtin_trap();
    uint32_t cursor = 0, off, len;
    uint8_t id;
    for (int i = 0; i < 1024; i++) {
        mc_status st = mc_rtp_ext_next(data, h, &cursor, &id, &off, &len);
        if (st != MC_OK)
            break;
        if ((size_t)off + len > size || off < h->extension_offset)
            __builtin_trap();
    }
    uint8_t v, lvl;
    mc_rtp_audio_level_read(data, h, 1, &v, &lvl);
    /* serialize what we parsed and parse it again */
    size_t written;
    mc_status st = mc_rtp_serialize(h, data + h->extension_offset, data + h->payload_offset,
                                    h->payload_length, out, sizeof out, &written);
    if (st != MC_OK)
        __builtin_trap();
    mc_rtp_header back;
    if (mc_rtp_parse(out, written, &back) != MC_OK || back.sequence_number != h->sequence_number ||
        back.payload_length != h->payload_length || back.csrc_count != h->csrc_count ||
        back.extension_words != h->extension_words || back.padding_length != h->padding_length ||
        memcmp(out + back.payload_offset, data + h->payload_offset, h->payload_length) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mc_rtp_header h;
    int ok;
    uint32_t kind;
    mc_rtp_classify(data, size, &kind);
    check_one(data, size, &h, &ok);

    mc_jitter_config jc = {48000, 20, 20, 100, 16, 256};
    mc_reorder_config rc = {32, 256, 2, 3000000, 50000000, 20000000};
    mc_jitter *jb;
    mc_reorder *rb;
    if (mc_jitter_new(&jc, &jb) != MC_OK || mc_reorder_new(&rc, &rb) != MC_OK)
        __builtin_trap();
    struct mc_rtpstats stats;
    mc_rtpstats_init(&stats, 90000);
    int64_t now = 0, last_released = -1;
    mc_unwrap released = {0, 0};
    size_t pos = 0;
    while (pos + 2 <= size) {
        size_t n = ((size_t)data[pos] << 8) | data[pos + 1];
        pos += 2;
        if (n > size - pos)
            n = size - pos;
        const uint8_t *p = data + pos;
        pos += n;
        now += (n ? p[0] : 7) * 1000000LL;
        /* an exactly sized copy so ASan sees overreads */
        uint8_t *copy = (uint8_t *)malloc(n ? n : 1);
        memcpy(copy, p, n);
        check_one(copy, n, &h, &ok);
        if (ok) {
            const uint8_t *pl = copy + h.payload_offset;
            mc_rtpstats_on_packet(&stats, now, h.sequence_number, h.timestamp, h.payload_length);
            mc_jitter_insert(jb, now, h.sequence_number, h.timestamp, h.marker, h.payload_type, pl,
                             h.payload_length);
            mc_reorder_insert(rb, now, h.sequence_number, h.timestamp, h.marker, h.payload_type,
                              pl, h.payload_length);
        }
        free(copy);
        mc_jitter_frame f;
        mc_jitter_pop(jb, now, out, 256, &f);
        mc_reorder_packet rp;
        while (mc_reorder_pop(rb, now, out, 256, &rp) == MC_OK) {
            if (rp.skipped_before) { /* a discontinuity (gap given up or restart) */
                released.valid = 0;
                last_released = -0x7FFFFFFF;
            }
            int64_t e = mc_seq_unwrap(&released, rp.sequence_number);
            if (e <= last_released)
                __builtin_trap();
            last_released = e;
        }
        uint16_t nacks[64];
        uint32_t nn;
        mc_reorder_nack_list(rb, now, nacks, 64, &nn);
        int32_t pli;
        mc_reorder_keyframe_needed(rb, now, &pli);
    }
    mc_rtcp_report_block b;
    mc_rtpstats_report_block(&stats, 1, now, &b);
    mc_jitter_free(jb);
    mc_reorder_free(rb);
    return 0;
}

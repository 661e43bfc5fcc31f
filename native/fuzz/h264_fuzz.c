/*
 * h264_fuzz.c — libFuzzer target for the RFC 6184 depacketizer (and the
 * packetizer's Annex-B scanner).
 *
 * Input: a sequence of records {u8 control, u16 length (big-endian), payload}.
 * control bit 0: marker; bit 1: new timestamp; bits 2-3: sequence step - 1
 * (0..3, so gaps happen); bit 4: send to the ring-mode depacketizer as well.
 * Every payload goes to a buffer-mode depacketizer, and as an engine receive
 * record to a third depacketizer that a worker's turns drain
 * (drain_frames, at each marker) into a small rewinding frame ring, so
 * reservations grow, move, and wait for room, and frames are assembled in
 * place in the receive ring (moving out when they must); whole input also goes
 * through the packetizer as one access unit and back.
 *
 * Invariants checked (trap on violation): every handed-out frame fits the
 * buffer, starts with a 4-byte start code, and in ring mode its record length
 * matches its header; drained frames lie inside the frame ring; the drain
 * always makes progress once its frames are released (no packet waits
 * forever). ASan/UBSan catch everything else.
 *
 * Build: see the `fuzz-h264` target in the Makefile.
 */
#include <stdlib.h>
#include <string.h>

#include "h264_rtp.h"
#include "mediacore.h"

#define MAX_FRAME 65536
#define DRAIN_MAX_FRAME 16384
static uint8_t frame_buffer[MC_H264_FRAME_HEADER_SIZE + MAX_FRAME] __attribute__((aligned(8)));
static uint8_t packets[1 << 20];
static uint32_t offsets[4096], lengths[4096];

static void check_frame(const mc_h264_frame_header *h, const uint8_t *body)
{
    if (h->length > MAX_FRAME)
        __builtin_trap();
    if (h->length < 5 || body[0] != 0 || body[1] != 0 || body[2] != 0 || body[3] != 1)
        __builtin_trap();
}

static void drain_ring(mc_ring *ring)
{
    uint32_t off[16], len[16], type[16], n = 0;
    while (mc_ring_peek(ring, off, len, type, 16, &n) == MC_OK && n) {
        for (uint32_t i = 0; i < n; i++) {
            mc_h264_frame_header h;
            memcpy(&h, mc_ring_data(ring) + off[i], sizeof h);
            if (type[i] != MC_H264_RECORD_TYPE || len[i] != MC_H264_FRAME_HEADER_SIZE + h.length)
                __builtin_trap();
            check_frame(&h, mc_ring_data(ring) + off[i] + MC_H264_FRAME_HEADER_SIZE);
        }
        mc_ring_release(ring, n);
    }
}

/* A worker's turn: drain_frames, then check what it handed out (in the
 * frame ring, or assembled in place in the receive ring). */
static uint32_t worker_turn(mc_h264_depacketizer *dp, mc_ring *rtp, mc_ring *frames)
{
    static mc_h264_frame_ref refs[256];
    uint32_t count = 0, records = 0;
    if (mc_h264_depacketizer_drain_frames(dp, rtp, 64, refs, 256, &count, &records) != MC_OK)
        __builtin_trap();
    mc_ring_stats fs, rs;
    mc_ring_get_stats(frames, &fs);
    mc_ring_get_stats(rtp, &rs);
    for (uint32_t k = 0; k < count; k++) {
        int in_input = refs[k].source == MC_H264_FRAME_SOURCE_INPUT;
        if ((!in_input && refs[k].source != MC_H264_FRAME_SOURCE_OUTPUT) ||
            refs[k].end > (in_input ? rs.capacity : fs.capacity) ||
            refs[k].end - refs[k].offset != refs[k].length || refs[k].length > DRAIN_MAX_FRAME)
            __builtin_trap();
        mc_h264_frame_header h;
        memset(&h, 0, sizeof h);
        if (in_input) {
            h.length = refs[k].length;
        } else {
            memcpy(&h, mc_ring_data(frames) + refs[k].offset - MC_H264_FRAME_HEADER_SIZE,
                   sizeof h);
            if (h.length != refs[k].length || h.rtp_timestamp != refs[k].rtp_timestamp)
                __builtin_trap();
        }
        check_frame(&h, mc_ring_data(in_input ? rtp : frames) + refs[k].offset);
    }
    return records;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* reused, empty after every run: receive records in, frames out (small,
     * rewinding with room for the largest frame) */
    static mc_ring *rtp, *frames;
    if (!rtp && (mc_ring_new(1 << 20, MC_RING_DROP_NEWEST, &rtp) != MC_OK ||
                 mc_ring_new(1 << 16, MC_RING_DROP_NEWEST, &frames) != MC_OK ||
                 mc_ring_set_rewind(frames, DRAIN_MAX_FRAME + 1024) != MC_OK))
        abort();
    mc_h264_depacketizer *drain_dp = NULL;
    if (mc_h264_depacketizer_new(DRAIN_MAX_FRAME, 4, &drain_dp) != MC_OK ||
        mc_h264_depacketizer_set_ring(drain_dp, frames) != MC_OK)
        abort();
    static mc_ring *ring; /* reused: every run leaves it empty */
    mc_h264_depacketizer *buf_dp = NULL, *ring_dp = NULL;
    if (!ring && mc_ring_new(1 << 18, MC_RING_DROP_NEWEST, &ring) != MC_OK)
        abort();
    if (mc_h264_depacketizer_new(MAX_FRAME, 1, &buf_dp) != MC_OK ||
        mc_h264_depacketizer_new(MAX_FRAME, 2, &ring_dp) != MC_OK)
        abort();
    mc_h264_depacketizer_set_buffer(buf_dp, frame_buffer, sizeof frame_buffer);
    mc_h264_depacketizer_set_ring(ring_dp, ring);

    uint16_t seq = 100;
    uint32_t ts = 0;
    size_t i = 0;
    while (i + 3 <= size) {
        uint8_t control = data[i];
        uint32_t n = ((uint32_t)data[i + 1] << 8) | data[i + 2];
        i += 3;
        if (n > size - i)
            n = (uint32_t)(size - i);
        mc_h264_packet pk;
        memset(&pk, 0, sizeof pk);
        pk.payload = data + i;
        pk.payload_length = n;
        pk.marker = control & 1;
        if (control & 2)
            ts += 3000;
        seq = (uint16_t)(seq + 1 + ((control >> 2) & 3));
        pk.sequence = seq;
        pk.timestamp = ts;
        i += n;
        {
            void *mem = NULL;
            mc_rtp_record rec;
            memset(&rec, 0, sizeof rec);
            rec.timestamp = ts;
            rec.sequence_number = seq;
            rec.marker = (uint8_t)(control & 1);
            rec.flags = (control & 0x60) == 0x60 ? MC_RECORD_FLAG_LOST : 0;
            if (mc_ring_reserve(rtp, (uint32_t)sizeof rec + n, &mem) == MC_OK && mem) {
                memcpy(mem, &rec, sizeof rec);
                memcpy((uint8_t *)mem + sizeof rec, pk.payload, n);
                mc_ring_commit(rtp, MC_RECORD_RTP, (uint32_t)sizeof rec + n);
            }
            if (control & 1)
                worker_turn(drain_dp, rtp, frames);
        }
        uint32_t consumed = 0, frames = 0;
        for (int tries = 0; tries < 2; tries++) {
            mc_h264_depacketizer_push(buf_dp, &pk, 1, &consumed, &frames);
            mc_h264_frame_header h;
            while (mc_h264_depacketizer_take_frame(buf_dp, &h) == MC_OK)
                check_frame(&h, frame_buffer + MC_H264_FRAME_HEADER_SIZE);
            if (consumed)
                break;
        }
        if (control & 16) {
            mc_h264_depacketizer_push(ring_dp, &pk, 1, &consumed, &frames);
            drain_ring(ring);
        }
        uint32_t req;
        if (control & 32)
            mc_h264_depacketizer_take_key_frame_request(buf_dp, &req);
        if (control & 64)
            mc_h264_depacketizer_request_key_frame(ring_dp);
        /* the FIR-fallback policy: time moves 100 ms per packet */
        mc_h264_depacketizer_poll_key_frame(buf_dp, (int64_t)i * 100000000LL, -1, &req);
        if (req & ~(uint32_t)(MC_KEYFRAME_PLI | MC_KEYFRAME_FIR))
            abort();
        mc_h264_depacketizer_poll_key_frame(ring_dp, (int64_t)i * 100000000LL,
                                            (int64_t)(control >> 7) * 400000000LL, &req);
    }

    /* the whole input as one access unit, through the packetizer and back */
    mc_h264_packetizer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_payload = size ? 3 + data[0] % 200 : 100;
    cfg.rtp_header = 0;
    mc_h264_packetizer *pz;
    if (mc_h264_packetizer_new(&cfg, &pz) != MC_OK)
        abort();
    uint32_t count = 0;
    if (mc_h264_packetize(pz, data, (uint32_t)size, 0, packets, sizeof packets, offsets, lengths,
                          4096, &count) == MC_OK) {
        mc_h264_depacketizer *dp;
        if (mc_h264_depacketizer_new(MAX_FRAME, 3, &dp) != MC_OK)
            abort();
        mc_h264_depacketizer_set_buffer(dp, frame_buffer, sizeof frame_buffer);
        for (uint32_t k = 0; k < count; k++) {
            mc_h264_packet pk;
            memset(&pk, 0, sizeof pk);
            pk.payload = packets + offsets[k];
            pk.payload_length = lengths[k];
            pk.sequence = (uint16_t)k;
            pk.marker = k + 1 == count;
            uint32_t consumed = 0, frames = 0;
            mc_h264_depacketizer_push(dp, &pk, 1, &consumed, &frames);
        }
        mc_h264_frame_header h;
        if (mc_h264_depacketizer_take_frame(dp, &h) == MC_OK)
            check_frame(&h, frame_buffer + MC_H264_FRAME_HEADER_SIZE);
        mc_h264_depacketizer_free(dp);
    }
    mc_h264_packetizer_free(pz);

    /* the worker's turns go on until they take no more records: once the
     * frames are released there is always room for the next packet, so
     * after the partial frame is dropped (reset releases the records it
     * stood on in place) the receive ring must be empty */
    for (int turn = 0; turn < 4096; turn++)
        if (worker_turn(drain_dp, rtp, frames) == 0)
            break;
    mc_h264_depacketizer_release_frames(drain_dp);
    mc_h264_depacketizer_reset(drain_dp);
    {
        mc_ring_stats st;
        mc_ring_get_stats(rtp, &st);
        if (st.used_bytes != 0)
            __builtin_trap();
    }
    mc_h264_depacketizer_free(drain_dp);
    mc_h264_depacketizer_free(buf_dp);
    mc_h264_depacketizer_free(ring_dp);
    drain_ring(ring);
    return 0;
}

/*
 * h264_depacketizer.c — H.264 RTP payload format (RFC 6184,
 * packetization-mode 1), receive side: in-order RTP payloads become whole,
 * decodable Annex-B access units (the send side is h264_packetizer.c).
 *
 * Packet formats are drawn in h264_rtp.h; the contract (what "decodable"
 * means, output layout, thread roles) is in the `h264` section of
 * mediacore.h.
 *
 * Depacketizer state per frame:
 *   start_known  its first packet directly follows the previous frame's last
 *                packet (marker bit seen, or a timestamp change without a
 *                sequence gap), so nothing of its head can be missing;
 *   broken       something inside it is missing or unusable: a sequence gap,
 *                an FU-A without its start or end, a malformed or unsupported
 *                payload, more bytes than max_frame.
 * A frame is handed out when it is not broken and either it is a key frame
 * (IDR with SPS/PPS ahead of its first slice, received, or inserted from the
 * cache when its start is known), or the stream is in sync and its start is
 * known. Anything else is dropped and, once per loss, a key frame requested.
 */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "h264_rtp.h"
#include "mediacore.h"
#include "seq.h"

MC_STATIC_ASSERT(sizeof(mc_h264_frame_header) == MC_H264_FRAME_HEADER_SIZE,
                 "frame header layout is part of the ABI");
MC_STATIC_ASSERT(sizeof(mc_h264_packet) == 32, "packet descriptor layout");

static const uint8_t START_CODE[4] = {0, 0, 0, 1};

#if defined(__GNUC__) || defined(__clang__)
#define H264_PREFETCH(p) __builtin_prefetch((const void *)(p))
#define H264_PREFETCH_WRITE(p) __builtin_prefetch((const void *)(p), 1)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define H264_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define H264_PREFETCH_WRITE(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#else
#define H264_PREFETCH(p) ((void)(p))
#define H264_PREFETCH_WRITE(p) ((void)(p))
#endif

/* ---- depacketizer ------------------------------------------------------- */

struct mc_h264_depacketizer {
    uint32_t max_frame;
    uint32_t ssrc;

    /* output: a ring, or a caller buffer holding one frame at a time */
    mc_ring *ring;
    uint8_t *buffer;
    uint32_t buffer_size;
    int buffer_ready;

    /* sequence */
    int have_sequence;
    uint16_t expected_sequence;
    int boundary_ok; /* the next packet starts a frame whose head is complete */

    /* sync */
    int synced;
    int need_announced; /* a key-frame request was raised for the current loss */
    int resync_next;    /* flag the next handed-out frame as RESYNC */

    /* current frame */
    int in_frame;
    mc_h264_frame_header head;
    uint8_t *out;     /* Annex-B area (NULL: not written, e.g. ring refused) */
    uint32_t cap;     /* bytes available at out */
    uint32_t len;     /* bytes written */
    int reserved;     /* a ring reservation is pending */
    uint32_t limit;   /* largest frame body the output can take */
    uint32_t typical; /* decaying maximum of recent frame sizes: the first reservation */
    uint32_t handed;  /* output records drain_frames handed out, not yet released */
    int hold;         /* drain_ring: leave a packet in the input ring when the
                         frame it starts finds no room in the output ring */
    int broken;
    int ring_refused;
    int too_large;
    int start_known;
    int vcl_seen;
    int idr;
    int params_native; /* SPS and PPS received before the first slice */
    int params_ok;     /* SPS and PPS (received or inserted) before the first IDR slice */
    int has_sps, has_pps;
    uint32_t nals;      /* NAL units begun */
    uint8_t nal_type;   /* type of the unit being written */
    uint32_t nal_begin; /* offset in out of the NAL unit being written (its header) */
    int fu_active;
    uint8_t fu_type;

    /* parameter-set cache */
    uint32_t sps_len, pps_len;
    uint8_t sps[MC_H264_MAX_PARAM_SET];
    uint8_t pps[MC_H264_MAX_PARAM_SET];

    /* key-frame request policy (FIR fallback), io thread */
    int kf_active;       /* a request is outstanding: no key frame handed out since */
    uint32_t kf_attempt; /* requests sent for it */
    int64_t kf_next_ns;  /* when to send the next one */
    int64_t kf_timeout_ns;
    int64_t kf_max_interval_ns;
    volatile uint32_t kf_user; /* mc_h264_depacketizer_request_key_frame, any thread */

    /* drain_ring: the receive ring whose next records are fetched ahead */
    const mc_ring *prefetch_ring;
    uint64_t prefetch_capacity;

    /* drain_ring reads its input ring ahead of what it releases: records
     * whose bytes hold in-place frames stay until those frames are released */
    mc_ring *in_ring;
    uint8_t *in_base;       /* its data area */
    uint64_t cursor;        /* position of the next unread record */
    uint32_t unreleased;    /* records read and not yet released */
    uint64_t cur_pos;       /* the record being pushed: its position */
    uint32_t cur_before;    /* and the unreleased records before it */
    int frame_hold;         /* the frame in progress is in place, from: */
    uint64_t frame_hold_pos;
    uint32_t frame_hold_records;
    int unlisted;           /* drain_frames may have left frames for the next call */
    int handed_hold;        /* in-place frames handed out (not released), from: */
    uint64_t handed_hold_pos;
    uint32_t handed_hold_records;

    /* in place (drain_frames): a frame assembled over its packets' records */
    int in_place_enabled;   /* mc_h264_depacketizer_set_in_place (default on) */
    int in_place_ok;        /* this drain may */
    int inplace;            /* the frame in progress is (d->out is in the input ring) */
    int inplace_next;       /* room_for reserved the output record of one */
    uint8_t *ref_mem;       /* its MC_H264_RECORD_IN_INPUT record, reserved */

    mc_h264_depacketizer_stats stats;
};

#define KF_DEFAULT_TIMEOUT_NS 500000000LL
#define KF_DEFAULT_MAX_INTERVAL_NS 2000000000LL

MC_API mc_status mc_h264_depacketizer_new(uint32_t max_frame_bytes, uint32_t ssrc,
                                          mc_h264_depacketizer **out)
{
    if (!out)
        return MC_E_INVAL;
    *out = NULL;
    mc_h264_depacketizer *d = (mc_h264_depacketizer *)calloc(1, sizeof *d);
    if (!d)
        return MC_E_NOMEM;
    d->max_frame = max_frame_bytes ? max_frame_bytes : MC_H264_DEFAULT_MAX_FRAME;
    d->limit = d->max_frame;
    d->ssrc = ssrc;
    d->stats.waiting_for_key_frame = 1;
    d->resync_next = 1;
    d->kf_timeout_ns = KF_DEFAULT_TIMEOUT_NS;
    d->kf_max_interval_ns = KF_DEFAULT_MAX_INTERVAL_NS;
    d->in_place_enabled = 1;
    *out = d;
    return MC_OK;
}

static void abandon_output(mc_h264_depacketizer *d)
{
    if (d->reserved) {
        mc_ring_cancel(d->ring);
        d->reserved = 0;
    }
    d->out = NULL;
    d->inplace = d->inplace_next = 0;
    d->frame_hold = 0; /* its records are released with the rest */
}

MC_API void mc_h264_depacketizer_free(mc_h264_depacketizer *d)
{
    if (!d)
        return;
    abandon_output(d);
    free(d);
}

MC_API mc_status mc_h264_depacketizer_set_ring(mc_h264_depacketizer *d, mc_ring *ring)
{
    if (!d || !ring || d->in_frame)
        return MC_E_INVAL;
    mc_ring_stats rs;
    mc_status st = mc_ring_get_stats(ring, &rs);
    if (st != MC_OK)
        return st;
    if (rs.max_record <= MC_H264_FRAME_HEADER_SIZE)
        return MC_E_TOO_LARGE;
    d->ring = ring;
    d->limit = rs.max_record - MC_H264_FRAME_HEADER_SIZE < d->max_frame
                   ? rs.max_record - MC_H264_FRAME_HEADER_SIZE
                   : d->max_frame;
    d->buffer = NULL;
    d->buffer_size = 0;
    d->buffer_ready = 0;
    return MC_OK;
}

MC_API mc_status mc_h264_depacketizer_set_buffer(mc_h264_depacketizer *d, uint8_t *buffer,
                                                 uint32_t size)
{
    if (!d || !buffer || size < MC_H264_FRAME_HEADER_SIZE || ((uintptr_t)buffer & 7) ||
        d->in_frame)
        return MC_E_INVAL;
    d->ring = NULL;
    d->buffer = buffer;
    d->buffer_size = size;
    d->limit = size - MC_H264_FRAME_HEADER_SIZE < d->max_frame ? size - MC_H264_FRAME_HEADER_SIZE
                                                               : d->max_frame;
    d->buffer_ready = 0;
    return MC_OK;
}

static void need_key_frame(mc_h264_depacketizer *d)
{
    d->synced = 0;
    mc_store_u32_relaxed(&d->stats.waiting_for_key_frame, 1);
    if (!d->need_announced) {
        d->need_announced = 1;
        d->resync_next = 1;
        mc_h264_bump(&d->stats.key_frame_requests, 1);
        mc_store_u32_relaxed(&d->stats.key_frame_request_pending, 1);
    }
}

/* Frames are assembled in place in the output ring. The first reservation
 * is sized from recent frames, not from max_frame: a frame that outgrows it
 * grows it (mc_ring_extend), and a small one lets a rewinding ring
 * (mc_ring_set_rewind) start over at its cache-warm beginning sooner. */
#define RESERVE_MIN (32u * 1024u)

static uint32_t first_reservation(const mc_h264_depacketizer *d)
{
    uint64_t want = (uint64_t)d->typical + d->typical / 4 + 4096;
    if (want < RESERVE_MIN)
        want = RESERVE_MIN;
    if (want > d->limit)
        want = d->limit;
    return (uint32_t)want;
}

/* Reserve the output of the next frame (ring mode); 0 when the ring is full. */
static int reserve_output(mc_h264_depacketizer *d)
{
    if (d->reserved)
        return 1;
    uint32_t body = first_reservation(d);
    void *mem = NULL;
    if (mc_ring_reserve(d->ring, MC_H264_FRAME_HEADER_SIZE + body, &mem) != MC_OK || !mem)
        return 0;
    d->reserved = 1;
    d->out = (uint8_t *)mem + MC_H264_FRAME_HEADER_SIZE;
    d->cap = body;
    return 1;
}

static void begin_frame(mc_h264_depacketizer *d, const mc_h264_packet *p)
{
    d->in_frame = 1;
    memset(&d->head, 0, sizeof d->head);
    d->head.rtp_timestamp = p->timestamp;
    d->head.ssrc = d->ssrc;
    d->head.first_sequence = p->sequence;
    d->head.first_arrival_ns = p->arrival_ns;
    d->len = 0;
    d->broken = d->ring_refused = d->too_large = 0;
    d->vcl_seen = d->idr = d->params_native = d->params_ok = 0;
    d->has_sps = d->has_pps = 0;
    d->nals = 0;
    d->fu_active = 0;
    d->start_known = d->boundary_ok;
    if (d->ring && d->inplace_next) {
        /* in place: the frame starts where this packet's record does (its
         * header, already read, is the room the first start code needs) */
        d->inplace_next = 0;
        d->inplace = 1;
        d->out = (uint8_t *)p->payload - sizeof(mc_rtp_record);
        d->cap = d->limit;
        d->frame_hold = 1;
        d->frame_hold_pos = d->cur_pos;
        d->frame_hold_records = d->cur_before;
    } else if (d->ring) {
        if (!reserve_output(d)) {
            d->out = NULL;
            d->cap = 0;
            d->ring_refused = 1;
        }
    } else if (d->buffer) {
        d->out = d->buffer + MC_H264_FRAME_HEADER_SIZE;
        d->cap = d->limit;
    } else {
        d->out = NULL;
        d->cap = 0;
        d->ring_refused = 1; /* no output configured: frames are counted as refused */
    }
}

/* Grow the frame's reservation to hold `more` bytes after what it has
 * (at least doubling it, at most the limit), moving it if it must. */
static mc_status extend_output(mc_h264_depacketizer *d, uint64_t more)
{
    uint64_t want = (uint64_t)d->len + more;
    if (want < (uint64_t)d->cap * 2)
        want = (uint64_t)d->cap * 2;
    if (want > d->limit)
        want = d->limit;
    void *mem = NULL;
    mc_status st = mc_ring_extend(d->ring, MC_H264_FRAME_HEADER_SIZE + (uint32_t)want,
                                  MC_H264_FRAME_HEADER_SIZE + d->len, &mem);
    if (st != MC_OK)
        return st;
    d->out = (uint8_t *)mem + MC_H264_FRAME_HEADER_SIZE;
    d->cap = (uint32_t)want;
    return MC_OK;
}

/* The most a packet's output can run ahead of its input, which in place
 * must never overtake the bytes still to be read: 5 bytes (start code and
 * header) for an FU-A's 2 at its start, 4 more for a single NAL unit, 4 for
 * each STAP-A unit's 2-byte size, and the cached SPS and PPS (with start
 * codes) inserted before an IDR slice that begins here in a frame without
 * them. */
static uint32_t growth_bound(const mc_h264_depacketizer *d, const uint8_t *p, uint32_t n,
                             int new_frame)
{
    uint8_t type = p[0] & 0x1f;
    uint32_t g = 4;
    int idr = type == MC_NAL_IDR;
    if (type == MC_NAL_FU_A) {
        g = 3;
        idr = n >= 2 && (p[1] & 0x80) && (p[1] & 0x1f) == MC_NAL_IDR;
    } else if (type == MC_NAL_STAP_A) {
        g = 0;
        for (uint32_t i = 1; i + 2 < n;) {
            g += 2;
            idr |= (p[i + 2] & 0x1f) == MC_NAL_IDR;
            i += 2 + (((uint32_t)p[i] << 8) | p[i + 1]);
        }
    }
    if (idr && (new_frame || !d->vcl_seen))
        g += 8 + d->sps_len + d->pps_len;
    return g;
}

/* The output record of an in-place frame: where it lies, kept in order with
 * the frames of the output ring. */
#define IN_INPUT_RECORD_SIZE (MC_H264_FRAME_HEADER_SIZE + 8)

/* The most output a packet of `n` payload bytes can make: 2n (STAP-A units
 * of 1 byte gain a 4-byte start code for their 2-byte size) plus the SPS and
 * PPS inserted before an IDR slice. */
static uint64_t output_bound(uint32_t n)
{
    return 2 * (uint64_t)n + 2 * (4 + MC_H264_MAX_PARAM_SET) + 8;
}

static int reserve_in_place(mc_h264_depacketizer *d)
{
    if (d->reserved)
        return 1;
    void *mem = NULL;
    if (mc_ring_reserve(d->ring, IN_INPUT_RECORD_SIZE, &mem) != MC_OK || !mem)
        return 0;
    d->reserved = 1;
    d->ref_mem = (uint8_t *)mem;
    d->inplace_next = 1;
    return 1;
}

/* The next packet's bytes would overtake unread input (a wrap of the input
 * ring, many STAP-A units, inserted parameter sets): move the frame so far
 * into the output ring, by growing its reserved record into a frame's. */
static int leave_in_place(mc_h264_depacketizer *d, uint32_t n)
{
    uint64_t want = (uint64_t)d->len + output_bound(n);
    uint32_t first = first_reservation(d);
    if (want < first)
        want = first;
    if (want > d->limit)
        want = d->limit;
    void *mem = NULL;
    if (mc_ring_extend(d->ring, MC_H264_FRAME_HEADER_SIZE + (uint32_t)want, 0, &mem) != MC_OK)
        return 0;
    uint8_t *out = (uint8_t *)mem + MC_H264_FRAME_HEADER_SIZE;
    memcpy(out, d->out, d->len);
    d->out = out;
    d->cap = (uint32_t)want;
    d->inplace = 0;
    d->frame_hold = 0;
    return 1;
}

/* Hold mode (drain_ring): is there room for packet `p` (`n` payload bytes),
 * reserving or growing the output first (by output_bound(n))? 0 (nothing changed
 * but a reservation) when the ring is full for now: the caller leaves the
 * packet for a later call. A frame beyond the limit is not this function's
 * to refuse: put() counts it as too large. In place (drain_frames), a new frame
 * needs only its small output record, and a packet that would overtake unread
 * input moves the frame to the output ring first. */
static int room_for(mc_h264_depacketizer *d, const mc_h264_packet *p)
{
    uint32_t n = p->payload_length;
    if (!d->in_frame) {
        if (d->in_place_ok && growth_bound(d, p->payload, n, 1) <= sizeof(mc_rtp_record))
            return reserve_in_place(d);
        return reserve_output(d);
    }
    if (!d->out || d->broken)
        return 1;
    if (d->inplace) {
        if (d->out + d->len + growth_bound(d, p->payload, n, 0) <= p->payload)
            return 1;
        return leave_in_place(d, n);
    }
    uint64_t worst = output_bound(n);
    if (worst <= d->cap - d->len)
        return 1;
    if (d->cap >= d->limit)
        return 1; /* at the limit: put() decides */
    return extend_output(d, worst) == MC_OK;
}

/* The frame needs `more` bytes beyond its reservation: grow it (ring mode). */
static int grow_output(mc_h264_depacketizer *d, uint32_t more)
{
    if (!d->ring || (uint64_t)d->len + more > d->limit) {
        d->broken = 1;
        d->too_large = 1;
        return 0;
    }
    if (extend_output(d, more) != MC_OK) {
        /* no room in the ring for the rest: the consumer misses this frame */
        abandon_output(d);
        d->ring_refused = 1;
        return 0;
    }
    return 1;
}

static inline void put(mc_h264_depacketizer *d, const uint8_t *src, uint32_t n)
{
    if (d->broken || !d->out)
        return;
    if (n > d->cap - d->len && !grow_output(d, n))
        return;
    if (d->inplace) { /* back over the headers read: never past the unread bytes */
        memmove(d->out + d->len, src, n);
        d->len += n;
        return;
    }
    memcpy(d->out + d->len, src, n);
    d->len += n;
    if (n >= 256) {
        /* the next packet's bytes go right after these: ask for those lines
         * now (the frame ring's memory is rarely still in cache) */
        uint32_t ahead = d->cap - d->len < n ? d->cap - d->len : n;
        const uint8_t *p = d->out + d->len;
        for (uint32_t o = 0; o < ahead; o += 64)
            H264_PREFETCH_WRITE(p + o);
    }
}

static void put_param_set(mc_h264_depacketizer *d, const uint8_t *nal, uint32_t n, uint32_t flag)
{
    put(d, START_CODE, 4);
    put(d, nal, n);
    d->head.flags |= flag;
}

/* A NAL unit with header byte `h` starts: write its start code and header,
 * and before the first IDR slice of a frame that lacks SPS/PPS, insert the
 * cached ones. */
static void nal_begin(mc_h264_depacketizer *d, uint8_t h)
{
    uint8_t type = h & 0x1f;
    if (type >= 1 && type <= 5 && !d->vcl_seen) {
        d->vcl_seen = 1;
        d->params_native = d->has_sps && d->has_pps;
        if (type == MC_NAL_IDR) {
            if ((!d->has_sps && d->sps_len) || (!d->has_pps && d->pps_len)) {
                if (!d->has_sps && d->sps_len)
                    put_param_set(d, d->sps, d->sps_len, MC_H264_FRAME_HAS_SPS);
                if (!d->has_pps && d->pps_len)
                    put_param_set(d, d->pps, d->pps_len, MC_H264_FRAME_HAS_PPS);
                d->head.flags |= MC_H264_FRAME_PARAMS_INSERTED;
                d->has_sps = d->has_sps || d->sps_len;
                d->has_pps = d->has_pps || d->pps_len;
            }
            d->params_ok = d->has_sps && d->has_pps;
        }
    }
    if (type == MC_NAL_IDR)
        d->idr = 1;
    d->nals++;
    d->nal_type = type;
    d->nal_begin = d->len + 4;
    uint8_t b[5] = {0, 0, 0, 1, h};
    put(d, b, 5);
}

/* The NAL unit started by nal_begin is complete: cache parameter sets. */
static void nal_end(mc_h264_depacketizer *d)
{
    if (d->broken || (d->nal_type != MC_NAL_SPS && d->nal_type != MC_NAL_PPS))
        return;
    int sps = d->nal_type == MC_NAL_SPS;
    if (sps) {
        d->has_sps = 1;
        d->head.flags |= MC_H264_FRAME_HAS_SPS;
    } else {
        d->has_pps = 1;
        d->head.flags |= MC_H264_FRAME_HAS_PPS;
    }
    if (!d->out)
        return; /* not written (ring refused the frame): nothing to cache */
    uint32_t n = d->len - d->nal_begin;
    if (n <= MC_H264_MAX_PARAM_SET) {
        memcpy(sps ? d->sps : d->pps, d->out + d->nal_begin, n);
        *(sps ? &d->sps_len : &d->pps_len) = n;
    }
}

static void whole_nal(mc_h264_depacketizer *d, const uint8_t *nal, uint32_t n)
{
    nal_begin(d, nal[0]);
    put(d, nal + 1, n - 1);
    nal_end(d);
}

/* Close the current frame: hand it out if it is decodable, else drop it. */
static uint32_t close_frame(mc_h264_depacketizer *d, int by_marker)
{
    d->in_frame = 0;
    if (d->fu_active) { /* FU-A never ended */
        d->broken = 1;
        d->fu_active = 0;
    }
    if (d->too_large)
        mc_h264_bump(&d->stats.frames_too_large, 1);
    if (!d->broken && d->nals == 0) {
        abandon_output(d); /* nothing but skipped units (e.g. PACSI): not a frame */
        return 0;
    }
    int key = d->idr && d->params_ok && (d->start_known || d->params_native);
    int decodable = !d->broken && (key || (d->synced && d->start_known));
    if (decodable && d->ring_refused) {
        /* the consumer misses a frame it would have decoded */
        mc_h264_bump(&d->stats.ring_drops, 1);
        mc_h264_bump(&d->stats.frames_dropped, 1);
        abandon_output(d);
        need_key_frame(d);
        return 0;
    }
    if (!decodable) {
        mc_h264_bump(&d->stats.frames_dropped, 1);
        abandon_output(d);
        need_key_frame(d);
        return 0;
    }
    mc_h264_frame_header *h = &d->head;
    if (key) {
        h->flags |= MC_H264_FRAME_KEY;
        mc_h264_bump(&d->stats.key_frames, 1);
        d->synced = 1;
        d->need_announced = 0;
        mc_store_u32_relaxed(&d->stats.waiting_for_key_frame, 0);
        mc_store_u32_relaxed(&d->stats.key_frame_request_pending, 0);
        d->kf_active = 0; /* the request is answered */
    }
    if (h->flags & MC_H264_FRAME_PARAMS_INSERTED)
        mc_h264_bump(&d->stats.params_inserted, 1);
    if (d->resync_next && key) {
        h->flags |= MC_H264_FRAME_RESYNC;
        d->resync_next = 0;
    }
    if (!by_marker)
        h->flags |= MC_H264_FRAME_NO_MARKER;
    h->length = d->len;
    d->typical = d->len > d->typical ? d->len : d->typical - d->typical / 32;
    if (d->inplace) {
        uint32_t where[2] = {(uint32_t)(d->out - d->in_base), 0};
        memcpy(d->ref_mem, h, sizeof *h);
        memcpy(d->ref_mem + MC_H264_FRAME_HEADER_SIZE, where, sizeof where);
        mc_ring_commit(d->ring, MC_H264_RECORD_IN_INPUT, IN_INPUT_RECORD_SIZE);
        d->reserved = 0;
        d->inplace = 0;
        if (!d->handed_hold) {
            d->handed_hold = 1;
            d->handed_hold_pos = d->frame_hold_pos;
            d->handed_hold_records = d->frame_hold_records;
        }
        d->frame_hold = 0;
        d->out = NULL;
        mc_h264_bump(&d->stats.frames, 1);
        mc_h264_bump(&d->stats.frames_in_place, 1);
        return 1;
    }
    memcpy(d->out - MC_H264_FRAME_HEADER_SIZE, h, sizeof *h);
    if (d->ring) {
        mc_ring_commit(d->ring, MC_H264_RECORD_TYPE, MC_H264_FRAME_HEADER_SIZE + d->len);
        d->reserved = 0;
    } else {
        d->buffer_ready = 1;
    }
    d->out = NULL;
    mc_h264_bump(&d->stats.frames, 1);
    return 1;
}

/* RFC 6184 section 5.7.1: check every aggregation unit before writing any. */
static int stap_a_valid(const uint8_t *p, uint32_t n)
{
    uint32_t i = 1;
    int units = 0;
    while (i < n) {
        if (n - i < 2)
            return 0;
        uint32_t size = ((uint32_t)p[i] << 8) | p[i + 1];
        i += 2;
        if (size == 0 || size > n - i)
            return 0;
        uint8_t type = p[i] & 0x1f;
        if ((p[i] & 0x80) || type == 0 || type >= 24)
            return 0;
        i += size;
        units++;
    }
    return units > 0;
}

static void payload(mc_h264_depacketizer *d, const uint8_t *p, uint32_t n)
{
    uint8_t type = p[0] & 0x1f;
    if (type != MC_NAL_FU_A && d->fu_active) {
        d->broken = 1; /* an FU-A was interrupted */
        d->fu_active = 0;
    }
    if (p[0] & 0x80) { /* forbidden_zero_bit: RFC 6184 lets receivers discard */
        mc_h264_bump(&d->stats.malformed_packets, 1);
        d->broken = 1;
        return;
    }
    if (type >= 1 && type <= 23) {
        mc_h264_bump(&d->stats.single_nal_packets, 1);
        whole_nal(d, p, n);
    } else if (type == MC_NAL_STAP_A) {
        if (!stap_a_valid(p, n)) {
            mc_h264_bump(&d->stats.malformed_packets, 1);
            d->broken = 1;
            return;
        }
        mc_h264_bump(&d->stats.stap_a_packets, 1);
        uint32_t i = 1;
        while (i < n) {
            uint32_t size = ((uint32_t)p[i] << 8) | p[i + 1];
            whole_nal(d, p + i + 2, size);
            i += 2 + size;
        }
    } else if (type == MC_NAL_FU_A) {
        if (n < 3 || (p[1] & 0x1f) == 0 || (p[1] & 0x1f) >= 24) {
            mc_h264_bump(&d->stats.malformed_packets, 1);
            d->broken = 1;
            d->fu_active = 0;
            return;
        }
        mc_h264_bump(&d->stats.fu_a_packets, 1);
        uint8_t fu = p[1];
        uint8_t nal_type = fu & 0x1f;
        if (fu & 0x80) { /* S */
            if (d->fu_active)
                d->broken = 1; /* the previous one lost its end */
            nal_begin(d, (uint8_t)((p[0] & 0xe0) | nal_type));
            d->fu_active = 1;
            d->fu_type = nal_type;
        } else if (!d->fu_active || d->fu_type != nal_type) {
            d->broken = 1; /* its start is missing */
            d->fu_active = 0;
            return;
        }
        put(d, p + 2, n - 2);
        if (fu & 0x40) { /* E */
            d->fu_active = 0;
            nal_end(d);
        }
    } else if (type == 0 || type >= 30) {
        mc_h264_bump(&d->stats.unsupported_packets, 1); /* no slice data: skip, frame intact */
    } else {
        mc_h264_bump(&d->stats.unsupported_packets, 1); /* STAP-B, MTAP, FU-B: may hold slices */
        d->broken = 1;
    }
}

MC_API mc_status mc_h264_depacketizer_push(mc_h264_depacketizer *d, const mc_h264_packet *pk,
                                           uint32_t count, uint32_t *consumed, uint32_t *frames)
{
    if (!d || (!pk && count))
        return MC_E_INVAL;
    uint32_t i = 0, made = 0;
    for (; i < count; i++) {
        const mc_h264_packet *p = &pk[i];
        if (d->buffer_ready)
            break;
        if (!p->payload && p->payload_length) {
            mc_h264_bump(&d->stats.malformed_packets, 1);
            continue;
        }
        int gap = 0;
        if (d->have_sequence) {
            int32_t delta = mc_seq_diff(p->sequence, d->expected_sequence);
            if (delta < 0) {
                mc_h264_bump(&d->stats.packets, 1);
                mc_h264_bump(&d->stats.packets_late, 1);
                continue;
            }
            if (delta > 0) {
                gap = 1;
                mc_h264_bump(&d->stats.sequence_gaps, 1);
                mc_h264_bump(&d->stats.packets_lost, (uint64_t)delta);
                if (d->in_frame)
                    d->broken = 1;
                d->boundary_ok = 0;
                d->expected_sequence = p->sequence; /* the gap is accounted for once */
                need_key_frame(d);
            }
        }
        if (d->in_frame && p->timestamp != d->head.rtp_timestamp) {
            made += close_frame(d, 0);
            d->boundary_ok = !gap;
            if (d->buffer_ready)
                break; /* this packet starts the next frame: not consumed yet */
        }
        if (d->hold && p->payload_length && !room_for(d, p)) {
            /* no room yet for the frame this packet starts, or for this
             * packet of the frame being assembled: it waits in the input ring
             * until the consumer has taken frames (drain_ring) */
            mc_h264_bump(&d->stats.output_waits, 1);
            break;
        }
        d->have_sequence = 1;
        d->expected_sequence = (uint16_t)(p->sequence + 1);
        mc_h264_bump(&d->stats.packets, 1);
        mc_h264_bump(&d->stats.payload_bytes, p->payload_length);
        if (p->payload_length == 0) { /* padding-only packet (bandwidth probe) */
            if (p->marker && d->in_frame) {
                made += close_frame(d, 1);
                d->boundary_ok = 1;
            }
            continue;
        }
        if (!d->in_frame)
            begin_frame(d, p);
        d->head.last_sequence = p->sequence;
        d->head.last_arrival_ns = p->arrival_ns;
        d->head.packets++;
        payload(d, p->payload, p->payload_length);
        if (p->marker) {
            made += close_frame(d, 1);
            d->boundary_ok = 1;
        }
    }
    if (consumed)
        *consumed = i;
    if (frames)
        *frames = made;
    return MC_OK;
}


/* Records lie back to back in the ring, and mc_ring_peek finds each one from
 * the header of the one before (a chain of dependent loads, one cache miss
 * after another when the records are no longer in cache). Asking for the
 * next stretch of the ring ahead of the walk turns that into parallel
 * fetches; every line asked for is read anyway (header, then payload). */
static void prefetch_ring(const uint8_t *base, uint64_t capacity, uint64_t from, uint64_t bytes)
{
    if (bytes > capacity)
        bytes = capacity;
    from %= capacity;
    uint64_t first = capacity - from < bytes ? capacity - from : bytes; /* up to the wrap */
    const uint8_t *p = base + (from & ~(uint64_t)63);
    const uint8_t *end = base + from + first;
    for (; p < end; p += 64)
        H264_PREFETCH(p);
    for (p = base; p < base + (bytes - first); p += 64)
        H264_PREFETCH(p);
}

/* Release the input records nothing needs any more: all read ones, or those
 * before the first in-place frame still held (handed out, or in progress). */
static void release_input(mc_h264_depacketizer *d)
{
    uint64_t pos = d->cursor;
    uint32_t n = d->unreleased;
    if (d->handed_hold) {
        pos = d->handed_hold_pos;
        n = d->handed_hold_records;
    } else if (d->frame_hold) {
        pos = d->frame_hold_pos;
        n = d->frame_hold_records;
    }
    if (!n || !d->in_ring || mc_ring_release_at(d->in_ring, pos, n) != MC_OK)
        return;
    d->unreleased -= n;
    if (d->handed_hold)
        d->handed_hold_records -= n;
    if (d->frame_hold)
        d->frame_hold_records -= n;
}

MC_API mc_status mc_h264_depacketizer_drain_ring(mc_h264_depacketizer *d, mc_ring *rtp_ring,
                                                 uint32_t max_records, uint32_t *records,
                                                 uint32_t *frames)
{
    enum { CHUNK = 32 };
    if (!d || !rtp_ring || !d->ring)
        return MC_E_INVAL;
    if (d->in_ring != rtp_ring) {
        if (d->frame_hold || d->handed_hold)
            return MC_E_STATE; /* frames of another input ring are held */
        d->in_ring = rtp_ring;
        d->in_base = mc_ring_data(rtp_ring);
        d->unreleased = 0;
    }
    if (!d->unreleased)
        d->cursor = mc_ring_read_position(rtp_ring);
    uint32_t done = 0, made = 0;
    uint64_t positions[CHUNK];
    uint32_t offsets[CHUNK], lengths[CHUNK], types[CHUNK];
    const uint8_t *base = d->in_base;
    if (d->prefetch_ring != rtp_ring) {
        mc_ring_stats rs;
        d->prefetch_ring = rtp_ring;
        d->prefetch_capacity = mc_ring_get_stats(rtp_ring, &rs) == MC_OK ? rs.capacity : 0;
    }
    int stop = 0;
    d->hold = 1;
    while (done < max_records && !stop) {
        uint32_t want = max_records - done < CHUNK ? max_records - done : CHUNK, n = 0;
        uint64_t next = d->cursor;
        mc_status st = mc_ring_peek_at(rtp_ring, &next, positions, offsets, lengths, types, want,
                                       &n);
        if (st != MC_OK || n == 0)
            break;
        /* while this chunk is worked on, the next one comes in */
        uint64_t end = (uint64_t)offsets[n - 1] + lengths[n - 1];
        uint64_t span = end > offsets[0] ? end - offsets[0] + 64 : 0;
        if (d->prefetch_capacity && span)
            prefetch_ring(base, d->prefetch_capacity, end, span);
        uint32_t i = 0;
        for (; i < n; i++) {
            /* events and concealment slots: nothing to depacketize */
            if (types[i] == MC_RECORD_RTP && lengths[i] > sizeof(mc_rtp_record)) {
                mc_rtp_record rec;
                memcpy(&rec, base + offsets[i], sizeof rec);
                if (!(rec.flags & MC_RECORD_FLAG_LOST)) {
                    mc_h264_packet pk;
                    memset(&pk, 0, sizeof pk);
                    pk.payload = base + offsets[i] + sizeof rec;
                    pk.payload_length = lengths[i] - (uint32_t)sizeof rec;
                    pk.timestamp = rec.timestamp;
                    pk.arrival_ns = rec.arrival_ns;
                    pk.sequence = rec.sequence_number;
                    pk.marker = rec.marker;
                    d->cur_pos = positions[i];
                    d->cur_before = d->unreleased;
                    uint32_t consumed = 0, f = 0;
                    mc_h264_depacketizer_push(d, &pk, 1, &consumed, &f);
                    made += f;
                    if (!consumed) { /* waits for room in the output ring */
                        stop = 1;
                        break;
                    }
                }
            }
            d->unreleased++;
            d->cursor = i + 1 < n ? positions[i + 1] : next;
        }
        done += i;
        release_input(d);
        if (n < want)
            break;
    }
    d->hold = 0;
    if (records)
        *records = done;
    if (frames)
        *frames = made;
    return MC_OK;
}

MC_API mc_status mc_h264_depacketizer_set_in_place(mc_h264_depacketizer *d, int enabled)
{
    if (!d)
        return MC_E_INVAL;
    d->in_place_enabled = enabled != 0;
    return MC_OK;
}

MC_API mc_status mc_h264_depacketizer_release_frames(mc_h264_depacketizer *d)
{
    if (!d || !d->ring)
        return MC_E_INVAL;
    uint32_t n = d->handed;
    d->handed = 0;
    mc_status st = n ? mc_ring_release(d->ring, n) : MC_OK;
    if (d->handed_hold && !d->unlisted) { /* their input records too */
        d->handed_hold = 0;
        release_input(d);
    }
    return st;
}

MC_API mc_status mc_h264_depacketizer_drain_frames(mc_h264_depacketizer *d, mc_ring *rtp_ring,
                                                   uint32_t max_records, mc_h264_frame_ref *refs,
                                                   uint32_t max_refs, uint32_t *count,
                                                   uint32_t *records)
{
    enum { MAX_REFS = 256 };
    if (!d || !rtp_ring || !d->ring || !count || (!refs && max_refs))
        return MC_E_INVAL;
    *count = 0;
    mc_status st = mc_h264_depacketizer_release_frames(d);
    if (st != MC_OK)
        return st;
    uint32_t drained = 0, frames = 0;
    if (max_records) {
        d->in_place_ok = d->in_place_enabled;
        st = mc_h264_depacketizer_drain_ring(d, rtp_ring, max_records, &drained, &frames);
        d->in_place_ok = 0;
        if (st != MC_OK)
            return st;
    }
    if (records)
        *records = drained;
    uint32_t offsets[MAX_REFS], lengths[MAX_REFS], types[MAX_REFS], n = 0;
    if (max_refs > MAX_REFS)
        max_refs = MAX_REFS;
    d->unlisted = 0;
    if (!max_refs)
        return MC_OK;
    st = mc_ring_peek(d->ring, offsets, lengths, types, max_refs, &n);
    if (st == MC_E_EMPTY || st == MC_E_CLOSED)
        return MC_OK;
    if (st != MC_OK)
        return st;
    const uint8_t *base = mc_ring_data(d->ring);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t source = MC_H264_FRAME_SOURCE_OUTPUT, where[2] = {0, 0};
        if (types[i] == MC_H264_RECORD_IN_INPUT && lengths[i] == IN_INPUT_RECORD_SIZE) {
            source = MC_H264_FRAME_SOURCE_INPUT;
            memcpy(where, base + offsets[i] + MC_H264_FRAME_HEADER_SIZE, sizeof where);
        } else if (types[i] != MC_H264_RECORD_TYPE || lengths[i] < MC_H264_FRAME_HEADER_SIZE) {
            continue; /* not a frame: released with the rest */
        }
        mc_h264_frame_header h;
        memcpy(&h, base + offsets[i], sizeof h);
        uint32_t body = lengths[i] - MC_H264_FRAME_HEADER_SIZE;
        mc_h264_frame_ref *r = &refs[k++];
        r->source = source;
        r->reserved = 0;
        if (source == MC_H264_FRAME_SOURCE_INPUT) {
            r->offset = where[0];
            r->length = h.length;
        } else {
            r->offset = offsets[i] + MC_H264_FRAME_HEADER_SIZE;
            r->length = h.length < body ? h.length : body;
        }
        r->end = r->offset + r->length;
        r->rtp_timestamp = h.rtp_timestamp;
        r->flags = h.flags;
        r->ssrc = h.ssrc;
        r->first_sequence = h.first_sequence;
        r->last_sequence = h.last_sequence;
        r->packets = h.packets;
        r->first_arrival_ns = h.first_arrival_ns;
        r->last_arrival_ns = h.last_arrival_ns;
    }
    d->handed = n;
    d->unlisted = n == max_refs; /* perhaps: in-place frames' records stay held */
    *count = k;
    return MC_OK;
}

MC_API mc_status mc_h264_depacketizer_take_frame(mc_h264_depacketizer *d, mc_h264_frame_header *out)
{
    if (!d || !out)
        return MC_E_INVAL;
    if (!d->buffer_ready)
        return MC_E_EMPTY;
    memcpy(out, d->buffer, sizeof *out);
    d->buffer_ready = 0;
    return MC_OK;
}

MC_API mc_status mc_h264_depacketizer_take_key_frame_request(mc_h264_depacketizer *d,
                                                             uint32_t *requested)
{
    if (!d || !requested)
        return MC_E_INVAL;
    *requested = mc_load_u32_relaxed(&d->stats.key_frame_request_pending);
    mc_store_u32_relaxed(&d->stats.key_frame_request_pending, 0);
    return MC_OK;
}

static uint32_t exchange_u32(volatile uint32_t *p, uint32_t v)
{
    uint32_t cur = mc_load_u32_relaxed(p);
    while (!mc_cas_u32(p, cur, v))
        cur = mc_load_u32_relaxed(p);
    return cur;
}

MC_API mc_status mc_h264_depacketizer_request_key_frame(mc_h264_depacketizer *d)
{
    if (!d)
        return MC_E_INVAL;
    exchange_u32(&d->kf_user, 1);
    return MC_OK;
}

MC_API mc_status mc_h264_depacketizer_set_key_frame_timing(mc_h264_depacketizer *d,
                                                           int64_t timeout_ns,
                                                           int64_t max_interval_ns)
{
    if (!d || timeout_ns < 0 || max_interval_ns < 0)
        return MC_E_INVAL;
    d->kf_timeout_ns = timeout_ns ? timeout_ns : KF_DEFAULT_TIMEOUT_NS;
    d->kf_max_interval_ns = max_interval_ns ? max_interval_ns : KF_DEFAULT_MAX_INTERVAL_NS;
    return MC_OK;
}

MC_API mc_status mc_h264_depacketizer_poll_key_frame(mc_h264_depacketizer *d, int64_t now_ns,
                                                     int64_t rtt_ns, uint32_t *methods)
{
    if (!d || !methods)
        return MC_E_INVAL;
    *methods = 0;
    int user = mc_load_u32_relaxed(&d->kf_user) && exchange_u32(&d->kf_user, 0);
    int loss = mc_load_u32_relaxed(&d->stats.key_frame_request_pending) != 0;
    if (loss)
        mc_store_u32_relaxed(&d->stats.key_frame_request_pending, 0);
    if ((user || loss) && !d->kf_active) {
        d->kf_active = 1; /* a new request: PLI first */
        d->kf_attempt = 0;
        d->kf_next_ns = now_ns;
    }
    if (!d->kf_active || now_ns < d->kf_next_ns)
        return MC_OK;
    int64_t t = d->kf_timeout_ns;
    if (rtt_ns > 0 && 2 * rtt_ns > t)
        t = 2 * rtt_ns;
    int64_t cap = d->kf_max_interval_ns > t ? d->kf_max_interval_ns : t;
    uint32_t k = d->kf_attempt;
    uint32_t m = k == 0 ? MC_KEYFRAME_PLI
                        : k == 1 ? MC_KEYFRAME_FIR : (MC_KEYFRAME_PLI | MC_KEYFRAME_FIR);
    int64_t wait = t;
    for (uint32_t i = 0; i < k && wait < cap; i++)
        wait *= 2; /* T after the PLI, 2T after the FIR, then 4T, ... */
    if (wait > cap)
        wait = cap;
    d->kf_next_ns = now_ns + wait;
    d->kf_attempt = k + 1;
    if (m & MC_KEYFRAME_PLI)
        mc_h264_bump(&d->stats.plis_requested, 1);
    if (m & MC_KEYFRAME_FIR)
        mc_h264_bump(&d->stats.firs_requested, 1);
    *methods = m;
    return MC_OK;
}

MC_API mc_status mc_h264_depacketizer_reset(mc_h264_depacketizer *d)
{
    if (!d)
        return MC_E_INVAL;
    abandon_output(d);
    if (d->in_ring)
        release_input(d); /* records of the partial frame, if in place */
    d->in_frame = 0;
    d->fu_active = 0;
    d->have_sequence = 0;
    d->boundary_ok = 0;
    d->synced = 0;
    d->need_announced = 0;
    d->resync_next = 1;
    mc_store_u32_relaxed(&d->stats.waiting_for_key_frame, 1);
    return MC_OK;
}

MC_API mc_status mc_h264_depacketizer_get_stats(mc_h264_depacketizer *d,
                                                mc_h264_depacketizer_stats *out)
{
    if (!d || !out)
        return MC_E_INVAL;
    const uint64_t *src = &d->stats.packets;
    uint64_t *dst = &out->packets;
    size_t n64 = (offsetof(mc_h264_depacketizer_stats, waiting_for_key_frame)) / sizeof(uint64_t);
    for (size_t i = 0; i < n64; i++)
        dst[i] = mc_load_u64_relaxed(&src[i]);
    out->waiting_for_key_frame = mc_load_u32_relaxed(&d->stats.waiting_for_key_frame);
    out->key_frame_request_pending = mc_load_u32_relaxed(&d->stats.key_frame_request_pending);
    return MC_OK;
}


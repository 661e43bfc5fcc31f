/*
 * jitter.c — adaptive audio jitter buffer. The model, the target-delay rule
 * and the LOST / UNDERRUN decision are described in jitter.h.
 *
 * Storage: `capacity` slots indexed by extended sequence number modulo
 * capacity, each with a fixed `max_payload` byte area (one allocation at
 * creation, 64-byte aligned; nothing allocates per packet). Every stored
 * packet has next <= ext < next + capacity, so slots never collide.
 */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "jitter.h"
#include "rtp.h"
#include "seq.h"

#define JUMP_RESET_RUN 3     /* consecutive out-of-range packets that mean "stream restarted" */
#define SHRINK_COOLDOWN 5    /* pops between two frames dropped to shrink the delay */
#define JITTER_FACTOR 4.0    /* target = frame + 4 x jitter estimate */

typedef struct slot {
    int64_t ext;
    int64_t arrival_ns;
    uint32_t timestamp;
    uint32_t length;
    uint8_t marker;
    uint8_t payload_type;
    uint8_t present;
} slot;

struct mc_jitter {
    mc_jitter_config config;
    uint32_t mask;
    slot *slots;
    uint8_t *payloads;
    mc_unwrap unwrap;
    int32_t have_packets;   /* at least one packet since creation or reset */
    int32_t buffering;      /* filling up to the target before playing */
    int64_t next;           /* extended sequence number of the next slot to play */
    int64_t highest;        /* newest extended sequence number stored */
    uint32_t jump_run;
    uint32_t shrink_cooldown;
    /* interarrival jitter (RFC 3550 A.8 form, in ns) */
    int32_t have_prev;
    int64_t prev_arrival_ns;
    uint32_t prev_timestamp;
    double jitter_ns;
    mc_jitter_stats stats;
};

MC_API mc_status mc_jitter_new(const mc_jitter_config *c, mc_jitter **out)
{
    if (!c || !out || c->clock_rate == 0 || c->frame_ms == 0 || c->max_payload == 0 ||
        c->capacity < 2 || (c->capacity & (c->capacity - 1)) != 0 || c->capacity > 65536 / 2 ||
        c->min_delay_ms > c->max_delay_ms || c->max_delay_ms / c->frame_ms >= c->capacity ||
        c->max_payload > (1u << 20))
        return MC_E_INVAL;
    mc_jitter *jb = (mc_jitter *)calloc(1, sizeof *jb);
    if (!jb)
        return MC_E_NOMEM;
    jb->config = *c;
    jb->mask = c->capacity - 1;
    jb->slots = (slot *)calloc(c->capacity, sizeof(slot));
    jb->payloads = (uint8_t *)mc_aligned_alloc(64, (size_t)c->capacity * c->max_payload);
    if (!jb->slots || !jb->payloads) {
        mc_jitter_free(jb);
        return MC_E_NOMEM;
    }
    jb->buffering = 1;
    jb->stats.target_delay_ms = c->min_delay_ms;
    *out = jb;
    return MC_OK;
}

MC_API void mc_jitter_free(mc_jitter *jb)
{
    if (!jb)
        return;
    free(jb->slots);
    mc_aligned_free(jb->payloads);
    free(jb);
}

static void reset_to(mc_jitter *jb, int64_t ext)
{
    /* what was stored is given up: counted, so every inserted packet ends
     * played, shrunk or reset (and the rest is still held) */
    for (uint32_t i = 0; i < jb->config.capacity; i++) {
        if (jb->slots[i].present)
            jb->stats.reset_dropped++;
        jb->slots[i].present = 0;
    }
    jb->next = ext;
    jb->highest = ext;
    jb->unwrap.last = ext;
    jb->buffering = 1;
    jb->jump_run = 0;
    jb->have_prev = 0;
}

static void update_jitter(mc_jitter *jb, int64_t now_ns, uint32_t timestamp)
{
    if (jb->have_prev) {
        double sent_ns = (double)mc_ts_diff(timestamp, jb->prev_timestamp) * 1e9 /
                         (double)jb->config.clock_rate;
        double d = (double)(now_ns - jb->prev_arrival_ns) - sent_ns;
        if (d < 0)
            d = -d;
        jb->jitter_ns += (d - jb->jitter_ns) / 16.0;
    }
    jb->have_prev = 1;
    jb->prev_arrival_ns = now_ns;
    jb->prev_timestamp = timestamp;
}

MC_API mc_status mc_jitter_insert(mc_jitter *jb, int64_t now_ns, uint16_t sequence_number,
                                  uint32_t timestamp, uint8_t marker, uint8_t payload_type,
                                  const uint8_t *payload, uint32_t payload_length)
{
    if (!jb || (payload_length && !payload))
        return MC_E_INVAL;
    if (payload_length > jb->config.max_payload) {
        jb->stats.too_large++;
        return MC_DROPPED;
    }
    int64_t ext = mc_seq_unwrap(&jb->unwrap, sequence_number);
    if (!jb->have_packets) {
        jb->have_packets = 1;
        reset_to(jb, ext);
    }
    const int64_t cap = jb->config.capacity;
    if (ext < jb->next) {
        if (jb->buffering && jb->highest - ext < cap && jb->next - ext < cap &&
            jb->stats.played + jb->stats.lost == 0) {
            jb->next = ext; /* before the first frame plays, start from the oldest */
        } else if (jb->next - ext >= cap && ++jb->jump_run >= JUMP_RESET_RUN) {
            jb->stats.resets++;
            reset_to(jb, ext);
        } else {
            jb->stats.late++;
            update_jitter(jb, now_ns, timestamp);
            return MC_DROPPED;
        }
    } else if (ext - jb->next >= cap) {
        if (++jb->jump_run >= JUMP_RESET_RUN) {
            jb->stats.resets++;
            reset_to(jb, ext);
        } else {
            jb->stats.early++;
            return MC_DROPPED;
        }
    }
    slot *s = &jb->slots[ext & jb->mask];
    if (s->present && s->ext == ext) {
        jb->stats.duplicates++;
        return MC_DROPPED;
    }
    jb->jump_run = 0;
    update_jitter(jb, now_ns, timestamp);
    s->ext = ext;
    s->arrival_ns = now_ns;
    s->timestamp = timestamp;
    s->length = payload_length;
    s->marker = marker;
    s->payload_type = payload_type;
    s->present = 1;
    if (payload_length)
        memcpy(jb->payloads + (size_t)(ext & jb->mask) * jb->config.max_payload, payload,
               payload_length);
    if (ext > jb->highest)
        jb->highest = ext;
    jb->stats.inserted++;
    return MC_OK;
}

static uint32_t target_ms(const mc_jitter *jb)
{
    double t = (double)jb->config.frame_ms + JITTER_FACTOR * jb->jitter_ns / 1e6;
    if (t < jb->config.min_delay_ms)
        t = jb->config.min_delay_ms;
    if (t > jb->config.max_delay_ms)
        t = jb->config.max_delay_ms;
    return (uint32_t)t;
}

static const slot *present_at(const mc_jitter *jb, int64_t ext)
{
    const slot *s = &jb->slots[ext & jb->mask];
    return (s->present && s->ext == ext) ? s : NULL;
}

/* the oldest stored packet at or after `next`, or NULL */
static const slot *oldest(const mc_jitter *jb)
{
    for (int64_t e = jb->next; e <= jb->highest; e++) {
        const slot *s = present_at(jb, e);
        if (s)
            return s;
    }
    return NULL;
}

static mc_status no_frame(mc_jitter_frame *frame, uint32_t kind, int64_t ext)
{
    memset(frame, 0, sizeof *frame);
    frame->kind = kind;
    frame->sequence_number = (uint16_t)ext;
    return MC_E_EMPTY;
}

MC_API mc_status mc_jitter_pop(mc_jitter *jb, int64_t now_ns, uint8_t *payload,
                               uint32_t payload_size, mc_jitter_frame *frame)
{
    if (!jb || !frame || (payload_size && !payload))
        return MC_E_INVAL;
    const uint32_t frame_ms = jb->config.frame_ms;
    uint32_t t_ms = target_ms(jb);
    int64_t target_frames = (t_ms + frame_ms - 1) / frame_ms;
    if (target_frames < 1)
        target_frames = 1;
    int64_t level = jb->highest >= jb->next ? jb->highest - jb->next + 1 : 0;
    jb->stats.target_delay_ms = t_ms;
    jb->stats.current_delay_ms = (uint32_t)(level * frame_ms);
    jb->stats.jitter_ms = jb->jitter_ns / 1e6;
    if (jb->shrink_cooldown)
        jb->shrink_cooldown--;
    if (!jb->have_packets)
        return no_frame(frame, MC_JITTER_BUFFERING, 0);

    const slot *first = level ? oldest(jb) : NULL;
    if (jb->buffering) {
        /* start when the target span is buffered, or when the oldest packet
         * has waited as long as the target delay asks */
        if (!first)
            return no_frame(frame, MC_JITTER_BUFFERING, jb->next);
        int64_t waited_ms = (now_ns - first->arrival_ns) / 1000000;
        if (level < target_frames && waited_ms + (int64_t)frame_ms < (int64_t)t_ms)
            return no_frame(frame, MC_JITTER_BUFFERING, jb->next);
        jb->buffering = 0;
    }
    if (!first) {
        /* ran dry: conceal, and fill up to the target again before playing */
        jb->stats.underruns++;
        jb->buffering = 1;
        return no_frame(frame, MC_JITTER_UNDERRUN, jb->next);
    }
    const slot *s = present_at(jb, jb->next);
    if (s && level > target_frames + 1 && jb->shrink_cooldown == 0) {
        /* too much delay for the current jitter: drop one frame */
        jb->slots[jb->next & jb->mask].present = 0;
        jb->next++;
        jb->stats.dropped_to_shrink++;
        jb->shrink_cooldown = SHRINK_COOLDOWN;
        level--;
        s = present_at(jb, jb->next);
        first = oldest(jb);
    }
    if (!s) {
        /* missing: give it up when waiting longer would exceed the target,
         * otherwise conceal this slot and keep waiting (delay + 1 frame) */
        int64_t waited_ms = first ? (now_ns - first->arrival_ns) / 1000000 : 0;
        if (level >= target_frames || waited_ms >= (int64_t)t_ms) {
            jb->stats.lost++;
            return no_frame(frame, MC_JITTER_LOST, jb->next++);
        }
        jb->stats.underruns++;
        return no_frame(frame, MC_JITTER_UNDERRUN, jb->next);
    }
    if (s->length > payload_size) {
        frame->payload_length = s->length;
        return MC_E_BUFFER;
    }
    if (s->length)
        memcpy(payload, jb->payloads + (size_t)(jb->next & jb->mask) * jb->config.max_payload,
               s->length);
    frame->kind = MC_JITTER_FRAME;
    frame->sequence_number = (uint16_t)s->ext;
    frame->marker = s->marker;
    frame->payload_type = s->payload_type;
    frame->timestamp = s->timestamp;
    frame->payload_length = s->length;
    frame->arrival_ns = s->arrival_ns;
    jb->slots[jb->next & jb->mask].present = 0;
    jb->next++;
    jb->stats.played++;
    return MC_OK;
}

MC_API mc_status mc_jitter_get_stats(const mc_jitter *jb, mc_jitter_stats *out)
{
    if (!jb || !out)
        return MC_E_INVAL;
    *out = jb->stats;
    return MC_OK;
}

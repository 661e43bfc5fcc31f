/*
 * reorder.c — video reorder buffer with NACK and key-frame decisions (the
 * rules are in reorder.h).
 *
 * Storage: `capacity` slots indexed by extended sequence number modulo
 * capacity, each EMPTY, PRESENT (a packet, payload in a fixed area) or
 * MISSING (a gap we know of: when it was noticed, how often and when it was
 * NACKed). Invariant: every non-empty slot holds an ext in
 * [next, next + capacity), so slots never collide; highest < next + capacity.
 */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "reorder.h"
#include "seq.h"

#define JUMP_RESET_RUN 3

enum { EMPTY = 0, PRESENT = 1, MISSING = 2 };

typedef struct slot {
    int64_t ext;
    int64_t arrival_ns;       /* PRESENT: arrival; MISSING: when the gap was noticed */
    int64_t last_nack_ns;
    uint32_t timestamp;
    uint32_t length;
    uint8_t marker;
    uint8_t payload_type;
    uint8_t state;
    uint8_t nacks;
} slot;

struct mc_reorder {
    mc_reorder_config config;
    uint32_t mask;
    slot *slots;
    uint8_t *payloads;
    mc_unwrap unwrap;
    int32_t have_packets;
    int64_t next;             /* next extended sequence number to release */
    int64_t highest;          /* newest extended sequence number seen */
    uint32_t missing;         /* number of MISSING slots */
    uint32_t jump_run;
    uint32_t skipped;         /* given up since the last released packet */
    int32_t pli_pending;
    int32_t pli_sent_once;
    int64_t last_pli_ns;
    mc_reorder_stats stats;
};

MC_API mc_status mc_reorder_new(const mc_reorder_config *c, mc_reorder **out)
{
    if (!c || !out || c->capacity < 2 || (c->capacity & (c->capacity - 1)) != 0 ||
        c->capacity > 65536 / 2 || c->max_payload == 0 || c->max_payload > (1u << 20) ||
        c->nack_max_retries > 255 || c->max_wait_ns <= 0 || c->nack_min_interval_ns < 0 ||
        c->pli_min_interval_ns < 0)
        return MC_E_INVAL;
    mc_reorder *rb = (mc_reorder *)calloc(1, sizeof *rb);
    if (!rb)
        return MC_E_NOMEM;
    rb->config = *c;
    rb->mask = c->capacity - 1;
    rb->slots = (slot *)calloc(c->capacity, sizeof(slot));
    rb->payloads = (uint8_t *)mc_aligned_alloc(64, (size_t)c->capacity * c->max_payload);
    if (!rb->slots || !rb->payloads) {
        mc_reorder_free(rb);
        return MC_E_NOMEM;
    }
    *out = rb;
    return MC_OK;
}

MC_API void mc_reorder_free(mc_reorder *rb)
{
    if (!rb)
        return;
    free(rb->slots);
    mc_aligned_free(rb->payloads);
    free(rb);
}

static slot *at(mc_reorder *rb, int64_t ext) { return &rb->slots[ext & rb->mask]; }

static int is(const slot *s, int64_t ext, uint8_t state) { return s->state == state && s->ext == ext; }

/* forget slot `ext` (at or after next) as we move past it */
static void pass(mc_reorder *rb, int64_t ext, int count_as_lost)
{
    slot *s = at(rb, ext);
    if (is(s, ext, PRESENT)) {
        rb->stats.overflow_dropped++;
    } else {
        if (is(s, ext, MISSING))
            rb->missing--;
        if (count_as_lost) {
            rb->stats.lost++;
            rb->skipped++;
        }
    }
    s->state = EMPTY;
}

static void reset_to(mc_reorder *rb, int64_t ext)
{
    /* held packets are given up: counted, so every inserted packet ends
     * released, overflow-dropped or reset (and the rest is still held) */
    for (uint32_t i = 0; i < rb->config.capacity; i++) {
        if (rb->slots[i].state == PRESENT)
            rb->stats.reset_dropped++;
        rb->slots[i].state = EMPTY;
    }
    rb->missing = 0;
    rb->next = ext;
    rb->highest = ext - 1;
    rb->unwrap.last = ext;
    rb->jump_run = 0;
}

static int64_t spacing(const mc_reorder *rb)
{
    return rb->stats.rtt_ns > rb->config.nack_min_interval_ns ? rb->stats.rtt_ns
                                                              : rb->config.nack_min_interval_ns;
}

/* Give up the gaps that hold back release and cannot be repaired in time. */
static void tick(mc_reorder *rb, int64_t now_ns)
{
    while (rb->next <= rb->highest) {
        slot *s = at(rb, rb->next);
        if (is(s, rb->next, PRESENT))
            return;
        int give_up = 1; /* an EMPTY slot below highest cannot happen; treat as lost */
        if (is(s, rb->next, MISSING)) {
            int64_t age = now_ns - s->arrival_ns;
            int exhausted = s->nacks >= rb->config.nack_max_retries &&
                            (s->nacks == 0 || now_ns - s->last_nack_ns >= spacing(rb));
            give_up = age >= rb->config.max_wait_ns || (rb->config.nack_max_retries && exhausted);
        }
        if (!give_up)
            return;
        pass(rb, rb->next, 1);
        rb->next++;
        rb->pli_pending = 1;
    }
}

MC_API mc_status mc_reorder_insert(mc_reorder *rb, int64_t now_ns, uint16_t sequence_number,
                                   uint32_t timestamp, uint8_t marker, uint8_t payload_type,
                                   const uint8_t *payload, uint32_t payload_length)
{
    if (!rb || (payload_length && !payload))
        return MC_E_INVAL;
    if (payload_length > rb->config.max_payload) {
        rb->stats.too_large++;
        return MC_DROPPED;
    }
    int64_t ext = mc_seq_unwrap(&rb->unwrap, sequence_number);
    const int64_t cap = rb->config.capacity;
    if (!rb->have_packets) {
        rb->have_packets = 1;
        reset_to(rb, ext);
    }
    if (ext < rb->next) {
        if (rb->stats.released == 0 && rb->stats.lost == 0 && rb->highest - ext < cap) {
            /* before anything is released, start from the oldest packet */
            for (int64_t e = ext + 1; e < rb->next; e++) {
                slot *g = at(rb, e);
                g->ext = e;
                g->state = MISSING;
                g->nacks = 0;
                g->arrival_ns = now_ns;
                rb->missing++;
            }
            rb->next = ext;
        } else if (rb->next - ext >= cap && ++rb->jump_run >= JUMP_RESET_RUN) {
            reset_to(rb, ext); /* the sender restarted its numbering */
            rb->pli_pending = 1;
            rb->skipped += 1; /* flag the discontinuity on the next release */
        } else {
            rb->stats.late++;
            return MC_DROPPED;
        }
    } else if (ext - rb->next >= cap) {
        /* overrun: a jump wider than the buffer (a burst of loss or a
         * stalled consumer). Give up everything before the new packet. */
        int64_t stop = rb->highest < rb->next + cap - 1 ? rb->highest : rb->next + cap - 1;
        uint64_t passed = 0;
        for (int64_t e = rb->next; e <= stop; e++, passed++)
            pass(rb, e, 1);
        uint64_t unseen = (uint64_t)(ext - rb->next) - passed;
        rb->stats.lost += unseen;
        rb->skipped += (uint32_t)unseen;
        rb->next = ext;
        rb->highest = ext - 1;
        rb->pli_pending = 1;
    }
    slot *s = at(rb, ext);
    if (is(s, ext, PRESENT)) {
        rb->stats.duplicates++;
        return MC_DROPPED;
    }
    rb->jump_run = 0;
    if (is(s, ext, MISSING)) {
        rb->missing--;
        if (s->nacks)
            rb->stats.recovered++;
    }
    if (ext > rb->highest) {
        for (int64_t e = rb->highest + 1; e < ext; e++) {
            slot *g = at(rb, e);
            g->ext = e;
            g->state = MISSING;
            g->nacks = 0;
            g->last_nack_ns = 0;
            g->arrival_ns = now_ns;
            rb->missing++;
        }
        rb->highest = ext;
    }
    s->ext = ext;
    s->state = PRESENT;
    s->arrival_ns = now_ns;
    s->timestamp = timestamp;
    s->length = payload_length;
    s->marker = marker;
    s->payload_type = payload_type;
    if (payload_length)
        memcpy(rb->payloads + (size_t)(ext & rb->mask) * rb->config.max_payload, payload,
               payload_length);
    rb->stats.inserted++;
    return MC_OK;
}

MC_API mc_status mc_reorder_pop(mc_reorder *rb, int64_t now_ns, uint8_t *payload,
                                uint32_t payload_size, mc_reorder_packet *packet)
{
    if (!rb || !packet || (payload_size && !payload))
        return MC_E_INVAL;
    if (!rb->have_packets)
        return MC_E_EMPTY;
    tick(rb, now_ns);
    if (rb->next > rb->highest)
        return MC_E_EMPTY;
    slot *s = at(rb, rb->next);
    if (!is(s, rb->next, PRESENT))
        return MC_E_EMPTY;
    if (s->length > payload_size) {
        packet->payload_length = s->length;
        return MC_E_BUFFER;
    }
    if (s->length)
        memcpy(payload, rb->payloads + (size_t)(rb->next & rb->mask) * rb->config.max_payload,
               s->length);
    packet->sequence_number = (uint16_t)s->ext;
    packet->marker = s->marker;
    packet->payload_type = s->payload_type;
    packet->timestamp = s->timestamp;
    packet->payload_length = s->length;
    packet->arrival_ns = s->arrival_ns;
    packet->skipped_before = rb->skipped;
    rb->skipped = 0;
    s->state = EMPTY;
    rb->next++;
    rb->stats.released++;
    return MC_OK;
}

MC_API mc_status mc_reorder_nack_list(mc_reorder *rb, int64_t now_ns, uint16_t *seqs,
                                      uint32_t max_seqs, uint32_t *count)
{
    if (!rb || !count || (max_seqs && !seqs))
        return MC_E_INVAL;
    *count = 0;
    if (!rb->have_packets)
        return MC_OK;
    tick(rb, now_ns);
    if (rb->missing == 0)
        return MC_OK;
    int64_t space = spacing(rb);
    uint32_t n = 0;
    for (int64_t e = rb->next; e <= rb->highest && n < max_seqs; e++) {
        slot *s = at(rb, e);
        if (!is(s, e, MISSING) || s->nacks >= rb->config.nack_max_retries)
            continue;
        if (s->nacks && now_ns - s->last_nack_ns < space)
            continue;
        s->nacks++;
        s->last_nack_ns = now_ns;
        seqs[n++] = (uint16_t)e;
    }
    rb->stats.nacks_sent += n;
    *count = n;
    return MC_OK;
}

MC_API mc_status mc_reorder_keyframe_needed(mc_reorder *rb, int64_t now_ns, int32_t *request)
{
    if (!rb || !request)
        return MC_E_INVAL;
    *request = 0;
    if (rb->have_packets)
        tick(rb, now_ns);
    if (!rb->pli_pending)
        return MC_OK;
    if (rb->pli_sent_once && now_ns - rb->last_pli_ns < rb->config.pli_min_interval_ns)
        return MC_OK;
    rb->pli_pending = 0;
    rb->pli_sent_once = 1;
    rb->last_pli_ns = now_ns;
    rb->stats.pli_requests++;
    *request = 1;
    return MC_OK;
}

MC_API mc_status mc_reorder_set_rtt(mc_reorder *rb, int64_t rtt_ns)
{
    if (!rb || rtt_ns < 0)
        return MC_E_INVAL;
    rb->stats.rtt_ns = rtt_ns;
    return MC_OK;
}

MC_API mc_status mc_reorder_get_stats(const mc_reorder *rb, mc_reorder_stats *out)
{
    if (!rb || !out)
        return MC_E_INVAL;
    *out = rb->stats;
    return MC_OK;
}

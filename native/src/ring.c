/*
 * ring.c — single-producer / single-consumer lock-free ring of variable-length
 * records. The binary layout and the ordering contract are in mediacore.h;
 * this file follows them exactly.
 *
 * Thread roles: the producer owns `head` and the producer counters; the
 * consumer owns `tail` and `records_read`. Each side also keeps a private,
 * cached copy of the other side's counter in its handle and refreshes it only
 * when the cached value says "full" / "empty" (the rigtorp/folly trick that
 * keeps the two cache lines from bouncing on every record).
 */
#if !defined(_WIN32) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_yield, prctl */
#endif
#include <stdlib.h>
#include <string.h>

#include "compat.h"

#if defined(MC_OS_LINUX)
#include <sched.h>
#include <sys/prctl.h>
#elif !defined(MC_OS_WINDOWS)
#include <sched.h>
#endif

typedef struct ring_header {
    /* header line: written once by mc_ring_init */
    uint32_t magic;
    uint16_t version;
    uint16_t header_size;
    uint64_t capacity;
    uint32_t flags;
    uint32_t max_record;
    uint8_t reserved0[40];
    /* producer line */
    volatile uint64_t head;
    volatile uint64_t records_written;
    volatile uint64_t records_dropped;
    volatile uint64_t bytes_dropped;
    volatile uint64_t records_refused;
    volatile uint32_t closed;
    uint8_t reserved1[20];
    /* consumer line */
    volatile uint64_t tail;
    volatile uint64_t records_read;
    uint8_t reserved2[48];
    /* wake line */
    volatile uint32_t data_seq;
    volatile uint32_t consumer_waiting;
    volatile uint32_t space_seq;
    volatile uint32_t producer_waiting;
    uint8_t reserved3[48];
} ring_header;

MC_STATIC_ASSERT(sizeof(ring_header) == MC_RING_HEADER_SIZE, "ring header is 256 bytes");
MC_STATIC_ASSERT(offsetof(ring_header, head) == 64, "producer line at 64");
MC_STATIC_ASSERT(offsetof(ring_header, records_refused) == 96, "records_refused at 96");
MC_STATIC_ASSERT(offsetof(ring_header, closed) == 104, "closed at 104");
MC_STATIC_ASSERT(offsetof(ring_header, tail) == 128, "consumer line at 128");
MC_STATIC_ASSERT(offsetof(ring_header, data_seq) == 192, "wake line at 192");
MC_STATIC_ASSERT(offsetof(ring_header, producer_waiting) == 204, "producer_waiting at 204");

typedef struct record_header {
    uint32_t length;
    uint32_t type;
} record_header;

#define REC_HDR ((uint64_t)sizeof(record_header))
#define TYPE_PAD 0xFFFFFFFFu
#define MIN_CAPACITY 64u
#define MAX_CAPACITY (1ULL << 40)

struct mc_ring {
    ring_header *hdr;
    uint8_t *data;
    uint64_t capacity;
    uint64_t mask;
    uint32_t max_record;
    uint32_t flags;
    int shared;
    mc_large_block owned_memory; /* base NULL: the caller's memory */
    /* producer-private state (own cache line) */
    MC_ALIGNED(64) uint64_t prod_head; /* head including unpublished records */
    uint64_t prod_tail_cache;
    uint64_t claim_pos;                /* counter where the claimed record starts */
    volatile uint64_t wake_calls;      /* producer's wake syscalls (relaxed: read by stats) */
    uint32_t claim_length;
    int claimed;
    uint64_t rewind_room;              /* mc_ring_set_rewind; 0: off */
    uint64_t rewind_next;              /* head counter of the next rewind check */
    volatile uint64_t rewinds;         /* (relaxed: read by stats) */
    /* consumer-private state (own cache line) */
    MC_ALIGNED(64) uint64_t cons_tail;
    uint64_t cons_head_cache;
    volatile uint64_t cons_wake_calls; /* consumer's wake syscalls (relaxed: read by stats) */
    /* paced waiting (MC_RING_SPIN_PACED): the consumer's model of the producer's pace */
    int64_t pace_last_ns;              /* when the last burst of records was seen to arrive */
    int64_t pace_due_ns;               /* when it was due on the producer's schedule */
    int64_t pace_period_ns;            /* smoothed interval between bursts; 0: not known */
    int64_t pace_jitter_ns;            /* smoothed distance of arrivals from their due time */
    int64_t pace_late_ns;              /* decaying maximum of how late a timed park woke */
    uint32_t pace_agree;               /* arrivals on schedule (up to PACE_AGREE) */
    uint32_t pace_misses;              /* arrivals in a row off the schedule */
};

static inline uint64_t align8(uint64_t n) { return (n + 7u) & ~(uint64_t)7u; }

/* Largest payload: half the ring minus a record header, so that a record
 * always fits into an empty ring wherever the head happens to be. */
static uint32_t max_record_for(uint64_t capacity)
{
    uint64_t m = capacity / 2 - REC_HDR;
    return m > 0xFFFFFFF0u ? 0xFFFFFFF0u : (uint32_t)m;
}

MC_API size_t mc_ring_memory_size(uint64_t capacity)
{
    return (size_t)(MC_RING_HEADER_SIZE + capacity);
}

static int capacity_valid(uint64_t capacity)
{
    return capacity >= MIN_CAPACITY && capacity <= MAX_CAPACITY && (capacity & (capacity - 1)) == 0;
}

static mc_ring *handle_new(void *memory)
{
    mc_ring *r = (mc_ring *)mc_aligned_alloc(64, sizeof(mc_ring));
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    r->hdr = (ring_header *)memory;
    r->data = (uint8_t *)memory + MC_RING_HEADER_SIZE;
    r->capacity = r->hdr->capacity;
    r->mask = r->capacity - 1;
    r->max_record = r->hdr->max_record;
    r->flags = r->hdr->flags;
    r->shared = (r->flags & MC_RING_SHARED) != 0;
    r->prod_head = mc_load_u64_acquire(&r->hdr->head);
    r->prod_tail_cache = mc_load_u64_acquire(&r->hdr->tail);
    r->cons_tail = r->prod_tail_cache;
    r->cons_head_cache = r->prod_head;
    return r;
}

MC_API mc_status mc_ring_init(void *memory, size_t memory_size, uint64_t capacity, uint32_t flags,
                              mc_ring **out)
{
    if (!memory || !out || ((uintptr_t)memory & 63u) != 0)
        return MC_E_INVAL;
    if (!capacity_valid(capacity) || memory_size < mc_ring_memory_size(capacity))
        return MC_E_BAD_SIZE;
    if (flags & ~(uint32_t)(MC_RING_DROP_NEWEST | MC_RING_SHARED))
        return MC_E_INVAL;
    ring_header *h = (ring_header *)memory;
    memset(h, 0, sizeof *h);
    h->version = MC_RING_VERSION;
    h->header_size = MC_RING_HEADER_SIZE;
    h->capacity = capacity;
    h->flags = flags;
    h->max_record = max_record_for(capacity);
    /* The magic goes last, with release, so an attacher that sees it sees the
     * rest of the header. */
    mc_store_u32_release(&h->magic, MC_RING_MAGIC);
    mc_ring *r = handle_new(memory);
    if (!r)
        return MC_E_NOMEM;
    *out = r;
    return MC_OK;
}

MC_API mc_status mc_ring_attach(void *memory, size_t memory_size, mc_ring **out)
{
    if (!memory || !out || ((uintptr_t)memory & 7u) != 0)
        return MC_E_INVAL;
    if (memory_size < MC_RING_HEADER_SIZE)
        return MC_E_BAD_SIZE;
    ring_header *h = (ring_header *)memory;
    if (mc_load_u32_acquire(&h->magic) != MC_RING_MAGIC)
        return MC_E_BAD_MAGIC;
    if (h->version != MC_RING_VERSION || h->header_size != MC_RING_HEADER_SIZE)
        return MC_E_BAD_VERSION;
    if (!capacity_valid(h->capacity) || memory_size < mc_ring_memory_size(h->capacity) ||
        h->max_record != max_record_for(h->capacity))
        return MC_E_BAD_SIZE;
    mc_ring *r = handle_new(memory);
    if (!r)
        return MC_E_NOMEM;
    *out = r;
    return MC_OK;
}

MC_API mc_status mc_ring_new(uint64_t capacity, uint32_t flags, mc_ring **out)
{
    if (!out)
        return MC_E_INVAL;
    if (!capacity_valid(capacity))
        return MC_E_BAD_SIZE;
    size_t size = mc_ring_memory_size(capacity);
    mc_large_block block;
    void *mem = mc_large_alloc(MC_RING_HEADER_SIZE, (size_t)capacity, &block);
    if (!mem)
        return MC_E_NOMEM;
    mc_status s = mc_ring_init(mem, size, capacity, flags, out);
    if (s != MC_OK) {
        mc_large_free(&block);
        return s;
    }
    (*out)->owned_memory = block;
    return MC_OK;
}

MC_API void mc_ring_free(mc_ring *ring)
{
    if (!ring)
        return;
    mc_large_free(&ring->owned_memory);
    mc_aligned_free(ring);
}

MC_API void *mc_ring_memory(mc_ring *ring) { return ring ? (void *)ring->hdr : NULL; }

MC_API uint8_t *mc_ring_data(mc_ring *ring) { return ring ? ring->data : NULL; }

/* ---- producer ------------------------------------------------------------------ */

static mc_status refuse(mc_ring *r, uint32_t length)
{
    ring_header *h = r->hdr;
    if (r->flags & MC_RING_DROP_NEWEST) {
        /* single writer: plain read-modify-write, relaxed publication for stats */
        mc_store_u64_relaxed(&h->records_dropped, mc_load_u64_relaxed(&h->records_dropped) + 1);
        mc_store_u64_relaxed(&h->bytes_dropped, mc_load_u64_relaxed(&h->bytes_dropped) + length);
        return MC_DROPPED;
    }
    mc_store_u64_relaxed(&h->records_refused, mc_load_u64_relaxed(&h->records_refused) + 1);
    return MC_E_FULL;
}

/* Rewinding (mc_ring_set_rewind): once the head is `room` bytes or more into
 * the ring and the consumer has taken every record, the next record goes to
 * the start of the ring, after a padding record to the end. A consumer that
 * keeps up then reads the same few hundred cache-warm kilobytes over and over
 * instead of a window walking the whole ring (the producer writes into lines
 * it still holds, too). Until the consumer has passed the padding the ring
 * takes no more than the `room` (or more) bytes before it. Past `room` every
 * claim checks, or a producer writing a turn's worth of records at a time
 * would test mid-turn (consumer behind) and miss the moment the consumer
 * caught up: one load of the consumer's counter, a cache hit unless the
 * consumer has released records since the last check. */
static void maybe_rewind(mc_ring *r, uint64_t need)
{
    uint64_t head = r->prod_head;
    uint64_t offset = head & r->mask;
    uint64_t room = r->rewind_room;
    if (offset < room) {
        r->rewind_next = head + (room - offset);
        return;
    }
    if (need > offset)
        return; /* the record would not fit before the padding: check again next claim */
    /* acquire: pairs with the consumer's release of tail */
    r->prod_tail_cache = mc_load_u64_acquire(&r->hdr->tail);
    if (r->prod_tail_cache != head)
        return; /* the consumer is behind: check again next claim */
    uint64_t to_end = r->capacity - offset;
    record_header *pad = (record_header *)(r->data + offset);
    pad->length = (uint32_t)(to_end - REC_HDR);
    pad->type = TYPE_PAD;
    /* published with the record that follows: the consumer reads the padding
     * only once head has passed it */
    r->prod_head = head + to_end;
    r->rewind_next = r->prod_head + room;
    mc_store_u64_relaxed(&r->rewinds, mc_load_u64_relaxed(&r->rewinds) + 1);
}

/* Find room for a record of `length` bytes at r->prod_head, writing a padding
 * record first if it would straddle the end. Returns MC_OK with claim_pos set,
 * or MC_E_FULL (nothing written). */
static mc_status claim(mc_ring *r, uint32_t length)
{
    uint64_t need = align8(REC_HDR + length);
    if (MC_UNLIKELY(r->rewind_room) && r->prod_head >= r->rewind_next && !r->claimed)
        maybe_rewind(r, need);
    uint64_t head = r->prod_head;
    uint64_t offset = head & r->mask;
    uint64_t to_end = r->capacity - offset;
    uint64_t total = need <= to_end ? need : to_end + need;
    if (head + total - r->prod_tail_cache > r->capacity) {
        /* acquire: pairs with the consumer's release of tail, so its reads of
         * the space we are about to overwrite have completed */
        r->prod_tail_cache = mc_load_u64_acquire(&r->hdr->tail);
        if (head + total - r->prod_tail_cache > r->capacity)
            return MC_E_FULL;
    }
    if (need > to_end) {
        record_header *pad = (record_header *)(r->data + offset);
        pad->length = (uint32_t)(to_end - REC_HDR);
        pad->type = TYPE_PAD;
        head += to_end;
    }
    r->claim_pos = head;
    return MC_OK;
}

static inline void finish(mc_ring *r, uint32_t type, uint32_t length)
{
    record_header *rec = (record_header *)(r->data + (r->claim_pos & r->mask));
    rec->length = length;
    rec->type = type;
    r->prod_head = r->claim_pos + align8(REC_HDR + length);
}

/* Make the records visible, then (wake) look for a sleeping consumer. A
 * quiet publish leaves a sleeper be: it finds the records when a later
 * publish wakes it, or at its timeout. */
static void publish_records(mc_ring *r, uint64_t records, int wake)
{
    ring_header *h = r->hdr;
    mc_store_u64_relaxed(&h->records_written, mc_load_u64_relaxed(&h->records_written) + records);
    if (!wake) {
        mc_store_u64_release(&h->head, r->prod_head);
        return;
    }
    /* seq_cst (includes release: the records' bytes become visible before the
     * new head). Event count, producer side: publish head, then look for a
     * sleeper; both seq_cst, so the store cannot pass the load (store-load
     * order), matching the consumer's seq_cst pair in mc_ring_wait. */
    mc_store_u64_seq_cst(&h->head, r->prod_head);
    if (mc_load_u32_seq_cst(&h->consumer_waiting)) {
        mc_fetch_add_u32(&h->data_seq, 1);
        mc_wake_u32(&h->data_seq, r->shared);
        mc_store_u64_relaxed(&r->wake_calls, mc_load_u64_relaxed(&r->wake_calls) + 1);
    }
}

static void publish(mc_ring *r, uint64_t records) { publish_records(r, records, 1); }

MC_API mc_status mc_ring_wake(mc_ring *r)
{
    if (!r)
        return MC_E_INVAL;
    ring_header *h = r->hdr;
    /* The quiet commits stored head with release only; the event count needs
     * head stored seq_cst before the waiting word is read (the consumer's
     * seq_cst pair in mc_ring_wait), so it is stored again (the same value:
     * the producer owns it) on the way to the wake. */
    mc_store_u64_seq_cst(&h->head, r->prod_head);
    if (mc_load_u32_seq_cst(&h->consumer_waiting)) {
        mc_fetch_add_u32(&h->data_seq, 1);
        mc_wake_u32(&h->data_seq, r->shared);
        mc_store_u64_relaxed(&r->wake_calls, mc_load_u64_relaxed(&r->wake_calls) + 1);
    }
    return MC_OK;
}

MC_API mc_status mc_ring_write(mc_ring *r, uint32_t type, const void *data, uint32_t length)
{
    if (MC_UNLIKELY(!r || (!data && length) || type == TYPE_PAD))
        return MC_E_INVAL;
    if (MC_UNLIKELY(length > r->max_record))
        return MC_E_TOO_LARGE;
    if (MC_UNLIKELY(mc_load_u32_relaxed(&r->hdr->closed)))
        return MC_E_CLOSED;
    if (MC_UNLIKELY(r->claimed))
        return MC_E_STATE; /* a reserve is pending: commit it first */
    if (claim(r, length) != MC_OK)
        return refuse(r, length);
    memcpy(r->data + (r->claim_pos & r->mask) + REC_HDR, data, length);
    finish(r, type, length);
    publish(r, 1);
    return MC_OK;
}

MC_API mc_status mc_ring_write_batch(mc_ring *r, uint32_t type, const uint8_t *data,
                                     const uint32_t *lengths, uint32_t count, uint32_t *written)
{
    if (!r || !written || (count && (!data || !lengths)) || type == TYPE_PAD)
        return MC_E_INVAL;
    *written = 0;
    if (mc_load_u32_relaxed(&r->hdr->closed))
        return MC_E_CLOSED;
    if (r->claimed)
        return MC_E_STATE;
    mc_status status = MC_OK;
    uint32_t n = 0;
    for (; n < count; n++) {
        uint32_t len = lengths[n];
        if (len > r->max_record) {
            status = MC_E_TOO_LARGE;
            break;
        }
        if (claim(r, len) != MC_OK)
            break;
        memcpy(r->data + (r->claim_pos & r->mask) + REC_HDR, data, len);
        finish(r, type, len);
        data += len;
    }
    if (n)
        publish(r, n);
    *written = n;
    if (status == MC_OK && n < count) {
        if (r->flags & MC_RING_DROP_NEWEST) {
            for (uint32_t i = n; i < count; i++)
                refuse(r, lengths[i]);
            status = MC_DROPPED;
        } else {
            refuse(r, lengths[n]);
            status = MC_E_FULL;
        }
    }
    return status;
}

MC_API mc_status mc_ring_reserve(mc_ring *r, uint32_t length, void **out)
{
    if (!r || !out)
        return MC_E_INVAL;
    *out = NULL;
    if (length > r->max_record)
        return MC_E_TOO_LARGE;
    if (mc_load_u32_relaxed(&r->hdr->closed))
        return MC_E_CLOSED;
    if (r->claimed)
        return MC_E_STATE;
    if (claim(r, length) != MC_OK)
        return refuse(r, length);
    r->claimed = 1;
    r->claim_length = length;
    *out = r->data + (r->claim_pos & r->mask) + REC_HDR;
    return MC_OK;
}

static mc_status commit_claim(mc_ring *r, uint32_t type, uint32_t length, int wake)
{
    if (!r || !r->claimed || length > r->claim_length || type == TYPE_PAD)
        return MC_E_INVAL;
    r->claimed = 0;
    finish(r, type, length);
    publish_records(r, 1, wake);
    return MC_OK;
}

MC_API mc_status mc_ring_commit(mc_ring *r, uint32_t type, uint32_t length)
{
    return commit_claim(r, type, length, 1);
}

MC_API mc_status mc_ring_commit_quiet(mc_ring *r, uint32_t type, uint32_t length)
{
    return commit_claim(r, type, length, 0);
}

MC_API mc_status mc_ring_set_rewind(mc_ring *r, uint64_t room)
{
    if (!r || room >= r->capacity)
        return MC_E_INVAL;
    r->rewind_room = room;
    r->rewind_next = r->prod_head;
    return MC_OK;
}

/* Grow the pending reservation to `length` bytes, keeping its first `keep`
 * bytes. In place when the ring has room right after it; otherwise the claim
 * moves (to the start of the ring, past a padding record) and those bytes are
 * moved with it. The old place is free space the consumer never looks at:
 * nothing of the claim is published until mc_ring_commit. */
MC_API mc_status mc_ring_extend(mc_ring *r, uint32_t length, uint32_t keep, void **out)
{
    if (!r || !out || !r->claimed || keep > r->claim_length)
        return MC_E_INVAL;
    if (length <= r->claim_length) {
        *out = r->data + (r->claim_pos & r->mask) + REC_HDR;
        return MC_OK;
    }
    if (length > r->max_record)
        return MC_E_TOO_LARGE;
    uint64_t offset = r->claim_pos & r->mask;
    uint64_t need = align8(REC_HDR + length);
    if (offset + need <= r->capacity) {
        /* same place, if the consumer has left room for it */
        if (r->claim_pos + need - r->prod_tail_cache > r->capacity)
            r->prod_tail_cache = mc_load_u64_acquire(&r->hdr->tail);
        if (r->claim_pos + need - r->prod_tail_cache <= r->capacity) {
            r->claim_length = length;
            *out = r->data + offset + REC_HDR;
            return MC_OK;
        }
        return MC_E_FULL;
    }
    /* it would straddle the end: claim again from the same head (the old
     * claim has not moved prod_head), which pads to the end and starts at 0 */
    uint8_t *old = r->data + offset + REC_HDR;
    if (claim(r, length) != MC_OK)
        return MC_E_FULL; /* nothing changed: the old claim stands */
    uint8_t *now = r->data + (r->claim_pos & r->mask) + REC_HDR;
    /* the padding header claim() wrote lies before `old`, not in it */
    memmove(now, old, keep);
    r->claim_length = length;
    *out = now;
    return MC_OK;
}

/* Abandon a reservation: nothing was published, so forgetting the claim is
 * enough (a padding header claim() may have written lies beyond head, where
 * the consumer never looks). */
MC_API mc_status mc_ring_cancel(mc_ring *r)
{
    if (!r || !r->claimed)
        return MC_E_INVAL;
    r->claimed = 0;
    return MC_OK;
}

MC_API mc_status mc_ring_wait_writable(mc_ring *r, uint32_t length, int64_t timeout_ns)
{
    if (!r)
        return MC_E_INVAL;
    if (length > r->max_record)
        return MC_E_TOO_LARGE;
    ring_header *h = r->hdr;
    /* worst case: padding to the end plus the record */
    uint64_t need = align8(REC_HDR + length);
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : mc_now_ns() + timeout_ns;
    for (;;) {
        uint64_t head = r->prod_head;
        uint64_t offset = head & r->mask;
        uint64_t to_end = r->capacity - offset;
        uint64_t total = need <= to_end ? need : to_end + need;
        uint32_t seq = mc_load_u32_acquire(&h->space_seq);
        mc_store_u32_seq_cst(&h->producer_waiting, 1);
        r->prod_tail_cache = mc_load_u64_seq_cst(&h->tail);
        if (head + total - r->prod_tail_cache <= r->capacity) {
            mc_store_u32_relaxed(&h->producer_waiting, 0);
            return MC_OK;
        }
        int64_t now = mc_now_ns();
        if (now >= deadline) {
            mc_store_u32_relaxed(&h->producer_waiting, 0);
            return MC_E_TIMEOUT;
        }
        mc_wait_u32(&h->space_seq, seq, deadline == INT64_MAX ? -1 : deadline - now, r->shared);
    }
}

MC_API mc_status mc_ring_close(mc_ring *r)
{
    if (!r)
        return MC_E_INVAL;
    ring_header *h = r->hdr;
    mc_store_u32_seq_cst(&h->closed, 1);
    mc_fetch_add_u32(&h->data_seq, 1);
    mc_wake_u32(&h->data_seq, r->shared);
    return MC_OK;
}

/* ---- consumer ------------------------------------------------------------------ */

/* Locate the record at counter `pos`, skipping a padding record. Returns
 * MC_OK with *rec and *pos updated, MC_E_EMPTY, or MC_E_MALFORMED when the
 * shared memory holds a record that cannot be right (a corrupted or hostile
 * producer must not make us read out of bounds). */
static mc_status locate(mc_ring *r, uint64_t *pos, record_header **rec)
{
    uint64_t p = *pos;
    if (p == r->cons_head_cache) {
        /* acquire: pairs with the producer's release of head */
        r->cons_head_cache = mc_load_u64_acquire(&r->hdr->head);
        if (p == r->cons_head_cache)
            return MC_E_EMPTY;
    }
    record_header *h = (record_header *)(r->data + (p & r->mask));
    if (h->type == TYPE_PAD) {
        uint64_t to_end = r->capacity - (p & r->mask);
        if (h->length != to_end - REC_HDR)
            return MC_E_MALFORMED;
        p += to_end;
        if (p == r->cons_head_cache)
            return MC_E_MALFORMED; /* padding is always followed by a record */
        h = (record_header *)r->data;
    }
    if (h->length > r->max_record ||
        p + align8(REC_HDR + h->length) - r->cons_tail > r->cons_head_cache - r->cons_tail ||
        (p & r->mask) + REC_HDR + h->length > r->capacity)
        return MC_E_MALFORMED;
    *pos = p;
    *rec = h;
    return MC_OK;
}

static mc_status empty_or_closed(mc_ring *r)
{
    if (mc_load_u32_acquire(&r->hdr->closed)) {
        /* re-check: records written before close are still to be drained */
        if (mc_load_u64_acquire(&r->hdr->head) == r->cons_tail)
            return MC_E_CLOSED;
    }
    return MC_E_EMPTY;
}

static void advance_tail(mc_ring *r, uint64_t new_tail, uint64_t records)
{
    ring_header *h = r->hdr;
    r->cons_tail = new_tail;
    mc_store_u64_relaxed(&h->records_read, mc_load_u64_relaxed(&h->records_read) + records);
    /* seq_cst (includes release: our reads of the records complete before the
     * producer may reuse the space), then look for a sleeping producer:
     * store-load order, matching mc_ring_wait_writable */
    mc_store_u64_seq_cst(&h->tail, new_tail);
    if (mc_load_u32_seq_cst(&h->producer_waiting)) {
        mc_fetch_add_u32(&h->space_seq, 1);
        mc_wake_u32(&h->space_seq, r->shared);
        mc_store_u64_relaxed(&r->cons_wake_calls, mc_load_u64_relaxed(&r->cons_wake_calls) + 1);
    }
}

MC_API mc_status mc_ring_read(mc_ring *r, void *buffer, uint32_t buffer_size, uint32_t *length,
                              uint32_t *type)
{
    if (!r || !length || (!buffer && buffer_size))
        return MC_E_INVAL;
    uint64_t pos = r->cons_tail;
    record_header *rec;
    mc_status s = locate(r, &pos, &rec);
    if (s == MC_E_EMPTY)
        return empty_or_closed(r);
    if (s != MC_OK)
        return s;
    *length = rec->length;
    if (type)
        *type = rec->type;
    if (rec->length > buffer_size)
        return MC_E_BUFFER;
    memcpy(buffer, (uint8_t *)rec + REC_HDR, rec->length);
    advance_tail(r, pos + align8(REC_HDR + rec->length), 1);
    return MC_OK;
}

MC_API mc_status mc_ring_read_batch(mc_ring *r, uint8_t *buffer, size_t buffer_size,
                                    uint32_t *offsets, uint32_t *lengths, uint32_t *types,
                                    uint32_t max_records, uint32_t *count)
{
    if (!r || !count || !offsets || !lengths || (!buffer && buffer_size))
        return MC_E_INVAL;
    *count = 0;
    uint64_t pos = r->cons_tail;
    size_t used = 0;
    uint32_t n = 0;
    mc_status s = MC_OK;
    while (n < max_records) {
        record_header *rec;
        uint64_t p = pos;
        s = locate(r, &p, &rec);
        if (s != MC_OK)
            break;
        if (used + rec->length > buffer_size) {
            if (n == 0) {
                lengths[0] = rec->length;
                return MC_E_BUFFER;
            }
            break;
        }
        memcpy(buffer + used, (uint8_t *)rec + REC_HDR, rec->length);
        offsets[n] = (uint32_t)used;
        lengths[n] = rec->length;
        if (types)
            types[n] = rec->type;
        used = (size_t)align8(used + rec->length);
        pos = p + align8(REC_HDR + rec->length);
        n++;
    }
    if (n) {
        advance_tail(r, pos, n);
        *count = n;
        return MC_OK;
    }
    if (s == MC_E_EMPTY)
        return empty_or_closed(r);
    return s;
}

/* Locate up to max_records records from *pos on, advancing *pos past them. */
static mc_status peek_from(mc_ring *r, uint64_t *pos, uint64_t *positions, uint32_t *offsets,
                           uint32_t *lengths, uint32_t *types, uint32_t max_records,
                           uint32_t *count)
{
    uint64_t p = *pos;
    uint32_t n = 0;
    mc_status s = MC_OK;
    while (n < max_records) {
        record_header *rec;
        s = locate(r, &p, &rec);
        if (s != MC_OK)
            break;
        if (positions)
            positions[n] = p;
        offsets[n] = (uint32_t)((p & r->mask) + REC_HDR);
        lengths[n] = rec->length;
        if (types)
            types[n] = rec->type;
        p += align8(REC_HDR + rec->length);
        n++;
    }
    *pos = p;
    *count = n;
    if (n)
        return MC_OK;
    if (s == MC_E_EMPTY)
        return empty_or_closed(r);
    return s;
}

MC_API mc_status mc_ring_peek(mc_ring *r, uint32_t *offsets, uint32_t *lengths, uint32_t *types,
                              uint32_t max_records, uint32_t *count)
{
    if (!r || !count || !offsets || !lengths)
        return MC_E_INVAL;
    *count = 0;
    uint64_t pos = r->cons_tail;
    return peek_from(r, &pos, NULL, offsets, lengths, types, max_records, count);
}

MC_API uint64_t mc_ring_read_position(const mc_ring *r)
{
    return r ? r->cons_tail : 0;
}

/* Is `pos` between the consumer's released position and the last published record? */
static int consumer_position_ok(mc_ring *r, uint64_t pos)
{
    if (pos - r->cons_tail <= r->cons_head_cache - r->cons_tail)
        return 1;
    r->cons_head_cache = mc_load_u64_acquire(&r->hdr->head);
    return pos - r->cons_tail <= r->cons_head_cache - r->cons_tail;
}

MC_API mc_status mc_ring_peek_at(mc_ring *r, uint64_t *position, uint64_t *positions,
                                 uint32_t *offsets, uint32_t *lengths, uint32_t *types,
                                 uint32_t max_records, uint32_t *count)
{
    if (!r || !position || !count || !offsets || !lengths)
        return MC_E_INVAL;
    *count = 0;
    if (!consumer_position_ok(r, *position))
        return MC_E_INVAL;
    return peek_from(r, position, positions, offsets, lengths, types, max_records, count);
}

MC_API mc_status mc_ring_release_at(mc_ring *r, uint64_t position, uint32_t records)
{
    if (!r || !consumer_position_ok(r, position))
        return MC_E_INVAL;
    if (position != r->cons_tail)
        advance_tail(r, position, records);
    return MC_OK;
}

MC_API mc_status mc_ring_release(mc_ring *r, uint32_t count)
{
    if (!r)
        return MC_E_INVAL;
    uint64_t pos = r->cons_tail;
    for (uint32_t i = 0; i < count; i++) {
        record_header *rec;
        mc_status s = locate(r, &pos, &rec);
        if (s != MC_OK)
            return s == MC_E_EMPTY ? MC_E_INVAL : s; /* releasing more than was peeked */
        pos += align8(REC_HDR + rec->length);
    }
    if (count)
        advance_tail(r, pos, count);
    return MC_OK;
}

/* ---- paced waiting ---------------------------------------------------------------
 * A consumer of a periodic producer (a 20 ms audio tick, a paced sender) that
 * sleeps between records pays a wake-up per record: the futex wake, then the
 * scheduler finding it a core (on a loaded machine, or a virtual CPU the host
 * has to resume: tens of microseconds at the tail). With MC_RING_SPIN_PACED
 * the consumer learns the producer's schedule from the arrivals it sees and
 * is already awake when the next record is due: it parks with a timeout that
 * ends a guard before the due time, then polls the head (no syscall on
 * either side: the waiting word stays 0, so the producer makes none) until a
 * while after it, and only then parks until woken (the event-count sleep;
 * the producer's wake ends it, so a late record costs no more than before).
 *
 * The schedule: a producer on a clock publishes at base + k * period plus
 * its own lateness (timer slack, scheduling): mostly a narrow band, now and
 * then far off. So the model keeps the period (smoothed intervals) and the
 * due time of the last burst, a low percentile of the arrivals' phase; the
 * window covers the spread of the arrivals around it and, before it, the
 * time a timed park has been seen to oversleep (the park asks for a 1 us
 * timer slack). The window is at most a quarter of the period and 250 us;
 * the polling costs what the window holds before the record comes (a few
 * percent of a core at 1 kHz, well under one at 50 Hz), and nothing while
 * the arrivals follow no steady pace. Arrivals within half a period of the
 * last burst belong to it; a gap of a few whole periods (a producer that
 * skipped some) keeps the schedule; three arrivals in a row off it start a
 * new one. All of it is consumer-private state in the handle: the layout
 * and the ordering contract in mediacore.h are unchanged. */
#define PACE_MIN_PERIOD_NS 100000      /* below this a plain spin_ns serves better */
#define PACE_MAX_WINDOW_NS 250000
#define PACE_AGREE 3                   /* arrivals on schedule before the consumer polls */
#define PACE_MARGIN_NS 5000
#define PACE_YIELD_NS 2000             /* a poller offers its core this often */

/* Polling must not keep the producer from running: on a machine with few
 * cores and other work, the producer's wake-up may be queued behind the
 * polling consumer on its core. A yield every PACE_YIELD_NS lets it in. */
static void yield_cpu(void)
{
#if defined(MC_OS_WINDOWS)
    SwitchToThread();
#else
    sched_yield();
#endif
}

static void pace_restart(mc_ring *r, int64_t t, int64_t period)
{
    r->pace_due_ns = t;
    r->pace_last_ns = t;
    r->pace_period_ns = period;
    r->pace_jitter_ns = period / 4; /* not trusted until arrivals agree */
    r->pace_agree = 0;
    r->pace_misses = 0;
}

static void pace_observe(mc_ring *r, int64_t t)
{
    int64_t period = r->pace_period_ns;
    if (r->pace_last_ns == 0) {
        pace_restart(r, t, 0);
        return;
    }
    int64_t d = t - r->pace_last_ns;
    if (period == 0) {
        pace_restart(r, t, d);
        return;
    }
    if (t - r->pace_due_ns < period / 2)
        return; /* the same burst */
    int64_t k = (t - r->pace_due_ns + period / 2) / period;
    int64_t off = t - (r->pace_due_ns + k * period);
    if (k > 8 || off > period / 4 || off < -period / 4) {
        /* one arrival off the schedule is an outlier (a late wake-up, a
         * stall); three in a row are a new pace, or a pause */
        if (++r->pace_misses >= 3)
            pace_restart(r, t, k == 1 ? d : period);
        return;
    }
    r->pace_misses = 0;
    int64_t kd = (t - r->pace_last_ns + period / 2) / period;
    if (kd >= 1)
        r->pace_period_ns = period + (d / kd - period) / 8;
    r->pace_last_ns = t;
    /* due time: a low percentile of the arrivals (back fast towards an early
     * one, on slowly towards late ones), so that a rare early outlier does
     * not move the window off the many */
    r->pace_due_ns += k * period + (off < 0 ? off / 4 : off / 16);
    int64_t abs_off = off < 0 ? -off : off;
    r->pace_jitter_ns += (abs_off - r->pace_jitter_ns) / 4;
    if (r->pace_agree < PACE_AGREE)
        r->pace_agree++;
}

/* The polling window around the next due time after `now`: [*from, *to),
 * or *to == 0 when the pace is not known well enough. */
static void pace_window(mc_ring *r, int64_t now, int64_t *from, int64_t *to)
{
    int64_t period = r->pace_period_ns, jitter = r->pace_jitter_ns;
    *from = *to = 0;
    if (r->pace_agree < PACE_AGREE || period < PACE_MIN_PERIOD_NS || jitter * 8 > period)
        return;
    int64_t budget = period / 4 < PACE_MAX_WINDOW_NS ? period / 4 : PACE_MAX_WINDOW_NS;
    int64_t before = r->pace_late_ns + 2 * jitter + PACE_MARGIN_NS;
    if (before > budget / 2)
        before = budget / 2;
    int64_t after = 4 * jitter + PACE_MARGIN_NS;
    if (after > budget - before)
        after = budget - before;
    int64_t due = r->pace_due_ns + period;
    if (due + after <= now) {
        int64_t k = (now - due) / period + 1; /* due times that passed without a record */
        if (k > 8)
            return;
        due += k * period;
    }
    *from = due - before;
    *to = due + after;
}

/* A timed park that should end on time: Linux lets a sleeping thread's timer
 * fire up to its timer slack late (50 us by default), which would have to be
 * polled through; the park asks for 1 us and puts the thread's slack back. */
static mc_status park_until(mc_ring *r, uint32_t seq, int64_t timeout_ns)
{
#if defined(MC_OS_LINUX) && !defined(MC_WAIT_FALLBACK)
    int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    if (slack > 1000)
        prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    mc_status s = mc_wait_u32(&r->hdr->data_seq, seq, timeout_ns, r->shared);
    if (slack > 1000)
        prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
    return s;
#else
    return mc_wait_u32(&r->hdr->data_seq, seq, timeout_ns, r->shared);
#endif
}

MC_API mc_status mc_ring_wait(mc_ring *r, int64_t timeout_ns, int64_t spin_ns)
{
    if (!r)
        return MC_E_INVAL;
    ring_header *h = r->hdr;
    if (r->cons_tail != r->cons_head_cache)
        return MC_OK;
    int64_t start = mc_now_ns();
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
    if (spin_ns > 0) {
        int64_t spin_end = start + spin_ns;
        do {
            if (mc_load_u64_acquire(&h->head) != r->cons_tail)
                return MC_OK;
            mc_cpu_relax();
        } while (mc_now_ns() < spin_end);
    }
    int paced = spin_ns == MC_RING_SPIN_PACED;
    int64_t poll_from = 0, poll_to = 0;
    if (paced)
        pace_window(r, start, &poll_from, &poll_to);
    for (;;) {
        if (poll_to) {
            int64_t now = mc_now_ns();
            if (now >= poll_from) {
                int64_t end = poll_to < deadline ? poll_to : deadline;
                int64_t yield_at = now + PACE_YIELD_NS;
                poll_to = 0; /* one window per wait */
                for (; now < end; now = mc_now_ns()) {
                    if (mc_load_u64_acquire(&h->head) != r->cons_tail) {
                        pace_observe(r, now);
                        return MC_OK;
                    }
                    if (now >= yield_at) {
                        yield_cpu();
                        yield_at = now + PACE_YIELD_NS;
                    } else {
                        mc_cpu_relax();
                    }
                }
            }
        }
        /* Event count, consumer side: read the sequence, announce we are
         * going to sleep (seq_cst store), re-check head (seq_cst load, which
         * cannot pass that store), and sleep only if the sequence is still
         * the one we read. */
        uint32_t seq = mc_load_u32_acquire(&h->data_seq);
        mc_store_u32_seq_cst(&h->consumer_waiting, 1);
        if (mc_load_u64_seq_cst(&h->head) != r->cons_tail) {
            mc_store_u32_relaxed(&h->consumer_waiting, 0);
            if (paced)
                pace_observe(r, mc_now_ns());
            return MC_OK;
        }
        if (mc_load_u32_acquire(&h->closed)) {
            mc_store_u32_relaxed(&h->consumer_waiting, 0);
            return MC_E_CLOSED;
        }
        int64_t now = mc_now_ns();
        if (now >= deadline) {
            mc_store_u32_relaxed(&h->consumer_waiting, 0);
            return MC_E_TIMEOUT;
        }
        /* paced: wake a guard before the record is due (the producer's wake
         * still ends the park earlier), and poll from there */
        mc_status s;
        if (poll_to && poll_from < deadline)
            s = park_until(r, seq, poll_from - now);
        else
            s = mc_wait_u32(&h->data_seq, seq, deadline == INT64_MAX ? -1 : deadline - now,
                            r->shared);
        if (s == MC_E_IO) {
            mc_store_u32_relaxed(&h->consumer_waiting, 0);
            return s;
        }
        if (poll_to) {
            /* awake: no wake syscalls while polling */
            mc_store_u32_relaxed(&h->consumer_waiting, 0);
            if (s == MC_E_TIMEOUT) {
                int64_t late = mc_now_ns() - poll_from;
                r->pace_late_ns -= r->pace_late_ns / 16;
                if (late > r->pace_late_ns)
                    r->pace_late_ns = late;
            }
        }
    }
}

MC_API mc_status mc_ring_get_stats(mc_ring *r, mc_ring_stats *out)
{
    if (!r || !out)
        return MC_E_INVAL;
    ring_header *h = r->hdr;
    uint64_t tail = mc_load_u64_acquire(&h->tail);
    uint64_t head = mc_load_u64_acquire(&h->head);
    out->capacity = r->capacity;
    out->used_bytes = head - tail;
    out->records_written = mc_load_u64_relaxed(&h->records_written);
    out->records_read = mc_load_u64_relaxed(&h->records_read);
    out->records_dropped = mc_load_u64_relaxed(&h->records_dropped);
    out->bytes_dropped = mc_load_u64_relaxed(&h->bytes_dropped);
    out->records_refused = mc_load_u64_relaxed(&h->records_refused);
    out->wake_calls = mc_load_u64_relaxed(&r->wake_calls) + mc_load_u64_relaxed(&r->cons_wake_calls);
    out->rewinds = mc_load_u64_relaxed(&r->rewinds);
    out->max_record = r->max_record;
    out->flags = r->flags;
    out->closed = mc_load_u32_relaxed(&h->closed);
    return MC_OK;
}

/*
 * test_ring.c — C-level tests of the SPSC ring: record boundaries, wrap-around,
 * policies, bad attach, rewinding, growing a reservation, and a two-thread
 * stress run with sequenced, checksummed records of varying length (written
 * whole or reserved and grown, with and without rewinding). Built three ways in CI:
 * ASan+UBSan, ThreadSanitizer, and mingw-w64 (run under wine), the last once
 * with the GCC builtins and once with the Interlocked atomics branch.
 *
 * Usage: test_ring [records]   (default 2,000,000 for the stress part)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "mediacore.h"
#include "check.h"
#include "testing.h"

static void test_boundaries_and_wrap(void)
{
    mc_ring *r;
    CHECK_STATUS(mc_ring_new(256, 0, &r), MC_OK);
    uint8_t in[200], out[200];
    uint32_t len = 0, type = 0;
    /* 1000 rounds of records of every length 0..120 walk the head across the
     * end of the data area at every alignment */
    for (int round = 0; round < 1000; round++) {
        uint32_t n = (uint32_t)(round % 121);
        for (uint32_t i = 0; i < n; i++)
            in[i] = (uint8_t)(round + i);
        CHECK_STATUS(mc_ring_write(r, (uint32_t)round, in, n), MC_OK);
        CHECK_STATUS(mc_ring_read(r, out, sizeof out, &len, &type), MC_OK);
        CHECK(len == n);
        CHECK(type == (uint32_t)round);
        CHECK(memcmp(in, out, n) == 0);
    }
    CHECK_STATUS(mc_ring_read(r, out, sizeof out, &len, &type), MC_E_EMPTY);
    /* oversized: max is capacity/2 - 8 */
    mc_ring_stats st;
    mc_ring_get_stats(r, &st);
    CHECK(st.max_record == 120);
    CHECK_STATUS(mc_ring_write(r, 0, in, 121), MC_E_TOO_LARGE);
    /* buffer too small leaves the record in place */
    CHECK_STATUS(mc_ring_write(r, 0, in, 50), MC_OK);
    CHECK_STATUS(mc_ring_read(r, out, 10, &len, &type), MC_E_BUFFER);
    CHECK(len == 50);
    CHECK_STATUS(mc_ring_read(r, out, sizeof out, &len, &type), MC_OK);
    /* reserved type */
    CHECK_STATUS(mc_ring_write(r, 0xFFFFFFFFu, in, 1), MC_E_INVAL);
    mc_ring_free(r);
}

static void test_policies(void)
{
    mc_ring *r;
    uint8_t rec[56] = {0};
    /* report policy: 256 bytes hold four 64-byte records */
    CHECK_STATUS(mc_ring_new(256, 0, &r), MC_OK);
    for (int i = 0; i < 4; i++)
        CHECK_STATUS(mc_ring_write(r, 0, rec, sizeof rec), MC_OK);
    CHECK_STATUS(mc_ring_write(r, 0, rec, sizeof rec), MC_E_FULL);
    CHECK_STATUS(mc_ring_wait_writable(r, sizeof rec, 1000000), MC_E_TIMEOUT);
    mc_ring_stats st;
    mc_ring_get_stats(r, &st);
    CHECK(st.records_refused == 1 && st.records_dropped == 0 && st.records_written == 4);
    mc_ring_free(r);
    /* drop policy */
    CHECK_STATUS(mc_ring_new(256, MC_RING_DROP_NEWEST, &r), MC_OK);
    for (int i = 0; i < 4; i++)
        CHECK_STATUS(mc_ring_write(r, 0, rec, sizeof rec), MC_OK);
    CHECK_STATUS(mc_ring_write(r, 0, rec, sizeof rec), MC_DROPPED);
    mc_ring_get_stats(r, &st);
    CHECK(st.records_dropped == 1 && st.bytes_dropped == sizeof rec);
    /* empty wait times out; close wakes and reports closed once drained */
    uint8_t out[64];
    uint32_t len;
    for (int i = 0; i < 4; i++)
        CHECK_STATUS(mc_ring_read(r, out, sizeof out, &len, NULL), MC_OK);
    CHECK_STATUS(mc_ring_wait(r, 1000000, 0), MC_E_TIMEOUT);
    CHECK_STATUS(mc_ring_write(r, 0, rec, 8), MC_OK);
    CHECK_STATUS(mc_ring_close(r), MC_OK);
    CHECK_STATUS(mc_ring_write(r, 0, rec, 8), MC_E_CLOSED);
    CHECK_STATUS(mc_ring_wait(r, 0, 0), MC_OK);
    CHECK_STATUS(mc_ring_read(r, out, sizeof out, &len, NULL), MC_OK);
    CHECK_STATUS(mc_ring_read(r, out, sizeof out, &len, NULL), MC_E_CLOSED);
    CHECK_STATUS(mc_ring_wait(r, -1, 0), MC_E_CLOSED);
    mc_ring_free(r);
}

static void test_attach(void)
{
    size_t size = mc_ring_memory_size(1024);
    uint8_t *mem = (uint8_t *)mc_aligned_alloc(64, size);
    mc_ring *a, *b;
    memset(mem, 0, size);
    CHECK_STATUS(mc_ring_attach(mem, size, &a), MC_E_BAD_MAGIC);
    CHECK_STATUS(mc_ring_init(mem, size, 1000, 0, &a), MC_E_BAD_SIZE); /* not a power of two */
    CHECK_STATUS(mc_ring_init(mem, size - 1, 1024, 0, &a), MC_E_BAD_SIZE);
    CHECK_STATUS(mc_ring_init(mem, size, 1024, 0, &a), MC_OK);
    CHECK_STATUS(mc_ring_attach(mem, size - 8, &b), MC_E_BAD_SIZE);
    mem[4] = 2; /* version */
    CHECK_STATUS(mc_ring_attach(mem, size, &b), MC_E_BAD_VERSION);
    mem[4] = 1;
    CHECK_STATUS(mc_ring_attach(mem, size, &b), MC_OK);
    /* a record written through one handle is read through the other */
    uint8_t out[8];
    uint32_t len;
    CHECK_STATUS(mc_ring_write(a, 7, "abc", 3), MC_OK);
    CHECK_STATUS(mc_ring_read(b, out, sizeof out, &len, NULL), MC_OK);
    CHECK(len == 3 && memcmp(out, "abc", 3) == 0);
    /* a hostile length in shared memory is refused, not followed */
    CHECK_STATUS(mc_ring_write(a, 7, "abc", 3), MC_OK);
    uint32_t *hdr = (uint32_t *)(mem + 256 + 16);
    uint32_t saved = hdr[0];
    hdr[0] = 100000;
    CHECK_STATUS(mc_ring_read(b, out, sizeof out, &len, NULL), MC_E_MALFORMED);
    hdr[0] = saved;
    CHECK_STATUS(mc_ring_read(b, out, sizeof out, &len, NULL), MC_OK);
    mc_ring_free(a);
    mc_ring_free(b);
    mc_aligned_free(mem);
}

/* Rewinding: once the head is `room` bytes in and the consumer has taken
 * everything, the next record starts at offset 0; not while records wait;
 * right after a rewind the ring takes only the bytes before that point. */
static void test_rewind(void)
{
    mc_ring *r;
    CHECK_STATUS(mc_ring_new(1024, 0, &r), MC_OK);
    CHECK_STATUS(mc_ring_set_rewind(r, 1024), MC_E_INVAL);
    CHECK_STATUS(mc_ring_set_rewind(r, 256), MC_OK);
    uint8_t rec[104], out[104];
    uint32_t off[8], len[8], n = 0, got = 0;
    memset(rec, 0x5a, sizeof rec);
    /* 104-byte records take 112 bytes: offsets 0, 112, 224, then 336 >= 256 */
    for (int i = 0; i < 3; i++) {
        CHECK_STATUS(mc_ring_write(r, 1, rec, sizeof rec), MC_OK);
        CHECK_STATUS(mc_ring_peek(r, off, len, NULL, 8, &n), MC_OK);
        CHECK(n == 1 && off[0] == 8u + 112u * (uint32_t)i);
        CHECK_STATUS(mc_ring_release(r, 1), MC_OK);
    }
    CHECK_STATUS(mc_ring_write(r, 2, rec, sizeof rec), MC_OK);
    CHECK_STATUS(mc_ring_peek(r, off, len, NULL, 8, &n), MC_OK);
    CHECK(n == 1 && off[0] == 8); /* rewound */
    mc_ring_stats st;
    CHECK_STATUS(mc_ring_get_stats(r, &st), MC_OK);
    CHECK(st.rewinds == 1);
    /* until the consumer passes the padding, the 336 bytes before it are all
     * there is: three records fit (one is still unread), a fourth does not */
    CHECK_STATUS(mc_ring_write(r, 3, rec, sizeof rec), MC_OK);
    CHECK_STATUS(mc_ring_write(r, 4, rec, sizeof rec), MC_OK);
    CHECK_STATUS(mc_ring_write(r, 5, rec, sizeof rec), MC_E_FULL);
    for (uint32_t want = 2; want <= 4; want++) {
        uint32_t type = 0;
        CHECK_STATUS(mc_ring_read(r, out, sizeof out, &got, &type), MC_OK);
        CHECK(type == want && got == sizeof rec && memcmp(out, rec, sizeof rec) == 0);
    }
    /* past room with everything read: the very next record rewinds (every
     * claim past room checks; a producer writing several records per
     * consumer turn must not miss the moment) */
    CHECK_STATUS(mc_ring_write(r, 6, rec, sizeof rec), MC_OK);
    CHECK_STATUS(mc_ring_peek(r, off, len, NULL, 8, &n), MC_OK);
    CHECK(n == 1 && off[0] == 8);
    CHECK_STATUS(mc_ring_get_stats(r, &st), MC_OK);
    CHECK(st.rewinds == 2);
    CHECK_STATUS(mc_ring_release(r, 1), MC_OK);
    /* not while a record waits: the head walks on past room */
    CHECK_STATUS(mc_ring_write(r, 7, rec, sizeof rec), MC_OK); /* offset 112 */
    CHECK_STATUS(mc_ring_write(r, 8, rec, sizeof rec), MC_OK); /* 224 */
    CHECK_STATUS(mc_ring_write(r, 9, rec, sizeof rec), MC_OK); /* 336, 7 and 8 unread */
    CHECK_STATUS(mc_ring_peek(r, off, len, NULL, 8, &n), MC_OK);
    CHECK(n == 3 && off[0] == 120 && off[1] == 232 && off[2] == 344);
    CHECK_STATUS(mc_ring_release(r, 3), MC_OK);
    /* off again: records follow on where the last one ended */
    CHECK_STATUS(mc_ring_set_rewind(r, 0), MC_OK);
    CHECK_STATUS(mc_ring_write(r, 10, rec, sizeof rec), MC_OK);
    CHECK_STATUS(mc_ring_peek(r, off, len, NULL, 8, &n), MC_OK);
    CHECK(n == 1 && off[0] == 456);
    CHECK_STATUS(mc_ring_release(r, 1), MC_OK);
    CHECK_STATUS(mc_ring_get_stats(r, &st), MC_OK);
    CHECK(st.rewinds == 2);
    mc_ring_free(r);
}

/* Growing a reservation: in place, moved past the end (content kept), and
 * refused when the consumer has not made room (the old one stands). */
static void test_extend(void)
{
    mc_ring *r;
    CHECK_STATUS(mc_ring_new(1024, 0, &r), MC_OK);
    void *p = NULL, *q = NULL;
    uint8_t out[512];
    uint32_t got = 0, type = 0, off[4], len[4], n = 0;
    CHECK_STATUS(mc_ring_extend(r, 10, 0, &p), MC_E_INVAL); /* nothing reserved */
    CHECK_STATUS(mc_ring_reserve(r, 100, &p), MC_OK);
    memset(p, 0x11, 100);
    CHECK_STATUS(mc_ring_extend(r, 300, 100, &q), MC_OK);
    CHECK(q == p); /* room right after it */
    memset((uint8_t *)q + 100, 0x22, 200);
    CHECK_STATUS(mc_ring_extend(r, 600, 300, &q), MC_E_TOO_LARGE); /* max record 504 */
    CHECK_STATUS(mc_ring_commit(r, 9, 300), MC_OK);
    CHECK_STATUS(mc_ring_read(r, out, sizeof out, &got, &type), MC_OK);
    CHECK(got == 300 && type == 9 && out[0] == 0x11 && out[99] == 0x11 && out[100] == 0x22 &&
          out[299] == 0x22);
    /* head at 312, then 600 after a filler: a reservation of 200 there,
     * grown to 480 (488 with its header), would straddle the end: it moves
     * to the start, its first 200 bytes with it */
    uint8_t filler[280];
    memset(filler, 0, sizeof filler);
    CHECK_STATUS(mc_ring_write(r, 1, filler, sizeof filler), MC_OK); /* 312..600 */
    CHECK_STATUS(mc_ring_read(r, out, sizeof out, &got, &type), MC_OK);
    CHECK_STATUS(mc_ring_reserve(r, 200, &p), MC_OK);
    CHECK((uint8_t *)p == mc_ring_data(r) + 600 + 8);
    for (int i = 0; i < 200; i++)
        ((uint8_t *)p)[i] = (uint8_t)i;
    CHECK_STATUS(mc_ring_extend(r, 480, 200, &q), MC_OK);
    CHECK((uint8_t *)q == mc_ring_data(r) + 8);
    for (int i = 200; i < 480; i++)
        ((uint8_t *)q)[i] = (uint8_t)i;
    CHECK_STATUS(mc_ring_commit(r, 4, 480), MC_OK);
    CHECK_STATUS(mc_ring_peek(r, off, len, NULL, 4, &n), MC_OK);
    CHECK(n == 1 && off[0] == 8 && len[0] == 480);
    int same = 1;
    for (int i = 0; i < 480; i++)
        same &= mc_ring_data(r)[8 + i] == (uint8_t)i;
    CHECK(same);
    /* that record unread (the consumer is still before the padding at 600):
     * 100 bytes fit after it, but not 504 */
    CHECK_STATUS(mc_ring_reserve(r, 100, &p), MC_OK);
    memset(p, 0x33, 100);
    CHECK_STATUS(mc_ring_extend(r, 504, 100, &q), MC_E_FULL);
    CHECK_STATUS(mc_ring_commit(r, 5, 100), MC_OK); /* the old one stands */
    CHECK_STATUS(mc_ring_release(r, 1), MC_OK);
    CHECK_STATUS(mc_ring_read(r, out, sizeof out, &got, &type), MC_OK);
    CHECK(got == 100 && type == 5 && out[0] == 0x33 && out[99] == 0x33);
    mc_ring_free(r);
}

/* Reading ahead of releasing: mc_ring_peek_at from a position, records
 * written over by the consumer, mc_ring_release_at without reading them
 * again; positions outside the unreleased records refused; padding skipped. */
static void test_peek_at(void)
{
    mc_ring *r;
    CHECK_STATUS(mc_ring_new(1024, 0, &r), MC_OK);
    uint8_t rec[400];
    for (int i = 0; i < 5; i++) {
        memset(rec, i, sizeof rec);
        CHECK_STATUS(mc_ring_write(r, 3, rec, 90), MC_OK);
    }
    uint64_t pos = mc_ring_read_position(r), positions[8];
    CHECK(pos == 0);
    uint32_t off[8], len[8], type[8], n = 0;
    CHECK_STATUS(mc_ring_peek_at(r, &pos, positions, off, len, type, 2, &n), MC_OK);
    CHECK(n == 2 && positions[0] == 0 && positions[1] == 104 && pos == 208);
    CHECK(off[1] == 112 && len[1] == 90 && type[1] == 3);
    memset(mc_ring_data(r) + positions[0], 0xee, 208); /* headers too: read, ours */
    uint64_t at = pos;
    CHECK_STATUS(mc_ring_peek_at(r, &pos, positions, off, len, NULL, 8, &n), MC_OK);
    CHECK(n == 3 && positions[0] == at && pos == 520);
    CHECK(mc_ring_data(r)[off[2]] == 4);
    CHECK_STATUS(mc_ring_peek_at(r, &pos, positions, off, len, NULL, 8, &n), MC_E_EMPTY);
    CHECK(n == 0 && pos == 520);
    uint64_t bad = 1024;
    CHECK_STATUS(mc_ring_peek_at(r, &bad, NULL, off, len, NULL, 8, &n), MC_E_INVAL);
    CHECK_STATUS(mc_ring_release_at(r, 600, 1), MC_E_INVAL); /* past the last record */
    CHECK_STATUS(mc_ring_release_at(r, at, 2), MC_OK);       /* the two written over */
    CHECK(mc_ring_read_position(r) == at);
    bad = 0;
    CHECK_STATUS(mc_ring_peek_at(r, &bad, NULL, off, len, NULL, 8, &n), MC_E_INVAL); /* released */
    mc_ring_stats st;
    CHECK_STATUS(mc_ring_get_stats(r, &st), MC_OK);
    CHECK(st.records_read == 2 && st.used_bytes == 520 - at);
    /* the next records straddle the end: padding, then the start; a read
     * ahead finds them after it */
    CHECK_STATUS(mc_ring_write(r, 3, rec, 400), MC_OK); /* 520..928 */
    CHECK_STATUS(mc_ring_release_at(r, 520, 3), MC_OK);
    CHECK_STATUS(mc_ring_write(r, 3, rec, 200), MC_OK); /* padding 928..1024, then 1024 */
    CHECK_STATUS(mc_ring_peek_at(r, &pos, positions, off, len, NULL, 8, &n), MC_OK);
    CHECK(n == 2 && positions[0] == 520 && positions[1] == 1024 && off[1] == 8 && pos == 1232);
    CHECK_STATUS(mc_ring_release_at(r, pos, 2), MC_OK);
    CHECK_STATUS(mc_ring_get_stats(r, &st), MC_OK);
    CHECK(st.records_read == 7 && st.used_bytes == 0 && st.records_written == 7);
    CHECK_STATUS(mc_ring_peek_at(NULL, &pos, NULL, off, len, NULL, 1, &n), MC_E_INVAL);
    CHECK(mc_ring_read_position(NULL) == 0);
    mc_ring_free(r);
}

/* ---- stress: producer thread with varying lengths, consumer verifies ---- */

typedef struct stress {
    mc_ring *ring;
    uint64_t count;
    uint64_t bad;
    uint64_t got;
} stress;

static uint32_t length_for(uint64_t seq) { return 16u + (uint32_t)((seq * 2654435761u) % 700u); }

static void stress_producer(void *arg)
{
    stress *s = (stress *)arg;
    uint8_t buf[800];
    for (uint64_t seq = 0; seq < s->count; seq++) {
        uint32_t n = length_for(seq);
        memcpy(buf, &seq, 8);
        for (uint32_t i = 8; i < n - 4; i++)
            buf[i] = (uint8_t)(seq ^ i);
        uint32_t sum = mc_checksum32(buf, n - 4);
        memcpy(buf + n - 4, &sum, 4);
        for (;;) {
            mc_status st;
            if (seq % 3 == 0) {
                /* half reserved, then grown to the whole (it may move) */
                void *p = NULL;
                st = mc_ring_reserve(s->ring, n / 2, &p);
                if (st == MC_OK) {
                    memcpy(p, buf, n / 2);
                    st = mc_ring_extend(s->ring, n, n / 2, &p);
                    if (st == MC_OK) {
                        memcpy((uint8_t *)p + n / 2, buf + n / 2, n - n / 2);
                        st = mc_ring_commit(s->ring, 1, n);
                    } else {
                        mc_ring_cancel(s->ring);
                    }
                }
            } else {
                st = mc_ring_write(s->ring, 1, buf, n);
            }
            if (st == MC_OK)
                break;
            if (st != MC_E_FULL) {
                s->bad++;
                break;
            }
            mc_ring_wait_writable(s->ring, n, -1);
        }
    }
    mc_ring_close(s->ring);
}

/* The consumer's check of peeked records (sequence, length, checksum);
 * `scribble`: then write over them, as a consumer that owns them may. */
static void check_records(stress *s, uint64_t *expect, const uint32_t *offsets,
                          const uint32_t *lengths, uint32_t n, int scribble)
{
    uint8_t *data = mc_ring_data(s->ring);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *rec = data + offsets[i];
        uint64_t seq;
        uint32_t sum;
        memcpy(&seq, rec, 8);
        memcpy(&sum, rec + lengths[i] - 4, 4);
        if (seq != *expect || lengths[i] != length_for(seq) ||
            sum != mc_checksum32(rec, lengths[i] - 4))
            s->bad++;
        *expect = seq + 1;
        if (scribble)
            memset(rec, 0xee, lengths[i]);
    }
    s->got += n;
}

static void test_stress(uint64_t count, uint64_t rewind_room)
{
    stress s = {0};
    s.count = count;
    CHECK_STATUS(mc_ring_new(1 << 14, 0, &s.ring), MC_OK);
    CHECK_STATUS(mc_ring_set_rewind(s.ring, rewind_room), MC_OK);
    mc_thread t;
    CHECK_STATUS(mc_thread_start(&t, stress_producer, &s), MC_OK);
    uint8_t buf[800];
    uint32_t offsets[64], lengths[64], n;
    uint64_t expect = 0;
    int use_peek = 0, mode = 0;
    uint64_t cursor = 0; /* read ahead (mode 2): records checked, written over, held */
    uint32_t held = 0;
    for (;;) {
        mc_status st;
        if (!held)
            mode = (mode + 1) % 3;
        use_peek = mode == 1;
        if (mode == 2) {
            if (!held)
                cursor = mc_ring_read_position(s.ring);
            st = mc_ring_peek_at(s.ring, &cursor, NULL, offsets, lengths, NULL, 64, &n);
            if (st == MC_OK) {
                check_records(&s, &expect, offsets, lengths, n, 1); /* ours until released */
                held += n;
                if (held >= 150) {
                    CHECK_STATUS(mc_ring_release_at(s.ring, cursor, held), MC_OK);
                    held = 0;
                }
                continue;
            }
            if (held) { /* nothing more to read: give the producer its room */
                CHECK_STATUS(mc_ring_release_at(s.ring, cursor, held), MC_OK);
                held = 0;
                continue;
            }
        } else if (use_peek) {
            st = mc_ring_peek(s.ring, offsets, lengths, NULL, 64, &n);
            if (st == MC_OK) {
                check_records(&s, &expect, offsets, lengths, n, 0);
                CHECK_STATUS(mc_ring_release(s.ring, n), MC_OK);
                continue;
            }
        } else {
            uint32_t len;
            st = mc_ring_read(s.ring, buf, sizeof buf, &len, NULL);
            if (st == MC_OK) {
                uint64_t seq;
                uint32_t sum;
                memcpy(&seq, buf, 8);
                memcpy(&sum, buf + len - 4, 4);
                if (seq != expect || len != length_for(seq) || sum != mc_checksum32(buf, len - 4))
                    s.bad++;
                expect = seq + 1;
                s.got++;
                continue;
            }
        }
        if (st == MC_E_EMPTY) {
            /* every other wait paced: its polling races the producer too */
            st = mc_ring_wait(s.ring, 5000000000LL, mode == 0 ? MC_RING_SPIN_PACED : 0);
            if (st == MC_OK)
                continue;
        }
        CHECK(st == MC_E_CLOSED);
        break;
    }
    mc_thread_join(&t);
    CHECK(s.got == count);
    CHECK(s.bad == 0);
    mc_ring_stats st;
    CHECK_STATUS(mc_ring_get_stats(s.ring, &st), MC_OK);
    CHECK(st.records_read == count && st.used_bytes == 0);
    CHECK(rewind_room ? st.rewinds > 0 : st.rewinds == 0);
    printf("stress (rewind room %llu): %llu records, %llu bad, %llu rewinds\n",
           (unsigned long long)rewind_room, (unsigned long long)s.got, (unsigned long long)s.bad,
           (unsigned long long)st.rewinds);
    mc_ring_free(s.ring);
}

static void test_selftest_workers(void)
{
    mc_ring *r;
    CHECK_STATUS(mc_ring_new(1 << 16, 0, &r), MC_OK);
    mc_selftest *p, *c;
    CHECK_STATUS(mc_selftest_consumer_start(r, 100000, 5000000000LL, &c), MC_OK);
    CHECK_STATUS(mc_selftest_producer_start(r, 100000, 640, 0, 8, 1, &p), MC_OK);
    mc_selftest_result pr, cr;
    mc_selftest_join(p, &pr);
    mc_selftest_join(c, &cr);
    CHECK(pr.records == 100000 && pr.dropped == 0);
    CHECK(cr.records == 100000 && cr.errors == 0 && cr.last_sequence == 99999);
    mc_ring_free(r);
}

/* Paced waiting against a producer on a 1 ms clock: every record arrives in
 * order, and once the consumer has the pace it polls for records when they
 * are due instead of being woken for each (fewer wake syscalls than records). */
static void test_paced_wait(void)
{
    enum { N = 400 };
    mc_ring *r;
    CHECK_STATUS(mc_ring_new(1 << 16, 0, &r), MC_OK);
    mc_selftest *p;
    CHECK_STATUS(mc_selftest_producer_start(r, N, 32, 1000000, 1, 0, &p), MC_OK);
    uint8_t buf[64];
    uint32_t len;
    uint64_t got = 0, bad = 0;
    for (;;) {
        mc_status st = mc_ring_wait(r, 5000000000LL, MC_RING_SPIN_PACED);
        if (st == MC_E_CLOSED)
            break;
        CHECK_STATUS(st, MC_OK);
        while (mc_ring_read(r, buf, sizeof buf, &len, NULL) == MC_OK) {
            uint64_t seq;
            memcpy(&seq, buf, 8);
            bad += seq != got;
            got++;
        }
    }
    mc_selftest_result pr;
    mc_selftest_join(p, &pr);
    mc_ring_stats st;
    CHECK_STATUS(mc_ring_get_stats(r, &st), MC_OK);
    CHECK(got == N && bad == 0 && pr.records == N);
    CHECK(st.wake_calls < N);
    printf("paced wait: %llu records at 1 kHz, %llu wake syscalls\n", (unsigned long long)got,
           (unsigned long long)st.wake_calls);
    mc_ring_free(r);
}

int main(int argc, char **argv)
{
    uint64_t count = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    test_boundaries_and_wrap();
    test_policies();
    test_attach();
    test_selftest_workers();
    test_rewind();
    test_extend();
    test_peek_at();
    test_paced_wait();
    test_stress(count, 0);
    test_stress(count / 2, 4096); /* rewinds whenever the consumer catches up */
    if (failures) {
        fprintf(stderr, "test_ring: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_ring: ok\n");
    return 0;
}

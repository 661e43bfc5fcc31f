/*
 * selftest.c — native producer and consumer threads that drive one side of a
 * ring, so tests and benchmarks can check the native <-> Python hand-off with
 * real threads. Record format: see testing.h (selftest section). Not part
 * of the shipped library: built into the C tests and _mediacore_testing.
 */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "testing.h"

#define ST_HEADER 24u

struct mc_selftest {
    mc_thread thread;
    mc_ring *ring;
    uint64_t count;
    uint32_t record_length;
    uint32_t batch;
    int64_t interval_ns;
    int64_t timeout_ns;
    int32_t block;
    mc_selftest_result result;
};

MC_API uint32_t mc_checksum32(const uint8_t *data, size_t length)
{
    uint32_t h = 2166136261u;
    size_t i = 0;
    for (; i + 4 <= length; i += 4) {
        uint32_t w = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16 |
                     (uint32_t)data[i + 3] << 24;
        h = (h ^ w) * 16777619u;
    }
    if (i < length) {
        uint32_t w = 0;
        for (unsigned k = 0; i + k < length; k++)
            w |= (uint32_t)data[i + k] << (8 * k);
        h = (h ^ w) * 16777619u;
    }
    return h;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The payload depends on seq mod 256 only, so the producer keeps 256
 * templates (payload + checksum) and a record costs one memcpy: the producer
 * must never be what a hand-off benchmark measures. */
typedef struct templates {
    uint8_t *payloads; /* 256 x payload */
    uint32_t checksums[256];
    uint32_t payload;
} templates;

static int templates_init(templates *t, uint32_t payload)
{
    t->payload = payload;
    t->payloads = (uint8_t *)malloc((size_t)payload * 256 + 1);
    if (!t->payloads)
        return 0;
    for (uint32_t r = 0; r < 256; r++) {
        uint8_t *body = t->payloads + (size_t)r * payload;
        for (uint32_t i = 0; i < payload; i++)
            body[i] = (uint8_t)(r + i);
        t->checksums[r] = mc_checksum32(body, payload);
    }
    return 1;
}

static void fill_record(uint8_t *rec, const templates *t, uint64_t seq)
{
    uint32_t r = (uint32_t)(seq & 0xff);
    memcpy(rec + ST_HEADER, t->payloads + (size_t)r * t->payload, t->payload);
    put_u64(rec, seq);
    put_u64(rec + 8, (uint64_t)mc_now_ns());
    put_u32(rec + 16, t->checksums[r]);
    put_u32(rec + 20, t->payload);
}

static void producer_main(void *arg)
{
    mc_selftest *w = (mc_selftest *)arg;
    uint32_t batch = w->batch ? w->batch : 1;
    uint8_t *buf = (uint8_t *)malloc((size_t)w->record_length * batch);
    uint32_t *lengths = (uint32_t *)malloc(sizeof(uint32_t) * batch);
    templates t;
    if (!buf || !lengths || !templates_init(&t, w->record_length - ST_HEADER)) {
        free(buf);
        free(lengths);
        w->result.dropped = w->count;
        mc_ring_close(w->ring);
        return;
    }
    for (uint32_t i = 0; i < batch; i++)
        lengths[i] = w->record_length;
    int64_t start = mc_now_ns();
    int64_t next = start;
    uint64_t seq = 0;
    while (seq < w->count) {
        if (w->interval_ns > 0) {
            int64_t now = mc_now_ns();
            if (next > now)
                mc_sleep_ns(next - now);
            next += w->interval_ns;
        }
        uint32_t n = batch;
        if (w->count - seq < n)
            n = (uint32_t)(w->count - seq);
        for (uint32_t i = 0; i < n; i++)
            fill_record(buf + (size_t)i * w->record_length, &t, seq + i);
        uint32_t done = 0;
        while (done < n) {
            uint32_t written = 0;
            mc_status s;
            if (n - done == 1) {
                s = mc_ring_write(w->ring, 0, buf + (size_t)done * w->record_length,
                                  w->record_length);
                written = s == MC_OK ? 1 : 0;
            } else {
                s = mc_ring_write_batch(w->ring, 0, buf + (size_t)done * w->record_length,
                                        lengths + done, n - done, &written);
            }
            done += written;
            w->result.records += written;
            if (s == MC_DROPPED) {
                w->result.dropped += n - done;
                done = n;
            } else if (s == MC_E_FULL) {
                if (w->block)
                    mc_ring_wait_writable(w->ring, w->record_length, -1);
                else {
                    w->result.dropped += n - done;
                    done = n;
                }
            } else if (s != MC_OK) {
                w->result.dropped += n - done;
                done = n;
            }
        }
        seq += n;
        w->result.last_sequence = seq - 1;
    }
    w->result.elapsed_ns = mc_now_ns() - start;
    mc_ring_close(w->ring);
    free(t.payloads);
    free(buf);
    free(lengths);
}

static void consumer_main(void *arg)
{
    mc_selftest *w = (mc_selftest *)arg;
    mc_ring_stats st;
    mc_ring_get_stats(w->ring, &st);
    uint8_t *buf = (uint8_t *)malloc(st.max_record ? st.max_record : 1);
    if (!buf) {
        w->result.errors = 1;
        return;
    }
    int64_t start = mc_now_ns();
    uint64_t expected = 0;
    while (w->result.records < w->count) {
        uint32_t len = 0;
        mc_status s = mc_ring_read(w->ring, buf, st.max_record, &len, NULL);
        if (s == MC_E_EMPTY) {
            s = mc_ring_wait(w->ring, w->timeout_ns, 0);
            if (s == MC_E_TIMEOUT || s == MC_E_CLOSED)
                break;
            continue;
        }
        if (s == MC_E_CLOSED)
            break;
        if (s != MC_OK) {
            w->result.errors++;
            break;
        }
        w->result.records++;
        if (len < ST_HEADER) {
            w->result.errors++;
            continue;
        }
        uint64_t seq = get_u64(buf);
        uint32_t payload = get_u32(buf + 20);
        if (seq != expected || payload != len - ST_HEADER ||
            get_u32(buf + 16) != mc_checksum32(buf + ST_HEADER, payload))
            w->result.errors++;
        expected = seq + 1;
        w->result.last_sequence = seq;
    }
    w->result.elapsed_ns = mc_now_ns() - start;
    free(buf);
}

static mc_status start_worker(mc_selftest *w, mc_thread_fn fn, mc_selftest **out)
{
    mc_status s = mc_thread_start(&w->thread, fn, w);
    if (s != MC_OK) {
        free(w);
        return s;
    }
    *out = w;
    return MC_OK;
}

MC_API mc_status mc_selftest_producer_start(mc_ring *ring, uint64_t count, uint32_t record_length,
                                            int64_t interval_ns, uint32_t batch, int32_t block,
                                            mc_selftest **out)
{
    if (!ring || !out || record_length < ST_HEADER || batch > 4096)
        return MC_E_INVAL;
    mc_selftest *w = (mc_selftest *)calloc(1, sizeof *w);
    if (!w)
        return MC_E_NOMEM;
    w->ring = ring;
    w->count = count;
    w->record_length = record_length;
    w->interval_ns = interval_ns;
    w->batch = batch;
    w->block = block;
    return start_worker(w, producer_main, out);
}

MC_API mc_status mc_selftest_consumer_start(mc_ring *ring, uint64_t count, int64_t timeout_ns,
                                            mc_selftest **out)
{
    if (!ring || !out)
        return MC_E_INVAL;
    mc_selftest *w = (mc_selftest *)calloc(1, sizeof *w);
    if (!w)
        return MC_E_NOMEM;
    w->ring = ring;
    w->count = count;
    w->timeout_ns = timeout_ns;
    return start_worker(w, consumer_main, out);
}

MC_API mc_status mc_selftest_join(mc_selftest *w, mc_selftest_result *result)
{
    if (!w)
        return MC_E_INVAL;
    mc_thread_join(&w->thread);
    if (result)
        *result = w->result;
    free(w);
    return MC_OK;
}

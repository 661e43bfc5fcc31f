/*
 * audiograph.c — the per-call audio graph on a 20 ms media clock, and the
 * worker thread that ticks every graph (contract in mediacore.h).
 *
 * Per source: a small queue of received records (payload copies), a PCM
 * carry buffer (packets of 10..60 ms become 20 ms frames), a decoder per
 * payload type, a DTMF receiver, and voice-activity state. Nothing is
 * allocated per packet or per frame: queues, carries and output records
 * (reserved in place in the rings) are preallocated.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio_internal.h"
#include "compat.h"
#include "net.h"

#define QUEUE_SLOTS 32 /* 640 ms: room for the delay underruns add */
#define SHRINK_MARGIN 2 /* queued frames beyond the look-ahead before silence is skipped */
#define SLOT_PAYLOAD 1500
#define CARRY_MAX (MC_AUDIO_MAX_FRAME_SAMPLES + MC_AUDIO_FRAME_SAMPLES)
#define FRAME_RECORD (MC_AUDIO_FRAME_HEADER_SIZE + MC_AUDIO_FRAME_BYTES)
#define DOMINANT_MARGIN_DB 3.0f
#define EXT_LEVEL_HOLD 50 /* frames an RFC 6464 level stays in force without a new one */

MC_STATIC_ASSERT(sizeof(mc_audio_frame_header) == MC_AUDIO_FRAME_HEADER_SIZE,
                 "frame header layout is part of the ring format");
MC_STATIC_ASSERT(sizeof(mc_audio_event) == 32, "event layout is part of the ring format");
MC_STATIC_ASSERT(sizeof(mc_rtp_record) == MC_RTP_RECORD_SIZE, "engine record layout");

typedef struct slot {
    int64_t arrival_ns;
    uint32_t rtp_timestamp;
    uint16_t length;
    uint16_t sequence_number;
    uint8_t payload_type;
    uint8_t lost;
    uint16_t level_flags; /* MC_RECORD_FLAG_AUDIO_LEVEL | VOICE | level << 8, or 0 */
    uint8_t payload[SLOT_PAYLOAD];
} slot;

typedef struct source {
    uint32_t ssrc;
    int playing;
    slot queue[QUEUE_SLOTS];
    uint32_t q_head, q_count;
    int have_seq;              /* a record was queued: last_seq is valid */
    uint16_t last_seq;         /* last sequence number queued */
    uint16_t next_play_seq;    /* the slot playout needs next (valid once playing) */
    /* decoding */
    mc_audio_decoder *dec;
    int32_t dec_pt;
    uint32_t dec_clock;
    int16_t carry[CARRY_MAX];
    uint32_t carry_len;
    uint32_t carry_rtp;        /* RTP timestamp of carry[0] */
    int64_t carry_arrival_ns;
    uint32_t last_samples;     /* samples of the last decoded packet (concealment size) */
    uint16_t frame_flags;
    int16_t frame[MC_AUDIO_FRAME_SAMPLES];
    uint32_t frame_rtp;
    int64_t frame_arrival_ns;
    /* activity */
    int64_t last_record_ns;
    int64_t active_until_ns;
    float level_db;            /* this frame */
    float smooth_db;           /* exponential average, for the dominant speaker */
    uint32_t ext_age;          /* frames since the last RFC 6464 level (EXT_LEVEL_HOLD: none) */
    uint8_t ext_level;         /* that level, -dBov */
    uint8_t ext_voice;         /* and its V flag */
    int active;
    uint64_t sequence;
    uint32_t debt;             /* frames of delay underruns added, not yet taken back */
    uint32_t owed;             /* look-ahead frames a fast start has yet to build */
    uint64_t played;           /* frames played */
    mc_dtmf_receiver *dtmf;
} source;

struct mc_audio_graph {
    mc_audio_worker *worker;
    mc_audio_graph *next;
    mc_audio_graph_config cfg;
    source *sources[MC_AUDIO_GRAPH_MAX_SOURCES];
    uint32_t source_count;
    uint64_t mixed_sequence;
    uint32_t mixed_samples;
    uint32_t dominant;
    /* send */
    mc_audio_encoder *enc;
    mc_dtmf_sender *dtmf_tx;
    uint32_t send_timestamp;
    uint32_t send_ticks;       /* RTP ticks per 20 ms on the send clock */
    uint32_t dtmf_clock;
    int send_marker;
    uint32_t low_water_armed;
    uint32_t phase;            /* staggering worker: the 2 ms phase this graph ticks at */
    int started;               /* a source has played: the graph keeps its phase from then on */
    int wake_engine;           /* this tick queued packets: the worker wakes the engine */
    int wake_output;           /* this tick wrote frames: the worker wakes their reader */
    mc_audio_graph_stats stats;
};

struct mc_audio_worker {
    uint32_t flags;
    mc_mutex lock;
    mc_thread thread;
    volatile uint32_t running;
    int thread_started;
    mc_audio_graph *graphs;
    uint32_t next_phase;       /* staggering: the phase the next graph gets */
    volatile uint64_t ticks;
    volatile uint64_t late_ticks;
    volatile uint64_t busy_ns;
};

/* ---- helpers ------------------------------------------------------------ */

static void put_event(mc_audio_graph *g, int64_t now_ns, uint32_t kind, uint32_t source_id,
                      uint32_t value, uint32_t duration, uint32_t end)
{
    if (!g->cfg.events)
        return;
    mc_audio_event ev;
    memset(&ev, 0, sizeof ev);
    ev.timestamp_100ns = now_ns / 100;
    ev.kind = kind;
    ev.source_id = source_id;
    ev.value = value;
    ev.duration = duration;
    ev.end = end;
    ev.tag = g->cfg.tag;
    if (mc_ring_write(g->cfg.events, MC_RECORD_AUDIO_EVENT, &ev, sizeof ev) != MC_OK)
        g->stats.output_dropped++;
}

static const mc_audio_payload_map *codec_for(const mc_audio_graph *g, uint32_t pt)
{
    for (uint32_t i = 0; i < g->cfg.payload_type_count; i++)
        if (g->cfg.payload_types[i].payload_type == pt)
            return &g->cfg.payload_types[i];
    return NULL;
}

static void source_free(source *s)
{
    if (!s)
        return;
    mc_audio_decoder_free(s->dec);
    mc_dtmf_receiver_free(s->dtmf);
    mc_aligned_free(s);
}

static source *find_source(mc_audio_graph *g, uint32_t ssrc, int64_t now_ns, int create)
{
    for (uint32_t i = 0; i < g->source_count; i++)
        if (g->sources[i]->ssrc == ssrc)
            return g->sources[i];
    if (!create)
        return NULL;
    if (g->source_count >= MC_AUDIO_GRAPH_MAX_SOURCES) {
        g->stats.sources_refused++;
        return NULL;
    }
    source *s = (source *)mc_aligned_alloc(64, sizeof(source));
    if (!s) {
        g->stats.sources_refused++;
        return NULL;
    }
    memset(s, 0, sizeof *s);
    s->ssrc = ssrc;
    s->dec_pt = -1;
    s->last_samples = MC_AUDIO_FRAME_SAMPLES;
    s->smooth_db = -127.0f;
    s->level_db = -127.0f;
    s->ext_age = EXT_LEVEL_HOLD;
    s->last_record_ns = now_ns;
    g->sources[g->source_count++] = s;
    put_event(g, now_ns, MC_AUDIO_EVENT_SOURCE_ADDED, ssrc, 0, 0, 0);
    return s;
}

static void remove_source(mc_audio_graph *g, uint32_t index, int64_t now_ns)
{
    source *s = g->sources[index];
    put_event(g, now_ns, MC_AUDIO_EVENT_SOURCE_REMOVED, s->ssrc, 0, 0, 0);
    source_free(s);
    g->sources[index] = g->sources[--g->source_count];
}

/* ---- receive ------------------------------------------------------------ */

static void on_dtmf(mc_audio_graph *g, source *s, const mc_rtp_record *rec, const uint8_t *payload,
                    uint32_t length, int64_t now_ns)
{
    mc_dtmf_digit digits[3];
    uint32_t n = 0;
    if (!s->dtmf && mc_dtmf_receiver_new(&s->dtmf) != MC_OK)
        return;
    if (mc_dtmf_receiver_push(s->dtmf, payload, length, rec->timestamp, rec->marker, digits, &n) !=
        MC_OK)
        return;
    for (uint32_t i = 0; i < n; i++) {
        if (digits[i].end)
            g->stats.dtmf_digits++;
        put_event(g, now_ns, MC_AUDIO_EVENT_DTMF, s->ssrc, digits[i].digit,
                  digits[i].duration_ticks, digits[i].end);
    }
}

static slot *push_slot(mc_audio_graph *g, source *s)
{
    if (s->q_count == QUEUE_SLOTS) { /* a burst beyond the look-ahead: drop the oldest */
        s->q_head = (s->q_head + 1) % QUEUE_SLOTS;
        s->q_count--;
        g->stats.overflow_dropped++;
    }
    return &s->queue[(s->q_head + s->q_count++) % QUEUE_SLOTS];
}

/* Sequence numbers order the slots: a record for a slot playout already
 * passed (concealed on underrun) is late and dropped; a short gap since the
 * last queued record becomes "lost" slots, so the frame can still be rebuilt
 * from the next packet's FEC. (With the engine's jitter buffer the records
 * already come one per slot, lost slots flagged, and this never triggers.) */
static void enqueue(mc_audio_graph *g, source *s, const mc_rtp_record *rec, const uint8_t *payload,
                    uint32_t length)
{
    uint16_t seq = rec->sequence_number;
    if (s->playing && (int16_t)(uint16_t)(seq - s->next_play_seq) < 0) {
        g->stats.late++;
        return;
    }
    if (s->have_seq) {
        int16_t gap = (int16_t)(uint16_t)(seq - s->last_seq);
        if (gap <= 0) { /* duplicate or reordered behind what is queued */
            g->stats.late++;
            return;
        }
        if (gap > 1 && gap <= QUEUE_SLOTS / 2) {
            for (uint16_t m = (uint16_t)(s->last_seq + 1); m != seq; m++) {
                if (s->playing && (int16_t)(uint16_t)(m - s->next_play_seq) < 0)
                    continue; /* already concealed */
                slot *q = push_slot(g, s);
                q->arrival_ns = rec->arrival_ns;
                q->rtp_timestamp = rec->timestamp; /* unknown; only used for the carry stamp */
                q->sequence_number = m;
                q->payload_type = rec->payload_type;
                q->lost = 1;
                q->length = 0;
                q->level_flags = 0;
            }
        }
    }
    s->have_seq = 1;
    s->last_seq = seq;
    slot *q = push_slot(g, s);
    q->arrival_ns = rec->arrival_ns;
    q->rtp_timestamp = rec->timestamp;
    q->sequence_number = seq;
    q->payload_type = rec->payload_type;
    q->lost = (rec->flags & MC_RECORD_FLAG_LOST) || length == 0;
    q->level_flags = (uint16_t)(rec->flags & MC_RECORD_FLAG_AUDIO_LEVEL ? rec->flags : 0);
    q->length = (uint16_t)(length > SLOT_PAYLOAD ? 0 : length);
    if (length > SLOT_PAYLOAD) {
        q->lost = 1;
        g->stats.decode_errors++;
    } else if (length) {
        memcpy(q->payload, payload, length);
    }
}

static void drain_input(mc_audio_graph *g, int64_t now_ns)
{
    uint32_t offsets[64], lengths[64], types[64], count = 0;
    if (!g->cfg.input)
        return;
    uint8_t *data = mc_ring_data(g->cfg.input);
    for (;;) {
        if (mc_ring_peek(g->cfg.input, offsets, lengths, types, 64, &count) != MC_OK || !count)
            return;
        for (uint32_t i = 0; i < count; i++) {
            if (types[i] != MC_RECORD_RTP || lengths[i] < MC_RTP_RECORD_SIZE)
                continue;
            mc_rtp_record rec;
            memcpy(&rec, data + offsets[i], sizeof rec);
            const uint8_t *payload = data + offsets[i] + MC_RTP_RECORD_SIZE;
            uint32_t length = lengths[i] - MC_RTP_RECORD_SIZE;
            g->stats.records_in++;
            if (rec.flags & MC_RECORD_FLAG_LEVEL_MALFORMED)
                g->stats.level_ext_malformed++;
            int lost = (rec.flags & MC_RECORD_FLAG_LOST) != 0;
            if (!lost && g->cfg.telephone_event_pt >= 0 &&
                rec.payload_type == (uint32_t)g->cfg.telephone_event_pt) {
                source *s = find_source(g, rec.ssrc, now_ns, 1);
                if (s) {
                    s->last_record_ns = now_ns;
                    on_dtmf(g, s, &rec, payload, length, now_ns);
                }
                continue;
            }
            if (!lost && !codec_for(g, rec.payload_type)) {
                g->stats.unknown_payload_type++;
                continue;
            }
            source *s = find_source(g, rec.ssrc, now_ns, !lost);
            if (!s)
                continue;
            if (s->q_count == QUEUE_SLOTS) {
                /* back-pressure: this source is a whole queue ahead (the worker
                 * is behind, or the sender burst): leave this record and those
                 * after it in the input ring until the source has played a frame */
                g->stats.records_in--;
                g->stats.input_waits++;
                mc_ring_release(g->cfg.input, i);
                return;
            }
            if (!lost)
                s->last_record_ns = now_ns;
            enqueue(g, s, &rec, payload, length);
        }
        mc_ring_release(g->cfg.input, count);
    }
}

static mc_status ensure_decoder(mc_audio_graph *g, source *s, uint32_t pt)
{
    if (s->dec && s->dec_pt == (int32_t)pt)
        return MC_OK;
    const mc_audio_payload_map *m = codec_for(g, pt);
    if (!m)
        return MC_E_UNSUPPORTED;
    mc_audio_decoder *dec;
    mc_status st = mc_audio_decoder_new(m->codec, m->clock_rate_hz, &dec);
    if (st != MC_OK)
        return st;
    mc_audio_decoder_free(s->dec);
    s->dec = dec;
    s->dec_pt = (int32_t)pt;
    s->dec_clock = m->clock_rate_hz ? m->clock_rate_hz
                                    : (m->codec == MC_CODEC_OPUS   ? 48000
                                       : m->codec == MC_CODEC_L16 ? 16000
                                                                  : 8000);
    return MC_OK;
}

static void conceal_into_carry(mc_audio_graph *g, source *s, uint32_t samples)
{
    if (samples > MC_AUDIO_MAX_FRAME_SAMPLES)
        samples = MC_AUDIO_MAX_FRAME_SAMPLES;
    if (!s->dec || mc_audio_decode_conceal(s->dec, samples, s->carry + s->carry_len) != MC_OK)
        memset(s->carry + s->carry_len, 0, samples * sizeof(int16_t));
    s->carry_len += samples;
    s->frame_flags |= MC_AUDIO_FLAG_CONCEALED;
    g->stats.concealed++;
}

/* One concealed frame that consumes no queued record: the source's delay
 * (its look-ahead) grows by a frame. Counted as an underrun (the frames
 * behind it play after it, none is dropped). */
static void stretch(mc_audio_graph *g, source *s)
{
    g->stats.underruns++;
    s->debt++;
    if (s->owed)
        s->owed--;
    if (s->carry_len == 0)
        s->carry_rtp += (uint32_t)((uint64_t)MC_AUDIO_FRAME_SAMPLES * s->dec_clock / MC_AUDIO_RATE_HZ);
    conceal_into_carry(g, s, MC_AUDIO_FRAME_SAMPLES - s->carry_len);
}

/* Refill the carry buffer to at least one frame from the source's queue. */
static void refill(mc_audio_graph *g, source *s)
{
    while (s->carry_len < MC_AUDIO_FRAME_SAMPLES) {
        if (s->q_count == 0) {
            /* nothing queued: conceal this tick without giving up the next
             * slot, so a record that is only late (a stalled sender, network
             * or engine thread) still plays after the concealment: the
             * source's delay grows by one frame instead of a frame being
             * dropped. A slot that never comes is filled from the gap when
             * a later record arrives (enqueue). */
            stretch(g, s);
            return;
        }
        slot *q = &s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % QUEUE_SLOTS;
        s->q_count--;
        s->next_play_seq = (uint16_t)(q->sequence_number + 1);
        if (q->level_flags & MC_RECORD_FLAG_AUDIO_LEVEL) {
            s->ext_age = 0;
            s->ext_level = (uint8_t)((q->level_flags >> MC_RECORD_LEVEL_SHIFT) & 0x7F);
            s->ext_voice = (q->level_flags & MC_RECORD_FLAG_VOICE) != 0;
        }
        if (s->carry_len == 0) {
            s->carry_rtp = q->rtp_timestamp;
            s->carry_arrival_ns = q->arrival_ns;
        }
        if (q->lost) {
            /* look ahead: the next queued payload may carry this frame as FEC */
            slot *next = s->q_count ? &s->queue[s->q_head] : NULL;
            uint32_t recovered = 0;
            if (next && !next->lost && s->dec && (int32_t)next->payload_type == s->dec_pt &&
                mc_audio_decode_fec(s->dec, next->payload, next->length, s->last_samples,
                                    s->carry + s->carry_len, &recovered) == MC_OK) {
                /* recovered, or concealed by the decoder when it carried no FEC */
                s->carry_len += s->last_samples;
                s->frame_flags |= recovered ? MC_AUDIO_FLAG_FEC : MC_AUDIO_FLAG_CONCEALED;
                if (recovered)
                    g->stats.fec_recovered++;
                else
                    g->stats.concealed++;
            } else {
                conceal_into_carry(g, s, s->last_samples);
            }
            continue;
        }
        uint32_t n = 0;
        mc_status st = ensure_decoder(g, s, q->payload_type);
        if (st == MC_OK)
            st = mc_audio_decode(s->dec, q->payload, q->length, s->carry + s->carry_len,
                                 CARRY_MAX - s->carry_len, &n);
        if (st != MC_OK || n == 0) {
            g->stats.decode_errors++;
            conceal_into_carry(g, s, s->last_samples);
            continue;
        }
        s->carry_len += n;
        s->last_samples = n;
        g->stats.decoded++;
    }
}

static void take_frame(mc_audio_graph *g, source *s)
{
    refill(g, s);
    memcpy(s->frame, s->carry, MC_AUDIO_FRAME_SAMPLES * sizeof(int16_t));
    s->frame_rtp = s->carry_rtp;
    s->frame_arrival_ns = s->carry_arrival_ns;
    s->carry_len -= MC_AUDIO_FRAME_SAMPLES;
    memmove(s->carry, s->carry + MC_AUDIO_FRAME_SAMPLES, s->carry_len * sizeof(int16_t));
    s->carry_rtp += (uint32_t)((uint64_t)MC_AUDIO_FRAME_SAMPLES * s->dec_clock / MC_AUDIO_RATE_HZ);
    (void)g;
}

/* ---- per tick ----------------------------------------------------------- */

static int by_loudness(const source *a, const source *b) { return a->smooth_db > b->smooth_db; }

static uint32_t active_list(mc_audio_graph *g, uint32_t *ids)
{
    source *act[MC_AUDIO_GRAPH_MAX_SOURCES];
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->source_count; i++)
        if (g->sources[i]->playing && g->sources[i]->active)
            act[n++] = g->sources[i];
    for (uint32_t i = 1; i < n; i++) /* insertion sort, loudest first (n is small) */
        for (uint32_t j = i; j > 0 && by_loudness(act[j], act[j - 1]); j--) {
            source *t = act[j];
            act[j] = act[j - 1];
            act[j - 1] = t;
        }
    uint32_t k = n < MC_AUDIO_MAX_ACTIVE ? n : MC_AUDIO_MAX_ACTIVE;
    for (uint32_t i = 0; i < k; i++)
        ids[i] = act[i]->ssrc;
    return k;
}

static void update_dominant(mc_audio_graph *g, int64_t now_ns)
{
    source *cur = NULL, *best = NULL;
    for (uint32_t i = 0; i < g->source_count; i++) {
        source *s = g->sources[i];
        if (!s->playing || !s->active)
            continue;
        if (s->ssrc == g->dominant)
            cur = s;
        if (!best || s->smooth_db > best->smooth_db)
            best = s;
    }
    uint32_t next = g->dominant;
    if (!cur)
        next = best ? best->ssrc : 0;
    else if (best && best != cur && best->smooth_db > cur->smooth_db + DOMINANT_MARGIN_DB)
        next = best->ssrc;
    if (next != g->dominant) {
        put_event(g, now_ns, MC_AUDIO_EVENT_DOMINANT_SPEAKER, next, g->dominant, 0, 0);
        g->dominant = next;
        g->stats.dominant_changes++;
    }
}

static void write_frame(mc_audio_graph *g, mc_ring *ring, uint32_t type,
                        const mc_audio_frame_header *h, const int16_t *const *srcs,
                        uint32_t nsrc)
{
    void *p = NULL;
    mc_status st = mc_ring_reserve(ring, FRAME_RECORD, &p);
    if (st != MC_OK || !p) {
        g->stats.output_dropped++;
        return;
    }
    memcpy(p, h, sizeof *h);
    int16_t *pcm = (int16_t *)((uint8_t *)p + MC_AUDIO_FRAME_HEADER_SIZE);
    if (nsrc == 1)
        memcpy(pcm, srcs[0], MC_AUDIO_FRAME_BYTES);
    else
        mc_mix_kernel(srcs, nsrc, MC_AUDIO_FRAME_SAMPLES, pcm);
    /* quiet: the worker wakes the reader once for every graph of its tick */
    mc_ring_commit_quiet(ring, type, FRAME_RECORD);
    g->wake_output = 1;
}

/* The records a new source needs queued before it plays (start_frames, or prebuffer_frames). */
static uint32_t start_threshold(const mc_audio_graph *g)
{
    uint32_t prebuffer = g->cfg.prebuffer_frames ? g->cfg.prebuffer_frames : 2;
    if (prebuffer > QUEUE_SLOTS)
        prebuffer = QUEUE_SLOTS;
    return g->cfg.start_frames && g->cfg.start_frames < prebuffer ? g->cfg.start_frames : prebuffer;
}

/* A staggering worker's other phases, for a graph that has written no frame
 * yet (no source has played, no mix): take in its records, and when one
 * could start, move the graph to this phase, so that the call's first frame
 * waits at most one 2 ms phase for its tick, not up to a whole 20 ms tick.
 * Its output cadence starts there; a send path's packets shift once, by less
 * than a tick (jitter a receiver absorbs). 1 if the graph is to tick now. */
static int starts_here(mc_audio_graph *g, int64_t now_ns, uint32_t phase)
{
    if (g->started || !g->cfg.input || g->cfg.mixed)
        return 0;
    drain_input(g, now_ns);
    uint32_t start = start_threshold(g);
    for (uint32_t i = 0; i < g->source_count; i++)
        if (g->sources[i]->q_count >= start) {
            g->phase = phase;
            return 1;
        }
    return 0;
}

static void receive_tick(mc_audio_graph *g, int64_t now_ns)
{
    int64_t timeout_ns = (int64_t)(g->cfg.source_timeout_ms ? g->cfg.source_timeout_ms : 1000) *
                         1000000;
    int64_t hangover_ns = (int64_t)(g->cfg.hangover_ms ? g->cfg.hangover_ms : 300) * 1000000;
    float threshold = (float)(g->cfg.activity_threshold_dbov ? g->cfg.activity_threshold_dbov
                                                             : -50);
    uint32_t prebuffer = g->cfg.prebuffer_frames ? g->cfg.prebuffer_frames : 2;
    if (prebuffer > QUEUE_SLOTS)
        prebuffer = QUEUE_SLOTS;
    uint32_t start = start_threshold(g);

    drain_input(g, now_ns);

    const int16_t *frames[MC_AUDIO_GRAPH_MAX_SOURCES];
    uint32_t nframes = 0;
    uint16_t mixed_flags = 0;
    for (uint32_t i = 0; i < g->source_count;) {
        source *s = g->sources[i];
        if (now_ns - s->last_record_ns > timeout_ns) {
            remove_source(g, i, now_ns); /* gone: BYE, DTX pause or left the call */
            continue;
        }
        i++;
        if (!s->playing && s->q_count >= start) {
            s->playing = 1;
            g->started = 1;
            s->owed = s->q_count < prebuffer ? prebuffer - s->q_count : 0;
        }
        if (!s->playing)
            continue;
        if (s->debt && s->q_count > prebuffer + SHRINK_MARGIN && !s->active &&
            !s->queue[s->q_head].lost) {
            /* underruns left this source with more delay than its look-ahead:
             * while it is silent, skip one queued frame per tick to take it back */
            s->next_play_seq = (uint16_t)(s->queue[s->q_head].sequence_number + 1);
            s->q_head = (s->q_head + 1) % QUEUE_SLOTS;
            s->q_count--;
            s->debt--;
            g->stats.shrunk++;
        }
        s->frame_flags = 0;
        if (s->ext_age < EXT_LEVEL_HOLD)
            s->ext_age++;
        /* a fast start (start_frames) played the first frame before the
         * look-ahead was there: build it with one stretched frame where that
         * is not heard (the source is silent) or where it pays (the next
         * slot is lost and its FEC rides in the packet after it) */
        if (s->owed && s->played && s->carry_len == 0 && s->q_count < prebuffer &&
            (!s->active || (s->q_count && s->queue[s->q_head].lost)))
            stretch(g, s);
        take_frame(g, s);
        s->played++;
        mc_audio_level_dbov(s->frame, MC_AUDIO_FRAME_SAMPLES, &s->level_db);
        float speech_db = s->level_db;
        int voice = s->level_db > threshold;
        if (s->ext_age < EXT_LEVEL_HOLD) { /* the sender's RFC 6464 level rules activity */
            speech_db = -(float)s->ext_level;
            voice = s->ext_voice || speech_db > threshold;
            g->stats.level_ext_frames++;
        }
        s->smooth_db = s->smooth_db * 0.7f + speech_db * 0.3f;
        if (voice)
            s->active_until_ns = now_ns + hangover_ns;
        s->active = now_ns < s->active_until_ns;
        frames[nframes++] = s->frame;
        mixed_flags |= s->frame_flags;
    }
    update_dominant(g, now_ns);
    g->stats.sources = g->source_count;
    g->stats.dominant_source = g->dominant;

    mc_audio_frame_header h;
    memset(&h, 0, sizeof h);
    h.timestamp_100ns = now_ns / 100;
    h.samples = MC_AUDIO_FRAME_SAMPLES;
    h.tag = g->cfg.tag;
    h.active_count = (uint16_t)active_list(g, h.active_speakers);
    if (g->cfg.mixed) {
        h.sequence = g->mixed_sequence++;
        h.rtp_timestamp = g->mixed_samples;
        h.flags = (uint16_t)(mixed_flags | MC_AUDIO_FLAG_MIXED |
                             (h.active_count ? 0 : MC_AUDIO_FLAG_SILENCE));
        h.level = MC_AUDIO_LEVEL_SILENT; /* the loudest source's level */
        for (uint32_t i = 0; i < g->source_count; i++) {
            float l = -g->sources[i]->level_db + 0.5f;
            uint16_t lv = (uint16_t)(l <= 0.0f ? 0 : l >= 127.0f ? 127 : (int)l);
            if (g->sources[i]->playing && lv < h.level)
                h.level = lv;
        }
        write_frame(g, g->cfg.mixed, MC_RECORD_AUDIO_MIXED, &h, frames, nframes);
        g->stats.mixed_frames++;
    }
    g->mixed_samples += MC_AUDIO_FRAME_SAMPLES;
    if (g->cfg.unmixed) {
        for (uint32_t i = 0; i < g->source_count; i++) {
            source *s = g->sources[i];
            if (!s->playing)
                continue;
            h.sequence = s->sequence++;
            h.source_id = s->ssrc;
            h.rtp_timestamp = s->frame_rtp;
            h.arrival_100ns = s->frame_arrival_ns / 100;
            h.flags = (uint16_t)(s->frame_flags | (s->active ? 0 : MC_AUDIO_FLAG_SILENCE));
            float l = -s->level_db + 0.5f;
            h.level = (uint16_t)(l <= 0.0f ? 0 : l >= 127.0f ? 127 : (int)l);
            const int16_t *one = s->frame;
            write_frame(g, g->cfg.unmixed, MC_RECORD_AUDIO_UNMIXED, &h, &one, 1);
            g->stats.unmixed_frames++;
        }
    }
}

/* ---- send --------------------------------------------------------------- */

static int send_packet(mc_audio_graph *g, uint32_t pt, uint32_t timestamp, uint32_t marker,
                       uint16_t flags, const uint8_t *payload, uint32_t length)
{
    void *p = NULL;
    if (mc_ring_reserve(g->cfg.send_out, MC_SEND_RECORD_SIZE + length, &p) != MC_OK || !p) {
        g->stats.send_dropped++;
        return 0;
    }
    mc_send_record rec;
    rec.timestamp = timestamp;
    rec.marker = (uint8_t)marker;
    rec.payload_type = (uint8_t)pt;
    rec.flags = flags;
    memcpy(p, &rec, sizeof rec);
    memcpy((uint8_t *)p + MC_SEND_RECORD_SIZE, payload, length);
    mc_ring_commit(g->cfg.send_out, MC_RECORD_RTP, MC_SEND_RECORD_SIZE + length);
    return 1;
}

static void set_send_state(mc_audio_graph *g, uint32_t state, int64_t now_ns)
{
    if (g->stats.send_state == state)
        return;
    g->stats.send_state = state;
    put_event(g, now_ns, MC_AUDIO_EVENT_SEND_STATE, 0, state, 0, 0);
}

static void send_tick(mc_audio_graph *g, int64_t now_ns)
{
    int sent = 0;
    uint32_t ts = g->send_timestamp;
    g->send_timestamp += g->send_ticks;
    int16_t pcm[MC_AUDIO_FRAME_SAMPLES];
    uint32_t length = 0, type = 0;
    mc_status st = mc_ring_read(g->cfg.send_pcm, pcm, sizeof pcm, &length, &type);
    int have = st == MC_OK && length == MC_AUDIO_FRAME_BYTES;
    if (st == MC_E_BUFFER) { /* an oversized record: skip it */
        uint32_t one = 0, n = 0, len1 = 0, t1 = 0;
        if (mc_ring_peek(g->cfg.send_pcm, &one, &len1, &t1, 1, &n) == MC_OK && n)
            mc_ring_release(g->cfg.send_pcm, 1);
        g->stats.send_dropped++;
    }
    if (g->cfg.low_water_frames) {
        mc_ring_stats rs;
        mc_ring_get_stats(g->cfg.send_pcm, &rs);
        uint64_t queued = rs.used_bytes / ((MC_AUDIO_FRAME_BYTES + 8 + 7) & ~7u);
        if (queued >= g->cfg.low_water_frames)
            g->low_water_armed = 1;
        else if (g->low_water_armed && have) {
            g->low_water_armed = 0;
            put_event(g, now_ns, MC_AUDIO_EVENT_SEND_LOW_WATER, 0, (uint32_t)queued, 0, 0);
        }
    }
    if (g->dtmf_tx) {
        mc_dtmf_packet pk[MC_DTMF_MAX_PACKETS_PER_TICK];
        uint32_t n = 0, active = 0;
        uint32_t dtmf_ts = ts; /* telephone-event runs on the audio stream's clock */
        if (mc_dtmf_sender_tick(g->dtmf_tx, dtmf_ts, pk, &n, &active) == MC_OK) {
            for (uint32_t i = 0; i < n; i++) {
                sent |= send_packet(g, (uint32_t)g->cfg.send_telephone_event_pt,
                                    pk[i].rtp_timestamp, pk[i].marker, 0, pk[i].payload, 4);
                g->stats.send_dtmf_packets++;
            }
            if (active) { /* tones replace audio for this tick (RFC 4733 §2.5.1.1) */
                g->send_marker = 1;
                if (sent)
                    g->wake_engine = 1;
                return;
            }
        }
    }
    if (have) {
        g->stats.send_frames++;
        set_send_state(g, MC_AUDIO_SEND_ACTIVE, now_ns);
    } else {
        memset(pcm, 0, sizeof pcm);
        g->stats.send_silence++;
        set_send_state(g, MC_AUDIO_SEND_INACTIVE, now_ns);
    }
    /* RFC 6464 level of the PCM sent (the engine writes it when negotiated) */
    uint8_t level = 127;
    if (have)
        mc_audio_level_rfc6464(pcm, MC_AUDIO_FRAME_SAMPLES, &level);
    float threshold = (float)(g->cfg.activity_threshold_dbov ? g->cfg.activity_threshold_dbov
                                                             : -50);
    uint16_t level_flags = (uint16_t)(MC_RECORD_FLAG_AUDIO_LEVEL |
                                      (-(float)level > threshold ? MC_RECORD_FLAG_VOICE : 0) |
                                      ((uint16_t)level << MC_RECORD_LEVEL_SHIFT));
    uint8_t out[MC_OPUS_MAX_PACKET];
    uint32_t n = 0;
    mc_status est = have ? mc_audio_encode(g->enc, pcm, MC_AUDIO_FRAME_SAMPLES, out, sizeof out, &n)
                         : mc_audio_encode_silence(g->enc, MC_AUDIO_FRAME_SAMPLES, out, sizeof out,
                                                   &n);
    if (est == MC_OK) {
        if (g->cfg.send_codec.dtx && n <= 2) {
            g->stats.send_dtx_skipped++;
            g->send_marker = 1;
        } else if (send_packet(g, g->cfg.send_payload_type, ts, (uint32_t)g->send_marker,
                               level_flags, out, n)) {
            g->send_marker = 0;
            g->stats.send_packets++;
            sent = 1;
        }
    }
    if (sent)
        g->wake_engine = 1;
}

static void graph_tick(mc_audio_graph *g, int64_t now_ns)
{
    g->stats.ticks++;
    if (g->cfg.input || g->source_count)
        receive_tick(g, now_ns);
    if (g->enc)
        send_tick(g, now_ns);
}

/* ---- worker ------------------------------------------------------------- */

MC_API mc_status mc_audio_worker_new(uint32_t flags, mc_audio_worker **out)
{
    if (!out)
        return MC_E_INVAL;
    mc_audio_worker *w = (mc_audio_worker *)calloc(1, sizeof *w);
    if (!w)
        return MC_E_NOMEM;
    w->flags = flags;
    mc_mutex_init(&w->lock);
    *out = w;
    return MC_OK;
}

/* The wake-ups of a tick, once its graphs are done: an engine woken per
 * graph, or a reader per frame, would run (and go back to sleep) between the
 * graphs of one tick, each time a syscall and a context switch; now the
 * engine sends every packet of the tick in one pass and the reader takes
 * every frame in one batch. Graphs usually share the engine and the output
 * ring: a pointer already woken in this pass is skipped. */
#define WAKE_SEEN 4
static int woken(void **seen, uint32_t *n, void *p)
{
    for (uint32_t i = 0; i < *n; i++)
        if (seen[i] == p)
            return 1;
    if (*n < WAKE_SEEN)
        seen[(*n)++] = p;
    return 0;
}

static void wake_after_tick(mc_audio_worker *w, int phase)
{
    void *engines[WAKE_SEEN], *rings[WAKE_SEEN];
    uint32_t ne = 0, nr = 0;
    for (mc_audio_graph *g = w->graphs; g; g = g->next) {
        if (phase >= 0 && g->phase != (uint32_t)phase)
            continue;
        if (g->wake_engine) {
            g->wake_engine = 0;
            if (g->cfg.engine && !woken(engines, &ne, g->cfg.engine))
                mc_engine_wake(g->cfg.engine);
        }
        if (g->wake_output) {
            g->wake_output = 0;
            if (g->cfg.mixed && !woken(rings, &nr, g->cfg.mixed))
                mc_ring_wake(g->cfg.mixed);
            if (g->cfg.unmixed && !woken(rings, &nr, g->cfg.unmixed))
                mc_ring_wake(g->cfg.unmixed);
        }
    }
}

/* phase < 0: every graph; otherwise the graphs of that stagger phase. */
static void run_tick(mc_audio_worker *w, int64_t now_ns, int phase)
{
    int64_t t0 = mc_net_thread_cpu_ns();
    mc_mutex_lock(&w->lock);
    for (mc_audio_graph *g = w->graphs; g; g = g->next)
        if (phase < 0 || g->phase == (uint32_t)phase || starts_here(g, now_ns, (uint32_t)phase))
            graph_tick(g, now_ns);
    wake_after_tick(w, phase);
    mc_mutex_unlock(&w->lock);
    if (phase <= 0)
        mc_store_u64_relaxed(&w->ticks, mc_load_u64_relaxed(&w->ticks) + 1);
    mc_store_u64_relaxed(&w->busy_ns, mc_load_u64_relaxed(&w->busy_ns) +
                                          (uint64_t)(mc_net_thread_cpu_ns() - t0));
}

static void worker_main(void *arg)
{
    mc_audio_worker *w = (mc_audio_worker *)arg;
    const int stagger = (w->flags & MC_AUDIO_WORKER_STAGGER) != 0;
    const int64_t step = stagger ? MC_AUDIO_TICK_NS / MC_AUDIO_WORKER_STAGGER_SLOTS
                                 : MC_AUDIO_TICK_NS;
    int phase = 0;
    int64_t next = mc_now_ns();
    while (mc_load_u32_acquire(&w->running)) {
        int64_t now = mc_now_ns();
        if (now < next) {
            mc_sleep_ns(next - now);
            continue;
        }
        if (now - next > MC_AUDIO_TICK_NS)
            mc_store_u64_relaxed(&w->late_ticks, mc_load_u64_relaxed(&w->late_ticks) + 1);
        if (now - next > 250 * (int64_t)MC_AUDIO_TICK_NS) { /* stalled (suspend, debugger) */
            next = now;                                    /* resync */
            phase = 0;
        }
        run_tick(w, next, stagger ? phase : -1);
        next += step; /* absolute deadlines: no drift */
        if (stagger)
            phase = (phase + 1) % MC_AUDIO_WORKER_STAGGER_SLOTS;
    }
}

MC_API mc_status mc_audio_worker_start(mc_audio_worker *w)
{
    if (!w || (w->flags & MC_AUDIO_WORKER_NO_THREAD))
        return MC_E_INVAL;
    if (w->thread_started)
        return MC_E_STATE;
    mc_store_u32_release(&w->running, 1);
    mc_status st = mc_thread_start(&w->thread, worker_main, w);
    if (st != MC_OK) {
        mc_store_u32_release(&w->running, 0);
        return st;
    }
    w->thread_started = 1;
    return MC_OK;
}

MC_API mc_status mc_audio_worker_stop(mc_audio_worker *w)
{
    if (!w)
        return MC_E_INVAL;
    if (!w->thread_started)
        return MC_OK;
    mc_store_u32_release(&w->running, 0); /* release: the thread sees it on its next check */
    mc_thread_join(&w->thread);
    w->thread_started = 0;
    return MC_OK;
}

MC_API void mc_audio_worker_free(mc_audio_worker *w)
{
    if (!w)
        return;
    mc_audio_worker_stop(w);
    while (w->graphs)
        mc_audio_graph_free(w->graphs);
    mc_mutex_destroy(&w->lock);
    free(w);
}

MC_API mc_status mc_audio_worker_tick(mc_audio_worker *w, int64_t now_ns)
{
    if (!w || w->thread_started)
        return w ? MC_E_STATE : MC_E_INVAL;
    run_tick(w, now_ns, -1);
    return MC_OK;
}

MC_API mc_status mc_audio_worker_get_ticks(mc_audio_worker *w, uint64_t *ticks,
                                           uint64_t *late_ticks, int64_t *busy_ns)
{
    if (!w || !ticks || !late_ticks || !busy_ns)
        return MC_E_INVAL;
    *ticks = mc_load_u64_relaxed(&w->ticks);
    *late_ticks = mc_load_u64_relaxed(&w->late_ticks);
    *busy_ns = (int64_t)mc_load_u64_relaxed(&w->busy_ns);
    return MC_OK;
}

/* ---- graphs ------------------------------------------------------------- */

static void graph_destroy(mc_audio_graph *g)
{
    for (uint32_t i = 0; i < g->source_count; i++)
        source_free(g->sources[i]);
    mc_audio_encoder_free(g->enc);
    mc_dtmf_sender_free(g->dtmf_tx);
    free(g);
}

MC_API mc_status mc_audio_graph_new(mc_audio_worker *w, const mc_audio_graph_config *config,
                                    mc_audio_graph **out)
{
    if (!w || !config || !out || config->payload_type_count > MC_AUDIO_GRAPH_MAX_PAYLOAD_TYPES)
        return MC_E_INVAL;
    if (config->send_pcm && (!config->send_out || config->send_payload_type > 127))
        return MC_E_INVAL;
    for (uint32_t i = 0; i < config->payload_type_count; i++) {
        mc_audio_decoder *probe;
        mc_status st = mc_audio_decoder_new(config->payload_types[i].codec,
                                            config->payload_types[i].clock_rate_hz, &probe);
        if (st != MC_OK)
            return st;
        mc_audio_decoder_free(probe);
    }
    mc_audio_graph *g = (mc_audio_graph *)calloc(1, sizeof *g);
    if (!g)
        return MC_E_NOMEM;
    g->worker = w;
    g->cfg = *config;
    g->send_marker = 1;
    if (config->send_pcm) {
        mc_status st = mc_audio_encoder_new(&config->send_codec, &g->enc);
        if (st == MC_OK)
            st = mc_audio_encoder_ticks(g->enc, MC_AUDIO_FRAME_SAMPLES, &g->send_ticks);
        if (st == MC_OK && config->send_telephone_event_pt >= 0) {
            uint32_t clock = g->send_ticks * 50; /* the stream's RTP clock */
            g->dtmf_clock = clock;
            st = mc_dtmf_sender_new(clock, 20, &g->dtmf_tx);
        }
        if (st != MC_OK) {
            graph_destroy(g);
            return st;
        }
        g->cfg.send_codec.clock_rate_hz = g->send_ticks * 50;
    }
    mc_mutex_lock(&w->lock);
    if (w->flags & MC_AUDIO_WORKER_STAGGER)
        g->phase = w->next_phase++ % MC_AUDIO_WORKER_STAGGER_SLOTS;
    g->next = w->graphs;
    w->graphs = g;
    mc_mutex_unlock(&w->lock);
    *out = g;
    return MC_OK;
}

MC_API void mc_audio_graph_free(mc_audio_graph *g)
{
    if (!g)
        return;
    mc_audio_worker *w = g->worker;
    mc_mutex_lock(&w->lock);
    for (mc_audio_graph **pp = &w->graphs; *pp; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    mc_mutex_unlock(&w->lock);
    graph_destroy(g);
}

MC_API mc_status mc_audio_graph_send_dtmf(mc_audio_graph *g, const char *tones, uint32_t tone_ms,
                                          uint32_t gap_ms, uint32_t volume)
{
    if (!g || !tones)
        return MC_E_INVAL;
    if (!g->dtmf_tx)
        return MC_E_STATE;
    mc_mutex_lock(&g->worker->lock);
    mc_status st = mc_dtmf_sender_start(g->dtmf_tx, tones, tone_ms, gap_ms, volume);
    mc_mutex_unlock(&g->worker->lock);
    return st;
}

MC_API mc_status mc_audio_graph_get_stats(mc_audio_graph *g, mc_audio_graph_stats *out)
{
    if (!g || !out)
        return MC_E_INVAL;
    mc_mutex_lock(&g->worker->lock);
    *out = g->stats;
    mc_mutex_unlock(&g->worker->lock);
    return MC_OK;
}

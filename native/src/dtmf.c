/*
 * dtmf.c — DTMF as RFC 4733 telephone events: payload parse/build, a
 * receiver that turns the packet stream of each event into one "started"
 * and one "ended" digit, and a sender that schedules a tone string.
 *
 * One event is a series of packets with the same RTP timestamp (the event's
 * start) and growing duration; the last one has the E bit and is sent three
 * times (§2.5.1.4). A new event gets a new timestamp (§2.5.1.2).
 */
#include <stdlib.h>
#include <string.h>

#include "audio_internal.h"

static const char dtmf_chars[] = "0123456789*#ABCD";

MC_API mc_status mc_dtmf_parse(const uint8_t *payload, uint32_t length, mc_dtmf_event *out)
{
    if (!out || (!payload && length))
        return MC_E_INVAL;
    if (length < MC_DTMF_PAYLOAD_BYTES)
        return MC_E_MALFORMED;
    out->event = payload[0];
    out->end = (uint8_t)(payload[1] >> 7);
    out->volume = (uint8_t)(payload[1] & 0x3F); /* R bit (0x40) ignored by receivers */
    out->duration = (uint16_t)((payload[2] << 8) | payload[3]);
    return MC_OK;
}

MC_API mc_status mc_dtmf_build(const mc_dtmf_event *event, uint8_t *out, uint32_t out_size)
{
    if (!event || !out || event->volume > 63)
        return MC_E_INVAL;
    if (out_size < MC_DTMF_PAYLOAD_BYTES)
        return MC_E_BUFFER;
    out[0] = event->event;
    out[1] = (uint8_t)((event->end ? 0x80 : 0) | event->volume);
    out[2] = (uint8_t)(event->duration >> 8);
    out[3] = (uint8_t)event->duration;
    return MC_OK;
}

MC_API mc_status mc_dtmf_event_for_char(uint32_t ch, uint32_t *event)
{
    if (!event)
        return MC_E_INVAL;
    if (ch >= 'a' && ch <= 'd')
        ch -= 'a' - 'A';
    for (uint32_t i = 0; i < 16; i++)
        if ((uint32_t)(uint8_t)dtmf_chars[i] == ch) {
            *event = i;
            return MC_OK;
        }
    return MC_E_INVAL;
}

MC_API mc_status mc_dtmf_char_for_event(uint32_t event, uint32_t *ch)
{
    if (!ch)
        return MC_E_INVAL;
    if (event >= 16) {
        *ch = '?';
        return MC_E_NOT_FOUND;
    }
    *ch = (uint8_t)dtmf_chars[event];
    return MC_OK;
}

/* ---- receiver ----------------------------------------------------------- */

struct mc_dtmf_receiver {
    int have;                 /* an event has been seen */
    int ended;                /* ... and its end was reported */
    uint32_t timestamp;
    mc_dtmf_event current;
    mc_dtmf_receiver_stats stats;
};

MC_API mc_status mc_dtmf_receiver_new(mc_dtmf_receiver **out)
{
    if (!out)
        return MC_E_INVAL;
    *out = (mc_dtmf_receiver *)calloc(1, sizeof **out);
    return *out ? MC_OK : MC_E_NOMEM;
}

MC_API void mc_dtmf_receiver_free(mc_dtmf_receiver *rx) { free(rx); }

static void digit_of(const mc_dtmf_receiver *rx, uint32_t end, mc_dtmf_digit *d)
{
    uint32_t ch = '?';
    mc_dtmf_char_for_event(rx->current.event, &ch);
    d->digit = ch;
    d->event = rx->current.event;
    d->end = end;
    d->duration_ticks = rx->current.duration;
    d->rtp_timestamp = rx->timestamp;
    d->volume = rx->current.volume;
}

static void end_current(mc_dtmf_receiver *rx, mc_dtmf_digit *out, uint32_t *count)
{
    rx->ended = 1;
    rx->stats.digits++;
    digit_of(rx, 1, &out[(*count)++]);
}

MC_API mc_status mc_dtmf_receiver_push(mc_dtmf_receiver *rx, const uint8_t *payload,
                                       uint32_t length, uint32_t rtp_timestamp, uint32_t marker,
                                       mc_dtmf_digit *out, uint32_t *count)
{
    mc_dtmf_event ev;
    if (!rx || !out || !count)
        return MC_E_INVAL;
    *count = 0;
    mc_status st = mc_dtmf_parse(payload, length, &ev);
    if (st != MC_OK) {
        rx->stats.malformed++;
        return st;
    }
    rx->stats.packets++;
    (void)marker; /* a lost first packet must not lose the digit: the timestamp decides */
    if (rx->have && rtp_timestamp == rx->timestamp && ev.event == rx->current.event) {
        if (rx->ended || (!ev.end && ev.duration <= rx->current.duration)) {
            rx->stats.duplicates++; /* redundant end, or a stale/duplicated update */
            return MC_OK;
        }
        if (ev.duration > rx->current.duration)
            rx->current.duration = ev.duration;
        if (ev.end)
            end_current(rx, out, count);
        return MC_OK;
    }
    if (rx->have && (int32_t)(rtp_timestamp - rx->timestamp) < 0) {
        rx->stats.duplicates++; /* a late packet of an older event */
        return MC_OK;
    }
    if (rx->have && !rx->ended)
        end_current(rx, out, count); /* its end packets were all lost */
    rx->have = 1;
    rx->ended = 0;
    rx->timestamp = rtp_timestamp;
    rx->current = ev;
    digit_of(rx, 0, &out[(*count)++]);
    if (ev.end)
        end_current(rx, out, count);
    return MC_OK;
}

MC_API mc_status mc_dtmf_receiver_flush(mc_dtmf_receiver *rx, mc_dtmf_digit *out,
                                        uint32_t *count)
{
    if (!rx || !out || !count)
        return MC_E_INVAL;
    *count = 0;
    if (rx->have && !rx->ended)
        end_current(rx, out, count);
    return MC_OK;
}

MC_API mc_status mc_dtmf_receiver_get_stats(mc_dtmf_receiver *rx, mc_dtmf_receiver_stats *out)
{
    if (!rx || !out)
        return MC_E_INVAL;
    *out = rx->stats;
    return MC_OK;
}

/* ---- sender ------------------------------------------------------------- */

#define DTMF_MAX_TONES 256

struct mc_dtmf_sender {
    uint32_t clock_rate_hz;
    uint32_t packet_ticks;
    uint32_t packet_ms;
    uint8_t events[DTMF_MAX_TONES];
    uint32_t tone_count;
    uint32_t next_tone;        /* index of the tone being sent or next */
    uint32_t tone_packets;     /* packets per tone */
    uint32_t gap_packets;
    uint32_t volume;
    /* state of the tone in flight */
    int in_tone;
    uint32_t sent;             /* packets of the current tone so far */
    uint32_t gap_left;
    uint32_t event_timestamp;
    /* end retransmissions of the previous tone */
    uint32_t retx_left;
    uint8_t retx_payload[4];
    uint32_t retx_timestamp;
};

MC_API mc_status mc_dtmf_sender_new(uint32_t clock_rate_hz, uint32_t packet_ms,
                                    mc_dtmf_sender **out)
{
    if (!out || clock_rate_hz < 8000 || clock_rate_hz > 48000 || packet_ms < 5 || packet_ms > 100)
        return MC_E_INVAL;
    mc_dtmf_sender *tx = (mc_dtmf_sender *)calloc(1, sizeof *tx);
    if (!tx)
        return MC_E_NOMEM;
    tx->clock_rate_hz = clock_rate_hz;
    tx->packet_ms = packet_ms;
    tx->packet_ticks = clock_rate_hz / 1000 * packet_ms;
    *out = tx;
    return MC_OK;
}

MC_API void mc_dtmf_sender_free(mc_dtmf_sender *tx) { free(tx); }

static int sender_idle(const mc_dtmf_sender *tx)
{
    return tx->next_tone >= tx->tone_count && !tx->in_tone && tx->gap_left == 0 &&
           tx->retx_left == 0;
}

MC_API mc_status mc_dtmf_sender_idle(mc_dtmf_sender *tx, uint32_t *idle)
{
    if (!tx || !idle)
        return MC_E_INVAL;
    *idle = (uint32_t)sender_idle(tx);
    return MC_OK;
}

MC_API mc_status mc_dtmf_sender_start(mc_dtmf_sender *tx, const char *tones, uint32_t tone_ms,
                                      uint32_t gap_ms, uint32_t volume)
{
    if (!tx || !tones || volume > 63 || tone_ms < tx->packet_ms || gap_ms > 60000)
        return MC_E_INVAL;
    if (!sender_idle(tx))
        return MC_E_STATE;
    size_t n = strlen(tones);
    if (n == 0 || n > DTMF_MAX_TONES)
        return MC_E_INVAL;
    uint8_t events[DTMF_MAX_TONES];
    for (size_t i = 0; i < n; i++) {
        uint32_t ev;
        if (mc_dtmf_event_for_char((uint8_t)tones[i], &ev) != MC_OK)
            return MC_E_INVAL;
        events[i] = (uint8_t)ev;
    }
    uint32_t packets = (tone_ms + tx->packet_ms - 1) / tx->packet_ms;
    uint32_t max_packets = 65535u / tx->packet_ticks; /* the 16-bit duration field */
    memcpy(tx->events, events, n);
    tx->tone_count = (uint32_t)n;
    tx->next_tone = 0;
    tx->tone_packets = packets < max_packets ? packets : max_packets;
    tx->gap_packets = (gap_ms + tx->packet_ms - 1) / tx->packet_ms;
    tx->volume = volume;
    tx->in_tone = 0;
    tx->gap_left = 0;
    return MC_OK;
}

static void put(mc_dtmf_packet *p, const uint8_t payload[4], uint32_t ts, uint32_t marker)
{
    memcpy(p->payload, payload, 4);
    p->rtp_timestamp = ts;
    p->marker = marker;
}

MC_API mc_status mc_dtmf_sender_tick(mc_dtmf_sender *tx, uint32_t rtp_timestamp,
                                     mc_dtmf_packet *out, uint32_t *count, uint32_t *active)
{
    if (!tx || !out || !count || !active)
        return MC_E_INVAL;
    *count = 0;
    *active = 0;
    if (tx->retx_left) {
        put(&out[(*count)++], tx->retx_payload, tx->retx_timestamp, 0);
        tx->retx_left--;
    }
    if (!tx->in_tone) {
        if (tx->gap_left) {
            tx->gap_left--;
            return MC_OK;
        }
        if (tx->next_tone >= tx->tone_count)
            return MC_OK;
        tx->in_tone = 1;
        tx->sent = 0;
        tx->event_timestamp = rtp_timestamp;
    }
    *active = 1;
    tx->sent++;
    mc_dtmf_event ev;
    ev.event = tx->events[tx->next_tone];
    ev.end = (uint8_t)(tx->sent >= tx->tone_packets);
    ev.volume = (uint8_t)tx->volume;
    ev.duration = (uint16_t)(tx->sent * tx->packet_ticks);
    uint8_t payload[4];
    mc_dtmf_build(&ev, payload, sizeof payload);
    put(&out[(*count)++], payload, tx->event_timestamp, tx->sent == 1);
    if (ev.end) {
        memcpy(tx->retx_payload, payload, 4);
        tx->retx_timestamp = tx->event_timestamp;
        tx->retx_left = 2;
        tx->in_tone = 0;
        tx->next_tone++;
        tx->gap_left = tx->gap_packets;
    }
    return MC_OK;
}

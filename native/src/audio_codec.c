/*
 * audio_codec.c — one decoder/encoder interface over Opus, G.711 and L16,
 * always to and from the 16 kHz mono media format.
 *
 * Concealment: Opus uses libopus PLC. G.711 and L16 use packet-loss
 * concealment in the style of ITU-T G.711 Appendix I, on the 16 kHz output:
 * at the start of an erasure the pitch period (5..15 ms) is found by
 * normalised cross-correlation over the last 20 ms of history (coarse
 * search in steps of 2, then refined), and the last pitch period is
 * repeated, its last quarter overlap-added with the quarter period before
 * it so that the repetition joins smoothly; from 10 ms into the erasure the
 * gain falls 20 % per 10 ms (silence after 60 ms); the first good frame
 * after an erasure is overlap-added with the continued synthetic signal
 * over 4 ms + 1 ms per 10 ms of erasure (at most 10 ms). Simplifications
 * against Appendix I: no 3.75 ms output delay (the overlap at the start of
 * the erasure is folded into the repeated period instead of reworking
 * samples already output), and one pitch period is repeated throughout
 * (Appendix I widens to two and three periods after 10 and 20 ms).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio_internal.h"
#include "opus_codec.h"

#define HIST 800         /* history kept for pitch analysis: 50 ms at 16 kHz */
#define PITCH_MIN 80     /* 5 ms */
#define PITCH_MAX 240    /* 15 ms */
#define CORR_LEN 320     /* 20 ms correlation window */
#define ATTEN_START 160  /* full gain for the first 10 ms of an erasure */
#define ATTEN_STEP 160   /* then -20 % per 10 ms: silent after 60 ms */

struct mc_audio_decoder {
    uint32_t codec;
    uint32_t clock_rate_hz;
    struct OpusDecoder *opus;
    mc_resampler *up;                 /* 8 kHz payloads */
    int16_t hist[HIST];               /* last output samples (G.711 / L16), oldest first */
    uint32_t hist_len;
    uint32_t conceal_run;             /* consecutive concealments */
    /* G.711 / L16 concealment state (valid while erased > 0) */
    int16_t period[PITCH_MAX];        /* one pitch period, its end blended into its start */
    uint32_t pitch;
    uint32_t pos;                     /* next sample of `period` to play */
    uint32_t erased;                  /* samples concealed in this erasure */
    mc_audio_decoder_stats stats;
};

struct mc_audio_encoder {
    mc_audio_encoder_config config;
    struct OpusEncoder *opus;
    mc_resampler *down;
    int idle; /* idle send path: silence goes out canned; reset the encoder before its next frame */
};

/* One 20 ms Opus frame of digital silence: TOC config 31 (CELT-only,
 * fullband, 20 ms, mono, one frame) and the two bytes of a CELT frame with
 * its silence flag set (RFC 6716 4.3: a decoder outputs zeros). */
static const uint8_t OPUS_SILENCE_20MS[3] = {0xF8, 0xFF, 0xFE};

static uint32_t default_clock(uint32_t codec)
{
    switch (codec) {
    case MC_CODEC_OPUS:
        return 48000;
    case MC_CODEC_PCMU:
    case MC_CODEC_PCMA:
        return 8000;
    case MC_CODEC_L16:
        return 16000;
    default:
        return 0;
    }
}

static mc_status check_clock(uint32_t codec, uint32_t *clock)
{
    if (default_clock(codec) == 0)
        return MC_E_UNSUPPORTED;
    if (*clock == 0)
        *clock = default_clock(codec);
    if (codec == MC_CODEC_L16)
        return (*clock == 8000 || *clock == 16000) ? MC_OK : MC_E_UNSUPPORTED;
    return *clock == default_clock(codec) ? MC_OK : MC_E_UNSUPPORTED;
}

MC_API mc_status mc_audio_decoder_new(uint32_t codec, uint32_t clock_rate_hz,
                                      mc_audio_decoder **out)
{
    if (!out)
        return MC_E_INVAL;
    mc_status st = check_clock(codec, &clock_rate_hz);
    if (st != MC_OK)
        return st;
    mc_audio_decoder *dec = (mc_audio_decoder *)calloc(1, sizeof *dec);
    if (!dec)
        return MC_E_NOMEM;
    dec->codec = codec;
    dec->clock_rate_hz = clock_rate_hz;
    if (codec == MC_CODEC_OPUS)
        st = mc_opus_decoder_create(&dec->opus);
    else if (clock_rate_hz == 8000)
        st = mc_resampler_new(MC_RESAMPLE_UP_8K_16K, &dec->up);
    if (st != MC_OK) {
        free(dec);
        return st;
    }
    *out = dec;
    return MC_OK;
}

MC_API void mc_audio_decoder_free(mc_audio_decoder *dec)
{
    if (!dec)
        return;
    mc_opus_decoder_destroy(dec->opus);
    mc_resampler_free(dec->up);
    free(dec);
}

/* Append output samples to the history (G.711 / L16 only). */
static void push_history(mc_audio_decoder *dec, const int16_t *pcm, uint32_t n)
{
    if (dec->codec == MC_CODEC_OPUS)
        return;
    if (n >= HIST) {
        memcpy(dec->hist, pcm + (n - HIST), HIST * sizeof(int16_t));
        dec->hist_len = HIST;
        return;
    }
    uint32_t keep = dec->hist_len + n > HIST ? HIST - n : dec->hist_len;
    memmove(dec->hist, dec->hist + (dec->hist_len - keep), keep * sizeof(int16_t));
    memcpy(dec->hist + keep, pcm, n * sizeof(int16_t));
    dec->hist_len = keep + n;
}

/* Normalised cross-correlation of the last CORR_LEN samples with the same
 * span `lag` samples earlier (scaled; only compared with each other). */
static double pitch_score(const int16_t *h, uint32_t len, uint32_t lag)
{
    const int16_t *x = h + len - CORR_LEN, *y = x - lag;
    double xy = 0.0, yy = 0.0;
    for (uint32_t i = 0; i < CORR_LEN; i++) {
        xy += (double)x[i] * (double)y[i];
        yy += (double)y[i] * (double)y[i];
    }
    return yy > 0.0 ? xy / sqrt(yy) : 0.0;
}

static uint32_t find_pitch(const mc_audio_decoder *dec)
{
    uint32_t best = PITCH_MAX;
    double best_score = -1e300;
    for (uint32_t lag = PITCH_MIN; lag <= PITCH_MAX; lag += 2) {
        double c = pitch_score(dec->hist, dec->hist_len, lag);
        if (c > best_score) {
            best_score = c;
            best = lag;
        }
    }
    uint32_t coarse = best;
    for (uint32_t lag = coarse - 1; lag <= coarse + 1; lag += 2) {
        if (lag < PITCH_MIN || lag > PITCH_MAX)
            continue;
        double c = pitch_score(dec->hist, dec->hist_len, lag);
        if (c > best_score) {
            best_score = c;
            best = lag;
        }
    }
    return best;
}

/* Start of an erasure: pick the pitch and build the period to repeat. */
static void plc_start(mc_audio_decoder *dec)
{
    dec->erased = 0;
    dec->pos = 0;
    if (dec->hist_len < CORR_LEN + PITCH_MAX + PITCH_MAX / 4) {
        dec->pitch = 0; /* too little history: conceal with silence */
        return;
    }
    uint32_t p = find_pitch(dec);
    const int16_t *end = dec->hist + dec->hist_len;
    memcpy(dec->period, end - p, p * sizeof(int16_t));
    /* the period's last quarter fades into the quarter before it, so the
     * wrap from its end to its start continues the signal */
    uint32_t ov = p / 4;
    for (uint32_t j = 0; j < ov; j++) {
        float w = ((float)j + 0.5f) / (float)ov;
        dec->period[p - ov + j] =
            mc_sat16f((1.0f - w) * (float)end[-(int32_t)ov + (int32_t)j] +
                      w * (float)end[-(int32_t)(p + ov) + (int32_t)j]);
    }
    dec->pitch = p;
}

static float plc_gain(uint32_t erased)
{
    if (erased < ATTEN_START)
        return 1.0f;
    float g = 1.0f - 0.2f * (float)(erased - ATTEN_START) / (float)ATTEN_STEP;
    return g > 0.0f ? g : 0.0f;
}

/* The next `samples` of the synthetic signal. */
static void plc_synth(mc_audio_decoder *dec, uint32_t samples, int16_t *out)
{
    for (uint32_t i = 0; i < samples; i++) {
        if (!dec->pitch) {
            out[i] = 0;
            continue;
        }
        out[i] = mc_sat16f(plc_gain(dec->erased + i) * (float)dec->period[dec->pos]);
        if (++dec->pos == dec->pitch)
            dec->pos = 0;
    }
}

/* A good frame after an erasure: fade from the synthetic signal into it
 * over 4 ms + 1 ms per 10 ms erased (at most 10 ms). */
static void plc_end(mc_audio_decoder *dec, int16_t *pcm, uint32_t n)
{
    uint32_t ola = 64 + 16 * (dec->erased / 160);
    if (ola > 160)
        ola = 160;
    if (ola > n)
        ola = n;
    int16_t synth[160];
    plc_synth(dec, ola, synth);
    for (uint32_t i = 0; i < ola; i++) {
        float w = ((float)i + 0.5f) / (float)ola;
        pcm[i] = mc_sat16f(w * (float)pcm[i] + (1.0f - w) * (float)synth[i]);
    }
}

static void remember(mc_audio_decoder *dec, int16_t *pcm, uint32_t n)
{
    if (dec->codec != MC_CODEC_OPUS && dec->conceal_run > 0)
        plc_end(dec, pcm, n);
    push_history(dec, pcm, n);
    dec->conceal_run = 0;
}

MC_API mc_status mc_audio_payload_samples(mc_audio_decoder *dec, const uint8_t *payload,
                                          uint32_t length, uint32_t *samples)
{
    if (!dec || !samples)
        return MC_E_INVAL;
    if (length > MC_AUDIO_MAX_PAYLOAD)
        return MC_E_TOO_LARGE;
    switch (dec->codec) {
    case MC_CODEC_OPUS:
        return mc_opus_packet_samples_16k(payload, length, samples);
    case MC_CODEC_PCMU:
    case MC_CODEC_PCMA:
        *samples = 2 * length;
        return MC_OK;
    default: /* L16 */
        if (length & 1)
            return MC_E_MALFORMED;
        *samples = dec->clock_rate_hz == 8000 ? length : length / 2;
        return MC_OK;
    }
}

static mc_status decode(mc_audio_decoder *dec, const uint8_t *payload, uint32_t length,
                        int16_t *pcm, uint32_t max_samples, uint32_t *samples)
{
    uint32_t n = 0;
    mc_status st = mc_audio_payload_samples(dec, payload, length, &n);
    if (st != MC_OK)
        return st;
    if (n > MC_AUDIO_MAX_FRAME_SAMPLES)
        return MC_E_TOO_LARGE;
    if (n > max_samples)
        return MC_E_BUFFER;
    if (dec->codec == MC_CODEC_OPUS)
        return mc_opus_decode_packet(dec->opus, payload, length, pcm, max_samples, samples);
    int16_t narrow[MC_AUDIO_MAX_FRAME_SAMPLES];
    int16_t *lin = dec->up ? narrow : pcm;
    uint32_t in_samples = dec->codec == MC_CODEC_L16 ? length / 2 : length;
    if (dec->codec == MC_CODEC_L16) {
        for (uint32_t i = 0; i < in_samples; i++)
            lin[i] = (int16_t)(uint16_t)((payload[2 * i] << 8) | payload[2 * i + 1]);
    } else {
        mc_g711_decode(dec->codec, payload, in_samples, lin);
    }
    if (dec->up)
        return mc_resample(dec->up, narrow, in_samples, pcm, max_samples, samples);
    *samples = in_samples;
    return MC_OK;
}

MC_API mc_status mc_audio_decode(mc_audio_decoder *dec, const uint8_t *payload, uint32_t length,
                                 int16_t *pcm, uint32_t max_samples, uint32_t *samples)
{
    if (!dec || !pcm || !samples || (!payload && length))
        return MC_E_INVAL;
    mc_status st = decode(dec, payload, length, pcm, max_samples, samples);
    if (st != MC_OK) {
        if (st != MC_E_BUFFER && st != MC_E_INVAL)
            dec->stats.errors++;
        return st;
    }
    remember(dec, pcm, *samples);
    dec->stats.frames++;
    dec->stats.samples_out += *samples;
    return MC_OK;
}

static void pitch_repeat(mc_audio_decoder *dec, uint32_t samples, int16_t *pcm)
{
    if (dec->conceal_run == 0)
        plc_start(dec);
    plc_synth(dec, samples, pcm);
    dec->erased += samples;
    push_history(dec, pcm, samples);
}

MC_API mc_status mc_audio_decode_conceal(mc_audio_decoder *dec, uint32_t samples, int16_t *pcm)
{
    if (!dec || !pcm || samples == 0 || samples > MC_AUDIO_MAX_FRAME_SAMPLES)
        return MC_E_INVAL;
    if (dec->codec == MC_CODEC_OPUS) {
        mc_status st = mc_opus_conceal(dec->opus, samples, pcm);
        if (st != MC_OK)
            return st;
    } else {
        pitch_repeat(dec, samples, pcm);
    }
    dec->conceal_run++;
    dec->stats.concealed++;
    dec->stats.samples_out += samples;
    return MC_OK;
}

MC_API mc_status mc_audio_decode_fec(mc_audio_decoder *dec, const uint8_t *next_payload,
                                     uint32_t length, uint32_t samples, int16_t *pcm,
                                     uint32_t *recovered)
{
    if (!dec || !pcm || !recovered || samples == 0 || samples > MC_AUDIO_MAX_FRAME_SAMPLES ||
        (!next_payload && length))
        return MC_E_INVAL;
    *recovered = 0;
    if (dec->codec != MC_CODEC_OPUS)
        return mc_audio_decode_conceal(dec, samples, pcm);
    mc_status st = mc_opus_decode_fec_from(dec->opus, next_payload, length, samples, pcm, recovered);
    if (st != MC_OK)
        return st;
    if (*recovered)
        dec->stats.fec_recovered++;
    else
        dec->stats.concealed++;
    dec->stats.samples_out += samples;
    return MC_OK;
}

MC_API mc_status mc_audio_decoder_get_stats(mc_audio_decoder *dec, mc_audio_decoder_stats *out)
{
    if (!dec || !out)
        return MC_E_INVAL;
    *out = dec->stats;
    return MC_OK;
}

/* ---- encoder ------------------------------------------------------------ */

MC_API mc_status mc_audio_encoder_new(const mc_audio_encoder_config *config,
                                      mc_audio_encoder **out)
{
    if (!config || !out)
        return MC_E_INVAL;
    mc_audio_encoder_config c = *config;
    mc_status st = check_clock(c.codec, &c.clock_rate_hz);
    if (st != MC_OK)
        return st;
    mc_audio_encoder *enc = (mc_audio_encoder *)calloc(1, sizeof *enc);
    if (!enc)
        return MC_E_NOMEM;
    enc->config = c;
    if (c.codec == MC_CODEC_OPUS)
        st = mc_opus_encoder_create(&c, &enc->opus);
    else if (c.clock_rate_hz == 8000)
        st = mc_resampler_new(MC_RESAMPLE_DOWN_16K_8K, &enc->down);
    if (st != MC_OK) {
        free(enc);
        return st;
    }
    *out = enc;
    return MC_OK;
}

MC_API mc_status mc_audio_encoder_configure(mc_audio_encoder *enc,
                                            const mc_audio_encoder_config *config)
{
    if (!enc || !config)
        return MC_E_INVAL;
    if (config->codec != enc->config.codec)
        return MC_E_STATE;
    if (enc->opus) {
        mc_status st = mc_opus_encoder_apply(enc->opus, config);
        if (st != MC_OK)
            return st;
    }
    uint32_t clock = enc->config.clock_rate_hz;
    enc->config = *config;
    enc->config.clock_rate_hz = clock;
    return MC_OK;
}

MC_API void mc_audio_encoder_free(mc_audio_encoder *enc)
{
    if (!enc)
        return;
    mc_opus_encoder_destroy(enc->opus);
    mc_resampler_free(enc->down);
    free(enc);
}

MC_API mc_status mc_audio_encoder_ticks(mc_audio_encoder *enc, uint32_t samples, uint32_t *ticks)
{
    if (!enc || !ticks)
        return MC_E_INVAL;
    *ticks = (uint32_t)((uint64_t)samples * enc->config.clock_rate_hz / MC_AUDIO_RATE_HZ);
    return MC_OK;
}

mc_status mc_audio_encode_silence(mc_audio_encoder *enc, uint32_t samples, uint8_t *out,
                                  uint32_t out_size, uint32_t *length)
{
    if (!enc || !out || !length)
        return MC_E_INVAL;
    if (enc->opus && samples == MC_AUDIO_FRAME_SAMPLES && !enc->config.dtx && enc->idle) {
        if (out_size < sizeof OPUS_SILENCE_20MS)
            return MC_E_BUFFER;
        memcpy(out, OPUS_SILENCE_20MS, sizeof OPUS_SILENCE_20MS);
        *length = sizeof OPUS_SILENCE_20MS;
        enc->idle = 1;
        return MC_OK;
    }
    int16_t zeros[MC_AUDIO_MAX_FRAME_SAMPLES];
    if (samples == 0 || samples > MC_AUDIO_MAX_FRAME_SAMPLES)
        return MC_E_INVAL;
    memset(zeros, 0, samples * sizeof(int16_t));
    mc_status st = mc_audio_encode(enc, zeros, samples, out, out_size, length);
    /* the first silent frame is the encoder's own: it carries the end of the
     * last PCM out of the encoder's look-ahead; canned frames follow */
    if (st == MC_OK && enc->opus && samples == MC_AUDIO_FRAME_SAMPLES && !enc->config.dtx)
        enc->idle = 1;
    return st;
}

MC_API mc_status mc_audio_encode(mc_audio_encoder *enc, const int16_t *pcm, uint32_t samples,
                                 uint8_t *out, uint32_t out_size, uint32_t *length)
{
    if (!enc || !pcm || !out || !length || samples == 0 || samples > MC_AUDIO_MAX_FRAME_SAMPLES)
        return MC_E_INVAL;
    if (enc->opus) {
        if (enc->idle) {
            /* its look-ahead still holds what preceded the pause: not to be replayed */
            enc->idle = 0;
            mc_status st = mc_opus_encoder_reset(enc->opus);
            if (st != MC_OK)
                return st;
        }
        return mc_opus_encode_frame(enc->opus, pcm, samples, out, out_size, length);
    }
    const int16_t *lin = pcm;
    int16_t narrow[MC_AUDIO_MAX_FRAME_SAMPLES / 2];
    uint32_t n = samples;
    if (enc->down) {
        if (samples & 1)
            return MC_E_INVAL;
        mc_status st = mc_resample(enc->down, pcm, samples, narrow, samples / 2, &n);
        if (st != MC_OK)
            return st;
        lin = narrow;
    }
    if (enc->config.codec == MC_CODEC_L16) {
        if (out_size < 2 * n)
            return MC_E_BUFFER;
        for (uint32_t i = 0; i < n; i++) {
            uint16_t v = (uint16_t)lin[i];
            out[2 * i] = (uint8_t)(v >> 8);
            out[2 * i + 1] = (uint8_t)v;
        }
        *length = 2 * n;
        return MC_OK;
    }
    if (out_size < n)
        return MC_E_BUFFER;
    mc_g711_encode(enc->config.codec, lin, n, out);
    *length = n;
    return MC_OK;
}

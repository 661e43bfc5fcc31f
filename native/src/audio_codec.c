/*
 * audio_codec.c — one decoder/encoder interface over Opus, G.711 and L16,
 * always to and from the 16 kHz mono media format.
 *
 * Concealment: Opus uses libopus PLC; G.711 and L16 repeat the last decoded
 * frame with a gain ramp to silence over 40 ms (a simple stand-in for
 * G.711 Appendix I, enough to avoid clicks on a single loss).
 */
#include <stdlib.h>
#include <string.h>

#include "audio_internal.h"
#include "opus_codec.h"

#define LAST_MAX MC_AUDIO_FRAME_SAMPLES

struct mc_audio_decoder {
    uint32_t codec;
    uint32_t clock_rate_hz;
    struct OpusDecoder *opus;
    mc_resampler *up;                 /* 8 kHz payloads */
    int16_t last[LAST_MAX];           /* last decoded samples, for concealment */
    uint32_t last_len;
    uint32_t conceal_run;             /* consecutive concealments */
    mc_audio_decoder_stats stats;
};

struct mc_audio_encoder {
    mc_audio_encoder_config config;
    struct OpusEncoder *opus;
    mc_resampler *down;
};

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

static void remember(mc_audio_decoder *dec, const int16_t *pcm, uint32_t n)
{
    uint32_t keep = n < LAST_MAX ? n : LAST_MAX;
    memcpy(dec->last, pcm + (n - keep), keep * sizeof(int16_t));
    dec->last_len = keep;
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

static void fade_repeat(mc_audio_decoder *dec, uint32_t samples, int16_t *pcm)
{
    /* gain ramps from g0 to g1 over this call; 20 ms steps of -0.5 */
    float g0 = 1.0f - 0.5f * (float)dec->conceal_run;
    float g1 = g0 - 0.5f * (float)samples / (float)MC_AUDIO_FRAME_SAMPLES;
    if (g0 < 0.0f)
        g0 = 0.0f;
    if (g1 < 0.0f)
        g1 = 0.0f;
    for (uint32_t i = 0; i < samples; i++) {
        float g = g0 + (g1 - g0) * (float)i / (float)samples;
        int16_t v = dec->last_len ? dec->last[i % dec->last_len] : 0;
        pcm[i] = mc_sat16f(g * (float)v);
    }
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
        fade_repeat(dec, samples, pcm);
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

MC_API mc_status mc_audio_encode(mc_audio_encoder *enc, const int16_t *pcm, uint32_t samples,
                                 uint8_t *out, uint32_t out_size, uint32_t *length)
{
    if (!enc || !pcm || !out || !length || samples == 0 || samples > MC_AUDIO_MAX_FRAME_SAMPLES)
        return MC_E_INVAL;
    if (enc->opus)
        return mc_opus_encode_frame(enc->opus, pcm, samples, out, out_size, length);
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

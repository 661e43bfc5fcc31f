/*
 * opus_codec.c — Opus (RFC 6716, RTP payload RFC 7587) through libopus.
 *
 * Decoding goes straight to 16 kHz mono: libopus decodes any Opus stream at
 * any of its output rates, so the receive path has no resampler (the PyAV
 * path decodes at 48 kHz and resamples: ~25 µs per 20 ms frame for PyAV's
 * AudioResampler alone, measured on the development VM).
 * Loss handling: concealment (decode with no data) for frames that never
 * came, and in-band FEC (LBRR) from the next packet (decode_fec = 1) when
 * that packet carries it.
 */
#include <opus.h>

#include "audio_internal.h"
#include "opus_codec.h"

static mc_status from_opus(int err)
{
    switch (err) {
    case OPUS_BAD_ARG:
        return MC_E_INVAL;
    case OPUS_BUFFER_TOO_SMALL:
        return MC_E_BUFFER;
    case OPUS_INVALID_PACKET:
        return MC_E_MALFORMED;
    case OPUS_ALLOC_FAIL:
        return MC_E_NOMEM;
    case OPUS_UNIMPLEMENTED:
        return MC_E_UNSUPPORTED;
    default:
        return MC_E_CODEC;
    }
}

mc_status mc_opus_decoder_create(OpusDecoder **out)
{
    int err = OPUS_OK;
    OpusDecoder *dec = opus_decoder_create(MC_AUDIO_RATE_HZ, 1, &err);
    if (!dec || err != OPUS_OK)
        return from_opus(err);
    *out = dec;
    return MC_OK;
}

void mc_opus_decoder_destroy(OpusDecoder *dec)
{
    if (dec)
        opus_decoder_destroy(dec);
}

mc_status mc_opus_packet_samples_16k(const uint8_t *payload, uint32_t length, uint32_t *samples)
{
    if (!payload || length == 0)
        return MC_E_MALFORMED;
    if (length > MC_AUDIO_MAX_PAYLOAD)
        return MC_E_TOO_LARGE;
    int n = opus_packet_get_nb_samples(payload, (opus_int32)length, MC_AUDIO_RATE_HZ);
    if (n <= 0)
        return MC_E_MALFORMED;
    if (n > MC_AUDIO_MAX_FRAME_SAMPLES) /* 120 ms is the protocol's limit */
        return MC_E_MALFORMED;
    *samples = (uint32_t)n;
    return MC_OK;
}

mc_status mc_opus_decode_packet(OpusDecoder *dec, const uint8_t *payload, uint32_t length,
                                int16_t *pcm, uint32_t max_samples, uint32_t *samples)
{
    uint32_t need = 0;
    mc_status st = mc_opus_packet_samples_16k(payload, length, &need);
    if (st != MC_OK)
        return st;
    if (need > max_samples)
        return MC_E_BUFFER;
    int n = opus_decode(dec, payload, (opus_int32)length, pcm, (int)need, 0);
    if (n < 0)
        return from_opus(n);
    *samples = (uint32_t)n;
    return MC_OK;
}

mc_status mc_opus_conceal(OpusDecoder *dec, uint32_t samples, int16_t *pcm)
{
    if (samples == 0 || samples % 40 != 0 || samples > MC_AUDIO_MAX_FRAME_SAMPLES)
        return MC_E_INVAL;
    int n = opus_decode(dec, NULL, 0, pcm, (int)samples, 0);
    return n < 0 ? from_opus(n) : MC_OK;
}

/*
 * Does the packet carry LBRR data? (libopus >= 1.5 has opus_packet_has_lbrr;
 * Debian 12 ships 1.3.1.) In a SILK or hybrid packet the first frame starts
 * with one VAD flag per 20 ms SILK frame followed by the LBRR flag, all coded
 * at probability 1/2, so they are the leading bits of the frame's first byte
 * (RFC 6716 §4.2.3). Mono only: mediabot decodes mono.
 */
int mc_opus_packet_has_lbrr(const uint8_t *payload, uint32_t length)
{
    const unsigned char *frames[48];
    opus_int16 sizes[48];
    if (!payload || length == 0 || length > MC_AUDIO_MAX_PAYLOAD)
        return 0;
    if (payload[0] & 0x80) /* config 16..31: CELT only */
        return 0;
    int frame_48k = opus_packet_get_samples_per_frame(payload, 48000);
    int silk_frames = frame_48k > 960 ? frame_48k / 960 : 1;
    if (opus_packet_parse(payload, (opus_int32)length, NULL, frames, sizes, NULL) <= 0)
        return 0;
    if (sizes[0] == 0)
        return 0;
    int lbrr = (frames[0][0] >> (7 - silk_frames)) & 1;
    if (opus_packet_get_nb_channels(payload) == 2)
        lbrr = lbrr || ((frames[0][0] >> (6 - 2 * silk_frames)) & 1);
    return lbrr;
}

mc_status mc_opus_decode_fec_from(OpusDecoder *dec, const uint8_t *next, uint32_t length,
                                  uint32_t samples, int16_t *pcm, uint32_t *recovered)
{
    uint32_t next_samples = 0;
    *recovered = 0;
    if (samples == 0 || samples % 40 != 0 || samples > MC_AUDIO_MAX_FRAME_SAMPLES)
        return MC_E_INVAL;
    if (mc_opus_packet_samples_16k(next, length, &next_samples) != MC_OK ||
        !mc_opus_packet_has_lbrr(next, length))
        return mc_opus_conceal(dec, samples, pcm);
    /* LBRR covers the last `next_samples` of the gap; libopus conceals any
     * earlier part itself when frame_size is larger. */
    int n = opus_decode(dec, next, (opus_int32)length, pcm, (int)samples, 1);
    if (n < 0)
        return mc_opus_conceal(dec, samples, pcm);
    *recovered = 1;
    return MC_OK;
}

mc_status mc_opus_encoder_apply(OpusEncoder *enc, const mc_audio_encoder_config *c)
{
    int bitrate = c->bitrate_bps ? (int)c->bitrate_bps : OPUS_AUTO;
    if (c->bitrate_bps && (c->bitrate_bps < 6000 || c->bitrate_bps > 510000))
        return MC_E_INVAL;
    if (c->packet_loss_pct > 100)
        return MC_E_INVAL;
    int complexity = c->complexity > 10 ? 10 : (int)c->complexity;
    if (opus_encoder_ctl(enc, OPUS_SET_BITRATE(bitrate)) != OPUS_OK ||
        opus_encoder_ctl(enc, OPUS_SET_COMPLEXITY(complexity)) != OPUS_OK ||
        opus_encoder_ctl(enc, OPUS_SET_INBAND_FEC(c->inband_fec ? 1 : 0)) != OPUS_OK ||
        opus_encoder_ctl(enc, OPUS_SET_DTX(c->dtx ? 1 : 0)) != OPUS_OK ||
        opus_encoder_ctl(enc, OPUS_SET_PACKET_LOSS_PERC((int)c->packet_loss_pct)) != OPUS_OK ||
        opus_encoder_ctl(enc, OPUS_SET_SIGNAL(c->application == MC_OPUS_APPLICATION_VOIP
                                                  ? OPUS_SIGNAL_VOICE
                                                  : OPUS_AUTO)) != OPUS_OK)
        return MC_E_CODEC;
    return MC_OK;
}

mc_status mc_opus_encoder_create(const mc_audio_encoder_config *c, OpusEncoder **out)
{
    int err = OPUS_OK;
    int app;
    if (c->application == MC_OPUS_APPLICATION_VOIP)
        app = OPUS_APPLICATION_VOIP;
    else if (c->application == MC_OPUS_APPLICATION_AUDIO)
        app = OPUS_APPLICATION_AUDIO;
    else
        return MC_E_INVAL;
    OpusEncoder *enc = opus_encoder_create(MC_AUDIO_RATE_HZ, 1, app, &err);
    if (!enc || err != OPUS_OK)
        return from_opus(err);
    mc_status st = mc_opus_encoder_apply(enc, c);
    if (st != MC_OK) {
        opus_encoder_destroy(enc);
        return st;
    }
    *out = enc;
    return MC_OK;
}

mc_status mc_opus_encoder_reset(OpusEncoder *enc)
{
    int err = opus_encoder_ctl(enc, OPUS_RESET_STATE);
    return err == OPUS_OK ? MC_OK : from_opus(err);
}

void mc_opus_encoder_destroy(OpusEncoder *enc)
{
    if (enc)
        opus_encoder_destroy(enc);
}

mc_status mc_opus_encode_frame(OpusEncoder *enc, const int16_t *pcm, uint32_t samples,
                               uint8_t *out, uint32_t out_size, uint32_t *length)
{
    /* 2.5, 5, 10, 20, 40, 60 ms at 16 kHz */
    if (samples != 40 && samples != 80 && samples != 160 && samples != 320 && samples != 640 &&
        samples != 960)
        return MC_E_INVAL;
    if (out_size < 3)
        return MC_E_BUFFER;
    opus_int32 cap = out_size > MC_OPUS_MAX_PACKET ? MC_OPUS_MAX_PACKET : (opus_int32)out_size;
    opus_int32 n = opus_encode(enc, pcm, (int)samples, out, cap);
    if (n < 0)
        return from_opus(n);
    *length = (uint32_t)n;
    return MC_OK;
}

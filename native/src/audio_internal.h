/* audio_internal.h — what the audio modules share and Python does not call. */
#ifndef MC_AUDIO_INTERNAL_H
#define MC_AUDIO_INTERNAL_H

#include <stdint.h>

#include "mediacore.h"

/* Largest RTP audio payload accepted by the decoders (a UDP datagram on a
 * 1500-byte MTU cannot carry more); bigger payloads count as errors. */
#define MC_AUDIO_MAX_PAYLOAD 1500u

/* The dispatched mixer kernel without argument checks (hot path). */
void mc_mix_kernel(const int16_t *const *sources, uint32_t count, uint32_t samples, int16_t *out);

/* One frame of digital silence for an idle send path. Opus (20 ms, without
 * DTX): the first is the encoder's (it flushes the end of the last PCM out
 * of the encoder's look-ahead), then a canned 3-byte silence frame each, the
 * encoder not run (encoding zeros costs as much as speech, ten times a
 * decode); the encoder is reset before its next PCM. Otherwise (DTX, whose
 * encoder decides what to send in silence, or other codecs): the encoder's
 * own output for zeros. */
mc_status mc_audio_encode_silence(mc_audio_encoder *enc, uint32_t samples, uint8_t *out,
                                  uint32_t out_size, uint32_t *length);

/* Round and saturate a float sample to int16. */
static inline int16_t mc_sat16f(float v)
{
    v += v >= 0.0f ? 0.5f : -0.5f;
    if (v >= 32767.0f)
        return 32767;
    if (v <= -32768.0f)
        return -32768;
    return (int16_t)v;
}

#endif /* MC_AUDIO_INTERNAL_H */

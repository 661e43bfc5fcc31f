/* opus_codec.h — libopus at 16 kHz mono, behind small functions so that the
 * generic codec layer (audio_codec.c) never includes <opus.h>. */
#ifndef MC_OPUS_CODEC_H
#define MC_OPUS_CODEC_H

#include <stdint.h>

#include "mediacore.h"

struct OpusDecoder;
struct OpusEncoder;

/* Decoder producing 16 kHz mono. */
mc_status mc_opus_decoder_create(struct OpusDecoder **out);
void mc_opus_decoder_destroy(struct OpusDecoder *dec);
/* Normal decode; MC_E_MALFORMED / MC_E_TOO_LARGE / MC_E_BUFFER / MC_E_CODEC. */
mc_status mc_opus_decode_packet(struct OpusDecoder *dec, const uint8_t *payload, uint32_t length,
                                int16_t *pcm, uint32_t max_samples, uint32_t *samples);
/* Packet-loss concealment of `samples` (a multiple of 40 = 2.5 ms). */
mc_status mc_opus_conceal(struct OpusDecoder *dec, uint32_t samples, int16_t *pcm);
/* In-band FEC from the packet after the loss; *recovered = 0 when it carries
 * no LBRR data (then pcm holds concealment). */
mc_status mc_opus_decode_fec_from(struct OpusDecoder *dec, const uint8_t *next, uint32_t length,
                                  uint32_t samples, int16_t *pcm, uint32_t *recovered);
/* 16 kHz samples in a packet; MC_E_MALFORMED if its TOC/frame count is invalid. */
mc_status mc_opus_packet_samples_16k(const uint8_t *payload, uint32_t length, uint32_t *samples);
/* 1 if the packet's first SILK frame carries LBRR (in-band FEC) data. */
int mc_opus_packet_has_lbrr(const uint8_t *payload, uint32_t length);

mc_status mc_opus_encoder_create(const mc_audio_encoder_config *config, struct OpusEncoder **out);
mc_status mc_opus_encoder_apply(struct OpusEncoder *enc, const mc_audio_encoder_config *config);
/* Forget the signal seen so far (its look-ahead and predictors), keeping the settings. */
mc_status mc_opus_encoder_reset(struct OpusEncoder *enc);
void mc_opus_encoder_destroy(struct OpusEncoder *enc);
mc_status mc_opus_encode_frame(struct OpusEncoder *enc, const int16_t *pcm, uint32_t samples,
                               uint8_t *out, uint32_t out_size, uint32_t *length);

#endif /* MC_OPUS_CODEC_H */

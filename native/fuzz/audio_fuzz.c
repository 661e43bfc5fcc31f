/*
 * audio_fuzz.c — libFuzzer target for the audio depayloaders: Opus payloads
 * (decode, FEC from a following payload, LBRR probe, sample count), G.711 and
 * L16 payloads, and RFC 4733 telephone events through the DTMF receiver.
 * The first input byte picks the path; the rest is the payload.
 */
#include <stddef.h>
#include <stdint.h>

#include "mediacore.h"

static mc_audio_decoder *opus_dec, *pcmu_dec, *l16_dec;
static mc_dtmf_receiver *dtmf_rx;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int16_t pcm[MC_AUDIO_MAX_FRAME_SAMPLES];
    if (!opus_dec) {
        mc_audio_decoder_new(MC_CODEC_OPUS, 48000, &opus_dec);
        mc_audio_decoder_new(MC_CODEC_PCMU, 8000, &pcmu_dec);
        mc_audio_decoder_new(MC_CODEC_L16, 8000, &l16_dec);
        mc_dtmf_receiver_new(&dtmf_rx);
    }
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *p = data + 1;
    uint32_t n = (uint32_t)(size - 1), samples = 0, rec = 0;
    switch (mode % 5) {
    case 0:
        mc_audio_payload_samples(opus_dec, p, n, &samples);
        mc_audio_decode(opus_dec, p, n, pcm, MC_AUDIO_MAX_FRAME_SAMPLES, &samples);
        break;
    case 1:
        mc_audio_decode_fec(opus_dec, p, n, 320, pcm, &rec);
        mc_audio_decode(opus_dec, p, n, pcm, 320, &samples);
        break;
    case 2:
        mc_audio_decode(pcmu_dec, p, n, pcm, MC_AUDIO_MAX_FRAME_SAMPLES, &samples);
        mc_audio_decode_conceal(pcmu_dec, 320, pcm);
        break;
    case 3:
        mc_audio_decode(l16_dec, p, n, pcm, MC_AUDIO_MAX_FRAME_SAMPLES, &samples);
        break;
    default: {
        mc_dtmf_digit digits[3];
        uint32_t count;
        /* payloads of 4 bytes with a timestamp taken from the input */
        for (uint32_t off = 0; off + 6 <= n; off += 6) {
            uint32_t ts = (uint32_t)(p[off + 4] << 8 | p[off + 5]);
            mc_dtmf_receiver_push(dtmf_rx, p + off, 4, ts, 0, digits, &count);
        }
        mc_dtmf_receiver_push(dtmf_rx, p, n < 4 ? n : 4, 0, 1, digits, &count);
        break;
    }
    }
    return 0;
}

/*
 * g711.c — ITU-T G.711 mu-law (PCMU) and A-law (PCMA) sample conversion,
 * 8 kHz, 14-bit (mu) / 13-bit (A) magnitude with 8 segments, per the
 * Recommendation's tables (bit inversion: all bits for mu-law, even bits
 * 0x55 for A-law). Resampling to and from 16 kHz is in resample.c.
 */
#include "audio_internal.h"

#define ULAW_BIAS 0x84 /* 132: moves the segment boundaries to powers of two */
#define ULAW_CLIP 32635

static uint8_t linear_to_ulaw(int16_t pcm)
{
    int v = pcm, sign = 0;
    if (v < 0) {
        v = -v;
        sign = 0x80;
    }
    if (v > ULAW_CLIP)
        v = ULAW_CLIP;
    v += ULAW_BIAS; /* 132 .. 32767 */
    int exponent = 7;
    for (int mask = 0x4000; (v & mask) == 0 && exponent > 0; mask >>= 1)
        exponent--;
    int mantissa = (v >> (exponent + 3)) & 0x0F;
    return (uint8_t)~(sign | (exponent << 4) | mantissa);
}

static int16_t ulaw_to_linear(uint8_t code)
{
    int u = (uint8_t)~code;
    int t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    return (int16_t)((u & 0x80) ? (ULAW_BIAS - t) : (t - ULAW_BIAS));
}

static uint8_t linear_to_alaw(int16_t pcm)
{
    int v = pcm >> 3; /* 13-bit */
    int mask;
    if (v >= 0) {
        mask = 0xD5; /* sign bit set (positive), even bits inverted */
    } else {
        mask = 0x55;
        v = -v - 1;
    }
    int seg = 0;
    for (int limit = 0x1F; v > limit && seg < 8; limit = (limit << 1) | 1)
        seg++;
    uint8_t a;
    if (seg >= 8)
        a = 0x7F;
    else if (seg < 2)
        a = (uint8_t)((seg << 4) | ((v >> 1) & 0x0F));
    else
        a = (uint8_t)((seg << 4) | ((v >> seg) & 0x0F));
    return (uint8_t)(a ^ mask);
}

static int16_t alaw_to_linear(uint8_t code)
{
    int a = code ^ 0x55;
    int t = (a & 0x0F) << 4;
    int seg = (a & 0x70) >> 4;
    if (seg == 0)
        t += 8;
    else if (seg == 1)
        t += 0x108;
    else
        t = (t + 0x108) << (seg - 1);
    return (int16_t)((a & 0x80) ? t : -t);
}

MC_API mc_status mc_g711_encode(uint32_t law, const int16_t *pcm, uint32_t samples, uint8_t *out)
{
    if ((!pcm || !out) && samples)
        return MC_E_INVAL;
    if (law == MC_CODEC_PCMU) {
        for (uint32_t i = 0; i < samples; i++)
            out[i] = linear_to_ulaw(pcm[i]);
    } else if (law == MC_CODEC_PCMA) {
        for (uint32_t i = 0; i < samples; i++)
            out[i] = linear_to_alaw(pcm[i]);
    } else {
        return MC_E_INVAL;
    }
    return MC_OK;
}

MC_API mc_status mc_g711_decode(uint32_t law, const uint8_t *in, uint32_t samples, int16_t *pcm)
{
    if ((!pcm || !in) && samples)
        return MC_E_INVAL;
    if (law == MC_CODEC_PCMU) {
        for (uint32_t i = 0; i < samples; i++)
            pcm[i] = ulaw_to_linear(in[i]);
    } else if (law == MC_CODEC_PCMA) {
        for (uint32_t i = 0; i < samples; i++)
            pcm[i] = alaw_to_linear(in[i]);
    } else {
        return MC_E_INVAL;
    }
    return MC_OK;
}

/*
 * resample.c — 2:1 resampling between 8 kHz (G.711, L16/8000) and 16 kHz
 * (the media format) with a polyphase half-band FIR.
 *
 * Filter: 63 taps, cutoff fs16/4 = 4 kHz, Kaiser window beta 6.76 (~70 dB
 * stopband, transition ~3.4-4.6 kHz). In a half-band filter every even tap
 * but the centre (0.5) is zero, so each output costs K = 16 multiply-adds
 * per side: up-sampling copies the even outputs and interpolates the odd
 * ones; down-sampling evaluates the filter only at the kept samples.
 * The coefficients are computed at creation (no hand-copied table), and the
 * last input samples are kept so frames join without a seam.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio_internal.h"

#define RS_K 16              /* non-zero odd taps per side */
#define RS_HIST_UP (2 * RS_K)
#define RS_HIST_DOWN (4 * RS_K)
#define RS_MAX_IN 4096u
#define RS_BETA 6.76

struct mc_resampler {
    uint32_t direction;
    float h[RS_K];           /* tap at offset +-(2k-1), k = 1..K */
    float hist[RS_HIST_DOWN];
};

static double bessel_i0(double x)
{
    double sum = 1.0, term = 1.0;
    for (int k = 1; k < 64; k++) {
        double t = x / (2.0 * k);
        term *= t * t;
        sum += term;
        if (term < sum * 1e-12)
            break;
    }
    return sum;
}

static void design(float *h)
{
    const double pi = 3.14159265358979323846;
    double c[RS_K], total = 0.0;
    for (int k = 1; k <= RS_K; k++) {
        double t = 2.0 * k - 1.0, r = t / (2.0 * RS_K);
        double w = bessel_i0(RS_BETA * sqrt(1.0 - r * r)) / bessel_i0(RS_BETA);
        c[k - 1] = ((k & 1) ? 1.0 : -1.0) / (pi * t) * w;
        total += c[k - 1];
    }
    for (int k = 0; k < RS_K; k++) /* unit DC gain: 0.5 + 2 * sum = 1 */
        h[k] = (float)(c[k] * 0.25 / total);
}

MC_API mc_status mc_resampler_new(uint32_t direction, mc_resampler **out)
{
    if (!out || (direction != MC_RESAMPLE_UP_8K_16K && direction != MC_RESAMPLE_DOWN_16K_8K))
        return MC_E_INVAL;
    mc_resampler *rs = (mc_resampler *)calloc(1, sizeof *rs);
    if (!rs)
        return MC_E_NOMEM;
    rs->direction = direction;
    design(rs->h);
    *out = rs;
    return MC_OK;
}

MC_API mc_status mc_resampler_reset(mc_resampler *rs)
{
    if (!rs)
        return MC_E_INVAL;
    memset(rs->hist, 0, sizeof rs->hist);
    return MC_OK;
}

MC_API mc_status mc_resampler_delay(mc_resampler *rs, uint32_t *delay_samples)
{
    if (!rs || !delay_samples)
        return MC_E_INVAL;
    /* up: K input samples = 2K outputs; down: 2K inputs = K outputs */
    *delay_samples = rs->direction == MC_RESAMPLE_UP_8K_16K ? 2 * RS_K : RS_K;
    return MC_OK;
}

MC_API void mc_resampler_free(mc_resampler *rs) { free(rs); }

static void up(mc_resampler *rs, const int16_t *in, uint32_t n, int16_t *out)
{
    float ext[RS_HIST_UP + RS_MAX_IN];
    memcpy(ext, rs->hist, RS_HIST_UP * sizeof(float));
    for (uint32_t i = 0; i < n; i++)
        ext[RS_HIST_UP + i] = (float)in[i];
    for (uint32_t i = 0; i < n; i++) {
        const float *c = ext + RS_K + i; /* centre: input delayed by K */
        float acc = 0.0f;
        for (int k = 1; k <= RS_K; k++)
            acc += rs->h[k - 1] * (c[1 - k] + c[k]);
        out[2 * i] = mc_sat16f(c[0]);
        out[2 * i + 1] = mc_sat16f(2.0f * acc);
    }
    memcpy(rs->hist, ext + n, RS_HIST_UP * sizeof(float));
}

static void down(mc_resampler *rs, const int16_t *in, uint32_t n, int16_t *out)
{
    float ext[RS_HIST_DOWN + RS_MAX_IN];
    memcpy(ext, rs->hist, RS_HIST_DOWN * sizeof(float));
    for (uint32_t i = 0; i < n; i++)
        ext[RS_HIST_DOWN + i] = (float)in[i];
    for (uint32_t j = 0; j < n / 2; j++) {
        const float *c = ext + 2 * RS_K + 2 * j; /* centre: input delayed by 2K */
        float acc = 0.5f * c[0];
        for (int k = 1; k <= RS_K; k++)
            acc += rs->h[k - 1] * (c[-(2 * k - 1)] + c[2 * k - 1]);
        out[j] = mc_sat16f(acc);
    }
    memcpy(rs->hist, ext + n, RS_HIST_DOWN * sizeof(float));
}

MC_API mc_status mc_resample(mc_resampler *rs, const int16_t *in, uint32_t in_samples,
                             int16_t *out, uint32_t out_size, uint32_t *out_samples)
{
    if (!rs || (!in && in_samples) || !out || !out_samples || in_samples > RS_MAX_IN)
        return MC_E_INVAL;
    if (rs->direction == MC_RESAMPLE_UP_8K_16K) {
        if (out_size < 2 * in_samples)
            return MC_E_BUFFER;
        up(rs, in, in_samples, out);
        *out_samples = 2 * in_samples;
    } else {
        if (in_samples & 1)
            return MC_E_INVAL;
        if (out_size < in_samples / 2)
            return MC_E_BUFFER;
        down(rs, in, in_samples, out);
        *out_samples = in_samples / 2;
    }
    return MC_OK;
}

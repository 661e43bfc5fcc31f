/*
 * audiolevel.c — audio levels for active-speaker detection, in the units of
 * RFC 6464 (client-to-mixer audio level): dBov, 0 = the RMS of a full-scale
 * square wave, carried as 0..127 = -dBov.
 */
#include <math.h>

#include "audio_internal.h"

MC_API mc_status mc_audio_level_dbov(const int16_t *pcm, uint32_t samples, float *dbov)
{
    if (!pcm || !dbov || samples == 0)
        return MC_E_INVAL;
    uint64_t energy = 0;
    for (uint32_t i = 0; i < samples; i++)
        energy += (uint64_t)((int32_t)pcm[i] * (int32_t)pcm[i]);
    if (energy == 0) {
        *dbov = -127.0f;
        return MC_OK;
    }
    double mean = (double)energy / (double)samples;
    double db = 10.0 * log10(mean / (32768.0 * 32768.0));
    *dbov = (float)(db < -127.0 ? -127.0 : db);
    return MC_OK;
}

MC_API mc_status mc_audio_level_rfc6464(const int16_t *pcm, uint32_t samples, uint8_t *level)
{
    float db;
    if (!level)
        return MC_E_INVAL;
    mc_status st = mc_audio_level_dbov(pcm, samples, &db);
    if (st != MC_OK)
        return st;
    float l = -db + 0.5f;
    *level = (uint8_t)(l <= 0.0f ? 0 : l >= 127.0f ? 127 : (int)l);
    return MC_OK;
}

MC_API mc_status mc_audio_level_parse(const uint8_t *data, uint32_t length, uint8_t *voice,
                                      uint8_t *level)
{
    if (!voice || !level || (!data && length))
        return MC_E_INVAL;
    if (length < 1)
        return MC_E_MALFORMED;
    *voice = (uint8_t)(data[0] >> 7);
    *level = (uint8_t)(data[0] & 0x7F);
    return MC_OK;
}

/*
 * test_audio.c — C-level checks of the audio modules (run under -Werror and
 * ASan/UBSan by `make native-audio`): mixer kernels against the scalar rule,
 * G.711 and resampler accuracy, Opus round trip with PLC and FEC, DTMF
 * sender -> receiver, levels, and garbage input to every decoder.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mediacore.h"
#include "check.h"

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

static void test_mixer(void)
{
    enum { MAXS = 64, MAXN = 400 };
    static int16_t frames[MAXS][MAXN + 8];
    const int16_t *ptrs[MAXS];
    int16_t out[MAXN], want[MAXN];
    uint32_t impls[] = {MC_MIX_SCALAR, MC_MIX_SSE2, MC_MIX_AVX2};
    for (int trial = 0; trial < 300; trial++) {
        uint32_t count = rnd() % (MAXS + 1), samples = rnd() % (MAXN + 1);
        int loud = trial % 3 == 0;
        for (uint32_t s = 0; s < count; s++) {
            uint32_t off = rnd() % 8; /* unaligned sources */
            for (uint32_t i = 0; i < samples; i++)
                frames[s][off + i] = (int16_t)(loud ? (int32_t)(rnd() & 0xFFFF) - 32768
                                                    : (int32_t)(rnd() % 2001) - 1000);
            ptrs[s] = &frames[s][off];
        }
        for (uint32_t i = 0; i < samples; i++) {
            int32_t v = 0;
            for (uint32_t s = 0; s < count; s++)
                v += ptrs[s][i];
            want[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
        }
        for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
            if (mc_mix_set_impl(impls[k]) != MC_OK)
                continue;
            memset(out, 0x55, sizeof out);
            CHECK(mc_mix_i16(ptrs, count, samples, out) == MC_OK);
            CHECK(memcmp(out, want, samples * sizeof(int16_t)) == 0);
        }
    }
    CHECK(mc_mix_set_impl(MC_MIX_AUTO) == MC_OK);
    CHECK(mc_mix_i16(NULL, 1, 10, out) == MC_E_INVAL);
    CHECK(mc_mix_i16_strided(&frames[0][0], 2, 320, 100, out) == MC_E_INVAL);
    CHECK(mc_mix_set_impl(99) == MC_E_UNSUPPORTED);
}

static double snr_db(const int16_t *ref, const int16_t *got, uint32_t n)
{
    double s = 0, e = 0;
    for (uint32_t i = 0; i < n; i++) {
        double d = (double)ref[i] - (double)got[i];
        s += (double)ref[i] * ref[i];
        e += d * d;
    }
    return e == 0 ? 200.0 : 10.0 * log10(s / e);
}

static void tone(int16_t *pcm, uint32_t n, uint32_t start, double hz, double rate, double amp)
{
    for (uint32_t i = 0; i < n; i++)
        pcm[i] = (int16_t)(amp * sin(2 * 3.14159265358979 * hz * (start + i) / rate));
}

static void test_g711_resample(void)
{
    /* companding: error stays within the segment's quantisation step */
    for (int32_t v = -32768; v <= 32767; v += 7) {
        int16_t x = (int16_t)v, y;
        uint8_t c;
        for (uint32_t law = MC_CODEC_PCMU; law <= MC_CODEC_PCMA; law++) {
            CHECK(mc_g711_encode(law, &x, 1, &c) == MC_OK);
            CHECK(mc_g711_decode(law, &c, 1, &y) == MC_OK);
            int32_t err = abs((int32_t)x - y), mag = abs((int32_t)x);
            CHECK(err <= mag / 16 + 64);
        }
    }
    /* code -> linear -> code is the identity for every code (except mu-law's -0) */
    for (uint32_t law = MC_CODEC_PCMU; law <= MC_CODEC_PCMA; law++)
        for (int c = 0; c < 256; c++) {
            uint8_t code = (uint8_t)c, back;
            int16_t lin;
            mc_g711_decode(law, &code, 1, &lin);
            mc_g711_encode(law, &lin, 1, &back);
            CHECK(back == code || (law == MC_CODEC_PCMU && code == 0x7F && back == 0xFF));
        }
    /* 1 kHz at 16 kHz -> down -> up: the tone survives (delay-aligned) */
    mc_resampler *down, *up;
    CHECK(mc_resampler_new(MC_RESAMPLE_DOWN_16K_8K, &down) == MC_OK);
    CHECK(mc_resampler_new(MC_RESAMPLE_UP_8K_16K, &up) == MC_OK);
    enum { FR = 320, NF = 50 };
    static int16_t in[FR * NF], mid[FR / 2], out[FR * NF];
    tone(in, FR * NF, 0, 1000.0, 16000.0, 12000.0);
    for (int f = 0; f < NF; f++) {
        uint32_t n1, n2;
        CHECK(mc_resample(down, in + f * FR, FR, mid, FR / 2, &n1) == MC_OK && n1 == FR / 2);
        CHECK(mc_resample(up, mid, n1, out + f * FR, FR, &n2) == MC_OK && n2 == FR);
    }
    uint32_t d1, d2;
    mc_resampler_delay(down, &d1);
    mc_resampler_delay(up, &d2);
    uint32_t delay = 2 * d1 + d2;
    double snr = snr_db(in, out + delay, FR * NF - delay - 100);
    CHECK(snr > 40.0);
    /* a 6 kHz tone is above 8 kHz's Nyquist and must be rejected by the filter */
    tone(in, FR * NF, 0, 6000.0, 16000.0, 12000.0);
    mc_resampler_reset(down);
    double e = 0;
    for (int f = 0; f < NF; f++) {
        uint32_t n1;
        mc_resample(down, in + f * FR, FR, mid, FR / 2, &n1);
        if (f > 2)
            for (uint32_t i = 0; i < n1; i++)
                e += (double)mid[i] * mid[i];
    }
    double rms = sqrt(e / ((NF - 3) * FR / 2));
    CHECK(rms < 12000.0 / sqrt(2.0) * 0.001); /* >= 60 dB down */
    mc_resampler_free(down);
    mc_resampler_free(up);
}

static void test_opus(void)
{
    mc_audio_encoder_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.codec = MC_CODEC_OPUS;
    cfg.application = MC_OPUS_APPLICATION_VOIP;
    cfg.bitrate_bps = 32000;
    cfg.complexity = 10;
    cfg.inband_fec = 1;
    cfg.packet_loss_pct = 20;
    mc_audio_encoder *enc;
    mc_audio_decoder *dec;
    CHECK(mc_audio_encoder_new(&cfg, &enc) == MC_OK);
    CHECK(mc_audio_decoder_new(MC_CODEC_OPUS, 48000, &dec) == MC_OK);
    uint32_t ticks;
    CHECK(mc_audio_encoder_ticks(enc, 320, &ticks) == MC_OK && ticks == 960);
    enum { NF = 100 };
    static int16_t in[320 * NF], out[320 * NF];
    static uint8_t pkts[NF][MC_OPUS_MAX_PACKET];
    uint32_t lens[NF];
    /* voice-like: two harmonics with a 4 Hz syllable envelope (a steady
     * tone makes SILK stop sending LBRR after ~0.6 s) */
    for (uint32_t i = 0; i < 320 * NF; i++) {
        double t = i / 16000.0, env = 0.55 + 0.45 * sin(2 * 3.14159265358979 * 4.0 * t);
        in[i] = (int16_t)(6000.0 * env * (sin(2 * 3.14159265358979 * 180.0 * t) +
                                           0.5 * sin(2 * 3.14159265358979 * 540.0 * t)));
    }
    for (int f = 0; f < NF; f++)
        CHECK(mc_audio_encode(enc, in + f * 320, 320, pkts[f], sizeof pkts[f], &lens[f]) == MC_OK);
    int fec_seen = 0;
    for (int f = 0; f < NF; f++) {
        uint32_t n = 0, rec = 0;
        if (f % 10 == 5) { /* lost: rebuild from the next packet's FEC */
            CHECK(mc_audio_decode_fec(dec, pkts[f + 1], lens[f + 1], 320, out + f * 320, &rec) == MC_OK);
            fec_seen += (int)rec;
        } else if (f % 10 == 8) {
            CHECK(mc_audio_decode_conceal(dec, 320, out + f * 320) == MC_OK);
        } else {
            CHECK(mc_audio_decode(dec, pkts[f], lens[f], out + f * 320, 320, &n) == MC_OK && n == 320);
        }
    }
    mc_audio_decoder_stats st;
    mc_audio_decoder_get_stats(dec, &st);
    CHECK(st.frames == NF - 20);
    CHECK(st.fec_recovered == (uint64_t)fec_seen && fec_seen >= 5);
    CHECK(st.concealed + st.fec_recovered == 20);
    /* garbage never crashes, is counted, and leaves the decoder usable */
    uint8_t junk[2000];
    int16_t pcm[MC_AUDIO_MAX_FRAME_SAMPLES];
    uint32_t n;
    for (int i = 0; i < 2000; i++)
        junk[i] = (uint8_t)rnd();
    CHECK(mc_audio_decode(dec, junk, sizeof junk, pcm, MC_AUDIO_MAX_FRAME_SAMPLES, &n) == MC_E_TOO_LARGE);
    CHECK(mc_audio_decode(dec, junk, 0, pcm, MC_AUDIO_MAX_FRAME_SAMPLES, &n) == MC_E_MALFORMED);
    for (int i = 0; i < 500; i++) {
        uint32_t len = rnd() % 200 + 1;
        for (uint32_t j = 0; j < len; j++)
            junk[j] = (uint8_t)rnd();
        mc_audio_decode(dec, junk, len, pcm, MC_AUDIO_MAX_FRAME_SAMPLES, &n);
    }
    mc_audio_decoder_get_stats(dec, &st);
    CHECK(st.errors >= 2);
    CHECK(mc_audio_decode(dec, pkts[0], lens[0], pcm, 320, &n) == MC_OK);
    mc_audio_encoder_free(enc);
    mc_audio_decoder_free(dec);
}

static void test_g711_codec(void)
{
    for (uint32_t codec = MC_CODEC_PCMU; codec <= MC_CODEC_L16; codec++) {
        mc_audio_encoder_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.codec = codec;
        cfg.clock_rate_hz = 8000;
        mc_audio_encoder *enc;
        mc_audio_decoder *dec;
        CHECK(mc_audio_encoder_new(&cfg, &enc) == MC_OK);
        CHECK(mc_audio_decoder_new(codec, 8000, &dec) == MC_OK);
        enum { NF = 50 };
        static int16_t in[320 * NF], out[320 * NF];
        tone(in, 320 * NF, 0, 1000.0, 16000.0, 10000.0);
        for (int f = 0; f < NF; f++) {
            uint8_t pkt[640];
            uint32_t len, n;
            CHECK(mc_audio_encode(enc, in + f * 320, 320, pkt, sizeof pkt, &len) == MC_OK);
            CHECK(len == (codec == MC_CODEC_L16 ? 320u : 160u));
            CHECK(mc_audio_decode(dec, pkt, len, out + f * 320, 320, &n) == MC_OK && n == 320);
        }
        double snr = snr_db(in, out + 96, 320 * NF - 200);
        CHECK(snr > (codec == MC_CODEC_L16 ? 40.0 : 30.0));
        int16_t pcm[MC_AUDIO_MAX_FRAME_SAMPLES];
        CHECK(mc_audio_decode_conceal(dec, 320, pcm) == MC_OK);
        /* pitch-repetition PLC: odd sizes, long erasures (silent after 60 ms),
         * then a good frame cross-faded in; a fresh decoder conceals silence */
        static const uint32_t sizes[] = {1, 7, 160, 320, MC_AUDIO_MAX_FRAME_SAMPLES, 333};
        uint32_t erased = 320;
        for (uint32_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            CHECK(mc_audio_decode_conceal(dec, sizes[k], pcm) == MC_OK);
            erased += sizes[k];
        }
        CHECK(erased > 960 && pcm[0] == 0 && pcm[332] == 0);
        uint8_t pkt[640];
        uint32_t len, n;
        CHECK(mc_audio_encode(enc, in, 320, pkt, sizeof pkt, &len) == MC_OK);
        CHECK(mc_audio_decode(dec, pkt, len, pcm, 320, &n) == MC_OK && n == 320);
        mc_audio_decoder *fresh;
        CHECK(mc_audio_decoder_new(codec, 8000, &fresh) == MC_OK);
        CHECK(mc_audio_decode_conceal(fresh, 320, pcm) == MC_OK && pcm[0] == 0 && pcm[319] == 0);
        mc_audio_decoder_free(fresh);
        mc_audio_encoder_free(enc);
        mc_audio_decoder_free(dec);
    }
}

static void test_dtmf(void)
{
    mc_dtmf_sender *tx;
    mc_dtmf_receiver *rx;
    CHECK(mc_dtmf_sender_new(8000, 20, &tx) == MC_OK);
    CHECK(mc_dtmf_receiver_new(&rx) == MC_OK);
    CHECK(mc_dtmf_sender_start(tx, "12x", 100, 60, 10) == MC_E_INVAL);
    CHECK(mc_dtmf_sender_start(tx, "159*#D", 100, 60, 10) == MC_OK);
    CHECK(mc_dtmf_sender_start(tx, "1", 100, 60, 10) == MC_E_STATE);
    char got[16];
    uint32_t ngot = 0, idle = 0, ts = 1000;
    for (int tick = 0; tick < 200 && !idle; tick++, ts += 160) {
        mc_dtmf_packet p[MC_DTMF_MAX_PACKETS_PER_TICK];
        uint32_t count, active;
        CHECK(mc_dtmf_sender_tick(tx, ts, p, &count, &active) == MC_OK);
        for (uint32_t i = 0; i < count; i++) {
            mc_dtmf_digit d[3];
            uint32_t nd;
            CHECK(mc_dtmf_receiver_push(rx, p[i].payload, 4, p[i].rtp_timestamp, p[i].marker, d, &nd) == MC_OK);
            for (uint32_t k = 0; k < nd; k++)
                if (d[k].end && ngot < sizeof got - 1) {
                    got[ngot++] = (char)d[k].digit;
                    CHECK(d[k].duration_ticks == 800);
                }
        }
        mc_dtmf_sender_idle(tx, &idle);
    }
    got[ngot] = 0;
    CHECK(strcmp(got, "159*#D") == 0);
    mc_dtmf_receiver_stats st;
    mc_dtmf_receiver_get_stats(rx, &st);
    CHECK(st.digits == 6 && st.duplicates == 12);
    mc_dtmf_digit d[3];
    uint32_t nd;
    uint8_t shortp[3] = {1, 2, 3};
    CHECK(mc_dtmf_receiver_push(rx, shortp, 3, 0, 0, d, &nd) == MC_E_MALFORMED);
    mc_dtmf_sender_free(tx);
    mc_dtmf_receiver_free(rx);
}

static void test_levels(void)
{
    int16_t pcm[320];
    float db;
    uint8_t level, v;
    memset(pcm, 0, sizeof pcm);
    CHECK(mc_audio_level_rfc6464(pcm, 320, &level) == MC_OK && level == 127);
    tone(pcm, 320, 0, 1000.0, 16000.0, 32767.0);
    CHECK(mc_audio_level_dbov(pcm, 320, &db) == MC_OK && fabsf(db + 3.01f) < 0.1f);
    tone(pcm, 320, 0, 1000.0, 16000.0, 32767.0 / 100.0);
    CHECK(mc_audio_level_rfc6464(pcm, 320, &level) == MC_OK && level == 43);
    uint8_t ext = 0x80 | 42;
    CHECK(mc_audio_level_parse(&ext, 1, &v, &level) == MC_OK && v == 1 && level == 42);
}

int main(void)
{
    test_mixer();
    test_g711_resample();
    test_opus();
    test_g711_codec();
    test_dtmf();
    test_levels();
    if (failures) {
        fprintf(stderr, "test_audio: %d failures\n", failures);
        return 1;
    }
    printf("test_audio: ok\n");
    return 0;
}

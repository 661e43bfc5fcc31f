/*
 * mixer.c — mix N int16 frames into one: int32 accumulate, saturate once.
 *
 * Three kernels with one contract (out[i] = clamp(sum_s src[s][i])):
 *   - AVX2 (x86, chosen at run time when the CPU and OS support YMM state),
 *   - SSE2 (the x86-64 baseline),
 *   - portable scalar (everything else, and the reference for the C tests).
 * The vector kernels walk the output in blocks of 64 (AVX2) / 32 (SSE2)
 * samples and, per block, every source: the int32 accumulators of one block
 * stay in registers, each source is read once, and the result is packed
 * with signed saturation. Sources may be in any order in memory and any
 * alignment (unaligned loads; ring slots and pools are 64-byte aligned
 * anyway, with a deliberate offset against 4K aliasing, under which copies
 * ran up to 22x slower on the Zen 3 development VM).
 *
 * GCC 12 -O3 unroll-and-jams the stream loop of the scalar kernel and emits
 * the jammed loop scalar (measured 4.6x slower at 32 sources); the scalar
 * kernel opts out with optimize("no-loop-unroll-and-jam"). Check with
 *   gcc -O3 -fopt-info-vec-all -c native/src/mixer.c
 */
#include <string.h>

#include "audio_internal.h"
#include "compat.h"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#define MC_MIX_X86 1
#include <immintrin.h>
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define MC_TARGET_AVX2
#else
#define MC_TARGET_AVX2 __attribute__((target("avx2")))
#endif
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define MC_NO_UNROLL_JAM __attribute__((optimize("no-loop-unroll-and-jam")))
#else
#define MC_NO_UNROLL_JAM
#endif

MC_NO_UNROLL_JAM
static void mix_scalar(const int16_t *const *src, uint32_t count, uint32_t samples, int16_t *out)
{
    enum { BLOCK = 64 };
    int32_t acc[BLOCK];
    for (uint32_t base = 0; base < samples; base += BLOCK) {
        uint32_t n = samples - base < BLOCK ? samples - base : BLOCK;
        memset(acc, 0, sizeof acc);
        for (uint32_t s = 0; s < count; s++) {
            const int16_t *p = src[s] + base;
            for (uint32_t i = 0; i < n; i++)
                acc[i] += p[i];
        }
        for (uint32_t i = 0; i < n; i++) {
            int32_t v = acc[i];
            out[base + i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
        }
    }
}

#if defined(MC_MIX_X86)
/* samples [from, samples) by the scalar rule, for the vector kernels' tails */
static void mix_tail(const int16_t *const *src, uint32_t count, uint32_t from, uint32_t samples,
                     int16_t *out)
{
    for (uint32_t i = from; i < samples; i++) {
        int32_t v = 0;
        for (uint32_t s = 0; s < count; s++)
            v += src[s][i];
        out[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
    }
}

/* widen 8 int16 to two vectors of 4 int32 without SSE4.1 */
#define MC_SSE2_ADD16(lo, hi, x)                                                 \
    do {                                                                         \
        lo = _mm_add_epi32(lo, _mm_srai_epi32(_mm_unpacklo_epi16(x, x), 16));    \
        hi = _mm_add_epi32(hi, _mm_srai_epi32(_mm_unpackhi_epi16(x, x), 16));    \
    } while (0)

static void mix_sse2(const int16_t *const *src, uint32_t count, uint32_t samples, int16_t *out)
{
    uint32_t base = 0;
    for (; base + 32 <= samples; base += 32) {
        __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
        __m128i a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (uint32_t s = 0; s < count; s++) {
            const __m128i *p = (const __m128i *)(src[s] + base);
            __m128i x0 = _mm_loadu_si128(p), x1 = _mm_loadu_si128(p + 1);
            __m128i x2 = _mm_loadu_si128(p + 2), x3 = _mm_loadu_si128(p + 3);
            MC_SSE2_ADD16(a0, a1, x0);
            MC_SSE2_ADD16(a2, a3, x1);
            MC_SSE2_ADD16(a4, a5, x2);
            MC_SSE2_ADD16(a6, a7, x3);
        }
        __m128i *o = (__m128i *)(out + base);
        _mm_storeu_si128(o, _mm_packs_epi32(a0, a1));
        _mm_storeu_si128(o + 1, _mm_packs_epi32(a2, a3));
        _mm_storeu_si128(o + 2, _mm_packs_epi32(a4, a5));
        _mm_storeu_si128(o + 3, _mm_packs_epi32(a6, a7));
    }
    mix_tail(src, count, base, samples, out);
}

#define MC_AVX2_ADD8(acc, ptr) \
    acc = _mm256_add_epi32(acc, _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(ptr))))

MC_TARGET_AVX2
static __m256i pack_avx2(__m256i lo, __m256i hi)
{
    /* packs works per 128-bit lane: [lo0 hi0 lo1 hi1] -> reorder the quadwords */
    return _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
}

MC_TARGET_AVX2
static void mix_avx2(const int16_t *const *src, uint32_t count, uint32_t samples, int16_t *out)
{
    uint32_t base = 0;
    for (; base + 64 <= samples; base += 64) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        __m256i a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (uint32_t s = 0; s < count; s++) {
            const int16_t *p = src[s] + base;
            MC_AVX2_ADD8(a0, p);
            MC_AVX2_ADD8(a1, p + 8);
            MC_AVX2_ADD8(a2, p + 16);
            MC_AVX2_ADD8(a3, p + 24);
            MC_AVX2_ADD8(a4, p + 32);
            MC_AVX2_ADD8(a5, p + 40);
            MC_AVX2_ADD8(a6, p + 48);
            MC_AVX2_ADD8(a7, p + 56);
        }
        __m256i *o = (__m256i *)(out + base);
        _mm256_storeu_si256(o, pack_avx2(a0, a1));
        _mm256_storeu_si256(o + 1, pack_avx2(a2, a3));
        _mm256_storeu_si256(o + 2, pack_avx2(a4, a5));
        _mm256_storeu_si256(o + 3, pack_avx2(a6, a7));
    }
    for (; base + 16 <= samples; base += 16) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
        for (uint32_t s = 0; s < count; s++) {
            MC_AVX2_ADD8(a0, src[s] + base);
            MC_AVX2_ADD8(a1, src[s] + base + 8);
        }
        _mm256_storeu_si256((__m256i *)(out + base), pack_avx2(a0, a1));
    }
    mix_tail(src, count, base, samples, out);
}

static int cpu_has_avx2(void)
{
#if defined(_MSC_VER) && !defined(__clang__)
    int r[4];
    __cpuid(r, 0);
    if (r[0] < 7)
        return 0;
    __cpuid(r, 1);
    int osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
    if (!osxsave || !avx)
        return 0;
    if ((_xgetbv(0) & 6) != 6) /* the OS saves XMM and YMM state */
        return 0;
    __cpuidex(r, 7, 0);
    return (r[1] >> 5) & 1;
#else
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
}
#endif /* MC_MIX_X86 */

typedef void (*mix_fn)(const int16_t *const *, uint32_t, uint32_t, int16_t *);

/* Chosen once; a relaxed race on first use writes the same value twice. */
static volatile uint32_t mix_impl_chosen = 0xFFFFFFFFu;

static uint32_t best_impl(void)
{
#if defined(MC_MIX_X86)
    return cpu_has_avx2() ? MC_MIX_AVX2 : MC_MIX_SSE2;
#else
    return MC_MIX_SCALAR;
#endif
}

static uint32_t current_impl(void)
{
    uint32_t impl = mc_load_u32_relaxed(&mix_impl_chosen);
    if (MC_UNLIKELY(impl == 0xFFFFFFFFu)) {
        impl = best_impl();
        mc_store_u32_relaxed(&mix_impl_chosen, impl);
    }
    return impl;
}

static mix_fn impl_fn(uint32_t impl)
{
    switch (impl) {
#if defined(MC_MIX_X86)
    case MC_MIX_AVX2:
        return mix_avx2;
    case MC_MIX_SSE2:
        return mix_sse2;
#endif
    default:
        return mix_scalar;
    }
}

void mc_mix_kernel(const int16_t *const *sources, uint32_t count, uint32_t samples, int16_t *out)
{
    if (count == 0) {
        memset(out, 0, (size_t)samples * sizeof(int16_t));
        return;
    }
    impl_fn(current_impl())(sources, count, samples, out);
}

MC_API mc_status mc_mix_i16(const int16_t *const *sources, uint32_t count, uint32_t samples,
                            int16_t *out)
{
    if (!out || (count && !sources) || count > MC_MIX_MAX_SOURCES)
        return MC_E_INVAL;
    for (uint32_t s = 0; s < count; s++)
        if (!sources[s])
            return MC_E_INVAL;
    mc_mix_kernel(sources, count, samples, out);
    return MC_OK;
}

MC_API mc_status mc_mix_i16_strided(const int16_t *frames, uint32_t count, uint32_t samples,
                                    uint32_t stride_samples, int16_t *out)
{
    const int16_t *ptrs[MC_MIX_MAX_SOURCES];
    if (!out || (count && !frames) || count > MC_MIX_MAX_SOURCES || stride_samples < samples)
        return MC_E_INVAL;
    for (uint32_t s = 0; s < count; s++)
        ptrs[s] = frames + (size_t)s * stride_samples;
    mc_mix_kernel(ptrs, count, samples, out);
    return MC_OK;
}

MC_API mc_status mc_mix_get_impl(uint32_t *impl)
{
    if (!impl)
        return MC_E_INVAL;
    *impl = current_impl();
    return MC_OK;
}

MC_API mc_status mc_mix_set_impl(uint32_t impl)
{
    if (impl == MC_MIX_AUTO) {
        mc_store_u32_relaxed(&mix_impl_chosen, best_impl());
        return MC_OK;
    }
    if (impl == MC_MIX_SCALAR) {
        mc_store_u32_relaxed(&mix_impl_chosen, impl);
        return MC_OK;
    }
#if defined(MC_MIX_X86)
    if (impl == MC_MIX_SSE2 || (impl == MC_MIX_AVX2 && cpu_has_avx2())) {
        mc_store_u32_relaxed(&mix_impl_chosen, impl);
        return MC_OK;
    }
#endif
    return MC_E_UNSUPPORTED;
}

"""Audio benchmarks (issue 4), anchors from PERF-ANCHORS.md sections 3 and 6.

Mixer, 32 sources x 320 samples, one output frame per call through cffi:
* subject: ``mc_mix_i16_strided`` (runtime-dispatched kernel);
* anchor "plain AVX2 reference": the textbook AVX2 kernel (16 samples at a
  time, two int32 accumulators, every source, packs) built here with
  ``-O3 -mavx2`` and called through cffi the same way (PERF-ANCHORS §3:
  ~0.73 µs bare, ~1.1 µs through cffi); the goal is <= 1.2x of it;
* anchor numpy: ``np.clip(x.sum(0, dtype=int32), -32768, 32767).astype(int16)``
  (goal >= 10x).

Receive cost per 20 ms Opus frame, same packets:
* subject: native libopus decode straight to 16 kHz into a reused int16
  buffer, one cffi crossing per frame, numpy view handed to Python;
* anchor: PyAV libopus decode (48 kHz) + ``AudioResampler(s16, mono, 16000)``
  + ``to_ndarray`` (PERF-ANCHORS §6: ~92-104 µs); the goal is >= 3x cheaper.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from cffi import FFI

from benchmarks._report import QUICK
from mediacore._native import ffi, lib
from mediacore.audio import AudioDecoder, AudioEncoder, Codec, MixKernel, mix_kernel

ROOT = Path(__file__).resolve().parents[1]
SOURCES, SAMPLES = 32, 320
ROUNDS = 200 if QUICK else 2000
ITER = 20

REFERENCE_AVX2 = r"""
#include <immintrin.h>
#include <stdint.h>
/* The plain AVX2 kernel: for each block of 16 samples, all sources. */
void ref_mix_avx2(const int16_t *frames, uint32_t count, uint32_t samples, uint32_t stride,
                  int16_t *out)
{
    for (uint32_t i = 0; i + 16 <= samples; i += 16) {
        __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
        for (uint32_t s = 0; s < count; s++) {
            const int16_t *p = frames + (size_t)s * stride + i;
            lo = _mm256_add_epi32(lo, _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)p)));
            hi = _mm256_add_epi32(hi, _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(p + 8))));
        }
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
        _mm256_storeu_si256((__m256i *)(out + i), packed);
    }
}
"""


@functools.lru_cache(maxsize=1)
def reference_kernel():
    """Build (once, into build/bench_audio) and load the reference kernel."""
    out_dir = ROOT / "build" / "bench_audio"
    out_dir.mkdir(parents=True, exist_ok=True)
    builder = FFI()
    builder.cdef("void ref_mix_avx2(const int16_t *frames, uint32_t count, uint32_t samples, "
                 "uint32_t stride, int16_t *out);")
    builder.set_source("_ref_mix_avx2", REFERENCE_AVX2, extra_compile_args=["-O3", "-mavx2"])
    path = builder.compile(tmpdir=str(out_dir), verbose=False)
    spec = importlib.util.spec_from_file_location("_ref_mix_avx2", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["_ref_mix_avx2"] = module
    spec.loader.exec_module(module)
    return module


def _frames() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    # 64-byte aligned rows 320 samples + 32 apart: no 4K-aliasing stride
    raw = np.empty(SOURCES * (SAMPLES + 32) + 64, dtype=np.int16)
    start = (-raw.ctypes.data % 64) // 2
    frames = raw[start:start + SOURCES * (SAMPLES + 32)].reshape(SOURCES, SAMPLES + 32)
    frames[:] = rng.integers(-3000, 3000, frames.shape, dtype=np.int16)
    return frames, np.empty(SAMPLES, dtype=np.int16)


def _subject_call():
    frames, out = _frames()
    base = ffi.cast("const int16_t *", frames.ctypes.data)
    return functools.partial(lib.mc_mix_i16_strided, base, SOURCES, SAMPLES, SAMPLES + 32,
                             ffi.from_buffer("int16_t[]", out)), frames, out


def test_mixer_kernels_agree():
    """The subject and both anchors compute the same frame."""
    call, frames, out = _subject_call()
    assert call() == 0
    ref = reference_kernel()
    out_ref = np.empty(SAMPLES, np.int16)
    ref.lib.ref_mix_avx2(ref.ffi.cast("const int16_t *", frames.ctypes.data), SOURCES, SAMPLES,
                         SAMPLES + 32, ref.ffi.from_buffer("int16_t[]", out_ref))
    want = np.clip(frames[:, :SAMPLES].sum(0, dtype=np.int32), -32768, 32767).astype(np.int16)
    assert np.array_equal(out, want) and np.array_equal(out_ref, want)
    assert mix_kernel() == MixKernel.AVX2


@pytest.mark.benchmark(group="audio mix 32x320: mediabot vs plain AVX2 kernel")
def test_mix_subject_vs_avx2(benchmark):
    call, frames, out = _subject_call()
    benchmark.extra_info.update(role="subject", units=1, label="mc_mix_i16_strided (dispatched)")
    benchmark.pedantic(call, rounds=ROUNDS, iterations=ITER, warmup_rounds=20)


@pytest.mark.benchmark(group="audio mix 32x320: mediabot vs plain AVX2 kernel")
def test_mix_anchor_avx2(benchmark):
    ref = reference_kernel()
    frames, out = _frames()
    call = functools.partial(ref.lib.ref_mix_avx2,
                             ref.ffi.cast("const int16_t *", frames.ctypes.data), SOURCES,
                             SAMPLES, SAMPLES + 32, ref.ffi.from_buffer("int16_t[]", out))
    benchmark.extra_info.update(role="anchor", units=1, label="plain AVX2 kernel -O3 -mavx2")
    benchmark.pedantic(call, rounds=ROUNDS, iterations=ITER, warmup_rounds=20)


@pytest.mark.benchmark(group="audio mix 32x320: mediabot vs numpy")
def test_mix_subject_vs_numpy(benchmark):
    call, frames, out = _subject_call()
    benchmark.extra_info.update(role="subject", units=1, label="mc_mix_i16_strided (dispatched)")
    benchmark.pedantic(call, rounds=ROUNDS, iterations=ITER, warmup_rounds=20)


@pytest.mark.benchmark(group="audio mix 32x320: mediabot vs numpy")
def test_mix_anchor_numpy(benchmark):
    frames, _ = _frames()
    x = np.ascontiguousarray(frames[:, :SAMPLES])

    def numpy_mix():
        return np.clip(x.sum(0, dtype=np.int32), -32768, 32767).astype(np.int16)

    benchmark.extra_info.update(role="anchor", units=1, label="numpy int32 sum + clip")
    benchmark.pedantic(numpy_mix, rounds=ROUNDS // 4, iterations=ITER, warmup_rounds=5)


# ---- receive cost per Opus frame ------------------------------------------

FRAMES = 250 if QUICK else 1000


@functools.lru_cache(maxsize=1)
def opus_packets() -> list[bytes]:
    """20 ms Opus packets (32 kbit/s voip) of a voice-like signal."""
    t = np.arange(FRAMES * SAMPLES) / 16000
    pcm = (6000 * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) *
           (np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 540 * t))).astype(np.int16)
    enc = AudioEncoder(Codec.OPUS, bitrate_bps=32000)
    return [enc.encode(pcm[i * SAMPLES:(i + 1) * SAMPLES]) for i in range(FRAMES)]


def _native_receive(packets):
    dec = AudioDecoder(Codec.OPUS)
    buf = np.empty(SAMPLES, np.int16)
    total = 0
    for p in packets:
        frame = dec.decode_into(p, buf)     # native decode to 16 kHz, numpy view
        total += int(frame[0])
    return total


def _pyav_receive(packets):
    ctx = av.CodecContext.create("libopus", "r")
    ctx.sample_rate, ctx.layout = 48000, "mono"
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    total = 0
    for p in packets:
        for frame in ctx.decode(av.Packet(p)):
            for out in resampler.resample(frame):
                total += int(out.to_ndarray()[0, 0])
    return total


@pytest.mark.benchmark(group="audio receive per Opus frame: native decode to 16 kHz vs PyAV")
def test_receive_native(benchmark):
    packets = opus_packets()
    benchmark.extra_info.update(role="subject", units=len(packets),
                                label="libopus -> 16 kHz in native + numpy view")
    benchmark.pedantic(_native_receive, args=(packets,), rounds=5 if QUICK else 15, iterations=1)


@pytest.mark.benchmark(group="audio receive per Opus frame: native decode to 16 kHz vs PyAV")
def test_receive_pyav(benchmark):
    packets = opus_packets()
    benchmark.extra_info.update(role="anchor", units=len(packets),
                                label="PyAV libopus + AudioResampler + to_ndarray")
    benchmark.pedantic(_pyav_receive, args=(packets,), rounds=5 if QUICK else 15, iterations=1)

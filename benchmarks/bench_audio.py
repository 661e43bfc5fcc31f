"""Audio benchmarks: the native mixer and Opus receive path against a plain
AVX2 kernel, numpy and PyAV, measured in one run (docs/audio.md, "Measured here").

Mixer, 32 sources x 320 samples, one output frame per call through cffi:
* subject: ``mc_mix_i16_strided`` (runtime-dispatched kernel);
* anchor "plain AVX2 reference": the textbook AVX2 kernel (16 samples at a
  time, two int32 accumulators, every source, packs) built here with
  ``-O3 -mavx2`` and called through cffi the same way (on the development VM
  ~0.73 µs bare, ~1.1 µs through cffi); the goal is <= 1.2x of it;
* anchor numpy: ``np.clip(x.sum(0, dtype=int32), -32768, 32767).astype(int16)``
  (goal >= 10x).

Receive cost per 20 ms Opus frame, same packets:
* subject: native libopus decode straight to 16 kHz into a reused int16
  buffer, one cffi crossing per frame, numpy view handed to Python;
* anchor: PyAV libopus decode (48 kHz) + ``AudioResampler(s16, mono, 16000)``
  + ``to_ndarray`` (~92-104 µs on the development VM); the goal is >= 3x cheaper.
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


def _check_kernels_agree():
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
    _check_kernels_agree()
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


# ---- receive path through the audio graph ------------------------------------

def _engine_records(packets: list[bytes], ssrc: int = 0x5EED) -> list[bytes]:
    from mediacore.engine import RTP_RECORD_DTYPE
    out = []
    for k, p in enumerate(packets):
        h = np.zeros(1, RTP_RECORD_DTYPE)
        h["ssrc"], h["timestamp"], h["sequence_number"] = ssrc, k * 960, k & 0xFFFF
        h["payload_type"] = 111
        out.append(h.tobytes() + p)
    return out


@pytest.mark.benchmark(group="audio receive per Opus frame through the graph vs PyAV")
def test_receive_graph(benchmark):
    """Engine-format records -> audio graph (queue, libopus to 16 kHz, frame
    header, ring) -> Python batch read with a numpy view per frame. Ticks are
    driven from Python here (one cffi call per tick); in production the
    native worker ticks itself."""
    from mediacore.audio import AudioWorker
    from mediacore.audio.frames import FRAME_RECORD_DTYPE
    from mediacore.audio.graph import AudioGraph
    from mediacore.rings import Ring

    records = _engine_records(opus_packets())
    worker = AudioWorker(thread=False)
    inp = Ring.create(1 << 20, policy="drop")
    out = Ring.create(1 << 20, policy="drop")
    graph = AudioGraph(worker, input=inp, output=out, mixed=False, unmixed=True, events=False)
    state = {"k": 0, "now": 10**12}
    chunk = 50

    def one_round():
        k = state["k"]
        batch = records[k:k + chunk]
        if len(batch) < chunk:
            state["k"], batch = 0, records[:chunk]
        state["k"] += chunk
        inp.write_batch(batch, type=lib.MC_RECORD_RTP)
        for _ in range(chunk):
            worker.tick(state["now"])
            state["now"] += 20_000_000
        total = 0
        rb = out.read_batch(256)
        for rec in rb:
            frame = np.frombuffer(rec, FRAME_RECORD_DTYPE, count=1)[0]
            total += int(frame["pcm"][0])
        return total

    benchmark.extra_info.update(role="subject", units=chunk,
                                label="graph: queue + libopus 16 kHz + ring + Python view")
    benchmark.pedantic(one_round, rounds=10 if QUICK else 40, iterations=1, warmup_rounds=2)
    st = graph.stats()
    graph.close()
    worker.close()
    assert st.decode_errors == 0 and st.decoded > 0


@pytest.mark.benchmark(group="audio receive per Opus frame through the graph vs PyAV")
def test_receive_graph_anchor_pyav(benchmark):
    packets = opus_packets()[:50]
    benchmark.extra_info.update(role="anchor", units=len(packets),
                                label="PyAV libopus + AudioResampler + to_ndarray")
    benchmark.pedantic(_pyav_receive, args=(packets,), rounds=10 if QUICK else 40, iterations=1)


# ---- density: receive-only calls per core -------------------------------------

DENSITY_N = (100, 300) if QUICK else (100, 250, 500, 750, 1000)
DENSITY_SECONDS = 2.0 if QUICK else 5.0
DENSITY_WARM_S = 1.5
DENSITY_WORKERS = 2      # one audio worker per core
DENSITY_STAGGER = True   # each graph on its own 2 ms phase of the tick


def _density_sender(port: int, n: int, seconds: float, packets: list[bytes], result) -> None:
    """A separate process standing in for a Teams media relay: one SRTP Opus
    stream per call, all from one UDP port, one packet per call every 20 ms on
    absolute deadlines. The packets are pre-encoded; rtp_pacer.c builds,
    protects (a context per call) and sends them in sendmmsg batches, so the
    sender costs a few percent of a core and leaves the CPUs to the receiver.
    The generator is not in the shipped library: the testing module has it."""
    from _mediacore_testing import ffi, lib

    keys = b"".join(bytes([i % 251 + 1]) * 30 for i in range(n))
    ssrcs = ffi.new("uint32_t[]", [10_000 + i for i in range(n)])
    blob = b"".join(packets)
    lengths = ffi.new("uint32_t[]", [len(p) for p in packets])
    host = ffi.new("char[]", b"127.0.0.1")
    cfg = ffi.new("mc_rtp_pacer_config *")
    cfg.host, cfg.port, cfg.payload_type = host, port, 111
    cfg.streams, cfg.ssrcs = n, ssrcs
    cfg.srtp_profile = lib.MC_SRTP_AES_CM_128_HMAC_SHA1_80
    key_buf = ffi.from_buffer(keys)
    cfg.keys, cfg.key_length = key_buf, 30
    payload_buf = ffi.from_buffer(blob)
    cfg.payloads, cfg.payload_lengths, cfg.payload_count = payload_buf, lengths, len(packets)
    cfg.timestamp_step, cfg.period_ns = 960, 20_000_000
    cfg.periods = int(seconds * 50)
    out = ffi.new("mc_rtp_pacer_result *")
    st = lib.mc_rtp_pace(cfg, out)
    result.put({"status": st, "packets": out.packets, "errors": out.errors,
                "late_periods": out.late_periods, "cpu_ns": out.cpu_ns,
                "elapsed_ns": out.elapsed_ns})


def _density_run(n: int) -> dict:
    """Receiver in this process: engine A (SRTP, jitter buffer per call) ->
    one audio worker ticking n graphs (Opus -> 16 kHz, mixed and unmixed
    frames) -> an output ring per worker -> one Python consumer reading whole
    batches. CPU: this process only (the sender is another process)."""
    import multiprocessing
    import os
    import threading
    import time as _time

    from mediacore.audio import AudioWorker
    from mediacore.audio.frames import FRAME_RECORD_DTYPE, MIXED
    from mediacore.audio.graph import AudioGraph
    from mediacore.engine import Engine
    from mediacore.rings import Ring

    a = Engine("127.0.0.1", rcvbuf_bytes=16 << 20)
    a.start()
    # one staggered worker per core: each graph ticks on its own 2 ms phase
    workers = [AudioWorker(stagger=DENSITY_STAGGER) for _ in range(DENSITY_WORKERS)]
    # a ring has one producer: one output ring per worker, one consumer for all
    outputs = [Ring.create(1 << 24, policy="drop") for _ in workers]
    graphs, inputs = [], []
    for i in range(n):
        key = bytes([i % 251 + 1]) * 30
        s = a.add_session(None, srtp_profile="AES_CM_128_HMAC_SHA1_80", tx_key=key, rx_key=key)
        inp = Ring.create(1 << 14, policy="drop")
        s.add_receive_stream(10_000 + i, "audio", 48000, ring=inp)
        inputs.append(inp)
        graphs.append(AudioGraph(workers[i % len(workers)], input=inp,
                                 output=outputs[i % len(workers)], mixed=True, unmixed=True,
                                 events=False, tag=i))
    counts = np.zeros((2, n), np.int64)
    window = {"on": False}
    consumer_cpu = {"ns": 0}
    stop = threading.Event()

    def consume() -> None:
        """Once per 20 ms (not once per record: a consumer blocked in wait()
        is woken by every commit, a futex wake per frame for the worker and a
        Python round per frame here), read everything the last tick wrote."""
        next_t = _time.monotonic()
        while not stop.is_set():
            next_t += 0.02
            delay = next_t - _time.monotonic()
            if delay > 0:
                _time.sleep(delay)
            else:
                next_t = _time.monotonic()
            t0 = _time.thread_time_ns()
            for output in outputs:
                while len(rb := output.read_batch(8192)):
                    if not window["on"]:
                        continue
                    # one numpy view over the whole batch (all records are 720-byte frames)
                    frames = rb.array(np.uint8).view(FRAME_RECORD_DTYPE).reshape(-1)
                    tags = frames["header"]["tag"]
                    mixed = rb.types == MIXED
                    counts[0] += np.bincount(tags[mixed], minlength=n)
                    counts[1] += np.bincount(tags[~mixed], minlength=n)
            if window["on"]:
                consumer_cpu["ns"] += _time.thread_time_ns() - t0

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    for w in workers:
        w.start()
    ctx = multiprocessing.get_context("spawn")
    result = ctx.Queue()
    sender = ctx.Process(target=_density_sender,
                         args=(a.port, n, DENSITY_WARM_S + DENSITY_SECONDS + 0.5,
                               opus_packets()[:100], result), daemon=True)
    sender.start()
    # the spawned sender imports mediacore first; wait for its packets to flow
    deadline = _time.monotonic() + 60
    while a.stats().rtp_in < n and _time.monotonic() < deadline:
        _time.sleep(0.02)
    _time.sleep(DENSITY_WARM_S)
    ticks0, io0 = [w.ticks() for w in workers], a.io_cpu_ns()
    stats0 = [g.stats() for g in graphs]
    c0, w0 = os.times(), _time.monotonic()
    window["on"] = True
    _time.sleep(DENSITY_SECONDS)
    window["on"] = False
    c1, w1 = os.times(), _time.monotonic()
    ticks1, io1 = [w.ticks() for w in workers], a.io_cpu_ns()
    stats1 = [g.stats() for g in graphs]
    sent = result.get(timeout=60)
    sender.join(30)
    stop.set()
    consumer.join()
    ring_dropped = sum(o.stats().records_dropped for o in outputs)
    input_dropped = sum(r.stats().records_dropped for r in inputs)
    for g in graphs:
        g.close()
    for w in workers:
        w.close()
    a.close()
    wall = w1 - w0
    cpu = (c1.user + c1.system) - (c0.user + c0.system)
    ticks = min(t1[0] - t0[0] for t0, t1 in zip(ticks0, ticks1))
    late = sum(t1[1] - t0[1] for t0, t1 in zip(ticks0, ticks1))
    busy_ns = sum(t1[2] - t0[2] for t0, t1 in zip(ticks0, ticks1))
    delta = {f: sum(getattr(b, f) - getattr(x, f) for x, b in zip(stats0, stats1))
             for f in ("underruns", "decoded", "concealed", "output_dropped", "overflow_dropped")}
    frames_delivered = int(counts.sum())
    per = 1e9 / max(1, frames_delivered / 2)        # ns per call and 20 ms (mixed + unmixed)
    return {
        "n": n, "wall_s": round(wall, 3), "cpu_cores": round(cpu / wall, 3),
        "workers": len(workers), "ticks": ticks, "late_ticks": late,
        "min_mixed": int(counts[0].min()), "min_unmixed": int(counts[1].min()),
        "frames_delivered": frames_delivered,
        "cpu_ns_per_call_frame": cpu * per,
        "engine_io_ns_per_call_frame": (io1 - io0) * per / 1e9,
        "worker_ns_per_call_frame": busy_ns * per / 1e9,
        "consumer_ns_per_call_frame": consumer_cpu["ns"] * per / 1e9,
        "ring_dropped": int(ring_dropped), "input_dropped": int(input_dropped), **delta,
        "sender": sent,
    }


def test_density_receive_only_calls_per_core(benchmark):
    """Largest number of receive-only calls (one Opus stream in at 50 packets/s,
    SRTP, mixed and unmixed frames out to one Python consumer) with no dropped
    frames, and the receiver's CPU per call: calls per core = calls / receiver
    cores used. Anchor: aiortc 1.16 as a transcription bot's receive side,
    ~500 µs CPU per frame, ~30 calls per core (measured apart, docs/audio.md;
    not re-run here: it needs ICE/DTLS peers)."""
    from benchmarks._report import record_comparison

    runs = []

    def sweep():
        for n in DENSITY_N:
            r = _density_run(n)
            runs.append(r)
            expected = int(DENSITY_SECONDS * 50)
            # drop-free: every call got every 20 ms frame of the window, nothing dropped
            r["no_drops"] = (r["ring_dropped"] == 0 and r["input_dropped"] == 0
                             and r["output_dropped"] == 0 and r["overflow_dropped"] == 0
                             and r["min_mixed"] >= expected - 2
                             and r["min_unmixed"] >= expected - 2)
            r["calls_per_core"] = round(n / max(r["cpu_cores"], 1e-9))
            if not r["no_drops"]:
                break

    benchmark.pedantic(sweep, rounds=1, iterations=1)
    ok = [r for r in runs if r["no_drops"]]
    best = max(ok, key=lambda r: r["n"]) if ok else min(runs, key=lambda r: r["n"])
    benchmark.extra_info.update(runs=runs)
    record_comparison("audio density: receive-only calls, CPU per call-frame",
                      subject=f"mediabot engine + graph + Python consumer, {best['n']} calls"
                              + (", no drops" if best["no_drops"] else ", DROPS (machine overloaded?)"),
                      anchor="aiortc 1.16 receive (measured apart, docs/audio.md, ~500 us/frame)",
                      subject_ns=best["cpu_ns_per_call_frame"], anchor_ns=500_000.0,
                      calls_tested=best["n"], calls_per_core=best["calls_per_core"],
                      largest_no_drop=max((r["n"] for r in ok), default=0),
                      cpu_cores=best["cpu_cores"], runs=runs, quick=QUICK)

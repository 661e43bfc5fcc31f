"""RTP receive handling per packet (parse and jitter buffer), against aiortc's
``RtpPacket.parse`` (~3.4 us on the development VM) plus its audio
``JitterBuffer.add`` (capacity 16, prefetch 4; ~4.5 us).

The same 172-byte Opus RTP packets (PT 111, consecutive sequence numbers and
timestamps, a one-byte RFC 6464 audio-level extension) go, rep by rep in one
run, through:

* subject: ``mc_rtp_parse`` + ``mc_jitter_insert`` + one ``mc_jitter_pop`` per
  packet (the 20 ms clock's work), looped in C by ``mc_rtp_bench_parse_jitter``
  so no cffi crossing is timed;
* anchor: ``aiortc.rtp.RtpPacket.parse(data)`` + ``JitterBuffer.add(packet)``
  per packet from Python (with ``packet._data = packet.payload``, which is what
  aiortc's receiver does for Opus before ``add``).

Figures are ns per packet, the median over reps; ``ratio = anchor / subject``.
"""

from __future__ import annotations

import statistics
import time

import pytest
from aiortc.jitterbuffer import JitterBuffer as AiortcJitterBuffer
from aiortc.rtp import RtpPacket as AiortcRtpPacket

from benchmarks._report import QUICK, record_comparison
from mediacore import rtp
# the parse + jitter loop (mc_rtp_bench_parse_jitter) are not in the shipped library: the testing module
# (native/tests/support, built by `make build`) has them and mediacore._native's API
from _mediacore_testing import ffi, lib

N = 2_000                      # packets per loop
REPS = 5 if QUICK else 15
NATIVE_ROUNDS = 5              # passes over the N packets per native loop
N_PY = 2_000


def _packets(n: int) -> list[bytes]:
    ext = rtp.audio_level_element(True, 40)
    out = []
    for i in range(n):
        p = rtp.RtpPacket(payload_type=111, sequence_number=(60000 + i) & 0xFFFF,
                          timestamp=(2**32 - 960 * 100 + 960 * i) % 2**32, ssrc=0x5EED5EED,
                          extension_profile=rtp.ONE_BYTE, extension=ext,
                          payload=bytes((i + k) & 0xFF for k in range(172 - 12 - 4 - len(ext))))
        out.append(p.serialize())
    assert all(len(p) == 172 for p in out)
    return out


def _native_ns(buf, lengths, n: int) -> float:
    elapsed = ffi.new("int64_t*")
    assert lib.mc_rtp_bench_parse_jitter(buf, lengths, n, NATIVE_ROUNDS, elapsed) == lib.MC_OK
    return elapsed[0] / (n * NATIVE_ROUNDS)


def _aiortc_ns(packets: list[bytes]) -> float:
    jb = AiortcJitterBuffer(capacity=16, prefetch=4)
    parse, add = AiortcRtpPacket.parse, jb.add
    t0 = time.perf_counter_ns()
    for data in packets:
        packet = parse(data)
        packet._data = packet.payload  # what aiortc's receiver sets (Opus depayload: identity)
        add(packet)
    return (time.perf_counter_ns() - t0) / len(packets)


@pytest.mark.benchmark(group="rtp-parse-jitter-audio-172B")
def test_rtp_parse_jitter_insert(benchmark):
    packets = _packets(N)
    buf = ffi.new("uint8_t[]", b"".join(packets))
    lengths = ffi.new("uint32_t[]", [len(p) for p in packets])
    py_packets = packets[:N_PY]

    def run():
        native, py = [], []
        _native_ns(buf, lengths, N)  # warm-up
        for _ in range(REPS):
            native.append(_native_ns(buf, lengths, N))
            py.append(_aiortc_ns(py_packets))
        return native, py

    native, py = benchmark.pedantic(run, rounds=1, iterations=1)
    med = statistics.median
    record_comparison(
        "rtp-parse-jitter-audio-172B",
        subject="native mc_rtp_parse + mc_jitter_insert (+ one pop per packet), C loop",
        anchor="aiortc RtpPacket.parse + JitterBuffer.add(capacity 16, prefetch 4) per packet",
        subject_ns=med(native), anchor_ns=med(py),
        ratio_per_rep_median=med(p / s for p, s in zip(py, native)),
        subject_spread_ns=[min(native), max(native)], anchor_spread_ns=[min(py), max(py)],
        subject_min_ns=min(native), anchor_min_ns=min(py), ratio_of_mins=min(py) / min(native),
        reps=REPS, packets=N, anchor_reference_ns=3420 + 4500)
    assert med(native) > 0 and med(py) > 0

"""Video benchmarks (issue 5), anchors from PERF-ANCHORS.md section 5 and
aiortc's H.264 depayloader.

* h264-depacketize-1200B: per 1200-byte RTP packet of a real 720p stream —
  subject: the native depacketizer's loop over a batch (one cffi call), frames
  assembled in place in a ring, Python takes each frame record (hand-off);
  anchor: aiortc's per-packet ``h264_depayload`` plus joining each frame's
  payloads, as its receiver does (goal >= 20x).
* video-decode-720p / -1080p: decoded frames delivered to a Python processor
  per second — subject: RTP payloads -> native depacketizer -> ring -> Python
  -> H264Decoder -> processor callback (receives a DecodedVideoFrame);
  anchor: PyAV decoding the same access units straight from the file
  (demux + decode). Goal: >= 0.95x, i.e. the path around the codec costs
  almost nothing.
* h264-passthrough: encoded mode, access units per second per core —
  subject: native packetize -> native depacketize -> ring -> Python gets the
  access unit; anchor: aiortc's ``H264Encoder._packetize`` + ``h264_depayload``.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import av
import pytest

from benchmarks._report import QUICK
from mediacore import Ring
from mediacore._native import ffi, lib
from mediacore.video.codecs import H264Decoder
from mediacore.video.h264_rtp import (
    EncodedVideoFrame,
    H264Depacketizer,
    H264Packetizer,
    frames_from_batch,
    parse_rtp,
)

ROUNDS = 3 if QUICK else 7
_DIR = Path(tempfile.mkdtemp(prefix="bench_video_"))
_STREAMS: dict[tuple[int, int, int], Path] = {}


def stream(width: int, height: int, frames: int) -> Path:
    """testsrc2 encoded by the ffmpeg CLI (veryfast, zerolatency, IDR every 2 s)."""
    key = (width, height, frames)
    if key not in _STREAMS:
        path = _DIR / f"testsrc2_{width}x{height}_{frames}.h264"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", f"testsrc2=size={width}x{height}:rate=30", "-frames:v", str(frames),
             "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-bf", "0",
             "-g", "60", "-pix_fmt", "yuv420p", "-f", "h264", str(path)], check=True, timeout=120)
        _STREAMS[key] = path
    return _STREAMS[key]


def access_units(path: Path) -> list[bytes]:
    with av.open(str(path), format="h264") as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def rtp_payloads(units: list[bytes]) -> list[tuple[bytes, int, int, bool]]:
    """(payload, sequence, timestamp, marker) per packet, 1200-byte MTU."""
    packetizer = H264Packetizer(max_payload=1200)
    out = []
    for i, au in enumerate(units):
        for raw in packetizer.packetize(au, 3000 * i):
            p = parse_rtp(raw)
            out.append((p.payload, p.sequence, p.timestamp, p.marker))
    return out


class PacketArray:
    """A prepared mc_h264_packet[] over payloads kept alive here (what the
    engine's I/O thread hands the depacketizer natively)."""

    def __init__(self, packets):
        self.count = len(packets)
        self.array = ffi.new("mc_h264_packet[]", self.count)
        self._keep = []
        for i, (payload, seq, ts, marker) in enumerate(packets):
            buf = ffi.from_buffer(payload)
            self._keep.append(buf)
            a = self.array[i]
            a.payload, a.payload_length, a.sequence, a.timestamp, a.marker = \
                buf, len(payload), seq, ts, marker


def _native_receive(ring: Ring, depacketizer, packets: PacketArray, on_frame) -> int:
    """One batch through the native depacketizer, then Python takes every frame."""
    consumed = ffi.new("uint32_t *")
    frames_out = ffi.new("uint32_t *")
    got = 0
    chunk = 256   # the engine hands over up to a ring batch at a time
    for start in range(0, packets.count, chunk):
        n = min(chunk, packets.count - start)
        lib.mc_h264_depacketizer_push(depacketizer._handle, packets.array + start, n,
                                      consumed, frames_out)
        with ring.peek(max_records=256) as batch:
            for frame in frames_from_batch(batch):
                on_frame(frame)
                got += 1
    return got


# ---- depacketize + hand-off per packet ----------------------------------------


@pytest.fixture(scope="module")
def packets_720p():
    units = access_units(stream(1280, 720, 60 if QUICK else 150))
    return units, rtp_payloads(units)


@pytest.mark.benchmark(group="h264-depacketize-1200B")
def test_depacketize_native(benchmark, packets_720p):
    units, packets = packets_720p
    prepared = PacketArray(packets)
    ring = Ring.create(1 << 22)
    sizes = []

    def run():
        depacketizer = H264Depacketizer(ring=ring)
        n = _native_receive(ring, depacketizer, prepared, lambda f: sizes.append(len(f.data)))
        assert n == len(units)

    benchmark.extra_info.update(role="subject", units=len(packets),
                                label="native depacketizer, ring hand-off per frame")
    benchmark.pedantic(run, rounds=ROUNDS * 3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="h264-depacketize-1200B")
def test_depacketize_aiortc(benchmark, packets_720p):
    from aiortc.codecs.h264 import h264_depayload

    units, packets = packets_720p

    def run():
        frames, parts = [], []
        for payload, _seq, _ts, marker in packets:
            parts.append(h264_depayload(payload))
            if marker:
                frames.append(b"".join(parts))
                parts = []
        assert len(frames) == len(units)

    benchmark.extra_info.update(role="anchor", units=len(packets),
                                label="aiortc h264_depayload per packet + join")
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)


# ---- decoded frames to a processor ------------------------------------------------


def _decode_subject(benchmark, width, height):
    units = access_units(stream(width, height, 60 if QUICK else 150))
    prepared = PacketArray(rtp_payloads(units))
    ring = Ring.create(1 << 22)

    def run():
        depacketizer = H264Depacketizer(ring=ring)
        decoder = H264Decoder()
        delivered = []

        def processor(frame):
            delivered.append(frame.rtp_timestamp)

        def on_unit(unit):
            for frame in decoder.decode(unit):
                processor(frame)

        _native_receive(ring, depacketizer, prepared, on_unit)
        for frame in decoder.flush():
            processor(frame)
        assert len(delivered) == len(units)

    benchmark.extra_info.update(role="subject", units=len(units),
                                label="RTP -> native depacketizer -> ring -> PyAV -> processor")
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)


def _decode_anchor(benchmark, width, height):
    path = stream(width, height, 60 if QUICK else 150)
    count = len(access_units(path))

    def run():
        codec = av.CodecContext.create("h264", "r")
        n = 0
        with av.open(str(path), format="h264") as container:
            for packet in container.demux(video=0):
                if packet.size:
                    n += len(codec.decode(packet))
        n += len(codec.decode(None))
        assert n == count

    benchmark.extra_info.update(role="anchor", units=count, label="PyAV demux + decode from file")
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="video-decode-720p")
def test_decode_720p_subject(benchmark):
    _decode_subject(benchmark, 1280, 720)


@pytest.mark.benchmark(group="video-decode-720p")
def test_decode_720p_anchor(benchmark):
    _decode_anchor(benchmark, 1280, 720)


@pytest.mark.benchmark(group="video-decode-1080p")
def test_decode_1080p_subject(benchmark):
    _decode_subject(benchmark, 1920, 1080)


@pytest.mark.benchmark(group="video-decode-1080p")
def test_decode_1080p_anchor(benchmark):
    _decode_anchor(benchmark, 1920, 1080)


# ---- encoded passthrough ------------------------------------------------------------


@pytest.mark.benchmark(group="h264-passthrough")
def test_passthrough_native(benchmark, packets_720p):
    units, _ = packets_720p
    ring = Ring.create(1 << 22)
    packet_ring = Ring.create(1 << 22)
    count = ffi.new("uint32_t *")

    def run():
        packetizer = H264Packetizer(max_payload=1200, rtp_header=False)
        depacketizer = H264Depacketizer(ring=ring)
        got = seq = 0
        consumed = ffi.new("uint32_t *")
        frames = ffi.new("uint32_t *")
        arr = ffi.new("mc_h264_packet[]", 512)
        for i, au in enumerate(units):
            lib.mc_h264_packetize_to_ring(packetizer._handle, au, len(au), 3000 * i,
                                          packet_ring._handle, 1, count)
            # the packets go back in as the engine would hand them over
            with packet_ring.peek(max_records=512) as batch:
                n = len(batch)
                data = lib.mc_ring_data(packet_ring._handle)
                for k in range(n):
                    a = arr[k]
                    a.payload = data + int(batch.offsets[k])
                    a.payload_length = int(batch.lengths[k])
                    a.sequence = (seq + k) & 0xFFFF
                    a.timestamp = 3000 * i
                    a.marker = k == n - 1
                lib.mc_h264_depacketizer_push(depacketizer._handle, arr, n, consumed, frames)
                seq += n
            with ring.peek(max_records=16) as out:
                got += sum(len(f.data) > 0 for f in frames_from_batch(out))
        assert got == len(units)

    benchmark.extra_info.update(role="subject", units=len(units),
                                label="native packetize + depacketize, ring hand-off")
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="h264-passthrough")
def test_passthrough_aiortc(benchmark, packets_720p):
    from aiortc.codecs.h264 import H264Encoder, h264_depayload

    units, _ = packets_720p

    def run():
        got = 0
        for au in units:
            payloads = H264Encoder._packetize(H264Encoder._split_bitstream(au))
            got += len(b"".join(h264_depayload(p) for p in payloads)) > 0
        assert got == len(units)

    benchmark.extra_info.update(role="anchor", units=len(units),
                                label="aiortc _packetize + h264_depayload")
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)


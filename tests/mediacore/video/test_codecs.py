"""H.264 decode/encode through PyAV: against ffmpeg's own decode, round trips,
ladders, key frames on request, resolution changes, error recovery, the GIL."""

from __future__ import annotations

import collections
import subprocess
import threading
import time

import av
import numpy as np
import pytest

from mediacore.video.codecs import (
    SEND_LADDER,
    VBSS_LADDER,
    DecodeWorker,
    H264Decoder,
    H264Encoder,
    SimulcastEncoder,
    VideoLayer,
    VideoStatsCounter,
    fit_size,
    pick_layer,
)
from mediacore.video.frames import BufferPool, FrameConverter
from mediacore.video.h264_rtp import EncodedVideoFrame, split_annexb

from .conftest import ffmpeg_h264, load_stream


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def make_testsrc(width: int, height: int, count: int) -> list[np.ndarray]:
    """testsrc2 frames as rgb24 arrays, from the ffmpeg CLI."""
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", f"testsrc2=size={width}x{height}:rate=30", "-frames:v", str(count),
         "-pix_fmt", "rgb24", "-f", "rawvideo", "-"], check=True, capture_output=True,
        timeout=60).stdout
    return list(np.frombuffer(raw, np.uint8).reshape(count, height, width, 3))


# ---- decode --------------------------------------------------------------


def test_decode_matches_ffmpeg_cli_decode(h264_stream):
    cli = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "h264",
         "-i", str(h264_stream.path), "-pix_fmt", "yuv420p", "-f", "rawvideo", "-"],
        check=True, capture_output=True, timeout=60).stdout
    w, h = h264_stream.width, h264_stream.height
    cli_frames = np.frombuffer(cli, np.uint8).reshape(-1, h * 3 // 2, w)
    decoder = H264Decoder()
    ours = [f.to_ndarray("yuv420p").copy() for au in h264_stream.access_units
            for f in decoder.decode(au)]
    assert len(ours) == len(cli_frames) == len(h264_stream.access_units)
    assert all(np.array_equal(a, b) for a, b in zip(ours, cli_frames))
    stats = decoder.stats.snapshot()
    assert stats.frames == len(ours) and stats.decode_errors == 0
    assert (stats.width, stats.height) == (w, h)


def test_conversions_match_pyav_and_cost_at_most_one_copy(h264_stream):
    decoder = H264Decoder()
    frames = [f for au in h264_stream.access_units[:5] for f in decoder.decode(au)]
    frame = frames[-1]
    av_frame = frame.frame
    assert np.array_equal(frame.to_ndarray("rgb24"), av_frame.to_ndarray(format="rgb24"))
    assert np.array_equal(frame.to_ndarray("bgr24"), av_frame.to_ndarray(format="bgr24"))
    assert np.array_equal(frame.to_ndarray("yuv420p"), av_frame.to_ndarray())
    assert np.array_equal(frame.to_ndarray("nv12"),
                          av_frame.reformat(format="nv12").to_ndarray())
    y, u, v = frame.planes()
    assert np.shares_memory(y, np.frombuffer(av_frame.planes[0], np.uint8))   # zero copy
    assert (y.shape, u.shape) == ((240, 320), (120, 160))
    rgb = frame.to_ndarray("rgb24")
    assert not rgb.flags.owndata                                              # a view, no 2nd copy


def test_buffer_pool_reuses_only_released_buffers():
    pool = BufferPool(per_shape=2)
    a = pool.get((4, 4))
    b = pool.get((4, 4))
    assert a is not b
    a_id = id(a)
    del a
    c = pool.get((4, 4))
    assert id(c) == a_id          # released: reused
    assert pool.get((4, 4)) is not b


def test_decoded_frames_reuse_pooled_memory(h264_stream):
    decoder = H264Decoder()
    addresses = set()
    for au in h264_stream.access_units[:20]:
        for frame in decoder.decode(au):
            arr = frame.to_ndarray("yuv420p")
            addresses.add(arr.__array_interface__["data"][0])
            del arr
    assert len(addresses) == 1


def test_resolution_change_mid_stream(tmp_path):
    first, second = tmp_path / "a.h264", tmp_path / "b.h264"
    ffmpeg_h264(first, 320, 240, 10, 10)
    ffmpeg_h264(second, 640, 360, 10, 10)
    units = load_stream(first).access_units + load_stream(second).access_units
    decoder = H264Decoder()
    sizes = [(f.width, f.height) for au in units for f in decoder.decode(au)]
    sizes += [(f.width, f.height) for f in decoder.flush()]
    assert sizes == [(320, 240)] * 10 + [(640, 360)] * 10
    assert decoder.stats.snapshot().resolution_changes == 1


def test_decoder_recovers_at_the_next_key_frame_after_an_error(h264_stream):
    decoder = H264Decoder()
    units = h264_stream.access_units
    out = [f for au in units[:3] for f in decoder.decode(au)]
    assert len(out) == 3
    assert decoder.decode(b"\x00\x00\x00\x01\x65" + b"\xff" * 50) == []   # garbage IDR
    assert decoder.stats.decode_errors == 1 and decoder.needs_key_frame
    next_key = next(i for i in range(4, len(units)) if h264_stream.key_flags[i])
    skipped = [f for au in units[3:next_key] for f in decoder.decode(au)]
    assert skipped == [] and decoder.stats.frames_skipped == next_key - 3
    recovered = [f.to_ndarray().copy() for au in units[next_key:] for f in decoder.decode(au)]
    assert len(recovered) == len(units) - next_key
    assert np.array_equal(recovered[0], h264_stream.reference[next_key])


def test_pyav_releases_the_gil_during_decode_and_encode(tmp_path):
    """Another Python thread makes progress *inside* a single decode/encode call."""
    path = tmp_path / "big.h264"
    ffmpeg_h264(path, 1920, 1080, 8, 1)                 # every frame an IDR: slow to decode
    units = load_stream(path).access_units
    ticks: collections.deque[int] = collections.deque(maxlen=200_000)   # bounded memory
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(time.perf_counter_ns())

    def ran_inside(t0: int, t1: int) -> bool:
        return any(t0 < t < t1 for t in list(ticks))

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        decode_hits = encode_hits = 0
        decoder = H264Decoder()
        for au in units:
            t0 = time.perf_counter_ns()
            decoder._codec.decode(av.Packet(au))
            t1 = time.perf_counter_ns()
            decode_hits += ran_inside(t0, t1)
        encoder = H264Encoder(VideoLayer(1920, 1080, 30), preset="veryfast")
        frame = av.VideoFrame.from_ndarray(make_testsrc(1920, 1080, 1)[0], format="rgb24")
        encoder.encode(frame, now_ns=0)
        codec = encoder._codec
        yuv = frame.reformat(format="yuv420p")
        for i in range(6):
            yuv.pts = i + 10
            yuv.pict_type = av.video.frame.PictureType.I
            t0 = time.perf_counter_ns()
            codec.encode(yuv)
            t1 = time.perf_counter_ns()
            encode_hits += ran_inside(t0, t1)
    finally:
        stop.set()
        thread.join()
    assert decode_hits >= 1
    assert encode_hits >= 1


def test_decode_worker_delivers_on_its_own_thread(h264_stream):
    got, threads = [], set()
    done = threading.Event()

    def on_frame(frame):
        got.append(frame.rtp_timestamp)
        threads.add(threading.current_thread().name)
        if len(got) == len(h264_stream.access_units):
            done.set()

    worker = DecodeWorker(on_frame, name="decode-test")
    for i, au in enumerate(h264_stream.access_units):
        worker.submit(EncodedVideoFrame(au, i * 3000, 1 if h264_stream.key_flags[i] else 0))
    assert done.wait(10)
    worker.close()
    assert got == [i * 3000 for i in range(len(h264_stream.access_units))]
    assert threads == {"decode-test"}


# ---- encode ----------------------------------------------------------------


def test_encode_decode_round_trip_and_zero_latency():
    source = make_testsrc(640, 360, 30)
    encoder = H264Encoder(VideoLayer(640, 360, 30), bitrate=1_500_000)
    decoder = H264Decoder()
    decoded = []
    for i, img in enumerate(source):
        units = encoder.encode(img, now_ns=i * 33_333_334)
        assert len(units) == 1            # no B-frames, no lookahead: one in, one out
        for frame in decoder.decode(units[0]):
            decoded.append(frame.to_ndarray("rgb24").copy())
    assert len(decoded) == 30
    assert min(psnr(a, b) for a, b in zip(decoded, source)) > 28
    stats = encoder.stats.snapshot()
    assert stats.frames == 30 and stats.key_frames == 1


def test_key_frame_on_request_is_an_idr_with_parameter_sets():
    source = make_testsrc(320, 180, 12)
    encoder = H264Encoder(VideoLayer(320, 180, 30), key_frame_interval_s=100)
    kinds = []
    for i, img in enumerate(source):
        if i == 7:
            encoder.request_key_frame()
        (unit,) = encoder.encode(img, now_ns=i * 33_333_334)
        kinds.append([n[0] & 0x1F for n in split_annexb(unit.data)])
        assert unit.key_frame == (i in (0, 7))
    assert 5 in kinds[0] and 5 in kinds[7]
    assert kinds[7][:2] == [7, 8]              # SPS, PPS before the IDR
    assert all(5 not in k for i, k in enumerate(kinds) if i not in (0, 7))


def test_key_frame_timer():
    source = make_testsrc(320, 180, 1)[0]
    encoder = H264Encoder(VideoLayer(320, 180, 30), key_frame_interval_s=0.5)
    keys = [encoder.encode(source, now_ns=i * 33_333_334)[0].key_frame for i in range(40)]
    assert [i for i, k in enumerate(keys) if k] == [0, 15, 30]


def test_frame_rate_control_drops_extra_frames():
    source = make_testsrc(320, 180, 1)[0]
    encoder = H264Encoder(VideoLayer(320, 180, 7.5))
    produced = sum(len(encoder.encode(source, now_ns=i * 33_333_334)) for i in range(50))
    assert produced == 13                    # 1.67 s at 7.5 fps out of 50 input frames at 30
    assert encoder.frames_dropped == 37


def test_bitrate_control():
    source = make_testsrc(640, 360, 60)
    sizes = {}
    for bitrate in (150_000, 1_200_000):
        encoder = H264Encoder(VideoLayer(640, 360, 30), bitrate=bitrate)
        sizes[bitrate] = sum(len(u.data) for i, img in enumerate(source)
                             for u in encoder.encode(img, now_ns=i * 33_333_334))
    # 2 s of video: each close to its budget, and clearly apart
    assert sizes[150_000] * 8 / 2 < 150_000 * 2.0
    assert sizes[1_200_000] > 2 * sizes[150_000]


@pytest.mark.parametrize("layer", SEND_LADDER, ids=lambda l: l.name)
def test_send_ladder_sizes_from_1080p(layer):
    assert fit_size(1920, 1080, layer) == (layer.width, layer.height)


def test_ladder_fits_any_input_without_upscaling():
    assert fit_size(1000, 1000, SEND_LADDER[1]) == (720, 720)
    assert fit_size(640, 480, SEND_LADDER[0]) == (640, 480)
    assert fit_size(1921, 1081, VideoLayer(424, 240, 15)) == (424, 240)   # snapped
    assert fit_size(1080, 1920, SEND_LADDER[1]) == (404, 720)            # portrait
    assert pick_layer(700, 400, 30) == VideoLayer(640, 360, 30)
    assert pick_layer(700, 400, 10) == VideoLayer(320, 180, 7.5)
    assert VBSS_LADDER[-1].fps == 1.875 and SEND_LADDER[-1].fps == 1.875


def test_encoder_scales_odd_input_into_the_layer():
    img = np.zeros((1000, 1000, 3), np.uint8)
    encoder = H264Encoder(SEND_LADDER[1])
    (unit,) = encoder.encode(img, now_ns=0)
    (frame,) = H264Decoder().decode(unit)
    assert (frame.width, frame.height) == (720, 720)


def test_simulcast_three_layers():
    source = make_testsrc(1280, 720, 1)[0]
    layers = [VideoLayer(1280, 720, 30), VideoLayer(640, 360, 15), VideoLayer(320, 180, 1.875)]
    simulcast = SimulcastEncoder(layers)
    decoders = {layer: H264Decoder() for layer in layers}
    counts = {layer: 0 for layer in layers}
    for i in range(60):
        for layer, units in simulcast.encode(source, now_ns=i * 33_333_334).items():
            for unit in units:
                for frame in decoders[layer].decode(unit):
                    assert (frame.width, frame.height) == (layer.width, layer.height)
                    counts[layer] += 1
    assert counts == {layers[0]: 60, layers[1]: 30, layers[2]: 4}
    with pytest.raises(ValueError):
        SimulcastEncoder(layers + [VideoLayer(160, 90, 15)])


def test_vbss_ladder_low_frame_rate():
    source = make_testsrc(1920, 1080, 1)[0]
    encoder = H264Encoder(VBSS_LADDER[3], preset="ultrafast")
    produced = [u for i in range(120) for u in encoder.encode(source, now_ns=i * 33_333_334)]
    assert len(produced) == 8               # 4 s at 1.875 fps
    (frame,) = H264Decoder().decode(produced[0])
    assert (frame.width, frame.height) == (1920, 1080)


# ---- stats -------------------------------------------------------------------


def test_stats_fps_bitrate_and_freezes():
    now = [0]
    stats = VideoStatsCounter(clock=lambda: now[0])
    for i in range(30):
        now[0] = i * 33_333_333
        stats.on_frame(1000, 640, 360, key=i == 0)
    snap = stats.snapshot()
    assert snap.fps == 30 and snap.bitrate_bps == 30 * 8000 and snap.key_frames == 1
    now[0] += 1_500_000_000                    # 1.5 s without a frame: a freeze
    assert stats.snapshot().freezes == 1
    stats.on_frame(1000, 1280, 720)
    snap = stats.snapshot()
    assert snap.freezes == 1 and snap.freeze_ms_total > 1000
    assert snap.resolution_changes == 1 and (snap.width, snap.height) == (1280, 720)


def test_converter_scales_with_a_cached_context(h264_stream):
    decoder = H264Decoder()
    frame = decoder.decode(h264_stream.access_units[0])[0]
    converter = FrameConverter()
    small = converter.reformat(frame.frame, 160, 120, "rgb24")
    assert (small.width, small.height, small.format.name) == (160, 120, "rgb24")

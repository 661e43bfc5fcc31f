"""H.264 decode and encode through PyAV, the Teams send ladders, simulcast,
and per-stream video statistics.

Where the GIL goes (PyAV 18, checked in its sources and by
tests/mediacore/video/test_codecs.py): ``CodecContext.decode`` and
``encode`` release the GIL around ``avcodec_send_packet`` /
``avcodec_receive_frame`` / ``avcodec_send_frame`` /
``avcodec_receive_packet``, and ``VideoReformatter.reformat`` around
``sws_scale_frame`` and the output buffer allocation. So decoders of
different streams on different threads run in parallel, and the codec work of
one stream never stalls the asyncio loop or another Python thread for more than
PyAV's per-call bookkeeping. A second thread *within* one stream buys little
here (decode ×1.6, encode ×1.2): scale by streams, one decoder thread each
(:class:`DecodeWorker`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from .frames import DecodedVideoFrame, FrameConverter
from .h264_rtp import FRAME_KEY, FRAME_RESYNC, EncodedVideoFrame

log = logging.getLogger(__name__)

VIDEO_CLOCK_HZ = 90000


# ---- ladders ---------------------------------------------------------------


@dataclass(frozen=True, order=True)
class VideoLayer:
    width: int
    height: int
    fps: float

    @property
    def name(self) -> str:
        return f"{self.width}x{self.height}@{self.fps:g}"


# The Teams send ladder (main video), best first.
SEND_LADDER: tuple[VideoLayer, ...] = (
    VideoLayer(1920, 1080, 30),
    VideoLayer(1280, 720, 30),
    VideoLayer(960, 540, 30),
    VideoLayer(640, 360, 30),
    VideoLayer(640, 360, 15),
    VideoLayer(424, 240, 15),
    VideoLayer(320, 180, 15),
    VideoLayer(320, 180, 7.5),
    VideoLayer(320, 180, 3.75),
    VideoLayer(320, 180, 1.875),
)

# Screen sharing (VBSS): full resolution, low and falling frame rates.
VBSS_LADDER: tuple[VideoLayer, ...] = (
    VideoLayer(1920, 1080, 15),
    VideoLayer(1920, 1080, 7.5),
    VideoLayer(1920, 1080, 3.75),
    VideoLayer(1920, 1080, 1.875),
    VideoLayer(1280, 720, 7.5),
    VideoLayer(1280, 720, 3.75),
    VideoLayer(1280, 720, 1.875),
)


def fit_size(width: int, height: int, layer: VideoLayer) -> tuple[int, int]:
    """The largest even size inside the layer's box with the input's aspect
    ratio (never upscaled); within 2% of the box it snaps to the box (Teams'
    424x240 is not quite 16:9)."""
    scale = min(layer.width / width, layer.height / height, 1.0)
    w = max(2, int(width * scale) & ~1)
    h = max(2, int(height * scale) & ~1)
    if abs(w - layer.width) <= layer.width * 0.02 and abs(h - layer.height) <= layer.height * 0.02:
        return layer.width, layer.height
    return w, h


def pick_layer(
    max_width: int, max_height: int, max_fps: float = 30.0, ladder: Sequence[VideoLayer] = SEND_LADDER
) -> VideoLayer:
    """The best layer of ``ladder`` within the limits (the last one if none fits)."""
    for layer in ladder:
        if layer.width <= max_width and layer.height <= max_height and layer.fps <= max_fps:
            return layer
    return ladder[-1]


def default_bitrate(layer: VideoLayer) -> int:
    """A bitrate for a layer: ~0.1 bit per pixel at 30 fps, scaled with fps."""
    bits = layer.width * layer.height * 0.1 * min(layer.fps, 30) * (0.5 + layer.fps / 60)
    return int(max(64_000, min(bits, 4_000_000)))


# ---- statistics ------------------------------------------------------------


@dataclass(frozen=True)
class VideoStreamStats:
    frames: int
    key_frames: int
    bytes: int
    fps: float  # over the last second
    bitrate_bps: float  # over the last second
    width: int
    height: int
    freezes: int  # gaps of more than freeze_threshold between frames
    freeze_ms_total: float
    decode_errors: int
    frames_skipped: int  # not decoded while waiting for a key frame after an error
    resolution_changes: int
    plis_sent: int = 0  # key-frame requests on the wire (receive sockets: from the
    firs_sent: int = 0  # engine's stream counters), RFC 4585 PLI / RFC 5104 FIR


class VideoStatsCounter:
    """Per-stream counters; ``on_frame`` is cheap (a deque of one-second history)."""

    def __init__(self, freeze_threshold_s: float = 1.0, clock: Callable[[], int] = time.monotonic_ns):
        self.freeze_threshold_ns = int(freeze_threshold_s * 1e9)
        self._clock = clock
        self.frames = self.key_frames = self.bytes = 0
        self.freezes = 0
        self.freeze_ns_total = 0
        self.decode_errors = 0
        self.frames_skipped = 0
        self.resolution_changes = 0
        self.width = self.height = 0
        self._last_ns: int | None = None
        self._window: list[tuple[int, int]] = []  # (time_ns, bytes)
        self._lock = threading.Lock()

    def on_frame(
        self, size_bytes: int, width: int = 0, height: int = 0, key: bool = False, now_ns: int | None = None
    ) -> None:
        now = self._clock() if now_ns is None else now_ns
        with self._lock:
            if self._last_ns is not None and now - self._last_ns > self.freeze_threshold_ns:
                self.freezes += 1
                self.freeze_ns_total += now - self._last_ns
            self._last_ns = now
            self.frames += 1
            self.key_frames += bool(key)
            self.bytes += size_bytes
            if width and (width, height) != (self.width, self.height):
                if self.width:
                    self.resolution_changes += 1
                self.width, self.height = width, height
            self._window.append((now, size_bytes))
            cutoff = now - 1_000_000_000
            if self._window[0][0] <= cutoff:
                self._window = [e for e in self._window if e[0] > cutoff]

    def snapshot(self, now_ns: int | None = None) -> VideoStreamStats:
        now = self._clock() if now_ns is None else now_ns
        with self._lock:
            recent = [e for e in self._window if e[0] > now - 1_000_000_000]
            freezes, freeze_ns = self.freezes, self.freeze_ns_total
            if self._last_ns is not None and now - self._last_ns > self.freeze_threshold_ns:
                freezes += 1  # an ongoing freeze counts too
                freeze_ns += now - self._last_ns
            return VideoStreamStats(
                self.frames,
                self.key_frames,
                self.bytes,
                float(len(recent)),
                8.0 * sum(b for _, b in recent),
                self.width,
                self.height,
                freezes,
                freeze_ns / 1e6,
                self.decode_errors,
                self.frames_skipped,
                self.resolution_changes,
            )


# ---- decoder ---------------------------------------------------------------


class H264Decoder:
    """Decodes the access units of one stream with PyAV.

    Frames come out as :class:`DecodedVideoFrame` (PyAV frame + numpy views).
    A resolution change mid-stream needs nothing: the new SPS reconfigures the
    decoder. After a decode error the decoder is rebuilt and frames are skipped
    until the next key frame; ``needs_key_frame`` tells the owner to ask for one.
    """

    def __init__(
        self,
        *,
        thread_count: int = 1,
        source_id: int = 0,
        socket_id: int = 0,
        stats: VideoStatsCounter | None = None,
        converter: FrameConverter | None = None,
    ) -> None:
        self.thread_count = thread_count
        self.source_id = source_id
        self.socket_id = socket_id
        self.stats = stats or VideoStatsCounter()
        self.converter = converter or FrameConverter()
        self.needs_key_frame = False
        self._codec = self._open()

    def _open(self):
        codec = av.CodecContext.create("h264", "r")
        codec.thread_count = self.thread_count
        if self.thread_count != 1:
            codec.thread_type = "AUTO"
        return codec

    def reset(self) -> None:
        """Drop the decoder state; decoding resumes at the next key frame."""
        self._codec = self._open()
        self.needs_key_frame = True

    def decode(self, unit: EncodedVideoFrame | bytes | memoryview) -> list[DecodedVideoFrame]:
        if isinstance(unit, EncodedVideoFrame):
            data, flags, ts, arrival = unit.data, unit.flags, unit.rtp_timestamp, unit.last_arrival_ns
        else:
            data, flags, ts, arrival = unit, 0, 0, 0
            if self.needs_key_frame and _has_idr(data):
                flags = FRAME_KEY
        key = bool(flags & FRAME_KEY)
        if self.needs_key_frame:
            if not key:
                self.stats.frames_skipped += 1
                return []
            self.needs_key_frame = False
        if flags & FRAME_RESYNC and self.stats.frames:
            self._codec = self._open()  # the chain restarted: no stale references
        try:
            pictures = self._codec.decode(av.Packet(data))
        except av.error.FFmpegError as exc:
            self.stats.decode_errors += 1
            log.debug("decode error on source %s: %s", self.source_id, exc)
            self.reset()
            return []
        out = []
        for picture in pictures:
            self.stats.on_frame(len(data), picture.width, picture.height, key)
            out.append(
                DecodedVideoFrame(picture, ts, self.source_id, self.socket_id, key, arrival, self.converter)
            )
        return out

    def flush(self) -> list[DecodedVideoFrame]:
        try:
            pictures = self._codec.decode(None)
        except av.error.FFmpegError:
            return []
        return [
            DecodedVideoFrame(p, 0, self.source_id, self.socket_id, False, 0, self.converter)
            for p in pictures
        ]


def _has_idr(data) -> bool:
    b = bytes(data[:4096]) if len(data) > 4096 else bytes(data)
    i = b.find(b"\x00\x00\x01")
    while i >= 0 and i + 3 < len(b):
        if b[i + 3] & 0x1F == 5:
            return True
        i = b.find(b"\x00\x00\x01", i + 3)
    return False


class DecodeWorker:
    """A decoder on its own thread: ``submit`` encoded frames, decoded frames
    go to ``on_frame`` (called on the worker thread). PyAV releases the GIL
    while decoding, so workers of different streams run in parallel."""

    def __init__(
        self,
        on_frame: Callable[[DecodedVideoFrame], None],
        *,
        max_queue: int = 64,
        decoder: H264Decoder | None = None,
        name: str = "video-decode",
    ) -> None:
        self.decoder = decoder or H264Decoder()
        self.on_frame = on_frame
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, unit: EncodedVideoFrame) -> bool:
        """Queue a frame; False (counted) when the worker is behind. A dropped
        frame breaks the reference chain, so the decoder then waits for a key frame."""
        try:
            self._queue.put_nowait(unit)
            return True
        except queue.Full:
            self.dropped += 1
            self.decoder.needs_key_frame = True
            return False

    def _run(self) -> None:
        while True:
            unit = self._queue.get()
            if unit is None:
                return
            for frame in self.decoder.decode(unit):
                try:
                    self.on_frame(frame)
                except Exception:  # a processor's bug must not kill the stream
                    log.exception("video frame processor failed")

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)


# ---- encoder ---------------------------------------------------------------


class H264Encoder:
    """libx264 through PyAV with real-time settings: no B-frames, zero-latency
    tuning, constrained baseline (or main), one slice per frame, an IDR on
    request and every ``key_frame_interval_s``.

    ``encode`` takes frames of any size and pixel format (PyAV frames or numpy
    arrays) and scales them into the layer's box with a cached SwsContext.
    Frames arriving faster than the layer's frame rate are dropped (counted).
    Bitrate changes reopen the encoder at the next frame, which is then an IDR.
    """

    def __init__(
        self,
        layer: VideoLayer = SEND_LADDER[1],
        *,
        bitrate: int | None = None,
        profile: str = "baseline",
        preset: str = "ultrafast",
        key_frame_interval_s: float = 2.0,
        thread_count: int = 1,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        if profile not in ("baseline", "main"):
            raise ValueError("profile must be 'baseline' (constrained) or 'main'")
        self.layer = layer
        self.bitrate = bitrate or default_bitrate(layer)
        self.profile = profile
        self.preset = preset
        self.key_frame_interval_s = key_frame_interval_s
        self.thread_count = thread_count
        self.stats = VideoStatsCounter()
        self.frames_dropped = 0
        self._converter = FrameConverter()
        self._size: tuple[int, int] | None = None
        self._codec: av.video.codeccontext.VideoCodecContext | None = None
        self._force_key = True
        self._next_due_ns: int | None = None
        self._pts = 0
        self._last_key_pts: int | None = None
        if input_size:
            self._open(fit_size(*input_size, layer))

    @property
    def size(self) -> tuple[int, int] | None:
        return self._size

    def _open(self, size: tuple[int, int]) -> None:
        w, h = size
        fps = Fraction(self.layer.fps).limit_denominator(1000)
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = w, h
        codec.pix_fmt = "yuv420p"
        codec.time_base = Fraction(1, VIDEO_CLOCK_HZ)
        codec.framerate = fps
        codec.bit_rate = self.bitrate
        codec.gop_size = max(1, int(round(self.key_frame_interval_s * float(fps))))
        codec.max_b_frames = 0
        codec.thread_count = self.thread_count
        codec.options = {
            "preset": self.preset,
            "tune": "zerolatency",
            "profile": self.profile,
            "forced-idr": "1",
            "maxrate": str(self.bitrate),
            "bufsize": str(max(self.bitrate // 2, 32_000)),
            "x264-params": "repeat-headers=1:aud=0:scenecut=0",
        }
        codec.open()
        self._codec = codec
        self._size = size
        self._force_key = True

    def request_key_frame(self) -> None:
        """The next encoded frame is an IDR (remote PLI/FIR, a new subscriber)."""
        self._force_key = True

    def set_bitrate(self, bitrate: int) -> None:
        if bitrate != self.bitrate:
            self.bitrate = bitrate
            self._codec = None  # reopened at the next frame

    def set_layer(self, layer: VideoLayer) -> None:
        if layer != self.layer:
            self.layer = layer
            self._codec = None

    def encode(
        self, frame: av.VideoFrame | np.ndarray, *, now_ns: int | None = None, format: str = "rgb24"
    ) -> list[EncodedVideoFrame]:
        """Encode one input frame (numpy arrays are taken as ``format``).
        Returns the access units (Annex-B, SPS/PPS before every IDR) with
        90 kHz RTP timestamps, or [] when the frame was dropped for pacing."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        period_ns = int(1e9 / self.layer.fps)
        if self._next_due_ns is not None and now < self._next_due_ns - period_ns // 4:
            self.frames_dropped += 1
            return []
        # keep to the frame-rate grid; only when more than a period behind it
        # (a stall), restart the grid from now
        due = (now if self._next_due_ns is None else self._next_due_ns) + period_ns
        self._next_due_ns = now + period_ns if now - due > period_ns else due
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(frame, format=format)
        target = fit_size(frame.width, frame.height, self.layer)
        if self._codec is None or target != self._size:
            self._open(target)
        picture = self._converter.reformat(frame, width=target[0], height=target[1], format="yuv420p")
        pts = now * VIDEO_CLOCK_HZ // 1_000_000_000
        if pts <= self._pts:
            pts = self._pts + 1
        self._pts = pts
        picture.pts = pts
        picture.time_base = Fraction(1, VIDEO_CLOCK_HZ)
        if (
            not self._force_key
            and self._last_key_pts is not None
            and pts - self._last_key_pts >= self.key_frame_interval_s * VIDEO_CLOCK_HZ
        ):
            self._force_key = True
        picture.pict_type = (
            av.video.frame.PictureType.I if self._force_key else av.video.frame.PictureType.NONE
        )
        self._force_key = False
        assert self._codec is not None  # opened above for this size
        return [self._unit(packet) for packet in self._codec.encode(picture)]

    def _unit(self, packet) -> EncodedVideoFrame:
        data = bytes(packet)
        key = bool(packet.is_keyframe)
        if key:
            self._last_key_pts = packet.pts
        w, h = self._size or (0, 0)
        self.stats.on_frame(len(data), w, h, key)
        return EncodedVideoFrame(data, int(packet.pts) & 0xFFFFFFFF, FRAME_KEY if key else 0)

    def flush(self) -> list[EncodedVideoFrame]:
        if self._codec is None:
            return []
        return [self._unit(p) for p in self._codec.encode(None)]


class SimulcastEncoder:
    """Up to three layers of one source, each its own encoder; one input frame
    feeds every layer whose frame rate wants it."""

    MAX_LAYERS = 3

    def __init__(self, layers: Iterable[VideoLayer], **encoder_options) -> None:
        layers = list(layers)
        if not 1 <= len(layers) <= self.MAX_LAYERS:
            raise ValueError(f"simulcast takes 1 to {self.MAX_LAYERS} layers")
        self.encoders = {layer: H264Encoder(layer, **encoder_options) for layer in layers}

    def request_key_frame(self, layer: VideoLayer | None = None) -> None:
        for lay, enc in self.encoders.items():
            if layer is None or lay == layer:
                enc.request_key_frame()

    def encode(
        self, frame: av.VideoFrame | np.ndarray, *, now_ns: int | None = None, format: str = "rgb24"
    ) -> dict[VideoLayer, list[EncodedVideoFrame]]:
        now = time.monotonic_ns() if now_ns is None else now_ns
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(frame, format=format)
        return {layer: enc.encode(frame, now_ns=now) for layer, enc in self.encoders.items()}


__all__ = [
    "DecodeWorker",
    "H264Decoder",
    "H264Encoder",
    "SEND_LADDER",
    "SimulcastEncoder",
    "VBSS_LADDER",
    "VideoLayer",
    "VideoStatsCounter",
    "VideoStreamStats",
    "default_bitrate",
    "fit_size",
    "pick_layer",
]

"""Video analytics per participant: frame rate, resolution, motion and scene
changes, freezes, faces when OpenCV (``opencv-python-headless<5``) is
installed, and JPEG snapshots on an interval.

Works on the luma plane only (a numpy view of a decoded yuv420p/NV12 frame),
downsampled by striding, so it costs a few tens of µs per frame whatever the
resolution. Freezes are counted by the video sockets' own counter
(:class:`~mediacore.video.codecs.VideoStatsCounter`) fed with the frames'
media-clock timestamps. Snapshots are encoded with PyAV's ``mjpeg`` encoder
(FFmpeg's, already a dependency): no image library is needed.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..events import MediaEvent, ParticipantLeft, ScreenShareStopped
from ..processor import Processor, ProcessorContext
from ..video.codecs import VideoStatsCounter
from ..video.frames import DecodedVideoFrame

try:  # optional extra: mediabot[faces]
    import cv2
except Exception:  # pragma: no cover - absence is a supported configuration
    cv2 = None


@dataclass
class StreamAnalytics:
    source: str
    frames: int = 0
    width: int = 0
    height: int = 0
    resolution_changes: int = 0
    scene_changes: int = 0
    motion: float = 0.0  # mean |Δluma| of the last frame pair, 0..255
    motion_frames: int = 0  # frames with visible motion
    faces: int | None = None  # faces in the last analysed frame (None: no OpenCV)
    first_ts_100ns: int | None = None
    last_ts_100ns: int | None = None
    _recent: deque = field(default_factory=lambda: deque(maxlen=64), repr=False)

    @property
    def fps(self) -> float:
        """Frame rate over the recent window (timestamps on the media clock)."""
        if len(self._recent) < 2:
            return 0.0
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) * 1e7 / span if span > 0 else 0.0

    @property
    def mean_fps(self) -> float:
        if self.frames < 2 or not self.last_ts_100ns or self.first_ts_100ns is None:
            return 0.0
        span = self.last_ts_100ns - self.first_ts_100ns
        return (self.frames - 1) * 1e7 / span if span > 0 else 0.0

    def summary(self) -> dict:
        return {
            "frames": self.frames,
            "fps": round(self.mean_fps, 2),
            "width": self.width,
            "height": self.height,
            "scene_changes": self.scene_changes,
            "motion_frames": self.motion_frames,
            "faces": self.faces,
        }


class VideoAnalyzer:
    """Feed luma planes with :meth:`push`; read :attr:`streams`."""

    def __init__(
        self,
        *,
        scene_threshold: float = 40.0,
        motion_threshold: float = 1.0,
        face_every: int = 15,
        detect_faces: bool = True,
    ) -> None:
        self.scene_threshold = scene_threshold
        self.motion_threshold = motion_threshold
        self.face_every = face_every
        self.streams: dict[str, StreamAnalytics] = {}
        self._prev: dict[str, np.ndarray] = {}
        self._cascade = None
        if detect_faces and cv2 is not None:
            path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
            self._cascade = cv2.CascadeClassifier(path)

    def push(self, source: str, luma: np.ndarray, timestamp_100ns: int) -> StreamAnalytics:
        st = self.streams.get(source)
        if st is None:
            st = self.streams[source] = StreamAnalytics(source)
        h, w = luma.shape
        if (w, h) != (st.width, st.height):
            if st.frames:
                st.resolution_changes += 1
            st.width, st.height = w, h
            self._prev.pop(source, None)
        st.frames += 1
        if st.first_ts_100ns is None:
            st.first_ts_100ns = timestamp_100ns
        st.last_ts_100ns = timestamp_100ns
        st._recent.append(timestamp_100ns)
        step = max(1, min(h, w) // 64)
        small = luma[::step, ::step].astype(np.int16)
        prev = self._prev.get(source)
        if prev is not None and prev.shape == small.shape:
            st.motion = float(np.mean(np.abs(small - prev)))
            if st.motion > self.motion_threshold:
                st.motion_frames += 1
            if st.motion > self.scene_threshold:
                st.scene_changes += 1
        self._prev[source] = small
        if self._cascade is not None and st.frames % self.face_every == 1:
            gray = cv2.equalizeHist(np.ascontiguousarray(luma))
            found = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
            st.faces = len(found)
        return st


def encode_jpeg(frame: DecodedVideoFrame) -> bytes:
    """One frame as a baseline JPEG (PyAV's ``mjpeg`` encoder, full-range
    yuvj420p, the encoder's default quality)."""
    import av

    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height = frame.width - frame.width % 2, frame.height - frame.height % 2
    enc.pix_fmt = "yuvj420p"
    enc.time_base = Fraction(1, 25)
    img = frame.frame.reformat(enc.width, enc.height, "yuvj420p")
    img.pts = 0
    data = b"".join(bytes(p) for p in enc.encode(img))
    return data + b"".join(bytes(p) for p in enc.encode(None))


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", label.replace("/", "-")).strip("_")[:60] or "x"


class VideoAnalytics(Processor):
    """Built-in processor ``video_analytics``: every participant's camera at
    ``size`` (default 640x360) and the screen share, analysed per stream
    (frame rate, size, motion, scene changes, freezes, faces with OpenCV).
    Writes ``video.json`` to the call's output folder at the end:
    ``{participant display name (screens: "<name>/screen"): {participant_id,
    frames, fps, width, height, first, last, freezes, freeze_ms, snapshots,
    ...}}`` (``first``/``last``: seconds since the call's media started).

    **Freezes**: a gap of more than ``freeze_ms`` between two frames of a
    stream, or between its last frame and the end (the processor's stop, the
    participant's leave, the end of the screen share) while it is subscribed:
    ``freezes`` counts them, ``freeze_ms`` is their total length.

    **Snapshots**: every ``snapshot_interval_s`` (0: none) of a stream's
    frames, its frame as a JPEG, ``snapshots/<name>-<t>.jpg`` in the call's
    output folder (``<t>``: seconds since the call's media started, with
    two decimals; ``<name>``: the stream's label, ``/`` as ``-``).

    Options: ``size`` ([w, h]), ``screen_share`` (bool), ``faces`` (bool),
    ``file``, ``freeze_ms``, ``snapshot_interval_s``.
    """

    audio = None
    mode = "thread"

    def __init__(
        self,
        size: tuple[int, int] | list[int] = (640, 360),
        screen_share: bool = True,
        faces: bool = True,
        file: str = "video.json",
        freeze_ms: int = 1000,
        snapshot_interval_s: float = 0.0,
    ) -> None:
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"size must be [width, height], not {size!r}")
        if freeze_ms <= 0:
            raise ValueError(f"freeze_ms must be > 0, not {freeze_ms!r}")
        if snapshot_interval_s < 0:
            raise ValueError(f"snapshot_interval_s must be >= 0, not {snapshot_interval_s!r}")
        self.freeze_ms = int(freeze_ms)
        self.snapshot_interval_s = float(snapshot_interval_s)
        self._counters: dict[str, VideoStatsCounter] = {}
        self._ended: dict[str, int] = {}  # label -> when its stream ended (100 ns)
        self._labels: dict[str | None, set[str]] = {}  # participant id -> their labels
        self._screen_sources: dict[int, str] = {}
        self._next_snapshot: dict[str, int] = {}
        self._snapshots: dict[str, list[str]] = {}
        self.video = (int(size[0]), int(size[1]))
        self.screen_share = bool(screen_share)
        self.faces = faces
        self.file = file
        self.analyzer: VideoAnalyzer | None = None
        self._ids: dict[str, str | None] = {}
        self._ctx: ProcessorContext | None = None

    def on_start(self, ctx: ProcessorContext) -> None:
        self._ctx = ctx
        self.analyzer = VideoAnalyzer(detect_faces=self.faces)

    def on_video(self, frame: DecodedVideoFrame) -> None:
        if self.analyzer is None:
            return
        name = frame.display_name or frame.participant_id or str(frame.source_id)
        label = f"{name}/screen" if frame.kind == "screen" else name
        self._ids[label] = frame.participant_id
        ts = frame.timestamp_100ns
        self.analyzer.push(label, frame.planes()[0], ts)
        counter = self._counters.get(label)
        if counter is None:
            counter = self._counters[label] = VideoStatsCounter(self.freeze_ms / 1000)
            self._labels.setdefault(frame.participant_id, set()).add(label)
        if frame.kind == "screen":
            self._screen_sources[frame.source_id] = label
        self._ended.pop(label, None)  # streaming (again)
        counter.on_frame(0, frame.width, frame.height, frame.key_frame, now_ns=ts * 100)
        if self.snapshot_interval_s > 0 and ts >= self._next_snapshot.get(label, ts):
            self._next_snapshot[label] = ts + int(self.snapshot_interval_s * 1e7)
            self._snapshot(label, frame)

    def _snapshot(self, label: str, frame: DecodedVideoFrame) -> None:
        ctx = self._ctx
        if ctx is None or ctx.output_dir is None:
            return
        folder = Path(ctx.output_dir) / "snapshots"
        folder.mkdir(parents=True, exist_ok=True)
        t = (frame.timestamp_100ns - ctx.epoch_100ns) / 1e7
        path = folder / f"{_safe(label)}-{t:.2f}.jpg"
        tmp = path.with_suffix(".jpg.tmp")
        tmp.write_bytes(encode_jpeg(frame))
        tmp.replace(path)  # a reader never sees half a file
        self._snapshots.setdefault(label, []).append(f"snapshots/{path.name}")

    def on_event(self, event: MediaEvent) -> None:
        # a stream that ended is not frozen: no more frames were due
        if isinstance(event, ParticipantLeft):
            for label in self._labels.get(event.participant_id, ()):
                self._ended.setdefault(label, event.timestamp_100ns)
        elif isinstance(event, ScreenShareStopped):
            screen = self._screen_sources.get(event.source_id)
            if screen is not None:
                self._ended.setdefault(screen, event.timestamp_100ns)

    def summary(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if self.analyzer is None:
            return out
        epoch = self._ctx.epoch_100ns if self._ctx else 0
        now = time.monotonic_ns() // 100
        for label, st in sorted(self.analyzer.streams.items()):
            d = {"participant_id": self._ids.get(label), **st.summary()}
            counter = self._counters.get(label)
            if counter is not None:
                stats = counter.snapshot(now_ns=self._ended.get(label, now) * 100)
                d["freezes"] = stats.freezes
                d["freeze_ms"] = round(stats.freeze_ms_total)
            d["snapshots"] = list(self._snapshots.get(label, ()))
            if st.first_ts_100ns is not None and st.last_ts_100ns is not None:
                d["first"] = round((st.first_ts_100ns - epoch) / 1e7, 2)
                d["last"] = round((st.last_ts_100ns - epoch) / 1e7, 2)
            out[label] = d
        return out

    def on_stop(self) -> dict[str, dict[str, Any]]:
        summary = self.summary()
        if self._ctx is not None and self._ctx.output_dir is not None:
            self._ctx.output_dir.mkdir(parents=True, exist_ok=True)
            (self._ctx.output_dir / self.file).write_text(json.dumps(summary, indent=2))
        return summary

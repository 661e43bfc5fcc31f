"""Video analytics per participant: frame rate, resolution, motion and scene
changes, and faces when OpenCV (``opencv-python-headless<5``) is installed.

Works on the luma plane only (a numpy view of a decoded yuv420p/NV12 frame),
downsampled by striding, so it costs a few tens of µs per frame whatever the
resolution.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..processor import Processor, ProcessorContext
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


class VideoAnalytics(Processor):
    """Built-in processor ``video_analytics``: every participant's camera at
    ``size`` (default 640x360) and the screen share, analysed per stream
    (frame rate, size, motion, scene changes, faces with OpenCV). Writes
    ``video.json`` to the call's output folder at the end:
    ``{participant display name (screens: "<name>/screen"): {participant_id,
    frames, fps, width, height, first, last, ...}}`` (``first``/``last``:
    seconds since the call's media started). Options: ``size`` ([w, h]),
    ``screen_share`` (bool), ``faces`` (bool), ``file``.
    """

    audio = None
    mode = "thread"

    def __init__(
        self,
        size: tuple[int, int] | list[int] = (640, 360),
        screen_share: bool = True,
        faces: bool = True,
        file: str = "video.json",
    ) -> None:
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"size must be [width, height], not {size!r}")
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
        self.analyzer.push(label, frame.planes()[0], frame.timestamp_100ns)

    def summary(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if self.analyzer is None:
            return out
        epoch = self._ctx.epoch_100ns if self._ctx else 0
        for label, st in sorted(self.analyzer.streams.items()):
            d = {"participant_id": self._ids.get(label), **st.summary()}
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

"""Decoded video frames: a PyAV ``VideoFrame`` plus metadata, with numpy views.

Costs (PyAV 18 on the 2-vCPU development VM, at 720p; docs/video.md, "Codecs"):

* :meth:`DecodedVideoFrame.planes` — zero copy: numpy views of the decoder's
  Y, U and V planes (valid while the frame object lives).
* ``to_ndarray("yuv420p")`` / ``"nv12"`` — one copy, into ``out`` or a pooled
  buffer (``yuv420p`` ~0.1 ms at 720p; ``nv12`` goes through swscale).
* ``to_ndarray("rgb24")`` / ``"bgr24"`` — one swscale pass through the
  :class:`FrameConverter`'s reused ``VideoReformatter`` (its SwsContext is
  cached; ~0.36 ms at 720p vs ~1.4 ms for PyAV's default per-frame context),
  returned as a view of the converted frame: no second copy.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.reformatter import VideoReformatter

FORMATS = ("yuv420p", "nv12", "rgb24", "bgr24", "gray")


def plane_view(plane, width: int, height: int, bytes_per_pixel: int = 1) -> np.ndarray:
    """A (height, width[, bpp]) numpy view of a PyAV plane, without copying."""
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(height, plane.line_size)
    view = rows[:, : width * bytes_per_pixel]
    return view.reshape(height, width, bytes_per_pixel) if bytes_per_pixel > 1 else view


class BufferPool:
    """Reusable numpy buffers, one small pool per shape.

    A buffer is handed out again only when nobody else holds it any more (its
    reference count says only the pool does), so results stay valid as long
    as the caller keeps them, and steady-state conversion touches no fresh
    pages (a fresh 720p frame costs ~0.85 ms of page faults here).
    """

    def __init__(self, per_shape: int = 4) -> None:
        self._per_shape = per_shape
        self._pools: dict[tuple, list[np.ndarray]] = {}
        self._lock = threading.Lock()

    def get(self, shape: tuple[int, ...]) -> np.ndarray:
        with self._lock:
            pool = self._pools.setdefault(shape, [])
            for buf in pool:
                # refs: the pool list, `buf`, getrefcount's argument
                if sys.getrefcount(buf) <= 3:
                    return buf
            buf = np.empty(shape, dtype=np.uint8)
            if len(pool) < self._per_shape:
                pool.append(buf)
            return buf


class FrameConverter:
    """Pixel-format conversion and scaling with one cached SwsContext per
    (stream, target) — PyAV's default builds one per call."""

    def __init__(self, pool: BufferPool | None = None) -> None:
        self._reformatter = VideoReformatter()
        self.pool = pool or BufferPool()

    def reformat(
        self,
        frame: av.VideoFrame,
        width: int | None = None,
        height: int | None = None,
        format: str | None = None,
    ) -> av.VideoFrame:
        return self._reformatter.reformat(frame, width=width, height=height, format=format)

    def to_ndarray(
        self, frame: av.VideoFrame, format: str = "yuv420p", out: np.ndarray | None = None
    ) -> np.ndarray:
        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
        w, h = frame.width, frame.height
        if format in ("yuv420p", "gray") and frame.format.name == "yuv420p":
            shape = (h * 3 // 2, w) if format == "yuv420p" else (h, w)
            dst = out if out is not None else self.pool.get(shape)
            if dst.shape != shape:
                raise ValueError(f"out must have shape {shape}")
            dst[:h] = plane_view(frame.planes[0], w, h)
            if format == "yuv420p":
                cw, ch = w // 2, h // 2
                flat = dst.reshape(-1)
                y_end = w * h
                flat[y_end : y_end + cw * ch].reshape(ch, cw)[:] = plane_view(frame.planes[1], cw, ch)
                flat[y_end + cw * ch : y_end + 2 * cw * ch].reshape(ch, cw)[:] = plane_view(
                    frame.planes[2], cw, ch
                )
            return dst
        converted = self._reformatter.reformat(frame, format=format)
        if format in ("rgb24", "bgr24"):
            view = plane_view(converted.planes[0], w, h, 3)
        elif format == "gray":
            view = plane_view(converted.planes[0], w, h)
        elif format == "nv12":
            y = plane_view(converted.planes[0], w, h)
            uv = plane_view(converted.planes[1], w, h // 2)
            shape = (h * 3 // 2, w)
            dst = out if out is not None else self.pool.get(shape)
            dst[:h] = y
            dst[h:] = uv
            return dst
        else:  # yuv420p from another decoder output format
            return self.to_ndarray(converted, "yuv420p", out)
        if out is not None:
            np.copyto(out, view)
            return out
        return view


@dataclass
class DecodedVideoFrame:
    """A raw video frame from a decoder (``frame`` is PyAV's, yuv420p)."""

    frame: av.VideoFrame
    rtp_timestamp: int = 0
    source_id: int = 0
    socket_id: int = 0
    key_frame: bool = False
    arrival_ns: int = 0
    converter: FrameConverter | None = field(default=None, repr=False)
    #: sender time of the frame on the media clock (``time.monotonic_ns() // 100``):
    #: the stream's first arrival anchors it, then its RTP timestamps advance it
    timestamp_100ns: int = 0
    #: who sent it (set by the call's media from its source map)
    participant_id: str | None = None
    display_name: str | None = None
    #: "video" (a camera) or "screen" (video-based screen sharing)
    kind: str = "video"
    call_id: str | None = None

    @property
    def width(self) -> int:
        return self.frame.width

    @property
    def height(self) -> int:
        return self.frame.height

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Zero-copy (Y, U, V) views (yuv420p)."""
        f = self.frame
        if f.format.name != "yuv420p":
            f = self._converter().reformat(f, format="yuv420p")
        w, h = f.width, f.height
        return (
            plane_view(f.planes[0], w, h),
            plane_view(f.planes[1], w // 2, h // 2),
            plane_view(f.planes[2], w // 2, h // 2),
        )

    def to_ndarray(self, format: str = "yuv420p", out: np.ndarray | None = None) -> np.ndarray:
        """``yuv420p``/``nv12``: (h*3/2, w) packed; ``rgb24``/``bgr24``: (h, w, 3);
        ``gray``: (h, w). At most one copy (see the module notes)."""
        return self._converter().to_ndarray(self.frame, format, out)

    def _converter(self) -> FrameConverter:
        if self.converter is None:
            self.converter = FrameConverter()
        return self.converter

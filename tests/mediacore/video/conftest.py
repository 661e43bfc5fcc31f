"""Shared video fixtures: H.264 streams generated with the ffmpeg CLI (an
independent encoder) and their reference decode by PyAV."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest


@dataclass
class EncodedStream:
    path: Path
    width: int
    height: int
    access_units: list[bytes]     # Annex-B, as ffmpeg's h264 muxer wrote them
    key_flags: list[bool]
    reference: list[np.ndarray]   # PyAV's own decode (yuv420p, packed) of each access unit


def ffmpeg_h264(path: Path, width: int, height: int, frames: int, gop: int,
                rate: int = 30, extra: tuple[str, ...] = ()) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={rate}",
         "-frames:v", str(frames), "-c:v", "libx264", "-preset", "ultrafast",
         "-tune", "zerolatency", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
         "-g", str(gop), "-bf", "0", *extra, "-f", "h264", str(path)],
        check=True, timeout=60)


def load_stream(path: Path) -> EncodedStream:
    aus, keys, ref = [], [], []
    codec = av.CodecContext.create("h264", "r")
    with av.open(str(path), format="h264") as container:
        for packet in container.demux(video=0):
            if packet.size == 0:
                continue
            data = bytes(packet)
            aus.append(data)
            keys.append(bool(packet.is_keyframe))
            for frame in codec.decode(av.Packet(data)):
                ref.append(frame.to_ndarray())
    for frame in codec.decode(None):
        ref.append(frame.to_ndarray())
    h, w = ref[0].shape[0] * 2 // 3, ref[0].shape[1]
    return EncodedStream(path, w, h, aus, keys, ref)


@pytest.fixture(scope="session")
def h264_stream(tmp_path_factory) -> EncodedStream:
    """2 s of 320x240 testsrc2 at 30 fps, an IDR every 15 frames."""
    path = tmp_path_factory.mktemp("h264") / "testsrc2_320x240.h264"
    ffmpeg_h264(path, 320, 240, 60, 15)
    return load_stream(path)


@pytest.fixture(scope="session")
def h264_stream_slices(tmp_path_factory) -> EncodedStream:
    """640x360 with 4 slices per frame and larger frames (many FU-A packets)."""
    path = tmp_path_factory.mktemp("h264") / "testsrc2_640x360_slices.h264"
    ffmpeg_h264(path, 640, 360, 45, 15, extra=("-x264-params", "slices=4"))
    return load_stream(path)

"""The recorder's H.264 passthrough on a real call on loopback (a second
engine sends a camera with VideoSendSocket, libx264): the MP4 holds the
sender's exact access units with their RTP times, nothing is decoded for the
recorder, a simulcast switch to another size starts a new segment noted in
the index, and files cut anywhere — by a byte count or by ``kill -9`` of the
recorder's worker process — still play up to the cut (ffprobe)."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from mediacore import MediaHost, Source
from mediacore.processors.recorder import Recorder, split_nals, sps_size
from mediacore.video.codecs import VideoLayer
from mediacore.video.sockets import VideoSendSocket

from .test_callmedia import ALICE, CAROL_VIDEO, Remote, wait_for


def ffprobe_frames(path: Path) -> tuple[int, int, int]:
    """(frames read by decoding, width, height) as ffprobe sees them."""
    out = subprocess.run(["ffprobe", "-v", "quiet", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=codec_name,width,height,nb_read_frames",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)["streams"][0]
    assert s["codec_name"] == "h264"
    return int(s["nb_read_frames"]), int(s["width"]), int(s["height"])


def mp4_units(path: Path) -> list[tuple[int, list[bytes]]]:
    """Every packet of the file as (pts, its NAL units): the MP4 stores
    4-byte lengths where the Annex-B stream had start codes."""
    out = []
    with av.open(str(path)) as c:
        for p in c.demux(c.streams.video[0]):
            if p.size == 0:
                continue
            b, nals, i = bytes(p), [], 0
            while i < len(b):
                (n,) = struct.unpack_from(">I", b, i)
                nals.append(b[i + 4:i + 4 + n])
                i += 4 + n
            out.append((p.pts, nals))
    return out


class Camera:
    """Carol's camera on the remote: a moving picture at 15 fps, the access
    units it sent kept (NAL units, RTP timestamp)."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.sock = VideoSendSocket(remote.session, CAROL_VIDEO, key_frame_interval_s=1.0)
        self.sent: list[tuple[int, list[bytes]]] = []
        self.layer: VideoLayer | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Camera:
        self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            if self.layer is not None:
                self.sock.set_layer(self.layer)
                self.layer = None
            img = np.zeros((360, 640, 3), np.uint8)
            img[:, (i * 8) % 640:(i * 8) % 640 + 40] = 255
            img[..., 1] = (i * 5) % 255
            for u in self.sock.send_frame(img):
                self.sent.append((u.rtp_timestamp, split_nals(u.data)))
            self.sock.handle_events(self.remote.events[-20:])
            i += 1
            time.sleep(1 / 15)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def matches_sent(recorded: list[tuple[int, list[bytes]]], sent: list[tuple[int, list[bytes]]]) -> int:
    """Asserts the recorded units are a run of the sent ones, in order, with
    the sent RTP times (from the first) as pts; returns where the run starts."""
    start = next(i for i, (_, nals) in enumerate(sent) if nals == recorded[0][1])
    ts0 = sent[start][0]
    for k, (pts, nals) in enumerate(recorded):
        ts, want = sent[start + k]
        assert nals == want, f"access unit {k} differs"
        assert pts == (ts - ts0) & 0xFFFFFFFF, (k, pts, ts - ts0)
    return start


def test_the_camera_is_recorded_as_sent_and_a_new_size_starts_a_segment(tmp_path):
    with MediaHost(audio_workers=1) as host:
        media = host.create_call("call-pass", output_dir=tmp_path)
        remote = Remote(media)
        remote.add_audio(ALICE)
        media.update_sources([Source(ALICE, "p-alice", "Alice", "audio"),
                              Source(CAROL_VIDEO, "p-carol", "Carol", "video")])
        remote.start()
        cam = Camera(remote)
        try:
            assert wait_for(lambda: remote.session.engine.stats().datagrams_in > 0)
            runner = media.add_processor(Recorder(video_size=(640, 360), mode="thread",
                                                  flush_s=0.2))
            assert wait_for(lambda: (remote.subscriptions() or (0, []))[1]
                            == [(CAROL_VIDEO, (640, 360))])
            cam.start()
            time.sleep(3.0)
            sub = media._video_socket._sub(CAROL_VIDEO)
            assert sub.decoder is None and sub.encoded      # nothing decoded for the recorder
            cam.layer = VideoLayer(320, 180, 15)            # the sender switches layers
            time.sleep(2.5)
            index = media.remove_processor(runner)
        finally:
            cam.stop()
            media.close()
            remote.close()
    videos = [f for f in index["files"] if f["kind"] == "video"]
    assert [(f["segment"], f["width"], f["height"]) for f in videos] == [(1, 640, 360),
                                                                        (2, 320, 180)]
    assert videos[1]["reason"] == "size changed" and videos[1]["file"].endswith("-2.mp4")
    assert videos[0]["start_s"] < videos[1]["start_s"]
    people = {p["display_name"]: p for p in index["participants"]}
    assert people["Carol"]["video"] == videos[0]["file"]
    start = None
    for f in videos:
        path = tmp_path / f["file"]
        recorded = mp4_units(path)
        assert len(recorded) >= 25, (f["file"], len(recorded))
        frames, w, h = ffprobe_frames(path)
        assert (frames, w, h) == (len(recorded), f["width"], f["height"])
        first = matches_sent(recorded, cam.sent)
        if start is not None:   # the second segment goes on where the first ended
            assert first == start
        start = first + len(recorded)
    # a file cut at any byte still plays up to the cut: its whole fragments
    path = tmp_path / videos[0]["file"]
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) * 2 // 3])
    frames, _, _ = ffprobe_frames(cut)
    assert 0 < frames < len(mp4_units(path))


def test_sps_size_reads_cropped_sizes():
    from mediacore.video.codecs import H264Encoder

    for w, h in ((640, 360), (426, 240), (1280, 720)):
        unit = H264Encoder(VideoLayer(w, h, 15)).encode(np.zeros((h, w, 3), np.uint8),
                                                         now_ns=0)[0]
        sps = next(n for n in split_nals(unit.data) if n[0] & 0x1F == 7)
        assert sps_size(sps) == (w, h)


@pytest.mark.timeout(120)
def test_kill_9_of_the_recorders_worker_leaves_a_camera_file_that_plays(tmp_path):
    with MediaHost(audio_workers=1) as host:
        media = host.create_call("call-kill", output_dir=tmp_path)
        remote = Remote(media)
        remote.add_audio(ALICE)
        media.update_sources([Source(ALICE, "p-alice", "Alice", "audio"),
                              Source(CAROL_VIDEO, "p-carol", "Carol", "video")])
        remote.start()
        cam = Camera(remote)
        try:
            assert wait_for(lambda: remote.session.engine.stats().datagrams_in > 0)
            runner = media.add_processor(Recorder(video_size=(640, 360), flush_s=0.2))
            assert runner.processor.mode == "process"
            assert wait_for(lambda: (remote.subscriptions() or (0, []))[1]
                            == [(CAROL_VIDEO, (640, 360))])
            cam.start()
            time.sleep(4.0)
            os.kill(runner._proc.pid, signal.SIGKILL)     # mid-fragment, mid-write
            runner._proc.join(5)
            media.remove_processor(runner, timeout_s=5)
        finally:
            cam.stop()
            media.close()
            remote.close()
    index = json.loads((tmp_path / "index.json").read_text())
    assert not index["complete"]
    video = next(f for f in index["files"] if f["kind"] == "video")
    path = tmp_path / video["file"]
    recorded = mp4_units(path)
    frames, w, h = ffprobe_frames(path)
    assert (w, h) == (640, 360)
    # whole fragments up to the kill (a fragment a key frame or a second): at
    # least the first two seconds of the four, exactly as sent
    assert frames == len(recorded) >= 2 * 15, frames
    matches_sent(recorded, cam.sent)

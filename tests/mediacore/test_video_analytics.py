"""The ``video_analytics`` processor on a real call's video (H.264 over SRTP
from a remote engine): freezes of a sender that pauses, JPEG snapshots on an
interval that PyAV decodes back."""

from __future__ import annotations

import json
import threading
import time

import av
import numpy as np
import pytest

from mediacore import MediaHost, Source
from mediacore.processors import ProcessorSpecError, processor_factory
from mediacore.processors.video_analytics import VideoAnalytics
from mediacore.video.sockets import VideoSendSocket

from .test_callmedia import ALICE, CAROL_VIDEO, Remote, wait_for


def test_options_are_checked_by_the_registry():
    p = processor_factory("video_analytics", {"freeze_ms": 500, "snapshot_interval_s": 2})()
    assert isinstance(p, VideoAnalytics) and p.freeze_ms == 500 and p.snapshot_interval_s == 2.0
    for bad in ({"freeze_ms": 0}, {"snapshot_interval_s": -1}):
        with pytest.raises(ProcessorSpecError):
            processor_factory("video_analytics", bad)


def test_a_pause_is_a_freeze_and_snapshots_come_at_the_interval(tmp_path):
    with MediaHost(audio_workers=1) as host:
        media = host.create_call("call-va", output_dir=tmp_path)
        remote = Remote(media)
        remote.add_audio(ALICE)
        sender = VideoSendSocket(remote.session, CAROL_VIDEO)
        media.update_sources(
            [Source(ALICE, "p-alice", "Alice", "audio"), Source(CAROL_VIDEO, "p-carol", "Carol", "video")]
        )
        remote.start()
        sending = threading.Event()
        stop = threading.Event()

        def send_video():
            img = np.zeros((360, 640, 3), np.uint8)
            img[:, :320] = 230  # left half light, right half dark
            while not stop.is_set():
                if sending.is_set():
                    img[:8, 320:] = (img[0, 320, 0] + 1) % 40  # a little motion
                    sender.send_frame(img)
                sender.handle_events(remote.events[-20:])
                time.sleep(1 / 15)

        t = threading.Thread(target=send_video, daemon=True)
        try:
            assert wait_for(lambda: remote.session.engine.stats().datagrams_in > 0)
            media.add_processor(
                VideoAnalytics(size=(640, 360), faces=False, freeze_ms=1000, snapshot_interval_s=0.5)
            )
            assert wait_for(lambda: (remote.subscriptions() or (0, []))[1] == [(CAROL_VIDEO, (640, 360))])
            t.start()
            sending.set()
            time.sleep(2.0)
            sending.clear()  # the sender pauses 1.5 s: one freeze
            time.sleep(1.5)
            sending.set()
            time.sleep(1.5)
            sending.clear()  # then leaves: the end is no freeze
            media.update_sources([Source(ALICE, "p-alice", "Alice", "audio")])
            time.sleep(1.5)
        finally:
            stop.set()
            if t.is_alive():
                t.join(5)
            result = media.close()["VideoAnalytics"]
            remote.close()
    summary = json.loads((tmp_path / "video.json").read_text())
    assert summary == result
    carol = summary["Carol"]
    assert carol["participant_id"] == "p-carol" and carol["frames"] > 30
    assert carol["freezes"] == 1 and 1300 <= carol["freeze_ms"] <= 2500, carol
    # snapshots: every 0.5 s of frames, none in the pause, each a JPEG that PyAV decodes
    files = carol["snapshots"]
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == sorted(
        f.split("/")[1] for f in files
    )
    times = [float(f.rsplit("-", 1)[1].removesuffix(".jpg")) for f in files]
    gaps = np.diff(times)
    assert 5 <= len(files) <= 9, files
    assert gaps.min() >= 0.49 and np.sum(gaps > 1.2) == 1, times  # the pause
    for f in files:
        with av.open(str(tmp_path / f)) as c:
            assert c.streams.video[0].codec_context.name == "mjpeg"
            frame = next(c.decode(video=0))
        assert (frame.width, frame.height) == (640, 360)
        y = frame.to_ndarray(format="gray")
        assert y[:, :300].mean() > 180 and y[20:, 340:].mean() < 60

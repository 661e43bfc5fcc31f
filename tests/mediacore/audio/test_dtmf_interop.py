"""DTMF from an independent RFC 4733 sender: GStreamer's ``rtpdtmfsrc``.

There are no GStreamer Python bindings in the venv, so a tiny C driver
(gst_dtmf_sender.c, built here with gcc against libgstreamer-1.0 via
pkg-config; scripts/apt-packages.txt installs the headers) builds
``rtpdtmfsrc ! udpsink`` and sends ``dtmf-event`` upstream events
(type=1, start=TRUE/FALSE, number, volume) for a digit string, as a SIP
client would. mediabot's engine receives the plain-RTP stream through its
audio jitter buffer and the call's audio graph on the audio path turns it
into DTMF events.
"""

from __future__ import annotations

import queue
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mediacore.audio.path import AudioPath
from mediacore.engine import Engine

HERE = Path(__file__).resolve().parent
SSRC = 0x6D7F
PT = 101


@pytest.fixture(scope="module")
def gst_dtmf_sender(tmp_path_factory) -> Path:
    for tool in ("gcc", "pkg-config"):
        assert shutil.which(tool), f"{tool} is required (scripts/apt-packages.txt)"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "gstreamer-1.0"],
                           capture_output=True, text=True)
    assert flags.returncode == 0, ("libgstreamer1.0-dev is required (scripts/apt-packages.txt): "
                                   + flags.stderr)
    exe = tmp_path_factory.mktemp("gst") / "gst_dtmf_sender"
    subprocess.run(["gcc", "-O1", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(HERE / "gst_dtmf_sender.c"), *flags.stdout.split()], check=True)
    return exe


@pytest.mark.parametrize("clock_rate", [8000, 48000])
def test_digits_from_gstreamer_rtpdtmfsrc(gst_dtmf_sender, clock_rate):
    digits, tone_ms, gap_ms = "1590*#A", 300, 100
    path = AudioPath(workers=1)
    engine = Engine("127.0.0.1")
    engine.start()
    session = engine.add_session(None)      # plain RTP: rtpdtmfsrc ! udpsink
    events: queue.Queue = queue.Queue()
    bot = path.add_call(1, payload_types={0: "pcmu"}, telephone_event_pt=PT, mixed=False,
                        unmixed=False, on_event=events.put)
    try:
        bot.add_source(session, SSRC, clock_rate=clock_rate)
        proc = subprocess.run([str(gst_dtmf_sender), "127.0.0.1", str(engine.port), str(SSRC),
                               str(PT), str(clock_rate), digits, str(tone_ms), str(gap_ms)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [w for d in digits for w in ("sent", d)]
        ends, starts = [], []
        deadline = time.monotonic() + 3.0
        while len(ends) < len(digits) and time.monotonic() < deadline:
            try:
                ev = events.get(timeout=0.1)
            except queue.Empty:
                continue
            if ev.kind == "dtmf":
                (ends if ev.end else starts).append(ev)
        assert "".join(e.digit for e in ends) == digits
        assert "".join(e.digit for e in starts) == digits
        for e in ends:
            ms = e.duration * 1000 / clock_rate
            # rtpdtmfsrc sends a tone at least as long as asked, in 40 ms
            # packets (and pads short ones to its minimum); never a fraction
            assert tone_ms <= ms <= tone_ms + 250, (e, ms)
        assert all(e.source_id == SSRC and e.tag == 1 for e in ends + starts)
        stats = bot.stats()
        assert stats.dtmf_digits == len(digits)
        assert stats.unknown_payload_type == 0
    finally:
        path.close()
        engine.close()
    assert path.errors == []

"""examples/recording_bot.py against ``mediabot emulator`` (two processes, as a
user runs them): the emulator rings the bot with a policy-based recording call
into a scripted meeting (``incomingContext.observedParticipantId``: Alice); the
bot answers, reports ``recording``, records, and when Alice leaves stops the
recorder, reports ``notRecording`` and hangs up.

Checked on the files: ffprobe reads every one; every audio file has the
recording's duration (±100 ms: they are all on the call's timeline, so a
file's length is the recording's to within a 20 ms frame and the Opus
pre-skip); the recording ends shortly after Alice left (the bot's reaction to
the roster: within 2 s); Carol, who joins late, is silent in her own file
until her join and speaks in the mix at her scripted time; the index's
speakers come in the script's order at the script's times (±0.6 s: voice
activity with a 300 ms hangover on the receive side's clock); the status
order (``recording`` before the first file byte, ``notRecording`` after the
last). A second test kills the recorder's worker process (``kill -9``) mid
meeting: what it wrote up to about a second before plays. A third runs the
recorder as a configured processor of ``mediabot run`` and stops that with
SIGTERM mid-meeting: every file is complete."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from .support import start_emulator, start_example, stop, until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LEAD_IN_S = 4.0            # the recorder's worker process starts in that time
SCRIPT = """
[meeting]
title = "recorded"
duration_s = 15

[[participant]]
name = "Alice"
voice = "en-us+f3"
width = 320
height = 180
fps = 10
leave_s = 12.0
say = [ { at_s = 0.5, text = "good morning everyone welcome to the weekly sync" } ]

[[participant]]
name = "Bob"
voice = "en-us+m3"
video = "none"
say = [ { at_s = 5.5, text = "the quick brown fox jumps over the lazy dog" } ]

[[participant]]
name = "Carol"
voice = "en-us+f2"
width = 320
height = 180
fps = 10
join_s = 3.0
say = [ { at_s = 9.0, text = "please review the budget before friday" } ]
screen_share = [ { start_s = 9.5, end_s = 11.5 } ]
"""
SAID = {"Alice": 0.5, "Bob": 5.5, "Carol": 9.0}


def ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                          "format=duration:stream=codec_name,nb_read_frames", "-of", "json",
                          str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, (path.name, out.stderr)
    return json.loads(out.stdout)


def duration(path: Path) -> float:
    return float(ffprobe(path)["format"]["duration"])


def decode(path: Path) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                          "-ar", "16000", "-"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return np.frombuffer(out.stdout, np.int16)


def rms(pcm: np.ndarray, a_s: float, b_s: float) -> float:
    x = pcm[int(a_s * 16000):int(b_s * 16000)].astype(np.float64)
    return float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0


async def record_meeting(tmp_path: Path, *, kill_worker_at_s: float | None = None):
    """Run the meeting; returns (the call's recording folder, the emulator's call record,
    the worker's kill time on the recording's timeline or None)."""
    script = tmp_path / "meeting.toml"
    script.write_text(SCRIPT)
    emu = await start_emulator(tmp_path, "--script", str(script), "--lead-in", str(LEAD_IN_S))
    bot = None
    killed_at = None
    try:
        bot, _, log = await start_example("recording_bot.py", "--config", str(emu.config),
                                          "--out", "out", env=emu.env, cwd=tmp_path)
        meeting = emu.info["meetings"][0]
        alice = meeting["participants"]["Alice"]["id"]
        webhook_health = emu.info["webhook"].replace("/api/calls", "/health")

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(webhook_health, timeout=1):
                    return True
            except OSError:
                return False

        await until(healthy, 60, "the bot's webhook", bot, log)
        ring = await emu.control_json("POST", "/incoming-call", {
            "meetingId": meeting["id"], "observedParticipantId": alice,
            "modalities": ["audio", "video", "videoBasedScreenSharing"]})
        call_id = ring["id"]
        folder = tmp_path / "out" / call_id

        if kill_worker_at_s is not None:
            def index_at(t: float) -> bool:
                try:
                    return json.loads((folder / "index.json").read_text())["duration_s"] >= t
                except (OSError, ValueError):
                    return False

            await until(lambda: index_at(kill_worker_at_s), 90, "the recording", bot, log)
            index = json.loads((folder / "index.json").read_text())
            assert index["pid"] != bot.pid
            os.kill(index["pid"], signal.SIGKILL)
            killed_at = index["duration_s"]

        async def ended() -> dict | None:
            calls = await emu.control_json("GET", "/calls")
            return next((c for c in calls["ended"] if c["id"] == call_id), None)

        deadline = time.monotonic() + 120
        while (record := await ended()) is None:
            assert bot.returncode is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, "the call did not end"
            await asyncio.sleep(0.2)
    finally:
        if bot is not None:
            assert await stop(bot) == 0, (tmp_path / "recording_bot.py.log").read_text()[-4000:]
        await stop(emu.proc)
    return folder, record, killed_at


async def test_recording_bot_records_a_policy_based_recording_call(tmp_path):
    folder, record, _ = await record_meeting(tmp_path)
    index = json.loads((folder / "index.json").read_text())
    assert index["complete"], index

    # recording before the first file byte, notRecording after the files were closed
    statuses = record["recordingStatus"]
    assert [s["status"] for s in statuses] == ["recording", "notRecording"], statuses
    assert statuses[0]["time"] < index["started_unix"]
    assert statuses[1]["time"] >= index["stopped_unix"]

    # every file plays; every audio file lasts the recording
    names = {f["file"] for f in index["files"]}
    assert names == {p.name for p in folder.iterdir() if p.suffix in (".ogg", ".mp4")}
    kinds = {f["kind"] for f in index["files"]}
    assert kinds == {"mixed", "audio", "video", "screen"}, index["files"]
    by_name = {p["display_name"]: p for p in index["participants"]}
    assert set(by_name) == {"Alice", "Bob", "Carol"}
    total = index["duration_s"]
    for f in index["files"]:
        probe = ffprobe(folder / f["file"])
        frames = int(probe["streams"][0]["nb_read_frames"])
        assert frames > 0, f
        if f["kind"] in ("mixed", "audio"):
            assert probe["streams"][0]["codec_name"] == "opus"
            assert abs(float(probe["format"]["duration"]) - total) <= 0.1, (f, total)
        else:
            assert probe["streams"][0]["codec_name"] == "h264"
    screen = next(f for f in index["files"] if f["kind"] == "screen")
    assert screen["display_name"] == "Carol"

    # the meeting's clock in the recording: Carol joins at script 3.0 s
    carol_join = by_name["Carol"]["presence"][0]["joined_s"]
    zero = carol_join - 3.0                        # the script's time zero on the recording
    assert zero > 0
    alice_left = by_name["Alice"]["presence"][0]["left_s"]
    assert alice_left is not None and abs(alice_left - zero - 12.0) < 0.5, (zero, alice_left)
    assert 0 <= total - alice_left < 2.0, (total, alice_left)   # the bot stops when she leaves

    # speakers in the script's order, at the script's times
    firsts: dict[str, float] = {}
    for s in index["speakers"]:
        firsts.setdefault(s["display_name"], s["start_s"])
    assert sorted(firsts, key=firsts.get) == ["Alice", "Bob", "Carol"], index["speakers"]
    for name, at_s in SAID.items():
        assert abs(firsts[name] - (zero + at_s)) < 0.6, (name, firsts[name], zero + at_s)

    # Carol is silent in her own file before she joined, and speaks there and in the mix
    carol = decode(folder / by_name["Carol"]["audio"])
    mixed = decode(folder / "mixed.ogg")
    assert np.abs(carol[:int((carol_join - 0.1) * 16000)]).max() <= 64
    speech = (zero + SAID["Carol"] + 0.3, zero + SAID["Carol"] + 1.5)
    assert rms(carol, *speech) > 300, rms(carol, *speech)
    assert rms(mixed, *speech) > 300
    quiet = (zero + 4.2, zero + 5.2)               # after Alice, before Bob: nobody speaks
    assert rms(mixed, *quiet) < 100, rms(mixed, *quiet)


async def test_killing_the_recorder_worker_leaves_playable_files(tmp_path):
    folder, record, killed_at = await record_meeting(tmp_path, kill_worker_at_s=8.0)
    assert killed_at is not None
    index = json.loads((folder / "index.json").read_text())
    assert not index["complete"]                   # the worker never finished it
    # the bot still ended the recording and reported it
    assert [s["status"] for s in record["recordingStatus"]] == ["recording", "notRecording"]
    audio = [f for f in index["files"] if f["kind"] in ("mixed", "audio")]
    assert len(audio) == 4                         # the mix, Alice, Bob, Carol
    for f in index["files"]:
        probe = ffprobe(folder / f["file"])
        assert int(probe["streams"][0]["nb_read_frames"]) > 0, f
        if f in audio:
            d = float(probe["format"]["duration"])
            # everything up to about a page (flush_s = 1 s) before the kill, nothing after
            assert killed_at - 1.5 <= d <= killed_at + 1.5, (f, d, killed_at)
    mixed = decode(folder / "mixed.ogg")
    assert len(mixed) >= (killed_at - 1.5) * 16000


async def test_sigterm_of_mediabot_run_leaves_complete_recordings(tmp_path):
    """The recorder as a configured processor of ``mediabot run``: SIGTERM mid-meeting hangs
    the call up, its media closes, the recorder's worker finishes every file."""
    script = tmp_path / "meeting.toml"
    script.write_text(SCRIPT)
    emu = await start_emulator(tmp_path, "--script", str(script), "--lead-in", "2")
    text = emu.config.read_text().replace("[media]", "[media]\nmixed = true", 1)
    emu.config.write_text(text + """
[calls]
modalities = ["audio", "video", "videoBasedScreenSharing"]

[[processors]]
name = "recorder"
audio_format = "wav"
video_size = [320, 180]

[output]
dir = "out"
""")
    log = tmp_path / "bot.log"
    bot = None
    try:
        with open(log, "wb") as f:
            bot = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(emu.config), env=emu.env,
                cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=f)
        health = emu.info["webhook"].replace("/api/calls", "/health")

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(health, timeout=1):
                    return True
            except OSError:
                return False

        await until(healthy, 60, "the bot's webhook", bot, log)
        meeting = emu.info["meetings"][0]
        ring = await emu.control_json("POST", "/incoming-call", {
            "meetingId": meeting["id"],
            "observedParticipantId": meeting["participants"]["Alice"]["id"],
            "modalities": ["audio", "video", "videoBasedScreenSharing"]})
        folder = tmp_path / "out" / ring["id"]

        def recorded(t: float) -> bool:
            try:
                return json.loads((folder / "index.json").read_text())["duration_s"] >= t
            except (OSError, ValueError):
                return False

        await until(lambda: recorded(6.0), 90, "six seconds of recording", bot, log)
        assert await stop(bot) == 0, log.read_text()[-4000:]
        calls = await emu.control_json("GET", "/calls")
        record = next(c for c in calls["ended"] + calls["active"] if c["id"] == ring["id"])
    finally:
        if bot is not None:
            await stop(bot)
        await stop(emu.proc)
    index = json.loads((folder / "index.json").read_text())
    assert index["complete"], index
    # recording was reported before the first byte (notRecording needs a hang-up hook in
    # Bot.stop: docs/recording.md)
    assert record["recordingStatus"][0]["status"] == "recording"
    assert record["recordingStatus"][0]["time"] < index["started_unix"]
    audio = [f for f in index["files"] if f["kind"] in ("mixed", "audio")]
    assert {f["display_name"] for f in audio} == {None, "Alice", "Bob", "Carol"}
    for f in index["files"]:
        probe = ffprobe(folder / f["file"])
        assert int(probe["streams"][0]["nb_read_frames"]) > 0, f
        if f in audio:
            assert probe["streams"][0]["codec_name"] == "pcm_s16le"
            assert abs(float(probe["format"]["duration"]) - index["duration_s"]) <= 0.1, f

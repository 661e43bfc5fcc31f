"""A scripted meeting between two programs started as a user starts them:
``mediabot emulator --script`` (three people: speech, cameras at three sizes,
a screen share, key presses) writes the bot's configuration; ``mediabot run
--config`` with the transcription, video-analytics and events processors;
``mediabot join URL``. When the emulator ends the meeting, the bot's output
folder holds each person's words attributed to them at the scripted times,
video frame counts at the subscribed sizes, the screen share's frames while it
was shared, and the DTMF digits."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from .test_run_media_e2e import free_port, mediabot, read_events, stop, until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LEAD_IN_S = 1.0
SCRIPT = """
[meeting]
title = "two processes"
duration_s = 12

[[participant]]
name = "Alice"
voice = "en-us+f3"
width = 640
height = 360
fps = 15
say = [ { at_s = 0.8, text = "good morning everyone welcome to the weekly sync" } ]

[[participant]]
name = "Bob"
voice = "en-us+m3"
width = 424
height = 240
fps = 15
say = [ { at_s = 4.5, text = "the quick brown fox jumps over the lazy dog" } ]
dtmf = [ { at_s = 9.5, digits = "7#" } ]

[[participant]]
name = "Carol"
voice = "en-us+f2"
width = 320
height = 180
fps = 10
join_s = 1.0
say = [ { at_s = 8.0, text = "please review the budget before friday" } ]
screen_share = [ { start_s = 3.0, end_s = 7.0 } ]
"""
SENTENCES = ["good morning everyone welcome to the weekly sync",
             "the quick brown fox jumps over the lazy dog",
             "please review the budget before friday"]


async def test_scripted_meeting_between_two_processes(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIABOT_")}
    script = tmp_path / "meeting.toml"
    script.write_text(SCRIPT)
    port = free_port()
    config = tmp_path / "bot.toml"
    emulator_log = tmp_path / "emulator.log"
    with open(emulator_log, "wb") as log_file:
        emulator = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "emulator", "--script", str(script), "--port", "0",
            "--tls-port", "0", "--media-port", "0", "--bot-config", str(config),
            "--webhook", f"http://127.0.0.1:{port}/api/calls", "--allow-http-callbacks",
            "--lead-in", str(LEAD_IN_S), "--json", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=log_file)
    bot = None
    try:
        line = await asyncio.wait_for(emulator.stdout.readline(), 120)
        assert line, emulator_log.read_text()
        info = json.loads(line)
        # what a user adds to the written configuration: processors, an output folder, control
        processors = "".join(f'\n[[processors]]\nname = "{n}"\n' for n in ("video_analytics", "events"))
        config.write_text(config.read_text() + f"""
[[processors]]
name = "transcription"
grammar = {json.dumps(SENTENCES)}
{processors}
[output]
dir = "out"

[control]
token_env = "MEDIABOT_E2E_CONTROL"
""")
        for line in Path(f"{config}.env").read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
        env["MEDIABOT_E2E_CONTROL"] = "scripted-meeting-control-token-0123"
        bot_log = tmp_path / "bot.log"
        with open(bot_log, "wb") as log_file:
            bot = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(config), env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=log_file)
        deadline = time.monotonic() + 60
        while True:
            rc, out, err = await mediabot("join", info["join_url"], "--config", str(config), env=env)
            if rc == 0 or "cannot reach the bot" not in err or time.monotonic() > deadline:
                break
            assert bot.returncode is None, bot_log.read_text()
            await asyncio.sleep(0.2)
        assert rc == 0, err + bot_log.read_text()
        call_id = out.strip()
        folder = tmp_path / "out" / call_id

        # the emulator ends the meeting after the script; the processors then finish their files
        await until(lambda: any(e["event"] == "CallEnded" for e in read_events(folder / "events.jsonl"))
                    and (folder / "video.json").exists(), 90, "the end of the meeting")
        await until(lambda: (folder / "transcript.jsonl").exists(), 30, "the transcript")
    finally:
        if bot is not None:
            assert await stop(bot) == 0, (tmp_path / "bot.log").read_text()
        await stop(emulator)

    # each person's words, attributed to them, at the scripted times (the meeting's time zero
    # is the lead-in after the call's media started)
    lines = [json.loads(x) for x in (folder / "transcript.jsonl").read_text().splitlines()]
    said = {"Alice": (0.8, SENTENCES[0]), "Bob": (4.5, SENTENCES[1]), "Carol": (8.0, SENTENCES[2])}
    for name, (at_s, sentence) in said.items():
        mine = [x for x in lines if x["speaker"] == name]
        assert mine, (name, lines)
        words = set(" ".join(x["text"] for x in mine).split())
        assert len(words & set(sentence.split())) >= 4, (name, mine)
        assert any(abs(x["start"] - (at_s + LEAD_IN_S)) < 1.2 for x in mine), (name, at_s, mine)
        assert all(x["participant_id"] for x in mine)

    # cameras at their sizes (all within the 640x360 subscription), the screen share while shared
    video = json.loads((folder / "video.json").read_text())
    for name, (w, h, fps, present_s) in {"Alice": (640, 360, 15, 12), "Bob": (424, 240, 15, 12),
                                         "Carol": (320, 180, 10, 11)}.items():
        v = video[name]
        assert (v["width"], v["height"]) == (w, h), (name, v)
        assert v["frames"] >= 0.8 * fps * present_s, (name, v)
    screen = video["Carol/screen"]
    assert (screen["width"], screen["height"]) == (1280, 720)
    assert screen["frames"] >= 0.6 * 5 * 4.0
    assert 3.0 + LEAD_IN_S - 1.0 <= screen["first"] and screen["last"] <= 7.0 + LEAD_IN_S + 1.0

    events = read_events(folder / "events.jsonl")
    assert [(e["display_name"], e["digit"]) for e in events if e["event"] == "DtmfReceived"] == \
        [("Bob", "7"), ("Bob", "#")]
    shares = [e["event"] for e in events if e["event"].startswith("ScreenShare")]
    assert shares == ["ScreenShareStarted", "ScreenShareStopped"]
    assert {e["display_name"] for e in events if e["event"] == "ParticipantJoined"} == \
        {"Alice", "Bob", "Carol"}

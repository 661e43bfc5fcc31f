"""examples/captions_bot.py as a user runs it: ``mediabot emulator --script``
(two people speaking) in one process, the example joining its meeting URL in
another; Ctrl+C leaves. Its captions.vtt has one cue per utterance, voiced by
the speaker, at the scripted times; stdout shows the same captions; and the
emulator's record of Graph requests (its control API, ``GET
/emulator/requests``) holds the join and the hang-up and nothing else."""

from __future__ import annotations

import re
import signal
import sys

import pytest

from bot.emulator.script import load_script
from bot.emulator.synth import audio_track

from .support import speech_span, start_emulator, start_example, stop, until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LEAD_IN_S = 1.0
SAID = {"Alice": (0.8, "good morning everyone welcome to the weekly sync"),
        "Bob": (4.5, "the quick brown fox jumps over the lazy dog")}
SCRIPT = f"""
[meeting]
title = "captions"
duration_s = 9

[[participant]]
name = "Alice"
voice = "en-us+f3"
video = "none"
say = [ {{ at_s = {SAID['Alice'][0]}, text = "{SAID['Alice'][1]}" }} ]

[[participant]]
name = "Bob"
voice = "en-us+m3"
video = "none"
say = [ {{ at_s = {SAID['Bob'][0]}, text = "{SAID['Bob'][1]}" }} ]
"""
CUE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d\d\d) --> (\d\d):(\d\d):(\d\d\.\d\d\d)\n<v ([^>]+)>(.*)$", re.M)


def seconds(h: str, m: str, s: str) -> float:
    return int(h) * 3600 + int(m) * 60 + float(s)


def cues(text: str) -> list[tuple[float, float, str, str]]:
    assert text.startswith("WEBVTT\n"), text
    return [(seconds(*c[0:3]), seconds(*c[3:6]), c[6], c[7]) for c in CUE.findall(text)]


async def test_captions_bot_writes_each_speakers_captions_and_posts_only_join_and_hangup(tmp_path):
    script = tmp_path / "meeting.toml"
    script.write_text(SCRIPT)
    (tmp_path / "grammar.txt").write_text("\n".join(text for _, text in SAID.values()) + "\n")
    emu = await start_emulator(tmp_path, "--script", str(script), "--no-video",
                               "--no-end-after-script", "--lead-in", str(LEAD_IN_S))
    bot = None
    try:
        bot, out, log = await start_example(
            "captions_bot.py", emu.info["join_url"], "--config", str(emu.config), "--out", "out",
            "--grammar", "grammar.txt", env=emu.env, cwd=tmp_path)
        await until(lambda: "joined" in out.read_text(), 90, "the join", bot, log)
        folder = next((tmp_path / "out").iterdir())
        vtt = folder / "captions.vtt"
        await until(lambda: vtt.exists() and {c[2] for c in cues(vtt.read_text())} == set(SAID),
                    90, "both speakers' captions", bot, log)
        assert await stop(bot, signal.SIGINT) == 0, log.read_text()[-4000:]
        requests = await emu.control_json("GET", "/requests")
    finally:
        if bot is not None:
            await stop(bot)
        await stop(emu.proc)

    found = cues(vtt.read_text())
    script_ = load_script(script)
    for i, p in enumerate(script_.participants):
        at_s, sentence = SAID[p.name]
        mine = [c for c in found if c[2] == p.name]
        assert len(mine) == 1, found
        start, end, _, text = mine[0]
        assert text == sentence
        # the speech as the emulator synthesised it (the same seed): where it starts, how long
        s0, s1 = speech_span(audio_track(p, script_.duration_s, seed=i))
        assert abs(start - (s0 + LEAD_IN_S)) < 0.8, (p.name, start, s0)
        assert abs((end - start) - (s1 - s0)) < 0.3, (p.name, end - start, s1 - s0)
    assert found == sorted(found)
    printed = out.read_text()
    for _, _, speaker, text in found:
        assert f"{speaker}: {text}" in printed
    lines = [x for x in (folder / "transcript.jsonl").read_text().splitlines() if x.strip()]
    assert len(lines) == 2

    graph = [(r["method"], r["path"]) for r in requests if re.match(r"^/(v1\.0|beta)/", r["path"])]
    call_id = folder.name
    assert graph == [("POST", "/v1.0/communications/calls"),
                     ("DELETE", f"/v1.0/communications/calls/{call_id}")], graph

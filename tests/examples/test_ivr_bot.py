"""examples/ivr_bot.py as a user runs it: ``mediabot emulator`` in one process,
the IVR in another; the emulator rings the bot with a scripted P2P caller
(``POST /emulator/incoming-call`` with a script: Carol presses 4, 2, 7, # in-band,
RFC 4733, and later leaves a spoken message). The emulator keeps the audio the
bot sent (``GET /emulator/calls/{id}/bot-audio``): the spoken prompt, the
digits read back as key tones (decoded here), the beep. The IVR's files hold
the digits and the message, whose speech lasts as long as Carol's (within
100 ms); the bot hung up and the call ended."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
import urllib.request
import wave

import numpy as np
import pytest

from bot.emulator.script import parse_script
from bot.emulator.synth import audio_track
from mediacore import read_audio_file

from .support import speech_span, start_emulator, start_example, stop, until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LEAD_IN_S = 1.0
DIGITS = "427"
MESSAGE = "please call me back tomorrow morning"
CALLER = {"meeting": {"title": "a caller", "duration_s": 13},
          "participant": [{"name": "Carol", "voice": "en-us+f2", "video": "none",
                           "dtmf": [{"at_s": 4.0, "digits": DIGITS + "#"}],
                           "say": [{"at_s": 8.5, "text": MESSAGE}]}]}
KEYS = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209),
        "5": (770, 1336), "6": (770, 1477), "7": (852, 1209), "8": (852, 1336),
        "9": (852, 1477), "*": (941, 1209), "0": (941, 1336), "#": (941, 1477)}


def power(block: np.ndarray, hz: float) -> float:
    """Mean-square power of ``block`` at ``hz`` (a sinusoid of amplitude A gives A^2/2)."""
    n = np.arange(len(block))
    x = np.dot(block, np.exp(-2j * np.pi * hz * n / 16000))
    return 2 * abs(x) ** 2 / len(block) ** 2


def key_tones_in(pcm: np.ndarray) -> str:
    """The keys sounding in ``pcm`` (20 ms blocks where one low and one high key
    frequency carry over 80 % of the power), one per run of blocks."""
    x = pcm.astype(np.float64)
    lows, highs = (697, 770, 852, 941), (1209, 1336, 1477)
    found, last = [], None
    for k in range(0, len(x) - 320, 160):
        b = x[k:k + 320]
        total = np.mean(b ** 2)
        key = None
        if total > 1e5:
            low = max(lows, key=lambda f: power(b, f))
            high = max(highs, key=lambda f: power(b, f))
            if (power(b, low) + power(b, high)) / total > 0.8:
                key = next(d for d, f in KEYS.items() if f == (low, high))
        if key is not None and key != last:
            found.append(key)
        last = key
    return "".join(found)


def tone_blocks(pcm: np.ndarray, hz: float) -> int:
    x = pcm.astype(np.float64)
    return sum(1 for k in range(0, len(x) - 320, 320)
               if np.mean(x[k:k + 320] ** 2) > 1e5
               and power(x[k:k + 320], hz) / np.mean(x[k:k + 320] ** 2) > 0.8)


def read_wav(data: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


async def test_ivr_answers_prompts_collects_digits_reads_back_records_and_hangs_up(tmp_path):
    emu = await start_emulator(tmp_path, "--meeting", "Nobody", "--lead-in", str(LEAD_IN_S))
    bot = None
    try:
        bot, out, log = await start_example("ivr_bot.py", "--config", str(emu.config),
                                            "--out", "ivr", env=emu.env, cwd=tmp_path)
        port = re.search(r"^port = (\d+)", emu.config.read_text(), re.M).group(1)
        await until(lambda: healthy(f"http://127.0.0.1:{port}/health"), 60, "the IVR's webhook",
                    bot, log)
        call = await emu.control_json("POST", "/incoming-call", {"script": CALLER})
        call_id = call["id"]
        folder = tmp_path / "ivr" / call_id

        async def ended() -> bool:
            calls = await emu.control_json("GET", "/calls")
            return any(c["id"] == call_id for c in calls["ended"])

        await until(lambda: (folder / "ivr.json").exists(), 90, "the IVR's files", bot, log)
        for _ in range(100):
            if await ended():
                break
            await asyncio.sleep(0.1)
        report = await emu.control_json("GET", f"/calls/{call_id}/media")
        sent = read_wav(await emu.control_async("GET", f"/calls/{call_id}/bot-audio"))
        calls = await emu.control_json("GET", "/calls")
        requests = await emu.control_json("GET", "/requests")
        assert await stop(bot) == 0, log.read_text()[-4000:]
    finally:
        if bot is not None:
            await stop(bot)
        await stop(emu.proc)

    # the IVR's files: the digits pressed, the caller, the message as long as Carol spoke
    result = json.loads((folder / "ivr.json").read_text())
    assert result["digits"] == DIGITS and result["caller"] == "Carol", result
    with wave.open(str(folder / "message.wav")) as w:
        message = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    script = parse_script(CALLER)
    s0, s1 = speech_span(audio_track(script.participants[0], script.duration_s, seed=0))
    m0, m1 = speech_span(message)
    assert abs((m1 - m0) - (s1 - s0)) <= 0.1, (m1 - m0, s1 - s0)
    assert m0 > 0.05, "the recording started after Carol began to speak"

    # what reached the caller: the prompt first (speech from the start, as long as the WAV),
    # then the digits read back as key tones, then the beep
    assert report["stats"]["bot_audio_packets"] >= 50 * 8 and report["ended"]
    assert key_tones_in(sent) == DIGITS, key_tones_in(sent)
    assert tone_blocks(sent, 1000) >= 10                     # 300 ms at 1 kHz: 15 blocks
    w0, w1 = speech_span(read_audio_file(tmp_path / "ivr" / "prompt.wav"))
    p0, p1 = speech_span(sent[:16000 * 4])     # Carol's keys come 5 s after the answer
    assert p0 < 1.0 and abs((p1 - p0) - (w1 - w0)) < 0.1, (p0, p1, w1 - w0)

    # the call ended cleanly: the bot hung up (DELETE), the emulator ended it
    assert [c["state"] for c in calls["ended"] if c["id"] == call_id] == ["terminated"]
    assert ("DELETE", f"/v1.0/communications/calls/{call_id}") in \
        [(r["method"], r["path"]) for r in requests]

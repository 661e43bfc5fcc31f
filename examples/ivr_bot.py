"""An IVR on app-hosted media: answers a call, plays a spoken prompt, collects
the caller's keys (in-band DTMF, RFC 4733) up to ``#``, reads them back as
key tones, beeps, records the caller's message to a WAV and hangs up.

    python examples/ivr_bot.py --config bot.toml [--out ivr] [--prompt TEXT]

Per call, ``OUT/<call id>/`` gets ``message.wav`` (16 kHz mono) and
``ivr.json`` (``caller``, ``digits``, ``message_s``). The prompt is
synthesised once with espeak-ng. Ctrl+C stops the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import wave
from pathlib import Path

import numpy as np

from bot.app import Bot
from bot.config import load_config
from bot.media import CallMediaProvider, source_map
from mediacore import DtmfReceived, MediaHost, tone

#: the two frequencies of each key (ITU-T Q.23)
KEYS = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
        "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
        "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
        "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633)}


def key_tones(digits: str, tone_ms: int = 160, gap_ms: int = 100) -> np.ndarray:
    """The digits as key tones (16 kHz int16): how the IVR reads them back."""
    gap = np.zeros(16 * gap_ms, np.int16)
    parts = []
    for d in digits:
        low, high = KEYS[d]
        parts += [tone(low, tone_ms, -9.0) + tone(high, tone_ms, -9.0), gap]
    return np.concatenate(parts) if parts else gap


async def collect_digits(events, timeout_s: float) -> str:
    """Keys until ``#`` (not included) or ``timeout_s`` without a key."""
    digits = ""
    while True:
        try:
            ev = await asyncio.to_thread(events.get, timeout_s)
        except EOFError:          # the call ended
            return digits
        if ev is None or (isinstance(ev, DtmfReceived) and ev.digit == "#"):
            return digits
        if isinstance(ev, DtmfReceived):
            digits += ev.digit


def record(frames, max_s: float, silence_s: float, level: float = 300.0) -> np.ndarray:
    """The caller's frames until ``silence_s`` of quiet after they spoke (or ``max_s``)."""
    pcm, spoke, quiet = [], False, 0.0
    while len(pcm) * 0.02 < max_s and not (spoke and quiet >= silence_s):
        try:
            frame = frames.get(0.1)
        except EOFError:
            break
        if frame is None:        # nothing arrives while they are silent (DTX)
            quiet += 0.1
            continue
        pcm.append(frame.pcm.copy())
        loud = np.sqrt(np.mean(frame.pcm.astype(np.float64) ** 2)) > level
        spoke, quiet = spoke or loud, 0.0 if loud else quiet + 0.02
    frames.close()
    return np.concatenate(pcm) if pcm else np.zeros(0, np.int16)


async def main(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    s = config.media
    if s is None:
        raise SystemExit(f"{args.config}: a [media] section is needed (app-hosted media)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prompt = out / "prompt.wav"
    subprocess.run(["espeak-ng", "-w", str(prompt), args.prompt], check=True)
    host = MediaHost(s.bind_address, s.port, public_address=s.public_address,
                     public_port=s.public_port)
    events = {}                  # call id -> its media events, open from the start
    provider = CallMediaProvider(host, video=False, screen_share=False,
                                 on_media=lambda call, media: events.update({call.id: media.events()}))
    bot = Bot(config, media=provider)

    @bot.on("call_established")
    async def ivr(call) -> None:
        media = provider.media_for(call)
        await call.refresh_roster()     # a P2P call has no roster notifications: who is calling?
        media.update_sources(source_map(call))   # (now: this handler holds the call's events)
        caller = next(iter(media.participants))  # the caller's participant id
        frames = media.audio(caller)
        # the media path is up once the caller's audio flows: what is sent before is lost
        await asyncio.to_thread(frames.get, 10.0)
        await media.play_file(prompt).wait_async()
        digits = await collect_digits(events.pop(call.id), args.digit_timeout)
        print(f"call {call.id}: digits {digits}", flush=True)
        await media.play(key_tones(digits)).wait_async()
        await media.play_tone(1000, 300).wait_async()  # the beep
        with contextlib.suppress(EOFError):            # what came during the beep
            while frames.get(0) is not None:
                pass
        message = await asyncio.to_thread(record, frames, args.max_message, 1.0)
        folder = out / call.id
        folder.mkdir(exist_ok=True)
        with wave.open(str(folder / "message.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(message.tobytes())
        (folder / "ivr.json").write_text(json.dumps({
            "call_id": call.id, "caller": media.participants[caller], "digits": digits,
            "message_s": round(len(message) / 16000, 3)}))
        print(f"call {call.id}: message of {len(message) / 16000:.2f} s, hanging up", flush=True)
        await call.hang_up()

    try:
        await bot.run()
    finally:
        provider.close()
        host.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the bot's configuration (bot.toml)")
    parser.add_argument("--out", default="ivr", help="folder for each call's files")
    parser.add_argument("--prompt", default="Welcome. Please enter your number, then press pound.")
    parser.add_argument("--digit-timeout", type=float, default=10.0, metavar="S")
    parser.add_argument("--max-message", type=float, default=20.0, metavar="S")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))

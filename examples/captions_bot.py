"""Live captions of a Teams meeting, per speaker.

    python examples/captions_bot.py JOIN_URL --config bot.toml [--out captions] [--grammar FILE]

Joins the meeting (app-hosted media), transcribes each participant's own audio
with the built-in ``transcription`` processor (offline, pocketsphinx) and
prints each caption as it is final; the call's folder under ``--out`` holds
``captions.vtt`` (WebVTT, the speaker as each cue's voice) and
``transcript.jsonl``. Ctrl+C leaves the meeting; so does the meeting's end. The
only Graph requests it makes are the join and the hang-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from bot.app import Bot
from bot.config import load_config
from bot.media import CallMediaProvider
from mediacore import MediaHost
from mediacore.processors.transcription import Transcription, TranscriptSegment, vtt_time


async def main(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    if config.media is None:
        raise SystemExit(f"{args.config}: a [media] section is needed (app-hosted media)")
    grammar = [x for x in Path(args.grammar).read_text().splitlines() if x.strip()] \
        if args.grammar else None
    s = config.media
    host = MediaHost(s.bind_address, s.port, public_address=s.public_address,
                     public_port=s.public_port)

    def processors(call):
        captions = Transcription(grammar=grammar, partial_interval_ms=0)
        captions.on_segment.append(lambda seg: show(seg, captions))
        return [captions]

    provider = CallMediaProvider(host, processors, output_dir=args.out, video=False,
                                 screen_share=False)
    bot = Bot(config, media=provider)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await bot.start()
    try:
        call = await bot.join_meeting(args.url)
        print(f"joined: call {call.id}, captions in {Path(args.out) / call.id}", flush=True)
        ended = asyncio.ensure_future(call.wait_for_state("terminated", timeout=24 * 3600))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([ended, stopped], return_when=asyncio.FIRST_COMPLETED)
        for task in (ended, stopped):
            task.cancel()
    finally:
        await bot.stop()              # hangs up if still in the meeting; processors finish
        provider.close()
        host.close()


def show(seg: TranscriptSegment, captions: Transcription) -> None:
    """One final caption on stdout, timed like its cue in captions.vtt."""
    start = (seg.start_100ns - captions.epoch_100ns) / 1e7
    end = (seg.end_100ns - captions.epoch_100ns) / 1e7
    print(f"{vtt_time(start)} --> {vtt_time(end)}  {seg.speaker}: {seg.text}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the meeting's join URL")
    parser.add_argument("--config", required=True, help="the bot's configuration (bot.toml)")
    parser.add_argument("--out", default="captions", help="folder for each call's files")
    parser.add_argument("--grammar", help="a file of expected sentences, one a line (optional)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))

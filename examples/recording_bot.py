"""A compliance-recording bot: Teams invites it into the calls and meetings of
users under a recording policy (an incoming call whose notification carries
``incomingContext.observedParticipantId``); it answers, reports ``recording``
through Graph, records every participant (mixed and per-person audio, cameras,
screen shares, an index: mediacore's built-in ``recorder``), and when the
observed user leaves (or on SIGTERM/Ctrl+C) stops the recorder, reports
``notRecording`` and hangs up.

    python examples/recording_bot.py --config bot.toml --out recordings [--wav]

``bot.toml`` is a bot configuration with ``[media]`` (``mediabot emulator
--bot-config bot.toml`` writes one that trusts the local emulator). The
recording status order is Graph's rule: no recording before ``recording`` is
accepted, and the recording ends before ``notRecording``
(https://learn.microsoft.com/graph/api/call-updaterecordingstatus).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from bot.app import Answer, Bot, Reject
from bot.config import load_config
from bot.media import CallMediaProvider
from mediacore import MediaHost
from mediacore.processors.recorder import Recorder


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--out", default="recordings")
    p.add_argument("--wav", action="store_true", help="WAV instead of Ogg Opus")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    config = load_config(args.config)
    s = config.media
    host = MediaHost(s.bind_address, s.port, public_address=s.public_address,
                     public_port=s.public_port, srtp_profile=s.srtp_profile)
    media = CallMediaProvider(
        host, lambda call: [Recorder(audio_format="wav" if args.wav else "ogg")],
        output_dir=args.out, mixed=True)
    bot = Bot(config, media=media)

    def observed(call) -> str | None:
        ctx = call.resource.incoming_context
        return ctx.observed_participant_id if ctx is not None else None

    @bot.on("incoming_call")
    async def incoming(call):
        if observed(call) is None:        # only policy-based recording invitations
            return Reject("forbidden")
        return Answer(modalities=["audio", "video", "videoBasedScreenSharing"])

    @bot.on("participants_changed")
    async def roster(call, change):
        who = observed(call)
        if who is not None and call.state == "established" and \
                who not in {p.id for p in call.participants}:
            await media.stop_recording(call)          # files complete, then notRecording
            await call.hang_up()

    try:
        await bot.run()                               # until SIGINT / SIGTERM
    finally:
        media.close()
        host.close()


if __name__ == "__main__":
    asyncio.run(main())

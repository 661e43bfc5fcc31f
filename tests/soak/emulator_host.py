"""The soak's emulator process (``python -m tests.soak.emulator_host``): the Graph emulator
and its conference, as ``mediabot emulator`` runs them (bot/emulator/cli.py), except that the
conference plays one prepared meeting (tests/soak/meeting.toml) in a loop into every call of a
plain meeting whose people have the script's names. The soak makes a meeting per call through
the control API (``/emulator/meetings``), so every call has media source ids of its own.

Why not ``mediabot emulator --script``: its scripted meeting is one meeting for every call, so
every call would carry the same source ids (SSRCs) from the same conference address, and the
bot's engine, which routes by SSRC and remote address (native/src/engine.c,
``eng_route_lookup``), hands them all to the first call (docs/soak.md, "Findings").

Prints one JSON line (the addresses, the secret, the bot configuration written with
``--bot-config``) once it serves; runs until SIGTERM/SIGINT or its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys


async def serve(args: argparse.Namespace) -> int:
    from bot.emulator.cli import write_bot_config
    from bot.emulator.conference import ConferenceHandler, MediaServer
    from bot.emulator.script import load_script
    from bot.emulator.server import GraphEmulator, ServiceOptions
    from bot.emulator.simmedia import prepare_meeting

    loop = asyncio.get_running_loop()
    media = await loop.run_in_executor(None, lambda: prepare_meeting(load_script(args.script)))
    server = MediaServer("127.0.0.1", 0)
    server.start()
    handler = ConferenceHandler(server, media, loop=True, lead_in_s=0.0)
    emu = GraphEmulator(options=ServiceOptions(time_scale=0.1, allow_http_callbacks=True),
                        media_handler=handler, webhook_url=args.webhook)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.read(1) else None)
    try:
        await emu.start()
        written = write_bot_config(args.bot_config, emu, args.webhook)
        print(json.dumps({"graph_url": emu.graph_url, "control_url": emu.base_url + "/emulator",
                          "media": {"address": server.address[0], "port": server.address[1]},
                          "client_secret": emu.client_secret, "bot_config": written,
                          "people": [p.participant.name for p in media.participants]}), flush=True)
        await stop.wait()
    finally:
        await emu.stop()
        handler.close()
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.soak.emulator_host", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--script", required=True)
    p.add_argument("--webhook", required=True)
    p.add_argument("--bot-config", required=True)
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())

"""Run the Graph calls emulator on its own: ``python -m bot.emulator [--port 9440] [--webhook URL]``.

Prints (as JSON) where everything is: Graph base URLs, the callback OpenID configuration, the
msal authority and the CA file to trust, the bot's app id / tenant / client secret, a ready
access token, and any meeting created with ``--meeting``. Runs until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from .server import GraphEmulator
from .service import ServiceOptions


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bot.emulator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9440, help="HTTP port (Graph, callbacks' keys, control API)")
    p.add_argument("--tls-port", type=int, default=9445, help="HTTPS port (msal authority); 0 = any")
    p.add_argument("--webhook", help="the bot's registered calling webhook (incoming calls go there)")
    p.add_argument("--app-id")
    p.add_argument("--tenant-id")
    p.add_argument("--client-secret")
    p.add_argument("--no-auth", action="store_true", help="accept Graph requests without an access token")
    p.add_argument("--time-scale", type=float, default=0.1,
                   help="emulator seconds per documented second (prompts, records, DTMF)")
    p.add_argument("--meeting", action="append", default=[], metavar="NAME[,NAME...]",
                   help="create a meeting with these simulated participants (repeatable)")
    return p


async def serve(args: argparse.Namespace, stop: asyncio.Event) -> None:
    emu = GraphEmulator(host=args.host, port=args.port, tls_port=args.tls_port, require_auth=not args.no_auth,
                        options=ServiceOptions(time_scale=args.time_scale), app_id=args.app_id,
                        tenant_id=args.tenant_id, client_secret=args.client_secret, webhook_url=args.webhook)
    async with emu:
        meetings = []
        for names in args.meeting:
            meeting = emu.create_meeting()
            people = [emu.add_participant(meeting.id, n.strip()) for n in names.split(",") if n.strip()]
            meetings.append({"id": meeting.id, "joinWebUrl": meeting.join_web_url,
                             "joinMeetingId": meeting.join_meeting_id,
                             "participants": {p.display_name: p.id for p in people}})
        print(json.dumps({
            "graph_url": emu.graph_url,
            "beta_url": emu.beta_url,
            "openid_configuration_url": emu.openid_configuration_url,
            "authority": emu.authority,
            "token_url": emu.token_url,
            "ca_cert_path": emu.ca_cert_path,
            "control_url": emu.base_url + "/emulator",
            "app_id": emu.app_id,
            "tenant_id": emu.tenant_id,
            "client_secret": emu.client_secret,
            "access_token": emu.access_token(),
            "webhook": emu.app.webhook_url,
            "meetings": meetings,
        }, indent=2), flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl+C raises KeyboardInterrupt
            pass
    try:
        loop.run_until_complete(serve(args, stop))
    except KeyboardInterrupt:
        pass
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

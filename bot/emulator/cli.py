"""``mediabot emulator`` (also ``python -m bot.emulator``): the local Teams emulator as a process.

It serves the Graph calls service (signed callbacks, app tokens for msal, the control API) and
the Teams media side (one UDP port: a conference per bot call) and hosts a scripted meeting
(``--script``; the built-in three-person meeting by default). A bot talks to it only over Graph
HTTP and the media plane, exactly as it would to Teams.

stdout: the meeting's join URL on the first line (``--json``: one JSON line with every address
instead). ``--bot-config PATH`` also writes a bot configuration that trusts this emulator (see
docs/emulator.md, "Running it as a process"): ``PATH`` (TOML), ``PATH.env`` (the client secret, as
``MEDIABOT_CLIENT_SECRET=...``) and ``PATH.ca.pem`` (the CA of the emulator's TLS listener, for
msal). Runs until interrupted (SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger("bot.emulator")

DEFAULT_WEBHOOK = "http://127.0.0.1:9441/api/calls"
SECRET_ENV = "MEDIABOT_CLIENT_SECRET"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--script",
        metavar="FILE",
        help="meeting script (TOML, docs: bot/emulator/script.py); default: the built-in "
        "three-person meeting, unless --meeting is given",
    )
    p.add_argument(
        "--meeting",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help="also create a plain meeting (no media) with these simulated people (repeatable)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve HTTP and media on")
    p.add_argument(
        "--port", type=int, default=9440, help="HTTP port (Graph, callbacks' keys, control API); 0 = any"
    )
    p.add_argument("--tls-port", type=int, default=9445, help="HTTPS port (the msal authority); 0 = any")
    p.add_argument("--media-port", type=int, default=0, help="UDP port of the conference media; 0 = any")
    p.add_argument(
        "--webhook",
        metavar="URL",
        help="the bot's calling webhook (incoming calls go there); default with --bot-config: "
        f"the public_url written there ({DEFAULT_WEBHOOK})",
    )
    p.add_argument(
        "--bot-config",
        metavar="PATH",
        help="write a bot configuration (TOML) that trusts this emulator, PATH.env with the "
        "client secret and PATH.ca.pem with the TLS CA",
    )
    p.add_argument(
        "--allow-http-callbacks",
        action="store_true",
        help="deliver notifications to plain-http callback URLs (a loopback bot; Graph "
        "itself requires https)",
    )
    p.add_argument(
        "--end-after-script",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="end the calls when the script ends, as Graph does when a meeting ends "
        "(terminated, 200/5001); default on",
    )
    p.add_argument(
        "--lead-in",
        type=float,
        default=1.0,
        metavar="S",
        help="the script's time zero is this long after the first bot's call starts (default 1 s)",
    )
    p.add_argument("--no-video", action="store_true", help="the scripted people send audio only")
    p.add_argument("--json", action="store_true", help="print one JSON line with every address instead")
    p.add_argument("--app-id")
    p.add_argument("--tenant-id")
    p.add_argument("--client-secret")
    p.add_argument("--no-auth", action="store_true", help="accept Graph requests without an access token")
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.1,
        help="emulator seconds per documented second (prompts, records, DTMF operations)",
    )
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default="INFO")


def add_parser(sub) -> None:
    """Register ``mediabot emulator`` on the ``mediabot`` command's subparsers."""
    p = sub.add_parser(
        "emulator",
        help="run the local Teams emulator (Graph + media) as a process",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(handler=run_command)


def build_parser(prog: str = "python -m bot.emulator") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(p)
    return p


# ---- the bot's configuration ----------------------------------------------------------------


def webhook_of(args: argparse.Namespace) -> str | None:
    if args.webhook:
        return args.webhook
    return DEFAULT_WEBHOOK if args.bot_config else None


def bot_config_text(emu, webhook_url: str, ca_path: str) -> str:
    """A bot configuration (``mediabot run --config``, bot/config.py) that trusts this emulator:
    Graph at the emulator, app tokens from its Entra ID stand-in through msal (an https authority
    on the TLS listener, instance discovery off, its CA), callback tokens checked against its
    OpenID configuration, the webhook at ``webhook_url``, app-hosted media on loopback. The
    secret is not in it: it is in the environment variable ``client_secret_env`` names
    (``PATH.env``)."""
    u = urlsplit(webhook_url)
    port = u.port or (443 if u.scheme == "https" else 80)

    def s(v: str) -> str:
        return json.dumps(v)  # a TOML basic string

    return "\n".join(
        [
            "# Written by `mediabot emulator`: a bot configuration that trusts the local emulator.",
            "# The client secret is in the .env file beside this one (load it into the environment).",
            "",
            "[bot]",
            f"app_id = {s(emu.app_id)}",
            f"tenant_id = {s(emu.tenant_id)}",
            "",
            "[graph]",
            f"base_url = {s(emu.graph_url)}",
            f"beta_base_url = {s(emu.beta_url)}",
            f"authority_host = {s(emu.tls_base_url)}",
            "instance_discovery = false",
            f"ca_bundle = {s(ca_path)}",
            f"client_secret_env = {s(SECRET_ENV)}",
            "",
            "[webhook]",
            f"openid_configuration_url = {s(emu.openid_configuration_url)}",
            f"host = {s(u.hostname or '127.0.0.1')}",
            f"port = {port}",
            f"path = {s(u.path or '/api/calls')}",
            f"public_url = {s(webhook_url)}",
            "",
            "[media]                      # app-hosted media on loopback (the emulator's conference sends here)",
            'bind_address = "127.0.0.1"',
            "port = 0                     # any free UDP port",
            "",
        ]
    )


def write_bot_config(path: str, emu, webhook_url: str) -> dict[str, str]:
    """Write ``path`` (TOML), ``path.env`` (the secret; mode 0600) and ``path.ca.pem``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    ca = Path(f"{path}.ca.pem")
    shutil.copyfile(emu.ca_cert_path, ca)
    env = Path(f"{path}.env")
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{SECRET_ENV}={emu.client_secret}\n")
    target.write_text(bot_config_text(emu, webhook_url, str(ca.resolve())))
    return {"config": str(target), "env": str(env), "ca": str(ca)}


# ---- serving --------------------------------------------------------------------------------


def _service_options(args: argparse.Namespace):
    from .service import ServiceOptions

    options = ServiceOptions(time_scale=args.time_scale)
    names = {f.name for f in dataclasses.fields(ServiceOptions)}
    if "allow_http_callbacks" in names:
        options.allow_http_callbacks = args.allow_http_callbacks
    elif args.allow_http_callbacks:
        log.debug("ServiceOptions has no plain-http switch: http callbacks are delivered anyway")
    return options


async def serve(args: argparse.Namespace, stop: asyncio.Event, out=sys.stdout) -> int:
    from .conference import ConferenceHandler, MediaServer
    from .meeting import ScriptedMeeting
    from .script import ScriptError, load_script
    from .server import GraphEmulator

    script = None
    if args.script or not args.meeting:
        try:
            script = load_script(args.script)
        except ScriptError as exc:
            print(f"mediabot emulator: {exc}", file=sys.stderr)
            return 2
    webhook = webhook_of(args)
    try:
        media = MediaServer(args.host, args.media_port)
    except Exception as exc:  # the engine reports the bind error
        print(
            f"mediabot emulator: cannot open the media port {args.host}:{args.media_port}: {exc}",
            file=sys.stderr,
        )
        return 1
    media.start()
    handler = ConferenceHandler(media, lead_in_s=args.lead_in)
    emu = GraphEmulator(
        host=args.host,
        port=args.port,
        tls_port=args.tls_port,
        require_auth=not args.no_auth,
        options=_service_options(args),
        media_handler=handler,
        app_id=args.app_id,
        tenant_id=args.tenant_id,
        client_secret=args.client_secret,
        webhook_url=webhook,
    )
    scripted = None
    try:
        try:
            await emu.start()
        except OSError as exc:
            print(
                f"mediabot emulator: cannot serve on {args.host}:{args.port}/{args.tls_port}: {exc}",
                file=sys.stderr,
            )
            return 1
        if script is not None:
            scripted = await ScriptedMeeting.prepare(
                emu, handler, script, video=not args.no_video, end_after_script=args.end_after_script
            )
        meetings = [scripted.describe()] if scripted is not None else []
        for names in args.meeting:
            meeting = emu.create_meeting()
            people = [emu.add_participant(meeting.id, n.strip()) for n in names.split(",") if n.strip()]
            meetings.append(
                {
                    "id": meeting.id,
                    "joinWebUrl": meeting.join_web_url,
                    "joinMeetingId": meeting.join_meeting_id,
                    "participants": {p.display_name: p.id for p in people},
                }
            )
        written = (
            write_bot_config(args.bot_config, emu, webhook or DEFAULT_WEBHOOK) if args.bot_config else None
        )
        join_url = meetings[0]["joinWebUrl"] if meetings else None
        info = {
            "join_url": join_url,
            "graph_url": emu.graph_url,
            "beta_url": emu.beta_url,
            "openid_configuration_url": emu.openid_configuration_url,
            "authority": emu.authority,
            "authority_host": emu.tls_base_url,
            "token_url": emu.token_url,
            "ca_cert_path": emu.ca_cert_path,
            "control_url": emu.base_url + "/emulator",
            "media": {"address": media.address[0], "port": media.address[1]},
            "app_id": emu.app_id,
            "tenant_id": emu.tenant_id,
            "client_secret": emu.client_secret,
            "access_token": emu.access_token(),
            "webhook": emu.app.webhook_url,
            "bot_config": written,
            "meetings": meetings,
        }
        if args.json:
            print(json.dumps(info), file=out, flush=True)
        else:
            print(join_url or "(no meeting)", file=out, flush=True)
            log.info(
                "Graph %s, media udp %s:%s, control %s", emu.graph_url, *media.address, info["control_url"]
            )
            if written:
                log.info("bot configuration: %s (secret in %s)", written["config"], written["env"])
            if webhook:
                log.info("incoming calls go to %s", webhook)
        await stop.wait()
        return 0
    finally:
        if scripted is not None:
            scripted.stop()
        await emu.stop()
        handler.close()
        media.stop()


def main(
    argv: list[str] | None = None, *, prog: str = "python -m bot.emulator", json_output: bool = False
) -> int:
    args = build_parser(prog).parse_args(argv)
    args.json = args.json or json_output
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl+C raises KeyboardInterrupt
            pass
    try:
        return loop.run_until_complete(serve(args, stop))
    except KeyboardInterrupt:
        return 0
    finally:
        loop.close()

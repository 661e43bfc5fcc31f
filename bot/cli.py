"""The ``mediabot`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys

from .demo.cli import add_parsers as add_demo_parsers
from .emulator.cli import add_parser as add_emulator_parser

#: where ``mediabot join`` / ``calls`` / ``hangup`` find the token without --config or --token-env
DEFAULT_TOKEN_ENV = "MEDIABOT_CONTROL_TOKEN"


def _run(config_path: str, log_level: str | None, check: bool = False) -> int:
    """Serve until SIGINT/SIGTERM. Exit 2: a bad setting (named with its file and key, before
    anything is bound); 1: a port could not be had. ``check``: only check the file."""
    from .app import Bot
    from .config import ConfigError, load_config

    try:
        config = load_config(config_path)
        plan = None
        if config.media is not None:
            from .media import media_plan

            plan = media_plan(config)
    except ConfigError as exc:
        print(f"mediabot: config error: {exc}", file=sys.stderr)
        return 2
    if check:
        media = (
            "service-hosted media"
            if plan is None
            else f"app-hosted media, {len(plan.factories)} processor(s) per call"
        )
        control = f"control API at {config.control.path}" if config.control.enabled else "no control API"
        print(f"{config_path}: ok ({media}; {control})")
        return 0
    logging.basicConfig(
        level=log_level or config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    provider = None
    if plan is not None:
        s = config.media
        assert s is not None
        try:
            provider = plan.open()
        except Exception as exc:  # OSError / MediacoreError from binding, ValueError from the host
            print(
                f"mediabot: cannot open the media port udp {s.bind_address}:{s.port}: {exc}", file=sys.stderr
            )
            return 1
        logging.getLogger("bot.cli").info(
            "app-hosted media on udp %s:%d (public %s:%d), %d processor(s) per call%s",
            s.bind_address,
            provider.host.port,
            provider.host.public_address,
            provider.host.public_port,
            len(plan.factories),
            f", output under {plan.output_dir}" if plan.output_dir else "",
        )
    try:
        bot = Bot(config, media=provider)
        if config.control.enabled:
            from .control import ControlApi

            assert config.control.token is not None
            ControlApi(bot, token=config.control.token, path=config.control.path).install()
        try:
            asyncio.run(bot.run())
        except KeyboardInterrupt:  # Windows: no signal handlers on the loop
            pass
        except OSError as exc:
            print(
                f"mediabot: cannot serve the webhook on {config.webhook.host}:{config.webhook.port}: {exc}",
                file=sys.stderr,
            )
            return 1
    finally:
        if provider is not None:  # calls not hung up (on_shutdown = "keep"): their processors stop here
            provider.close()
            provider.host.close()
    return 0


# ---- the control API's client: mediabot join / calls / hangup ---------------------------------


def _add_target_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--config",
        metavar="FILE",
        help="the bot's configuration: its listener ([webhook] host, port) and [control]",
    )
    where.add_argument(
        "--bot",
        metavar="URL",
        help="the control API's URL, e.g. http://127.0.0.1:9441/control (no path: /control)",
    )
    p.add_argument(
        "--token-env",
        metavar="NAME",
        help="environment variable holding the bearer token (default: [control] token_env "
        f"of --config, else {DEFAULT_TOKEN_ENV})",
    )


def _client(args: argparse.Namespace):
    """The control client for ``args``, or an error message (exit 2)."""
    from urllib.parse import urlsplit

    from .config import ConfigError, read_control_settings
    from .control import ControlClient, control_url

    token_env = args.token_env
    if args.config:
        try:
            webhook, control = read_control_settings(args.config)
        except ConfigError as exc:
            return f"config error: {exc}"
        url = control_url(webhook.host, webhook.port, control.path)
        token_env = token_env or control.token_env
    else:
        u = urlsplit(args.bot)
        if u.scheme not in ("http", "https") or not u.netloc:
            return f"--bot must be an http(s) URL, not {args.bot!r}"
        url = args.bot.rstrip("/") if u.path.strip("/") else args.bot.rstrip("/") + "/control"
    token_env = token_env or DEFAULT_TOKEN_ENV
    token = os.environ.get(token_env, "").strip()
    if not token:
        return f"no control token: set the environment variable {token_env}"
    return ControlClient(url, token)


def _control_command(args: argparse.Namespace) -> int:
    from .control import ControlError

    client = _client(args)
    if isinstance(client, str):
        print(f"mediabot {args.command}: {client}", file=sys.stderr)
        return 2
    try:
        if args.command == "join":
            if bool(args.url) == bool(args.meeting_id):
                print("mediabot join: give a join URL or --meeting-id (with --passcode)", file=sys.stderr)
                return 2
            answer = client.join(args.url, join_meeting_id=args.meeting_id, passcode=args.passcode)
            print(answer["id"])
        elif args.command == "calls":
            calls = client.calls()
            if args.json:
                print(json.dumps(calls, indent=2))
            for c in calls if not args.json else ():
                names = ", ".join(
                    p.get("displayName") or p.get("id") or "?" for p in c.get("participants", [])
                )
                print(f"{c['id']}\t{c.get('state')}\t{c.get('direction') or '-'}\t{names}")
        else:
            answer = client.hang_up(args.call_id)
            print(f"{answer['id']}\t{answer.get('state')}")
    except ControlError as exc:
        print(f"mediabot {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_control_parsers(sub) -> None:
    join = sub.add_parser("join", help="ask a running bot to join a meeting (prints the call id)")
    join.add_argument("url", nargs="?", help="the meeting's join URL")
    join.add_argument("--meeting-id", help="the meeting's numeric join id, instead of a URL")
    join.add_argument("--passcode", help="the meeting's passcode (with --meeting-id)")
    _add_target_arguments(join)
    calls = sub.add_parser("calls", help="list a running bot's calls (id, state, direction, participants)")
    calls.add_argument(
        "--json", action="store_true", help="print the control API's JSON (with media statistics)"
    )
    _add_target_arguments(calls)
    hangup = sub.add_parser("hangup", help="ask a running bot to hang up a call")
    hangup.add_argument("call_id", metavar="ID")
    _add_target_arguments(hangup)
    for p in (join, calls, hangup):
        p.set_defaults(handler=_control_command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mediabot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_demo_parsers(sub)  # demo, load
    add_emulator_parser(sub)  # emulator
    _add_control_parsers(sub)  # join, calls, hangup
    run = sub.add_parser("run", help="run the bot: serve the calling webhook and handle calls")
    run.add_argument("--config", required=True, metavar="FILE", help="TOML configuration file")
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=None)
    run.add_argument(
        "--check",
        action="store_true",
        help="check the configuration (with the environment it names) and exit: 0 ok, 2 not",
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args.config, args.log_level, args.check)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())

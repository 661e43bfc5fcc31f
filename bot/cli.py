"""The ``mediabot`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .demo.cli import add_parsers as add_demo_parsers
from .emulator.cli import add_parser as add_emulator_parser


def _run(config_path: str, log_level: str | None) -> int:
    from .app import Bot
    from .config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"mediabot: config error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=log_level or config.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bot = Bot(config)
    try:
        asyncio.run(bot.run())
    except KeyboardInterrupt:   # Windows: no signal handlers on the loop
        pass
    except OSError as exc:
        print(f"mediabot: cannot serve the webhook on {config.webhook.host}:{config.webhook.port}: {exc}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mediabot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_demo_parsers(sub)  # demo, load
    add_emulator_parser(sub)  # emulator
    run = sub.add_parser("run", help="run the bot: serve the calling webhook and handle calls")
    run.add_argument("--config", required=True, metavar="FILE", help="TOML configuration file")
    run.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], default=None)
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args.config, args.log_level)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())

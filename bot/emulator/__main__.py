"""``python -m bot.emulator``: ``mediabot emulator --json`` (bot/emulator/cli.py): the local Teams
emulator as a process, printing one JSON line with every address, the app credentials, an access
token and its meetings. Runs until interrupted."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(json_output=True))

"""The ``mediabot`` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mediabot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run a simulated meeting end to end (emulator + bot)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        print("mediabot demo: not yet available (it lands with the local Teams emulator)")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())

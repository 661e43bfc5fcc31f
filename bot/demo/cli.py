"""Command-line parts of `mediabot demo` and `mediabot load`."""

from __future__ import annotations

import argparse


def add_parsers(sub) -> None:
    demo = sub.add_parser("demo", help="run a simulated Teams meeting end to end on this machine")
    demo.add_argument("--duration", type=float, help="seconds (default: the script's)")
    demo.add_argument("--script", help="meeting script (TOML); default: the built-in three-person meeting")
    demo.add_argument("--no-video", action="store_true", help="audio only")
    demo.add_argument("--report", metavar="PATH", help="write the JSON report here")
    demo.add_argument(
        "--grammar",
        action="store_true",
        help="decode speech with a grammar of the script's sentences (exact words)",
    )
    demo.add_argument("--quiet", action="store_true", help="no live view, summary only")
    demo.set_defaults(handler=run_demo_command)

    load = sub.add_parser("load", help="N concurrent audio calls against one bot")
    load.add_argument(
        "--calls",
        default="50",
        help="number of calls, or a comma list to find the largest that holds (50,100,200)",
    )
    load.add_argument("--duration", type=float, default=30.0, help="seconds per run (default 30)")
    load.add_argument("--json", metavar="PATH", help="write the JSON report here")
    load.add_argument(
        "--priority",
        type=int,
        default=0,
        metavar="N",
        help="run the bot's media threads N nice steps higher (needs the right to)",
    )
    load.set_defaults(handler=run_load_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from bot.emulator.script import ScriptError, load_script

    from .run import run_demo

    try:
        script = load_script(args.script)
        if args.duration:
            script = script.with_duration(args.duration)
    except ScriptError as e:
        print(f"mediabot demo: {e}")
        return 2
    report = run_demo(
        script, video=not args.no_video, report_path=args.report, live=not args.quiet, grammar=args.grammar
    )
    return 1 if report["errors"] else 0


def run_load_command(args: argparse.Namespace) -> int:
    from .load import run_load

    try:
        counts = [int(x) for x in str(args.calls).split(",") if x.strip()]
    except ValueError:
        print(f"mediabot load: --calls must be a number or a comma list, not {args.calls!r}")
        return 2
    if not counts or min(counts) < 1 or args.duration <= 1:
        print("mediabot load: need at least one call and a duration over 1 s")
        return 2
    report = run_load(counts, args.duration, args.json, priority=max(0, args.priority))
    return 0 if report["largest_calls_without_drops"] == max(counts) else 1

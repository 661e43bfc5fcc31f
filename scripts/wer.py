"""Word error rate of the ``transcription`` processor on scripted meetings.

    python scripts/wer.py [SCRIPT.toml ...] [--json PATH]

Each meeting (default: bot/emulator/meetings/default.toml) runs through the
real programs: ``mediabot emulator --script`` (espeak-ng speech, Opus, SRTP),
``mediabot run`` with two ``transcription`` processors — free decoding and a
``grammar`` of the script's sentences — and ``mediabot join``. When the
emulator ends the meeting, each speaker's final results (in start order) are
compared with the words the script gives them: WER = (substitutions +
deletions + insertions) / reference words, per speaker and over the meeting.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.emulator.script import DEFAULT_SCRIPT, load_script  # noqa: E402

MODES = ("free", "grammar")


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance over words (substitutions, deletions, insertions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def wer(ref: list[str], hyp: list[str]) -> float:
    return edit_distance(ref, hyp) / max(1, len(ref))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def run_meeting(script_path: Path, work: Path, timeout_s: float = 240) -> dict[str, list[dict]]:
    """Run the meeting through the emulator and the bot; the final results of each
    transcription mode (``free``, ``grammar``)."""
    script = load_script(script_path)
    sentences = [u.text for p in script.participants for u in p.say if u.text]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIABOT_")}
    config = work / "bot.toml"
    port = _free_port()
    mediabot = [sys.executable, "-m", "bot"]
    emu_log = open(work / "emulator.log", "wb")
    emulator = subprocess.Popen(
        mediabot + ["emulator", "--script", str(script_path), "--no-video", "--port", "0",
                    "--tls-port", "0", "--bot-config", str(config), "--allow-http-callbacks",
                    "--webhook", f"http://127.0.0.1:{port}/api/calls", "--json"],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=emu_log)
    bot = None
    try:
        info = json.loads(emulator.stdout.readline() or "{}")
        if not info:
            raise RuntimeError(f"the emulator did not start: {(work / 'emulator.log').read_text()}")
        for line in Path(f"{config}.env").read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
        env["MEDIABOT_WER_CONTROL"] = "wer-control-token-0123456789"
        with open(config, "a") as f:
            f.write(f"""
[[processors]]
name = "transcription"
file = "free.jsonl"
captions = ""
partial_interval_ms = 0

[[processors]]
name = "transcription"
file = "grammar.jsonl"
captions = ""
partial_interval_ms = 0
grammar = {json.dumps(sentences)}

[output]
dir = "{work / 'out'}"

[control]
token_env = "MEDIABOT_WER_CONTROL"
""")
        bot = subprocess.Popen(mediabot + ["run", "--config", str(config)], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=open(work / "bot.log", "wb"))
        deadline = time.monotonic() + 60
        while True:
            join = subprocess.run(mediabot + ["join", info["join_url"], "--config", str(config)],
                                  env=env, cwd=REPO, capture_output=True, text=True)
            if join.returncode == 0 or time.monotonic() > deadline or bot.poll() is not None:
                break
            time.sleep(0.3)
        if join.returncode != 0:
            raise RuntimeError(f"join failed: {join.stderr}{(work / 'bot.log').read_text()[-3000:]}")
        call_id = join.stdout.strip()
        deadline = time.monotonic() + timeout_s
        while not any(c["id"] == call_id for c in _get(info["control_url"] + "/calls")["ended"]):
            if time.monotonic() > deadline:
                raise RuntimeError("the meeting did not end")
            time.sleep(0.5)
    finally:
        if bot is not None:
            bot.send_signal(signal.SIGTERM)     # the call has ended: its processors have finished
            bot.wait(60)
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(60)
        emu_log.close()
    folder = next((work / "out").iterdir())
    out = {}
    for mode in MODES:
        lines = [json.loads(x) for x in (folder / f"{mode}.jsonl").read_text().splitlines() if x]
        out[mode] = [x for x in lines if x["final"]]
    return out


def score(script_path: Path, results: dict[str, list[dict]]) -> dict:
    """WER per mode, per speaker and over the meeting (edits / reference words)."""
    script = load_script(script_path)
    report: dict = {"script": str(script_path), "words": 0}
    for mode, finals in results.items():
        edits = words = 0
        speakers = {}
        for p in script.participants:
            ref = p.words()
            hyp = " ".join(x["text"] for x in sorted(finals, key=lambda x: x["start"])
                           if x["speaker"] == p.name).split()
            e = edit_distance(ref, hyp)
            speakers[p.name] = {"wer": round(e / max(1, len(ref)), 3), "hypothesis": " ".join(hyp)}
            edits, words = edits + e, words + len(ref)
        report[mode] = {"wer": round(edits / max(1, words), 3), "speakers": speakers}
        report["words"] = words
    return report


def measure(script_path: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="mediabot-wer-") as tmp:
        return score(script_path, run_meeting(Path(script_path).resolve(), Path(tmp)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scripts", nargs="*", type=Path, default=[DEFAULT_SCRIPT])
    parser.add_argument("--json", metavar="PATH", help="also write the reports as JSON")
    args = parser.parse_args(argv)
    reports = []
    print(f"{'meeting':<40} {'words':>5} {'free WER':>9} {'grammar WER':>12}")
    for path in args.scripts:
        r = measure(path)
        reports.append(r)
        name = str(Path(path).resolve().relative_to(REPO)) if Path(path).resolve().is_relative_to(REPO) \
            else str(path)
        print(f"{name:<40} {r['words']:>5} {r['free']['wer']:>9.3f} {r['grammar']['wer']:>12.3f}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

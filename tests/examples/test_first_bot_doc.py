"""docs/first-bot.md, executed: every block marked ``<!-- run: terminal-N -->``
runs in bash in a fresh folder (with the repository's ``examples``), in the
doc's order, as the terminal it names; ``<!-- apply: FILE -->`` diffs are
applied with ``patch``. A terminal keeps its environment from block to block
(its earlier ``set -a; . ./bot.toml.env; set +a`` lines run again before each
of its later blocks). Where the doc says to paste the printed join URL, the
URL is put in. Two things differ from a person's terminal, both so that tests
can share the machine: the emulator runs on free ports (a bash function adds
``--port 0 --tls-port 0 --webhook`` to ``mediabot emulator``), and the step
"Build" is not run (the tests run in a built tree)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import urllib.request
from pathlib import Path

import pytest

from .support import REPO, free_port, until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="bash, POSIX signals")

DOC = REPO / "docs" / "first-bot.md"
BLOCK = re.compile(r"<!-- (run|apply): (\S+) -->\n```\w*\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str, str]]:
    return BLOCK.findall(DOC.read_text())


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_the_doc_has_the_steps_the_test_runs():
    steps = blocks()
    assert [(k, t) for k, t, _ in steps] == [
        ("run", "terminal-1"), ("run", "terminal-2"), ("run", "terminal-3"), ("run", "terminal-3"),
        ("run", "terminal-2"), ("apply", "my_bot.py"), ("run", "terminal-2")]
    assert "mediabot emulator --bot-config bot.toml --allow-http-callbacks" in steps[0][2]


async def test_first_bot_doc_runs_as_written(tmp_path):
    (tmp_path / "examples").symlink_to(REPO / "examples")
    webhook_port = free_port()
    (tmp_path / "wrap.sh").write_text(
        'mediabot() { if [ "$1" = emulator ]; then shift; command mediabot emulator --port 0 '
        f'--tls-port 0 --webhook http://127.0.0.1:{webhook_port}/api/calls "$@"; '
        'else command mediabot "$@"; fi; }\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIABOT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["BASH_ENV"] = str(tmp_path / "wrap.sh")
    running: list[asyncio.subprocess.Process] = []
    url = ""
    shell_state: dict[str, list[str]] = {}      # terminal -> its lines that set the environment

    async def start(step: tuple[str, str, str], name: str) -> tuple[asyncio.subprocess.Process, Path]:
        _, terminal, text = step
        state = shell_state.setdefault(terminal, [])
        text = "".join(f"{line}\n" for line in state) + text
        state += [x for x in step[2].splitlines() if x.startswith(("set -a", "export "))]
        out = tmp_path / f"{name}.out"
        with open(out, "wb") as f:
            proc = await asyncio.create_subprocess_exec(
                "bash", "-e", "-c", text.replace(" URL ", f" '{url}' "), cwd=tmp_path, env=env,
                stdout=f, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        running.append(proc)
        return proc, out

    async def run(step: tuple[str, str, str], name: str) -> str:
        proc, out = await start(step, name)
        assert await asyncio.wait_for(proc.wait(), 120) == 0, out.read_text()
        return out.read_text()

    async def interrupt(proc: asyncio.subprocess.Process) -> int:
        os.killpg(proc.pid, signal.SIGINT)            # Ctrl+C in that terminal
        return await asyncio.wait_for(proc.wait(), 60)

    steps = blocks()
    try:
        emulator, emulator_out = await start(steps[0], "terminal-1")
        await until(lambda: emulator_out.read_text().strip(), 120, "the join URL", emulator,
                    emulator_out)
        url = emulator_out.read_text().splitlines()[0].strip()
        assert url.startswith("https://teams.microsoft.com/l/meetup-join/"), url

        bot, bot_out = await start(steps[1], "terminal-2")
        health = f"http://127.0.0.1:{webhook_port}/health"
        await until(lambda: healthy(health), 60, "the bot's webhook", bot, bot_out)
        call_id = (await run(steps[2], "terminal-3")).strip().splitlines()[-1]
        folder = tmp_path / "calls" / call_id
        await until(lambda: "CallEnded" in _read(folder / "events.jsonl"), 120,
                    "the end of the meeting", bot, bot_out)
        captions = await run(steps[3], "terminal-3b")
        for name in ("Alice", "Bob", "Carol"):
            assert f"<v {name}>" in captions, captions
        assert await interrupt(bot) == 0, bot_out.read_text()[-3000:]

        await run(steps[4], "terminal-2b")
        patch = await asyncio.create_subprocess_exec(
            "patch", "my_bot.py", cwd=tmp_path, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        said, _ = await patch.communicate(steps[5][2].encode())
        assert patch.returncode == 0, said.decode()
        mine, mine_out = await start(steps[6], "terminal-2c")
        assert await asyncio.wait_for(mine.wait(), 150) == 0, mine_out.read_text()[-3000:]
    finally:
        for proc in running:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except asyncio.TimeoutError:
                    os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()

    printed = mine_out.read_text()
    assert "joined: call" in printed
    assert re.search(r"^  \.\.\. (Alice|Bob|Carol): \S", printed, re.M), printed   # partials
    finals = re.findall(r"^\d\d:\d\d:\d\d\.\d\d\d --> \S+  (\w+): ", printed, re.M)
    assert set(finals) == {"Alice", "Bob", "Carol"}, printed
    (vtt,) = (tmp_path / "my-captions").glob("*/captions.vtt")
    assert {f"<v {n}>" for n in ("Alice", "Bob", "Carol")} <= set(re.findall(r"<v \w+>", vtt.read_text()))


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""

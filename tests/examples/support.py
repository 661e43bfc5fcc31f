"""Running an example as a user does: ``mediabot emulator`` in one process (it
writes ``bot.toml``), the example in another, both as subprocesses; the
emulator's control API (``/emulator/...``, docs/emulator.md) to ring the bot
and to read what the emulator received."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Emulator:
    proc: asyncio.subprocess.Process
    info: dict
    config: Path           # the bot.toml it wrote
    env: dict[str, str]    # the environment a bot needs (the client secret loaded)
    log: Path

    def control(self, method: str, path: str, body: dict | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.info["control_url"] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.read()

    async def control_async(self, method: str, path: str, body: dict | None = None) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.control(method, path, body))

    async def control_json(self, method: str, path: str, body: dict | None = None):
        return json.loads(await self.control_async(method, path, body))


async def start_emulator(tmp_path: Path, *args: str) -> Emulator:
    """``mediabot emulator --bot-config bot.toml --allow-http-callbacks --json`` on free ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIABOT_")}
    config = tmp_path / "bot.toml"
    log = tmp_path / "emulator.log"
    port = free_port()
    with open(log, "wb") as f:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "emulator", "--port", "0", "--tls-port", "0",
            "--media-port", "0", "--bot-config", str(config), "--allow-http-callbacks",
            "--webhook", f"http://127.0.0.1:{port}/api/calls", "--json", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=f)
    line = await asyncio.wait_for(proc.stdout.readline(), 120)
    assert line, log.read_text()
    for entry in Path(f"{config}.env").read_text().splitlines():
        key, _, value = entry.partition("=")
        env[key] = value
    return Emulator(proc, json.loads(line), config, env, log)


async def start_example(name: str, *args: str, env: dict[str, str], cwd: Path,
                        ) -> tuple[asyncio.subprocess.Process, Path, Path]:
    """``python examples/NAME args`` with stdout and stderr to files in ``cwd``."""
    out, err = cwd / f"{name}.out", cwd / f"{name}.log"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = await asyncio.create_subprocess_exec(sys.executable, str(EXAMPLES / name), *args,
                                                    env=env, cwd=cwd, stdout=o, stderr=e)
    return proc, out, err


async def until(predicate, timeout_s: float, what: str, proc=None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc is not None and proc.returncode is not None:
            raise AssertionError(f"exited {proc.returncode} while waiting for {what}: "
                                 f"{log.read_text()[-4000:] if log else ''}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> int:
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode


def speech_span(pcm: np.ndarray, threshold: float = 300.0, frame: int = 160) -> tuple[float, float]:
    """(start, end) in seconds of the audio louder than ``threshold`` RMS, in 10 ms frames."""
    n = len(pcm) // frame
    rms = np.sqrt(np.mean(pcm[:n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > threshold)
    assert len(loud), "no speech"
    return loud[0] * frame / 16000, (loud[-1] + 1) * frame / 16000

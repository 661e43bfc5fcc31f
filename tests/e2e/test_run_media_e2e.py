"""Operations end to end, every part its own process: ``mediabot emulator`` (Graph, callbacks
and a meeting of simulated people), ``mediabot run --config`` hosting app-hosted media with the
``events`` processor writing under ``[output] dir``, and the operator's ``mediabot join`` /
``calls`` / ``hangup``; then SIGTERM with a call still up leaves complete files and exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CONTROL_TOKEN = "e2e-control-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def mediabot(*argv: str, env: dict[str, str], timeout_s: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", *argv, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
    return proc.returncode


async def test_run_join_list_hangup_and_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIABOT_")}
    emulator_log = tmp_path / "emulator.log"
    with open(emulator_log, "wb") as log_file:
        emulator = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "emulator", "--port", "0", "--tls-port", "0", "--json",
            "--allow-http-callbacks", "--meeting", "Alice,Bob", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=log_file)
    bot = None
    try:
        line = await asyncio.wait_for(emulator.stdout.readline(), 60)
        assert line, emulator_log.read_text()
        info = json.loads(line)
        (meeting,) = info["meetings"]
        people = meeting["participants"]               # display name -> participant id

        port = free_port()
        out_dir = tmp_path / "calls"
        config = tmp_path / "bot.toml"
        config.write_text(f"""
[bot]
app_id = "{info['app_id']}"
tenant_id = "{info['tenant_id']}"

[graph]
base_url = "{info['graph_url']}"
token_env = "MEDIABOT_E2E_GRAPH_TOKEN"

[webhook]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}/api/calls"
openid_configuration_url = "{info['openid_configuration_url']}"

[media]
bind_address = "127.0.0.1"
port = 0
audio_workers = 1

[[processors]]
name = "events"

[output]
dir = "calls"

[control]
token_env = "MEDIABOT_E2E_CONTROL"
""")
        env.update(MEDIABOT_E2E_GRAPH_TOKEN=info["access_token"], MEDIABOT_E2E_CONTROL=CONTROL_TOKEN)
        bot_log = tmp_path / "bot.log"          # a file, not a pipe: nobody has to drain it
        with open(bot_log, "wb") as log_file:
            bot = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--config", str(config), env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=log_file)

        # the operator: join (retried until the bot listens), list, hang up
        deadline = time.monotonic() + 60
        while True:
            rc, out, err = await mediabot("join", meeting["joinWebUrl"], "--config", str(config), env=env)
            if rc == 0 or "cannot reach the bot" not in err or time.monotonic() > deadline:
                break
            assert bot.returncode is None, bot_log.read_text()
            await asyncio.sleep(0.2)
        assert rc == 0, err
        call_id = out.strip()
        assert call_id and "\n" not in call_id

        events = out_dir / call_id / "events.jsonl"

        def joined() -> set[str]:
            return {e["display_name"] for e in read_events(events) if e["event"] == "ParticipantJoined"}

        await until(lambda: joined() >= {"Alice", "Bob"}, 30, "the participants' joins in events.jsonl")
        ids = {e["display_name"]: e["participant_id"] for e in read_events(events)
               if e["event"] == "ParticipantJoined"}
        assert ids == {name: people[name] for name in ("Alice", "Bob")}

        rc, out, err = await mediabot("calls", "--config", str(config), "--json", env=env)
        assert rc == 0, err
        (listed,) = json.loads(out)
        assert listed["id"] == call_id and listed["state"] == "established"
        assert {(p["id"], p["displayName"]) for p in listed["participants"]} == {(i, n) for n, i in people.items()}
        streams = listed["media"]["streams"]
        assert {(s["kind"], s["direction"]) for s in streams} >= {("audio", "receive"), ("audio", "send")}
        assert {s["participantId"] for s in streams if s["direction"] == "receive"} == set(people.values())
        assert listed["media"]["processorErrors"] == {"EventLog": 0}

        rc, out, err = await mediabot("hangup", call_id, "--config", str(config), env=env)
        assert rc == 0, err
        await until(lambda: read_events(events)[-1]["event"] == "CallEnded", 30, "CallEnded in events.jsonl")
        rc, out, err = await mediabot("calls", "--config", str(config), env=env)
        assert rc == 0 and out == "", (out, err)
        rc, out, err = await mediabot("hangup", call_id, "--config", str(config), env=env)
        assert rc == 1 and "404" in err

        # a second call is still up at SIGTERM: the bot hangs it up and its file is complete
        rc, out, err = await mediabot("join", "--meeting-id", meeting["joinMeetingId"], "--config", str(config),
                                      env=env)
        assert rc == 0, err
        second = out_dir / out.strip() / "events.jsonl"
        await until(lambda: len(read_events(second)) >= 2, 30, "the second call's joins")
        assert await stop(bot) == 0, bot_log.read_text()
        assert "hanging up 1 call(s)" in bot_log.read_text()
        assert [e["event"] for e in read_events(second)] == ["ParticipantJoined", "ParticipantJoined", "CallEnded"]
    finally:
        if bot is not None:
            await stop(bot)
        assert await stop(emulator) == 0

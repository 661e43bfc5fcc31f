"""``mediabot run --config FILE`` as a real process: serves health, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import aiohttp
import pytest

from bot.cli import main as cli_main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_run_serves_and_shuts_down_on_sigterm(tmp_path):
    port = free_port()
    cfg = tmp_path / "bot.toml"
    cfg.write_text(f"""
[bot]
app_id = "2891555a-92ff-42e6-80fa-6e1300c6b5c6"
tenant_id = "86dc81db-c112-4228-9222-63f3esaa1edb"

[graph]
token_env = "MEDIABOT_TEST_TOKEN"

[webhook]
host = "127.0.0.1"
port = {port}
public_url = "https://bot.contoso.com/api/calls"
""")
    env = dict(os.environ, MEDIABOT_TEST_TOKEN="t")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run", "--config", str(cfg),
                                                env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        body = None
        async with aiohttp.ClientSession() as s:
            for _ in range(200):
                try:
                    async with s.get(f"http://127.0.0.1:{port}/health") as resp:
                        body = await resp.json()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            assert body is not None and body["status"] == "ok" and body["accepting"] is True
            async with s.post(f"http://127.0.0.1:{port}/api/calls", json={"value": []}) as resp:
                assert resp.status == 401           # authentication is on by default
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 15)
        assert rc == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_run_reports_config_errors(tmp_path, capsys):
    bad = tmp_path / "bot.toml"
    bad.write_text("[bot]\napp_id = \"a\"\n")
    assert cli_main(["run", "--config", str(bad)]) == 2
    assert "tenant_id is required" in capsys.readouterr().err


def test_demo_subcommand_still_registered(capsys):
    with pytest.raises(SystemExit) as info:
        cli_main(["demo", "--help"])
    assert info.value.code == 0
    assert "demo" in capsys.readouterr().out

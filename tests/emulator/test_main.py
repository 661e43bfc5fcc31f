"""``python -m bot.emulator`` as a process: prints its addresses, serves Graph, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import aiohttp


async def test_emulator_process_serves_and_stops_cleanly():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.emulator", "--port", "0", "--tls-port", "0", "--meeting", "Alice,Bob",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        text = ""
        while not text.rstrip().endswith("}") or text.count("{") != text.count("}"):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, (await proc.stderr.read()).decode()
            text += line.decode()
        info = json.loads(text)
        (meeting,) = info["meetings"]
        assert set(meeting["participants"]) == {"Alice", "Bob"}
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {info['access_token']}"}
            async with session.get(info["graph_url"] + "/communications/calls/none", headers=headers) as resp:
                assert resp.status == 404 and (await resp.json())["error"]["code"] == "ItemNotFound"
            async with session.get(info["openid_configuration_url"]) as resp:
                assert (await resp.json())["issuer"] == "https://api.botframework.com"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0

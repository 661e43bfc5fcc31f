"""Signaling set-up through the emulator: incoming-call notification ->
the Bot answers -> ``call_established`` fires in the Bot, everything real (signed JWT callbacks,
JWKS-verified, Graph client, per-call queues, state machine) on loopback.

Anchor, measured in the same run: the wire floor of that flow, the same four HTTP exchanges
(notification, answer, establishing, established) between two bare aiohttp apps.
The budget for the whole set-up including media is 300 ms; Microsoft's SDK users report
5-10 s joins.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from aiohttp import ClientSession, web

from benchmarks._report import QUICK, percentile_ns, record_comparison
from bot.app import Bot
from bot.config import BotConfig, CallSettings, GraphSettings, WebhookSettings
from bot.emulator import GraphEmulator, ServiceOptions
from bot.graph import models as m

CALLS = 10 if QUICK else 40


async def _bot_setup_ns(calls: int) -> list[float]:
    async with GraphEmulator(options=ServiceOptions(time_scale=0.001, allow_http_callbacks=True), tls=False) as emu:
        config = BotConfig(
            app_id=emu.app_id, tenant_id=emu.tenant_id,
            graph=GraphSettings(base_url=emu.graph_url, static_token=emu.access_token()),
            webhook=WebhookSettings(host="127.0.0.1", port=0, openid_configuration_url=emu.openid_configuration_url),
            calls=CallSettings(keepalive_interval_s=600))
        bot = Bot(config)
        established: dict[str, float] = {}
        waiters: dict[str, asyncio.Event] = {}

        @bot.on("call_established")
        async def done(call):
            established[call.id] = time.perf_counter_ns()
            waiters.setdefault(call.id, asyncio.Event()).set()

        await bot.start()
        try:
            url = f"http://127.0.0.1:{bot.webhook.port}{config.webhook.path}"
            config.webhook.public_url = url
            emu.register_bot(webhook_url=url)
            samples = []
            for i in range(calls + 2):  # two warm-up calls (JWKS fetch, connection set-up)
                start = time.perf_counter_ns()
                call = emu.incoming_call()
                event = waiters.setdefault(call.id, asyncio.Event())
                await asyncio.wait_for(event.wait(), 10)
                if i >= 2:
                    samples.append(established[call.id] - start)
                await bot.calls[m.id_key(call.id)].hang_up()
            return samples
        finally:
            await bot.stop()


async def _wire_floor_ns(calls: int) -> list[float]:
    """Two bare aiohttp apps doing the same four JSON POSTs in the same order."""
    body = {"value": [{"changeType": "updated", "resourceData": {"state": "established"}}]}
    done: dict[str, asyncio.Event] = {}
    platform_app, bot_app = web.Application(), web.Application()
    runners = []
    session = ClientSession()
    urls: dict[str, str] = {}

    async def bot_hook(request: web.Request) -> web.Response:
        data = await request.json()
        call_id = request.query["id"]
        if data.get("kind") == "incoming":
            async def answer() -> None:
                async with session.post(urls["platform"] + f"/answer?id={call_id}", json={"a": 1}) as resp:
                    await resp.read()
            asyncio.get_running_loop().create_task(answer())
        elif data.get("kind") == "established":
            done[call_id].set()
        return web.Response(status=202)

    async def platform_answer(request: web.Request) -> web.Response:
        await request.json()
        call_id = request.query["id"]

        async def notify() -> None:
            for kind in ("establishing", "established"):
                async with session.post(urls["bot"] + f"?id={call_id}", json={**body, "kind": kind}) as resp:
                    await resp.read()
        asyncio.get_running_loop().create_task(notify())
        return web.Response(status=202)

    bot_app.router.add_post("/api/calls", bot_hook)
    platform_app.router.add_post("/answer", platform_answer)
    for name, app, path in (("bot", bot_app, "/api/calls"), ("platform", platform_app, "")):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        urls[name] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}{path}"
    try:
        samples = []
        for i in range(calls + 2):
            call_id = str(i)
            done[call_id] = asyncio.Event()
            start = time.perf_counter_ns()
            async with session.post(urls["bot"] + f"?id={call_id}", json={**body, "kind": "incoming"}) as resp:
                await resp.read()
            await asyncio.wait_for(done[call_id].wait(), 10)
            if i >= 2:
                samples.append(time.perf_counter_ns() - start)
        return samples
    finally:
        await session.close()
        for runner in runners:
            await runner.cleanup()


@pytest.mark.benchmark(group="signaling-setup")
def test_incoming_call_to_established_at_the_bot(benchmark):
    def run():
        return asyncio.run(_bot_setup_ns(CALLS)), asyncio.run(_wire_floor_ns(CALLS))

    subject, anchor = benchmark.pedantic(run, rounds=1, iterations=1)
    for q in (50, 99):
        record_comparison(
            f"signaling set-up p{q}: incoming-call notification -> call_established in the Bot",
            subject="mediabot Bot + Graph emulator (signed callbacks, Graph client, state machine)",
            anchor="wire floor: the same 4 HTTP exchanges between bare aiohttp apps",
            subject_ns=percentile_ns(subject, q), anchor_ns=percentile_ns(anchor, q),
            calls=len(subject), budget_ms=300)
    assert len(subject) == CALLS and len(anchor) == CALLS

"""A bot configured like `mediabot run` against the local emulator — msal through
graph.authority_host / instance_discovery / ca_bundle, no token handed over — keeps working past
the expiry of its app token (the emulator issues 3-second tokens and accepts them without
leeway), while a fixed token (graph.token_env) is refused once it has expired."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from bot.app import Bot
from bot.config import config_from_mapping
from bot.emulator import GraphEmulator, ServiceOptions
from bot.graph import models as m
from bot.graph.errors import GraphError

LIFETIME_S = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def emu():
    emulator = GraphEmulator(options=ServiceOptions(time_scale=0.002, allow_http_callbacks=True))
    await emulator.start()
    emulator.auth.access_token_lifetime_s = LIFETIME_S
    emulator.auth.access_token_leeway_s = 0
    yield emulator
    await emulator.stop()


def bot_config(emu: GraphEmulator, graph: dict, env: dict):
    port = free_port()
    webhook = f"http://127.0.0.1:{port}/api/calls"
    emu.register_bot(webhook_url=webhook)
    return config_from_mapping({
        "bot": {"app_id": emu.app_id, "tenant_id": emu.tenant_id},
        "graph": {"base_url": emu.graph_url, **graph},
        "webhook": {"public_url": webhook, "host": "127.0.0.1", "port": port,
                    "openid_configuration_url": emu.openid_configuration_url},
        "calls": {"keepalive_interval_s": 0.5},
    }, env=env)


async def test_msal_configured_bot_refreshes_its_token_past_expiry(emu):
    config = bot_config(emu, {"authority_host": emu.tls_base_url, "instance_discovery": False,
                              "ca_bundle": emu.ca_cert_path}, {"MEDIABOT_CLIENT_SECRET": emu.client_secret})
    bot = Bot(config)                                   # msal, built from the settings alone
    await bot.start()
    try:
        call = await asyncio.wait_for(bot.create_call([m.IdentitySet.of_user("u-1", "John")]), 10)
        assert call.state == "established"
        started = time.monotonic()
        while time.monotonic() - started < 2.5 * LIFETIME_S:   # keepAlive every 0.5 s, across two expiries
            await asyncio.sleep(0.25)
        assert (await call.mute()).status == "completed"
        graph_requests = [r for r in emu.requests if r.path.startswith("/v1.0/")]
        assert [r for r in graph_requests if r.status == 401] == []
        assert call.keepalives_sent >= 8 and not call.is_terminated
        assert emu.tokens_issued >= 3                   # fetched again as each token ran out
        await call.hang_up()
    finally:
        await bot.stop()


async def test_a_fixed_token_is_refused_after_it_expires_and_says_why(emu, caplog):
    config = bot_config(emu, {"token_env": "GRAPH_TOKEN"}, {"GRAPH_TOKEN": emu.access_token()})
    bot = Bot(config)
    await bot.start()
    try:
        call = await asyncio.wait_for(bot.create_call([m.IdentitySet.of_user("u-1", "John")]), 10)
        await asyncio.sleep(LIFETIME_S + 1.1)
        with pytest.raises(GraphError) as info:
            await bot.api.get_call(call.id)
        assert info.value.status == 401
        assert any(r.levelno == logging.ERROR and "cannot be refreshed" in r.getMessage() for r in caplog.records)
    finally:
        bot.config.calls.on_shutdown = "keep"
        await bot.stop()

"""Fixtures for the emulator tests: a running GraphEmulator, a real aiohttp notification receiver
that verifies each callback's JWT against the emulator's published JWKS, a Graph client with an
emulator-issued token, and the documented examples."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web

from bot.emulator import GraphEmulator, ServiceOptions


#: the documented Graph bodies (tests/fixtures/graph/README.md says where each comes from)
EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "graph"


def example(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text())


# Which identity an identitySet holds depends on who is in the call, not on the shape.
IDENTITY_KINDS = frozenset({"user", "application", "applicationInstance", "phone", "guest", "encrypted",
                            "device", "onPremises"})


def assert_shape(actual: Any, documented: Any, path: str = "$", *, optional: frozenset[str] = frozenset()) -> None:
    """Every member of the documented body is present with the same JSON type (null matches any;
    the identity kinds inside an identitySet need only match when both sides hold them)."""
    if documented is None or actual is None:
        return
    if isinstance(documented, dict):
        assert isinstance(actual, dict), f"{path}: expected object, got {actual!r}"
        for key, value in documented.items():
            if key in optional or (key in IDENTITY_KINDS and key not in actual):
                continue
            assert key in actual, f"{path}: missing member {key!r} (have {sorted(actual)})"
            assert_shape(actual[key], value, f"{path}.{key}", optional=optional)
    elif isinstance(documented, list):
        assert isinstance(actual, list), f"{path}: expected array, got {actual!r}"
        if documented and actual:
            assert_shape(actual[0], documented[0], f"{path}[0]", optional=optional)
    elif isinstance(documented, bool):
        assert isinstance(actual, bool), f"{path}: expected boolean, got {actual!r}"
    elif isinstance(documented, (int, float)):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), f"{path}: expected number"
    else:
        assert isinstance(actual, type(documented)), f"{path}: expected {type(documented).__name__}, got {actual!r}"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict
    claims: dict | None
    error: str | None


@dataclass
class Receiver:
    """A bot-side webhook: records notifications, checks each bearer JWT with PyJWT."""

    emulator: GraphEmulator
    url: str = ""
    status: int = 202
    redirect_to: str | None = None  # answer POSTs to /api/calls with 302 + Location
    legacy_status: int = 204  # the answer to a legacy (Skype) body: 204 asks for the Graph format
    received: list[Received] = field(default_factory=list)
    _jwks: jwt.PyJWKSet | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def jwks(self) -> jwt.PyJWKSet:
        async with aiohttp.ClientSession() as session:
            async with session.get(self.emulator.openid_configuration_url) as resp:
                config = await resp.json()
            async with session.get(config["jwks_uri"]) as resp:
                return jwt.PyJWKSet.from_dict(await resp.json())

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        claims = error = None
        try:
            token = request.headers["Authorization"].removeprefix("Bearer ")
            kid = jwt.get_unverified_header(token)["kid"]
            if self._jwks is None or kid not in [k.key_id for k in self._jwks.keys]:
                self._jwks = await self.jwks()
            key = self._jwks[kid]
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=self.emulator.app_id,
                                issuer="https://api.botframework.com", options={"require": ["exp", "nbf", "tid"]})
        except (KeyError, jwt.PyJWTError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        async with self._changed:
            self.received.append(Received(request.path, dict(request.headers), body, claims, error))
            self._changed.notify_all()
        if "value" not in body:
            return web.Response(status=self.legacy_status)
        if self.redirect_to is not None and request.path == "/api/calls":
            return web.Response(status=302, headers={"Location": self.redirect_to})
        return web.Response(status=self.status)

    def items(self, call_id: str | None = None) -> list[dict]:
        out = []
        for r in self.received:
            if "value" not in r.body:
                continue  # a legacy (Skype) body
            item = r.body["value"][0]
            if call_id is None or f"/calls/{call_id}" in item["resourceUrl"]:
                out.append(item)
        return out

    async def wait(self, count: int, call_id: str | None = None, timeout_s: float = 5.0) -> list[dict]:
        async def _wait() -> list[dict]:
            async with self._changed:
                while len(self.items(call_id)) < count:
                    await self._changed.wait()
                return self.items(call_id)

        return await asyncio.wait_for(_wait(), timeout_s)


@pytest.fixture
async def emulator():
    emu = GraphEmulator(options=ServiceOptions(time_scale=0.002, allow_http_callbacks=True))
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
async def receiver(emulator: GraphEmulator):
    rec = Receiver(emulator)
    app = web.Application()
    app.router.add_post("/api/calls", rec.handle)
    app.router.add_post("/api/other", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    rec.url = f"http://127.0.0.1:{port}/api/calls"
    emulator.register_bot(webhook_url=rec.url)
    try:
        yield rec
    finally:
        await runner.cleanup()


class Graph:
    """Raw aiohttp requests to the emulator with an emulator-issued app token."""

    def __init__(self, emulator: GraphEmulator, session: aiohttp.ClientSession) -> None:
        self.emu = emulator
        self.session = session
        self.token = emulator.access_token()

    async def request(self, method: str, path: str, body: Any = None, *, version: str = "v1.0",
                      headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        hdrs = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        url = f"{self.emu.base_url}/{version}{path}"
        async with self.session.request(method, url, json=body, headers=hdrs) as resp:
            text = await resp.text()
            return resp.status, resp.headers, (json.loads(text) if text else None)

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("POST", path, body if body is not None else {}, **kw)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("GET", path, **kw)

    async def delete(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        return await self.request("DELETE", path, **kw)


@pytest.fixture
async def graph(emulator: GraphEmulator):
    async with aiohttp.ClientSession() as session:
        yield Graph(emulator, session)

"""A scripted Graph endpoint on a real aiohttp server, recording what the client sends."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.graph.api import CallsApi
from bot.graph.auth import StaticTokenProvider
from bot.graph.client import GraphClient, RetryPolicy


class FakeGraph:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.routes: list[tuple[str, re.Pattern[str], Callable]] = []
        self.server: TestServer | None = None
        self.client: GraphClient | None = None

    def on(self, method: str, pattern: str, status: int = 200, body=None, headers=None,
           before: Callable[[dict], Awaitable[None]] | None = None) -> None:
        """Answer ``method`` on paths matching ``pattern`` (regex, searched) — newest rule wins."""
        async def respond(req: dict):
            if before is not None:
                await before(req)
            if isinstance(body, (dict, list)):
                return web.json_response(body, status=status, headers=headers)
            return web.Response(status=status, body=body or b"", headers=headers)
        self.routes.insert(0, (method, re.compile(pattern), respond))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        req = {"method": request.method, "path": request.path, "headers": dict(request.headers),
               "json": json.loads(raw) if raw else None}
        self.requests.append(req)
        for method, pattern, respond in self.routes:
            if method == request.method and pattern.search(request.path):
                return await respond(req)
        return web.json_response({"error": {"code": "NotFound", "message": "no route"}}, status=404)

    async def start(self) -> CallsApi:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app)
        await self.server.start_server()
        self.client = GraphClient(token_provider=StaticTokenProvider("graph-token"),
                                  base_url=str(self.server.make_url("/v1.0")),
                                  beta_base_url=str(self.server.make_url("/beta")),
                                  retry=RetryPolicy(max_retries=0))
        return CallsApi(self.client)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def sent(self, path_suffix: str, method: str = "POST") -> dict:
        matches = [r for r in self.requests if r["method"] == method and r["path"].endswith(path_suffix)]
        assert matches, f"no {method} …{path_suffix} in {[r['path'] for r in self.requests]}"
        return matches[-1]

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.server is not None:
            await self.server.close()


POLYMORPHIC = {"mediaConfig", "meetingInfo", "callOptions"}


def shape(value, parent: str | None = None):
    """JSON with @odata.type dropped where it only restates the declared type (the docs are
    inconsistent there); kept where it selects a subtype (mediaConfig, meetingInfo, callOptions)."""
    if isinstance(value, list):
        return [shape(v, parent) for v in value]
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()
                if not (k == "@odata.type" and parent not in POLYMORPHIC)}
    return value

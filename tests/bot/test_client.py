"""GraphClient against a real aiohttp server: retries, Retry-After, bounds, errors, tokens."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.graph import errors
from bot.graph.auth import StaticTokenProvider, TokenProvider
from bot.graph.client import Clock, GraphClient, RetryPolicy, parse_retry_after


class FakeClock(Clock):
    """Virtual time: sleeping advances it instantly and is recorded."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


class Script:
    """An aiohttp app answering from a list of (status, headers, body) and recording requests."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests: list[dict] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append({"method": request.method, "path": request.path,
                              "headers": dict(request.headers),
                              "json": json.loads(body) if body else None})
        status, headers, payload = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(payload, (dict, list)):
            return web.json_response(payload, status=status, headers=headers)
        return web.Response(status=status, headers=headers, body=payload or b"")


@pytest.fixture
async def serve():
    servers = []

    async def start(script: Script) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", script.handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/v1.0"))

    yield start
    for s in servers:
        await s.close()


THROTTLED = {"error": {"code": "TooManyRequests", "innerError": {
    "code": "429", "date": "2020-08-18T12:51:51", "message": "Please retry after",
    "request-id": "94fb3b52-452a-4535-a601-69e0a90e3aa2", "status": "429"},
    "message": "Please retry again later."}}


async def test_429_fractional_retry_after_then_success(serve):
    script = Script([(429, {"Retry-After": "2.128", "request-id": "r1"}, THROTTLED),
                     (200, {"request-id": "r2"}, {"ok": True})])
    clock = FakeClock()
    async with GraphClient(token_provider=StaticTokenProvider("tok"), base_url=await serve(script),
                           clock=clock, scenario_id="scen-1") as graph:
        resp = await graph.get("communications/calls/abc")
    assert resp.body == {"ok": True} and resp.attempts == 2 and resp.request_id == "r2"
    assert clock.sleeps == [2.128]
    first, second = script.requests
    assert first["path"] == "/v1.0/communications/calls/abc"
    assert first["headers"]["Authorization"] == "Bearer tok"
    assert first["headers"]["scenario-id"] == second["headers"]["scenario-id"] == "scen-1"
    assert first["headers"]["client-request-id"] != second["headers"]["client-request-id"]


async def test_503_504_exponential_backoff_with_jitter(serve):
    script = Script([(503, {}, b""), (504, {}, b""), (503, {}, b""), (201, {}, {"id": "x"})])
    clock = FakeClock()
    policy = RetryPolicy(max_retries=5, base_delay_s=0.5, max_delay_s=30)
    async with GraphClient(token_provider=None, base_url=await serve(script), clock=clock,
                           retry=policy, rng=lambda: 0.5) as graph:
        resp = await graph.post("communications/calls", {"a": 1})
    assert resp.status == 201 and resp.body == {"id": "x"}
    assert clock.sleeps == [0.25, 0.5, 1.0]      # 0.5 * 2^n * jitter(0.5)
    assert all(r["json"] == {"a": 1} for r in script.requests)
    assert all(r["headers"]["Content-Type"] == "application/json" for r in script.requests)


async def test_gives_up_after_retry_count(serve):
    body = {"error": {"code": "ServiceUnavailable", "message": "busy",
                      "innerError": {"request-id": "inner-id", "date": "2021-01-01T00:00:00"}}}
    script = Script([(503, {"request-id": "rid-503"}, body)])
    clock = FakeClock()
    async with GraphClient(token_provider=None, base_url=await serve(script), clock=clock,
                           retry=RetryPolicy(max_retries=3), rng=lambda: 1.0) as graph:
        with pytest.raises(errors.GraphServiceUnavailable) as info:
            await graph.get("x")
    assert len(script.requests) == 4 and len(clock.sleeps) == 3
    err = info.value
    assert err.status == 503 and err.code == "ServiceUnavailable" and err.message == "busy"
    assert err.request_id == "rid-503" and err.date == "2021-01-01T00:00:00"
    assert err.client_request_id == script.requests[-1]["headers"]["client-request-id"]


async def test_gives_up_when_retry_after_exceeds_total_budget(serve):
    script = Script([(429, {"Retry-After": "120"}, THROTTLED)])
    clock = FakeClock()
    async with GraphClient(token_provider=None, base_url=await serve(script), clock=clock,
                           retry=RetryPolicy(max_total_s=60)) as graph:
        with pytest.raises(errors.GraphThrottled) as info:
            await graph.get("x")
    assert clock.sleeps == [] and len(script.requests) == 1
    assert info.value.retry_after_s == 120.0
    assert info.value.request_id == "94fb3b52-452a-4535-a601-69e0a90e3aa2"   # from innerError
    assert info.value.code == "TooManyRequests"


async def test_total_time_bound_across_retries(serve):
    script = Script([(429, {"Retry-After": "25"}, THROTTLED)])
    clock = FakeClock()
    async with GraphClient(token_provider=None, base_url=await serve(script), clock=clock,
                           retry=RetryPolicy(max_retries=10, max_total_s=60)) as graph:
        with pytest.raises(errors.GraphThrottled):
            await graph.get("x")
    assert clock.sleeps == [25.0, 25.0]


@pytest.mark.parametrize("status,cls,builtin", [
    (400, errors.GraphBadRequest, ValueError), (403, errors.GraphForbidden, PermissionError),
    (404, errors.GraphNotFound, LookupError), (409, errors.GraphConflict, errors.GraphError),
    (500, errors.GraphServerError, errors.GraphError),
])
async def test_error_bodies_become_typed_exceptions(serve, status, cls, builtin):
    body = {"error": {"code": "SomeCode", "message": "what went wrong",
                      "innerError": {"request-id": "inner", "date": "d"}}}
    script = Script([(status, {"request-id": "outer"}, body)])
    async with GraphClient(token_provider=None, base_url=await serve(script), clock=FakeClock()) as graph:
        with pytest.raises(cls) as info:
            await graph.post("communications/calls/x/keepAlive")
    assert isinstance(info.value, builtin)
    assert (info.value.code, info.value.message, info.value.request_id) == ("SomeCode", "what went wrong", "outer")
    assert "outer" in str(info.value)
    assert len(script.requests) == 1     # not retried


async def test_non_json_error_body(serve):
    script = Script([(502, {}, b"<html>bad gateway</html>")])
    async with GraphClient(token_provider=None, base_url=await serve(script), clock=FakeClock()) as graph:
        with pytest.raises(errors.GraphServerError) as info:
            await graph.get("x")
    assert info.value.status == 502 and info.value.body == "<html>bad gateway</html>"


class ThreadRecordingProvider(TokenProvider):
    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def acquire_blocking(self):
        self.threads.append(threading.get_ident())
        return f"token-{len(self.threads)}", 3600.0


async def test_token_fetch_never_on_loop_thread_and_cached(serve):
    script = Script([(200, {}, {"ok": 1})])
    provider = ThreadRecordingProvider()
    async with GraphClient(token_provider=provider, base_url=await serve(script)) as graph:
        await asyncio.gather(*(graph.get(f"x/{i}") for i in range(20)))
    assert provider.threads and threading.get_ident() not in provider.threads
    assert provider.fetch_count == 1                         # single flight + cache
    assert {r["headers"]["Authorization"] for r in script.requests} == {"Bearer token-1"}


async def test_401_refreshes_token_once(serve):
    script = Script([(401, {}, {"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}),
                     (200, {}, {"ok": 1})])
    provider = ThreadRecordingProvider()
    async with GraphClient(token_provider=provider, base_url=await serve(script)) as graph:
        resp = await graph.get("x")
    assert resp.status == 200 and provider.fetch_count == 2
    assert [r["headers"]["Authorization"] for r in script.requests] == ["Bearer token-1", "Bearer token-2"]

    script = Script([(401, {}, {"error": {"code": "InvalidAuthenticationToken", "message": "no"}})])
    async with GraphClient(token_provider=ThreadRecordingProvider(), base_url=await serve(script)) as graph:
        with pytest.raises(errors.GraphUnauthorized):
            await graph.get("x")
    assert len(script.requests) == 2


async def test_connection_error_is_typed_and_get_is_retried():
    clock = FakeClock()
    async with GraphClient(token_provider=None, base_url="http://127.0.0.1:9/v1.0", clock=clock,
                           retry=RetryPolicy(max_retries=2), rng=lambda: 1.0) as graph:
        with pytest.raises(errors.GraphConnectionError):
            await graph.get("x")
        assert len(clock.sleeps) == 2
        with pytest.raises(ConnectionError):
            await graph.post("x", {})
        assert len(clock.sleeps) == 2        # POST is not retried on connection errors


def test_parse_retry_after():
    assert parse_retry_after("2.128") == 2.128
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now_epoch=1445412500.0) == 10.0
    assert parse_retry_after("-3") == 0.0


def test_beta_base_url_derivation():
    g = GraphClient(token_provider=None, base_url="https://graph.microsoft.com/v1.0/")
    assert g.url("communications/calls") == "https://graph.microsoft.com/v1.0/communications/calls"
    assert g.url("x", beta=True) == "https://graph.microsoft.com/beta/x"
    e = GraphClient(token_provider=None, base_url="http://127.0.0.1:8080/graph")
    assert e.url("x", beta=True) == "http://127.0.0.1:8080/graph/x"

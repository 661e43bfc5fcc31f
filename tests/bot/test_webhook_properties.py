"""Property-based tests of the webhook's body handling (hypothesis), over a real socket with real
callback JWTs: whatever the body — random JSON, documented notifications with members replaced by
random values, deep nesting, huge bodies, bytes that are not UTF-8 — the answer is 202, 204, 400
or 413, never 500; every answer other than 202 is counted and logged once; nothing escapes the
request handler; and what is accepted goes through the call state code without an exception."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.calls import Call
from bot.graph import models as m
from bot.graph.api import CallsApi
from bot.graph.auth import StaticTokenProvider
from bot.graph.client import GraphClient
from bot.webhook import CallbackAuthenticator, WebhookServer
from tests.bot.conftest import EXAMPLES
from tests.bot.keys import SigningKey, claims
from tests.bot.test_webhook import APP_ID, KeyServer

MAX_BODY = 64 * 1024
NOTIFICATIONS = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.notification*.json"))]
NOTIFICATIONS = [b for b in NOTIFICATIONS if isinstance(b.get("value"), list)]
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])

json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=30)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated_notifications(draw) -> Any:
    """A documented notification body with one member (at any depth) replaced by random JSON."""
    body = copy.deepcopy(draw(st.sampled_from(NOTIFICATIONS)))
    path = draw(st.sampled_from(_paths(body)))
    replacement = draw(json_values)
    if not path:
        return replacement
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = replacement
    return body


def _nest(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


raw_bodies = st.one_of(
    st.binary(max_size=300),                                                    # bad UTF-8, garbage
    st.builds(_nest, st.integers(1, 60_000), st.sampled_from(["array", "object"])),
    st.builds(lambda n: b'{"value": [' + b'"x",' * n + b'"x"]}', st.integers(0, 30_000)),  # huge
    st.builds(lambda b, i, junk: b[:i] + junk + b[i:],
              st.sampled_from([json.dumps(n).encode() for n in NOTIFICATIONS]),
              st.integers(0, 2000), st.binary(min_size=1, max_size=8)),
)


@pytest.fixture
async def bench(caplog):
    key = SigningKey()
    ks = KeyServer(key)
    await ks.start()
    client = GraphClient(token_provider=StaticTokenProvider("unused"), base_url="http://127.0.0.1:9/v1.0")
    api = CallsApi(client)
    calls: dict[str, Call] = {}

    async def handler(note: m.CommsNotification, ctx) -> None:
        # the call state code behind the webhook (no Graph requests: no listener, no keepAlive)
        key_ = m.id_key(note.call_id)
        call = calls.get(key_) or calls.setdefault(key_, Call(api, note.call_id or "x", keepalive_interval_s=None))
        await call.handle_notification(note)

    server = WebhookServer(authenticator=CallbackAuthenticator(app_id=APP_ID, openid_configuration_url=ks.config_url),
                           handler=handler, host="127.0.0.1", port=0, max_body_bytes=MAX_BODY)
    await server.start()
    session = aiohttp.ClientSession()
    token = key.sign(claims(APP_ID))
    caplog.set_level(logging.DEBUG)

    async def post(data: bytes) -> int:
        before_rejected, before_accepted = server.rejections.total, server.accepted
        records_before = len(caplog.records)
        async with session.post(f"http://127.0.0.1:{server.port}/api/calls", data=data,
                                headers={"Authorization": f"Bearer {token}",
                                         "Content-Type": "application/json"}) as resp:
            status = resp.status
            text = await resp.text()
        assert status in (202, 204, 400, 413), (status, text, data[:200])
        new = caplog.records[records_before:]
        answered = [r for r in new if r.name == "bot.webhook" and "callback answered" in r.getMessage()]
        if status == 202:
            assert server.accepted == before_accepted + 1 and server.rejections.total == before_rejected
            assert answered == []
        else:
            assert server.rejections.total == before_rejected + 1          # counted ...
            assert len(answered) == 1 and f"answered {status} " in answered[0].getMessage()   # ... logged once
            if status in (400, 413):
                assert text                                                 # with its reason
        assert not [r for r in new if r.name.startswith("aiohttp") and r.levelno >= logging.ERROR]
        return status

    server.post = post
    yield server
    await server.dispatcher.drain()
    assert server.dispatcher.handler_errors == 0
    await session.close()
    await server.stop()
    await client.close()
    await ks.server.close()


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


@SETTINGS
@given(value=json_values)
async def test_random_json_never_500(bench, value):
    await bench.post(_encode(value))


@SETTINGS
@given(body=mutated_notifications())
async def test_documented_notifications_with_a_member_replaced_never_500(bench, body):
    await bench.post(_encode(body))
    await bench.dispatcher.drain()
    assert bench.dispatcher.handler_errors == 0


@SETTINGS
@given(data=raw_bodies)
async def test_raw_bytes_deep_nesting_and_huge_bodies_never_500(bench, data):
    status = await bench.post(data)
    if len(data) > MAX_BODY:
        assert status == 413


@SETTINGS
@given(value=st.dictionaries(st.sampled_from(["value", "id", "callState", "@odata.type", "isMultiparty"]),
                             json_values, max_size=4))
async def test_envelopes_never_500(bench, value):
    await bench.post(_encode(value))
    await asyncio.sleep(0)

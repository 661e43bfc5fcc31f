"""Webhook input handling: every body of the wrong shape is answered 400 with a reason (never
500), every refusal is counted and logged exactly once (rate-limited), and the signing-key fetch
backs off while the key endpoint is down. Real sockets, real JWTs (tests/bot/keys.py)."""

from __future__ import annotations

import asyncio
import copy
import json
import logging

import aiohttp
import pytest

from bot.webhook import (
    MAX_JSON_DEPTH,
    CallbackAuthenticator,
    NotificationDispatcher,
    Rejections,
    WebhookServer,
)
from tests.bot.conftest import EXAMPLES, example
from tests.bot.keys import SigningKey, claims
from tests.bot.test_webhook import APP_ID, BODY, KeyServer

CALL_ID = BODY["value"][0]["resourceUrl"].rsplit("/", 1)[-1]


def _with(path: tuple, value) -> dict:
    """BODY with the member at ``path`` (under value[0]) replaced."""
    body = copy.deepcopy(BODY)
    target = body["value"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


WRONG_SHAPES = [
    pytest.param(_deep(50_000), "nested too deeply", None, id="50000-deep-array"),
    pytest.param(b'{"value": ' + _deep(MAX_JSON_DEPTH + 5) + b"}", "nested deeper", None, id="deep-in-value"),
    pytest.param(_with(("resourceData", "extra"), json.loads(_deep(200))), "nested deeper", None,
                 id="deep-inside-resourceData"),
    pytest.param(_with(("resourceUrl",), 12345), "resourceUrl: expected a string", None, id="resourceUrl-number"),
    pytest.param(_with(("resourceUrl",), ["/communications/calls/x"]), "resourceUrl: expected a string", None,
                 id="resourceUrl-array"),
    pytest.param(_with(("resourceData", "state"), ["incoming"]), "resourceData.state: expected a string",
                 CALL_ID, id="state-list"),
    pytest.param(_with(("resourceData", "state"), {"a": 1}), "resourceData.state: expected a string", CALL_ID,
                 id="state-object"),
    pytest.param(_with(("resourceData", "toneInfo"), "tone1"), "resourceData.toneInfo: expected an object",
                 CALL_ID, id="toneInfo-string"),
    pytest.param(_with(("resourceData", "toneInfo"), {"sequenceId": "x", "tone": "tone1"}),
                 "toneInfo.sequenceId: expected an integer", CALL_ID, id="sequenceId-not-a-number"),
    pytest.param(_with(("resourceData", "targets"), {"id": 1}), "resourceData.targets: expected an array",
                 CALL_ID, id="targets-object"),
    pytest.param(_with(("resourceData", "targets"), [1, 2]), "targets[0]: expected an object", CALL_ID,
                 id="targets-numbers"),
    pytest.param(_with(("resourceData",), "established"), "resourceData: expected an object", CALL_ID,
                 id="resourceData-string"),
    pytest.param(_with(("resourceData", "@odata.type"), 7), "@odata.type: expected a string", CALL_ID,
                 id="odata-type-number"),
    pytest.param(_with(("changeType",), True), "changeType: expected a string", CALL_ID, id="changeType-bool"),
    pytest.param({"value": [1]}, "$.value[0] is not an object", None, id="value-item-number"),
    pytest.param({"value": [{"@odata.type": "#microsoft.graph.call", "state": "established"}]},
                 "not a commsNotification", None, id="value-item-a-call"),
    pytest.param({"value": [{"changeType": "updated"}]}, "no resourceUrl", None, id="no-resourceUrl"),
    pytest.param(b'{"value": "\xff\xfe"}', "not JSON", None, id="bad-utf8"),
    pytest.param(b"", "not JSON", None, id="empty"),
    pytest.param(b'"just a string"', "not a JSON object", None, id="string-body"),
    pytest.param({"value": {"changeType": "updated"}}, "no 'value' array", None, id="value-object"),
]


@pytest.fixture
async def server(caplog):
    key = SigningKey()
    ks = KeyServer(key)
    await ks.start()
    received: list = []

    async def handler(note, ctx):
        received.append(note)

    srv = WebhookServer(authenticator=CallbackAuthenticator(app_id=APP_ID, openid_configuration_url=ks.config_url),
                        handler=handler, host="127.0.0.1", port=0, max_body_bytes=256 * 1024)
    await srv.start()
    session = aiohttp.ClientSession()
    token = key.sign(claims(APP_ID))

    async def post(body, *, auth: str | None = token) -> tuple[int, str]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        async with session.post(f"http://127.0.0.1:{srv.port}/api/calls", data=data, headers=headers) as resp:
            return resp.status, await resp.text()

    srv.post = post
    srv.received = received
    caplog.set_level(logging.DEBUG)
    yield srv
    await session.close()
    await srv.stop()
    await ks.server.close()


def _records(caplog, logger: str = "bot.webhook", *, status: int | None = None) -> list[logging.LogRecord]:
    out = [r for r in caplog.records if r.name == logger and "callback answered" in r.getMessage()]
    if status is not None:
        out = [r for r in out if f"answered {status} " in r.getMessage()]
    return out


@pytest.mark.parametrize("body,reason,call_id", WRONG_SHAPES)
async def test_wrong_shape_is_400_with_its_reason_logged_once(server, caplog, body, reason, call_id):
    status, text = await server.post(body)
    assert status == 400 and reason in text
    await server.dispatcher.drain()
    assert server.received == []
    records = _records(caplog)
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert reason in message
    if call_id:
        assert f"call {call_id}" in message
    assert server.rejections.counts["400 json"] + server.rejections.counts["400 shape"] == 1
    # aiohttp logged nothing: no traceback, no 500
    assert not [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= logging.ERROR]


def _notification_examples() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.notification*.json")
                  if isinstance(json.loads(p.read_text()).get("value"), list))


@pytest.mark.parametrize("name", _notification_examples())
async def test_every_documented_notification_body_is_accepted(server, name):
    body = example(name)
    assert await server.post(body) == (202, "")
    await server.dispatcher.drain()
    assert len(server.received) == len(body["value"])


async def test_413_401_and_204_each_write_one_record(server, caplog):
    assert (await server.post(b"x" * (300 * 1024)))[0] == 413
    assert (await server.post(BODY, auth="not.a.jwt"))[0] == 401
    legacy = {"id": "abc-legacy", "participants": [], "isMultiparty": False, "callState": "incoming"}
    assert (await server.post(legacy))[0] == 204
    assert [len(_records(caplog, status=s)) for s in (413, 401, 204)] == [1, 1, 1]
    (legacy_record,) = _records(caplog, status=204)
    assert "call abc-legacy" in legacy_record.getMessage() and legacy_record.levelno == logging.INFO
    assert dict(server.rejections.counts) == {"413 size": 1, "401 auth": 1, "204 legacy": 1}
    assert server.rejected == 2                      # the 204 is not a refusal


async def test_a_flood_of_refusals_is_rate_limited(server, caplog):
    for _ in range(25):
        assert (await server.post(_with(("resourceUrl",), 1)))[0] == 400
    records = _records(caplog, status=400)
    assert len(records) == 25                                           # one record each ...
    assert [r.levelno for r in records].count(logging.WARNING) == 1     # ... one of them loud
    assert server.rejections.counts["400 shape"] == 25
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{server.port}/health") as resp:
            health = await resp.json()
    assert health["rejected"] == 25 and health["rejections"] == {"400 shape": 25}


def test_rejections_report_how_many_were_quiet(caplog):
    now = [0.0]
    rej = Rejections(interval_s=10.0, clock=lambda: now[0])
    caplog.set_level(logging.DEBUG, logger="bot.webhook")
    for t in (0.0, 1.0, 2.0, 11.0):
        now[0] = t
        rej.record(400, "shape", "bad", call_id="c1")
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.WARNING]
    assert "2 more like it" in caplog.records[-1].getMessage()


async def test_a_bug_behind_the_parser_is_one_logged_500_not_an_aiohttp_traceback(caplog):
    class BrokenDispatcher(NotificationDispatcher):
        def submit(self, note, ctx):
            raise RuntimeError("a bug")

    async def handler(note, ctx):
        pass

    caplog.set_level(logging.DEBUG)
    srv = WebhookServer(authenticator=None, handler=handler, host="127.0.0.1", port=0,
                        dispatcher=BrokenDispatcher(handler))
    await srv.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{srv.port}/api/calls", json=BODY) as resp:
                assert resp.status == 500
    finally:
        await srv.stop()
    (record,) = _records(caplog, status=500)
    assert record.levelno == logging.ERROR and "a bug" in record.getMessage() and record.exc_info
    assert not [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= logging.ERROR]


# ---- signing keys: one fetch in flight, back-off while none can be fetched ---------------------------

async def test_no_keys_concurrent_callbacks_share_one_fetch_then_back_off():
    key = SigningKey()
    ks = KeyServer(key)
    ks.down = True
    await ks.start()
    now = [1000.0]
    try:
        auth = CallbackAuthenticator(app_id=APP_ID, openid_configuration_url=ks.config_url,
                                     fetch_backoff_s=2.0, fetch_backoff_max_s=8.0, clock=lambda: now[0])
        srv = WebhookServer(authenticator=auth, handler=lambda n, c: None, host="127.0.0.1", port=0)
        await srv.start()
        token = key.sign(claims(APP_ID))
        async with aiohttp.ClientSession() as s:
            async def post() -> tuple[int, str | None]:
                async with s.post(f"http://127.0.0.1:{srv.port}/api/calls", json=BODY,
                                  headers={"Authorization": f"Bearer {token}"}) as resp:
                    return resp.status, resp.headers.get("Retry-After")

            first = await asyncio.gather(*(post() for _ in range(10)))
            assert [st for st, _ in first] == [503] * 10
            assert ks.jwks_fetches == 1                         # one fetch for ten callbacks
            for _ in range(20):                                 # within the back-off: no fetch at all
                status, retry_after = await post()
                assert status == 503 and retry_after == "2"
            assert ks.jwks_fetches == 1
            now[0] += 2.5                                       # back-off over: one more try, fails
            assert (await post())[0] == 503
            assert ks.jwks_fetches == 2
            now[0] += 3.0                                       # the back-off doubled (4 s): not yet
            assert (await post()) == (503, "1")
            assert ks.jwks_fetches == 2
            ks.down = False
            now[0] += 1.5
            assert (await post())[0] == 202                     # keys back: served
            assert ks.jwks_fetches == 3
            assert (await post())[0] == 202
            assert ks.jwks_fetches == 3
        await srv.stop()
    finally:
        await ks.server.close()

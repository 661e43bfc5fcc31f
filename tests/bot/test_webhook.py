"""Webhook: JWT validation against a real OpenID/JWKS endpoint, 202/401, ordering, duplicates."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import time

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.graph import models as m
from bot.webhook import CallbackAuthenticator, CallbackAuthError, NotificationDispatcher, WebhookServer
from tests.bot.conftest import example
from tests.bot.keys import SigningKey, claims, jwks

APP_ID = "0efc74f7-41c3-47a4-8775-7259bfef4241"


class KeyServer:
    """Serves /.well-known/OpenIdConfiguration and /keys like api.aps.skype.com."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.jwks_fetches = 0
        self.down = False
        self.server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/.well-known/OpenIdConfiguration", self._config)
        app.router.add_get("/v1/keys", self._jwks)
        self.server = TestServer(app)
        await self.server.start_server()

    @property
    def config_url(self) -> str:
        return str(self.server.make_url("/v1/.well-known/OpenIdConfiguration"))

    async def _config(self, request):
        return web.json_response({"issuer": "https://api.botframework.com",
                                  "jwks_uri": str(self.server.make_url("/v1/keys")),
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def _jwks(self, request):
        self.jwks_fetches += 1
        if self.down:
            return web.Response(status=500)
        return web.Response(text=jwks(*self.keys), content_type="application/json")


class Bench:
    """Key server + webhook server + a recording handler."""

    def __init__(self, key_server: KeyServer, webhook: WebhookServer, received: list) -> None:
        self.keys, self.webhook, self.received = key_server, webhook, received
        self.session = aiohttp.ClientSession()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.webhook.port}/api/calls"

    async def post(self, body, token: str | None, *, headers=None, raw: bytes | None = None):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body).encode()
        async with self.session.post(self.url, data=data, headers=hdrs) as resp:
            return resp.status


@pytest.fixture
async def bench():
    key = SigningKey()
    ks = KeyServer(key)
    await ks.start()
    received: list = []

    async def handler(note, ctx):
        received.append((note, ctx))

    auth = CallbackAuthenticator(app_id=APP_ID, openid_configuration_url=ks.config_url,
                                 unknown_kid_refetch_interval_s=0.0)
    server = WebhookServer(authenticator=auth, handler=handler, host="127.0.0.1", port=0,
                           max_body_bytes=64 * 1024)
    await server.start()
    b = Bench(ks, server, received)
    b.key = key
    yield b
    await b.session.close()
    await server.stop()
    await ks.server.close()


BODY = example("incoming.notification.json")


async def test_valid_token_accepted_and_processed(bench):
    status = await bench.post(BODY, bench.key.sign(claims(APP_ID)), headers={"Scenario-ID": "sc-9"})
    assert status == 202
    await bench.webhook.dispatcher.drain()
    assert len(bench.received) == 1
    note, ctx = bench.received[0]
    assert isinstance(note.resource_data, m.Call) and note.resource_data.state == "incoming"
    assert ctx.tenant_id == "tenant-1" and ctx.scenario_id == "sc-9"


async def test_graph_issuer_also_accepted(bench):
    token = bench.key.sign(claims(APP_ID, iss="https://graph.microsoft.com"))
    assert await bench.post(BODY, token) == 202


TENANT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/tenantid"


@pytest.mark.parametrize("tenant_claims,expected", [
    pytest.param({TENANT_ID_CLAIM: "tenant-long"}, "tenant-long", id="long-claim-only"),
    pytest.param({"tid": "tenant-1", TENANT_ID_CLAIM: "tenant-1"}, "tenant-1", id="both"),
    pytest.param({"tid": "", TENANT_ID_CLAIM: "tenant-long"}, "tenant-long", id="empty-tid-long-claim"),
])
async def test_tenant_from_tid_or_the_long_tenantid_claim(bench, tenant_claims, expected):
    token = bench.key.sign({**claims(APP_ID, tid=None), **tenant_claims})
    assert await bench.post(BODY, token) == 202
    await bench.webhook.dispatcher.drain()
    assert [ctx.tenant_id for _, ctx in bench.received] == [expected]


def _forged(bench):
    other = SigningKey(kid=bench.key.kid, distinct_from=bench.key)         # same kid, different private key
    return other.sign(claims(APP_ID))


@pytest.mark.parametrize("make_token", [
    pytest.param(_forged, id="forged-signature"),
    pytest.param(lambda b: b.key.sign(claims("some-other-app")), id="wrong-audience"),
    pytest.param(lambda b: b.key.sign(claims(APP_ID, iss="https://evil.example.com")), id="wrong-issuer"),
    pytest.param(lambda b: b.key.sign(claims(APP_ID, now=time.time() - 7200)), id="expired"),
    pytest.param(lambda b: b.key.sign(claims(APP_ID, nbf=int(time.time()) + 3600)), id="not-yet-valid"),
    pytest.param(lambda b: b.key.sign(claims(APP_ID, tid=None)), id="missing-tenant"),
    pytest.param(lambda b: b.key.sign(claims(APP_ID, tid="")), id="empty-tenant"),
    pytest.param(lambda b: b.key.sign(claims(APP_ID, tid=None, **{TENANT_ID_CLAIM: ""})), id="empty-long-tenant"),
    pytest.param(lambda b: b.key.sign(claims(APP_ID, tid=7)), id="tenant-not-a-string"),
    pytest.param(lambda b: b.key.sign({k: v for k, v in claims(APP_ID).items() if k != "exp"}), id="no-exp"),
    pytest.param(lambda b: "not.a.jwt", id="malformed-jwt"),
    pytest.param(lambda b: "abc", id="garbage"),
    pytest.param(lambda b: b.key.sign(claims(APP_ID), alg="RS512"), id="alg-not-allowed"),
    pytest.param(lambda b: __import__("jwt").encode(claims(APP_ID), "s" * 64, algorithm="HS256",
                                                    headers={"kid": b.key.kid}), id="hmac-confusion"),
])
async def test_invalid_tokens_refused_and_nothing_processed(bench, make_token):
    assert await bench.post(BODY, make_token(bench)) == 401
    await bench.webhook.dispatcher.drain()
    assert bench.received == []


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": ""}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
    {"Authentication": "Bearer x"}, {"Authorization": "Bearer a b"},
])
async def test_missing_or_malformed_header_refused(bench, headers):
    assert await bench.post(BODY, None, headers=headers) == 401
    await bench.webhook.dispatcher.drain()
    assert bench.received == []


async def test_unknown_kid_refetches_once_then_refuses(bench):
    assert await bench.post(BODY, bench.key.sign(claims(APP_ID))) == 202
    fetches = bench.keys.jwks_fetches
    stranger = SigningKey(distinct_from=bench.key)
    assert await bench.post(BODY, stranger.sign(claims(APP_ID))) == 401
    assert bench.keys.jwks_fetches == fetches + 1           # refetched exactly once
    await bench.webhook.dispatcher.drain()
    assert len(bench.received) == 1


async def test_key_rotation_picked_up_by_refetch(bench):
    assert await bench.post(BODY, bench.key.sign(claims(APP_ID))) == 202
    rotated = SigningKey(distinct_from=bench.key)
    bench.keys.keys.append(rotated)
    body = copy.deepcopy(BODY)
    body["value"][0]["resourceUrl"] = "/communications/calls/other-call"
    assert await bench.post(body, rotated.sign(claims(APP_ID))) == 202


async def test_unknown_kid_refetch_is_rate_limited():
    key = SigningKey()
    ks = KeyServer(key)
    await ks.start()
    try:
        auth = CallbackAuthenticator(app_id=APP_ID, openid_configuration_url=ks.config_url,
                                     unknown_kid_refetch_interval_s=3600)
        await auth.validate("Bearer " + key.sign(claims(APP_ID)))
        for _ in range(5):
            with pytest.raises(CallbackAuthError):
                await auth.validate("Bearer " + SigningKey(distinct_from=key).sign(claims(APP_ID)))
        assert ks.jwks_fetches == 2            # the initial fetch + one forced refetch
        await auth.close()
    finally:
        await ks.server.close()


async def test_unparseable_body_400_oversized_413_legacy_204(bench):
    token = bench.key.sign(claims(APP_ID))
    assert await bench.post(None, token, raw=b"{not json") == 400
    assert await bench.post(None, token, raw=b"[1,2]") == 400
    assert await bench.post(None, token, raw=b"x" * (128 * 1024)) == 413
    legacy = {"id": "abc", "participants": [], "isMultiparty": False, "callState": "incoming"}
    assert await bench.post(legacy, token) == 204
    await bench.webhook.dispatcher.drain()
    assert bench.received == []


async def test_health_endpoint(bench):
    async with bench.session.get(f"http://127.0.0.1:{bench.webhook.port}/health") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"


async def test_notifications_to_call_specific_path_accepted(bench):
    token = bench.key.sign(claims(APP_ID))
    async with bench.session.post(bench.url + "/24701998-1a73-4d42-8085-bf46ed0ae039",
                                  json=example("redirect.simulring.notification.terminated.json"),
                                  headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 202


async def test_202_before_slow_handler_finishes():
    release = asyncio.Event()
    done: list = []

    async def handler(note, ctx):
        await release.wait()
        done.append(note)

    server = WebhookServer(authenticator=None, handler=handler, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{server.port}/api/calls", json=BODY) as resp:
                assert resp.status == 202
        assert done == []
        release.set()
        await server.dispatcher.drain()
        assert len(done) == 1
    finally:
        await server.stop()


def _note(call_id: str, seq: int) -> m.CommsNotification:
    return m.CommsNotification.parse({
        "changeType": "updated", "resourceUrl": f"/communications/calls/{call_id}",
        "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "established",
                         "toneInfo": {"sequenceId": seq, "tone": "tone1"}}})


async def test_per_call_order_under_concurrency_and_slow_call_isolated():
    seen: dict[str, list[int]] = {}
    slow_started = asyncio.Event()
    release_slow = asyncio.Event()
    rng = random.Random(7)

    async def handler(note, ctx):
        cid = note.call_id
        if cid == "slow":
            slow_started.set()
            await release_slow.wait()
        else:
            await asyncio.sleep(rng.random() / 1000)   # interleave the calls
        seen.setdefault(cid, []).append(note.resource_data.tone_info.sequence_id)

    disp = NotificationDispatcher(handler)
    ctx = None
    disp.submit(_note("slow", 0), ctx)
    await slow_started.wait()
    calls = [f"call-{i}" for i in range(50)]
    pending = [(c, n) for c in calls for n in range(20)]
    # submit in an interleaved order that keeps per-call order (as the network would deliver)
    order = sorted(range(len(pending)), key=lambda i: (pending[i][1], rng.random()))
    for i in order:
        c, n = pending[i]
        disp.submit(_note(c, n), ctx)
        if rng.random() < 0.2:
            await asyncio.sleep(0)
    for c in calls:
        while len(seen.get(c, [])) < 20:
            await asyncio.sleep(0.001)
    assert all(seen[c] == list(range(20)) for c in calls)
    assert "slow" not in seen                     # still blocked, yet nobody else waited
    release_slow.set()
    await disp.drain()
    assert seen["slow"] == [0]
    await disp.close()


async def test_duplicates_processed_once():
    handled: list = []

    async def handler(note, ctx):
        handled.append(note.to_dict())

    disp = NotificationDispatcher(handler)
    first = m.CommsNotifications.parse(example("playPrompt.notification.completed.json")).value[0]
    again = m.CommsNotifications.parse(example("playPrompt.notification.completed.json")).value[0]
    assert disp.submit(first, None) is True
    assert disp.submit(again, None) is False
    assert disp.submit(_note("57dab8b1-894c-409a-b240-bd8beae78896", 1), None) is True
    await disp.drain()
    assert len(handled) == 2 and disp.duplicates == 1
    await disp.close()


async def test_handler_exception_does_not_stop_the_queue():
    handled: list = []

    async def handler(note, ctx):
        if note.resource_data.tone_info.sequence_id == 0:
            raise RuntimeError("boom")
        handled.append(note.resource_data.tone_info.sequence_id)

    disp = NotificationDispatcher(handler)
    for n in range(3):
        disp.submit(_note("c", n), None)
    await disp.drain()
    assert handled == [1, 2] and disp.handler_errors == 1
    await disp.close()


async def test_roster_returning_to_an_earlier_content_is_not_a_duplicate():
    handled: list = []

    async def handler(note, ctx):
        handled.append(len(note.resource_data))

    def roster(*ids):
        return m.CommsNotification.parse({
            "changeType": "updated", "resourceUrl": "/communications/calls/c1/participants",
            "resourceData": [{"@odata.type": "#microsoft.graph.participant", "id": i} for i in ids]})

    disp = NotificationDispatcher(handler)
    for ids in (("a", "bot"), ("a", "b", "bot"), ("a", "bot"), ("a", "bot")):
        disp.submit(roster(*ids), None)
    await disp.drain()
    assert handled == [2, 3, 2] and disp.duplicates == 1
    await disp.close()


async def test_keys_kept_when_refresh_fails_and_refresh_backs_off():
    key = SigningKey()
    ks = KeyServer(key)
    await ks.start()
    now = [0.0]
    try:
        auth = CallbackAuthenticator(app_id=APP_ID, openid_configuration_url=ks.config_url,
                                     refresh_interval_s=100.0, clock=lambda: now[0])
        await auth.validate("Bearer " + key.sign(claims(APP_ID)))
        ks.down = True
        now[0] = 150.0                                   # stale: refresh attempted, fails
        assert (await auth.validate("Bearer " + key.sign(claims(APP_ID))))["aud"] == APP_ID
        fetches = ks.jwks_fetches
        now[0] = 160.0                                   # within the back-off: no new attempt
        await auth.validate("Bearer " + key.sign(claims(APP_ID)))
        assert ks.jwks_fetches == fetches
        now[0] = 215.0                                   # a minute later: tried again
        await auth.validate("Bearer " + key.sign(claims(APP_ID)))
        assert ks.jwks_fetches == fetches + 1
        await auth.close()
    finally:
        await ks.server.close()


async def test_no_keys_at_all_is_503():
    key = SigningKey()
    ks = KeyServer(key)
    ks.down = True
    await ks.start()
    try:
        server = WebhookServer(authenticator=CallbackAuthenticator(app_id=APP_ID, openid_configuration_url=ks.config_url),
                               handler=lambda n, c: None, host="127.0.0.1", port=0)
        await server.start()
        async with aiohttp.ClientSession() as s:
            async with s.post(f"http://127.0.0.1:{server.port}/api/calls", json=BODY,
                              headers={"Authorization": "Bearer " + key.sign(claims(APP_ID))}) as resp:
                assert resp.status == 503
        await server.stop()
    finally:
        await ks.server.close()

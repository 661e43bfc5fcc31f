"""GraphEmulator's HTTP layer: request ids, scenario-id, authentication and permissions, Graph
error bodies, injected 429/503 faults, and the record of received requests."""

from __future__ import annotations

import uuid

from bot.emulator import GraphEmulator, ServiceOptions

from .conftest import example
from .test_graph import CALLS, create_p2p, with_callback


async def test_request_ids_echoed_generated_and_scenario_id_propagated(graph, receiver, emulator):
    client_request_id = str(uuid.uuid4())
    status, headers, call = await graph.post(
        CALLS, with_callback("createCall.p2p.serviceHosted.request.json", receiver.url),
        headers={"client-request-id": client_request_id, "scenario-id": "scenario-42"})
    assert status == 201
    assert headers["client-request-id"] == client_request_id
    assert uuid.UUID(headers["request-id"]) and headers["request-id"] != client_request_id
    assert headers["scenario-id"] == "scenario-42"
    assert "x-ms-ags-diagnostic" in headers
    await receiver.wait(2, call["id"])
    assert {r.headers.get("Scenario-Id") for r in receiver.received} == {"scenario-42"}
    assert {r.headers.get("X-Microsoft-Skype-Chain-ID") for r in receiver.received} == {call["callChainId"]}
    recorded = next(r for r in emulator.requests if r.method == "POST" and r.path == "/v1.0" + CALLS)
    assert recorded.status == 201 and recorded.request_id == headers["request-id"]
    assert recorded.body["callbackUri"] == receiver.url
    status, headers, _ = await graph.get(f"{CALLS}/{call['id']}")
    assert headers["client-request-id"] == headers["request-id"]  # none sent: the request id is used


async def test_missing_or_forged_token_is_401_with_graph_error(graph, emulator):
    graph.token = ""
    status, headers, error = await graph.get(f"{CALLS}/x")
    assert status == 401 and error["error"]["code"] == "InvalidAuthenticationToken"
    assert error["error"]["innerError"]["request-id"] == headers["request-id"]
    assert error["error"]["innerError"]["date"]
    from bot.emulator.auth import SigningKey
    forged = SigningKey.generate("intruder").sign({"aud": "https://graph.microsoft.com", "appid": emulator.app_id,
                                                   "tid": emulator.tenant_id, "exp": 2**31, "nbf": 0})
    graph.token = forged
    status, _, error = await graph.get(f"{CALLS}/x")
    assert status == 401 and error["error"]["code"] == "InvalidAuthenticationToken"


async def test_permissions_are_checked(graph, receiver, emulator):
    emulator.register_bot(roles=("Calls.JoinGroupCall.All",))
    graph.token = emulator.access_token()
    status, _, error = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json",
                                                             receiver.url))
    assert status == 403 and "Calls.Initiate.All" in error["error"]["message"]


async def test_injected_429_has_fractional_retry_after_and_documented_body(graph, receiver, emulator):
    emulator.fail_requests(429, count=2, retry_after="2.128", path=r"/communications/calls$", method="POST")
    body = with_callback("createCall.p2p.serviceHosted.request.json", receiver.url)
    for _ in range(2):
        status, headers, error = await graph.post(CALLS, body)
        assert status == 429 and headers["Retry-After"] == "2.128"
        assert error["error"]["code"] == "TooManyRequests"
        assert error["error"]["message"] == "Please retry again later."
        assert error["error"]["innerError"]["status"] == "429"
        assert error["error"]["innerError"]["request-id"] == headers["request-id"]
    status, _, _ = await graph.post(CALLS, body)
    assert status == 201
    assert not emulator.service.ended and len(emulator.service.calls) == 1  # throttled requests did nothing


async def test_injected_503_then_success(graph, receiver, emulator):
    call_id = await create_p2p(graph, receiver)
    emulator.fail_requests(503, count=1, retry_after=1)
    status, headers, error = await graph.post(f"{CALLS}/{call_id}/playPrompt", example("playPrompt.request.json"))
    assert status == 503 and headers["Retry-After"] == "1" and error["error"]["code"] == "ServiceUnavailable"
    status, _, op = await graph.post(f"{CALLS}/{call_id}/playPrompt", example("playPrompt.request.json"))
    assert status == 200 and op["status"] == "running"
    assert [r.status for r in emulator.requests if r.path.endswith("/playPrompt")] == [503, 200]


async def test_unknown_routes_and_bad_bodies_get_graph_errors(graph, receiver):
    call_id = await create_p2p(graph, receiver)
    status, _, error = await graph.post(f"{CALLS}/{call_id}/frobnicate", {})
    assert status == 400 and "frobnicate" in error["error"]["message"]
    status, _, error = await graph.get("/communications/nothing-here")
    assert status == 404 and error["error"]["code"] == "ItemNotFound"
    async with graph.session.post(f"{graph.emu.graph_url}{CALLS}", data="{not json",
                                  headers={"Authorization": f"Bearer {graph.token}",
                                           "Content-Type": "application/json"}) as resp:
        assert resp.status == 400 and "invalid JSON" in (await resp.json())["error"]["message"]


async def test_without_auth_requests_act_as_the_default_bot(receiver):
    async with GraphEmulator(require_auth=False, tls=False, options=ServiceOptions(allow_http_callbacks=True)) as emu:
        emu.register_bot(webhook_url=receiver.url)
        import aiohttp
        async with aiohttp.ClientSession() as session:
            async with session.post(emu.graph_url + CALLS, json=with_callback(
                    "createCall.p2p.serviceHosted.request.json", receiver.url)) as resp:
                assert resp.status == 201
                call = await resp.json()
        assert emu.call(call["id"]).app_id == emu.app_id

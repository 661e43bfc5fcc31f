"""The Bot end to end: signed notifications into the webhook, Graph calls out to a real server."""

from __future__ import annotations

import asyncio
import copy
import json
import urllib.parse

import aiohttp
import pytest

from bot.app import Answer, Bot, Reject
from bot.calls import RosterChange
from bot.config import config_from_mapping
from bot.graph import models as m
from bot.webhook import CallbackAuthenticator
from tests.bot.conftest import example
from tests.bot.fakegraph import FakeGraph, shape
from tests.bot.keys import SigningKey, claims
from tests.bot.test_webhook import KeyServer

APP_ID = "2891555a-92ff-42e6-80fa-6e1300c6b5c6"
TENANT = "86dc81db-c112-4228-9222-63f3esaa1edb"
INCOMING_ID = "57DAB8B1894C409AB240BD8BEAE78896"


class RecordingMedia:
    """A media provider (bot.media.MediaProvider) that only records what the bot tells it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    async def media_config(self, call) -> str:
        return "<Media Session Configuration Blob>"

    async def call_started(self, call, blob: str) -> None:
        self.calls.append(("started", call.id))

    async def participants_changed(self, call, change) -> None:
        self.calls.append(("roster", call.id))

    async def media_state_changed(self, call, media_state) -> None:
        self.calls.append(("media_state", call.id))

    async def call_ended(self, call) -> None:
        self.calls.append(("ended", call.id))

    async def media_unused(self, blob: str) -> None:
        self.calls.append(("unused", blob))

    async def hanging_up(self, call) -> None:
        self.calls.append(("hanging_up", call.id))


class Platform:
    """Plays Microsoft's side: signs and POSTs notifications, answers Graph requests."""

    def __init__(self) -> None:
        self.key = SigningKey()
        self.keys = KeyServer(self.key)
        self.graph = FakeGraph()
        self.session: aiohttp.ClientSession | None = None
        self.bot: Bot | None = None
        self.tasks: list[asyncio.Task] = []

    async def start(self, **config_overrides) -> Bot:
        await self.keys.start()
        await self.graph.start()
        self.session = aiohttp.ClientSession()
        data = {"bot": {"app_id": APP_ID, "tenant_id": TENANT},
                "graph": {"base_url": self.graph.url("/v1.0"), "token_env": "TOKEN"},
                "webhook": {"public_url": "https://bot.contoso.com/callback", "host": "127.0.0.1", "port": 0,
                            "openid_configuration_url": self.keys.config_url},
                "calls": {"keepalive_interval_s": 600, **config_overrides}}
        config = config_from_mapping(data, env={"TOKEN": "graph-token"})
        auth = CallbackAuthenticator(app_id=APP_ID, openid_configuration_url=self.keys.config_url)
        self.media = RecordingMedia()
        self.bot = Bot(config, graph=self.graph.client, media=self.media, authenticator=auth)
        await self.bot.start()
        return self.bot

    async def notify(self, body: dict, call_id: str | None = None, headers: dict | None = None) -> int:
        body = copy.deepcopy(body)
        if call_id:
            for item in body["value"]:
                for k in ("resourceUrl", "resource"):
                    if k in item:
                        parts = item[k].split("/")
                        parts[3] = call_id
                        item[k] = "/".join(parts)
        token = self.key.sign(claims(APP_ID, tid=TENANT))
        url = f"http://127.0.0.1:{self.bot.webhook.port}/api/calls"
        async with self.session.post(url, json=body, headers={"Authorization": f"Bearer {token}",
                                                             **(headers or {})}) as resp:
            return resp.status

    def later(self, *bodies, call_id: str | None = None, delay_s: float = 0.02):
        async def run():
            await asyncio.sleep(delay_s)
            for b in bodies:
                assert await self.notify(b, call_id) == 202
        self.tasks.append(asyncio.create_task(run()))

    async def close(self) -> None:
        for t in self.tasks:
            await asyncio.gather(t, return_exceptions=True)
        if self.bot is not None and not self.bot._stopping:
            await self.bot.stop()
        await self.session.close()
        await self.graph.close()
        await self.keys.server.close()


@pytest.fixture
async def platform():
    p = Platform()
    yield p
    await p.close()


async def until(predicate, timeout_s: float = 5.0):
    async def poll():
        while not predicate():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout_s)


async def test_incoming_call_answered_established_roster_tone_prompt_and_shutdown(platform):
    bot = await platform.start()
    g = platform.graph
    events: list = []
    prompt_ops: list = []
    g.on("POST", "/answer$", status=202, before=lambda req: _async(platform.later(
        example("answer.appHosted.notification.established.json"),       # out of order on purpose
        example("answer.appHosted.notification.establishing.json"))))
    g.on("POST", "/playPrompt$", body=example("playPrompt.response.json"),
         before=lambda req: _async(platform.later(example("playPrompt.notification.completed.json"))))
    g.on("DELETE", f"/calls/{INCOMING_ID}$", status=204, before=lambda req: _async(platform.later(
        example("delete.notification.terminating.json"), example("delete.notification.terminated.json"),
        call_id=INCOMING_ID)))

    @bot.on("call_established")
    async def established(call):
        events.append("established")
        prompt_ops.append(await call.play_prompt(["https://cdn.contoso.com/beep.wav"]))

    @bot.on("participants_changed")
    async def roster(call, change: RosterChange):
        events.append(("roster", len(change.added)))

    @bot.on("tone_received")
    async def tone(call, info):
        events.append(("tone", info.tone))

    @bot.on("call_ended")
    async def ended(call):
        events.append(("ended", call.result_info.code if call.result_info else None))

    assert await platform.notify(example("incoming.appHosted.notification.json"),
                                 headers={"Scenario-ID": "scen-incoming-1"}) == 202
    await until(lambda: prompt_ops)
    # the platform's scenario id is propagated on every request of the call
    assert {r["headers"].get("scenario-id") for r in g.requests} == {"scen-incoming-1"}
    answer = g.sent(f"/communications/calls/{INCOMING_ID}/answer")
    assert answer["json"]["mediaConfig"] == {"@odata.type": "#microsoft.graph.appHostedMediaConfig",
                                             "blob": "<Media Session Configuration Blob>"}
    assert answer["json"]["callbackUri"] == "https://bot.contoso.com/callback"
    assert answer["json"]["acceptedModalities"] == ["audio"]
    call = bot.calls[m.id_key(INCOMING_ID)]
    assert call.state == "established" and call.machine.invalid_transitions == 0
    assert prompt_ops[0].status == "completed"

    await platform.notify(example("joinMeeting.serviceHosted.notification.roster.json"), call_id=INCOMING_ID)
    await platform.notify(example("tone.notification.json"), call_id=INCOMING_ID)
    await until(lambda: ("tone", "tone1") in events)
    assert ("roster", 2) in events
    assert call.roster.participant_for_source("2").display_name == "John"

    await bot.stop()                      # graceful: hangs up and waits for terminated
    assert g.sent(f"/communications/calls/{INCOMING_ID}", method="DELETE")
    assert events[-1] == ("ended", 0) and bot.calls == {}
    # the media provider heard of the call, its roster, the hang-up to come and the end, in order
    media_calls = [kind for kind, _ in platform.media.calls]
    assert media_calls[0] == "started" and "roster" in media_calls
    assert media_calls.index("hanging_up") < media_calls.index("ended")
    assert events.index("established") < events.index(("roster", 2))


async def _async(value):
    return value


async def test_incoming_policy_reject_and_unauthenticated_notifications_ignored(platform):
    bot = await platform.start()
    g = platform.graph
    g.on("POST", "/reject$", status=202)

    @bot.on("incoming_call")
    async def policy(call):
        assert call.resource.source.identity.user.display_name == "John" and call.state == "incoming"
        return Reject("Busy")

    # unsigned: refused, nothing happens
    url = f"http://127.0.0.1:{bot.webhook.port}/api/calls"
    async with platform.session.post(url, json=example("reject.notification.incoming.json")) as resp:
        assert resp.status == 401
    assert await platform.notify(example("reject.notification.incoming.json")) == 202
    await until(lambda: any(r["path"].endswith("/reject") for r in g.requests))
    assert g.sent("/reject")["json"] == {"reason": "busy"}
    assert await platform.notify(example("reject.notification.deleted.json")) == 202
    await until(lambda: not bot.calls)


async def test_default_policy_from_config_and_rejects_while_stopping(platform):
    bot = await platform.start(incoming="reject", reject_reason="forbidden")
    platform.graph.on("POST", "/reject$", status=202)
    await platform.notify(example("incoming.notification.json"))
    await until(lambda: any(r["path"].endswith("/reject") for r in platform.graph.requests))
    assert platform.graph.sent("/reject")["json"] == {"reason": "forbidden"}

    bot.accepting = False
    answered = []

    @bot.on("incoming_call")
    async def would_answer(call):
        answered.append(call)
        return Answer()

    await platform.notify(example("redirect.notification.incoming.json"))
    await until(lambda: len([r for r in platform.graph.requests if r["path"].endswith("/reject")]) == 2)
    assert answered == []


async def test_join_meeting_from_url_request_body(platform):
    bot = await platform.start()
    doc = example("joinMeeting.serviceHosted.request.json")
    g = platform.graph
    response = example("joinMeeting.serviceHosted.response.json")
    call_id = response["id"]
    g.on("POST", "/communications/calls$", status=201, body=response,
         headers={"Location": f"https://graph.microsoft.com/v1.0/communications/calls/{call_id}"},
         before=lambda req: _async(platform.later(
             example("joinMeeting.serviceHosted.notification.establishing.json"),
             example("joinMeeting.serviceHosted.notification.established.json"), call_id=call_id)))
    ctx = json.dumps({"Tid": doc["tenantId"], "Oid": doc["meetingInfo"]["organizer"]["user"]["id"]})
    url = ("https://teams.microsoft.com/l/meetup-join/" + urllib.parse.quote(doc["chatInfo"]["threadId"], safe="")
           + "/0?context=" + urllib.parse.quote(ctx, safe=""))
    call = await asyncio.wait_for(bot.join_meeting(url, media_config=m.MediaConfig.parse(doc["mediaConfig"])), 5)
    assert call.state == "established" and call.id == call_id
    sent = g.sent("/communications/calls")["json"]
    expected = copy.deepcopy(doc)
    del expected["meetingInfo"]["organizer"]["user"]["displayName"]   # not in a join URL
    assert shape(sent) == shape(expected)
    assert g.sent("/communications/calls")["headers"]["scenario-id"]


async def test_join_meeting_by_id_and_p2p_call_bodies(platform):
    bot = await platform.start()
    g = platform.graph
    g.on("POST", "/communications/calls$", status=201, body=example("joinMeeting.joinMeetingId.passcode.response.json"))
    doc = example("joinMeeting.joinMeetingId.passcode.request.json")
    await bot.join_meeting(join_meeting_id="1234567", passcode="psw123", tenant_id=doc["tenantId"],
                           media_config=m.MediaConfig.parse(doc["mediaConfig"]), wait=False)
    assert shape(g.sent("/communications/calls")["json"]) == shape(doc)

    g.on("POST", "/communications/calls$", status=201, body=example("createCall.p2p.appHosted.response.json"))
    doc = example("createCall.p2p.appHosted.request.json")
    req = m.Call.parse(doc)
    call = await bot.create_call(req.targets, source=req.source, media_config=req.media_config, wait=False)
    assert shape(g.sent("/communications/calls")["json"]) == shape(doc)
    assert call.id == "2e1a0b00-2db4-4022-9570-243709c565ab"
    g.on("POST", "/mute$", body=example("mute.response.json"))
    await call.mute()
    assert g.sent("/mute")["headers"]["scenario-id"] == g.sent("/communications/calls")["headers"]["scenario-id"]
    assert call.my_participant_id == "499ff390-7a72-40e8-83a0-8fac6295ae7e"

    doc = example("createCall.group.appHosted.request.json")
    req = m.Call.parse(doc)
    await bot.create_call(req.targets, group=True, subject=req.subject, source=req.source,
                          media_config=req.media_config, wait=False)
    assert shape(g.sent("/communications/calls")["json"]) == shape(doc)


async def test_create_call_that_fails_raises_with_result_info(platform):
    from bot.graph.errors import CallTerminated

    bot = await platform.start()
    response = example("createCall.p2p.appHosted.response.json")
    failed = {"value": [{"changeType": "deleted",
                         "resourceUrl": f"/communications/calls/{response['id']}",
                         "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "terminated",
                                          "resultInfo": {"code": 404, "subcode": 5006, "message": "not found"}}}]}
    platform.graph.on("POST", "/communications/calls$", status=201, body=response,
                      before=lambda req: _async(platform.later(failed)))
    with pytest.raises(CallTerminated) as info:
        await asyncio.wait_for(bot.create_call([m.IdentitySet.of_user("someone")]), 5)
    assert info.value.result_info.subcode == 5006


async def test_unknown_call_is_adopted_and_kept_on_shutdown(platform):
    bot = await platform.start(on_shutdown="keep")
    g = platform.graph
    got = example("call.get.group.response.json")
    call_id = got["id"]
    g.on("GET", f"/communications/calls/{call_id}$", body=got)
    g.on("GET", f"/communications/calls/{call_id}/participants$", body=example("participants.list.response.json"))
    g.on("POST", "/keepAlive$", status=200)
    established = []

    @bot.on("call_established")
    async def on_established(call):
        established.append(call.id)

    assert await platform.notify(example("mute.notification.roster.json"), call_id=call_id) == 202
    await until(lambda: established)
    call = bot.calls[m.id_key(call_id)]
    assert call.state == "established" and not call.owned
    assert call.my_participant_id == "05491616-385f-44a8-9974-18cc5f9933c1"
    assert call._keepalive_task is not None
    await until(lambda: call.roster.get("a7ebfb2d-871e-419c-87af-27290b22e8db") is not None)
    assert len(call.roster) == 2                      # GET gives the full roster
    await bot.stop()
    assert not any(r["method"] == "DELETE" for r in g.requests)

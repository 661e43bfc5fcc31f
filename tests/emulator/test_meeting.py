"""A scripted meeting inside the emulator: its clock starts with the first bot's call, every call
into it shares that clock, and it ends the calls as Graph does when a meeting ends (or, without
end_after_script, starts afresh once the last call has left)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from bot.emulator import GraphEmulator, ServiceOptions
from bot.emulator.conference import ConferenceHandler, MediaServer
from bot.emulator.meeting import ScriptedMeeting
from bot.emulator.script import MeetingScript, Participant, ScreenShare, Utterance
from mediacore.engine import Engine
from mediacore.mediaconfig import MediaConfig

from .conftest import Receiver

SCRIPT = MeetingScript("short", 1.5, (
    Participant("Ann", video="none", say=(Utterance(0.1, "hi"),)),
    Participant("Ben", video="none", join_s=0.3, leave_s=1.2, screen_share=(ScreenShare(0.5, 0.8),)),
))


@pytest.fixture
async def hosted():
    with MediaServer() as server, Engine("127.0.0.1") as bot:
        handler = ConferenceHandler(server, lead_in_s=0.2)
        emu = GraphEmulator(options=ServiceOptions(time_scale=0.01, allow_http_callbacks=True),
                            media_handler=handler)
        await emu.start()
        rec = Receiver(emu)
        app = web.Application()
        app.router.add_post("/api/calls", rec.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        rec.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/api/calls"
        try:
            yield emu, handler, rec, bot
        finally:
            await runner.cleanup()
            await emu.stop()


async def _join(emu: GraphEmulator, rec: Receiver, meeting: ScriptedMeeting, bot: Engine) -> str:
    blob = MediaConfig.generate("127.0.0.1", bot.port, receive_key=True).to_blob()
    body = {"@odata.type": "#microsoft.graph.call", "callbackUri": rec.url, "requestedModalities": ["audio"],
            "tenantId": emu.tenant_id, "chatInfo": meeting.meeting.chat_info(),
            "meetingInfo": meeting.meeting.organizer_meeting_info(),
            "mediaConfig": {"@odata.type": "#microsoft.graph.appHostedMediaConfig", "blob": blob}}
    async with aiohttp.ClientSession() as http:
        async with http.post(emu.graph_url + "/communications/calls", json=body,
                             headers={"Authorization": f"Bearer {emu.access_token()}"}) as resp:
            assert resp.status == 201
            return (await resp.json())["id"]


def _names(roster: list[dict]) -> set[str]:
    return {p["info"]["identity"]["user"]["displayName"] for p in roster if "user" in p["info"]["identity"]}


async def test_the_script_runs_on_the_first_calls_clock_and_ends_every_call(hosted):
    emu, handler, rec, bot = hosted
    meeting = await ScriptedMeeting.prepare(emu, handler, SCRIPT)      # Ben's screen: a vbss stream
    assert set(meeting.meeting.participants) == {meeting.people["Ann"].id}    # Ben joins at 0.3 s
    assert meeting.start_ns is None
    first = await _join(emu, rec, meeting, bot)
    await emu.wait_for_state(first, "established")
    t0 = meeting.start_ns
    assert t0 is not None and meeting.runs == 1
    second = await _join(emu, rec, meeting, bot)                            # the same clock
    await emu.wait_for_state(second, "established")
    assert meeting.start_ns == t0
    a, b = handler.conferences[first], handler.conferences[second]
    assert a.start_ns == b.start_ns == t0
    assert a.mixer_source_id != b.mixer_source_id                          # the conference's own ids
    ids = {i for pair in meeting.source_ids.values() for i in pair if i is not None}
    assert a.mixer_source_id not in ids and meeting.screen_ids["Ben"] not in ids
    # Ben joins, shares, stops, leaves: roster updates to both calls on the script's clock
    ended = [await emu.wait_for_state(c, "terminated", timeout_s=5) for c in (first, second)]
    assert time.monotonic_ns() >= t0 + int(1.5e9)
    for d in ended:
        info = d.notification["resourceData"]["resultInfo"]
        assert (info["code"], info["subcode"], info["message"]) == (200, 5001, "The conversation has ended.")
    rosters = [i["resourceData"] for i in rec.items(first) if i["resourceUrl"].endswith("/participants")]
    assert any("Ben" in _names(r) for r in rosters) and "Ben" not in _names(rosters[-1])
    shared = [s["direction"] for r in rosters for p in r for s in p["mediaStreams"]
              if s["mediaType"] == "videoBasedScreenSharing"]
    assert "sendOnly" in shared and shared[-1] == "inactive"
    # set up afresh: the next bot starts the script again
    assert meeting.start_ns is None and set(meeting.meeting.participants) == {meeting.people["Ann"].id}
    third = await _join(emu, rec, meeting, bot)
    await emu.wait_for_state(third, "established")
    assert meeting.runs == 2 and meeting.start_ns > t0


async def test_without_end_after_script_the_calls_stay_and_the_last_to_leave_resets(hosted):
    emu, handler, rec, bot = hosted
    meeting = await ScriptedMeeting.prepare(emu, handler, SCRIPT, video=False, end_after_script=False)
    call = await _join(emu, rec, meeting, bot)
    await emu.wait_for_state(call, "established")
    t0 = meeting.start_ns
    while time.monotonic_ns() < t0 + int(2.3e9):
        await emu.settle()
        await asyncio.sleep(0.05)
    assert emu.call(call).state == "established" and handler.conferences[call].finished
    assert meeting.start_ns == t0                                           # still the first run
    emu.end_call(call)
    await emu.wait_for_state(call, "terminated")
    await emu.settle()
    assert meeting.start_ns is None and meeting.runs == 1

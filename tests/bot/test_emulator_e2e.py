"""The Bot end to end against the local Graph emulator (bot.emulator): real msal tokens, signed
callbacks verified through the emulator's OpenID/JWKS, and the documented call flows."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bot.app import Answer, Bot
from bot.config import config_from_mapping
from bot.emulator import GraphEmulator, ServiceOptions
from bot.graph.auth import MsalTokenProvider


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(predicate, timeout_s: float = 10.0) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


@pytest.fixture(params=[False, True], ids=["roster", "delta-roster"])
async def world(request):
    emu = GraphEmulator(options=ServiceOptions(allow_http_callbacks=True))
    await emu.start()
    port = free_port()
    webhook = f"http://127.0.0.1:{port}/api/calls"
    emu.register_bot(webhook_url=webhook)
    config = config_from_mapping({
        "bot": {"app_id": emu.app_id, "tenant_id": emu.tenant_id},
        "graph": {"base_url": emu.graph_url, "authority_host": emu.tls_base_url},
        "webhook": {"public_url": webhook, "host": "127.0.0.1", "port": port,
                    "openid_configuration_url": emu.openid_configuration_url},
        "calls": {"keepalive_interval_s": 600, "delta_roster": request.param},
    }, env={"MEDIABOT_CLIENT_SECRET": emu.client_secret})
    kwargs = emu.msal_kwargs()
    kwargs.pop("authority")
    tokens = MsalTokenProvider(app_id=emu.app_id, tenant_id=emu.tenant_id,
                               client_secret=config.graph.client_secret,
                               authority_host=emu.tls_base_url, msal_options=kwargs)
    bot = Bot(config, token_provider=tokens)
    await bot.start()
    yield emu, bot
    await bot.stop()
    await emu.stop()


async def test_join_meeting_roster_prompt_tones_record_and_leave(world):
    emu, bot = world
    meeting = emu.create_meeting(subject="standup")
    alice = emu.add_participant(meeting.id, "Alice")
    events: list = []

    @bot.on("participants_changed")
    async def roster(call, change):
        events.append(("roster", sorted(p.display_name or "?" for p in change.added)))

    @bot.on("tone_received")
    async def tone(call, info):
        events.append(("tone", info.tone))

    call = await asyncio.wait_for(bot.join_meeting(meeting.join_web_url), 10)
    assert call.state == "established" and call.is_group_call
    await until(lambda: len(call.roster) >= 2)
    names = {p.display_name for p in call.participants}
    assert "Alice" in names
    audio = [s for s in alice.to_graph()["mediaStreams"] if s["mediaType"] == "audio"][0]
    assert call.roster.participant_for_source(audio["sourceId"]).display_name == "Alice"

    bob = emu.add_participant(meeting.id, "Bob")
    await until(lambda: any(p.display_name == "Bob" for p in call.participants))
    emu.remove_participant(meeting.id, bob.id)
    await until(lambda: not any(p.display_name == "Bob" for p in call.participants))

    op = await asyncio.wait_for(call.play_prompt(["https://cdn.contoso.com/beep.wav"]), 10)
    assert op.status == "completed" and op.result_info.code == 200

    assert (await call.subscribe_to_tone()).status == "completed"
    emu.press_tones(call.id, ["1", "#"])
    await until(lambda: ("tone", "pound") in events)
    assert ("tone", "tone1") in events

    rec = await asyncio.wait_for(call.record_response(max_record_duration_s=1, play_beep=False), 10)
    data = await call.download_recording(rec)
    assert data[:4] == b"RIFF"

    muted = await call.mute()
    assert muted.status == "completed"

    await asyncio.wait_for(call.hang_up(), 10)
    assert call.is_terminated
    await until(lambda: not bot.calls)


async def test_incoming_call_answered_and_ended_by_shutdown(world):
    emu, bot = world
    established = asyncio.Event()

    @bot.on("incoming_call")
    async def policy(call):
        return Answer(modalities=["audio"])

    @bot.on("call_established")
    async def on_established(call):
        established.set()

    emu_call = emu.incoming_call(display_name="Carol")
    await asyncio.wait_for(established.wait(), 10)
    ours = next(iter(bot.calls.values()))
    assert ours.state == "established"
    assert ours.resource.source.identity.user.display_name == "Carol"
    await bot.stop()
    assert emu.call(emu_call.id).state == "terminated"


async def test_p2p_call_escalated_into_a_group_call(world):
    emu, bot = world
    from bot.graph import models as m

    p2p = await asyncio.wait_for(bot.create_call([m.IdentitySet.of_user(str(__import__("uuid").uuid4()), "Dave")]), 10)
    group = await asyncio.wait_for(bot.create_call([m.IdentitySet.of_user(str(__import__("uuid").uuid4()), "Erin")],
                                                   group=True, subject="escalation"), 10)
    dave = p2p.resource.targets[0].identity
    op = await asyncio.wait_for(group.invite([m.InvitationParticipantInfo(identity=dave, replaces_call_id=p2p.id)]), 10)
    assert op.status == "completed"
    await asyncio.wait_for(p2p.wait_terminated(), 10)          # the replaced call ends
    # no roster notification follows an escalation: the bot re-reads it
    await until(lambda: any(p.display_name == "Dave" for p in group.participants))

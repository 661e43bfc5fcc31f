"""The bot (bot.app.Bot: Graph client, msal tokens, authenticated webhook, call state) end to end
against the emulator: every Signaling operation, and faults survived."""

from __future__ import annotations

import asyncio
import io
import wave

import pytest

from bot.app import Bot, Redirect, Reject
from bot.calls import RosterChange
from bot.config import BotConfig, CallSettings, GraphSettings, WebhookSettings
from bot.emulator import GraphEmulator, NotificationFaults, ServiceOptions
from bot.graph import models as m
from bot.graph.auth import MsalTokenProvider

JOHN = m.IdentitySet.of_user("112f7296-5fa4-42ca-bae8-6a692b15d4b8", "John")
HEIDI = m.IdentitySet.of_user("550fae72-d251-43ec-868c-373732c2704f", "Heidi Steen")


class Platform:
    """The emulator plus a real Bot whose tokens come from msal against the emulator."""

    def __init__(self, emulator: GraphEmulator, bot: Bot) -> None:
        self.emu = emulator
        self.bot = bot
        self.events: list[tuple] = []
        for name in ("call_established", "participants_changed", "tone_received", "call_ended"):
            bot.on(name)(self._recorder(name))

    def _recorder(self, name: str):
        async def record(call, *args):
            self.events.append((name, call.id, *args))
        return record

    def count(self, name: str, call_id: str) -> int:
        return sum(1 for e in self.events if e[0] == name and e[1] == call_id)

    async def until(self, predicate, timeout_s: float = 5.0) -> None:
        async def poll() -> None:
            while not predicate():
                await asyncio.sleep(0.01)
        await asyncio.wait_for(poll(), timeout_s)


@pytest.fixture
async def platform():
    emu = GraphEmulator(options=ServiceOptions(time_scale=0.002, allow_http_callbacks=True))
    await emu.start()
    msal_kwargs = emu.msal_kwargs()
    http_client = msal_kwargs.pop("http_client")
    tokens = MsalTokenProvider(app_id=emu.app_id, tenant_id=emu.tenant_id, client_secret=emu.client_secret,
                               authority_host=emu.tls_base_url,
                               msal_options={"instance_discovery": False, "http_client": http_client})
    config = BotConfig(
        app_id=emu.app_id, tenant_id=emu.tenant_id,
        graph=GraphSettings(base_url=emu.graph_url, beta_base_url=emu.beta_url, max_retries=5,
                            max_retry_total_s=20),
        webhook=WebhookSettings(host="127.0.0.1", port=0, openid_configuration_url=emu.openid_configuration_url),
        calls=CallSettings(keepalive_interval_s=600, operation_timeout_s=10, shutdown_timeout_s=5),
    )
    bot = Bot(config, token_provider=tokens)
    await bot.start()
    url = f"http://127.0.0.1:{bot.webhook.port}{config.webhook.path}"
    config.webhook.public_url = url
    emu.register_bot(webhook_url=url)
    try:
        yield Platform(emu, bot)
    finally:
        await bot.stop()
        await emu.stop()
        http_client.close()


def emulated(platform: Platform, call) -> object:
    return platform.emu.call(call.id)


async def test_create_p2p_call_and_hang_up(platform):
    call = await platform.bot.create_call([JOHN])
    assert call.state == "established"
    assert emulated(platform, call).state == "established"
    assert platform.emu.tokens_issued == 1  # msal's real flow, once (cached afterwards)
    await call.hang_up()
    assert call.is_terminated
    assert call.id in platform.emu.service.ended
    await platform.until(lambda: platform.count("call_ended", call.id) == 1)
    assert all(d.delivered for d in platform.emu.deliveries)


async def test_join_meeting_from_join_url_and_follow_the_roster(platform):
    emu = platform.emu
    meeting = emu.create_meeting()
    alice = emu.add_participant(meeting.id, "Alice")
    call = await platform.bot.join_meeting(meeting.join_web_url)
    assert emulated(platform, call).meeting is meeting
    await platform.until(lambda: {p.id for p in call.participants} >= {alice.id, call.my_participant_id})
    bob = emu.add_participant(meeting.id, "Bob", video=True)
    await platform.until(lambda: bob.id in {p.id for p in call.participants})
    source = bob.media_streams[1].source_id
    assert call.source_map[source].id == bob.id
    emu.remove_participant(meeting.id, alice.id)
    await platform.until(lambda: alice.id not in {p.id for p in call.participants})
    changes = [e[2] for e in platform.events if e[0] == "participants_changed" and e[1] == call.id]
    assert all(isinstance(c, RosterChange) for c in changes) and any(c.removed for c in changes)


async def test_join_meeting_by_join_meeting_id(platform):
    meeting = platform.emu.create_meeting(join_meeting_id="1234567", passcode="psw123")
    call = await platform.bot.join_meeting(join_meeting_id="1234567", passcode="psw123")
    assert emulated(platform, call).meeting is meeting and call.state == "established"


async def test_incoming_call_answered_by_default_policy(platform):
    incoming = platform.emu.incoming_call(display_name="Carol")
    await platform.emu.wait_for_state(incoming.id, "established")
    await platform.until(lambda: platform.count("call_established", incoming.id) == 1)
    call = platform.bot.calls[m.id_key(incoming.id)]
    assert call.state == "established"
    answered = next(r for r in platform.emu.requests if r.path.endswith("/answer"))
    assert answered.body["callbackUri"] == platform.bot.config.webhook.public_url


async def test_incoming_call_rejected(platform):
    @platform.bot.on("incoming_call")
    async def policy(call):
        return Reject("busy")

    incoming = platform.emu.incoming_call()
    await platform.emu.wait_for_state(incoming.id, "terminated")
    rejected = next(r for r in platform.emu.requests if r.path.endswith("/reject"))
    assert rejected.body["reason"] == "busy" and rejected.status == 202
    await platform.until(lambda: platform.count("call_ended", incoming.id) == 1)


async def test_incoming_call_redirected(platform):
    @platform.bot.on("incoming_call")
    async def policy(call):
        return Redirect([HEIDI], timeout_s=30)

    incoming = platform.emu.incoming_call()
    await platform.emu.wait_for_state(incoming.id, "terminated")
    redirected = next(r for r in platform.emu.requests if r.path.endswith("/redirect"))
    assert redirected.status == 202 and redirected.body["timeout"] == 30
    assert redirected.body["targets"][0]["identity"]["user"]["id"] == HEIDI.user.id
    await platform.until(lambda: platform.count("call_ended", incoming.id) == 1)


async def test_mute_unmute_and_update_metadata_in_a_meeting(platform):
    meeting = platform.emu.create_meeting()
    platform.emu.add_participant(meeting.id, "Alice")
    call = await platform.bot.join_meeting(meeting.join_web_url)
    op = await call.mute()
    assert op.status == "completed"
    await platform.until(lambda: call.roster.get(call.my_participant_id) is not None
                         and call.roster.get(call.my_participant_id).is_muted)
    await call.unmute()
    await platform.until(lambda: call.roster.get(call.my_participant_id).is_muted is False)
    await call.update_metadata("mediabot:v1")
    await platform.until(lambda: call.roster.get(call.my_participant_id).metadata == "mediabot:v1")
    assert emulated(platform, call).bot.metadata == "mediabot:v1"


async def test_invite_and_mute_participant(platform):
    meeting = platform.emu.create_meeting()
    alice = platform.emu.add_participant(meeting.id, "Alice")
    call = await platform.bot.join_meeting(meeting.join_web_url)
    op = await call.invite([HEIDI])
    assert op.status == "completed"
    await platform.until(lambda: any((p.info.identity.user or m.Identity()).id == HEIDI.user.id
                                     for p in call.participants if p.info and p.info.identity))
    await call.mute_participant(alice.id)
    await platform.until(lambda: call.roster.get(alice.id).is_muted)
    await call.delete_participant(alice.id)
    listed = await call.list_participants()
    assert alice.id not in {p.id for p in listed}


async def test_play_prompt_record_response_and_download(platform):
    call = await platform.bot.create_call([JOHN])
    op = await call.play_prompt(["https://cdn.contoso.com/beep.wav"])
    assert op.status == "completed"
    record = await call.record_response(max_record_duration_s=3, stop_tones=["#"])
    assert record.status == "completed" and record.recording_location
    audio = await call.download_recording(record)
    with wave.open(io.BytesIO(audio)) as w:
        assert (w.getframerate(), w.getnchannels()) == (16000, 1) and w.getnframes() > 0


async def test_subscribe_to_tone_and_dtmf_from_a_participant(platform):
    call = await platform.bot.create_call([JOHN])
    await call.subscribe_to_tone()
    platform.emu.press_tones(call.id, ["1", "2", "#"])
    await platform.until(lambda: platform.count("tone_received", call.id) == 3)
    tones = [e[2].tone for e in platform.events if e[0] == "tone_received"]
    assert tones == ["tone1", "tone2", "pound"]
    op = await call.send_dtmf_tones(["1", "*"], delay_between_tones_ms=100)
    assert op.status == "completed"


async def test_cancel_media_processing_fails_a_running_record(platform):
    platform.emu.service.options.time_scale = 1.0
    call = await platform.bot.create_call([JOHN])
    record = asyncio.ensure_future(call.record_response(max_record_duration_s=60))
    await platform.until(lambda: any(r.path.endswith("/recordResponse") for r in platform.emu.requests))
    await call.cancel_media_processing()
    from bot.graph.errors import OperationFailed
    with pytest.raises(OperationFailed) as failure:
        await record
    assert failure.value.result_info.code == 400


async def test_transfer_ends_the_call(platform):
    call = await platform.bot.create_call([JOHN])
    await call.transfer(HEIDI)
    assert call.is_terminated
    assert call.result_info.subcode == 7015


async def test_failed_transfer_raises_and_the_call_stays(platform):
    platform.emu.service.options.unreachable_ids.add(HEIDI.user.id)
    call = await platform.bot.create_call([JOHN])
    from bot.graph.errors import OperationFailed
    with pytest.raises(OperationFailed):
        await call.transfer(HEIDI)
    assert call.state == "established" and not call.is_terminated


async def test_throttling_and_unavailability_are_retried(platform):
    emu = platform.emu
    emu.fail_requests(429, count=2, retry_after="0.128", path=r"/communications/calls$", method="POST")
    call = await platform.bot.create_call([JOHN])
    emu.fail_requests(503, count=1, retry_after="0.1", path=r"/playPrompt$")
    emu.fail_requests(504, count=1, path=r"/playPrompt$")
    await call.play_prompt(["https://cdn.contoso.com/beep.wav"])
    statuses = [r.status for r in emu.requests if r.path.endswith("/communications/calls")]
    assert statuses == [429, 429, 201]
    assert [r.status for r in emu.requests if r.path.endswith("/playPrompt")] == [503, 504, 200]
    ids = [r.headers.get("client-request-id") for r in emu.requests if r.path.endswith("/playPrompt")]
    assert len(set(ids)) == 3  # a fresh client-request-id on every attempt
    assert len(emu.service.calls) == 1


async def test_duplicated_reordered_and_quirky_notifications_lose_nothing(platform):
    emu = platform.emu
    emu.notification_faults = NotificationFaults(duplicate_rate=1.0, reorder_window=2, reorder_wait_s=0.02,
                                                 pascal_odata_type=True, enum_case=True)
    meeting = emu.create_meeting()
    alice = emu.add_participant(meeting.id, "Alice")
    call = await platform.bot.join_meeting(meeting.join_web_url)
    await call.subscribe_to_tone()
    emu.press_tones(call.id, ["5"])
    op = await call.play_prompt(["https://cdn.contoso.com/beep.wav"])
    assert op.status == "completed"
    await platform.until(lambda: alice.id in {p.id for p in call.participants})
    await platform.until(lambda: platform.count("tone_received", call.id) >= 1)
    await call.hang_up()
    await emu.settle()
    await platform.until(lambda: platform.count("call_ended", call.id) == 1)
    assert platform.count("call_established", call.id) == 1
    assert platform.count("tone_received", call.id) == 1  # the duplicate was dropped
    assert sum(1 for d in emu.deliveries if d.duplicate) > 0
    assert all(d.delivered for d in emu.deliveries)


async def test_tones_reordered_and_redelivered_reach_the_handler_in_order_once(platform):
    emu = platform.emu
    call = await platform.bot.create_call([JOHN])
    await call.subscribe_to_tone()
    emu.notification_faults = NotificationFaults(duplicate_rate=1.0, reorder_window=4, reorder_wait_s=0.05)
    emu.press_tones(call.id, ["1", "2", "3", "#"])
    await emu.settle()
    delivered = [d.notification["resourceData"]["toneInfo"]["sequenceId"] for d in emu.deliveries
                 if "toneInfo" in d.notification.get("resourceData", {}) and d.call_id == call.id]
    assert delivered != sorted(delivered)                    # the platform did reorder and repeat
    await platform.until(lambda: platform.count("tone_received", call.id) >= 4)
    await asyncio.sleep(0.6)                                  # nothing more comes after a gap wait
    tones = [e[2].tone for e in platform.events if e[0] == "tone_received" and e[1] == call.id]
    assert tones == ["tone1", "tone2", "tone3", "pound"]
    await call.hang_up()


async def test_remote_hang_up_reaches_the_bot(platform):
    call = await platform.bot.create_call([JOHN])
    platform.emu.end_call(call.id)
    await call.wait_terminated(5)
    await platform.until(lambda: platform.count("call_ended", call.id) == 1)
    assert call.result_info is not None and call.result_info.code == 0


async def test_group_call_escalation_roster_read_back(platform):
    meeting = platform.emu.create_meeting()
    group = await platform.bot.join_meeting(meeting.join_web_url)
    p2p = await platform.bot.create_call([JOHN])
    target = m.InvitationParticipantInfo(identity=JOHN, replaces_call_id=p2p.id)
    await group.invite([target])
    await p2p.wait_terminated(5)
    # No roster notification follows an escalation (documented); the bot reads the roster back.
    assert any(p.info and p.info.identity and p.info.identity.user and p.info.identity.user.id == JOHN.user.id
               for p in group.participants)


async def test_legacy_format_first_is_refused_with_204_and_resent(platform):
    platform.emu.notification_faults = NotificationFaults(legacy_first=True)
    incoming = platform.emu.incoming_call()
    await platform.until(lambda: platform.count("call_established", incoming.id) == 1)
    legacy = [d for d in platform.emu.deliveries if d.legacy]
    assert legacy and all(d.status == 204 for d in legacy)
    assert all(d.delivered for d in platform.emu.deliveries if not d.legacy)


async def test_invite_several_with_the_documented_operations_participants_quirk(platform):
    platform.emu.service.options.invite_multiple_quirk = True
    meeting = platform.emu.create_meeting()
    call = await platform.bot.join_meeting(meeting.join_web_url)
    op = await call.invite([JOHN, HEIDI])
    assert op.status == "completed"
    ids = {JOHN.user.id, HEIDI.user.id}
    await platform.until(lambda: ids <= {p.info.identity.user.id for p in call.participants
                                         if p.info and p.info.identity and p.info.identity.user})

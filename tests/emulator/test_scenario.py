"""Simulated people and the control API: meetings, participants joining, muting and leaving
(roster updates to every bot call in the meeting), incoming calls, DTMF presses, media hook."""

from __future__ import annotations

import aiohttp

from bot.emulator import GraphEmulator, NotificationFaults, ServiceOptions

from .conftest import example
from .test_graph import CALLS, join_meeting, with_callback


async def control(emulator: GraphEmulator, method: str, path: str, body=None):
    async with aiohttp.ClientSession() as session:
        async with session.request(method, emulator.base_url + path, json=body) as resp:
            text = await resp.text()
            return resp.status, (await resp.json() if text else None)


async def test_control_api_drives_a_meeting_roster(graph, receiver, emulator):
    status, meeting = await control(emulator, "POST", "/emulator/meetings", {"subject": "standup"})
    assert status == 201 and meeting["joinWebUrl"].startswith("https://teams.microsoft.com/l/meetup-join/19%3a")
    status, alice = await control(emulator, "POST", f"/emulator/meetings/{meeting['id']}/participants",
                                  {"displayName": "Alice", "video": True})
    assert status == 201 and [s["mediaType"] for s in alice["mediaStreams"]] == ["audio", "video"]
    body = with_callback("joinMeeting.serviceHosted.request.json", receiver.url)
    body["chatInfo"]["threadId"] = meeting["threadId"]
    status, _, call = await graph.post(CALLS, body)
    assert status == 201
    roster = (await receiver.wait(3, call["id"]))[2]["resourceData"]
    assert alice["id"] in [p["id"] for p in roster]
    status, bob = await control(emulator, "POST", f"/emulator/meetings/{meeting['id']}/participants",
                                {"displayName": "Bob"})
    roster = (await receiver.wait(4, call["id"]))[3]["resourceData"]
    assert {alice["id"], bob["id"], call["myParticipantId"]} == {p["id"] for p in roster}
    assert len({s["sourceId"] for p in roster for s in p["mediaStreams"]}) == 4  # unique source ids
    status, _ = await control(emulator, "POST", f"/emulator/meetings/{meeting['id']}/participants/{bob['id']}/mute",
                              {"isMuted": True})
    assert status == 204
    (muted,) = (await receiver.wait(5, call["id"]))[4]["resourceData"]
    assert (muted["id"], muted["isMuted"]) == (bob["id"], True)
    status, _ = await control(emulator, "DELETE", f"/emulator/meetings/{meeting['id']}/participants/{alice['id']}")
    assert status == 204
    roster = (await receiver.wait(6, call["id"]))[5]["resourceData"]
    assert {p["id"] for p in roster} == {bob["id"], call["myParticipantId"]}
    status, calls = await control(emulator, "GET", "/emulator/calls")
    assert calls["active"][0]["id"] == call["id"] and calls["active"][0]["participants"] == 1


async def test_control_api_incoming_call_and_tones(graph, receiver, emulator):
    status, created = await control(emulator, "POST", "/emulator/incoming-call", {"displayName": "Carol"})
    assert status == 201
    (incoming,) = await receiver.wait(1, created["id"])
    assert incoming["resourceData"]["source"]["identity"]["user"]["displayName"] == "Carol"
    await graph.post(f"{CALLS}/{created['id']}/answer", example("answer.serviceHosted.request.json") | {
        "callbackUri": receiver.url})
    await receiver.wait(3, created["id"])
    await graph.post(f"{CALLS}/{created['id']}/subscribeToTone", {"clientContext": "t"})
    status, body = await control(emulator, "POST", f"/emulator/calls/{created['id']}/tones", {"tones": ["4", "*"]})
    assert (status, body) == (200, {"sent": 2})
    items = await receiver.wait(5, created["id"])
    assert [i["resourceData"]["toneInfo"]["tone"] for i in items[3:]] == ["tone4", "star"]
    status, requests = await control(emulator, "GET", "/emulator/requests")
    assert [r["path"].rsplit("/", 1)[-1] for r in requests if r["path"].startswith("/v1.0")] == [
        "answer", "subscribeToTone"]
    status, sent = await control(emulator, "GET", "/emulator/notifications")
    assert len(sent) == 5 and all(n["status"] == 202 for n in sent)


async def test_unanswered_incoming_call_ends(receiver):
    async with GraphEmulator(options=ServiceOptions(answer_timeout_s=0.05, allow_http_callbacks=True), tls=False) as emu:
        emu.register_bot(webhook_url=receiver.url)
        call = emu.incoming_call()
        delivery = await emu.wait_for_state(call.id, "terminated", timeout_s=5)
        assert delivery.notification["changeType"] == "deleted"
        assert call.id in emu.service.ended


async def test_control_api_sets_faults(graph, receiver, emulator):
    status, faults = await control(emulator, "POST", "/emulator/faults", {
        "http": [{"status": 429, "count": 1, "retryAfter": "0.5"}],
        "notifications": {"duplicate_rate": 1.0}})
    assert status == 200 and faults["http"][0]["retry_after"] == "0.5"
    assert emulator.notification_faults == NotificationFaults(duplicate_rate=1.0)
    status, _, _ = await graph.get(f"{CALLS}/x")
    assert status == 429


class RecordingMediaHandler:
    def __init__(self) -> None:
        self.started: list[tuple[str, str | None]] = []
        self.ended: list[str] = []

    async def call_started(self, call, blob):
        self.started.append((call.id, blob))

    async def call_ended(self, call):
        self.ended.append(call.id)


async def test_media_handler_gets_the_app_hosted_blob(graph, receiver):
    handler = RecordingMediaHandler()
    emulator = graph.emu
    emulator.service.media_handler = handler
    status, _, call = await graph.post(CALLS, with_callback("createCall.p2p.appHosted.request.json", receiver.url))
    assert status == 201
    await emulator.wait_for_state(call["id"], "established")
    await emulator.settle()
    assert handler.started == [(call["id"], "<Media Session Configuration>")]
    await graph.delete(f"{CALLS}/{call['id']}")
    await emulator.wait_for_state(call["id"], "terminated")
    await emulator.settle()
    assert handler.ended == [call["id"]]


async def test_group_call_meeting_join_with_delta_roster(graph, receiver, emulator):
    meeting = emulator.create_meeting()
    emulator.add_participant(meeting.id, "Alice")
    body = with_callback("joinMeeting.serviceHosted.request.json", receiver.url)
    body["chatInfo"]["threadId"] = meeting.thread_id
    body["callOptions"] = {"@odata.type": "#microsoft.graph.outgoingCallOptions", "isDeltaRosterEnabled": True}
    status, _, call = await graph.post(CALLS, body)
    assert status == 201
    await receiver.wait(3, call["id"])
    alice = next(iter(meeting.participants))
    emulator.remove_participant(meeting.id, alice)
    items = await receiver.wait(4, call["id"])
    (delta,) = items[3]["resourceData"]
    assert delta["@odata.type"] == "#microsoft.graph.deltaParticipants" and delta["sequenceNumber"] == 2
    (gone,) = delta["participants"]
    assert gone["id"] == alice and gone["removedState"]["reason"] == "left"


async def test_join_url_of_a_meeting_decodes_to_its_thread(emulator):
    from urllib.parse import unquote
    meeting = emulator.create_meeting()
    url = unquote(meeting.join_web_url)
    assert f"/meetup-join/{meeting.thread_id}/0?context=" in url
    assert f'"Tid":"{meeting.tenant_id}"' in url and f'"Oid":"{meeting.organizer_id}"' in url
    _ = join_meeting  # the graph tests' helper is shared


async def test_screen_sharing_roster_and_content_sharing_sessions(graph, receiver, emulator):
    meeting = emulator.create_meeting()
    alice = emulator.add_participant(meeting.id, "Alice")
    body = with_callback("joinMeeting.serviceHosted.request.json", receiver.url)
    body["chatInfo"]["threadId"] = meeting.thread_id
    body["callOptions"] = {"@odata.type": "#microsoft.graph.outgoingCallOptions",
                           "isContentSharingNotificationEnabled": True}
    status, _, call = await graph.post(CALLS, body)
    assert status == 201
    await receiver.wait(3, call["id"])
    status, shared = await control(emulator, "POST",
                                   f"/emulator/meetings/{meeting.id}/participants/{alice.id}/screen-sharing",
                                   {"sharing": True})
    assert status == 200 and shared["contentSharingSessionId"]
    emulator.share_screen(meeting.id, alice.id, False)
    items = await receiver.wait(7, call["id"])
    (person,) = items[3]["resourceData"]
    vbss = next(s for s in person["mediaStreams"] if s["mediaType"] == "videoBasedScreenSharing")
    assert (vbss["direction"], vbss["label"]) == ("sendOnly", "applicationsharing-video")
    assert [i["changeType"] for i in items[4:7:2]] == ["created", "deleted"]
    from .conftest import assert_shape
    assert_shape(items[4], example("createCall.notification.contentSharingStarted.json")["value"][0])
    assert_shape(items[6], example("createCall.notification.contentSharingEnded.json")["value"][0])
    assert items[4]["resourceData"][0]["id"] == shared["contentSharingSessionId"]


async def test_incoming_group_invite_carries_meeting_and_answer_brings_the_roster(graph, receiver, emulator):
    meeting = emulator.create_meeting()
    alice = emulator.add_participant(meeting.id, "Alice")
    call = emulator.incoming_call(meeting_id=meeting.id)
    (created,) = await receiver.wait(1, call.id)
    data = created["resourceData"]
    assert data["chatInfo"]["threadId"] == meeting.thread_id
    assert data["meetingInfo"]["@odata.type"] == "#microsoft.graph.organizerMeetingInfo"
    status, _, _ = await graph.post(f"{CALLS}/{call.id}/answer", example("answer.serviceHosted.request.json") | {
        "callbackUri": receiver.url})
    assert status == 202
    items = await receiver.wait(4, call.id)
    assert {p["id"] for p in items[3]["resourceData"]} == {alice.id, call.my_participant_id}


async def test_remote_hang_up_ends_the_call_once(graph, receiver, emulator):
    status, _, call = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json", receiver.url))
    await receiver.wait(2, call["id"])
    status, _ = await control(emulator, "POST", f"/emulator/calls/{call['id']}/hang-up")
    assert status == 204
    items = await receiver.wait(3, call["id"])
    assert (items[2]["changeType"], items[2]["resourceData"]["state"]) == ("deleted", "terminated")
    status, _ = await control(emulator, "POST", f"/emulator/calls/{call['id']}/hang-up")
    assert status == 404
    await emulator.settle()
    assert len(receiver.items(call["id"])) == 3


async def test_a_call_without_keepalive_ends_and_keepalive_extends_it(graph, receiver, emulator):
    emulator.service.options.keepalive_timeout_s = 1.5
    status, _, kept = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json", receiver.url))
    status, _, idle = await graph.post(CALLS, with_callback("createCall.p2p.serviceHosted.request.json", receiver.url))
    import asyncio
    for _ in range(8):  # 2 s of keepAlives every 0.25 s: longer than the 1.5 s limit
        await asyncio.sleep(0.25)
        status, _, _ = await graph.post(f"{CALLS}/{kept['id']}/keepAlive", None)
        assert status == 200
    items = await receiver.wait(3, idle["id"])
    assert items[2]["changeType"] == "deleted" and "keepAlive" in items[2]["resourceData"]["resultInfo"]["message"]
    assert kept["id"] in emulator.service.calls
    status, _, _ = await graph.post(f"{CALLS}/{idle['id']}/keepAlive", None)
    assert status == 404

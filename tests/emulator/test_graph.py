"""Every documented Graph calls endpoint against the emulator with raw aiohttp requests: status,
headers, and body and notification shapes compared with the documented examples."""

from __future__ import annotations

import asyncio
import io
import wave

import pytest

from bot.emulator import GraphEmulator

from .conftest import Graph, Receiver, assert_shape, example

CALLS = "/communications/calls"


def with_callback(name: str, url: str) -> dict:
    body = example(name)
    body["callbackUri"] = url
    return body


async def create_p2p(graph: Graph, receiver: Receiver, name: str = "createCall.p2p.serviceHosted.request.json") -> str:
    status, _, call = await graph.post(CALLS, with_callback(name, receiver.url))
    assert status == 201
    await receiver.wait(2, call["id"])
    return call["id"]


async def join_meeting(graph: Graph, receiver: Receiver, emulator: GraphEmulator, *, app_hosted: bool = False,
                       people: tuple[str, ...] = ("Alice",)) -> tuple[str, object]:
    meeting = emulator.create_meeting()
    for name in people:
        emulator.add_participant(meeting.id, name)
    body = with_callback("joinMeeting.appHosted.request.json" if app_hosted
                         else "joinMeeting.serviceHosted.request.json", receiver.url)
    body["chatInfo"]["threadId"] = meeting.thread_id
    status, _, call = await graph.post(CALLS, body)
    assert status == 201
    await receiver.wait(3, call["id"])  # establishing, established, roster
    return call["id"], meeting


def check_signed(receiver: Receiver) -> None:
    assert receiver.received
    for r in receiver.received:
        assert r.error is None, r.error
        assert r.claims["aud"] == receiver.emulator.app_id
        assert r.claims["tid"] == receiver.emulator.tenant_id


# -- create, get, delete ------------------------------------------------------------------------
@pytest.mark.parametrize("name, documented", [
    ("createCall.p2p.serviceHosted.request.json", "createCall.p2p.serviceHosted.response.json"),
    ("createCall.p2p.appHosted.request.json", "createCall.p2p.appHosted.response.json"),
    ("createCall.pstn.serviceHosted.request.json", "createCall.pstn.serviceHosted.response.json"),
    ("createCall.group.appHosted.request.json", "createCall.group.appHosted.response.json"),
    ("createCall.group.serviceHosted.request.json", "createCall.group.serviceHosted.response.json"),
])
async def test_create_call_returns_201_location_and_documented_call(graph, receiver, emulator, name, documented):
    status, headers, call = await graph.post(CALLS, with_callback(name, receiver.url))
    assert status == 201
    assert headers["Location"] == f"{emulator.graph_url}{CALLS}/{call['id']}"
    assert call["state"] == "establishing" and call["direction"] == "outgoing"
    assert_shape(call, example(documented))
    items = await receiver.wait(2, call["id"])
    assert [i["resourceData"]["state"] for i in items[:2]] == ["establishing", "established"]
    assert_shape(items[0], example("createCall.p2p.serviceHosted.notification.establishing.json")["value"][0])
    assert_shape(items[1], example("createCall.p2p.serviceHosted.notification.established.json")["value"][0])
    check_signed(receiver)


async def test_group_call_sends_roster_of_targets_and_bot(graph, receiver, emulator):
    status, _, call = await graph.post(CALLS, with_callback("createCall.group.appHosted.request.json", receiver.url))
    assert status == 201
    items = await receiver.wait(3, call["id"])
    roster = items[2]
    assert roster["resourceUrl"].endswith("/participants")
    names = sorted(p["info"]["identity"].get("user", p["info"]["identity"].get("application", {})).get("displayName")
                   for p in roster["resourceData"])
    assert names == ["mediabot", "user1", "user2"]
    assert_shape(roster, example("joinMeeting.serviceHosted.notification.roster.json")["value"][0])


async def test_join_meeting_by_organizer_info_sends_full_roster(graph, receiver, emulator):
    meeting = emulator.create_meeting()
    emulator.add_participant(meeting.id, "Alice")
    body = with_callback("joinMeeting.serviceHosted.request.json", receiver.url)
    body["chatInfo"]["threadId"] = meeting.thread_id
    status, _, call = await graph.post(CALLS, body)
    assert status == 201
    assert_shape(call, example("joinMeeting.serviceHosted.response.json"))
    assert call["chatInfo"]["threadId"] == meeting.thread_id
    items = await receiver.wait(3, call["id"])
    assert_shape(items[0], example("joinMeeting.serviceHosted.notification.establishing.json")["value"][0])
    assert_shape(items[1], example("joinMeeting.serviceHosted.notification.established.json")["value"][0])
    assert_shape(items[2], example("joinMeeting.serviceHosted.notification.roster.json")["value"][0])
    people = {p["id"]: p for p in items[2]["resourceData"]}
    assert call["myParticipantId"] in people
    assert any(p["info"]["identity"].get("user", {}).get("displayName") == "Alice" for p in people.values())


async def test_join_meeting_by_join_meeting_id_checks_passcode(graph, receiver, emulator):
    meeting = emulator.create_meeting(join_meeting_id="1234567", passcode="psw123")
    body = with_callback("joinMeeting.joinMeetingId.passcode.request.json", receiver.url)
    status, _, call = await graph.post(CALLS, body)
    assert status == 201
    assert_shape(call, example("joinMeeting.joinMeetingId.passcode.response.json"))
    assert emulator.call(call["id"]).meeting is meeting
    body["meetingInfo"]["passcode"] = "wrong"
    status, _, error = await graph.post(CALLS, body)
    assert status == 403 and error["error"]["code"] == "Forbidden"
    status, _, error = await graph.post(CALLS, with_callback("joinMeeting.joinMeetingId.noPasscode.request.json",
                                                             receiver.url) | {"meetingInfo": {
        "@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo", "joinMeetingId": "999", "passcode": None}})
    assert status == 404


async def test_join_meeting_by_token(graph, receiver, emulator):
    meeting = emulator.create_meeting()
    body = {"callbackUri": receiver.url, "requestedModalities": ["audio"],
            "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
            "meetingInfo": {"@odata.type": "#microsoft.graph.tokenMeetingInfo", "token": meeting.token}}
    status, _, call = await graph.post(CALLS, body)
    assert status == 201 and emulator.call(call["id"]).meeting is meeting


@pytest.mark.parametrize("name, documented", [
    ("createCall.p2p.serviceHosted.request.json", "call.get.p2p.response.json"),
    ("joinMeeting.serviceHosted.request.json", "call.get.group.response.json"),
])
async def test_get_call(graph, receiver, name, documented):
    status, _, created = await graph.post(CALLS, with_callback(name, receiver.url))
    assert status == 201
    await receiver.wait(2, created["id"])
    status, _, call = await graph.get(f"{CALLS}/{created['id']}")
    assert status == 200 and call["state"] == "established"
    assert_shape(call, example(documented), optional=frozenset({"transcription"}))


async def test_delete_then_keepalive_and_get_are_404(graph, receiver):
    call_id = await create_p2p(graph, receiver)
    status, _, body = await graph.post(f"{CALLS}/{call_id}/keepAlive", None)
    assert (status, body) == (200, None)
    status, _, body = await graph.delete(f"{CALLS}/{call_id}")
    assert (status, body) == (204, None)
    items = await receiver.wait(4, call_id)
    assert [i["changeType"] for i in items[2:]] == ["updated", "deleted"]
    assert_shape(items[2], example("delete.notification.terminating.json")["value"][0])
    assert_shape(items[3], example("delete.notification.terminated.json")["value"][0])
    status, headers, error = await graph.post(f"{CALLS}/{call_id}/keepAlive", None)
    assert status == 404
    assert error["error"]["innerError"]["request-id"] == headers["request-id"]
    status, _, _ = await graph.get(f"{CALLS}/{call_id}")
    assert status == 404


# -- incoming: answer, reject, redirect ---------------------------------------------------------
async def test_incoming_call_answer_sequence(graph, receiver, emulator):
    call = emulator.incoming_call(display_name="Test User")
    items = await receiver.wait(1, call.id)
    assert_shape(items[0], example("incoming.notification.json")["value"][0])
    assert items[0]["changeType"] == "created" and items[0]["resourceData"]["state"] == "incoming"
    other = receiver.url.replace("/api/calls", "/api/other")
    status, _, body = await graph.post(f"{CALLS}/{call.id}/answer",
                                       with_callback("answer.appHosted.request.json", other))
    assert (status, body) == (202, None)
    items = await receiver.wait(3, call.id)
    assert [i["resourceData"]["state"] for i in items[1:]] == ["establishing", "established"]
    assert_shape(items[1], example("answer.appHosted.notification.establishing.json")["value"][0])
    assert_shape(items[2], example("answer.appHosted.notification.established.json")["value"][0])
    assert [r.path for r in receiver.received] == ["/api/calls", "/api/other", "/api/other"]
    check_signed(receiver)


@pytest.mark.parametrize("reason", ["busy", "None", "Forbidden"])
async def test_incoming_call_reject(graph, receiver, emulator, reason):
    call = emulator.incoming_call()
    await receiver.wait(1, call.id)
    status, _, body = await graph.post(f"{CALLS}/{call.id}/reject", {"reason": reason})
    assert (status, body) == (202, None)
    items = await receiver.wait(2, call.id)
    assert items[1]["changeType"] == "deleted"
    assert_shape(items[1], example("reject.notification.deleted.json")["value"][0])
    status, _, _ = await graph.post(f"{CALLS}/{call.id}/reject", {"reason": "busy"})
    assert status == 404


async def test_reject_unknown_reason_and_answer_without_media_are_400(graph, receiver, emulator):
    call = emulator.incoming_call()
    status, _, error = await graph.post(f"{CALLS}/{call.id}/reject", {"reason": "later"})
    assert status == 400 and error["error"]["code"] == "BadRequest"
    status, _, _ = await graph.post(f"{CALLS}/{call.id}/answer", {"acceptedModalities": ["audio"]})
    assert status == 400


@pytest.mark.parametrize("name, documented", [
    ("redirect.request.json", "redirect.notification.terminated.json"),
    ("redirect.pstn.request.json", "redirect.pstn.notification.terminated.json"),
    ("redirect.simulring.request.json", "redirect.simulring.notification.terminated.json"),
])
async def test_incoming_call_redirect(graph, receiver, emulator, name, documented):
    call = emulator.incoming_call()
    await receiver.wait(1, call.id)
    status, _, _ = await graph.post(f"{CALLS}/{call.id}/redirect", with_callback(name, receiver.url))
    assert status == 202
    items = await receiver.wait(2, call.id)
    assert items[1]["changeType"] == "deleted" and items[1]["resourceData"]["state"] == "terminated"
    assert_shape(items[1], example(documented)["value"][0])


async def test_answer_after_answer_is_400(graph, receiver, emulator):
    call = emulator.incoming_call()
    status, _, _ = await graph.post(f"{CALLS}/{call.id}/answer", example("answer.serviceHosted.request.json"))
    assert status == 202
    status, _, _ = await graph.post(f"{CALLS}/{call.id}/answer", example("answer.serviceHosted.request.json"))
    assert status == 400


# -- transfer -----------------------------------------------------------------------------------
async def test_transfer_sequence(graph, receiver):
    call_id = await create_p2p(graph, receiver)
    status, _, _ = await graph.post(f"{CALLS}/{call_id}/transfer", example("transfer.request.json") | {
        "transferTarget": example("transfer.pstn.request.json")["transferTarget"]})
    assert status == 202
    items = await receiver.wait(5, call_id)
    assert [i["resourceData"]["state"] for i in items[2:]] == ["transferring", "transferAccepted", "terminated"]
    assert_shape(items[2], example("transfer.notification.transferring.json")["value"][0])
    assert_shape(items[3], example("transfer.notification.transferAccepted.json")["value"][0])
    assert_shape(items[4], example("transfer.notification.completed.json")["value"][0])
    assert items[4]["resourceData"]["resultInfo"]["subcode"] == 7015


async def test_consultative_transfer_ends_both_legs(graph, receiver):
    first = await create_p2p(graph, receiver)
    second = await create_p2p(graph, receiver)
    body = example("transfer.consultative.request.json")
    body["transferTarget"]["replacesCallId"] = second
    status, _, _ = await graph.post(f"{CALLS}/{first}/transfer", body)
    assert status == 202
    items = await receiver.wait(5, first)
    assert items[4]["resourceData"]["terminationReason"] == "AppTransferred"
    assert_shape(items[4], example("transfer.consultative.notification.completed.json")["value"][0])
    items = await receiver.wait(4, second)
    assert items[3]["changeType"] == "deleted"


async def test_transfer_to_unreachable_target_fails_back_to_established(graph, receiver, emulator):
    call_id = await create_p2p(graph, receiver)
    body = example("transfer.request.json")
    emulator.service.options.unreachable_ids.add(body["transferTarget"]["identity"]["user"]["id"])
    status, _, _ = await graph.post(f"{CALLS}/{call_id}/transfer", body | {
        "transferTarget": {**body["transferTarget"], "replacesCallId": None}})
    assert status == 202
    items = await receiver.wait(4, call_id)
    assert items[3]["resourceData"]["state"] == "established"
    assert_shape(items[3], example("transfer.notification.failed.json")["value"][0],
                 optional=frozenset({"replacesContext"}))
    assert items[3]["resourceData"]["resultInfo"]["subCode"] == 7000


async def test_transfer_out_of_group_call_needs_transferee(graph, receiver, emulator):
    call_id, _ = await join_meeting(graph, receiver, emulator)
    body = example("transfer.groupCall.request.json")
    status, _, _ = await graph.post(f"{CALLS}/{call_id}/transfer", {"transferTarget": body["transferTarget"]})
    assert status == 400
    status, _, _ = await graph.post(f"{CALLS}/{call_id}/transfer", body)
    assert status == 202


# -- operations completed at once ---------------------------------------------------------------
@pytest.mark.parametrize("action, request_name, documented, roster", [
    ("mute", "mute.request.json", "mute.response.json", "mute.notification.roster.json"),
    ("unmute", "unmute.request.json", "unmute.response.json", None),
    ("updateRecordingStatus", None, "updateRecordingStatus.response.json", None),
    ("cancelMediaProcessing", "cancelMediaProcessing.request.json", "cancelMediaProcessing.response.json", None),
])
async def test_operations_completed_with_location(graph, receiver, emulator, action, request_name, documented,
                                                   roster):
    call_id, _ = await join_meeting(graph, receiver, emulator)
    body = example(request_name) if request_name else {"clientContext": "c", "status": "recording"}
    status, headers, op = await graph.post(f"{CALLS}/{call_id}/{action}", body)
    assert status == 200 and op["status"] == "completed"
    assert headers["Location"] == f"{emulator.graph_url}{CALLS}/{call_id}/operations/{op['id']}"
    assert_shape(op, example(documented))
    assert op["clientContext"] == body["clientContext"]
    status, _, again = await graph.get(f"{CALLS}/{call_id}/operations/{op['id'].replace('-', '').upper()}")
    assert status == 200 and again["id"] == op["id"]
    if roster:
        items = await receiver.wait(4, call_id)
        assert_shape(items[3], example(roster)["value"][0])
        (bot,) = items[3]["resourceData"]
        assert bot["id"] == emulator.call(call_id).my_participant_id and bot["isMuted"] is True


async def test_subscribe_to_tone_then_key_presses_notify_in_sequence(graph, receiver, emulator):
    call_id = await create_p2p(graph, receiver)
    assert emulator.press_tones(call_id, ["1"]) == 0  # not subscribed yet: nothing sent
    status, _, op = await graph.post(f"{CALLS}/{call_id}/subscribeToTone", example("subscribeToTone.request.json"))
    assert status == 200
    assert_shape(op, example("subscribeToTone.response.json"))
    assert emulator.press_tones(call_id, ["1", "#", "tone9"]) == 3
    items = await receiver.wait(5, call_id)
    for item in items[2:]:
        assert_shape(item, example("tone.notification.json")["value"][0])
    assert [(i["resourceData"]["toneInfo"]["sequenceId"], i["resourceData"]["toneInfo"]["tone"]) for i in items[2:]] \
        == [(1, "tone1"), (2, "pound"), (3, "tone9")]


async def test_change_screen_sharing_role_updates_bot_stream(graph, receiver, emulator):
    call_id, _ = await join_meeting(graph, receiver, emulator, app_hosted=True)
    status, _, body = await graph.post(f"{CALLS}/{call_id}/changeScreenSharingRole", {"role": "sharer"})
    assert (status, body) == (202, None)
    items = await receiver.wait(4, call_id)
    assert_shape(items[3], example("changeScreenSharingRole.notification.roster.json")["value"][0])
    stream = next(s for s in items[3]["resourceData"][0]["mediaStreams"] if s["mediaType"] == "videoBasedScreenSharing")
    assert (stream["direction"], stream["label"]) == ("sendOnly", "applicationsharing-video")


async def test_service_hosted_call_cannot_change_screen_sharing_role(graph, receiver):
    call_id = await create_p2p(graph, receiver)
    status, _, _ = await graph.post(f"{CALLS}/{call_id}/changeScreenSharingRole", {"role": "viewer"})
    assert status == 400


# -- media operations: running, then a deleted operation notification -------------------------
async def test_play_prompt_runs_then_completes(graph, receiver, emulator):
    call_id = await create_p2p(graph, receiver)
    status, headers, op = await graph.post(f"{CALLS}/{call_id}/playPrompt", example("playPrompt.request.json"))
    assert status == 200 and op["status"] == "running" and "Location" in headers
    assert_shape(op, example("playPrompt.response.json"))
    items = await receiver.wait(3, call_id)
    assert items[2]["changeType"] == "deleted"
    assert items[2]["resourceUrl"] == f"{CALLS}/{call_id}/operations/{op['id'].replace('-', '').upper()}"
    assert_shape(items[2], example("playPrompt.notification.completed.json")["value"][0])
    assert items[2]["resourceData"]["resultInfo"]["code"] == 200


async def test_app_hosted_call_cannot_play_prompts(graph, receiver):
    call_id = await create_p2p(graph, receiver, "createCall.p2p.appHosted.request.json")
    status, _, error = await graph.post(f"{CALLS}/{call_id}/playPrompt", example("playPrompt.request.json"))
    assert status == 400 and "service-hosted" in error["error"]["message"]


async def test_record_response_and_download(graph, receiver, emulator):
    call_id = await create_p2p(graph, receiver)
    body = example("recordResponse.request.json") | {"maxRecordDurationInSeconds": 2}
    status, _, op = await graph.post(f"{CALLS}/{call_id}/recordResponse", body)
    assert status == 200
    assert_shape(op, example("recordResponse.response.json"))
    items = await receiver.wait(3, call_id)
    done = items[2]["resourceData"]
    assert_shape(items[2], example("recordResponse.notification.completed.json")["value"][0])
    assert (done["status"], done["resultInfo"]["subcode"]) == ("completed", 8515)
    async with graph.session.get(done["recordingLocation"]) as resp:
        assert resp.status == 401
    async with graph.session.get(done["recordingLocation"],
                                 headers={"Authorization": f"Bearer {done['recordingAccessToken']}"}) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/octet-stream"
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        audio = await resp.read()
    with wave.open(io.BytesIO(audio)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.getnframes() > 0


async def test_record_response_stops_on_stop_tone(graph, receiver, emulator):
    emulator.service.options.time_scale = 1.0  # the record would otherwise last 120 s
    call_id = await create_p2p(graph, receiver)
    body = example("recordResponse.request.json") | {"maxRecordDurationInSeconds": 120, "prompts": []}
    status, _, op = await graph.post(f"{CALLS}/{call_id}/recordResponse", body)
    assert status == 200
    for _ in range(500):  # until the record is the running media operation
        queue = emulator.service._media.get(call_id)
        if queue is not None and queue.running is not None:
            break
        await asyncio.sleep(0.01)
    emulator.press_tones(call_id, ["#"])
    items = await receiver.wait(3, call_id)
    assert items[2]["resourceData"]["completionReason"] == "stopToneDetected"


async def test_cancel_media_processing_fails_running_and_queued(graph, receiver, emulator):
    emulator.service.options.time_scale = 1.0
    call_id = await create_p2p(graph, receiver)
    _, _, record = await graph.post(f"{CALLS}/{call_id}/recordResponse",
                                    example("recordResponse.request.json") | {"maxRecordDurationInSeconds": 60})
    _, _, prompt = await graph.post(f"{CALLS}/{call_id}/playPrompt", example("playPrompt.request.json"))
    status, _, op = await graph.post(f"{CALLS}/{call_id}/cancelMediaProcessing",
                                     example("cancelMediaProcessing.request.json"))
    assert status == 200 and op["status"] == "completed"
    items = await receiver.wait(4, call_id)
    assert [i["resourceData"]["id"] for i in items[2:]] == [record["id"], prompt["id"]]
    assert_shape(items[2], example("cancelMediaProcessing.notification.recordCanceled.json")["value"][0])
    for item in items[2:]:
        data = item["resourceData"]
        assert (data["status"], data["resultInfo"]["code"], data["resultInfo"]["subcode"]) == ("failed", 400, 8508)


@pytest.mark.parametrize("segment", ["sendDtmfTones", "microsoft.graph.sendDtmfTones"])
async def test_send_dtmf_tones_both_paths(graph, receiver, segment):
    call_id = await create_p2p(graph, receiver)
    status, headers, op = await graph.post(f"{CALLS}/{call_id}/{segment}", example("sendDtmfTones.request.json"))
    assert status == 200 and op["status"] == "running" and "Location" in headers
    assert_shape(op, example("sendDtmfTones.response.json"))
    items = await receiver.wait(3, call_id)
    assert_shape(items[2], example("sendDtmfTones.notification.completed.json")["value"][0])
    assert items[2]["resourceData"]["completionReason"] == "completedSuccessfully"


# -- participants -------------------------------------------------------------------------------
async def test_list_get_mute_delete_participants(graph, receiver, emulator):
    call_id, meeting = await join_meeting(graph, receiver, emulator, people=("Alice", "Bob"))
    status, _, listing = await graph.get(f"{CALLS}/{call_id}/participants")
    assert status == 200 and len(listing["value"]) == 3
    assert_shape(listing, example("participants.list.response.json"), optional=frozenset({"id"}))
    alice = next(p for p in listing["value"] if p["info"]["identity"].get("user", {}).get("displayName") == "Alice")
    status, _, one = await graph.get(f"{CALLS}/{call_id}/participants/{alice['id']}")
    assert status == 200 and one["id"] == alice["id"]
    assert_shape(one, example("participant.get.response.json"), optional=frozenset({"id"}))
    status, _, op = await graph.post(f"{CALLS}/{call_id}/participants/{alice['id']}/mute",
                                     example("participant.mute.request.json"))
    assert status == 200
    assert_shape(op, example("participant.mute.response.json"))
    items = await receiver.wait(4, call_id)
    assert_shape(items[3], example("participant.mute.notification.roster.json")["value"][0])
    assert items[3]["resourceData"][0]["isMuted"] is True
    status, _, body = await graph.delete(f"{CALLS}/{call_id}/participants/{alice['id']}")
    assert (status, body) == (204, None)
    items = await receiver.wait(5, call_id)
    assert alice["id"] not in [p["id"] for p in items[4]["resourceData"]]
    status, _, _ = await graph.get(f"{CALLS}/{call_id}/participants/{alice['id']}")
    assert status == 404


async def test_invite_running_then_completed_and_roster(graph, receiver, emulator):
    call_id, _ = await join_meeting(graph, receiver, emulator)
    body = example("invite.pstn.request.json")
    status, headers, op = await graph.post(f"{CALLS}/{call_id}/participants/invite", body)
    assert status == 200 and op["status"] == "Running" and "Location" in headers
    assert_shape(op, example("invite.pstn.response.json"))
    items = await receiver.wait(6, call_id)
    assert_shape(items[3], example("invite.notification.operationCompleted.json")["value"][0])
    assert items[3]["resourceData"]["status"] == "completed"
    assert_shape(items[4], example("invite.pstn.notification.roster.json")["value"][0])
    assert items[4]["resourceData"][0]["id"] is None and items[5]["resourceData"][0]["id"] is not None
    status, _, listing = await graph.get(f"{CALLS}/{call_id}/participants")
    assert any("phone" in p["info"]["identity"] for p in listing["value"])


async def test_invite_with_replaces_call_escalates_and_ends_the_p2p_call(graph, receiver, emulator):
    group_id, _ = await join_meeting(graph, receiver, emulator)
    p2p_id = await create_p2p(graph, receiver)
    body = example("invite.request.json")
    body["participants"][0]["replacesCallId"] = p2p_id
    status, _, op = await graph.post(f"{CALLS}/{group_id}/participants/invite", body)
    assert status == 200
    assert_shape(op, example("invite.response.json"))
    items = await receiver.wait(4, p2p_id)
    assert items[-1]["changeType"] == "deleted"
    await emulator.settle()
    group_items = receiver.items(group_id)
    assert group_items[-1]["resourceUrl"].endswith(f"/operations/{op['id']}")  # no roster followed (documented)
    status, _, listing = await graph.get(f"{CALLS}/{group_id}/participants")
    invited = body["participants"][0]["identity"]["user"]["id"]
    assert any(p["info"]["identity"].get("user", {}).get("id") == invited for p in listing["value"])


async def test_mute_all_is_beta_only(graph, receiver, emulator):
    call_id, _ = await join_meeting(graph, receiver, emulator, people=("Alice", "Bob"))
    status, _, _ = await graph.post(f"{CALLS}/{call_id}/participants/muteAll", example("beta.muteAll.request.json"))
    assert status == 400
    status, headers, op = await graph.post(f"{CALLS}/{call_id}/participants/muteAll",
                                           example("beta.muteAll.request.json"), version="beta")
    assert status == 200 and "Location" in headers
    assert_shape(op, example("beta.muteAll.response.json"))
    items = await receiver.wait(4, call_id)
    assert all(p["isMuted"] for p in items[3]["resourceData"])


async def test_app_calls_alias_and_beta_prefix(graph, receiver):
    status, _, call = await graph.post("/app/calls", with_callback("createCall.p2p.serviceHosted.request.json",
                                                                   receiver.url), version="beta")
    assert status == 201
    status, _, again = await graph.get(f"{CALLS}/{call['id']}", version="beta")
    assert status == 200 and again["id"] == call["id"]


# call-updatemetadata (beta): the documented request body
UPDATE_METADATA = {"metadata": "metadata-value", "clientContext": "clientContext-value"}


async def test_update_metadata_is_a_beta_call_action_answered_202_with_location(graph, receiver, emulator):
    call_id, _ = await join_meeting(graph, receiver, emulator)
    status, headers, body = await graph.post(f"{CALLS}/{call_id}/updateMetadata", UPDATE_METADATA, version="beta")
    assert status == 202 and body is None
    location = headers["Location"]
    assert f"/beta/communications/calls/{call_id}/operations/" in location
    op_id = location.rsplit("/", 1)[-1]
    status, _, op = await graph.get(f"{CALLS}/{call_id}/operations/{op_id}", version="beta")
    assert status == 200 and op["id"] == op_id and op["clientContext"] == "clientContext-value"
    items = await receiver.wait(4, call_id)             # the roster shows the bot's metadata
    bot = emulator.call(call_id).bot
    assert any(p.get("id") == bot.id and p.get("metadata") == "metadata-value" for p in items[3]["resourceData"])
    assert not [i for i in receiver.items(call_id) if "/operations/" in i["resourceUrl"]]   # none documented


async def test_update_metadata_elsewhere_is_refused_as_graph_does(graph, receiver, emulator):
    call_id, _ = await join_meeting(graph, receiver, emulator)
    bot_id = emulator.call(call_id).bot.id
    status, _, err = await graph.post(f"{CALLS}/{call_id}/updateMetadata", UPDATE_METADATA)        # v1.0
    assert status == 400 and err["error"]["code"] == "BadRequest" and "updateMetadata" in err["error"]["message"]
    status, _, err = await graph.post(f"{CALLS}/{call_id}/participants/{bot_id}/updateMetadata", UPDATE_METADATA,
                                      version="beta")                                                 # invented path
    assert status in (400, 404) and "updateMetadata" in err["error"]["message"]
    assert emulator.call(call_id).bot.metadata is None

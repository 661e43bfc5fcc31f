"""Call state machine, roster, operations and their completion, against a real HTTP server."""

from __future__ import annotations

import asyncio

import pytest

from bot.calls import TRANSITIONS, Call, CallStateMachine, Transition
from bot.graph import models as m
from bot.graph.errors import CallTerminated, InvalidCallState, OperationFailed
from tests.bot.conftest import example
from tests.bot.fakegraph import FakeGraph, shape

CALL_ID = "57dab8b1-894c-409a-b240-bd8beae78896"


def notes(name: str) -> list[m.CommsNotification]:
    return m.CommsNotifications.parse(example(name)).value


# ---- state machine --------------------------------------------------------------------------

DOCUMENTED_SEQUENCES = [  # call states: https://learn.microsoft.com/graph/api/resources/call
    [None, "establishing", "established"],
    [None, "incoming", "establishing", "established"],
    [None, "incoming", "terminated"],
    [None, "established", "transferring", "transferAccepted", "terminated"],
    [None, "established", "transferring", "established"],
    [None, "established", "transferring", "transferAccepted", "established"],
    [None, "established", "terminating", "terminated"],
    [None, "established", "hold", "established", "terminating", "terminated"],
    [None, "incoming", "redirecting", "terminated"],
    [None, "incoming", "ringing", "establishing", "established"],
    [None, "incoming", "established"],                   # establishing arrived late / lost
]


@pytest.mark.parametrize("seq", DOCUMENTED_SEQUENCES, ids=lambda s: "-".join(map(str, s[1:])))
def test_documented_sequences_are_valid(seq):
    sm = CallStateMachine(seq[0])
    for state in seq[1:]:
        assert sm.apply(state) == Transition.CHANGED, (sm.state, state)
    assert sm.state == seq[-1] and sm.invalid_transitions == 0


@pytest.mark.parametrize("current,new", [
    ("incoming", "transferring"), ("incoming", "hold"), ("established", "transferAccepted"),
    ("terminated", "established"), ("terminated", "incoming"), ("terminating", "established"),
    ("hold", "transferAccepted"), ("establishing", "transferring"),
])
def test_invalid_transitions_rejected_and_logged(current, new, caplog):
    sm = CallStateMachine(current)
    assert sm.apply(new) == Transition.INVALID
    assert sm.state == current and sm.invalid_transitions == 1
    assert "invalid call state transition" in caplog.text


@pytest.mark.parametrize("current", ["established", "hold", "transferring", "terminating"])
def test_late_early_states_are_stale_not_errors(current):
    sm = CallStateMachine(current)
    assert sm.apply("establishing") == Transition.STALE
    assert sm.state == current and sm.invalid_transitions == 0


def test_transition_table_covers_every_state():
    states = set(m.CallState.values) - {"unknownFutureValue"}
    assert set(k for k in TRANSITIONS if k) == states
    assert TRANSITIONS["terminated"] == frozenset()


def test_enum_casing_in_state_notifications():
    sm = CallStateMachine("establishing")
    assert sm.apply("Established") == Transition.CHANGED and sm.state == "established"


# ---- operations against a real HTTP server ---------------------------------------------------------

class Events:
    def __init__(self) -> None:
        self.log: list[tuple] = []

    async def call_state_changed(self, call, old, new):
        self.log.append(("state", old, new))

    async def participants_changed(self, call, change):
        self.log.append(("roster", len(change.added), len(change.updated), len(change.removed)))

    async def tone_received(self, call, tone):
        self.log.append(("tone", tone.tone))

    async def call_ended(self, call):
        self.log.append(("ended",))

    async def content_sharing_changed(self, call, note):
        self.log.append(("sharing", note.change_type))


@pytest.fixture
async def graph():
    g = FakeGraph()
    g.api = await g.start()
    yield g
    await g.close()


def make_call(graph, state="established", **kw) -> Call:
    return Call(graph.api, CALL_ID, resource=m.Call(id=CALL_ID, state=state,
                                                     my_participant_id="bot-participant"),
                listener=Events(), keepalive_interval_s=None, operation_timeout_s=10, **kw)


def op_path(name: str) -> str:
    return f"/communications/calls/{CALL_ID}/{name}"


async def test_answer_request_body_and_wait_established(graph):
    doc = example("answer.appHosted.request.json")
    req = m.AnswerRequest.parse(doc)
    call = make_call(graph, state="incoming")
    graph.on("POST", "/answer$", status=202)
    task = asyncio.create_task(call.answer(media_config=req.media_config, accepted_modalities=req.accepted_modalities,
                                           callback_uri=req.callback_uri))
    await asyncio.sleep(0.05)
    assert not task.done()
    for n in notes("answer.appHosted.notification.established.json"):   # established before establishing
        await call.handle_notification(n)
    await asyncio.wait_for(task, 5)
    for n in notes("answer.appHosted.notification.establishing.json"):
        await call.handle_notification(n)
    assert call.state == "established" and call.machine.invalid_transitions == 0
    assert shape(graph.sent(op_path("answer"))["json"]) == shape(doc)
    await call.drain_events()
    assert call.listener.log == [("state", "incoming", "established")]


@pytest.mark.parametrize("name", ["answer.serviceHosted.request.json", "answer.callOptions.request.json",
                                  "answer.request.json"])
async def test_answer_bodies_match_docs(graph, name):
    doc = example(name)
    if doc["callbackUri"] == "callbackUri-value":     # the page's placeholder: the bot sends only https
        doc["callbackUri"] = "https://bot.contoso.com/api/calls"
    req = m.AnswerRequest.parse(doc)
    call = make_call(graph, state="incoming")
    graph.on("POST", "/answer$", status=202)
    await call.answer(media_config=req.media_config, accepted_modalities=req.accepted_modalities,
                      callback_uri=req.callback_uri, call_options=req.call_options,
                      participant_capacity=req.participant_capacity, wait=False)
    assert shape(graph.sent("/answer")["json"]) == shape(doc)


@pytest.mark.parametrize("name", ["reject.busy.request.json", "reject.none.request.json"])
async def test_reject_body_and_deleted(graph, name):
    call = make_call(graph, state="incoming")
    graph.on("POST", "/reject$", status=202)
    task = asyncio.create_task(call.reject(example(name)["reason"].capitalize()))
    await asyncio.sleep(0.05)
    for n in notes("reject.notification.deleted.json"):
        await call.handle_notification(n)
    await asyncio.wait_for(task, 5)
    assert call.is_terminated
    assert graph.sent(op_path("reject"))["json"] == example(name)


@pytest.mark.parametrize("name", ["redirect.request.json", "redirect.simulring.request.json",
                                  "redirect.pstn.request.json"])
async def test_redirect_bodies(graph, name):
    doc = example(name)
    req = m.RedirectRequest.parse(doc)
    call = make_call(graph, state="incoming")
    graph.on("POST", "/redirect$", status=202)
    await call.redirect(req.targets, timeout_s=req.timeout, callback_uri=req.callback_uri,
                        routing_policies=req.routing_policies, mask_callee=req.mask_callee,
                        mask_caller=req.mask_caller, wait=False)
    assert shape(graph.sent("/redirect")["json"]) == shape(doc)


@pytest.mark.parametrize("name", ["transfer.request.json", "transfer.consultative.request.json",
                                  "transfer.pstn.request.json", "transfer.groupCall.request.json",
                                  "transfer.pstn.consultative.request.json"])
async def test_transfer_bodies(graph, name):
    doc = example(name)
    req = m.TransferRequest.parse(doc)
    call = make_call(graph)
    graph.on("POST", "/transfer$", status=202)
    await call.transfer(req.transfer_target, transferee=req.transferee, client_context=req.client_context,
                        wait=False)
    assert shape(graph.sent("/transfer")["json"]) == shape(doc)


async def test_transfer_success_and_failure(graph):
    graph.on("POST", "/transfer$", status=202)
    call = make_call(graph)
    task = asyncio.create_task(call.transfer(m.IdentitySet.of_user("550fae72-d251-43ec-868c-373732c2704f")))
    await asyncio.sleep(0.05)
    for name in ("transfer.notification.transferring.json", "transfer.notification.transferAccepted.json",
                 "transfer.notification.completed.json"):
        for n in notes(name):
            await call.handle_notification(n)
    await asyncio.wait_for(task, 5)
    assert call.is_terminated and call.result_info.subcode == 7015

    call = make_call(graph)
    task = asyncio.create_task(call.transfer(m.IdentitySet.of_user("x")))
    await asyncio.sleep(0.05)
    for name in ("transfer.notification.transferring.json", "transfer.notification.failed.json"):
        for n in notes(name):
            await call.handle_notification(n)
    with pytest.raises(OperationFailed) as info:
        await asyncio.wait_for(task, 5)
    assert info.value.result_info.code == 500 and info.value.result_info.subcode == 7000
    assert call.state == "established"


async def test_play_prompt_completes_on_deleted_notification_with_other_id_form(graph):
    doc = example("playPrompt.request.json")
    graph.on("POST", "/playPrompt$", body=example("playPrompt.response.json"),
             headers={"Location": f"https://graph/v1.0/communications/calls/{CALL_ID}/operations/0fe0623f-d628-42ed-b4bd-8ac290072cc5"})
    call = make_call(graph)
    req = m.PlayPromptRequest.parse(doc)
    task = asyncio.create_task(call.play_prompt(req.prompts, client_context=req.client_context))
    await asyncio.sleep(0.05)
    assert not task.done()
    for n in notes("playPrompt.notification.completed.json"):   # upper-case, no dashes in the URL
        await call.handle_notification(n)
    op = await asyncio.wait_for(task, 5)
    assert op.status == "completed" and op.result_info.message == "Action completed successfully."
    assert shape(graph.sent("/playPrompt")["json"]) == shape(doc)


async def test_operation_completion_arriving_before_the_response(graph):
    call = make_call(graph)

    async def deliver_first(req):
        for n in notes("playPrompt.notification.completed.json"):
            await call.handle_notification(n)

    graph.on("POST", "/playPrompt$", body=example("playPrompt.response.json"), before=deliver_first)
    op = await asyncio.wait_for(call.play_prompt(["https://cdn.contoso.com/beep.wav"]), 5)
    assert op.status == "completed"


async def test_record_response_body_cancel_failure_and_download(graph):
    doc = example("recordResponse.request.json")
    req = m.RecordResponseRequest.parse(doc)
    graph.on("POST", "/recordResponse$", body=example("recordResponse.response.json"))
    call = make_call(graph)
    kwargs = dict(prompts=req.prompts, barge_in_allowed=req.barge_in_allowed,
                  initial_silence_timeout_s=req.initial_silence_timeout_in_seconds,
                  max_silence_timeout_s=req.max_silence_timeout_in_seconds,
                  max_record_duration_s=req.max_record_duration_in_seconds, play_beep=req.play_beep,
                  stop_tones=req.stop_tones, client_context=req.client_context)
    task = asyncio.create_task(call.record_response(**kwargs))
    await asyncio.sleep(0.05)
    for n in notes("cancelMediaProcessing.notification.recordCanceled.json"):
        await call.handle_notification(n)
    with pytest.raises(OperationFailed) as info:
        await asyncio.wait_for(task, 5)
    assert (info.value.result_info.code, info.value.result_info.subcode) == (400, 8508)
    assert info.value.operation.completion_reason == "operationCanceled"
    assert shape(graph.sent("/recordResponse")["json"]) == shape(doc)

    # completed, then the recording is fetched with the recordingAccessToken
    done = example("recordResponse.notification.completed.json")
    done["value"][0]["resourceData"]["recordingLocation"] = graph.url("/recordings/17e3b46c")
    audio = bytes(range(256)) * 400
    graph.on("GET", "/recordings/17e3b46c$", body=audio, headers={"Content-Type": "application/octet-stream"})
    task = asyncio.create_task(call.record_response(**kwargs))
    await asyncio.sleep(0.05)
    for n in m.CommsNotifications.parse(done).value:
        await call.handle_notification(n)
    op = await asyncio.wait_for(task, 5)
    assert isinstance(op, m.RecordOperation) and op.result_info.subcode == 8515
    assert await call.download_recording(op) == audio
    fetch = graph.sent("/recordings/17e3b46c", method="GET")
    assert fetch["headers"]["Authorization"] == "Bearer <access-token>"


@pytest.mark.parametrize("method,suffix,response", [
    ("mute", "mute", "mute.response.json"),
    ("unmute", "unmute", "unmute.response.json"),
    ("subscribe_to_tone", "subscribeToTone", "subscribeToTone.response.json"),
    ("cancel_media_processing", "cancelMediaProcessing", "cancelMediaProcessing.response.json"),
])
async def test_synchronously_completed_operations(graph, method, suffix, response):
    graph.on("POST", f"/{suffix}$", body=example(response))
    call = make_call(graph)
    ctx = example(f"{suffix}.request.json")["clientContext"]
    op = await asyncio.wait_for(getattr(call, method)(client_context=ctx), 5)
    assert op.status == "completed"
    assert graph.sent(op_path(suffix))["json"] == example(f"{suffix}.request.json")


async def test_update_recording_status_and_screen_sharing_and_mute_all(graph):
    graph.on("POST", "/updateRecordingStatus$", body=example("updateRecordingStatus.response.json"))
    graph.on("POST", "/changeScreenSharingRole$", status=202)
    graph.on("POST", "/participants/muteAll$", body=example("beta.muteAll.response.json"))
    call = make_call(graph)
    op = await call.update_recording_status("Recording", client_context="clientContext-value")
    assert op.status == "completed"
    assert graph.sent("/updateRecordingStatus")["json"] == {"clientContext": "clientContext-value",
                                                            "status": "recording"}
    await call.change_screen_sharing_role("Viewer")
    assert graph.sent("/changeScreenSharingRole")["json"] == example("changeScreenSharingRole.request.json")
    await call.mute_all(client_context="clientContext-value")
    sent = graph.sent("/participants/muteAll")
    assert sent["path"].startswith("/beta/") and sent["json"] == example("beta.muteAll.request.json")


async def test_send_dtmf_tones(graph):
    doc = example("sendDtmfTones.request.json")
    graph.on("POST", "/sendDtmfTones$", body=example("sendDtmfTones.response.json"))
    call = make_call(graph)
    task = asyncio.create_task(call.send_dtmf_tones(["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#"],
                                                    delay_between_tones_ms=1000,
                                                    client_context=doc["clientContext"]))
    await asyncio.sleep(0.05)
    for n in notes("sendDtmfTones.notification.completed.json"):
        n.resource_url = f"/communications/calls/{CALL_ID}/operations/d36fe651-9f50-484d-bd4b-1e6415eae448"
        await call.handle_notification(n)
    op = await asyncio.wait_for(task, 5)
    assert op.completion_reason == "completedSuccessfully"
    assert graph.sent("/sendDtmfTones")["json"] == doc
    with pytest.raises(ValueError):
        await call.send_dtmf_tones(["x"])


@pytest.mark.parametrize("prefix", ["invite", "invite.multiple", "invite.pstn", "invite.replacesCall"])
async def test_invite_bodies_and_completion(graph, prefix):
    doc = example(f"{prefix}.request.json")
    req = m.InviteParticipantsRequest.parse(doc)
    graph.on("POST", "/participants/invite$", body=example(f"{prefix}.response.json"))
    graph.on("GET", "/participants$", body=example("participants.list.response.json"))
    call = make_call(graph)
    task = asyncio.create_task(call.invite(req.participants, client_context=req.client_context))
    await asyncio.sleep(0.05)
    for n in notes(f"{prefix}.notification.operationCompleted.json"):
        n.resource_url = n.resource_url.replace(n.call_id, CALL_ID)
        await call.handle_notification(n)
    op = await asyncio.wait_for(task, 5)
    assert op.status == "completed"
    assert shape(graph.sent("/participants/invite")["json"]) == shape(doc)
    if prefix == "invite.replacesCall":     # escalation: roster re-read by GET, in the background
        for _ in range(500):
            if len(call.roster) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(call.roster) == 2
        assert call.roster.participant_for_source("3") is not None
    await call.close()


async def test_participants_get_list_mute_delete(graph):
    graph.on("GET", "/participants$", body=example("participants.list.response.json"))
    graph.on("GET", "/participants/[^/]+$", body=example("participant.get.response.json"))
    graph.on("POST", "/participants/[^/]+/mute$", body=example("participant.mute.response.json"))
    graph.on("DELETE", "/participants/[^/]+$", status=204)
    call = make_call(graph)
    parts = await call.list_participants()
    assert [p.id for p in parts] == ["a7ebfb2d-871e-419c-87af-27290b22e8db", "1e126418-44a0-4a94-a6f8-0efe1ad71acb"]
    p = await call.get_participant("2765eb15-01f8-47c6-b12b-c32111a4a86f")
    assert isinstance(p, m.Participant)
    op = await call.mute_participant("2765eb15-01f8-47c6-b12b-c32111a4a86f",
                                     client_context=example("participant.mute.request.json")["clientContext"])
    assert op.status == "completed"
    assert graph.sent("/participants/2765eb15-01f8-47c6-b12b-c32111a4a86f/mute")["json"] == example("participant.mute.request.json")
    await call.refresh_roster()
    await call.delete_participant("a7ebfb2d-871e-419c-87af-27290b22e8db")
    assert graph.sent("/participants/a7ebfb2d-871e-419c-87af-27290b22e8db", method="DELETE")
    assert len(call.roster) == 1


async def test_hang_up_waits_for_terminated_and_fails_pending_operations(graph):
    graph.on("DELETE", f"/calls/{CALL_ID}$", status=204)
    graph.on("POST", "/playPrompt$", body=example("playPrompt.response.json"))
    call = make_call(graph)
    prompt = asyncio.create_task(call.play_prompt(["https://cdn.contoso.com/beep.wav"]))
    await asyncio.sleep(0.05)
    hang = asyncio.create_task(call.hang_up())
    await asyncio.sleep(0.05)
    for name in ("delete.notification.terminating.json", "delete.notification.terminated.json"):
        for n in notes(name):
            await call.handle_notification(n)
    await asyncio.wait_for(hang, 5)
    with pytest.raises(CallTerminated):
        await asyncio.wait_for(prompt, 5)
    assert call.machine.history[-2:] == ["terminating", "terminated"]
    assert call.result_info.code == 0
    with pytest.raises(InvalidCallState):
        await call.mute()
    await call.drain_events()
    assert call.listener.log[-1] == ("ended",)


async def test_keepalive_automatic_and_404_ends_call(graph):
    count = {"n": 0}

    async def counting(req):
        count["n"] += 1

    graph.on("POST", "/keepAlive$", status=200, before=counting)
    call = Call(graph.api, CALL_ID, resource=m.Call(id=CALL_ID, state="establishing"),
                listener=Events(), keepalive_interval_s=0.02)
    for n in notes("answer.appHosted.notification.established.json"):
        await call.handle_notification(n)
    while count["n"] < 3:
        await asyncio.sleep(0.01)
    graph.on("POST", "/keepAlive$", status=404, body={"error": {"code": "NotFound", "message": "gone"}})
    await asyncio.wait_for(call.wait_terminated(), 5)
    assert call.is_terminated and call.keepalives_sent >= 3
    await call.close()


async def test_tones_and_content_sharing_events(graph):
    call = make_call(graph)
    for n in notes("tone.notification.json"):
        await call.handle_notification(n)
    for name in ("createCall.notification.contentSharingStarted.json", "createCall.notification.contentSharingEnded.json"):
        for n in notes(name):
            await call.handle_notification(n)
    await call.drain_events()
    assert ("tone", "tone1") in call.listener.log
    assert call.last_tone.sequence_id == 1
    assert [e for e in call.listener.log if e[0] == "sharing"] == [("sharing", "created"), ("sharing", "deleted")]
    assert call.content_sharing_sessions == {}


async def test_update_metadata_posts_the_documented_beta_call_action_and_returns_on_202(graph):
    location = graph.url(f"/beta/communications/calls/{CALL_ID}/operations/0fe0623f-d628-42ed-b4bd-8ac290072cc5")
    graph.on("POST", "/updateMetadata$", status=202, headers={"Location": location})
    call = make_call(graph)
    call.operation_timeout_s = 0.5      # nothing is awaited after the 202: no timeout either
    op = await asyncio.wait_for(call.update_metadata("metadata-value", client_context="clientContext-value"), 2)
    sent = graph.sent("/updateMetadata")
    assert sent["path"] == f"/beta/communications/calls/{CALL_ID}/updateMetadata"
    assert sent["json"] == {"metadata": "metadata-value", "clientContext": "clientContext-value"}
    assert op.id == "0fe0623f-d628-42ed-b4bd-8ac290072cc5" and op.client_context == "clientContext-value"
    assert not [r for r in graph.requests if "/participants/" in r["path"]]
    with pytest.raises(TypeError):
        await call.update_metadata({"not": "a string"})


async def test_beta_only_parameters_refused_before_sending_on_v1(graph):
    call = make_call(graph)
    graph.on("POST", "/playPrompt$", body=example("playPrompt.response.json"))
    with pytest.raises(ValueError, match="loop.*beta"):
        await call.play_prompt(["https://cdn.contoso.com/beep.wav"], loop=True)
    incoming = make_call(graph, state="incoming")
    for kw in ({"mask_callee": True}, {"mask_caller": False}):
        with pytest.raises(ValueError, match="mask.*beta"):
            await incoming.redirect([m.IdentitySet.of_user("u1")], wait=False, **kw)
    assert graph.requests == []                       # nothing was sent


async def test_beta_only_parameters_sent_when_the_bot_uses_beta(graph):
    from bot.graph.api import CallsApi
    from bot.graph.client import GraphClient
    from bot.graph.auth import StaticTokenProvider

    client = GraphClient(token_provider=StaticTokenProvider("t"), base_url=graph.url("/beta"))
    try:
        call = Call(CallsApi(client), CALL_ID, resource=m.Call(id=CALL_ID, state="incoming"),
                    keepalive_interval_s=None)
        graph.on("POST", "/redirect$", status=202)
        await call.redirect([m.IdentitySet.of_user("u1")], mask_callee=True, wait=False)
        sent = graph.sent("/redirect")
        assert sent["path"].startswith("/beta/") and sent["json"]["maskCallee"] is True
    finally:
        await client.close()


@pytest.mark.parametrize("kwargs,match", [
    ({"callback_uri": "http://bot.contoso.com/api/calls"}, "https"),
    ({"callback_uri": "callbackUri-value"}, "https"),
    ({"accepted_modalities": ["hologram"]}, "modalities"),
    ({"accepted_modalities": "audio"}, "modalities"),
    ({"accepted_modalities": []}, "modalities"),
    ({"accepted_modalities": ["data"]}, "modalities"),          # requestable, not acceptable
    ({"media_config": m.MediaConfig()}, "mediaConfig"),          # the abstract type
])
async def test_answer_refuses_what_graph_refuses_before_sending(graph, kwargs, match):
    call = make_call(graph, state="incoming")
    graph.on("POST", "/answer$", status=202)
    with pytest.raises(ValueError, match=f"(?i){match}"):
        await call.answer(wait=False, **kwargs)
    assert graph.requests == []
    await call.answer(wait=False, callback_uri="http://127.0.0.1:9441/api/calls")   # a local emulator's bot
    assert graph.sent("/answer")["json"]["callbackUri"] == "http://127.0.0.1:9441/api/calls"


async def test_create_call_refuses_unknown_modalities_and_http_callbacks(graph):
    body = m.Call.parse(example("createCall.p2p.serviceHosted.request.json"))
    for change in ({"requested_modalities": ["audio", "smell"]}, {"callback_uri": "http://bot.contoso.com/cb"},
                   {"requested_modalities": "audio"}, {"media_config": None}):
        bad = m.Call.parse(body.to_dict())
        for attr, value in change.items():
            setattr(bad, attr, value)
        with pytest.raises(ValueError):
            await graph.api.create_call(bad)
    assert graph.requests == []


async def test_parameters_and_call_properties_graph_does_not_define_are_refused(graph):
    call = make_call(graph)
    body = m.PlayPromptRequest(prompts=[m.MediaPrompt.of_uri("https://cdn.contoso.com/beep.wav")])
    body.extra["volume"] = 11
    with pytest.raises(ValueError, match="volume"):
        await graph.api.play_prompt(CALL_ID, body)
    new = m.Call.parse(example("createCall.p2p.serviceHosted.request.json"))
    new.ringing_timeout_in_seconds = 30                     # a beta-only call property
    with pytest.raises(ValueError, match="ringingTimeoutInSeconds"):
        await graph.api.create_call(new)
    new = m.Call.parse(example("createCall.p2p.serviceHosted.request.json"))
    new.extra["colour"] = "blue"
    with pytest.raises(ValueError, match="colour"):
        await graph.api.create_call(new)
    assert graph.requests == [] and call.id == CALL_ID


def tone_note(seq: int | None, tone: str) -> m.CommsNotification:
    info = {"@odata.type": "#microsoft.graph.toneInfo", "tone": tone}
    if seq is not None:
        info["sequenceId"] = seq
    return m.CommsNotification.parse({
        "@odata.type": "#microsoft.graph.commsNotification", "changeType": "updated",
        "resourceUrl": f"/communications/calls/{CALL_ID}",
        "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "established", "toneInfo": info}})


def tones_seen(call) -> list[str]:
    return [e[1] for e in call.listener.log if e[0] == "tone"]


async def test_tones_reordered_and_repeated_reach_the_handler_in_order_once(graph):
    call = make_call(graph)
    # keys 1, 2, 3, # arriving as 3, 2, 1, # with redeliveries in between
    for seq, tone in [(3, "tone3"), (2, "tone2"), (3, "tone3"), (1, "tone1"), (2, "tone2"), (4, "pound"),
                      (1, "tone1"), (4, "pound")]:
        await call.handle_notification(tone_note(seq, tone))
    await call.drain_events()
    assert tones_seen(call) == ["tone1", "tone2", "tone3", "pound"]
    assert call.tones.duplicates == 4 and call.last_tone.sequence_id == 4
    await call.handle_notification(tone_note(2, "tone2"))        # much later: still a duplicate
    await call.drain_events()
    assert tones_seen(call) == ["tone1", "tone2", "tone3", "pound"]


async def test_a_tone_gap_is_waited_for_a_bounded_time_then_given_up(graph):
    call = make_call(graph, tone_gap_wait_s=0.1)
    await call.handle_notification(tone_note(1, "tone1"))
    await call.handle_notification(tone_note(3, "tone3"))        # 2 is missing
    await call.handle_notification(tone_note(4, "tone4"))
    await call.drain_events()
    assert tones_seen(call) == ["tone1"]                          # 3 and 4 wait for 2 ...
    await call.handle_notification(tone_note(2, "tone2"))         # ... which comes in time
    await call.drain_events()
    assert tones_seen(call) == ["tone1", "tone2", "tone3", "tone4"]
    await call.handle_notification(tone_note(6, "tone6"))         # 5 never comes
    await asyncio.sleep(0.05)
    assert tones_seen(call) == ["tone1", "tone2", "tone3", "tone4"]
    await asyncio.sleep(0.15)
    await call.drain_events()
    assert tones_seen(call) == ["tone1", "tone2", "tone3", "tone4", "tone6"]
    assert call.tones.gaps_skipped == 1
    await call.handle_notification(tone_note(5, "tone5"))         # too late now
    await call.drain_events()
    assert tones_seen(call)[-1] == "tone6" and call.tones.late == 1


async def test_tones_waiting_for_a_gap_come_before_the_end_of_the_call(graph):
    call = make_call(graph, tone_gap_wait_s=30)
    await call.handle_notification(tone_note(2, "tone2"))         # 1 missing: waits
    for n in notes("delete.notification.terminated.json"):
        n.resource_url = f"/communications/calls/{CALL_ID}"
        await call.handle_notification(n)
    await call.drain_events()
    kinds = [e[0] for e in call.listener.log]
    assert tones_seen(call) == ["tone2"] and kinds.index("tone") < kinds.index("ended")


async def test_a_sequence_starting_below_one_is_still_in_order(graph):
    call = make_call(graph, tone_gap_wait_s=5)
    for seq, tone in [(0, "tone0"), (2, "tone2"), (1, "tone1")]:
        await call.handle_notification(tone_note(seq, tone))
    await call.drain_events()
    assert tones_seen(call) == ["tone0", "tone1", "tone2"]


async def test_tones_without_a_sequence_id_are_delivered_as_they_come(graph):
    call = make_call(graph)
    for tone in ("tone1", "tone1", "pound"):
        await call.handle_notification(tone_note(None, tone))
    await call.drain_events()
    assert tones_seen(call) == ["tone1", "tone1", "pound"]


def test_a_state_that_is_not_a_string_is_refused():
    sm = CallStateMachine("incoming")
    assert sm.apply(["established"]) == Transition.INVALID
    assert sm.apply({"a": 1}) == Transition.INVALID
    assert sm.state == "incoming" and sm.invalid_transitions == 2


async def test_handler_awaiting_an_operation_does_not_deadlock(graph):
    """A user handler that awaits an operation is not blocking the notification that completes it."""
    graph.on("POST", "/playPrompt$", body=example("playPrompt.response.json"))
    results = []

    class Listener(Events):
        async def call_state_changed(self, call, old, new):
            if new == "established":
                results.append(await call.play_prompt(["https://cdn.contoso.com/beep.wav"]))

    call = Call(graph.api, CALL_ID, resource=m.Call(id=CALL_ID, state="establishing"),
                listener=Listener(), keepalive_interval_s=None)
    for n in notes("answer.appHosted.notification.established.json"):
        await call.handle_notification(n)
    await asyncio.sleep(0.05)
    for n in notes("playPrompt.notification.completed.json"):
        await call.handle_notification(n)
    await asyncio.wait_for(call.drain_events(), 5)
    assert results and results[0].status == "completed"


async def test_p2p_escalated_to_group_refreshes_roster_by_get(graph):
    graph.on("GET", "/participants$", body=example("participants.list.response.json"))
    call = make_call(graph)
    assert not call.is_group_call
    escalated = m.CommsNotification.parse({
        "changeType": "updated", "resourceUrl": f"/communications/calls/{CALL_ID}",
        "resourceData": {"@odata.type": "#microsoft.graph.call", "state": "established",
                         "chatInfo": {"threadId": "19:meeting_x@thread.v2", "messageId": "0"}}})
    await call.handle_notification(escalated)
    assert call.is_group_call and call.escalated
    for _ in range(500):
        if len(call.roster) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(call.roster) == 2 and graph.sent("/participants", method="GET")
    await call.drain_events()
    assert ("roster", 2, 0, 0) in call.listener.log
    await call.close()


async def test_transfer_failure_before_transferring_is_reported(graph):
    graph.on("POST", "/transfer$", status=202)
    call = make_call(graph)
    task = asyncio.create_task(call.transfer(m.IdentitySet.of_user("x")))
    await asyncio.sleep(0.05)
    for n in notes("transfer.consultative.notification.failed.json"):    # no transferring first
        await call.handle_notification(n)
    with pytest.raises(OperationFailed) as info:
        await asyncio.wait_for(task, 5)
    assert info.value.result_info.subcode == 7700

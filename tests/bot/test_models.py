"""Every documented payload parses into the models and serializes back to its documented shape."""

from __future__ import annotations

import copy
import json
import urllib.parse

import pytest

from bot.graph import models as m
from tests.bot.conftest import example, example_names

# Bodies without a top-level @odata.type: the model each one is (by file-name prefix).
UNTYPED = {
    "answer.": m.AnswerRequest,
    "reject.busy.request": m.RejectRequest,
    "reject.none.request": m.RejectRequest,
    "redirect.": m.RedirectRequest,
    "transfer.": m.TransferRequest,
    "mute.request": m.ClientContextRequest,
    "unmute.request": m.ClientContextRequest,
    "participant.mute.request": m.ClientContextRequest,
    "subscribeToTone.request": m.ClientContextRequest,
    "cancelMediaProcessing.request": m.ClientContextRequest,
    "updateRecordingStatus.request": m.UpdateRecordingStatusRequest,
    "changeScreenSharingRole.request": m.ChangeScreenSharingRoleRequest,
    "invite.": m.InviteParticipantsRequest,
    "beta.muteAll.request": m.MuteAllRequest,
    "playPrompt.request": m.PlayPromptRequest,
    "recordResponse.request": m.RecordResponseRequest,
    "sendDtmfTones.request": m.SendDtmfTonesRequest,
    "participants.list.response": m.ParticipantCollection,
}
NOT_GRAPH_OBJECTS = {"beta.createCall.appHosted.blob.json", "callbackAuth.token.claims.json"}


def model_for(name: str, body: dict) -> m.GraphObject:
    if "@odata.type" in body:
        return m.parse(body)
    for prefix, cls in UNTYPED.items():
        if name.startswith(prefix):
            return cls.parse(body)
    raise AssertionError(f"no model for untyped example {name}")


def documented_canonical(value):
    """Apply the documented quirk fixes (tests/fixtures/graph/README.md) to an example:
    ``subCode`` -> ``subcode``, string ``code`` -> int, operation status ``Running`` -> ``running``."""
    if isinstance(value, list):
        return [documented_canonical(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        if k == "subCode":
            k = "subcode"
        if k in ("code", "subcode") and isinstance(v, str) and v.lstrip("-").isdigit():
            v = int(v)
        if k == "status" and v in ("Running", "Completed", "Failed", "NotStarted"):
            v = v[0].lower() + v[1:]
        out[k] = documented_canonical(v)
    return out


GRAPH_EXAMPLES = [n for n in example_names() if n not in NOT_GRAPH_OBJECTS]


def test_examples_are_present():
    assert len(GRAPH_EXAMPLES) >= 130


@pytest.mark.parametrize("name", GRAPH_EXAMPLES)
def test_example_round_trips_to_documented_shape(name):
    body = example(name)
    obj = model_for(name, body)
    assert isinstance(obj, m.GraphObject)
    assert obj.to_dict() == documented_canonical(body)
    # and the serialized form is stable
    again = type(obj).parse(obj.to_dict())
    assert again.to_dict() == obj.to_dict()


@pytest.mark.parametrize("name", [n for n in GRAPH_EXAMPLES if ".notification" in n])
def test_every_notification_dispatches(name):
    notes = m.CommsNotifications.parse(example(name))
    assert notes.value, name
    for note in notes.value:
        assert note.change_type in ("created", "updated", "deleted")
        assert note.call_id
        assert note.kind in ("call", "participants", "operation", "contentSharing")


def test_quirks_documented_in_examples():
    tr = m.CommsNotifications.parse(example("transfer.notification.failed.json")).value[0]
    assert tr.resource_data.result_info.subcode == 7000     # subCode spelling
    assert tr.resource_data.replaces_context == "<replacesContext>"   # unknown member kept
    dl = m.CommsNotifications.parse(example("delete.notification.terminated.json")).value[0]
    assert dl.resource_data.result_info.code == 0           # "0" as a string
    inv = m.parse(example("invite.response.json"))
    assert isinstance(inv, m.InviteParticipantsOperation) and inv.status == "running"
    roster = m.CommsNotifications.parse(example("invite.multiple.notification.roster.json")).value[0]
    assert roster.kind == "participants"                     # URL says /operations/participants
    assert isinstance(roster.resource_data[0].info, m.InvitationParticipantInfo)
    op = m.CommsNotifications.parse(example("invite.multiple.notification.operationCompleted.json")).value[0]
    assert op.kind == "operation" and op.operation_id is None
    rec = m.CommsNotifications.parse(example("recordResponse.notification.completed.json")).value[0]
    assert m.id_key(rec.operation_id) == m.id_key("0FE0623FD62842EDB4BD8AC290072CC5")
    assert rec.resource_data.recording_access_token == "<access-token>"
    pbr = m.CommsNotifications.parse(example("incoming.policyBasedRecording.notification.json")).value[0]
    assert pbr.resource_data.meeting_info.token == "join token"
    assert pbr.resource == "/app/calls/e71f0300-9c1f-4d99-b5f4-2722e877d497"
    assert pbr.resource_data.source.extra == {"id": "90fad2ce-8989-41a1-8a66-f6636e629a2a"}
    started = m.CommsNotifications.parse(example("answer.appHosted.notification.contentSharingStarted.json")).value[0]
    assert started.resource_data is None and started.kind == "contentSharing"


def test_odata_type_case_insensitive_and_without_hash():
    body = example("tone.notification.json")
    variant = json.loads(json.dumps(body).replace("#microsoft.graph.call", "#Microsoft.Graph.Call")
                         .replace("#microsoft.graph.toneInfo", "microsoft.graph.toneinfo")
                         .replace("#microsoft.graph.commsNotifications", "#Microsoft.Graph.CommsNotifications"))
    notes = m.parse(variant)
    assert isinstance(notes, m.CommsNotifications)
    call = notes.value[0].resource_data
    assert isinstance(call, m.Call) and isinstance(call.tone_info, m.ToneInfo)
    assert call.tone_info.tone == "tone1"
    # serialized back in the documented form
    assert notes.to_dict() == body


def test_enum_casing_tolerated():
    assert m.RejectRequest.parse({"reason": "Busy"}).to_dict() == {"reason": "busy"}
    assert m.Call.parse({"state": "Established"}).state == "established"
    assert m.Call.parse({"state": "TRANSFERACCEPTED"}).state == "transferAccepted"
    # unknown enum values are kept, never raise
    assert m.Call.parse({"state": "someFutureState"}).state == "someFutureState"


def test_resource_only_and_untyped_resource_data():
    """Early beta payloads: only `resource`, no @odata.type anywhere."""
    body = {"value": [{"changeType": "Updated", "resource": "/app/calls/abc/participants",
                       "resourceData": [{"id": "p1", "isMuted": True,
                                         "mediaStreams": [{"sourceId": "7", "mediaType": "Audio"}]}]}]}
    notes = m.CommsNotifications.parse(body)
    note = notes.value[0]
    assert note.change_type == "updated" and note.call_id == "abc" and note.kind == "participants"
    part = note.resource_data[0]
    assert isinstance(part, m.Participant) and part.media_streams[0].media_type == "audio"
    assert "@odata.type" not in note.to_dict()["resourceData"][0]


def test_resource_data_single_object_on_roster_url_is_kept_as_object():
    body = {"value": [{"changeType": "updated", "resourceUrl": "/communications/calls/c1/participants",
                       "resourceData": {"@odata.type": "#microsoft.graph.deltaParticipants",
                                        "sequenceNumber": 4, "participants": [{"id": "p"}]}}]}
    note = m.CommsNotifications.parse(body).value[0]
    assert isinstance(note.resource_data, m.DeltaParticipants)
    assert note.resource_data.participants[0].id == "p" and note.kind == "participants"
    assert note.to_dict()["resourceData"]["sequenceNumber"] == 4


def test_wrong_json_types_never_raise():
    call = m.Call.parse({"state": 5, "targets": "x", "source": [], "resultInfo": {"code": "abc"}})
    assert call.state == 5 and call.targets == "x" and call.source == []
    assert call.result_info.code == "abc"
    assert call.to_dict() == {"state": 5, "targets": "x", "source": [], "resultInfo": {"code": "abc"}}


def test_constructed_models_serialize_documented_shape():
    call = m.Call(
        callback_uri="https://bot.contoso.com/callback",
        targets=[m.InvitationParticipantInfo(identity=m.IdentitySet.of_user(
            "112f7296-5fa4-42ca-bae8-6a692b15d4b8", "John"))],
        requested_modalities=["audio"],
        call_options=m.OutgoingCallOptions(is_content_sharing_notification_enabled=True),
        media_config=m.ServiceHostedMediaConfig())
    assert call.to_dict() == example("createCall.p2p.serviceHosted.callOptions.request.json")


def test_unknown_odata_type_kept_verbatim():
    body = {"@odata.type": "#microsoft.graph.participantJoiningNotification", "call": {"id": "x"}}
    assert m.parse(body) == body   # untyped for us: stays a dict
    note = m.CommsNotification.parse({"changeType": "created", "resourceUrl": "/communications/calls/x",
                                      "resourceData": body})
    assert note.to_dict()["resourceData"] == body


TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ORGANIZER = "550fae72-d251-43ec-868c-373732c2704f"


def test_join_url_decoding():
    thread = "19:meeting_Win6Ydo4wsMijFjZS00ZGVjLTk5MGUtOTRjNWY2NmNkYTFm@thread.v2"
    ctx = json.dumps({"Tid": TENANT, "Oid": ORGANIZER})
    url = ("https://teams.microsoft.com/l/meetup-join/" + urllib.parse.quote(thread, safe="")
           + "/0?context=" + urllib.parse.quote(ctx, safe=""))
    chat, meeting, tenant = m.parse_join_url(url)
    assert chat.thread_id == thread and chat.message_id == "0"
    assert tenant == TENANT
    assert meeting.to_dict() == {
        "@odata.type": "#microsoft.graph.organizerMeetingInfo",
        "organizer": {"@odata.type": "#microsoft.graph.identitySet",
                      "user": {"@odata.type": "#microsoft.graph.identity", "id": ORGANIZER,
                               "tenantId": TENANT}},
        "allowConversationWithoutHost": True}


def test_join_url_channel_meeting_and_join_meeting_id():
    ctx = urllib.parse.quote(json.dumps({"Tid": TENANT, "Oid": ORGANIZER, "MessageId": "1533758867081"}))
    url = f"https://teams.microsoft.com/l/meetup-join/19%3acbee7c1c860e465f8258e3cebf7bee0d%40thread.skype/1533758867081?context={ctx}"
    chat, meeting, _ = m.parse_join_url(url)
    assert chat.thread_id == "19:cbee7c1c860e465f8258e3cebf7bee0d@thread.skype"
    assert chat.message_id == "1533758867081" and chat.reply_chain_message_id == "1533758867081"
    chat, meeting, tenant = m.parse_join_url("https://teams.microsoft.com/meet/3349484589?p=Xyz123")
    assert chat is None and tenant is None
    assert meeting.to_dict() == {"@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo",
                                 "joinMeetingId": "3349484589", "passcode": "Xyz123"}


@pytest.mark.parametrize("url", [
    "not a url", "https://teams.microsoft.com/l/meetup-join/19%3ax%40thread.v2/0",
    "https://teams.microsoft.com/l/meetup-join/19%3ax%40thread.v2/0?context=%7bbad",
    "https://teams.microsoft.com/l/meetup-join/19%3ax%40thread.v2/0?context=%7b%22Tid%22%3a%22t%22%7d",
    "https://example.com/other/path",
])
def test_join_url_errors(url):
    with pytest.raises(m.JoinUrlError):
        m.parse_join_url(url)


def test_id_key_matches_notification_and_body_forms():
    assert m.id_key("0FE0623FD62842EDB4BD8AC290072CC5") == m.id_key("0fe0623f-d628-42ed-b4bd-8ac290072cc5")


def test_models_are_independent_copies():
    body = example("joinMeeting.serviceHosted.request.json")
    before = copy.deepcopy(body)
    call = m.parse(body)
    call.chat_info.message_id = "1"
    assert body == before

"""Roster from roster notifications: full, partial, delta; the media source map."""

from __future__ import annotations

from bot.graph import models as m
from bot.roster import Roster
from tests.bot.conftest import example


def notes(name: str) -> list[m.CommsNotification]:
    return m.CommsNotifications.parse(example(name)).value


def test_roster_from_join_and_source_map():
    r = Roster()
    join = notes("joinMeeting.serviceHosted.notification.roster.json")[0]
    change = r.apply(join.resource_data, my_participant_id="05491616-385f-44a8-9974-18cc5f9933c1")
    assert len(change.added) == 2 and len(r) == 2
    john = r.get("0d7664b6-6432-43ed-8d27-d9e7adec188c")
    assert john.display_name == "John"
    assert {k: p.id for k, p in r.source_map.items()} == {
        "1": john.id, "2": john.id, "8": john.id, "10": "05491616-385f-44a8-9974-18cc5f9933c1"}
    assert r.participant_for_source(8) is john
    # the same roster again changes nothing
    assert not r.apply(join.resource_data, my_participant_id="05491616-385f-44a8-9974-18cc5f9933c1")


def test_partial_roster_updates_and_full_roster_removes():
    r = Roster()
    me = "05491616-385f-44a8-9974-18cc5f9933c1"
    r.apply(notes("joinMeeting.serviceHosted.notification.roster.json")[0].resource_data, my_participant_id=me)
    # a partial update (bot not included): upsert only
    muted = notes("participant.mute.notification.roster.json")[0].resource_data
    change = r.apply(muted, my_participant_id=me)
    assert [p.id for p in change.added] == ["2765eb15-01f8-47c6-b12b-c32111a4a86f"] and len(r) == 3
    # a full roster (contains the bot) without John: John left
    bot_only = [p for p in notes("joinMeeting.serviceHosted.notification.roster.json")[0].resource_data if p.id == me]
    change = r.apply(bot_only, my_participant_id=me)
    assert {p.id for p in change.removed} == {"0d7664b6-6432-43ed-8d27-d9e7adec188c",
                                               "2765eb15-01f8-47c6-b12b-c32111a4a86f"}
    assert set(r.source_map) == {"10"}


def test_update_detected_and_invite_placeholder_replaced():
    r = Roster(mode="partial")
    placeholder = notes("invite.notification.roster.json")[0].resource_data   # id null
    assert len(r.apply(placeholder).added) == 1
    joined = m.Participant.parse(placeholder[0].to_dict() | {"id": "new-id"})
    change = r.apply([joined])
    assert len(r) == 1 and r.get("new-id") is not None and change.added
    muted = m.Participant.parse(joined.to_dict() | {"isMuted": True})
    change = r.apply([muted])
    assert change.updated == [muted] and not change.added


def test_delta_roster_sequence_and_removed_state():
    r = Roster()
    p = {"@odata.type": "#microsoft.graph.participant", "id": "p1",
         "mediaStreams": [{"sourceId": "5", "mediaType": "audio"}]}
    d1 = m.DeltaParticipants.parse({"sequenceNumber": 1, "participants": [p]})
    assert r.apply(d1).added
    stale = m.DeltaParticipants.parse({"sequenceNumber": 1, "participants": [p | {"id": "p2"}]})
    assert not r.apply(stale) and len(r) == 1
    gone = m.DeltaParticipants.parse({"sequenceNumber": 2, "participants": [p | {"removedState": {"reason": "left"}}]})
    change = r.apply(gone)
    assert [x.id for x in change.removed] == ["p1"] and len(r) == 0 and r.source_map == {}



def test_delta_batches_inside_a_collection():
    r = Roster()
    body = [{"@odata.type": "#microsoft.graph.deltaParticipants", "sequenceNumber": 7,
             "participants": [{"@odata.type": "#microsoft.graph.participant", "id": "a"},
                              {"@odata.type": "#microsoft.graph.participant", "id": "b"}]}]
    note = m.CommsNotification.parse({"changeType": "updated",
                                      "resourceUrl": "/communications/calls/c/participants",
                                      "resourceData": body})
    assert note.kind == "participants"
    assert len(r.apply(note.resource_data).added) == 2 and r.sequence_number == 7

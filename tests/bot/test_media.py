"""The media seam's plain-data side: the roster's ``mediaStreams`` become the
call media's source map (documented roster bodies from tests/fixtures/graph)."""

from __future__ import annotations

import pytest

from bot.graph import models as m
from bot.media import MediaProvider, sources_of
from mediacore import Source

from .conftest import example


def roster(name: str) -> list[m.Participant]:
    note = m.CommsNotifications.parse(example(name)).value[0]
    return list(note.resource_data)


def test_documented_roster_becomes_sources():
    people = roster("joinMeeting.serviceHosted.notification.roster.json")
    bot = next(p for p in people if p.info.identity.application is not None)
    sources = sources_of(people, bot.id)
    john = next(p for p in people if p.display_name == "John")
    assert Source(1, john.id, "John", "audio", True) in sources
    # a camera and a screen-sharing stream the participant only receives are not sending
    assert Source(2, john.id, "John", "video", False) in sources
    assert Source(8, john.id, "John", "screen", False) in sources
    assert all(s.participant_id != bot.id for s in sources)


def test_the_bots_own_streams_are_left_out_only_when_known():
    people = roster("joinMeeting.serviceHosted.notification.roster.json")
    everyone = {s.participant_id for s in sources_of(people, None)}
    bot = next(p for p in people if p.info.identity.application is not None)
    assert bot.id in everyone
    assert bot.id not in {s.participant_id for s in sources_of(people, bot.id)}


@pytest.mark.parametrize("source_id", ["x", "-1", str(1 << 32), ""])
def test_unusable_source_ids_are_skipped(source_id):
    p = m.Participant(id="p1", media_streams=[m.MediaStream(media_type="audio", source_id=source_id,
                                                              direction="sendReceive")])
    assert sources_of([p]) == []


def test_sharing_follows_the_direction():
    def share(direction: str) -> list[Source]:
        p = m.Participant(id="p1", media_streams=[m.MediaStream(
            media_type="videoBasedScreenSharing", source_id="9", direction=direction)])
        return sources_of([p])

    assert share("sendOnly")[0].active and not share("inactive")[0].active


def test_the_stock_provider_satisfies_the_protocol():
    from mediacore import MediaHost

    from bot.media import CallMediaProvider

    with MediaHost(audio_workers=1) as host:
        assert isinstance(CallMediaProvider(host), MediaProvider)
    assert not isinstance(object(), MediaProvider)

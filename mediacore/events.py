"""What happens in a call's media, as frozen dataclasses.

Every event carries the call's id and a ``timestamp_100ns`` on the media
clock (``time.monotonic_ns() // 100``, the clock of the frames' timestamps).
They reach :class:`~mediacore.processor.Processor` objects (``on_event``) and
:meth:`CallMedia.events() <mediacore.callmedia.CallMedia.events>` iterators.
Participants already present when a processor starts get a
:class:`ParticipantJoined` each, so a processor never misses who is there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaEvent:
    call_id: str
    timestamp_100ns: int


@dataclass(frozen=True)
class ParticipantJoined(MediaEvent):
    participant_id: str
    display_name: str | None


@dataclass(frozen=True)
class ParticipantLeft(MediaEvent):
    participant_id: str
    display_name: str | None


@dataclass(frozen=True)
class DominantSpeakerChanged(MediaEvent):
    """The loudest active speaker changed (``participant_id`` None: nobody speaks)."""

    participant_id: str | None
    display_name: str | None
    source_id: int
    previous_participant_id: str | None


@dataclass(frozen=True)
class DtmfReceived(MediaEvent):
    """A key press received in-band (RFC 4733 telephone event), at its end."""

    participant_id: str | None
    display_name: str | None
    digit: str
    duration_ms: int


@dataclass(frozen=True)
class ScreenShareStarted(MediaEvent):
    participant_id: str
    display_name: str | None
    source_id: int


@dataclass(frozen=True)
class ScreenShareStopped(MediaEvent):
    participant_id: str
    display_name: str | None
    source_id: int


@dataclass(frozen=True)
class FramesDropped(MediaEvent):
    """A bounded queue was full: ``count`` more items were dropped from
    ``stream`` (a processor's queue or an iterator). Rate-limited: at most
    one per stream per second, carrying the count since the last one."""

    stream: str
    count: int


@dataclass(frozen=True)
class CallEnded(MediaEvent):
    reason: str


__all__ = [
    "CallEnded",
    "DominantSpeakerChanged",
    "DtmfReceived",
    "FramesDropped",
    "MediaEvent",
    "ParticipantJoined",
    "ParticipantLeft",
    "ScreenShareStarted",
    "ScreenShareStopped",
]

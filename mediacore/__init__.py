"""mediacore: mediabot's media API. It knows nothing of Microsoft Graph.

The names most programs need::

    from mediacore import MediaHost, CallMedia, Source, Processor

* :class:`MediaHost` — one per process: the engine (one UDP port), the native
  audio path, the calls;
* :class:`CallMedia` — one call's media: its configuration document, the
  source map from the roster, per-speaker and mixed audio, video per
  participant, screen sharing, sending audio, DTMF and video, statistics;
* :class:`Source` — one entry of a call's source map;
* :class:`Processor` — the unit users write (audio frames, video frames and
  events with identities), run in a thread or a worker process;
* :mod:`mediacore.events` — what happens in a call's media;
* lower layers: :class:`Engine` (SRTP/RTP sessions on one UDP socket),
  :class:`Ring` (the lock-free rings frames cross on), :class:`MediaConfig`.

The native core is ``mediacore._native`` (built with cffi from ``native/``);
nothing outside this package should import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    AuthenticationFailed,
    BadSegment,
    Malformed,
    MediacoreError,
    RecordTooLarge,
    RingClosed,
    RingEmpty,
    RingFull,
    check,
)
from .rings import Ring, RingStats

if TYPE_CHECKING:  # the same names, for type checkers (at run time they load lazily)
    from .audio.frames import AudioEvent, AudioFrame
    from .callmedia import CallMedia, CallStats, Source, StreamStats, read_audio_file, tone
    from .engine import Engine, EngineStats, ReceiveStats, SendStats, Session
    from .events import (
        CallEnded,
        DominantSpeakerChanged,
        DtmfReceived,
        FramesDropped,
        MediaEvent,
        ParticipantJoined,
        ParticipantLeft,
        ScreenShareStarted,
        ScreenShareStopped,
    )
    from .host import MediaHost
    from .mediaconfig import MediaConfig, MediaConfigError
    from .processor import AudioBatch, Processor, ProcessorContext, ProcessorRunner
    from .streams import FrameQueue
    from .video.frames import DecodedVideoFrame as VideoFrame

# names loaded on first use (they import numpy, PyAV and the engine)
_LAZY = {
    "AudioBatch": "processor",
    "AudioEvent": "audio.frames",
    "AudioFrame": "audio.frames",
    "CallEnded": "events",
    "CallMedia": "callmedia",
    "CallStats": "callmedia",
    "DominantSpeakerChanged": "events",
    "DtmfReceived": "events",
    "Engine": "engine",
    "EngineStats": "engine",
    "FrameQueue": "streams",
    "FramesDropped": "events",
    "MediaConfig": "mediaconfig",
    "MediaConfigError": "mediaconfig",
    "MediaEvent": "events",
    "MediaHost": "host",
    "ParticipantJoined": "events",
    "ParticipantLeft": "events",
    "Processor": "processor",
    "ProcessorContext": "processor",
    "ProcessorRunner": "processor",
    "ReceiveStats": "engine",
    "ScreenShareStarted": "events",
    "ScreenShareStopped": "events",
    "SendStats": "engine",
    "Session": "engine",
    "Source": "callmedia",
    "StreamStats": "callmedia",
    "VideoFrame": "video.frames",
    "read_audio_file": "callmedia",
    "tone": "callmedia",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mediacore' has no attribute {name!r}")
    import importlib

    mod = importlib.import_module(f".{module}", __name__)
    value = getattr(mod, "DecodedVideoFrame" if name == "VideoFrame" else name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AudioBatch",
    "AudioEvent",
    "AudioFrame",
    "AuthenticationFailed",
    "BadSegment",
    "CallEnded",
    "CallMedia",
    "CallStats",
    "DominantSpeakerChanged",
    "DtmfReceived",
    "Engine",
    "EngineStats",
    "FrameQueue",
    "FramesDropped",
    "Malformed",
    "MediaConfig",
    "MediaConfigError",
    "MediaEvent",
    "MediaHost",
    "MediacoreError",
    "ParticipantJoined",
    "ParticipantLeft",
    "Processor",
    "ProcessorContext",
    "ProcessorRunner",
    "ReceiveStats",
    "RecordTooLarge",
    "Ring",
    "RingClosed",
    "RingEmpty",
    "RingFull",
    "RingStats",
    "ScreenShareStarted",
    "ScreenShareStopped",
    "SendStats",
    "Session",
    "Source",
    "StreamStats",
    "VideoFrame",
    "check",
    "read_audio_file",
    "tone",
]

"""Audio frames and events as they come out of the native audio graph.

Ring record layout (documented in mediacore.h, ``mc_audio_frame_header``):
an 80-byte header then 320 int16 samples (16 kHz mono, 20 ms, 640 bytes).
``timestamp_100ns`` is the frame's tick on the media clock in 100-ns units:
``time.monotonic_ns() // 100`` reads the same clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._native import lib

FRAME_HEADER_DTYPE = np.dtype(
    [
        ("timestamp_100ns", "<i8"),
        ("arrival_100ns", "<i8"),
        ("sequence", "<u8"),
        ("source_id", "<u4"),
        ("rtp_timestamp", "<u4"),
        ("flags", "<u2"),
        ("active_count", "<u2"),
        ("samples", "<u2"),
        ("level", "<u2"),
        ("active_speakers", "<u4", (lib.MC_AUDIO_MAX_ACTIVE,)),
        ("tag", "<u4"),
        ("reserved", "<u4"),
    ]
)
assert FRAME_HEADER_DTYPE.itemsize == lib.MC_AUDIO_FRAME_HEADER_SIZE

#: One whole ring record: header + PCM.
FRAME_RECORD_DTYPE = np.dtype([("header", FRAME_HEADER_DTYPE), ("pcm", "<i2", (lib.MC_AUDIO_FRAME_SAMPLES,))])
FRAME_RECORD_BYTES = FRAME_RECORD_DTYPE.itemsize

EVENT_DTYPE = np.dtype(
    [
        ("timestamp_100ns", "<i8"),
        ("kind", "<u4"),
        ("source_id", "<u4"),
        ("value", "<u4"),
        ("duration", "<u4"),
        ("end", "<u4"),
        ("tag", "<u4"),
    ]
)
assert EVENT_DTYPE.itemsize == 32

MIXED = lib.MC_RECORD_AUDIO_MIXED
UNMIXED = lib.MC_RECORD_AUDIO_UNMIXED
EVENT = lib.MC_RECORD_AUDIO_EVENT

#: bits of a frame header's ``flags`` (mediacore.h, ``MC_AUDIO_FLAG_*``)
FLAG_SILENCE = lib.MC_AUDIO_FLAG_SILENCE
FLAG_CONCEALED = lib.MC_AUDIO_FLAG_CONCEALED
FLAG_FEC = lib.MC_AUDIO_FLAG_FEC

_EVENT_KINDS = {
    lib.MC_AUDIO_EVENT_DOMINANT_SPEAKER: "dominant_speaker",
    lib.MC_AUDIO_EVENT_DTMF: "dtmf",
    lib.MC_AUDIO_EVENT_SEND_LOW_WATER: "send_low_water",
    lib.MC_AUDIO_EVENT_SEND_STATE: "send_state",
    lib.MC_AUDIO_EVENT_SOURCE_ADDED: "source_added",
    lib.MC_AUDIO_EVENT_SOURCE_REMOVED: "source_removed",
}


class AudioFrame:
    """One 20 ms frame: ``pcm`` (numpy int16 view), ``bytes()``, and metadata.

    ``source_id`` is the speaker's SSRC for unmixed frames and 0 for mixed
    ones; ``rtp_timestamp`` is the sender's timestamp of the first sample
    (unmixed) or the graph's 16 kHz sample count (mixed).
    """

    __slots__ = ("_rec", "kind", "participant_id", "display_name", "call_id")

    def __init__(
        self,
        record: np.ndarray,
        kind: str,
        participant_id: str | None = None,
        display_name: str | None = None,
        call_id: str | None = None,
    ) -> None:
        self._rec = record  # 0-d structured array of FRAME_RECORD_DTYPE (owned copy)
        self.kind = kind
        #: who spoke (unmixed frames of a call whose source map names the
        #: source); None for mixed frames and unknown sources
        self.participant_id = participant_id
        self.display_name = display_name
        self.call_id = call_id

    @classmethod
    def from_bytes(cls, data, kind: str) -> AudioFrame:
        rec = np.frombuffer(bytes(data), FRAME_RECORD_DTYPE, count=1)[0]
        return cls(np.array(rec), kind)

    @property
    def pcm(self) -> np.ndarray:
        return self._rec["pcm"]

    def __bytes__(self) -> bytes:
        return self._rec["pcm"].tobytes()

    @property
    def data(self) -> bytes:
        """The 640 bytes of PCM (the Teams SDK's ``Pcm16K`` buffer)."""
        return bytes(self)

    def _h(self, name):
        return self._rec["header"][name]

    @property
    def timestamp_100ns(self) -> int:
        return int(self._h("timestamp_100ns"))

    @property
    def arrival_100ns(self) -> int:
        return int(self._h("arrival_100ns"))

    @property
    def sequence(self) -> int:
        return int(self._h("sequence"))

    @property
    def source_id(self) -> int:
        return int(self._h("source_id"))

    @property
    def rtp_timestamp(self) -> int:
        return int(self._h("rtp_timestamp"))

    @property
    def flags(self) -> int:
        return int(self._h("flags"))

    @property
    def is_silence(self) -> bool:
        return bool(self.flags & lib.MC_AUDIO_FLAG_SILENCE)

    @property
    def concealed(self) -> bool:
        return bool(self.flags & lib.MC_AUDIO_FLAG_CONCEALED)

    @property
    def fec(self) -> bool:
        return bool(self.flags & lib.MC_AUDIO_FLAG_FEC)

    @property
    def level(self) -> int:
        """RFC 6464 level (0 loud .. 127 silent)."""
        return int(self._h("level"))

    @property
    def tag(self) -> int:
        """The graph's tag: which call this frame belongs to on a shared ring."""
        return int(self._h("tag"))

    @property
    def active_speakers(self) -> list[int]:
        n = int(self._h("active_count"))
        return [int(x) for x in self._h("active_speakers")[:n]]

    def __repr__(self) -> str:
        return (
            f"<AudioFrame {self.kind} {self.display_name or self.participant_id or '-'} "
            f"source={self.source_id} seq={self.sequence} "
            f"t={self.timestamp_100ns} silence={self.is_silence} "
            f"speakers={self.active_speakers}>"
        )


@dataclass(frozen=True)
class AudioEvent:
    """``kind``: dominant_speaker (source_id = new, previous = value), dtmf
    (digit, duration, end), send_low_water (value = frames queued),
    send_state (value 0 inactive / 1 active), source_added, source_removed."""

    timestamp_100ns: int
    kind: str
    source_id: int
    value: int
    duration: int
    end: bool
    tag: int = 0

    @property
    def digit(self) -> str:
        return chr(self.value) if self.kind == "dtmf" else ""

    @classmethod
    def from_bytes(cls, data) -> AudioEvent:
        e = np.frombuffer(bytes(data), EVENT_DTYPE, count=1)[0]
        return cls(
            int(e["timestamp_100ns"]),
            _EVENT_KINDS.get(int(e["kind"]), "unknown"),
            int(e["source_id"]),
            int(e["value"]),
            int(e["duration"]),
            bool(e["end"]),
            int(e["tag"]),
        )

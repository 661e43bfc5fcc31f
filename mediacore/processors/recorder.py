"""Built-in processor ``recorder``: a call's media to files, and an index of
who was there and who spoke when.

Into the call's output folder (docs/recording.md has the whole story):

* ``mixed.ogg`` — the mix of every speaker (needs the call's mix:
  ``create_call(mixed=True)``, ``[media] mixed = true``);
* ``audio-<name>-<id>.ogg`` — each participant's own audio;
* ``video-<name>-<id>.mp4`` — each participant's camera, ``screen-<name>-<id>.mp4``
  — each screen share (H.264 in fragmented MP4);
* ``index.json`` — the files and their start offsets, joins and leaves,
  speech segments (from the frames' voice activity), rewritten every
  ``flush_s`` and at the end (``"complete": true``).

**One timeline.** Time zero is the first audio tick the recorder sees (the
media clock of the frames, ``timestamp_100ns``). Every audio file starts at
time zero and runs to the recorder's stop: a frame goes to the slot of its
tick, slots without a frame (before a participant joined, after they left,
packets lost) are silence. So every audio file has the meeting's duration and
a late joiner is silent in their own file until they join. Video files start
at their first frame (their offset is in the index); their timestamps are the
frames' sender times.

**Audio formats** (``audio_format``): ``"ogg"`` — Opus (RFC 7845) in Ogg
(RFC 3533) pages written here, encoded by the native libopus encoder
(:class:`mediacore.audio.codecs.AudioEncoder`, 16 kHz mono); ``"wav"`` — 16 kHz
mono PCM. The received Opus payloads are not passed through: the call's audio
path decodes them natively before frames reach a processor, so the recorder
re-encodes (docs/recording.md, "Passthrough").

**Video** is passed through (``video_passthrough``, the default): the
recorder asks for the received access units (``Processor.video_encoded``:
nothing is decoded for it) and muxes them as they are into fragmented MP4
(PyAV, no codec opened), the SPS/PPS of the first key frame as the track's
``avcC``, the 90 kHz RTP timestamps as the pts. When the sender's parameter
sets change (a simulcast layer of another size) the file ends and a new
segment starts (``-2``, ``-3``... noted in the index with its size). With
``video_passthrough = False`` the decoded frames are re-encoded (libx264).

**Crashes.** Every ``flush_s`` (1 s) the open Ogg pages are completed and
written, WAV headers rewritten with the sizes so far, and the index replaced
(atomically); MP4 is fragmented (``frag_keyframe+empty_moov``, a key frame a
second) and each fragment is written as it closes. So a ``kill -9`` of the
process that runs the recorder (``mode = "process"``: its worker) leaves
files that play up to about ``flush_s`` before it.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..audio.codecs import FRAME_100NS, FRAME_SAMPLES, SAMPLE_RATE_HZ, AudioEncoder, Codec
from ..audio.frames import FLAG_SILENCE, MIXED
from ..events import (
    CallEnded,
    DominantSpeakerChanged,
    MediaEvent,
    ParticipantJoined,
    ParticipantLeft,
    ScreenShareStarted,
    ScreenShareStopped,
)
from ..processor import AudioBatch, Processor, ProcessorContext
from ..video.frames import DecodedVideoFrame
from ..video.h264_rtp import EncodedVideoFrame

FORMATS = ("ogg", "wav")
#: Opus in Ogg counts granules at 48 kHz whatever the input rate (RFC 7845 section 4)
OPUS_GRANULE_RATE = 48000
GRANULES_PER_FRAME = FRAME_SAMPLES * OPUS_GRANULE_RATE // SAMPLE_RATE_HZ
#: libopus's look-ahead at 16 kHz (4 ms + 2.5 ms), in 48 kHz samples: the pre-skip
OPUS_PRE_SKIP = 312
#: two speech segments of one person closer than this are one
SPEECH_GAP_100NS = 5_000_000


# ---- Ogg (RFC 3533) and Opus in Ogg (RFC 7845) ----------------------------------------------

_REVERSE_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def ogg_crc(data: bytes) -> int:
    """The Ogg page checksum: CRC-32 with polynomial 0x04c11db7, MSB first,
    initial value 0, no final XOR (RFC 3533 section 6). Computed with zlib's
    (LSB-first) CRC-32 on the bit-reversed bytes, reversed back: the same
    polynomial read the other way round, in C."""
    crc = ~zlib.crc32(data.translate(_REVERSE_BITS), 0xFFFFFFFF) & 0xFFFFFFFF
    return int(f"{crc:032b}"[::-1], 2)


def ogg_page(
    serial: int, sequence: int, granule: int, packets: list[bytes], *, bos: bool = False, eos: bool = False
) -> bytes:
    """One Ogg page holding whole ``packets`` (at most 255 lacing values)."""
    lacing = bytearray()
    for p in packets:
        lacing += b"\xff" * (len(p) // 255) + bytes([len(p) % 255])
    if len(lacing) > 255:
        raise ValueError("too many packets for one Ogg page")
    flags = (0x02 if bos else 0) | (0x04 if eos else 0)
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, sequence, 0, len(lacing)) + bytes(
        lacing
    )
    page = bytearray(header + b"".join(packets))
    struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
    return bytes(page)


class OggOpusWriter:
    """Opus packets of 20 ms into an Ogg file; a page is completed and written
    at every :meth:`flush` (and when it is full), so a reader of a file cut
    anywhere gets every page written before (Ogg pages are self-delimiting)."""

    def __init__(
        self,
        path: Path,
        *,
        input_rate: int = SAMPLE_RATE_HZ,
        pre_skip: int = OPUS_PRE_SKIP,
        vendor: str = "mediabot recorder",
    ) -> None:
        self.path = path
        self._f: IO[bytes] = open(path, "wb")
        self.serial = zlib.crc32(path.name.encode()) & 0x7FFFFFFF
        self._seq = 0
        self._granule = 0
        self._packets: list[bytes] = []
        self._lacing = 0
        head = struct.pack("<8sBBHIhB", b"OpusHead", 1, 1, pre_skip, input_rate, 0, 0)
        v = vendor.encode()
        tags = b"OpusTags" + struct.pack("<I", len(v)) + v + struct.pack("<I", 0)
        self._write(ogg_page(self.serial, self._next_seq(), 0, [head], bos=True))
        self._write(ogg_page(self.serial, self._next_seq(), 0, [tags]))
        self._f.flush()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    def _write(self, page: bytes) -> None:
        self._f.write(page)

    def write(self, packet: bytes, frames: int = 1) -> None:
        """One Opus packet of ``frames`` 20 ms frames."""
        n = len(packet) // 255 + 1
        if self._lacing + n > 255:
            self._page()
        self._packets.append(packet)
        self._lacing += n
        self._granule += GRANULES_PER_FRAME * frames

    def _page(self, eos: bool = False) -> None:
        if not self._packets and not eos:
            return
        self._write(ogg_page(self.serial, self._next_seq(), self._granule, self._packets, eos=eos))
        self._packets, self._lacing = [], 0

    def flush(self) -> None:
        self._page()
        self._f.flush()

    def close(self) -> None:
        if self._f.closed:
            return
        self._page(eos=True)
        self._f.close()


class WavWriter:
    """16 kHz mono 16-bit PCM; the RIFF and data sizes are rewritten at every
    :meth:`flush`, so a file cut after a flush is a whole WAV file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f: IO[bytes] = open(path, "wb")
        self._bytes = 0
        self._f.write(self._header())
        self._f.flush()

    def _header(self) -> bytes:
        rate, bits = SAMPLE_RATE_HZ, 16
        return struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF",
            36 + self._bytes,
            b"WAVE",
            b"fmt ",
            16,
            1,
            1,
            rate,
            rate * bits // 8,
            bits // 8,
            bits,
            b"data",
            self._bytes,
        )

    def write_pcm(self, pcm: np.ndarray) -> None:
        data = np.ascontiguousarray(pcm, "<i2").tobytes()
        self._f.write(data)
        self._bytes += len(data)

    def flush(self) -> None:
        self._f.seek(0)
        self._f.write(self._header())
        self._f.seek(0, os.SEEK_END)
        self._f.flush()

    def close(self) -> None:
        if self._f.closed:
            return
        self.flush()
        self._f.close()


_SILENCE = np.zeros(FRAME_SAMPLES, np.int16)


class _AudioTrack:
    """One audio file on the call's timeline: slot ``i`` is the 20 ms from
    ``i * 20 ms`` after time zero; missing slots are written as silence."""

    def __init__(
        self, path: Path, audio_format: str, bitrate_bps: int, complexity: int, silence_packet: bytes | None
    ) -> None:
        self.path = path
        self.next_slot = 0
        self.frames = 0  # frames of received audio written (not silence)
        if audio_format == "ogg":
            self.ogg: OggOpusWriter | None = OggOpusWriter(path)
            self.wav: WavWriter | None = None
            self.encoder: AudioEncoder | None = AudioEncoder(
                Codec.OPUS, 48000, application="voip", bitrate_bps=bitrate_bps, complexity=complexity
            )
            self.silence = silence_packet
        else:
            self.ogg, self.wav, self.encoder, self.silence = None, WavWriter(path), None, None

    def fill_to(self, slot: int) -> None:
        """Silence up to (not including) ``slot``."""
        n = slot - self.next_slot
        if n <= 0:
            return
        if self.ogg is not None:
            for _ in range(n):
                self.ogg.write(self.silence)  # type: ignore[arg-type]
        else:
            self.wav.write_pcm(np.zeros(n * FRAME_SAMPLES, np.int16))  # type: ignore[union-attr]
        self.next_slot = slot

    def write(self, slot: int, pcm: np.ndarray) -> None:
        if slot < self.next_slot:
            return  # a slot already written (never happens on one tick clock)
        self.fill_to(slot)
        if self.ogg is not None:
            self.ogg.write(self.encoder.encode(pcm))  # type: ignore[union-attr]
        else:
            self.wav.write_pcm(pcm)  # type: ignore[union-attr]
        self.next_slot = slot + 1
        self.frames += 1

    def flush(self) -> None:
        (self.ogg or self.wav).flush()  # type: ignore[union-attr]

    def close(self) -> None:
        (self.ogg or self.wav).close()  # type: ignore[union-attr]


class _VideoTrack:
    """One camera or screen share as H.264 in fragmented MP4 (PyAV, libx264):
    a fragment per key frame, a key frame a second, each fragment written
    to the file as it closes."""

    def __init__(self, path: Path, first: DecodedVideoFrame, fps: int) -> None:
        import av

        self.path = path
        self.start_100ns = first.timestamp_100ns
        self.width, self.height = first.width & ~1, first.height & ~1
        self.container = av.open(
            str(path),
            "w",
            format="mp4",
            container_options={
                "movflags": "frag_keyframe+empty_moov+default_base_moof",
                "flush_packets": "1",
            },
        )
        s = self.container.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = self.width, self.height, "yuv420p"
        s.time_base = Fraction(1, 90000)
        s.codec_context.time_base = Fraction(1, 90000)
        s.codec_context.gop_size = fps
        s.codec_context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0",
        }
        self.stream = s
        self.frames = 0
        self._last_pts = -1

    def write(self, frame: DecodedVideoFrame) -> None:
        pts = (frame.timestamp_100ns - self.start_100ns) * 9 // 1000
        if pts <= self._last_pts:
            return
        self._last_pts = pts
        f = frame.frame
        if (f.width, f.height) != (self.width, self.height) or f.format.name != "yuv420p":
            f = f.reformat(self.width, self.height, "yuv420p")
        else:
            f = f.reformat()  # a frame of its own: the decoder's may be reused
        f.pts, f.time_base = pts, self.stream.time_base
        for packet in self.stream.encode(f):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()


# ---- H.264 passthrough (Annex-B access units, ITU-T H.264 7.3.2.1) -----------------------------


def split_nals(data: bytes | memoryview) -> list[bytes]:
    """The NAL units of an Annex-B access unit (3- or 4-byte start codes)."""
    b = bytes(data)
    out: list[bytes] = []
    i = b.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        j = b.find(b"\x00\x00\x01", start)
        end = len(b) if j < 0 else j
        nal = b[start:end]
        if j >= 0 and nal.endswith(b"\x00"):  # the next start code's fourth byte
            nal = nal.rstrip(b"\x00")
        if nal:
            out.append(nal)
        i = j
    return out


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            v = (v << 1) | ((self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


_HIGH_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)


def sps_size(sps: bytes) -> tuple[int, int]:
    """Display width and height from an SPS NAL unit (seq_parameter_set_data,
    H.264 7.3.2.1.1, with the frame cropping of 7.4.2.1.1)."""
    b = _Bits(sps[1:].replace(b"\x00\x00\x03", b"\x00\x00"))  # emulation prevention
    profile = b.u(8)
    b.u(16)  # constraint flags, level
    b.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = b.ue()
        if chroma == 3:
            b.u(1)
        b.ue(), b.ue(), b.u(1)  # bit depths, qpprime_y_zero_transform_bypass
        if b.u(1):  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma == 3 else 8):
                if b.u(1):
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + b.se() + 256) % 256
                        last = nxt or last
    b.ue()  # log2_max_frame_num_minus4
    poc = b.ue()
    if poc == 0:
        b.ue()
    elif poc == 1:
        b.u(1), b.se(), b.se()
        for _ in range(b.ue()):
            b.se()
    b.ue(), b.u(1)  # max_num_ref_frames, gaps_in_frame_num_value_allowed_flag
    width_mbs, height_units = b.ue() + 1, b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)
    b.u(1)  # direct_8x8_inference_flag
    width, height = width_mbs * 16, (2 - frame_mbs_only) * height_units * 16
    if b.u(1):  # frame_cropping_flag
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        cx = 1 if chroma in (0, 3) else 2
        cy = (2 - frame_mbs_only) * (2 if chroma == 1 else 1)
        width -= cx * (left + right)
        height -= cy * (top + bottom)
    return width, height


def parameter_sets(unit: EncodedVideoFrame) -> bytes | None:
    """The SPS and PPS NAL units of a key frame, joined (None without an SPS)."""
    nals = [n for n in split_nals(unit.data) if n[0] & 0x1F in (7, 8)]
    if not any(n[0] & 0x1F == 7 for n in nals):
        return None
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


class _H264Track:
    """One camera or screen share, the received access units muxed as they are
    into fragmented MP4 (no codec opened): the first key frame's SPS/PPS
    become the track's ``avcC`` (the muxer takes them from the first
    packet), the pts are the RTP timestamps (90 kHz) from the first unit.
    A fragment per key frame and at least one a second (``frag_duration``),
    each written as it closes, so a file cut anywhere plays up to its last
    whole fragment."""

    def __init__(
        self, path: Path, first: EncodedVideoFrame, params: bytes, start_100ns: int, base: str, segment: int
    ) -> None:
        import av

        self.path = path
        self.base, self.segment = base, segment  # file name without the segment; 1, 2, ...
        self.params = params
        sps = next(n for n in split_nals(params) if n[0] & 0x1F == 7)
        self.width, self.height = sps_size(sps)
        self.start_100ns = start_100ns
        self.container = av.open(
            str(path),
            "w",
            format="mp4",
            container_options={
                "movflags": "frag_keyframe+empty_moov+default_base_moof",
                "frag_duration": "1000000",
                "flush_packets": "1",
            },
        )
        self.stream = self.container.add_mux_stream(
            "h264", width=self.width, height=self.height, time_base=Fraction(1, 90000)
        )
        self.frames = 0
        self._rtp0 = first.rtp_timestamp
        self._last_pts = -1

    def write(self, unit: EncodedVideoFrame) -> None:
        import av

        delta = (unit.rtp_timestamp - self._rtp0) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        pts = max(delta, self._last_pts + 1)  # strictly increasing: every access unit is kept
        self._last_pts = pts
        packet = av.Packet(bytes(unit.data))
        packet.stream = self.stream
        packet.pts = packet.dts = pts
        packet.time_base = Fraction(1, 90000)
        packet.is_keyframe = unit.key_frame
        self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        self.container.close()


@dataclass
class _Person:
    participant_id: str
    display_name: str | None
    presence: list[list[int | None]] = field(default_factory=list)  # [[joined, left], ...] 100 ns
    speech: list[list[int]] = field(default_factory=list)  # [[start, end], ...] 100 ns
    audio: _AudioTrack | None = None
    video: _VideoTrack | _H264Track | None = None
    video_first: str | None = None  # the first video file (later segments: index "files")


def _safe(name: str | None, pid: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", name or "").strip("_")[:40]
    short = re.sub(r"[^A-Za-z0-9]+", "", pid)[:8] or "x"
    return f"{base}-{short}" if base else short


class Recorder(Processor):
    """The call's audio (mixed and per participant), video and screen shares
    to files, with ``index.json``; see the module documentation.

    Options (``[[processors]] name = "recorder"``): ``audio_format`` ("ogg"
    or "wav"), ``video`` (record cameras), ``screen_share``, ``video_size``
    ([width, height] subscribed), ``fps`` (the MP4 files' nominal rate and
    key-frame interval of a re-encode), ``video_passthrough`` (True: the
    received H.264 as it is; False: decoded and re-encoded), ``mode``
    ("process" by default: a worker process;
    "thread"), ``flush_s``, ``bitrate_bps`` and ``complexity`` (Opus),
    ``report_status`` (the bot reports ``recording`` through Graph before it
    starts the recorder and ``notRecording`` after it stopped:
    bot/media.py).
    """

    audio = "both"
    video = None
    screen_share = False
    mode = "process"

    def __init__(
        self,
        audio_format: str = "ogg",
        video: bool = True,
        screen_share: bool = True,
        video_size: tuple[int, int] | list[int] = (640, 360),
        fps: int = 15,
        mode: str = "process",
        flush_s: float = 1.0,
        bitrate_bps: int = 24000,
        complexity: int = 5,
        report_status: bool = True,
        video_passthrough: bool = True,
    ) -> None:
        if audio_format not in FORMATS:
            raise ValueError(f"audio_format must be one of {', '.join(FORMATS)}, not {audio_format!r}")
        if mode not in ("process", "thread"):
            raise ValueError(f"mode must be process or thread, not {mode!r}")
        size = tuple(int(x) for x in video_size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"video_size must be [width, height], not {video_size!r}")
        if not 0.05 <= float(flush_s) <= 60:
            raise ValueError(f"flush_s must be between 0.05 and 60, not {flush_s!r}")
        if not 1 <= int(fps) <= 60:
            raise ValueError(f"fps must be between 1 and 60, not {fps!r}")
        self.audio_format = audio_format
        self.video = size if video else None
        self.screen_share = bool(screen_share)
        self.fps = int(fps)
        #: the received access units, not decoded frames (Processor.video_encoded)
        self.video_encoded = bool(video_passthrough)
        self.mode = mode
        self.flush_s = float(flush_s)
        self.bitrate_bps = int(bitrate_bps)
        self.complexity = int(complexity)
        #: read by the bot (bot/media.py): report the recording status through Graph
        self.report_recording_status = bool(report_status)
        self._reset()

    def _reset(self) -> None:
        self.dir: Path | None = None
        self.call_id = ""
        self.t0: int | None = None  # time zero, 100 ns on the media clock
        self.last_slot = -1
        self.mixed: _AudioTrack | None = None
        self.people: dict[str, _Person] = {}
        self.screens: dict[int, tuple[_Person, _VideoTrack | _H264Track]] = {}
        self.files: list[dict[str, Any]] = []
        self.dominant: list[tuple[int, str | None]] = []
        self.started_unix: float | None = None
        self.stopped_unix: float | None = None
        self._silence: bytes | None = None
        self._next_flush = 0.0
        self._stopped = False

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)  # only the options cross into a worker process
        return {
            k: v
            for k, v in d.items()
            if k
            in (
                "audio_format",
                "video",
                "screen_share",
                "fps",
                "mode",
                "flush_s",
                "bitrate_bps",
                "complexity",
                "report_recording_status",
                "video_encoded",
            )
        }

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        self._reset()

    # ---- lifetime ---------------------------------------------------------------------------

    def on_start(self, ctx: ProcessorContext) -> None:
        self.call_id = ctx.call_id
        self.dir = ctx.output_dir
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        if self.audio_format == "ogg":
            enc = AudioEncoder(
                Codec.OPUS,
                48000,
                application="voip",
                bitrate_bps=self.bitrate_bps,
                complexity=self.complexity,
            )
            for _ in range(4):  # a settled encoder's packet for digital silence
                self._silence = enc.encode(_SILENCE)
        self._next_flush = time.monotonic() + self.flush_s

    def on_stop(self) -> dict[str, Any]:
        if self._stopped:
            return self.index()
        self._stopped = True
        end = self.last_slot + 1
        if self.mixed is not None:
            self.mixed.fill_to(end)
            self.mixed.close()
        now = self._now()
        for p in self.people.values():
            if p.presence and p.presence[-1][1] is None:
                p.presence[-1][1] = now
            if p.audio is not None:
                p.audio.fill_to(end)
                p.audio.close()
            if p.video is not None:
                p.video.close()
        for _, track in self.screens.values():
            track.close()
        self.stopped_unix = time.time()
        index = self.index(complete=True)
        self._write_index(index)
        return index

    def _now(self) -> int:
        return time.monotonic_ns() // 100

    # ---- audio ------------------------------------------------------------------------------

    def _track(self, name: str) -> _AudioTrack:
        assert self.dir is not None
        if self.started_unix is None:
            self.started_unix = time.time()
        ext = "ogg" if self.audio_format == "ogg" else "wav"
        path = self.dir / f"{name}.{ext}"
        track = _AudioTrack(path, self.audio_format, self.bitrate_bps, self.complexity, self._silence)
        return track

    def _person(self, pid: str, name: str | None) -> _Person:
        p = self.people.get(pid)
        if p is None:
            p = self.people[pid] = _Person(pid, name)
        elif name and not p.display_name:
            p.display_name = name
        return p

    def on_audio_batch(self, batch: AudioBatch) -> None:
        if self._stopped or self.dir is None or not len(batch):
            return
        recs = batch.records
        header = recs["header"]
        ts = header["timestamp_100ns"]
        if self.t0 is None:
            self.t0 = int(ts.min())
        slots = ((ts - self.t0 + FRAME_100NS // 2) // FRAME_100NS).tolist()
        flags = header["flags"].tolist()
        sids = header["source_id"].tolist()
        kinds = batch.kinds.tolist()
        pcm = recs["pcm"]
        for i, slot in enumerate(slots):
            if slot < 0:
                continue
            if slot > self.last_slot:
                self.last_slot = slot
            if kinds[i] == MIXED:
                if self.mixed is None:
                    self.mixed = self._track("mixed")
                    self._file(self.mixed.path, "mixed", None, 0)
                self.mixed.write(slot, pcm[i])
                continue
            ident = batch.identity(sids[i])
            if ident is None:
                continue
            p = self._person(ident[0], ident[1])
            if p.audio is None:
                p.audio = self._track(f"audio-{_safe(p.display_name, p.participant_id)}")
                self._file(p.audio.path, "audio", p, 0)
            p.audio.write(slot, pcm[i])
            t = self.t0 + slot * FRAME_100NS
            if not flags[i] & FLAG_SILENCE:
                if p.speech and t - p.speech[-1][1] <= SPEECH_GAP_100NS:
                    p.speech[-1][1] = t + FRAME_100NS
                else:
                    p.speech.append([t, t + FRAME_100NS])
        if time.monotonic() >= self._next_flush:
            self.flush()

    def flush(self) -> None:
        """Complete and write what is buffered, and the index so far."""
        self._next_flush = time.monotonic() + self.flush_s
        if self.mixed is not None:
            self.mixed.flush()
        for p in self.people.values():
            if p.audio is not None:
                p.audio.flush()
        self._write_index(self.index())

    # ---- video ------------------------------------------------------------------------------

    def on_video(self, frame: Any) -> None:
        if self._stopped or self.dir is None or frame.participant_id is None:
            return
        if isinstance(frame, EncodedVideoFrame):
            self._passthrough(frame)
            return
        p = self._person(frame.participant_id, frame.display_name)
        if frame.kind == "screen":
            entry = self.screens.get(frame.source_id)
            if entry is None:
                name = f"screen-{_safe(p.display_name, p.participant_id)}"
                if any(e[1].path.stem == name for e in self.screens.values()):
                    name += f"-{frame.source_id}"
                track = _VideoTrack(self.dir / f"{name}.mp4", frame, self.fps)
                entry = self.screens[frame.source_id] = (p, track)
                self._file(track.path, "screen", p, frame.timestamp_100ns)
            entry[1].write(frame)
            return
        if p.video is None:
            p.video = _VideoTrack(
                self.dir / f"video-{_safe(p.display_name, p.participant_id)}.mp4", frame, self.fps
            )
            self._file(p.video.path, "video", p, frame.timestamp_100ns)
        p.video.write(frame)

    def _passthrough(self, unit: Any) -> None:
        """One received access unit (``ReceivedAccessUnit``: identity, sender time)."""
        assert self.dir is not None
        p = self._person(unit.participant_id, unit.display_name)
        screen = unit.kind == "screen"
        entry = self.screens.get(unit.source_id) if screen else None
        track = entry[1] if entry is not None else (None if screen else p.video)
        params = parameter_sets(unit) if unit.key_frame else None
        if track is None or (params is not None and params != getattr(track, "params", params)):
            if params is None:
                return  # a file starts at a key frame with its parameter sets
            base = f"{'screen' if screen else 'video'}-{_safe(p.display_name, p.participant_id)}"
            if screen and track is None and any(e[1].path.stem == base for e in self.screens.values()):
                base += f"-{unit.source_id}"
            segment = 1
            if isinstance(track, _H264Track):  # new parameter sets (a simulcast layer of another size)
                segment, base = track.segment + 1, track.base
                track.close()
            name = base if segment == 1 else f"{base}-{segment}"
            new = _H264Track(self.dir / f"{name}.mp4", unit, params, unit.timestamp_100ns, base, segment)
            info = self._file(new.path, "screen" if screen else "video", p, unit.timestamp_100ns)
            info.update(width=new.width, height=new.height, segment=segment)
            if track is not None:
                info["reason"] = (
                    "size changed"
                    if (track.width, track.height) != (new.width, new.height)
                    else "new parameter sets"
                )
            if screen:
                self.screens[unit.source_id] = (p, new)
            else:
                p.video = new
                p.video_first = p.video_first or new.path.name
            track = new
        track.write(unit)

    # ---- events -----------------------------------------------------------------------------

    def on_event(self, event: MediaEvent) -> None:
        if isinstance(event, ParticipantJoined):
            p = self._person(event.participant_id, event.display_name)
            if not p.presence or p.presence[-1][1] is not None:
                p.presence.append([event.timestamp_100ns, None])
        elif isinstance(event, ParticipantLeft):
            p = self._person(event.participant_id, event.display_name)
            if p.presence and p.presence[-1][1] is None:
                p.presence[-1][1] = event.timestamp_100ns
        elif isinstance(event, DominantSpeakerChanged):
            self.dominant.append((event.timestamp_100ns, event.participant_id))
        elif isinstance(event, (ScreenShareStarted, ScreenShareStopped, CallEnded)):
            pass  # the screen file's frames say when; the end comes with on_stop

    # ---- the index --------------------------------------------------------------------------

    def _file(self, path: Path, kind: str, p: _Person | None, start_100ns: int) -> dict[str, Any]:
        info = {
            "file": path.name,
            "kind": kind,
            "participant_id": p.participant_id if p else None,
            "display_name": p.display_name if p else None,
            "_start": start_100ns,
        }
        self.files.append(info)
        return info

    def _s(self, t: int | None) -> float | None:
        if t is None:
            return None
        return round(max(0, t - (self.t0 or t)) / 1e7, 3)

    def index(self, complete: bool = False) -> dict[str, Any]:
        """The index as it stands (``complete``: the recorder has stopped)."""
        duration = (self.last_slot + 1) * FRAME_100NS / 1e7 if self.t0 is not None else 0.0
        files = []
        for f in self.files:
            d = {k: v for k, v in f.items() if k != "_start"}
            d["start_s"] = 0.0 if f["kind"] in ("mixed", "audio") else self._s(f["_start"])
            d["format"] = (
                ("ogg-opus" if self.audio_format == "ogg" else "wav-pcm16")
                if f["kind"] in ("mixed", "audio")
                else "mp4-h264"
            )
            files.append(d)
        speakers = sorted(
            (
                {
                    "participant_id": p.participant_id,
                    "display_name": p.display_name,
                    "start_s": self._s(a),
                    "end_s": self._s(b),
                }
                for p in self.people.values()
                for a, b in p.speech
            ),
            key=lambda s: (s["start_s"], s["display_name"] or ""),
        )
        people = [
            {
                "participant_id": p.participant_id,
                "display_name": p.display_name,
                "presence": [{"joined_s": self._s(a), "left_s": self._s(b)} for a, b in p.presence],
                "audio": p.audio.path.name if p.audio else None,
                "video": p.video_first or (p.video.path.name if p.video else None),
            }
            for p in self.people.values()
        ]
        return {
            "call_id": self.call_id,
            "complete": complete,
            "audio_format": self.audio_format,
            "sample_rate_hz": SAMPLE_RATE_HZ,
            "duration_s": round(duration, 3),
            "time_zero_100ns": self.t0,
            "started_unix": self.started_unix,
            "stopped_unix": self.stopped_unix,
            "pid": os.getpid(),
            "files": files,
            "participants": people,
            "speakers": speakers,
            "dominant_speaker": [{"at_s": self._s(t), "participant_id": pid} for t, pid in self.dominant],
        }

    def _write_index(self, index: dict[str, Any]) -> None:
        if self.dir is None:
            return
        tmp = self.dir / "index.json.tmp"
        tmp.write_text(json.dumps(index, indent=1))
        os.replace(tmp, self.dir / "index.json")

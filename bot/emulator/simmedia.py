"""Pre-encoded media of simulated meeting participants.

The emulator encodes each participant's scripted media once — speech to Opus
packets (one per 20 ms slot of the meeting), the test pattern to H.264 access
units split into RTP payloads — and then only replays packets, so that a demo
or load test measures the bot, not the emulator. For key-frame requests it
also keeps an intra-only encoding of every frame: after a PLI/FIR the
conference sends intra frames until the regular stream reaches its next key
frame, so the receiver can always decode what it gets.

Video is offered in layers (simulcast, as Teams senders do): the scripted
size and half of it, so a subscription's preferred resolution picks one.
Scripted DTMF presses become RFC 4733 telephone-event packets on the
participant's audio stream (the tone replaces the audio while it sounds,
RFC 4733 2.5.1.1); scripted screen sharing is a screen-content video (a
slide with the presenter's name, 1280x720 at 5 fps) sent as the
participant's video-based screen-sharing (VBSS) stream while they share.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from bot.emulator.script import MeetingScript, Participant
from bot.emulator.synth import SAMPLE_RATE, PatternVideo, audio_track
from mediacore.audio.codecs import FRAME_SAMPLES

OPUS_PAYLOAD_TYPE = 111
OPUS_CLOCK_RATE = 48000
OPUS_TICKS_PER_FRAME = 960
H264_PAYLOAD_TYPE = 96
H264_CLOCK_RATE = 90000
MAX_RTP_PAYLOAD = 1200
AUDIO_SOURCE_BASE = 10000  # participant i: audio source id 10000 + 2i, video 10001 + 2i
MIXER_SOURCE_ID = 9999  # the conference's mixed audio stream
TELEPHONE_EVENT_PAYLOAD_TYPE = 101
SCREEN_SIZE = (1280, 720)
SCREEN_FPS = 5.0
MIN_LAYER_HEIGHT = 72  # no simulcast layer below this


@dataclass
class EncodedFrame:
    """One video frame: RTP payloads (marker on the last), timestamp, key flag."""

    rtp_timestamp: int
    payloads: list[bytes]
    key: bool


@dataclass
class EncodedVideo:
    width: int
    height: int
    fps: float
    frames: list[EncodedFrame | None]  # None: not encoded (outside a screen share)
    intra: list[EncodedFrame | None]  # the same frames, every one an IDR

    def frame_index_at(self, t_s: float) -> int:
        return int(t_s * self.fps)


@dataclass
class DtmfRtp:
    """One RFC 4733 packet: payload, RTP timestamp (from the stream start), marker."""

    payload: bytes
    rtp_timestamp: int
    marker: bool


@dataclass
class ParticipantMedia:
    participant: Participant
    index: int
    audio_source_id: int
    video_source_id: int | None
    pcm: np.ndarray  # the whole 16 kHz track (for checks)
    audio: list[bytes | None]  # Opus payload per 20 ms slot; None = not sending
    video: EncodedVideo | None = None  # the top layer (the scripted size)
    layers: list[EncodedVideo] = field(default_factory=list)  # largest first
    dtmf: dict[int, list[DtmfRtp]] = field(default_factory=dict)  # slot -> telephone events
    screen: EncodedVideo | None = None  # screen-share content (sent while sharing)

    def layer_for(self, preferred: tuple[int, int] | None) -> EncodedVideo | None:
        """The largest layer within ``preferred`` (width, height); the
        smallest when none fits; the top layer without a preference."""
        if not self.layers:
            return self.video
        if preferred is None:
            return self.layers[0]
        w, h = preferred
        for layer in self.layers:
            if layer.width <= w and layer.height <= h:
                return layer
        return self.layers[-1]

    def sharing_at(self, t_s: float) -> bool:
        return any(s.start_s <= t_s < s.end_s for s in self.participant.screen_share)


@dataclass
class MeetingMedia:
    script: MeetingScript
    participants: list[ParticipantMedia]
    mixed_audio: list[bytes | None] = field(default_factory=list)

    @property
    def slots(self) -> int:
        return int(round(self.script.duration_s * 50))

    def by_source(self) -> dict[int, ParticipantMedia]:
        out = {}
        for p in self.participants:
            out[p.audio_source_id] = p
            if p.video_source_id is not None:
                out[p.video_source_id] = p
        return out


def source_ids(index: int) -> tuple[int, int]:
    return AUDIO_SOURCE_BASE + 2 * index, AUDIO_SOURCE_BASE + 2 * index + 1


def encode_audio(pcm: np.ndarray, present: np.ndarray, bitrate_bps: int = 32000) -> list[bytes | None]:
    """Opus payloads (16 kHz mono input, in-band FEC on) per 20 ms slot."""
    from mediacore.audio.codecs import AudioEncoder, Codec

    enc = AudioEncoder(Codec.OPUS)
    enc.configure(application="voip", bitrate_bps=bitrate_bps, inband_fec=True, dtx=False)
    out: list[bytes | None] = []
    for k in range(len(pcm) // FRAME_SAMPLES):
        if not present[k]:
            out.append(None)
            continue
        out.append(enc.encode(pcm[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]))
    return out


def _x264(width: int, height: int, fps: float, gop: int, bitrate_bps: int):
    import av

    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = Fraction(1, H264_CLOCK_RATE)
    ctx.framerate = Fraction(fps).limit_denominator(1000)
    ctx.bit_rate = bitrate_bps
    ctx.thread_count = 1
    ctx.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        # SPS/PPS in-band before every IDR, fixed GOP, no scene-cut IDRs
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1:bframes=0",
    }
    return ctx


def encode_video(
    p: Participant,
    duration_s: float,
    bitrate_bps: int = 400_000,
    *,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    label: str | None = None,
    windows: list[tuple[float, float]] | None = None,
) -> EncodedVideo:
    """H.264 of the participant's test pattern (or ``label``'s) for the whole
    meeting, at ``size`` (default the scripted one), packetized. With
    ``windows`` only the frames inside them are encoded (the others are
    ``None``; each window starts with a key frame)."""
    import av

    from mediacore.video.h264_rtp import H264Packetizer

    width, height = size or (p.width, p.height)
    fps = fps or p.fps
    pattern = PatternVideo(label or p.name, width, height, fps)
    n = int(duration_s * fps)
    gop = max(1, int(round(fps)))
    regular = _x264(width, height, fps, gop, bitrate_bps)
    intra = _x264(width, height, fps, 1, bitrate_bps * 3)
    pk = H264Packetizer(max_payload=MAX_RTP_PAYLOAD, rtp_header=False)
    frames: list[EncodedFrame | None] = []
    intras: list[EncodedFrame | None] = []
    h = height
    for i in range(n):
        t = i / fps
        if windows is not None and not any(a - 1 / fps <= t < b + 1 / fps for a, b in windows):
            frames.append(None)
            intras.append(None)
            continue
        y, u, v = pattern.frame(i)
        img = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, width)
        ts = int(round(i * H264_CLOCK_RATE / fps))
        for ctx, sink in ((regular, frames), (intra, intras)):
            frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
            frame.pts = ts
            packets = ctx.encode(frame)
            if len(packets) != 1:  # zerolatency, no B-frames: one access unit per frame
                raise RuntimeError(f"encoder returned {len(packets)} packets for one frame")
            au = bytes(packets[0])
            sink.append(EncodedFrame(ts, pk.packetize(au, ts), bool(packets[0].is_keyframe)))
    return EncodedVideo(width, height, fps, frames, intras)


def layer_sizes(p: Participant) -> list[tuple[int, int]]:
    """The simulcast layers offered for a participant: the scripted size and
    half of it (even dimensions), largest first."""
    sizes = [(p.width, p.height)]
    hw, hh = (p.width // 2) & ~1, (p.height // 2) & ~1
    if hh >= MIN_LAYER_HEIGHT:
        sizes.append((hw, hh))
    return sizes


def encode_dtmf(p: Participant, slots: int, audio: list[bytes | None]) -> dict[int, list[DtmfRtp]]:
    """RFC 4733 packets (48 kHz, the Opus stream's clock) of the scripted
    presses, per 20 ms slot; the audio of the slots a tone occupies is
    removed from ``audio``."""
    from mediacore.audio.dtmf import DtmfSender

    out: dict[int, list[DtmfRtp]] = {}
    for press in p.dtmf:
        tx = DtmfSender(OPUS_CLOCK_RATE, 20)
        tx.start(press.digits, tone_ms=120, gap_ms=100)
        k = int(round(press.at_s * 50))
        while not tx.idle and k < slots:
            packets, active = tx.tick(k * OPUS_TICKS_PER_FRAME)
            if packets:
                out.setdefault(k, []).extend(DtmfRtp(q.payload, q.rtp_timestamp, q.marker) for q in packets)
            if active:
                audio[k] = None
            k += 1
    return out


def presence(p: Participant, slots: int) -> np.ndarray:
    t = np.arange(slots) * 0.02
    present = t >= p.join_s
    if p.leave_s is not None:
        present &= t < p.leave_s
    return present


_CACHE: dict[tuple, MeetingMedia] = {}
_CACHE_LOCK = threading.Lock()


def prepare_meeting(script: MeetingScript, *, video: bool = True, seed: int = 0) -> MeetingMedia:
    """Encode every participant's media once (cached per script and options)."""
    key = (script, video, seed)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
    slots = int(round(script.duration_s * 50))
    parts = []
    mix = np.zeros(slots * FRAME_SAMPLES, dtype=np.int32)
    for i, p in enumerate(script.participants):
        pcm = audio_track(p, script.duration_s, seed=seed + i)[: slots * FRAME_SAMPLES]
        pcm = np.pad(pcm, (0, slots * FRAME_SAMPLES - len(pcm)))
        mix += pcm
        here = presence(p, slots)
        audio_id, video_id = source_ids(i)
        layers = (
            [
                encode_video(
                    p,
                    script.duration_s,
                    size=sz,
                    bitrate_bps=400_000 if sz == (p.width, p.height) else 150_000,
                )
                for sz in layer_sizes(p)
            ]
            if (video and p.has_video and p.video == "pattern")
            else []
        )
        screen = (
            encode_video(
                p,
                script.duration_s,
                300_000,
                size=SCREEN_SIZE,
                fps=SCREEN_FPS,
                label=f"{p.name} - slide",
                windows=[(sh.start_s, sh.end_s) for sh in p.screen_share],
            )
            if video and p.screen_share
            else None
        )
        audio = encode_audio(pcm, here)
        dtmf = encode_dtmf(p, slots, audio)
        parts.append(
            ParticipantMedia(
                p,
                i,
                audio_id,
                video_id if layers else None,
                pcm,
                audio,
                layers[0] if layers else None,
                layers,
                dtmf,
                screen,
            )
        )
    mixed = np.clip(mix, -32768, 32767).astype(np.int16)
    anyone = np.zeros(slots, dtype=bool)
    for p in script.participants:
        anyone |= presence(p, slots)
    media = MeetingMedia(script, parts, encode_audio(mixed, anyone))
    with _CACHE_LOCK:
        _CACHE[key] = media
    return media


__all__ = [
    "AUDIO_SOURCE_BASE",
    "EncodedFrame",
    "EncodedVideo",
    "H264_CLOCK_RATE",
    "H264_PAYLOAD_TYPE",
    "MIXER_SOURCE_ID",
    "MeetingMedia",
    "OPUS_CLOCK_RATE",
    "OPUS_PAYLOAD_TYPE",
    "OPUS_TICKS_PER_FRAME",
    "ParticipantMedia",
    "SAMPLE_RATE",
    "TELEPHONE_EVENT_PAYLOAD_TYPE",
    "DtmfRtp",
    "layer_sizes",
    "prepare_meeting",
    "source_ids",
]

"""The demo bot's media side: receive every participant's audio and video
from one engine session and hand them to the processors.

Audio runs on the native path (``mediacore.audio.path``): each participant's
packets go, in arrival order, into the call's audio graph, which orders
them, keeps one frame of look-ahead (Opus FEC), decodes to 16 kHz and writes
one 20 ms frame per participant and tick into its worker's output ring;
a reader thread hands the finished frames to the transcription processor
under the speaker's name (no decoding and no per-frame queue in Python, so
nothing is dropped when the processor's host is busy: a late packet plays
late, after concealment). RFC 4733 telephone events on a participant's audio
stream come out of the graph as DTMF events. Video: a ``VideoSocket``
subscribes to each participant's camera (preferred resolution
``VIDEO_PREFERRED``) and a ``VbssSocket`` to a sharer's screen; each
subscription's native depacketizer and PyAV decoder run on a thread of their
own and the luma plane goes to the video analytics processor (screens as
``"<name>/screen"``). The subscriptions are what the bot tells the
conference (``DemoBotMedia`` publishes them in its media configuration).

Latency (``stats.latency``): see ``mediacore.audio.path`` — from a frame's
playout tick to the moment the processor gets it, beside the buffering
before the tick (``playout_delay_ms``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from mediacore.processors.transcription import SpeechTranscriber
from mediacore.processors.video_analytics import VideoAnalyzer

log = logging.getLogger(__name__)


@dataclass
class SourceInfo:
    name: str
    kind: str  # "audio" | "video" | "vbss"

    @property
    def label(self) -> str:
        """The name the processors see (a screen share: ``"<name>/screen"``)."""
        return f"{self.name}/screen" if self.kind == "vbss" else self.name


#: the camera resolution the demo bot subscribes with (the conference sends
#: the largest simulcast layer within it)
VIDEO_PREFERRED = (640, 360)


@dataclass
class ReceiverStats:
    audio_frames: dict[str, int] = field(default_factory=dict)
    concealed: dict[str, int] = field(default_factory=dict)
    video_frames: dict[str, int] = field(default_factory=dict)
    decode_errors: int = 0
    first_frame_ns: dict[str, int] = field(default_factory=dict)  # name -> first frame handed over
    speaking: dict[str, float] = field(default_factory=dict)  # name -> last time (s) with speech energy
    dtmf: list[tuple[str, str, float]] = field(default_factory=list)  # (name, digit, meeting time s)


TELEPHONE_EVENT_PT = 101


class MeetingReceiver:
    """One call's media. ``audio``: the bot's :class:`NativeAudioPath` (one
    per process); the receiver registers the call under ``tag``."""

    def __init__(self, session, sources: dict[int, SourceInfo] | None = None, *,
                 transcriber: SpeechTranscriber, analytics: VideoAnalyzer | None,
                 audio=None, tag: int = 0, clock_rate_audio: int = 48000,
                 clock_rate_video: int = 90000) -> None:
        from mediacore.audio.path import NativeAudioPath

        self.session = session
        self.sources: dict[int, SourceInfo] = {}
        self.transcriber = transcriber
        self.analytics = analytics
        self.stats = ReceiverStats()
        self.clock_rate_audio = clock_rate_audio
        self.clock_rate_video = clock_rate_video
        self._own_audio = audio is None
        if audio is None:
            audio = NativeAudioPath(self.on_frames, self.on_event, workers=1)
        self.audio = audio
        self.tag = tag
        self.call_audio = audio.add_call(tag, unmixed=True, mixed=False, events=True,
                                         payload_types={111: "opus"},
                                         telephone_event_pt=TELEPHONE_EVENT_PT,
                                         input_capacity=1 << 18)  # ~5 s of a meeting's speakers
        self._lock = threading.Lock()
        self._video_sock = None
        self._vbss_sock = None
        for ssrc, info in (sources or {}).items():
            self.add_source(ssrc, info)
        self._t0_ns = time.monotonic_ns()
        #: the meeting's time zero on the monotonic clock: frame timestamps
        #: (100-ns units) count from here
        self.epoch_ns = self._t0_ns
        self._rtp_base: dict[int, tuple[int, int]] = {}
        self._last_rtp: dict[int, int] = {}
        self.final_audio_stats = None

    @property
    def latency(self):
        return self.audio.latency

    def add_source(self, ssrc: int, info: SourceInfo) -> None:
        """Start receiving a participant's audio, video or screen (from the
        roster's media source ids); safe while the media flows."""
        from mediacore.video.sockets import VbssSocket, VideoSocket

        with self._lock:
            if ssrc in self.sources:
                return
            self.sources[ssrc] = info
        if info.kind == "audio":
            self.stats.audio_frames.setdefault(info.name, 0)
            self.stats.concealed.setdefault(info.name, 0)
            self.call_audio.add_source(self.session, ssrc, self.clock_rate_audio, direct=True)
        elif info.kind in ("video", "vbss") and self.analytics is not None:
            self.stats.video_frames.setdefault(info.label, 0)
            with self._lock:
                if info.kind == "video":
                    if self._video_sock is None:
                        self._video_sock = VideoSocket(self.session, self._on_video,
                                                       reorder_wait_ms=100)
                    sock, pref = self._video_sock, VIDEO_PREFERRED
                else:
                    if self._vbss_sock is None:
                        self._vbss_sock = VbssSocket(self.session, self._on_video,
                                                     reorder_wait_ms=100)
                    sock, pref = self._vbss_sock, None
            sock.subscribe(ssrc, pref)

    def remove_source(self, ssrc: int) -> None:
        """Stop receiving a video or screen source (left, or stopped sharing)."""
        with self._lock:
            info = self.sources.get(ssrc)
            if info is None or info.kind == "audio":
                return
            del self.sources[ssrc]
            sock = self._video_sock if info.kind == "video" else self._vbss_sock
        if sock is not None and ssrc in sock.subscriptions:
            sock.unsubscribe(ssrc)

    def video_subscriptions(self) -> dict[int, tuple[str, tuple[int, int] | None]]:
        """source id -> (kind, preferred resolution) of this call's video sockets."""
        out = {}
        for kind, sock in (("video", self._video_sock), ("vbss", self._vbss_sock)):
            if sock is not None:
                for ssrc in sock.subscriptions:
                    out[ssrc] = (kind, VIDEO_PREFERRED if kind == "video" else None)
        return out

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for sock in (self._video_sock, self._vbss_sock):
            if sock is not None:
                sock.close()
        self.final_audio_stats = self.audio.remove_call(self.tag)
        if self._own_audio:
            self.audio.close()

    def _on_video(self, frame) -> None:
        """A decoded camera or screen frame (on its subscription's thread)."""
        info = self.sources.get(frame.source_id)
        if info is None:
            return
        try:
            luma = np.array(frame.planes()[0])   # the decoder reuses its buffers
            ts_100ns = self._media_time_100ns(frame.source_id, frame.rtp_timestamp,
                                              frame.arrival_ns, self.clock_rate_video)
            self.analytics.push(info.label, luma, ts_100ns)
            self.stats.video_frames[info.label] += 1
        except Exception:
            self.stats.decode_errors += 1
            log.exception("video analytics failed")

    # ---- audio (reader thread of the native path) ------------------------------------

    def on_frames(self, frames: np.ndarray, kinds: np.ndarray, seen_ns: int) -> None:
        from mediacore._native import lib

        h = frames["header"]
        for i in range(len(frames)):
            ssrc = int(h["source_id"][i])
            info = self.sources.get(ssrc)
            if info is None:
                continue
            name = info.name
            pcm = np.array(frames["pcm"][i])   # the ring's memory is reused after this batch
            flags = int(h["flags"][i])
            rtp_ts = int(h["rtp_timestamp"][i])
            if flags & lib.MC_AUDIO_FLAG_CONCEALED:
                self.stats.concealed[name] += 1
                rtp_ts = (self._last_rtp.get(ssrc, rtp_ts) + 960) & 0xFFFFFFFF
            self._last_rtp[ssrc] = rtp_ts
            ts_100ns = self._media_time_100ns(ssrc, rtp_ts, int(h["arrival_100ns"][i]) * 100,
                                              self.clock_rate_audio)
            self.transcriber.push(name, pcm, ts_100ns)
            if not self.stats.audio_frames[name]:
                self.stats.first_frame_ns[name] = seen_ns
            self.stats.audio_frames[name] += 1
            if np.abs(pcm).mean() > 300:
                self.stats.speaking[name] = (seen_ns - self._t0_ns) / 1e9

    def on_event(self, event) -> None:
        if event.kind == "dtmf" and event.end:
            info = self.sources.get(event.source_id)
            name = info.name if info is not None else str(event.source_id)
            self.stats.dtmf.append((name, event.digit,
                                    (event.timestamp_100ns * 100 - self.epoch_ns) / 1e9))

    def _media_time_100ns(self, ssrc: int, rtp_ts: int, arrival_ns: int, clock_rate: int) -> int:
        """Sender time of a frame on the meeting clock: the first packet's
        arrival anchors the stream, later frames follow their RTP timestamps
        (so jitter does not move them)."""
        base = self._rtp_base.get(ssrc)
        if base is None:
            if not arrival_ns:
                arrival_ns = time.monotonic_ns()
            base = self._rtp_base[ssrc] = (rtp_ts, (arrival_ns - self.epoch_ns) // 100)
        delta = (rtp_ts - base[0]) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        return base[1] + delta * 10_000_000 // clock_rate

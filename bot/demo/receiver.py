"""The demo bot's media side: receive every participant's audio and video
from one engine session and hand them to the processors.

Audio runs on the native path (``bot.demo.audiopath``): each participant's
packets go, in arrival order, into the call's audio graph, which orders
them, keeps one frame of look-ahead (Opus FEC), decodes to 16 kHz and writes
one 20 ms frame per participant and tick into its worker's output ring;
a reader thread hands the finished frames to the transcription processor
under the speaker's name (no decoding and no per-frame queue in Python, so
nothing is dropped when the processor's host is busy: a late packet plays
late, after concealment). RFC 4733 telephone events on a participant's audio
stream come out of the graph as DTMF events. Video: each participant's
packets go through the reorder buffer and the RFC 6184 depacketizer (only
decodable frames come out), are decoded with PyAV and their luma plane goes
to the video analytics processor, on a thread of its own.

Latency (``stats.latency``): see ``bot.demo.audiopath`` — from a frame's
playout tick to the moment the processor gets it, beside the buffering
before the tick (``playout_delay_ms``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from mediacore.processors.transcription import TranscriptionProcessor
from mediacore.processors.video_analytics import VideoAnalyticsProcessor

log = logging.getLogger(__name__)


@dataclass
class SourceInfo:
    name: str
    kind: str  # "audio" | "video"


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
                 transcriber: TranscriptionProcessor, analytics: VideoAnalyticsProcessor | None,
                 audio=None, tag: int = 0, clock_rate_audio: int = 48000,
                 clock_rate_video: int = 90000) -> None:
        from bot.demo.audiopath import NativeAudioPath

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
                                         telephone_event_pt=TELEPHONE_EVENT_PT)
        self._video: dict[int, tuple] = {}
        self._lock = threading.Lock()
        for ssrc, info in (sources or {}).items():
            self.add_source(ssrc, info)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run_video, name="demo-video", daemon=True)
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
        """Start receiving a participant's audio or video (from the roster's
        media source ids); safe while the media flows."""
        import av

        from mediacore.video.h264_rtp import H264Depacketizer

        with self._lock:
            if ssrc in self.sources:
                return
            self.sources[ssrc] = info
        if info.kind == "audio":
            self.stats.audio_frames.setdefault(info.name, 0)
            self.stats.concealed.setdefault(info.name, 0)
            self.call_audio.add_source(self.session, ssrc, self.clock_rate_audio, direct=True)
        elif info.kind == "video" and self.analytics is not None:
            stream = self.session.add_receive_stream(ssrc, "video", self.clock_rate_video, nack=True,
                                                     pli=True, reorder_wait_ms=100)
            codec = av.CodecContext.create("h264", "r")
            codec.thread_count = 1
            self.stats.video_frames.setdefault(info.name, 0)
            with self._lock:
                self._video[ssrc] = (info.name, stream, H264Depacketizer(ssrc=ssrc), codec)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.final_audio_stats = self.audio.remove_call(self.tag)
        if self._own_audio:
            self.audio.close()

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

    # ---- video -----------------------------------------------------------------------

    def _run_video(self) -> None:
        from mediacore.video.h264_rtp import RtpPayload

        while not self._stop.is_set():
            with self._lock:
                video = list(self._video.items())
            if not video:
                self._stop.wait(0.01)
                continue
            video[0][1][1].ring.wait(timeout=0.01)
            for ssrc, (name, stream, depack, codec) in video:
                batch = stream.read_batch(256)
                if not len(batch):
                    continue
                pkts = [RtpPayload(bytes(p), int(batch.sequence_number[i]), int(batch.timestamp[i]),
                                   bool(batch.marker[i]), int(batch.arrival_ns[i]))
                        for i, p in enumerate(batch.payloads())]
                for frame in depack.push(pkts):
                    try:
                        for pkt in codec.parse(frame.data):
                            for vf in codec.decode(pkt):
                                luma = vf.to_ndarray()[: vf.height]
                                ts_100ns = self._media_time_100ns(
                                    ssrc, frame.rtp_timestamp, frame.first_arrival_ns, 90000)
                                self.analytics.push(name, luma, ts_100ns)
                                self.stats.video_frames[name] += 1
                    except Exception:
                        self.stats.decode_errors += 1
                if depack.take_key_frame_request():
                    stream.request_keyframe()

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

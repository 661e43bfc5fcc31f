"""The demo bot's media side: receive every participant's audio and video
from one engine session, decode, and hand frames to the processors.

Audio: each participant's stream goes through the engine's jitter buffer (one
record per 20 ms, concealment slots flagged), is decoded to 16 kHz and handed
to the transcription processor under the speaker's name; video: each
participant's packets go through the reorder buffer and the RFC 6184
depacketizer (only decodable frames come out), are decoded with PyAV and
their luma plane goes to the video analytics processor. One dispatcher thread
waits on the rings (GIL released) and does all of it; wire-to-processor latency
is measured from each packet's arrival time (the engine's monotonic clock) to
the moment its frame reaches a processor.
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
    latency_ns: list[int] = field(default_factory=list)
    first_frame_ns: dict[str, int] = field(default_factory=dict)  # name -> first frame handed over
    speaking: dict[str, float] = field(default_factory=dict)  # name -> last time (s) with speech energy


class MeetingReceiver:
    def __init__(self, session, sources: dict[int, SourceInfo] | None = None, *,
                 transcriber: TranscriptionProcessor, analytics: VideoAnalyticsProcessor | None,
                 clock_rate_audio: int = 48000, clock_rate_video: int = 90000) -> None:
        from mediacore.rings import Ring

        self.session = session
        self.sources: dict[int, SourceInfo] = {}
        self.transcriber = transcriber
        self.analytics = analytics
        self.stats = ReceiverStats()
        self.clock_rate_audio = clock_rate_audio
        self.clock_rate_video = clock_rate_video
        # one ring for all audio streams: the dispatcher blocks on it (GIL released)
        self._audio_ring = Ring.create(1 << 20, policy="drop")
        self._audio_reader = None
        self._audio: dict[int, tuple] = {}
        self._video: dict[int, tuple] = {}
        for ssrc, info in (sources or {}).items():
            self.add_source(ssrc, info)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-media", daemon=True)
        self._t0_ns = time.monotonic_ns()
        #: the meeting's time zero on the monotonic clock: frame timestamps
        #: (100-ns units) count from here
        self.epoch_ns = self._t0_ns
        self._rtp_base: dict[int, tuple[int, int]] = {}
        self._last_rtp: dict[int, int] = {}

    def add_source(self, ssrc: int, info: SourceInfo) -> None:
        """Start receiving a participant's audio or video (from the roster's
        media source ids); safe while the dispatcher runs."""
        from mediacore.audio.codecs import AudioDecoder, Codec
        from mediacore.video.h264_rtp import H264Depacketizer

        import av

        if ssrc in self.sources:
            return
        self.sources[ssrc] = info
        if info.kind == "audio":
            stream = self.session.add_receive_stream(ssrc, "audio", self.clock_rate_audio,
                                                     jitter_min_ms=20, jitter_max_ms=200,
                                                     ring=self._audio_ring)
            self.stats.audio_frames.setdefault(info.name, 0)
            self.stats.concealed.setdefault(info.name, 0)
            self._audio[ssrc] = (info.name, AudioDecoder(Codec.OPUS))
            self._audio_reader = self._audio_reader or stream
        elif info.kind == "video" and self.analytics is not None:
            stream = self.session.add_receive_stream(ssrc, "video", self.clock_rate_video, nack=True,
                                                     pli=True, reorder_wait_ms=100)
            codec = av.CodecContext.create("h264", "r")
            codec.thread_count = 1
            self.stats.video_frames.setdefault(info.name, 0)
            self._video[ssrc] = (info.name, stream, H264Depacketizer(ssrc=ssrc), codec)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for ssrc in list(self._audio):
            stream = self.session.receive_streams.get(ssrc)
            if stream is not None:
                stream.close()
        self._audio_ring.close()

    def _run(self) -> None:
        from mediacore.video.h264_rtp import RtpPayload

        while not self._stop.is_set():
            if self._audio_reader is not None:
                self._audio_ring.wait(timeout=0.01)
                batch = self._audio_reader.read_batch(256)
                self._on_audio(batch)
            else:
                self._stop.wait(0.01)
            for ssrc, (name, stream, depack, codec) in list(self._video.items()):
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

    def _on_audio(self, batch) -> None:
        lost = batch.lost
        ssrcs = batch.ssrc
        for i in range(len(batch)):
            entry = self._audio.get(int(ssrcs[i]))
            if entry is None:
                continue
            name, decoder = entry
            try:
                pcm = decoder.conceal() if lost[i] else decoder.decode(bytes(batch.payload(i)))
            except Exception:
                self.stats.decode_errors += 1
                continue
            now = time.monotonic_ns()
            if lost[i]:
                self.stats.concealed[name] += 1
            else:
                self.stats.latency_ns.append(now - int(batch.arrival_ns[i]))
            ssrc = int(ssrcs[i])
            rtp_ts = int(batch.timestamp[i])
            if lost[i]:  # a concealment slot: the next 20 ms after the last frame
                rtp_ts = (self._last_rtp.get(ssrc, rtp_ts) + 960) & 0xFFFFFFFF
            self._last_rtp[ssrc] = rtp_ts
            ts_100ns = self._media_time_100ns(ssrc, rtp_ts, int(batch.arrival_ns[i]), 48000)
            self.transcriber.push(name, pcm, ts_100ns)
            if not self.stats.audio_frames[name]:
                self.stats.first_frame_ns[name] = time.monotonic_ns()
            self.stats.audio_frames[name] += 1
            if pcm.size and np.abs(pcm).mean() > 300:
                self.stats.speaking[name] = (now - self._t0_ns) / 1e9

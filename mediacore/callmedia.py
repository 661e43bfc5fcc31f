"""``CallMedia``: the media of one call — what a bot receives and sends.

It knows no Graph. The signaling side gives it plain data: the call's id and
a *source map* (media source id -> participant id, display name, kind),
replaced whenever the roster changes (people join, leave, start or stop
sharing). It gives the signaling side its media configuration document
(:meth:`CallMedia.config_blob`, the ``appHostedMediaConfig.blob``).

Receive:

* audio: every speaker's own audio (``call.audio(participant_id)``) and, when
  the call was created with ``mixed=True``, the mix (``call.mixed_audio()``):
  20 ms frames of 16 kHz PCM from the host's native audio path (jitter
  buffer, Opus with FEC and concealment, the mixer: one graph per call on a
  staggered audio worker, frames handed to Python in one batch per tick);
* video: ``call.video(participant_id, size)`` subscribes to that person's
  camera at a preferred size (the remote sends the largest layer within it),
  ``call.screen_share()`` to whoever shares; no fixed cap on how many.
  Subscriptions reach the remote in the media plane (an RTCP APP packet,
  :mod:`mediacore.subscriptions`); a stream nobody reads is not subscribed,
  so it is neither decoded nor queued;
* events (:mod:`mediacore.events`): joins and leaves (with the participants
  already present first), dominant speaker, DTMF, screen sharing, drops.

Each iterator is a bounded :class:`~mediacore.streams.FrameQueue` (audio:
drop-oldest; video: latest-only) that ends when its participant leaves, the
stream is unsubscribed, or the call ends. :class:`~mediacore.processor.Processor`
objects get all of it with identities (:meth:`CallMedia.add_processor`).

Send: :meth:`CallMedia.send_audio` (PCM, paced one frame per 20 ms by the
native graph, queue bounded at ``send_queue_ms``), :meth:`play` /
:meth:`play_file` / :meth:`play_tone` (a feeder that keeps the queue topped
up; :meth:`stop_playback` for barge-in), :meth:`send_dtmf` (RFC 4733),
:meth:`send_video` (H.264 through PyAV, paced by the encoder).

Keys: the document carries the key the bot protects with and the key the
remote must protect with (``srtp.receiveKey``), so no answer document is
needed: the engine learns the remote's address from its first authentic
packet (RFC 4961 symmetric RTP).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio.codecs import FRAME_SAMPLES, SAMPLE_RATE_HZ
from .audio.frames import MIXED, UNMIXED, AudioEvent, AudioFrame
from .audio.graph import GraphStats
from .engine import ReceiveStats, SendStats, Session
from .errors import MediacoreError
from .events import (
    CallEnded,
    DominantSpeakerChanged,
    DtmfReceived,
    MediaEvent,
    ParticipantJoined,
    ParticipantLeft,
    ScreenShareStarted,
    ScreenShareStopped,
)
from .mediaconfig import MediaConfig
from .processor import (
    AudioBatch,
    Processor,
    ProcessorContext,
    ProcessorRunner,
    ProcessRunner,
    SourceIdentity,
    start_runner,
)
from .streams import FrameQueue
from .subscriptions import APP_NAME, APP_SUBTYPE, encode_subscriptions
from .video.codecs import VideoStreamStats
from .video.frames import DecodedVideoFrame

if TYPE_CHECKING:
    from .host import MediaHost

log = logging.getLogger(__name__)

KINDS = ("audio", "video", "screen")
OPUS_PAYLOAD_TYPE = 111
TELEPHONE_EVENT_PAYLOAD_TYPE = 101
H264_PAYLOAD_TYPE = 96
AUDIO_CLOCK_RATE = 48000
VIDEO_CLOCK_RATE = 90000
#: how often the current subscription list is repeated to the remote
SUBSCRIPTION_REPEAT_S = 1.0


@dataclass(frozen=True)
class Source:
    """One media source of a call: whose it is and what it carries.

    ``kind``: "audio", "video" (a camera) or "screen" (video-based screen
    sharing). ``active``: a screen source is active while its owner shares
    (Graph: the ``videoBasedScreenSharing`` stream's direction is
    ``sendOnly``); a camera or microphone source is active while present.
    """

    source_id: int
    participant_id: str
    display_name: str | None = None
    kind: str = "audio"
    active: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"source kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not 0 <= self.source_id <= 0xFFFFFFFF:
            raise ValueError(f"source id {self.source_id} is not a 32-bit unsigned integer")


@dataclass(frozen=True)
class StreamStats:
    """One receive or send stream's counters."""

    kind: str  # audio | video | screen
    direction: str  # receive | send
    source_id: int
    participant_id: str | None
    rtp: ReceiveStats | SendStats | None
    video: VideoStreamStats | None = None


@dataclass(frozen=True)
class CallStats:
    call_id: str
    streams: tuple[StreamStats, ...]
    audio: GraphStats | None
    #: receive records the audio graph's input ring had no room for
    audio_input_dropped: int
    #: items dropped per processor (queues behind) and per iterator
    dropped: dict[str, int]
    processor_errors: dict[str, int]


class _VideoConsumer:
    """Who wants one source's decoded frames: iterators and processors."""

    def __init__(self, size: tuple[int, int] | None) -> None:
        self.size = size
        self.queues: list[FrameQueue[DecodedVideoFrame]] = []
        self.processors = 0


class CallMedia:
    """The media of one call; made by :meth:`MediaHost.create_call`."""

    def __init__(
        self,
        host: MediaHost,
        call_id: str,
        tag: int,
        *,
        mixed: bool = False,
        video: bool = True,
        screen_share: bool = True,
        send_video: bool = False,
        output_dir: str | Path | None = None,
        send_queue_ms: int = 10_000,
        audio_queue_ms: int = 1000,
        send_audio: bool = True,
    ) -> None:
        self.host = host
        self.call_id = call_id
        self.tag = tag
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.audio_queue_ms = audio_queue_ms
        #: when this call's media started, on the media clock (100-ns units)
        self.epoch_100ns = _now_100ns()
        kinds = ("audio",) + (("video",) if video or send_video else ()) + (("vbss",) if screen_share else ())
        self.config = MediaConfig.generate(
            host.public_address,
            host.public_port,
            role="bot",
            kinds=kinds,
            srtp_profile=host.srtp_profile,
            call_id=call_id,
            receive_key=True,
        )
        if not send_audio:
            # a bot that only listens: its audio section is receive-only, without
            # an SSRC, and it sends no audio (no encoder, no packets)
            self.config = dataclasses.replace(
                self.config,
                media=tuple(
                    dataclasses.replace(m, direction="recvonly", ssrcs=()) if m.kind == "audio" else m
                    for m in self.config.media
                ),
            )
        #: the SSRC the bot's RTCP APP packets (video subscriptions) go out under
        self._app_ssrc = secrets.randbits(32) or 1
        srtp = self.config.srtp
        engine = host.engine
        self.session: Session = engine.add_session(
            None,
            srtp_profile=srtp.profile if srtp else None,
            tx_key=srtp.key_bytes if srtp else None,
            rx_key=srtp.receive_key_bytes if srtp else None,
            latch=True,
            cname=f"mediabot-{call_id[:16]}",
        )
        self._lock = threading.RLock()
        self._closed = False
        self._sources: dict[int, Source] = {}
        self._identity: dict[int, SourceIdentity] = {}
        self._participants: dict[str, str | None] = {}
        self._runners: list[ProcessorRunner] = []
        #: the audio entry of the call's one processor when that is all there is to
        #: feed (inline, unmixed, no mix): the reader calls it directly
        self._sole_inline: Any = None
        self._audio_queues: list[tuple[str | None, FrameQueue[AudioFrame]]] = []
        self._event_queues: list[FrameQueue[MediaEvent]] = []
        self._video: dict[int, _VideoConsumer] = {}  # camera / screen source id -> consumers
        self._screen_queues: list[FrameQueue[DecodedVideoFrame]] = []
        self._screen_size: tuple[int, int] | None = None
        self._processor_video: tuple[int, int] | None = None
        self._processor_screen = False
        self._dominant: int = 0
        self._rtp_anchor: dict[int, tuple[int, int]] = {}
        self._sub_version = 0
        self._sub_sent: tuple[int, float] = (-1, 0.0)  # (version, monotonic time)
        self._subs: dict[int, tuple[int, int] | None] = {}
        self._sub_modes: dict[int, tuple[bool, bool]] = {}  # source id -> (decode, encoded)
        self._video_socket: Any = None
        self._screen_socket: Any = None
        self._video_send: Any = None
        self._playback: _Playback | None = None
        self._final_stats: CallStats | None = None
        audio = self.config.section("audio")
        assert audio is not None
        self.audio_send = None
        if audio.sends:
            self.audio_send = self.session.add_send_stream(
                audio.ssrcs[0], OPUS_PAYLOAD_TYPE, "audio", AUDIO_CLOCK_RATE
            )
            self._app_ssrc = self.audio_send.ssrc
        self.mixed = mixed
        self._call_audio = host.audio.add_call(
            tag,
            mixed=mixed,
            unmixed=True,
            events=True,
            payload_types={OPUS_PAYLOAD_TYPE: "opus"},
            telephone_event_pt=TELEPHONE_EVENT_PAYLOAD_TYPE,
            input_capacity=1 << 18,
            on_frames=self._on_frames,
            on_event=self._on_audio_event,
            send_out=self.audio_send.ring if self.audio_send else None,
            engine=engine,
            send_queue_frames=max(50, send_queue_ms // 20),
            send_telephone_event_pt=TELEPHONE_EVENT_PAYLOAD_TYPE,
            # a new speaker's first frame plays on the tick after its first
            # packet, not a frame later; the look-ahead follows in silence
            start_frames=1,
        )
        if send_video:
            from .video.sockets import VideoSendSocket

            vsec = self.config.section("video")
            assert vsec is not None and vsec.ssrcs
            self._video_send = VideoSendSocket(self.session, vsec.ssrcs[0], payload_type=H264_PAYLOAD_TYPE)

    # ---- the signaling side ----------------------------------------------------------------

    def config_blob(self) -> str:
        """This call's media configuration document (``appHostedMediaConfig.blob``)."""
        return self.config.to_blob()

    @property
    def sources(self) -> dict[int, Source]:
        with self._lock:
            return dict(self._sources)

    @property
    def participants(self) -> dict[str, str | None]:
        """participant id -> display name, of everyone with a media source."""
        with self._lock:
            return dict(self._participants)

    def update_sources(self, sources: Iterable[Source] | Mapping[int, Source]) -> None:
        """Replace the source map (the whole current one; plain data from the
        roster). Receive streams follow it; joins, leaves and screen-sharing
        changes become events."""
        if isinstance(sources, Mapping):
            sources = sources.values()
        new = {s.source_id: s for s in sources}
        now = _now_100ns()
        events: list[MediaEvent] = []
        with self._lock:
            if self._closed:
                return
            old = self._sources
            old_people = self._participants
            people = {s.participant_id: s.display_name for s in new.values()}
            for pid, name in people.items():
                if pid not in old_people:
                    events.append(ParticipantJoined(self.call_id, now, pid, name))
            for sid, s in new.items():
                before = old.get(sid)
                if s.kind == "audio" and (before is None or before.kind != "audio"):
                    self._add_audio_source(sid)
                if s.kind == "screen":
                    was = before is not None and before.kind == "screen" and before.active
                    if s.active and not was:
                        events.append(
                            ScreenShareStarted(self.call_id, now, s.participant_id, s.display_name, sid)
                        )
                    elif was and not s.active:
                        events.append(
                            ScreenShareStopped(self.call_id, now, s.participant_id, s.display_name, sid)
                        )
            for sid, before in old.items():
                s = new.get(sid)
                if s is None or s.kind != before.kind:
                    if before.kind == "audio":
                        self._call_audio.remove_source(sid)
                    if before.kind == "screen" and before.active and s is None:
                        events.append(
                            ScreenShareStopped(
                                self.call_id, now, before.participant_id, before.display_name, sid
                            )
                        )
            for pid, name in old_people.items():
                if pid not in people:
                    events.append(ParticipantLeft(self.call_id, now, pid, name))
            self._sources = new
            self._participants = people
            self._identity = {sid: (s.participant_id, s.display_name, s.kind) for sid, s in new.items()}
            for r in self._runners:
                if isinstance(r, ProcessRunner):
                    r.sources(self._identity)
            self._end_streams_of_gone(people)
            changed = self._plan_video()
        for ev in events:
            self._emit(ev)
        if changed:
            self._apply_video()

    def _add_audio_source(self, source_id: int) -> None:
        try:
            self._call_audio.add_source(self.session, source_id, AUDIO_CLOCK_RATE, direct=True)
        except MediacoreError as e:  # e.g. the same source twice: counted by the engine
            log.warning("call %s: cannot receive audio source %d: %s", self.call_id, source_id, e)

    def _end_streams_of_gone(self, people: Mapping[str, str | None]) -> None:
        keep = []
        for pid, q in self._audio_queues:
            if pid is not None and pid not in people:
                q.close()
            else:
                keep.append((pid, q))
        self._audio_queues = keep

    # ---- audio receive (a reader thread of the host's audio path) ------------------------

    def _on_frames(self, frames: np.ndarray, kinds: np.ndarray, seen_ns: int) -> None:
        queues = self._audio_queues
        # one inline processor of unmixed audio on a call without the mix (its
        # graph writes unmixed frames only): the tick's frames go to it as they are
        sole = self._sole_inline
        if sole is not None and not queues:
            sole(AudioBatch(frames, kinds, self.call_id, self._identity))
            return
        runners = self._runners
        if not runners and not queues:
            return
        # inline processors read the ring's memory in place (valid during the
        # call); everything that keeps frames gets one copy of the tick
        view = AudioBatch(frames, kinds, self.call_id, self._identity)
        owned: AudioBatch | None = None
        # a call without the mix gets unmixed frames only (its graph writes no
        # other): no per-frame selection for the processors of each kind
        only_unmixed = not self.mixed
        for r in runners:
            want = r.processor.audio
            if want is None or (only_unmixed and want == "mixed"):
                continue
            batch = view
            if not r.inline:
                if owned is None:
                    owned = AudioBatch(np.array(frames), np.array(kinds), self.call_id, self._identity)
                batch = owned
            if want != "both" and not only_unmixed:
                sel = batch.kinds == (MIXED if want == "mixed" else UNMIXED)
                if not sel.all():
                    if not sel.any():
                        continue
                    batch = AudioBatch(batch.records[sel], batch.kinds[sel], self.call_id, self._identity)
            r.audio(batch)
        if queues:
            if owned is None:
                owned = AudioBatch(np.array(frames), np.array(kinds), self.call_id, self._identity)
            for frame in owned:
                for pid, q in queues:
                    if pid is None:
                        if frame.kind == "mixed":
                            q.put(frame)
                    elif frame.participant_id == pid:
                        q.put(frame)

    def _on_audio_event(self, ev: AudioEvent) -> None:
        ident = self._identity.get(ev.source_id)
        pid, name = (ident[0], ident[1]) if ident else (None, None)
        if ev.kind == "dtmf" and ev.end:
            self._emit(
                DtmfReceived(
                    self.call_id,
                    ev.timestamp_100ns,
                    pid,
                    name,
                    ev.digit,
                    ev.duration * 1000 // AUDIO_CLOCK_RATE,
                )
            )
        elif ev.kind == "dominant_speaker":
            prev = self._identity.get(ev.value)
            self._dominant = ev.source_id
            self._emit(
                DominantSpeakerChanged(
                    self.call_id,
                    ev.timestamp_100ns,
                    pid if ev.source_id else None,
                    name if ev.source_id else None,
                    ev.source_id,
                    prev[0] if prev else None,
                )
            )
        elif ev.kind == "send_low_water" and self._playback is not None:
            self._playback.wake()

    # ---- events ----------------------------------------------------------------------------

    def _emit(self, ev: MediaEvent) -> None:
        for r in self._runners:
            r.event(ev)
        for q in self._event_queues:
            q.put(ev)

    def events(self, *, maxsize: int = 1000) -> FrameQueue[MediaEvent]:
        """Every media event of the call from now on (the participants already
        present first, as joins); ends with :class:`CallEnded`."""
        q: FrameQueue[MediaEvent] = FrameQueue(
            maxsize, "drop_oldest", name="events", on_close=self._forget_queue
        )
        now = _now_100ns()
        with self._lock:
            for pid, name in self._participants.items():
                q.put(ParticipantJoined(self.call_id, now, pid, name))
            self._event_queues = self._event_queues + [q]
        return q

    def _forget_queue(self, q: FrameQueue[Any]) -> None:
        with self._lock:
            self._event_queues = [x for x in self._event_queues if x is not q]
            self._audio_queues = [x for x in self._audio_queues if x[1] is not q]
            self._screen_queues = [x for x in self._screen_queues if x is not q]
            changed = False
            for c in self._video.values():
                if q in c.queues:
                    c.queues.remove(q)
                    changed = True
            if changed:
                changed = self._plan_video()
        if changed:
            self._apply_video()

    # ---- audio iterators -------------------------------------------------------------------

    def audio(self, participant_id: str, *, queue_ms: int | None = None) -> FrameQueue[AudioFrame]:
        """That participant's own audio (20 ms frames) from now on; ends when
        they leave or the call ends."""
        n = max(1, (queue_ms or self.audio_queue_ms) // 20)
        q: FrameQueue[AudioFrame] = FrameQueue(
            n, "drop_oldest", name=f"audio:{participant_id}", on_close=self._forget_queue
        )
        with self._lock:
            if self._closed:
                q.close()
            self._audio_queues = self._audio_queues + [(participant_id, q)]
        return q

    def mixed_audio(self, *, queue_ms: int | None = None) -> FrameQueue[AudioFrame]:
        """The mix of every speaker (needs ``mixed=True`` at creation)."""
        if not self.mixed:
            raise ValueError("this call was created without mixed audio (create_call(mixed=True))")
        n = max(1, (queue_ms or self.audio_queue_ms) // 20)
        q: FrameQueue[AudioFrame] = FrameQueue(
            n, "drop_oldest", name="audio:mixed", on_close=self._forget_queue
        )
        with self._lock:
            self._audio_queues = self._audio_queues + [(None, q)]
        return q

    # ---- video -----------------------------------------------------------------------------

    def video(
        self, participant_id: str, size: tuple[int, int] | None = (1280, 720), *, maxsize: int = 1
    ) -> FrameQueue[DecodedVideoFrame]:
        """That participant's camera, decoded, scaled to fit ``size`` (the
        remote sends the largest layer within it). Latest-only by default
        (``maxsize`` > 1: drop-oldest). Subscribed while the queue is open."""
        q: FrameQueue[DecodedVideoFrame] = FrameQueue(
            maxsize,
            "latest" if maxsize == 1 else "drop_oldest",
            name=f"video:{participant_id}",
            on_close=self._forget_queue,
        )
        with self._lock:
            cams = [
                sid
                for sid, s in self._sources.items()
                if s.participant_id == participant_id and s.kind == "video"
            ]
            if not cams:
                raise KeyError(f"participant {participant_id!r} has no camera source in this call")
            c = self._video.setdefault(cams[0], _VideoConsumer(size))
            c.size = size
            c.queues.append(q)
            changed = self._plan_video()
        if changed:
            self._apply_video()
        return q

    def screen_share(
        self, size: tuple[int, int] | None = None, *, maxsize: int = 1
    ) -> FrameQueue[DecodedVideoFrame]:
        """Whoever shares their screen, decoded, while they share; the queue
        stays open across shares and ends with the call."""
        q: FrameQueue[DecodedVideoFrame] = FrameQueue(
            maxsize, "latest" if maxsize == 1 else "drop_oldest", name="screen", on_close=self._forget_queue
        )
        with self._lock:
            self._screen_queues = self._screen_queues + [q]
            self._screen_size = size
            changed = self._plan_video()
        if changed:
            self._apply_video()
        return q

    def _plan_video(self) -> bool:
        """The subscription list that follows from who is present and who
        wants what; True when it changed (caller applies it outside the lock)."""
        subs: dict[int, tuple[int, int] | None] = {}
        for sid, s in self._sources.items():
            if s.kind == "video" and s.active:
                c = self._video.get(sid)
                if c is not None and c.queues:
                    subs[sid] = c.size
                elif self._processor_video is not None:
                    subs[sid] = self._processor_video
            elif s.kind == "screen" and s.active and (self._screen_queues or self._processor_screen):
                subs[sid] = self._screen_size
        # consumers of sources that left: end their streams
        for sid in [sid for sid in self._video if sid not in self._sources]:
            for q in self._video.pop(sid).queues:
                q.close()
        # decode a source only for someone who wants decoded frames (iterators,
        # processors without video_encoded); access units for the others
        procs = [r.processor for r in self._runners]
        cam = (
            any(p.video is not None and not p.video_encoded for p in procs),
            any(p.video is not None and p.video_encoded for p in procs),
        )
        scr = (
            bool(self._screen_queues) or any(p.screen_share and not p.video_encoded for p in procs),
            any(p.screen_share and p.video_encoded for p in procs),
        )
        modes = {}
        for sid in subs:
            if self._sources[sid].kind == "screen":
                modes[sid] = scr
            else:
                c = self._video.get(sid)
                modes[sid] = (cam[0] or bool(c is not None and c.queues), cam[1])
        modes_changed = modes != self._sub_modes
        self._sub_modes = modes
        if subs == self._subs:
            return modes_changed
        self._subs = subs
        self._sub_version = (self._sub_version + 1) & 0xFFFFFFFF
        return True

    def _apply_video(self) -> None:
        from .video.sockets import VbssSocket, VideoSocket

        with self._lock:
            if self._closed:
                return
            subs = dict(self._subs)
            modes = dict(self._sub_modes)
            kinds = {sid: self._sources[sid].kind for sid in subs if sid in self._sources}
            if any(k == "video" for k in kinds.values()) and self._video_socket is None:
                self._video_socket = VideoSocket(
                    self.session,
                    self._on_video,
                    reorder_wait_ms=100,
                    max_subscriptions=1024,
                    on_encoded=self._on_video_encoded,
                )
            if any(k == "screen" for k in kinds.values()) and self._screen_socket is None:
                self._screen_socket = VbssSocket(
                    self.session,
                    self._on_video,
                    reorder_wait_ms=100,
                    max_subscriptions=64,
                    on_encoded=self._on_video_encoded,
                )
            for sock, kind in ((self._video_socket, "video"), (self._screen_socket, "screen")):
                if sock is None:
                    continue
                want = {sid: subs[sid] for sid, k in kinds.items() if k == kind}
                for sid in sock.subscriptions:
                    if sid not in want:
                        sock.unsubscribe(sid)
                        self._rtp_anchor.pop(sid, None)
                for sid, size in want.items():
                    decode, encoded = modes.get(sid, (True, False))
                    sock.subscribe(sid, size, decode=decode, encoded=encoded)  # new, or updated
        self.send_subscriptions()

    def send_subscriptions(self, *, force: bool = True) -> bool:
        """Send the current subscription list to the remote (RTCP APP,
        :mod:`mediacore.subscriptions`); False while the remote's address is
        not known yet (the next packet from it triggers a resend)."""
        with self._lock:
            version, subs = self._sub_version, sorted(self._subs.items())
            last_version, last_t = self._sub_sent
        now = time.monotonic()
        if not force and version == last_version and now - last_t < SUBSCRIPTION_REPEAT_S:
            return True
        if version == 0 and not subs:
            return True  # nothing was ever subscribed
        data = encode_subscriptions(version, subs)
        try:
            self.session.send_app(self._app_ssrc, APP_NAME, data, APP_SUBTYPE)
        except MediacoreError:
            return False  # no remote yet
        with self._lock:
            self._sub_sent = (version, now)
        return True

    def _on_video(self, frame: DecodedVideoFrame) -> None:
        """A decoded camera or screen frame, on its subscription's thread."""
        ident = self._identity.get(frame.source_id)
        if ident is None:
            return
        frame.participant_id, frame.display_name = ident[0], ident[1]
        frame.kind = ident[2]
        frame.call_id = self.call_id
        frame.timestamp_100ns = self._media_time_100ns(frame.source_id, frame.rtp_timestamp, frame.arrival_ns)
        if frame.kind == "screen":
            for q in self._screen_queues:
                q.put(frame)
            for r in self._runners:
                if r.processor.screen_share and not r.processor.video_encoded:
                    r.video(frame)
            return
        c = self._video.get(frame.source_id)
        if c is not None:
            for q in c.queues:
                q.put(frame)
        for r in self._runners:
            if r.processor.video is not None and not r.processor.video_encoded:
                r.video(frame)

    def _on_video_encoded(self, unit: Any) -> None:
        """A received camera or screen access unit, on its subscription's
        thread, for the processors with ``video_encoded`` (before it is
        decoded for the others, if it is at all)."""
        from .video.sockets import ReceivedAccessUnit

        ident = self._identity.get(unit.ssrc)
        if ident is None:
            return
        t = self._media_time_100ns(unit.ssrc, unit.rtp_timestamp, unit.last_arrival_ns)
        out = ReceivedAccessUnit.of(
            unit,
            timestamp_100ns=t,
            participant_id=ident[0],
            display_name=ident[1],
            kind=ident[2],
            call_id=self.call_id,
        )
        screen = ident[2] == "screen"
        for r in self._runners:
            p = r.processor
            if p.video_encoded and (p.screen_share if screen else p.video is not None):
                r.video(out)

    def _media_time_100ns(self, source_id: int, rtp_ts: int, arrival_ns: int) -> int:
        """Sender time on the media clock: the stream's first frame's arrival
        anchors it, later frames follow their RTP timestamps (jitter does not
        move them)."""
        anchor = self._rtp_anchor.get(source_id)
        if anchor is None:
            anchor = self._rtp_anchor[source_id] = (rtp_ts, (arrival_ns or time.monotonic_ns()) // 100)
        delta = (rtp_ts - anchor[0]) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        return anchor[1] + delta * 10_000_000 // VIDEO_CLOCK_RATE

    def request_key_frame(self, participant_id: str) -> None:
        """Ask that participant's camera for a key frame (PLI, then FIR)."""
        with self._lock:
            cams = [
                sid
                for sid, s in self._sources.items()
                if s.participant_id == participant_id and s.kind == "video"
            ]
            sock = self._video_socket
        if sock is None or not cams or cams[0] not in sock.subscriptions:
            raise KeyError(f"participant {participant_id!r}'s camera is not subscribed")
        sock.request_key_frame(cams[0])

    # ---- processors ------------------------------------------------------------------------

    def add_processor(
        self, processor: Processor, *, options: Mapping[str, Any] | None = None
    ) -> ProcessorRunner:
        """Start ``processor`` on this call (its ``mode`` says where). It gets
        a :class:`ParticipantJoined` for everyone already present first."""
        ctx = ProcessorContext(self.call_id, self.output_dir, dict(options or {}), self, self.epoch_100ns)
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        runner = start_runner(processor, ctx)
        if isinstance(runner, ProcessRunner):
            runner.sources(self._identity)
        now = _now_100ns()
        with self._lock:
            for pid, name in self._participants.items():
                runner.event(ParticipantJoined(self.call_id, now, pid, name))
            self._runners = self._runners + [runner]
            only = self._runners[0] if len(self._runners) == 1 else None
            self._sole_inline = (
                only.audio
                if only is not None
                and only.inline
                and not self.mixed
                and only.processor.audio in ("unmixed", "both")
                else None
            )
            changed = False
            if processor.video is not None:
                cur = self._processor_video
                self._processor_video = (
                    processor.video
                    if cur is None
                    else (max(cur[0], processor.video[0]), max(cur[1], processor.video[1]))
                )
                changed = True
            if processor.screen_share:
                self._processor_screen = True
                changed = True
            if changed:
                changed = self._plan_video()
        if changed:
            self._apply_video()
        return runner

    @property
    def processors(self) -> list[ProcessorRunner]:
        return list(self._runners)

    def remove_processor(self, runner: ProcessorRunner, *, timeout_s: float = 30.0) -> Any:
        """Stop one processor while the call goes on (a recorder told to stop
        before the bot reports ``notRecording``); returns its result. It gets
        nothing more from the call; video nobody else asks for is unsubscribed."""
        with self._lock:
            self._runners = [r for r in self._runners if r is not runner]
            sizes = [r.processor.video for r in self._runners if r.processor.video is not None]
            video = (max(w for w, _ in sizes), max(h for _, h in sizes)) if sizes else None
            screen = any(r.processor.screen_share for r in self._runners)
            self._processor_video, self._processor_screen = video, screen
            changed = self._plan_video()  # sizes, or who wants decoded / encoded frames
        if changed:
            self._apply_video()
        return runner.stop(timeout_s)

    # ---- send ------------------------------------------------------------------------------

    def send_audio(self, pcm: np.ndarray | bytes) -> int:
        """Queue 16 kHz mono int16 PCM (any length; the last partial frame is
        padded with silence). Paced one 20 ms frame per tick by the native
        graph. Returns the frames queued (fewer when the queue is full:
        the rest is dropped and counted)."""
        sender = self._sender()
        n = 0
        for f in _frames_of(pcm):
            if not sender.send(f):
                break
            n += 1
        return n

    def send_queue_frames(self) -> int:
        """Frames queued and not yet sent."""
        return self._sender().send_queue_frames()

    @property
    def send_state(self) -> str:
        """ "active" while queued audio goes out, "inactive" while the graph
        sends silence for want of it."""
        return self._sender().send_state

    def play(self, pcm: np.ndarray, *, loop: bool = False) -> _Playback:
        """Play ``pcm`` (16 kHz mono int16) into the call, fed as the send
        queue drains; replaces what is playing. ``wait()`` on the result."""
        self._sender()
        self.stop_playback()
        pb = _Playback(self, _frames_of(pcm), loop)
        self._playback = pb
        pb.start()
        return pb

    def play_file(self, path: str | Path, *, loop: bool = False) -> _Playback:
        """Play an audio file (anything PyAV/ffmpeg reads), resampled to 16 kHz mono."""
        return self.play(read_audio_file(path), loop=loop)

    def play_tone(
        self, frequency_hz: float = 440.0, duration_ms: int = 500, level_dbfs: float = -12.0
    ) -> _Playback:
        return self.play(tone(frequency_hz, duration_ms, level_dbfs))

    def stop_playback(self) -> None:
        """Stop what :meth:`play` plays (barge-in); frames already in the
        native queue (at most a few ticks' worth) still go out."""
        pb, self._playback = self._playback, None
        if pb is not None:
            pb.cancel()

    def send_dtmf(self, digits: str, tone_ms: int = 100, gap_ms: int = 100) -> None:
        """Send key presses in-band (RFC 4733 telephone events)."""
        self._sender().send_dtmf(digits, tone_ms, gap_ms)

    def send_video(self, frame: Any, *, format: str = "rgb24") -> int:
        """Encode and send one frame (PyAV ``VideoFrame`` or numpy array in
        ``format``); needs ``send_video=True`` at creation. Returns the
        access units sent (0 when paced out)."""
        if self._video_send is None:
            raise ValueError("this call was created without a video send path (create_call(send_video=True))")
        return len(self._video_send.send_frame(frame, format=format))

    # ---- housekeeping (the host's thread, every 100 ms) --------------------------------

    def _sender(self):
        if self.audio_send is None:
            raise ValueError(
                "this call was created without an audio send path (create_call(send_audio=False))"
            )
        return self._call_audio

    def _housekeeping(self) -> None:
        if self._closed:
            return
        if self._video_send is None and not (self._subs or self._sub_version):
            return  # nothing here acts on session events (latching, key-frame requests)
        resend = False
        try:
            events = self.session.events()
        except MediacoreError:
            return
        for ev in events:
            if ev.kind == "remote_latched":
                resend = True
        if self._video_send is not None and events:
            self._video_send.handle_events(events)
        if self._subs or self._sub_version:
            self.send_subscriptions(force=resend)

    # ---- statistics ------------------------------------------------------------------------

    def stats(self) -> CallStats:
        """Every stream's counters now (after :meth:`close`: the last ones)."""
        if self._final_stats is not None:
            return self._final_stats
        out: list[StreamStats] = []
        with self._lock:
            sources = dict(self._sources)
            vsock, ssock = self._video_socket, self._screen_socket
        recv = self.session.receive_streams
        for sid, s in sources.items():
            if s.kind == "audio" and sid in recv:
                out.append(StreamStats("audio", "receive", sid, s.participant_id, recv[sid].stats()))
        for sock in (vsock, ssock):
            if sock is None:
                continue
            for sid in sock.subscriptions:
                src = sources.get(sid)
                rtp = recv[sid].stats() if sid in recv else None
                out.append(
                    StreamStats(
                        src.kind if src else "video",
                        "receive",
                        sid,
                        src.participant_id if src else None,
                        rtp,
                        sock.stats(sid),
                    )
                )
        if self.audio_send is not None:
            out.append(StreamStats("audio", "send", self.audio_send.ssrc, None, self.audio_send.stats()))
        if self._video_send is not None:
            out.append(
                StreamStats(
                    "video",
                    "send",
                    self._video_send.ssrc,
                    None,
                    self._video_send.stream.stats(),
                    self._video_send.stats(),
                )
            )
        dropped: dict[str, int] = {}
        for name, n in [(f"processor:{r.name}", r.dropped) for r in self._runners] + [
            (q.name, q.dropped) for _, q in self._audio_queues
        ]:
            key, i = name, 2
            while key in dropped:  # two readers of the same stream
                key, i = f"{name}#{i}", i + 1
            dropped[key] = n
        return CallStats(
            self.call_id,
            tuple(out),
            self._call_audio.stats(),
            self._call_audio.input.stats().records_dropped,
            dropped,
            {r.name: r.errors for r in self._runners},
        )

    # ---- lifetime --------------------------------------------------------------------------

    def close(self, reason: str = "hung up", *, timeout_s: float = 30.0) -> dict[str, Any]:
        """End the call's media (idempotent): streams end, processors stop;
        returns each processor's result by class name."""
        with self._lock:
            if self._closed:
                return {}
            self._closed = True
        self.stop_playback()
        try:
            self._final_stats = self.stats()
        except MediacoreError:
            log.debug("call %s: no final statistics", self.call_id, exc_info=True)
        self._emit(CallEnded(self.call_id, _now_100ns(), reason))
        results: dict[str, Any] = {}
        for sock in (self._video_socket, self._screen_socket):
            if sock is not None:
                sock.close()
        self.host.audio.remove_call(self.tag)
        for r in self._runners:
            results[r.name] = r.stop(timeout_s)
            r.ctx.media = None  # stopped: no cycle back to this call's media
        for _, aq in list(self._audio_queues):
            aq.close()
        for eq in list(self._event_queues):
            eq.close()
        for vq in list(self._screen_queues):
            vq.close()
        for c in list(self._video.values()):
            for cq in list(c.queues):
                cq.close()
        if self._video_send is not None:
            self._video_send.close()
        self.session.close()
        self.host._forget(self)
        return results

    async def aclose(self, reason: str = "hung up") -> dict[str, Any]:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, self.close, reason)

    async def __aenter__(self) -> CallMedia:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> CallMedia:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- send helpers ------------------------------------------------------------------------------


def _frames_of(pcm: np.ndarray | bytes) -> np.ndarray:
    a = np.frombuffer(pcm, np.int16) if isinstance(pcm, (bytes, bytearray, memoryview)) else np.asarray(pcm)
    if a.dtype != np.int16:
        raise ValueError(f"PCM must be int16 (16 kHz mono), not {a.dtype}")
    a = a.reshape(-1)
    n = -(-len(a) // FRAME_SAMPLES)
    out = np.zeros((n, FRAME_SAMPLES), np.int16)
    out.reshape(-1)[: len(a)] = a
    return out


def tone(frequency_hz: float = 440.0, duration_ms: int = 500, level_dbfs: float = -12.0) -> np.ndarray:
    """A sine tone as 16 kHz int16 PCM (a generated prompt)."""
    n = SAMPLE_RATE_HZ * duration_ms // 1000
    amp = 32767 * 10 ** (level_dbfs / 20)
    t = np.arange(n) / SAMPLE_RATE_HZ
    return (amp * np.sin(2 * np.pi * frequency_hz * t)).astype(np.int16)


def read_audio_file(path: str | Path) -> np.ndarray:
    """Decode an audio file to 16 kHz mono int16 with PyAV."""
    import av

    chunks = []
    with av.open(str(path)) as container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise ValueError(f"{path}: no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE_HZ)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):  # type: ignore[arg-type]  # an audio stream
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


class _Playback:
    """Feeds a clip into the send queue as it drains (a thread; the native
    graph paces the frames). ``wait()`` returns when the last frame was
    queued and has had time to go out."""

    #: keep this many frames queued ahead (200 ms): barge-in stops within it
    AHEAD = 10

    def __init__(self, media: CallMedia, frames: np.ndarray, loop: bool) -> None:
        self.media = media
        self.frames = frames
        self.loop = loop
        self.sent = 0
        self._cancel = threading.Event()
        self._wake = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="mediabot-playback")

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        m = self.media
        i = 0
        try:
            while not self._cancel.is_set():
                if i >= len(self.frames):
                    if not self.loop:
                        break
                    i = 0
                room = self.AHEAD - m.send_queue_frames()
                if room > 0:
                    chunk = self.frames[i : i + room]
                    n = m.send_audio(chunk)
                    i += n
                    self.sent += n
                self._wake.wait(0.02)
                self._wake.clear()
            if not self._cancel.is_set():  # let the queued frames go out
                deadline = time.monotonic() + 0.02 * (self.AHEAD + 2)
                while m.send_queue_frames() and time.monotonic() < deadline:
                    time.sleep(0.02)
        except MediacoreError:
            pass  # the call ended under us
        finally:
            self._done.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._wake.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    async def wait_async(self) -> None:
        import asyncio

        await asyncio.get_running_loop().run_in_executor(None, self._done.wait)

    @property
    def done(self) -> bool:
        return self._done.is_set()


def _now_100ns() -> int:
    return time.monotonic_ns() // 100

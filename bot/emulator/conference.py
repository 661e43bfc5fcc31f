"""The Teams media side of emulated calls: a conference per call.

A :class:`MediaServer` owns one native :class:`~mediacore.engine.Engine` (one
UDP port, like a Teams media processor's public port) and a pacing thread on a
20 ms clock. Each attached call gets a :class:`ConferenceMedia` that sends the
bot every present participant's own audio (SSRC = the participant's audio
source id, as in the roster's ``mediaStreams``), the conference mix (the
mixer's source id), and the participants' video (SSRC = video source id),
all pre-encoded (``simmedia``) and replayed; it receives the bot's audio
(what the conference would play to the others) and honours key-frame
requests (PLI/FIR) by switching a video stream to intra frames until the
regular stream reaches its next key frame.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from mediacore.engine import Engine

from .simmedia import (H264_CLOCK_RATE, H264_PAYLOAD_TYPE, MIXER_SOURCE_ID, OPUS_CLOCK_RATE,
                       OPUS_PAYLOAD_TYPE, OPUS_TICKS_PER_FRAME, MeetingMedia, ParticipantMedia)

log = logging.getLogger(__name__)
SLOT_NS = 20_000_000


@dataclass
class ConferenceStats:
    audio_packets: int = 0
    video_frames: int = 0
    video_packets: int = 0
    keyframe_requests: int = 0
    intra_frames: int = 0
    bot_audio_packets: int = 0


class _VideoSender:
    def __init__(self, pm: ParticipantMedia, stream) -> None:
        self.pm = pm
        self.stream = stream
        self.next_frame = 0
        self.intra_until_key = False

    def due(self, elapsed_s: float) -> int:
        return min(len(self.pm.video.frames), int(elapsed_s * self.pm.video.fps) + 1)


class ConferenceMedia:
    """Media of one emulated call (see module doc). Driven by :meth:`tick`."""

    def __init__(self, engine: Engine, media: MeetingMedia, remote: tuple[str, int], *,
                 srtp_profile: str | None, tx_key: bytes | str | None, rx_key: bytes | str | None,
                 bot_audio_ssrcs: tuple[int, ...] = (), loop: bool = False,
                 send_video: bool = True, subscribed_video: set[int] | None = None,
                 ssrc_offset: int = 0, send_mixed: bool = True,
                 source_ids: dict[str, tuple[int, int | None]] | None = None,
                 lead_in_s: float = 0.0) -> None:
        """``source_ids`` maps a participant's name to the (audio, video) media
        source ids the roster announced for them (they become the SSRCs);
        without it the ids prepared in ``media`` are used. ``ssrc_offset``
        shifts every SSRC of this call (load tests give each call distinct
        SSRCs so one bot-side ring can carry them all)."""
        self.media = media
        self.ssrc_offset = ssrc_offset
        ids = {pm.participant.name: (pm.audio_source_id, pm.video_source_id)
               for pm in media.participants}
        ids.update(source_ids or {})
        self.source_ids = ids
        self.loop = loop
        self.stats = ConferenceStats()
        self.session = engine.add_session(remote, srtp_profile=srtp_profile, tx_key=tx_key,
                                          rx_key=rx_key)
        self._audio = []
        for pm in media.participants:
            audio_id = ids[pm.participant.name][0]
            s = self.session.add_send_stream(audio_id + ssrc_offset, OPUS_PAYLOAD_TYPE,
                                             "audio", OPUS_CLOCK_RATE, ring_capacity=1 << 16)
            self._audio.append((pm.audio, s))
        self._mixed = None
        if send_mixed:
            self._mixed = self.session.add_send_stream(MIXER_SOURCE_ID + ssrc_offset,
                                                       OPUS_PAYLOAD_TYPE, "audio", OPUS_CLOCK_RATE,
                                                       ring_capacity=1 << 16)
        self._video: dict[int, _VideoSender] = {}
        self.subscribed_video = subscribed_video
        if send_video:
            for pm in media.participants:
                video_id = ids[pm.participant.name][1]
                if pm.video is not None and video_id is not None:
                    s = self.session.add_send_stream(video_id + ssrc_offset,
                                                     H264_PAYLOAD_TYPE, "video", H264_CLOCK_RATE,
                                                     history=512, ring_capacity=1 << 20)
                    self._video[video_id + ssrc_offset] = _VideoSender(pm, s)
        self._bot_rx = [self.session.add_receive_stream(ssrc, "audio", OPUS_CLOCK_RATE, direct=True,
                                                        ring_capacity=1 << 16)
                        for ssrc in bot_audio_ssrcs]
        #: the meeting script's time zero (after ``lead_in_s``: the time a joining bot
        #: needs to learn the roster and open its receive streams)
        self.start_ns = time.monotonic_ns() + int(lead_in_s * 1e9)
        self._slot = 0
        self.closed = False

    # ---- pacing -------------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        """Send everything due by ``now_ns`` (called every 20 ms by the server)."""
        slots = self.media.slots
        if now_ns < self.start_ns:
            return
        due = (now_ns - self.start_ns) // SLOT_NS + 1
        while self._slot < due:
            k = self._slot % slots if self.loop else self._slot
            if k >= slots:
                break
            ts = self._slot * OPUS_TICKS_PER_FRAME
            for packets, stream in self._audio:
                payload = packets[k]
                if payload is not None:
                    stream.send(payload, ts, wake=False)
                    self.stats.audio_packets += 1
            mixed = self.media.mixed_audio[k] if self._mixed is not None else None
            if mixed is not None:
                self._mixed.send(mixed, ts, wake=False)
            self._slot += 1
        self._handle_events()
        elapsed_s = (now_ns - self.start_ns) / 1e9
        for vs in self._video.values():
            if (self.subscribed_video is not None
                    and self.source_ids[vs.pm.participant.name][1] not in self.subscribed_video):
                continue
            self._send_video(vs, elapsed_s)
        self.session.engine.wake()

    def _send_video(self, vs: _VideoSender, elapsed_s: float) -> None:
        video = vs.pm.video
        n = len(video.frames)
        period = n / video.fps
        if self.loop:
            total_due = int(elapsed_s * video.fps) + 1
        else:
            total_due = vs.due(elapsed_s)
        while vs.next_frame < total_due:
            i = vs.next_frame % n
            if not self.loop and vs.next_frame >= n:
                break
            regular = video.frames[i]
            if vs.intra_until_key and regular.key:
                vs.intra_until_key = False
            frame = video.intra[i] if vs.intra_until_key else regular
            if vs.intra_until_key:
                self.stats.intra_frames += 1
            # continuous RTP time across loops
            ts = regular.rtp_timestamp + int((vs.next_frame // n) * period * H264_CLOCK_RATE)
            last = len(frame.payloads) - 1
            for j, payload in enumerate(frame.payloads):
                vs.stream.send(payload, ts, marker=(j == last), wake=False)
            self.stats.video_frames += 1
            self.stats.video_packets += len(frame.payloads)
            vs.next_frame += 1

    def _handle_events(self) -> None:
        for ev in self.session.events():
            if ev.kind in ("pli", "fir") and ev.ssrc in self._video:
                self.stats.keyframe_requests += 1
                self._video[ev.ssrc].intra_until_key = True
        for rx in self._bot_rx:
            self.stats.bot_audio_packets += len(rx.read_batch(256))

    def request_keyframe_sent(self, video_source_id: int) -> None:
        if video_source_id in self._video:
            self._video[video_source_id].intra_until_key = True

    @property
    def finished(self) -> bool:
        return not self.loop and self._slot >= self.media.slots

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.session.close()


class MediaServer:
    """One engine and one pacing thread for every emulated call's media."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.engine = Engine(host, port)
        self.conferences: dict[str, ConferenceMedia] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.engine.bind_host, self.engine.port

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="emulator-media", daemon=True)
        self._thread.start()

    def attach(self, call_id: str, conference: ConferenceMedia) -> None:
        with self._lock:
            self.conferences[call_id] = conference

    def detach(self, call_id: str) -> ConferenceMedia | None:
        with self._lock:
            conf = self.conferences.pop(call_id, None)
        if conf is not None:
            conf.close()
        return conf

    def _run(self) -> None:
        nxt = time.monotonic_ns()
        while not self._stop.is_set():
            now = time.monotonic_ns()
            with self._lock:
                confs = list(self.conferences.values())
            for c in confs:
                try:
                    if not c.closed:
                        c.tick(now)
                except Exception:  # one broken call must not stop the others
                    log.exception("conference tick failed")
            nxt += SLOT_NS
            delay = nxt - time.monotonic_ns()
            if delay > 0:
                self._stop.wait(delay / 1e9)
            else:
                nxt = time.monotonic_ns()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for call_id in list(self.conferences):
            self.detach(call_id)
        self.engine.close()

    def __enter__(self) -> MediaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ConferenceHandler:
    """The emulator's pluggable media handler (``GraphEmulator(media_handler=...)``).

    When an app-hosted call is set up it reads the bot's media configuration
    blob, makes the conference's own document (its endpoint and the SRTP key it
    protects with), starts a :class:`ConferenceMedia` that plays the meeting's
    participants under the source ids of the call's roster, and hands its
    document to ``on_answer(bot_config, conference_config)``. (The Teams media
    platform agrees keys with the bot in-band; the emulator has no such channel,
    so whoever runs it passes the answer to the bot's media side.)
    """

    def __init__(self, server: MediaServer | None, media: MeetingMedia, on_answer=None, *,
                 loop: bool = False, lead_in_s: float = 0.0) -> None:
        """``server=None`` gives every call a media server of its own (its own
        UDP port, as calls land on different media processors in Teams)."""
        self.server = server
        self._own_servers: dict[str, MediaServer] = {}
        self.media = media
        self.on_answer = on_answer
        self.loop = loop
        self.lead_in_s = lead_in_s
        self.conferences: dict[str, ConferenceMedia] = {}
        #: name -> (audio, video) source ids known in advance (people who join later)
        self.source_ids: dict[str, tuple[int, int | None]] = {}

    def _source_ids(self, call) -> dict[str, tuple[int, int | None]]:
        people = list(call.participants.values())
        if call.meeting is not None:
            people += [p for p in call.meeting.participants.values() if p.id not in call.participants]
        ids: dict[str, tuple[int, int | None]] = dict(self.source_ids)
        for p in people:
            audio = p.stream("audio")
            video = p.stream("video")
            if p.display_name and audio is not None:
                ids[p.display_name] = (int(audio.source_id),
                                       int(video.source_id) if video is not None else None)
        return ids

    async def call_started(self, call, blob: str | None) -> None:
        from mediacore.mediaconfig import MediaConfig

        if not blob:
            log.warning("call %s: app-hosted media without a blob", call.id)
            return
        bot_cfg = MediaConfig.from_blob(blob)
        server = self.server
        if server is None:
            server = self._own_servers[call.id] = MediaServer("127.0.0.1")
            server.start()
        host, port = server.address
        own = MediaConfig.generate(host, port, role="remote", kinds=("audio", "video"),
                                   call_id=call.id, media_session_id=bot_cfg.media_session_id,
                                   srtp_profile=bot_cfg.srtp.profile if bot_cfg.srtp else None)
        bot_audio = bot_cfg.section("audio")
        conf = ConferenceMedia(
            server.engine, self.media, (bot_cfg.endpoint.address, bot_cfg.endpoint.port),
            srtp_profile=bot_cfg.srtp.profile if bot_cfg.srtp else None,
            tx_key=own.srtp.key_bytes if own.srtp else None,
            rx_key=bot_cfg.srtp.key_bytes if bot_cfg.srtp else None,
            bot_audio_ssrcs=tuple(bot_audio.ssrcs) if bot_audio else (),
            loop=self.loop, source_ids=self._source_ids(call), lead_in_s=self.lead_in_s)
        self.conferences[call.id] = conf
        server.attach(call.id, conf)
        if self.on_answer is not None:
            self.on_answer(bot_cfg, own)

    async def call_ended(self, call) -> None:
        self.conferences.pop(call.id, None)
        own = self._own_servers.pop(call.id, None)
        if own is not None:
            own.stop()
        elif self.server is not None:
            self.server.detach(call.id)

    def close(self) -> None:
        for own in self._own_servers.values():
            own.stop()
        self._own_servers.clear()

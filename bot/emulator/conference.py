"""The Teams media side of emulated calls: a conference per call.

A :class:`MediaServer` owns one native :class:`~mediacore.engine.Engine` (one
UDP port, like a Teams media processor's public port) and a pacing thread on a
20 ms clock. Each attached call gets a :class:`ConferenceMedia` that sends the
bot every present participant's own audio (SSRC = the participant's audio
source id, as in the roster's ``mediaStreams``), the conference mix (the
conference's own source id), scripted DTMF as RFC 4733 telephone events on the
presser's audio stream, and the video the bot subscribed to (SSRC = video
source id; a sharer's screen as their video-based screen-sharing source),
all pre-encoded (``simmedia``) and replayed; it receives the bot's audio
(what the conference would play to the others) and, for a scripted caller
(``ConferenceHandler.play_for_call``), decodes and keeps it, so a test can hear
what the bot played.

Everything the conference knows about the bot comes over channels a deployment
has (docs/media-config.md): the bot's media configuration document from the
Graph request (``appHostedMediaConfig.blob`` of answer / join / createCall),
whose ``srtp.receiveKey`` is the key the conference protects with (its
``srtp.key`` unprotects the bot's packets; no answer document goes back), and
the bot's video subscriptions as SRTCP-protected RTCP APP packets "MBVS"
(``mediacore.subscriptions``): only subscribed sources are forwarded, each in
the largest simulcast layer within the preferred resolution (the smallest when
none fits), starting with an intra frame; a key-frame request (PLI/FIR)
switches the stream to intra frames until the regular stream reaches its next
key frame.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mediacore.audio.codecs import SAMPLE_RATE_HZ, AudioDecoder, Codec
from mediacore.engine import Engine
from mediacore.mediaconfig import MediaConfig, MediaConfigError
from mediacore.subscriptions import APP_NAME, SubscriptionError, decode_subscriptions, newer

from .simmedia import (
    H264_CLOCK_RATE,
    H264_PAYLOAD_TYPE,
    MIXER_SOURCE_ID,
    OPUS_CLOCK_RATE,
    OPUS_PAYLOAD_TYPE,
    OPUS_TICKS_PER_FRAME,
    TELEPHONE_EVENT_PAYLOAD_TYPE,
    EncodedVideo,
    MeetingMedia,
    ParticipantMedia,
)
from .state import next_source_id

if TYPE_CHECKING:
    from .meeting import ScriptedMeeting

log = logging.getLogger(__name__)
SLOT_NS = 20_000_000


#: source id -> preferred (width, height), or None for no preference
Subscriptions = dict[int, "tuple[int, int] | None"]


@dataclass(frozen=True)
class PayloadTypes:
    """The RTP payload types the conference sends with: those of the bot's media
    configuration document (docs/media-config.md)."""

    opus: int = OPUS_PAYLOAD_TYPE
    telephone_event: int = TELEPHONE_EVENT_PAYLOAD_TYPE
    video: int = H264_PAYLOAD_TYPE
    vbss: int = H264_PAYLOAD_TYPE

    @classmethod
    def of(cls, doc) -> PayloadTypes:
        """From a bot's :class:`~mediacore.mediaconfig.MediaConfig`: opus and
        telephone-event of its audio section, H264 of its video section (and of
        its vbss section, else the video one's); defaults where it has none."""

        def pt(kind: str, name: str, default: int) -> int:
            section = doc.section(kind)
            for c in section.codecs if section is not None else ():
                if c.name.lower() == name:
                    return c.payload_type
            return default

        video = pt("video", "h264", H264_PAYLOAD_TYPE)
        return cls(
            pt("audio", "opus", OPUS_PAYLOAD_TYPE),
            pt("audio", "telephone-event", TELEPHONE_EVENT_PAYLOAD_TYPE),
            video,
            pt("vbss", "h264", video),
        )


@dataclass
class ConferenceStats:
    audio_packets: int = 0
    dtmf_packets: int = 0
    video_frames: int = 0
    video_packets: int = 0
    keyframe_requests: int = 0
    intra_frames: int = 0
    bot_audio_packets: int = 0
    #: RFC 4733 telephone-event packets among them (the bot pressing keys)
    bot_dtmf_packets: int = 0
    layer_switches: int = 0
    #: MBVS APP packets applied, older or repeated ones skipped, malformed ones ignored, and
    #: APP packets of another name
    subscription_updates: int = 0
    subscription_repeats: int = 0
    malformed_subscriptions: int = 0
    other_app_packets: int = 0
    frames_by_source: dict[int, int] = field(default_factory=dict)
    #: source id -> (width, height) of the last frame sent
    size_by_source: dict[int, tuple[int, int]] = field(default_factory=dict)


class _VideoSender:
    """One video or screen-sharing source of a participant towards the bot."""

    def __init__(self, pm: ParticipantMedia, stream, source_id: int, kind: str) -> None:
        self.pm = pm
        self.stream = stream
        self.source_id = source_id
        self.kind = kind  # "video" | "vbss"
        self.layer: EncodedVideo | None = None  # None: not subscribed
        self.preferred: tuple[int, int] | None = None
        self.next_frame = 0
        self.intra_until_key = False
        self.was_live = False

    def choose(self, preferred: tuple[int, int] | None) -> EncodedVideo | None:
        return self.pm.screen if self.kind == "vbss" else self.pm.layer_for(preferred)


class ConferenceMedia:
    """Media of one emulated call (see module doc). Driven by :meth:`tick`."""

    def __init__(
        self,
        engine: Engine,
        media: MeetingMedia,
        remote: tuple[str, int],
        *,
        srtp_profile: str | None,
        tx_key: bytes | str | None,
        rx_key: bytes | str | None,
        bot_audio_ssrcs: tuple[int, ...] = (),
        loop: bool = False,
        send_video: bool = True,
        subscribed_video: Subscriptions | None = None,
        ssrc_offset: int = 0,
        send_mixed: bool = True,
        source_ids: dict[str, tuple[int, int | None]] | None = None,
        screen_ids: dict[str, int] | None = None,
        lead_in_s: float = 0.0,
        start_ns: int | None = None,
        mixer_source_id: int = MIXER_SOURCE_ID,
        payload_types: PayloadTypes | None = None,
        remote_rtcp_port: int = 0,
        record_bot_audio: bool = False,
    ) -> None:
        """``source_ids`` maps a participant's name to the (audio, video) media
        source ids the roster announced for them (they become the SSRCs);
        without it the ids prepared in ``media`` are used; ``screen_ids`` maps
        a sharer's name to their screen-sharing source id. ``ssrc_offset``
        shifts every SSRC of this call (load tests give each call distinct
        SSRCs so one bot-side ring can carry them all). ``subscribed_video``:
        the bot's video subscriptions (source id -> preferred size or None);
        None forwards every video source at its top layer (a plain test peer).
        ``start_ns``: the meeting's time zero (``time.monotonic_ns()``); a call
        that joins later starts at the meeting's current slot (default: now +
        ``lead_in_s``). ``payload_types``: those of the bot's document.
        ``record_bot_audio``: decode the bot's audio and keep it (:meth:`bot_audio`)."""
        self.media = media
        self.ssrc_offset = ssrc_offset
        ids = {pm.participant.name: (pm.audio_source_id, pm.video_source_id) for pm in media.participants}
        ids.update(source_ids or {})
        self.source_ids = ids
        self.screen_ids = dict(screen_ids or {})
        self.loop = loop
        self.stats = ConferenceStats()
        self.pt = payload_types or PayloadTypes()
        self.mixer_source_id = mixer_source_id
        self._app_version: int | None = None
        self.session = engine.add_session(
            remote, srtp_profile=srtp_profile, tx_key=tx_key, rx_key=rx_key, remote_rtcp_port=remote_rtcp_port
        )
        self._audio = []
        for pm in media.participants:
            audio_id = ids[pm.participant.name][0]
            s = self.session.add_send_stream(
                audio_id + ssrc_offset, self.pt.opus, "audio", OPUS_CLOCK_RATE, ring_capacity=1 << 16
            )
            self._audio.append((pm, s))
        self._mixed = None
        if send_mixed:
            self._mixed = self.session.add_send_stream(
                mixer_source_id + ssrc_offset, self.pt.opus, "audio", OPUS_CLOCK_RATE, ring_capacity=1 << 16
            )
        self._video: dict[int, _VideoSender] = {}  # by SSRC (source id + offset)
        if send_video:
            for pm in media.participants:
                video_id = ids[pm.participant.name][1]
                if pm.video is not None and video_id is not None:
                    self._add_video(pm, video_id, "video")
                screen_id = self.screen_ids.get(pm.participant.name)
                if pm.screen is not None and screen_id is not None:
                    self._add_video(pm, screen_id, "vbss")
        self._sub_lock = threading.Lock()
        self._pending_subs: Subscriptions | None = None
        self.subscriptions: Subscriptions = {}
        self._subscribe_all = subscribed_video is None
        if subscribed_video is not None:
            self._pending_subs = dict(subscribed_video)
        self._bot_rx = [
            self.session.add_receive_stream(
                ssrc, "audio", OPUS_CLOCK_RATE, direct=True, ring_capacity=1 << 16
            )
            for ssrc in bot_audio_ssrcs
        ]
        self._bot_decoder = AudioDecoder(Codec.OPUS, OPUS_CLOCK_RATE) if record_bot_audio else None
        self._bot_chunks: list[tuple[int, np.ndarray]] = []  # (sample offset, 16 kHz PCM)
        self._bot_first_ts: int | None = None
        #: ``time.monotonic_ns()`` when the bot's first audio packet arrived (sample 0 of
        #: :meth:`bot_audio`)
        self.bot_audio_first_arrival_ns: int | None = None
        #: the meeting script's time zero (by default after ``lead_in_s``: the time a
        #: joining bot needs to learn the roster and open its receive streams)
        now = time.monotonic_ns()
        self.start_ns = start_ns if start_ns is not None else now + int(lead_in_s * 1e9)
        # a late joiner gets the meeting from where it is, not a burst of what it missed
        self._slot = max(0, (now - self.start_ns) // SLOT_NS)
        self.closed = False

    def _add_video(self, pm: ParticipantMedia, source_id: int, kind: str) -> None:
        pt = self.pt.vbss if kind == "vbss" else self.pt.video
        s = self.session.add_send_stream(
            source_id + self.ssrc_offset, pt, "video", H264_CLOCK_RATE, history=512, ring_capacity=1 << 20
        )
        self._video[source_id + self.ssrc_offset] = _VideoSender(pm, s, source_id, kind)

    # ---- subscriptions ------------------------------------------------------

    def set_subscriptions(self, subscriptions: Subscriptions) -> None:
        """The bot's current video subscriptions (any thread; applied on the next tick)."""
        with self._sub_lock:
            self._pending_subs = dict(subscriptions)
            self._subscribe_all = False

    def _apply_subscriptions(self, elapsed_s: float) -> None:
        with self._sub_lock:
            subs, self._pending_subs = self._pending_subs, None
        if subs is None and not self._subscribe_all:
            return
        if subs is not None:
            self.subscriptions = subs
        for vs in self._video.values():
            if self._subscribe_all:
                wanted, pref = True, None
            else:
                wanted = vs.source_id in self.subscriptions
                pref = self.subscriptions.get(vs.source_id)
            layer = vs.choose(pref) if wanted else None
            if layer is vs.layer:
                vs.preferred = pref
                continue
            if layer is not None:
                if vs.layer is not None:
                    self.stats.layer_switches += 1
                # start (or switch) at the frame due now, with an intra frame
                vs.next_frame = int(elapsed_s * layer.fps)
                vs.intra_until_key = True
            vs.layer, vs.preferred = layer, pref
        if self._subscribe_all:
            self._subscribe_all = False
            self.subscriptions = {vs.source_id: None for vs in self._video.values()}

    # ---- pacing -------------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        """Send everything due by ``now_ns`` (called every 20 ms by the server)."""
        slots = self.media.slots
        if now_ns < self.start_ns:
            self._handle_events()  # subscriptions sent during the lead-in
            return
        due = (now_ns - self.start_ns) // SLOT_NS + 1
        while self._slot < due:
            k = self._slot % slots if self.loop else self._slot
            if k >= slots:
                break
            base = (self._slot - k) * OPUS_TICKS_PER_FRAME  # later loops of a looping meeting
            ts = self._slot * OPUS_TICKS_PER_FRAME
            for pm, stream in self._audio:
                for ev in pm.dtmf.get(k, ()):
                    stream.send(
                        ev.payload,
                        base + ev.rtp_timestamp,
                        marker=ev.marker,
                        payload_type=self.pt.telephone_event,
                        wake=False,
                    )
                    self.stats.dtmf_packets += 1
                payload = pm.audio[k]
                if payload is not None:
                    stream.send(payload, ts, wake=False)
                    self.stats.audio_packets += 1
            mixed = self.media.mixed_audio[k] if self._mixed is not None else None
            if mixed is not None and self._mixed is not None:
                self._mixed.send(mixed, ts, wake=False)
            self._slot += 1
        elapsed_s = (now_ns - self.start_ns) / 1e9
        self._apply_subscriptions(elapsed_s)
        self._handle_events()
        for vs in self._video.values():
            if vs.layer is not None:
                self._send_video(vs, elapsed_s)
        self.session.engine.wake()

    def _send_video(self, vs: _VideoSender, elapsed_s: float) -> None:
        video = vs.layer
        assert video is not None  # subscribed (the caller checks)
        n = len(video.frames)
        period = n / video.fps
        if vs.kind == "vbss":
            t = elapsed_s % self.media.script.duration_s if self.loop else elapsed_s
            live = vs.pm.sharing_at(t)
            if not live:
                vs.was_live = False
                vs.next_frame = int(elapsed_s * video.fps) + 1
                return
            if not vs.was_live:  # a share starts: with an intra frame
                vs.was_live = True
                vs.intra_until_key = True
        if self.loop:
            total_due = int(elapsed_s * video.fps) + 1
        else:
            total_due = min(n, int(elapsed_s * video.fps) + 1)
        while vs.next_frame < total_due:
            i = vs.next_frame % n
            if not self.loop and vs.next_frame >= n:
                break
            regular = video.frames[i]
            if regular is None:  # outside the content's encoded windows
                vs.next_frame += 1
                vs.intra_until_key = True
                continue
            if vs.intra_until_key and regular.key:
                vs.intra_until_key = False
            frame = video.intra[i] if vs.intra_until_key else regular
            if frame is None:  # no intra encoding of this frame: the regular one
                frame = regular
            if vs.intra_until_key:
                self.stats.intra_frames += 1
            # continuous RTP time across loops
            ts = regular.rtp_timestamp + int((vs.next_frame // n) * period * H264_CLOCK_RATE)
            last = len(frame.payloads) - 1
            for j, payload in enumerate(frame.payloads):
                vs.stream.send(payload, ts, marker=(j == last), wake=False)
            self.stats.video_frames += 1
            self.stats.video_packets += len(frame.payloads)
            self.stats.frames_by_source[vs.source_id] = self.stats.frames_by_source.get(vs.source_id, 0) + 1
            self.stats.size_by_source[vs.source_id] = (video.width, video.height)
            vs.next_frame += 1

    def _handle_events(self) -> None:
        for ev in self.session.events():
            if ev.kind in ("pli", "fir") and ev.ssrc in self._video:
                self.stats.keyframe_requests += 1
                self._video[ev.ssrc].intra_until_key = True
            elif ev.kind == "app":
                self._on_app(ev)
        for rx in self._bot_rx:
            batch = rx.read_batch(256)
            self.stats.bot_audio_packets += len(batch)
            if len(batch):
                self.stats.bot_dtmf_packets += int(
                    np.count_nonzero(batch.payload_type == self.pt.telephone_event)
                )
            if self._bot_decoder is not None and len(batch):
                self._keep_bot_audio(batch)

    def _keep_bot_audio(self, batch) -> None:
        """Decode the bot's Opus packets and place them on the timeline of their
        RTP timestamps (48 kHz clock; the bot sends a frame every 20 ms, silence
        included, so the timeline is the call's)."""
        ts, pts, arrivals = batch.timestamp, batch.payload_type, batch.arrival_ns
        decoder = self._bot_decoder
        assert decoder is not None  # kept only when recording the bot's audio
        for i, payload in enumerate(batch.payloads()):
            if int(pts[i]) != self.pt.opus:
                continue
            if self._bot_first_ts is None:
                self._bot_first_ts = int(ts[i])
                self.bot_audio_first_arrival_ns = int(arrivals[i]) or time.monotonic_ns()
            ticks = (int(ts[i]) - self._bot_first_ts) & 0xFFFFFFFF
            if ticks >= 1 << 31:  # reordered before the first one: not kept
                continue
            try:
                pcm = decoder.decode(bytes(payload))
            except Exception:  # a bad payload: counted by the decoder, skipped here
                continue
            self._bot_chunks.append((ticks * SAMPLE_RATE_HZ // OPUS_CLOCK_RATE, pcm))

    def bot_audio(self) -> np.ndarray:
        """What the bot sent, decoded (16 kHz mono int16) from its first packet on;
        empty unless made with ``record_bot_audio``."""
        chunks = list(self._bot_chunks)
        if not chunks:
            return np.zeros(0, np.int16)
        out = np.zeros(max(o + len(p) for o, p in chunks), np.int16)
        for offset, pcm in chunks:
            out[offset : offset + len(pcm)] = pcm
        return out

    def _on_app(self, ev) -> None:
        """An RTCP APP packet from the bot (already SRTCP-authenticated by the
        engine). "MBVS": the bot's whole current subscription list, applied
        when its version is newer than the last one applied (the bot repeats it
        every second); malformed data is counted and ignored."""
        if bytes(getattr(ev, "name", b"")) != APP_NAME or getattr(ev, "subtype", 0) != 0:
            self.stats.other_app_packets += 1
            return
        try:
            version, entries = decode_subscriptions(bytes(ev.data))
        except SubscriptionError as exc:
            self.stats.malformed_subscriptions += 1
            log.debug("malformed MBVS packet from SSRC %s ignored: %s", getattr(ev, "ssrc", "?"), exc)
            return
        if not newer(version, self._app_version):
            self.stats.subscription_repeats += 1
            return
        self._app_version = version
        self.stats.subscription_updates += 1
        self.set_subscriptions(dict(entries))

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


#: How the emulator ends a call whose media cannot start: the documented call end reason for
#: the bot's media (https://learn.microsoft.com/graph/api/call-delete, "Call end reason codes").
MEDIA_FAILURE = (
    500,
    1005,
    "Server encountered connectivity error with Bot's media. "
    "Please check media connectivity between Bot and Microsoft.",
)


class MediaRefused(ValueError):
    """A bot media configuration the conference cannot start media with."""


def conference_keys(doc: MediaConfig) -> tuple[bytes | None, bytes | None]:
    """``(tx_key, rx_key)`` of the conference's session for the bot's document
    ``doc``: the conference protects with the bot's ``srtp.receiveKey`` and
    unprotects with its ``srtp.key`` (docs/media-config.md); (None, None) for
    plain RTP (``srtp: null``). :class:`MediaRefused` without a receiveKey:
    there is no channel to send the bot a key of the conference's own."""
    if doc.srtp is None:
        return None, None
    receive = doc.srtp.receive_key_bytes
    if receive is None:
        raise MediaRefused(
            "srtp.receiveKey is missing: the conference has no key to protect its "
            "media with (the emulator sends no answer document; see "
            "docs/media-config.md)"
        )
    return receive, doc.srtp.key_bytes


class ConferenceHandler:
    """The emulator's media handler (``GraphEmulator(media_handler=...)``).

    When an app-hosted call is established it reads the bot's media
    configuration document from the Graph request (``appHostedMediaConfig.blob``
    of answer / join / createCall) and starts a :class:`ConferenceMedia` that
    sends to the document's endpoint, protected with its ``srtp.receiveKey``,
    under the source ids of the call's roster. Nothing else passes between the
    bot and the conference: the bot's subscriptions arrive as RTCP APP packets
    on the media path. A document that cannot be used (not valid, or SRTP
    without ``receiveKey``) is refused: logged, and the call is ended the way
    Graph ends a call whose media fails (``MEDIA_FAILURE``).

    A call into a scripted meeting (``meetings``, see ``bot.emulator.meeting``)
    plays that meeting's media from the meeting's time zero (set when the first
    bot's call starts); a call given media of its own (:meth:`play_for_call`: a
    scripted caller ringing the bot) plays that, and keeps what the bot sends
    (:meth:`bot_audio`); other calls play ``media`` (when given) from their own
    start, matching participants by display name.
    """

    #: how many ended calls' conferences are kept for :meth:`report` and :meth:`bot_audio`
    keep_ended = 32

    def __init__(
        self,
        server: MediaServer | None,
        media: MeetingMedia | None = None,
        *,
        loop: bool = False,
        lead_in_s: float = 1.0,
    ) -> None:
        """``server=None`` gives every call a media server of its own (its own
        UDP port, as calls land on different media processors in Teams).
        ``lead_in_s``: how long after a call starts its meeting's time zero is
        (the time a bot needs to learn the roster and open its receive streams)."""
        self.server = server
        self._own_servers: dict[str, MediaServer] = {}
        self.media = media
        self.loop = loop
        self.lead_in_s = lead_in_s
        self.conferences: dict[str, ConferenceMedia] = {}
        #: scripted meetings by Graph meeting id (``ScriptedMeeting`` registers itself)
        self.meetings: dict[str, ScriptedMeeting] = {}
        #: call id -> why its media configuration was refused
        self.refused: dict[str, str] = {}
        #: call id -> the media of a scripted caller (``play_for_call``)
        self.callers: dict[str, MeetingMedia] = {}
        #: the conferences of ended calls, latest last
        self.ended: dict[str, ConferenceMedia] = {}
        self.emulator = None

    def play_for_call(self, call_id: str, media: MeetingMedia) -> None:
        """``media`` (one scripted person: the caller) is what the call ``call_id``
        plays once it is established, from ``lead_in_s`` after that; the bot's
        audio in that call is decoded and kept."""
        self.callers[call_id] = media

    def conference(self, call_id: str) -> ConferenceMedia | None:
        """The call's conference, running or ended (the last ``keep_ended``)."""
        return self.conferences.get(call_id) or self.ended.get(call_id)

    def report(self, call_id: str) -> dict | None:
        """The conference's counters and, for a scripted caller, the timing of the
        bot's audio: ``startS`` is ``time.monotonic()`` of the script's time zero,
        ``botAudioStartS`` that of the first sample of :meth:`bot_audio`."""
        conf = self.conference(call_id)
        if conf is None:
            return None
        stats = {
            k: ({str(sid): v for sid, v in val.items()} if isinstance(val, dict) else val)
            for k, val in conf.stats.__dict__.items()
        }
        first = conf.bot_audio_first_arrival_ns
        return {
            "callId": call_id,
            "ended": conf.closed,
            "stats": stats,
            "startS": conf.start_ns / 1e9,
            "botAudioStartS": first / 1e9 if first is not None else None,
            "botAudioSamples": len(conf.bot_audio()),
        }

    def bot_audio(self, call_id: str):
        """What the bot sent in the call (16 kHz mono int16), or None."""
        conf = self.conference(call_id)
        return conf.bot_audio() if conf is not None else None

    def bind(self, emulator) -> None:
        """The emulator this handler serves (``GraphEmulator`` calls it): refused
        calls are ended through it."""
        self.emulator = emulator

    def _people(self, call) -> list:
        people = list(call.participants.values())
        if call.meeting is not None:
            people += [p for p in call.meeting.participants.values() if p.id not in call.participants]
        return people

    def _source_ids(self, call) -> dict[str, tuple[int, int | None]]:
        ids: dict[str, tuple[int, int | None]] = {}
        for p in self._people(call):
            audio = p.stream("audio")
            video = p.stream("video")
            if p.display_name and audio is not None:
                ids[p.display_name] = (
                    int(audio.source_id),
                    int(video.source_id) if video is not None else None,
                )
        return ids

    def _screen_ids(self, call) -> dict[str, int]:
        ids = {}
        for p in self._people(call):
            vbss = p.stream("videoBasedScreenSharing")
            if p.display_name and vbss is not None:
                ids[p.display_name] = int(vbss.source_id)
        return ids

    def _refuse(self, call, why: str) -> None:
        code, subcode, message = MEDIA_FAILURE
        log.error(
            "call %s: the bot's media configuration is refused: %s; the emulator ends the "
            "call as a media failure (%s/%s)",
            call.id,
            why,
            code,
            subcode,
        )
        self.refused[call.id] = why
        if self.emulator is not None:
            self.emulator.service.end_by_remote(call, message, code=code, subcode=subcode)

    async def call_started(self, call, blob: str | None) -> None:
        try:
            if not blob:
                raise MediaRefused("appHostedMediaConfig.blob is empty")
            try:
                bot_cfg = MediaConfig.from_blob(blob)
            except MediaConfigError as exc:
                raise MediaRefused(f"not a valid media configuration document: {exc}") from None
            if bot_cfg.role != "bot":
                raise MediaRefused(f"role is {bot_cfg.role!r}, not 'bot'")
            tx_key, rx_key = conference_keys(bot_cfg)
        except MediaRefused as exc:
            self._refuse(call, str(exc))
            return
        scripted = self.meetings.get(call.meeting.id) if call.meeting is not None else None
        caller = self.callers.pop(call.id, None)
        media = scripted.media if scripted is not None else caller or self.media
        if media is None:
            log.info("call %s: no simulated media (not in a scripted meeting)", call.id)
            return
        server = self.server
        if server is None:
            server = self._own_servers[call.id] = MediaServer("127.0.0.1")
            server.start()
        if scripted is not None:
            start_ns = scripted.begin(self.lead_in_s)
            source_ids, screen_ids = scripted.source_ids, scripted.screen_ids
        else:
            start_ns = None
            source_ids, screen_ids = self._source_ids(call), self._screen_ids(call)
        ep = bot_cfg.endpoint
        audio = bot_cfg.section("audio")
        wants_video = any(
            s is not None and s.receives for s in (bot_cfg.section("video"), bot_cfg.section("vbss"))
        )
        conf = ConferenceMedia(
            server.engine,
            media,
            (ep.address, ep.port),
            remote_rtcp_port=0 if ep.rtcp_mux else (ep.rtcp_port or ep.port + 1),
            srtp_profile=bot_cfg.srtp.profile if bot_cfg.srtp else None,
            tx_key=tx_key,
            rx_key=rx_key,
            bot_audio_ssrcs=tuple(audio.ssrcs) if audio is not None and audio.sends else (),
            loop=self.loop and scripted is None,
            send_video=wants_video,
            subscribed_video={},
            source_ids=source_ids,
            screen_ids=screen_ids,
            lead_in_s=self.lead_in_s,
            start_ns=start_ns,
            mixer_source_id=int(next_source_id()),
            payload_types=PayloadTypes.of(bot_cfg),
            record_bot_audio=caller is not None,
        )
        self.conferences[call.id] = conf
        server.attach(call.id, conf)
        log.info(
            "call %s: conference media to %s:%s from udp %s:%s", call.id, ep.address, ep.port, *server.address
        )

    async def call_ended(self, call) -> None:
        self.callers.pop(call.id, None)
        conf = self.conferences.pop(call.id, None)
        if conf is not None:
            self.ended[call.id] = conf
            while len(self.ended) > self.keep_ended:
                self.ended.pop(next(iter(self.ended)))
        own = self._own_servers.pop(call.id, None)
        if own is not None:
            own.stop()
        elif self.server is not None:
            self.server.detach(call.id)
        scripted = self.meetings.get(call.meeting.id) if call.meeting is not None else None
        if scripted is not None:
            scripted.call_left()

    def close(self) -> None:
        for own in self._own_servers.values():
            own.stop()
        self._own_servers.clear()

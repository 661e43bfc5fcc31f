"""The demo bot's media provider (``Bot(config, media=...)``).

It owns the bot's native engine, writes the bot's media configuration
document for each call (``media_config_blob``: our endpoint, the SRTP key
we protect with and the one the remote protects with, ``srtp.receiveKey`` —
it becomes ``appHostedMediaConfig.blob``), opens the call's media session at
once (latching onto the remote's address from its first authentic packet:
no answer document comes back, docs/media-config.md), and follows the roster: every participant's audio and video media source id
(``mediaStreams[].sourceId``) becomes a receive stream whose frames reach the
processors under that participant's display name; a participant's
video-based screen-sharing stream is received while they share. The video
subscriptions go to the conference in the media plane: an SRTCP-protected
RTCP APP packet "MBVS" (``mediacore.subscriptions``) on every change,
repeated every second. All calls' audio runs on
one native audio path (``mediacore.audio.path``): a graph per call on a
staggered audio worker, finished frames handed over in batches.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from mediacore.engine import Engine
from mediacore.errors import MediacoreError
from mediacore.mediaconfig import MediaConfig
from mediacore.subscriptions import APP_NAME, encode_subscriptions
from mediacore.processors.transcription import SpeechTranscriber
from mediacore.processors.video_analytics import VideoAnalyzer

from mediacore.audio.path import NativeAudioPath
from .receiver import MeetingReceiver, SourceInfo

log = logging.getLogger(__name__)


class DemoBotMedia:
    def __init__(self, engine: Engine, *, transcriber: SpeechTranscriber,
                 analytics: VideoAnalyzer | None, address: str = "127.0.0.1",
                 srtp_profile: str = "AES_CM_128_HMAC_SHA1_80") -> None:
        self.engine = engine
        self.transcriber = transcriber
        self.analytics = analytics
        self.address = address
        self.srtp_profile = srtp_profile
        self.local: dict[str, MediaConfig] = {}       # mpMediaSessionId -> our document
        self.receivers: dict[str, MeetingReceiver] = {}  # mpMediaSessionId -> receiver
        self.sessions: dict[str, object] = {}
        self.call_sessions: dict[str, str] = {}        # Graph call id -> mpMediaSessionId
        self._pending_sources: dict[str, dict[int, SourceInfo]] = {}  # call id -> sources
        self._lock = threading.Lock()
        self.epoch_ns: int | None = None
        self._by_tag: dict[int, MeetingReceiver] = {}
        self._next_tag = 1
        #: mpMediaSessionId -> (version, APP data) of the current subscription list
        self._subs: dict[str, tuple[int, bytes]] = {}
        self._subs_sent: dict[str, float] = {}     # when it last went out (monotonic)
        self._stop = threading.Event()
        self.audio = NativeAudioPath(self._on_frames, self._on_event, workers=1)
        self._repeater = threading.Thread(target=self._repeat_subscriptions, daemon=True,
                                          name="demo-subscriptions")
        self._repeater.start()

    # ---- the native audio path's reader thread: frames and events by call (tag) -------

    def _on_frames(self, frames, kinds, seen_ns: int) -> None:
        tags = frames["header"]["tag"]
        first = int(tags[0])
        if (tags == first).all():
            r = self._by_tag.get(first)
            if r is not None:
                r.on_frames(frames, kinds, seen_ns)
            return
        for tag in np.unique(tags).tolist():
            r = self._by_tag.get(int(tag))
            if r is not None:
                sel = tags == tag
                r.on_frames(frames[sel], kinds[sel], seen_ns)

    def _on_event(self, event) -> None:
        r = self._by_tag.get(event.tag)
        if r is not None:
            r.on_event(event)

    # ---- Bot media provider protocol -------------------------------------------------

    # ---- bot.media.MediaProvider --------------------------------------------------------

    async def media_config(self, call) -> str:
        return self.media_config_blob(call)

    async def call_started(self, call, blob: str) -> None:
        with self._lock:
            for sid, doc in self.local.items():
                if doc.to_blob() == blob:
                    self.call_sessions[call.id] = sid
            sid = self.call_sessions.get(call.id)
            receiver = self.receivers.get(sid) if sid else None
            pending = dict(self._pending_sources.get(call.id, {}))
        if receiver is not None:       # roster notifications that came before this
            for ssrc, info in pending.items():
                receiver.add_source(ssrc, info)
            if any(i.kind != "audio" for i in pending.values()):
                self.publish_subscriptions(call.id)

    async def media_state_changed(self, call, media_state) -> None:
        pass

    async def media_unused(self, blob: str) -> None:
        """Graph refused the request ``blob`` went in: release the session opened for it."""
        with self._lock:
            sid = next((s for s, doc in self.local.items() if doc.to_blob() == blob), None)
            if sid is None:
                return
            self.local.pop(sid, None)
            self._subs.pop(sid, None)
            receiver = self.receivers.pop(sid, None)
            session = self.sessions.pop(sid, None)
        if receiver is not None:
            receiver.stop()
        if session is not None:
            session.close()

    def media_config_blob(self, call) -> str:
        call_id = getattr(call, "id", None) if call is not None else None
        doc = MediaConfig.generate(self.address, self.engine.port, role="bot",
                                   kinds=("audio", "video"), srtp_profile=self.srtp_profile,
                                   call_id=call_id, receive_key=True)
        with self._lock:
            self.local[doc.media_session_id] = doc
            if call_id:
                self.call_sessions[call_id] = doc.media_session_id
        self._open(doc)
        return doc.to_blob()

    async def participants_changed(self, call, change) -> None:
        me = getattr(call.resource, "my_participant_id", None)
        changed = False
        for p in list(change.added) + list(change.updated):
            if p.id is not None and p.id == me:
                continue  # our own streams
            name = _display_name(p)
            for ms in p.media_streams or []:
                kind = _KINDS.get((ms.media_type or "").lower())
                if kind is None or ms.source_id in (None, ""):
                    continue
                ssrc = int(ms.source_id)
                if kind == "vbss" and (ms.direction or "") not in ("sendOnly", "sendReceive"):
                    changed |= self._remove_source(call.id, ssrc)   # stopped sharing
                    continue
                changed |= self._add_source(call.id, ssrc, SourceInfo(name, kind))
        for p in change.removed:
            for ms in p.media_streams or []:
                if ms.source_id not in (None, ""):
                    changed |= self._remove_source(call.id, int(ms.source_id))
        if changed:
            self.publish_subscriptions(call.id)

    def publish_subscriptions(self, call_id: str) -> None:
        """Send the conference the call's current video subscriptions (an MBVS
        APP packet with a new version; the repeater sends it again every second)."""
        with self._lock:
            sid = self.call_sessions.get(call_id)
            receiver = self.receivers.get(sid) if sid else None
            if receiver is None:
                return
            subs = receiver.video_subscriptions()
            version = self._subs.get(sid, (0, b""))[0] + 1
            self._subs[sid] = (version, encode_subscriptions(
                version, [(ssrc, pref) for ssrc, (_, pref) in sorted(subs.items())]))
        self._send_subscriptions(sid)

    def _send_subscriptions(self, sid: str) -> None:
        with self._lock:
            current = self._subs.get(sid)
            session = self.sessions.get(sid)
            doc = self.local.get(sid)
        if current is None or session is None or doc is None:
            return
        try:
            session.send_app(doc.section("audio").ssrcs[0], APP_NAME, current[1])
        except MediacoreError:   # no remote yet (it latches on the conference's first packet)
            return
        self._subs_sent[sid] = time.monotonic()

    def _repeat_subscriptions(self) -> None:
        """Every second the current list again (until the remote is known: every 100 ms)."""
        while not self._stop.wait(0.1):
            now = time.monotonic()
            for sid in list(self._subs):
                if now - self._subs_sent.get(sid, 0.0) >= 1.0:
                    self._send_subscriptions(sid)

    async def call_ended(self, call) -> None:
        with self._lock:
            sid = self.call_sessions.get(call.id)
            receiver = self.receivers.pop(sid, None) if sid else None
            self._subs.pop(sid, None)
        if receiver is not None:
            receiver.stop()

    # ---- the call's media session, opened with our document -------------------------

    def _open(self, local: MediaConfig) -> None:
        """The session of ``local``: we protect with ``srtp.key``, the remote with
        ``srtp.receiveKey``; its address is learnt from its first authentic
        packet (``latch``, symmetric RTP, RFC 4961)."""
        session = self.engine.add_session(
            None, srtp_profile=local.srtp.profile if local.srtp else None,
            tx_key=local.srtp.key_bytes if local.srtp else None,
            rx_key=local.srtp.receive_key_bytes if local.srtp else None, latch=True)
        with self._lock:
            tag = self._next_tag
            self._next_tag += 1
        receiver = MeetingReceiver(session, transcriber=self.transcriber, analytics=self.analytics,
                                   audio=self.audio, tag=tag)
        self._by_tag[tag] = receiver
        if self.epoch_ns is not None:
            receiver.epoch_ns = self.epoch_ns
        call_id = local.call_id
        with self._lock:
            sid = local.media_session_id
            if call_id:
                self.call_sessions[call_id] = sid
            self.sessions[sid] = session
            self.receivers[sid] = receiver
            pending = dict(self._pending_sources.get(call_id, {})) if call_id else {}
        for ssrc, info in pending.items():
            receiver.add_source(ssrc, info)
        receiver.start()
        if call_id and any(i.kind != "audio" for i in pending.values()):
            self.publish_subscriptions(call_id)

    def _add_source(self, call_id: str, ssrc: int, info: SourceInfo) -> bool:
        with self._lock:
            pending = self._pending_sources.setdefault(call_id, {})
            if pending.get(ssrc) == info:
                return False
            pending[ssrc] = info
            sid = self.call_sessions.get(call_id)
            receiver = self.receivers.get(sid) if sid else None
        if receiver is not None:
            receiver.add_source(ssrc, info)
        return info.kind != "audio"

    def _remove_source(self, call_id: str, ssrc: int) -> bool:
        with self._lock:
            info = self._pending_sources.get(call_id, {}).pop(ssrc, None)
            sid = self.call_sessions.get(call_id)
            receiver = self.receivers.get(sid) if sid else None
        if info is None or info.kind == "audio":
            return False
        if receiver is not None:
            receiver.remove_source(ssrc)
        return True

    def receiver_for(self, call_id: str) -> MeetingReceiver | None:
        sid = self.call_sessions.get(call_id)
        return self.receivers.get(sid) if sid else None

    @property
    def receiver(self) -> MeetingReceiver | None:
        return next(iter(self.receivers.values()), None)

    def close(self) -> None:
        self._stop.set()
        self._repeater.join(timeout=2)
        for r in list(self.receivers.values()):
            r.stop()
        self.receivers.clear()
        self.audio.close()


_KINDS = {"audio": "audio", "video": "video", "videobasedscreensharing": "vbss"}


def _display_name(p) -> str:
    return p.display_name or p.id or "unknown"

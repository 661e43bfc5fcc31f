"""The demo bot's media provider (``Bot(config, media=...)``).

It owns the bot's native engine, writes the bot's media configuration
document for each call (``media_config_blob``: our endpoint and the SRTP key
we protect with — it becomes ``appHostedMediaConfig.blob``), opens the media
session once the remote side's document arrives (``accept_answer``), and
follows the roster: every participant's audio and video media source id
(``mediaStreams[].sourceId``) becomes a receive stream whose frames reach the
processors under that participant's display name.
"""

from __future__ import annotations

import logging
import threading

from mediacore.engine import Engine
from mediacore.mediaconfig import MediaConfig
from mediacore.processors.transcription import TranscriptionProcessor
from mediacore.processors.video_analytics import VideoAnalyticsProcessor

from .receiver import MeetingReceiver, SourceInfo

log = logging.getLogger(__name__)


class DemoBotMedia:
    def __init__(self, engine: Engine, *, transcriber: TranscriptionProcessor,
                 analytics: VideoAnalyticsProcessor | None, address: str = "127.0.0.1",
                 srtp_profile: str = "AES_CM_128_HMAC_SHA1_80") -> None:
        self.engine = engine
        self.transcriber = transcriber
        self.analytics = analytics
        self.address = address
        self.srtp_profile = srtp_profile
        self.local: dict[str, MediaConfig] = {}       # mpMediaSessionId -> our document
        self.receivers: dict[str, MeetingReceiver] = {}
        self.sessions: dict[str, object] = {}
        self._pending_sources: dict[int, SourceInfo] = {}
        self._lock = threading.Lock()
        self.epoch_ns: int | None = None

    # ---- Bot media provider protocol -------------------------------------------------

    def media_config_blob(self, call) -> str:
        doc = MediaConfig.generate(self.address, self.engine.port, role="bot",
                                   kinds=("audio", "video"), srtp_profile=self.srtp_profile,
                                   call_id=getattr(call, "id", None) if call is not None else None)
        with self._lock:
            self.local[doc.media_session_id] = doc
        return doc.to_blob()

    def participants_changed(self, call, change) -> None:
        for p in list(change.added) + list(change.updated):
            name = _display_name(p)
            for ms in p.media_streams or []:
                kind = (ms.media_type or "").lower()
                if kind not in ("audio", "video") or ms.source_id in (None, ""):
                    continue
                if p.id == getattr(call.resource, "my_participant_id", None):
                    continue  # our own streams
                self._add_source(int(ms.source_id), SourceInfo(name, kind))

    def call_ended(self, call) -> None:
        for sid, rec in list(self.receivers.items()):
            rec.stop()
            self.receivers.pop(sid, None)

    # ---- the remote side's answer (see bot.emulator.conference.ConferenceHandler) -----

    def accept_answer(self, ours: MediaConfig, theirs: MediaConfig) -> None:
        local = self.local.get(ours.media_session_id, ours)
        ep = theirs.endpoint
        session = self.engine.add_session(
            (ep.address, ep.port), srtp_profile=local.srtp.profile if local.srtp else None,
            tx_key=local.srtp.key_bytes if local.srtp else None,
            rx_key=theirs.srtp.key_bytes if theirs.srtp else None)
        receiver = MeetingReceiver(session, transcriber=self.transcriber, analytics=self.analytics)
        if self.epoch_ns is not None:
            receiver.epoch_ns = self.epoch_ns
        with self._lock:
            self.sessions[local.media_session_id] = session
            self.receivers[local.media_session_id] = receiver
            pending = dict(self._pending_sources)
        for ssrc, info in pending.items():
            receiver.add_source(ssrc, info)
        receiver.start()

    def _add_source(self, ssrc: int, info: SourceInfo) -> None:
        with self._lock:
            self._pending_sources[ssrc] = info
            receivers = list(self.receivers.values())
        for r in receivers:
            r.add_source(ssrc, info)

    @property
    def receiver(self) -> MeetingReceiver | None:
        return next(iter(self.receivers.values()), None)


def _display_name(p) -> str:
    return p.display_name or p.id or "unknown"

"""``MediaHost``: the media of one process — one engine (one UDP port, the
way a Teams media endpoint uses one public port per host), the native audio
path (audio workers and their reader threads), and the calls.

Create one per process, after any fork, and make each call's media with
:meth:`MediaHost.create_call`::

    host = MediaHost(bind_address="0.0.0.0", port=8445, public_address="203.0.113.10")
    media = host.create_call(call_id)
    blob = media.config_blob()            # -> appHostedMediaConfig.blob
    media.update_sources([...])           # from the roster, whenever it changes
    async for frame in media.audio(participant_id): ...
    media.close()
    host.close()

A housekeeping thread (every 100 ms) reads each call's session events (the
remote's address learnt, key-frame requests for what we send) and repeats
video subscriptions to the remote.
"""

from __future__ import annotations

import ctypes
import ipaddress
import itertools
import logging
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from .audio.path import AudioPath, LatencyRecorder
from .callmedia import CallMedia
from .engine import SRTP_KEY_LENGTHS, Engine, EngineStats

log = logging.getLogger(__name__)

#: blocks of this size and more come from mmap and go back to the system when freed
MMAP_THRESHOLD_BYTES = 128 * 1024
_heap_tuned = False


def limit_heap_retention() -> bool:
    """Pin glibc's mmap threshold (``mallopt(M_MMAP_THRESHOLD)``) for this
    process, once: a media process frees many large blocks per call (frames,
    video rings, codec buffers), and glibc's dynamic threshold otherwise rises
    to the largest block freed, after which such blocks come from the heap's
    arenas and their memory stays in the process once freed (the soak's RSS
    grew 5-17 MiB a minute with the heap in use flat; pinned, it stays flat:
    docs/soak.md). Called by :class:`MediaHost`; a no-op (False) off glibc."""
    global _heap_tuned
    if _heap_tuned or not sys.platform.startswith("linux"):
        return _heap_tuned
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_mmap_threshold = -3
    _heap_tuned = bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD_BYTES))
    return _heap_tuned


DEFAULT_SRTP_PROFILE = "AES_CM_128_HMAC_SHA1_80"
HOUSEKEEPING_S = 0.1


class MediaHost:
    """One per process: the engine, the audio path, the calls.

    ``bind_address``/``port``: where the engine's UDP socket listens (port 0:
    any). ``public_address``/``public_port``: what remotes send to (the VM's
    public IP and the port forwarded to ours); they default to the bound ones,
    and must be a numeric address (no DNS on the media path).
    ``srtp_profile``: ``None`` for plain RTP (tests only).
    ``audio_workers``: native audio worker threads (default: one per core, at
    most four). ``latency``: record each audio frame's wire-to-processor
    latency (``host.audio.latency``). ``socket_buffer_bytes``: the UDP
    socket's receive and send buffers (bursts of hundreds of calls).
    """

    def __init__(
        self,
        bind_address: str = "127.0.0.1",
        port: int = 0,
        *,
        public_address: str | None = None,
        public_port: int | None = None,
        srtp_profile: str | None = DEFAULT_SRTP_PROFILE,
        audio_workers: int | None = None,
        latency: bool = False,
        socket_buffer_bytes: int = 4 << 20,
    ) -> None:
        if srtp_profile is not None and srtp_profile not in SRTP_KEY_LENGTHS:
            raise ValueError(f"unknown SRTP profile {srtp_profile!r}; known: {', '.join(SRTP_KEY_LENGTHS)}")
        public = public_address or bind_address
        try:
            addr = ipaddress.ip_address(public)
        except ValueError:
            raise ValueError(f"public address {public!r} must be a numeric IPv4 or IPv6 address") from None
        if addr.is_unspecified:
            raise ValueError(
                f"bound to {bind_address}: give the public address remotes send to (public_address)"
            )
        if audio_workers is not None and audio_workers < 1:
            raise ValueError("audio_workers must be at least 1")
        limit_heap_retention()
        self.srtp_profile = srtp_profile
        self.engine = Engine(
            bind_address, port, rcvbuf_bytes=socket_buffer_bytes, sndbuf_bytes=socket_buffer_bytes
        )
        try:
            self.public_address = public
            self.public_port = public_port or self.engine.port
            recorder = LatencyRecorder()
            recorder.enabled = latency
            self.audio = AudioPath(workers=audio_workers, latency=recorder)
        except BaseException:
            self.engine.close()
            raise
        self._calls: dict[str, CallMedia] = {}
        self._lock = threading.Lock()
        self._tags = itertools.count(1)
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._housekeeping, daemon=True, name="mediabot-housekeeping")
        self._thread.start()

    @property
    def port(self) -> int:
        """The UDP port the engine listens on."""
        return self.engine.port

    @property
    def calls(self) -> dict[str, CallMedia]:
        with self._lock:
            return dict(self._calls)

    def create_call(
        self,
        call_id: str | None = None,
        *,
        mixed: bool = False,
        video: bool = True,
        screen_share: bool = True,
        send_video: bool = False,
        output_dir: str | Path | None = None,
        **options: Any,
    ) -> CallMedia:
        """The media of a new call. ``call_id``: the signaling side's id (a
        random one when not known yet: a call placed by the bot gets Graph's
        id only in the answer; :meth:`rename_call` then). ``mixed``: also
        mix every speaker (``mixed_audio()``, processors with ``audio="mixed"``).
        ``video`` / ``screen_share``: offer to receive them. ``send_video``: a
        video send path (``send_video()``). ``send_audio=False``: a bot that
        only listens (its document's audio is receive-only, without an SSRC;
        no audio is encoded or sent, and the sending methods raise)."""
        if self._closed:
            raise RuntimeError("the media host is closed")
        call_id = call_id or str(uuid.uuid4())
        with self._lock:
            if call_id in self._calls:
                raise ValueError(f"call {call_id} already has media")
            tag = next(self._tags)
        media = CallMedia(
            self,
            call_id,
            tag,
            mixed=mixed,
            video=video,
            screen_share=screen_share,
            send_video=send_video,
            output_dir=output_dir,
            **options,
        )
        with self._lock:
            self._calls[call_id] = media
        return media

    def rename_call(self, old_id: str, new_id: str) -> None:
        """Key a call's media by the id the signaling side learnt later."""
        with self._lock:
            media = self._calls.pop(old_id)
            media.call_id = new_id
            self._calls[new_id] = media

    def get(self, call_id: str) -> CallMedia | None:
        with self._lock:
            return self._calls.get(call_id)

    def _forget(self, media: CallMedia) -> None:
        with self._lock:
            if self._calls.get(media.call_id) is media:
                del self._calls[media.call_id]

    def stats(self) -> EngineStats:
        return self.engine.stats()

    def _housekeeping(self) -> None:
        while not self._stop.wait(HOUSEKEEPING_S):
            for media in self.calls.values():
                try:
                    media._housekeeping()
                except Exception:  # one call's trouble must not stop the others'
                    log.exception("housekeeping of call %s failed", media.call_id)

    def close(self) -> None:
        """End every call's media, stop the audio path and the engine (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(5)
        for media in list(self.calls.values()):
            try:
                media.close("media host closed")
            except Exception:
                log.exception("closing call %s failed", media.call_id)
        self.audio.close()
        self.engine.close()

    def __enter__(self) -> MediaHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

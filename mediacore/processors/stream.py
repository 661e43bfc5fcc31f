"""Built-in processor ``stream``: a call's audio and events, live, over a
WebSocket to an endpoint the user runs, and audio back from it into the call.

So a team can consume a call's media in any language: the messages are JSON
text (``start``, events, ``dropped``) and binary audio with a small fixed
little-endian header, all documented in docs/streaming.md. In short:

* the bot connects (aiohttp client) to ``url``, with ``Authorization: Bearer
  <token>`` when ``token_env`` names an environment variable holding a token;
* every connection begins with a ``start`` message (the call, the audio
  format, who is there, how many connections came before), then a
  ``dropped`` message when frames were lost since the last report;
* each speaker's own 20 ms frames (and the mix, when the call has one) go as
  binary messages: a header (version, kind, header length, per-stream
  sequence number, 100-ns timestamp on the media clock, flags, the
  participant id) then 640 bytes of 16 kHz s16le mono PCM;
* binary messages from the server are 16 kHz s16le mono PCM played into the
  call (``CallMedia.send_audio``).

**Delivery.** At most once: a message is taken from the buffer before it is
written, and never written twice. While the socket is away (or slower than
the call), messages wait in a bounded buffer of ``buffer_ms`` of audio; past
that the oldest audio goes, counted per stream. Sequence numbers count every
frame this processor got, per stream, so a gap is a loss whatever caused it;
the ``dropped`` message (on reconnect, and at most once a second while
connected, like :class:`~mediacore.events.FramesDropped`) says how many were
lost here since the last one. Events are buffered apart and are not pushed
out by audio.

**Reconnection** uses exponential back-off with jitter: the n-th attempt in a
row waits a random time between half and all of ``min(reconnect_max_s,
reconnect_min_s * 2**n)``; a connection that opens resets it.

The WebSocket runs on a thread of its own with an asyncio loop of its own:
never on the bot's loop, never on the media threads. Thread mode only (it
needs the call's media to play the server's audio).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import struct
import threading
import time
from collections import deque
from typing import Any

import aiohttp
import numpy as np

from ..audio.codecs import FRAME_SAMPLES, SAMPLE_RATE_HZ
from ..audio.frames import FLAG_CONCEALED, FLAG_SILENCE, MIXED
from ..events import (
    CallEnded,
    DominantSpeakerChanged,
    DtmfReceived,
    FramesDropped,
    MediaEvent,
    ParticipantJoined,
    ParticipantLeft,
    ScreenShareStarted,
    ScreenShareStopped,
)
from ..processor import AudioBatch, Processor, ProcessorContext

log = logging.getLogger(__name__)

#: the protocol's version, in ``start`` and in every audio header
VERSION = 1
#: audio header: version u8, kind u8, header length u16, sequence u32,
#: timestamp_100ns i64, flags u8, reserved u8, id length u16 (then the id)
AUDIO_HEADER = struct.Struct("<BBHIqBBH")
KIND_PARTICIPANT = 0
KIND_MIXED = 1
#: header flags
WIRE_SILENCE = 0x01
WIRE_CONCEALED = 0x02
FRAME_BYTES = FRAME_SAMPLES * 2

#: event classes -> their ``type`` in JSON
EVENT_TYPES: dict[type, str] = {
    ParticipantJoined: "participant_joined",
    ParticipantLeft: "participant_left",
    DominantSpeakerChanged: "dominant_speaker_changed",
    DtmfReceived: "dtmf",
    ScreenShareStarted: "screen_share_started",
    ScreenShareStopped: "screen_share_stopped",
    FramesDropped: "frames_dropped",
    CallEnded: "call_ended",
}


def encode_audio(
    kind: int, sequence: int, timestamp_100ns: int, flags: int, participant_id: str, pcm: bytes
) -> bytes:
    """One binary audio message (docs/streaming.md)."""
    pid = participant_id.encode()
    head = AUDIO_HEADER.pack(
        VERSION,
        kind,
        AUDIO_HEADER.size + len(pid),
        sequence & 0xFFFFFFFF,
        timestamp_100ns,
        flags,
        0,
        len(pid),
    )
    return head + pid + pcm


def event_message(event: MediaEvent) -> dict[str, Any]:
    """An event as its JSON message: ``type`` and the event's fields."""
    d = {k: v for k, v in vars(event).items() if k != "call_id"}
    return {"type": EVENT_TYPES.get(type(event), type(event).__name__), **d}


class _Buffer:
    """The messages waiting for the socket: audio ticks (bounded in ticks,
    drop-oldest, counted per stream) and text messages (bounded apart).
    Filled by the processor's thread, drained by the socket's loop."""

    def __init__(self, max_ticks: int, max_text: int = 10_000) -> None:
        self.max_ticks = max(1, max_ticks)
        self.max_text = max_text
        self._items: deque[tuple[str, Any]] = deque()
        self._ticks = 0
        self._texts = 0
        self._lock = threading.Lock()
        #: frames lost here since the last ``dropped`` message, per (kind, id)
        self.dropped: dict[tuple[int, str], int] = {}
        self.dropped_events = 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._items)

    def put_tick(self, messages: list[tuple[tuple[int, str], bytes]]) -> None:
        with self._lock:
            self._items.append(("a", messages))
            self._ticks += 1
            while self._ticks > self.max_ticks:
                for i, (kind, _) in enumerate(self._items):
                    if kind == "a":
                        _, old = self._items[i]
                        del self._items[i]
                        self._ticks -= 1
                        for key, _msg in old:
                            self._count(key)
                        break

    def put_text(self, text: str) -> None:
        with self._lock:
            self._items.append(("t", text))
            self._texts += 1
            while self._texts > self.max_text:
                for i, (kind, _) in enumerate(self._items):
                    if kind == "t":
                        del self._items[i]
                        self._texts -= 1
                        self.dropped_events += 1
                        break

    def _count(self, key: tuple[int, str]) -> None:
        self.dropped[key] = self.dropped.get(key, 0) + 1
        self.dropped_total += 1

    def count_lost(self, item: tuple[str, Any]) -> None:
        """An item taken but not written (its connection failed)."""
        with self._lock:
            if item[0] == "a":
                for key, _msg in item[1]:
                    self._count(key)
            else:
                self.dropped_events += 1

    def take(self) -> tuple[str, Any] | None:
        with self._lock:
            if not self._items:
                return None
            item = self._items.popleft()
            if item[0] == "a":
                self._ticks -= 1
            else:
                self._texts -= 1
            return item

    def take_report(self) -> dict[str, Any] | None:
        """The ``dropped`` message for what was lost since the last one, or None."""
        with self._lock:
            if not self.dropped and not self.dropped_events:
                return None
            streams = [
                {
                    "kind": "mixed" if k == KIND_MIXED else "participant",
                    "participant_id": pid or None,
                    "count": n,
                }
                for (k, pid), n in sorted(self.dropped.items())
            ]
            report = {
                "type": "dropped",
                "timestamp_100ns": time.monotonic_ns() // 100,
                "frames": sum(self.dropped.values()),
                "events": self.dropped_events,
                "streams": streams,
                "total_frames": self.dropped_total,
            }
            self.dropped.clear()
            self.dropped_events = 0
            return report


class StreamProcessor(Processor):
    """Built-in processor ``stream`` (module documentation; docs/streaming.md).

    Options: ``url`` (``ws://`` or ``wss://``), ``token_env`` (the name of an
    environment variable holding a bearer token), ``buffer_ms`` (audio kept
    while the socket is away, default 2000), ``mixed`` / ``unmixed`` (which
    audio to send; the mix needs the call's mix), ``play`` (play the server's
    binary audio into the call), ``reconnect_min_s`` / ``reconnect_max_s``,
    ``drain_s`` (how long the end of the call waits for the buffer to go).
    """

    audio = "both"
    mode = "thread"

    def __init__(
        self,
        url: str = "",
        token_env: str | None = None,
        buffer_ms: int = 2000,
        mixed: bool = True,
        unmixed: bool = True,
        play: bool = True,
        reconnect_min_s: float = 0.25,
        reconnect_max_s: float = 10.0,
        drain_s: float = 2.0,
        queue_ms: int = 2000,
        mode: str = "thread",
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"url must be a ws:// or wss:// URL, not {url!r}")
        if mode != "thread":
            raise ValueError("the stream processor runs in thread mode (it plays into the call's media)")
        if token_env is not None and not token_env:
            raise ValueError("token_env must name an environment variable")
        if buffer_ms < 20:
            raise ValueError("buffer_ms must be at least 20")
        if not (0 < reconnect_min_s <= reconnect_max_s):
            raise ValueError("reconnect_min_s must be > 0 and <= reconnect_max_s")
        if not (mixed or unmixed):
            raise ValueError("nothing to stream: mixed and unmixed are both false")
        self.url = url
        self.token_env = token_env
        self.buffer_ms = int(buffer_ms)
        self.audio = "both" if mixed and unmixed else ("mixed" if mixed else "unmixed")
        self.play = play
        self.reconnect_min_s = float(reconnect_min_s)
        self.reconnect_max_s = float(reconnect_max_s)
        self.drain_s = float(drain_s)
        self.queue_ms = int(queue_ms)
        self.mode = mode
        self._ctx: ProcessorContext | None = None
        self._buffer = _Buffer(self.buffer_ms // 20)
        self._seq: dict[tuple[int, str], int] = {}
        self._known: dict[int, str] = {}  # source id -> the participant it was last mapped to
        self._participants: dict[str, str | None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.connections = 0
        self.frames_sent = 0
        self.messages_sent = 0
        self.frames_played = 0
        self.frames_play_dropped = 0

    # ---- the processor's thread ------------------------------------------------------------

    def on_start(self, ctx: ProcessorContext) -> None:
        self._ctx = ctx
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), daemon=True, name=f"stream-{ctx.call_id[:8]}"
        )
        self._thread.start()
        ready.wait(5)

    def on_audio_batch(self, batch: AudioBatch) -> None:
        messages: list[tuple[tuple[int, str], bytes]] = []
        flags_col = batch.records["header"]["flags"].tolist()
        ts_col = batch.timestamps_100ns.tolist()
        sid_col = batch.source_ids.tolist()
        for i, typ in enumerate(batch.kinds.tolist()):
            if typ == MIXED:
                kind, pid = KIND_MIXED, ""
            else:
                sid = sid_col[i]
                ident = batch.identity(sid)
                if ident is not None:
                    pid = self._known[sid] = ident[0]
                else:  # a leaver's last frames (the jitter buffer's drain) keep their name
                    pid = self._known.get(sid) or f"source:{sid}"
                kind = KIND_PARTICIPANT
            key = (kind, pid)
            seq = self._seq.get(key, 0)
            self._seq[key] = seq + 1
            f = flags_col[i]
            flags = (WIRE_SILENCE if f & FLAG_SILENCE else 0) | (WIRE_CONCEALED if f & FLAG_CONCEALED else 0)
            messages.append((key, encode_audio(kind, seq, ts_col[i], flags, pid, batch.pcm[i].tobytes())))
        if messages:
            self._buffer.put_tick(messages)
            self._notify()

    def on_event(self, event: MediaEvent) -> None:
        if isinstance(event, ParticipantJoined):
            self._participants[event.participant_id] = event.display_name
        elif isinstance(event, ParticipantLeft):
            self._participants.pop(event.participant_id, None)
        self._buffer.put_text(json.dumps(event_message(event)))
        self._notify()

    def on_stop(self) -> dict[str, Any]:
        self._stopping = True
        self._notify()
        if self._thread is not None:
            self._thread.join(self.drain_s + 5)
        return {
            "connections": self.connections,
            "frames_sent": self.frames_sent,
            "messages_sent": self.messages_sent,
            "frames_dropped": self._buffer.dropped_total,
            "frames_played": self.frames_played,
            "frames_play_dropped": self.frames_play_dropped,
        }

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not wake.is_set():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop has ended
                pass

    # ---- the socket's thread ---------------------------------------------------------------

    def _thread_main(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready))
        except Exception:
            log.exception("stream processor: the socket's loop failed")
        finally:
            ready.set()

    def _start_message(self) -> str:
        ctx = self._ctx
        assert ctx is not None
        return json.dumps(
            {
                "type": "start",
                "version": VERSION,
                "call_id": ctx.call_id,
                "connection": self.connections - 1,
                "epoch_100ns": ctx.epoch_100ns,
                "format": {
                    "encoding": "s16le",
                    "sample_rate_hz": SAMPLE_RATE_HZ,
                    "channels": 1,
                    "frame_ms": 20,
                    "frame_bytes": FRAME_BYTES,
                },
                "participants": [
                    {"participant_id": pid, "display_name": name} for pid, name in self._participants.items()
                ],
            }
        )

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        ready.set()
        headers = {}
        if self.token_env:
            token = os.environ.get(self.token_env)
            if token:
                headers["Authorization"] = f"Bearer {token}"
            else:
                log.error(
                    "stream processor: environment variable %s is not set: no token sent", self.token_env
                )
        attempt = 0
        deadline: float | None = None
        timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if self._stopping:
                    if deadline is None:
                        deadline = time.monotonic() + self.drain_s
                    if not len(self._buffer) or time.monotonic() >= deadline:
                        break
                try:
                    async with session.ws_connect(self.url, headers=headers, heartbeat=10.0) as ws:
                        attempt = 0
                        self.connections += 1
                        await self._connected(ws)
                    if self._stopping and not len(self._buffer):
                        break
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
                    log.info("stream processor: %s: %s", self.url, e or type(e).__name__)
                if self._stopping and deadline is not None and time.monotonic() >= deadline:
                    break
                delay = min(self.reconnect_max_s, self.reconnect_min_s * 2**attempt)
                attempt = min(attempt + 1, 30)
                await self._sleep(delay * random.uniform(0.5, 1.0), deadline)
        self._loop = None

    async def _sleep(self, seconds: float, deadline: float | None) -> None:
        if deadline is not None:
            seconds = max(0.0, min(seconds, deadline - time.monotonic()))
        await asyncio.sleep(seconds)

    async def _connected(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """One connection: ``start``, the last drops, then the buffer as it
        fills, while the server's audio is played. Returns when either side
        of the socket ends, or at the end of the call once the buffer is sent."""
        await ws.send_str(self._start_message())
        report = self._buffer.take_report()
        if report is not None:
            await ws.send_str(json.dumps(report))
        receiver = asyncio.create_task(self._receive(ws))
        try:
            await self._send(ws, receiver)
        finally:
            receiver.cancel()
            try:
                await receiver
            except (asyncio.CancelledError, Exception):
                pass
        if self._stopping and not len(self._buffer) and not ws.closed:
            await ws.close()

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, receiver: asyncio.Task) -> None:
        assert self._wake is not None
        last_report = time.monotonic()
        while not ws.closed and not receiver.done():
            if time.monotonic() - last_report >= 1.0:
                report = self._buffer.take_report()
                if report is not None:
                    last_report = time.monotonic()
                    await ws.send_str(json.dumps(report))
            item = self._buffer.take()
            if item is None:
                if self._stopping:
                    return
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                if item[0] == "a":
                    for _key, msg in item[1]:
                        await ws.send_bytes(msg)
                    self.frames_sent += len(item[1])
                    self.messages_sent += len(item[1])
                else:
                    await ws.send_str(item[1])
                    self.messages_sent += 1
            except (aiohttp.ClientError, OSError, ConnectionError, RuntimeError):
                self._buffer.count_lost(item)  # at most once: never written again
                return

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The server's messages: binary PCM to play; text is ignored."""
        carry = b""
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY and self.play:
                data = carry + msg.data
                whole = len(data) - len(data) % FRAME_BYTES
                carry = data[whole:]
                if whole:
                    self._play(np.frombuffer(data[:whole], "<i2"))
            elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                break

    def _play(self, pcm: np.ndarray) -> None:
        media = self._ctx.media if self._ctx is not None else None
        if media is None:
            return
        frames = len(pcm) // FRAME_SAMPLES
        sent = media.send_audio(pcm)
        self.frames_played += sent
        self.frames_play_dropped += frames - sent

"""Video and screen-share (VBSS) sockets on the media engine.

Receive: a :class:`VideoSocket` subscribes to remote sources (a media source
id is the sender's SSRC here) with a preferred resolution. Each subscription
owns an engine receive stream (reorder buffer with NACK), a native
depacketizer producing whole decodable access units into a ring, and one
worker thread that waits in native code (GIL released; the engine wakes it
once per frame, not per packet), drains the stream's packets with one
native call per turn, and either hands the access units on
("encoded" mode: no decode cost) or decodes them with PyAV ("decoded" mode)
on that same thread. A "decoded" socket can also hand each subscription's
access units to ``on_encoded`` (``subscribe(..., encoded=True)``) and decode
only while someone wants decoded frames (``decode=False``: a recorder that
muxes the received H.264 as it is costs no decode). Key frames are asked for whenever the depacketizer lost
sync (or the decoder failed): RTCP PLI at once, FIR (RFC 5104) if no key frame
came within ``key_frame_timeout_s`` (or two RTTs, whichever is longer), then
both again with doubling intervals up to ``key_frame_max_interval_s`` until
one arrives (the depacketizer's policy, ``mc_h264_depacketizer_poll_key_frame``).
There is no fixed limit of 10 per call: ``max_subscriptions`` is a
configurable cap.

Send: a :class:`VideoSendSocket` encodes raw frames (PyAV libx264, zero
latency) or takes encoded access units, and packetizes them natively straight
into the engine's send ring. Key frames go out on request and when the
remote asks (PLI/FIR events of the session, see :meth:`handle_events`).
:class:`VbssSendSocket` and :class:`VbssSocket` are the screen-share
variants with their own low-frame-rate ladder.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from .._native import ffi, lib
from ..engine import ReceiveStream
from ..errors import InvalidArgument, InvalidState, check
from ..rings import Ring
from .codecs import (
    SEND_LADDER,
    VBSS_LADDER,
    H264Decoder,
    H264Encoder,
    VideoLayer,
    VideoStatsCounter,
    VideoStreamStats,
    fit_size,
)
from .frames import DecodedVideoFrame
from .h264_rtp import (
    DEFAULT_MAX_FRAME,
    DepacketizerStats,
    EncodedVideoFrame,
    H264Depacketizer,
    H264Packetizer,
)

log = logging.getLogger(__name__)

MODES = ("encoded", "decoded")
# a subscription's ring of receive records (~4 s of 8 Mbit/s video)
RTP_RING_BYTES = 1 << 22
# both rings of a subscription start over at their beginning whenever the
# worker has caught up and this much is behind (Ring.set_rewind): the engine
# and the worker write and read the same cache-warm memory turn after turn.
# A burst larger than this between two worker turns could find the receive
# ring full right after a rewind; 1 MiB is a second of 8 Mbit/s video.
RING_REWIND_ROOM = 1 << 20
H264_PAYLOAD_TYPE = 96


@dataclass(slots=True)
class ReceivedAccessUnit(EncodedVideoFrame):
    """A received access unit with who sent it, as the call's media hands it
    to processors that ask for encoded video (``Processor.video_encoded``)."""

    #: sender time on the media clock (``time.monotonic_ns() // 100``), as
    #: :attr:`DecodedVideoFrame.timestamp_100ns`
    timestamp_100ns: int = 0
    participant_id: str | None = None
    display_name: str | None = None
    #: "video" (a camera) or "screen" (video-based screen sharing)
    kind: str = "video"
    call_id: str | None = None

    @property
    def source_id(self) -> int:
        return self.ssrc

    @classmethod
    def of(cls, unit: EncodedVideoFrame, **identity) -> ReceivedAccessUnit:
        return cls(
            unit.data,
            unit.rtp_timestamp,
            unit.flags,
            unit.ssrc,
            unit.first_sequence,
            unit.last_sequence,
            unit.packets,
            unit.first_arrival_ns,
            unit.last_arrival_ns,
            **identity,
        )


@dataclass
class Subscription:
    source_id: int
    preferred_resolution: tuple[int, int] | None
    stream: ReceiveStream
    depacketizer: H264Depacketizer
    frames_ring: Ring
    decoder: H264Decoder | None
    stats: VideoStatsCounter
    thread: threading.Thread | None
    stop: threading.Event
    plis_requested: int = 0
    firs_requested: int = 0
    rtt_ns: int = -1
    rtt_checked_ns: int = 0
    #: decode (a "decoded" socket): someone wants decoded frames of it
    decode: bool = True
    #: hand its access units to the socket's ``on_encoded``
    encoded: bool = False


class VideoSocket:
    """Receives H.264 video of chosen sources of one engine session.

    ``on_frame`` is called on the subscription's worker thread with an
    :class:`EncodedVideoFrame` ("encoded") or a :class:`DecodedVideoFrame`
    ("decoded"; scaled to fit the preferred resolution when one is given).
    ``on_encoded`` (optional) is called on the same thread with the
    :class:`EncodedVideoFrame` of each subscription made with
    ``encoded=True``, before it is decoded (if it is at all).
    """

    ladder = SEND_LADDER

    def __init__(
        self,
        session,
        on_frame: Callable,
        *,
        mode: str = "decoded",
        max_subscriptions: int = 32,
        socket_id: int = 0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME,
        key_frame_timeout_s: float = 0.5,
        key_frame_max_interval_s: float = 2.0,
        reorder_wait_ms: int = 0,
        decoder_threads: int = 1,
        on_encoded: Callable | None = None,
    ) -> None:
        if mode not in MODES:
            raise InvalidArgument(f"mode must be one of {MODES}, not {mode!r}")
        if max_subscriptions < 1:
            raise InvalidArgument("max_subscriptions must be >= 1")
        self.session = session
        self.on_frame = on_frame
        self.on_encoded = on_encoded
        self.mode = mode
        self.max_subscriptions = max_subscriptions
        self.socket_id = socket_id
        self.max_frame_bytes = max_frame_bytes
        self.key_frame_timeout_s = key_frame_timeout_s
        self.key_frame_max_interval_s = key_frame_max_interval_s
        self.reorder_wait_ms = reorder_wait_ms
        self.decoder_threads = decoder_threads
        self._subs: dict[int, Subscription] = {}
        self._lock = threading.Lock()
        self._closed = False

    # ---- subscriptions -------------------------------------------------------

    @property
    def subscriptions(self) -> list[int]:
        with self._lock:
            return list(self._subs)

    @property
    def receive_streams(self) -> dict[int, ReceiveStream]:
        """The engine receive stream of each subscription (source id -> stream):
        its RTP statistics, key-frame requests, its ring."""
        with self._lock:
            return {sid: sub.stream for sid, sub in self._subs.items()}

    def subscribe(
        self,
        source_id: int,
        preferred_resolution: tuple[int, int] | None = None,
        *,
        decode: bool | None = None,
        encoded: bool = False,
    ) -> None:
        """Start receiving ``source_id`` (its SSRC), or change how: ``decode``
        (a "decoded" socket; default True) decodes its frames for ``on_frame``,
        ``encoded`` hands its access units to ``on_encoded``. Decoding turned
        on mid-stream starts at the next key frame (asked for at once)."""
        decode = self.mode == "decoded" and (True if decode is None else decode)
        with self._lock:
            if self._closed:
                raise InvalidState("socket closed")
            if source_id in self._subs:
                sub = self._subs[source_id]
                sub.preferred_resolution = preferred_resolution
                sub.decode, sub.encoded = decode, encoded  # the worker follows at its next turn
                return
            if len(self._subs) >= self.max_subscriptions:
                raise InvalidState(f"at most {self.max_subscriptions} subscriptions on this socket")
            stream = self.session.add_receive_stream(
                source_id,
                media="video",
                clock_rate=90000,
                nack=True,
                reorder_wait_ms=self.reorder_wait_ms,
                ring_capacity=RTP_RING_BYTES,
                ring_rewind=RING_REWIND_ROOM,
                wake_per_frame=True,
            )
            frames_ring = Ring.create(frame_ring_bytes(self.max_frame_bytes))
            frames_ring.set_rewind(frame_ring_rewind_room(self.max_frame_bytes))
            depacketizer = H264Depacketizer(
                ring=frames_ring, max_frame_bytes=self.max_frame_bytes, ssrc=source_id
            )
            depacketizer.set_key_frame_timing(self.key_frame_timeout_s, self.key_frame_max_interval_s)
            stats = VideoStatsCounter()
            decoder = self._decoder(source_id, stats) if decode else None
            stop = threading.Event()
            sub = Subscription(
                source_id, preferred_resolution, stream, depacketizer, frames_ring, decoder, stats, None, stop
            )
            sub.decode, sub.encoded = decode, encoded
            sub.thread = threading.Thread(
                target=self._run, args=(sub,), daemon=True, name=f"video-rx-{source_id:08x}"
            )
            self._subs[source_id] = sub
            sub.thread.start()

    def _decoder(self, source_id: int, stats: VideoStatsCounter) -> H264Decoder:
        return H264Decoder(
            thread_count=self.decoder_threads, source_id=source_id, socket_id=self.socket_id, stats=stats
        )

    def _follow_decode(self, sub: Subscription) -> None:
        """On the worker: start or drop the decoder as ``sub.decode`` says."""
        if sub.decode and sub.decoder is None:
            sub.decoder = self._decoder(sub.source_id, sub.stats)
            sub.decoder.needs_key_frame = True  # mid-stream: its chain starts at a key frame
            sub.depacketizer.request_key_frame()
        elif not sub.decode and sub.decoder is not None:
            sub.decoder = None

    def unsubscribe(self, source_id: int) -> None:
        with self._lock:
            sub = self._subs.pop(source_id, None)
        if sub is not None:
            self._stop(sub)

    def _stop(self, sub: Subscription) -> None:
        sub.stop.set()
        if sub.thread is not None:
            sub.thread.join(5)
        sub.stream.close()
        sub.depacketizer.close()  # cancels a frame in progress: needs the ring's handle
        sub.frames_ring.close()

    def request_key_frame(self, source_id: int, method: str = "auto") -> None:
        """Ask the sender of ``source_id`` for a key frame. ``"auto"``: the
        socket's policy (PLI now — sent by the worker within ~50 ms — FIR as
        the fallback, retried until a key frame arrives); ``"pli"``, ``"fir"``
        or ``"pli+fir"``: that, once, right away."""
        sub = self._sub(source_id)
        if method == "auto":
            sub.depacketizer.request_key_frame()
            return
        sub.stream.request_keyframe(method)
        self._count_request(sub, method)

    def stats(self, source_id: int) -> VideoStreamStats:
        """fps, bitrate, size, freezes, decode errors of the frames delivered,
        and the PLIs/FIRs sent for this source."""
        sub = self._sub(source_id)
        snap = sub.stats.snapshot()
        try:
            rx = sub.stream.stats()
        except Exception:  # the stream may be closing
            return snap
        return dataclasses.replace(snap, plis_sent=rx.plis_sent, firs_sent=rx.firs_sent)

    def depacketizer_stats(self, source_id: int) -> DepacketizerStats:
        return self._sub(source_id).depacketizer.stats()

    def plis_requested(self, source_id: int) -> int:
        """PLIs this socket asked the engine to send for ``source_id``."""
        return self._sub(source_id).plis_requested

    def firs_requested(self, source_id: int) -> int:
        """FIRs this socket asked the engine to send for ``source_id``."""
        return self._sub(source_id).firs_requested

    def _sub(self, source_id: int) -> Subscription:
        with self._lock:
            try:
                return self._subs[source_id]
            except KeyError:
                raise InvalidArgument(f"not subscribed to {source_id}") from None

    # ---- the worker ----------------------------------------------------------------

    @staticmethod
    def _count_request(sub: Subscription, method: str) -> None:
        sub.plis_requested += "pli" in method
        sub.firs_requested += "fir" in method

    def _key_frame_request(self, sub: Subscription, now: int) -> None:
        if now - sub.rtt_checked_ns > 1_000_000_000:  # RTT (from RTCP) once a second
            sub.rtt_checked_ns = now
            try:
                rtt_ms = sub.stream.stats().rtt_ms
                sub.rtt_ns = int(rtt_ms * 1e6) if rtt_ms >= 0 else -1
            except Exception:  # the stream may be closing
                pass
        method = sub.depacketizer.poll_key_frame(now, sub.rtt_ns)
        if method is None:
            return
        self._count_request(sub, method)
        try:
            sub.stream.request_keyframe(method)
        except Exception:  # the stream may be closing
            log.debug("key-frame request for %s failed", sub.source_id, exc_info=True)

    def _run(self, sub: Subscription) -> None:
        rtp_ring = sub.stream.ring
        depacketizer = sub.depacketizer
        while not sub.stop.is_set():
            try:
                rtp_ring.wait(timeout=0.05)  # native wait, GIL released
            except Exception:
                if sub.stop.is_set():
                    return
                raise
            # one native call: depacketize and hand out the new frames (views
            # into the receive ring, where they were assembled in place, or
            # into the frame ring; copied for "encoded" mode, whose processor
            # may keep them)
            units = depacketizer.drain_frames(rtp_ring, copy=self.mode == "encoded" or sub.encoded)
            self._key_frame_request(sub, time.monotonic_ns())
            if sub.decode != (sub.decoder is not None):
                self._follow_decode(sub)
            for unit in units:
                self._deliver(sub, unit)
            if units:
                # done with them (decoded, or copied): the receive records
                # they were assembled over go back to the engine now, so its
                # ring can start over at its warm beginning (Ring.set_rewind)
                depacketizer.release_frames()

    def _deliver(self, sub: Subscription, unit: EncodedVideoFrame) -> None:
        if sub.encoded and self.on_encoded is not None:
            try:
                self.on_encoded(unit)
            except Exception:
                log.exception("encoded video frame processor failed (source %s)", sub.source_id)
        try:
            if sub.decoder is None:
                sub.stats.on_frame(len(unit.data), key=unit.key_frame)
                if self.mode == "encoded":
                    self.on_frame(unit)
                return
            for frame in sub.decoder.decode(unit):
                if sub.preferred_resolution:
                    w, h = fit_size(frame.width, frame.height, VideoLayer(*sub.preferred_resolution, 30))
                    if (w, h) != (frame.width, frame.height):
                        frame = DecodedVideoFrame(
                            sub.decoder.converter.reformat(frame.frame, w, h),
                            frame.rtp_timestamp,
                            frame.source_id,
                            frame.socket_id,
                            frame.key_frame,
                            frame.arrival_ns,
                            sub.decoder.converter,
                        )
                self.on_frame(frame)
            if sub.decoder.needs_key_frame and not unit.key_frame:
                sub.depacketizer.request_key_frame()  # the decoder failed: start a new chain
        except Exception:
            log.exception("video frame processor failed (source %s)", sub.source_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            subs = list(self._subs.values())
            self._subs.clear()
        for sub in subs:
            self._stop(sub)

    def __enter__(self) -> VideoSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VbssSocket(VideoSocket):
    """Screen-share receive socket: one source at a time."""

    ladder = VBSS_LADDER

    def __init__(self, session, on_frame: Callable, **options) -> None:
        options.setdefault("max_subscriptions", 1)
        super().__init__(session, on_frame, **options)


class VideoSendSocket:
    """Sends H.264 as ``ssrc`` on an engine session.

    :meth:`send_frame` encodes (scaling into ``layer``, pacing to its frame
    rate); :meth:`send_encoded` passes access units through. Packets are
    written by the native packetizer straight into the engine's send ring.
    """

    ladder = SEND_LADDER

    def __init__(
        self,
        session,
        ssrc: int,
        *,
        payload_type: int = H264_PAYLOAD_TYPE,
        layer: VideoLayer | None = None,
        bitrate: int | None = None,
        profile: str = "baseline",
        preset: str = "ultrafast",
        key_frame_interval_s: float = 2.0,
        max_payload: int = 1200,
        history: int = 512,
        ring_capacity: int = 1 << 23,
        timestamp_offset: int | None = None,
    ) -> None:
        self.session = session
        self.ssrc = ssrc
        self.layer = layer or self.ladder[1 if self.ladder is SEND_LADDER else 0]
        self.stream = session.add_send_stream(
            ssrc,
            payload_type,
            media="video",
            clock_rate=90000,
            history=history,
            ring_capacity=ring_capacity,
            timestamp_offset=timestamp_offset,
        )
        self.encoder = H264Encoder(
            self.layer,
            bitrate=bitrate,
            profile=profile,
            preset=preset,
            key_frame_interval_s=key_frame_interval_s,
        )
        self.packetizer = H264Packetizer(max_payload=max_payload, header="send_record")
        self.key_frame_requests = 0
        self._t0_ns: int | None = None
        self._count = ffi.new("uint32_t *")

    def set_layer(self, layer: VideoLayer) -> None:
        self.layer = layer
        self.encoder.set_layer(layer)

    def request_key_frame(self) -> None:
        self.key_frame_requests += 1
        self.encoder.request_key_frame()

    def handle_events(self, events=None) -> int:
        """Act on the session's PLI/FIR events for this SSRC (reads them from
        the session when ``events`` is None); returns how many asked for a
        key frame."""
        if events is None:
            events = self.session.events()
        n = 0
        for ev in events:
            if ev.kind in ("pli", "fir") and ev.ssrc == self.ssrc:
                n += 1
        if n:
            self.request_key_frame()
        return n

    def send_frame(
        self, frame: av.VideoFrame | np.ndarray, *, now_ns: int | None = None, format: str = "rgb24"
    ) -> list[EncodedVideoFrame]:
        """Encode and send one frame; returns the access units sent ([] if
        paced out), their ``rtp_timestamp`` set to what goes on the wire
        (before the stream's timestamp offset)."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        units = self.encoder.encode(frame, now_ns=now, format=format)
        for unit in units:
            unit.rtp_timestamp = self._timestamp(now)
            self._send(unit.data, unit.rtp_timestamp)
        return units

    def send_encoded(self, access_unit: bytes | memoryview, rtp_timestamp: int) -> int:
        """Send one Annex-B access unit as it is (passthrough)."""
        return self._send(access_unit, rtp_timestamp)

    def _timestamp(self, now_ns: int) -> int:
        if self._t0_ns is None:
            self._t0_ns = now_ns
        return ((now_ns - self._t0_ns) * 90_000 // 1_000_000_000) & 0xFFFFFFFF

    def _send(self, data, rtp_timestamp: int) -> int:
        src = ffi.from_buffer(data)
        check(
            lib.mc_h264_packetize_to_ring(
                self.packetizer._handle,
                src,
                len(src),
                rtp_timestamp & 0xFFFFFFFF,
                self.stream.ring._h(),
                1,
                self._count,
            ),
            "packetize",
        )
        self.session.engine.wake()
        return self._count[0]

    def stats(self) -> VideoStreamStats:
        return self.encoder.stats.snapshot()

    def close(self) -> None:
        self.stream.close()


class SimulcastSendSocket:
    """Up to three layers of one source, each on its own SSRC (its own
    :class:`VideoSendSocket` and encoder); one input frame feeds every layer
    whose frame rate wants it. A PLI/FIR for one SSRC renews that layer only."""

    MAX_LAYERS = 3

    def __init__(self, session, layers: dict[int, VideoLayer], **options) -> None:
        if not 1 <= len(layers) <= self.MAX_LAYERS:
            raise InvalidArgument(f"simulcast takes 1 to {self.MAX_LAYERS} layers")
        self.session = session
        self.layers = {
            ssrc: VideoSendSocket(session, ssrc, layer=layer, **options) for ssrc, layer in layers.items()
        }

    def send_frame(
        self, frame: av.VideoFrame | np.ndarray, *, now_ns: int | None = None, format: str = "rgb24"
    ) -> dict[int, list[EncodedVideoFrame]]:
        now = time.monotonic_ns() if now_ns is None else now_ns
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(frame, format=format)
        return {ssrc: sock.send_frame(frame, now_ns=now) for ssrc, sock in self.layers.items()}

    def handle_events(self, events=None) -> int:
        if events is None:
            events = self.session.events()
        return sum(sock.handle_events(events) for sock in self.layers.values())

    def request_key_frame(self) -> None:
        for sock in self.layers.values():
            sock.request_key_frame()

    def close(self) -> None:
        for sock in self.layers.values():
            sock.close()


class VbssSendSocket(VideoSendSocket):
    """Screen-share (VBSS) send socket: the VBSS ladder, down to 1.875 fps."""

    ladder = VBSS_LADDER

    def __init__(self, session, ssrc: int, **options) -> None:
        options.setdefault("layer", VBSS_LADDER[0])
        options.setdefault("key_frame_interval_s", 4.0)
        super().__init__(session, ssrc, **options)


def frame_ring_bytes(max_frame_bytes: int = DEFAULT_MAX_FRAME) -> int:
    """Size of a subscription's frame ring: a frame of the largest size must
    fit (a record can take half a ring), so 4 MiB for 1 MiB frames. The
    depacketizer reserves room for a frame from the sizes of recent ones and
    grows it when needed, and the ring rewinds (RING_REWIND_ROOM), so what
    it really walks through is about a megabyte."""
    return max(1 << 22, _pow2(2 * (max_frame_bytes + 64)))


def frame_ring_rewind_room(max_frame_bytes: int = DEFAULT_MAX_FRAME) -> int:
    """A subscription's frame ring rewinds (Ring.set_rewind) with room for
    the largest frame: one begun right after a rewind can only grow into the
    bytes before that point."""
    return max(RING_REWIND_ROOM, max_frame_bytes + (64 << 10))


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


__all__ = [
    "ReceivedAccessUnit",
    "SimulcastSendSocket",
    "VbssSendSocket",
    "VbssSocket",
    "VideoSendSocket",
    "VideoSocket",
]

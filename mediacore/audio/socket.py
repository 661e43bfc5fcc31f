"""``AudioSocket``: one call's audio as Python sees it.

Receive: the native graph mixes all remote sources and/or keeps each one
apart (no limit of four), and writes 20 ms frames plus events into one output
ring. A dispatcher thread (GIL released while it waits) reads the ring once
per tick and hands the frames to each consumer through a bounded queue with
its own back-pressure policy: ``"drop_oldest"`` or ``"drop_newest"``, with
the drops counted per consumer. Consumers are async iterators
(:meth:`AudioSocket.mixed`, :meth:`AudioSocket.unmixed`,
:meth:`AudioSocket.events`) or callbacks (:meth:`AudioSocket.on_frame`), or
:class:`~mediacore.audio.processor.Processor` objects.

Send: :meth:`send` queues 640-byte PCM frames (bytes or int16 numpy); the
native side encodes and sends exactly one per 20 ms tick, sends silence (or
nothing, with DTX) when the queue is empty, reports ``send_state`` and fires a
``send_low_water`` event for buffered input.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Callable

import numpy as np

from .._native import lib
from ..errors import RingClosed
from ..rings import Ring
from .frames import EVENT, FRAME_RECORD_BYTES, MIXED, UNMIXED, AudioEvent, AudioFrame
from .graph import AudioGraph, AudioWorker, GraphStats

POLICIES = ("drop_oldest", "drop_newest")
_KINDS = {MIXED: "mixed", UNMIXED: "unmixed", EVENT: "event"}


class Consumer:
    """A bounded queue between the dispatcher and one consumer."""

    def __init__(self, kinds: set[str], maxsize: int, policy: str,
                 source_id: int | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}")
        self.kinds = kinds
        self.source_id = source_id
        self.maxsize = maxsize
        self.policy = policy
        self.dropped = 0
        self.delivered = 0
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future | None = None

    def wants(self, kind: str, item) -> bool:
        if kind not in self.kinds:
            return False
        return self.source_id is None or kind == "event" or item.source_id == self.source_id

    def put_many(self, items: list) -> None:
        with self._cond:
            for item in items:
                if len(self._queue) >= self.maxsize:
                    self.dropped += 1
                    if self.policy == "drop_newest":
                        continue
                    self._queue.popleft()
                self._queue.append(item)
            self._cond.notify()
        self._notify_loop()

    def _notify_loop(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._wake_async)
        except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
            pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._notify_loop()

    # thread side
    def get(self, timeout: float | None = None):
        with self._cond:
            if not self._queue and not self._closed:
                self._cond.wait(timeout)
            if self._queue:
                self.delivered += 1
                return self._queue.popleft()
            if self._closed:
                raise EOFError
            return None

    # asyncio side
    def _wake_async(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def aget(self):
        while True:
            with self._cond:
                if self._queue:
                    self.delivered += 1
                    return self._queue.popleft()
                if self._closed:
                    raise StopAsyncIteration
                self._waiter = self._loop.create_future()
            await self._waiter


class _Subscription:
    def __init__(self, socket: AudioSocket, consumer: Consumer) -> None:
        self._socket = socket
        self.consumer = consumer
        consumer._loop = asyncio.get_running_loop()

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self):
        return await self.consumer.aget()

    @property
    def dropped(self) -> int:
        return self.consumer.dropped

    def close(self) -> None:
        self._socket._remove(self.consumer)


class AudioSocket:
    """One call's audio: receive mixed and/or unmixed frames, send PCM.

    ``input``: the ring the engine writes this call's audio receive records to
    (see :meth:`add_source`); ``send_out``: the engine send stream's ring.
    ``shared=True`` puts the output ring in shared memory so a worker process
    can consume it (``run_processor``; then it is the ring's only consumer).
    The output ring holds ``output_capacity`` bytes (720 per frame: the
    default is ~3.6 s of one mixed and one unmixed stream).
    """

    def __init__(self, worker: AudioWorker, *, input: Ring | None = None,
                 session=None, payload_types: dict | None = None,
                 telephone_event_pt: int = -1, mixed: bool = True, unmixed: bool = False,
                 send_stream=None, send_out: Ring | None = None, engine=None,
                 send_codec: str = "opus", send_payload_type: int | None = None,
                 send_telephone_event_pt: int = -1, bitrate_bps: int = 0, dtx: bool = False,
                 low_water_frames: int = 0, send_queue_frames: int = 500,
                 output_capacity: int = 1 << 18, input_capacity: int = 1 << 16,
                 shared: bool = False,
                 **graph_options) -> None:
        self.worker = worker
        self.session = session
        if input is None and session is not None:
            # records of ~100-1500 bytes, drained every 20 ms: 64 KiB is ample,
            # and hundreds of calls per process keep their memory small
            input = Ring.create(input_capacity, policy="drop")
        self.input = input
        self.output = (Ring.create(output_capacity, name=_shm_name(), policy="drop") if shared
                       else Ring.create(output_capacity, policy="drop"))
        self.shared = shared
        self.send_stream = send_stream
        if send_stream is not None:
            send_out = send_stream.ring
            engine = send_stream.session.engine
            if send_payload_type is None:
                send_payload_type = send_stream.payload_type
        self.send_pcm = None
        if send_out is not None:
            size = 1 << max(12, (send_queue_frames * (FRAME_RECORD_BYTES + 8)).bit_length())
            self.send_pcm = Ring.create(size, policy="drop")
        self.graph = AudioGraph(
            worker, input=input, payload_types=payload_types,
            telephone_event_pt=telephone_event_pt, output=self.output, mixed=mixed,
            unmixed=unmixed, events=True, send_pcm=self.send_pcm, send_out=send_out,
            engine=engine, send_codec=send_codec,
            send_payload_type=111 if send_payload_type is None else send_payload_type,
            send_telephone_event_pt=send_telephone_event_pt, bitrate_bps=bitrate_bps, dtx=dtx,
            low_water_frames=low_water_frames, **graph_options)
        self._consumers: list[Consumer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sources: dict[int, object] = {}
        if not shared:
            self._thread = threading.Thread(target=self._dispatch, name="mediacore-audio",
                                            daemon=True)
            self._thread.start()

    # ---- sources ---------------------------------------------------------

    def add_source(self, ssrc: int, clock_rate: int = 48000, **options):
        """Receive the remote source ``ssrc`` of :attr:`session` into this socket."""
        if self.session is None:
            raise ValueError("add_source needs the socket's session")
        stream = self.session.add_receive_stream(ssrc, "audio", clock_rate, ring=self.input,
                                                 **options)
        self._sources[ssrc] = stream
        return stream

    # ---- receive ---------------------------------------------------------

    def _dispatch(self) -> None:
        ring = self.output
        while not self._stop.is_set():
            try:
                if not ring.wait(0.1):
                    continue
                batch = ring.read_batch(256)
            except RingClosed:
                return
            per_kind: dict[str, list] = {"mixed": [], "unmixed": [], "event": []}
            for rec, typ in zip(batch, batch.types.tolist()):
                kind = _KINDS.get(typ)
                if kind == "event":
                    per_kind[kind].append(AudioEvent.from_bytes(rec))
                elif kind is not None and len(rec) == FRAME_RECORD_BYTES:
                    per_kind[kind].append(AudioFrame.from_bytes(rec, kind))
            with self._lock:
                consumers = list(self._consumers)
            for c in consumers:
                items = [x for kind, xs in per_kind.items() for x in xs if c.wants(kind, x)]
                if items:
                    c.put_many(items)

    def _add(self, consumer: Consumer) -> Consumer:
        if self.shared:
            raise ValueError("a shared socket is consumed by a worker process (run_processor)")
        with self._lock:
            self._consumers.append(consumer)
        return consumer

    def _remove(self, consumer: Consumer) -> None:
        with self._lock:
            if consumer in self._consumers:
                self._consumers.remove(consumer)
        consumer.close()

    def subscribe(self, kinds=("mixed",), *, maxsize: int = 50, policy: str = "drop_oldest",
                  source_id: int | None = None) -> Consumer:
        """A thread-side consumer: ``consumer.get(timeout)``."""
        return self._add(Consumer(set(kinds), maxsize, policy, source_id))

    def mixed(self, *, maxsize: int = 50, policy: str = "drop_oldest") -> _Subscription:
        """Async iterator of mixed frames (call from a running event loop)."""
        return _Subscription(self, self._add(Consumer({"mixed"}, maxsize, policy)))

    def unmixed(self, source_id: int | None = None, *, maxsize: int = 200,
                policy: str = "drop_oldest") -> _Subscription:
        """Async iterator of per-speaker frames (all speakers, or one)."""
        return _Subscription(self, self._add(Consumer({"unmixed"}, maxsize, policy, source_id)))

    def events(self, *, maxsize: int = 1000, policy: str = "drop_oldest") -> _Subscription:
        return _Subscription(self, self._add(Consumer({"event"}, maxsize, policy)))

    def on_frame(self, callback: Callable, kinds=("mixed",), *, maxsize: int = 50,
                 policy: str = "drop_oldest", source_id: int | None = None) -> Consumer:
        """Call ``callback(frame_or_event)`` from a thread of its own."""
        consumer = self.subscribe(kinds, maxsize=maxsize, policy=policy, source_id=source_id)

        def run() -> None:
            while True:
                try:
                    item = consumer.get(0.2)
                except EOFError:
                    return
                if item is not None:
                    callback(item)

        threading.Thread(target=run, name="mediacore-audio-callback", daemon=True).start()
        return consumer

    # ---- send ------------------------------------------------------------

    def send(self, pcm) -> bool:
        """Queue one 20 ms frame (640 bytes or 320 int16). False if the send
        queue was full (dropped, counted by the ring)."""
        if self.send_pcm is None:
            raise ValueError("this socket has no send path")
        if isinstance(pcm, np.ndarray):
            if pcm.dtype != np.int16 or pcm.size != lib.MC_AUDIO_FRAME_SAMPLES:
                raise ValueError("a frame is 320 int16 samples")
            pcm = np.ascontiguousarray(pcm)
        elif len(pcm) != lib.MC_AUDIO_FRAME_BYTES:
            raise ValueError("a frame is 640 bytes")
        return self.send_pcm.write(pcm)

    def send_buffered(self, pcm: np.ndarray) -> int:
        """Queue as many whole frames of ``pcm`` (int16) as fit; returns how
        many. Refill on the ``send_low_water`` event."""
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        n = len(pcm) // lib.MC_AUDIO_FRAME_SAMPLES
        frames = pcm[:n * lib.MC_AUDIO_FRAME_SAMPLES].reshape(n, -1)
        sent = 0
        for f in frames:
            free = self.send_pcm.capacity - self.send_pcm.stats().used_bytes
            if free < lib.MC_AUDIO_FRAME_BYTES + 16 or not self.send_pcm.write(f):
                break
            sent += 1
        return sent

    def send_dtmf(self, tones: str, tone_ms: int = 100, gap_ms: int = 100) -> None:
        self.graph.send_dtmf(tones, tone_ms, gap_ms)

    @property
    def send_state(self) -> str:
        return "active" if self.stats().send_state == lib.MC_AUDIO_SEND_ACTIVE else "inactive"

    def stats(self) -> GraphStats:
        return self.graph.stats()

    # ---- lifetime --------------------------------------------------------

    def close(self) -> None:
        for stream in self._sources.values():
            stream.close()
        self._sources.clear()
        self.graph.close()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            consumers, self._consumers = self._consumers, []
        for c in consumers:
            c.close()
        self.output.close()
        if self.send_pcm is not None:
            self.send_pcm.close()
        if self.session is not None and self.input is not None:
            self.input.close()

    def __enter__(self) -> AudioSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shm_name() -> str:
    import secrets
    return f"mcaudio-{secrets.token_hex(6)}"

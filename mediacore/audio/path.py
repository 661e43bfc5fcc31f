"""Receive audio on the native path: many calls, a few threads.

Per call, one native audio graph (``mediacore.audio.AudioGraph``) reads the
engine's receive records of the call (jitter-buffered, one per 20 ms slot),
decodes (Opus, FEC, concealment) and writes 20 ms frames of 16 kHz PCM and
events (DTMF, speakers) into an output ring. Graphs are spread over a few
``AudioWorker`` threads (one per core by default); all graphs of one worker
share one output ring (the graph's ``tag`` tells the calls apart), so Python
runs one reader thread per worker that takes every finished frame of a tick
in one zero-copy batch (a numpy view of the ring) and hands the batch to the
processor. Nothing is decoded in Python.

Latency (``LatencyRecorder``): a frame's ``timestamp_100ns`` is the tick at
which the jitter buffer released it to the decoder (its playout deadline on
the media clock); the reader stamps ``time.monotonic_ns()`` when it hands the
batch to the processor. ``seen - timestamp`` is the wire-to-processor latency
*beyond the jitter-buffer delay*: native decode and mix of every call of the
worker's tick, the ring, the wake-up of the reader and Python. The time the
packet waited before its tick (engine jitter buffer + the graph's one-frame
look-ahead + the phase of the 20 ms clock), ``timestamp - arrival_100ns``, is
the jitter-buffer delay, recorded beside it as ``playout_delay``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import RingClosed
from ..rings import Ring
from .frames import EVENT, FRAME_RECORD_BYTES, FRAME_RECORD_DTYPE, MIXED, UNMIXED, AudioEvent
from .graph import AudioGraph, AudioWorker, GraphStats

log = logging.getLogger(__name__)

#: frames of one worker's tick the reader takes at once (a tick of 256 calls)
BATCH_RECORDS = 1024


class LatencyRecorder:
    """Per-frame latency samples in ns, kept in numpy chunks (cheap to append
    from a reader thread)."""

    def __init__(self) -> None:
        self._beyond: list[np.ndarray] = []
        self._playout: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.enabled = True

    def add(self, seen_ns: int, frames: np.ndarray) -> None:
        if not self.enabled or not len(frames):
            return
        h = frames["header"]
        tick_ns = h["timestamp_100ns"] * 100
        arrival_ns = h["arrival_100ns"] * 100
        beyond = seen_ns - tick_ns
        playout = (tick_ns - arrival_ns)[arrival_ns > 0]
        with self._lock:
            self._beyond.append(beyond)
            self._playout.append(playout)

    def clear(self) -> None:
        with self._lock:
            self._beyond, self._playout = [], []

    @staticmethod
    def _pct(chunks: list[np.ndarray], qs=(50, 99, 100)) -> dict[str, float | None]:
        if not chunks or not sum(len(c) for c in chunks):
            return {f"p{q}" if q < 100 else "max": None for q in qs}
        a = np.concatenate(chunks)
        return {(f"p{q}" if q < 100 else "max"): round(float(np.percentile(a, q)) / 1e6, 4)
                for q in qs}

    def summary(self) -> dict:
        with self._lock:
            beyond, playout = list(self._beyond), list(self._playout)
        return {**self._pct(beyond), "samples": int(sum(len(c) for c in beyond)),
                "playout_delay_ms": self._pct(playout)}


FrameHandler = Callable[[np.ndarray, np.ndarray, int], None]
EventHandler = Callable[[AudioEvent], None]


@dataclass
class CallAudio:
    """One call's graph and the ring the engine writes its receive records to."""

    tag: int
    input: Ring
    graph: AudioGraph
    worker_index: int
    final_stats: GraphStats | None = None
    streams: dict = field(default_factory=dict)   # ssrc -> engine receive stream
    on_frames: FrameHandler | None = None
    on_event: EventHandler | None = None
    send_pcm: Ring | None = None

    def add_source(self, session, ssrc: int, clock_rate: int = 48000, **options):
        """Receive the remote audio source ``ssrc`` of ``session`` into this
        call's graph (the engine's jitter buffer in front unless ``direct``)."""
        stream = session.add_receive_stream(ssrc, "audio", clock_rate, ring=self.input, **options)
        self.streams[ssrc] = stream
        return stream

    def remove_source(self, ssrc: int) -> None:
        """Stop receiving ``ssrc`` (the graph forgets it after its source timeout)."""
        stream = self.streams.pop(ssrc, None)
        if stream is not None:
            stream.close()

    def stats(self) -> GraphStats:
        return self.final_stats if self.final_stats is not None else self.graph.stats()


@dataclass
class _Lane:
    worker: AudioWorker
    output: Ring
    thread: threading.Thread | None = None
    calls: int = 0
    batches: int = 0
    records: int = 0
    errors: list[str] = field(default_factory=list)


class AudioPath:
    """Audio workers, their shared output rings and reader threads.

    Each call registers its own handlers (:meth:`add_call`); ``on_frames`` /
    ``on_event`` given here take the frames of calls without handlers.
    ``on_frames(frames, kinds, seen_ns)`` gets each batch: ``frames`` a numpy
    array of ``FRAME_RECORD_DTYPE`` (header fields + ``pcm`` (n, 320) int16,
    a view into the ring, valid during the call only), ``kinds`` the record
    types (``MIXED``/``UNMIXED``), ``seen_ns`` the monotonic time the batch
    reached Python. ``on_event(event)`` gets audio events (DTMF, dominant
    speaker, sources). Both run on a reader thread and must not block.
    """

    def __init__(self, on_frames: FrameHandler | None = None,
                 on_event: EventHandler | None = None, *,
                 workers: int | None = None, output_capacity: int = 1 << 22,
                 latency: LatencyRecorder | None = None) -> None:
        self.on_frames = on_frames
        self.on_event = on_event
        self.latency = latency if latency is not None else LatencyRecorder()
        n = workers or max(1, min(4, os.cpu_count() or 1))
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.calls: dict[int, CallAudio] = {}
        self.lanes: list[_Lane] = []
        for i in range(n):
            w = AudioWorker(stagger=True)
            lane = _Lane(w, Ring.create(output_capacity, policy="drop"))
            lane.thread = threading.Thread(target=self._read, args=(lane,), daemon=True,
                                           name=f"audio-reader-{i}")
            self.lanes.append(lane)
        for lane in self.lanes:
            lane.worker.start()
            lane.thread.start()

    # ---- calls ---------------------------------------------------------------

    def add_call(self, tag: int, *, mixed: bool = False, unmixed: bool = True,
                 events: bool = True, payload_types: dict | None = None,
                 telephone_event_pt: int = -1, input_capacity: int = 1 << 16,
                 on_frames: FrameHandler | None = None, on_event: EventHandler | None = None,
                 send_out: Ring | None = None, engine=None, send_queue_frames: int = 500,
                 **graph_options) -> CallAudio:
        """A graph for call ``tag`` on the least busy worker; give its
        ``input`` ring to the engine's receive streams of the call. Its frames
        go to ``on_frames`` / ``on_event`` (else the path's). With ``send_out``
        (an engine send stream's ring) the graph also encodes and sends the
        PCM written to the call's ``send_pcm`` ring, one frame per tick."""
        with self._lock:
            if tag in self.calls:
                raise ValueError(f"call tag {tag} already added")
            k = min(range(len(self.lanes)), key=lambda j: self.lanes[j].calls)
            lane = self.lanes[k]
            lane.calls += 1
        inp = Ring.create(input_capacity, policy="drop")
        send_pcm = None
        if send_out is not None:
            size = 1 << max(12, (send_queue_frames * (FRAME_RECORD_BYTES + 8)).bit_length())
            send_pcm = Ring.create(size, policy="drop")
            graph_options.update(send_pcm=send_pcm, send_out=send_out, engine=engine)
        try:
            graph = AudioGraph(lane.worker, input=inp, payload_types=payload_types,
                               telephone_event_pt=telephone_event_pt, output=lane.output,
                               mixed=mixed, unmixed=unmixed, events=events, tag=tag,
                               **graph_options)
        except BaseException:
            inp.close()
            if send_pcm is not None:
                send_pcm.close()
            with self._lock:
                lane.calls -= 1
            raise
        call = CallAudio(tag, inp, graph, k, on_frames=on_frames, on_event=on_event,
                         send_pcm=send_pcm)
        with self._lock:
            self.calls[tag] = call
        return call

    def remove_call(self, tag: int) -> GraphStats | None:
        """Stop the call's receive streams and graph (its last counters are
        returned and kept)."""
        with self._lock:
            call = self.calls.pop(tag, None)
            if call is not None:
                self.lanes[call.worker_index].calls -= 1
        if call is None:
            return None
        for stream in call.streams.values():  # the engine stops writing to the input ring first
            try:
                stream.close()
            except Exception:  # the session or engine may be closed already
                log.debug("closing a receive stream failed", exc_info=True)
        call.final_stats = call.graph.stats()
        call.graph.close()
        call.input.close()
        if call.send_pcm is not None:
            call.send_pcm.close()
        return call.final_stats

    # ---- reading -------------------------------------------------------------

    def _read(self, lane: _Lane) -> None:
        ring = lane.output
        while not self._stop.is_set():
            try:
                if not ring.wait(0.1):
                    continue
                batch = ring.peek(BATCH_RECORDS, uniform=True)
            except RingClosed:
                return
            try:
                seen = time.monotonic_ns()
                n = len(batch)
                if not n:
                    continue
                lane.batches += 1
                lane.records += n
                if int(batch.lengths[0]) == FRAME_RECORD_BYTES:
                    frames = batch.array(np.uint8).view(FRAME_RECORD_DTYPE)[:, 0]
                    types = batch.types
                    keep = (types == UNMIXED) | (types == MIXED)
                    if not keep.all():
                        frames, types = frames[keep], types[keep]
                    self.latency.add(seen, frames)
                    self._route(frames, types, seen)
                else:
                    for rec, typ in zip(batch, batch.types.tolist()):
                        if typ == EVENT:
                            self._route_event(AudioEvent.from_bytes(rec))
            except Exception as e:  # a processor bug must not stop the audio of every call
                if len(lane.errors) < 20:
                    lane.errors.append(f"{type(e).__name__}: {e}")
                log.exception("audio processor failed")
            finally:
                batch.release()

    def _route(self, frames: np.ndarray, types: np.ndarray, seen: int) -> None:
        """Each call's frames to its handler. A worker writes a tick's frames
        call by call, so a batch is a few runs of one tag each: the runs are
        found in one pass and handed over as views (no copy, no per-call scan)."""
        calls = self.calls
        tags = frames["header"]["tag"]
        if tags[0] == tags[-1] and (len(tags) < 3 or (tags == tags[0]).all()):
            bounds = [0, len(tags)]
        else:
            bounds = [0, *(np.flatnonzero(tags[1:] != tags[:-1]) + 1).tolist(), len(tags)]
        for a, b in zip(bounds[:-1], bounds[1:]):
            tag = int(tags[a])
            call = calls.get(tag)
            handler = call.on_frames if call is not None and call.on_frames else self.on_frames
            if handler is not None:
                handler(frames[a:b], types[a:b], seen)

    def _route_event(self, event: AudioEvent) -> None:
        call = self.calls.get(event.tag)
        handler = call.on_event if call is not None and call.on_event else self.on_event
        if handler is not None:
            handler(event)

    @property
    def errors(self) -> list[str]:
        return [e for lane in self.lanes for e in lane.errors]

    def output_dropped(self) -> int:
        return sum(lane.output.stats().records_dropped for lane in self.lanes)

    def worker_cpu_ns(self) -> int:
        return sum(lane.worker.ticks()[2] for lane in self.lanes)

    def late_ticks(self) -> int:
        return sum(lane.worker.ticks()[1] for lane in self.lanes)

    # ---- lifetime ------------------------------------------------------------

    def close(self) -> None:
        for tag in list(self.calls):
            self.remove_call(tag)
        for lane in self.lanes:
            lane.worker.stop()
        self._stop.set()
        for lane in self.lanes:
            if lane.thread is not None:
                lane.thread.join(5)
        for lane in self.lanes:
            lane.worker.close()
            lane.output.close()

    def __enter__(self) -> AudioPath:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: the name the demo and the load generator knew it by
NativeAudioPath = AudioPath

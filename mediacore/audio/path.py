"""The one audio path: many calls' audio on a few threads.

Per call, one native audio graph (``mediacore.audio.AudioGraph``) reads the
engine's receive records of the call (jitter-buffered, one per 20 ms slot),
decodes (Opus, FEC, concealment) and writes 20 ms frames of 16 kHz PCM and
events (DTMF, speakers) into an output ring. Graphs are spread over a few
``AudioWorker`` threads (one per core by default); all graphs of one worker
share one output ring (the graph's ``tag`` tells the calls apart), so Python
runs one reader thread per worker that takes every finished frame of a tick
in one zero-copy batch (a numpy view of the ring) and hands the batch to the
processor. Nothing is decoded in Python. A call given an engine send
stream's ring also sends: the PCM written to it (:meth:`CallAudio.send`,
:meth:`CallAudio.send_buffered`) is encoded and sent one frame per tick,
silence (or nothing, with DTX) when none is queued, RFC 4733 tones in its
place while they play (:meth:`CallAudio.send_dtmf`).

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

from .._native import lib
from ..errors import RingClosed
from ..rings import Ring
from .frames import (
    EVENT,
    FRAME_RECORD_BYTES,
    FRAME_RECORD_DTYPE,
    MIXED,
    UNMIXED,
    AudioEvent,
)
from .graph import AudioGraph, AudioWorker, GraphStats

log = logging.getLogger(__name__)

#: frames of one worker's tick the reader takes at once (a tick of 256 calls)
BATCH_RECORDS = 1024
#: a failing handler is logged at most this often per reader
LOG_INTERVAL_S = 10.0


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
        return {(f"p{q}" if q < 100 else "max"): round(float(np.percentile(a, q)) / 1e6, 4) for q in qs}

    def summary(self) -> dict:
        with self._lock:
            beyond, playout = list(self._beyond), list(self._playout)
        return {
            **self._pct(beyond),
            "samples": int(sum(len(c) for c in beyond)),
            "playout_delay_ms": self._pct(playout),
        }


FrameHandler = Callable[[np.ndarray, np.ndarray, int], None]
EventHandler = Callable[[AudioEvent], None]


@dataclass
class CallAudio:
    """One call's graph and the ring the engine writes its receive records to;
    with a send path (``send_out`` at :meth:`AudioPath.add_call`), the ring
    of PCM the graph encodes and sends, one frame per 20 ms tick."""

    tag: int
    input: Ring
    graph: AudioGraph
    worker_index: int
    final_stats: GraphStats | None = None
    streams: dict = field(default_factory=dict)  # ssrc -> engine receive stream
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

    # ---- send ----------------------------------------------------------------

    def _send_ring(self) -> Ring:
        if self.send_pcm is None:
            raise ValueError(f"call {self.tag} has no send path (add_call(send_out=...))")
        return self.send_pcm

    def send(self, pcm) -> bool:
        """Queue one 20 ms frame (640 bytes, or 320 int16 samples). False
        when the send queue is full (the frame is dropped, counted by the ring)."""
        ring = self._send_ring()
        if isinstance(pcm, np.ndarray):
            if pcm.dtype != np.int16 or pcm.size != lib.MC_AUDIO_FRAME_SAMPLES:
                raise ValueError("a frame is 320 int16 samples")
            pcm = np.ascontiguousarray(pcm)
        elif len(pcm) != lib.MC_AUDIO_FRAME_BYTES:
            raise ValueError("a frame is 640 bytes")
        return ring.write(pcm)

    def send_buffered(self, pcm: np.ndarray) -> int:
        """Queue as many whole frames of ``pcm`` (16 kHz int16) as fit, never
        dropping one; returns how many. Refill on the ``send_low_water`` event
        (``low_water_frames`` at :meth:`AudioPath.add_call`)."""
        ring = self._send_ring()
        pcm = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        n = len(pcm) // lib.MC_AUDIO_FRAME_SAMPLES
        frames = pcm[: n * lib.MC_AUDIO_FRAME_SAMPLES].reshape(n, -1)
        sent = 0
        for f in frames:
            free = ring.capacity - ring.stats().used_bytes
            if free < lib.MC_AUDIO_FRAME_BYTES + 16 or not ring.write(f):
                break
            sent += 1
        return sent

    def send_queue_frames(self) -> int:
        """Frames queued and not sent yet (a record is the frame and an
        8-byte ring header, 8-byte aligned)."""
        return self._send_ring().stats().used_bytes // (lib.MC_AUDIO_FRAME_BYTES + 8)

    def send_dtmf(self, tones: str, tone_ms: int = 100, gap_ms: int = 100) -> None:
        """Key presses in-band (RFC 4733), replacing the audio while they play
        (needs ``send_telephone_event_pt``)."""
        self._send_ring()
        self.graph.send_dtmf(tones, tone_ms, gap_ms)

    @property
    def send_state(self) -> str:
        """ "active" while frames written here go out, "inactive" while the
        graph sends silence (or nothing, with DTX) for want of them."""
        return "active" if self.stats().send_state == lib.MC_AUDIO_SEND_ACTIVE else "inactive"

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
    #: handler exceptions (each counted; the first 20 kept as text)
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    logged_at: float = -LOG_INTERVAL_S
    #: held by the reader while it routes a batch: removing a call waits for it
    routing: threading.Lock = field(default_factory=threading.Lock)

    def failed(self, e: Exception, what: str, *args: object) -> None:
        """Count ``e``; log it with its traceback at most once per
        ``LOG_INTERVAL_S`` (a handler failing on every frame would flood the log)."""
        self.failures += 1
        if len(self.errors) < 20:
            self.errors.append(f"{type(e).__name__}: {e}")
        now = time.monotonic()
        if now - self.logged_at >= LOG_INTERVAL_S:
            self.logged_at = now
            log.error(what + " (%d failures so far)", *args, self.failures, exc_info=e)


class AudioPath:
    """Audio workers, their shared output rings and reader threads.

    Each call registers its own handlers (:meth:`add_call`); ``on_frames`` /
    ``on_event`` given here take the frames of calls without handlers.
    ``on_frames(frames, kinds, seen_ns)`` gets each batch: ``frames`` a numpy
    array of ``FRAME_RECORD_DTYPE`` (header fields + ``pcm`` (n, 320) int16,
    a view into the ring, valid during the call only), ``kinds`` the record
    types (``MIXED``/``UNMIXED``), ``seen_ns`` the monotonic time the batch
    reached Python. ``on_event(event)`` gets audio events (DTMF, dominant
    speaker, sources). Both run on a reader thread and must not block; an
    exception they raise is counted (:meth:`handler_failures`) and logged,
    and the other calls of the batch still get their frames.
    """

    def __init__(
        self,
        on_frames: FrameHandler | None = None,
        on_event: EventHandler | None = None,
        *,
        workers: int | None = None,
        output_capacity: int = 1 << 22,
        latency: LatencyRecorder | None = None,
    ) -> None:
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
            lane.thread = threading.Thread(
                target=self._read, args=(lane,), daemon=True, name=f"audio-reader-{i}"
            )
            self.lanes.append(lane)
        for lane in self.lanes:
            lane.worker.start()
            assert lane.thread is not None
            lane.thread.start()

    # ---- calls ---------------------------------------------------------------

    def add_call(
        self,
        tag: int,
        *,
        mixed: bool = False,
        unmixed: bool = True,
        events: bool = True,
        payload_types: dict | None = None,
        telephone_event_pt: int = -1,
        input_capacity: int = 1 << 16,
        on_frames: FrameHandler | None = None,
        on_event: EventHandler | None = None,
        send_out: Ring | None = None,
        engine=None,
        send_queue_frames: int = 500,
        **graph_options,
    ) -> CallAudio:
        """A graph for call ``tag`` on the least busy worker; give its
        ``input`` ring to the engine's receive streams of the call. Its frames
        go to ``on_frames`` / ``on_event`` (else the path's). With ``send_out``
        (an engine send stream's ring; ``engine`` is woken when a packet is
        queued) the graph also encodes and sends the PCM written to the
        call's ``send_pcm`` ring (:meth:`CallAudio.send`), one frame per tick,
        with ``send_codec``, ``send_payload_type``, ``bitrate_bps``, ``dtx``,
        ``send_telephone_event_pt``, ``low_water_frames`` (``AudioGraph``)."""
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
        # registered before its graph exists: the graph's first frames find their handlers
        call = CallAudio(
            tag,
            inp,
            None,  # type: ignore[arg-type]  # the graph, set right below
            k,
            on_frames=on_frames,
            on_event=on_event,
            send_pcm=send_pcm,
        )
        with self._lock:
            self.calls[tag] = call
        try:
            call.graph = AudioGraph(
                lane.worker,
                input=inp,
                payload_types=payload_types,
                telephone_event_pt=telephone_event_pt,
                output=lane.output,
                mixed=mixed,
                unmixed=unmixed,
                events=events,
                tag=tag,
                **graph_options,
            )
        except BaseException:
            with self._lock:
                del self.calls[tag]
                lane.calls -= 1
            inp.close()
            if send_pcm is not None:
                send_pcm.close()
            raise
        return call

    def remove_call(self, tag: int) -> GraphStats | None:
        """Stop the call's receive streams and graph (its last counters are
        returned and kept). Once it returns, the call's handlers are not
        called again: frames of the call still in the ring are dropped."""
        with self._lock:
            call = self.calls.pop(tag, None)
            if call is not None:
                self.lanes[call.worker_index].calls -= 1
        if call is None:
            return None
        lane = self.lanes[call.worker_index]
        if threading.current_thread() is not lane.thread:
            # a batch being routed may have looked the call up already: let it finish
            if lane.routing.acquire(timeout=5.0):
                lane.routing.release()
            else:
                log.warning("audio call %d removed while its reader was stuck in a handler", tag)
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
        # not called again: drop them, so a handler's owner (and what it holds)
        # is freed when its last reference goes, not by a later cyclic GC pass
        # that a process ending hundreds of calls would pay in one stall
        call.on_frames = call.on_event = None
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
            lane.routing.acquire()
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
                    self._route(lane, frames, types, seen)
                else:
                    for rec, typ in zip(batch, batch.types.tolist()):
                        if typ == EVENT:
                            self._route_event(lane, AudioEvent.from_bytes(rec))
            except Exception as e:  # whatever it was, the audio of every call goes on
                lane.failed(e, "audio reader failed")
            finally:
                lane.routing.release()
                batch.release()

    def _route(self, lane: _Lane, frames: np.ndarray, types: np.ndarray, seen: int) -> None:
        """Each call's frames to its handler. A worker writes a tick's frames
        call by call, so a batch is a few runs of one tag each: the runs are
        found in one pass and handed over as views (no copy, no per-call scan).
        Frames of a call no longer added (removed since the tick) are dropped."""
        calls = self.calls
        tags = frames["header"]["tag"]
        if tags[0] == tags[-1] and (len(tags) < 3 or (tags == tags[0]).all()):
            bounds = [0, len(tags)]
        else:
            bounds = [0, *(np.flatnonzero(tags[1:] != tags[:-1]) + 1).tolist(), len(tags)]
        run_tags = tags[bounds[:-1]].tolist()
        for tag, a, b in zip(run_tags, bounds[:-1], bounds[1:]):
            call = calls.get(tag)
            if call is None:
                continue
            handler = call.on_frames or self.on_frames
            if handler is not None:
                try:
                    handler(frames[a:b], types[a:b], seen)
                except Exception as e:  # one call's handler must not cost the others their frames
                    lane.failed(e, "audio handler of call %d failed", tag)

    def _route_event(self, lane: _Lane, event: AudioEvent) -> None:
        call = self.calls.get(event.tag)
        if call is None:
            return
        handler = call.on_event or self.on_event
        if handler is not None:
            try:
                handler(event)
            except Exception as e:
                lane.failed(e, "audio event handler of call %d failed", event.tag)

    @property
    def errors(self) -> list[str]:
        """The first handler exceptions of each reader, as text."""
        return [e for lane in self.lanes for e in lane.errors]

    def handler_failures(self) -> int:
        """Handler exceptions so far (every one counted)."""
        return sum(lane.failures for lane in self.lanes)

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

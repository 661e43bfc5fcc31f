"""``Processor``: the unit users write — audio frames, video frames and
events of one call, each frame with its participant's identity and a
100-ns timestamp on the media clock (``time.monotonic_ns() // 100``).

Subclass and override what you need::

    class Loudness(Processor):
        audio = "unmixed"                 # every speaker's own audio ("mixed", "both", None)
        video = None                      # or (640, 360): every camera at that preferred size
        screen_share = False              # True: the screen share while someone shares

        def on_start(self, ctx):          # ctx.call_id, ctx.output_dir, ctx.options
            self.peak = {}
        def on_audio(self, frame):        # AudioFrame: pcm (320 int16), participant_id, ...
            name = frame.display_name
            self.peak[name] = max(self.peak.get(name, 0), int(abs(frame.pcm).max()))
        def on_event(self, event): ...    # mediacore.events: joins, leaves, DTMF, speakers
        def on_stop(self):
            return self.peak              # the result (pickled back from a worker process)

Where it runs (``mode``):

* ``"thread"`` (default): a thread of the media process with a bounded queue
  (``queue_ms`` of audio; drop-oldest, counted, reported as a
  :class:`~mediacore.events.FramesDropped` event). The queue takes one batch
  per 20 ms tick (all speakers' frames of that tick), not one item per frame.
* ``"inline"``: on the media reader thread itself — the cheapest, for
  processors that never block (counters, forwarding into a queue of your own).
* ``"process"``: a worker process that attaches to a shared-memory ring the
  call writes into; CPU-heavy work never holds the media process's GIL.
  The processor object is pickled into the process; ``on_stop``'s result
  comes back.

Exceptions raised by a processor are counted (``errors``) and logged
(rate-limited); they never stop the call's media or other processors.
Override :meth:`Processor.on_audio_batch` to take a tick's frames at once
(numpy arrays, no per-frame objects).
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .audio.frames import FRAME_RECORD_DTYPE, MIXED, AudioFrame
from .errors import RingClosed
from .events import FramesDropped, MediaEvent
from .rings import Ring
from .streams import FrameQueue
from .video.frames import DecodedVideoFrame
from .video.h264_rtp import EncodedVideoFrame

#: what ``on_video`` gets: decoded frames, or the received access units
#: (``EncodedVideoFrame`` subclass with identity) of a ``video_encoded`` processor
VideoItem = DecodedVideoFrame | EncodedVideoFrame

log = logging.getLogger(__name__)

MODES = ("thread", "inline", "process")
AUDIO_KINDS = (None, "unmixed", "mixed", "both")

#: identity of a media source: (participant id, display name, kind)
SourceIdentity = tuple[str, "str | None", str]


@dataclass
class ProcessorContext:
    """What a processor learns at start: its call, where to write, its options."""

    call_id: str
    output_dir: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: the call's media (thread and inline modes only; None in a worker process):
    #: a processor can send audio, DTMF or video back into the call through it
    media: Any = None
    #: when the call's media started, on the media clock (``time.monotonic_ns() // 100``)
    epoch_100ns: int = 0


class AudioBatch:
    """One tick's frames of one call (numpy records, all speakers together).

    ``pcm`` is an (n, 320) int16 array; ``source_ids``, ``timestamps_100ns``
    arrays of n; iterating yields :class:`AudioFrame` objects with identity.
    Thread and process processors get owned copies (keep them as long as you
    like); an inline processor gets views of the ring's memory, valid until
    its ``on_audio_batch`` returns (``np.array(batch.pcm)`` keeps a copy).
    """

    __slots__ = ("records", "kinds", "call_id", "_sources")

    def __init__(
        self, records: np.ndarray, kinds: np.ndarray, call_id: str, sources: dict[int, SourceIdentity]
    ) -> None:
        self.records = records
        self.kinds = kinds
        self.call_id = call_id
        self._sources = sources

    def __len__(self) -> int:
        return len(self.records)

    @property
    def pcm(self) -> np.ndarray:
        return self.records["pcm"]

    @property
    def source_ids(self) -> np.ndarray:
        return self.records["header"]["source_id"]

    @property
    def timestamps_100ns(self) -> np.ndarray:
        return self.records["header"]["timestamp_100ns"]

    def identity(self, source_id: int) -> SourceIdentity | None:
        return self._sources.get(source_id)

    def __iter__(self) -> Iterator[AudioFrame]:
        sources = self._sources
        for rec, typ in zip(self.records, self.kinds.tolist()):
            if typ == MIXED:
                yield AudioFrame(rec, "mixed", call_id=self.call_id)
                continue
            ident = sources.get(int(rec["header"]["source_id"]))
            if ident is None:
                yield AudioFrame(rec, "unmixed", call_id=self.call_id)
            else:
                yield AudioFrame(rec, "unmixed", ident[0], ident[1], self.call_id)


class Processor:
    """Base class; see the module documentation."""

    #: which audio to receive: "unmixed" (each speaker's own), "mixed", "both" or None
    audio: str | None = "unmixed"
    #: every participant's camera at this preferred (width, height); None: no video
    video: tuple[int, int] | None = None
    #: the screen share while someone shares
    screen_share: bool = False
    #: ``on_video`` gets the received H.264 access units (``ReceivedAccessUnit``
    #: of mediacore.video.sockets, with identity) instead of decoded frames;
    #: nothing is decoded for it
    video_encoded: bool = False
    #: "thread", "inline" or "process"
    mode: str = "thread"
    #: the thread mode's queue, in milliseconds of audio
    queue_ms: int = 2000

    def on_start(self, ctx: ProcessorContext) -> None:
        pass

    def on_audio(self, frame: AudioFrame) -> None:
        pass

    def on_audio_batch(self, batch: AudioBatch) -> None:
        for frame in batch:
            self.on_audio(frame)

    def on_video(self, frame: Any) -> None:  # a VideoItem; subclasses narrow it
        pass

    def on_event(self, event: MediaEvent) -> None:
        pass

    def on_stop(self) -> Any:
        return None

    @classmethod
    def check(cls) -> None:
        """Raise ValueError when the class's declared spec is invalid."""
        if cls.mode not in MODES:
            raise ValueError(f"{cls.__name__}.mode must be one of {', '.join(MODES)}, not {cls.mode!r}")
        if cls.audio not in AUDIO_KINDS:
            raise ValueError(f"{cls.__name__}.audio must be one of {AUDIO_KINDS}, not {cls.audio!r}")
        if cls.video is not None and (len(cls.video) != 2 or min(cls.video) <= 0):
            raise ValueError(f"{cls.__name__}.video must be (width, height) or None")

    def wants_audio(self, kind: str) -> bool:
        return self.audio == "both" or self.audio == kind


# ---- runners -------------------------------------------------------------------------------


class _RateLimitedLog:
    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self._last = 0.0

    def exception(self, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            log.exception(msg, *args)


class ProcessorRunner:
    """Feeds one processor of one call. Created by the call's media; the
    media threads call :meth:`audio`, :meth:`video`, :meth:`event`."""

    def __init__(self, processor: Processor, ctx: ProcessorContext) -> None:
        type(processor).check()
        self.processor = processor
        self.ctx = ctx
        self.name = type(processor).__name__
        self.errors = 0
        self.result: Any = None
        self._log = _RateLimitedLog()

    #: the processor reads frames in place on the media thread
    inline = False

    # the media side
    def audio(self, batch: AudioBatch) -> None:
        raise NotImplementedError

    def video(self, frame: VideoItem) -> None:
        raise NotImplementedError

    def event(self, event: MediaEvent) -> None:
        raise NotImplementedError

    @property
    def dropped(self) -> int:
        return 0

    def stop(self, timeout: float = 30.0) -> Any:
        raise NotImplementedError

    def _call(self, fn: Any, arg: Any) -> None:
        try:
            fn(arg)
        except Exception:
            self.errors += 1
            self._log.exception("processor %s of call %s failed", self.name, self.ctx.call_id)


class InlineRunner(ProcessorRunner):
    inline = True

    def __init__(self, processor: Processor, ctx: ProcessorContext) -> None:
        super().__init__(processor, ctx)
        self._lock = threading.Lock()  # audio, video and events come from different threads
        self._stopped = False
        self._on_audio_batch = processor.on_audio_batch
        processor.on_start(ctx)

    def audio(self, batch: AudioBatch) -> None:
        # once per call and tick on the media reader thread: no extra frame for _call
        with self._lock:
            if not self._stopped:
                try:
                    self._on_audio_batch(batch)
                except Exception:
                    self.errors += 1
                    self._log.exception("processor %s of call %s failed", self.name, self.ctx.call_id)

    def video(self, frame: VideoItem) -> None:
        with self._lock:
            if not self._stopped:
                self._call(self.processor.on_video, frame)

    def event(self, event: MediaEvent) -> None:
        with self._lock:
            if not self._stopped:
                self._call(self.processor.on_event, event)

    def stop(self, timeout: float = 30.0) -> Any:
        with self._lock:
            if not self._stopped:
                self._stopped = True
                try:
                    self.result = self.processor.on_stop()
                except Exception:
                    self.errors += 1
                    log.exception("processor %s: on_stop failed", self.name)
        return self.result


class ThreadRunner(ProcessorRunner):
    def __init__(self, processor: Processor, ctx: ProcessorContext) -> None:
        super().__init__(processor, ctx)
        ticks = max(1, processor.queue_ms // 20)
        self._queue: FrameQueue[tuple[str, Any]] = FrameQueue(
            ticks + 16, "drop_oldest", name=f"{self.name} queue"
        )
        self._reported_drops = 0
        self._last_drop_report = 0.0
        self._last_drop_log = 0.0
        self._started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"processor-{self.name}-{ctx.call_id[:8]}"
        )
        self._thread.start()

    def audio(self, batch: AudioBatch) -> None:
        self._put(("a", batch))

    def video(self, frame: VideoItem) -> None:
        self._put(("v", frame))

    def event(self, event: MediaEvent) -> None:
        # the control lane: a burst of frames never pushes out a join, a leave or the end
        self._queue.put(("e", event), control=True)

    def _put(self, item: tuple[str, Any]) -> None:
        if not self._queue.put(item):
            now = time.monotonic()
            if now - self._last_drop_log >= 1.0:
                self._last_drop_log = now
                log.warning(
                    "processor %s of call %s is behind: %d items dropped so far",
                    self.name,
                    self.ctx.call_id,
                    self._queue.dropped,
                )

    def _report_drops(self, on_event: Any) -> None:
        """On the processor's thread, before the item it takes next: a
        :class:`FramesDropped` for what its queue dropped since the last one
        (at most one a second). Made here rather than queued where the drop
        happens: in a queue that is dropping its oldest items the report
        itself would soon be dropped."""
        n = self._queue.dropped - self._reported_drops
        now = time.monotonic()
        if n and now - self._last_drop_report >= 1.0:
            self._last_drop_report = now
            self._reported_drops += n
            self._call(
                on_event,
                FramesDropped(self.ctx.call_id, time.monotonic_ns() // 100, f"processor:{self.name}", n),
            )

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _run(self) -> None:
        p = self.processor
        try:
            p.on_start(self.ctx)
        except Exception:
            self.errors += 1
            log.exception("processor %s: on_start failed", self.name)
        handlers = {"a": p.on_audio_batch, "v": p.on_video, "e": p.on_event}
        try:
            for kind, item in self._queue:
                self._report_drops(p.on_event)
                self._call(handlers[kind], item)
        finally:
            try:
                self.result = p.on_stop()
            except Exception:
                self.errors += 1
                log.exception("processor %s: on_stop failed", self.name)

    def stop(self, timeout: float = 30.0) -> Any:
        self._queue.close()
        self._thread.join(timeout)
        return self.result


# ---- worker process ------------------------------------------------------------------------

#: record types on a processor's shared ring
_REC_AUDIO = 1  # raw FRAME_RECORD_DTYPE records, preceded by their kinds (u8 each)
_REC_PICKLE = 2  # a pickled (kind, object): events, source maps, video frames


def _process_main(
    processor: Processor, ctx: ProcessorContext, ring_name: str, ready: Any, stop: Any, results: Any
) -> None:
    ring = Ring.attach(ring_name)
    errors = 0
    sources: dict[int, SourceIdentity] = {}

    def call(fn: Any, arg: Any) -> None:
        nonlocal errors
        try:
            fn(arg)
        except Exception:
            errors += 1
            if errors <= 10:
                log.exception("processor %s failed", type(processor).__name__)

    try:
        processor.on_start(ctx)
    except Exception:
        errors += 1
        log.exception("processor %s: on_start failed", type(processor).__name__)
    ready.set()
    # a media process that is killed (SIGKILL, a crash) never sets ``stop``: without
    # this check the worker would poll its ring forever and keep its segment alive
    parent = multiprocessing.parent_process()
    orphaned = False
    try:
        while True:
            stopping = stop.is_set()  # after a stop, drain what is queued, then leave
            try:
                if not stopping and not ring.wait(0.1):
                    if parent is not None and not parent.is_alive():
                        orphaned = True
                        break
                    continue
                batch = ring.read_batch(64)
            except RingClosed:
                break
            if stopping and not len(batch):
                break
            for rec, typ in zip(batch, batch.types.tolist()):
                if typ == _REC_AUDIO:
                    n = int(np.frombuffer(rec, "<u4", count=1)[0])
                    kinds = np.frombuffer(rec, np.uint8, count=n, offset=8).astype(np.uint32)
                    off = 8 + ((n + 7) & ~7)
                    recs = np.frombuffer(rec, FRAME_RECORD_DTYPE, count=n, offset=off).copy()
                    call(processor.on_audio_batch, AudioBatch(recs, kinds, ctx.call_id, sources))
                elif typ == _REC_PICKLE:
                    kind, obj = pickle.loads(bytes(rec))
                    if kind == "sources":
                        sources.clear()
                        sources.update(obj)
                    elif kind == "event":
                        call(processor.on_event, obj)
                    elif kind == "video":  # an access unit (video_encoded) comes as it is
                        call(processor.on_video, _video_from_dict(obj) if isinstance(obj, dict) else obj)
    finally:
        result = None
        try:
            result = processor.on_stop()
        except Exception:
            errors += 1
            log.exception("processor %s: on_stop failed", type(processor).__name__)
        if not orphaned:  # nobody would read it
            results.put((result, errors))
        ring.close()


def _video_to_dict(frame: DecodedVideoFrame) -> dict[str, Any]:
    y, u, v = frame.planes()
    return {
        "w": frame.width,
        "h": frame.height,
        "y": y.tobytes(),
        "u": u.tobytes(),
        "v": v.tobytes(),
        "source_id": frame.source_id,
        "rtp_timestamp": frame.rtp_timestamp,
        "key_frame": frame.key_frame,
        "arrival_ns": frame.arrival_ns,
        "timestamp_100ns": frame.timestamp_100ns,
        "participant_id": frame.participant_id,
        "display_name": frame.display_name,
        "kind": frame.kind,
        "call_id": frame.call_id,
    }


def _video_from_dict(d: dict[str, Any]) -> DecodedVideoFrame:
    import av

    w, h = d["w"], d["h"]
    yuv = np.concatenate(
        [np.frombuffer(d["y"], np.uint8), np.frombuffer(d["u"], np.uint8), np.frombuffer(d["v"], np.uint8)]
    ).reshape(h * 3 // 2, w)
    frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    return DecodedVideoFrame(
        frame,
        d["rtp_timestamp"],
        d["source_id"],
        0,
        d["key_frame"],
        d["arrival_ns"],
        None,
        d["timestamp_100ns"],
        d["participant_id"],
        d["display_name"],
        d["kind"],
        d["call_id"],
    )


class ProcessRunner(ProcessorRunner):
    """The processor in a worker process, fed through a shared-memory ring
    (drop-newest when full, counted by the ring)."""

    def __init__(
        self,
        processor: Processor,
        ctx: ProcessorContext,
        *,
        ring_bytes: int = 1 << 24,
        start_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(processor, ctx)
        import secrets

        self._ring = Ring.create(ring_bytes, name=f"mcproc-{secrets.token_hex(6)}", policy="drop")
        mp = multiprocessing.get_context("spawn")
        self._stop = mp.Event()
        ready = mp.Event()
        self._results = mp.Queue()
        child_ctx = ProcessorContext(ctx.call_id, ctx.output_dir, dict(ctx.options), None, ctx.epoch_100ns)
        self._proc = mp.Process(
            target=_process_main,
            daemon=True,
            args=(processor, child_ctx, self._ring.name, ready, self._stop, self._results),
            name=f"processor-{self.name}",
        )
        self._proc.start()
        deadline = time.monotonic() + start_timeout_s
        while not ready.wait(0.1):
            # a worker that dies before it is ready (its import failed, a main module
            # without the __main__ guard) is not waited for until the timeout
            died = not self._proc.is_alive()
            if died or time.monotonic() > deadline:
                self._proc.kill()
                self._proc.join(5)
                self._ring.close()
                if died:
                    raise RuntimeError(
                        f"processor {self.name}: the worker process exited "
                        f"(code {self._proc.exitcode}) before it started"
                    )
                raise TimeoutError(
                    f"processor {self.name}: the worker process did not start within {start_timeout_s} s"
                )
        self._lock = threading.Lock()  # one producer at a time on the ring
        self._stopped = False

    def sources(self, sources: dict[int, SourceIdentity]) -> None:
        self._pickled("sources", dict(sources))

    def audio(self, batch: AudioBatch) -> None:
        n = len(batch)
        head = np.zeros(8 + ((n + 7) & ~7), np.uint8)
        head[:4] = np.frombuffer(np.uint32(n).tobytes(), np.uint8)
        head[8 : 8 + n] = batch.kinds.astype(np.uint8)
        data = head.tobytes() + np.ascontiguousarray(batch.records).tobytes()
        with self._lock:
            if not self._stopped:
                self._ring.write(data, _REC_AUDIO)

    def video(self, frame: VideoItem) -> None:
        self._pickled("video", _video_to_dict(frame) if isinstance(frame, DecodedVideoFrame) else frame)

    def event(self, event: MediaEvent) -> None:
        self._pickled("event", event)

    def _pickled(self, kind: str, obj: Any) -> None:
        data = pickle.dumps((kind, obj), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if not self._stopped:
                self._ring.write(data, _REC_PICKLE)

    @property
    def dropped(self) -> int:
        return self._ring.stats().records_dropped

    def stop(self, timeout: float = 30.0) -> Any:
        with self._lock:
            if self._stopped:
                return self.result
            self._stopped = True
        self._stop.set()
        deadline = time.monotonic() + timeout
        while True:  # a worker that died (killed, crashed) gives no result: do not wait for one
            try:
                self.result, self.errors = self._results.get(timeout=0.2)
                break
            except queue.Empty:
                if not self._proc.is_alive():
                    try:  # it may have put its result just before it exited
                        self.result, self.errors = self._results.get(timeout=0.5)
                        break
                    except queue.Empty:
                        pass
                    log.error(
                        "processor %s: the worker process died (exit code %s)", self.name, self._proc.exitcode
                    )
                    break
                if time.monotonic() >= deadline:
                    log.error(
                        "processor %s: the worker process gave no result within %s s", self.name, timeout
                    )
                    self._proc.kill()
                    break
        self._proc.join(timeout)
        self._ring.close()
        return self.result


def start_runner(processor: Processor, ctx: ProcessorContext) -> ProcessorRunner:
    type(processor).check()
    if processor.mode == "inline":
        return InlineRunner(processor, ctx)
    if processor.mode == "process":
        return ProcessRunner(processor, ctx)
    return ThreadRunner(processor, ctx)

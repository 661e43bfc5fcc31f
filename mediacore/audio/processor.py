"""``Processor``: the base class transcription and analytics processors
subclass. One runs either in-process (a thread fed by an
:class:`~mediacore.audio.socket.AudioSocket` consumer, with its own
back-pressure policy) or in a worker process that attaches to the socket's
shared-memory output ring and reads the frames there, so CPU-heavy work
never holds the media process's GIL.

Subclasses override :meth:`on_frame` (and optionally :meth:`on_event`,
:meth:`on_start`, :meth:`on_stop`) and return what they found from
:meth:`result` (it must pickle when run in a process).
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

from ..errors import RingClosed
from ..rings import Ring
from .frames import EVENT, FRAME_RECORD_BYTES, MIXED, UNMIXED, AudioEvent, AudioFrame

_KINDS = {MIXED: "mixed", UNMIXED: "unmixed"}


class Processor:
    #: which frames to receive: any of "mixed", "unmixed"
    kinds: tuple[str, ...] = ("mixed",)

    def on_start(self) -> None:
        pass

    def on_frame(self, frame: AudioFrame) -> None:
        raise NotImplementedError

    def on_event(self, event: AudioEvent) -> None:
        pass

    def on_stop(self) -> None:
        pass

    def result(self) -> Any:
        return None

    def _handle(self, item) -> None:
        if isinstance(item, AudioEvent):
            self.on_event(item)
        elif item.kind in self.kinds:
            self.on_frame(item)


class ProcessorRunner:
    """A processor running in a thread of this process."""

    def __init__(self, processor: Processor, socket, *, maxsize: int = 100,
                 policy: str = "drop_oldest") -> None:
        self.processor = processor
        self.consumer = socket.subscribe(set(processor.kinds) | {"event"}, maxsize=maxsize,
                                         policy=policy)
        self._socket = socket
        self._thread = threading.Thread(target=self._run, name="mediacore-processor",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.processor.on_start()
        try:
            while True:
                try:
                    item = self.consumer.get(0.2)
                except EOFError:
                    return
                if item is not None:
                    self.processor._handle(item)
        finally:
            self.processor.on_stop()

    @property
    def dropped(self) -> int:
        return self.consumer.dropped

    def stop(self) -> Any:
        self._socket._remove(self.consumer)
        self._thread.join()
        return self.processor.result()


def _process_main(processor: Processor, ring_name: str, ready, stop, results) -> None:
    ring = Ring.attach(ring_name)
    processor.on_start()
    ready.set()
    try:
        while True:
            stopping = stop.is_set()          # after a stop, drain what is queued, then leave
            try:
                if not stopping and not ring.wait(0.1):
                    continue
                batch = ring.read_batch(256)
            except RingClosed:
                break
            if stopping and not len(batch):
                break
            for rec, typ in zip(batch, batch.types.tolist()):
                if typ == EVENT:
                    processor.on_event(AudioEvent.from_bytes(rec))
                elif typ in _KINDS and len(rec) == FRAME_RECORD_BYTES:
                    kind = _KINDS[typ]
                    if kind in processor.kinds:
                        processor.on_frame(AudioFrame.from_bytes(rec, kind))
    finally:
        processor.on_stop()
        results.put(processor.result())
        ring.close()


class ProcessRunner:
    """A processor in a worker process, attached to a shared socket's ring
    (the socket must be created with ``shared=True``; this is its only
    consumer)."""

    def __init__(self, processor: Processor, socket, start_timeout: float = 60.0) -> None:
        if not socket.shared or socket.output.name is None:
            raise ValueError("run_in_process needs AudioSocket(shared=True)")
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        ready = ctx.Event()
        self._results = ctx.Queue()
        self._proc = ctx.Process(target=_process_main,
                                 args=(processor, socket.output.name, ready, self._stop,
                                       self._results), daemon=True)
        self._proc.start()
        if not ready.wait(start_timeout):      # attached to the ring: nothing is missed from here
            self._proc.kill()
            raise TimeoutError("processor process did not start")

    def stop(self, timeout: float = 60.0) -> Any:
        self._stop.set()
        result = self._results.get(timeout=timeout)
        self._proc.join(timeout)
        return result


def run_processor(processor: Processor, socket, *, in_process: bool | None = None,
                  maxsize: int = 100, policy: str = "drop_oldest"):
    """Start ``processor`` on ``socket``: in a worker process when the socket
    is shared (or ``in_process=False``), else in a thread. Returns a runner
    whose ``stop()`` returns ``processor.result()``."""
    if in_process is None:
        in_process = not socket.shared
    if in_process:
        return ProcessorRunner(processor, socket, maxsize=maxsize, policy=policy)
    return ProcessRunner(processor, socket)

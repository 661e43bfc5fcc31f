"""Built-in processor ``events``: the call's media events as JSON Lines.

``events.jsonl`` in the call's output folder, one object per event:
``{"event": "ParticipantJoined" | "ParticipantLeft" | "DtmfReceived" |
"DominantSpeakerChanged" | "ScreenShareStarted" | "ScreenShareStopped" |
"FramesDropped" | "CallEnded", "at": seconds since the call's media
started, ...the event's fields}``. Dominant-speaker changes are left out
unless ``speakers = true`` (they are frequent).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import IO, Any

from ..events import DominantSpeakerChanged, MediaEvent
from ..processor import Processor, ProcessorContext


class EventLog(Processor):
    audio = None
    mode = "thread"

    def __init__(self, speakers: bool = False, file: str = "events.jsonl") -> None:
        self.speakers = speakers
        self.file = file
        self.events: list[dict[str, Any]] = []
        self._out: IO[str] | None = None
        self._epoch = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_out"], d["_lock"] = None, None
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        self._lock = threading.Lock()

    def on_start(self, ctx: ProcessorContext) -> None:
        self._epoch = ctx.epoch_100ns
        if ctx.output_dir is not None:
            ctx.output_dir.mkdir(parents=True, exist_ok=True)
            self._out = open(ctx.output_dir / self.file, "a", encoding="utf-8")

    def on_event(self, event: MediaEvent) -> None:
        if isinstance(event, DominantSpeakerChanged) and not self.speakers:
            return
        d: dict[str, Any] = {
            "event": type(event).__name__,
            "at": round((event.timestamp_100ns - self._epoch) / 1e7, 3),
        }
        d.update({k: v for k, v in dataclasses.asdict(event).items() if k not in ("timestamp_100ns",)})
        with self._lock:
            self.events.append(d)
            if self._out is not None:
                self._out.write(json.dumps(d) + "\n")
                self._out.flush()

    def on_stop(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None
            return list(self.events)

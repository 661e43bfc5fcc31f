"""Built-in processors, and loading processors by name or ``package.module:Class``.

========================  ===================================================
``transcription``         each speaker's words (:class:`.transcription.Transcription`)
``video_analytics``       cameras and screen share (:class:`.video_analytics.VideoAnalytics`)
``events``                joins, leaves, DTMF, screen sharing (:class:`.events_log.EventLog`)
``recorder``              audio, video and screen share to files (:class:`.recorder.Recorder`)
``stream``                audio and events live over a WebSocket (:class:`.stream.StreamProcessor`)
========================  ===================================================

A processor spec is a built-in name or ``package.module:Class`` (a
:class:`~mediacore.Processor` subclass); its options are keyword arguments of
the class. :func:`processor_factory` checks both at startup, so a bad name,
class or option fails before the first call, with a message naming it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ..processor import Processor

BUILTIN = {
    "transcription": "mediacore.processors.transcription:Transcription",
    "video_analytics": "mediacore.processors.video_analytics:VideoAnalytics",
    "events": "mediacore.processors.events_log:EventLog",
    "recorder": "mediacore.processors.recorder:Recorder",
    "stream": "mediacore.processors.stream:StreamProcessor",
}


class ProcessorSpecError(ValueError):
    """A processor name, class or option that cannot be used."""


def resolve(spec: str) -> type[Processor]:
    """The Processor class of a built-in name or ``package.module:Class``."""
    path = BUILTIN.get(spec, spec)
    if ":" not in path:
        raise ProcessorSpecError(
            f"unknown processor {spec!r}: use a built-in name "
            f"({', '.join(sorted(BUILTIN))}) or package.module:Class"
        )
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ProcessorSpecError(f"processor {spec!r}: cannot import {module_name}: {e}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ProcessorSpecError(f"processor {spec!r}: {module_name} has no {class_name}")
    if not (inspect.isclass(cls) and issubclass(cls, Processor)):
        raise ProcessorSpecError(f"processor {spec!r}: {class_name} is not a mediacore.Processor")
    try:
        cls.check()
    except ValueError as e:
        raise ProcessorSpecError(f"processor {spec!r}: {e}") from None
    return cls


def processor_factory(spec: str, options: Mapping[str, Any] | None = None) -> Callable[[], Processor]:
    """A function making fresh processors of ``spec`` with ``options``; the
    options are checked against the class's signature now, and one instance
    is made now to check their values."""
    cls = resolve(spec)
    opts = dict(options or {})
    try:
        inspect.signature(cls).bind(**opts)
    except TypeError as e:
        raise ProcessorSpecError(f"processor {spec!r}: {e}") from None
    try:
        cls(**opts)
    except (TypeError, ValueError) as e:
        raise ProcessorSpecError(f"processor {spec!r}: {e}") from None

    def make() -> Processor:
        return cls(**opts)

    make.__name__ = f"make_{cls.__name__}"
    return make


__all__ = ["BUILTIN", "ProcessorSpecError", "processor_factory", "resolve"]

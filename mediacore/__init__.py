"""mediacore: mediabot's media API (rings, engine, sockets, frames, codecs).

It wraps the native core (``mediacore._native``, built with cffi from
``native/``) and knows nothing of Microsoft Graph.
"""

from .errors import (
    MediacoreError,
    RingClosed,
    RingEmpty,
    RingFull,
    RecordTooLarge,
    BadSegment,
    AuthenticationFailed,
    Malformed,
    check,
)
from .rings import Ring, RingStats

__all__ = [
    "AuthenticationFailed",
    "BadSegment",
    "Malformed",
    "MediacoreError",
    "RecordTooLarge",
    "Ring",
    "RingClosed",
    "RingEmpty",
    "RingFull",
    "RingStats",
    "check",
]

"""Video subscriptions in the media plane: an RTCP APP packet (RFC 3550
section 6.7, https://www.rfc-editor.org/rfc/rfc3550#section-6.7).

An app-hosted bot chooses which participants' video (and screen share) it
receives, each with a preferred size; the Graph calls API has no request for
that (Teams does it in-band from the media SDK's ``VideoSocket``), so mediabot
sends it to the remote media endpoint in its own SRTCP-protected RTCP:

    name "MBVS", subtype 0, application data (big-endian):

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                            version                            |
    +-------------------------------+-------------------------------+
    |             count             |          reserved (0)         |
    +-------------------------------+-------------------------------+
    |                       source id (entry 1)                     |
    +-------------------------------+-------------------------------+
    |             width             |             height            |
    +-------------------------------+-------------------------------+
    :                       ... count entries                       :

Each packet holds the whole current list (so it is idempotent and survives
loss): the bot sends it on every change and repeats it every second; the
remote applies a version only when it is newer than the last one applied
(serial-number order, so the counter may wrap). Width = height = 0: no
preferred size.
"""

from __future__ import annotations

import struct

APP_NAME = b"MBVS"
APP_SUBTYPE = 0
#: an RTCP packet is at most 65535 words; keep the list well inside one datagram
MAX_ENTRIES = 100
_HEAD = struct.Struct("!IHH")
_ENTRY = struct.Struct("!IHH")

Entry = tuple[int, "tuple[int, int] | None"]


class SubscriptionError(ValueError):
    """Application data that is not a subscription list."""


def encode_subscriptions(version: int, entries: list[Entry]) -> bytes:
    """The APP packet's application data for ``entries`` (``(source_id,
    (width, height) | None)``)."""
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"at most {MAX_ENTRIES} subscriptions per call, got {len(entries)}")
    out = bytearray(_HEAD.pack(version & 0xFFFFFFFF, len(entries), 0))
    for source_id, size in entries:
        w, h = size if size is not None else (0, 0)
        if not (0 <= source_id <= 0xFFFFFFFF and 0 <= w <= 0xFFFF and 0 <= h <= 0xFFFF):
            raise ValueError(f"subscription ({source_id}, {size}) out of range")
        out += _ENTRY.pack(source_id, w, h)
    return bytes(out)


def decode_subscriptions(data: bytes) -> tuple[int, list[Entry]]:
    """``(version, entries)`` from the application data; :class:`SubscriptionError`
    when it is malformed (short, count beyond the data, trailing bytes)."""
    if len(data) < _HEAD.size:
        raise SubscriptionError(f"{len(data)} bytes: shorter than the 8-byte head")
    version, count, _ = _HEAD.unpack_from(data, 0)
    if count > MAX_ENTRIES:
        raise SubscriptionError(f"{count} entries: more than {MAX_ENTRIES}")
    if len(data) != _HEAD.size + count * _ENTRY.size:
        raise SubscriptionError(f"{len(data)} bytes do not hold exactly {count} entries")
    entries: list[Entry] = []
    for i in range(count):
        source_id, w, h = _ENTRY.unpack_from(data, _HEAD.size + i * _ENTRY.size)
        entries.append((source_id, (w, h) if (w or h) else None))
    return version, entries


def newer(version: int, than: int | None) -> bool:
    """Serial-number comparison of 32-bit versions (RFC 1982)."""
    if than is None:
        return True
    d = (version - than) & 0xFFFFFFFF
    return 0 < d < 0x80000000

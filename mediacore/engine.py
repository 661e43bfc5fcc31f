"""The native media engine: one UDP port, many sessions, SRTP, RTP/RTCP.

An :class:`Engine` owns one UDP socket (IPv4 or IPv6) and a native I/O thread
that receives datagrams in batches, demultiplexes them by SSRC and remote
address (RTP and RTCP on one port, RFC 5761), unprotects them (SRTP), keeps
per-stream statistics, buffers them (audio jitter buffer, video reorder buffer
with NACK/PLI) and writes records into rings. Sending works the other way:
Python writes payloads into a :class:`SendStream`'s ring, and the I/O thread
packetizes, protects and sends them.

Sessions and streams can be added and removed while the engine runs. Python
never sees a packet one at a time: receive streams are read in batches
(:meth:`ReceiveStream.read_batch`), each batch being numpy arrays of the RTP
metadata plus views of the payloads.

Thread roles: an :class:`Engine` and its sessions and streams may be used
from several Python threads; control calls are serialised by a per-engine
lock. Reading one :class:`ReceiveStream` must stay on one thread at a time
(its ring has a single consumer), and so must writing one :class:`SendStream`.
"""

from __future__ import annotations

import base64
import operator
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np

from ._native import ffi, lib
from .errors import InvalidArgument, InvalidState, check
from .rings import Ring

__all__ = [
    "Engine",
    "EngineEvent",
    "EngineStats",
    "PacketBatch",
    "ReceiveStats",
    "ReceiveStream",
    "RTP_RECORD_DTYPE",
    "SendStats",
    "SendStream",
    "Session",
    "SRTP_PROFILES",
    "APP_MAX_DATA",
    "DEFAULT_PAYLOAD_TYPES",
]

#: Layout of the header of every receive-ring record (``mc_rtp_record``).
RTP_RECORD_DTYPE = np.dtype(
    [
        ("arrival_ns", "<i8"),
        ("ssrc", "<u4"),
        ("timestamp", "<u4"),
        ("sequence_number", "<u2"),
        ("payload_type", "u1"),
        ("marker", "u1"),
        ("flags", "<u2"),
        ("lost_before", "<u2"),
    ]
)
assert RTP_RECORD_DTYPE.itemsize == lib.MC_RTP_RECORD_SIZE

#: Layout of an event record (``mc_engine_event``).
EVENT_DTYPE = np.dtype(
    [
        ("time_ns", "<i8"),
        ("kind", "<u4"),
        ("ssrc", "<u4"),
        ("sender_ssrc", "<u4"),
        ("count", "<u4"),
    ]
)

_SEND_HEADER = np.dtype([("timestamp", "<u4"), ("marker", "u1"), ("payload_type", "u1"), ("flags", "<u2")])
assert _SEND_HEADER.itemsize == lib.MC_SEND_RECORD_SIZE

#: SRTP profiles by their RFC 4568 / RFC 7714 names, with master key + salt
#: lengths. The numeric values are the native ``MC_SRTP_*`` constants when the
#: SRTP module is built in.
SRTP_PROFILES: dict[str, int] = {}
SRTP_KEY_LENGTHS = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}
for _name, _const in (
    ("AES_CM_128_HMAC_SHA1_80", "MC_SRTP_AES_CM_128_HMAC_SHA1_80"),
    ("AES_CM_128_HMAC_SHA1_32", "MC_SRTP_AES_CM_128_HMAC_SHA1_32"),
    ("AEAD_AES_128_GCM", "MC_SRTP_AEAD_AES_128_GCM"),
    ("AEAD_AES_256_GCM", "MC_SRTP_AEAD_AES_256_GCM"),
):
    if hasattr(lib, _const):
        SRTP_PROFILES[_name] = getattr(lib, _const)

MEDIA = {"audio": lib.MC_MEDIA_AUDIO, "video": lib.MC_MEDIA_VIDEO}
EVENT_KINDS = {
    lib.MC_EVENT_PLI: "pli",
    lib.MC_EVENT_FIR: "fir",
    lib.MC_EVENT_NACK: "nack",
    lib.MC_EVENT_BYE: "bye",
    lib.MC_EVENT_REMOTE_LATCHED: "remote_latched",
    lib.MC_EVENT_APP: "app",
}
_APP_HEADER = np.dtype([("name", "S4"), ("subtype", "<u4")])
assert EVENT_DTYPE.itemsize + _APP_HEADER.itemsize == lib.MC_ENGINE_APP_EVENT_SIZE

#: Longest RTCP APP application data :meth:`Session.send_app` sends (and the
#: engine delivers): the SRTCP compound stays within 1200 bytes.
APP_MAX_DATA = lib.MC_RTCP_APP_MAX_DATA


#: Payload types a receive stream accepts when :meth:`Session.add_receive_stream`
#: is given none: the ones the media configuration documents use for the kind
#: (audio: Opus 111 and RFC 4733 telephone-event 101; video: H.264 96, screen
#: share 97) and, for audio, the RFC 3551 static G.711 types 0 (PCMU) and 8
#: (PCMA), whose numbers mean those codecs without negotiation. Anything
#: else (e.g. 35 or 100) is dropped and counted as ``payload_type_mismatch``.
DEFAULT_PAYLOAD_TYPES: dict[str, frozenset[int]] = {
    "audio": frozenset({111, 101, 0, 8}),
    "video": frozenset({96, 97}),
}


class _MediaDefault:
    def __repr__(self) -> str:
        return "DEFAULT_PAYLOAD_TYPES[media]"


_MEDIA_DEFAULT = _MediaDefault()


def _payload_type_set(payload_types) -> list[int]:
    """The 4 x 32-bit bit set of ``mc_recv_stream_config.payload_types``."""
    words = [0, 0, 0, 0]
    pts = list(payload_types)
    if not pts:
        raise InvalidArgument(
            "payload_types is empty: the stream would accept nothing (pass None to accept every payload type)"
        )
    for pt in pts:
        try:
            pt = operator.index(pt)
        except TypeError:
            raise InvalidArgument(f"payload types are integers 0..127, got {pt!r}") from None
        if not 0 <= pt <= 127:
            raise InvalidArgument(f"payload types are 0..127, got {pt}")
        words[pt >> 5] |= 1 << (pt & 31)
    return words


def _key_bytes(key: bytes | str | None) -> bytes:
    """Master key || salt as raw bytes; a str is the SDES inline base64 form."""
    if key is None:
        return b""
    if isinstance(key, str):
        try:
            return base64.b64decode(key, validate=True)
        except ValueError as exc:
            raise InvalidArgument(f"SRTP key is not valid base64: {exc}") from None
    return bytes(key)


def _stats_from(cls, raw):
    return cls(**{f.name: getattr(raw, f.name) for f in fields(cls)})


# ---- statistics --------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineStats:
    datagrams_in: int
    bytes_in: int
    datagrams_out: int
    bytes_out: int
    rtp_in: int
    rtcp_in: int
    rtcp_out: int
    unknown_ssrc: int
    unknown_source: int
    malformed: int
    auth_failures: int
    replays: int
    send_errors: int
    io_errors: int
    loops: int
    app_received: int
    app_sent: int
    app_dropped: int
    tx_no_key: int
    sessions: int
    recv_streams: int
    send_streams: int
    running: int
    rtcp_accepted: int
    not_rtp: int
    rtp_auth_failures: int
    rtcp_auth_failures: int
    rtp_replays: int
    rtcp_replays: int
    rtp_malformed: int
    rtcp_malformed: int
    rtp_bad_padding: int
    rtcp_bad_padding: int
    payload_type_mismatch: int

    #: Each received datagram ends in exactly one of these (they add up to
    #: ``datagrams_in``); ``auth_failures``, ``replays`` and ``malformed`` are
    #: totals over RTP and RTCP (``malformed`` also counts ``not_rtp`` and
    #: bad padding).
    DATAGRAM_FATES = (
        "not_rtp",
        "rtp_in",
        "rtcp_accepted",
        "unknown_ssrc",
        "unknown_source",
        "rtp_auth_failures",
        "rtcp_auth_failures",
        "rtp_replays",
        "rtcp_replays",
        "rtp_malformed",
        "rtcp_malformed",
        "rtp_bad_padding",
        "rtcp_bad_padding",
        "payload_type_mismatch",
    )

    def datagram_fates(self) -> int:
        """Sum of :attr:`DATAGRAM_FATES`: equals ``datagrams_in``."""
        return sum(getattr(self, f) for f in self.DATAGRAM_FATES)


@dataclass(frozen=True)
class ReceiveStats:
    """Per receive stream (RFC 3550 names where they exist).

    Every accepted packet (``packets``: authentic, parsed, of a payload type
    the stream accepts) ends in exactly one of :attr:`FATES`, so
    ``packets == sum of the fates`` at every snapshot: ``delivered`` (a
    record in the ring), ``ring_full`` (the full ring dropped its record),
    ``duplicates``, ``late`` (its slot had been played or skipped), ``early``
    (audio: too far ahead of the jitter buffer), ``overflow`` (video: given
    up when a jump overran the reorder buffer), ``shrunk`` (audio: skipped
    to cut the delay), ``reset`` (held when the sender restarted its
    numbering), ``too_large``, ``probation`` (the first packet after a jump
    of more than 3000, RFC 3550 A.1) or, for now, ``buffered``. Packets of
    other payload types are not accepted: ``payload_type_mismatch``."""

    FATES = (
        "delivered",
        "ring_full",
        "duplicates",
        "late",
        "early",
        "overflow",
        "shrunk",
        "reset",
        "too_large",
        "probation",
        "buffered",
    )

    packets: int
    bytes: int
    lost: int
    duplicates: int
    reordered: int
    late: int
    auth_failures: int
    replays: int
    malformed: int
    records: int
    ring_dropped: int
    concealed: int
    nacks_sent: int
    plis_sent: int
    firs_sent: int
    sr_received: int
    extended_highest_seq: int
    jitter_ms: float
    rtt_ms: float
    payload_type_mismatch: int
    delivered: int
    ring_full: int
    early: int
    overflow: int
    shrunk: int
    reset: int
    too_large: int
    probation: int
    buffered: int

    def fates(self) -> dict[str, int]:
        """The fate counters by name; their sum equals ``packets``."""
        return {f: getattr(self, f) for f in self.FATES}


@dataclass(frozen=True)
class SendStats:
    packets: int
    bytes: int
    records_dropped: int
    send_errors: int
    nacks_received: int
    retransmitted: int
    plis_received: int
    firs_received: int
    rr_received: int
    remote_fraction_lost: int
    remote_cumulative_lost: int
    remote_jitter_ms: float
    rtt_ms: float


@dataclass(frozen=True)
class EngineEvent:
    """Something the remote asked for or told us: a key-frame request
    (``"pli"``, ``"fir"``), ``"nack"``, ``"bye"``, ``"remote_latched"``, or an
    RTCP APP packet (``"app"``, RFC 3550 6.7: ``ssrc`` is the APP packet's
    SSRC/CSRC, ``sender_ssrc`` the compound's sender, ``name`` its 4 bytes,
    ``subtype`` 0..31, ``data`` the application data, ``count == len(data)``)."""

    kind: str
    ssrc: int
    sender_ssrc: int
    count: int
    time_ns: int
    name: bytes = b""
    subtype: int = 0
    data: bytes = b""


# ---- received packets --------------------------------------------------------------------


class PacketBatch:
    """Received packets of one read: RTP metadata as numpy arrays, payloads as
    views. The views point into a buffer that the next read reuses."""

    __slots__ = ("headers", "_buf", "_payload_offsets", "_payload_lengths")

    def __init__(
        self, headers: np.ndarray, buf: np.ndarray, payload_offsets: np.ndarray, payload_lengths: np.ndarray
    ) -> None:
        self.headers = headers
        self._buf = buf
        self._payload_offsets = payload_offsets
        self._payload_lengths = payload_lengths

    def __len__(self) -> int:
        return len(self.headers)

    # column views
    @property
    def ssrc(self) -> np.ndarray:
        return self.headers["ssrc"]

    @property
    def sequence_number(self) -> np.ndarray:
        return self.headers["sequence_number"]

    @property
    def timestamp(self) -> np.ndarray:
        return self.headers["timestamp"]

    @property
    def marker(self) -> np.ndarray:
        return self.headers["marker"]

    @property
    def payload_type(self) -> np.ndarray:
        return self.headers["payload_type"]

    @property
    def arrival_ns(self) -> np.ndarray:
        return self.headers["arrival_ns"]

    @property
    def lost(self) -> np.ndarray:
        """True where the record is a concealment slot (no payload)."""
        return (self.headers["flags"] & lib.MC_RECORD_FLAG_LOST) != 0

    @property
    def payload_lengths(self) -> np.ndarray:
        return self._payload_lengths

    def payload(self, i: int) -> memoryview:
        o = int(self._payload_offsets[i])
        return self._buf[o : o + int(self._payload_lengths[i])].data

    def payloads(self) -> Iterator[memoryview]:
        base = self._buf.data
        for o, n in zip(self._payload_offsets.tolist(), self._payload_lengths.tolist()):
            yield base[o : o + n]


_HDR = lib.MC_RTP_RECORD_SIZE
_EMPTY_HEADERS = np.empty(0, RTP_RECORD_DTYPE)
_EMPTY_I64 = np.empty(0, np.int64)


class _RecordReader:
    """Batch reads of one receive ring with ``mc_engine_read_records``: the
    native side writes the record headers into one array and the payloads
    back to back into a reused buffer, so a batch costs one native call and
    a few array copies, whatever its size."""

    __slots__ = (
        "ring",
        "_cap",
        "_headers",
        "_c_headers",
        "_offsets",
        "_c_offsets",
        "_lengths",
        "_c_lengths",
        "_buf",
        "_c_buf",
        "_count",
    )

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        self._cap = 0
        size = max(1 << 16, ring.capacity)
        raw = np.empty(size + 64, dtype=np.uint8)
        start = (-raw.ctypes.data) % 64
        self._buf = raw[start : start + size]
        self._c_buf = ffi.from_buffer(self._buf)
        self._count = ffi.new("uint32_t *")

    def _alloc(self, n: int) -> None:
        if n <= self._cap:
            return
        if n > 1 << 20:
            raise InvalidArgument("max_records too large")
        self._cap = n
        self._headers = np.empty(n, RTP_RECORD_DTYPE)
        self._c_headers = ffi.from_buffer("mc_rtp_record[]", self._headers)
        self._offsets = np.empty(n, np.uint32)
        self._c_offsets = ffi.from_buffer("uint32_t[]", self._offsets)
        self._lengths = np.empty(n, np.uint32)
        self._c_lengths = ffi.from_buffer("uint32_t[]", self._lengths)

    def read(self, max_records: int, timeout: float | None) -> PacketBatch:
        self._alloc(max_records)
        ring = self.ring
        h = ring._h()
        while True:
            status = lib.mc_engine_read_records(
                h,
                self._c_headers,
                self._c_buf,
                len(self._buf),
                self._c_offsets,
                self._c_lengths,
                max_records,
                self._count,
            )
            if status == 0:
                n = self._count[0]
                # headers and lengths are copied out (the arrays are reused);
                # payload views point into the buffer until the next read
                return PacketBatch(
                    self._headers[:n].copy(),
                    self._buf,
                    self._offsets[:n].astype(np.int64),
                    self._lengths[:n].astype(np.int64),
                )
            if status == lib.MC_E_EMPTY:
                if timeout == 0 or not ring.wait(timeout):
                    return PacketBatch(_EMPTY_HEADERS, self._buf, _EMPTY_I64, _EMPTY_I64)
                continue
            check(status, "receive ring read")


# ---- streams -----------------------------------------------------------------------------


_KEYFRAME_METHODS = {
    "pli": lib.MC_KEYFRAME_PLI,
    "fir": lib.MC_KEYFRAME_FIR,
    "pli+fir": lib.MC_KEYFRAME_PLI | lib.MC_KEYFRAME_FIR,
}


class ReceiveStream:
    """One remote source (SSRC) of a session; its packets arrive in :attr:`ring`."""

    def __init__(
        self, session: Session, ssrc: int, media: str, clock_rate: int, ring: Ring, owns_ring: bool
    ) -> None:
        self.session = session
        self.ssrc = ssrc
        self.media = media
        self.clock_rate = clock_rate
        self.ring = ring
        self._owns_ring = owns_ring
        self._closed = False
        self._reader: _RecordReader | None = None

    def read_batch(self, max_records: int = 256, timeout: float | None = 0.0) -> PacketBatch:
        """Up to ``max_records`` packets with one native call (``timeout``: 0
        polls, None waits forever). Payload views stay valid until the next
        read; the metadata arrays are the batch's own."""
        if self._reader is None:
            self._reader = _RecordReader(self.ring)
        return self._reader.read(max_records, timeout)

    def __iter__(self) -> Iterator[tuple[np.void, bytes]]:
        """Drain what is there now: (header, payload bytes) per packet."""
        while True:
            batch = self.read_batch()
            if not len(batch):
                return
            for i, p in enumerate(batch.payloads()):
                yield batch.headers[i], bytes(p)

    def stats(self) -> ReceiveStats:
        return self.session._recv_stats(self.ssrc)

    def request_keyframe(self, method: str = "pli") -> None:
        """Ask this source for a key frame: ``"pli"`` (RFC 4585 6.3.1),
        ``"fir"`` (RFC 5104 4.3.1, a new command sequence number each call) or
        ``"pli+fir"`` (both in one compound RTCP packet)."""
        try:
            methods = _KEYFRAME_METHODS[method]
        except KeyError:
            raise InvalidArgument(f"method must be one of {sorted(_KEYFRAME_METHODS)}") from None
        eng = self.session.engine
        with eng._lock:
            check(
                lib.mc_engine_request_keyframe_methods(eng._h(), self.session.id, self.ssrc, methods),
                "request key frame",
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.session._remove_recv(self)
        if self._owns_ring:
            self.ring.close()


class SendStream:
    """One local source (SSRC). :meth:`send` queues payloads; the engine's I/O
    thread adds the RTP header (sequence number, timestamp + offset, SSRC),
    protects and sends them."""

    def __init__(
        self, session: Session, ssrc: int, payload_type: int, media: str, clock_rate: int, ring: Ring
    ) -> None:
        self.session = session
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.media = media
        self.clock_rate = clock_rate
        self.ring = ring
        self._closed = False
        self._hdr = np.zeros(1, _SEND_HEADER)

    def send(
        self,
        payload,
        timestamp: int,
        marker: bool = False,
        payload_type: int | None = None,
        wake: bool = True,
    ) -> bool:
        """Queue one packet. ``timestamp`` is in RTP clock units from the stream
        start. Returns False if the send ring was full (the packet is dropped
        and counted)."""
        h = self._hdr
        h["timestamp"] = timestamp & 0xFFFFFFFF
        h["marker"] = 1 if marker else 0
        h["payload_type"] = lib.MC_SEND_PT_DEFAULT if payload_type is None else payload_type
        ok = self.ring.write(h.tobytes() + bytes(payload))
        if wake:
            self.session.engine.wake()
        return ok

    def send_batch(self, packets: Sequence[tuple[bytes, int, bool]]) -> int:
        """Queue several (payload, timestamp, marker) packets with one
        publication and one wake; returns how many were accepted."""
        recs = []
        for payload, timestamp, marker in packets:
            h = np.zeros(1, _SEND_HEADER)
            h["timestamp"] = timestamp & 0xFFFFFFFF
            h["marker"] = 1 if marker else 0
            h["payload_type"] = lib.MC_SEND_PT_DEFAULT
            recs.append(h.tobytes() + bytes(payload))
        n = self.ring.write_batch(recs)
        self.session.engine.wake()
        return n

    def stats(self) -> SendStats:
        return self.session._send_stats(self.ssrc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.session._remove_send(self)
        self.ring.close()


# ---- sessions ----------------------------------------------------------------------------


class Session:
    """One media session: a remote address, SRTP keys per direction, streams."""

    def __init__(
        self,
        engine: Engine,
        session_id: int,
        events: Ring | None,
        srtp_profile: str | None,
        receive_only: bool = False,
    ) -> None:
        self.engine = engine
        self.id = session_id
        self.srtp_profile = srtp_profile
        #: SRTP with an rx key only: nothing can be sent (no send streams, no
        #: APP; the engine counts the RTCP reports it cannot send)
        self.receive_only = receive_only
        self._events = events
        self._recv: dict[int, ReceiveStream] = {}
        self._send: dict[int, SendStream] = {}
        self._closed = False

    @property
    def receive_streams(self) -> dict[int, ReceiveStream]:
        return dict(self._recv)

    @property
    def send_streams(self) -> dict[int, SendStream]:
        return dict(self._send)

    def add_receive_stream(
        self,
        ssrc: int,
        media: str = "audio",
        clock_rate: int | None = None,
        *,
        direct: bool = False,
        nack: bool = False,
        pli: bool = False,
        frame_ms: int = 20,
        jitter_min_ms: int = 0,
        jitter_max_ms: int = 0,
        reorder_wait_ms: int = 0,
        ring: Ring | None = None,
        ring_capacity: int = 1 << 20,
        ring_rewind: int = 0,
        audio_level_id: int = 0,
        wake_per_frame: bool = False,
        payload_types: Iterable[int] | None | _MediaDefault = _MEDIA_DEFAULT,
    ) -> ReceiveStream:
        """Receive the remote source ``ssrc``. Audio goes through the adaptive
        jitter buffer (one record per ``frame_ms``), video through the reorder
        buffer (NACK / PLI when enabled); ``direct=True`` delivers in arrival
        order without buffering. Records go to ``ring`` (which may be shared by
        several streams) or a new private ring. ``audio_level_id`` (1..255):
        the RFC 6464 header extension id whose level and V flag the audio
        records carry (``flags``: ``MC_RECORD_FLAG_AUDIO_LEVEL``).
        ``ring_rewind``: the new ring's rewind room (:meth:`Ring.set_rewind`;
        0: off). ``wake_per_frame`` (video): a consumer waiting on the ring is
        woken once per frame (at its marker-bit packet), not per packet.
        ``payload_types``: the RTP payload types this stream accepts (the
        negotiated codecs, plus the RFC 4733 telephone-event type where it
        was negotiated); packets of any other type are dropped and counted
        (``payload_type_mismatch``). Left out: :data:`DEFAULT_PAYLOAD_TYPES`
        of ``media``; ``None``: every type (for tools and tests that carry
        arbitrary payloads)."""
        if media not in MEDIA:
            raise InvalidArgument(f"media must be 'audio' or 'video', not {media!r}")
        if payload_types is _MEDIA_DEFAULT:
            payload_types = DEFAULT_PAYLOAD_TYPES[media]
        pt_words = None if payload_types is None else _payload_type_set(payload_types)
        if clock_rate is None:
            clock_rate = 48000 if media == "audio" else 90000
        owns = ring is None
        if ring is None:
            ring = Ring.create(ring_capacity, policy="drop")
            if ring_rewind:
                ring.set_rewind(ring_rewind)
        cfg = ffi.new("mc_recv_stream_config *")
        cfg.ssrc = ssrc & 0xFFFFFFFF
        cfg.media = MEDIA[media]
        cfg.clock_rate = clock_rate
        cfg.flags = (
            (lib.MC_RECV_DIRECT if direct else 0)
            | (lib.MC_RECV_NACK if nack else 0)
            | (lib.MC_RECV_PLI if pli else 0)
            | (lib.MC_RECV_WAKE_PER_FRAME if wake_per_frame else 0)
            | (lib.MC_RECV_ANY_PAYLOAD_TYPE if pt_words is None else 0)
        )
        if pt_words is not None:
            for i, w in enumerate(pt_words):
                cfg.payload_types[i] = w
        cfg.frame_ms = frame_ms
        cfg.jitter_min_ms = jitter_min_ms
        cfg.jitter_max_ms = jitter_max_ms
        cfg.reorder_wait_ms = reorder_wait_ms
        if not 0 <= audio_level_id <= 255:
            raise InvalidArgument("audio_level_id must be 0..255")
        cfg.audio_level_id = audio_level_id
        cfg.ring = ring._h()
        eng = self.engine
        try:
            with eng._lock:
                check(lib.mc_engine_add_recv_stream(eng._h(), self.id, cfg), f"add receive stream {ssrc}")
        except BaseException:
            if owns:
                ring.close()
            raise
        stream = ReceiveStream(self, cfg.ssrc, media, clock_rate, ring, owns)
        self._recv[cfg.ssrc] = stream
        return stream

    def add_send_stream(
        self,
        ssrc: int,
        payload_type: int,
        media: str = "audio",
        clock_rate: int | None = None,
        *,
        initial_sequence: int | None = None,
        timestamp_offset: int | None = None,
        history: int = 0,
        ring_capacity: int = 1 << 20,
        audio_level_id: int = 0,
    ) -> SendStream:
        """Send as ``ssrc``. The initial sequence number and timestamp offset are
        random unless given (RFC 3550 5.1). ``history`` packets are kept for
        retransmission on NACK. ``audio_level_id`` (1..255): write the RFC 6464
        audio level of records that carry one (the audio graph's) with this
        header extension id. Raises :class:`InvalidState` on a receive-only
        session (no tx key)."""
        if media not in MEDIA:
            raise InvalidArgument(f"media must be 'audio' or 'video', not {media!r}")
        if self.receive_only:
            raise InvalidState("cannot add a send stream: the session is receive-only (no tx_key)")
        if clock_rate is None:
            clock_rate = 48000 if media == "audio" else 90000
        ring = Ring.create(ring_capacity, policy="drop")
        cfg = ffi.new("mc_send_stream_config *")
        cfg.ssrc = ssrc & 0xFFFFFFFF
        cfg.media = MEDIA[media]
        cfg.clock_rate = clock_rate
        cfg.payload_type = payload_type
        cfg.initial_sequence = 0x10000 if initial_sequence is None else initial_sequence & 0xFFFF
        cfg.timestamp_offset = (
            secrets.randbits(32) if timestamp_offset is None else timestamp_offset & 0xFFFFFFFF
        )
        cfg.history = history
        if not 0 <= audio_level_id <= 255:
            raise InvalidArgument("audio_level_id must be 0..255")
        cfg.audio_level_id = audio_level_id
        cfg.ring = ring._h()
        eng = self.engine
        try:
            with eng._lock:
                check(lib.mc_engine_add_send_stream(eng._h(), self.id, cfg), f"add send stream {ssrc}")
        except BaseException:
            ring.close()
            raise
        stream = SendStream(self, cfg.ssrc, payload_type, media, clock_rate, ring)
        self._send[cfg.ssrc] = stream
        return stream

    def set_remote(self, host: str, port: int, rtcp_port: int = 0) -> None:
        eng = self.engine
        with eng._lock:
            check(lib.mc_engine_set_remote(eng._h(), self.id, host.encode(), port, rtcp_port), "set remote")

    def events(self, max_events: int = 256) -> list[EngineEvent]:
        """Events since the last call (key-frame requests, NACKs, BYE...)."""
        if self._events is None:
            return []
        rb = self._events.read_batch(max_events)
        out = []
        for view in rb:
            ev = np.frombuffer(view, EVENT_DTYPE, count=1)[0]
            kind = int(ev["kind"])
            name, subtype, data = b"", 0, b""
            if kind == lib.MC_EVENT_APP:
                # variable-length record: header, name, subtype, then the data
                # (layout: mc_engine_app_event in mediacore.h)
                app = np.frombuffer(view, _APP_HEADER, count=1, offset=EVENT_DTYPE.itemsize)[0]
                start = lib.MC_ENGINE_APP_EVENT_SIZE
                name = bytes(view[EVENT_DTYPE.itemsize : EVENT_DTYPE.itemsize + 4])
                subtype = int(app["subtype"])
                data = bytes(view[start : start + int(ev["count"])])
            out.append(
                EngineEvent(
                    kind=EVENT_KINDS.get(kind, str(kind)),
                    ssrc=int(ev["ssrc"]),
                    sender_ssrc=int(ev["sender_ssrc"]),
                    count=int(ev["count"]),
                    time_ns=int(ev["time_ns"]),
                    name=name,
                    subtype=subtype,
                    data=data,
                )
            )
        return out

    def send_app(self, ssrc: int, name: bytes, data: bytes, subtype: int = 0) -> None:
        """Send an RTCP APP packet (RFC 3550 6.7) to the remote: one
        SRTCP-protected compound of an empty RR from ``ssrc`` and the APP
        packet (``name``: 4 bytes, ``subtype`` 0..31, ``data`` a multiple of 4
        bytes, at most :data:`APP_MAX_DATA`). The engine's I/O thread sends it
        at its next pass; :attr:`EngineStats.app_sent` counts it. Raises
        :class:`InvalidArgument` for a bad name, subtype or data length and
        :class:`InvalidState` when the session has no tx key (receive-only)
        or no remote address is known yet (set one, or wait for the latch)."""
        name = bytes(name)
        data = bytes(data)
        if len(name) != 4:
            raise InvalidArgument(f"APP name must be 4 bytes, got {len(name)}")
        if not 0 <= subtype <= 31:
            raise InvalidArgument(f"APP subtype must be 0..31, got {subtype}")
        if len(data) % 4:
            raise InvalidArgument(f"APP data must be a multiple of 4 bytes (RFC 3550 6.7), got {len(data)}")
        if len(data) > APP_MAX_DATA:
            raise InvalidArgument(f"APP data must be at most {APP_MAX_DATA} bytes, got {len(data)}")
        if self.receive_only:
            raise InvalidState("cannot send APP: the session is receive-only (no tx_key)")
        eng = self.engine
        with eng._lock:
            st = lib.mc_engine_send_rtcp_app(
                eng._h(), self.id, ssrc & 0xFFFFFFFF, name, subtype, data, len(data)
            )
        if st == lib.MC_E_STATE:
            raise InvalidState(
                "cannot send APP: no remote address known yet "
                "(Session.set_remote, or a latch on the first packet)",
                st,
            )
        check(st, "send APP")

    def _recv_stats(self, ssrc: int) -> ReceiveStats:
        eng = self.engine
        raw = ffi.new("mc_recv_stream_stats *")
        with eng._lock:
            check(lib.mc_engine_get_recv_stats(eng._h(), self.id, ssrc, raw), "receive stats")
        return _stats_from(ReceiveStats, raw)

    def _send_stats(self, ssrc: int) -> SendStats:
        eng = self.engine
        raw = ffi.new("mc_send_stream_stats *")
        with eng._lock:
            check(lib.mc_engine_get_send_stats(eng._h(), self.id, ssrc, raw), "send stats")
        return _stats_from(SendStats, raw)

    def _remove_recv(self, stream: ReceiveStream) -> None:
        self._recv.pop(stream.ssrc, None)
        eng = self.engine
        if eng._handle is not None and not self._closed:
            with eng._lock:
                check(
                    lib.mc_engine_remove_recv_stream(eng._h(), self.id, stream.ssrc), "remove receive stream"
                )

    def _remove_send(self, stream: SendStream) -> None:
        self._send.pop(stream.ssrc, None)
        eng = self.engine
        if eng._handle is not None and not self._closed:
            with eng._lock:
                check(lib.mc_engine_remove_send_stream(eng._h(), self.id, stream.ssrc), "remove send stream")

    def close(self) -> None:
        """Remove the session and its streams from the engine (the engine
        stops using their rings before this returns), then free the rings."""
        if self._closed:
            return
        eng = self.engine
        if eng._handle is not None:
            with eng._lock:
                check(lib.mc_engine_remove_session(eng._h(), self.id), "remove session")
        self._closed = True
        eng._sessions.pop(self.id, None)
        for rs in list(self._recv.values()):
            rs.close()
        for ss in list(self._send.values()):
            ss.close()
        if self._events is not None:
            self._events.close()
            self._events = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- the engine --------------------------------------------------------------------------


class Engine:
    """One UDP socket and its native I/O thread.

    ``Engine("127.0.0.1", 0)`` binds a free loopback port (see :attr:`port`);
    ``thread=False`` creates an engine driven by :meth:`inject` and
    :meth:`poll` only (benchmarks, deterministic tests).
    """

    def __init__(
        self,
        bind_host: str = "0.0.0.0",
        bind_port: int = 0,
        *,
        rcvbuf_bytes: int = 0,
        sndbuf_bytes: int = 0,
        rtcp_interval_ms: int = 1000,
        start: bool = True,
        thread: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self._handle = None
        self._sessions: dict[int, Session] = {}
        cfg = ffi.new("mc_engine_config *")
        host = ffi.new("char[]", bind_host.encode())
        cfg.bind_host = host
        cfg.bind_port = bind_port
        cfg.rcvbuf_bytes = rcvbuf_bytes
        cfg.sndbuf_bytes = sndbuf_bytes
        cfg.rtcp_interval_ms = rtcp_interval_ms
        cfg.flags = 0 if thread else lib.MC_ENGINE_NO_THREAD
        out = ffi.new("mc_engine **")
        check(lib.mc_engine_new(cfg, out), f"create engine on {bind_host}:{bind_port}")
        self._handle = out[0]
        self.bind_host = bind_host
        self._threaded = thread
        port = ffi.new("uint16_t *")
        check(lib.mc_engine_local_port(self._handle, port), "engine port")
        self.port = int(port[0])
        if start and thread:
            self.start()

    def _h(self):
        if self._handle is None:
            raise InvalidState("engine is closed")
        return self._handle

    @property
    def sessions(self) -> dict[int, Session]:
        return dict(self._sessions)

    def start(self) -> None:
        with self._lock:
            check(lib.mc_engine_start(self._h()), "start engine")

    def stop(self) -> None:
        with self._lock:
            check(lib.mc_engine_stop(self._h()), "stop engine")

    def wake(self) -> None:
        """Tell the I/O thread that send rings have new records."""
        lib.mc_engine_wake(self._h())

    def add_session(
        self,
        remote: tuple[str, int] | None = None,
        *,
        srtp_profile: str | None = None,
        tx_key: bytes | str | None = None,
        rx_key: bytes | str | None = None,
        replay_window: int = 128,
        remote_rtcp_port: int = 0,
        strict_source: bool = False,
        latch: bool = False,
        cname: str | None = None,
        srtcp_tag_32: bool = False,
        event_capacity: int = 1 << 16,
    ) -> Session:
        """A new session. ``remote`` is where we send (None: learn it from the
        first authentic packet when ``latch``). ``tx_key`` protects what we
        send, ``rx_key`` what the remote sends: raw master key || salt bytes
        or the SDES inline base64 text (RFC 4568). With SRTP, ``rx_key`` is
        required and ``tx_key`` may be None: a receive-only session, which
        receives and never sends (:meth:`Session.add_send_stream` and
        :meth:`Session.send_app` raise; the RTCP reports it cannot protect are
        counted in :attr:`EngineStats.tx_no_key`). ``srtcp_tag_32`` gives
        AES_CM_128_HMAC_SHA1_32 a 4-byte SRTCP tag, as ffmpeg's suite of that
        name does (RFC 5764 and libsrtp use 10 bytes)."""
        profile = 0
        if srtp_profile is not None:
            if srtp_profile not in SRTP_KEY_LENGTHS:
                raise InvalidArgument(
                    f"unknown SRTP profile {srtp_profile!r}; known: {sorted(SRTP_KEY_LENGTHS)}"
                )
            if srtp_profile not in SRTP_PROFILES:
                raise InvalidArgument(f"SRTP profile {srtp_profile!r} is not built in")
            profile = SRTP_PROFILES[srtp_profile]
            need = SRTP_KEY_LENGTHS[srtp_profile]
            if rx_key is None:
                raise InvalidArgument(
                    f"{srtp_profile} needs rx_key (what the remote protects "
                    f"with); tx_key may be None for a receive-only session"
                )
            for label, k in (("tx_key", tx_key), ("rx_key", rx_key)):
                if label == "tx_key" and k is None:
                    continue
                if len(_key_bytes(k)) != need:
                    raise InvalidArgument(
                        f"{label} for {srtp_profile} must be {need} bytes of master key || salt, "
                        f"got {len(_key_bytes(k))}"
                    )
        txk, rxk = _key_bytes(tx_key), _key_bytes(rx_key)
        events = Ring.create(event_capacity, policy="drop")
        keep = []
        cfg = ffi.new("mc_session_config *")
        if remote is not None:
            h = ffi.new("char[]", remote[0].encode())
            keep.append(h)
            cfg.remote_host = h
            cfg.remote_port = remote[1]
        cfg.remote_rtcp_port = remote_rtcp_port
        cfg.srtp_profile = profile
        txb = ffi.new("uint8_t[]", txk or b"\0")
        rxb = ffi.new("uint8_t[]", rxk or b"\0")
        cfg.tx_key = txb
        cfg.tx_key_length = len(txk)
        cfg.rx_key = rxb
        cfg.rx_key_length = len(rxk)
        cfg.replay_window = replay_window
        cfg.flags = (
            (lib.MC_SESSION_STRICT_SOURCE if strict_source else 0)
            | (lib.MC_SESSION_LATCH if latch else 0)
            | (lib.MC_SESSION_SRTCP_TAG_32 if srtcp_tag_32 else 0)
        )
        if cname:
            c = ffi.new("char[]", cname.encode())
            keep.append(c)
            cfg.cname = c
        cfg.events = events._h()
        out = ffi.new("uint32_t *")
        try:
            with self._lock:
                check(lib.mc_engine_add_session(self._h(), cfg, out), "add session")
        except BaseException:
            events.close()
            raise
        s = Session(self, int(out[0]), events, srtp_profile, receive_only=profile != 0 and not txk)
        self._sessions[s.id] = s
        return s

    def stats(self) -> EngineStats:
        raw = ffi.new("mc_engine_stats *")
        with self._lock:
            check(lib.mc_engine_get_stats(self._h(), raw), "engine stats")
        return _stats_from(EngineStats, raw)

    def inject(
        self,
        datagrams: Sequence[bytes],
        from_addr: tuple[str, int] = ("127.0.0.1", 9),
        now_ns: int = 0,
        step_ns: int = 0,
    ) -> None:
        """Run the receive path on ``datagrams`` as if received from
        ``from_addr`` (only while the I/O thread is not running). With
        ``step_ns`` datagram i arrives at ``now_ns + i * step_ns`` and the
        buffers' timers run between datagrams (a simulated real-time stream)."""
        lengths = np.fromiter((len(d) for d in datagrams), dtype=np.uint32, count=len(datagrams))
        blob = b"".join(datagrams)
        self.inject_prepared(blob, lengths, from_addr, now_ns, step_ns)

    def inject_prepared(
        self,
        blob: bytes,
        lengths: np.ndarray,
        from_addr: tuple[str, int] = ("127.0.0.1", 9),
        now_ns: int = 0,
        step_ns: int = 0,
    ) -> None:
        with self._lock:
            check(
                lib.mc_engine_inject_batch(
                    self._h(),
                    ffi.from_buffer(blob),
                    ffi.from_buffer("uint32_t[]", lengths),
                    len(lengths),
                    from_addr[0].encode(),
                    from_addr[1],
                    now_ns,
                    step_ns,
                ),
                "inject",
            )

    def poll(self, now_ns: int = 0) -> None:
        """One pass of timers and sending (only while the I/O thread is not running)."""
        with self._lock:
            check(lib.mc_engine_poll(self._h(), now_ns), "poll")

    def io_cpu_ns(self) -> int:
        out = ffi.new("int64_t *")
        check(lib.mc_engine_io_cpu_ns(self._h(), out), "io cpu")
        return int(out[0])

    def close(self) -> None:
        """Stop the I/O thread, then free every session, stream and ring."""
        with self._lock:
            if self._handle is None:
                return
            check(lib.mc_engine_stop(self._handle), "stop engine")
            handle, self._handle = self._handle, None
            lib.mc_engine_free(handle)
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            s._closed = True
            for r in list(s._recv.values()):
                r._closed = True
                if r._owns_ring:
                    r.ring.close()
            for x in list(s._send.values()):
                x._closed = True
                x.ring.close()
            if s._events is not None:
                s._events.close()
                s._events = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

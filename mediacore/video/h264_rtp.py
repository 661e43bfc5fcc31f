"""H.264 over RTP (RFC 6184): the native depacketizer and packetizer.

The per-packet work happens in C (``native/src/h264_rtp.c``). These wrappers
exist for control (creation, stats, key-frame requests), for reading whole
access units out of a ring, and for tests and tools that feed packets from
Python in batches. In the engine's receive path a VideoSocket worker has the
depacketizer drain the stream's ring of receive records natively (one call per
batch, GIL released) and Python only sees finished frames.

Every :class:`EncodedVideoFrame` the depacketizer hands out is decodable: a
key frame, or the next frame of an unbroken chain that started at one.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from .._native import ffi, lib
from ..errors import InvalidArgument, check
from ..rings import Ring

FRAME_KEY = lib.MC_H264_FRAME_KEY
FRAME_HAS_SPS = lib.MC_H264_FRAME_HAS_SPS
FRAME_HAS_PPS = lib.MC_H264_FRAME_HAS_PPS
FRAME_PARAMS_INSERTED = lib.MC_H264_FRAME_PARAMS_INSERTED
FRAME_RESYNC = lib.MC_H264_FRAME_RESYNC
FRAME_NO_MARKER = lib.MC_H264_FRAME_NO_MARKER
RECORD_TYPE = lib.MC_H264_RECORD_TYPE
DEFAULT_MAX_PAYLOAD = lib.MC_H264_DEFAULT_MAX_PAYLOAD
DEFAULT_MAX_FRAME = lib.MC_H264_DEFAULT_MAX_FRAME

_METHOD_NAMES = {
    0: None,
    lib.MC_KEYFRAME_PLI: "pli",
    lib.MC_KEYFRAME_FIR: "fir",
    lib.MC_KEYFRAME_PLI | lib.MC_KEYFRAME_FIR: "pli+fir",
}

# mc_h264_frame_header, little-endian as on every supported host
_HEADER = struct.Struct("<IIIIHHIqq")
HEADER_SIZE = _HEADER.size
assert HEADER_SIZE == ffi.sizeof("mc_h264_frame_header")


@dataclass(slots=True)
class EncodedVideoFrame:
    """One H.264 access unit in Annex-B form (4-byte start codes)."""

    data: bytes | memoryview
    rtp_timestamp: int
    flags: int = 0
    ssrc: int = 0
    first_sequence: int = 0
    last_sequence: int = 0
    packets: int = 0
    first_arrival_ns: int = 0
    last_arrival_ns: int = 0

    @property
    def key_frame(self) -> bool:
        return bool(self.flags & FRAME_KEY)

    @classmethod
    def from_record(cls, record: memoryview | bytes, *, copy: bool = True) -> EncodedVideoFrame:
        """Parse a depacketizer record (header + Annex-B). With ``copy=False``
        ``data`` is a view into ``record`` (valid as long as it is)."""
        ts, flags, length, ssrc, first, last, packets, t0, t1 = _HEADER.unpack_from(record)
        body = memoryview(record)[HEADER_SIZE : HEADER_SIZE + length]
        return cls(bytes(body) if copy else body, ts, flags, ssrc, first, last, packets, t0, t1)


# the same header without `length` (a record is exactly header + length
# bytes), in EncodedVideoFrame's field order: one unpack feeds the constructor
_HEADER_NO_LENGTH = struct.Struct("<II4xIHHIqq")


def frames_from_batch(batch, *, copy: bool = False) -> list[EncodedVideoFrame]:
    """Every depacketizer record of a ring batch (``Ring.peek``/``read_batch``)
    as frames; with ``copy=False`` their data are views into the batch, valid
    until it is released. One pass, no per-record numpy indexing."""
    base = memoryview(batch._base)
    unpack = _HEADER_NO_LENGTH.unpack_from
    frame = EncodedVideoFrame
    out: list[EncodedVideoFrame] = []
    append = out.append
    for off, n, kind in zip(batch.offsets.tolist(), batch.lengths.tolist(), batch.types.tolist()):
        if kind != RECORD_TYPE or n < HEADER_SIZE:
            continue
        body = base[off + HEADER_SIZE : off + n]
        append(frame(body.tobytes() if copy else body, *unpack(base, off)))
    return out


# mc_h264_frame_ref: the header fields in EncodedVideoFrame's order, then
# where the Annex-B bytes lie (offset, end, and which ring: `source`; its
# `length` and `reserved` skipped): one row per frame
_FRAME_REF = struct.Struct("<IIIHHIIqqI4xI4x")
assert _FRAME_REF.size == ffi.sizeof("mc_h264_frame_ref")
_REF_SIZE = _FRAME_REF.size
_iter_refs = _FRAME_REF.iter_unpack
MAX_FRAMES_PER_DRAIN = 256


@dataclass(frozen=True)
class DepacketizerStats:
    packets: int
    payload_bytes: int
    frames: int
    key_frames: int
    frames_dropped: int
    sequence_gaps: int
    packets_lost: int
    packets_late: int
    single_nal_packets: int
    stap_a_packets: int
    fu_a_packets: int
    unsupported_packets: int
    malformed_packets: int
    frames_too_large: int
    ring_drops: int
    key_frame_requests: int
    params_inserted: int
    plis_requested: int
    firs_requested: int
    output_waits: int
    frames_in_place: int
    waiting_for_key_frame: bool
    key_frame_request_pending: bool


@dataclass(frozen=True)
class PacketizerStats:
    access_units: int
    packets: int
    payload_bytes: int
    single_nal_packets: int
    stap_a_packets: int
    fu_a_packets: int
    idr_access_units: int
    params_inserted: int
    errors: int
    next_sequence: int


def _stats(cls, raw):
    return cls(**{f.name: getattr(raw, f.name) for f in fields(cls)})


@dataclass(frozen=True, slots=True)
class RtpPayload:
    """A received RTP packet's H.264 payload and the header fields the
    depacketizer needs."""

    payload: bytes
    sequence: int
    timestamp: int
    marker: bool = False
    arrival_ns: int = 0


class H264Depacketizer:
    """RFC 6184 depacketizer for one stream.

    Output goes to ``ring`` (records of :data:`RECORD_TYPE`, read them with
    :meth:`read_frames`) or, without a ring, to an internal buffer from which
    :meth:`push` returns the frames.
    """

    def __init__(
        self,
        *,
        ring: Ring | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME,
        ssrc: int = 0,
        in_place: bool = True,
    ) -> None:
        out = ffi.new("mc_h264_depacketizer **")
        check(lib.mc_h264_depacketizer_new(max_frame_bytes, ssrc, out), "create depacketizer")
        self._handle = ffi.gc(out[0], lib.mc_h264_depacketizer_free)
        check(lib.mc_h264_depacketizer_set_in_place(self._handle, int(in_place)), "in place")
        self.ring = ring
        self._buffer: np.ndarray | None = None
        if ring is not None:
            check(lib.mc_h264_depacketizer_set_ring(self._handle, ring._handle), "set ring")
        else:
            # 8-byte aligned: numpy allocations are 16-aligned
            self._buffer = np.empty(HEADER_SIZE + max_frame_bytes, dtype=np.uint8)
            self._buffer_ptr = ffi.from_buffer("uint8_t[]", self._buffer)
            check(
                lib.mc_h264_depacketizer_set_buffer(self._handle, self._buffer_ptr, len(self._buffer)),
                "set buffer",
            )
        self._consumed = ffi.new("uint32_t *")
        self._frames = ffi.new("uint32_t *")
        self._header = ffi.new("mc_h264_frame_header *")
        self._flag = ffi.new("uint32_t *")
        self._refs: bytearray | None = None
        self._input_ring: Ring | None = None

    def push(self, packets: Sequence[RtpPayload]) -> list[EncodedVideoFrame]:
        """Feed packets (one native call per batch). Buffer mode: returns the
        frames completed, copied out. Ring mode: returns [] (frames are in the
        ring)."""
        n = len(packets)
        if n == 0:
            return []
        arr = ffi.new("mc_h264_packet[]", n)
        keep = []
        for i, p in enumerate(packets):
            buf = ffi.from_buffer(p.payload)
            keep.append(buf)
            a = arr[i]
            a.payload = buf
            a.payload_length = len(p.payload)
            a.timestamp = p.timestamp & 0xFFFFFFFF
            a.sequence = p.sequence & 0xFFFF
            a.marker = 1 if p.marker else 0
            a.arrival_ns = p.arrival_ns
        frames = self.push_array(arr, n)
        del keep  # the payload buffers had to live until here
        return frames

    def push_array(self, arr, count: int) -> list[EncodedVideoFrame]:
        """Feed a prepared ``mc_h264_packet[]`` cdata array (the caller keeps
        the payload memory alive)."""
        out: list[EncodedVideoFrame] = []
        done = 0
        while done < count:
            check(
                lib.mc_h264_depacketizer_push(
                    self._handle, arr + done, count - done, self._consumed, self._frames
                ),
                "push",
            )
            done += self._consumed[0]
            if self._buffer is not None:
                while lib.mc_h264_depacketizer_take_frame(self._handle, self._header) == lib.MC_OK:
                    out.append(
                        EncodedVideoFrame.from_record(self._buffer.data[: HEADER_SIZE + self._header.length])
                    )
            elif self._consumed[0] == 0:  # pragma: no cover - ring mode consumes all
                break
        return out

    def read_frames(self, *, max_frames: int = 256) -> list[EncodedVideoFrame]:
        """Ring mode: take the finished frames out of the ring (copied)."""
        if self.ring is None:
            raise InvalidArgument("this depacketizer has no ring")
        with self.ring.peek(max_records=max_frames) as batch:
            return frames_from_batch(batch, copy=True)

    def drain(self, rtp_ring: Ring, max_records: int = 1024) -> tuple[int, int]:
        """Ring mode: depacketize up to ``max_records`` engine receive records
        straight from ``rtp_ring`` (one native call, GIL released); returns
        (records consumed, frames handed out)."""
        check(
            lib.mc_h264_depacketizer_drain_ring(
                self._handle, rtp_ring._handle, max_records, self._consumed, self._frames
            ),
            "drain",
        )
        return self._consumed[0], self._frames[0]

    def drain_frames(
        self, rtp_ring: Ring, max_records: int = 1024, *, copy: bool = False
    ) -> list[EncodedVideoFrame]:
        """Ring mode, a receive worker's turn in one native call (GIL
        released): release the frames the previous call returned, depacketize
        up to ``max_records`` records of ``rtp_ring``, and return the frames
        now in the output ring (at most 256). With ``copy=False`` their
        ``data`` are views into ``rtp_ring`` (frames assembled in place over
        their packets, the default) or into the output ring, valid until the
        next call or :meth:`release_frames`; neither ring may have another
        consumer."""
        if self._refs is None:
            if self.ring is None:
                raise InvalidArgument("this depacketizer has no ring")
            self._refs = bytearray(_FRAME_REF.size * MAX_FRAMES_PER_DRAIN)
            self._refs_c = ffi.from_buffer("mc_h264_frame_ref[]", self._refs)
            self._refs_view = memoryview(self._refs)
            self._ring_view = self.ring._data.data
        if self._input_ring is not rtp_ring:
            # frames assembled in place lie in the input ring: views of both
            # (output first, by MC_H264_FRAME_SOURCE_*)
            self._input_ring = rtp_ring
            self._views = (self._ring_view, rtp_ring._data.data)
        status = lib.mc_h264_depacketizer_drain_frames(
            self._handle,
            rtp_ring._handle,
            max_records,
            self._refs_c,
            MAX_FRAMES_PER_DRAIN,
            self._frames,
            ffi.NULL,
        )
        if status:
            check(status, "drain frames")
        n = self._frames[0]
        if not n:
            return []
        views = self._views
        frame = EncodedVideoFrame
        refs = _iter_refs(self._refs_view[: n * _REF_SIZE])
        if copy:
            return [
                frame(views[src][off:end].tobytes(), ts, flags, ssrc, first, last, packets, t0, t1)
                for ts, flags, ssrc, first, last, packets, off, t0, t1, end, src in refs
            ]
        return [
            frame(views[src][off:end], ts, flags, ssrc, first, last, packets, t0, t1)
            for ts, flags, ssrc, first, last, packets, off, t0, t1, end, src in refs
        ]

    def release_frames(self) -> None:
        """Release the frames the last :meth:`drain_frames` returned."""
        check(lib.mc_h264_depacketizer_release_frames(self._handle), "release frames")

    def poll_key_frame(self, now_ns: int, rtt_ns: int = -1) -> str | None:
        """The key-frame request to send now under the FIR-fallback policy
        (PLI at once, FIR if no key frame came within max(timeout, 2 RTT),
        then both with backoff until one comes): ``None``, ``"pli"``,
        ``"fir"`` or ``"pli+fir"`` (a :meth:`ReceiveStream.request_keyframe`
        method)."""
        check(lib.mc_h264_depacketizer_poll_key_frame(self._handle, now_ns, rtt_ns, self._flag))
        return _METHOD_NAMES[self._flag[0]]

    def request_key_frame(self) -> None:
        """Start a key-frame request under that policy (any thread)."""
        check(lib.mc_h264_depacketizer_request_key_frame(self._handle))

    def set_key_frame_timing(self, timeout_s: float = 0.0, max_interval_s: float = 0.0) -> None:
        """The policy's first timeout and its backoff cap (0: defaults 0.5 s, 2 s)."""
        check(
            lib.mc_h264_depacketizer_set_key_frame_timing(
                self._handle, int(timeout_s * 1e9), int(max_interval_s * 1e9)
            ),
            "key-frame timing",
        )

    def take_key_frame_request(self) -> bool:
        """True once per loss: time to send a PLI (or FIR)."""
        check(lib.mc_h264_depacketizer_take_key_frame_request(self._handle, self._flag))
        return bool(self._flag[0])

    def reset(self) -> None:
        check(lib.mc_h264_depacketizer_reset(self._handle), "reset")

    def close(self) -> None:
        """Free the native depacketizer now, abandoning a frame in progress
        (its ring reservation is cancelled): call it before closing the
        ring it writes into, whose handle that needs."""
        if self._handle is not None:
            ffi.release(self._handle)
            self._handle = None

    def stats(self) -> DepacketizerStats:
        raw = ffi.new("mc_h264_depacketizer_stats *")
        check(lib.mc_h264_depacketizer_get_stats(self._handle, raw))
        return _stats(DepacketizerStats, raw)


class H264Packetizer:
    """RFC 6184 packetizer (packetization-mode 1) for one stream.

    With ``rtp_header=True`` each packet is a whole RTP packet (V=2, the
    given payload type and SSRC, consecutive sequence numbers, marker bit on
    the last packet of an access unit); otherwise only payloads.
    ``header="send_record"`` prefixes each payload with the engine's send
    record instead, so :meth:`packetize_to_ring` can write straight into a
    :class:`~mediacore.engine.SendStream`'s ring.
    """

    def __init__(
        self,
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        ssrc: int = 0,
        payload_type: int = 96,
        first_sequence: int = 0,
        rtp_header: bool = True,
        header: str | None = None,
        tail_room: int = 0,
        max_packets: int = 4096,
    ) -> None:
        if header is None:
            header = "rtp" if rtp_header else "none"
        modes = {
            "none": lib.MC_H264_HEADER_NONE,
            "rtp": lib.MC_H264_HEADER_RTP,
            "send_record": lib.MC_H264_HEADER_SEND_RECORD,
        }
        if header not in modes:
            raise InvalidArgument(f"header must be one of {sorted(modes)}")
        config = ffi.new("mc_h264_packetizer_config *")
        config.max_payload = max_payload
        config.ssrc = ssrc & 0xFFFFFFFF
        config.payload_type = payload_type
        config.first_sequence = first_sequence & 0xFFFF
        config.rtp_header = modes[header]
        config.tail_room = tail_room
        out = ffi.new("mc_h264_packetizer **")
        check(lib.mc_h264_packetizer_new(config, out), "create packetizer")
        self._handle = ffi.gc(out[0], lib.mc_h264_packetizer_free)
        self.max_payload = max_payload
        self._header_len = {"none": 0, "rtp": 12, "send_record": 8}[header]
        self._max_packets = max_packets
        self._alloc(max_packets * (max_payload + self._header_len + tail_room + 8))
        self._offsets = ffi.new("uint32_t[]", max_packets)
        self._lengths = ffi.new("uint32_t[]", max_packets)
        self._count = ffi.new("uint32_t *")

    def _alloc(self, size: int) -> None:
        self._out = np.empty(size, dtype=np.uint8)
        self._out_ptr = ffi.from_buffer("uint8_t[]", self._out)

    def packetize(self, access_unit: bytes | memoryview | np.ndarray, rtp_timestamp: int) -> list[bytes]:
        """Packets for one Annex-B access unit (copied out as bytes)."""
        src = ffi.from_buffer(access_unit)
        check(
            lib.mc_h264_packetize(
                self._handle,
                src,
                len(src),
                rtp_timestamp & 0xFFFFFFFF,
                self._out_ptr,
                len(self._out),
                self._offsets,
                self._lengths,
                self._max_packets,
                self._count,
            ),
            "packetize",
        )
        n = self._count[0]
        buf = self._out
        return [buf[self._offsets[i] : self._offsets[i] + self._lengths[i]].tobytes() for i in range(n)]

    def packetize_to_ring(
        self,
        access_unit: bytes | memoryview | np.ndarray,
        rtp_timestamp: int,
        ring: Ring,
        record_type: int = 1,
    ) -> int:
        """Write each packet as one record of ``ring`` (in place); returns the count."""
        src = ffi.from_buffer(access_unit)
        check(
            lib.mc_h264_packetize_to_ring(
                self._handle,
                src,
                len(src),
                rtp_timestamp & 0xFFFFFFFF,
                ring._handle,
                record_type,
                self._count,
            ),
            "packetize to ring",
        )
        return self._count[0]

    def stats(self) -> PacketizerStats:
        raw = ffi.new("mc_h264_packetizer_stats *")
        check(lib.mc_h264_packetizer_get_stats(self._handle, raw))
        return _stats(PacketizerStats, raw)


def split_annexb(data: bytes | memoryview) -> list[bytes]:
    """The NAL units of an Annex-B buffer (start codes and trailing zeros removed)."""
    b = bytes(data)
    units = []
    i = b.find(b"\x00\x00\x01")
    if i < 0:
        return [b] if b.strip(b"\x00") else []
    if b[:i].strip(b"\x00"):
        units.append(b[:i].rstrip(b"\x00"))
    while i >= 0:
        start = i + 3
        j = b.find(b"\x00\x00\x01", start)
        unit = b[start : j if j >= 0 else len(b)].rstrip(b"\x00")
        if unit:
            units.append(unit)
        i = j
    return units


def parse_rtp(packet: bytes, arrival_ns: int = 0) -> RtpPayload:
    """Minimal RTP parse (fixed header, CSRCs, extension, padding) for tests
    and tools. TODO(rtp): the native RTP parser replaces this in the engine."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        raise InvalidArgument("not an RTP packet")
    cc = packet[0] & 0x0F
    off = 12 + 4 * cc
    if packet[0] & 0x10:
        if len(packet) < off + 4:
            raise InvalidArgument("truncated RTP extension")
        off += 4 + 4 * int.from_bytes(packet[off + 2 : off + 4], "big")
    end = len(packet)
    if packet[0] & 0x20:
        end -= packet[-1]
    if off > end:
        raise InvalidArgument("truncated RTP packet")
    return RtpPayload(
        packet[off:end],
        int.from_bytes(packet[2:4], "big"),
        int.from_bytes(packet[4:8], "big"),
        bool(packet[1] & 0x80),
        arrival_ns,
    )


__all__ = [
    "DepacketizerStats",
    "EncodedVideoFrame",
    "H264Depacketizer",
    "H264Packetizer",
    "PacketizerStats",
    "RtpPayload",
    "frames_from_batch",
    "parse_rtp",
    "split_annexb",
]

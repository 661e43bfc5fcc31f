"""Thin Python wrappers over the native RTP/RTCP code and receive buffers.

These exist for tests, tools and the control path; they are not on the hot
path (the engine's I/O thread calls the same C functions directly). Names
follow RFC 3550 / 4585 / 5104 / 8285 / 6464. Every native call goes through
:func:`mediacore.errors.check`, so malformed input raises
:class:`mediacore.errors.Malformed` (a ``ValueError``).

Clocks are injectable: buffers take ``now_ns`` on every call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ._native import ffi, lib
from .errors import check

ONE_BYTE = lib.MC_RTP_EXT_ONE_BYTE
TWO_BYTE = lib.MC_RTP_EXT_TWO_BYTE

# ---- wrap-around arithmetic (native/src/seq.h) --------------------------------


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers, in [-32768, 32767]."""
    d, n = ffi.new("int32_t*"), ffi.new("int32_t*")
    check(lib.mc_seq_compare(a, b, d, n), "seq_diff")
    return d[0]


def seq_newer(a: int, b: int) -> bool:
    d, n = ffi.new("int32_t*"), ffi.new("int32_t*")
    check(lib.mc_seq_compare(a, b, d, n), "seq_newer")
    return bool(n[0])


def ts_diff(a: int, b: int) -> int:
    """Signed distance a - b between 32-bit RTP timestamps."""
    d, n = ffi.new("int64_t*"), ffi.new("int32_t*")
    check(lib.mc_ts_compare(a, b, d, n), "ts_diff")
    return d[0]


def ts_newer(a: int, b: int) -> bool:
    d, n = ffi.new("int64_t*"), ffi.new("int32_t*")
    check(lib.mc_ts_compare(a, b, d, n), "ts_newer")
    return bool(n[0])


def unwrap_seq(values: Sequence[int]) -> list[int]:
    """Extend 16-bit sequence numbers to 64 bits (first value = cycle 0)."""
    arr = ffi.new("uint16_t[]", list(values) or [0])
    out = ffi.new("int64_t[]", max(len(values), 1))
    check(lib.mc_seq_unwrap_many(arr, len(values), out), "unwrap_seq")
    return list(out[0 : len(values)])


def unwrap_ts(values: Sequence[int]) -> list[int]:
    arr = ffi.new("uint32_t[]", list(values) or [0])
    out = ffi.new("int64_t[]", max(len(values), 1))
    check(lib.mc_ts_unwrap_many(arr, len(values), out), "unwrap_ts")
    return list(out[0 : len(values)])


# ---- RTP ------------------------------------------------------------------------


@dataclass
class RtpPacket:
    """One RTP packet (RFC 3550 5.1). ``extension`` is the raw extension data
    (a multiple of 4 bytes) with ``extension_profile``; None when X=0."""

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    marker: int = 0
    csrc: list[int] = field(default_factory=list)
    extension_profile: int = 0
    extension: bytes | None = None
    payload: bytes = b""
    padding_length: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        h = ffi.new("mc_rtp_header*")
        check(lib.mc_rtp_parse(data, len(data), h), "RTP parse")
        ext = None
        if h.extension:
            ext = bytes(data[h.extension_offset : h.extension_offset + 4 * h.extension_words])
        return cls(
            payload_type=h.payload_type,
            sequence_number=h.sequence_number,
            timestamp=h.timestamp,
            ssrc=h.ssrc,
            marker=h.marker,
            csrc=list(h.csrc[0 : h.csrc_count]),
            extension_profile=h.extension_profile,
            extension=ext,
            payload=bytes(data[h.payload_offset : h.payload_offset + h.payload_length]),
            padding_length=h.padding_length,
        )

    def _header(self) -> ffi.CData:
        h = ffi.new("mc_rtp_header*")
        h.version = 2
        h.payload_type = self.payload_type
        h.sequence_number = self.sequence_number
        h.timestamp = self.timestamp
        h.ssrc = self.ssrc
        h.marker = self.marker
        h.csrc_count = len(self.csrc)
        for i, c in enumerate(self.csrc[:15]):
            h.csrc[i] = c
        if self.extension is not None:
            if len(self.extension) % 4:
                raise ValueError("extension data must be a multiple of 4 bytes")
            h.extension = 1
            h.extension_profile = self.extension_profile
            h.extension_words = len(self.extension) // 4
        if self.padding_length:
            h.padding = 1
            h.padding_length = self.padding_length
        return h

    def serialize(self) -> bytes:
        h = self._header()
        size = ffi.new("uint32_t*")
        check(lib.mc_rtp_serialized_size(h, len(self.payload), size), "RTP size")
        out = ffi.new("uint8_t[]", max(size[0], 1))
        written = ffi.new("size_t*")
        ext = self.extension or b""
        check(
            lib.mc_rtp_serialize(
                h, ext if ext else ffi.NULL, self.payload, len(self.payload), out, size[0], written
            ),
            "RTP serialize",
        )
        return ffi.buffer(out, written[0])[:]

    __bytes__ = serialize


def _view(data: bytes) -> ffi.CData:
    h = ffi.new("mc_rtp_header*")
    check(lib.mc_rtp_parse(data, len(data), h), "RTP parse")
    return h


def header_extensions(data: bytes) -> list[tuple[int, bytes]]:
    """RFC 8285 elements of an RTP packet as (id, data) in order."""
    h = _view(data)
    cursor, eid = ffi.new("uint32_t*"), ffi.new("uint8_t*")
    off, ln = ffi.new("uint32_t*"), ffi.new("uint32_t*")
    out: list[tuple[int, bytes]] = []
    while True:
        st = lib.mc_rtp_ext_next(data, h, cursor, eid, off, ln)
        if st == lib.MC_E_NOT_FOUND:
            return out
        check(st, "RTP header extension")
        out.append((eid[0], bytes(data[off[0] : off[0] + ln[0]])))


def find_extension(data: bytes, ext_id: int) -> bytes | None:
    h = _view(data)
    off, ln = ffi.new("uint32_t*"), ffi.new("uint32_t*")
    st = lib.mc_rtp_ext_find(data, h, ext_id, off, ln)
    if st == lib.MC_E_NOT_FOUND:
        return None
    check(st, "RTP header extension")
    return bytes(data[off[0] : off[0] + ln[0]])


def build_extension(profile: int, elements: Iterable[tuple[int, bytes]]) -> bytes:
    """Extension data (padded to 32 bits) holding `elements` in `profile` form."""
    buf = ffi.new("uint8_t[]", 4096)
    used, words = ffi.new("uint32_t*"), ffi.new("uint16_t*")
    for eid, value in elements:
        check(lib.mc_rtp_ext_append(buf, 4096, used, profile, eid, value, len(value)), "RTP header extension")
    check(lib.mc_rtp_ext_finish(buf, 4096, used, words), "RTP header extension")
    return ffi.buffer(buf, used[0])[:]


def audio_level_element(voice: bool, level_dbov: int, profile: int = ONE_BYTE, ext_id: int = 1) -> bytes:
    """Extension data with one RFC 6464 audio level element."""
    buf = ffi.new("uint8_t[]", 8)
    used, words = ffi.new("uint32_t*"), ffi.new("uint16_t*")
    check(lib.mc_rtp_audio_level_append(buf, 8, used, profile, ext_id, int(voice), level_dbov), "audio level")
    check(lib.mc_rtp_ext_finish(buf, 8, used, words), "audio level")
    return ffi.buffer(buf, used[0])[:]


def audio_level(data: bytes, ext_id: int) -> tuple[bool, int] | None:
    """(voice activity, level in -dBov) from an RTP packet, None when absent."""
    h = _view(data)
    v, lvl = ffi.new("uint8_t*"), ffi.new("uint8_t*")
    st = lib.mc_rtp_audio_level_read(data, h, ext_id, v, lvl)
    if st == lib.MC_E_NOT_FOUND:
        return None
    check(st, "audio level")
    return bool(v[0]), lvl[0]


def classify(data: bytes) -> str:
    """'rtp', 'rtcp' (RFC 5761 4) or 'other'."""
    k = ffi.new("uint32_t*")
    check(lib.mc_rtp_classify(data, len(data), k), "classify")
    return {lib.MC_PACKET_RTP: "rtp", lib.MC_PACKET_RTCP: "rtcp"}.get(k[0], "other")


# ---- RTCP -------------------------------------------------------------------------


@dataclass
class ReportBlock:
    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    extended_highest_seq: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0


@dataclass
class SenderInfo:
    ssrc: int
    ntp_timestamp: int = 0
    rtp_timestamp: int = 0
    packet_count: int = 0
    octet_count: int = 0


def _blocks_in(blocks: Sequence[ReportBlock]) -> ffi.CData:
    arr = ffi.new("mc_rtcp_report_block[]", max(len(blocks), 1))
    for i, b in enumerate(blocks):
        for k, v in vars(b).items():
            setattr(arr[i], k, v)
    return arr


def _blocks_out(arr, n: int) -> list[ReportBlock]:
    return [
        ReportBlock(
            arr[i].ssrc,
            arr[i].fraction_lost,
            arr[i].cumulative_lost,
            arr[i].extended_highest_seq,
            arr[i].jitter,
            arr[i].lsr,
            arr[i].dlsr,
        )
        for i in range(n)
    ]


class RtcpWriter:
    """Builds a compound RTCP packet: each method appends one packet."""

    def __init__(self, size: int = 1500) -> None:
        self._buf = ffi.new("uint8_t[]", size)
        self._size = size
        self._used = ffi.new("size_t*")

    def sr(self, sender: SenderInfo, blocks: Sequence[ReportBlock] = ()) -> RtcpWriter:
        s = ffi.new("mc_rtcp_sender_info*", vars(sender))
        check(
            lib.mc_rtcp_write_sr(self._buf, self._size, self._used, s, _blocks_in(blocks), len(blocks)),
            "RTCP SR",
        )
        return self

    def rr(self, ssrc: int, blocks: Sequence[ReportBlock] = ()) -> RtcpWriter:
        check(
            lib.mc_rtcp_write_rr(self._buf, self._size, self._used, ssrc, _blocks_in(blocks), len(blocks)),
            "RTCP RR",
        )
        return self

    def sdes_cname(self, ssrc: int, cname: bytes) -> RtcpWriter:
        check(
            lib.mc_rtcp_write_sdes_cname(self._buf, self._size, self._used, ssrc, cname, len(cname)),
            "RTCP SDES",
        )
        return self

    def bye(self, ssrcs: Sequence[int], reason: bytes = b"") -> RtcpWriter:
        arr = ffi.new("uint32_t[]", list(ssrcs) or [0])
        check(
            lib.mc_rtcp_write_bye(self._buf, self._size, self._used, arr, len(ssrcs), reason, len(reason)),
            "RTCP BYE",
        )
        return self

    def nack(self, sender_ssrc: int, media_ssrc: int, lost: Sequence[int]) -> RtcpWriter:
        arr = ffi.new("uint16_t[]", list(lost) or [0])
        check(
            lib.mc_rtcp_write_nack(
                self._buf, self._size, self._used, sender_ssrc, media_ssrc, arr, len(lost)
            ),
            "RTCP NACK",
        )
        return self

    def pli(self, sender_ssrc: int, media_ssrc: int) -> RtcpWriter:
        check(lib.mc_rtcp_write_pli(self._buf, self._size, self._used, sender_ssrc, media_ssrc), "RTCP PLI")
        return self

    def fir(self, sender_ssrc: int, entries: Sequence[tuple[int, int]]) -> RtcpWriter:
        ssrcs = ffi.new("uint32_t[]", [e[0] for e in entries] or [0])
        seqs = ffi.new("uint8_t[]", [e[1] for e in entries] or [0])
        check(
            lib.mc_rtcp_write_fir(self._buf, self._size, self._used, sender_ssrc, ssrcs, seqs, len(entries)),
            "RTCP FIR",
        )
        return self

    def app(self, ssrc: int, name: bytes, data: bytes = b"", subtype: int = 0) -> RtcpWriter:
        """APP (RFC 3550 6.7): 4-byte name, subtype 0..31, data a multiple of 4 bytes."""
        if len(name) != 4:
            raise ValueError("APP name must be 4 bytes")
        check(
            lib.mc_rtcp_write_app(self._buf, self._size, self._used, ssrc, name, subtype, data, len(data)),
            "RTCP APP",
        )
        return self

    def data(self) -> bytes:
        return ffi.buffer(self._buf, self._used[0])[:]


@dataclass
class RtcpPacket:
    packet_type: int
    count: int
    data: bytes  # this packet alone, header included

    def parse(self):
        """A typed view: SR -> (SenderInfo, blocks); RR -> (ssrc, blocks);
        SDES -> [(ssrc, type, text)]; BYE -> (ssrcs, reason); NACK ->
        (sender, media, lost); PLI -> (sender, media); FIR -> (sender, [(ssrc, seq)]);
        APP -> (ssrc, name, subtype, data)."""
        return parse_packet(self.packet_type, self.count, self.data)


def iter_compound(data: bytes) -> Iterator[RtcpPacket]:
    """Packets of a compound RTCP packet (RFC 3550 6.1); Malformed on bad lengths."""
    cursor = ffi.new("uint32_t*")
    pkt = ffi.new("mc_rtcp_packet*")
    while True:
        st = lib.mc_rtcp_next(data, len(data), cursor, pkt)
        if st == lib.MC_E_NOT_FOUND:
            return
        check(st, "RTCP compound")
        yield RtcpPacket(pkt.packet_type, pkt.count, bytes(data[pkt.offset : pkt.offset + pkt.length]))


def parse_packet(pt: int, count: int, d: bytes):
    n = ffi.new("uint32_t*")
    a, b = ffi.new("uint32_t*"), ffi.new("uint32_t*")
    if pt == lib.MC_RTCP_SR:
        s = ffi.new("mc_rtcp_sender_info*")
        blocks = ffi.new("mc_rtcp_report_block[31]")
        check(lib.mc_rtcp_parse_sr(d, len(d), s, blocks, 31, n), "RTCP SR")
        return (
            SenderInfo(s.ssrc, s.ntp_timestamp, s.rtp_timestamp, s.packet_count, s.octet_count),
            _blocks_out(blocks, min(n[0], 31)),
        )
    if pt == lib.MC_RTCP_RR:
        blocks = ffi.new("mc_rtcp_report_block[31]")
        check(lib.mc_rtcp_parse_rr(d, len(d), a, blocks, 31, n), "RTCP RR")
        return a[0], _blocks_out(blocks, min(n[0], 31))
    if pt == lib.MC_RTCP_SDES:
        items: list[tuple[int, int, bytes]] = []
        cursor, t = ffi.new("uint32_t*"), ffi.new("uint8_t*")
        off, ln = ffi.new("uint32_t*"), ffi.new("uint32_t*")
        while True:
            st = lib.mc_rtcp_sdes_next(d, len(d), cursor, a, t, off, ln)
            if st == lib.MC_E_NOT_FOUND:
                return items
            check(st, "RTCP SDES")
            items.append((a[0], t[0], bytes(d[off[0] : off[0] + ln[0]])))
    if pt == lib.MC_RTCP_BYE:
        ssrcs = ffi.new("uint32_t[31]")
        check(lib.mc_rtcp_parse_bye(d, len(d), ssrcs, 31, n, a, b), "RTCP BYE")
        return list(ssrcs[0 : n[0]]), bytes(d[a[0] : a[0] + b[0]])
    if pt == lib.MC_RTCP_RTPFB and count == lib.MC_RTCP_FMT_NACK:
        lost = ffi.new("uint16_t[]", 17 * (len(d) // 4))
        check(lib.mc_rtcp_parse_nack(d, len(d), a, b, lost, 17 * (len(d) // 4), n), "RTCP NACK")
        return a[0], b[0], list(lost[0 : n[0]])
    if pt == lib.MC_RTCP_PSFB and count == lib.MC_RTCP_FMT_PLI:
        check(lib.mc_rtcp_parse_pli(d, len(d), a, b), "RTCP PLI")
        return a[0], b[0]
    if pt == lib.MC_RTCP_APP:
        name, sub, off, ln = (
            ffi.new("uint8_t[4]"),
            ffi.new("uint32_t*"),
            ffi.new("uint32_t*"),
            ffi.new("uint32_t*"),
        )
        check(lib.mc_rtcp_parse_app(d, len(d), a, name, sub, off, ln), "RTCP APP")
        return a[0], bytes(name), sub[0], bytes(d[off[0] : off[0] + ln[0]])
    if pt == lib.MC_RTCP_PSFB and count == lib.MC_RTCP_FMT_FIR:
        cap = max(len(d) // 8, 1)
        ssrcs, seqs = ffi.new("uint32_t[]", cap), ffi.new("uint8_t[]", cap)
        check(lib.mc_rtcp_parse_fir(d, len(d), a, ssrcs, seqs, cap, n), "RTCP FIR")
        return a[0], [(ssrcs[i], seqs[i]) for i in range(n[0])]
    return None


RTCP_PROBLEMS = {
    lib.MC_RTCP_BAD_LENGTH: "length",
    lib.MC_RTCP_BAD_VERSION: "version",
    lib.MC_RTCP_BAD_PADDING: "padding",
    lib.MC_RTCP_BAD_FIRST: "first",
    lib.MC_RTCP_BAD_PACKET: "packet",
}


def check_compound(data: bytes) -> str | None:
    """None when ``data`` is a valid compound RTCP packet (RFC 3550 A.2, RFC 5506
    reduced-size), else what is wrong: "length", "version", "padding", "first"
    or "packet" (a packet of a known type that does not parse)."""
    problem = ffi.new("uint32_t*")
    st = lib.mc_rtcp_check_compound(data, len(data), problem)
    if st == lib.MC_OK:
        return None
    if st != lib.MC_E_MALFORMED:
        check(st, "RTCP check")
    return RTCP_PROBLEMS[problem[0]]


def rtt_ns(arrival_ntp: int, lsr: int, dlsr: int) -> int | None:
    """RTT from a report block (RFC 3550 6.4.1); None when LSR is 0."""
    out = ffi.new("int64_t*")
    st = lib.mc_rtcp_rtt_ns(arrival_ntp, lsr, dlsr, out)
    if st == lib.MC_E_NOT_FOUND:
        return None
    check(st, "RTT")
    return out[0]


def rtcp_interval_ns(
    members: int,
    senders: int,
    rtcp_bw_bytes_per_s: float,
    we_sent: bool,
    avg_rtcp_size_bytes: float,
    initial: bool,
    random_factor: float,
) -> int:
    """RFC 3550 6.3.1 interval (simplified; see rtcp.c)."""
    out = ffi.new("int64_t*")
    check(
        lib.mc_rtcp_interval_ns(
            members,
            senders,
            rtcp_bw_bytes_per_s,
            int(we_sent),
            avg_rtcp_size_bytes,
            int(initial),
            random_factor,
            out,
        ),
        "RTCP interval",
    )
    return out[0]


# ---- receive statistics and buffers ------------------------------------------------


class RtpReceiveStats:
    """Per-stream receive statistics (RFC 3550 A.1, A.3, A.8)."""

    def __init__(self, clock_rate: int) -> None:
        p = ffi.new("mc_rtpstats**")
        check(lib.mc_rtpstats_new(clock_rate, p), "rtpstats")
        self._h = ffi.gc(p[0], lib.mc_rtpstats_free)

    def update(self, arrival_ns: int, sequence_number: int, timestamp: int, payload_bytes: int = 0) -> bool:
        """Account a packet; False when it was a duplicate or an unaccepted jump."""
        return (
            check(
                lib.mc_rtpstats_update(self._h, arrival_ns, sequence_number, timestamp, payload_bytes),
                "rtpstats",
            )
            == lib.MC_OK
        )

    def sr_received(self, ntp_timestamp: int, arrival_ns: int) -> None:
        check(lib.mc_rtpstats_sr_received(self._h, ntp_timestamp, arrival_ns), "rtpstats")

    def report_block(self, ssrc: int, now_ns: int) -> ReportBlock:
        b = ffi.new("mc_rtcp_report_block*")
        check(lib.mc_rtpstats_report_block(self._h, ssrc, now_ns, b), "rtpstats")
        return _blocks_out(b, 1)[0]

    def stats(self) -> dict:
        s = ffi.new("mc_rtp_recv_stats*")
        check(lib.mc_rtpstats_get(self._h, s), "rtpstats")
        return {k: getattr(s, k) for k in dir(s)}


JITTER_KINDS = {
    lib.MC_JITTER_FRAME: "frame",
    lib.MC_JITTER_LOST: "lost",
    lib.MC_JITTER_UNDERRUN: "underrun",
    lib.MC_JITTER_BUFFERING: "buffering",
}


@dataclass
class JitterOutput:
    kind: str  # "frame", "lost", "underrun", "buffering"
    sequence_number: int
    timestamp: int = 0
    payload: bytes = b""
    marker: int = 0
    payload_type: int = 0
    arrival_ns: int = 0


class JitterBuffer:
    """Adaptive audio jitter buffer (native/src/jitter.h)."""

    def __init__(
        self,
        clock_rate: int = 48000,
        frame_ms: int = 20,
        min_delay_ms: int = 40,
        max_delay_ms: int = 200,
        capacity: int = 64,
        max_payload: int = 1500,
    ) -> None:
        cfg = ffi.new(
            "mc_jitter_config*",
            dict(
                clock_rate=clock_rate,
                frame_ms=frame_ms,
                min_delay_ms=min_delay_ms,
                max_delay_ms=max_delay_ms,
                capacity=capacity,
                max_payload=max_payload,
            ),
        )
        p = ffi.new("mc_jitter**")
        check(lib.mc_jitter_new(cfg, p), "jitter buffer")
        self._h = ffi.gc(p[0], lib.mc_jitter_free)
        self._out = ffi.new("uint8_t[]", max_payload)
        self._size = max_payload
        self._frame = ffi.new("mc_jitter_frame*")

    def insert(
        self,
        now_ns: int,
        sequence_number: int,
        timestamp: int,
        payload: bytes,
        marker: int = 0,
        payload_type: int = 0,
    ) -> bool:
        """True when stored; False for a duplicate, late, early or oversize packet."""
        return (
            check(
                lib.mc_jitter_insert(
                    self._h, now_ns, sequence_number, timestamp, marker, payload_type, payload, len(payload)
                ),
                "jitter insert",
            )
            == lib.MC_OK
        )

    def pop(self, now_ns: int) -> JitterOutput:
        f = self._frame
        st = lib.mc_jitter_pop(self._h, now_ns, self._out, self._size, f)
        if st == lib.MC_E_EMPTY:
            return JitterOutput(JITTER_KINDS[f.kind], f.sequence_number)
        check(st, "jitter pop")
        return JitterOutput(
            "frame",
            f.sequence_number,
            f.timestamp,
            ffi.buffer(self._out, f.payload_length)[:],
            f.marker,
            f.payload_type,
            f.arrival_ns,
        )

    def stats(self) -> dict:
        s = ffi.new("mc_jitter_stats*")
        check(lib.mc_jitter_get_stats(self._h, s), "jitter stats")
        return {k: getattr(s, k) for k in dir(s)}


@dataclass
class ReorderOutput:
    sequence_number: int
    timestamp: int
    payload: bytes
    marker: int
    payload_type: int
    skipped_before: int
    arrival_ns: int


class ReorderBuffer:
    """Video reorder buffer with NACK / PLI decisions (native/src/reorder.h)."""

    def __init__(
        self,
        capacity: int = 512,
        max_payload: int = 1500,
        nack_max_retries: int = 3,
        nack_min_interval_ns: int = 10_000_000,
        max_wait_ns: int = 300_000_000,
        pli_min_interval_ns: int = 500_000_000,
    ) -> None:
        cfg = ffi.new(
            "mc_reorder_config*",
            dict(
                capacity=capacity,
                max_payload=max_payload,
                nack_max_retries=nack_max_retries,
                nack_min_interval_ns=nack_min_interval_ns,
                max_wait_ns=max_wait_ns,
                pli_min_interval_ns=pli_min_interval_ns,
            ),
        )
        p = ffi.new("mc_reorder**")
        check(lib.mc_reorder_new(cfg, p), "reorder buffer")
        self._h = ffi.gc(p[0], lib.mc_reorder_free)
        self._out = ffi.new("uint8_t[]", max_payload)
        self._size = max_payload
        self._pkt = ffi.new("mc_reorder_packet*")
        self._seqs = ffi.new("uint16_t[]", capacity)
        self._cap = capacity

    def insert(
        self,
        now_ns: int,
        sequence_number: int,
        timestamp: int,
        payload: bytes,
        marker: int = 0,
        payload_type: int = 0,
    ) -> bool:
        return (
            check(
                lib.mc_reorder_insert(
                    self._h, now_ns, sequence_number, timestamp, marker, payload_type, payload, len(payload)
                ),
                "reorder insert",
            )
            == lib.MC_OK
        )

    def pop(self, now_ns: int) -> ReorderOutput | None:
        p = self._pkt
        st = lib.mc_reorder_pop(self._h, now_ns, self._out, self._size, p)
        if st == lib.MC_E_EMPTY:
            return None
        check(st, "reorder pop")
        return ReorderOutput(
            p.sequence_number,
            p.timestamp,
            ffi.buffer(self._out, p.payload_length)[:],
            p.marker,
            p.payload_type,
            p.skipped_before,
            p.arrival_ns,
        )

    def pop_all(self, now_ns: int) -> list[ReorderOutput]:
        out = []
        while (p := self.pop(now_ns)) is not None:
            out.append(p)
        return out

    def nack_list(self, now_ns: int) -> list[int]:
        n = ffi.new("uint32_t*")
        check(lib.mc_reorder_nack_list(self._h, now_ns, self._seqs, self._cap, n), "NACK list")
        return list(self._seqs[0 : n[0]])

    def keyframe_needed(self, now_ns: int) -> bool:
        r = ffi.new("int32_t*")
        check(lib.mc_reorder_keyframe_needed(self._h, now_ns, r), "PLI decision")
        return bool(r[0])

    def set_rtt(self, rtt_ns: int) -> None:
        check(lib.mc_reorder_set_rtt(self._h, rtt_ns), "reorder rtt")

    def stats(self) -> dict:
        s = ffi.new("mc_reorder_stats*")
        check(lib.mc_reorder_get_stats(self._h, s), "reorder stats")
        return {k: getattr(s, k) for k in dir(s)}

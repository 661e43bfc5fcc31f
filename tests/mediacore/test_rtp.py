"""RTP parse/serialize (RFC 3550), header extensions (RFC 8285), audio level
(RFC 6464) and RTP/RTCP demux (RFC 5761), against a pure-Python reference
parser kept here as the oracle; garbage never crashes."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings, strategies as st

from mediacore import Malformed, rtp
from mediacore._native import ffi, lib


# ---- reference (oracle) ---------------------------------------------------------


class RefMalformed(Exception):
    pass


def ref_parse(data: bytes) -> dict:
    """RFC 3550 5.1 / 5.3.1, written independently of the C code."""
    if len(data) < 12:
        raise RefMalformed("short")
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    if b0 >> 6 != 2:
        raise RefMalformed("version")
    cc = b0 & 0xF
    pos = 12 + 4 * cc
    if pos > len(data):
        raise RefMalformed("csrc")
    csrc = list(struct.unpack_from(f"!{cc}I", data, 12))
    ext = None
    profile = 0
    if b0 & 0x10:
        if pos + 4 > len(data):
            raise RefMalformed("ext header")
        profile, words = struct.unpack_from("!HH", data, pos)
        pos += 4
        if pos + 4 * words > len(data):
            raise RefMalformed("ext")
        ext = data[pos:pos + 4 * words]
        pos += 4 * words
    end = len(data)
    pad = 0
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or pad > len(data) - pos:
            raise RefMalformed("padding")
        end -= pad
    return dict(payload_type=b1 & 0x7F, marker=b1 >> 7, sequence_number=seq, timestamp=ts,
                ssrc=ssrc, csrc=csrc, extension_profile=profile, extension=ext,
                payload=data[pos:end], padding_length=pad)


def ref_elements(profile: int, ext: bytes) -> list[tuple[int, bytes]]:
    """RFC 8285 4.2 / 4.3."""
    out, i = [], 0
    while i < len(ext):
        b = ext[i]
        if b == 0:
            i += 1
            continue
        if profile == 0xBEDE:
            eid, ln = b >> 4, (b & 0xF) + 1
            if eid == 15:
                break
            i += 1
        else:
            if i + 2 > len(ext):
                raise RefMalformed("two-byte header")
            eid, ln = b, ext[i + 1]
            i += 2
        if i + ln > len(ext):
            raise RefMalformed("element length")
        out.append((eid, ext[i:i + ln]))
        i += ln
    return out


def as_dict(p: rtp.RtpPacket) -> dict:
    return dict(payload_type=p.payload_type, marker=p.marker,
                sequence_number=p.sequence_number, timestamp=p.timestamp, ssrc=p.ssrc,
                csrc=p.csrc, extension_profile=p.extension_profile, extension=p.extension,
                payload=p.payload, padding_length=p.padding_length)


# ---- strategies -----------------------------------------------------------------

u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)


@st.composite
def packets(draw):
    ext = None
    profile = 0
    if draw(st.booleans()):
        profile = draw(st.sampled_from([0xBEDE, 0x1000, 0x1003, 0xABCD]))
        ext = draw(st.binary(max_size=64))
        ext += b"\0" * (-len(ext) % 4)
    return rtp.RtpPacket(
        payload_type=draw(st.integers(0, 127)), sequence_number=draw(u16),
        timestamp=draw(u32), ssrc=draw(u32), marker=draw(st.integers(0, 1)),
        csrc=draw(st.lists(u32, max_size=15)), extension_profile=profile, extension=ext,
        payload=draw(st.binary(max_size=300)), padding_length=draw(st.integers(0, 255)))


# ---- round trips ----------------------------------------------------------------


@given(packets())
@settings(max_examples=300)
def test_serialize_parse_round_trip_matches_reference(p):
    data = p.serialize()
    back = rtp.RtpPacket.parse(data)
    assert as_dict(back) == as_dict(p)
    assert as_dict(back) == ref_parse(data)
    assert back.serialize() == data


@given(st.binary(min_size=0, max_size=200))
@settings(max_examples=500)
def test_random_bytes_agree_with_reference(data):
    try:
        expected = ref_parse(data)
    except RefMalformed:
        with pytest.raises(Malformed):
            rtp.RtpPacket.parse(data)
    else:
        assert as_dict(rtp.RtpPacket.parse(data)) == expected


def test_known_packet_bytes():
    # V=2 X=1 CC=1, M=1 PT=111, seq 0x1234, ts 0x01020304, ssrc, csrc, one-byte ext
    data = bytes.fromhex("91ef1234 01020304 deadbeef 0000cafe bede0001 10850000") + b"opus"
    p = rtp.RtpPacket.parse(data)
    assert (p.payload_type, p.marker, p.sequence_number, p.timestamp, p.ssrc) == \
        (111, 1, 0x1234, 0x01020304, 0xDEADBEEF)
    assert p.csrc == [0xCAFE] and p.payload == b"opus"
    assert rtp.header_extensions(data) == [(1, b"\x85")]
    assert rtp.audio_level(data, 1) == (True, 5)
    assert rtp.audio_level(data, 2) is None


def test_serialize_in_place_payload_and_small_buffer():
    h = ffi.new("mc_rtp_header*", dict(version=2, payload_type=96, sequence_number=7, ssrc=1))
    buf = ffi.new("uint8_t[64]")
    ffi.memmove(buf + 12, b"hello", 5)
    written = ffi.new("size_t*")
    assert lib.mc_rtp_serialize(h, ffi.NULL, buf + 12, 5, buf, 64, written) == lib.MC_OK
    assert ffi.buffer(buf, written[0])[:] == bytes.fromhex("80600007 00000000 00000001") + b"hello"
    assert lib.mc_rtp_serialize(h, ffi.NULL, b"hello", 5, buf, 16, written) == lib.MC_E_BUFFER
    assert written[0] == 17


# ---- extensions and audio level ------------------------------------------------------


@given(st.lists(st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16)), max_size=8))
def test_one_byte_extensions_round_trip(elements):
    ext = rtp.build_extension(rtp.ONE_BYTE, elements)
    data = rtp.RtpPacket(sequence_number=1, extension_profile=0xBEDE, extension=ext,
                         payload=b"x").serialize()
    assert rtp.header_extensions(data) == elements == ref_elements(0xBEDE, ext)
    for eid, value in elements:
        assert rtp.find_extension(data, eid) == next(v for i, v in elements if i == eid)


@given(st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=255)), max_size=6),
       st.integers(0, 15))
def test_two_byte_extensions_round_trip(elements, appbits):
    profile = 0x1000 | appbits
    ext = rtp.build_extension(profile, elements)
    data = rtp.RtpPacket(sequence_number=1, extension_profile=profile, extension=ext).serialize()
    assert rtp.header_extensions(data) == elements == ref_elements(profile, ext)


def test_extension_limits_are_enforced():
    with pytest.raises(ValueError):
        rtp.build_extension(rtp.ONE_BYTE, [(15, b"x")])     # 15 is reserved
    with pytest.raises(ValueError):
        rtp.build_extension(rtp.ONE_BYTE, [(1, b"x" * 17)])  # one-byte form carries <= 16
    with pytest.raises(ValueError):
        rtp.build_extension(rtp.ONE_BYTE, [(0, b"x")])
    with pytest.raises(ValueError):
        rtp.build_extension(rtp.TWO_BYTE, [(0, b"x")])


def test_one_byte_id_15_stops_parsing_and_padding_is_skipped():
    ext = bytes([0x00, 0x10, 0xAA, 0xF0, 0x20, 0xBB, 0, 0])
    data = rtp.RtpPacket(extension_profile=0xBEDE, extension=ext).serialize()
    assert rtp.header_extensions(data) == [(1, b"\xaa")]


def test_malformed_extension_elements():
    # one-byte element claiming 16 bytes in a 4-byte block
    data = rtp.RtpPacket(extension_profile=0xBEDE, extension=b"\x1f\x00\x00\x00").serialize()
    with pytest.raises(Malformed):
        rtp.header_extensions(data)
    data = rtp.RtpPacket(extension_profile=0x1000, extension=b"\x00\x00\x00\x05").serialize()
    with pytest.raises(Malformed):
        rtp.header_extensions(data)


@given(st.booleans(), st.integers(0, 127), st.sampled_from([rtp.ONE_BYTE, rtp.TWO_BYTE]),
       st.integers(1, 14))
def test_audio_level_round_trip(voice, level, profile, ext_id):
    ext = rtp.audio_level_element(voice, level, profile, ext_id)
    data = rtp.RtpPacket(extension_profile=profile, extension=ext, payload=b"p").serialize()
    assert rtp.audio_level(data, ext_id) == (voice, level)
    assert ref_elements(profile, ext) == [(ext_id, bytes([(0x80 if voice else 0) | level]))]


def test_audio_level_out_of_range():
    with pytest.raises(ValueError):
        rtp.audio_level_element(True, 128)


# ---- demux ------------------------------------------------------------------------------


@pytest.mark.parametrize("second,kind", [(0, "rtp"), (111, "rtp"), (191, "rtp"), (192, "rtcp"),
                                         (200, "rtcp"), (223, "rtcp"), (224, "rtp"),
                                         (255, "rtp")])
def test_rfc5761_demux(second, kind):
    assert rtp.classify(bytes([0x80, second, 0, 0])) == kind


def test_demux_other():
    assert rtp.classify(b"") == "other"
    assert rtp.classify(b"\x00\x01") == "other"   # STUN
    assert rtp.classify(b"\x16\xfe") == "other"   # DTLS


# ---- garbage ------------------------------------------------------------------------------


def base_packet() -> bytes:
    return rtp.RtpPacket(payload_type=111, sequence_number=1, timestamp=2, ssrc=3,
                         payload=b"x" * 20).serialize()


@pytest.mark.parametrize("mutate", [
    lambda d: d[:11],                                   # truncated fixed header
    lambda d: b"",
    lambda d: bytes([0x40]) + d[1:],                    # version 1
    lambda d: bytes([0xC0]) + d[1:],                    # version 3
    lambda d: bytes([0x8F]) + d[1:12] + b"\0" * 8,      # CSRC count past the end
    lambda d: bytes([0xA0]) + d[1:-1] + b"\xff",        # padding longer than packet
    lambda d: bytes([0xA0]) + d[1:-1] + b"\x00",        # padding count 0
    lambda d: bytes([0x90]) + d[1:12] + b"\xbe\xde\xff\xff" + b"\0" * 8,  # huge extension
    lambda d: bytes([0x90]) + d[1:12] + b"\xbe",        # extension header cut
])
def test_garbage_is_malformed(mutate):
    with pytest.raises(Malformed):
        rtp.RtpPacket.parse(mutate(base_packet()))


def test_random_garbage_never_crashes():
    rng = random.Random(7)
    h = ffi.new("mc_rtp_header*")
    cursor, eid = ffi.new("uint32_t*"), ffi.new("uint8_t*")
    off, ln = ffi.new("uint32_t*"), ffi.new("uint32_t*")
    ok = bad = 0
    for i in range(20000):
        n = rng.randrange(0, 80)
        data = bytes(rng.getrandbits(8) for _ in range(n))
        if i % 2 and n:
            data = bytes([0x80 | (data[0] & 0x3F)]) + data[1:]  # mostly valid version
        st_ = lib.mc_rtp_parse(data, len(data), h)
        assert st_ in (lib.MC_OK, lib.MC_E_MALFORMED)
        if st_ == lib.MC_OK:
            ok += 1
            assert h.payload_offset + h.payload_length + h.padding_length == len(data)
            cursor[0] = 0
            for _ in range(100):
                s2 = lib.mc_rtp_ext_next(data, h, cursor, eid, off, ln)
                assert s2 in (lib.MC_OK, lib.MC_E_NOT_FOUND, lib.MC_E_MALFORMED,
                              lib.MC_E_UNSUPPORTED)
                if s2 != lib.MC_OK:
                    break
                assert off[0] + ln[0] <= len(data)
        else:
            bad += 1
    assert ok > 1000 and bad > 1000

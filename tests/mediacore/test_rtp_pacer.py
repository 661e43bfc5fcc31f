"""The paced RTP load generator of the benchmarks
(native/tests/support/rtp_pacer.c): what it puts on the wire, plain and
SRTP-protected, and its argument checks; and that it, like the other test and
benchmark helpers of native/tests/support, is in the testing module only, not
in the shipped library."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from _mediacore_testing import ffi, lib

from mediacore import _native as shipped
from mediacore.errors import InvalidArgument, check
from mediacore.rtp import RtpPacket
from mediacore.srtp import SrtpSession

PROFILE = "AES_CM_128_HMAC_SHA1_80"


def pace(port: int, ssrcs: list[int], payloads: list[bytes], periods: int,
         keys: bytes | None = None):
    keep = []
    cfg = ffi.new("mc_rtp_pacer_config *")
    host = ffi.new("char[]", b"127.0.0.1")
    cfg.host, cfg.port, cfg.payload_type = host, port, 111
    c_ssrcs = ffi.new("uint32_t[]", ssrcs)
    cfg.streams, cfg.ssrcs = len(ssrcs), c_ssrcs
    if keys is not None:
        kb = ffi.from_buffer(keys)
        keep.append(kb)
        cfg.srtp_profile, cfg.keys, cfg.key_length = lib.MC_SRTP_AES_CM_128_HMAC_SHA1_80, kb, 30
    blob = ffi.from_buffer(b"".join(payloads))
    lengths = ffi.new("uint32_t[]", [len(p) for p in payloads])
    cfg.payloads, cfg.payload_lengths, cfg.payload_count = blob, lengths, len(payloads)
    cfg.timestamp_step, cfg.period_ns, cfg.periods = 960, 5_000_000, periods
    out = ffi.new("mc_rtp_pacer_result *")
    check(lib.mc_rtp_pace(cfg, out), "pace")
    return out


@pytest.fixture
def sink():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2.0)
    yield s
    s.close()


def test_plain_streams_on_the_wire(sink):
    payloads = [b"a" * 10, b"bb" * 20, b"c" * 33]
    out = pace(sink.getsockname()[1], [7, 8, 9], payloads, periods=6)
    assert out.packets == 18 and out.errors == 0 and out.elapsed_ns >= 5 * 5_000_000
    got = [RtpPacket.parse(sink.recv(2048)) for _ in range(18)]
    for k in range(6):
        period = got[3 * k:3 * k + 3]
        assert [p.ssrc for p in period] == [7, 8, 9]
        assert all(p.sequence_number == k and p.timestamp == 960 * k for p in period)
        assert all(p.payload == payloads[k % 3] and p.payload_type == 111 for p in period)
        assert all(p.marker == (k == 0) for p in period)


def test_srtp_streams_each_with_its_own_key(sink):
    keys = bytes(range(30)) + bytes(range(100, 130))
    out = pace(sink.getsockname()[1], [0xA, 0xB], [b"\x55" * 40], periods=4, keys=keys)
    assert out.packets == 8 and out.errors == 0
    rx = {0xA: SrtpSession(PROFILE, keys[:30], "inbound"),
          0xB: SrtpSession(PROFILE, keys[30:], "inbound")}
    for _ in range(8):
        data = sink.recv(2048)
        ssrc = int.from_bytes(data[8:12], "big")
        pkt = RtpPacket.parse(rx[ssrc].unprotect(data))
        assert pkt.payload == b"\x55" * 40


def test_bad_arguments():
    cfg = ffi.new("mc_rtp_pacer_config *")
    out = ffi.new("mc_rtp_pacer_result *")
    with pytest.raises(InvalidArgument):
        check(lib.mc_rtp_pace(cfg, out), "pace")
    with pytest.raises(InvalidArgument):
        check(lib.mc_rtp_pace(ffi.NULL, out), "pace")


def test_not_in_the_shipped_library():
    """No function or type that testing.h declares reaches mediacore._native:
    neither its cffi lib nor its ffi knows the name (the testing module does)."""
    header = (Path(__file__).resolve().parents[2] / "native" / "tests" / "support"
              / "testing.h").read_text()
    functions = set(re.findall(r"^(?:mc_status|uint32_t)\s+(mc_\w+)\(", header, re.MULTILINE))
    types = set(re.findall(r"^typedef struct (mc_\w+)", header, re.MULTILINE))
    assert {"mc_rtp_pace", "mc_srtp_bench_unprotect", "mc_selftest_producer_start"} <= functions
    assert {"mc_rtp_pacer_config", "mc_rtp_pacer_result"} <= types
    assert not [f for f in functions if hasattr(shipped.lib, f)]
    for t in types:
        with pytest.raises(shipped.ffi.error):
            shipped.ffi.typeof(t + " *")
    assert all(hasattr(lib, f) for f in functions)

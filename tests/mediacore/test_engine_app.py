"""RTCP APP packets (RFC 3550 6.7) through the engine: Session.send_app builds
an SRTCP-protected compound (empty RR + APP), the receiving engine validates
the whole compound after SRTCP and hands the APP to Python as an "app"
event. Real loopback UDP, real SRTP, two engines or an engine and a raw
socket holding its own SRTP contexts."""

from __future__ import annotations

import os
import socket
import struct
import time

import pytest

from mediacore import rtp
from mediacore.engine import APP_MAX_DATA, Engine
from mediacore.errors import InvalidArgument, InvalidState
from mediacore.rtp import RtcpWriter, SenderInfo
from mediacore.srtp import SrtpSession
from mediacore.subscriptions import APP_NAME, decode_subscriptions, encode_subscriptions

PROFILE = "AES_CM_128_HMAC_SHA1_80"


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def app_events(session, want: int = 1, timeout: float = 5.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += [ev for ev in session.events() if ev.kind == "app"]
        time.sleep(0.005)
    return got


def test_app_both_ways_between_two_engines_with_srtp():
    ka, kb = os.urandom(30), os.urandom(30)
    with Engine("127.0.0.1") as a, Engine("127.0.0.1") as b:
        sa = a.add_session(("127.0.0.1", b.port), srtp_profile=PROFILE, tx_key=ka, rx_key=kb)
        sb = b.add_session(("127.0.0.1", a.port), srtp_profile=PROFILE, tx_key=kb, rx_key=ka)
        # B receives A's audio SSRC (the APP's sender routes by it); A has no
        # receive stream for B's SSRC: the SRTCP tag alone finds the session
        sb.add_receive_stream(0xA0, direct=True)
        subs = encode_subscriptions(7, [(0x1234, (1280, 720)), (0x5678, None)])
        sa.send_app(0xA0, APP_NAME, subs)
        sb.send_app(0xB0, b"TEST", b"\x01\x02\x03\x04" * 3, subtype=31)

        (eb,) = app_events(sb)
        assert (eb.ssrc, eb.sender_ssrc, eb.name, eb.subtype) == (0xA0, 0xA0, b"MBVS", 0)
        assert eb.data == subs and eb.count == len(subs)
        assert decode_subscriptions(eb.data) == (7, [(0x1234, (1280, 720)), (0x5678, None)])
        (ea,) = app_events(sa)
        assert (ea.ssrc, ea.sender_ssrc, ea.name, ea.subtype) == (0xB0, 0xB0, b"TEST", 31)
        assert ea.data == b"\x01\x02\x03\x04" * 3

        sta = wait_for(lambda: (s := a.stats()).app_received == 1 and s.app_sent == 1 and s)
        stb = wait_for(lambda: (s := b.stats()).app_received == 1 and s.app_sent == 1 and s)
        assert sta and stb
        assert sta.auth_failures == stb.auth_failures == 0
        assert sta.malformed == stb.malformed == 0


def test_app_wire_format_rr_then_app_under_srtcp():
    """Without an I/O thread send_app sends at once: one SRTCP datagram whose
    compound is an empty RR from the SSRC, then the APP packet."""
    tx, rx_key = os.urandom(30), os.urandom(30)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    try:
        with Engine("127.0.0.1", thread=False) as e:
            s = e.add_session(("127.0.0.1", sock.getsockname()[1]), srtp_profile=PROFILE,
                              tx_key=tx, rx_key=rx_key)
            s.send_app(0xCAFE, b"MBVS", b"\0\0\0\1" + b"\0" * 4, subtype=3)
            assert e.stats().app_sent == 1
        datagram, _ = sock.recvfrom(2048)
    finally:
        sock.close()
    plain = SrtpSession(PROFILE, tx, "inbound").unprotect_rtcp(datagram)
    pkts = list(rtp.iter_compound(plain))
    assert [p.packet_type for p in pkts] == [201, 204]
    assert pkts[0].parse() == (0xCAFE, [])
    assert pkts[1].parse() == (0xCAFE, b"MBVS", 3, b"\0\0\0\1" + b"\0" * 4)
    assert rtp.check_compound(plain) is None
    assert len(datagram) <= 1200


class RawPeer:
    """A remote that builds its own RTCP and protects it with SRTCP."""

    def __init__(self, engine: Engine, remote_key: bytes) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = engine.port
        self.out = SrtpSession(PROFILE, remote_key, "outbound")

    def send(self, compound: bytes, protect: SrtpSession | None = None) -> None:
        self.sock.sendto((protect or self.out).protect_rtcp(compound), ("127.0.0.1", self.port))

    def close(self) -> None:
        self.sock.close()


def test_app_behind_sr_delivered_forged_and_garbage_dropped_and_counted():
    remote_key = os.urandom(30)
    with Engine("127.0.0.1") as e:
        peer = None
        try:
            s = e.add_session(("127.0.0.1", 9), srtp_profile=PROFILE, tx_key=os.urandom(30),
                              rx_key=remote_key)
            rx = s.add_receive_stream(0x55, direct=True)
            peer = RawPeer(e, remote_key)
            sr = SenderInfo(0x55, ntp_timestamp=0xE000000012345678, rtp_timestamp=9,
                            packet_count=1, octet_count=100)
            # a full compound: SR, SDES CNAME, then the APP
            good = RtcpWriter().sr(sr).sdes_cname(0x55, b"peer").app(
                0x55, b"MBVS", encode_subscriptions(1, [(3, (640, 360))])).data()
            peer.send(good)
            (ev,) = app_events(s)
            assert (ev.ssrc, ev.sender_ssrc, ev.name) == (0x55, 0x55, b"MBVS")
            assert decode_subscriptions(ev.data) == (1, [(3, (640, 360))])
            assert wait_for(lambda: rx.stats().sr_received == 1)

            # forged: an APP under the wrong key, and one whose tag was altered
            # (a fresh SRTCP index, so the replay check passes): dropped, and
            # counted as a replay / an authentication failure, never delivered
            forged = SrtpSession(PROFILE, os.urandom(30), "outbound")
            peer.send(RtcpWriter().rr(0x55).app(0x55, b"MBVS", b"EVIL").data(), forged)
            tampered = bytearray(peer.out.protect_rtcp(
                RtcpWriter().rr(0x55).app(0x55, b"MBVS", b"EVIL").data()))
            tampered[-1] ^= 1
            peer.sock.sendto(bytes(tampered), ("127.0.0.1", e.port))
            # garbage under the right key: an APP too short to hold its name, and
            # an APP whose padding leaves data that is not whole words
            short_app = struct.pack("!BBHI", 0x80, 204, 1, 0x55)
            padded_app = struct.pack("!BBHI4s", 0xA0, 204, 3, 0x55, b"MBVS") + b"\x01\x02\x00\x02"
            for bad in (RtcpWriter().rr(0x55).data() + short_app,
                        RtcpWriter().rr(0x55).data() + padded_app):
                assert rtp.check_compound(bad) == "packet"
                peer.send(bad)
            st = wait_for(lambda: (x := e.stats()).auth_failures + x.replays == 2
                          and x.auth_failures >= 1 and x.malformed == 2 and x)
            assert st, repr(e.stats()).replace(",", "\n")
            assert st.app_received == 1
            assert app_events(s, timeout=0.2) == []
        finally:
            if peer:
                peer.close()


def test_send_app_rejects_bad_arguments_with_clear_errors():
    with Engine("127.0.0.1") as e:
        s = e.add_session(("127.0.0.1", 9), srtp_profile=PROFILE, tx_key=os.urandom(30),
                          rx_key=os.urandom(30))
        with pytest.raises(InvalidArgument, match="multiple of 4"):
            s.send_app(1, b"MBVS", b"\x01\x02\x03")
        with pytest.raises(InvalidArgument, match="4 bytes"):
            s.send_app(1, b"MBV", b"")
        with pytest.raises(InvalidArgument, match="subtype"):
            s.send_app(1, b"MBVS", b"", subtype=32)
        with pytest.raises(InvalidArgument, match="at most"):
            s.send_app(1, b"MBVS", bytes(APP_MAX_DATA + 4))
        s.send_app(1, b"MBVS", bytes(APP_MAX_DATA))      # the longest one goes
        # no remote yet: a latching session before its first packet
        latch = e.add_session(srtp_profile=PROFILE, tx_key=os.urandom(30),
                              rx_key=os.urandom(30), latch=True)
        with pytest.raises(InvalidState, match="no remote address"):
            latch.send_app(1, b"MBVS", b"")
        assert wait_for(lambda: e.stats().app_sent == 1)


def test_receive_only_session_receives_and_refuses_to_send():
    """SRTP with an rx key only: media and APP arrive; nothing can be sent,
    and the RTCP reports it cannot protect are counted, not sent in the clear."""
    remote_key = os.urandom(30)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.05)
    with Engine("127.0.0.1", rtcp_interval_ms=100) as e:
        peer = RawPeer(e, remote_key)
        try:
            s = e.add_session(("127.0.0.1", sink.getsockname()[1]), srtp_profile=PROFILE,
                              rx_key=remote_key)
            assert s.receive_only
            rx = s.add_receive_stream(0x66, direct=True)
            with pytest.raises(InvalidState, match="receive-only"):
                s.add_send_stream(0x77, payload_type=111)
            with pytest.raises(InvalidState, match="receive-only"):
                s.send_app(0x77, b"MBVS", b"")
            media = SrtpSession(PROFILE, remote_key, "outbound")
            for i in range(5):
                pkt = struct.pack("!BBHII", 0x80, 111, i, 960 * i, 0x66) + b"opus%d" % i
                peer.sock.sendto(media.protect(pkt), ("127.0.0.1", e.port))
            peer.send(RtcpWriter().rr(0x66).app(0x66, b"MBVS", b"\0\0\0\2").data())
            assert wait_for(lambda: rx.stats().packets == 5)
            assert len(app_events(s)) == 1
            st = wait_for(lambda: (x := e.stats()).tx_no_key >= 2 and x)
            assert st and st.rtcp_out == 0 and st.datagrams_out == 0
        finally:
            peer.close()
    with pytest.raises(OSError):
        sink.recvfrom(2048)                               # nothing was sent, not even in the clear
    sink.close()
    with Engine("127.0.0.1") as e:
        with pytest.raises(InvalidArgument, match="rx_key"):
            e.add_session(("127.0.0.1", 9), srtp_profile=PROFILE, tx_key=os.urandom(30))

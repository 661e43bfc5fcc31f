"""The engine's receive path under hostile or unlucky input: payload types a
stream never negotiated, RTCP compounds that are valid only in part, jitter-
and reorder-buffer drops under bursts, reordering, duplicates and loss, and
the datagram classifier, whose every outcome is a counter. Counters must add
up: every datagram in one engine fate, every accepted packet in one stream
fate (EngineStats.DATAGRAM_FATES, ReceiveStats.FATES)."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mediacore.engine import DEFAULT_PAYLOAD_TYPES, Engine
from mediacore.errors import InvalidArgument
from mediacore.mediaconfig import MediaConfig, configure_session
from mediacore.rtp import RtcpWriter, SenderInfo
from mediacore.srtp import SrtpSession

PROFILE = "AES_CM_128_HMAC_SHA1_80"
T0 = 1_000_000_000_000
FRAME_NS = 20_000_000


def rtp(seq: int, ts: int, ssrc: int, payload: bytes = b"x" * 40, pt: int = 111,
        marker: bool = False, padding: bytes = b"") -> bytes:
    b0 = 0x80 | (0x20 if padding else 0)
    return struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload + padding


def read_all(stream) -> tuple[np.ndarray, list[bytes]]:
    heads, pays = [], []
    while True:
        b = stream.read_batch(1024, timeout=0)
        if not len(b):
            break
        heads.append(b.headers.copy())
        pays += [bytes(p) for p in b.payloads()]
    return (np.concatenate(heads) if heads else np.empty(0)), pays


def assert_fates_add_up(stats) -> None:
    assert sum(stats.fates().values()) == stats.packets, (stats.packets, stats.fates())


def assert_datagrams_add_up(es) -> None:
    assert es.datagram_fates() == es.datagrams_in, es
    assert es.auth_failures == es.rtp_auth_failures + es.rtcp_auth_failures
    assert es.replays == es.rtp_replays + es.rtcp_replays
    assert es.malformed == (es.not_rtp + es.rtp_malformed + es.rtcp_malformed
                            + es.rtp_bad_padding + es.rtcp_bad_padding)


# ---- payload types ---------------------------------------------------------------------------


def test_unnegotiated_payload_types_are_dropped_and_counted():
    with Engine("127.0.0.1", thread=False) as e:
        s = e.add_session(("127.0.0.1", 9))
        audio = s.add_receive_stream(1, direct=True)                     # the audio default
        opus_only = s.add_receive_stream(2, direct=True, payload_types=[111])
        anything = s.add_receive_stream(3, direct=True, payload_types=None)
        video = s.add_receive_stream(4, media="video", direct=True)
        pts = [111, 35, 100, 101, 0, 8, 96, 127]
        for ssrc in (1, 2, 3, 4):
            e.inject([rtp(i, 960 * i, ssrc, b"pt%d" % pt, pt=pt) for i, pt in enumerate(pts)],
                     now_ns=T0)
        want = {1: {111, 101, 0, 8}, 2: {111}, 3: set(pts), 4: {96}}
        total_mismatch = 0
        for ssrc, stream in ((1, audio), (2, opus_only), (3, anything), (4, video)):
            h, payloads = read_all(stream)
            assert set(h["payload_type"].tolist()) == want[ssrc]
            assert payloads == [b"pt%d" % pt for pt in pts if pt in want[ssrc]]
            st_ = stream.stats()
            assert st_.payload_type_mismatch == len(pts) - len(want[ssrc])
            assert st_.packets == st_.delivered == len(want[ssrc])
            total_mismatch += st_.payload_type_mismatch
        es = e.stats()
        assert es.payload_type_mismatch == total_mismatch == 8 - 4 + 7 + 0 + 7
        assert_datagrams_add_up(es)
        assert DEFAULT_PAYLOAD_TYPES["audio"] == {111, 101, 0, 8}
        with pytest.raises(InvalidArgument, match="empty"):
            s.add_receive_stream(5, payload_types=[])
        with pytest.raises(InvalidArgument, match="0..127"):
            s.add_receive_stream(5, payload_types=[128])


def test_configure_session_receives_only_the_negotiated_payload_types():
    with Engine("127.0.0.1", thread=False) as eb:
        bot = MediaConfig.generate("127.0.0.1", eb.port, kinds=("audio",), srtp_profile=None,
                                   call_id="c1")
        remote = MediaConfig.generate("127.0.0.1", 40002, role="remote", kinds=("audio",),
                                      srtp_profile=None, media_session_id=bot.media_session_id)
        b = configure_session(eb, bot, MediaConfig.from_blob(remote.to_blob()), direct=True)
        ssrc = remote.section("audio").ssrcs[0]
        negotiated = {c.payload_type for c in b.plans[0].recv_codecs}
        pts = sorted(negotiated) + [35, 100]
        eb.inject([rtp(i, 960 * i, ssrc, pt=pt) for i, pt in enumerate(pts)],
                  from_addr=("127.0.0.1", 40002), now_ns=T0)
        h, _ = read_all(b.receive_streams[ssrc])
        assert set(h["payload_type"].tolist()) == negotiated
        assert b.receive_streams[ssrc].stats().payload_type_mismatch == 2


# ---- RTCP: the whole compound is checked before any of it is acted on -----------------------


def test_malformed_compound_is_not_acted_on_in_part():
    with Engine("127.0.0.1", thread=False) as e:
        s = e.add_session(("127.0.0.1", 9))
        rx = s.add_receive_stream(0x55, direct=True)
        s.add_send_stream(0x66, payload_type=111)
        sr = RtcpWriter().sr(SenderInfo(0x55, ntp_timestamp=0xE0000000_00010000)).data()
        overrun = struct.pack("!BBHI", 0x80, 201, 7, 0x55)               # RR: 32 bytes claimed, 8 there
        bye = RtcpWriter().bye([0x55]).data()
        padded_middle = bytearray(RtcpWriter().bye([0x55]).data())
        padded_middle[0] |= 0x20                                          # P on a packet not last
        pli_bad_fmt_len = struct.pack("!BBHI", 0x81, 206, 1, 0x55)        # PLI without media SSRC
        bad = [sr + overrun, sr + bye + overrun, sr + bytes(padded_middle) + bye,
               sr + pli_bad_fmt_len]
        e.inject(bad, now_ns=T0)
        assert rx.stats().sr_received == 0                                # no SR of them applied
        assert [ev.kind for ev in s.events()] == []                       # no BYE, no PLI event
        es = e.stats()
        assert es.rtcp_accepted == 0
        assert es.rtcp_malformed == 3 and es.rtcp_bad_padding == 1
        assert_datagrams_add_up(es)
        e.inject([sr + bye], now_ns=T0 + 1)                               # the valid one is
        assert rx.stats().sr_received == 1
        assert [ev.kind for ev in s.events()] == ["bye"]
        assert e.stats().rtcp_accepted == 1


# ---- failure counters: RTP and RTCP apart, bad padding apart ---------------------------------


def test_failure_counters_separate_rtp_rtcp_and_padding():
    key = os.urandom(30)
    with Engine("127.0.0.1", thread=False) as e:
        s = e.add_session(("127.0.0.1", 9), srtp_profile=PROFILE, tx_key=os.urandom(30),
                          rx_key=key)
        s.add_receive_stream(7, direct=True)
        out = SrtpSession(PROFILE, key, "outbound")
        good = out.protect(rtp(1, 960, 7))
        tampered = bytearray(out.protect(rtp(2, 1920, 7)))
        tampered[-1] ^= 1
        bad_pad = out.protect(rtp(3, 2880, 7, padding=b"\x00\x00\x00\x00"))   # count 0 (5.1)
        short_ext = rtp(4, 3840, 7)[:10]                                 # shorter than a header
        rr = out.protect_rtcp(RtcpWriter().rr(7).data())
        rtcp_tampered = bytearray(out.protect_rtcp(RtcpWriter().rr(7).data()))
        rtcp_tampered[-1] ^= 1
        rtcp_pad = bytearray(RtcpWriter().rr(7).bye([7]).data())
        rtcp_pad[0] |= 0x20
        rtcp_bad_pad = out.protect_rtcp(bytes(rtcp_pad))
        e.inject([good, good, bytes(tampered), bad_pad, short_ext, rr, rr, bytes(rtcp_tampered),
                  rtcp_bad_pad, b"\x00\x01STUN....", b"\x80"], now_ns=T0)
        es = e.stats()
        assert (es.rtp_in, es.rtp_replays, es.rtp_auth_failures) == (1, 1, 1)
        assert (es.rtp_bad_padding, es.rtp_malformed) == (1, 1)
        assert (es.rtcp_accepted, es.rtcp_replays, es.rtcp_auth_failures) == (1, 1, 1)
        assert (es.rtcp_bad_padding, es.rtcp_malformed) == (1, 0)
        assert es.not_rtp == 2
        assert_datagrams_add_up(es)


# ---- every accepted packet ends in one counted fate ------------------------------------------


def drive(e: Engine, datagrams: list[bytes], step_ns: int, drain_ms: int = 2500) -> int:
    """Inject at `step_ns` apart (timers between datagrams), then run the
    timers in real-time steps until the buffers have played out."""
    e.inject(datagrams, now_ns=T0, step_ns=step_ns)
    end = T0 + len(datagrams) * step_ns
    for k in range(drain_ms // 20):
        e.poll(end + (k + 1) * FRAME_NS)
    return end


def test_burst_at_40x_real_time_every_packet_accounted():
    """A sender at 40 times real time: the jitter buffer cannot hold what
    arrives, and every packet it refuses or gives up shows in a counter."""
    with Engine("127.0.0.1", thread=False) as e:
        s = e.add_session(("127.0.0.1", 9))
        rx = s.add_receive_stream(0xB0, jitter_min_ms=40, jitter_max_ms=200)
        n = 2000
        drive(e, [rtp(i, 960 * i, 0xB0, b"%06d" % i) for i in range(n)], FRAME_NS // 40)
        h, payloads = read_all(rx)
        st_ = rx.stats()
        assert st_.packets == n
        assert_fates_add_up(st_)
        assert st_.delivered == int(((h["flags"] & 1) == 0).sum())
        assert st_.concealed == int(((h["flags"] & 1) == 1).sum())
        assert st_.delivered < n // 4                                # most could not be played
        assert st_.early + st_.reset + st_.shrunk + st_.late > n // 2  # and the drops show
        assert st_.ring_full == 0 and st_.buffered == 0


def test_video_reorder_overflow_and_restart_accounted():
    with Engine("127.0.0.1", thread=False) as e:
        s = e.add_session(("127.0.0.1", 9))
        rx = s.add_receive_stream(0xC0, media="video", reorder_wait_ms=5000)
        seqs = list(range(0, 300)) + [301] + list(range(302, 500))    # 300 never comes: held
        seqs += [5000 + i for i in range(600)]                       # a jump past the buffer
        seqs += [40000 + i for i in range(3)] + [40000] + [40001]    # a restart, then copies
        drive(e, [rtp(q, 3000 * q, 0xC0, pt=96) for q in seqs], 1_000_000, drain_ms=200)
        h, payloads = read_all(rx)
        st_ = rx.stats()
        assert_fates_add_up(st_)
        assert st_.overflow > 0 and st_.probation >= 1 and st_.duplicates >= 1
        assert st_.delivered == len(payloads)


ops = st.lists(st.tuples(st.sampled_from(["next", "dup", "swap", "gap", "jump", "old"]),
                         st.integers(1, 40)), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, kind=st.sampled_from(["audio", "video", "direct"]),
       step_ms=st.sampled_from([0.5, 5, 20, 40]), ring_small=st.booleans())
def test_fates_add_up_under_reordering_duplicates_and_loss(ops, kind, step_ms, ring_small):
    seqs, q = [], 100
    for op, k in ops:
        if op == "next":
            seqs += range(q, q + k)
            q += k
        elif op == "dup" and seqs:
            seqs += seqs[-min(k, len(seqs)):]
        elif op == "swap" and len(seqs) >= 2:
            seqs[-1], seqs[-2] = seqs[-2], seqs[-1]
        elif op == "gap":
            q += k
        elif op == "jump":
            q += 1000 * k                                            # past every buffer, A.1
        elif op == "old" and seqs:
            seqs.append(seqs[0] - k)
    with Engine("127.0.0.1", thread=False) as e:
        s = e.add_session(("127.0.0.1", 9))
        rx = s.add_receive_stream(
            0xD0, media="video" if kind == "video" else "audio", direct=kind == "direct",
            ring_capacity=1 << 12 if ring_small else 1 << 20, payload_types=None)
        datagrams = [rtp(x, 960 * x, 0xD0, b"p" * 100) for x in seqs]
        e.inject(datagrams, now_ns=T0, step_ns=int(step_ms * 1e6))
        end = T0 + len(datagrams) * int(step_ms * 1e6)
        delivered = 0
        for k in range(150):                                         # read while playing out
            e.poll(end + (k + 1) * FRAME_NS)
            h, payloads = read_all(rx)
            if len(h):
                delivered += int(((h["flags"] & 1) == 0).sum())
        st_ = rx.stats()
        assert st_.packets == len(datagrams)
        assert_fates_add_up(st_)
        assert st_.delivered == delivered
        if not ring_small:
            assert st_.ring_full == 0
        assert_datagrams_add_up(e.stats())


# ---- the datagram classifier: any datagram, one counted fate ----------------------------------

KEY = bytes(range(30))




@st.composite
def datagrams(draw):
    kind = draw(st.sampled_from(["random", "rtp", "srtp", "rtcp", "srtcp", "mutated"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    ssrc = draw(st.sampled_from([1, 2, 17, 18, 99]))
    if kind in ("rtp", "srtp", "mutated"):
        pad = draw(st.sampled_from([b"", b"\x00", b"\x00\x00\x02", b"\x00\x00\x09", b"\x01"]))
        pkt = rtp(draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 2**32 - 1)), ssrc,
                  draw(st.binary(max_size=60)), pt=draw(st.integers(0, 127)), padding=pad)
    else:
        w = RtcpWriter(4000)
        for _ in range(draw(st.integers(1, 4))):
            which = draw(st.sampled_from(["sr", "rr", "bye", "app", "pli", "nack"]))
            if which == "sr":
                w.sr(SenderInfo(ssrc, draw(st.integers(0, 2**64 - 1))))
            elif which == "rr":
                w.rr(ssrc)
            elif which == "bye":
                w.bye([ssrc])
            elif which == "app":
                w.app(ssrc, b"MBVS", draw(st.binary(max_size=12).map(lambda b: b[:len(b) // 4 * 4])))
            elif which == "pli":
                w.pli(ssrc, 3)
            else:
                w.nack(ssrc, 3, [1, 2, 40])
        pkt = w.data()
    if kind in ("srtp", "srtcp", "mutated"):
        out = SrtpSession(PROFILE, KEY, "outbound")
        pkt = out.protect(pkt) if kind != "srtcp" else out.protect_rtcp(pkt)
    if kind == "mutated" or draw(st.integers(0, 9)) == 0:
        b = bytearray(pkt)
        for _ in range(draw(st.integers(1, 4))):
            if b:
                b[draw(st.integers(0, len(b) - 1))] ^= 1 << draw(st.integers(0, 7))
        if draw(st.booleans()):
            b = b[:draw(st.integers(0, len(b)))]
        pkt = bytes(b)
    return pkt


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(datagrams(), min_size=1, max_size=40))
def test_classifier_every_datagram_one_counted_fate(batch):
    with Engine("127.0.0.1", thread=False) as e:
        plain = e.add_session(("127.0.0.1", 9))
        keyed = e.add_session(("127.0.0.1", 9), srtp_profile=PROFILE, tx_key=KEY, rx_key=KEY)
        streams = [plain.add_receive_stream(1, direct=True),
                   plain.add_receive_stream(2, media="video"),
                   keyed.add_receive_stream(17),
                   keyed.add_receive_stream(18, media="video", direct=True)]
        plain.add_send_stream(3, payload_type=96, media="video", history=16)
        e.inject(batch, now_ns=T0, step_ns=3_000_000)
        e.poll(T0 + 10**9)
        es = e.stats()
        assert es.datagrams_in == len(batch)
        assert_datagrams_add_up(es)
        assert es.rtp_in == sum(s.stats().packets for s in streams)
        for s in streams:
            assert_fates_add_up(s.stats())

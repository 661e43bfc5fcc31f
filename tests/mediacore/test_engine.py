"""The native engine on loopback: two engines exchanging RTP both ways,
demultiplexing, statistics, garbage, control path while running, shutdown."""

from __future__ import annotations

import os
import socket
import struct
import time

import numpy as np
import pytest

from mediacore.engine import Engine, RTP_RECORD_DTYPE


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


def rtp_packet(seq: int, ts: int, ssrc: int, payload: bytes, pt: int = 111,
               marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def drain(stream, want: int, timeout: float = 5.0):
    """Read batches until `want` records arrived (or timeout): headers, payloads."""
    headers, payloads = [], []
    deadline = time.monotonic() + timeout
    while sum(len(h) for h in headers) < want and time.monotonic() < deadline:
        b = stream.read_batch(timeout=0.05)
        if len(b):
            headers.append(b.headers.copy())
            payloads.extend(bytes(p) for p in b.payloads())
    h = np.concatenate(headers) if headers else np.empty(0, RTP_RECORD_DTYPE)
    return h, payloads


def test_two_engines_exchange_rtp_both_ways():
    with Engine("127.0.0.1") as a, Engine("127.0.0.1") as b:
        sa = a.add_session(("127.0.0.1", b.port))
        sb = b.add_session(("127.0.0.1", a.port))
        a_tx = sa.add_send_stream(0x1111, payload_type=111, initial_sequence=65530,
                                  timestamp_offset=0)
        b_tx = sb.add_send_stream(0x2222, payload_type=96, media="video",
                                  initial_sequence=100, timestamp_offset=1000)
        b_rx = sb.add_receive_stream(0x1111, direct=True)
        a_rx = sa.add_receive_stream(0x2222, media="video", direct=True)

        n = 200
        audio = [os.urandom(40 + i % 100) for i in range(n)]
        video = [os.urandom(1000 + i) for i in range(n)]
        for i in range(n):
            assert a_tx.send(audio[i], timestamp=960 * i, marker=(i == 0))
            assert b_tx.send(video[i], timestamp=3000 * (i // 5), marker=(i % 5 == 4))

        hb, pb = drain(b_rx, n)
        ha, pa = drain(a_rx, n)
        assert pb == audio
        assert pa == video
        # RTP metadata of what A sent to B: seq wraps 65535 -> 0, timestamps, marker, PT
        assert list(hb["sequence_number"]) == [(65530 + i) & 0xFFFF for i in range(n)]
        assert list(hb["timestamp"]) == [960 * i for i in range(n)]
        assert set(hb["ssrc"]) == {0x1111} and set(hb["payload_type"]) == {111}
        assert hb["marker"][0] == 1 and not hb["marker"][1:].any()
        assert list(ha["timestamp"]) == [1000 + 3000 * (i // 5) for i in range(n)]
        assert list(ha["marker"]) == [1 if i % 5 == 4 else 0 for i in range(n)]
        assert (np.diff(hb["arrival_ns"]) >= 0).all()

        st = wait_for(lambda: (s := b_rx.stats()).packets == n and s)
        assert st.packets == n and st.lost == 0 and st.duplicates == 0
        assert st.extended_highest_seq == 65530 + n - 1
        tx = wait_for(lambda: (s := a_tx.stats()).packets == n and s)
        assert tx.packets == n and tx.bytes == sum(map(len, audio))


def send_raw(port: int, datagrams, src: socket.socket | None = None):
    s = src or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for d in datagrams:
        s.sendto(d, ("127.0.0.1", port))
    return s


def test_demux_by_ssrc_unknown_and_garbage_counted():
    with Engine("127.0.0.1") as e:
        s1 = e.add_session()
        s2 = e.add_session()
        r1 = s1.add_receive_stream(1, direct=True)
        r2 = s2.add_receive_stream(2, direct=True)
        rng = np.random.default_rng(7)
        good1 = [rtp_packet(i, i * 960, 1, b"one%d" % i) for i in range(20)]
        good2 = [rtp_packet(i, i * 960, 2, b"two%d" % i) for i in range(20)]
        garbage = [bytes(rng.integers(0, 256, int(n), dtype=np.uint8))
                   for n in rng.integers(0, 300, 200)]
        garbage += [b"", b"\x80", b"\x80\x60\x00", b"\x40" + bytes(20),      # short, wrong version
                    bytes([0x8F, 0x60]) + bytes(20),                           # CSRC count past end
                    bytes([0x90, 0x60]) + bytes(10) + b"\x00\x01" + b"\xff\xff",  # huge extension
                    bytes([0xA0, 0x60]) + bytes(10) + b"\x00\x01\x00",       # bad padding
                    bytes([0x81, 200, 0xff, 0xff]) + bytes(8),               # RTCP length past end
                    bytes([0x81, 201, 0x00, 0x00]),                          # RTCP too short
                    ]
        unknown = [rtp_packet(i, 0, 99, b"x") for i in range(5)]
        sock = send_raw(e.port, good1 + garbage + unknown + good2)
        sock.close()
        h1, p1 = drain(r1, 20)
        h2, p2 = drain(r2, 20)
        assert p1 == [b"one%d" % i for i in range(20)]
        assert p2 == [b"two%d" % i for i in range(20)]
        st = wait_for(lambda: (s := e.stats()).datagrams_in >= 40 + len(garbage) + 5 and s)
        assert st.datagrams_in == 40 + len(garbage) + 5
        assert st.unknown_ssrc >= 5
        assert st.malformed + st.unknown_ssrc + st.rtp_in + st.rtcp_in >= st.datagrams_in - 1
        assert st.malformed >= 10
        assert st.rtp_in >= 40


def test_strict_source_drops_other_senders():
    with Engine("127.0.0.1") as e:
        legit = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        legit.bind(("127.0.0.1", 0))
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s = e.add_session(("127.0.0.1", legit.getsockname()[1]), strict_source=True)
        r = s.add_receive_stream(5, direct=True)
        send_raw(e.port, [rtp_packet(i, 0, 5, b"bad") for i in range(3)], other)
        send_raw(e.port, [rtp_packet(10 + i, 0, 5, b"good") for i in range(3)], legit)
        _, p = drain(r, 3)
        assert p == [b"good"] * 3
        st = wait_for(lambda: (x := e.stats()).unknown_source == 3 and x)
        assert st.unknown_source == 3
        legit.close()
        other.close()


def test_latch_learns_remote_and_sends_there():
    with Engine("127.0.0.1") as e:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        s = e.add_session(latch=True)
        r = s.add_receive_stream(7, direct=True)
        tx = s.add_send_stream(8, payload_type=0, initial_sequence=1, timestamp_offset=0)
        send_raw(e.port, [rtp_packet(1, 0, 7, b"hello")], peer)
        drain(r, 1)
        assert wait_for(lambda: any(ev.kind == "remote_latched" for ev in s.events()))
        tx.send(b"reply", timestamp=160)
        while True:
            data, _ = peer.recvfrom(2048)
            if 128 <= data[1] < 192 or data[1] < 128:  # skip RTCP
                if not (192 <= data[1] <= 223):
                    break
        assert data[12:] == b"reply"
        assert struct.unpack("!I", data[8:12])[0] == 8
        peer.close()


def _rtcp_from(peer: socket.socket, want, timeout: float = 5.0):
    """The first compound RTCP datagram at `peer` whose packet types satisfy
    `want` (RTP datagrams skipped): list of (packet type, parsed)."""
    from mediacore import rtp
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        peer.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, _ = peer.recvfrom(2048)
        except socket.timeout:
            break
        if not 192 <= data[1] <= 223:
            continue
        pkts = [(p.packet_type, p.parse()) for p in rtp.iter_compound(data)]
        if want([t for t, _ in pkts]):
            return pkts
    raise AssertionError("no such RTCP packet")


def test_outgoing_rtcp_compounds_and_bye_on_close():
    """Reports are SR + SDES CNAME compounds, key-frame requests RR + SDES +
    PLI, and removing a session sends RR + SDES + BYE (RFC 3550 6.1, 6.6)."""
    with Engine("127.0.0.1", rtcp_interval_ms=100) as e:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        s = e.add_session(peer.getsockname(), cname="bot@mediabot")
        tx = s.add_send_stream(0x51, payload_type=0, initial_sequence=1, timestamp_offset=0)
        rx = s.add_receive_stream(0x52, media="video")
        for i in range(5):
            tx.send(b"x" * 160, timestamp=160 * i)
        pkts = _rtcp_from(peer, lambda ts: ts[:1] == [200])
        assert [t for t, _ in pkts] == [200, 202]
        sender, _blocks = pkts[0][1]
        assert sender.ssrc == 0x51 and sender.packet_count == 5
        assert pkts[1][1] == [(0x51, 1, b"bot@mediabot")]

        rx.request_keyframe()
        pkts = _rtcp_from(peer, lambda ts: 206 in ts)
        assert [t for t, _ in pkts] == [201, 202, 206]
        assert pkts[2][1][1] == 0x52  # PLI about the remote source

        s.close()
        pkts = _rtcp_from(peer, lambda ts: 203 in ts)
        assert [t for t, _ in pkts] == [201, 202, 203]
        assert pkts[2][1] == ([0x51], b"session closed")
        peer.close()


def test_read_batch_splits_records_into_headers_and_payloads():
    """ReceiveStream.read_batch (mc_engine_read_records): headers as one
    array that outlives the next read, payloads as views, short records with
    a zeroed header, max_records honoured, closed and drained ring raises."""
    from mediacore.errors import RingClosed
    from mediacore.rings import Ring
    ring = Ring.create(1 << 12)
    with Engine("127.0.0.1", thread=False) as e:
        s = e.add_session()
        rx = s.add_receive_stream(0x77, direct=True, ring=ring)
        recs = []
        for i in range(7):
            h = np.zeros(1, RTP_RECORD_DTYPE)
            h["arrival_ns"], h["ssrc"], h["timestamp"] = 10**9 + i, 0x77, 960 * i
            h["sequence_number"], h["payload_type"], h["marker"] = (65533 + i) & 0xFFFF, 111, i & 1
            payload = bytes([i]) * (i * 5)  # empty for the first, unaligned lengths
            ring.write(h.tobytes() + payload, type=1)
            recs.append((h, payload))
        ring.write(b"short", type=1)
        first = rx.read_batch(3)
        assert len(first) == 3
        kept = first.headers
        second = rx.read_batch(100)
        assert len(second) == 5
        for k, (h, payload) in enumerate(recs[:3]):
            assert kept[k].tobytes() == h.tobytes()
        for k, (h, payload) in enumerate(recs[3:]):
            assert second.headers[k].tobytes() == h.tobytes()
            assert bytes(second.payload(k)) == payload
        assert [bytes(p) for p in second.payloads()][:4] == [p for _, p in recs[3:]]
        assert second.headers[4].tobytes() == bytes(RTP_RECORD_DTYPE.itemsize)  # "short"
        assert second.payload_lengths[4] == 0
        assert list(second.sequence_number[:4]) == [0, 1, 2, 3]  # 65536.. wrapped
        assert len(rx.read_batch(10)) == 0
        ring.close_writer()
        with pytest.raises(RingClosed):
            rx.read_batch(10)
        rx.close()
    ring.close()


def test_inject_without_thread_runs_the_receive_path():
    e = Engine("127.0.0.1", thread=False)
    try:
        s = e.add_session()
        r = s.add_receive_stream(42, direct=True)
        pkts = [rtp_packet(i, 160 * i, 42, bytes([i]) * 10) for i in range(100)]
        e.inject(pkts[:50] + pkts[40:45] + pkts[50:])  # 5 duplicates
        h, p = drain(r, 100, timeout=0.5)
        assert list(h["sequence_number"]) == list(range(100))
        assert p == [bytes([i]) * 10 for i in range(100)]
        st = r.stats()
        # RFC 3550 A.3: duplicates count as received, so cumulative lost goes negative
        assert st.packets == 105 and st.duplicates == 5 and st.lost == -5
    finally:
        e.close()


def test_sessions_added_and_removed_while_running():
    with Engine("127.0.0.1") as e:
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sessions = []
        for round_ in range(20):
            s = e.add_session()
            r = s.add_receive_stream(1000 + round_, direct=True)
            sessions.append((s, r))
            # traffic for every live session, including ones about to go
            for k, (_, rr) in enumerate(sessions):
                send_raw(e.port, [rtp_packet(round_, 0, rr.ssrc, b"p")], sender)
            if round_ % 3 == 2:
                gone, _ = sessions.pop(0)
                gone.close()
        # the stats snapshot follows the I/O thread's table a little later:
        # wait until it shows the last change (sessions and streams)
        st = wait_for(lambda: ((x := e.stats()).sessions == len(sessions)
                               and x.recv_streams == len(sessions) and x), timeout=10)
        assert st and st.sessions == len(sessions)
        assert st.recv_streams == len(sessions)
        sender.close()


def test_close_with_active_traffic_is_clean():
    e = Engine("127.0.0.1")
    s = e.add_session(("127.0.0.1", 9))
    r = s.add_receive_stream(1, direct=True)
    tx = s.add_send_stream(2, payload_type=0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(500):
        sender.sendto(rtp_packet(i, 0, 1, b"z" * 100), ("127.0.0.1", e.port))
        tx.send(b"y" * 100, timestamp=i * 160, wake=False)
    e.wake()
    e.close()
    assert r._closed and tx._closed
    e.close()  # idempotent
    sender.close()


# ---- SRTP ------------------------------------------------------------------------------

import pylibsrtp  # noqa: E402

from mediacore.engine import SRTP_KEY_LENGTHS  # noqa: E402

PYLIBSRTP_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


def libsrtp_session(profile: str, key: bytes, inbound: bool) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=key, srtp_profile=PYLIBSRTP_PROFILES[profile],
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND if inbound else pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    policy.window_size = 1024
    return pylibsrtp.Session(policy)


@pytest.mark.parametrize("profile", sorted(SRTP_KEY_LENGTHS))
def test_two_engines_exchange_srtp_both_ways(profile):
    n_key = SRTP_KEY_LENGTHS[profile]
    k_ab, k_ba = os.urandom(n_key), os.urandom(n_key)
    with Engine("127.0.0.1") as a, Engine("127.0.0.1") as b:
        sa = a.add_session(("127.0.0.1", b.port), srtp_profile=profile, tx_key=k_ab, rx_key=k_ba)
        sb = b.add_session(("127.0.0.1", a.port), srtp_profile=profile, tx_key=k_ba, rx_key=k_ab)
        a_tx = sa.add_send_stream(11, payload_type=111)
        b_tx = sb.add_send_stream(22, payload_type=96, media="video")
        b_rx = sb.add_receive_stream(11, direct=True)
        a_rx = sa.add_receive_stream(22, media="video", direct=True)
        audio = [os.urandom(160) for _ in range(100)]
        video = [os.urandom(1100) for _ in range(100)]
        for i in range(100):
            a_tx.send(audio[i], timestamp=960 * i, wake=False)
            b_tx.send(video[i], timestamp=3000 * i, wake=False)
        a.wake()
        b.wake()
        _, pb = drain(b_rx, 100)
        _, pa = drain(a_rx, 100)
        assert pb == audio and pa == video
        st = wait_for(lambda: (x := b.stats()).rtp_in == 100 and x)
        assert st.auth_failures == 0 and st.replays == 0 and st.rtp_in == 100


@pytest.mark.parametrize("profile", sorted(SRTP_KEY_LENGTHS))
def test_engine_srtp_against_libsrtp_both_directions(profile):
    """Engine -> capture socket -> libsrtp unprotect; libsrtp protect -> engine."""
    key_out, key_in = os.urandom(SRTP_KEY_LENGTHS[profile]), os.urandom(SRTP_KEY_LENGTHS[profile])
    cap = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cap.bind(("127.0.0.1", 0))
    cap.settimeout(5)
    with Engine("127.0.0.1", rtcp_interval_ms=100) as e:
        s = e.add_session(("127.0.0.1", cap.getsockname()[1]), srtp_profile=profile,
                          tx_key=key_out, rx_key=key_in)
        tx = s.add_send_stream(0xCAFE, payload_type=111, initial_sequence=65500)
        rx = s.add_receive_stream(0xBEEF, direct=True)
        payloads = [os.urandom(20 + i) for i in range(100)]
        for i, p in enumerate(payloads):
            tx.send(p, timestamp=960 * i, wake=False)
        e.wake()
        dec = libsrtp_session(profile, key_out, inbound=True)
        got, rtcp_ok = [], 0
        while len(got) < 100 or rtcp_ok == 0:
            d, _ = cap.recvfrom(4096)
            if 192 <= d[1] <= 223:
                plain = dec.unprotect_rtcp(d)
                assert plain[1] in (200, 201)
                rtcp_ok += 1
            else:
                plain = dec.unprotect(d)
                got.append(plain)
        assert [g[12:] for g in got] == payloads
        assert [struct.unpack("!H", g[2:4])[0] for g in got] == [(65500 + i) & 0xFFFF
                                                                 for i in range(100)]
        # libsrtp -> engine, across the ROC rollover
        enc = libsrtp_session(profile, key_in, inbound=False)
        sent = [os.urandom(50) for _ in range(100)]
        for i, p in enumerate(sent):
            cap.sendto(enc.protect(rtp_packet(65480 + i, 960 * i, 0xBEEF, p)),
                       ("127.0.0.1", e.port))
        _, pay = drain(rx, 100)
        assert pay == sent
    cap.close()


def test_srtp_wrong_key_tampering_and_replay_are_counted():
    profile = "AES_CM_128_HMAC_SHA1_80"
    key = os.urandom(30)
    e = Engine("127.0.0.1", thread=False)
    try:
        s = e.add_session(srtp_profile=profile, tx_key=os.urandom(30), rx_key=key)
        r = s.add_receive_stream(5, direct=True)
        enc = libsrtp_session(profile, key, inbound=False)
        good = [enc.protect(rtp_packet(i, 0, 5, b"ok%d" % i)) for i in range(10)]
        wrong = libsrtp_session(profile, os.urandom(30), inbound=False)
        bad = [wrong.protect(rtp_packet(100 + i, 0, 5, b"no")) for i in range(4)]
        tampered = bytearray(enc.protect(rtp_packet(10, 0, 5, b"tamper")))
        tampered[14] ^= 1
        e.inject(good[:5] + bad + [bytes(tampered)] + good[5:] + good[2:4])
        h, p = drain(r, 10, timeout=0.3)
        assert p == [b"ok%d" % i for i in range(10)]
        st = r.stats()
        assert st.auth_failures == 5 and st.replays == 2 and st.packets == 10
        assert e.stats().auth_failures == 5
    finally:
        e.close()


# ---- impairment through the relay, RTCP ------------------------------------------------

from tests.support.relay import UdpRelay  # noqa: E402


def paced_send(tx, n: int, interval_s: float, payload_len: int, ts_step: int) -> None:
    t0 = time.monotonic()
    for i in range(n):
        tx.send(i.to_bytes(4, "big") + bytes(payload_len - 4), timestamp=ts_step * i)
        delay = t0 + (i + 1) * interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def _a8_jitter_ms(headers: np.ndarray, clock_rate: int) -> float:
    """RFC 3550 A.8 over records in arrival order (a direct receive stream):
    D = (Rj - Ri) - (Sj - Si) in timestamp units, J += (|D| - J) / 16, in the
    integer form of the RFC's code."""
    first = int(headers["arrival_ns"][0])
    j_q4, prev = 0, None
    for arrival_ns, ts in zip(headers["arrival_ns"].tolist(), headers["timestamp"].tolist()):
        dt = arrival_ns - first
        units = (dt // 10**9) * clock_rate + (dt % 10**9) * clock_rate // 10**9
        if prev is not None:
            d = abs((units - prev[0]) - (((ts - prev[1] + 2**31) % 2**32) - 2**31))
            j_q4 = j_q4 + min(d, 0x7FFFFFFF) - ((j_q4 + 8) >> 4)
        prev = (units, ts)
    return j_q4 / 16.0 * 1000.0 / clock_rate


def test_impairment_stats_match_what_the_relay_injected():
    """Loss, reordering and jitter through the seeded relay (SRTP on). Stated
    tolerances: lost == dropped exactly unless the tail was dropped (<= 2);
    reordered within [held/2, 2*held + 5]; jitter at least 0.4 x the relay's
    sigma (RFC 3550 A.8 converges to ~1.13 sigma for Gaussian delay; a loaded
    machine only adds to the relay's delay variation), and equal to RFC 3550
    A.8 computed here from the records' arrival times and RTP timestamps, so
    the check holds however much jitter the machine's load added."""
    key_ab, key_ba = os.urandom(30), os.urandom(30)
    prof = "AES_CM_128_HMAC_SHA1_80"
    n = 400
    with Engine("127.0.0.1", rtcp_interval_ms=200) as a, \
            Engine("127.0.0.1", rtcp_interval_ms=200) as b:
        tee: list[bytes] = []
        with UdpRelay(("127.0.0.1", b.port), seed=11, loss=0.03, delay_ms=15, jitter_ms=4,
                      reorder=0.03, fifo=True, duration_s=20, tee=tee) as relay:
            sa = a.add_session(relay.address, srtp_profile=prof, tx_key=key_ab, rx_key=key_ba)
            sb = b.add_session(("127.0.0.1", a.port), srtp_profile=prof, tx_key=key_ba,
                               rx_key=key_ab)
            tx = sa.add_send_stream(0xA1, payload_type=96, media="video")
            sa.add_receive_stream(0xB1, media="video", direct=True)
            sb.add_send_stream(0xB1, payload_type=96, media="video")
            rx = sb.add_receive_stream(0xA1, media="video", direct=True)
            paced_send(tx, n, 0.005, 200, 450)
            time.sleep(0.3)  # the relay's last delays
            c = relay.counters
            # the relay also carried A's RTCP: map its decisions to RTP sequence numbers
            rtp = [(struct.unpack("!H", d[2:4])[0], dec) for d, dec in zip(tee, c.decisions)
                   if not 192 <= d[1] <= 223]
            s0 = rtp[0][0]
            dropped = {(seq - s0) & 0xFFFF for seq, dec in rtp if dec == "drop"}
            held = sum(1 for _, dec in rtp if dec == "hold")
            h, payloads = drain(rx, n - len(dropped), timeout=3)
            time.sleep(0.5)  # one more RTCP round
        st = rx.stats()
        assert len(rtp) == n and dropped
        seqs = [int.from_bytes(p[:4], "big") for p in payloads]
        assert sorted(seqs) == sorted(set(range(n)) - dropped)
        assert len(dropped) - 2 <= st.lost <= len(dropped)
        assert held / 2 <= st.reordered <= 2 * held + 5
        assert 0.4 * 4 <= st.jitter_ms
        assert st.jitter_ms == pytest.approx(_a8_jitter_ms(h, rx.clock_rate), rel=0.02, abs=0.05)
        assert st.auth_failures == 0
        # RTCP both ways: B saw A's SRs, A got B's RRs with the loss, both know the RTT
        assert st.sr_received > 0
        atx = tx.stats()
        assert atx.rr_received > 0 and atx.remote_cumulative_lost > 0
        assert 0 < atx.rtt_ms < 200
        assert 0 < st.rtt_ms < 200 or st.rtt_ms == -1


def impaired_pair(history: int, loss: float, seed: int, n: int = 300):
    """A sends video to B through the relay; B runs the reorder buffer with
    NACK and PLI, its feedback goes straight back to A."""
    key_ab, key_ba = os.urandom(30), os.urandom(30)
    prof = "AES_CM_128_HMAC_SHA1_80"
    with Engine("127.0.0.1") as a, Engine("127.0.0.1") as b:
        with UdpRelay(("127.0.0.1", b.port), seed=seed, loss=loss, delay_ms=10, jitter_ms=3,
                      reorder=0.05, duration_s=20) as relay:
            sa = a.add_session(relay.address, srtp_profile=prof, tx_key=key_ab, rx_key=key_ba)
            sb = b.add_session(("127.0.0.1", a.port), srtp_profile=prof, tx_key=key_ba,
                               rx_key=key_ab)
            tx = sa.add_send_stream(0xA1, payload_type=96, media="video", history=history)
            rx = sb.add_receive_stream(0xA1, media="video", nack=True, pli=True,
                                       reorder_wait_ms=150)
            paced_send(tx, n, 0.005, 300, 450)
            time.sleep(0.5)
            h, payloads = drain(rx, n, timeout=1.0)
            events = sa.events()
            return h, payloads, rx.stats(), tx.stats(), events, relay.counters


def test_reorder_buffer_releases_in_order_and_sends_nack_and_pli():
    """No retransmission history at the sender: gaps cannot be repaired, so
    the receiver NACKs them, gives up, and asks for a key frame (PLI)."""
    h, payloads, st, txst, events, c = impaired_pair(history=0, loss=0.04, seed=5)
    seqs = [int.from_bytes(p[:4], "big") for p in payloads]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)   # in order, no duplicates
    sn = [int(x) for x in h["sequence_number"]]
    assert all(0 < ((b - a) & 0xFFFF) < 0x8000 for a, b in zip(sn, sn[1:]))  # RTP order, wrap-aware
    assert c.dropped > 0 and c.held > 0
    assert st.nacks_sent > 0 and st.plis_sent > 0
    assert (h["flags"] & 2).any()  # a discontinuity was marked where a gap was given up
    assert txst.nacks_received > 0 and txst.plis_received > 0
    kinds = {e.kind for e in events}
    assert {"nack", "pli"} <= kinds
    assert all(e.ssrc == 0xA1 for e in events if e.kind in ("nack", "pli"))


def test_nack_retransmission_repairs_losses():
    h, payloads, st, txst, events, c = impaired_pair(history=512, loss=0.04, seed=9)
    seqs = [int.from_bytes(p[:4], "big") for p in payloads]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert st.nacks_sent > 0 and txst.retransmitted > 0
    rtp_drops = c.dropped  # includes a few RTCP datagrams at most
    assert len(seqs) > 300 - rtp_drops  # some losses were repaired


def test_audio_jitter_buffer_output_in_order_with_concealment():
    key_ab, key_ba = os.urandom(30), os.urandom(30)
    prof = "AES_CM_128_HMAC_SHA1_80"
    n = 100
    with Engine("127.0.0.1") as a, Engine("127.0.0.1") as b:
        with UdpRelay(("127.0.0.1", b.port), seed=3, loss=0.05, delay_ms=20, jitter_ms=8,
                      reorder=0.05, duration_s=20) as relay:
            sa = a.add_session(relay.address, srtp_profile=prof, tx_key=key_ab, rx_key=key_ba)
            sb = b.add_session(("127.0.0.1", a.port), srtp_profile=prof, tx_key=key_ba,
                               rx_key=key_ab)
            tx = sa.add_send_stream(0xAA, payload_type=111)
            rx = sb.add_receive_stream(0xAA, jitter_min_ms=40, jitter_max_ms=200)
            paced_send(tx, n, 0.02, 80, 960)
            time.sleep(0.5)
            h, payloads = drain(rx, n, timeout=1.0)
            st = rx.stats()
    lost = (h["flags"] & 1) != 0
    real = [int.from_bytes(p[:4], "big") for p, l in zip(payloads, lost) if not l]
    assert real == sorted(real) and len(set(real)) == len(real)
    assert len(real) >= n - relay.counters.dropped - 10
    assert st.concealed == int(lost.sum()) and st.concealed > 0
    assert st.jitter_ms > 2


def test_inject_paced_audio_through_the_jitter_buffer_is_deterministic():
    """Simulated real time: 20 ms packets with a burst of reordering and one
    loss come out in order, the gap concealed exactly once."""
    e = Engine("127.0.0.1", thread=False)
    try:
        s = e.add_session()
        r = s.add_receive_stream(9, jitter_min_ms=40, jitter_max_ms=100)
        order = list(range(50))
        order[10], order[11] = order[11], order[10]   # reordered pair
        order.remove(30)                               # lost
        pkts = [rtp_packet(i, 960 * i, 9, i.to_bytes(2, "big") * 40) for i in order]
        e.inject(pkts + [rtp_packet(50 + i, 960 * (50 + i), 9, b"\0\0" * 40) for i in range(10)],
                 now_ns=10**12, step_ns=20_000_000)
        b = r.read_batch(500)
        lost = b.lost
        seqs = [int(x) for x in b.sequence_number[~lost]]
        assert seqs == sorted(seqs)
        assert 30 not in seqs and set(range(45)) - {30} <= set(seqs)
        assert int(lost.sum()) >= 1 and 30 in [int(x) for x in b.sequence_number[lost]]
        assert r.stats().concealed == int(lost.sum())
    finally:
        e.close()


@pytest.mark.slow
def test_scale_200_sessions_with_traffic_added_and_removed_while_running():
    """200 concurrent SRTP sessions on one engine port, fed by a second engine;
    50 removed and 50 new ones added while traffic flows; every live stream
    gets its packets, removed ones stop cleanly; shutdown with all active."""
    rx_engine = Engine("127.0.0.1")
    tx_engine = Engine("127.0.0.1")
    prof = "AES_CM_128_HMAC_SHA1_80"
    live: dict[int, tuple] = {}   # ssrc -> (rx session, rx stream, tx session, tx stream)

    def add(ssrc: int) -> None:
        k_tx, k_rx = os.urandom(30), os.urandom(30)
        rs = rx_engine.add_session(("127.0.0.1", tx_engine.port), srtp_profile=prof,
                                   tx_key=k_rx, rx_key=k_tx)
        rr = rs.add_receive_stream(ssrc, direct=True, ring_capacity=1 << 16)
        ts = tx_engine.add_session(("127.0.0.1", rx_engine.port), srtp_profile=prof,
                                   tx_key=k_tx, rx_key=k_rx)
        tt = ts.add_send_stream(ssrc, payload_type=111)
        live[ssrc] = (rs, rr, ts, tt, [0])

    def remove(ssrc: int) -> None:
        rs, rr, ts, tt, _ = live.pop(ssrc)
        ts.close()
        rs.close()

    def send_round(i: int) -> None:
        for ssrc, (_, _, _, tt, sent) in live.items():
            tt.send(ssrc.to_bytes(4, "big") + i.to_bytes(4, "big") + bytes(72), 960 * i,
                    wake=False)
            sent[0] += 1
        tx_engine.wake()

    def read_all() -> dict[int, int]:
        got = {}
        for ssrc, (_, rr, _, _, _) in live.items():
            n = 0
            while True:
                b = rr.read_batch(512)
                if not len(b):
                    break
                assert set(int(x) for x in b.ssrc) == {ssrc}
                for p in b.payloads():
                    assert int.from_bytes(p[:4], "big") == ssrc
                n += len(b)
            got[ssrc] = n
        return got

    try:
        received = {}
        for k in range(200):
            add(1000 + k)
        assert wait_for(lambda: rx_engine.stats().sessions == 200)
        for i in range(60):
            send_round(i)
            if 20 <= i < 45:              # churn while traffic flows
                remove(1000 + 2 * (i - 20))
                remove(1000 + 2 * (i - 20) + 1)
                add(5000 + 2 * i)
                add(5000 + 2 * i + 1)
            for ssrc, n in read_all().items():
                received[ssrc] = received.get(ssrc, 0) + n
            time.sleep(0.01)
        assert len(live) == 200
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for ssrc, n in read_all().items():
                received[ssrc] = received.get(ssrc, 0) + n
            if all(received.get(s, 0) >= v[4][0] for s, v in live.items()):
                break
            time.sleep(0.05)
        missing = {s: (received.get(s, 0), v[4][0]) for s, v in live.items()
                   if received.get(s, 0) < v[4][0]}
        assert not missing
        st = wait_for(lambda: ((x := rx_engine.stats()).sessions == 200
                               and x.recv_streams == 200 and x), timeout=10)
        assert st and st.sessions == 200 and st.recv_streams == 200
        assert st.auth_failures == 0 and st.malformed == 0
    finally:
        # clean shutdown with every session active
        tx_engine.close()
        rx_engine.close()

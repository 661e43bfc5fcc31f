"""RTCP (RFC 3550 6, RFC 4585, RFC 5104): compound build/parse, report blocks,
RR statistics (A.1/A.3/A.8) against a Python reference, NACK packing, RTT,
the interval rule, and garbage."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings, strategies as st

from mediacore import Malformed, rtp
from mediacore._native import ffi, lib
from mediacore.rtp import ReportBlock, RtcpWriter, SenderInfo

u32 = st.integers(0, 0xFFFFFFFF)
blocks_st = st.lists(st.builds(ReportBlock, ssrc=u32, fraction_lost=st.integers(0, 255),
                               cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
                               extended_highest_seq=u32, jitter=u32, lsr=u32, dlsr=u32),
                     max_size=31)


@given(blocks_st, u32, st.integers(0, 2**64 - 1), u32, u32, u32)
@settings(max_examples=100)
def test_sr_rr_round_trip(blocks, ssrc, ntp, rtp_ts, pc, oc):
    sender = SenderInfo(ssrc, ntp, rtp_ts, pc, oc)
    data = RtcpWriter(2000).sr(sender, blocks).rr(ssrc ^ 1, blocks[:3]).data()
    pkts = list(rtp.iter_compound(data))
    assert [p.packet_type for p in pkts] == [200, 201]
    assert pkts[0].parse() == (sender, blocks)
    assert pkts[1].parse() == (ssrc ^ 1, blocks[:3])
    # wire layout of the SR header and the first report block (RFC 3550 6.4.1)
    assert data[0] == 0x80 | len(blocks) and data[1] == 200
    assert struct.unpack_from("!H", data, 2)[0] == (28 + 24 * len(blocks)) // 4 - 1
    if blocks:
        b = blocks[0]
        assert data[28:32] == struct.pack("!I", b.ssrc)
        assert data[32] == b.fraction_lost
        assert int.from_bytes(data[33:36], "big") == b.cumulative_lost & 0xFFFFFF


def test_compound_sdes_bye_pli_fir():
    data = (RtcpWriter().rr(1).sdes_cname(1, b"mediabot@host").bye([1, 2], b"done")
            .pli(1, 99).fir(1, [(99, 5), (100, 6)]).data())
    assert len(data) % 4 == 0
    pkts = list(rtp.iter_compound(data))
    assert [p.packet_type for p in pkts] == [201, 202, 203, 206, 206]
    assert pkts[0].parse() == (1, [])
    assert pkts[1].parse() == [(1, 1, b"mediabot@host")]
    assert pkts[2].parse() == ([1, 2], b"done")
    assert pkts[3].parse() == (1, 99)
    assert pkts[4].parse() == (1, [(99, 5), (100, 6)])


@given(st.binary(max_size=255))
def test_sdes_cname_lengths_pad_to_32_bits(cname):
    data = RtcpWriter().sdes_cname(0xABCDEF01, cname).data()
    assert len(data) % 4 == 0
    # a null item terminates the chunk: at least one zero byte after the text
    assert data[10 + len(cname)] == 0
    assert next(rtp.iter_compound(data)).parse() == [(0xABCDEF01, 1, cname)]


# ---- NACK (RFC 4585 6.2.1) ---------------------------------------------------------


def ref_unpack(fci: bytes) -> list[int]:
    out = []
    for pid, blp in struct.iter_unpack("!HH", fci):
        out.append(pid)
        out += [(pid + i + 1) & 0xFFFF for i in range(16) if blp >> i & 1]
    return out


@given(st.integers(0, 0xFFFF), st.sets(st.integers(0, 3000), min_size=1, max_size=300))
@settings(max_examples=200)
def test_nack_round_trip_with_wrap(base, offsets):
    lost = [(base + o) & 0xFFFF for o in offsets]
    random.Random(len(lost)).shuffle(lost)
    data = RtcpWriter(4000).nack(7, 8, lost + lost[:3]).data()  # duplicates are merged
    pkt = next(rtp.iter_compound(data))
    assert (pkt.packet_type, pkt.count) == (205, 1)
    sender, media, out = pkt.parse()
    expected = [(base + o) & 0xFFFF for o in sorted(offsets)]
    assert (sender, media, out) == (7, 8, expected)
    assert ref_unpack(data[12:]) == expected
    # greedy packing: one FCI entry per run of 17 starting at each uncovered loss
    entries, cover = 0, None
    for o in sorted(offsets):
        if cover is None or o > cover + 16:
            entries, cover = entries + 1, o
    assert len(data) == 12 + 4 * entries


def test_nack_known_bytes():
    data = RtcpWriter().nack(1, 2, [65535, 0, 2, 16, 17]).data()
    # PID 65535 covers 0 (BLP bit 0) and 2 (bit 2); 16 is 17 after it: a new PID covering 17
    assert data[12:] == bytes.fromhex("ffff0005") + bytes.fromhex("00100001")


# ---- garbage --------------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"\x80\xc9\x00",                          # truncated header
    b"\x80\xc9\x00\x05\x00\x00\x00\x01",      # length past the end
    b"\x40\xc9\x00\x01\x00\x00\x00\x01",      # version 1
    b"\x81\xc9\x00\x01\x00\x00\x00\x01",      # RR claims a block it doesn't have
    b"\xa0\xc9\x00\x01\x00\x00\x00\x09",      # padding longer than the packet
    b"\x81\xca\x00\x02\x00\x00\x00\x01\x01\x09ab",  # SDES item past the end
    b"\x81\xcd\x00\x02\x00\x00\x00\x01\x00\x00\x00\x02\x00",  # NACK FCI not a multiple of 4
])
def test_bad_rtcp_is_malformed(data):
    with pytest.raises(Malformed):
        for p in rtp.iter_compound(data):
            p.parse()


def test_random_rtcp_garbage_never_crashes():
    rng = random.Random(11)
    good = RtcpWriter().sr(SenderInfo(1, 2, 3, 4, 5), [ReportBlock(9)]).sdes_cname(1, b"x") \
        .nack(1, 2, [1, 5, 40]).fir(1, [(2, 3)]).bye([1]).data()
    seen = set()
    for _ in range(5000):
        d = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            d[rng.randrange(len(d))] = rng.getrandbits(8)
        d = bytes(d[:rng.randrange(len(d) + 1)])
        try:
            for p in rtp.iter_compound(d):
                p.parse()
            seen.add("ok")
        except Malformed:
            seen.add("malformed")
    assert seen == {"ok", "malformed"}


# ---- receive statistics -> report blocks ---------------------------------------------------


def ref_jitter_a8(arrivals_ns: list[int], timestamps: list[int], rate: int) -> int:
    """RFC 3550 A.8 integer form; arrival in timestamp units since the first."""
    jitter, prev = 0, None
    t0 = arrivals_ns[0]
    for a_ns, ts in zip(arrivals_ns, timestamps):
        dt = a_ns - t0
        arrival = (dt // 1_000_000_000) * rate + (dt % 1_000_000_000) * rate // 1_000_000_000
        if prev is not None:
            d = abs((arrival - prev[0]) - (((ts - prev[1] + 2**31) % 2**32) - 2**31))
            jitter += d - ((jitter + 8) >> 4)
        prev = (arrival, ts)
    return jitter >> 4


def test_rr_jitter_matches_a8_reference_on_synthetic_arrivals():
    rng = random.Random(3)
    rate, n = 48000, 3000
    seqs = [(65000 + i) & 0xFFFF for i in range(n)]            # crosses 65535 -> 0
    ts = [(2**32 - 960 * 1000 + 960 * i) % 2**32 for i in range(n)]  # crosses 2^32 -> 0
    arrivals = [10**12 + i * 20_000_000 + int(rng.gauss(0, 4e6) ** 2 / 4e6) for i in range(n)]
    order = sorted(range(n), key=lambda i: arrivals[i])        # jitter reorders some
    stats = rtp.RtpReceiveStats(rate)
    for i in order:
        stats.update(arrivals[i], seqs[i], ts[i], 160)
    block = stats.report_block(0x1234, arrivals[order[-1]])
    expected = ref_jitter_a8([arrivals[i] for i in order], [ts[i] for i in order], rate)
    assert block.jitter == expected
    assert expected > 0
    s = stats.stats()
    assert abs(s["jitter_ms"] - expected * 1000 / rate) < 1000 / rate
    assert block.extended_highest_seq == 65000 + n - 1
    assert block.cumulative_lost == 0 and block.fraction_lost == 0
    assert s["reordered"] == sum(1 for k, i in enumerate(order) if i < max(order[:k + 1]))


def test_rr_loss_fraction_duplicates_and_intervals():
    stats = rtp.RtpReceiveStats(90000)
    t = 0
    # interval 1: 100 expected, 10 lost
    for s in range(100):
        if s % 10 != 3:
            stats.update(t, s, s * 3000)
        t += 1_000_000
    b = stats.report_block(5, t)
    assert b.cumulative_lost == 10 and b.fraction_lost == 10 * 256 // 100
    assert b.extended_highest_seq == 99
    # interval 2: nothing lost, duplicates do not count as loss recovery per A.3
    for s in range(100, 200):
        stats.update(t, s, s * 3000)
        t += 1_000_000
    assert not stats.update(t, 150, 150 * 3000)                # duplicate
    b = stats.report_block(5, t)
    assert b.fraction_lost == 0 and b.cumulative_lost == 9     # A.3: duplicate counted received
    s = stats.stats()
    assert s["duplicates"] == 1 and s["expected"] == 200 and s["received"] == 191


def test_lsr_dlsr_and_rtt():
    stats = rtp.RtpReceiveStats(48000)
    stats.update(0, 1, 0)
    ntp = (3_900_000_000 << 32) | (1 << 31)                    # ... .5 s
    stats.sr_received(ntp, 1_000_000_000)
    b = stats.report_block(9, 1_250_000_000)                   # 250 ms after the SR
    assert b.lsr == (ntp >> 16) & 0xFFFFFFFF
    assert b.dlsr == 65536 // 4
    # the SR sender gets the RR back 40 ms of network later: RTT = A - LSR - DLSR
    arrival = ntp + int((0.250 + 0.040) * 2**32)
    rtt = rtp.rtt_ns(arrival, b.lsr, b.dlsr)
    assert abs(rtt - 40_000_000) < 50_000
    assert rtp.rtt_ns(arrival, 0, 0) is None


def test_rtcp_interval_rules():
    # small session: the 5 s minimum (2.5 s initially), times the random factor / (e - 1.5)
    c = 2.71828 - 1.5
    assert rtp.rtcp_interval_ns(2, 1, 1000, True, 100, False, 1.0) == int(5.0 / c * 1e9)
    assert rtp.rtcp_interval_ns(2, 1, 1000, True, 100, True, 0.5) == int(2.5 * 0.5 / c * 1e9)
    # large session: receivers share 75 % of the RTCP bandwidth
    t = rtp.rtcp_interval_ns(1000, 10, 1000, False, 100, False, 1.0)
    assert t == int(100 * 990 / 750 / c * 1e9)
    # senders share 25 %
    t = rtp.rtcp_interval_ns(1000, 10, 1000, True, 100, False, 1.5)
    assert t == int(5.0 * 1.5 / c * 1e9)  # 100*10/250 = 4 s < 5 s minimum
    with pytest.raises(ValueError):
        rtp.rtcp_interval_ns(2, 1, 1000, True, 100, False, 2.0)


def test_writer_reports_small_buffer_and_leaves_used_unchanged():
    buf = ffi.new("uint8_t[20]")
    used = ffi.new("size_t*", 9)
    assert lib.mc_rtcp_write_pli(buf, 20, used, 1, 2) == lib.MC_E_BUFFER
    assert used[0] == 9
    lost = ffi.new("uint16_t[]", [1, 100, 200])
    used[0] = 0
    assert lib.mc_rtcp_write_nack(buf, 20, used, 1, 2, lost, 3) == lib.MC_E_BUFFER
    assert used[0] == 0


def test_stats_late_packets_and_restart_after_a_large_jump():
    stats = rtp.RtpReceiveStats(8000)
    for s in range(65000, 65000 + 1200):                      # crosses 65535 -> 0
        stats.update(0, s & 0xFFFF, 0)
    assert stats.update(0, (65000 + 100) & 0xFFFF, 0)        # 1100 behind: too old to tell
    s = stats.stats()
    assert s["late"] == 1 and s["duplicates"] == 0
    assert s["extended_highest_seq"] == 65000 + 1199
    # A.1: a jump of more than MAX_DROPOUT is not counted ...
    assert not stats.update(0, 20000, 0)
    assert stats.stats()["received"] == 1201
    # ... until the next packet follows it: then the source restarted
    assert stats.update(0, 20001, 0)
    s = stats.stats()
    assert s["received"] == 1 and s["expected"] == 1 and s["extended_highest_seq"] == 20001

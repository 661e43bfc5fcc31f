"""Wrap-around arithmetic (native/src/seq.h) across 65535 -> 0 and 2^32-1 -> 0,
against a Python reference."""

from __future__ import annotations

from hypothesis import given, strategies as st

from mediacore import rtp


def ref_diff(a: int, b: int, bits: int) -> int:
    half = 1 << (bits - 1)
    return ((a - b + half) % (1 << bits)) - half


def test_seq_wraps_across_65535_to_0():
    assert rtp.seq_diff(0, 65535) == 1
    assert rtp.seq_diff(65535, 0) == -1
    assert rtp.seq_newer(0, 65535)
    assert not rtp.seq_newer(65535, 0)
    assert rtp.seq_diff(5, 65530) == 11
    assert rtp.seq_diff(100, 100) == 0 and not rtp.seq_newer(100, 100)


def test_seq_half_space_is_antisymmetric():
    # exactly 32768 apart: neither is "newer" in both directions
    assert rtp.seq_diff(32768, 0) == -32768
    assert rtp.seq_diff(0, 32768) == -32768
    assert not (rtp.seq_newer(32768, 0) and rtp.seq_newer(0, 32768))


def test_timestamp_wraps_across_2_32_minus_1_to_0():
    top = 2**32 - 1
    assert rtp.ts_diff(0, top) == 1
    assert rtp.ts_diff(top, 0) == -1
    assert rtp.ts_newer(959, top - 960 + 1 + 959 - 960)  # a 20 ms frame across the wrap
    assert rtp.ts_diff(480, top - 479) == 960
    assert rtp.ts_diff(2**31, 0) == -(2**31)


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_seq_diff_matches_reference(a, b):
    assert rtp.seq_diff(a, b) == ref_diff(a, b, 16)
    assert rtp.seq_newer(a, b) == (ref_diff(a, b, 16) > 0)


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_ts_diff_matches_reference(a, b):
    assert rtp.ts_diff(a, b) == ref_diff(a, b, 32)
    assert rtp.ts_newer(a, b) == (ref_diff(a, b, 32) > 0)


def test_unwrap_seq_through_several_cycles():
    seqs = [(65530 + i) & 0xFFFF for i in range(3 * 65536)][::7]
    out = rtp.unwrap_seq(seqs)
    assert out == [65530 + 7 * i for i in range(len(seqs))]


def test_unwrap_seq_late_packet_does_not_move_reference():
    # 65535, 0, 1 then a late 65534 (from the previous cycle), then 2
    assert rtp.unwrap_seq([65535, 0, 1, 65534, 2]) == [65535, 65536, 65537, 65534, 65538]
    # a packet from before the first one unwraps below the start
    assert rtp.unwrap_seq([3, 65535, 4]) == [3, -1, 4]


def test_unwrap_ts_across_2_32():
    top = 2**32
    ts = [(top - 1920 + 960 * i) % top for i in range(6)]
    assert rtp.unwrap_ts(ts) == [top - 1920 + 960 * i for i in range(6)]
    assert rtp.unwrap_ts([5, top - 5, 10]) == [5, -5, 10]


@given(st.integers(0, 2**40), st.lists(st.integers(-2000, 30000), min_size=1, max_size=60))
def test_unwrap_seq_recovers_extended_values(start, steps):
    # any walk that stays within half the space of the newest value so far
    # unwraps exactly (late values never move the reference)
    ext = [start]
    newest = start
    for s in steps:
        ext.append(newest + s)
        newest = max(newest, ext[-1])
    out = rtp.unwrap_seq([e & 0xFFFF for e in ext])
    base = start - (start & 0xFFFF)  # extended values count from the first value's cycle
    assert out == [e - base for e in ext]

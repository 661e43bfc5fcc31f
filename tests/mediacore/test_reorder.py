"""Video reorder buffer (native/src/reorder.c): in-order release, gaps -> NACK
lists (retry limit, RTT spacing), repaired gaps, and PLI decisions for gaps
that cannot be repaired in time. The clock is the test's."""

from __future__ import annotations

import random

import pytest

from mediacore import rtp
from mediacore.rtp import ReorderBuffer

MS = 1_000_000


def fill(rb: ReorderBuffer, now: int, seqs) -> None:
    for s in seqs:
        rb.insert(now, s & 0xFFFF, (s & 0xFFFF) * 3000, bytes([s & 255]) * 10, marker=int(s % 5 == 4))


def test_gap_gives_nack_list_and_holds_release():
    rb = ReorderBuffer(max_wait_ns=500 * MS)
    fill(rb, 0, [10, 11, 12, 15, 16])
    assert [p.sequence_number for p in rb.pop_all(0)] == [10, 11, 12]
    assert rb.nack_list(1 * MS) == [13, 14]
    assert rb.pop(2 * MS) is None


def test_repaired_gap_releases_in_order():
    rb = ReorderBuffer(max_wait_ns=500 * MS)
    fill(rb, 0, [10, 11, 12, 15, 16])
    rb.pop_all(0)
    assert rb.nack_list(1 * MS) == [13, 14]
    fill(rb, 20 * MS, [14])
    assert rb.pop(20 * MS) is None
    fill(rb, 25 * MS, [13])
    out = rb.pop_all(25 * MS)
    assert [p.sequence_number for p in out] == [13, 14, 15, 16]
    assert all(p.skipped_before == 0 for p in out)
    assert out[0].payload == bytes([13]) * 10 and out[1].marker == 1
    s = rb.stats()
    assert s["recovered"] == 2 and s["lost"] == 0
    assert not rb.keyframe_needed(30 * MS)


def test_nack_retry_limit_and_rtt_spacing():
    rb = ReorderBuffer(nack_max_retries=3, nack_min_interval_ns=10 * MS, max_wait_ns=10_000 * MS)
    rb.set_rtt(50 * MS)
    fill(rb, 0, [1, 3])
    times = [t * MS for t in range(0, 400, 5)]
    sent = [t for t in times if rb.nack_list(t) == [2]]
    assert sent == [0, 50 * MS, 100 * MS]       # spaced by the RTT, at most 3 times
    assert rb.stats()["nacks_sent"] == 3


def test_unrepairable_gap_requests_keyframe_within_max_wait():
    max_wait = 120 * MS
    rb = ReorderBuffer(nack_max_retries=10, nack_min_interval_ns=20 * MS, max_wait_ns=max_wait,
                       pli_min_interval_ns=1000 * MS)
    fill(rb, 0, [100, 101])
    rb.pop_all(0)
    fill(rb, 5 * MS, [103, 104])                 # 102 is gone for good
    decided = None
    for t in range(5, 400):
        rb.nack_list(t * MS)
        if rb.keyframe_needed(t * MS):
            decided = t * MS
            break
    assert decided is not None and 5 * MS + max_wait <= decided <= 5 * MS + max_wait + MS
    out = rb.pop_all(decided)
    assert [(p.sequence_number, p.skipped_before) for p in out] == [(103, 1), (104, 0)]
    assert rb.stats()["lost"] == 1 and rb.stats()["pli_requests"] == 1
    fill(rb, decided + MS, [102])                # the retransmission came too late
    assert rb.stats()["late"] == 1


def test_exhausted_retries_give_up_before_max_wait():
    rb = ReorderBuffer(nack_max_retries=2, nack_min_interval_ns=10 * MS, max_wait_ns=1000 * MS)
    fill(rb, 0, [1, 3])
    rb.pop_all(0)
    assert rb.nack_list(0) == [2]
    assert rb.nack_list(10 * MS) == [2]
    assert not rb.keyframe_needed(15 * MS)        # one spacing after the last NACK not yet over
    assert rb.keyframe_needed(20 * MS)
    assert [p.sequence_number for p in rb.pop_all(20 * MS)] == [3]


def test_pli_is_rate_limited():
    rb = ReorderBuffer(nack_max_retries=0, max_wait_ns=10 * MS, pli_min_interval_ns=500 * MS)
    fill(rb, 0, [0, 2])
    rb.pop_all(0)
    assert rb.keyframe_needed(10 * MS)
    rb.pop_all(10 * MS)
    fill(rb, 20 * MS, [4])
    assert not rb.keyframe_needed(100 * MS)       # a new gap, but too soon after the last PLI
    assert rb.keyframe_needed(510 * MS)
    assert rb.stats()["pli_requests"] == 2


def test_wrap_around_and_duplicates():
    rb = ReorderBuffer(max_wait_ns=500 * MS)
    fill(rb, 0, [65533, 65534, 65535, 1, 2])
    assert rb.nack_list(0) == [0]
    assert not rb.insert(0, 65535, 0, b"dup")
    fill(rb, MS, [0])
    out = rb.pop_all(MS)
    assert [p.sequence_number for p in out] == [65533, 65534, 65535, 0, 1, 2]
    assert not rb.insert(2 * MS, 65534, 0, b"late")
    s = rb.stats()
    assert (s["duplicates"], s["late"], s["released"]) == (1, 1, 6)


def test_jump_beyond_capacity_gives_up_and_requests_keyframe():
    rb = ReorderBuffer(capacity=64, max_wait_ns=10_000 * MS)
    fill(rb, 0, [0, 1, 2, 4, 5])
    rb.pop_all(0)
    fill(rb, MS, [100])                           # 100 - 3 >= 64: the window must move
    assert rb.keyframe_needed(MS)
    s = rb.stats()
    assert s["overflow_dropped"] == 2             # 4 and 5 were held behind the gap at 3
    out = rb.pop_all(MS)
    assert out[0].sequence_number == 100 and out[0].skipped_before == 100 - 3 - 2


def test_seeded_lossy_network_with_retransmissions():
    """A sender that answers NACKs after one RTT: everything is delivered in
    order; only packets whose retransmissions were also lost are given up."""
    rng = random.Random(4)
    rtt = 40 * MS
    rb = ReorderBuffer(capacity=512, nack_max_retries=3, nack_min_interval_ns=10 * MS,
                       max_wait_ns=400 * MS, pli_min_interval_ns=200 * MS)
    rb.set_rtt(rtt)
    start = 65000
    events = []  # (time, seq)
    for i in range(3000):
        if rng.random() < 0.05:
            continue
        events.append((i * 2 * MS + int(rng.uniform(0, 15) * MS), start + i))
    events.sort()
    released, plis, k = [], 0, 0
    for t in range(0, 3000 * 2 * MS + 600 * MS, MS):
        while k < len(events) and events[k][0] <= t:
            fill(rb, t, [events[k][1]])
            k += 1
        for seq in rb.nack_list(t):
            if rng.random() < 0.8:              # the retransmission arrives one RTT later
                events.append((t + rtt, start + ((seq - start) & 0xFFFF)))
                events[k:] = sorted(events[k:])
        plis += rb.keyframe_needed(t)
        released += rb.pop_all(t)
    ext = rtp.unwrap_seq([p.sequence_number for p in released])
    assert ext == sorted(ext) and len(set(ext)) == len(ext)
    s = rb.stats()
    assert s["recovered"] > 100
    assert len(released) + s["lost"] == 3000
    assert s["lost"] < 20                         # 0.05 * 0.2^3 * 3000 ~ 1
    assert plis == s["pli_requests"] and (plis > 0) == (s["lost"] > 0)


@pytest.mark.parametrize("kwargs", [dict(capacity=100), dict(capacity=0), dict(max_wait_ns=0),
                                    dict(max_payload=0)])
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        ReorderBuffer(**kwargs)

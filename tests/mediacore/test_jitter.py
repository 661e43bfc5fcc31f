"""Adaptive audio jitter buffer (native/src/jitter.c) driven by a test clock and
seeded random network schedules."""

from __future__ import annotations

import random

import pytest

from mediacore import rtp
from mediacore.rtp import JitterBuffer

MS = 1_000_000
FRAME = 20 * MS


def schedule(n: int, seed: int, jitter_ms: float, start_seq: int = 65500,
             loss: float = 0.0, dup: float = 0.0) -> list[tuple[int, int, int, bytes]]:
    """(arrival_ns, seq, timestamp, payload) sorted by arrival: packet i is sent
    at i * 20 ms and delayed by 10 ms + uniform(0, jitter_ms), so later packets
    can overtake earlier ones."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if rng.random() < loss:
            continue
        seq = (start_seq + i) & 0xFFFF
        ts = (2**32 - 960 * 50 + 960 * i) % 2**32
        payload = i.to_bytes(4, "big") * 10
        arrival = i * FRAME + 10 * MS + int(rng.uniform(0, jitter_ms) * MS)
        out.append((arrival, seq, ts, payload))
        if rng.random() < dup:
            out.append((arrival + int(rng.uniform(0, 30) * MS), seq, ts, payload))
    return sorted(out, key=lambda x: x[0])


def run(jb: JitterBuffer, sched, ticks: int) -> list[rtp.JitterOutput]:
    outs, k = [], 0
    for tick in range(ticks):
        now = tick * FRAME
        while k < len(sched) and sched[k][0] <= now:
            a, seq, ts, payload = sched[k]
            jb.insert(a, seq, ts, payload, payload_type=111)
            k += 1
        outs.append(jb.pop(now))
    return outs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_in_order_output_under_reordering_and_jitter(seed):
    n = 1500
    sched = schedule(n, seed, jitter_ms=60, loss=0.02, dup=0.02)
    jb = JitterBuffer(min_delay_ms=40, max_delay_ms=300, capacity=64)
    outs = run(jb, sched, n + 40)
    frames = [o for o in outs if o.kind == "frame"]
    ext = rtp.unwrap_seq([o.sequence_number for o in frames])
    assert ext == sorted(ext) and len(set(ext)) == len(ext), "frames out of order or repeated"
    # every played payload is the one sent with that sequence number
    for o, e in zip(frames, ext):
        assert o.payload == (e - 65500).to_bytes(4, "big") * 10
    # the slots are continuous: frames and losses cover the stream, except the
    # frames dropped on purpose to shrink the delay
    slots = [o for o in outs if o.kind in ("frame", "lost")]
    slot_ext = rtp.unwrap_seq([o.sequence_number for o in slots])
    holes = sum(b - a - 1 for a, b in zip(slot_ext, slot_ext[1:]))
    assert all(b > a for a, b in zip(slot_ext, slot_ext[1:]))
    st = jb.stats()
    assert holes == st["dropped_to_shrink"]
    assert st["lost"] == sum(1 for o in outs if o.kind == "lost")
    s = jb.stats()
    sent = len({x[1] for x in sched})
    assert s["played"] == len(frames)
    assert s["played"] + s["late"] + s["dropped_to_shrink"] >= sent - 5  # tail still buffered
    assert s["duplicates"] > 0
    assert s["played"] > 0.9 * sent


def test_target_delay_follows_jitter_within_bounds():
    targets = {}
    for jitter_ms in (0, 40, 400):
        jb = JitterBuffer(min_delay_ms=40, max_delay_ms=200, capacity=64)
        run(jb, schedule(600, 5, jitter_ms), 600)
        targets[jitter_ms] = jb.stats()["target_delay_ms"]
    assert targets[0] == 40                 # clean network: the minimum
    assert 40 < targets[40] < 200           # follows the measured jitter
    assert targets[400] == 200              # capped at the maximum
    jb = JitterBuffer(min_delay_ms=40, max_delay_ms=200, capacity=64)
    run(jb, schedule(400, 5, 40), 400)
    assert jb.stats()["jitter_ms"] > 5


def test_delay_shrinks_when_jitter_drops():
    jb = JitterBuffer(min_delay_ms=20, max_delay_ms=400, capacity=64)
    sched = schedule(300, 9, 300)           # a burst of heavy jitter grows the buffer
    calm = [(a + 300 * FRAME, (s + 300) & 0xFFFF, (t + 300 * 960) % 2**32, p)
            for a, s, t, p in schedule(1200, 9, 0)]
    run(jb, sched + calm, 1500)
    s = jb.stats()
    assert s["dropped_to_shrink"] > 0
    assert s["current_delay_ms"] <= s["target_delay_ms"] + 2 * 20


def test_duplicates_late_and_early_are_counted():
    jb = JitterBuffer(min_delay_ms=40, max_delay_ms=200, capacity=64)
    assert jb.insert(0, 100, 0, b"a")
    assert not jb.insert(1, 100, 0, b"a")                  # duplicate
    assert jb.insert(2, 101, 960, b"b")
    assert jb.insert(3, 102, 1920, b"c")
    outs = [jb.pop(t * FRAME) for t in range(3)]
    assert [o.kind for o in outs[:2]] == ["buffering", "frame"] or outs[0].kind == "frame"
    played = [o.sequence_number for o in outs if o.kind == "frame"]
    assert played and played[0] == 100
    assert not jb.insert(10 * FRAME, 100, 0, b"a")         # its slot has been played: late
    assert not jb.insert(10 * FRAME, 100 + 64 + 5, 0, b"x")  # beyond capacity: early
    s = jb.stats()
    assert (s["duplicates"], s["late"], s["early"]) == (1, 1, 1)
    assert not jb.insert(0, 103, 0, b"z" * 2000)          # larger than max_payload
    assert jb.stats()["too_large"] == 1


def feed_on_time(jb: JitterBuffer, seqs, ticks: int, start_tick: int = 0):
    """Packet `seq` arrives at tick seq (20 ms each); one pop per tick after arrivals."""
    outs = []
    for t in range(start_tick, start_tick + ticks):
        if t in seqs:
            jb.insert(t * FRAME, t, t * 960, bytes([t & 255]))
        outs.append(jb.pop(t * FRAME))
    return outs


def test_underrun_is_reported_and_buffer_refills():
    jb = JitterBuffer(min_delay_ms=40, max_delay_ms=200, capacity=64)
    outs = feed_on_time(jb, set(range(10)), 14)           # the sender stops after 10 packets
    kinds = [o.kind for o in outs]
    assert [o.sequence_number for o in outs if o.kind == "frame"] == list(range(10))
    assert kinds[-3] == "underrun" and kinds[-1] == "buffering"
    assert jb.stats()["underruns"] == 1
    # the sender resumes after a gap in numbering: once the target delay is
    # buffered, each missing number is reported LOST (so the decoder can use
    # the next packet's FEC or conceal), then frames play in order
    outs = feed_on_time(jb, set(range(14, 30)), 8, start_tick=14)
    assert [(o.kind, o.sequence_number) for o in outs[:4]] == [
        ("lost", 10), ("lost", 11), ("lost", 12), ("lost", 13)]
    frames = [o.sequence_number for o in outs[4:]]
    assert all(o.kind == "frame" for o in outs[4:]) and frames == sorted(frames)
    # the buffer then holds more than the target: at most one frame is dropped to shrink
    assert frames[0] == 14 + jb.stats()["dropped_to_shrink"] <= 15
    assert jb.stats()["lost"] == 4


def test_missing_packet_is_reported_lost_once_enough_is_buffered():
    jb = JitterBuffer(min_delay_ms=60, max_delay_ms=200, capacity=64)
    outs = feed_on_time(jb, {0, 1, 2, 4, 5, 6, 7, 8}, 9)
    assert [(o.kind, o.sequence_number) for o in outs] == [
        ("buffering", 0), ("buffering", 0), ("frame", 0), ("frame", 1), ("frame", 2),
        ("lost", 3), ("frame", 4), ("frame", 5), ("frame", 6)]
    assert jb.stats()["lost"] == 1 and jb.stats()["underruns"] == 0


def test_stream_restart_resynchronises():
    jb = JitterBuffer(min_delay_ms=20, max_delay_ms=100, capacity=16)
    for i in range(3):
        jb.insert(i, i, i * 960, b"a")
    assert jb.pop(0).kind == "frame"
    for i in range(3):  # the sender jumped to a new sequence space
        jb.insert(10 + i, 30000 + i, 5, b"b")
    assert jb.stats()["resets"] == 1
    outs = [jb.pop(FRAME * t) for t in range(1, 6)]
    assert [o.sequence_number for o in outs if o.kind == "frame"][:1] == [30002] or \
        any(o.sequence_number >= 30000 for o in outs if o.kind == "frame")


@pytest.mark.parametrize("kwargs", [dict(capacity=48), dict(capacity=8, max_delay_ms=200),
                                    dict(min_delay_ms=300, max_delay_ms=200),
                                    dict(frame_ms=0)])
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        JitterBuffer(**kwargs)

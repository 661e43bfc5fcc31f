"""RFC 4733 telephone events: payload layout against a struct-based
reference, the sender's schedule, and the receiver's state machine under
loss, duplication and reordering."""

from __future__ import annotations

import struct

import pytest

from mediacore.audio import DtmfReceiver, DtmfSender, TelephoneEvent
from mediacore.errors import InvalidArgument, InvalidState, Malformed


def reference_payload(event: int, end: bool, volume: int, duration: int) -> bytes:
    """RFC 4733 §2.3: event(8) | E(1) R(1) volume(6) | duration(16), network order."""
    return struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)


def test_payload_round_trip_against_reference():
    for ev in (TelephoneEvent(0, False, 10, 160), TelephoneEvent(11, True, 63, 65535),
               TelephoneEvent(15, False, 0, 0)):
        raw = reference_payload(ev.event, ev.end, ev.volume, ev.duration)
        assert bytes(ev) == raw
        assert TelephoneEvent.parse(raw) == ev
    assert TelephoneEvent.parse(bytes([5, 0x40 | 7, 0, 80])) == TelephoneEvent(5, False, 7, 80)
    with pytest.raises(Malformed):
        TelephoneEvent.parse(b"\x01\x02\x03")
    with pytest.raises(InvalidArgument):
        bytes(TelephoneEvent(1, False, 64, 0))


def run_sender(tones: str, tone_ms: int, gap_ms: int, clock_rate_hz: int = 8000):
    tx = DtmfSender(clock_rate_hz, 20)
    tx.start(tones, tone_ms=tone_ms, gap_ms=gap_ms)
    ts, step, schedule = 5000, clock_rate_hz // 50, []
    for tick in range(2000):
        packets, active = tx.tick(ts)
        schedule.append((tick, ts, packets, active))
        ts += step
        if tx.idle:
            break
    return schedule


def test_sender_schedule_follows_rfc4733():
    schedule = run_sender("19#", tone_ms=100, gap_ms=60)
    events: dict[int, list] = {}
    for tick, ts, packets, active in schedule:
        for p in packets:
            events.setdefault(p.rtp_timestamp, []).append((tick, TelephoneEvent.parse(p.payload), p.marker))
    assert len(events) == 3
    for (start, pkts), digit in zip(sorted(events.items()), (1, 9, 11)):
        evs = [e for _, e, _ in pkts]
        assert all(e.event == digit for e in evs)
        assert [e.duration for e in evs] == [160, 320, 480, 640, 800, 800, 800]
        assert [e.end for e in evs] == [False] * 4 + [True] * 3      # end sent three times
        assert [m for _, _, m in pkts] == [True] + [False] * 6       # marker on the first only
    starts = sorted(events)
    assert starts[1] - starts[0] == (5 + 3) * 160                    # 100 ms tone + 60 ms gap
    assert sum(active for *_, active in schedule) == 15


def test_round_trip_48k_clock_and_long_tone_cap():
    rx = DtmfReceiver()
    digits = []
    for _, _, packets, _ in run_sender("*0", tone_ms=2000, gap_ms=100, clock_rate_hz=48000):
        for p in packets:
            digits += rx.push(p.payload, p.rtp_timestamp, p.marker)
    ends = [d for d in digits if d.end]
    assert [d.digit for d in ends] == ["*", "0"]
    assert all(d.duration_ticks <= 65535 for d in ends)   # 16-bit field: capped at 1.34 s
    assert ends[0].duration_ticks == 65535 // 960 * 960


def test_receiver_dedups_and_survives_loss():
    rx = DtmfReceiver()
    p = reference_payload
    # digit 4: start lost, updates duplicated and reordered, end x3
    seq = [(p(4, False, 10, 320), 100), (p(4, False, 10, 320), 100), (p(4, False, 10, 160), 100),
           (p(4, True, 10, 640), 100), (p(4, True, 10, 640), 100), (p(4, True, 10, 640), 100)]
    out = [d for payload, ts in seq for d in rx.push(payload, ts)]
    assert [(d.digit, d.end, d.duration_ticks) for d in out] == [("4", False, 320), ("4", True, 640)]
    # digit 7 whose end packets are all lost: ended when digit 8 starts
    out = rx.push(p(7, False, 10, 160), 2000) + rx.push(p(8, False, 10, 160), 4000)
    assert [(d.digit, d.end) for d in out] == [("7", False), ("7", True), ("8", False)]
    # a late packet of digit 7 after 8 started is ignored
    assert rx.push(p(7, True, 10, 480), 2000) == []
    assert [(d.digit, d.end) for d in rx.flush()] == [("8", True)]
    assert rx.flush() == []
    with pytest.raises(Malformed):
        rx.push(b"\x01", 5000)
    st = rx.stats()
    assert st["digits"] == 3 and st["malformed"] == 1 and st["duplicates"] == 5


def test_timestamp_wraparound():
    rx = DtmfReceiver()
    a = rx.push(reference_payload(1, True, 10, 160), 0xFFFFFF00)
    b = rx.push(reference_payload(2, True, 10, 160), 0x00000100)   # newer across 2^32 -> 0
    assert [d.digit for d in a + b if d.end] == ["1", "2"]


def test_sender_rejects_bad_input():
    tx = DtmfSender()
    with pytest.raises(InvalidArgument):
        tx.start("12E")
    with pytest.raises(InvalidArgument):
        tx.start("1", tone_ms=10)                  # shorter than one packet
    tx.start("1")
    with pytest.raises(InvalidState):
        tx.start("2")

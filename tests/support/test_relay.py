"""The impairment relay itself: seeded decisions, counters, FIFO order."""

from __future__ import annotations

import socket
import struct
import threading
import time

from tests.support.relay import UdpRelay


def run_probe(n: int = 300, **kw):
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(0.5)
    src = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    got: list[int] = []

    def reader():  # keep the sink's socket buffer from overflowing
        try:
            while True:
                got.append(struct.unpack("!I", sink.recv(64))[0])
        except socket.timeout:
            pass

    t = threading.Thread(target=reader)
    t.start()
    with UdpRelay(sink.getsockname(), **kw) as relay:
        for i in range(n):
            src.sendto(struct.pack("!I", i), relay.address)
            time.sleep(0.001)
        t.join(10)
    sink.close()
    src.close()
    return relay.counters, got


def test_same_seed_same_decisions_and_counts_match_delivery():
    kw = dict(seed=5, loss=0.05, jitter_ms=1.0, delay_ms=2.0, reorder=0.05, duplicate=0.03)
    c1, got1 = run_probe(**kw)
    c2, got2 = run_probe(**kw)
    assert c1.decisions == c2.decisions
    assert c1.received == 300 and c1.dropped == c1.decisions.count("drop") > 0
    assert len(got1) == 300 - c1.dropped + c1.duplicated == c1.forwarded
    assert set(range(300)) - set(got1) == {i for i, d in enumerate(c1.decisions) if d == "drop"}
    assert c1.held > 0 and got1 != sorted(got1)


def test_fifo_mode_keeps_order_under_jitter():
    c, got = run_probe(seed=3, delay_ms=5.0, jitter_ms=3.0, fifo=True)
    assert c.dropped == 0 and got == list(range(300))

"""A seeded userspace UDP impairment relay.

``tc netem`` is not available on the development and CI machines, so tests
that need loss, delay, jitter, reordering or duplication put this relay
between a sender and a receiver. It listens on ``listen`` and forwards every
datagram to ``target`` (one direction; run two relays for both directions).

One ``random.Random(seed)`` decides per datagram, drawing the same four
numbers for every datagram so that the same seed gives the same decisions
whatever happens to earlier packets:

* drop with probability ``loss``;
* otherwise delay by ``max(0, gauss(delay_ms, jitter_ms))``;
* with probability ``reorder`` hold it back ``reorder_extra_ms`` more, so
  later packets overtake it;
* with probability ``duplicate`` send a copy 1 ms later.

``fifo=True`` stops jitter alone from reordering: each packet is due at least
10 us after the previous one (held-back packets excepted). Counters say what
was dropped, held and duplicated; ``ready`` is set once the socket is bound;
the relay stops by itself after ``duration_s``. ``tee`` (a list) receives a
copy of every datagram as it arrived, before any impairment, for tests that
decrypt a capture with an independent implementation.

Usable in-process (``with UdpRelay(...) as relay:``) or as a script:
``python -m tests.support.relay --target 127.0.0.1:5004 --loss 0.02 ...``.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class RelayCounters:
    received: int = 0
    forwarded: int = 0      # datagrams sent on, duplicates included
    dropped: int = 0
    held: int = 0           # held back for reordering
    duplicated: int = 0
    decisions: list[str] = field(default_factory=list)  # per received datagram, in order


class UdpRelay(threading.Thread):
    def __init__(self, target: tuple[str, int], *, listen: tuple[str, int] = ("127.0.0.1", 0),
                 seed: int = 1, loss: float = 0.0, delay_ms: float = 0.0, jitter_ms: float = 0.0,
                 reorder: float = 0.0, reorder_extra_ms: float = 15.0, duplicate: float = 0.0,
                 fifo: bool = False, duration_s: float = 30.0,
                 tee: list[bytes] | None = None) -> None:
        super().__init__(name="udp-relay", daemon=True)
        self.target = target
        self.loss = loss
        self.delay_s = delay_ms / 1000.0
        self.jitter_s = jitter_ms / 1000.0
        self.reorder = reorder
        self.reorder_extra_s = reorder_extra_ms / 1000.0
        self.duplicate = duplicate
        self.fifo = fifo
        self.duration_s = duration_s
        self.tee = tee
        self.counters = RelayCounters()
        self.ready = threading.Event()
        self._random = random.Random(seed)
        self._halt = threading.Event()
        family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.bind(listen)
        self._sock.setblocking(False)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]

    # ---- decisions -------------------------------------------------------------------

    def _decide(self, now: float) -> list[float]:
        """Due times for one datagram (empty: dropped). Always four draws."""
        r = self._random
        u_loss, delay, u_reorder, u_dup = (r.random(), r.gauss(self.delay_s, self.jitter_s)
                                           if self.jitter_s > 0 else self.delay_s,
                                           r.random(), r.random())
        c = self.counters
        if u_loss < self.loss:
            c.dropped += 1
            c.decisions.append("drop")
            return []
        due = now + max(0.0, delay)
        held = u_reorder < self.reorder
        if held:
            due += self.reorder_extra_s
            c.held += 1
        elif self.fifo:
            due = max(due, self._last_due + 10e-6)
            self._last_due = due
        out = [due]
        if u_dup < self.duplicate:
            out.append(due + 0.001)
            c.duplicated += 1
        c.decisions.append("hold" if held else ("dup" if len(out) > 1 else "pass"))
        return out

    # ---- loop ------------------------------------------------------------------------

    def run(self) -> None:
        self._last_due = 0.0
        heap: list[tuple[float, int, bytes]] = []
        order = itertools.count()
        end = time.monotonic() + self.duration_s
        self.ready.set()
        sock = self._sock
        try:
            while not self._halt.is_set():
                now = time.monotonic()
                if now >= end:
                    break
                timeout = 0.05 if not heap else max(0.0, min(0.05, heap[0][0] - now))
                readable, _, _ = select.select([sock], [], [], timeout)
                if readable:
                    while True:
                        try:
                            data = sock.recv(65536)
                        except (BlockingIOError, InterruptedError):
                            break
                        except ConnectionError:
                            continue
                        self.counters.received += 1
                        if self.tee is not None:
                            self.tee.append(data)
                        for due in self._decide(time.monotonic()):
                            heapq.heappush(heap, (due, next(order), data))
                now = time.monotonic()
                while heap and heap[0][0] <= now:
                    _, _, data = heapq.heappop(heap)
                    try:
                        sock.sendto(data, self.target)
                        self.counters.forwarded += 1
                    except OSError:
                        pass
            # flush what is still due within a short grace period
            while heap and heap[0][0] <= time.monotonic() + 0.2 and not self._halt.is_set():
                due, _, data = heapq.heappop(heap)
                time.sleep(max(0.0, due - time.monotonic()))
                try:
                    sock.sendto(data, self.target)
                    self.counters.forwarded += 1
                except OSError:
                    pass
        finally:
            sock.close()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)

    def __enter__(self) -> UdpRelay:
        self.start()
        if not self.ready.wait(5):
            raise RuntimeError("relay did not become ready")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", type=_addr, default=("127.0.0.1", 0))
    p.add_argument("--target", type=_addr, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--duplicate", type=float, default=0.0)
    p.add_argument("--fifo", action="store_true")
    p.add_argument("--duration-s", type=float, default=30.0)
    a = p.parse_args(argv)
    relay = UdpRelay(a.target, listen=a.listen, seed=a.seed, loss=a.loss, delay_ms=a.delay_ms,
                     jitter_ms=a.jitter_ms, reorder=a.reorder, duplicate=a.duplicate,
                     fifo=a.fifo, duration_s=a.duration_s)
    relay.start()
    relay.ready.wait()
    print(f"listening {relay.address[0]}:{relay.address[1]}", flush=True)
    relay.join()
    c = relay.counters
    print(f"received={c.received} forwarded={c.forwarded} dropped={c.dropped} held={c.held} "
          f"duplicated={c.duplicated}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

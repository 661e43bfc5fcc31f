"""Frame hand-off benchmarks: the native SPSC ring against Python's queues,
measured side by side in one run.

* handoff-640B: a native producer thread -> one Python consumer thread, batched
  zero-copy reads, against queue.Queue, collections.deque (spin-polling
  consumer) and multiprocessing.Queue, each fed by a Python thread.
* crossprocess-640B: a producer in another process -> this process, shared
  ring against multiprocessing.Queue.
* wakeup-1kHz p50 / p99: latency from a paced producer's timestamp to a
  blocked consumer holding the record, the ring's paced wait against
  queue.Queue (the ring's plain park and each consumer's CPU share beside).
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import queue
import struct
import threading
import time

import pytest

from benchmarks._report import QUICK, percentile_ns, record_comparison
from mediacore import Ring, RingClosed
# the ring self-test workers (mc_selftest_*) are not in the shipped library: the testing module
# (native/tests/support, built by `make build`) has them and mediacore._native's API
from _mediacore_testing import ffi, lib

RECORD = 640
M = 100_000 if QUICK else 400_000  # records per throughput round
M_MP = 10_000 if QUICK else 40_000  # multiprocessing.Queue is ~30x slower
ROUNDS = 3 if QUICK else 7
PAYLOAD = bytes(range(256)) * 2 + bytes(RECORD - 512)
_HEAD = struct.Struct("<QQ")
_BODY = PAYLOAD[_HEAD.size:]


# ---- native thread -> Python thread ---------------------------------------------


def _native_to_python(m: int) -> int:
    ring = Ring.create(1 << 20, policy="report")
    worker = ffi.new("mc_selftest **")
    # block=1: the producer waits when full, so every record arrives
    assert lib.mc_selftest_producer_start(ring._handle, m, RECORD, 0, 64, 1, worker) == 0
    got = 0
    last = -1
    try:
        while True:
            try:
                ring.wait(timeout=10)
            except RingClosed:
                break
            with ring.peek(max_records=4096, uniform=True) as batch:
                n = len(batch)
                if n:
                    rows = batch.array()
                    last = int(rows[n - 1, :8].view("<u8")[0])  # the consumer reads every batch
                    got += n
    finally:
        lib.mc_selftest_join(worker[0], ffi.NULL)
        ring.close()
    assert got == m and last == m - 1
    return got


def _python_thread_feeding(put, m: int) -> threading.Thread:
    """A Python producer that, like the native one, makes a fresh record per
    item (sequence number, timestamp, payload)."""
    def produce():
        pack, now, body = _HEAD.pack, time.monotonic_ns, _BODY
        for seq in range(m):
            put(pack(seq, now()) + body)
    t = threading.Thread(target=produce)
    t.start()
    return t


def _queue_queue(m: int) -> int:
    q: queue.Queue = queue.Queue(1024)
    t = _python_thread_feeding(q.put, m)
    get = q.get
    for _ in range(m):
        get()
    t.join()
    return m


def _deque_spin(m: int) -> int:
    d: collections.deque = collections.deque()
    t = _python_thread_feeding(d.append, m)
    popleft = d.popleft
    got = 0
    while got < m:
        try:
            popleft()
            got += 1
        except IndexError:
            pass
    t.join()
    return got


def _mp_queue_thread(m: int) -> int:
    q = mp.Queue(1024)
    t = _python_thread_feeding(q.put, m)
    for _ in range(m):
        q.get()
    t.join()
    q.close()
    q.join_thread()
    return m


@pytest.mark.benchmark(group="handoff-640B")
def test_handoff_ring_native_to_python(benchmark):
    benchmark.extra_info.update(role="subject", units=M, label="ring: native thread -> Python, batched zero-copy")
    benchmark.pedantic(_native_to_python, args=(M,), rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="handoff-640B")
def test_handoff_queue_queue(benchmark):
    benchmark.extra_info.update(role="anchor", units=M, label="queue.Queue(1024), Python thread")
    benchmark.pedantic(_queue_queue, args=(M,), rounds=ROUNDS, iterations=1)


@pytest.mark.benchmark(group="handoff-640B")
def test_handoff_deque_spin(benchmark):
    benchmark.extra_info.update(role="anchor", units=M, label="deque + spin-polling consumer")
    benchmark.pedantic(_deque_spin, args=(M,), rounds=ROUNDS, iterations=1)


@pytest.mark.benchmark(group="handoff-640B")
def test_handoff_mp_queue(benchmark):
    benchmark.extra_info.update(role="anchor", units=M_MP, label="multiprocessing.Queue, Python thread")
    benchmark.pedantic(_mp_queue_thread, args=(M_MP,), rounds=ROUNDS, iterations=1)


# ---- across processes --------------------------------------------------------------


def _ring_producer_process(name: str, m: int, native: bool) -> None:
    ring = Ring.attach(name)
    try:
        if native:
            worker = ffi.new("mc_selftest **")
            assert lib.mc_selftest_producer_start(ring._handle, m, RECORD, 0, 64, 1, worker) == 0
            lib.mc_selftest_join(worker[0], ffi.NULL)  # closes the ring when done
        else:
            write = ring.write_blocking
            for _ in range(m):
                write(PAYLOAD, 0, 30)
            ring.close_writer()
    finally:
        ring.close()


def _mp_queue_producer_process(q, m: int) -> None:
    for _ in range(m):
        q.put(PAYLOAD)
    q.close()
    q.join_thread()


def _ring_cross_process(m: int, native: bool) -> float:
    """ns per record, first record to last, measured in the consumer."""
    ctx = mp.get_context("spawn")
    ring = Ring.create(1 << 20, shared=True, policy="report")
    p = ctx.Process(target=_ring_producer_process, args=(ring.name, m, native))
    p.start()
    got = 0
    t0 = None
    try:
        while True:
            try:
                if not ring.wait(timeout=60):
                    raise RuntimeError("producer process stalled")
            except RingClosed:
                break
            if t0 is None:
                t0 = time.perf_counter_ns()
            with ring.peek(max_records=4096, uniform=True) as batch:
                if len(batch):
                    batch.array()
                    got += len(batch)
        t1 = time.perf_counter_ns()
    finally:
        p.join(timeout=60)
        ring.close()
    assert got == m, (got, m)
    return (t1 - t0) / m


def _mp_queue_cross_process(m: int) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue(1024)
    p = ctx.Process(target=_mp_queue_producer_process, args=(q, m))
    p.start()
    q.get()
    t0 = time.perf_counter_ns()
    for _ in range(m - 1):
        q.get()
    t1 = time.perf_counter_ns()
    p.join(timeout=60)
    return (t1 - t0) / (m - 1)


@pytest.mark.benchmark(group="crossprocess-640B")
def test_cross_process(benchmark):
    m_ring = 200_000 if QUICK else 1_000_000
    m_mp = M_MP

    def run():
        native = _ring_cross_process(m_ring, native=True)
        python = _ring_cross_process(m_ring // 4, native=False)
        anchor = _mp_queue_cross_process(m_mp)
        return native, python, anchor

    native, python, anchor = benchmark.pedantic(run, rounds=1, iterations=1)
    record_comparison("crossprocess-640B", subject="shared ring: native producer in process A -> Python consumer in process B",
                      anchor="multiprocessing.Queue process -> process", subject_ns=native,
                      anchor_ns=anchor, records_per_s=1e9 / native)
    record_comparison("crossprocess-640B-python-producer",
                      subject="shared ring: Python producer (one write per record) -> Python consumer",
                      anchor="multiprocessing.Queue process -> process", subject_ns=python,
                      anchor_ns=anchor, records_per_s=1e9 / python)


# ---- wake-up latency ----------------------------------------------------------------


def _ring_wakeups(n: int, spin: float | str = 0.0) -> tuple[list[int], float]:
    """Latencies (ns) from the native producer's timestamp to the consumer
    holding the record, and the consumer thread's CPU share of the run."""
    ring = Ring.create(1 << 16)
    worker = ffi.new("mc_selftest **")
    assert lib.mc_selftest_producer_start(ring._handle, n, 32, 1_000_000, 1, 0, worker) == 0
    lat = []
    buf = bytearray(64)
    c0, t0 = time.thread_time_ns(), time.monotonic_ns()
    try:
        while True:
            try:
                ring.wait(timeout=5, spin=spin)
            except RingClosed:
                break
            now = time.monotonic_ns()
            k = ring.readinto(buf)
            if k:
                lat.append(now - struct.unpack_from("<Q", buf, 8)[0])
    finally:
        cpu = (time.thread_time_ns() - c0) / (time.monotonic_ns() - t0)
        lib.mc_selftest_join(worker[0], ffi.NULL)
        ring.close()
    return lat[10:], cpu  # skip warm-up (and the paced wait's learning)


def _queue_wakeups(n: int) -> tuple[list[int], float]:
    q: queue.Queue = queue.Queue(1024)

    def produce():
        nxt = time.monotonic_ns()
        for _ in range(n):
            nxt += 1_000_000
            delay = nxt - time.monotonic_ns()
            if delay > 0:
                time.sleep(delay / 1e9)
            q.put(time.monotonic_ns())
        q.put(None)

    t = threading.Thread(target=produce)
    c0, t0 = time.thread_time_ns(), time.monotonic_ns()
    t.start()
    lat = []
    while True:
        ts = q.get()
        now = time.monotonic_ns()
        if ts is None:
            break
        lat.append(now - ts)
    cpu = (time.thread_time_ns() - c0) / (time.monotonic_ns() - t0)
    t.join()
    return lat[10:], cpu


def _median(values: list[float]) -> float:
    v = sorted(values)
    return v[len(v) // 2]


@pytest.mark.benchmark(group="wakeup-1kHz")
def test_wakeup_latency(benchmark):
    """The consumer waits with ``spin="paced"`` (it learns the 1 kHz schedule
    and polls when a record is due); the plain park (futex sleep, woken by the
    producer) and queue.Queue are measured in the same rounds, in turns. Each
    figure is the median over the rounds of that round's percentile."""
    n = 400 if QUICK else 2000
    rounds = 3 if QUICK else 5

    def run():
        out = {"paced": [], "park": [], "queue": []}
        for _ in range(rounds):
            out["paced"].append(_ring_wakeups(n, "paced"))
            out["queue"].append(_queue_wakeups(n))
            out["park"].append(_ring_wakeups(n))
        return out

    res = benchmark.pedantic(run, rounds=1, iterations=1)
    pct = {k: {q: [percentile_ns(lat, q) for lat, _ in v] for q in (50, 99)}
           for k, v in res.items()}
    cpu = {k: _median([c for _, c in v]) for k, v in res.items()}
    for q in (50, 99):
        record_comparison(
            f"wakeup-1kHz-p{q}",
            subject="ring: native producer at 1 kHz -> blocked Python consumer (wait spin='paced')",
            anchor="queue.Queue: Python producer at 1 kHz -> blocked consumer",
            subject_ns=_median(pct["paced"][q]), anchor_ns=_median(pct["queue"][q]),
            samples=len(res["paced"][0][0]), rounds=rounds,
            subject_rounds_ns=pct["paced"][q], anchor_rounds_ns=pct["queue"][q],
            park_ns=_median(pct["park"][q]), park_rounds_ns=pct["park"][q],
            consumer_cpu_share={"paced": round(cpu["paced"], 4), "park": round(cpu["park"], 4),
                                "queue": round(cpu["queue"], 4)})

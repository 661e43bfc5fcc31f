"""Rings: boundaries, wrap-around, policies, statuses, native <-> Python threads,
and two processes over shared memory."""

from __future__ import annotations

import multiprocessing as mp
import struct
import threading
import time

import numpy as np
import pytest

from mediacore import BadSegment, RecordTooLarge, Ring, RingClosed, RingFull
from mediacore.errors import InvalidArgument
# the ring self-test workers (mc_selftest_*) are not in the shipped library: the testing module
# (native/tests/support, built by `make build`) has them and mediacore._native's API
from _mediacore_testing import ffi, lib

HEADER = 24  # selftest record header: u64 seq, u64 ts, u32 checksum, u32 payload length


def checksum32(words: np.ndarray) -> np.ndarray:
    """Reference FNV-1a over little-endian u32 words, vectorised over rows."""
    h = np.full(words.shape[0], 2166136261, dtype=np.uint32)
    for col in range(words.shape[1]):
        h = (h ^ words[:, col]) * np.uint32(16777619)
    return h


def selftest_record(seq: int, length: int) -> bytes:
    payload = bytes((seq + i) & 0xFF for i in range(length - HEADER))
    words = np.frombuffer(payload + b"\0" * (-len(payload) % 4), dtype="<u4")[None, :]
    return struct.pack("<QQII", seq, time.monotonic_ns(), int(checksum32(words)[0]),
                       len(payload)) + payload


def verify_selftest_rows(rows: np.ndarray, first_seq: int) -> int:
    """Check a (n, length) uint8 block of selftest records; returns next seq."""
    n, length = rows.shape
    hdr = rows[:, :HEADER].copy()
    seq = hdr[:, 0:8].copy().view("<u8")[:, 0]
    assert np.array_equal(seq, np.arange(first_seq, first_seq + n, dtype=np.uint64)), \
        "gap, duplicate or reorder"
    assert np.all(hdr[:, 20:24].copy().view("<u4")[:, 0] == length - HEADER)
    payload = rows[:, HEADER:]
    expect = (seq[:, None] + np.arange(length - HEADER, dtype=np.uint64)[None, :]) & 0xFF
    assert np.array_equal(payload, expect.astype(np.uint8)), "payload corrupted"
    words = np.ascontiguousarray(payload).view("<u4")
    assert np.array_equal(checksum32(words), hdr[:, 16:20].copy().view("<u4")[:, 0]), "checksum"
    return first_seq + n


# ---- single thread ------------------------------------------------------------


def test_record_boundaries_and_wrap_around():
    with Ring.create(512, policy="report") as ring:
        assert ring.max_record == 512 // 2 - 8
        rng = np.random.default_rng(1)
        for i in range(5000):  # many wraps at every 8-byte alignment
            n = int(rng.integers(0, ring.max_record + 1))
            data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            assert ring.write(data, type=i & 0xFFFF)
            out = ring.read()
            assert out == data
        assert ring.read() is None
        st = ring.stats()
        assert st.records_written == st.records_read == 5000
        assert st.used_bytes == 0


def test_any_buffer_is_accepted_and_readinto():
    with Ring.create(4096) as ring:
        arr = np.arange(320, dtype=np.int16)
        ring.write(arr)
        ring.write(memoryview(b"abc"))
        ring.write(bytearray(b"defg"))
        out = bytearray(1000)
        n = ring.readinto(out)
        assert np.array_equal(np.frombuffer(out[:n], dtype=np.int16), arr)
        assert ring.read() == b"abc"
        assert ring.read() == b"defg"


def test_full_ring_report_policy_raises_and_counts():
    with Ring.create(256, policy="report") as ring:
        for _ in range(4):
            ring.write(b"x" * 56)  # 64 bytes each with header
        with pytest.raises(RingFull):
            ring.write(b"x" * 56)
        assert ring.stats().records_refused == 1
        assert not ring.wait_writable(56, timeout=0.01)
        ring.read()
        assert ring.wait_writable(56, timeout=0.01)
        assert ring.write(b"y" * 56)


def test_full_ring_drop_policy_drops_newest_and_counts():
    with Ring.create(256, policy="drop") as ring:
        for i in range(4):
            assert ring.write(bytes([i]) * 56)
        assert ring.write(b"new" * 10) is False
        st = ring.stats()
        assert (st.records_dropped, st.bytes_dropped) == (1, 30)
        # the oldest records survive, in order
        assert [ring.read()[0] for _ in range(4)] == [0, 1, 2, 3]


def test_empty_and_oversized():
    with Ring.create(1024) as ring:
        assert ring.read() is None
        assert ring.read(timeout=0.01) is None
        assert not ring.wait(timeout=0.01)
        assert len(ring.read_batch()) == 0
        with ring.peek() as batch:
            assert len(batch) == 0
        with pytest.raises(RecordTooLarge):
            ring.write(b"x" * (ring.max_record + 1))
        assert ring.write(b"x" * ring.max_record)


def test_closed_ring_drains_then_raises():
    with Ring.create(1024) as ring:
        ring.write(b"last")
        ring.close_writer()
        with pytest.raises(RingClosed):
            ring.write(b"more")
        assert ring.read() == b"last"
        with pytest.raises(RingClosed):
            ring.read()
        with pytest.raises(RingClosed):
            ring.wait(timeout=None)


def test_bad_capacity_and_policy():
    with pytest.raises(ValueError):
        Ring.create(1000)
    with pytest.raises(ValueError):
        Ring.create(1024, policy="block-forever")


def test_peek_zero_copy_views_and_numpy_array():
    with Ring.create(1 << 16) as ring:
        frames = [np.full(320, i, dtype=np.int16) for i in range(10)]
        for f in frames:
            ring.write(f)
        batch = ring.peek(uniform=True)
        arr = batch.array(np.int16)
        assert arr.shape == (10, 320)
        assert np.array_equal(arr[:, 0], np.arange(10))
        # zero copy: the view aliases ring memory
        assert not arr.flags.owndata
        assert ring.stats().records_read == 0
        batch.release()
        assert ring.stats().records_read == 10
        batch.release()  # idempotent
        assert ring.stats().records_read == 10


def test_peek_uniform_stops_at_wrap_and_length_change():
    with Ring.create(1024) as ring:
        for i in range(5):  # 5 x 104 bytes: head at 520, so the 5th of the next 6 wraps
            ring.write(bytes([i]) * 96)
        for _ in range(5):
            ring.read()
        for i in range(6):
            ring.write(bytes([i]) * 96)
        ring.write(b"short")
        with ring.peek(uniform=True) as batch:
            first = len(batch)
            assert first == 4  # stopped at the wrap
            rows = batch.array()
            assert list(rows[:, 0]) == list(range(first))
        with ring.peek(uniform=True) as batch:
            assert len(batch) == 6 - first  # stopped before the short record
        assert ring.read() == b"short"


def test_read_batch_copies_many_records_in_one_call():
    with Ring.create(1 << 16) as ring:
        for i in range(100):
            ring.write(i.to_bytes(4, "little") * (i % 7 + 1))
        batch = ring.read_batch(max_records=64)
        assert len(batch) == 64
        got = [bytes(r) for r in batch]
        assert got == [i.to_bytes(4, "little") * (i % 7 + 1) for i in range(64)]
        assert len(ring.read_batch(max_records=64)) == 36


def test_bad_attach_is_a_clear_error():
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        shm.buf[:8] = b"NOTARING"
        with pytest.raises(BadSegment, match="bad magic"):
            Ring.attach(shm.name)
        # a real ring header with a wrong version
        ring = Ring.create(1024, name=shm.name + "x")
        ring._shm.buf[4] = 9
        with pytest.raises(BadSegment, match="version"):
            Ring.attach(ring.name)
        ring._shm.buf[4] = 1
        Ring.attach(ring.name).close()
        ring.close()
    finally:
        shm.close()
        shm.unlink()
    with pytest.raises(FileNotFoundError):
        Ring.attach("mc_no_such_segment_here")


def test_truncated_segment_is_bad_size():
    from multiprocessing import shared_memory

    shm = shared_memory.SharedMemory(create=True, size=256 + 4096)
    try:
        mem = ffi.from_buffer(shm.buf)
        out = ffi.new("mc_ring **")
        assert lib.mc_ring_init(mem, 256 + 4096, 4096, 0, out) == 0
        lib.mc_ring_free(out[0])
        # claim a capacity the segment cannot hold
        shm.buf[8:16] = (1 << 20).to_bytes(8, "little")
        ffi.release(mem)
        with pytest.raises(BadSegment, match="size"):
            Ring.attach(shm.name)
    finally:
        shm.close()
        shm.unlink()


# ---- threads ------------------------------------------------------------------


def test_native_producer_thread_to_python_millions_in_order():
    count = 2_000_000
    ring = Ring.create(1 << 20, policy="report")
    worker = ffi.new("mc_selftest **")
    # block=1: a full ring makes the native producer wait, so nothing may be lost
    assert lib.mc_selftest_producer_start(ring._handle, count, 64, 0, 32, 1, worker) == 0
    seq = 0
    try:
        while True:
            try:
                if not ring.wait(timeout=10):
                    pytest.fail("producer stalled")
            except RingClosed:
                break
            with ring.peek(max_records=4096, uniform=True) as batch:
                if len(batch):
                    seq = verify_selftest_rows(batch.array(), seq)
    finally:
        result = ffi.new("mc_selftest_result *")
        lib.mc_selftest_join(worker[0], result)
    assert seq == count
    assert result.records == count and result.dropped == 0
    st = ring.stats()
    assert st.records_read == count and st.records_refused >= 0
    ring.close()


def test_native_producer_640_byte_frames_checksummed():
    count = 200_000
    with Ring.create(1 << 18, policy="report") as ring:
        worker = ffi.new("mc_selftest **")
        assert lib.mc_selftest_producer_start(ring._handle, count, 640, 0, 16, 1, worker) == 0
        seq = 0
        while True:
            try:
                ring.wait(timeout=10)
            except RingClosed:
                break
            with ring.peek(max_records=1024, uniform=True) as batch:
                if len(batch):
                    seq = verify_selftest_rows(batch.array(), seq)
        lib.mc_selftest_join(worker[0], ffi.NULL)
        assert seq == count


def test_python_producer_to_native_consumer_thread():
    count = 20_000
    with Ring.create(1 << 14, policy="report") as ring:
        worker = ffi.new("mc_selftest **")
        assert lib.mc_selftest_consumer_start(ring._handle, count, 5_000_000_000, worker) == 0
        records = [selftest_record(i, 24 + (i % 200)) for i in range(256)]
        for i in range(count):
            rec = bytearray(records[i % 256])
            # re-sequence: payload depends on seq & 0xff, which matches i % 256
            rec[0:8] = i.to_bytes(8, "little")
            ring.write_blocking(rec, timeout=5)
        result = ffi.new("mc_selftest_result *")
        lib.mc_selftest_join(worker[0], result)
        assert result.records == count
        assert result.errors == 0
        assert result.last_sequence == count - 1


def test_native_consumer_detects_corruption():
    with Ring.create(1 << 12, policy="report") as ring:
        worker = ffi.new("mc_selftest **")
        assert lib.mc_selftest_consumer_start(ring._handle, 3, 2_000_000_000, worker) == 0
        good = selftest_record(0, 100)
        ring.write(good)
        bad = bytearray(selftest_record(1, 100))
        bad[50] ^= 0xFF  # payload no longer matches its checksum
        ring.write(bad)
        ring.write(selftest_record(5, 100))  # gap
        result = ffi.new("mc_selftest_result *")
        lib.mc_selftest_join(worker[0], result)
        assert result.records == 3
        assert result.errors == 2


def test_blocking_wait_releases_the_gil():
    with Ring.create(1024) as ring:
        ticks = 0
        stop = threading.Event()

        def spinner():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1

        t = threading.Thread(target=spinner)
        t.start()
        try:
            assert ring.wait(timeout=0.3) is False
        finally:
            stop.set()
            t.join()
        assert ticks > 10_000  # the other Python thread ran while we waited


def test_no_wake_syscall_when_nobody_waits():
    with Ring.create(1 << 16) as ring:
        for _ in range(1000):
            ring.write(b"x" * 100)
            ring.read()
        assert ring.stats().wake_calls == 0
        # a consumer blocked in another thread is woken: exactly then a wake is made
        got = []
        t = threading.Thread(target=lambda: got.append(ring.wait(timeout=5)))
        t.start()
        time.sleep(0.2)
        ring.write(b"wake up")
        t.join()
        assert got == [True]
        assert ring.stats().wake_calls == 1


def test_blocked_consumer_is_woken_by_native_producer():
    with Ring.create(1 << 12) as ring:
        worker = ffi.new("mc_selftest **")
        # 20 records, one every 5 ms
        assert lib.mc_selftest_producer_start(ring._handle, 20, 32, 5_000_000, 1, 0, worker) == 0
        latencies = []
        got = 0
        while True:
            try:
                ring.wait(timeout=5)
            except RingClosed:
                break
            now = time.monotonic_ns()
            rec = ring.read()
            if rec is None:
                continue
            got += 1
            latencies.append(now - struct.unpack_from("<Q", rec, 8)[0])
        lib.mc_selftest_join(worker[0], ffi.NULL)
        assert got == 20
        # the producer's clock is the same monotonic clock as Python's
        assert all(0 <= lat < 1_000_000_000 for lat in latencies)


def test_paced_wait_polls_for_a_clocked_producer_instead_of_being_woken():
    """spin="paced": once the consumer has the producer's 2 ms schedule it is
    awake when a record is due, so most records need no wake syscall; every
    record still arrives, in order."""
    n = 150
    with Ring.create(1 << 12) as ring:
        worker = ffi.new("mc_selftest **")
        assert lib.mc_selftest_producer_start(ring._handle, n, 32, 2_000_000, 1, 0, worker) == 0
        seqs = []
        try:
            while True:
                ring.wait(timeout=5, spin="paced")
                while (rec := ring.read()) is not None:
                    seqs.append(struct.unpack_from("<Q", rec, 0)[0])
        except RingClosed:
            pass
        lib.mc_selftest_join(worker[0], ffi.NULL)
        assert seqs == list(range(n))
        assert ring.stats().wake_calls < n // 2


def test_paced_wait_times_out_and_rejects_unknown_modes():
    with Ring.create(1 << 12) as ring:
        t0 = time.monotonic()
        assert ring.wait(timeout=0.05, spin="paced") is False
        assert time.monotonic() - t0 >= 0.04
        with pytest.raises(InvalidArgument):
            ring.wait(timeout=0, spin="fast")


# ---- processes ----------------------------------------------------------------


def _consumer_process(name: str, count: int, result_q) -> None:
    ring = Ring.attach(name)
    seq = 0
    try:
        while True:
            try:
                if not ring.wait(timeout=20):
                    break
            except RingClosed:
                break
            with ring.peek(max_records=1024, uniform=True) as batch:
                if len(batch):
                    seq = verify_selftest_rows(batch.array(), seq)
        result_q.put(("ok", seq))
    except AssertionError as e:
        result_q.put(("fail", str(e)))
    finally:
        ring.close()


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_two_processes_over_shared_memory(method):
    count = 300_000
    ctx = mp.get_context(method)
    ring = Ring.create(1 << 18, shared=True, policy="report")
    q = ctx.Queue()
    p = ctx.Process(target=_consumer_process, args=(ring.name, count, q))
    p.start()
    try:
        worker = ffi.new("mc_selftest **")
        assert lib.mc_selftest_producer_start(ring._handle, count, 128, 0, 16, 1, worker) == 0
        lib.mc_selftest_join(worker[0], ffi.NULL)
        status, value = q.get(timeout=60)
        p.join(timeout=30)
    finally:
        if p.is_alive():
            p.kill()
        ring.close()
    assert status == "ok", value
    assert value == count
    assert p.exitcode == 0


def _producer_process(name: str, count: int) -> None:
    ring = Ring.attach(name)
    rec = bytearray(64)
    for i in range(count):
        rec[0:8] = i.to_bytes(8, "little")
        ring.write_blocking(rec, timeout=20)
    ring.close_writer()
    ring.close()


def test_python_producer_in_another_process():
    count = 50_000
    ctx = mp.get_context("spawn")
    with Ring.create(1 << 14, shared=True, policy="report") as ring:
        p = ctx.Process(target=_producer_process, args=(ring.name, count))
        p.start()
        expect = 0
        while True:
            try:
                if not ring.wait(timeout=30):
                    break
            except RingClosed:
                break
            for rec in ring.read_batch(256):
                assert int.from_bytes(rec[:8], "little") == expect
                expect += 1
        p.join(timeout=30)
        assert expect == count
        assert p.exitcode == 0


def test_rewind_starts_over_once_the_consumer_has_caught_up():
    ring = Ring.create(4096)
    with pytest.raises(InvalidArgument):
        ring.set_rewind(4096)
    ring.set_rewind(1024)
    record = bytes(range(200))                 # 208 bytes a record with its header
    offsets = []
    for _ in range(7):
        ring.write(record)
        with ring.peek() as batch:
            offsets.append(int(batch.offsets[0]))
            assert bytes(batch[0]) == record
    # at 0, 208, ... 832; then the head is at 1040 >= 1024 with nothing
    # unread: the next one starts over at 0
    assert offsets == [8, 216, 424, 632, 840, 8, 216]
    assert ring.stats().rewinds == 1
    for _ in range(5):                          # records waiting: no rewind
        ring.write(record)
    with ring.peek() as batch:
        assert [int(o) for o in batch.offsets] == [424, 632, 840, 1048, 1256]
    assert ring.stats().rewinds == 1

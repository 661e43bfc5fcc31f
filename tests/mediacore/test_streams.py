"""FrameQueue: bounded, counted drops, the control lane, end of stream, both
iteration styles."""

from __future__ import annotations

import threading
import time

import pytest

from mediacore.streams import FrameQueue


def test_drop_oldest_keeps_the_newest_and_counts():
    q: FrameQueue[int] = FrameQueue(3)
    oks = [q.put(i) for i in range(5)]
    assert oks == [True, True, True, False, False]
    assert q.dropped == 2 and len(q) == 3
    q.close()
    assert list(q) == [2, 3, 4] and q.delivered == 3


def test_latest_only():
    q: FrameQueue[int] = FrameQueue(10, "latest")
    for i in range(4):
        q.put(i)
    assert q.get(0) == 3 and q.dropped == 3


def test_block_waits_for_the_reader_then_gives_up_counted():
    q: FrameQueue[int] = FrameQueue(1, "block", block_timeout_s=0.2)
    q.put(0)
    threading.Timer(0.05, lambda: q.get(0)).start()
    assert q.put(1)                       # the reader made room in time
    t = time.monotonic()
    assert not q.put(2)                   # nobody reads: dropped after the timeout
    assert time.monotonic() - t >= 0.15 and q.dropped == 1


def test_control_items_are_never_pushed_out_by_frames_and_come_first():
    q: FrameQueue[str] = FrameQueue(2)
    q.put("f0")
    q.put("joined", control=True)
    for i in range(1, 10):
        q.put(f"f{i}")
    q.put("left", control=True)
    q.close()
    assert list(q) == ["joined", "left", "f8", "f9"]
    assert q.dropped == 8 and q.control_dropped == 0


def test_the_control_lane_is_bounded_too():
    q: FrameQueue[int] = FrameQueue(1, max_control=2)
    assert [q.put(i, control=True) for i in range(3)] == [True, True, False]
    assert q.control_dropped == 1 and q.get(0) == 1


def test_end_of_stream():
    q: FrameQueue[int] = FrameQueue(4)
    q.put(1)
    q.close()
    assert not q.put(2)
    assert q.get(0) == 1
    with pytest.raises(EOFError):
        q.get(0)


async def test_async_iteration_wakes_on_items_from_a_thread_and_ends_on_close():
    q: FrameQueue[int] = FrameQueue(100)

    def produce():
        for i in range(5):
            time.sleep(0.01)
            q.put(i)
        q.put(99, control=True)
        q.close()

    threading.Thread(target=produce).start()
    got = [item async for item in q]
    assert sorted(got) == [0, 1, 2, 3, 4, 99]


def test_on_close_is_called_once():
    seen = []
    q: FrameQueue[int] = FrameQueue(1, on_close=seen.append)
    q.close()
    q.close()
    assert seen == [q]

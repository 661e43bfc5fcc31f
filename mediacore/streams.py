"""Bounded queues between the media threads and a consumer.

A :class:`FrameQueue` holds at most ``maxsize`` items; when full it drops
the oldest (``"drop_oldest"``, the default for audio), keeps only the newest
(``"latest"``: video, where only the current picture matters), or makes the
producer wait up to ``block_timeout_s`` (``"block"``, for recorders that must
not lose a frame; past the timeout the item is dropped and counted). Drops
are counted. A consumer reads with :meth:`get` (blocking, from a thread),
plain iteration (blocking) or ``async for`` (from one event loop); after
:meth:`close` the reader gets what is queued, then the end of the stream.
Control items (``put(item, control=True)``: a processor's events) go in a
lane of their own that frames never push out, and are taken before frames
(a join, a leave or the end of the call is not lost to a burst of audio);
that lane is bounded too (``max_control``, its drops counted apart).
Nothing here is unbounded.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
POLICIES = ("drop_oldest", "latest", "block")


class FrameQueue(Generic[T]):
    def __init__(
        self,
        maxsize: int = 100,
        policy: str = "drop_oldest",
        *,
        name: str = "",
        block_timeout_s: float = 1.0,
        on_close: Callable[[FrameQueue[T]], None] | None = None,
        max_control: int = 10_000,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = 1 if policy == "latest" else maxsize
        self.policy = policy
        self.name = name
        self.block_timeout_s = block_timeout_s
        self.dropped = 0
        self.delivered = 0
        self.max_control = max_control
        self.control_dropped = 0
        self._queue: collections.deque[T] = collections.deque()
        self._control: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._on_close = on_close

    # ---- producer side (media threads) ---------------------------------------------------

    def put(self, item: T, *, control: bool = False) -> bool:
        """Queue ``item``; False when it (or an older item) was dropped.
        ``control``: in the control lane (see the module documentation)."""
        ok = True
        with self._cond:
            if self._closed:
                return False
            if control:
                if len(self._control) >= self.max_control:
                    self._control.popleft()
                    self.control_dropped += 1
                    ok = False
                self._control.append(item)
                self._cond.notify_all()
        if control:
            self._wake_loop()
            return ok
        with self._cond:
            if self._closed:
                return False
            if len(self._queue) >= self.maxsize and self.policy == "block":
                self._cond.wait_for(
                    lambda: len(self._queue) < self.maxsize or self._closed, self.block_timeout_s
                )
                if self._closed:
                    return False
            if len(self._queue) >= self.maxsize:
                if self.policy == "block":
                    self.dropped += 1
                    return False
                self._queue.popleft()
                self.dropped += 1
                ok = False
            self._queue.append(item)
            self._cond.notify_all()
        self._wake_loop()
        return ok

    def close(self) -> None:
        """End of stream: the reader gets what is queued, then stops."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._wake_loop()
        if self._on_close is not None:
            self._on_close(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._control) + len(self._queue)

    def _take(self) -> T:
        """The next item, control lane first (the condition held, an item there)."""
        self.delivered += 1
        item = self._control.popleft() if self._control else self._queue.popleft()
        self._cond.notify_all()
        return item

    def _wake_loop(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._wake_async)
        except RuntimeError:  # the loop closed meanwhile: nobody waits any more
            pass

    # ---- consumer side -------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> T | None:
        """The next item; None after ``timeout``; :class:`EOFError` at the end."""
        with self._cond:
            if not self._queue and not self._control and not self._closed:
                self._cond.wait(timeout)
            if self._queue or self._control:
                return self._take()
            if self._closed:
                raise EOFError(f"{self.name or 'stream'} ended")
            return None

    def __iter__(self) -> Iterator[T]:
        while True:
            try:
                item = self.get(1.0)
            except EOFError:
                return
            if item is not None:
                yield item

    def _wake_async(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[T]:
        self._loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._queue or self._control:
                    item = self._take()
                elif self._closed:
                    return
                else:
                    item = None
                    self._waiter = self._loop.create_future()
            if item is None:
                assert self._waiter is not None
                await self._waiter
                continue
            yield item

    def __enter__(self) -> FrameQueue[T]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

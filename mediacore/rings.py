"""Python side of the native SPSC rings.

A :class:`Ring` is either private to this process (native memory), or lives in
a named shared-memory segment that another process attaches to by name. One
thread writes and one thread reads; the layout is documented in
``native/include/mediacore.h`` so that any process or language can attach.

Reading comes in three weights:

* :meth:`Ring.read` / :meth:`Ring.readinto`: one record, copied;
* :meth:`Ring.read_batch`: many records copied into a reusable buffer with one
  native call;
* :meth:`Ring.peek`: zero-copy views of records still in the ring, valid until
  :meth:`RecordBatch.release` (or the ``with`` block ends).

Blocking waits happen inside native code with the GIL released.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ._native import ffi, lib
from .errors import InvalidArgument, MediacoreError, RingFull, check

try:  # Python < 3.13 registers attached segments with the resource tracker
    from multiprocessing import resource_tracker as _resource_tracker
except ImportError:  # pragma: no cover
    _resource_tracker = None  # type: ignore[assignment]
from multiprocessing import shared_memory

POLICIES = {"drop": lib.MC_RING_DROP_NEWEST, "report": 0}
_HEADER = lib.MC_RING_HEADER_SIZE
_DEFAULT_BATCH = 256


def _timeout_ns(timeout: float | None) -> int:
    if timeout is None:
        return -1
    if timeout < 0:
        raise InvalidArgument("timeout must be >= 0 or None")
    return int(timeout * 1e9)


@dataclass(frozen=True)
class RingStats:
    capacity: int
    used_bytes: int
    records_written: int
    records_read: int
    records_dropped: int
    bytes_dropped: int
    records_refused: int
    wake_calls: int
    rewinds: int
    max_record: int
    policy: str
    closed: bool


class RecordBatch:
    """Records located by :meth:`Ring.peek` or copied by :meth:`Ring.read_batch`.

    Indexing gives a ``memoryview`` of one record. For a peeked batch the views
    point into the ring and become invalid after :meth:`release`.
    """

    __slots__ = ("_ring", "_base", "offsets", "lengths", "types", "_zero_copy", "_released", "_uniform")

    def __init__(
        self,
        ring: Ring | None,
        base: np.ndarray,
        offsets: np.ndarray,
        lengths: np.ndarray,
        types: np.ndarray,
        zero_copy: bool,
        uniform: bool = False,
    ) -> None:
        self._ring = ring
        self._base = base
        self.offsets = offsets
        self.lengths = lengths
        self.types = types
        self._zero_copy = zero_copy
        self._released = False
        self._uniform = uniform

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> memoryview:
        o = int(self.offsets[i])
        return self._base[o : o + int(self.lengths[i])].data

    def __iter__(self) -> Iterator[memoryview]:
        base = self._base.data
        for o, n in zip(self.offsets.tolist(), self.lengths.tolist()):
            yield base[o : o + n]

    def array(self, dtype: np.dtype | type = np.uint8) -> np.ndarray:
        """All records as one 2-D numpy view (n, length), without copying.

        Needs records of one length at a fixed stride, which is what a ring of
        fixed-size frames holds between two wrap-arounds (peek with
        ``uniform=True`` guarantees it).
        """
        n = len(self.offsets)
        dtype = np.dtype(dtype)
        if n == 0:
            return np.empty((0, 0), dtype=dtype)
        length = int(self.lengths[0])
        stride = int(self.offsets[1] - self.offsets[0]) if n > 1 else (length + 15) & ~7
        if (
            n > 1
            and not self._uniform
            and (np.any(self.lengths != length) or np.any(np.diff(self.offsets) != stride))
        ):
            raise ValueError("records differ in length or stride; peek(uniform=True) first")
        if length % dtype.itemsize or stride % dtype.itemsize:
            raise ValueError(f"record length {length} is not a multiple of {dtype}")
        view = np.ndarray(
            shape=(n, length // dtype.itemsize),
            dtype=dtype,
            buffer=self._base,
            offset=int(self.offsets[0]),
            strides=(stride, dtype.itemsize),
        )
        if self._zero_copy:
            view.flags.writeable = False
        return view

    def release(self) -> None:
        """Give the records back to the producer (peeked batches only)."""
        if self._zero_copy and not self._released and self._ring is not None:
            self._released = True
            self._ring._release(len(self.offsets))

    def __enter__(self) -> RecordBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Ring:
    """A single-producer / single-consumer ring of variable-length records.

    Create with :meth:`create` (private or named shared memory) or
    :meth:`attach` (by name, from any process). ``policy="drop"`` drops new
    records when full and counts them (real-time media); ``policy="report"``
    makes :meth:`write` raise :class:`RingFull` (control data: the caller
    waits with :meth:`wait_writable` and retries).
    """

    def __init__(
        self,
        handle,
        *,
        name: str | None = None,
        shm=None,
        mem=None,
        owner: bool = False,
        native_owned: bool = False,
    ) -> None:
        self._handle = handle
        self._name = name
        self._shm = shm
        self._mem = mem
        self._owner = owner
        self._native_owned = native_owned
        st = self._raw_stats()
        self._capacity = st.capacity
        self._max_record = st.max_record
        self._policy = "drop" if st.flags & lib.MC_RING_DROP_NEWEST else "report"
        data = lib.mc_ring_data(handle)
        self._data = np.frombuffer(ffi.buffer(data, self._capacity), dtype=np.uint8)
        self._batch_cap = 0
        self._alloc_batch(_DEFAULT_BATCH)
        self._copy_buf: np.ndarray | None = None
        self._lens1 = ffi.new("uint32_t *")
        self._type1 = ffi.new("uint32_t *")
        self._count = ffi.new("uint32_t *")

    # ---- construction ----------------------------------------------------

    @classmethod
    def create(
        cls, capacity: int, *, name: str | None = None, policy: str = "drop", shared: bool | None = None
    ) -> Ring:
        """A new ring of ``capacity`` data bytes (a power of two).

        With ``name`` (or ``shared=True``, which picks a random name) the ring
        lives in a shared-memory segment that other processes can
        :meth:`attach` to; the creator unlinks it on :meth:`close`.
        """
        if policy not in POLICIES:
            raise InvalidArgument(f"policy must be one of {sorted(POLICIES)}, not {policy!r}")
        if capacity < 64 or capacity & (capacity - 1):
            raise InvalidArgument(f"capacity must be a power of two >= 64, not {capacity}")
        flags = POLICIES[policy]
        if shared is None:
            shared = name is not None
        if not shared:
            out = ffi.new("mc_ring **")
            check(lib.mc_ring_new(capacity, flags, out), "create ring")
            return cls(out[0], owner=True)
        if name is None:
            name = "mc_" + secrets.token_hex(8)
        size = int(lib.mc_ring_memory_size(capacity))
        shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        mem = ffi.from_buffer(shm.buf)
        out = ffi.new("mc_ring **")
        status = lib.mc_ring_init(mem, size, capacity, flags | lib.MC_RING_SHARED, out)
        if status < 0:
            ffi.release(mem)
            shm.close()
            shm.unlink()
            check(status, f"create shared ring {name!r}")
        return cls(out[0], name=name, shm=shm, mem=mem, owner=True)

    @classmethod
    def attach(cls, name: str) -> Ring:
        """Attach to a shared ring created elsewhere; :class:`BadSegment` if the
        segment is not a ring this version understands."""
        shm = _open_untracked(name)
        buf = shm.buf
        assert buf is not None  # just opened
        mem = ffi.from_buffer(buf)
        out = ffi.new("mc_ring **")
        status = lib.mc_ring_attach(mem, len(buf), out)
        if status < 0:
            ffi.release(mem)
            shm.close()
            check(status, f"attach ring {name!r}")
        return cls(out[0], name=name, shm=shm, mem=mem, owner=False)

    @classmethod
    def _from_native(cls, handle) -> Ring:
        """Wrap a ring owned by a native object (engine, socket); never freed here."""
        return cls(handle, native_owned=True)

    # ---- properties ------------------------------------------------------

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def max_record(self) -> int:
        return self._max_record

    @property
    def policy(self) -> str:
        return self._policy

    @property
    def closed(self) -> bool:
        return self._handle is None

    def _h(self):
        if self._handle is None:
            raise MediacoreError("ring handle is closed")
        return self._handle

    # ---- producer side ---------------------------------------------------

    def write(self, data, type: int = 0) -> bool:
        """Copy one record in (bytes, bytearray, memoryview, numpy array...).

        Returns True if written, False if dropped by the drop policy (counted).
        Raises :class:`RingFull` under the report policy,
        :class:`RecordTooLarge`, or :class:`RingClosed`.
        """
        buf = ffi.from_buffer(data)
        status = lib.mc_ring_write(self._h(), type, buf, len(buf))
        if status == 0:
            return True
        if status == lib.MC_DROPPED:
            return False
        check(status, "ring write")
        return False  # pragma: no cover

    def write_batch(self, records: Sequence, type: int = 0) -> int:
        """Write several records with one publication; returns how many were
        accepted. Under the report policy, a partial write returns the count
        and leaves the rest to the caller."""
        if not records:
            return 0
        lengths = np.fromiter(
            (len(memoryview(r).cast("B")) for r in records), dtype=np.uint32, count=len(records)
        )
        blob = b"".join(memoryview(r).cast("B") for r in records)
        written = ffi.new("uint32_t *")
        status = lib.mc_ring_write_batch(
            self._h(),
            type,
            ffi.from_buffer(blob),
            ffi.from_buffer("uint32_t[]", lengths),
            len(records),
            written,
        )
        if status < 0 and status != lib.MC_E_FULL:
            check(status, "ring write_batch")
        return int(written[0])

    def wait_writable(self, size: int, timeout: float | None = None) -> bool:
        """Block (GIL released) until ``size`` bytes fit; False on timeout."""
        status = lib.mc_ring_wait_writable(self._h(), size, _timeout_ns(timeout))
        if status == lib.MC_E_TIMEOUT:
            return False
        check(status, "ring wait_writable")
        return True

    def write_blocking(self, data, type: int = 0, timeout: float | None = None) -> bool:
        """Write, waiting for space under the report policy (control data).
        Returns like :meth:`write`; raises :class:`RingFull` on timeout."""
        size = len(ffi.from_buffer(data))
        while True:
            try:
                return self.write(data, type)
            except RingFull:
                if not self.wait_writable(size, timeout):
                    raise

    def close_writer(self) -> None:
        """Producer: mark the ring closed; the consumer drains it, then gets
        :class:`RingClosed`."""
        check(lib.mc_ring_close(self._h()), "ring close")

    # ---- consumer side ---------------------------------------------------

    def wait(self, timeout: float | None = None, spin: float | str = 0.0) -> bool:
        """Block until a record is available. True if one is, False on timeout;
        raises :class:`RingClosed` when closed and drained. ``spin`` seconds of
        polling before sleeping (default none), or ``"paced"``: for a producer
        on a clock (a tick, a paced sender), learn its schedule from the
        arrivals and be awake, polling, when its next record is due, so the
        record is seen within a microsecond or so instead of after a wake-up
        (tens of microseconds at the tail on a loaded machine). The polling
        costs at most a quarter of the period (250 µs at most), a few
        percent of a core at 1 kHz in practice, and nothing while arrivals
        follow no steady pace (see ``mc_ring_wait`` in mediacore.h)."""
        if spin == "paced":
            spin_ns = lib.MC_RING_SPIN_PACED
        elif isinstance(spin, str):
            raise InvalidArgument(f"spin must be seconds or 'paced', not {spin!r}")
        else:
            spin_ns = int(spin * 1e9) if spin > 0 else 0
        status = lib.mc_ring_wait(self._h(), _timeout_ns(timeout), spin_ns)
        if status == 0:
            return True
        if status == lib.MC_E_TIMEOUT:
            return False
        check(status, "ring wait")
        return False  # pragma: no cover

    def read(self, timeout: float | None = 0.0) -> bytes | None:
        """One record as bytes, or None if none arrived within ``timeout``
        (0: don't wait; None: wait forever)."""
        buf = self._ensure_copy_buf(self._max_record)
        n = self.readinto(buf, timeout)
        return None if n is None else buf[:n].tobytes()

    def readinto(self, buffer, timeout: float | None = 0.0) -> int | None:
        """Copy the next record into ``buffer``; returns its length or None."""
        h = self._h()
        out = ffi.from_buffer(buffer, require_writable=True)
        while True:
            status = lib.mc_ring_read(h, out, len(out), self._lens1, self._type1)
            if status == 0:
                return int(self._lens1[0])
            if status == lib.MC_E_EMPTY:
                if timeout == 0 or not self.wait(timeout):
                    return None
                continue
            check(status, "ring read")

    def read_batch(self, max_records: int = _DEFAULT_BATCH, timeout: float | None = 0.0) -> RecordBatch:
        """Copy up to ``max_records`` records with one native call. The batch's
        views point into a buffer reused by the next ``read_batch``."""
        h = self._h()
        self._alloc_batch(max_records)
        buf = self._ensure_copy_buf(self._capacity)
        cbuf = ffi.from_buffer(buf)
        while True:
            status = lib.mc_ring_read_batch(
                h, cbuf, len(buf), self._c_offsets, self._c_lengths, self._c_types, max_records, self._count
            )
            if status == 0:
                n = int(self._count[0])
                return RecordBatch(
                    None, buf, self._offsets[:n], self._lengths[:n], self._types[:n], zero_copy=False
                )
            if status == lib.MC_E_EMPTY:
                if timeout == 0 or not self.wait(timeout):
                    return RecordBatch(
                        None, buf, self._offsets[:0], self._lengths[:0], self._types[:0], zero_copy=False
                    )
                continue
            check(status, "ring read_batch")

    def peek(
        self, max_records: int = _DEFAULT_BATCH, timeout: float | None = 0.0, uniform: bool = False
    ) -> RecordBatch:
        """Zero-copy: up to ``max_records`` records still in the ring. Release
        the batch (or use ``with``) to consume them. With ``uniform=True`` the
        batch stops before the first record of another length or at a
        wrap-around, so :meth:`RecordBatch.array` can view it as one array."""
        h = self._h()
        self._alloc_batch(max_records)
        while True:
            status = lib.mc_ring_peek(
                h, self._c_offsets, self._c_lengths, self._c_types, max_records, self._count
            )
            if status == 0:
                n = int(self._count[0])
                offsets, lengths = self._offsets[:n], self._lengths[:n]
                if uniform and n > 1:
                    n = _uniform_prefix(offsets, lengths)
                    offsets, lengths = offsets[:n], lengths[:n]
                return RecordBatch(
                    self, self._data, offsets, lengths, self._types[:n], zero_copy=True, uniform=uniform
                )
            if status == lib.MC_E_EMPTY:
                if timeout == 0 or not self.wait(timeout):
                    return RecordBatch(
                        self,
                        self._data,
                        self._offsets[:0],
                        self._lengths[:0],
                        self._types[:0],
                        zero_copy=True,
                    )
                continue
            check(status, "ring peek")

    def set_rewind(self, room: int) -> None:
        """Producer side, before producing: once the head is ``room`` bytes or
        more into the ring and the consumer has taken every record, the next
        record starts at the beginning again, so a consumer that keeps up
        reads the same cache-warm memory over and over instead of a window
        walking the whole ring. Right after such a rewind the ring takes at
        most the bytes before that point (>= ``room``) until the consumer has
        caught up: choose ``room`` above the largest burst expected between
        two consumer turns. 0 turns it off."""
        if not 0 <= room < self._capacity:
            raise InvalidArgument(f"room must be in [0, {self._capacity}), not {room}")
        check(lib.mc_ring_set_rewind(self._h(), room), "ring set_rewind")

    def _release(self, count: int) -> None:
        check(lib.mc_ring_release(self._h(), count), "ring release")

    # ---- both ------------------------------------------------------------

    def _raw_stats(self):
        st = ffi.new("mc_ring_stats *")
        check(lib.mc_ring_get_stats(self._h(), st), "ring stats")
        return st

    def stats(self) -> RingStats:
        st = self._raw_stats()
        return RingStats(
            capacity=st.capacity,
            used_bytes=st.used_bytes,
            records_written=st.records_written,
            records_read=st.records_read,
            records_dropped=st.records_dropped,
            bytes_dropped=st.bytes_dropped,
            records_refused=st.records_refused,
            wake_calls=st.wake_calls,
            rewinds=st.rewinds,
            max_record=st.max_record,
            policy=self._policy,
            closed=bool(st.closed),
        )

    def close(self) -> None:
        """Free this handle (both sides must have stopped). The creator of a
        shared ring also unlinks the segment."""
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        self._data = None  # type: ignore[assignment]
        if not self._native_owned:
            lib.mc_ring_free(handle)
        if self._mem is not None:
            ffi.release(self._mem)
            self._mem = None
        if self._shm is not None:
            self._shm.close()
            if self._owner:
                try:
                    self._shm.unlink()
                except FileNotFoundError:
                    pass
            self._shm = None

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        where = f"shared {self._name!r}" if self._name else "private"
        return f"<Ring {where} capacity={self._capacity} policy={self._policy}>"

    # ---- internals -------------------------------------------------------

    def _alloc_batch(self, n: int) -> None:
        if n <= self._batch_cap:
            return
        if n > 1 << 20:
            raise InvalidArgument("max_records too large")
        self._batch_cap = n
        self._offsets = np.zeros(n, dtype=np.uint32)
        self._lengths = np.zeros(n, dtype=np.uint32)
        self._types = np.zeros(n, dtype=np.uint32)
        self._c_offsets = ffi.from_buffer("uint32_t[]", self._offsets)
        self._c_lengths = ffi.from_buffer("uint32_t[]", self._lengths)
        self._c_types = ffi.from_buffer("uint32_t[]", self._types)

    def _ensure_copy_buf(self, size: int) -> np.ndarray:
        if self._copy_buf is None or len(self._copy_buf) < size:
            # 64-byte aligned, with a deliberate offset against 4K aliasing
            raw = np.empty(size + 128, dtype=np.uint8)
            start = (-raw.ctypes.data) % 64 + 64
            self._copy_buf = raw[start : start + size]
        return self._copy_buf


def _open_untracked(name: str) -> shared_memory.SharedMemory:
    """Open an existing segment without registering it with the resource
    tracker: only the creator may unlink it (bpo-38119). Before Python 3.13
    SharedMemory registers every attach, and a spawned child shares its
    parent's tracker, so unregistering afterwards would drop the creator's
    registration; we suppress the registration instead."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    if _resource_tracker is None or os.name != "posix":
        return shared_memory.SharedMemory(name=name)
    register = _resource_tracker.register
    _resource_tracker.register = lambda *args, **kwargs: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        _resource_tracker.register = register


def _uniform_prefix(offsets: np.ndarray, lengths: np.ndarray) -> int:
    """Length of the leading run of records with the first one's length and a
    constant stride (stops at a wrap-around)."""
    n = len(offsets)
    length = int(lengths[0])
    stride = (length + 8 + 7) & ~7
    # fast path: first and last agree with a constant stride and every length matches
    if int(offsets[n - 1]) - int(offsets[0]) == stride * (n - 1) and lengths.min() == lengths.max():
        return n
    bad = np.flatnonzero((lengths[1:] != length) | (np.diff(offsets.astype(np.int64)) != stride))
    return int(bad[0]) + 1 if len(bad) else n

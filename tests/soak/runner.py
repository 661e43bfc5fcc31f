"""The soak: calls set up and torn down continuously while the process's
resources are sampled every second, to show that they stay flat.

Two levels, run together or one at a time (``levels``):

* ``media`` — the media API on its own (docs/media-api.md): a
  :class:`~mediacore.MediaHost` with a :class:`~mediacore.CallMedia` per call;
  a remote engine (one :class:`~mediacore.engine.Engine`, a session per call,
  as the Teams media side) keyed from the call's document
  (``MediaConfig.from_blob(media.config_blob())``: it protects with
  ``srtp.receive_key_bytes``, unprotects with ``srtp.key_bytes`` and sends to
  the document's endpoint) sends every participant's Opus audio and, in some
  calls, a camera's H.264; the call runs processors in the three modes (an
  inline counter in every call, a thread one in some, a worker process in a
  few), opens iterators and abandons them (audio, mixed, events, video), sends
  audio and DTMF back, loses a participant midway, and is torn down from
  either end first.
* ``bot`` — the whole bot: the emulator as its own process
  (tests/soak/emulator_host.py: Graph and the conference of ``mediabot
  emulator``) rings a :class:`~bot.app.Bot` with
  :class:`~bot.media.CallMediaProvider` through incoming-call notifications,
  each call into a meeting of its own; the bot answers with its media
  document, the conference sends the meeting's audio and video to it (a
  processor in a thread subscribes to the camera in some calls), and the call
  is hung up by the bot (DELETE) or by the remote (the emulator's control
  API). Only the bot is in this process, so what is sampled is the bot's.

Each level keeps ``calls`` calls going: a call lives a random 1-5 s, ends, and
another starts in its slot. Every second a sample records RSS
(``/proc/self/status``), open file descriptors (``/proc/self/fd``), threads
(``threading.active_count()`` and ``/proc/self/task``), shared-memory
segments (the rings mediacore names ``mc_*``/``mcproc-*``: those this process
created that still exist in ``/dev/shm``, and those it has mapped), child
processes, and the calls started/ended/failed. The report gives each series'
least-squares slope per minute after the warm-up and checks it against
:data:`THRESHOLDS` (docs/soak.md).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import logging
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mediacore import MediaConfig, MediaHost, Processor, Source
from mediacore.rings import Ring

log = logging.getLogger("soak")

REPO = Path(__file__).resolve().parents[2]
MEETING_SCRIPT = Path(__file__).with_name("meeting.toml")
#: the names mediacore gives shared rings (mediacore/rings.py, mediacore/processor.py)
SHM_PREFIXES = ("mc_", "mcproc-")

#: Pass/fail (docs/soak.md). Slopes are least squares over the samples after the
#: warm-up, per minute; "after" is once every call has ended, the churn stopped
#: and the process settled, compared with the baseline taken before the first call.
THRESHOLDS = {
    #: RSS may not grow by more than this per minute of churn
    "rss_mib_per_min": 1.0,
    #: the C heap in use (glibc's count: what is allocated and not freed) after
    #: the run: the baseline plus what stays allocated once (codec tables, caches)
    "heap_used_after_mib": 16,
    #: open fds after the run: the baseline plus the bot level's kept-alive HTTP
    #: connections (msal's and Graph's to the emulator: a few each)
    "fds_after": 8,
    #: threads after the run: the baseline plus the idle workers of the event
    #: loop's default executor (``CallMedia.aclose`` runs there; the pool keeps
    #: at most min(32, cores + 4) threads and reuses them)
    "threads_after": min(32, (os.cpu_count() or 1) + 4),
    #: shared-memory segments this process created still in /dev/shm, and
    #: segments it still has mapped, after the run
    "shm_after": 0,
    #: child processes after the run (processor worker processes are joined;
    #: multiprocessing's resource tracker is started before the baseline)
    "children_after": 0,
}


# ---- what is sampled ---------------------------------------------------------------------------


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                "usmblks", "fsmblks", "uordblks", "fordblks",
                                                "keepcost")]


def _mallinfo2() -> Any:
    try:
        fn = ctypes.CDLL(None).mallinfo2      # glibc >= 2.33
    except (AttributeError, OSError):
        return None
    fn.restype = _Mallinfo2
    return fn


_MALLINFO2 = _mallinfo2()


def heap_kib() -> tuple[int, int] | None:
    """glibc's own account of the C heap (every arena, read-only): (bytes in use,
    bytes free inside the arenas) in KiB. RSS that grows while "in use" stays
    flat is memory freed but kept by the allocator (arenas, fragmentation), not
    a leak; growing "in use" is something kept (docs/soak.md)."""
    if _MALLINFO2 is None:
        return None
    mi = _MALLINFO2()
    return (mi.uordblks + mi.hblkhd) // 1024, mi.fordblks // 1024


def anon_huge_kib() -> int | None:
    """Transparent huge pages in the RSS (/proc/self/smaps_rollup): large rings ask
    for them (native/src/compat.c, ``mc_large_alloc``; docs/soak.md, "Findings")."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) - 1      # less listdir's own descriptor


def fd_kinds() -> dict[str, int]:
    """Open descriptors by what they are (socket, pipe, anon_inode:..., a file's directory)."""
    out: dict[str, int] = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        kind = target.split(":")[0] if ":" in target and not target.startswith("/") else \
            (target.split(":[")[0] if target.startswith("anon_inode") else os.path.dirname(target))
        out[kind] = out.get(kind, 0) + 1
    return out


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def child_pids() -> set[int]:
    """Children of every thread of this process (joined or not; zombies too)."""
    out: set[int] = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                out.update(int(p) for p in f.read().split())
        except OSError:
            pass
    return out


def shm_mapped() -> set[str]:
    """Segments with mediacore's ring names this process has mapped (unlinked ones too)."""
    out = set()
    with open("/proc/self/maps") as f:
        for line in f:
            i = line.find("/dev/shm/")
            if i >= 0:
                name = line[i + 9:].strip().removesuffix(" (deleted)")
                if name.startswith(SHM_PREFIXES):
                    out.add(name)
    return out


class ShmTracker:
    """Records the name of every shared ring this process creates
    (``Ring.create`` is wrapped: it returns what it returned before) and tells
    which of them still exist in /dev/shm. Other processes on the machine
    create rings with the same prefixes: only this process's are counted."""

    def __init__(self) -> None:
        self.created = 0
        self._alive: set[str] = set()
        self._lock = threading.Lock()
        self._orig = None

    def install(self) -> None:
        orig = Ring.__dict__["create"]
        self._orig = orig
        tracker = self

        def create(cls, *args: Any, **kwargs: Any) -> Ring:
            ring = orig.__func__(cls, *args, **kwargs)
            if ring.name:
                with tracker._lock:
                    tracker.created += 1
                    tracker._alive.add(ring.name)
            return ring

        Ring.create = classmethod(create)   # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._orig is not None:
            Ring.create = self._orig        # type: ignore[method-assign]
            self._orig = None

    def alive(self) -> list[str]:
        with self._lock:
            names = list(self._alive)
        gone = {n for n in names if not os.path.exists(f"/dev/shm/{n}")}
        with self._lock:
            self._alive -= gone
            return sorted(self._alive)


@dataclass
class Counts:
    """Calls of one level."""

    started: int = 0
    ended: int = 0
    failed: int = 0
    #: calls that lived 2 s or more and whose counting processor saw no audio frame
    silent: int = 0
    by: dict[str, int] = field(default_factory=dict)     # who ended them
    failures: list[str] = field(default_factory=list)     # the first few, with why
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> None:
        with self.lock:
            self.started += 1

    def end(self, by: str, silent: bool = False) -> None:
        with self.lock:
            self.ended += 1
            self.by[by] = self.by.get(by, 0) + 1
            self.silent += silent

    def fail(self, why: str) -> None:
        with self.lock:
            self.failed += 1
            if len(self.failures) < 20:
                self.failures.append(why)
        log.error("soak: call failed: %s", why)

    @property
    def active(self) -> int:
        return self.started - self.ended - self.failed

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"started": self.started, "ended": self.ended, "failed": self.failed,
                    "silent": self.silent, "ended_by": dict(self.by),
                    "failures": list(self.failures)}


class Sampler:
    """Every ``interval_s``: the process's resources and the calls of each level."""

    def __init__(self, shm: ShmTracker, counts: dict[str, Counts], interval_s: float = 1.0,
                 extra: dict[str, Any] | None = None) -> None:
        self.shm = shm
        self.counts = counts
        self.interval_s = interval_s
        self.samples: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.extra = extra if extra is not None else {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="soak-sampler")

    def sample(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "t": round(time.monotonic() - self.t0, 3),
            "rss_kib": rss_kib(), "fds": open_fds(), "threads": threading.active_count(),
            "os_threads": os_threads(), "shm": len(self.shm.alive()),
            "shm_mapped": len(shm_mapped()), "children": len(child_pids()),
        }
        heap = heap_kib()
        if heap is not None:
            s["heap_used_kib"], s["heap_free_kib"] = heap
        huge = anon_huge_kib()
        if huge is not None:
            s["anon_huge_kib"] = huge
        for level, c in self.counts.items():
            s[f"{level}_started"], s[f"{level}_ended"] = c.started, c.ended
            s[f"{level}_failed"], s[f"{level}_active"] = c.failed, c.active
        pid = self.extra.get("emulator_pid")
        if pid:
            try:
                with open(f"/proc/{pid}/status") as f:
                    s["emulator_rss_kib"] = next(int(x.split()[1]) for x in f
                                                 if x.startswith("VmRSS:"))
            except (OSError, StopIteration):
                pass
        return s

    def start(self) -> Sampler:
        self.samples.append(self.sample())
        self._thread.start()
        return self

    def _run(self) -> None:
        nxt = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, nxt - time.monotonic())):
            self.samples.append(self.sample())
            nxt += self.interval_s

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def slope_per_min(ts: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ``ys`` over ``ts`` (seconds), per minute."""
    if len(ts) < 3:
        return None
    t = np.asarray(ts, float)
    y = np.asarray(ys, float)
    t = t - t.mean()
    den = float((t * t).sum())
    if den == 0:
        return None
    return float((t * (y - y.mean())).sum() / den * 60.0)


# ---- media: pre-encoded payloads the remotes replay -----------------------------------------------


def opus_clip(frequency_hz: float, frames: int = 50) -> list[bytes]:
    """One second of a tone as 20 ms Opus payloads (48 kHz RTP clock)."""
    from mediacore.audio.codecs import AudioEncoder, Codec

    enc = AudioEncoder(Codec.OPUS)
    t = np.arange(320 * frames)
    pcm = (5000 * np.sin(2 * np.pi * frequency_hz * t / 16000)).astype(np.int16)
    return [bytes(enc.encode(pcm[i * 320:(i + 1) * 320])) for i in range(frames)]


def h264_clip(frames: int = 20, size: tuple[int, int] = (320, 180), fps: int = 10
              ) -> list[bytes]:
    """``frames`` access units of a moving picture, a key frame every second
    (the first is one): replayed in a loop from the first, every call's video
    starts decodable."""
    from mediacore.video.codecs import H264Encoder, VideoLayer

    enc = H264Encoder(VideoLayer(size[0], size[1], fps), key_frame_interval_s=1.0)
    out: list[bytes] = []
    img = np.zeros((size[1], size[0], 3), np.uint8)
    t = 0
    for i in range(frames * 3):
        img[:] = 40
        x = (i * 7) % (size[0] - 40)
        img[60:120, x:x + 40] = (200, 80, 30)
        for au in enc.encode(img, now_ns=t):
            out.append(bytes(au.data))
        t += 1_000_000_000 // fps
        if len(out) >= frames:
            break
    return out


class RemoteCall:
    """The remote side of one call: a session of the remote engine and its streams."""

    def __init__(self, remote: Remote, doc: MediaConfig) -> None:
        self.remote = remote
        self.session = remote.engine.add_session(
            (doc.endpoint.address, doc.endpoint.port), srtp_profile=doc.srtp.profile,
            tx_key=doc.srtp.receive_key_bytes, rx_key=doc.srtp.key_bytes)
        self.audio: list[tuple[Any, list[bytes]]] = []
        self.video: list[Any] = []
        self.tick = 0
        self.app_packets = 0

    def add_audio(self, source_id: int, clip: list[bytes]) -> None:
        self.audio.append((self.session.add_send_stream(source_id, 111, "audio", 48000), clip))

    def add_video(self, source_id: int) -> None:
        from mediacore.video.sockets import VideoSendSocket

        self.video.append(VideoSendSocket(self.session, source_id, payload_type=96))

    def send_tick(self, video_aus: list[bytes]) -> None:
        i = self.tick
        self.tick += 1
        for stream, clip in self.audio:
            stream.send(clip[i % len(clip)], i * 960, wake=False)
        if self.video and i % 5 == 0:          # 10 frames a second
            k = i // 5
            au = video_aus[k % len(video_aus)]
            for v in self.video:
                v.send_encoded(au, k * 9000)
        if i % 10 == 0:                        # APP subscriptions, PLIs: read, counted
            self.app_packets += sum(1 for e in self.session.events() if e.kind == "app")


class Remote:
    """The remote media endpoint of every media-level call: one engine (one
    UDP port, like a Teams media processor), a session per call, one pacing
    thread sending each call's audio every 20 ms and video at 10 frames/s."""

    def __init__(self) -> None:
        from mediacore.engine import Engine

        self.clips = [opus_clip(f) for f in (330.0, 440.0, 550.0, 660.0)]
        self.video_aus = h264_clip()
        self.engine = Engine("127.0.0.1")
        self.engine.start()
        self._calls: dict[int, RemoteCall] = {}
        self._ids = iter(range(1, 1 << 62))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="soak-remote")
        self._thread.start()

    def open(self, doc: MediaConfig) -> RemoteCall:
        return RemoteCall(self, doc)

    def start(self, rc: RemoteCall) -> int:
        with self._lock:
            key = next(self._ids)
            self._calls[key] = rc
        return key

    def end(self, key: int, rc: RemoteCall) -> None:
        with self._lock:              # not between a tick's sends: the session closes after
            self._calls.pop(key, None)
        for v in rc.video:
            v.close()
        rc.session.close()

    def _run(self) -> None:
        nxt = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                for rc in self._calls.values():
                    try:
                        rc.send_tick(self.video_aus)
                    except Exception:
                        log.exception("soak remote: a call's tick failed")
            self.engine.wake()
            nxt += 0.02
            delay = nxt - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                nxt = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            calls = list(self._calls.items())
        for key, rc in calls:
            self.end(key, rc)
        self.engine.close()


# ---- processors (module level: a worker process unpickles them by name) ---------------------------


class FrameCounter(Processor):
    """Counts audio frames and events; the result says whether media flowed."""

    audio = "unmixed"

    def __init__(self, mode: str = "inline", video: tuple[int, int] | None = None) -> None:
        self.mode = mode
        self.video = video

    def on_start(self, ctx: Any) -> None:
        self.frames = 0
        self.video_frames = 0
        self.events = 0

    def on_audio_batch(self, batch: Any) -> None:
        self.frames += len(batch)

    def on_video(self, frame: Any) -> None:
        self.video_frames += 1

    def on_event(self, event: Any) -> None:
        self.events += 1

    def on_stop(self) -> dict[str, int]:
        return {"frames": self.frames, "video_frames": self.video_frames, "events": self.events}


# ---- the media level ------------------------------------------------------------------------------


class MediaLevel:
    """``calls`` slots, each a thread that sets a call up, lets it live, tears it down."""

    name = "media"

    def __init__(self, calls: int, counts: Counts, rng: random.Random, *,
                 process_share: float = 0.05, life_s: tuple[float, float] = (1.0, 5.0)) -> None:
        self.calls = calls
        self.counts = counts
        self.process_share = process_share
        self.life_s = life_s
        self._seed = rng.random()
        self._stop = threading.Event()
        self._sources = iter(range(200_000, 1 << 31))   # unique across calls: one engine port
        self._src_lock = threading.Lock()
        self._n = 0
        self.host: MediaHost | None = None
        self.remote: Remote | None = None
        self._threads: list[threading.Thread] = []

    def open(self) -> None:
        self.host = MediaHost("127.0.0.1", 0, audio_workers=1)
        self.remote = Remote()

    def start(self) -> None:
        for i in range(self.calls):
            t = threading.Thread(target=self._slot, args=(i,), daemon=True, name=f"soak-media-{i}")
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 60.0) -> None:
        """No new calls; the calls under way end their lives."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    def internals(self) -> dict[str, int]:
        """What should be empty once every call has ended: the host's calls, the
        engine's sessions, the audio path's calls, the remote's sessions."""
        assert self.host is not None and self.remote is not None
        return {"host_calls": len(self.host.calls), "engine_sessions": len(self.host.engine.sessions),
                "audio_path_calls": len(self.host.audio.calls),
                "remote_sessions": len(self.remote.engine.sessions)}

    def close(self) -> None:
        if self.remote is not None:
            self.remote.close()
            self.remote = None
        if self.host is not None:
            self.host.close()
            self.host = None

    def _source_id(self) -> int:
        with self._src_lock:
            return next(self._sources)

    def _slot(self, slot: int) -> None:
        rng = random.Random(f"{self._seed}-{slot}")
        while not self._stop.is_set():
            self._n += 1
            call_id = f"soak-media-{slot}-{self._n}"
            try:
                self._one_call(call_id, rng)
            except Exception as e:
                log.exception("soak: media call %s", call_id)
                self.counts.fail(f"{call_id}: {type(e).__name__}: {e}")

    def _one_call(self, call_id: str, rng: random.Random) -> None:
        assert self.host is not None and self.remote is not None
        life = rng.uniform(*self.life_s)
        t0 = time.monotonic()
        self.counts.start()
        mixed = rng.random() < 0.25
        media = self.host.create_call(call_id, mixed=mixed)
        rc: RemoteCall | None = None
        key = None
        try:
            doc = MediaConfig.from_blob(media.config_blob())
            rc = self.remote.open(doc)
            people = rng.randint(1, 3)
            sources, audio_ids = [], []
            for p in range(people):
                sid = self._source_id()
                rc.add_audio(sid, self.remote.clips[(sid + p) % len(self.remote.clips)])
                sources.append(Source(sid, f"p{p}", f"Person {p}", "audio"))
                audio_ids.append(sid)
            camera = rng.random() < 0.3
            if camera:
                vid = self._source_id()
                rc.add_video(vid)
                sources.append(Source(vid, "p0", "Person 0", "video"))
            media.update_sources(sources)
            media.add_processor(FrameCounter("inline"))
            if rng.random() < 0.5:
                media.add_processor(FrameCounter(
                    "thread", video=(320, 180) if camera and rng.random() < 0.5 else None))
            if rng.random() < self.process_share:
                media.add_processor(FrameCounter("process"))
            # iterators opened and abandoned (never read to the end, never closed)
            if rng.random() < 0.5:
                media.audio(f"p{rng.randrange(people)}")
            if rng.random() < 0.3:
                media.events()
            if mixed and rng.random() < 0.5:
                media.mixed_audio()
            vq = media.video("p0", (320, 180)) if camera and rng.random() < 0.5 else None
            key = self.remote.start(rc)
            # midway: read a little, send audio and DTMF back, someone leaves
            self._sleep(t0 + life / 2)
            if vq is not None:
                vq.get(0.05)
                if rng.random() < 0.5:
                    vq.close()                 # unsubscribes
            if rng.random() < 0.3:
                media.send_audio(np.zeros(320 * 10, np.int16))
            if rng.random() < 0.1:
                media.send_dtmf("1")
            if people > 1 and rng.random() < 0.3:
                media.update_sources([s for s in sources if s.participant_id != f"p{people - 1}"])
            self._sleep(t0 + life)
            remote_first = rng.random() < 0.5
            if remote_first:
                self.remote.end(key, rc)
                rc = None
            results = media.close("soak: hung up")
            if rc is not None:
                self.remote.end(key, rc)
                rc = None
        except BaseException:
            media.close("soak: failed")
            if rc is not None:
                if key is not None:
                    self.remote.end(key, rc)
                else:
                    rc.session.close()
            raise
        counter = results.get("FrameCounter")
        if not isinstance(counter, dict):
            raise RuntimeError(f"no result from the counting processor: {results!r}")
        lived = time.monotonic() - t0
        self.counts.end("remote" if remote_first else "bot",
                        silent=lived >= 2.0 and counter.get("frames", 0) == 0)

    def _sleep(self, until: float) -> None:
        # the call lives on even while stopping: its end is its own
        delay = until - time.monotonic()
        if delay > 0:
            time.sleep(delay)


# ---- the bot level --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BotLevel:
    """``mediabot emulator`` (a process) rings a Bot with CallMediaProvider in this
    process; ``calls`` slots, each a coroutine on the bot's event loop."""

    name = "bot"

    def __init__(self, calls: int, counts: Counts, rng: random.Random, *,
                 life_s: tuple[float, float] = (1.0, 5.0), video_share: float = 0.3,
                 process_share: float = 0.02, workdir: str | None = None) -> None:
        self.calls = calls
        self.counts = counts
        self.life_s = life_s
        self.video_share = video_share
        self.process_share = process_share
        self._seed = rng.random()
        self._workdir = workdir
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._slots_done: asyncio.Future | None = None
        self._closed: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.host: MediaHost | None = None
        self.provider: Any = None
        self.bot: Any = None
        self._established: dict[str, asyncio.Event] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self._rngs = [random.Random(f"{self._seed}-{i}") for i in range(calls)]
        self._n = 0

    # -- emulator process ------------------------------------------------------------------
    def _start_emulator(self, webhook: str, bot_config: str) -> None:
        cmd = [sys.executable, "-m", "tests.soak.emulator_host", "--script", str(MEETING_SCRIPT),
               "--webhook", webhook, "--bot-config", bot_config]
        err = open(Path(bot_config).with_name("emulator.log"), "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=err, text=True)
        err.close()
        line = self.proc.stdout.readline()     # after the script's media is encoded
        if not line:
            self.proc.wait(10)
            raise RuntimeError(f"the emulator exited ({self.proc.returncode}) before printing "
                               f"its addresses: see {err.name}")
        self.info = json.loads(line)

    def open(self) -> None:
        """Start the emulator process and the bot (on a thread of its own: its event loop)."""
        self._tmp = tempfile.TemporaryDirectory(prefix="mediabot-soak-", dir=self._workdir)
        port = _free_port()
        webhook = f"http://127.0.0.1:{port}/api/calls"
        self._start_emulator(webhook, os.path.join(self._tmp.name, "bot.toml"))
        self._thread = threading.Thread(target=self._run_loop, daemon=True, name="soak-bot-loop")
        self._thread.start()
        self._ready.wait(120)
        if self._error is not None:
            raise self._error
        if not self._ready.is_set():
            raise TimeoutError("the bot did not start within 120 s")

    def _run_loop(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:      # surfaced by open() / close()
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        from bot.app import Bot
        from bot.config import load_config
        from bot.media import CallMediaProvider

        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._closed = asyncio.Event()
        config = load_config(self.info["bot_config"]["config"],
                             env={"MEDIABOT_CLIENT_SECRET": self.info["client_secret"]})
        self.host = MediaHost("127.0.0.1", 0, audio_workers=1)
        rng = random.Random(self._seed)

        def processors(call: Any) -> list[Processor]:
            out: list[Processor] = [FrameCounter("inline")]
            if rng.random() < self.video_share:
                out.append(FrameCounter("thread", video=(320, 180)))
            if rng.random() < self.process_share:
                out.append(FrameCounter("process"))
            return out

        self.provider = CallMediaProvider(self.host, processors)
        self.bot = Bot(config, media=self.provider)

        @self.bot.on("call_established")
        async def established(call: Any) -> None:
            self._event(self._established, call.id).set()

        @self.bot.on("call_ended")
        async def ended(call: Any) -> None:
            self._event(self._ended, call.id).set()

        import aiohttp

        await self.bot.start()
        try:
            async with aiohttp.ClientSession() as http:
                self._http = http
                self._ready.set()
                await self._closed.wait()
        finally:
            await self.bot.stop()
            self.provider.close()
            self.host.close()

    def _event(self, table: dict[str, asyncio.Event], call_id: str) -> asyncio.Event:
        from bot.graph.models import id_key

        return table.setdefault(id_key(call_id), asyncio.Event())

    # -- churn -------------------------------------------------------------------------------
    def start(self) -> None:
        assert self.loop is not None
        self._slots_done = asyncio.run_coroutine_threadsafe(self._slots(), self.loop)

    async def _slots(self) -> None:
        await asyncio.gather(*(self._slot(i) for i in range(self.calls)))

    async def _slot(self, slot: int) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            self._n += 1
            try:
                await self._one_call(self._rngs[slot])
            except Exception as e:
                log.exception("soak: bot call")
                self.counts.fail(f"bot call: {type(e).__name__}: {e}")
                await asyncio.sleep(1.0)

    async def _control(self, method: str, path: str, body: dict | None = None) -> dict:
        url = self.info["control_url"] + path
        async with self._http.request(method, url, json=body) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {await resp.text()}")
            return await resp.json() if resp.status != 204 else {}

    async def _one_call(self, rng: random.Random) -> None:
        from bot.graph.models import id_key

        life = rng.uniform(*self.life_s)
        t0 = time.monotonic()
        self.counts.start()
        # a meeting of its own (its own source ids) with the people the conference plays
        meeting = (await self._control("POST", "/meetings", {}))["id"]
        for name in self.info["people"]:
            await self._control("POST", f"/meetings/{meeting}/participants",
                                {"displayName": name, "video": name == "Ben"})
        made = await self._control("POST", "/incoming-call",
                                   {"meetingId": meeting, "displayName": "Soak caller"})
        call_id = made["id"]
        key = id_key(call_id)
        established, ended = self._event(self._established, call_id), \
            self._event(self._ended, call_id)
        try:
            try:
                await asyncio.wait_for(established.wait(), 60)
            except asyncio.TimeoutError:
                raise RuntimeError(f"call {call_id} not established within 60 s") from None
            await asyncio.wait_for(ended.wait(), max(0.0, t0 + life - time.monotonic())) \
                if not ended.is_set() else None
        except asyncio.TimeoutError:
            pass                               # lived its life: hang up
        by = "meeting"
        if not ended.is_set():
            call = self.bot.calls.get(key)
            if rng.random() < 0.5 and call is not None:
                by = "bot"
                await call.hang_up(wait=False)
            else:
                by = "remote"
                try:
                    await self._control("POST", f"/calls/{call_id}/hang-up")
                except RuntimeError:
                    if not ended.is_set():     # not ended by the meeting meanwhile
                        raise
                    by = "meeting"
        try:
            await asyncio.wait_for(ended.wait(), 60)
        except asyncio.TimeoutError:
            raise RuntimeError(f"call {call_id} ({by}) did not end within 60 s") from None
        deadline = time.monotonic() + 30
        while self.host.get(call_id) is not None or key in self.bot.calls:
            if time.monotonic() > deadline:
                raise RuntimeError(f"call {call_id}: its media or call state outlived it by 30 s")
            await asyncio.sleep(0.05)
        self._established.pop(key, None)
        self._ended.pop(key, None)
        result = self.provider.results.pop(call_id, None) or {}
        counter = result.get("FrameCounter")
        lived = time.monotonic() - t0
        silent = lived >= 2.5 and by != "meeting" and \
            (not isinstance(counter, dict) or counter.get("frames", 0) == 0)
        if silent:
            log.warning("soak: bot call %s lived %.1f s without audio: %r", call_id, lived, result)
        self.counts.end(by, silent=silent)

    def internals(self) -> dict[str, int]:
        """What should be empty once every call has ended: the bot's calls, the
        host's calls, the engine's sessions, the audio path's calls, the media
        made for requests not sent."""
        assert self.host is not None
        return {"bot_calls": len(self.bot.calls), "host_calls": len(self.host.calls),
                "engine_sessions": len(self.host.engine.sessions),
                "audio_path_calls": len(self.host.audio.calls),
                "unsent_media": len(self.provider._by_blob)}

    def stop(self, timeout_s: float = 120.0) -> None:
        if self.loop is None or self._slots_done is None:
            return
        self.loop.call_soon_threadsafe(self._stopping.set)
        try:
            self._slots_done.result(timeout_s)
        except Exception as e:
            log.error("soak: bot slots did not finish: %s", e)

    def close(self) -> None:
        if self.loop is not None and self._closed is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._closed.set)
        if self._thread is not None:
            self._thread.join(60)
        if self.proc is not None:
            if self.proc.stdin:
                self.proc.stdin.close()        # the emulator ends with its stdin
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# ---- the run --------------------------------------------------------------------------------------


def _figures(samples: list[dict[str, Any]], after_s: float) -> dict[str, Any]:
    warm = [s for s in samples if s["t"] >= after_s]
    ts = [s["t"] for s in warm]
    out: dict[str, Any] = {"samples": len(warm), "from_s": after_s}
    for k in ("rss_kib", "anon_huge_kib", "heap_used_kib", "heap_free_kib", "fds", "threads", "os_threads", "shm",
              "shm_mapped", "children", "emulator_rss_kib"):
        ys = [s[k] for s in warm if k in s]
        if len(ys) == len(ts):
            sl = slope_per_min(ts, ys)
            out[f"{k}_per_min"] = None if sl is None else round(sl, 4)
            out[f"{k}_min"], out[f"{k}_max"] = (min(ys), max(ys)) if ys else (None, None)
    for k in ("rss", "anon_huge", "heap_used", "heap_free"):
        if out.get(f"{k}_kib_per_min") is not None:
            out[f"{k}_mib_per_min"] = round(out[f"{k}_kib_per_min"] / 1024, 4)
    return out


def _resources(shm: ShmTracker) -> dict[str, Any]:
    heap = heap_kib()
    return {"rss_kib": rss_kib(), "anon_huge_kib": anon_huge_kib(),
            "heap_used_kib": heap[0] if heap else None, "fds": open_fds(), "threads": threading.active_count(),
            "os_threads": os_threads(), "shm": len(shm.alive()), "shm_mapped": len(shm_mapped()),
            "children": len(child_pids()), "fd_kinds": fd_kinds(),
            "thread_names": sorted(t.name for t in threading.enumerate())}


def run_soak(duration_s: float, *, calls: int = 20, levels: tuple[str, ...] = ("media", "bot"),
             warmup_s: float | None = None, settle_s: float = 45.0, seed: int = 1,
             process_share: float = 0.05, life_s: tuple[float, float] = (1.0, 5.0),
             thresholds: dict[str, float] | None = None, interval_s: float = 1.0,
             progress: Any = None) -> dict[str, Any]:
    """Churn ``calls`` calls per level for ``duration_s``, then stop, let every call end,
    and compare. Returns the report (samples, slopes, counts, checks, passed)."""
    from multiprocessing import resource_tracker

    th = dict(THRESHOLDS, **(thresholds or {}))
    warmup_s = warmup_s if warmup_s is not None else min(120.0, max(10.0, duration_s / 6))
    rng = random.Random(seed)
    shm = ShmTracker()
    shm.install()
    resource_tracker.ensure_running()    # once per process: not a per-call child
    counts = {lv: Counts() for lv in levels}
    runners: list[Any] = []
    if "media" in levels:
        runners.append(MediaLevel(calls, counts["media"], rng, process_share=process_share,
                                  life_s=life_s))
    if "bot" in levels:
        runners.append(BotLevel(calls, counts["bot"], rng, process_share=process_share / 2,
                                life_s=life_s))
    extra: dict[str, Any] = {}
    report: dict[str, Any] = {"duration_s": duration_s, "calls": calls, "levels": list(levels),
                              "warmup_s": warmup_s, "thresholds": th, "seed": seed}
    sampler = None
    try:
        for r in runners:
            r.open()
            if isinstance(r, BotLevel) and r.proc is not None:
                extra["emulator_pid"] = r.proc.pid
        sampler = Sampler(shm, counts, interval_s, extra).start()   # its thread in both
        gc.collect()
        time.sleep(1.0)
        report["baseline"] = _resources(shm)
        for r in runners:
            r.start()
        t_end = time.monotonic() + duration_s
        while time.monotonic() < t_end:
            time.sleep(min(10.0, max(0.0, t_end - time.monotonic())))
            if progress is not None and sampler.samples:
                progress(sampler.samples[-1])
        churn_s = sampler.samples[-1]["t"] if sampler.samples else duration_s
        for r in runners:
            r.stop()
        report["stopped_at_s"] = sampler.samples[-1]["t"] if sampler.samples else None
        # after the last call: settle (worker processes joined, threads ended), then compare
        base = report["baseline"]
        deadline = time.monotonic() + settle_s
        gc.collect()
        after = _resources(shm)
        while time.monotonic() < deadline and not _within(after, base, th):
            time.sleep(1.0)
            gc.collect()
            after = _resources(shm)
        report["settled_in_s"] = round(settle_s - max(0.0, deadline - time.monotonic()), 1)
        report["after"] = after
        report["internals"] = {r.name: r.internals() for r in runners}
        sampler.stop()
        report["slopes"] = _figures(sampler.samples, warmup_s)
        report["churn_s"] = churn_s
        report["samples"] = sampler.samples
        report["counts"] = {lv: c.to_dict() for lv, c in counts.items()}
        if "media" in levels:
            report["shm_created"] = shm.created
        report["checks"] = _checks(report, th)
        report["passed"] = all(c["ok"] for c in report["checks"].values())
    finally:
        if sampler is not None:
            sampler.stop()
        for r in runners:
            try:
                r.stop(10)          # after a failure midway; a no-op after a full run
            except Exception:
                log.exception("soak: stopping the %s level", r.name)
            r.close()
        shm.uninstall()
    return report


def _within(after: dict[str, Any], base: dict[str, Any], th: dict[str, float]) -> bool:
    heap_ok = after["heap_used_kib"] is None or \
        after["heap_used_kib"] - base["heap_used_kib"] <= th["heap_used_after_mib"] * 1024
    return (heap_ok and after["fds"] - base["fds"] <= th["fds_after"]
            and after["threads"] - base["threads"] <= th["threads_after"]
            and after["os_threads"] - base["os_threads"] <= th["threads_after"]
            and after["shm"] - base["shm"] <= th["shm_after"]
            and after["shm_mapped"] - base["shm_mapped"] <= th["shm_after"]
            and after["children"] - base["children"] <= th["children_after"])


def _checks(report: dict[str, Any], th: dict[str, float]) -> dict[str, dict[str, Any]]:
    base, after, sl = report["baseline"], report["after"], report["slopes"]
    checks: dict[str, dict[str, Any]] = {}
    for lv, c in report["counts"].items():
        checks[f"{lv}_no_failed_calls"] = {"ok": c["failed"] == 0, "value": c["failed"]}
        checks[f"{lv}_every_call_ended"] = {"ok": c["ended"] == c["started"] and c["started"] > 0,
                                            "value": [c["started"], c["ended"]]}
    for lv, found in report.get("internals", {}).items():
        left = {k: v for k, v in found.items() if v}
        checks[f"{lv}_nothing_left"] = {"ok": not left, "value": left or 0}
    rss = sl.get("rss_mib_per_min")
    checks["rss_slope"] = {"ok": rss is not None and rss < th["rss_mib_per_min"],
                           "value": rss, "limit": th["rss_mib_per_min"]}
    if after.get("heap_used_kib") is not None:
        d = (after["heap_used_kib"] - base["heap_used_kib"]) / 1024
        checks["heap_used_back_to_baseline"] = {
            "ok": d <= th["heap_used_after_mib"], "value": round(d, 2),
            "limit": th["heap_used_after_mib"], "baseline": base["heap_used_kib"] // 1024,
            "after": after["heap_used_kib"] // 1024}
    for k, limit in (("fds", th["fds_after"]), ("threads", th["threads_after"]),
                     ("os_threads", th["threads_after"]), ("shm", th["shm_after"]),
                     ("shm_mapped", th["shm_after"]), ("children", th["children_after"])):
        d = after[k] - base[k]
        checks[f"{k}_back_to_baseline"] = {"ok": d <= limit, "value": d, "limit": limit,
                                           "baseline": base[k], "after": after[k]}
    return checks


def summary(report: dict[str, Any]) -> str:
    """A few lines for people: counts, slopes, checks."""
    lines = [f"soak: {report['duration_s']:.0f} s, {report['calls']} calls per level "
             f"({', '.join(report['levels'])}), warm-up {report['warmup_s']:.0f} s"]
    for lv, c in report.get("counts", {}).items():
        lines.append(f"  {lv}: started {c['started']}, ended {c['ended']}, failed {c['failed']}, "
                     f"silent {c['silent']}, ended by {c['ended_by']}")
    sl = report.get("slopes", {})
    lines.append("  slopes/min after warm-up: " + ", ".join(
        f"{k.removesuffix('_per_min')} {v:+.3f}" for k, v in sl.items()
        if k.endswith("_per_min") and v is not None and "_kib_" not in k))
    for name, c in report.get("checks", {}).items():
        lines.append(f"  {'ok  ' if c['ok'] else 'FAIL'} {name}: {c['value']}"
                     + (f" (limit {c['limit']})" if "limit" in c else ""))
    lines.append("  PASSED" if report.get("passed") else "  FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=1800.0, help="seconds of churn (default 1800)")
    p.add_argument("--calls", type=int, default=20, help="concurrent calls per level (default 20)")
    p.add_argument("--level", choices=["media", "bot", "both"], default="both")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds left out of the slopes (default: a sixth of the run, 10-120 s)")
    p.add_argument("--settle", type=float, default=45.0,
                   help="seconds allowed after the last call for resources to return (default 45: "
                        "kept-alive HTTP connections close after 15 s idle)")
    p.add_argument("--process-share", type=float, default=0.05,
                   help="share of media-level calls with a worker-process processor (default 0.05)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="PATH", help="write the report (with every sample) here")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    levels = ("media", "bot") if args.level == "both" else (args.level,)

    def progress(s: dict[str, Any]) -> None:
        calls = " ".join(f"{lv} {s.get(lv + '_started', 0)}/{s.get(lv + '_ended', 0)}"
                         f"/{s.get(lv + '_failed', 0)}" for lv in levels)
        heap = (f" (huge pages {s.get('anon_huge_kib', 0) / 1024:.0f}) heap "
                f"{s['heap_used_kib'] / 1024:.1f}+{s['heap_free_kib'] / 1024:.1f} MiB"
                if "heap_used_kib" in s else "")
        print(f"[{s['t']:7.0f} s] rss {s['rss_kib'] / 1024:.1f} MiB{heap} fds {s['fds']} threads "
              f"{s['threads']}/{s['os_threads']} shm {s['shm']}/{s['shm_mapped']} children "
              f"{s['children']} calls started/ended/failed {calls}", file=sys.stderr, flush=True)

    report = run_soak(args.duration, calls=args.calls, levels=levels, warmup_s=args.warmup,
                      settle_s=args.settle, seed=args.seed, process_share=args.process_share,
                      progress=progress)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(summary(report))
    return 0 if report["passed"] else 1

"""The native audio worker and graph (``audiograph.c``).

An :class:`AudioWorker` is one native thread ticking every 20 ms on the media
clock; it runs every :class:`AudioGraph` attached to it (hundreds per core).
A graph reads one call's receive ring (engine records), writes frames and
events to its output ring, and paces the send path. Calls get theirs from
:class:`~mediacore.audio.path.AudioPath` (a few staggered workers, one
output ring per worker shared by its calls' graphs, told apart by ``tag``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

from .._native import ffi, lib
from ..errors import check
from ..rings import Ring
from .codecs import Codec, OpusApplication


@dataclass(frozen=True)
class GraphStats:
    ticks: int
    records_in: int
    decoded: int
    concealed: int
    fec_recovered: int
    decode_errors: int
    unknown_payload_type: int
    underruns: int
    overflow_dropped: int
    late: int
    sources_refused: int
    mixed_frames: int
    unmixed_frames: int
    output_dropped: int
    dtmf_digits: int
    dominant_changes: int
    send_frames: int
    send_silence: int
    send_packets: int
    send_dtx_skipped: int
    send_dtmf_packets: int
    send_dropped: int
    level_ext_frames: int  # source frames whose activity came from RFC 6464 levels
    level_ext_malformed: int  # records whose audio-level extension was garbage (ignored)
    sources: int
    send_state: int
    dominant_source: int
    shrunk: int
    input_waits: int


class AudioWorker:
    """A native 20 ms ticker. ``thread=False`` makes ticks explicit
    (:meth:`tick`), for deterministic tests."""

    def __init__(self, *, thread: bool = True, stagger: bool = False) -> None:
        """``stagger=True`` ticks each graph on its own phase of the 20 ms
        period (2 ms steps, round robin): many calls' decoding does not
        queue behind one deadline."""
        out = ffi.new("mc_audio_worker **")
        flags = (0 if thread else lib.MC_AUDIO_WORKER_NO_THREAD) | (
            lib.MC_AUDIO_WORKER_STAGGER if stagger else 0
        )
        check(lib.mc_audio_worker_new(flags, out), "audio worker")
        self._h = out[0]
        self._lock = threading.Lock()
        self._graphs: set[AudioGraph] = set()
        self.threaded = thread
        self._started = False

    def start(self) -> None:
        with self._lock:
            if self.threaded and not self._started:
                check(lib.mc_audio_worker_start(self._h), "audio worker start")
                self._started = True

    def stop(self) -> None:
        with self._lock:
            if self._started:
                check(lib.mc_audio_worker_stop(self._h), "audio worker stop")
                self._started = False

    def tick(self, now_ns: int) -> None:
        """One tick of every graph at ``now_ns`` (unthreaded workers)."""
        with self._lock:
            check(lib.mc_audio_worker_tick(self._h, now_ns), "audio worker tick")

    def ticks(self) -> tuple[int, int, int]:
        """(ticks run, late ticks, CPU ns spent in ticks)."""
        t, late, busy = ffi.new("uint64_t *"), ffi.new("uint64_t *"), ffi.new("int64_t *")
        check(lib.mc_audio_worker_get_ticks(self._h, t, late, busy), "audio worker ticks")
        return int(t[0]), int(late[0]), int(busy[0])

    def close(self) -> None:
        if self._h is None:
            return
        self.stop()
        for g in list(self._graphs):
            g.close()
        lib.mc_audio_worker_free(self._h)
        self._h = None

    def __enter__(self) -> AudioWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _codec_pair(spec) -> tuple[int, int]:
    if isinstance(spec, tuple):
        codec, clock = spec
    else:
        codec, clock = spec, 0
    if isinstance(codec, str):
        codec = Codec.from_name(codec)
    return int(codec), clock


class AudioGraph:
    """Low-level handle on one native graph. Rings passed in must outlive it."""

    def __init__(
        self,
        worker: AudioWorker,
        *,
        input: Ring | None = None,
        payload_types: dict | None = None,
        telephone_event_pt: int = -1,
        output: Ring | None = None,
        mixed: bool = True,
        unmixed: bool = False,
        events: bool = True,
        prebuffer_frames: int = 0,
        start_frames: int = 0,
        activity_threshold_dbov: int = 0,
        hangover_ms: int = 0,
        source_timeout_ms: int = 0,
        send_pcm: Ring | None = None,
        send_out: Ring | None = None,
        engine=None,
        send_codec: Codec | str = "opus",
        send_clock_rate_hz: int = 0,
        send_payload_type: int = 111,
        send_telephone_event_pt: int = -1,
        bitrate_bps: int = 0,
        application: OpusApplication | str = OpusApplication.VOIP,
        inband_fec: bool = True,
        dtx: bool = False,
        packet_loss_pct: int = 10,
        low_water_frames: int = 0,
        tag: int = 0,
    ) -> None:
        cfg = ffi.new("mc_audio_graph_config *")
        cfg.tag = tag
        self._keep = [input, output, send_pcm, send_out]
        cfg.input = input._h() if input is not None else ffi.NULL
        pts = payload_types if payload_types is not None else {111: "opus"}
        if len(pts) > lib.MC_AUDIO_GRAPH_MAX_PAYLOAD_TYPES:
            raise ValueError("too many payload types")
        for i, (pt, spec) in enumerate(pts.items()):
            codec, clock = _codec_pair(spec)
            cfg.payload_types[i].payload_type = pt
            cfg.payload_types[i].codec = codec
            cfg.payload_types[i].clock_rate_hz = clock
        cfg.payload_type_count = len(pts)
        cfg.telephone_event_pt = telephone_event_pt
        out_h = output._h() if output is not None else ffi.NULL
        cfg.mixed = out_h if mixed else ffi.NULL
        cfg.unmixed = out_h if unmixed else ffi.NULL
        cfg.events = out_h if events else ffi.NULL
        cfg.prebuffer_frames = prebuffer_frames
        cfg.start_frames = start_frames
        cfg.activity_threshold_dbov = activity_threshold_dbov
        cfg.hangover_ms = hangover_ms
        cfg.source_timeout_ms = source_timeout_ms
        if send_pcm is not None:
            cfg.send_pcm = send_pcm._h()
            cfg.send_out = send_out._h() if send_out is not None else ffi.NULL
            cfg.engine = engine._h() if engine is not None else ffi.NULL
            codec, _ = _codec_pair(send_codec)
            cfg.send_codec.codec = codec
            cfg.send_codec.clock_rate_hz = send_clock_rate_hz
            if isinstance(application, str):
                application = OpusApplication[application.upper()]
            cfg.send_codec.application = int(application)
            cfg.send_codec.bitrate_bps = bitrate_bps
            cfg.send_codec.complexity = 10
            cfg.send_codec.inband_fec = int(inband_fec)
            cfg.send_codec.dtx = int(dtx)
            cfg.send_codec.packet_loss_pct = packet_loss_pct
            cfg.send_payload_type = send_payload_type
            cfg.send_telephone_event_pt = send_telephone_event_pt
            cfg.low_water_frames = low_water_frames
        else:
            cfg.send_telephone_event_pt = -1
        out = ffi.new("mc_audio_graph **")
        check(lib.mc_audio_graph_new(worker._h, cfg, out), "audio graph")
        self._h = out[0]
        self.worker = worker
        worker._graphs.add(self)

    def send_dtmf(self, tones: str, tone_ms: int = 100, gap_ms: int = 100, volume: int = 10) -> None:
        check(
            lib.mc_audio_graph_send_dtmf(self._h, tones.encode("ascii"), tone_ms, gap_ms, volume),
            f"send DTMF {tones!r}",
        )

    def stats(self) -> GraphStats:
        st = ffi.new("mc_audio_graph_stats *")
        check(lib.mc_audio_graph_get_stats(self._h, st), "audio graph stats")
        return GraphStats(**{f.name: getattr(st, f.name) for f in fields(GraphStats)})

    def close(self) -> None:
        if self._h is None:
            return
        with self.worker._lock:
            lib.mc_audio_graph_free(self._h)
            self._h = None
            self.worker._graphs.discard(self)

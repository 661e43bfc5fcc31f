"""The native audio path (``mediacore.audio.path``): staggered audio workers,
calls sharing one output ring by tag, frames and DTMF events handed to
Python in batches, each call's to its own handlers; calls removed mid-run,
handlers that raise (real engines with SRTP on loopback, libopus, the native
worker threads)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
from mediacore._native import lib

from mediacore.audio import AudioEncoder, AudioWorker, Codec, DtmfSender
from mediacore.audio.frames import MIXED, UNMIXED, AudioFrame
from mediacore.audio.graph import AudioGraph
from mediacore.audio.path import AudioPath
from mediacore.engine import Engine
from mediacore.rings import Ring

PROFILE = "AES_CM_128_HMAC_SHA1_80"
TICK_100NS = 200_000
PHASE_100NS = TICK_100NS // lib.MC_AUDIO_WORKER_STAGGER_SLOTS


def test_a_staggering_worker_ticks_each_graph_on_its_own_phase():
    out = Ring.create(1 << 20)
    inputs = [Ring.create(1 << 12) for _ in range(3)]
    with AudioWorker(stagger=True) as worker:
        graphs = [AudioGraph(worker, input=inputs[k], output=out, mixed=True, events=False, tag=k)
                  for k in range(3)]
        deadline = time.monotonic() + 5
        stamps: dict[int, list[int]] = {0: [], 1: [], 2: []}
        while time.monotonic() < deadline and min(len(v) for v in stamps.values()) < 5:
            batch = out.read_batch(64, timeout=0.1)
            for rec in batch:
                f = AudioFrame.from_bytes(rec, "mixed")
                stamps[f.tag].append(f.timestamp_100ns)
        for g in graphs:
            g.close()
    for k in range(3):
        assert len(stamps[k]) >= 5
        assert set(np.diff(stamps[k]).tolist()) == {TICK_100NS}   # 20 ms clock per graph
    # graphs created one after another take consecutive 2 ms phases
    phase = [(stamps[k][0] - stamps[0][0]) % TICK_100NS for k in range(3)]
    assert phase == [0, PHASE_100NS, 2 * PHASE_100NS]
    for r in inputs + [out]:
        r.close()


class _Collect:
    def __init__(self) -> None:
        self.frames: dict[tuple[int, int], list[int]] = {}
        self.events: list = []
        self.lock = threading.Lock()

    def on_frames(self, frames, kinds, seen_ns) -> None:
        h = frames["header"]
        assert frames["pcm"].shape == (len(frames), 320)
        with self.lock:
            for tag, ssrc, level in zip(h["tag"].tolist(), h["source_id"].tolist(),
                                        h["level"].tolist()):
                self.frames.setdefault((tag, ssrc), []).append(level)

    def on_event(self, event) -> None:
        with self.lock:
            self.events.append(event)


def test_calls_frames_and_dtmf_reach_the_processor_by_tag():
    got = _Collect()
    bot, peer = Engine("127.0.0.1"), Engine("127.0.0.1")
    bot.start()
    peer.start()
    path = AudioPath(got.on_frames, got.on_event, workers=2)
    try:
        senders = []
        for tag, ssrc in ((1, 0x1111), (2, 0x2222)):
            down, up = os.urandom(30), os.urandom(30)
            s_bot = bot.add_session(("127.0.0.1", peer.port), srtp_profile=PROFILE, tx_key=up,
                                    rx_key=down)
            s_peer = peer.add_session(("127.0.0.1", bot.port), srtp_profile=PROFILE,
                                      tx_key=down, rx_key=up)
            call = path.add_call(tag, payload_types={111: "opus"}, telephone_event_pt=101)
            call.add_source(s_bot, ssrc, direct=True)
            senders.append(s_peer.add_send_stream(ssrc, 111, "audio", 48000))
        enc = [AudioEncoder(Codec.OPUS), AudioEncoder(Codec.OPUS)]
        t = np.arange(320) / 16000
        dtmf = DtmfSender(48000)
        t0 = time.monotonic()
        for k in range(60):
            for i, s in enumerate(senders):
                pcm = (8000 * np.sin(2 * np.pi * (300 + 200 * i) * (t + k * 0.02))).astype(np.int16)
                if i == 1 and k >= 30:          # call 2 presses "5" instead of talking
                    if k == 30:
                        dtmf.start("5", tone_ms=100, gap_ms=40)
                    packets, _ = dtmf.tick(k * 960)
                    for p in packets:
                        s.send(p.payload, p.rtp_timestamp, marker=p.marker, payload_type=101)
                    continue
                s.send(enc[i].encode(pcm), k * 960)
            time.sleep(max(0.0, t0 + (k + 1) * 0.02 - time.monotonic()))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(e.kind == "dtmf" and e.end
                                                      for e in got.events):
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        stats = {tag: path.remove_call(tag) for tag in (1, 2)}
        path.close()
        bot.close()
        peer.close()
    assert len(got.frames[(1, 0x1111)]) >= 50
    assert len(got.frames[(2, 0x2222)]) >= 25
    assert set(got.frames) == {(1, 0x1111), (2, 0x2222)}          # nothing crossed calls
    assert np.median(got.frames[(1, 0x1111)]) < 30                # a loud tone (RFC 6464 level)
    digits = [(e.tag, e.source_id, e.digit) for e in got.events if e.kind == "dtmf" and e.end]
    assert digits == [(2, 0x2222, "5")]
    assert stats[1].late == 0 and stats[1].decoded >= 50
    assert path.errors == []
    lat = path.latency.summary()
    assert lat["samples"] >= 75 and lat["p50"] is not None
    assert lat["playout_delay_ms"]["p50"] > 0


def _tone(hz: float, k: int) -> np.ndarray:
    t = (np.arange(320) + 320 * k) / 16000
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def _peak_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.argmax(spectrum) * 16000 / len(pcm))


class _Call:
    """One call's handler: frames (header fields and PCM copied out) and events."""

    def __init__(self) -> None:
        self.tags: set[int] = set()
        self.sources: set[int] = set()
        self.kinds: set[int] = set()
        self.sequence: list[int] = []
        self.pcm: list[np.ndarray] = []
        self.batches: list[int] = []
        self.events: list = []

    def on_frames(self, frames, kinds, seen_ns) -> None:
        h = frames["header"]
        self.tags.update(h["tag"].tolist())
        self.sources.update(h["source_id"].tolist())
        self.kinds.update(kinds.tolist())
        self.sequence.extend(h["sequence"].tolist())
        self.pcm.extend(np.array(frames["pcm"]))
        self.batches.append(seen_ns)

    def on_event(self, event) -> None:
        self.events.append(event)


def test_calls_on_one_worker_route_to_their_own_handlers():
    """Three calls on one worker (one output ring, one reader), each with its
    own handlers and its own speaker (300, 500, 700 Hz); a fourth call
    without handlers goes to the path's. Each handler sees only its call's
    tag, source and tone, every frame of it in order."""
    default = _Call()
    bot, peer = Engine("127.0.0.1"), Engine("127.0.0.1")
    bot.start()
    peer.start()
    path = AudioPath(default.on_frames, default.on_event, workers=1)
    key_down, key_up = os.urandom(30), os.urandom(30)
    s_bot = bot.add_session(("127.0.0.1", peer.port), srtp_profile=PROFILE, tx_key=key_up,
                            rx_key=key_down)
    s_peer = peer.add_session(("127.0.0.1", bot.port), srtp_profile=PROFILE, tx_key=key_down,
                              rx_key=key_up)
    tones = {11: (0xA001, 300.0), 12: (0xA002, 500.0), 13: (0xA003, 700.0)}
    handlers = {tag: _Call() for tag in tones}
    try:
        senders = {}
        for tag, (ssrc, _) in tones.items():
            call = path.add_call(tag, payload_types={111: "opus"}, telephone_event_pt=101,
                                 on_frames=handlers[tag].on_frames,
                                 on_event=handlers[tag].on_event)
            call.add_source(s_bot, ssrc, direct=True)
            senders[tag] = (s_peer.add_send_stream(ssrc, 111, "audio", 48000),
                            AudioEncoder(Codec.OPUS))
        path.add_call(14, mixed=True, unmixed=False)                     # the path's handlers
        assert len(path.lanes) == 1 and path.lanes[0].calls == 4
        t0 = time.monotonic()
        for k in range(75):
            for tag, (stream, enc) in senders.items():
                stream.send(enc.encode(_tone(tones[tag][1], k)), k * 960)
            time.sleep(max(0.0, t0 + (k + 1) * 0.02 - time.monotonic()))
        time.sleep(0.3)
    finally:
        path.close()
        bot.close()
        peer.close()
    for tag, (ssrc, hz) in tones.items():
        got = handlers[tag]
        assert got.tags == {tag} and got.sources == {ssrc} and got.kinds == {UNMIXED}
        assert len(got.sequence) >= 60
        assert got.sequence == list(range(got.sequence[0], got.sequence[0] + len(got.sequence)))
        # its own speaker's tone (skip the codec's start-up)
        assert abs(_peak_hz(np.concatenate(got.pcm[10:])) - hz) <= 25
        assert {e.tag for e in got.events} <= {tag}
        assert any(e.kind == "source_added" and e.source_id == ssrc for e in got.events)
    assert default.tags == {14} and default.kinds == {MIXED} and default.sources == {0}
    assert path.errors == []


def test_a_call_removed_mid_run_stops_getting_frames():
    """Once ``remove_call`` returns, the call's handler is never called again
    (its frames still in the ring are dropped, not handed to the path's
    handler); the other calls of the worker go on."""
    default = _Call()
    calls = {tag: _Call() for tag in (1, 2, 3)}
    with AudioPath(default.on_frames, default.on_event, workers=1) as path:
        for tag, got in calls.items():
            path.add_call(tag, mixed=True, unmixed=False, on_frames=got.on_frames,
                          on_event=got.on_event)
        assert wait_for(lambda: min(len(c.sequence) for c in calls.values()) >= 10)
        stats = path.remove_call(2)
        removed_at = len(calls[2].sequence)
        before = {tag: len(calls[tag].sequence) for tag in (1, 3)}
        # the others go on: 20 more frames each (0.4 s on an idle machine)
        assert wait_for(lambda: all(len(calls[tag].sequence) - before[tag] >= 20
                                    for tag in (1, 3)))
        assert path.remove_call(2) is None                      # once only
        assert 2 not in path.calls and path.lanes[0].calls == 2
    assert len(calls[2].sequence) == removed_at
    assert stats is not None and stats.mixed_frames >= removed_at
    assert default.sequence == []
    assert path.errors == []


def test_a_handler_that_raises_does_not_stop_other_calls_frames():
    """Call 1's handler raises on every batch (and now and then is slow, so
    the reader's batches carry several calls' frames); calls 2 and 3, on the
    same worker and reader, still get every frame, in order."""
    calls = {tag: _Call() for tag in (1, 2, 3)}
    raised = []

    def broken(frames, kinds, seen_ns) -> None:
        calls[1].on_frames(frames, kinds, seen_ns)
        if len(raised) % 5 == 0:
            time.sleep(0.03)                                   # the reader falls a tick behind
        raised.append(seen_ns)
        raise RuntimeError("handler bug")

    with AudioPath(workers=1) as path:
        path.add_call(1, mixed=True, unmixed=False, on_frames=broken)
        for tag in (2, 3):
            path.add_call(tag, mixed=True, unmixed=False, on_frames=calls[tag].on_frames)
        # 1.2 s on an idle machine
        assert wait_for(lambda: min(len(calls[2].sequence), len(calls[3].sequence)) >= 60
                        and len(raised) >= 20, 10.0)
        path.remove_call(1)
        failures = path.handler_failures()
        errors = path.errors
    assert failures == len(raised) >= 20
    assert errors and all(e == "RuntimeError: handler bug" for e in errors)
    for tag in (2, 3):
        seq = calls[tag].sequence
        assert len(seq) >= 60
        assert seq == list(range(seq[0], seq[0] + len(seq)))     # no frame lost
    # the failing call shared batches with the others (its run came first in some)
    assert set(raised) & set(calls[2].batches)
    assert set(raised) & set(calls[3].batches)


def wait_for(cond, timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()

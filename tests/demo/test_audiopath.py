"""The bot's native audio path: staggered audio workers, calls sharing one
output ring by tag, frames and DTMF events handed to Python in batches
(real engines with SRTP on loopback, libopus, the native worker thread)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from mediacore.audio.path import NativeAudioPath
from mediacore._native import lib
from mediacore.audio import AudioEncoder, AudioWorker, Codec, DtmfSender
from mediacore.audio.frames import AudioFrame
from mediacore.audio.graph import AudioGraph
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
    path = NativeAudioPath(got.on_frames, got.on_event, workers=2)
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

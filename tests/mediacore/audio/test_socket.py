"""AudioSocket end to end: two engines on loopback with SRTP, the native
audio graph on a real 20 ms worker thread on each side, tones, speech, DTMF,
loss through the seeded relay, processors in-process and in a worker process."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import pytest

from mediacore.audio import AudioSocket, AudioWorker, Processor, run_processor
from mediacore.engine import Engine
from tests.support.relay import UdpRelay

from .conftest import best_lag, tone

PROFILE = "AES_CM_128_HMAC_SHA1_80"
TX_SSRC = 0xB0B0


class Call:
    """Engine A (the bot, receiving) and engine B (the peer, sending)."""

    def __init__(self, codec: str = "opus", pt: int = 111, clock: int = 48000,
                 via_relay: dict | None = None, unmixed: bool = True, shared: bool = False,
                 **socket_options) -> None:
        self.worker = AudioWorker()
        self.worker.start()
        self.a = Engine("127.0.0.1")
        self.b = Engine("127.0.0.1")
        self.a.start()
        self.b.start()
        k_ab, k_ba = os.urandom(30), os.urandom(30)
        self.relay = None
        target = ("127.0.0.1", self.a.port)
        if via_relay is not None:
            self.relay = UdpRelay(target, duration_s=60, **via_relay)
            self.relay.start()
            self.relay.ready.wait(5)
            target = self.relay.address
        self.sa = self.a.add_session(("127.0.0.1", self.b.port), srtp_profile=PROFILE,
                                     tx_key=k_ab, rx_key=k_ba)
        self.sb = self.b.add_session(target, srtp_profile=PROFILE, tx_key=k_ba, rx_key=k_ab)
        send_stream = self.sb.add_send_stream(TX_SSRC, payload_type=pt, clock_rate=clock)
        self.peer = AudioSocket(self.worker, send_stream=send_stream, send_codec=codec,
                                send_telephone_event_pt=101, mixed=False,
                                **({"bitrate_bps": 32000} if codec == "opus" else {}))
        # 5 frames of look-ahead: slack for scheduling delays on a loaded CI machine
        socket_options.setdefault("prebuffer_frames", 5)
        self.bot = AudioSocket(self.worker, session=self.sa, payload_types={pt: codec},
                               telephone_event_pt=101, mixed=True, unmixed=unmixed,
                               shared=shared, **socket_options)
        self.bot.add_source(TX_SSRC, clock_rate=clock)

    def close(self) -> None:
        self.bot.close()
        self.peer.close()
        self.worker.close()
        if self.relay is not None:
            self.relay.stop()
        self.a.close()
        self.b.close()


@pytest.fixture
def call_factory():
    calls = []

    def make(**kw) -> Call:
        calls.append(Call(**kw))
        return calls[-1]

    yield make
    for c in calls:
        c.close()


def collect(consumer, seconds: float) -> list:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        item = consumer.get(0.05)
        if item is not None:
            out.append(item)
    return out


def received_pcm(frames) -> np.ndarray:
    return np.concatenate([f.pcm for f in frames]) if frames else np.zeros(0, np.int16)


def snr_without_concealment(sent: np.ndarray, frames) -> tuple[float, int]:
    """SNR of what was decoded, leaving out frames the graph concealed (a
    starved CI machine can underrun; those frames are counted, not scored)."""
    got = received_pcm(frames)
    lag = best_lag(sent, got, 16000)
    mask = np.repeat([not f.concealed for f in frames], 320)
    n = min(len(sent), len(got) - lag)
    keep = mask[lag:lag + n]
    ref, out = sent[:n][keep].astype(np.float64), got[lag:lag + n][keep].astype(np.float64)
    ref, out = ref[1600:], out[1600:]
    concealed = sum(f.concealed for f in frames)
    return 10 * np.log10(np.sum(ref ** 2) / max(np.sum((ref - out) ** 2), 1e-9)), concealed


def collect_until_quiet(consumer, want_seconds: float, limit: float = 20.0) -> list:
    """Frames until ``want_seconds`` of them arrived (or ``limit`` passes)."""
    out, deadline = [], time.monotonic() + limit
    while len(out) < want_seconds * 50 and time.monotonic() < deadline:
        item = consumer.get(0.05)
        if item is not None:
            out.append(item)
    return out


@pytest.mark.parametrize("codec, pt, clock, min_snr_db", [
    ("opus", 111, 48000, 12.0),     # network + jitter + Opus voip at 32 kbit/s (codec alone ~19 dB)
    ("PCMU", 0, 8000, 30.0),        # G.711 mu-law alone is ~37 dB on this tone
])
def test_tone_round_trip_through_two_engines_with_srtp(call_factory, codec, pt, clock,
                                                       min_snr_db):
    call = call_factory(codec=codec, pt=pt, clock=clock)
    mixed = call.bot.subscribe(("mixed",), maxsize=1000)
    sent = tone(1000, 2.0, 10000)
    assert call.peer.send_buffered(sent) == 100
    frames = collect_until_quiet(mixed, 2.6)
    snr, concealed = snr_without_concealment(sent, frames)
    assert snr > min_snr_db
    assert concealed < 10
    st = call.bot.stats()
    assert st.decode_errors == 0 and st.decoded >= 95
    assert call.peer.stats().send_frames == 100


def test_speech_round_trip_opus(call_factory, speech_16k):
    call = call_factory()
    unmixed = call.bot.subscribe(("unmixed",), maxsize=1000)
    n = len(speech_16k) // 320 * 320
    assert call.peer.send_buffered(speech_16k[:n]) == n // 320
    frames = collect_until_quiet(unmixed, n / 16000 + 0.3)
    assert {f.source_id for f in frames} == {TX_SSRC}
    snr, concealed = snr_without_concealment(speech_16k[:n], frames)
    assert snr > 8.0 and concealed < 10


def test_fifty_frames_per_second_without_drift(call_factory):
    """Over 3 s: one mixed frame per 20 ms of the media clock, contiguous
    sequence numbers, stamps on time.monotonic_ns's clock that keep up with
    it (no drift), whatever the consumer's scheduling."""
    call = call_factory(unmixed=False)
    mixed = call.bot.subscribe(("mixed",), maxsize=1000)
    t0 = time.monotonic_ns()
    time.sleep(3.0)
    t1 = time.monotonic_ns()
    frames = collect(mixed, 0.5)
    ts = np.array([f.timestamp_100ns for f in frames])
    assert np.all(np.diff(ts) == 200_000)                    # exactly 20 ms apart
    assert np.all(np.diff([f.sequence for f in frames]) == 1)
    inside = np.count_nonzero((ts * 100 >= t0) & (ts * 100 < t1))
    assert abs(inside - (t1 - t0) / 20e6) <= 1
    assert ts[-1] * 100 > t1                                  # the clock kept up: no drift
    assert call.bot.stats().output_dropped == 0


@pytest.mark.parametrize("loss", [0.05, 0.20])
def test_loss_through_relay_frames_keep_flowing(call_factory, loss):
    call = call_factory(via_relay={"seed": 3, "loss": loss, "delay_ms": 5, "jitter_ms": 1})
    mixed = call.bot.subscribe(("mixed",), maxsize=1000)
    t = np.arange(150 * 320) / 16000
    speechlike = (6000 * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) *
                  np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    call.peer.send_buffered(speechlike)
    frames = collect_until_quiet(mixed, 3.2)
    # frames keep flowing at 50/s whatever the loss: contiguous, 20 ms apart
    assert len(frames) >= 150
    assert np.all(np.diff([f.sequence for f in frames]) == 1)
    assert np.all(np.diff([f.timestamp_100ns for f in frames]) == 200_000)
    st = call.bot.stats()
    dropped = call.relay.counters.dropped
    assert dropped > 0
    assert st.concealed + st.fec_recovered >= 0.5 * dropped
    assert sum(f.concealed or f.fec for f in frames) > 0
    if loss >= 0.2:
        assert st.fec_recovered > 0                          # in-band FEC repaired some


def test_dtmf_both_engines(call_factory):
    call = call_factory()
    events = call.bot.subscribe(("event",), maxsize=1000)
    call.peer.send_dtmf("159#", tone_ms=100, gap_ms=60)
    got = [e for e in collect(events, 1.5) if e.kind == "dtmf" and e.end]
    assert "".join(e.digit for e in got) == "159#"
    assert all(e.duration == 4800 for e in got)              # 100 ms at 48 kHz


async def test_async_iterators_and_back_pressure(call_factory):
    call = call_factory()
    call.peer.send_buffered(tone(600, 1.0, 8000))
    slow = call.bot.subscribe(("mixed",), maxsize=5, policy="drop_newest")
    frames = []
    async for frame in call.bot.mixed():
        frames.append(frame)
        if len(frames) == 25:
            break
    assert len(frames) == 25
    assert np.all(np.diff([f.sequence for f in frames]) == 1)
    await asyncio.sleep(0.2)
    assert slow.dropped > 10                                   # never read: newest dropped
    first = [slow.get(0) for _ in range(5)]
    assert [f.sequence for f in first] == list(range(first[0].sequence, first[0].sequence + 5))


class EnergyMeter(Processor):
    kinds = ("unmixed",)

    def __init__(self) -> None:
        self.frames = 0
        self.loud = 0

    def on_frame(self, frame) -> None:
        self.frames += 1
        self.loud += int(np.sqrt(np.mean(frame.pcm.astype(np.float64) ** 2)) > 1000)

    def result(self):
        return {"frames": self.frames, "loud": self.loud}


@pytest.mark.parametrize("shared", [False, True], ids=["thread", "worker-process"])
def test_processor(call_factory, shared):
    call = call_factory(shared=shared)
    runner = run_processor(EnergyMeter(), call.bot)        # returns once attached
    call.peer.send_buffered(tone(440, 1.0, 8000))
    time.sleep(1.6)
    result = runner.stop()
    assert result["loud"] >= 45 and result["frames"] >= result["loud"]

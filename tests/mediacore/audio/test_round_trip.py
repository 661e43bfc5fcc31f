"""Audio end to end on the one receive path: two engines on loopback with
SRTP, the calls' native graphs on a real staggered audio worker
(``mediacore.audio.path.AudioPath``): the bot's call receives, the peer's
call encodes and sends the PCM written to it. Tones and speech (Opus and
PCMU), 50 frames per second without drift, loss through the seeded relay,
DTMF both ways; then the call-media API on top (``MediaHost`` + ``CallMedia``
as the bot, a raw engine session plus an ``AudioPath`` send call as the
remote): async iteration and back-pressure, processors in a thread, inline
and in a worker process."""

from __future__ import annotations

import asyncio
import os
import queue
import time

import numpy as np
import pytest

from mediacore import MediaConfig, MediaHost, Processor, Source
from mediacore.audio.frames import MIXED, AudioFrame
from mediacore.audio.path import AudioPath
from mediacore.engine import Engine
from tests.support.relay import UdpRelay

from .conftest import best_lag, tone

PROFILE = "AES_CM_128_HMAC_SHA1_80"
TX_SSRC = 0xB0B0
BOT, PEER = 1, 2          # the two calls' tags on the path


class Received:
    """What a call's handlers got: frames (owned copies) and events in queues."""

    def __init__(self) -> None:
        self.mixed: queue.Queue[AudioFrame] = queue.Queue()
        self.unmixed: queue.Queue[AudioFrame] = queue.Queue()
        self.events: queue.Queue = queue.Queue()

    def on_frames(self, frames, kinds, seen_ns) -> None:
        for rec, kind in zip(frames, kinds.tolist()):
            if kind == MIXED:
                self.mixed.put(AudioFrame(np.array(rec), "mixed"))
            else:
                self.unmixed.put(AudioFrame(np.array(rec), "unmixed"))

    def on_event(self, event) -> None:
        self.events.put(event)


def get(q: queue.Queue, timeout: float):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return None


class Call:
    """Engine A (the bot, receiving) and engine B (the peer, sending); both
    calls' graphs on one audio worker of one path."""

    def __init__(self, codec: str = "opus", pt: int = 111, clock: int = 48000,
                 via_relay: dict | None = None, unmixed: bool = True, low_water_frames: int = 0,
                 send_queue_frames: int = 500, **graph_options) -> None:
        self.path = AudioPath(workers=1)
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
        self.sent = Received()
        self.peer = self.path.add_call(
            PEER, mixed=False, unmixed=False, on_frames=self.sent.on_frames,
            on_event=self.sent.on_event, send_out=send_stream.ring, engine=self.b,
            send_codec=codec, send_payload_type=pt, send_telephone_event_pt=101,
            low_water_frames=low_water_frames, send_queue_frames=send_queue_frames,
            **({"bitrate_bps": 32000} if codec == "opus" else {}))
        # 5 frames of look-ahead: slack for scheduling delays on a loaded CI machine
        graph_options.setdefault("prebuffer_frames", 5)
        self.got = Received()
        self.bot = self.path.add_call(BOT, payload_types={pt: codec}, telephone_event_pt=101,
                                      mixed=True, unmixed=unmixed, on_frames=self.got.on_frames,
                                      on_event=self.got.on_event, **graph_options)
        self.bot.add_source(self.sa, TX_SSRC, clock_rate=clock)

    def close(self) -> None:
        self.path.close()
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
        assert c.path.errors == []


def collect(q: queue.Queue, seconds: float) -> list:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        item = get(q, 0.05)
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


def collect_until_quiet(q: queue.Queue, want_seconds: float, limit: float = 20.0) -> list:
    """Frames until ``want_seconds`` of them arrived (or ``limit`` passes)."""
    out, deadline = [], time.monotonic() + limit
    while len(out) < want_seconds * 50 and time.monotonic() < deadline:
        item = get(q, 0.05)
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
    assert call.peer.send_state == "inactive"              # silence goes out until PCM is written
    sent = tone(1000, 2.0, 10000)
    assert call.peer.send_buffered(sent) == 100
    frames = collect_until_quiet(call.got.mixed, 2.6)
    snr, concealed = snr_without_concealment(sent, frames)
    assert snr > min_snr_db
    assert concealed < 10
    st = call.bot.stats()
    assert st.decode_errors == 0 and st.decoded >= 95
    assert st.unknown_payload_type == 0
    assert call.peer.stats().send_frames == 100
    # the send path went active for the tone and back to inactive after it
    states = [e.value for e in collect(call.sent.events, 0.3) if e.kind == "send_state"]
    assert states[-2:] == [1, 0]
    assert call.peer.send_state == "inactive"


def test_speech_round_trip_opus(call_factory, speech_16k):
    call = call_factory()
    n = len(speech_16k) // 320 * 320
    assert call.peer.send_buffered(speech_16k[:n]) == n // 320
    frames = collect_until_quiet(call.got.unmixed, n / 16000 + 0.3)
    assert {f.source_id for f in frames} == {TX_SSRC}
    assert {f.tag for f in frames} == {BOT}
    snr, concealed = snr_without_concealment(speech_16k[:n], frames)
    assert snr > 8.0 and concealed < 10


def test_send_buffered_never_drops_and_refills_on_low_water(call_factory):
    """A send queue of ~50 frames takes part of a 2 s clip; the rest goes in
    on each ``send_low_water`` event; every frame is sent, none dropped."""
    call = call_factory(low_water_frames=10, send_queue_frames=25)
    clip = tone(700, 2.0, 8000)
    queued = call.peer.send_buffered(clip)
    assert 25 <= queued < 100
    assert call.peer.send_queue_frames() >= queued - 2
    refills, deadline = 0, time.monotonic() + 10
    while queued < 100 and time.monotonic() < deadline:
        ev = get(call.sent.events, 0.1)
        if ev is not None and ev.kind == "send_low_water":
            assert ev.value < 10
            refills += 1
            queued += call.peer.send_buffered(clip[queued * 320:])
    assert queued == 100 and refills >= 1
    assert wait_for(lambda: call.peer.stats().send_frames == 100, 3.0)
    st = call.peer.stats()
    assert st.send_dropped == 0 and call.peer.send_pcm.stats().records_dropped == 0


def test_fifty_frames_per_second_without_drift(call_factory):
    """Over 3 s: one mixed frame per 20 ms of the media clock, contiguous
    sequence numbers, stamps on time.monotonic_ns's clock that keep up with
    it (no drift), whatever the consumer's scheduling."""
    call = call_factory(unmixed=False)
    t0 = time.monotonic_ns()
    time.sleep(3.0)
    t1 = time.monotonic_ns()
    frames = collect(call.got.mixed, 0.5)
    ts = np.array([f.timestamp_100ns for f in frames])
    assert np.all(np.diff(ts) == 200_000)                    # exactly 20 ms apart
    assert np.all(np.diff([f.sequence for f in frames]) == 1)
    inside = np.count_nonzero((ts * 100 >= t0) & (ts * 100 < t1))
    assert abs(inside - (t1 - t0) / 20e6) <= 1
    assert ts[-1] * 100 > t1                                  # the clock kept up: no drift
    assert call.bot.stats().output_dropped == 0
    assert call.path.output_dropped() == 0


@pytest.mark.parametrize("loss", [0.05, 0.20])
def test_loss_through_relay_frames_keep_flowing(call_factory, loss):
    call = call_factory(via_relay={"seed": 3, "loss": loss, "delay_ms": 5, "jitter_ms": 1})
    t = np.arange(150 * 320) / 16000
    speechlike = (6000 * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) *
                  np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    assert call.peer.send_buffered(speechlike) == 150
    frames = collect_until_quiet(call.got.mixed, 3.2)
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
    call.peer.send_dtmf("159#", tone_ms=100, gap_ms=60)
    got = [e for e in collect(call.got.events, 1.5) if e.kind == "dtmf" and e.end]
    assert "".join(e.digit for e in got) == "159#"
    assert all(e.duration == 4800 for e in got)              # 100 ms at 48 kHz
    assert all(e.source_id == TX_SSRC and e.tag == BOT for e in got)
    assert call.peer.stats().send_dtmf_packets > 0


def test_a_call_without_a_send_path_refuses_to_send(call_factory):
    call = call_factory()
    with pytest.raises(ValueError, match="no send path"):
        call.bot.send(np.zeros(320, np.int16))
    with pytest.raises(ValueError, match="no send path"):
        call.bot.send_dtmf("1")
    with pytest.raises(ValueError, match="320 int16"):
        call.peer.send(np.zeros(160, np.int16))
    with pytest.raises(ValueError, match="640 bytes"):
        call.peer.send(bytes(320))


def wait_for(cond, timeout: float = 5.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


# ---- the call-media API on the same path ---------------------------------------------------


class Remote:
    """The remote media endpoint of a ``CallMedia``: a raw engine session
    with the keys of the call's document (it protects with
    ``srtp.receiveKey`` and sends to the document's endpoint; the bot
    latches onto it) and an ``AudioPath`` call that sends the PCM written to
    it as Opus from ``TX_SSRC`` (silence while none is queued)."""

    def __init__(self, media) -> None:
        doc = MediaConfig.from_blob(media.config_blob())
        self.engine = Engine("127.0.0.1")
        self.engine.start()
        self.session = self.engine.add_session(
            (doc.endpoint.address, doc.endpoint.port), srtp_profile=doc.srtp.profile,
            tx_key=doc.srtp.receive_key_bytes, rx_key=doc.srtp.key_bytes)
        stream = self.session.add_send_stream(TX_SSRC, 111, "audio", 48000)
        self.path = AudioPath(workers=1)
        self.call = self.path.add_call(1, mixed=False, unmixed=False, send_out=stream.ring,
                                       engine=self.engine, send_codec="opus",
                                       send_telephone_event_pt=101, bitrate_bps=32000)

    def close(self) -> None:
        self.path.close()
        self.engine.close()


@pytest.fixture
def host():
    with MediaHost(audio_workers=1) as h:
        yield h


@pytest.fixture
def bot_and_remote(host):
    media = host.create_call("call-audio", mixed=True)
    remote = Remote(media)
    media.update_sources([Source(TX_SSRC, "p-peer", "Peer", "audio")])
    yield media, remote
    media.close()
    remote.close()


@pytest.mark.parametrize("which", ["speaker", "mixed"])
async def test_async_iteration_and_back_pressure(bot_and_remote, which):
    media, remote = bot_and_remote
    if which == "speaker":
        slow = media.audio("p-peer", queue_ms=100)    # 5 frames, never read: drop-oldest
        stream = media.audio("p-peer")
        identity = ("p-peer", "Peer", "call-audio")
    else:
        slow = media.mixed_audio(queue_ms=100)
        stream = media.mixed_audio()
        identity = (None, None, "call-audio")
    assert remote.call.send_buffered(tone(600, 1.0, 8000)) == 50
    frames = []
    async for frame in stream:
        frames.append(frame)
        if len(frames) == 25:
            break
    assert len(frames) == 25
    assert np.all(np.diff([f.sequence for f in frames]) == 1)
    assert {(f.participant_id, f.display_name, f.call_id) for f in frames} == {identity}
    assert {f.kind for f in frames} == {"unmixed" if which == "speaker" else "mixed"}
    await asyncio.sleep(0.2)
    assert slow.dropped > 10
    kept = [slow.get(0) for _ in range(5)]
    assert len(slow) == 0
    assert [f.sequence for f in kept] == list(range(kept[0].sequence, kept[0].sequence + 5))
    assert kept[-1].sequence >= frames[-1].sequence       # the newest were kept


class EnergyMeter(Processor):
    audio = "unmixed"

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def on_start(self, ctx) -> None:
        self.frames = 0
        self.loud = 0

    def on_audio(self, frame) -> None:
        assert frame.participant_id == "p-peer"
        self.frames += 1
        self.loud += int(np.sqrt(np.mean(frame.pcm.astype(np.float64) ** 2)) > 1000)

    def on_stop(self):
        return {"frames": self.frames, "loud": self.loud}


@pytest.mark.parametrize("mode", ["thread", "inline", "process"])
def test_processor(bot_and_remote, mode):
    media, remote = bot_and_remote
    runner = media.add_processor(EnergyMeter(mode))      # returns once started (process: attached)
    assert remote.call.send_buffered(tone(440, 1.0, 8000)) == 50
    time.sleep(1.6)
    result = media.close()["EnergyMeter"]
    assert result["loud"] >= 45 and result["frames"] >= result["loud"]
    assert runner.errors == 0

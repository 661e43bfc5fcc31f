"""The native audio graph, driven tick by tick (an unthreaded worker and a
test clock), fed with engine-format receive records written by the test."""

from __future__ import annotations

import numpy as np
import pytest

from mediacore._native import lib
from mediacore.audio import AudioDecoder, AudioEncoder, AudioEvent, AudioFrame, AudioWorker, Codec
from mediacore.audio.frames import EVENT, FRAME_RECORD_BYTES, MIXED, UNMIXED
from mediacore.audio.graph import AudioGraph
from mediacore.engine import RTP_RECORD_DTYPE
from mediacore.rings import Ring

from .conftest import tone

TICK = 20_000_000
T0 = 1_000_000_000_000


def rtp_record(ssrc: int, seq: int, ts: int, payload: bytes, pt: int = 111, lost: bool = False,
               marker: bool = False, arrival_ns: int = 0) -> bytes:
    h = np.zeros(1, RTP_RECORD_DTYPE)
    h["arrival_ns"], h["ssrc"], h["timestamp"] = arrival_ns, ssrc, ts & 0xFFFFFFFF
    h["sequence_number"], h["payload_type"], h["marker"] = seq & 0xFFFF, pt, int(marker)
    h["flags"] = lib.MC_RECORD_FLAG_LOST if lost else 0
    return h.tobytes() + (b"" if lost else payload)


class Rig:
    """An unthreaded worker, one graph, an input ring we write and an output
    ring we read; tick() advances the media clock by 20 ms."""

    def __init__(self, **options) -> None:
        self.worker = AudioWorker(thread=False)
        self.input = Ring.create(1 << 20, policy="drop")
        self.output = Ring.create(1 << 22, policy="drop")
        self.send_pcm = Ring.create(1 << 20, policy="drop") if options.get("send") else None
        self.send_out = Ring.create(1 << 20, policy="drop") if options.pop("send", False) else None
        self.graph = AudioGraph(self.worker, input=self.input, output=self.output,
                                send_pcm=self.send_pcm, send_out=self.send_out, **options)
        self.now = T0
        self.ticks = 0

    def feed(self, record: bytes) -> None:
        assert self.input.write(record, type=lib.MC_RECORD_RTP)

    def tick(self) -> None:
        self.worker.tick(self.now)
        self.now += TICK
        self.ticks += 1

    def drain(self):
        frames, events = [], []
        while True:
            batch = self.output.read_batch(512)
            if not len(batch):
                return frames, events
            for rec, typ in zip(batch, batch.types.tolist()):
                if typ == EVENT:
                    events.append(AudioEvent.from_bytes(rec))
                else:
                    assert len(rec) == FRAME_RECORD_BYTES
                    frames.append(AudioFrame.from_bytes(rec, "mixed" if typ == MIXED else "unmixed"))

    def close(self) -> None:
        self.graph.close()
        self.worker.close()


@pytest.fixture
def rig_factory():
    rigs = []

    def make(**options) -> Rig:
        rigs.append(Rig(**options))
        return rigs[-1]

    yield make
    for r in rigs:
        r.close()


def speakers_script(seconds_each: float = 1.0):
    """Three speakers (SSRC 11, 22, 33) talk in turns; each sends Opus every
    20 ms, a tone on its turn and near-silence otherwise."""
    ssrcs, freqs = (11, 22, 33), (300.0, 700.0, 1300.0)
    per = int(seconds_each * 50)
    encoders = {s: AudioEncoder(Codec.OPUS, bitrate_bps=32000) for s in ssrcs}
    rng = np.random.default_rng(5)
    packets = {s: [] for s in ssrcs}
    for i, (s, f) in enumerate(zip(ssrcs, freqs)):
        loud = tone(f, 3 * seconds_each, 8000)
        for k in range(3 * per):
            speaking = i * per <= k < (i + 1) * per
            pcm = (loud[k * 320:(k + 1) * 320] if speaking
                   else rng.normal(0, 3, 320).astype(np.int16))
            packets[s].append(encoders[s].encode(pcm))
    return ssrcs, freqs, per, packets


def test_three_speakers_in_turns(rig_factory):
    rig = rig_factory(mixed=True, unmixed=True)
    ssrcs, freqs, per, packets = speakers_script()
    for k in range(3 * per):
        for s in ssrcs:
            rig.feed(rtp_record(s, k, k * 960, packets[s][k], arrival_ns=rig.now))
        rig.tick()
    for _ in range(3):
        rig.tick()
    frames, events = rig.drain()
    mixed = [f for f in frames if f.kind == "mixed"]
    # one mixed frame per tick, exact 20 ms spacing on the media clock, no gaps
    assert len(mixed) == rig.ticks
    assert [f.sequence for f in mixed] == list(range(rig.ticks))
    assert np.all(np.diff([f.timestamp_100ns for f in mixed]) == TICK // 100)
    assert mixed[0].timestamp_100ns == T0 // 100
    delay = 1  # prebuffer of 2 records: playout starts one tick after the first record
    for i, (s, f) in enumerate(zip(ssrcs, freqs)):
        own = [fr for fr in frames if fr.kind == "unmixed" and fr.source_id == s]
        assert [fr.sequence for fr in own] == list(range(len(own)))
        energy = np.array([np.mean(fr.pcm.astype(np.float64) ** 2) for fr in own])
        turn = np.zeros(len(own), bool)
        turn[i * per + 3:(i + 1) * per] = True       # skip the codec's ramp
        quiet = np.ones(len(own), bool)
        quiet[max(0, i * per - 2):(i + 1) * per + 6] = False
        assert energy[turn].min() > 100 * energy[quiet].max()
        spectrum = np.abs(np.fft.rfft(np.concatenate([fr.pcm for fr in own])[
            (i * per + 5) * 320:((i + 1) * per - 5) * 320].astype(np.float64)))
        peak_hz = np.argmax(spectrum) * 16000 / ((per - 10) * 320)
        assert abs(peak_hz - f) < 10
        # the sender's RTP timestamps are carried
        assert own[10].rtp_timestamp == 10 * 960
        # active-speaker metadata: the speaker, and only it, mid-turn
        mid = mixed[i * per + per // 2 + delay]
        assert mid.active_speakers == [s] and not mid.is_silence
    dominant = [e for e in events if e.kind == "dominant_speaker"]
    assert [e.source_id for e in dominant] == list(ssrcs)
    for e, i in zip(dominant, range(3)):
        expected_t = (T0 + (i * per + delay) * TICK) // 100
        hangover = 300 * 10_000 + 3 * TICK // 100
        assert expected_t <= e.timestamp_100ns <= expected_t + hangover + 2 * TICK // 100
    assert [e.source_id for e in events if e.kind == "source_added"] == list(ssrcs)
    st = rig.graph.stats()
    # concealment only after the streams stopped (the 3 extra ticks)
    assert st.decoded == 3 * 3 * per and st.concealed <= 3 * 3 and st.decode_errors == 0


def test_loss_concealment_and_fec(rig_factory):
    rig = rig_factory(mixed=True)
    enc = AudioEncoder(Codec.OPUS, bitrate_bps=24000, inband_fec=True, packet_loss_pct=20)
    t = np.arange(200 * 320) / 16000
    pcm = (6000 * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) *
           np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    rng = np.random.default_rng(9)
    lost = rng.random(200) < 0.2
    for k in range(200):
        payload = enc.encode(pcm[k * 320:(k + 1) * 320])
        rig.feed(rtp_record(7, k, k * 960, payload, lost=bool(lost[k])))
        rig.tick()
    rig.tick()                                    # play out the look-ahead record
    frames, _ = rig.drain()
    assert len(frames) == 201
    st = rig.graph.stats()
    assert st.fec_recovered > 0.25 * lost.sum()
    assert st.fec_recovered + st.concealed >= lost.sum()
    assert st.decoded == (~lost).sum()
    assert sum(f.fec for f in frames) == st.fec_recovered


def test_underrun_then_source_timeout(rig_factory):
    rig = rig_factory(mixed=True, unmixed=True, source_timeout_ms=200)
    enc = AudioEncoder(Codec.OPUS)
    for k in range(5):
        rig.feed(rtp_record(5, k, k * 960, enc.encode(tone(440, 0.02))))
        rig.tick()
    for _ in range(20):
        rig.tick()
    frames, events = rig.drain()
    mixed = [f for f in frames if f.kind == "mixed"]
    assert len(mixed) == 25                      # the mix keeps flowing
    assert rig.graph.stats().underruns > 0
    assert [e.kind for e in events if e.kind.startswith("source")] == ["source_added",
                                                                        "source_removed"]
    assert rig.graph.stats().sources == 0


def test_dtmf_received_as_events(rig_factory):
    rig = rig_factory(mixed=True, telephone_event_pt=101)
    from mediacore.audio import DtmfSender
    tx = DtmfSender(48000)
    tx.start("4#", tone_ms=100, gap_ms=60)
    seq = 0
    while not tx.idle:
        packets, _ = tx.tick(rig.ticks * 960)
        for p in packets:
            rig.feed(rtp_record(9, seq, p.rtp_timestamp, p.payload, pt=101, marker=p.marker))
            seq += 1
        rig.tick()
    _, events = rig.drain()
    dtmf = [(e.digit, e.end, e.duration) for e in events if e.kind == "dtmf"]
    assert dtmf == [("4", False, 960), ("4", True, 4800), ("#", False, 960), ("#", True, 4800)]
    assert rig.graph.stats().dtmf_digits == 2


def test_bad_input_is_counted(rig_factory):
    rig = rig_factory(mixed=True, payload_types={111: "opus", 0: "PCMU"})
    rig.feed(rtp_record(1, 0, 0, b"\x00" * 10, pt=99))               # unknown payload type
    rig.feed(rtp_record(1, 1, 960, bytes([0x03, 0xFF, 1, 2])))         # corrupt Opus
    rig.feed(rtp_record(1, 2, 1920, b"\xff" * 1400))                   # nonsense, large
    rig.feed(rtp_record(2, 0, 0, b"\xff" * 160, pt=0))                 # a PCMU source too
    rig.feed(rtp_record(2, 1, 160, b"\xff" * 160, pt=0))
    for _ in range(5):
        rig.tick()
    frames, _ = rig.drain()
    st = rig.graph.stats()
    assert st.unknown_payload_type == 1 and st.decode_errors >= 2
    assert len(frames) == 5 and st.decoded >= 2


def test_send_path_paces_one_packet_per_tick(rig_factory):
    rig = rig_factory(mixed=False, send=True, send_payload_type=111, low_water_frames=5,
                      send_telephone_event_pt=101, dtx=False)
    pcm = tone(440, 0.4, 8000)
    for k in range(20):
        assert rig.send_pcm.write(pcm[k * 320:(k + 1) * 320])
    for _ in range(30):
        rig.tick()
    out = []
    while (rec := rig.send_out.read()) is not None:
        out.append(rec)
    assert len(out) == 30                                  # one packet per tick, no bursts
    hdr = np.frombuffer(b"".join(r[:8] for r in out), np.dtype(
        [("timestamp", "<u4"), ("marker", "u1"), ("payload_type", "u1"), ("flags", "<u2")]))
    assert np.all(np.diff(hdr["timestamp"].astype(np.int64)) == 960)
    assert hdr["marker"][0] == 1 and hdr["marker"][1:20].sum() == 0
    dec = AudioDecoder(Codec.OPUS)
    got = np.concatenate([dec.decode(r[8:]) for r in out[:20]]).astype(np.float64)
    assert abs(np.argmax(np.abs(np.fft.rfft(got[1600:]))) * 16000 / len(got[1600:]) - 440) < 5
    st = rig.graph.stats()
    assert st.send_frames == 20 and st.send_silence == 10 and st.send_packets == 30
    _, events = rig.drain()
    states = [e.value for e in events if e.kind == "send_state"]
    assert states == [lib.MC_AUDIO_SEND_ACTIVE, lib.MC_AUDIO_SEND_INACTIVE]
    low = [e for e in events if e.kind == "send_low_water"]
    assert len(low) == 1 and low[0].value == 4

    rig.graph.send_dtmf("1", tone_ms=60, gap_ms=40)
    for _ in range(8):
        rig.tick()
    recs = []
    while (rec := rig.send_out.read()) is not None:
        recs.append(rec)
    pts = [r[5] for r in recs]
    assert pts.count(101) == 3 + 2 and pts.count(111) == 8 - 3   # 3 tone ticks, 2 end resends


def test_send_dtx_skips_silence(rig_factory):
    rig = rig_factory(mixed=False, send=True, dtx=True)
    for _ in range(100):
        rig.tick()
    st = rig.graph.stats()
    assert st.send_dtx_skipped > 50 and st.send_packets + st.send_dtx_skipped == 100


def test_many_sources_no_limit_of_four(rig_factory):
    rig = rig_factory(mixed=True, unmixed=True)
    enc = AudioEncoder(Codec.OPUS)
    payload = enc.encode(tone(500, 0.02, 3000))
    for k in range(6):
        for s in range(100, 140):
            rig.feed(rtp_record(s, k, k * 960, payload))
        rig.tick()
    frames, _ = rig.drain()
    unmixed_ids = {f.source_id for f in frames if f.kind == "unmixed"}
    assert unmixed_ids == set(range(100, 140))
    mixed = [f for f in frames if f.kind == "mixed"]
    assert len(mixed[-1].active_speakers) == lib.MC_AUDIO_MAX_ACTIVE


def test_sequence_gaps_become_lost_slots_and_late_records_are_dropped(rig_factory):
    """Records in arrival order without LOST flags (the engine's direct mode):
    a gap in sequence numbers is a loss the next packet's FEC can repair; a
    record for a slot already played is late."""
    rig = rig_factory(mixed=True)
    enc = AudioEncoder(Codec.OPUS, bitrate_bps=24000, inband_fec=True, packet_loss_pct=20)
    t = np.arange(60 * 320) / 16000
    pcm = (6000 * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) *
           np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    payloads = [enc.encode(pcm[k * 320:(k + 1) * 320]) for k in range(60)]
    dropped = {10, 25, 26, 40}
    for k in range(60):
        if k not in dropped:
            rig.feed(rtp_record(3, 65530 + k, k * 960, payloads[k]))   # wraps 65535 -> 0
        rig.tick()
    rig.feed(rtp_record(3, 65530 + 10, 10 * 960, payloads[10]))      # far too late
    rig.tick()
    frames, _ = rig.drain()
    st = rig.graph.stats()
    assert len(frames) == 61
    assert st.late == 1
    assert st.underruns == 1                 # the 2-packet burst outlasts the 1-frame look-ahead
    # the underrun inserts one concealed frame (the delay grows by a frame; no slot is used up)
    assert st.fec_recovered + st.concealed == len(dropped) + st.underruns
    assert st.fec_recovered >= 2
    assert st.decoded == 60 - len(dropped) - st.underruns   # the last one waits behind it


def test_a_stalled_sender_delays_frames_instead_of_dropping_them(rig_factory):
    """Records in arrival order (direct mode) with a 120 ms stall and then a
    burst: every frame still plays, in order, after concealment for the stall."""
    rig = rig_factory(unmixed=True, mixed=False)
    enc = AudioEncoder(Codec.OPUS)
    payloads = [enc.encode(tone(300 + 10 * k, 0.02)) for k in range(40)]
    k = 0
    for tick in range(50):
        if 10 <= tick < 16:
            pass                                 # the sender stalls: nothing arrives
        elif tick == 16:
            while k <= 16:                       # ... then everything it owed at once
                rig.feed(rtp_record(4, k, k * 960, payloads[k]))
                k += 1
        elif k < 40:
            rig.feed(rtp_record(4, k, k * 960, payloads[k]))
            k += 1
        rig.tick()
    frames, _ = rig.drain()
    st = rig.graph.stats()
    assert st.late == 0 and st.overflow_dropped == 0
    assert st.decoded == 40
    played = [f.rtp_timestamp // 960 for f in frames if not f.concealed]
    assert played == list(range(40))


def test_graphs_share_one_output_ring_by_tag():
    """Many calls on one worker can feed one consumer: frames carry the tag."""
    worker = AudioWorker(thread=False)
    output = Ring.create(1 << 20, policy="drop")
    inputs = [Ring.create(1 << 16, policy="drop") for _ in range(3)]
    graphs = [AudioGraph(worker, input=r, output=output, tag=100 + i)
              for i, r in enumerate(inputs)]
    payload = AudioEncoder(Codec.OPUS).encode(tone(440, 0.02))
    for k in range(4):
        for i, r in enumerate(inputs):
            r.write(rtp_record(50 + i, k, k * 960, payload), type=lib.MC_RECORD_RTP)
        worker.tick(T0 + k * TICK)
    tags = []
    for rec, typ in zip(batch := output.read_batch(64), batch.types.tolist()):
        if typ == MIXED:
            tags.append(AudioFrame.from_bytes(rec, "mixed").tag)
    assert sorted(tags) == sorted([100, 101, 102] * 4)
    for g in graphs:
        g.close()
    worker.close()


def test_delay_added_by_underruns_is_taken_back_in_silence(rig_factory):
    """After a stall the source plays late by the frames concealed for it;
    once it is silent, queued frames beyond the look-ahead are skipped (one
    per tick, counted as shrunk) until the delay is back to normal."""
    rig = rig_factory(unmixed=True, mixed=False)
    enc = AudioEncoder(Codec.OPUS)
    loud = [enc.encode(tone(440, 0.02)) for _ in range(20)]
    quiet = [enc.encode(np.zeros(320, np.int16)) for _ in range(60)]
    payloads = loud + quiet
    k = 0
    for tick in range(90):
        if 10 <= tick < 18:
            pass                                 # a 160 ms stall during speech
        elif tick == 18:
            while k <= 18:
                rig.feed(rtp_record(6, k, k * 960, payloads[k]))
                k += 1
        elif k < len(payloads):
            rig.feed(rtp_record(6, k, k * 960, payloads[k]))
            k += 1
        rig.tick()
    frames, _ = rig.drain()
    st = rig.graph.stats()
    assert st.underruns >= 8 and st.late == 0
    played = [f.rtp_timestamp // 960 for f in frames if not f.concealed]
    assert played[:20] == list(range(20))        # the speech all played, in order
    assert st.shrunk >= 5                        # silence skipped to take the delay back
    assert st.decoded == len(played) and len(played) + st.shrunk <= len(payloads)
    assert len(payloads) - 1 - played[-1] <= 2   # the delay is back to the look-ahead


def test_a_worker_behind_leaves_records_in_the_input_ring_instead_of_dropping(rig_factory):
    """60 records at once (a worker that was starved while they arrived): the
    source queue fills, the rest waits in the input ring, and all play."""
    rig = rig_factory(unmixed=True, mixed=False)
    enc = AudioEncoder(Codec.OPUS)
    for k in range(60):
        rig.feed(rtp_record(8, k, k * 960, enc.encode(tone(500, 0.02))))
    for _ in range(64):
        rig.tick()
    frames, _ = rig.drain()
    st = rig.graph.stats()
    assert st.overflow_dropped == 0 and st.late == 0
    assert st.input_waits > 0
    assert st.records_in == 60 and st.decoded == 60
    assert [f.rtp_timestamp // 960 for f in frames if not f.concealed] == list(range(60))


@pytest.mark.parametrize("start_frames", [0, 1])
def test_fast_start_plays_the_first_frame_a_tick_sooner(rig_factory, start_frames):
    """start_frames=1: a new source's first frame plays on the tick after its
    first record instead of waiting for the look-ahead (prebuffer 2); the
    look-ahead is then built by one stretched frame while the source is
    silent, so afterwards a lost slot is rebuilt from the next packet's FEC
    as with the default start. No record is dropped either way."""
    rig = rig_factory(unmixed=True, mixed=False, start_frames=start_frames)
    enc = AudioEncoder(Codec.OPUS, bitrate_bps=24000, inband_fec=True, packet_loss_pct=20)
    rng = np.random.default_rng(3)
    quiet = rng.normal(0, 3, 60 * 320).astype(np.int16)
    loud = tone(440.0, 1.2, 8000)
    first_frame_tick = None
    lost = {40, 50}
    for k in range(60):
        pcm = quiet[k * 320:(k + 1) * 320] if k < 20 else loud[(k - 20) * 320:(k - 19) * 320]
        payload = enc.encode(pcm)
        rig.feed(rtp_record(7, k, k * 960, payload, lost=k in lost))
        rig.tick()
        frames, _ = rig.drain()
        if frames and first_frame_tick is None:
            first_frame_tick = k
    underruns = rig.graph.stats().underruns
    rig.tick()                                           # the look-ahead record
    st = rig.graph.stats()
    assert first_frame_tick == (0 if start_frames else 1)
    assert underruns == (1 if start_frames else 0)       # the look-ahead, built in silence
    assert st.late == 0 and st.decoded == 60 - len(lost)
    assert st.fec_recovered == len(lost)                 # the look-ahead was there for both


def test_idle_send_path_sends_canned_opus_silence_and_resumes_clean(rig_factory):
    """With nothing queued the graph sends a 3-byte Opus silence frame per tick
    without running the encoder (encoding zeros costs as much as speech); the
    encoder is reset before the next PCM, so speech after a pause starts clean."""
    rig = rig_factory(mixed=False, send=True, send_payload_type=111, dtx=False)
    pcm = tone(440, 0.4, 8000)
    for k in range(10):
        rig.send_pcm.write(pcm[k * 320:(k + 1) * 320])
    for _ in range(20):                      # 10 frames of tone, then 10 idle ticks
        rig.tick()
    for k in range(10, 20):
        rig.send_pcm.write(pcm[k * 320:(k + 1) * 320])
    for _ in range(10):
        rig.tick()
    out = []
    while (rec := rig.send_out.read()) is not None:
        out.append(rec[8:])
    assert len(out) == 30
    # the first idle tick is the encoder's own frame: it flushes the tone's end
    # out of the encoder's look-ahead; canned frames follow
    assert out[10] != b"\xf8\xff\xfe"
    assert all(p == b"\xf8\xff\xfe" for p in out[11:20])
    assert all(len(p) > 3 for p in out[:10] + out[20:])
    dec = AudioDecoder(Codec.OPUS)
    got = [dec.decode(p).astype(np.float64) for p in out]
    assert max(np.abs(g).max() for g in got[12:20]) == 0
    resumed = np.concatenate(got[22:30])
    peak_hz = np.argmax(np.abs(np.fft.rfft(resumed))) * 16000 / len(resumed)
    assert abs(peak_hz - 440) < 10
    st = rig.graph.stats()
    assert st.send_silence == 10 and st.send_frames == 20 and st.send_packets == 30

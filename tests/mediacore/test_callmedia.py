"""CallMedia and MediaHost end to end on loopback: a second engine plays the
remote media endpoint (SRTP with the keys of the call's document, Opus per
source id, RFC 4733 events, H.264 video), the call's media receives it with
identities, sends back, and exchanges video subscriptions in RTCP APP."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mediacore import (CallEnded, DtmfReceived, Engine, FramesDropped, MediaConfig, MediaHost,
                       ParticipantJoined, ParticipantLeft, Processor, ScreenShareStarted,
                       ScreenShareStopped, Source)
from mediacore.audio.codecs import AudioDecoder, AudioEncoder, Codec
from mediacore.audio.dtmf import DtmfSender, TelephoneEvent
from mediacore.subscriptions import APP_NAME, decode_subscriptions

ALICE, BOB = 10000, 10002
CAROL_VIDEO = 10001


class Remote:
    """The remote media endpoint of one call: sends each source's Opus audio
    every 20 ms (a tone per source), DTMF when asked, video when asked."""

    def __init__(self, media) -> None:
        doc = MediaConfig.from_blob(media.config_blob())
        self.doc = doc
        self.engine = Engine("127.0.0.1")
        self.engine.start()
        self.session = self.engine.add_session(
            (doc.endpoint.address, doc.endpoint.port), srtp_profile=doc.srtp.profile,
            tx_key=doc.srtp.receive_key_bytes, rx_key=doc.srtp.key_bytes)
        self.audio: dict[int, tuple] = {}
        self.dtmf: dict[int, DtmfSender] = {}
        self.video = {}
        self.events = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.bot_audio_ssrc = doc.section("audio").ssrcs[0]

    def add_audio(self, source_id: int, frequency_hz: float = 440.0) -> None:
        stream = self.session.add_send_stream(source_id, 111, "audio", 48000)
        self.audio[source_id] = (stream, AudioEncoder(Codec.OPUS), frequency_hz)

    def press(self, source_id: int, digits: str) -> None:
        sender = DtmfSender(48000, 20)
        sender.start(digits, 80, 80)
        self.dtmf[source_id] = sender

    def start(self) -> Remote:
        self._thread.start()
        return self

    def _run(self) -> None:
        t = np.arange(320)
        i = 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            for sid, (stream, enc, f) in list(self.audio.items()):
                ts = i * 960
                sender = self.dtmf.get(sid)
                if sender is not None:
                    packets, busy = sender.tick(ts)
                    for p in packets:
                        stream.send(p.payload, p.rtp_timestamp, p.marker, payload_type=101,
                                    wake=False)
                    if busy:
                        continue
                pcm = (6000 * np.sin(2 * np.pi * f * (t + i * 320) / 16000)).astype(np.int16)
                stream.send(enc.encode(pcm), ts, wake=False)
            self.engine.wake()
            self.events.extend(self.session.events())
            i += 1
            next_t += 0.02
            time.sleep(max(0.0, next_t - time.monotonic()))

    def subscriptions(self):
        """The newest subscription list the bot sent (APP MBVS), or None."""
        apps = [e for e in self.events if e.kind == "app" and e.name == APP_NAME]
        if not apps:
            return None
        return max((decode_subscriptions(e.data) for e in apps), key=lambda v: v[0])

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.engine.close()


@pytest.fixture
def host():
    with MediaHost(audio_workers=1) as h:
        yield h


def wait_for(cond, timeout=5.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Recorder(Processor):
    audio = "unmixed"

    def __init__(self, audio="unmixed", mode="thread", fail=False):
        self.audio = audio
        self.mode = mode
        self.fail = fail

    def on_start(self, ctx):
        self.ctx_call = ctx.call_id
        self.frames = {}
        self.timestamps = {}
        self.events = []

    def on_audio(self, frame):
        if self.fail:
            raise RuntimeError("processor bug")
        key = frame.display_name if frame.kind == "unmixed" else "mixed"
        self.frames[key] = self.frames.get(key, 0) + 1
        self.timestamps.setdefault(key, []).append(frame.timestamp_100ns)

    def on_event(self, event):
        self.events.append(event)

    def on_stop(self):
        return {"call": self.ctx_call, "frames": self.frames,
                "events": [type(e).__name__ for e in self.events],
                "monotonic": all(np.all(np.diff(v) > 0) for v in self.timestamps.values())}


def test_document_carries_both_keys_and_the_public_address():
    with MediaHost(audio_workers=1, public_address="127.0.0.2") as h:
        media = h.create_call("c1")
        doc = MediaConfig.from_blob(media.config_blob())
        assert doc.endpoint.address == "127.0.0.2" and doc.endpoint.port == h.port
        assert doc.srtp.key != doc.srtp.receive_key
        assert {m.kind for m in doc.media} == {"audio", "video", "vbss"}
        with pytest.raises(ValueError, match="already has media"):
            h.create_call("c1")


def test_host_refuses_an_unspecified_public_address():
    with pytest.raises(ValueError, match="public address"):
        MediaHost("0.0.0.0")


def test_each_speaker_with_identity_joins_and_leaves(host):
    media = host.create_call("call-a")
    remote = Remote(media)
    remote.add_audio(ALICE, 440)
    remote.add_audio(BOB, 660)
    media.update_sources([Source(ALICE, "p-alice", "Alice", "audio"),
                          Source(BOB, "p-bob", "Bob", "audio")])
    runner = media.add_processor(Recorder())
    events = media.events()
    bob_stream = media.audio("p-bob")
    remote.start()
    try:
        assert wait_for(lambda: len(bob_stream) >= 30)
        frame = bob_stream.get(1)
        assert frame.participant_id == "p-bob" and frame.display_name == "Bob"
        # the tone is Bob's (660 Hz), not Alice's: his own audio, not a mix
        spectrum = np.abs(np.fft.rfft(frame.pcm.astype(float)))
        assert abs(np.argmax(spectrum) * 16000 / 320 - 660) <= 50
        media.update_sources([Source(ALICE, "p-alice", "Alice", "audio")])   # Bob left
        assert list(bob_stream)     # what was queued, then the end of his stream
        assert bob_stream.closed
    finally:
        result = media.close()["Recorder"]
        remote.close()
    assert result["call"] == "call-a"
    assert result["frames"]["Alice"] >= 25 and result["frames"]["Bob"] >= 10
    assert result["monotonic"]
    assert result["events"][:2] == ["ParticipantJoined", "ParticipantJoined"]
    assert "ParticipantLeft" in result["events"] and result["events"][-1] == "CallEnded"
    seen = list(events)
    assert any(isinstance(e, ParticipantLeft) and e.participant_id == "p-bob" for e in seen)
    assert isinstance(seen[-1], CallEnded)
    assert runner.errors == 0


def test_dtmf_in_is_attributed(host):
    media = host.create_call("call-d")
    remote = Remote(media)
    remote.add_audio(ALICE)
    media.update_sources([Source(ALICE, "p-alice", "Alice", "audio")])
    events = media.events()
    remote.start()
    remote.press(ALICE, "12#")
    try:
        digits = []
        deadline = time.monotonic() + 5
        while len(digits) < 3 and time.monotonic() < deadline:
            ev = events.get(0.2)
            if isinstance(ev, DtmfReceived):
                assert ev.participant_id == "p-alice" and ev.display_name == "Alice"
                digits.append(ev.digit)
        assert digits == ["1", "2", "#"]
    finally:
        media.close()
        remote.close()


def test_send_audio_and_dtmf_reach_the_remote(host):
    media = host.create_call("call-s")
    remote = Remote(media)
    rx = remote.session.add_receive_stream(remote.bot_audio_ssrc, "audio", direct=True)
    remote.add_audio(ALICE)          # the remote must be heard first: the bot latches onto it
    media.update_sources([Source(ALICE, "p-alice", "Alice", "audio")])
    remote.start()
    try:
        playback = media.play_tone(1000, 600, -6)
        assert playback.wait(5)
        media.send_dtmf("5")
        time.sleep(0.6)
        batch = rx.read_batch(1000, timeout=1.0)
        pts = batch.payload_type
        assert (pts == 111).sum() >= 25
        events = [TelephoneEvent.parse(bytes(p)) for p, pt in zip(batch.payloads(), pts) if pt == 101]
        assert events and {e.event for e in events} == {5}
        dec = AudioDecoder(Codec.OPUS)
        loud = [np.sqrt(np.mean(dec.decode(bytes(p)).astype(float) ** 2))
                for p, pt in zip(batch.payloads(), pts) if pt == 111]
        assert max(loud) > 2000      # the tone, not the silence the graph sends when idle
    finally:
        media.close()
        remote.close()


def test_process_mode_processor_gets_identities(host):
    media = host.create_call("call-p")
    remote = Remote(media)
    remote.add_audio(ALICE)
    media.update_sources([Source(ALICE, "p-alice", "Alice", "audio")])
    media.add_processor(Recorder(mode="process"))
    remote.start()
    try:
        time.sleep(1.0)
    finally:
        result = media.close()["Recorder"]
        remote.close()
    assert result["frames"].get("Alice", 0) >= 25
    assert result["events"][0] == "ParticipantJoined" and result["events"][-1] == "CallEnded"


def test_a_failing_processor_is_isolated(host):
    media = host.create_call("call-f")
    remote = Remote(media)
    remote.add_audio(ALICE)
    media.update_sources([Source(ALICE, "p-alice", "Alice", "audio")])
    bad = media.add_processor(Recorder(fail=True))
    good = media.add_processor(Recorder(mode="inline"))
    remote.start()
    try:
        time.sleep(0.8)
    finally:
        results = media.close()
        remote.close()
    assert bad.errors >= 10
    assert good.errors == 0 and results["Recorder"]["frames"].get("Alice", 0) >= 20


class Slow(Processor):
    queue_ms = 100

    def on_start(self, ctx):
        self.events = []

    def on_audio(self, frame):
        time.sleep(0.05)

    def on_event(self, event):
        self.events.append(event)

    def on_stop(self):
        return self.events


def test_a_slow_processor_drops_oldest_and_says_so(host):
    media = host.create_call("call-slow")
    remote = Remote(media)
    remote.add_audio(ALICE)
    media.update_sources([Source(ALICE, "p-alice", "Alice", "audio")])
    runner = media.add_processor(Slow())
    remote.start()
    try:
        time.sleep(1.5)
    finally:
        events = media.close(timeout_s=10)["Slow"]
        remote.close()
    assert runner.dropped > 0
    assert any(isinstance(e, FramesDropped) and e.count > 0 for e in events)
    assert media.stats() is not None


def test_mixed_audio(host):
    media = host.create_call("call-m", mixed=True)
    remote = Remote(media)
    remote.add_audio(ALICE, 440)
    remote.add_audio(BOB, 660)
    media.update_sources([Source(ALICE, "p-alice", "Alice", "audio"),
                          Source(BOB, "p-bob", "Bob", "audio")])
    mixed = media.mixed_audio()
    remote.start()
    try:
        assert wait_for(lambda: len(mixed) >= 10)
        frames = [mixed.get(1) for _ in range(10)]
        assert all(f.kind == "mixed" and f.participant_id is None for f in frames)
        spectrum = np.abs(np.fft.rfft(np.concatenate([f.pcm for f in frames]).astype(float)))
        freqs = np.fft.rfftfreq(3200, 1 / 16000)
        peaks = {round(freqs[i]) for i in np.argsort(spectrum)[-4:]}
        assert any(abs(p - 440) < 20 for p in peaks) and any(abs(p - 660) < 20 for p in peaks)
    finally:
        media.close()
        remote.close()
    with pytest.raises(ValueError, match="mixed"):
        host.create_call("call-n").mixed_audio()


def test_screen_share_events_follow_the_source_map(host):
    media = host.create_call("call-ss")
    events = media.events()
    owner = ("p-dan", "Dan")
    media.update_sources([Source(20000, *owner, "audio"), Source(20005, *owner, "screen", False)])
    media.update_sources([Source(20000, *owner, "audio"), Source(20005, *owner, "screen", True)])
    media.update_sources([Source(20000, *owner, "audio"), Source(20005, *owner, "screen", False)])
    media.close()
    kinds = [type(e) for e in events]
    assert kinds == [ParticipantJoined, ScreenShareStarted, ScreenShareStopped, CallEnded]


def test_bad_sources_are_refused():
    with pytest.raises(ValueError, match="kind"):
        Source(1, "p", "P", "camera")
    with pytest.raises(ValueError, match="32-bit"):
        Source(1 << 32, "p", "P", "audio")


def test_video_follows_subscriptions_in_the_media_plane(host):
    from mediacore.video.sockets import VideoSendSocket

    media = host.create_call("call-v")
    remote = Remote(media)
    remote.add_audio(ALICE)
    sender = VideoSendSocket(remote.session, CAROL_VIDEO)
    media.update_sources([Source(ALICE, "p-alice", "Alice", "audio"),
                          Source(CAROL_VIDEO, "p-carol", "Carol", "video")])
    remote.start()
    stop = threading.Event()

    def send_video():
        y = np.zeros((360, 640, 3), np.uint8)
        while not stop.is_set():
            y[:] = (y[0, 0, 0] + 7) % 255
            sender.send_frame(y)
            sender.handle_events(remote.events[-20:])
            time.sleep(1 / 15)

    t = threading.Thread(target=send_video, daemon=True)
    try:
        assert wait_for(lambda: remote.session.engine.stats().datagrams_in > 0)
        q = media.video("p-carol", (640, 360), maxsize=8)
        assert wait_for(lambda: (remote.subscriptions() or (0, []))[1] == [(CAROL_VIDEO, (640, 360))])
        t.start()
        frame = None
        deadline = time.monotonic() + 8
        while frame is None and time.monotonic() < deadline:
            frame = q.get(0.2)
        assert frame is not None, "no video frame arrived"
        assert (frame.width, frame.height) == (640, 360)
        assert frame.participant_id == "p-carol" and frame.kind == "video"
        assert abs(frame.timestamp_100ns - time.monotonic_ns() // 100) < 50_000_000
        q.close()                                          # unsubscribe
        assert wait_for(lambda: remote.subscriptions()[1] == [])
    finally:
        stop.set()
        if t.is_alive():
            t.join(5)
        media.close()
        remote.close()


def test_a_receive_only_call_gets_every_frame_and_sends_no_audio(host):
    """send_audio=False: the document's audio section is receive-only without
    an SSRC, frames still reach processors with identities, and the call sends
    no audio (the remote's receive stream for the bot stays empty)."""
    media = host.create_call("call-listen", video=False, screen_share=False, send_audio=False)
    doc = MediaConfig.from_blob(media.config_blob())
    audio = doc.section("audio")
    assert audio.direction == "recvonly" and audio.ssrcs == () and not audio.sends
    got = []

    class Listen(Processor):
        mode = "inline"

        def on_audio_batch(self, batch):
            got.extend(f.participant_id for f in batch)

    media.update_sources([Source(ALICE, "p-alice", "Alice", "audio")])
    media.add_processor(Listen())
    remote = Engine("127.0.0.1")
    remote.start()
    try:
        session = remote.add_session((doc.endpoint.address, doc.endpoint.port),
                                     srtp_profile=doc.srtp.profile,
                                     tx_key=doc.srtp.receive_key_bytes, rx_key=doc.srtp.key_bytes)
        stream = session.add_send_stream(ALICE, 111, "audio", 48000)
        enc = AudioEncoder(Codec.OPUS)
        t = np.arange(320)
        for i in range(50):
            pcm = (6000 * np.sin(2 * np.pi * 440 * (t + i * 320) / 16000)).astype(np.int16)
            stream.send(enc.encode(pcm), i * 960)
            time.sleep(0.02)
        assert wait_for(lambda: len(got) >= 40)
        assert set(got) == {"p-alice"}
        with pytest.raises(ValueError, match="send_audio=False"):
            media.send_audio(np.zeros(320, np.int16))
        stats = media.stats()
        assert all(s.direction == "receive" for s in stats.streams)
        st = host.stats()
        assert st.send_streams == 0
        assert st.datagrams_out == st.rtcp_out          # RTCP receiver reports only, no RTP
    finally:
        media.close()
        remote.close()

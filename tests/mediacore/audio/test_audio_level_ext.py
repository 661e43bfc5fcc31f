"""RFC 6464 audio levels carried in RTP header extensions (RFC 8285 one- and
two-byte forms): parsed by the engine into the receive records, used by the
audio graph for active speakers and the dominant speaker (measured energy
only when a source sends no level), written by the send path from the PCM
being sent, and negotiated through the media configuration."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from mediacore._native import lib

from mediacore.audio import AudioEncoder, AudioEvent, AudioFrame, AudioWorker, Codec
from mediacore.audio.frames import EVENT, FRAME_RECORD_BYTES, MIXED
from mediacore.audio.graph import AudioGraph
from mediacore.audio.path import AudioPath
from mediacore.engine import RTP_RECORD_DTYPE, Engine
from mediacore.mediaconfig import AUDIO_LEVEL_URI, MediaConfig, negotiate
from mediacore.rings import Ring
from mediacore.rtp import (
    ONE_BYTE,
    TWO_BYTE,
    RtpPacket,
    audio_level,
    audio_level_element,
)

from .conftest import tone

TICK = 20_000_000
T0 = 1_000_000_000_000
LOUD_SILENCED, QUIET_VOICED, ENERGY_ONLY = 0xA1, 0xB2, 0xC3


class Receiver:
    """Engine (no I/O thread: packets injected on a test clock) -> jitter
    buffer -> one shared ring -> an unthreaded audio graph."""

    def __init__(self, audio_level_id: int, ssrcs, **graph_options) -> None:
        self.engine = Engine("127.0.0.1", thread=False)
        self.session = self.engine.add_session(None)
        self.input = Ring.create(1 << 20, policy="drop")
        for ssrc in ssrcs:
            self.session.add_receive_stream(ssrc, "audio", 48000, ring=self.input,
                                            audio_level_id=audio_level_id)
        self.worker = AudioWorker(thread=False)
        self.output = Ring.create(1 << 22, policy="drop")
        self.graph = AudioGraph(self.worker, input=self.input, output=self.output, mixed=True,
                                unmixed=True, **graph_options)
        self.now = T0

    def step(self, datagrams: list[bytes]) -> None:
        """One 20 ms period: the datagrams arrive 1 ms apart, then the graph ticks."""
        self.engine.inject(datagrams, now_ns=self.now, step_ns=1_000_000)
        self.engine.poll(self.now + 10_000_000)
        self.worker.tick(self.now + 10_000_000)
        self.now += TICK

    def drain(self):
        frames, events = [], []
        while len(batch := self.output.read_batch(512)):
            for rec, typ in zip(batch, batch.types.tolist()):
                if typ == EVENT:
                    events.append(AudioEvent.from_bytes(rec))
                elif len(rec) == FRAME_RECORD_BYTES:
                    frames.append(AudioFrame.from_bytes(rec, "mixed" if typ == MIXED else "unmixed"))
        return frames, events

    def close(self) -> None:
        self.graph.close()
        self.worker.close()
        self.engine.close()


def packet(ssrc: int, k: int, payload: bytes, ext: bytes | None, profile: int) -> bytes:
    return RtpPacket(payload_type=111, sequence_number=k, timestamp=960 * k, ssrc=ssrc,
                     extension_profile=profile, extension=ext, payload=payload).serialize()


@pytest.mark.parametrize("ext_id,profile", [(3, ONE_BYTE), (14, ONE_BYTE), (200, TWO_BYTE),
                                            (7, TWO_BYTE)])
def test_active_speakers_follow_the_extension_not_the_energy(ext_id, profile):
    """A sends a loud tone but its extension says silence (V=0, 127 -dBov); B
    sends digital silence but its extension says voice at -10 dBov; C sends
    a quieter tone and no extension (measured energy decides for it)."""
    loud, quiet = tone(1000, 3, 12000), tone(500, 3, 3000)
    enc = {s: AudioEncoder(Codec.OPUS, bitrate_bps=32000)
           for s in (LOUD_SILENCED, QUIET_VOICED, ENERGY_ONLY)}
    rx = Receiver(ext_id, enc)
    try:
        for k in range(100):
            sl = slice(k * 320, (k + 1) * 320)
            rx.step([
                packet(LOUD_SILENCED, k, enc[LOUD_SILENCED].encode(loud[sl]),
                       audio_level_element(False, 127, profile, ext_id), profile),
                packet(QUIET_VOICED, k, enc[QUIET_VOICED].encode(np.zeros(320, np.int16)),
                       audio_level_element(True, 10, profile, ext_id), profile),
                packet(ENERGY_ONLY, k, enc[ENERGY_ONLY].encode(quiet[sl]), None, 0),
            ])
        frames, events = rx.drain()
        stats = rx.graph.stats()
    finally:
        rx.close()
    mixed = [f for f in frames if f.kind == "mixed"]
    assert len(mixed) == 100
    steady = mixed[30:]
    # B (louder by its extension, -10 dBov) first, then C (~ -21 dBov measured); never A
    assert all(f.active_speakers == [QUIET_VOICED, ENERGY_ONLY] for f in steady), \
        {tuple(f.active_speakers) for f in steady}
    dominant = [e for e in events if e.kind == "dominant_speaker"]
    assert dominant and dominant[-1].source_id == QUIET_VOICED
    assert all(e.source_id != LOUD_SILENCED for e in dominant)
    unmixed = {s: [f for f in frames if f.kind == "unmixed" and f.source_id == s][30:]
               for s in enc}
    assert all(f.is_silence for f in unmixed[LOUD_SILENCED])
    assert not any(f.is_silence for f in unmixed[QUIET_VOICED])
    assert not any(f.is_silence for f in unmixed[ENERGY_ONLY])
    # the frame's own level is still measured from its PCM
    assert np.median([f.level for f in unmixed[LOUD_SILENCED]]) < 15
    assert np.median([f.level for f in unmixed[QUIET_VOICED]]) > 90
    assert stats.level_ext_malformed == 0
    assert stats.level_ext_frames >= 2 * 90


def test_without_a_negotiated_id_the_extension_is_ignored():
    """The same packets on streams without audio_level_id: energy decides."""
    loud = tone(1000, 2, 12000)
    enc = AudioEncoder(Codec.OPUS, bitrate_bps=32000)
    rx = Receiver(0, [LOUD_SILENCED])
    try:
        for k in range(60):
            rx.step([packet(LOUD_SILENCED, k, enc.encode(loud[k * 320:(k + 1) * 320]),
                            audio_level_element(False, 127, ONE_BYTE, 3), ONE_BYTE)])
        frames, _ = rx.drain()
        stats = rx.graph.stats()
    finally:
        rx.close()
    mixed = [f for f in frames if f.kind == "mixed"][20:]
    assert all(f.active_speakers == [LOUD_SILENCED] for f in mixed)
    assert stats.level_ext_frames == 0


GARBAGE = [
    # (profile, extension data): each has an element with our id that is not one valid byte,
    # or an element chain that runs past the block
    (ONE_BYTE, bytes([0x31, 0x80, 0x10, 0x00])),        # id 3, L=1: two bytes
    (ONE_BYTE, bytes([0x1F, 0x00, 0x00, 0x00])),        # id 1 claims 16 bytes: past the end
    (ONE_BYTE, bytes([0x05, 0x00, 0x00, 0x00])),        # id 0 with a length (RFC 8285 4.2)
    (TWO_BYTE, bytes([0x03, 0x00, 0x00, 0x00])),        # id 3, length 0
    (TWO_BYTE, bytes([0x03, 0x09, 0x80, 0x00])),        # id 3 claims 9 bytes
    (TWO_BYTE, bytes([0x00, 0x00, 0x00, 0x03])),        # id 3 header cut by the block end
]


def test_garbage_extensions_are_counted_not_fatal():
    loud = tone(1000, 3, 12000)
    enc = AudioEncoder(Codec.OPUS, bitrate_bps=32000)
    rx = Receiver(3, [LOUD_SILENCED])
    n = 120
    try:
        for k in range(n):
            profile, ext = GARBAGE[k % len(GARBAGE)]
            if k % 4 == 3:   # an unknown profile's block, and no block: ignored, not counted
                profile, ext = (0x1234, bytes(4)) if k % 8 == 3 else (0, None)
            rx.step([packet(LOUD_SILENCED, k, enc.encode(loud[k * 320:(k + 1) * 320]), ext,
                            profile)])
        frames, _ = rx.drain()
        stats = rx.graph.stats()
        recv = rx.session.receive_streams[LOUD_SILENCED].stats()
    finally:
        rx.close()
    garbage = sum(1 for k in range(n) if k % 4 != 3)
    assert recv.malformed == 0 and recv.packets == n
    assert stats.level_ext_malformed == garbage
    assert stats.decode_errors == 0 and stats.decoded >= n - 5
    # no valid level ever arrived: activity from the measured energy
    assert stats.level_ext_frames == 0
    mixed = [f for f in frames if f.kind == "mixed"][20:]
    assert mixed and all(f.active_speakers == [LOUD_SILENCED] for f in mixed)


@pytest.mark.parametrize("ext_id", [5, 100])
def test_send_path_writes_the_level_of_the_pcm_sent(ext_id):
    """The graph measures each frame it sends; the engine writes the
    extension (one-byte form for ids <= 14, else two-byte)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(2.0)
    path = AudioPath(workers=1)
    engine = Engine("127.0.0.1")
    engine.start()
    session = engine.add_session(sink.getsockname())
    stream = session.add_send_stream(0x5E4D, payload_type=111, audio_level_id=ext_id)
    peer = path.add_call(1, mixed=False, unmixed=False, send_out=stream.ring, engine=engine,
                         send_payload_type=111, bitrate_bps=32000)
    try:
        loud = tone(1000, 1.0, 10000)       # RMS 7071: -13.3 dBov -> level 13
        for k in range(50):
            assert peer.send(loud[k * 320:(k + 1) * 320])
        got = []
        while len(got) < 120:
            data = sink.recv(2048)
            if (data[1] & 0x7F) != 111:
                continue
            pkt = RtpPacket.parse(data)
            assert pkt.extension_profile == (ONE_BYTE if ext_id <= 14 else TWO_BYTE)
            got.append(audio_level(data, ext_id))
    finally:
        path.close()
        engine.close()
        sink.close()
    assert None not in got
    voiced = [lv for v, lv in got if v]
    silent = [lv for v, lv in got if not v]
    assert 45 <= len(voiced) <= 50                 # the 50 tone frames, at most a few cut by start-up
    assert all(12 <= lv <= 15 for lv in voiced)
    assert len(silent) >= 60 and all(lv == 127 for lv in silent)   # then silence, V=0


def test_media_config_negotiates_the_audio_level_ids():
    bot = MediaConfig.generate("127.0.0.1", 1000, role="bot")
    d = MediaConfig.generate("127.0.0.1", 2000, role="remote",
                             media_session_id=bot.media_session_id).to_json()
    assert bot.section("audio").extension_id(AUDIO_LEVEL_URI) == 1
    d["media"][0]["extmap"] = [{"id": 9, "uri": "urn:example:other"},
                               {"id": 12, "uri": AUDIO_LEVEL_URI}]
    remote = MediaConfig.from_json(d)
    [plan] = negotiate(bot, remote)
    assert (plan.send_audio_level_id, plan.recv_audio_level_id) == (1, 12)
    [back] = negotiate(remote, bot)
    assert (back.send_audio_level_id, back.recv_audio_level_id) == (12, 1)
    d["media"][0]["extmap"] = []
    [plan] = negotiate(bot, MediaConfig.from_json(d))
    assert (plan.send_audio_level_id, plan.recv_audio_level_id) == (0, 0)
    from mediacore.mediaconfig import MediaConfigError
    for bad, match in (([{"id": 0, "uri": AUDIO_LEVEL_URI}], r"extmap\[0\]\.id"),
                       ([{"id": 3, "uri": "a"}, {"id": 3, "uri": "b"}], "ids must be unique"),
                       ([{"id": 3, "uri": "a"}, {"id": 4, "uri": "a"}], "appear once")):
        d["media"][0]["extmap"] = bad
        with pytest.raises(MediaConfigError, match=match):
            MediaConfig.from_json(d)


def test_records_carry_level_and_voice_flag():
    """The record layout: flag bits and the level in bits 8..14."""
    engine = Engine("127.0.0.1", thread=False)
    try:
        session = engine.add_session(None)
        stream = session.add_receive_stream(77, "audio", 48000, direct=True, audio_level_id=2)
        engine.inject([packet(77, 0, b"\x01", audio_level_element(True, 42, ONE_BYTE, 2), ONE_BYTE),
                       packet(77, 1, b"\x01", audio_level_element(False, 127, TWO_BYTE, 2),
                              TWO_BYTE),
                       packet(77, 2, b"\x01", None, 0)])
        headers = np.frombuffer(b"".join(bytes(r[:24]) for r in stream.ring.read_batch(8)),
                                RTP_RECORD_DTYPE)
    finally:
        engine.close()
    flags = headers["flags"].tolist()
    assert flags == [lib.MC_RECORD_FLAG_AUDIO_LEVEL | lib.MC_RECORD_FLAG_VOICE | 42 << 8,
                     lib.MC_RECORD_FLAG_AUDIO_LEVEL | 127 << 8, 0]

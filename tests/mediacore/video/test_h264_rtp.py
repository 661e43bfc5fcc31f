"""RFC 6184 packetizer and depacketizer (native) against a pure-Python
reference depacketizer kept here as the oracle, aiortc's H.264 payloader and
depayloader as an independent peer, ffmpeg's RTP muxer, and PyAV decoding."""

from __future__ import annotations

import random
import socket
import struct
import subprocess

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mediacore import Ring
from mediacore._native import lib
from mediacore.errors import InvalidState
from mediacore.video.h264_rtp import (
    FRAME_KEY,
    FRAME_PARAMS_INSERTED,
    FRAME_RESYNC,
    EncodedVideoFrame,
    H264Depacketizer,
    H264Packetizer,
    RtpPayload,
    parse_rtp,
    split_annexb,
)

START = b"\x00\x00\x00\x01"


# ---- the oracle: RFC 6184 section 5.6-5.8, lossless input only -------------

def reference_depacketize(packets: list[RtpPayload]) -> list[tuple[int, list[bytes]]]:
    """(timestamp, NAL units) per access unit, closed on the marker bit."""
    frames: list[tuple[int, list[bytes]]] = []
    nals: list[bytes] = []
    fu: bytearray | None = None
    for p in packets:
        data = p.payload
        nal_type = data[0] & 0x1F
        if 1 <= nal_type <= 23:
            nals.append(bytes(data))
        elif nal_type == 24:
            pos = 1
            while pos < len(data):
                size = int.from_bytes(data[pos:pos + 2], "big")
                nals.append(bytes(data[pos + 2:pos + 2 + size]))
                pos += 2 + size
        elif nal_type == 28:
            start, end = data[1] & 0x80, data[1] & 0x40
            if start:
                fu = bytearray([(data[0] & 0xE0) | (data[1] & 0x1F)])
            assert fu is not None
            fu += data[2:]
            if end:
                nals.append(bytes(fu))
                fu = None
        else:
            raise AssertionError(f"unexpected NAL type {nal_type}")
        if p.marker:
            frames.append((p.timestamp, nals))
            nals = []
    return frames


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(START + n for n in nals)


def nal_types(nals: list[bytes]) -> list[int]:
    return [n[0] & 0x1F for n in nals]


# ---- strategies ---------------------------------------------------------

def _nal(nal_type: int, size: int, rnd: random.Random, nri: int = 3) -> bytes:
    # bodies without zero bytes never contain start-code emulation
    return bytes([(nri << 5) | nal_type]) + bytes(rnd.randrange(1, 256) for _ in range(size))


@st.composite
def access_units(draw):
    """A short stream: IDR access units (with or without SPS/PPS) and P frames."""
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    units = []
    count = draw(st.integers(1, 6))
    for i in range(count):
        if i == 0 or draw(st.booleans()):
            nals = []
            if i == 0 or draw(st.booleans()):
                nals += [_nal(7, draw(st.integers(3, 40)), rnd), _nal(8, draw(st.integers(1, 8)), rnd)]
            if draw(st.booleans()):
                nals.append(_nal(6, draw(st.integers(1, 60)), rnd, nri=0))
            for _ in range(draw(st.integers(1, 3))):
                nals.append(_nal(5, draw(st.integers(0, 6000)), rnd))
        else:
            nals = [_nal(1, draw(st.integers(0, 3000)), rnd, nri=2)
                    for _ in range(draw(st.integers(1, 3)))]
        units.append(nals)
    return units


# ---- round trips ---------------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(units=access_units(), mtu=st.integers(3, 1500), first_sequence=st.integers(0, 65535))
def test_round_trip_against_oracle(units, mtu, first_sequence):
    packetizer = H264Packetizer(max_payload=mtu, ssrc=0xABCD, first_sequence=first_sequence,
                                max_packets=20000)
    depacketizer = H264Depacketizer()
    sent, frames = [], []
    sps = pps = None
    for i, nals in enumerate(units):
        packets = packetizer.packetize(annexb(nals), 3000 * i)
        assert packets
        parsed = [parse_rtp(p) for p in packets]
        for j, p in enumerate(parsed):
            assert len(p.payload) <= mtu
            assert p.marker == (j == len(parsed) - 1)
            assert p.timestamp == 3000 * i
            assert p.sequence == (first_sequence + len(sent) + j) & 0xFFFF
        sent += parsed
        frames += depacketizer.push(parsed)
        # what must come out: the input, with cached SPS/PPS before an IDR lacking them
        types = nal_types(nals)
        if 7 in types:
            sps = nals[types.index(7)]
        if 8 in types:
            pps = nals[types.index(8)]
        if types.count(5) and 7 not in types:
            first_idr = types.index(5)
            nals = nals[:first_idr] + [sps, pps] + nals[first_idr:]
        units[i] = nals
    oracle = reference_depacketize(sent)
    assert [annexb(n) for _, n in oracle] == [annexb(n) for n in units]
    assert [f.data for f in frames] == [annexb(n) for n in units]
    assert [f.rtp_timestamp for f in frames] == [3000 * i for i in range(len(units))]
    assert [f.key_frame for f in frames] == [5 in nal_types(n) for n in units]
    stats = depacketizer.stats()
    assert stats.frames == len(units) and stats.frames_dropped == 0
    assert stats.sequence_gaps == 0 and stats.malformed_packets == 0


def test_sps_pps_travel_in_one_stap_a_and_precede_every_idr():
    rnd = random.Random(1)
    sps, pps = _nal(7, 20, rnd), _nal(8, 4, rnd)
    packetizer = H264Packetizer(max_payload=1200)
    first = [parse_rtp(p) for p in packetizer.packetize(annexb([sps, pps, _nal(5, 5000, rnd)]), 0)]
    assert first[0].payload[0] & 0x1F == 24
    (_, stap_nals), = reference_depacketize([RtpPayload(first[0].payload, 0, 0, True)])
    assert stap_nals == [sps, pps]
    assert all(p.payload[0] & 0x1F == 28 for p in first[1:])
    later = [parse_rtp(p) for p in packetizer.packetize(START + _nal(5, 2000, rnd), 3000)]
    (ts, nals), = reference_depacketize(later)
    assert nals[:2] == [sps, pps] and nal_types(nals) == [7, 8, 5]
    assert packetizer.stats().params_inserted == 1


def test_fu_a_fragments_are_balanced():
    packets = H264Packetizer(max_payload=1002, rtp_header=False).packetize(
        START + bytes([0x65]) + bytes(range(1, 201)) * 15, 0)
    # 3000 bytes after the NAL header: three fragments of 1000 + 2 header bytes
    assert [len(p) for p in packets] == [1002, 1002, 1002]
    assert [p[1] & 0xC0 for p in packets] == [0x80, 0x00, 0x40]


def test_ring_output_is_zero_copy_records():
    ring = Ring.create(1 << 22)
    depacketizer = H264Depacketizer(ring=ring, max_frame_bytes=1 << 20, ssrc=77)
    packetizer = H264Packetizer()
    rnd = random.Random(2)
    units = [[_nal(7, 10, rnd), _nal(8, 3, rnd), _nal(5, 20000, rnd)],
             [_nal(1, 700, rnd)], [_nal(1, 5000, rnd)]]
    for i, nals in enumerate(units):
        assert depacketizer.push([parse_rtp(p, arrival_ns=i)
                                  for p in packetizer.packetize(annexb(nals), i * 3000)]) == []
    frames = depacketizer.read_frames()
    assert [f.data for f in frames] == [annexb(n) for n in units]
    assert frames[0].flags & FRAME_KEY and frames[0].flags & FRAME_RESYNC
    assert {f.ssrc for f in frames} == {77}
    assert ring.stats().records_written == 3


def _receive_records(packets: list[bytes], first_sequence: int = 0) -> list[bytes]:
    """The engine's receive records (mc_rtp_record + payload) of RTP packets."""
    out = []
    for i, raw in enumerate(packets):
        p = parse_rtp(raw)
        out.append(struct.pack("<qIIHBBHH", 1000 + i, 0x1234, p.timestamp,
                               (first_sequence + i) & 0xFFFF, 96, int(p.marker), 0, 0) + p.payload)
    return out


@pytest.mark.parametrize("in_place", [False, True], ids=["copied", "in-place"])
def test_drain_frames_hands_out_every_frame_once_and_releases_them_next_turn(h264_stream,
                                                                             in_place):
    """A worker's turn in one call: the frames (views into the frame ring, or
    into the receive ring when assembled in place over their packets) equal
    the encoder's access units, stay valid until the next call, which
    releases them (and the receive records they stand on); copying, a small
    frame ring makes the depacketizer wait (packets stay in the receive ring)
    rather than drop a frame."""
    rtp_ring, frames_ring = Ring.create(1 << 22), Ring.create(1 << 17)
    rtp_ring.set_rewind(1 << 20)
    depacketizer = H264Depacketizer(ring=frames_ring, ssrc=9, in_place=in_place)
    packetizer = H264Packetizer()
    units = h264_stream.access_units
    packets = [raw for i, au in enumerate(units) for raw in packetizer.packetize(au, i * 3000)]
    assert rtp_ring.write_batch(_receive_records(packets), type=lib.MC_RECORD_RTP) == len(packets)
    got: list[bytes] = []
    turns = 0
    while len(got) < len(units) and turns < 200:
        turns += 1
        frames = depacketizer.drain_frames(rtp_ring, 1024)
        assert all(isinstance(f.data, memoryview) for f in frames)
        if frames:
            held = frames_ring.stats()
            assert held.records_read + len(frames) == held.records_written
            if in_place:
                assert rtp_ring.stats().used_bytes > 0   # the frames' packets, held
        got += [bytes(f.data) for f in frames]
        assert all(f.ssrc == 9 and f.packets >= 1 for f in frames)
    assert [split_annexb(g) for g in got] == [split_annexb(u) for u in units]
    stats = depacketizer.stats()
    assert stats.frames == len(got) and stats.frames_dropped == 0 and stats.ring_drops == 0
    if in_place:
        assert stats.frames_in_place == len(units) and stats.output_waits == 0
    else:
        assert stats.frames_in_place == 0
        assert stats.output_waits > 0      # 128 KiB of frame ring held back the drain
    assert depacketizer.drain_frames(rtp_ring) == []
    assert frames_ring.stats().used_bytes == 0   # the last turn's frames, released
    assert rtp_ring.stats().used_bytes == 0      # and the receive records
    copied = H264Depacketizer(ring=Ring.create(1 << 22))
    assert rtp_ring.write_batch(_receive_records(packets[:40]), type=lib.MC_RECORD_RTP) == 40
    frames = copied.drain_frames(rtp_ring, copy=True)
    assert frames and all(isinstance(f.data, bytes) for f in frames)
    copied.release_frames()
    assert copied.ring.stats().used_bytes == 0


def test_a_key_frame_larger_than_the_first_reservation_grows_it():
    """The first reservation follows recent frame sizes (32 KiB at first):
    a 600 KB key frame after small frames grows it, moving past the end of
    the ring when it has to, and arrives intact."""
    rnd = random.Random(5)
    rtp_ring, frames_ring = Ring.create(1 << 23), Ring.create(1 << 22)
    depacketizer = H264Depacketizer(ring=frames_ring)
    packetizer = H264Packetizer()
    units = [annexb([_nal(7, 10, rnd), _nal(8, 3, rnd), _nal(5, 5000, rnd)])]
    units += [annexb([_nal(1, 3000 + 10 * i, rnd)]) for i in range(40)]
    units += [annexb([_nal(7, 10, rnd), _nal(8, 3, rnd), _nal(5, 600_000, rnd)])]
    units += [annexb([_nal(1, 2000, rnd)]) for _ in range(3)]
    got = []
    packets = [raw for i, au in enumerate(units) for raw in packetizer.packetize(au, i * 3000)]
    assert rtp_ring.write_batch(_receive_records(packets), type=lib.MC_RECORD_RTP) == len(packets)
    for _ in range(10):
        got += [bytes(f.data) for f in depacketizer.drain_frames(rtp_ring, 256)]
    assert got == units
    assert depacketizer.stats().frames_too_large == 0


def test_close_abandons_a_frame_in_progress_before_the_ring_goes():
    """A frame being assembled holds a reservation of the ring: closing the
    depacketizer cancels it (the ring takes records again), so it must come
    before the ring's own close, as VideoSocket does."""
    ring = Ring.create(1 << 20)
    depacketizer = H264Depacketizer(ring=ring)
    rnd = random.Random(3)
    packets = H264Packetizer().packetize(annexb([_nal(7, 10, rnd), _nal(8, 3, rnd),
                                                 _nal(5, 5000, rnd)]), 0)
    depacketizer.push([parse_rtp(p) for p in packets[:-1]])      # no marker yet
    with pytest.raises(InvalidState):
        ring.write(b"x")                                       # the reservation is pending
    depacketizer.close()
    depacketizer.close()                                       # twice is fine
    ring.write(b"x")
    assert ring.stats().records_written == 1


# ---- real encoders and peers -----------------------------------------------

def test_ffmpeg_rtp_stream_depacketizes_to_its_access_units(h264_stream_slices, tmp_path):
    """ffmpeg's RTP muxer (an independent packetizer) into the native depacketizer."""
    stream = h264_stream_slices
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rx.settimeout(10)
    port = rx.getsockname()[1]
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "h264",
         "-i", str(stream.path), "-c", "copy", "-f", "rtp", "-payload_type", "96",
         f"rtp://127.0.0.1:{port}?pkt_size=1200"], stdout=subprocess.DEVNULL)
    packets = []
    try:
        proc.wait(timeout=30)
        rx.settimeout(0.5)
        while True:
            try:
                packets.append(parse_rtp(rx.recv(65536)))
            except TimeoutError:
                break
    finally:
        rx.close()
        proc.kill()
    assert packets
    oracle = reference_depacketize(packets)
    depacketizer = H264Depacketizer()
    frames = depacketizer.push(packets)
    assert len(frames) == len(oracle) == len(stream.access_units)
    for frame, (_, nals), original in zip(frames, oracle, stream.access_units):
        assert split_annexb(frame.data) == nals == split_annexb(original)
    assert depacketizer.stats().fu_a_packets > 0
    codec = av.CodecContext.create("h264", "r")
    decoded = [f.to_ndarray() for fr in frames for f in codec.decode(av.Packet(fr.data))]
    decoded += [f.to_ndarray() for f in codec.decode(None)]
    assert len(decoded) == len(stream.reference)
    assert all(np.array_equal(a, b) for a, b in zip(decoded, stream.reference))


def test_interop_with_aiortc_payloader_and_depayloader(h264_stream):
    from aiortc.codecs.h264 import H264Encoder, h264_depayload

    # aiortc packetizes, we depacketize
    depacketizer = H264Depacketizer()
    sequence, frames = 0, []
    for i, au in enumerate(h264_stream.access_units):
        payloads = H264Encoder._packetize(H264Encoder._split_bitstream(au))
        for j, payload in enumerate(payloads):
            frames += depacketizer.push([RtpPayload(payload, sequence, 3000 * i,
                                                    j == len(payloads) - 1)])
            sequence += 1
    assert [split_annexb(f.data) for f in frames] == \
        [split_annexb(a) for a in h264_stream.access_units]
    # we packetize, aiortc depayloads
    packetizer = H264Packetizer(rtp_header=False)
    for au in h264_stream.access_units:
        payloads = packetizer.packetize(au, 0)
        assert split_annexb(b"".join(h264_depayload(p) for p in payloads)) == split_annexb(au)


# ---- loss: nothing undecodable reaches the consumer ---------------------------

def _lossy_run(stream, loss: float, seed: int, mtu: int = 300):
    """Packetize the stream, drop packets at random, depacketize; returns the
    frames handed out, the indices they came from, and the depacketizer."""
    rnd = random.Random(seed)
    packetizer = H264Packetizer(max_payload=mtu)
    depacketizer = H264Depacketizer()
    out: list[tuple[int, EncodedVideoFrame]] = []
    for i, au in enumerate(stream.access_units):
        kept = [parse_rtp(p) for p in packetizer.packetize(au, 3000 * i) if rnd.random() >= loss]
        out += [(f.rtp_timestamp // 3000, f) for f in depacketizer.push(kept)]
    return out, depacketizer


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(loss=st.sampled_from([0.005, 0.02, 0.05, 0.2]), seed=st.integers(0, 10**6))
def test_loss_never_hands_out_an_undecodable_frame(h264_stream, loss, seed):
    out, depacketizer = _lossy_run(h264_stream, loss, seed)
    previous = None
    for index, frame in out:
        # every frame is an original access unit (plus SPS/PPS at most) and a
        # chain only continues from the frame before it or restarts at a key frame
        nals = split_annexb(frame.data)
        if frame.flags & FRAME_PARAMS_INSERTED:
            nals = [n for n in nals if n[0] & 0x1F not in (7, 8)]
            original = [n for n in split_annexb(h264_stream.access_units[index])
                        if n[0] & 0x1F not in (7, 8)]
        else:
            original = split_annexb(h264_stream.access_units[index])
        assert nals == original
        assert frame.key_frame or previous == index - 1
        if frame.key_frame:
            assert h264_stream.key_flags[index]
        previous = index
    stats = depacketizer.stats()
    assert stats.frames == len(out)
    if stats.sequence_gaps:
        assert stats.key_frame_requests >= 1
    # and the decoder agrees: every frame decodes to the reference picture
    codec = av.CodecContext.create("h264", "r")
    for index, frame in out:
        if frame.flags & FRAME_RESYNC:
            codec = av.CodecContext.create("h264", "r")
        pictures = codec.decode(av.Packet(frame.data))
        assert len(pictures) == 1
        assert np.array_equal(pictures[0].to_ndarray(), h264_stream.reference[index])


def test_gap_requests_a_key_frame_once_and_recovers_at_the_next_idr(h264_stream):
    packetizer = H264Packetizer(max_payload=200)
    depacketizer = H264Depacketizer()
    handed = []
    for i, au in enumerate(h264_stream.access_units):
        packets = [parse_rtp(p) for p in packetizer.packetize(au, 3000 * i)]
        if i == 3:
            packets = packets[:1] + packets[2:]   # lose the second packet of frame 3
        handed += [f.rtp_timestamp // 3000 for f in depacketizer.push(packets)]
        if i == 3:
            assert depacketizer.take_key_frame_request()
            assert not depacketizer.take_key_frame_request()
    assert depacketizer.stats().key_frame_requests == 1
    key_after = next(i for i in range(4, len(h264_stream.key_flags)) if h264_stream.key_flags[i])
    assert handed == [0, 1, 2] + list(range(key_after, len(h264_stream.access_units)))
    stats = depacketizer.stats()
    assert stats.packets_lost == 1 and not stats.waiting_for_key_frame


@pytest.mark.parametrize("payload", [
    b"", b"\x7c", b"\x78\x00\x09\x41", b"\x79\x00\x00\x00\x02\x41\x01", b"\xff\xff",
    b"\x7c\x41\x00", b"\x78", b"\x1c\xc0" + b"\x00" * 10,
])
def test_garbage_is_counted_never_raised(payload):
    depacketizer = H264Depacketizer()
    frames = depacketizer.push([RtpPayload(payload, s, 0, True) for s in range(3)])
    assert frames == []
    stats = depacketizer.stats()
    assert stats.packets == 3
    assert stats.frames == 0


def test_late_and_duplicate_packets_are_dropped():
    rnd = random.Random(5)
    packets = [parse_rtp(p) for p in H264Packetizer(max_payload=500).packetize(
        annexb([_nal(7, 10, rnd), _nal(8, 3, rnd), _nal(5, 3000, rnd)]), 0)]
    depacketizer = H264Depacketizer()
    frames = depacketizer.push(packets[:3] + [packets[1]] + packets[3:] + [packets[0]])
    assert len(frames) == 1
    assert depacketizer.stats().packets_late == 2


def test_arrival_times_and_sequences_are_carried():
    rnd = random.Random(6)
    packets = [parse_rtp(p, arrival_ns=1_000 + k) for k, p in enumerate(
        H264Packetizer(max_payload=500, first_sequence=65534).packetize(
            annexb([_nal(7, 10, rnd), _nal(8, 3, rnd), _nal(5, 3000, rnd)]), 99))]
    (frame,) = H264Depacketizer().push(packets)
    assert frame.first_sequence == 65534 and frame.last_sequence == (65534 + len(packets) - 1) & 0xFFFF
    assert frame.first_arrival_ns == 1_000 and frame.last_arrival_ns == 1_000 + len(packets) - 1
    assert frame.packets == len(packets) and frame.rtp_timestamp == 99

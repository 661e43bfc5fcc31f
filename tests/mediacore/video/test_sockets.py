"""Video sockets on the engine: ffmpeg sends H.264 over SRTP and every frame
decodes as ffmpeg's own decode; mediabot encodes and sends over SRTP and
ffmpeg and GStreamer decode it; loss through the impairment relay never
delivers a corrupt frame and recovers through PLI, or through FIR when the
sender ignores PLI; PLI/FIR bytes on the wire; two senders, subscribe /
unsubscribe while running, resolution change, encoded mode, the cap."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time

import av
import numpy as np
import pytest

from mediacore._native import ffi, lib
from mediacore.engine import Engine
from mediacore.errors import InvalidArgument, InvalidState
from mediacore.video.codecs import H264Decoder, VideoLayer
from mediacore.video.h264_rtp import EncodedVideoFrame, split_annexb
from mediacore.video.sockets import (SimulcastSendSocket, VbssSendSocket, VbssSocket,
                                     VideoSendSocket, VideoSocket)
from tests.interop._peers import b64, relay_with_rtcp_sink, wait_udp_bound
from tests.interop.test_ffmpeg_srtp import free_even_pair, sdp
from tests.support.relay import UdpRelay

from .conftest import ffmpeg_h264, load_stream

PROFILE = "AES_CM_128_HMAC_SHA1_80"


def make_testsrc(width: int, height: int, count: int) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", f"testsrc2=size={width}x{height}:rate=30", "-frames:v", str(count),
         "-pix_fmt", "rgb24", "-f", "rawvideo", "-"], check=True, capture_output=True,
        timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(count, height, width, 3)


class Collector:
    def __init__(self, expected: int = 0) -> None:
        self.frames: list = []
        self.threads: set[str] = set()
        self.expected = expected
        self.done = threading.Event()

    def __call__(self, frame) -> None:
        if isinstance(frame, EncodedVideoFrame):
            frame = EncodedVideoFrame(bytes(frame.data), frame.rtp_timestamp, frame.flags, frame.ssrc)
            self.frames.append(frame)
        else:
            self.frames.append((frame.rtp_timestamp, frame.width, frame.height,
                                frame.to_ndarray("yuv420p").copy(), time.monotonic_ns()))
        self.threads.add(threading.current_thread().name)
        if self.expected and len(self.frames) >= self.expected:
            self.done.set()


def paced_send(sender: VideoSendSocket, images, fps: float = 30.0, on_each=None) -> list:
    sent = []
    t0 = time.monotonic()
    for i, img in enumerate(images):
        sent += sender.send_frame(img)
        if on_each:
            on_each(i)
        time.sleep(max(0.0, t0 + (i + 1) / fps - time.monotonic()))
    return sent


# ---- ffmpeg -> mediabot ----------------------------------------------------------------


@pytest.mark.interop
def test_ffmpeg_sends_srtp_h264_and_every_frame_decodes(tmp_path):
    path = tmp_path / "src.h264"
    ffmpeg_h264(path, 640, 360, 45, 15)
    reference = load_stream(path).reference
    key = os.urandom(30)
    got = Collector(expected=len(reference))
    with Engine("127.0.0.1") as engine:
        session = engine.add_session(srtp_profile=PROFILE, tx_key=os.urandom(30), rx_key=key)
        with VideoSocket(session, got, mode="decoded") as sock:
            sock.subscribe(5678)
            relay, rtcp_sink = relay_with_rtcp_sink(("127.0.0.1", engine.port), [])
            with relay:
                proc = subprocess.run(
                    ["timeout", "30", "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
                     "-re", "-r", "30", "-f", "h264", "-i", str(path), "-c", "copy",
                     "-ssrc", "5678", "-payload_type", "96", "-f", "rtp",
                     "-srtp_out_suite", PROFILE, "-srtp_out_params", b64(key),
                     f"srtp://127.0.0.1:{relay.address[1]}"], capture_output=True, text=True)
                assert proc.returncode == 0, proc.stderr
                assert got.done.wait(10)
            rtcp_sink.close()
            stats = sock.depacketizer_stats(5678)
            assert sock.stats(5678).decode_errors == 0
    assert stats.frames == len(reference) and stats.frames_dropped == 0
    decoded = [f[3] for f in got.frames]
    assert len(decoded) == len(reference)
    assert all(np.array_equal(a, b) for a, b in zip(decoded, reference))
    assert {(f[1], f[2]) for f in got.frames} == {(640, 360)}
    assert got.threads == {"video-rx-0000162e"}


# ---- mediabot -> ffmpeg / GStreamer -----------------------------------------------------


@pytest.mark.interop
def test_mediabot_sends_srtp_h264_that_ffmpeg_decodes(tmp_path):
    key = os.urandom(30)
    port = free_even_pair()
    sdp_file = tmp_path / "rx.sdp"
    sdp_file.write_text(sdp("video", port, key))
    y4m = tmp_path / "rx.y4m"
    proc = subprocess.Popen(
        ["timeout", "30", "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
         "-protocol_whitelist", "file,udp,rtp,srtp", "-i", str(sdp_file), "-t", "1.5",
         "-pix_fmt", "yuv420p", "-y", str(y4m)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    wait_udp_bound(port)
    images = make_testsrc(1280, 720, 75)                    # scaled into the 640x360 layer
    with Engine("127.0.0.1") as engine:
        session = engine.add_session(("127.0.0.1", port), remote_rtcp_port=port + 1,
                                     srtp_profile=PROFILE, tx_key=key, rx_key=os.urandom(30))
        sender = VideoSendSocket(session, 0x5EED1, layer=VideoLayer(640, 360, 30),
                                 key_frame_interval_s=0.5)
        sent = paced_send(sender, images)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "HMAC" not in err
        # the encoder paces to the layer's 30 fps: a stalled loop (busy machine) may lose a few
        assert len(sent) >= 60 and sender.stream.stats().packets > len(sent)
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                            "stream=width,height,nb_read_frames", "-of", "csv=p=0", str(y4m)],
                           capture_output=True, text=True, timeout=30)
    width, height, frames = probe.stdout.strip().split(",")
    assert (width, height) == ("640", "360")
    assert int(frames) >= 30          # ffmpeg joins late (SDP probing): 1.5 s of what it got


@pytest.mark.interop
def test_mediabot_sends_srtp_h264_that_gstreamer_decodes(tmp_path):
    key = os.urandom(30)
    port = free_even_pair()
    ssrc = 0x2222
    caps = ("application/x-srtp,media=(string)video,clock-rate=(int)90000,"
            "encoding-name=(string)H264,payload=(int)96,ssrc=(uint)%d,srtp-key=(buffer)%s,"
            "srtp-cipher=(string)aes-128-icm,srtp-auth=(string)hmac-sha1-80,"
            "srtcp-cipher=(string)aes-128-icm,srtcp-auth=(string)hmac-sha1-80" % (ssrc, key.hex()))
    out = tmp_path / "png"
    out.mkdir()
    proc = subprocess.Popen(
        ["timeout", "-s", "INT", "8", "gst-launch-1.0", "-q", "-e", "udpsrc", "address=127.0.0.1",
         f"port={port}", f"caps={caps}", "!", "srtpdec", "!", "rtpjitterbuffer", "!",
         "rtph264depay", "!", "h264parse", "!", "avdec_h264", "!", "videoconvert", "!", "pngenc",
         "!", "multifilesink", f"location={out}/f%04d.png"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_udp_bound(port)
    images = make_testsrc(640, 360, 60)
    with Engine("127.0.0.1") as engine:
        session = engine.add_session(("127.0.0.1", port), remote_rtcp_port=port + 1,
                                     srtp_profile=PROFILE, tx_key=key, rx_key=os.urandom(30))
        sender = VideoSendSocket(session, ssrc, layer=VideoLayer(424, 240, 15))
        sent = paced_send(sender, images)
        proc.communicate(timeout=30)
    pngs = sorted(out.glob("*.png"))
    assert 25 <= len(sent) <= 31                             # 2 s at 15 fps
    assert len(pngs) >= 25
    frame = av.open(str(pngs[-1])).decode(video=0).__next__()
    assert (frame.width, frame.height) == (424, 240)


# ---- loss through the relay ---------------------------------------------------------------


def test_loss_never_delivers_a_corrupt_frame_and_pli_recovers():
    images = make_testsrc(320, 180, 150)
    got = Collector()
    with Engine("127.0.0.1") as rx_engine, Engine("127.0.0.1") as tx_engine:
        relay = UdpRelay(("127.0.0.1", rx_engine.port), loss=0.03, seed=7, duration_s=30)
        with relay:
            # RTP through the lossy relay; RTCP both ways direct (the PLI's source
            # address is the sender session's remote RTCP address)
            tx_session = tx_engine.add_session(relay.address, remote_rtcp_port=rx_engine.port)
            rx_session = rx_engine.add_session(("127.0.0.1", tx_engine.port))
            sock = VideoSocket(rx_session, got, mode="decoded", key_frame_timeout_s=0.2)
            sock.subscribe(0xF00D)
            # history=0: no retransmission, so losses must be repaired by a key frame
            sender = VideoSendSocket(tx_session, 0xF00D, layer=VideoLayer(320, 180, 30),
                                     key_frame_interval_s=1000, history=0, timestamp_offset=0)
            sent = paced_send(sender, images, on_each=lambda i: sender.handle_events())
            time.sleep(0.5)
            dropped = relay.counters.dropped
            plis = sock.plis_requested(0xF00D)
            dstats = sock.depacketizer_stats(0xF00D)
            sock.close()
    assert dropped > 0 and dstats.sequence_gaps > 0
    assert plis >= 1 and sender.key_frame_requests >= 1
    # every delivered frame is exactly what a decoder fed the whole stream produces
    reference = {}
    decoder = H264Decoder()
    for unit in sent:
        for frame in decoder.decode(unit):
            reference[unit.rtp_timestamp] = frame.to_ndarray("yuv420p").copy()
    assert len(got.frames) > len(sent) // 3
    for ts, _w, _h, picture, _t in got.frames:
        assert np.array_equal(picture, reference[ts])
    # recovery: no stretch of media time over 1 s without a delivered frame
    stamps = [ts for ts, *_ in got.frames]
    gaps = np.diff([sent[0].rtp_timestamp] + stamps + [sent[-1].rtp_timestamp])
    assert gaps.max() <= 90_000


def test_peer_that_ignores_pli_recovers_through_fir():
    """The sender honours FIR only and makes no periodic key frames, so every
    recovery after a loss is the answer to a FIR the socket sent when its PLI
    brought nothing (RFC 5104 4.3.1 fallback)."""
    images = make_testsrc(320, 180, 150)
    got = Collector()
    ignored_plis = []
    firs_handled = []
    with Engine("127.0.0.1") as rx_engine, Engine("127.0.0.1") as tx_engine:
        relay = UdpRelay(("127.0.0.1", rx_engine.port), loss=0.04, seed=11, duration_s=30)
        with relay:
            tx_session = tx_engine.add_session(relay.address, remote_rtcp_port=rx_engine.port)
            rx_session = rx_engine.add_session(("127.0.0.1", tx_engine.port))
            sock = VideoSocket(rx_session, got, mode="decoded", key_frame_timeout_s=0.15,
                               key_frame_max_interval_s=0.3)
            sock.subscribe(0xF1F1)
            sender = VideoSendSocket(tx_session, 0xF1F1, layer=VideoLayer(320, 180, 30),
                                     key_frame_interval_s=1000, history=0, timestamp_offset=0)

            def on_each(_i):
                events = tx_session.events()
                ignored_plis.extend(e for e in events if e.kind == "pli")
                firs = [e for e in events if e.kind == "fir"]
                firs_handled.extend(firs)
                sender.handle_events(firs)

            sent = paced_send(sender, images, on_each=on_each)
            time.sleep(0.5)
            dropped = relay.counters.dropped
            stats = sock.stats(0xF1F1)
            dstats = sock.depacketizer_stats(0xF1F1)
            firs_requested = sock.firs_requested(0xF1F1)
            sock.close()
    assert dropped > 0 and dstats.sequence_gaps > 0
    assert ignored_plis and firs_handled
    assert stats.plis_sent >= 1 and stats.firs_sent >= 1 and firs_requested >= 1
    assert dstats.firs_requested >= 1
    # key frames after the first exist only because of FIRs
    key_stamps = [u.rtp_timestamp for u in sent if u.key_frame]
    assert len(key_stamps) >= 2 and sender.key_frame_requests >= len(key_stamps) - 1
    reference = {}
    decoder = H264Decoder()
    for unit in sent:
        for frame in decoder.decode(unit):
            reference[unit.rtp_timestamp] = frame.to_ndarray("yuv420p").copy()
    stamps = [ts for ts, *_ in got.frames]
    for ts, _w, _h, picture, _t in got.frames:
        assert np.array_equal(picture, reference[ts])    # never a corrupt frame
    # recovered: a FIR-made key frame was delivered, and frames after it
    recovered = [ts for ts in key_stamps[1:] if ts in stamps]
    assert recovered and stamps[-1] > recovered[0]


def test_key_frame_requests_on_the_wire_pli_and_fir_match_rfc_layouts():
    """PLI and FIR as the peer receives them, against byte strings built here
    from RFC 4585 6.3.1 / RFC 5104 4.3.1.1, and parsed back by rtcp.c; each
    FIR is a new command (sequence number + 1)."""
    media_ssrc = 0xCAFE0001
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(0.2)
        port = peer.getsockname()[1]
        with Engine("127.0.0.1") as engine:
            session = engine.add_session(("127.0.0.1", port), remote_rtcp_port=port)
            stream = session.add_receive_stream(media_ssrc, media="video", clock_rate=90000)
            seen = []                                          # (sender ssrc, [(pt, fmt, bytes)])
            for method in ("fir", "pli", "fir", "pli+fir"):
                stream.request_keyframe(method)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    try:
                        data = peer.recv(2048)
                    except TimeoutError:
                        continue
                    packets = _rtcp_packets(data)
                    if any(pt == 206 for pt, _fmt, _b in packets):
                        seen.append((struct.unpack_from("!I", data, 4)[0], packets))
                        break
            with pytest.raises(InvalidArgument):
                stream.request_keyframe("sli")
            deadline = time.monotonic() + 2
            while stream.stats().firs_sent < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            stats = stream.stats()
    assert len(seen) == 4
    assert (stats.plis_sent, stats.firs_sent) == (2, 3)
    firs, plis = [], []
    for sender, packets in seen:
        assert packets[0][0] == 201                            # RFC 4585: starts with an RR
        for pt, fmt, raw in packets[1:]:
            if pt == 202:                                      # SDES CNAME
                continue
            assert pt == 206
            if fmt == 1:
                assert raw == struct.pack("!BBHII", 0x80 | 1, 206, 2, sender, media_ssrc)
                plis.append(raw)
            else:
                assert fmt == 4
                seq = raw[16]
                # V=2 P=0 FMT=4, PT=206, length 4 words - 1; sender SSRC; media
                # source SSRC 0 (unused); FCI: target SSRC, seq nr, 24 reserved bits
                assert raw == struct.pack("!BBHIIIB3x", 0x80 | 4, 206, 4, sender, 0,
                                          media_ssrc, seq)
                firs.append(raw)
    assert [sum(pt == 206 for pt, _f, _b in p) for _s, p in seen] == [1, 1, 1, 2]
    assert len(plis) == 2 and len(firs) == 3
    seqs = []
    for raw in firs:
        sender_ssrc = ffi.new("uint32_t *")
        ssrcs = ffi.new("uint32_t[4]")
        seq_nrs = ffi.new("uint8_t[4]")
        count = ffi.new("uint32_t *")
        assert lib.mc_rtcp_parse_fir(raw, len(raw), sender_ssrc, ssrcs, seq_nrs, 4,
                                     count) == lib.MC_OK
        assert count[0] == 1 and ssrcs[0] == media_ssrc
        seqs.append(seq_nrs[0])
    assert [(b - a) % 256 for a, b in zip(seqs, seqs[1:])] == [1, 1]


def _rtcp_packets(data: bytes) -> list[tuple[int, int, bytes]]:
    """(packet type, count/FMT, bytes) of each packet of a compound RTCP packet."""
    out, i = [], 0
    while i + 4 <= len(data):
        first, pt, words = struct.unpack_from("!BBH", data, i)
        size = 4 * (words + 1)
        out.append((pt, first & 0x1F, data[i:i + size]))
        i += size
    return out


# ---- several senders, subscribe/unsubscribe, resolution change, encoded mode, cap -----------


def test_two_senders_subscribe_unsubscribe_and_resolution_change():
    images = make_testsrc(640, 360, 120)
    got = Collector()
    with Engine("127.0.0.1") as rx_engine, Engine("127.0.0.1") as tx_engine:
        tx_session = tx_engine.add_session(("127.0.0.1", rx_engine.port))
        rx_session = rx_engine.add_session(("127.0.0.1", tx_engine.port))
        sock = VideoSocket(rx_session, got, mode="decoded", max_subscriptions=2)
        sock.subscribe(1)
        sock.subscribe(2, preferred_resolution=(160, 90))
        a = VideoSendSocket(tx_session, 1, layer=VideoLayer(640, 360, 30))
        b = VideoSendSocket(tx_session, 2, layer=VideoLayer(320, 180, 30))

        def step(i):
            a.handle_events()
            b.handle_events()
            b.send_frame(images[i])
            if i == 40:
                sock.unsubscribe(2)
            if i == 60:
                sock.subscribe(2)                        # back, at full size: a PLI brings a key frame
                a.set_layer(VideoLayer(320, 180, 30))    # and source 1 changes resolution

        paced_send(a, images, on_each=step)
        time.sleep(0.4)
        with pytest.raises(InvalidState):
            sock.subscribe(3)
        stats1 = sock.stats(1)
        sock.close()
    sizes = {(f[1], f[2]) for f in got.frames}
    assert {(640, 360), (320, 180), (160, 90)} <= sizes
    assert stats1.resolution_changes == 1
    assert got.threads == {"video-rx-00000001", "video-rx-00000002"}


def test_per_stream_stats_fps_bitrate_size_and_freezes_end_to_end():
    images = make_testsrc(320, 180, 30)
    got = Collector()
    with Engine("127.0.0.1") as rx_engine, Engine("127.0.0.1") as tx_engine:
        tx_session = tx_engine.add_session(("127.0.0.1", rx_engine.port))
        rx_session = rx_engine.add_session(("127.0.0.1", tx_engine.port))
        with VideoSocket(rx_session, got, mode="decoded") as sock:
            sock.subscribe(0x5151)
            sender = VideoSendSocket(tx_session, 0x5151, layer=VideoLayer(320, 180, 30))
            paced_send(sender, images[:15])
            time.sleep(1.5)                              # a freeze of more than 1 s
            paced_send(sender, images[15:])
            deadline = time.monotonic() + 5
            while len(got.frames) < 30 and time.monotonic() < deadline:
                time.sleep(0.01)
            during = sock.stats(0x5151)
            rtp = sock.receive_streams[0x5151].stats()   # the subscription's engine stream
            time.sleep(1.2)                              # stopped: an ongoing freeze
            after = sock.stats(0x5151)
    assert len(got.frames) == 30
    assert rtp.packets >= 30 and rtp.lost == 0 and set(sock.receive_streams) == set()
    assert during.frames == 30 and during.key_frames >= 1 and during.decode_errors == 0
    assert (during.width, during.height) == (320, 180) and during.resolution_changes == 0
    assert during.freezes >= 1 and during.freeze_ms_total >= 1000
    assert 1 <= during.fps <= 15 and during.bitrate_bps > 0     # the last second: 2nd burst only
    assert after.fps == 0 and after.bitrate_bps == 0
    assert after.freezes == during.freezes + 1
    assert during.plis_sent == 0 and during.firs_sent == 0      # nothing lost, nothing asked


def test_encoded_mode_hands_out_decodable_access_units():
    images = make_testsrc(320, 180, 30)
    got = Collector()
    with Engine("127.0.0.1") as rx_engine, Engine("127.0.0.1") as tx_engine:
        tx_session = tx_engine.add_session(("127.0.0.1", rx_engine.port))
        rx_session = rx_engine.add_session(("127.0.0.1", tx_engine.port))
        with VideoSocket(rx_session, got, mode="encoded") as sock:
            sock.subscribe(9)
            sender = VideoSendSocket(tx_session, 9, layer=VideoLayer(320, 180, 30))
            sent = paced_send(sender, images)
            time.sleep(0.3)
    assert [split_annexb(f.data) for f in got.frames] == [split_annexb(u.data) for u in sent]
    assert got.frames[0].key_frame
    decoder = H264Decoder()
    assert sum(len(decoder.decode(f)) for f in got.frames) == 30


def test_vbss_sockets_low_frame_rate_full_resolution():
    images = make_testsrc(1920, 1080, 1)
    got = Collector()
    with Engine("127.0.0.1") as rx_engine, Engine("127.0.0.1") as tx_engine:
        tx_session = tx_engine.add_session(("127.0.0.1", rx_engine.port))
        rx_session = rx_engine.add_session(("127.0.0.1", tx_engine.port))
        with VbssSocket(rx_session, got) as sock:
            sock.subscribe(77)
            with pytest.raises(InvalidState):
                sock.subscribe(78)                    # one screen share at a time
            sender = VbssSendSocket(tx_session, 77)
            sender.set_layer(sender.ladder[3])        # 1920x1080 @ 1.875 fps
            t0 = time.monotonic_ns()
            for i in range(32):                       # ~1.1 s of 30 fps input
                sender.send_frame(images[0], now_ns=t0 + i * 33_333_334)
            time.sleep(0.5)
    assert len(got.frames) == 3
    assert {(f[1], f[2]) for f in got.frames} == {(1920, 1080)}


def test_simulcast_send_socket_three_layers_on_three_ssrcs():
    images = make_testsrc(1280, 720, 30)
    got = Collector()
    layers = {11: VideoLayer(1280, 720, 30), 12: VideoLayer(640, 360, 15),
              13: VideoLayer(320, 180, 7.5)}
    with Engine("127.0.0.1") as rx_engine, Engine("127.0.0.1") as tx_engine:
        tx_session = tx_engine.add_session(("127.0.0.1", rx_engine.port))
        rx_session = rx_engine.add_session(("127.0.0.1", tx_engine.port))
        with VideoSocket(rx_session, got, mode="encoded") as sock:
            for ssrc in layers:
                sock.subscribe(ssrc)
            simulcast = SimulcastSendSocket(tx_session, layers)
            t0 = time.monotonic_ns()
            sent = {ssrc: 0 for ssrc in layers}
            for i, img in enumerate(images):
                for ssrc, units in simulcast.send_frame(img, now_ns=t0 + i * 33_333_334).items():
                    sent[ssrc] += len(units)
                time.sleep(0.01)
            time.sleep(0.4)
            received = {ssrc: sock.stats(ssrc).frames for ssrc in layers}
            with pytest.raises(InvalidArgument):
                SimulcastSendSocket(tx_session, {21: layers[11], 22: layers[12], 23: layers[13],
                                                 24: layers[13]})
    assert sent == {11: 30, 12: 15, 13: 8}
    assert received == sent
    sizes = set()
    decoders: dict[int, H264Decoder] = {}
    for frame in got.frames:
        for picture in decoders.setdefault(frame.ssrc, H264Decoder()).decode(frame):
            sizes.add((picture.width, picture.height))
    assert sizes == {(1280, 720), (640, 360), (320, 180)}


def test_a_video_stream_wakes_its_reader_once_per_frame_not_per_packet():
    """MC_RECV_WAKE_PER_FRAME (what a VideoSocket asks for): the worker is
    woken at each frame's marker-bit packet, and still gets every packet."""
    images = make_testsrc(1280, 720, 20)
    counts = {}
    with Engine("127.0.0.1") as rx_engine, Engine("127.0.0.1") as tx_engine:
        tx_session = tx_engine.add_session(("127.0.0.1", rx_engine.port))
        rx_session = rx_engine.add_session(("127.0.0.1", tx_engine.port))
        streams = {ssrc: rx_session.add_receive_stream(ssrc, media="video", clock_rate=90000,
                                                       direct=True, wake_per_frame=per_frame)
                   for ssrc, per_frame in ((21, True), (22, False))}
        stop = threading.Event()

        def reader(ssrc):
            ring, n = streams[ssrc].ring, 0
            while not stop.is_set():
                ring.wait(timeout=0.05)
                with ring.peek() as batch:
                    n += len(batch)
            counts[ssrc] = n

        threads = [threading.Thread(target=reader, args=(s,)) for s in streams]
        for t in threads:
            t.start()
        senders = [VideoSendSocket(tx_session, ssrc, layer=VideoLayer(1280, 720, 30))
                   for ssrc in streams]
        for image in images:
            for sender in senders:
                sender.send_frame(image)
            time.sleep(1 / 30)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
        packets = {s: tx_session.send_streams[s].stats().packets for s in streams}
        wakes = {s: streams[s].ring.stats().wake_calls for s in streams}
    assert counts == packets and min(packets.values()) >= 3 * len(images)
    assert wakes[21] <= len(images) + 2          # one per frame
    assert wakes[22] >= 2 * len(images)          # one per packet the reader waited for

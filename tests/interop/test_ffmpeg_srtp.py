"""ffmpeg as an independent SRTP peer (``-f rtp`` to ``srtp://`` to send, an SDP with
a=crypto to receive), both directions.

ffmpeg -> engine: every packet authenticates and the payloads the engine
delivers equal what ffmpeg sent, as decrypted by libsrtp (pylibsrtp) from a
tee of the same datagrams. engine -> ffmpeg: ffmpeg decodes our SRTP from an
SDP with a=crypto (Opus to a WAV at the right pitch, H.264 to frames)."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import wave

import numpy as np
import pytest

from mediacore.engine import Engine
from tests.interop._peers import (b64, dominant_frequency, h264_access_units, is_rtcp,
                                  libsrtp_rx, opus_packets, packetize_h264,
                                  relay_with_rtcp_sink, wait_udp_bound)
from tests.mediacore.test_engine import drain, wait_for

pytestmark = pytest.mark.interop
PROFILE = "AES_CM_128_HMAC_SHA1_80"

FFMPEG_OPUS = ("ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi "
               "-i sine=frequency=440:sample_rate=48000 -t {t} -c:a libopus -b:a 64k -ac 2 "
               "-ssrc 1234 -payload_type 111 -f rtp -srtp_out_suite AES_CM_128_HMAC_SHA1_80 "
               "-srtp_out_params {key} srtp://127.0.0.1:{port}")
FFMPEG_H264 = ("ffmpeg -nostdin -hide_banner -loglevel error -re -f lavfi "
               "-i testsrc2=size=640x360:rate=30 -t {t} -c:v libx264 -preset ultrafast "
               "-tune zerolatency -profile:v baseline -pix_fmt yuv420p -g 30 -bf 0 "
               "-ssrc 5678 -payload_type 96 -f rtp -srtp_out_suite AES_CM_128_HMAC_SHA1_80 "
               "-srtp_out_params {key} srtp://127.0.0.1:{port}")


def rtp_payload(pkt: bytes) -> bytes:
    cc = pkt[0] & 0x0F
    off = 12 + 4 * cc
    if pkt[0] & 0x10:
        off += 4 + 4 * int.from_bytes(pkt[off + 2:off + 4], "big")
    end = len(pkt) - (pkt[-1] if pkt[0] & 0x20 else 0)
    return pkt[off:end]


def forward_rtcp(sink: socket.socket, port: int, stop: threading.Event) -> None:
    """ffmpeg puts SRTCP on port+1; hand it to the engine's one port."""
    sink.settimeout(0.05)
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    while not stop.is_set():
        try:
            d = sink.recv(4096)
        except socket.timeout:
            continue
        out.sendto(d, ("127.0.0.1", port))
    out.close()


@pytest.mark.parametrize("media,ssrc,cmd,seconds", [
    ("audio", 1234, FFMPEG_OPUS, 1.5),
    ("video", 5678, FFMPEG_H264, 1.5),
])
def test_ffmpeg_sends_srtp_to_engine(media, ssrc, cmd, seconds):
    key = os.urandom(30)
    with Engine("127.0.0.1") as e:
        s = e.add_session(srtp_profile=PROFILE, tx_key=os.urandom(30), rx_key=key)
        rx = s.add_receive_stream(ssrc, media=media, direct=True, ring_capacity=1 << 22)
        tee: list[bytes] = []
        relay, rtcp_sink = relay_with_rtcp_sink(("127.0.0.1", e.port), tee)
        stop = threading.Event()
        fwd = threading.Thread(target=forward_rtcp, args=(rtcp_sink, e.port, stop))
        with relay:
            fwd.start()
            proc = subprocess.run(
                ["timeout", "30", *cmd.format(t=seconds, key=b64(key),
                                              port=relay.address[1]).split()],
                capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            rtp = [d for d in tee if not is_rtcp(d)]
            h, got = drain(rx, len(rtp), timeout=5)
            time.sleep(0.2)
            stop.set()
            fwd.join()
        rtcp_sink.close()
        dec = libsrtp_rx(key)
        expected = [rtp_payload(dec.unprotect(d)) for d in rtp]
        assert len(rtp) > (40 if media == "audio" else 100)
        assert got == expected
        assert set(h["ssrc"]) == {ssrc} and set(h["payload_type"]) == {111 if media == "audio" else 96}
        st = wait_for(lambda: (x := rx.stats()).sr_received > 0 and x)
        assert st.packets == len(rtp) and st.auth_failures == 0 and st.replays == 0
        assert st.lost == 0
        assert st.sr_received > 0  # ffmpeg's SRTCP sender reports authenticated too
        assert e.stats().auth_failures == 0


def free_even_pair() -> int:
    for _ in range(100):
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        p = a.getsockname()[1] & ~1
        a.close()
        try:
            s1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s1.bind(("0.0.0.0", p))
            s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s2.bind(("0.0.0.0", p + 1))
            s1.close()
            s2.close()
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def sdp(kind: str, port: int, key: bytes) -> str:
    m = (f"m=audio {port} RTP/SAVP 111\na=rtpmap:111 opus/48000/2\n" if kind == "audio" else
         f"m=video {port} RTP/SAVP 96\na=rtpmap:96 H264/90000\na=fmtp:96 packetization-mode=1\n")
    return ("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=mediabot\nc=IN IP4 127.0.0.1\nt=0 0\n" + m +
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{b64(key)}\n")


def start_ffmpeg_receiver(tmp_path, kind: str, key: bytes, out_args: list[str]):
    port = free_even_pair()
    sdp_file = tmp_path / f"rx_{kind}.sdp"
    sdp_file.write_text(sdp(kind, port, key))
    proc = subprocess.Popen(
        ["timeout", "30", "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
         "-protocol_whitelist", "file,udp,rtp,srtp", "-i", str(sdp_file), *out_args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_udp_bound(port)
    return port, proc


def test_engine_sends_opus_srtp_that_ffmpeg_decodes(tmp_path):
    key = os.urandom(30)
    wav = tmp_path / "rx.wav"
    port, proc = start_ffmpeg_receiver(tmp_path, "audio", key,
                                       ["-t", "1.5", "-ar", "16000", "-ac", "1", "-y", str(wav)])
    packets = opus_packets(3.0, freq=440.0)
    with Engine("127.0.0.1") as e:
        s = e.add_session(("127.0.0.1", port), remote_rtcp_port=port + 1, srtp_profile=PROFILE,
                          tx_key=key, rx_key=os.urandom(30))
        tx = s.add_send_stream(0x5EED, payload_type=111)
        t0 = time.monotonic()
        for i, p in enumerate(packets):
            tx.send(p, timestamp=960 * i, marker=(i == 0))
            time.sleep(max(0.0, t0 + 0.02 * (i + 1) - time.monotonic()))
            if proc.poll() is not None:
                break
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "HMAC" not in err
    with wave.open(str(wav)) as w:
        assert w.getframerate() == 16000
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert len(pcm) >= 16000 * 1.4
    assert abs(dominant_frequency(pcm[4000:], 16000) - 440) < 5


def test_engine_sends_h264_srtp_that_ffmpeg_decodes(tmp_path):
    key = os.urandom(30)
    y4m = tmp_path / "rx.y4m"
    port, proc = start_ffmpeg_receiver(tmp_path, "video", key,
                                       ["-t", "1", "-pix_fmt", "yuv420p", "-y", str(y4m)])
    aus = h264_access_units(90)
    with Engine("127.0.0.1") as e:
        s = e.add_session(("127.0.0.1", port), remote_rtcp_port=port + 1, srtp_profile=PROFILE,
                          tx_key=key, rx_key=os.urandom(30))
        tx = s.add_send_stream(0x71DE0, payload_type=96, media="video", clock_rate=90000)
        t0 = time.monotonic()
        for i, au in enumerate(aus):
            tx.send_batch([(p, 3000 * i, m) for p, m in packetize_h264(au)])
            time.sleep(max(0.0, t0 + (i + 1) / 30 - time.monotonic()))
            if proc.poll() is not None:
                break
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "HMAC" not in err
        assert tx.stats().packets > 0
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                            "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0",
                            str(y4m)], capture_output=True, text=True, timeout=30)
    codec, width, height, frames = probe.stdout.strip().split(",")
    assert (width, height) == ("320", "240")
    assert int(frames) >= 25

"""Helpers shared by the interop tests (independent peers: ffmpeg, GStreamer,
pylibsrtp, PyAV). Reference code for tests only."""

from __future__ import annotations

import base64
import socket
import subprocess
import time
from fractions import Fraction

import av
import numpy as np
import pylibsrtp

from tests.support.relay import UdpRelay


def free_port_pair() -> tuple[int, socket.socket]:
    """An even port P whose P+1 is bound by the returned socket (the RTCP
    sink for peers without rtcp-mux); P itself is free."""
    for _ in range(100):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        p = probe.getsockname()[1] & ~1
        probe.close()
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtcp.bind(("127.0.0.1", p + 1))
        except OSError:
            rtcp.close()
            continue
        try:
            t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t.bind(("127.0.0.1", p))
            t.close()
        except OSError:
            rtcp.close()
            continue
        return p, rtcp
    raise RuntimeError("no free port pair")


def relay_with_rtcp_sink(target: tuple[str, int], tee: list[bytes]):
    """A pass-through relay on an even port P (tee of every datagram) whose
    P+1 is bound, for senders that put RTCP on port+1."""
    for _ in range(100):
        relay = UdpRelay(target, tee=tee, duration_s=60)
        p = relay.address[1]
        if p & 1:
            relay._sock.close()
            continue
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtcp.bind(("127.0.0.1", p + 1))
        except OSError:
            relay._sock.close()
            rtcp.close()
            continue
        return relay, rtcp
    raise RuntimeError("no port pair for the relay")


def libsrtp_rx(key: bytes) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                              srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
    policy.window_size = 1024
    return pylibsrtp.Session(policy)


def is_rtcp(d: bytes) -> bool:
    return len(d) > 1 and 192 <= d[1] <= 223


def wait_udp_bound(port: int, timeout: float = 10.0) -> None:
    """Wait until some process has a UDP socket on `port` (polled with ss: ffmpeg binds the
    wildcard address within a fraction of a second but says nothing when it has)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-Hunl", f"sport = :{port}"], capture_output=True, text=True)
        if out.stdout.strip():
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing bound UDP port {port}")


def opus_packets(seconds: float, freq: float = 440.0) -> list[bytes]:
    """Opus packets (48 kHz stereo, 20 ms) of a sine tone, encoded by PyAV's libopus."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = 48000
    enc.layout = "stereo"
    enc.format = "s16"
    enc.bit_rate = 64000
    enc.time_base = Fraction(1, 48000)
    enc.open()
    n = int(seconds * 50)
    t = np.arange(960 * n) / 48000.0
    pcm = (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)
    out = []
    for i in range(n):
        chunk = np.repeat(pcm[960 * i:960 * (i + 1)], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = 960 * i
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def h264_access_units(frames: int, width: int = 320, height: int = 240) -> list[list[bytes]]:
    """H.264 access units (lists of NAL units without start codes) from libx264
    (baseline, no B-frames, an IDR every 30 frames, SPS/PPS in band)."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height = width, height
    enc.pix_fmt = "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                   "x264-params": "keyint=30:repeat-headers=1:annexb=1"}
    enc.open()
    aus = []
    for i in range(frames):
        img = np.zeros((height, width, 3), np.uint8)
        img[:, :, 0] = (i * 8) % 256
        img[(i * 4) % height:, :, 1] = 200
        f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        f.pts = i
        for p in enc.encode(f):
            aus.append(split_annexb(bytes(p)))
    for p in enc.encode(None):
        aus.append(split_annexb(bytes(p)))
    return aus


def split_annexb(data: bytes) -> list[bytes]:
    out, i, n = [], 0, len(data)
    starts = []
    while i < n - 3:
        if data[i:i + 3] == b"\0\0\1":
            starts.append(i + 3)
            i += 3
        else:
            i += 1
    for k, s in enumerate(starts):
        e = starts[k + 1] - 3 if k + 1 < len(starts) else n
        nal = data[s:e]
        while nal.endswith(b"\0") and k + 1 < len(starts):
            nal = nal[:-1]
        out.append(nal)
    return out


def packetize_h264(nals: list[bytes], mtu: int = 1200) -> list[tuple[bytes, bool]]:
    """RFC 6184 packetization-mode 1: single NAL units, FU-A above `mtu`.
    Returns (payload, marker) with the marker on the access unit's last packet."""
    out: list[tuple[bytes, bool]] = []
    for nal in nals:
        if len(nal) <= mtu:
            out.append((nal, False))
            continue
        hdr = nal[0]
        body = nal[1:]
        chunks = [body[i:i + mtu - 2] for i in range(0, len(body), mtu - 2)]
        for k, c in enumerate(chunks):
            fu_ind = (hdr & 0xE0) | 28
            fu_hdr = (hdr & 0x1F) | (0x80 if k == 0 else 0) | (0x40 if k == len(chunks) - 1 else 0)
            out.append((bytes([fu_ind, fu_hdr]) + c, False))
    if out:
        out[-1] = (out[-1][0], True)
    return out


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.argmax(spec) * rate / len(pcm))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()

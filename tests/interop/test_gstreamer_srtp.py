"""GStreamer srtpenc / srtpdec as an independent SRTP peer (GStreamer 1.22),
both directions, AES-CM and AES-GCM. The receiver caps carry the SSRC (without
it srtpdec silently drops everything)."""

from __future__ import annotations

import os
import subprocess
import time
import wave

import numpy as np
import pytest

from mediacore.engine import Engine
from tests.interop._peers import (dominant_frequency, is_rtcp, opus_packets,
                                  relay_with_rtcp_sink, wait_udp_bound)
from tests.interop.test_ffmpeg_srtp import free_even_pair, rtp_payload
from tests.mediacore.test_engine import drain, libsrtp_session, wait_for

pytestmark = pytest.mark.interop

GST_CIPHERS = {  # profile -> (key bytes, srtpenc/srtpdec cipher, auth)
    "AES_CM_128_HMAC_SHA1_80": (30, "aes-128-icm", "hmac-sha1-80"),
    "AEAD_AES_128_GCM": (28, "aes-128-gcm", "null"),
    "AEAD_AES_256_GCM": (44, "aes-256-gcm", "null"),
}


def srtpenc(key: bytes, profile: str) -> str:
    _, cipher, auth = GST_CIPHERS[profile]
    return (f"srtpenc key={key.hex()} rtp-cipher={cipher} rtp-auth={auth} "
            f"rtcp-cipher={cipher} rtcp-auth={auth}")


@pytest.mark.parametrize("profile", sorted(GST_CIPHERS))
@pytest.mark.parametrize("media", ["audio", "video"])
def test_gstreamer_sends_srtp_to_engine(profile, media):
    key = os.urandom(GST_CIPHERS[profile][0])
    ssrc = 1111 if media == "audio" else 2222
    with Engine("127.0.0.1") as e:
        s = e.add_session(srtp_profile=profile, tx_key=os.urandom(len(key)), rx_key=key)
        rx = s.add_receive_stream(ssrc, media=media, direct=True, ring_capacity=1 << 22)
        tee: list[bytes] = []
        relay, rtcp_sink = relay_with_rtcp_sink(("127.0.0.1", e.port), tee)
        if media == "audio":
            src = ("audiotestsrc is-live=true freq=440 samplesperbuffer=960 num-buffers=50 ! "
                   "audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=64000 ! "
                   f"rtpopuspay pt=111 ssrc={ssrc}")
        else:
            src = ("videotestsrc is-live=true pattern=ball num-buffers=30 ! "
                   "video/x-raw,width=640,height=360,framerate=30/1 ! "
                   "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! "
                   f"video/x-h264,profile=baseline ! rtph264pay pt=96 ssrc={ssrc} config-interval=-1")
        pipeline = f"{src} ! {srtpenc(key, profile)} ! udpsink host=127.0.0.1 port={relay.address[1]}"
        with relay:
            proc = subprocess.run(["timeout", "20", "gst-launch-1.0", "-q", *pipeline.split()],
                                  capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            rtp = [d for d in tee if not is_rtcp(d)]
            h, got = drain(rx, len(rtp), timeout=5)
        rtcp_sink.close()
        dec = libsrtp_session(profile, key, inbound=True)
        expected = [rtp_payload(dec.unprotect(d)) for d in rtp]
        assert len(rtp) >= (45 if media == "audio" else 30)
        assert got == expected
        assert set(h["ssrc"]) == {ssrc}
        st = wait_for(lambda: (x := rx.stats()).packets == len(rtp) and x)
        assert st.packets == len(rtp) and st.auth_failures == 0 and st.lost == 0


@pytest.mark.parametrize("profile", ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"])
def test_engine_sends_opus_srtp_that_gstreamer_decodes(tmp_path, profile):
    nkey, cipher, auth = GST_CIPHERS[profile]
    key = os.urandom(nkey)
    ssrc = 0x00C0FFEE
    port = free_even_pair()
    wav = tmp_path / "gst_rx.wav"
    caps = ("application/x-srtp,media=(string)audio,clock-rate=(int)48000,"
            "encoding-name=(string)OPUS,payload=(int)111,"
            f"ssrc=(uint){ssrc},srtp-key=(buffer){key.hex()},srtp-cipher=(string){cipher},"
            f"srtp-auth=(string){auth},srtcp-cipher=(string){cipher},srtcp-auth=(string){auth}")
    pipeline = (f"udpsrc address=127.0.0.1 port={port} caps={caps} ! srtpdec ! rtpjitterbuffer ! "
                "rtpopusdepay ! opusdec ! audioconvert ! audio/x-raw,channels=1 ! wavenc ! "
                f"filesink location={wav}")
    proc = subprocess.Popen(["timeout", "-s", "INT", "6", "gst-launch-1.0", "-q", "-e",
                             *pipeline.split()], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_udp_bound(port)
    packets = opus_packets(2.5, freq=660.0)
    with Engine("127.0.0.1") as e:
        # RTCP to port+1: gst-launch leaves srtpdec's RTCP pad unlinked
        s = e.add_session(("127.0.0.1", port), remote_rtcp_port=port + 1, srtp_profile=profile,
                          tx_key=key,
                          rx_key=os.urandom(nkey))
        tx = s.add_send_stream(ssrc, payload_type=111)
        t0 = time.monotonic()
        for i, p in enumerate(packets):
            tx.send(p, timestamp=960 * i, marker=(i == 0))
            time.sleep(max(0.0, t0 + 0.02 * (i + 1) - time.monotonic()))
        out, err = proc.communicate(timeout=30)
    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert len(pcm) >= rate * 2.0, err
    assert abs(dominant_frequency(pcm[rate // 4:], rate) - 660) < 5

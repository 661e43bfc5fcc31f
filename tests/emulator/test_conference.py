"""The emulator's media side: pre-encoded participants replayed over SRTP to a
bot-side engine, decodable audio per speaker and video per participant, the
bot's audio received, key-frame requests honoured."""

from __future__ import annotations

import os
import time

import av
import numpy as np
import pytest

from bot.demo.script import MeetingScript, Participant, Utterance
from bot.emulator.conference import ConferenceMedia, MediaServer
from bot.emulator.simmedia import (H264_CLOCK_RATE, MIXER_SOURCE_ID, OPUS_CLOCK_RATE,
                                   prepare_meeting)
from mediacore.audio.codecs import AudioDecoder, Codec
from mediacore.engine import Engine
from mediacore.video.h264_rtp import H264Depacketizer, RtpPayload

PROFILE = "AES_CM_128_HMAC_SHA1_80"


@pytest.fixture(scope="module")
def meeting():
    script = MeetingScript("t", 3.0, (
        Participant("Ann", say=(Utterance(0.2, "hello there"),), width=160, height=96, fps=10),
        Participant("Ben", join_s=1.0, say=(Utterance(1.2, "good bye"),), video="none"),
    ))
    return prepare_meeting(script)


def test_prepared_media_matches_the_script(meeting):
    ann, ben = meeting.participants
    assert meeting.slots == 150
    assert all(p is not None for p in ann.audio)
    assert ben.audio[:50] == [None] * 50 and ben.audio[50] is not None  # joins at 1.0 s
    assert ben.video is None
    v = ann.video
    assert len(v.frames) == len(v.intra) == 30
    assert v.frames[0].key and not v.frames[1].key and v.frames[10].key  # 1 s GOP at 10 fps
    assert all(f.key for f in v.intra)
    assert all(len(p) <= 1200 for f in v.frames for p in f.payloads)
    assert len(meeting.mixed_audio) == 150


def _drain_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_conference_sends_decodable_audio_and_video_over_srtp(meeting):
    k_down, k_up = os.urandom(30), os.urandom(30)
    ann, ben = meeting.participants
    with MediaServer() as server, Engine("127.0.0.1") as bot:
        session = bot.add_session(server.address, srtp_profile=PROFILE, tx_key=k_up, rx_key=k_down)
        rx = {ssrc: session.add_receive_stream(ssrc, "audio", OPUS_CLOCK_RATE, direct=True)
              for ssrc in (ann.audio_source_id, ben.audio_source_id, MIXER_SOURCE_ID)}
        vrx = session.add_receive_stream(ann.video_source_id, "video", H264_CLOCK_RATE, direct=True)
        bot_tx = session.add_send_stream(4242, 111, "audio", OPUS_CLOCK_RATE)
        conf = ConferenceMedia(server.engine, meeting, ("127.0.0.1", bot.port),
                               srtp_profile=PROFILE, tx_key=k_down, rx_key=k_up,
                               bot_audio_ssrcs=(4242,))
        server.attach("call-1", conf)
        got = {ssrc: [] for ssrc in rx}
        depack = H264Depacketizer()
        frames = []

        def pump():
            for ssrc, stream in rx.items():
                b = stream.read_batch()
                got[ssrc].extend(bytes(p) for p in b.payloads())
            b = vrx.read_batch()
            pkts = [RtpPayload(bytes(p), int(b.sequence_number[i]), int(b.timestamp[i]),
                               bool(b.marker[i])) for i, p in enumerate(b.payloads())]
            if pkts:
                frames.extend(depack.push(pkts))
            return conf.finished and len(got[ann.audio_source_id]) >= 150
        for i in range(20):
            bot_tx.send(b"\xf8\xff\xfe", i * 960)
        assert _drain_until(pump)
        time.sleep(0.2)
        pump()
        server.detach("call-1")
        # every audio packet of each speaker arrived and decodes
        assert len(got[ann.audio_source_id]) == 150
        assert len(got[ben.audio_source_id]) == 100
        dec = AudioDecoder(Codec.OPUS)
        pcm = np.concatenate([dec.decode(p) for p in got[ann.audio_source_id]])
        assert len(pcm) == 150 * 320
        # speech energy where Ann speaks, well above her noise floor
        assert np.sqrt(np.mean(pcm[4000:12000].astype(float) ** 2)) > 300
        assert len(got[MIXER_SOURCE_ID]) == 150
        # video: every frame depacketized and decoded at its size
        assert len(frames) == 30
        codec = av.CodecContext.create("h264", "r")
        decoded = [f for fr in frames for pkt in codec.parse(fr.data) for f in codec.decode(pkt)]
        decoded += list(codec.decode(None))  # flush
        assert len(decoded) >= 29
        assert (decoded[0].width, decoded[0].height) == (160, 96)
        assert conf.stats.bot_audio_packets == 20


def test_keyframe_request_switches_to_intra_until_next_key(meeting):
    k1, k2 = os.urandom(30), os.urandom(30)
    ann = meeting.participants[0]
    with MediaServer() as server, Engine("127.0.0.1") as bot:
        session = bot.add_session(server.address, srtp_profile=PROFILE, tx_key=k2, rx_key=k1)
        vrx = session.add_receive_stream(ann.video_source_id, "video", H264_CLOCK_RATE, direct=True)
        conf = ConferenceMedia(server.engine, meeting, ("127.0.0.1", bot.port), srtp_profile=PROFILE,
                               tx_key=k1, rx_key=k2)
        server.attach("c", conf)
        assert _drain_until(lambda: len(vrx.read_batch()) > 0)
        vrx.request_keyframe()
        assert _drain_until(lambda: conf.stats.keyframe_requests >= 1)
        assert _drain_until(lambda: conf.stats.intra_frames >= 1)
        server.detach("c")

"""The emulator's media side: pre-encoded participants replayed over SRTP to a
bot-side engine, decodable audio per speaker and video per participant, the
bot's audio received, key-frame requests honoured."""

from __future__ import annotations

import os
import time

import av
import numpy as np
import pytest

from bot.emulator.script import MeetingScript, Participant, Utterance
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


@pytest.fixture(scope="module")
def two_cameras():
    script = MeetingScript("subs", 4.0, (
        Participant("Ann", say=(Utterance(0.2, "hi"),), width=320, height=180, fps=10),
        Participant("Ben", say=(Utterance(0.3, "hello"),), width=160, height=96, fps=10),
    ))
    return prepare_meeting(script)


class _VideoSink:
    """Bot-side video receive streams: depacketize and decode per SSRC."""

    def __init__(self, session, ssrcs) -> None:
        self.rx = {s: session.add_receive_stream(s, "video", H264_CLOCK_RATE, direct=True)
                   for s in ssrcs}
        self.depack = {s: H264Depacketizer() for s in ssrcs}
        self.codec = {s: av.CodecContext.create("h264", "r") for s in ssrcs}
        self.sizes: dict[int, list[tuple[int, int]]] = {s: [] for s in ssrcs}
        self.packets = {s: 0 for s in ssrcs}
        self.arrival_ns: dict[int, list[int]] = {s: [] for s in ssrcs}   # the engine's receive times

    def pump(self) -> None:
        for s, stream in self.rx.items():
            b = stream.read_batch()
            self.packets[s] += len(b)
            self.arrival_ns[s].extend(int(x) for x in b.arrival_ns)
            pkts = [RtpPayload(bytes(p), int(b.sequence_number[i]), int(b.timestamp[i]),
                               bool(b.marker[i])) for i, p in enumerate(b.payloads())]
            for fr in self.depack[s].push(pkts) if pkts else []:
                for pkt in self.codec[s].parse(fr.data):
                    self.sizes[s].extend((f.width, f.height) for f in self.codec[s].decode(pkt))


def test_only_subscribed_video_is_forwarded_in_the_preferred_layer(two_cameras):
    ann, ben = two_cameras.participants
    assert [(v.width, v.height) for v in ann.layers] == [(320, 180), (160, 90)]
    assert [(v.width, v.height) for v in ben.layers] == [(160, 96)]     # no layer below 72 lines
    k_down, k_up = os.urandom(30), os.urandom(30)
    with MediaServer() as server, Engine("127.0.0.1") as bot:
        session = bot.add_session(server.address, srtp_profile=PROFILE, tx_key=k_up, rx_key=k_down)
        sink = _VideoSink(session, (ann.video_source_id, ben.video_source_id))
        audio = session.add_receive_stream(ann.audio_source_id, "audio", OPUS_CLOCK_RATE, direct=True)
        conf = ConferenceMedia(server.engine, two_cameras, ("127.0.0.1", bot.port),
                               srtp_profile=PROFILE, tx_key=k_down, rx_key=k_up,
                               subscribed_video={})
        server.attach("c", conf)
        got_audio = []
        assert _drain_until(lambda: got_audio.extend(audio.read_batch().payloads()) or
                            len(got_audio) >= 20)
        sink.pump()
        assert sink.packets == {ann.video_source_id: 0, ben.video_source_id: 0}  # nothing subscribed
        assert conf.stats.video_frames == 0

        # Ann in the layer that fits 200x120: the half-size one, decodable from its first frame
        conf.set_subscriptions({ann.video_source_id: (200, 120)})
        assert _drain_until(lambda: sink.pump() or len(sink.sizes[ann.video_source_id]) >= 5)
        assert set(sink.sizes[ann.video_source_id]) == {(160, 90)}
        assert sink.depack[ann.video_source_id].stats().frames_dropped == 0
        assert sink.packets[ben.video_source_id] == 0

        # no preference: the top layer (switched at an intra frame); Ben too
        conf.set_subscriptions({ann.video_source_id: None, ben.video_source_id: (640, 360)})
        assert _drain_until(lambda: sink.pump() or (
            (320, 180) in sink.sizes[ann.video_source_id]
            and len(sink.sizes[ben.video_source_id]) >= 3))
        assert set(sink.sizes[ben.video_source_id]) == {(160, 96)}
        assert conf.stats.layer_switches == 1
        assert conf.stats.size_by_source[ann.video_source_id] == (320, 180)

        # unsubscribed: the video stops
        conf.set_subscriptions({})
        time.sleep(0.1)
        before = dict(conf.stats.frames_by_source)
        time.sleep(0.4)
        assert conf.stats.frames_by_source == before
        server.detach("c")


def test_fir_is_answered_with_a_key_frame(two_cameras):
    """RFC 5104 FIR from the bot (plain RTP here, from a raw UDP socket) makes
    the subscribed stream send intra frames; the next frame is a key frame."""
    import socket
    import struct

    ann = two_cameras.participants[0]
    vid = ann.video_source_id
    with MediaServer() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.05)
        conf = ConferenceMedia(server.engine, two_cameras, sock.getsockname(), srtp_profile=None,
                               tx_key=None, rx_key=None, send_mixed=False,
                               subscribed_video={vid: None})
        server.attach("c", conf)
        seen = 0
        deadline = time.monotonic() + 5
        while seen < 5 and time.monotonic() < deadline:   # the stream is running
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            seen += struct.unpack("!I", data[8:12])[0] == vid
        assert seen >= 5
        intra_before = conf.stats.intra_frames
        # compound (RFC 4585): an RR with a report block on the stream, then
        # PSFB (206), FMT 4 = FIR; sender SSRC, media SSRC 0, FCI: SSRC + seq nr
        rr = struct.pack("!BBHI" + "IIIIII", 0x80 | 1, 201, 7, 0x0B07, vid, 0, 0, 0, 0, 0)
        fir = struct.pack("!BBHIIIB3x", 0x80 | 4, 206, 4, 0x0B07, 0, vid, 1)
        sock.sendto(rr + fir, server.address)
        assert _drain_until(lambda: conf.stats.keyframe_requests >= 1)
        assert _drain_until(lambda: conf.stats.intra_frames > intra_before)
        server.detach("c")


def test_subscriptions_come_as_mbvs_app_packets(two_cameras):
    """The bot's SRTCP-protected RTCP APP "MBVS" packets choose the video: a
    newer version applies, an older or repeated one does not, malformed data
    and other APP names are counted and ignored."""
    from mediacore.engine import Session
    from mediacore.subscriptions import encode_subscriptions

    if not hasattr(Session, "send_app"):
        pytest.skip("needs Session.send_app")
    ann, ben = two_cameras.participants
    k_down, k_up = os.urandom(30), os.urandom(30)
    with MediaServer() as server, Engine("127.0.0.1") as bot:
        session = bot.add_session(server.address, srtp_profile=PROFILE, tx_key=k_up, rx_key=k_down)
        sink = _VideoSink(session, (ann.video_source_id, ben.video_source_id))
        conf = ConferenceMedia(server.engine, two_cameras, ("127.0.0.1", bot.port),
                               srtp_profile=PROFILE, tx_key=k_down, rx_key=k_up, subscribed_video={})
        server.attach("c", conf)
        session.send_app(4242, b"MBVS", encode_subscriptions(7, [(ben.video_source_id, (640, 360))]))
        assert _drain_until(lambda: sink.pump() or len(sink.sizes[ben.video_source_id]) >= 3)
        assert conf.subscriptions == {ben.video_source_id: (640, 360)}
        session.send_app(4242, b"MBVS", encode_subscriptions(7, [(ann.video_source_id, None)]))  # same
        session.send_app(4242, b"MBVS", encode_subscriptions(6, [(ann.video_source_id, None)]))  # older
        session.send_app(4242, b"MBVS", b"\x00\x00\x00\x08\x00\x05\x00\x00")               # count 5, no entries
        session.send_app(4242, b"XYZW", encode_subscriptions(9, []))                            # not ours
        assert _drain_until(lambda: conf.stats.subscription_repeats == 2
                            and conf.stats.malformed_subscriptions == 1 and conf.stats.other_app_packets == 1)
        assert conf.subscriptions == {ben.video_source_id: (640, 360)}
        sink.pump()
        assert sink.packets[ann.video_source_id] == 0
        session.send_app(4242, b"MBVS", encode_subscriptions(8, []))
        assert _drain_until(lambda: conf.subscriptions == {})
        time.sleep(0.1)
        before = dict(conf.stats.frames_by_source)
        time.sleep(0.4)
        assert conf.stats.frames_by_source == before
        assert conf.stats.subscription_updates == 2
        server.detach("c")


def test_the_conference_keys_and_payload_types_come_from_the_bot_document():
    from bot.emulator.conference import MediaRefused, PayloadTypes, conference_keys
    from mediacore.mediaconfig import MediaConfig

    doc = MediaConfig.generate("127.0.0.1", 40000, kinds=("audio", "video", "vbss"), receive_key=True)
    assert conference_keys(doc) == (doc.srtp.receive_key_bytes, doc.srtp.key_bytes)
    assert PayloadTypes.of(doc) == PayloadTypes(opus=111, telephone_event=101, video=96, vbss=97)
    d = doc.to_json()
    d["media"][0]["codecs"].insert(0, {"payloadType": 120, "name": "opus", "clockRate": 48000, "channels": 2})
    d["media"][0]["codecs"].append({"payloadType": 126, "name": "telephone-event", "clockRate": 48000})
    d["media"] = d["media"][:2]      # no vbss section: screen shares use the video one's
    assert PayloadTypes.of(MediaConfig.from_json(d)) == PayloadTypes(120, 126, 96, 96)
    plain = MediaConfig.generate("127.0.0.1", 40000, srtp_profile=None)
    assert conference_keys(plain) == (None, None)
    with pytest.raises(MediaRefused, match="receiveKey"):
        conference_keys(MediaConfig.generate("127.0.0.1", 40000))


async def test_a_blob_without_receive_key_ends_the_call_as_a_media_failure(tmp_path):
    """The conference cannot key its media without srtp.receiveKey: the call is
    ended with the documented media failure (500/1005), and nothing is sent."""
    import aiohttp
    from aiohttp import web

    from bot.emulator import GraphEmulator, ServiceOptions
    from bot.emulator.conference import ConferenceHandler
    from bot.emulator.meeting import ScriptedMeeting
    from mediacore.mediaconfig import MediaConfig

    from .conftest import Receiver

    script = MeetingScript("refused", 2.0, (Participant("Ann", video="none", say=(Utterance(0.1, "hi"),)),))
    with MediaServer() as server, Engine("127.0.0.1") as bot:
        handler = ConferenceHandler(server)
        emu = GraphEmulator(options=ServiceOptions(time_scale=0.01, allow_http_callbacks=True), media_handler=handler)
        await emu.start()
        rec = Receiver(emu)
        app = web.Application()
        app.router.add_post("/api/calls", rec.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        rec.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/api/calls"
        try:
            meeting = await ScriptedMeeting.prepare(emu, handler, script, video=False)
            blob = MediaConfig.generate("127.0.0.1", bot.port).to_blob()       # no receiveKey
            body = {"@odata.type": "#microsoft.graph.call", "callbackUri": rec.url,
                    "requestedModalities": ["audio"], "tenantId": emu.tenant_id,
                    "mediaConfig": {"@odata.type": "#microsoft.graph.appHostedMediaConfig", "blob": blob},
                    "chatInfo": meeting.meeting.chat_info(),
                    "meetingInfo": meeting.meeting.organizer_meeting_info()}
            async with aiohttp.ClientSession() as http:
                async with http.post(emu.graph_url + "/communications/calls", json=body,
                                     headers={"Authorization": f"Bearer {emu.access_token()}"}) as resp:
                    assert resp.status == 201
                    call_id = (await resp.json())["id"]
            ended = await emu.wait_for_state(call_id, "terminated")
            info = ended.notification["resourceData"]["resultInfo"]
            assert (info["code"], info["subcode"]) == (500, 1005)
            assert "receiveKey" in handler.refused[call_id]
            assert call_id not in handler.conferences and meeting.start_ns is None
            assert server.engine.stats().datagrams_out == 0
        finally:
            await runner.cleanup()
            await emu.stop()


def test_scripted_dtmf_and_screen_share_reach_the_bot():
    """DTMF as RFC 4733 events on the presser's audio SSRC at the scripted
    time; the screen as a VBSS stream only while sharing, when subscribed."""
    from bot.emulator.script import DtmfPress, ScreenShare
    from mediacore.audio.dtmf import TelephoneEvent

    script = MeetingScript("keys", 3.0, (
        Participant("Ann", video="none", say=(Utterance(0.1, "hi"),),
                    dtmf=(DtmfPress(0.5, "1#"),), screen_share=(ScreenShare(1.0, 2.0),)),))
    media = prepare_meeting(script)
    ann = media.participants[0]
    assert ann.screen is not None and (ann.screen.width, ann.screen.height) == (1280, 720)
    screen_id = 10100
    k_down, k_up = os.urandom(30), os.urandom(30)
    with MediaServer() as server, Engine("127.0.0.1") as bot:
        session = bot.add_session(server.address, srtp_profile=PROFILE, tx_key=k_up, rx_key=k_down)
        audio = session.add_receive_stream(ann.audio_source_id, "audio", OPUS_CLOCK_RATE, direct=True)
        sink = _VideoSink(session, (screen_id,))
        conf = ConferenceMedia(server.engine, media, ("127.0.0.1", bot.port), srtp_profile=PROFILE,
                               tx_key=k_down, rx_key=k_up, screen_ids={"Ann": screen_id},
                               subscribed_video={screen_id: None})
        server.attach("c", conf)
        events, audio_ts = [], []

        def pump():
            b = audio.read_batch()
            for i, p in enumerate(b.payloads()):
                if int(b.payload_type[i]) == 101:
                    ev = TelephoneEvent.parse(bytes(p))
                    events.append((int(b.timestamp[i]), ev.event, ev.end))
                else:
                    audio_ts.append(int(b.timestamp[i]))
            sink.pump()
            return conf.finished
        assert _drain_until(pump)
        time.sleep(0.2)
        pump()
        server.detach("c")
    ends = sorted({(ts, code) for ts, code, end in events if end})
    assert [code for _, code in ends] == [1, 11]          # "1", then "#" (event 11)
    # the first tone starts at 0.5 s (slot 25) on the audio stream's clock (slot 0 = first packet)
    assert (ends[0][0] - audio_ts[0]) & 0xFFFFFFFF == 25 * 960
    assert conf.stats.dtmf_packets == len(events)
    # 5 frames/s while sharing, 1280x720, decodable from the first one
    assert 4 <= len(sink.sizes[screen_id]) <= 6
    assert set(sink.sizes[screen_id]) == {(1280, 720)}
    # sent while sharing only (1.0-2.0 s on the conference's clock; arrival times from the engine)
    shared = [(ns - conf.start_ns) / 1e9 for ns in sink.arrival_ns[screen_id]]
    assert 0.9 <= min(shared) and max(shared) < 2.2

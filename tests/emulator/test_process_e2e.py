"""`mediabot emulator` as a process, driven by a minimal bot over Graph HTTP and UDP only.

The emulator is started exactly as a user starts it (the ``mediabot`` command, a meeting script,
``--bot-config``); the test reads the join URL it prints and the bot configuration it writes, and
then is the bot: an aiohttp webhook that verifies each callback's JWT (``bot.webhook``), a Graph
client (``bot.graph``) with msal tokens from the emulator, and a native engine session with
``latch=True`` keyed from a media configuration document with ``srtp.receiveKey``. Nothing passes
between the two but HTTP and SRTP/SRTCP datagrams.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import av
import pytest
from aiohttp import web

from bot.graph import models as m
from bot.graph.api import CallsApi
from bot.graph.auth import MsalTokenProvider
from bot.graph.client import GraphClient
from bot.webhook import CallbackAuthenticator
from mediacore.audio.dtmf import TelephoneEvent
from mediacore.engine import Engine, Session
from mediacore.mediaconfig import MediaConfig
from mediacore.subscriptions import APP_NAME, encode_subscriptions
from mediacore.video.h264_rtp import H264Depacketizer, RtpPayload

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.skipif(not hasattr(Session, "send_app"), reason="needs Session.send_app")

SCRIPT = """
[meeting]
title = "process e2e"
duration_s = 6

[[participant]]
name = "Ann"
video = "pattern"
width = 320
height = 180
fps = 10
say = [ { at_s = 0.2, text = "hello everyone" } ]

[[participant]]
name = "Ben"
video = "pattern"
width = 160
height = 96
fps = 10
join_s = 0.5
say = [ { at_s = 1.5, text = "good morning" } ]
dtmf = [ { at_s = 1.0, digits = "1#" } ]

[[participant]]
name = "Cat"
video = "none"
say = [ { at_s = 2.5, text = "thank you" } ]
screen_share = [ { start_s = 2.0, end_s = 3.5 } ]
"""


def _mediabot() -> list[str]:
    exe = Path(sys.executable).with_name("mediabot")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bot"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webhook:
    """The bot's calling webhook: every callback's bearer JWT is validated against the emulator's
    published keys before the notification is looked at."""

    def __init__(self, app_id: str, openid_configuration_url: str) -> None:
        self.auth = CallbackAuthenticator(app_id=app_id, openid_configuration_url=openid_configuration_url)
        self.items: list[dict] = []
        self.rejected = 0
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        try:
            await self.auth.validate(request.headers.get("Authorization"))
        except Exception:
            self.rejected += 1
            return web.Response(status=401)
        body = await request.json()
        self.items.extend(body.get("value") or [])
        self.changed.set()
        return web.Response(status=202)

    def roster(self) -> dict[str, dict[str, int]]:
        """display name -> {mediaType: sourceId} from the latest full roster notification."""
        latest: list = []
        for item in self.items:
            if item.get("resourceUrl", "").endswith("/participants") and isinstance(item.get("resourceData"), list):
                latest = item["resourceData"]
        out = {}
        for p in latest:
            ident = p.get("info", {}).get("identity", {})
            name = next((v.get("displayName") for k, v in ident.items()
                         if not k.startswith("@") and isinstance(v, dict)), None)
            if name and "application" not in ident:
                out[name] = {s["mediaType"]: int(s["sourceId"]) for s in p.get("mediaStreams", [])}
        return out

    def terminated(self) -> dict | None:
        for item in self.items:
            data = item.get("resourceData")
            if (item.get("changeType") == "deleted" and isinstance(data, dict)
                    and data.get("state") == "terminated" and "/operations/" not in item.get("resourceUrl", "")):
                return data
        return None


class Media:
    """The bot's media: one latching engine session; per source the packets' arrival times (the
    engine's receive clock, seconds from the first audio packet), video decoded to frame sizes,
    RFC 4733 events."""

    def __init__(self, session) -> None:
        self.session = session
        self.audio: dict[int, object] = {}
        self.video: dict[int, object] = {}
        self.depack: dict[int, H264Depacketizer] = {}
        self.codec: dict[int, object] = {}
        self.frames: dict[int, list[tuple[int, int]]] = {}   # ssrc -> decoded frame sizes
        self.video_t: dict[int, list[float]] = {}             # ssrc -> packet arrival times
        self.audio_t: dict[int, list[float]] = {}
        self.dtmf: dict[int, list[tuple[int, int, bool]]] = {}            # ssrc -> [(ts, event, end)]
        self.first_ns: int | None = None

    def add_audio(self, ssrc: int) -> None:
        if ssrc not in self.audio:
            self.audio[ssrc] = self.session.add_receive_stream(ssrc, "audio", 48000, direct=True)
            self.audio_t[ssrc], self.dtmf[ssrc] = [], []

    def add_video(self, ssrc: int) -> None:
        if ssrc not in self.video:
            self.video[ssrc] = self.session.add_receive_stream(ssrc, "video", 90000, direct=True)
            self.depack[ssrc] = H264Depacketizer()
            self.codec[ssrc] = av.CodecContext.create("h264", "r")
            self.frames[ssrc], self.video_t[ssrc] = [], []

    def t(self, ns: int) -> float:
        return (ns - self.first_ns) / 1e9 if self.first_ns else 0.0

    def pump(self) -> None:
        for ssrc, stream in self.audio.items():
            b = stream.read_batch()
            for i, p in enumerate(b.payloads()):
                ns = int(b.arrival_ns[i])
                self.first_ns = self.first_ns or ns
                if int(b.payload_type[i]) == 101:
                    ev = TelephoneEvent.parse(bytes(p))
                    self.dtmf[ssrc].append((int(b.timestamp[i]), ev.event, ev.end))
                else:
                    self.audio_t[ssrc].append(self.t(ns))
        for ssrc, stream in self.video.items():
            b = stream.read_batch()
            pkts = [RtpPayload(bytes(p), int(b.sequence_number[i]), int(b.timestamp[i]), bool(b.marker[i]))
                    for i, p in enumerate(b.payloads())]
            self.video_t[ssrc].extend(self.t(int(ns)) for ns in b.arrival_ns)
            for fr in self.depack[ssrc].push(pkts) if pkts else []:
                for pkt in self.codec[ssrc].parse(fr.data):
                    self.frames[ssrc].extend((f.width, f.height) for f in self.codec[ssrc].decode(pkt))

    def packets(self, ssrc: int, since: float = -1.0, until: float = 1e9) -> int:
        return sum(1 for t in self.video_t.get(ssrc, []) if since <= t < until)


async def _until(predicate, media: Media, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        media.pump()
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.slow
async def test_a_bot_joins_the_emulator_process_over_graph_and_udp_only(tmp_path):
    script = tmp_path / "meeting.toml"
    script.write_text(SCRIPT)
    config_path = tmp_path / "bot.toml"
    hook_port = _free_port()
    webhook_url = f"http://127.0.0.1:{hook_port}/api/calls"
    proc = await asyncio.create_subprocess_exec(
        *_mediabot(), "emulator", "--script", str(script), "--port", "0", "--tls-port", "0",
        "--media-port", "0", "--bot-config", str(config_path), "--webhook", webhook_url,
        "--allow-http-callbacks", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    engine = Engine("127.0.0.1")
    runner = http = graph = tokens = hook = None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line, (await proc.stderr.read()).decode()
        join_url = line.decode().strip()
        assert join_url.startswith("https://teams.microsoft.com/l/meetup-join/")

        # the configuration it wrote: Graph, msal and callback keys at the emulator; the secret beside it
        cfg = tomllib.loads(config_path.read_text())
        env = dict(ln.split("=", 1) for ln in Path(f"{config_path}.env").read_text().split())
        assert (os.stat(f"{config_path}.env").st_mode & 0o077) == 0
        assert cfg["webhook"]["public_url"] == webhook_url and cfg["webhook"]["port"] == hook_port
        assert cfg["graph"]["instance_discovery"] is False
        secret = env[cfg["graph"]["client_secret_env"]]

        hook = Webhook(cfg["bot"]["app_id"], cfg["webhook"]["openid_configuration_url"])
        app = web.Application()
        app.router.add_post(cfg["webhook"]["path"], hook.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, cfg["webhook"]["host"], cfg["webhook"]["port"]).start()

        import requests

        http = requests.Session()
        http.trust_env = False
        http.verify = cfg["graph"]["ca_bundle"]
        tokens = MsalTokenProvider(app_id=cfg["bot"]["app_id"], tenant_id=cfg["bot"]["tenant_id"],
                                   client_secret=secret, authority_host=cfg["graph"]["authority_host"],
                                   msal_options={"instance_discovery": False, "http_client": http})
        graph = GraphClient(token_provider=tokens, base_url=cfg["graph"]["base_url"])
        api = CallsApi(graph)

        # our media: a document with the key the conference protects with, a latching session
        doc = MediaConfig.generate("127.0.0.1", engine.port, role="bot", kinds=("audio", "video"),
                                   receive_key=True)
        session = engine.add_session(None, srtp_profile=doc.srtp.profile, tx_key=doc.srtp.key_bytes,
                                     rx_key=doc.srtp.receive_key_bytes, latch=True)
        media = Media(session)
        my_ssrc = doc.section("audio").ssrcs[0]

        chat, meeting_info, tenant = m.parse_join_url(join_url)
        call = await api.create_call(m.Call(
            callback_uri=webhook_url, requested_modalities=["audio", "video"],
            media_config=m.AppHostedMediaConfig(blob=doc.to_blob()), chat_info=chat,
            meeting_info=meeting_info, tenant_id=tenant,
            source=m.ParticipantInfo(identity=m.IdentitySet.of_application(cfg["bot"]["app_id"]))))
        assert call.id

        # the roster names everyone's source ids; Ben joins at 0.5 s
        roster: dict = {}

        async def learn() -> bool:
            roster.update(hook.roster())
            for streams in roster.values():
                media.add_audio(streams["audio"])
                for kind in ("video", "videoBasedScreenSharing"):
                    if kind in streams:
                        media.add_video(streams[kind])
            return "Ann" in roster and "Cat" in roster

        deadline = time.monotonic() + 10
        while not await learn():
            assert time.monotonic() < deadline, hook.items
            await asyncio.sleep(0.02)
        ann, cat = roster["Ann"], roster["Cat"]
        assert "video" not in cat and "videoBasedScreenSharing" in cat
        # the conference starts at the meeting's time zero (1 s lead-in); its first packet latches us
        assert await _until(lambda: media.first_ns is not None, media, 10)

        def subscribe(version: int, entries) -> float:
            """Send the whole list; returns when (the media clock) it went."""
            session.send_app(my_ssrc, APP_NAME, encode_subscriptions(version, entries))
            return media.t(time.monotonic_ns())

        # v1: Ann's camera at most 200x120 (the half-size layer) and Cat's screen
        subscribe(1, [(ann["video"], (200, 120)), (cat["videoBasedScreenSharing"], None)])
        while "Ben" not in roster:
            await learn()
            media.pump()
            await asyncio.sleep(0.02)
        ben = roster["Ben"]
        assert len({ann["audio"], ben["audio"], cat["audio"], ann["video"], ben["video"],
                    cat["videoBasedScreenSharing"]}) == 6
        assert await _until(lambda: len(media.frames[ann["video"]]) >= 5, media, 5)
        session.send_app(my_ssrc, APP_NAME, b"\x00\x00\x00\x07")        # malformed: ignored
        # v2 at 1.8 s: Ben's camera (no preference: his top layer) instead of Ann's
        assert await _until(lambda: media.t(time.monotonic_ns()) >= 1.8, media, 5)
        t2 = subscribe(2, [(ben["video"], None), (cat["videoBasedScreenSharing"], None)])
        subscribe(1, [(ann["video"], None)])                                # older: ignored
        # v3 at 4.2 s: nothing
        assert await _until(lambda: media.t(time.monotonic_ns()) >= 4.2, media, 5)
        t3 = subscribe(3, [])
        # the script ends at 6 s: the emulator ends the call as Graph does when a meeting ends
        assert await _until(lambda: hook.terminated() is not None, media, 10)
        media.pump()
        result = hook.terminated()["resultInfo"]
        assert (int(result["code"]), int(result["subcode"])) == (200, 5001)

        # every participant's audio, under the roster's source ids, from when they are there
        assert 290 <= len(media.audio_t[ann["audio"]]) <= 300
        assert 290 <= len(media.audio_t[cat["audio"]]) <= 300
        assert len(media.audio_t[ben["audio"]]) >= 200 and min(media.audio_t[ben["audio"]]) >= 0.45
        for ssrc in (ann["audio"], ben["audio"], cat["audio"]):
            assert media.audio[ssrc].stats().lost == 0
        # Ben's "1#" as RFC 4733 events on his audio stream (event 1, then 11), nobody else's
        ends = sorted({(ts, ev) for ts, ev, end in media.dtmf[ben["audio"]] if end})
        assert [ev for _, ev in ends] == [1, 11]
        assert not media.dtmf[ann["audio"]] and not media.dtmf[cat["audio"]]
        # only what was subscribed, at the subscribed size; unsubscribing stops it
        # (each change takes effect at the conference's next 20 ms tick)
        assert set(media.frames[ann["video"]]) == {(160, 90)} and len(media.frames[ann["video"]]) >= 10
        assert media.packets(ann["video"], since=t2 + 0.2) == 0
        assert media.packets(ben["video"], until=t2) == 0 and media.packets(ben["video"], since=t3 + 0.2) == 0
        assert set(media.frames[ben["video"]]) == {(160, 96)} and len(media.frames[ben["video"]]) >= 15
        # the screen share only while Cat shares (2.0-3.5 s), 1280x720 at 5 frames/s
        shared = media.video_t[cat["videoBasedScreenSharing"]]
        assert set(media.frames[cat["videoBasedScreenSharing"]]) == {(1280, 720)}
        assert 5 <= len(media.frames[cat["videoBasedScreenSharing"]]) <= 9
        assert 1.9 <= min(shared) and max(shared) < 3.6
        assert hook.rejected == 0
    finally:
        if runner is not None:
            await runner.cleanup()
        if hook is not None:
            await hook.auth.close()
        if graph is not None:
            await graph.close()
        if http is not None:
            http.close()
        engine.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0, (await proc.stderr.read()).decode()[-2000:]

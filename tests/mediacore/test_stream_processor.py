"""The ``stream`` processor against a real aiohttp WebSocket server on
loopback, with a real call's media from a remote engine (SRTP, Opus): the
messages are parsed here from docs/streaming.md's description, not with the
processor's own code."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time

import numpy as np
import pytest
from aiohttp import WSMsgType, web

from mediacore import MediaHost, Source
from mediacore.audio.codecs import AudioDecoder, Codec
from mediacore.processors import ProcessorSpecError, processor_factory
from mediacore.processors.stream import StreamProcessor

from .test_callmedia import ALICE, BOB, Remote, wait_for

TOKEN = "s3cret-token"


def parse_audio(data: bytes) -> dict:
    """A binary audio message, as docs/streaming.md describes it."""
    version, kind, header_len, seq, ts, flags, _res, id_len = struct.unpack_from("<BBHIqBBH", data)
    pid = data[20 : 20 + id_len].decode()
    assert header_len == 20 + id_len
    pcm = np.frombuffer(data[header_len:], "<i2")
    return {"version": version, "kind": kind, "seq": seq, "ts": ts, "flags": flags, "id": pid, "pcm": pcm}


class Connection:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.texts: list[dict] = []
        self.audio: list[dict] = []
        self.closed = False


class WsServer:
    """A WebSocket endpoint on its own loop and thread, which can be stopped
    and started again on the same port."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/media"
        self.connections: list[Connection] = []
        self.refused = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self) -> WsServer:
        self._run(self._start())
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/media", self._handler)
        app.on_shutdown.append(self._going_away)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def _going_away(self, app: web.Application) -> None:
        # a server that goes away says so (RFC 6455 section 7.4.1: 1001)
        for conn in self.connections:
            if not conn.closed:
                await conn.ws.close(code=1001, message=b"going away")

    async def _handler(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.refused += 1
            return web.Response(status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(ws)
        self.connections.append(conn)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                conn.texts.append(json.loads(msg.data))
            elif msg.type == WSMsgType.BINARY:
                conn.audio.append(parse_audio(msg.data))
        conn.closed = True
        return ws

    def stop(self) -> None:
        if self._runner is not None:
            self._run(self._runner.cleanup())
            self._runner = None

    def send(self, conn: Connection, data: bytes) -> None:
        self._run(conn.ws.send_bytes(data))

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("STREAM_TEST_TOKEN", TOKEN)
    s = WsServer().start()
    yield s
    s.close()


def dominant_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(float)))
    return float(np.fft.rfftfreq(len(pcm), 1 / 16000)[np.argmax(spectrum)])


def test_options_are_checked_by_the_registry():
    make = processor_factory("stream", {"url": "ws://127.0.0.1:1/x", "buffer_ms": 500})
    p = make()
    assert isinstance(p, StreamProcessor) and p.mode == "thread" and p.audio == "both"
    for bad in (
        {"url": "http://x"},
        {"url": "ws://x", "mode": "process"},
        {"url": "ws://x", "buffer_ms": 0},
        {"url": "ws://x", "mixed": False, "unmixed": False},
        {"url": "ws://x", "token_env": ""},
    ):
        with pytest.raises(ProcessorSpecError):
            processor_factory("stream", bad)


def test_speakers_mix_and_events_stream_and_audio_comes_back(server):
    with MediaHost(audio_workers=1) as host:
        media = host.create_call("call-stream", mixed=True)
        remote = Remote(media)
        rx = remote.session.add_receive_stream(remote.bot_audio_ssrc, "audio", direct=True)
        remote.add_audio(ALICE, 440)
        remote.add_audio(BOB, 660)
        media.update_sources(
            [Source(ALICE, "p-alice", "Alice", "audio"), Source(BOB, "p-bob", "Bob", "audio")]
        )
        remote.start()
        try:
            runner = media.add_processor(StreamProcessor(url=server.url, token_env="STREAM_TEST_TOKEN"))
            assert wait_for(lambda: server.connections and len(server.connections[0].audio) > 100)
            conn = server.connections[0]
            # the server answers with one second of a 1 kHz tone, in odd-sized pieces
            t = np.arange(16000)
            tone = (8000 * np.sin(2 * np.pi * 1000 * t / 16000)).astype("<i2").tobytes()
            for i in range(0, len(tone), 1000):
                server.send(conn, tone[i : i + 1000])
            time.sleep(1.5)
            remote.press(ALICE, "7")
            time.sleep(0.6)
            remote.audio.pop(BOB)  # Bob leaves
            media.update_sources([Source(ALICE, "p-alice", "Alice", "audio")])
            time.sleep(1.2)
            batch = rx.read_batch(1000, timeout=1.0)
        finally:
            result = media.close()["StreamProcessor"]
            remote.close()
    assert runner.errors == 0 and server.refused == 0
    assert len(server.connections) == 1 and result["connections"] == 1
    assert wait_for(lambda: conn.closed)  # closed by the bot at the end of the call
    start = conn.texts[0]
    assert start["type"] == "start" and start["call_id"] == "call-stream" and start["version"] == 1
    assert start["format"] == {
        "encoding": "s16le",
        "sample_rate_hz": 16000,
        "channels": 1,
        "frame_ms": 20,
        "frame_bytes": 640,
    }
    types = [m["type"] for m in conn.texts[1:]]
    assert types[:2] == ["participant_joined", "participant_joined"]
    joined = {m["participant_id"]: m["display_name"] for m in conn.texts[1:3]}
    assert joined == {"p-alice": "Alice", "p-bob": "Bob"}
    dtmf = [m for m in conn.texts if m["type"] == "dtmf"]
    assert [(m["digit"], m["participant_id"]) for m in dtmf] == [("7", "p-alice")]
    left = [m for m in conn.texts if m["type"] == "participant_left"]
    assert [m["participant_id"] for m in left] == ["p-bob"]
    assert types[-1] == "call_ended" and "dropped" not in types
    # every stream's frames in order, with identities and 20 ms timestamps
    streams: dict[tuple[int, str], list[dict]] = {}
    for a in conn.audio:
        assert a["version"] == 1 and len(a["pcm"]) == 320
        streams.setdefault((a["kind"], a["id"]), []).append(a)
    assert set(streams) == {(0, "p-alice"), (0, "p-bob"), (1, "")}
    for key, frames in streams.items():
        seqs = [f["seq"] for f in frames]
        assert seqs == list(range(len(seqs))), key  # none lost, none twice
        steps = np.diff([f["ts"] for f in frames])
        assert steps.min() > 0 and np.median(steps) == 200_000, key
        assert len(frames) > 100, key
    assert abs(dominant_hz(np.concatenate([f["pcm"] for f in streams[(0, "p-bob")][10:40]])) - 660) < 20
    alice = [f for f in streams[(0, "p-alice")] if not f["flags"] & 1]
    assert abs(dominant_hz(np.concatenate([f["pcm"] for f in alice[10:40]])) - 440) < 20
    # Bob's speech stops when he leaves (what follows under his name: his jitter buffer's
    # concealment), Alice's goes on
    left_at = left[0]["timestamp_100ns"]
    assert all(f["flags"] & 2 for f in streams[(0, "p-bob")] if f["ts"] > left_at + 1_000_000)
    assert streams[(0, "p-alice")][-1]["ts"] > left_at + 8_000_000
    # the server's tone reached the remote: decode the bot's Opus packets there
    assert result["frames_played"] == 50 and result["frames_play_dropped"] == 0
    dec = AudioDecoder(Codec.OPUS)
    pcm = [dec.decode(bytes(p)) for p, pt in zip(batch.payloads(), batch.payload_type) if pt == 111]
    rms = [float(np.sqrt(np.mean(x.astype(float) ** 2))) for x in pcm]
    loud = [x for x, r in zip(pcm, rms) if r > 2000]
    assert 40 <= len(loud) <= 55
    assert abs(dominant_hz(np.concatenate(loud[5:25])) - 1000) < 20


@pytest.mark.parametrize("buffer_ms", [200, 5000])
def test_a_server_restart_loses_or_buffers_frames_never_twice(server, buffer_ms):
    with MediaHost(audio_workers=1) as host:
        media = host.create_call("call-restart")
        remote = Remote(media)
        remote.add_audio(ALICE, 440)
        remote.add_audio(BOB, 660)
        media.update_sources(
            [Source(ALICE, "p-alice", "Alice", "audio"), Source(BOB, "p-bob", "Bob", "audio")]
        )
        remote.start()
        try:
            runner = media.add_processor(
                StreamProcessor(
                    url=server.url,
                    token_env="STREAM_TEST_TOKEN",
                    buffer_ms=buffer_ms,
                    reconnect_min_s=0.05,
                    reconnect_max_s=0.2,
                )
            )
            assert wait_for(lambda: server.connections and len(server.connections[0].audio) > 50)
            down = time.monotonic_ns() // 100
            server.stop()
            time.sleep(1.0)
            server.start()
            up = time.monotonic_ns() // 100
            assert wait_for(lambda: len(server.connections) == 2 and len(server.connections[1].audio) > 100)
        finally:
            result = media.close()["StreamProcessor"]
            remote.close()
    assert runner.errors == 0 and result["connections"] == 2
    first, second = server.connections
    start = second.texts[0]
    assert start["type"] == "start" and start["connection"] == 1
    # who is there comes again with the new connection's start
    assert {p["participant_id"] for p in start["participants"]} == {"p-alice", "p-bob"}
    reported: dict[str, int] = {}
    drops = [m for m in second.texts if m["type"] == "dropped"]
    for m in drops:
        for s in m["streams"]:
            reported[s["participant_id"]] = reported.get(s["participant_id"], 0) + s["count"]
    for pid in ("p-alice", "p-bob"):
        a = [f for f in first.audio if f["id"] == pid]
        b = [f for f in second.audio if f["id"] == pid]
        seqs = [f["seq"] for f in a + b]
        assert len(set(seqs)) == len(seqs) and seqs == sorted(seqs), pid  # never twice
        missing = seqs[-1] + 1 - len(seqs)  # the gap the sequence numbers show
        assert reported.get(pid, 0) <= missing
        during = [f for f in b if down < f["ts"] < up]  # frames of the outage delivered
        if buffer_ms == 200:
            assert drops and second.texts[1]["type"] == "dropped"  # right after start
            assert reported[pid] >= 30  # ~1 s of 20 ms frames, minus 200 ms
            assert missing - reported[pid] <= 5  # at most those in flight at the close
            assert len(during) <= 12
        else:
            assert len(during) >= 40  # buffered through the outage
            assert missing <= 5  # at most those in flight at the close

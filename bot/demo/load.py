"""`mediabot load`: N concurrent audio calls from the emulator's media side
against one bot process.

The emulator runs in its own process (so the bot's CPU figures are the bot's),
replaying one pre-encoded speaking participant per call (Opus, 50 packets/s,
SRTP AES_CM_128_HMAC_SHA1_80). The bot side is one native engine (one UDP
port) with a session per call and one dispatcher thread that decodes every
frame to 16 kHz and hands it to a (null) processor.

Reported per run: call set-up time (the emulator's start of a call, on the
host's monotonic clock, to the first decoded frame in the bot's processor),
frames received / expected / dropped per call, concealed frames, SRTP and
ring errors, CPU per call (bot process, user+system over the window), and
wire-to-processor latency percentiles. Latency is measured with frames
delivered in arrival order (the engine's direct mode), so it excludes the
jitter-buffer delay by construction, which is what the target is about.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

SRTP_PROFILE = "AES_CM_128_HMAC_SHA1_80"
SSRC_STRIDE = 16


def _load_script(duration_s: float):
    from bot.demo.script import MeetingScript, Participant, Utterance

    text = "the quick brown fox jumps over the lazy dog and runs back home again"
    clip = min(duration_s, 10.0)
    return MeetingScript("load", clip, (Participant(
        "Speaker", video="none",
        say=tuple(Utterance(t, text) for t in np.arange(0.2, clip - 1.0, 5.0))),))


def _emulator_main(conn, duration_s: float) -> None:
    """Child process: the emulator's media side."""
    from bot.emulator.conference import ConferenceMedia, MediaServer
    from bot.emulator.simmedia import prepare_meeting

    media = prepare_meeting(_load_script(duration_s), video=False)
    with MediaServer("127.0.0.1") as server:
        conn.send(server.address)
        calls = conn.recv()  # [(bot_port, down_key, up_key, ssrc_offset)]
        started = []
        confs = []
        for bot_port, down, up, offset in calls:
            started.append(time.monotonic_ns())
            c = ConferenceMedia(server.engine, media, ("127.0.0.1", bot_port),
                                srtp_profile=SRTP_PROFILE, tx_key=down, rx_key=up, loop=True,
                                send_video=False, send_mixed=False, ssrc_offset=offset)
            server.attach(f"call-{offset}", c)
            confs.append(c)
        conn.send(started)
        conn.recv()  # stop
        sent = [c.stats.audio_packets for c in confs]
    conn.send(sent)


@dataclass
class CallResult:
    ssrc: int
    started_ns: int = 0
    first_frame_ns: int = 0
    frames: int = 0
    lost: int = 0
    highest_seq: int = -1
    first_seq: int = -1


@dataclass
class LoadRun:
    calls: int
    duration_s: float
    results: list[CallResult] = field(default_factory=list)
    latency_ns: list[int] = field(default_factory=list)
    cpu_s: float = 0.0
    window_s: float = 0.0
    ring_dropped: int = 0
    auth_failures: int = 0
    decode_errors: int = 0
    sent: list[int] = field(default_factory=list)


def run_load_once(calls: int, duration_s: float, out: TextIO = sys.stdout) -> dict:
    from mediacore.audio.codecs import AudioDecoder, Codec
    from mediacore.engine import Engine
    from mediacore.rings import Ring

    from bot.emulator.simmedia import AUDIO_SOURCE_BASE

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_emulator_main, args=(child, duration_s), daemon=True)
    proc.start()
    emu_addr = tuple(parent.recv())
    run = LoadRun(calls, duration_s)
    engine = Engine("127.0.0.1", rcvbuf_bytes=8 << 20)
    ring = Ring.create(1 << 22, policy="drop")
    by_ssrc: dict[int, tuple[CallResult, AudioDecoder]] = {}
    sessions = []
    spec = []
    reader = None
    for i in range(calls):
        down, up = os.urandom(30), os.urandom(30)
        offset = (i + 1) * SSRC_STRIDE
        s = engine.add_session(emu_addr, srtp_profile=SRTP_PROFILE, tx_key=up, rx_key=down)
        ssrc = AUDIO_SOURCE_BASE + offset
        stream = s.add_receive_stream(ssrc, "audio", 48000, direct=True, ring=ring)
        reader = reader or stream
        by_ssrc[ssrc] = (CallResult(ssrc), AudioDecoder(Codec.OPUS))
        sessions.append(s)
        spec.append((engine.port, down, up, offset))
    stop = threading.Event()

    def dispatch():
        while not stop.is_set():
            ring.wait(timeout=0.05)
            batch = reader.read_batch(512)
            n = len(batch)
            if not n:
                continue
            now = time.monotonic_ns()
            ssrcs, seqs, arr = batch.ssrc, batch.sequence_number, batch.arrival_ns
            for k in range(n):
                entry = by_ssrc.get(int(ssrcs[k]))
                if entry is None:
                    continue
                res, dec = entry
                try:
                    dec.decode(bytes(batch.payload(k)))  # the processor gets this frame
                except Exception:
                    run.decode_errors += 1
                    continue
                t = time.monotonic_ns()
                if res.frames == 0:
                    res.first_frame_ns = t
                    res.first_seq = int(seqs[k])
                res.frames += 1
                res.highest_seq = int(seqs[k])
                run.latency_ns.append(t - int(arr[k]))
            del now

    th = threading.Thread(target=dispatch, name="load-dispatch", daemon=True)
    th.start()
    parent.send(spec)
    started = parent.recv()
    for (res, _), t in zip(by_ssrc.values(), started):
        res.started_ns = t
    # measure after everyone is up
    time.sleep(min(2.0, duration_s / 4))
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    frames0 = sum(r.frames for r, _ in by_ssrc.values())
    time.sleep(max(0.5, duration_s - min(2.0, duration_s / 4)))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    run.window_s = time.monotonic() - t0
    frames1 = sum(r.frames for r, _ in by_ssrc.values())
    run.cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    parent.send("stop")
    run.sent = parent.recv()
    time.sleep(0.2)
    stop.set()
    th.join(timeout=5)
    for s in sessions:
        for ssrc, stream in s.receive_streams.items():
            st = stream.stats()
            run.ring_dropped += st.ring_dropped
            run.auth_failures += st.auth_failures
            by_ssrc[ssrc][0].lost = st.lost
    proc.join(timeout=10)
    engine.close()
    ring.close()
    run.results = [r for r, _ in by_ssrc.values()]
    return _summarise(run, frames1 - frames0)


def _pct_ms(values: list[int], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.int64), q)) / 1e6


def _summarise(run: LoadRun, window_frames: int) -> dict:
    per_call = []
    dropped_total = 0
    for r, sent in zip(run.results, run.sent or [0] * len(run.results)):
        expected = (r.highest_seq - r.first_seq + 1) & 0xFFFF if r.frames else 0
        if r.frames and expected < r.frames:  # wrapped past 65535: count from frames
            expected = r.frames
        dropped = max(0, expected - r.frames)
        dropped_total += dropped
        per_call.append({"ssrc": r.ssrc, "frames": r.frames, "expected": expected,
                         "dropped": dropped, "lost_in_network": r.lost, "sent": sent,
                         "setup_ms": (r.first_frame_ns - r.started_ns) / 1e6 if r.frames else None})
    setups = [c["setup_ms"] for c in per_call if c["setup_ms"] is not None]
    never = sum(1 for c in per_call if not c["frames"])
    return {
        "calls": run.calls,
        "duration_s": run.duration_s,
        "frames_per_s_per_call": round(window_frames / run.window_s / max(1, run.calls), 2),
        "dropped_frames": dropped_total + run.ring_dropped,
        "calls_without_media": never,
        "ring_dropped": run.ring_dropped,
        "auth_failures": run.auth_failures,
        "decode_errors": run.decode_errors,
        "cpu_percent_of_one_core": round(100 * run.cpu_s / run.window_s, 1),
        "cpu_us_per_call_per_s": round(1e6 * run.cpu_s / run.window_s / max(1, run.calls), 1),
        "setup_ms": {"p50": float(np.percentile(setups, 50)) if setups else None,
                     "max": max(setups) if setups else None},
        "latency_ms": {"p50": _pct_ms(run.latency_ns, 50), "p99": _pct_ms(run.latency_ns, 99),
                       "max": _pct_ms(run.latency_ns, 100)},
        "per_call": per_call,
    }


class _CountingProcessor:
    """The processor of the set-up measurement: takes frames, does nothing."""

    def push(self, speaker, pcm, timestamp_100ns) -> None:
        pass


async def _measure_setup(calls: int, timeout_s: float = 30.0) -> dict:
    import asyncio
    import socket

    from mediacore.engine import Engine

    from bot.app import Bot
    from bot.config import BotConfig, CallSettings, GraphSettings, WebhookSettings
    from bot.demo.botmedia import DemoBotMedia
    from bot.demo.script import MeetingScript, Participant, Utterance
    from bot.emulator.conference import ConferenceHandler
    from bot.emulator.server import GraphEmulator
    from bot.emulator.simmedia import prepare_meeting
    from bot.graph.auth import MsalTokenProvider

    script = MeetingScript("setup", 4.0, (Participant("Caller", video="none",
                                                      say=(Utterance(0.1, "hello"),)),))
    media = await asyncio.get_running_loop().run_in_executor(
        None, lambda: prepare_meeting(script, video=False))
    engine = Engine("127.0.0.1")
    botmedia = DemoBotMedia(engine, transcriber=_CountingProcessor(), analytics=None)
    handler = ConferenceHandler(None, media, on_answer=botmedia.accept_answer, loop=True)
    emu = GraphEmulator(media_handler=handler)
    await emu.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = BotConfig(
        app_id=emu.app_id, tenant_id=emu.tenant_id,
        graph=GraphSettings(base_url=emu.graph_url, authority_host=emu.tls_base_url,
                            client_secret=emu.client_secret),
        webhook=WebhookSettings(public_url=f"http://127.0.0.1:{port}/api/calls", host="127.0.0.1",
                                port=port, openid_configuration_url=emu.openid_configuration_url),
        calls=CallSettings(incoming="answer", modalities=["audio"]))
    http = emu.msal_kwargs()["http_client"]  # trusts the emulator's CA; closed by emu.stop()
    tokens = MsalTokenProvider(
        app_id=emu.app_id, tenant_id=emu.tenant_id, client_secret=emu.client_secret,
        authority_host=emu.tls_base_url,
        msal_options={"instance_discovery": False, "http_client": http})
    bot = Bot(config, media=botmedia, token_provider=tokens)
    await bot.start()
    await tokens.get_token()  # a running bot has its app token cached: not part of set-up
    emu.register_bot(webhook_url=config.webhook.public_url)
    try:
        # each call: a meeting with one speaking participant rings the bot
        meetings = []
        for i in range(calls):
            mt = emu.create_meeting(subject=f"set-up {i}")
            emu.add_participant(mt.id, "Caller")
            meetings.append(mt)
        rings = []
        for mt in meetings:
            t0 = time.monotonic_ns()
            call = emu.incoming_call(display_name="Caller", meeting_id=mt.id, modalities=["audio"])
            rings.append((call.id, t0))
        setup_ms: list[float] = []
        deadline = time.monotonic() + timeout_s
        pending = dict(rings)
        while pending and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            for call_id, t0 in list(pending.items()):
                r = botmedia.receiver_for(call_id)
                first = r.stats.first_frame_ns.get("Caller") if r is not None else None
                if first:
                    setup_ms.append((first - t0) / 1e6)
                    del pending[call_id]
    finally:
        await bot.stop()
        await emu.stop()
        botmedia.close()
        handler.close()
        engine.close()
    return {"calls": calls, "answered_with_media": len(setup_ms), "setup_ms": sorted(setup_ms)}


def measure_setup(calls: int = 10) -> dict:
    """Incoming-call notification -> first audio frame in a processor, through
    the Graph emulator and the real bot (webhook, JWT check, answer, roster,
    media configuration, SRTP), ``calls`` calls ringing at once."""
    import asyncio

    r = asyncio.run(_measure_setup(calls))
    s = r["setup_ms"]
    r["p50_ms"] = float(np.percentile(s, 50)) if s else None
    r["max_ms"] = max(s) if s else None
    return r


def run_load(counts: list[int], duration_s: float, json_path: str | None = None,
             out: TextIO = sys.stdout) -> dict:
    runs = []
    for n in counts:
        out.write(f"load: {n} calls for {duration_s:.0f} s ...\n")
        out.flush()
        r = run_load_once(n, duration_s, out)
        runs.append(r)
        lat = r["latency_ms"]
        out.write(f"  {n} calls: {r['frames_per_s_per_call']} frames/s per call, "
                  f"dropped {r['dropped_frames']}, no media {r['calls_without_media']}, "
                  f"CPU {r['cpu_percent_of_one_core']}% of a core "
                  f"({r['cpu_us_per_call_per_s']} µs/s per call), set-up p50 "
                  f"{r['setup_ms']['p50']:.1f} ms, latency p50 {lat['p50']:.3f} ms "
                  f"p99 {lat['p99']:.3f} ms\n")
        out.flush()
    ok = [r["calls"] for r in runs if r["dropped_frames"] == 0 and r["calls_without_media"] == 0]
    out.write("set-up through signaling: 10 incoming calls at once ...\n")
    setup = measure_setup(10)
    out.write(f"  incoming-call notification -> first frame: p50 {setup['p50_ms']:.1f} ms, "
              f"max {setup['max_ms']:.1f} ms ({setup['answered_with_media']}/10 calls)\n")
    report = {"runs": runs, "largest_calls_without_drops": max(ok) if ok else 0, "setup": setup}
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2))
        out.write(f"report written to {json_path}\n")
    return report

"""`mediabot load`: N concurrent audio calls from the emulator's media side
against one bot process.

The emulator runs in its own process (so the bot's CPU figures are the bot's),
replaying one pre-encoded speaking participant per call (Opus, 50 packets/s,
SRTP AES_CM_128_HMAC_SHA1_80). The bot side is what a user's bot runs: a
``mediacore.MediaHost`` (one engine, one UDP port, and the native audio
path: per call an audio graph — ordering, look-ahead, Opus decode to 16 kHz,
concealment — on staggered audio-worker ticks) and a ``CallMedia`` per call
whose source map names the caller, with a counting ``Processor`` (inline:
it takes each tick's frames of its call as one batch). The calls are
receive-only (``send_audio=False``): the bot listens and sends no audio.

Reported per run: call set-up time (the emulator's start of a call, on the
host's monotonic clock, to the first frame in the bot's processor), frames
per call, dropped frames by cause (see ``_drop_counters``), SRTP failures,
CPU per call (bot process, user+system over the window; the audio workers'
share beside it), and wire-to-processor latency percentiles *beyond the
jitter-buffer delay*: from the frame's playout tick (``timestamp_100ns``,
when the graph's buffer released the packet to the decoder) to the moment
the batch holding it reaches the processor; the buffering before that tick
(arrival -> tick) is reported as ``playout_delay_ms``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

SRTP_PROFILE = "AES_CM_128_HMAC_SHA1_80"
SSRC_STRIDE = 16
#: calls per audio worker thread (one decodes ~25 µs per call and 20 ms: 200 calls are ~25 %
#: of a core; one reader thread per worker keeps the GIL uncontended)
CALLS_PER_WORKER = 200


def load_script(duration_s: float):
    from bot.emulator.script import MeetingScript, Participant, Utterance

    text = "the quick brown fox jumps over the lazy dog"  # ~3.5 s of speech every 5 s
    clip = min(duration_s, 10.0)
    return MeetingScript(
        "load",
        clip,
        (
            Participant(
                "Speaker",
                video="none",
                say=tuple(Utterance(t, text) for t in np.arange(0.2, clip - 1.0, 5.0)),
            ),
        ),
    )


def emulator_main(conn, duration_s: float) -> None:
    """Child process: the emulator's media side. It gets each call's media
    configuration document (what Graph carries in ``appHostedMediaConfig``)
    and the source offset of the call's speaker, and reads endpoint and keys
    from the document as the emulator's conference does."""
    from bot.emulator.conference import ConferenceMedia, MediaServer, conference_keys
    from bot.emulator.simmedia import prepare_meeting
    from mediacore import MediaConfig

    media = prepare_meeting(load_script(duration_s), video=False)
    with MediaServer("127.0.0.1") as server:
        conn.send(server.address)
        calls = conn.recv()  # [(media configuration blob, ssrc_offset)]
        started = []
        confs = []
        for blob, offset in calls:
            doc = MediaConfig.from_blob(blob)
            tx_key, rx_key = conference_keys(doc)
            started.append(time.monotonic_ns())
            c = ConferenceMedia(
                server.engine,
                media,
                (doc.endpoint.address, doc.endpoint.port),
                srtp_profile=doc.srtp.profile if doc.srtp else None,
                tx_key=tx_key,
                rx_key=rx_key,
                loop=True,
                send_video=False,
                send_mixed=False,
                ssrc_offset=offset,
            )
            server.attach(f"call-{offset}", c)
            confs.append(c)
        conn.send(started)
        conn.recv()  # stop
        sent = [c.stats.audio_packets for c in confs]
    conn.send(sent)


@dataclass
class LoadRun:
    calls: int
    duration_s: float
    started_ns: list[int] = field(default_factory=list)
    first_frame_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    window_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    concealed: list[int] = field(default_factory=list)
    lost_in_network: list[int] = field(default_factory=list)
    latency: dict = field(default_factory=dict)
    cpu_s: float = 0.0
    worker_cpu_s: float = 0.0
    io_cpu_s: float = 0.0
    window_s: float = 0.0
    dropped: dict = field(default_factory=dict)
    auth_failures: int = 0
    errors: list[str] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    workers: int = 0
    stretched: int = 0
    shrunk: int = 0
    priority: int = 0


class FrameCounts:
    """Frames per call and the first frame's time, shared by the calls' processors."""

    def __init__(self, calls: int) -> None:
        self.frames = np.zeros(calls, dtype=np.int64)
        self.first_frame_ns = np.zeros(calls, dtype=np.int64)


def counting_processor(counts: FrameCounts, index: int):
    """The load test's processor for call ``index`` (inline: counts each
    tick's batch on the media reader thread; the frames are not copied)."""
    from mediacore import Processor

    class FrameCounter(Processor):
        audio = "unmixed"
        mode = "inline"

        def on_audio_batch(self, batch) -> None:
            if not counts.frames[index]:
                counts.first_frame_ns[index] = time.monotonic_ns()
            counts.frames[index] += len(batch)

    return FrameCounter()


def _drop_counters(medias) -> dict:
    """Frames that did not reach the processor as decoded audio, by cause:
    ``lost`` slots (never arrived: concealed or rebuilt from FEC), ``late``
    (arrived after their slot was played), queue ``overflow``, full
    ``output_ring`` / ``input_ring``, ``decode_errors``. Concealment the
    graph inserts while a source is only late (an underrun: the frame plays
    after it) is not a drop; it is counted as ``stretched``, and the silent
    frames the graph skips afterwards to take that delay back as ``shrunk``."""
    out = {"lost": 0, "late": 0, "overflow": 0, "output_ring": 0, "input_ring": 0, "decode_errors": 0}
    stretched = shrunk = 0
    for media in medias:
        call_stats = media.stats()
        st = call_stats.audio
        shrunk += st.shrunk
        out["lost"] += st.concealed + st.fec_recovered - st.underruns - st.decode_errors
        out["late"] += st.late
        out["overflow"] += st.overflow_dropped
        out["output_ring"] += st.output_dropped
        out["decode_errors"] += st.decode_errors
        out["input_ring"] += call_stats.audio_input_dropped
        stretched += st.underruns
    out["stretched"] = stretched
    out["shrunk"] = shrunk
    return out


def run_load_once(
    calls: int, duration_s: float, out: TextIO = sys.stdout, *, workers: int | None = None, priority: int = 0
) -> dict:
    """``calls`` concurrent calls for ``duration_s``; the bot side receives
    them on the native audio path (``mediacore.audio.path``) with one audio
    worker per ``CALLS_PER_WORKER`` calls (staggered ticks)."""
    from bot.emulator.simmedia import AUDIO_SOURCE_BASE
    from mediacore import MediaHost, ReceiveStats, Source

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=emulator_main, args=(child, duration_s), daemon=True)
    proc.start()
    parent.recv()  # the emulator's media address (it sends to each call's document endpoint)
    run = LoadRun(calls, duration_s)
    # ``priority``: raise the bot's media threads (engine I/O, audio workers, readers,
    # all created below from this thread, which they inherit it from) by that many
    # nice steps, as a media server would run; restored when the run ends.
    raised = 0
    if priority > 0:
        try:
            os.nice(-priority)
            raised = priority
        except OSError:
            run.errors.append(f"cannot raise the priority by {priority} (not permitted)")
    if workers is None:
        workers = max(1, min(os.cpu_count() or 1, -(-calls // CALLS_PER_WORKER)))
    host = MediaHost(
        "127.0.0.1",
        srtp_profile=SRTP_PROFILE,
        audio_workers=workers,
        latency=True,
        socket_buffer_bytes=8 << 20,
    )
    counts = FrameCounts(calls)
    run.workers = len(host.audio.lanes)
    spec, medias = [], []
    for i in range(calls):
        offset = (i + 1) * SSRC_STRIDE
        media = host.create_call(f"load-{i}", video=False, screen_share=False, send_audio=False)
        media.update_sources([Source(AUDIO_SOURCE_BASE + offset, f"caller-{i}", "Caller", "audio")])
        media.add_processor(counting_processor(counts, i))
        spec.append((media.config_blob(), offset))
        medias.append(media)
    parent.send(spec)
    run.started_ns = parent.recv()
    # measure after everyone is up
    warm_s = min(2.0, duration_s / 4)
    time.sleep(warm_s)
    path = host.audio
    path.latency.clear()
    d0 = _drop_counters(medias)
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    wcpu0 = path.worker_cpu_ns()
    io0 = host.engine.io_cpu_ns()
    t0 = time.monotonic()
    frames0 = counts.frames.copy()
    time.sleep(max(0.5, duration_s - warm_s))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    run.window_s = time.monotonic() - t0
    run.window_frames = counts.frames - frames0
    d1 = _drop_counters(medias)
    run.worker_cpu_s = (path.worker_cpu_ns() - wcpu0) / 1e9
    run.io_cpu_s = (host.engine.io_cpu_ns() - io0) / 1e9
    run.latency = path.latency.summary()
    path.latency.enabled = False
    run.cpu_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    run.dropped = {k: d1[k] - d0[k] for k in d0}
    run.stretched = run.dropped.pop("stretched")
    run.shrunk = run.dropped.pop("shrunk")
    run.concealed = [getattr(m.stats().audio, "concealed", 0) for m in medias]
    for media in medias:
        for st in media.stats().streams:
            if st.direction == "receive" and st.kind == "audio" and isinstance(st.rtp, ReceiveStats):
                run.auth_failures += st.rtp.auth_failures
                run.lost_in_network.append(st.rtp.lost)
    parent.send("stop")
    run.sent = parent.recv()
    run.frames = counts.frames.copy()
    run.first_frame_ns = counts.first_frame_ns.copy()
    run.errors += path.errors
    host.close()
    proc.join(timeout=10)
    if raised:
        os.nice(raised)
    run.priority = raised
    return _summarise(run)


def _summarise(run: LoadRun) -> dict:
    per_call = []
    for i in range(run.calls):
        first = int(run.first_frame_ns[i])
        per_call.append(
            {
                "call": i,
                "frames": int(run.frames[i]),
                "window_frames": int(run.window_frames[i]),
                "concealed": run.concealed[i],
                "lost_in_network": run.lost_in_network[i],
                "sent": run.sent[i] if i < len(run.sent) else None,
                "setup_ms": (first - run.started_ns[i]) / 1e6 if first else None,
            }
        )
    setups = [c["setup_ms"] for c in per_call if c["setup_ms"] is not None]
    never = sum(1 for c in per_call if not c["frames"])
    window_frames = int(run.window_frames.sum())
    return {
        "calls": run.calls,
        "duration_s": run.duration_s,
        "audio_workers": run.workers,
        "priority": run.priority,
        "frames_per_s_per_call": round(window_frames / run.window_s / max(1, run.calls), 2),
        "dropped_frames": sum(run.dropped.values()),
        "dropped_by_cause": run.dropped,
        "stretched_frames": run.stretched,
        "shrunk_silent_frames": run.shrunk,
        "calls_without_media": never,
        "auth_failures": run.auth_failures,
        "decode_errors": run.dropped.get("decode_errors", 0),
        "errors": run.errors,
        "cpu_percent_of_one_core": round(100 * run.cpu_s / run.window_s, 1),
        "cpu_us_per_call_per_s": round(1e6 * run.cpu_s / run.window_s / max(1, run.calls), 1),
        "audio_worker_us_per_call_per_s": round(1e6 * run.worker_cpu_s / run.window_s / max(1, run.calls), 1),
        "engine_io_us_per_call_per_s": round(1e6 * run.io_cpu_s / run.window_s / max(1, run.calls), 1),
        "setup_ms": {
            "p50": float(np.percentile(setups, 50)) if setups else None,
            "max": max(setups) if setups else None,
        },
        # beyond the jitter-buffer delay: frame tick (playout deadline) -> batch in the processor
        "latency_ms": {k: run.latency.get(k) for k in ("p50", "p99", "max")},
        "latency_samples": run.latency.get("samples", 0),
        "playout_delay_ms": run.latency.get("playout_delay_ms"),
        "per_call": per_call,
    }


async def _measure_setup(calls: int, timeout_s: float = 30.0) -> dict:
    import asyncio
    import socket

    from bot.app import Bot
    from bot.config import BotConfig, CallSettings, GraphSettings, WebhookSettings
    from bot.emulator.conference import ConferenceHandler, MediaServer
    from bot.emulator.script import MeetingScript, Participant, Utterance
    from bot.emulator.server import GraphEmulator
    from bot.emulator.service import ServiceOptions
    from bot.emulator.simmedia import prepare_meeting
    from bot.graph.auth import MsalTokenProvider
    from bot.media import CallMediaProvider
    from mediacore import MediaHost, Processor

    first_frame_ns: dict[str, int] = {}

    class FirstFrame(Processor):
        """Notes when its call's first audio frame reaches a processor."""

        audio = "unmixed"
        mode = "inline"

        def on_start(self, ctx) -> None:
            self.call_id = ctx.call_id

        def on_audio_batch(self, batch) -> None:
            if self.call_id not in first_frame_ns:
                first_frame_ns[self.call_id] = time.monotonic_ns()

    script = MeetingScript(
        "setup", 4.0, (Participant("Caller", video="none", say=(Utterance(0.1, "hello"),)),)
    )
    media = await asyncio.get_running_loop().run_in_executor(
        None, lambda: prepare_meeting(script, video=False)
    )
    # one media server, already running (as a Teams media processor is when a call lands on
    # it): a call's first packet leaves at the server's next 20 ms slot. A server started per
    # call would tick once before the call is attached and send a fixed 20 ms late.
    server = MediaServer("127.0.0.1")
    server.start()
    handler = ConferenceHandler(server, media, lead_in_s=0.0, loop=True)
    emu = GraphEmulator(media_handler=handler, options=ServiceOptions(allow_http_callbacks=True))
    await emu.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = BotConfig(
        app_id=emu.app_id,
        tenant_id=emu.tenant_id,
        graph=GraphSettings(
            base_url=emu.graph_url, authority_host=emu.tls_base_url, client_secret=emu.client_secret
        ),
        webhook=WebhookSettings(
            public_url=f"http://127.0.0.1:{port}/api/calls",
            host="127.0.0.1",
            port=port,
            openid_configuration_url=emu.openid_configuration_url,
        ),
        calls=CallSettings(incoming="answer", modalities=["audio"]),
    )
    http = emu.msal_kwargs()["http_client"]  # trusts the emulator's CA; closed by emu.stop()
    tokens = MsalTokenProvider(
        app_id=emu.app_id,
        tenant_id=emu.tenant_id,
        client_secret=emu.client_secret,
        authority_host=emu.tls_base_url,
        msal_options={"instance_discovery": False, "http_client": http},
    )
    host = MediaHost("127.0.0.1", srtp_profile=SRTP_PROFILE)
    provider = CallMediaProvider(host, lambda call: [FirstFrame()], video=False, screen_share=False)
    bot = Bot(config, media=provider, token_provider=tokens)
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
                first = first_frame_ns.get(call_id)
                if first:
                    setup_ms.append((first - t0) / 1e6)
                    del pending[call_id]
    finally:
        await bot.stop()
        await emu.stop()
        provider.close()
        handler.close()
        server.stop()
        host.close()
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


def run_load(
    counts: list[int],
    duration_s: float,
    json_path: str | None = None,
    out: TextIO = sys.stdout,
    priority: int = 0,
) -> dict:
    runs = []
    for n in counts:
        out.write(f"load: {n} calls for {duration_s:.0f} s ...\n")
        out.flush()
        r = run_load_once(n, duration_s, out, priority=priority)
        runs.append(r)
        lat = r["latency_ms"]
        out.write(
            f"  {n} calls: {r['frames_per_s_per_call']} frames/s per call, "
            f"dropped {r['dropped_frames']}, no media {r['calls_without_media']}, "
            f"CPU {r['cpu_percent_of_one_core']}% of a core "
            f"({r['cpu_us_per_call_per_s']} µs/s per call), set-up p50 "
            f"{r['setup_ms']['p50']:.1f} ms, latency beyond the jitter buffer p50 "
            f"{lat['p50']:.3f} ms p99 {lat['p99']:.3f} ms (playout delay p50 "
            f"{r['playout_delay_ms']['p50']:.1f} ms)\n"
        )
        for e in r["errors"]:
            out.write(f"  ! {e}\n")
        out.flush()
    ok = [r["calls"] for r in runs if r["dropped_frames"] == 0 and r["calls_without_media"] == 0]
    # the latency goal holds: real time, p50 <= 1 ms and p99 <= 5 ms beyond the jitter buffer
    goal = [
        r["calls"]
        for r in runs
        if r["calls"] in ok
        and 49.0 <= r["frames_per_s_per_call"] <= 51.0
        and (r["latency_ms"]["p50"] or 1e9) <= 1.0
        and (r["latency_ms"]["p99"] or 1e9) <= 5.0
    ]
    out.write("set-up through signaling: 10 incoming calls at once ...\n")
    setup = measure_setup(10)
    out.write(
        f"  incoming-call notification -> first frame: p50 {setup['p50_ms']:.1f} ms, "
        f"max {setup['max_ms']:.1f} ms ({setup['answered_with_media']}/10 calls)\n"
    )
    report = {
        "runs": runs,
        "largest_calls_without_drops": max(ok) if ok else 0,
        "largest_calls_meeting_latency_goal": max(goal) if goal else 0,
        "setup": setup,
    }
    out.write(
        f"largest N without dropped frames: {report['largest_calls_without_drops']}; "
        f"meeting the latency goal too: {report['largest_calls_meeting_latency_goal']}\n"
    )
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2))
        out.write(f"report written to {json_path}\n")
    return report

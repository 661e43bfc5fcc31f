"""`mediabot demo`: a whole meeting on this machine, as two programs.

The local emulator runs as its own process (``mediabot emulator --script``,
exactly as a user starts it): it plays the scripted participants (speech and
a named test pattern, pre-encoded once) over SRTP/UDP and drives the roster
over signed Graph callbacks. The bot is built here on the public API only —
the bot configuration the emulator wrote (``bot.config.load_config``), a
``mediacore.MediaHost``, ``bot.media.CallMediaProvider`` with the built-in
processors (transcription per speaker, video analytics, the event log) and
``bot.app.Bot`` — and joins the meeting by its join URL. It shows a live view
and, when the emulator ends the meeting, prints a summary and optionally
writes a JSON report:

``participants``; ``transcript`` segments ``{speaker, start, end, text}``;
``video`` and ``screen_share`` per participant ``{frames, fps, width,
height, ...}``; ``media`` per stream ``{packets, lost, jitter_ms}``;
``dtmf``; ``latency_ms`` ``{p50, p99}`` wire-to-processor; ``errors``.

Times in the report are seconds on the meeting's clock: its time zero is
when the meeting's media began, which the bot sees as the arrival of the
first audio packet.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from bot.emulator.script import MeetingScript, dump_script

SRTP_PROFILE = "AES_CM_128_HMAC_SHA1_80"
#: the camera size the demo's analytics subscribe with (the conference sends
#: the largest simulcast layer within it)
VIDEO_PREFERRED = (640, 360)
LEAD_IN_S = 1.0
EMULATOR_START_TIMEOUT_S = 120.0


class LiveView:
    """Plain-text live view: one status line per second, event and transcript
    lines as they arrive (works in CI logs as well as in a terminal)."""

    def __init__(self, out: TextIO, enabled: bool = True) -> None:
        self.out = out
        self.enabled = enabled
        self._t0 = time.monotonic()
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        if self.enabled:
            with self._lock:
                self.out.write(f"[{time.monotonic() - self._t0:5.1f}s] {text}\n")
                self.out.flush()


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            env[k.strip()] = v.strip()
    return env


class _Emulator:
    """``mediabot emulator`` as a child process."""

    def __init__(self, script_path: Path, bot_config: Path, webhook: str, video: bool) -> None:
        cmd = [
            sys.executable,
            "-m",
            "bot",
            "emulator",
            "--script",
            str(script_path),
            "--port",
            "0",
            "--tls-port",
            "0",
            "--media-port",
            "0",
            "--bot-config",
            str(bot_config),
            "--webhook",
            webhook,
            "--allow-http-callbacks",
            "--lead-in",
            str(LEAD_IN_S),
            "--json",
            "--log-level",
            "WARNING",
        ]
        if not video:
            cmd.append("--no-video")
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.info: dict[str, Any] = {}

    async def started(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(
            loop.run_in_executor(None, self.proc.stdout.readline), EMULATOR_START_TIMEOUT_S
        )
        if not line:
            self.proc.wait(5)
            raise RuntimeError(f"the emulator did not start (exit {self.proc.returncode}): {self.errors()}")
        self.info = json.loads(line)
        return self.info

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace").strip()[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()


def _demo_processors(grammar: list[str] | None, video: bool, view: LiveView) -> tuple[Any, ...]:
    """The demo's processors: the built-ins plus a small inline one that keeps
    the live view's figures and the meeting's time zero."""
    from mediacore import Processor
    from mediacore.audio.frames import FLAG_CONCEALED
    from mediacore.processors.events_log import EventLog
    from mediacore.processors.transcription import Transcription
    from mediacore.processors.video_analytics import VideoAnalytics

    class MeetingClock(Processor):
        """First audio arrival (the meeting's time zero as the bot sees it),
        frames, concealed frames and recent speech per speaker."""

        audio = "unmixed"
        mode = "inline"

        def __init__(self) -> None:
            self.first_arrival_100ns = 0
            self.frames: dict[str, int] = {}
            self.concealed: dict[str, int] = {}
            self.speaking: dict[str, float] = {}

        def on_audio_batch(self, batch) -> None:
            h = batch.records["header"]
            if not self.first_arrival_100ns:
                arrivals = h["arrival_100ns"][h["arrival_100ns"] > 0]
                if len(arrivals):
                    self.first_arrival_100ns = int(arrivals.min())
            loud = np.abs(batch.pcm).mean(axis=1) > 300
            concealed = (h["flags"] & FLAG_CONCEALED) != 0
            now = time.monotonic()
            for i, sid in enumerate(h["source_id"].tolist()):
                ident = batch.identity(sid)
                name = ident[1] or ident[0] if ident else str(sid)
                self.frames[name] = self.frames.get(name, 0) + 1
                if concealed[i]:
                    self.concealed[name] = self.concealed.get(name, 0) + 1
                if loud[i]:
                    self.speaking[name] = now

    transcription = Transcription(workers=2, grammar=grammar)
    transcription.on_segment.append(lambda s: view.line(f"transcript  {s.speaker}: {s.text}"))
    analytics = VideoAnalytics(size=VIDEO_PREFERRED, screen_share=True) if video else None
    return MeetingClock(), transcription, analytics, EventLog()


def run_demo(
    script: MeetingScript,
    *,
    video: bool = True,
    report_path: str | None = None,
    live: bool = True,
    grammar: bool = False,
    out: TextIO = sys.stdout,
) -> dict:
    """Run the whole demo meeting (blocking) and return its report."""
    return asyncio.run(
        _run_demo(script, video=video, report_path=report_path, live=live, grammar=grammar, out=out)
    )


async def _run_demo(
    script: MeetingScript, *, video: bool, report_path: str | None, live: bool, grammar: bool, out: TextIO
) -> dict:
    from bot.app import Bot
    from bot.config import load_config
    from bot.media import CallMediaProvider
    from mediacore import MediaHost

    view = LiveView(out, live)
    errors: list[str] = []
    if not video:
        script = script.without_video()
    view.line(
        f"meeting {script.title!r}: {', '.join(p.name for p in script.participants)}; "
        f"{script.duration_s:.0f} s"
    )
    sentences = [u.text for p in script.participants for u in p.say if u.text]
    clock, transcription, analytics, events_log = _demo_processors(
        sentences if grammar else None, video, view
    )
    report: dict[str, Any] = {}
    tmp = tempfile.TemporaryDirectory(prefix="mediabot-demo-")
    work = Path(tmp.name)
    (work / "meeting.toml").write_text(dump_script(script))
    port = _free_tcp_port()
    webhook = f"http://127.0.0.1:{port}/api/calls"
    t = time.monotonic()
    emulator = _Emulator(work / "meeting.toml", work / "bot.toml", webhook, video)
    host = bot = provider = media = call = None
    try:
        info = await emulator.started()
        view.line(
            f"emulator (pid {emulator.proc.pid}): Graph at {info['graph_url']}, media on udp "
            f"{info['media']['address']}:{info['media']['port']}; participants' speech and "
            f"video prepared in {time.monotonic() - t:.1f} s"
        )
        env = {**os.environ, **_read_env_file(work / "bot.toml.env")}
        config = load_config(work / "bot.toml", env=env)
        host = MediaHost("127.0.0.1", srtp_profile=SRTP_PROFILE, latency=True)
        bound: dict[str, Any] = {}
        processors = [p for p in (clock, transcription, analytics, events_log) if p is not None]
        provider = CallMediaProvider(
            host,
            lambda call: processors,
            video=video,
            screen_share=video,
            on_media=lambda call, m: bound.update(media=m),
        )
        bot = Bot(config, media=provider)
        await bot.start()
        view.line(f"bot: webhook on {webhook}, media on udp 127.0.0.1:{host.port}")
        t_join = time.monotonic()
        call = await bot.join_meeting(info["join_url"])
        media = bound.get("media")
        if media is None:
            raise RuntimeError("the bot's call has no media")
        view.line(f"bot joined the meeting in {1000 * (time.monotonic() - t_join):.0f} ms (call {call.id})")
        follow = asyncio.create_task(_follow_events(media, view, clock))
        last = 0.0
        deadline = time.monotonic() + script.duration_s + LEAD_IN_S + 30
        while not call.is_terminated and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                view.line(_status(call, clock, analytics))
        if not call.is_terminated:
            errors.append("the emulator did not end the meeting in time; hanging up")
            await call.hang_up()
        # the provider closes the call's media at its end; the processors finish their work
        until = time.monotonic() + 60
        while call.id not in provider.results and time.monotonic() < until:
            await asyncio.sleep(0.1)
        follow.cancel()
        report = _collect(script, call, media, provider, host, clock, errors)
    except Exception as e:  # the demo reports what broke instead of a traceback
        errors.append(f"{type(e).__name__}: {e}")
        if emulator.proc.poll() is not None:
            errors.append(f"emulator: {emulator.errors()}")
        raise
    finally:
        if bot is not None:
            await bot.stop()
        if provider is not None:
            provider.close()
        if host is not None:
            await asyncio.get_running_loop().run_in_executor(None, host.close)
        emulator.stop()
        tmp.cleanup()
    report["errors"] = errors
    _summary(report, out)
    if report_path:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=2))
        out.write(f"report written to {report_path}\n")
    return report


async def _follow_events(media, view: LiveView, clock) -> None:
    """Roster, screen-sharing and DTMF lines from the call's media events."""
    from mediacore import (
        DtmfReceived,
        ParticipantJoined,
        ParticipantLeft,
        ScreenShareStarted,
        ScreenShareStopped,
    )

    async for ev in media.events():
        if isinstance(ev, ParticipantJoined):
            view.line(f"roster: {ev.display_name} joined")
        elif isinstance(ev, ParticipantLeft):
            view.line(f"roster: {ev.display_name} left")
        elif isinstance(ev, ScreenShareStarted):
            view.line(f"screen: {ev.display_name} started sharing")
        elif isinstance(ev, ScreenShareStopped):
            view.line(f"screen: {ev.display_name} stopped sharing")
        elif isinstance(ev, DtmfReceived):
            view.line(f"DTMF: {ev.display_name} pressed {ev.digit}")


def _status(call, clock, analytics) -> str:
    names = sorted(p.display_name or "?" for p in call.participants if p.id != call.my_participant_id)
    now = time.monotonic()
    speaking = sorted(n for n, ts in list(clock.speaking.items()) if now - ts < 0.5)
    vid = ""
    streams = analytics.analyzer.streams if analytics is not None and analytics.analyzer else {}
    if streams:
        vid = " | video: " + ", ".join(
            f"{n} {st.width}x{st.height}@{st.fps:.0f}" for n, st in sorted(list(streams.items()))
        )
    return f"roster: {', '.join(names) or '-'} | speaking: {', '.join(speaking) or '-'}{vid}"


def _collect(script, call, media, provider, host, clock, errors: list[str]) -> dict:
    results = provider.results.get(call.id, {})
    epoch = clock.first_arrival_100ns or media.epoch_100ns

    def at(ts_100ns: int) -> float:
        return round((ts_100ns - epoch) / 1e7, 2)

    stats = media.stats()
    media_stats = {}
    for st in stats.streams:
        if st.direction != "receive" or st.rtp is None:
            continue
        source = media.sources.get(st.source_id)
        name = source.display_name if source is not None else str(st.source_id)
        kind = {"audio": "audio", "video": "video", "screen": "vbss"}[st.kind]
        media_stats[f"{name}/{kind}"] = {
            "ssrc": st.source_id,
            "packets": st.rtp.packets,
            "lost": st.rtp.lost,
            "jitter_ms": round(st.rtp.jitter_ms, 3),
        }
    video = results.get("VideoAnalytics") or {}
    events = results.get("EventLog") or []
    segments = results.get("Transcription") or []
    audio = stats.audio
    if audio is not None:
        if audio.decode_errors:
            errors.append(f"{audio.decode_errors} audio decode errors")
        if audio.output_dropped:
            errors.append(f"{audio.output_dropped} audio frames dropped: the processors fell behind")
    for name, n in stats.processor_errors.items():
        if n:
            errors.append(f"processor {name}: {n} errors")
    for name, n in stats.dropped.items():
        if n:
            errors.append(f"{name}: {n} items dropped")
    joined = sorted({e["display_name"] for e in events if e["event"] == "ParticipantJoined"})
    lat = host.audio.latency.summary()
    return {
        "meeting": script.title,
        "call_id": call.id,
        "duration_s": script.duration_s,
        "participants": joined,
        "transcript": [
            {"speaker": s.speaker, "start": at(s.start_100ns), "end": at(s.end_100ns), "text": s.text}
            for s in sorted(segments, key=lambda s: s.start_100ns)
        ],
        "video": {n: _video_entry(v) for n, v in video.items() if not n.endswith("/screen")},
        "screen_share": {
            n[: -len("/screen")]: _video_entry(v) for n, v in video.items() if n.endswith("/screen")
        },
        "media": media_stats,
        "audio_frames": dict(clock.frames),
        "concealed_frames": dict(clock.concealed),
        "latency_ms": {
            "p50": lat["p50"],
            "p99": lat["p99"],
            "max": lat["max"],
            "playout_delay": lat["playout_delay_ms"],
        },
        "dtmf": [
            {
                "speaker": e["display_name"],
                "digit": e["digit"],
                "at": round(e["at"] - (epoch - media.epoch_100ns) / 1e7, 2),
            }
            for e in events
            if e["event"] == "DtmfReceived"
        ],
        "audio_path": {
            "decoded": audio.decoded,
            "concealed": audio.concealed,
            "fec_recovered": audio.fec_recovered,
            "late": audio.late,
            "decode_errors": audio.decode_errors,
            "output_dropped": audio.output_dropped,
        }
        if audio is not None
        else {},
    }


def _video_entry(v: dict) -> dict:
    return {
        k: v.get(k) for k in ("frames", "fps", "width", "height", "motion_frames", "scene_changes", "faces")
    }


def _summary(r: dict, out: TextIO) -> None:
    out.write("\n=== summary ===\n")
    out.write(f"participants: {', '.join(r.get('participants', []))}\n")
    out.write("transcript:\n")
    for s in r.get("transcript", []):
        out.write(f"  [{s['start']:5.1f}-{s['end']:5.1f}] {s['speaker']}: {s['text']}\n")
    if r.get("video"):
        out.write("video:\n")
        for n, v in r["video"].items():
            out.write(
                f"  {n}: {v['frames']} frames, {v['width']}x{v['height']} @ {v['fps']} fps, "
                f"motion in {v['motion_frames']} frames\n"
            )
    if r.get("screen_share"):
        out.write("screen sharing:\n")
        for n, v in r["screen_share"].items():
            out.write(f"  {n}: {v['frames']} frames, {v['width']}x{v['height']}\n")
    if r.get("media"):
        out.write("media:\n")
        for n, m in r["media"].items():
            out.write(f"  {n}: {m['packets']} packets, {m['lost']} lost, jitter {m['jitter_ms']} ms\n")
    if r.get("dtmf"):
        out.write(
            "DTMF: " + ", ".join(f"{d['speaker']} {d['digit']} ({d['at']:.1f} s)" for d in r["dtmf"]) + "\n"
        )
    lat = r.get("latency_ms", {})
    if lat.get("p50") is not None:
        out.write(
            f"wire-to-processor latency of audio frames beyond the jitter-buffer delay: "
            f"p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms (buffered before playout: "
            f"p50 {lat['playout_delay']['p50']:.1f} ms)\n"
        )
    out.write(f"errors: {r['errors'] or 'none'}\n")

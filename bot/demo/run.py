"""`mediabot demo`: a whole meeting on one machine.

The local emulator's media side plays the scripted participants (speech and a
named test pattern, pre-encoded once) over SRTP/UDP to the bot's native
engine; the bot transcribes each speaker live from their own (unmixed) audio
and analyses each participant's video, shows a live view, and at the end
prints a summary and optionally writes a JSON report:

``participants``; ``transcript`` segments ``{speaker, start, end, text}``;
``video`` per participant ``{frames, fps, width, height}``; ``media`` per
stream ``{packets, lost, jitter_ms}``; ``latency_ms`` ``{p50, p99}``
wire-to-processor; ``errors``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO

from bot.emulator.script import MeetingScript

SRTP_PROFILE = "AES_CM_128_HMAC_SHA1_80"


class LiveView:
    """Plain-text live view: one status line per second, transcript lines as
    they arrive (works in CI logs as well as in a terminal)."""

    def __init__(self, out: TextIO, enabled: bool = True) -> None:
        self.out = out
        self.enabled = enabled
        self._t0 = time.monotonic()

    def line(self, text: str) -> None:
        if self.enabled:
            self.out.write(f"[{time.monotonic() - self._t0:5.1f}s] {text}\n")
            self.out.flush()


def _free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_demo(script: MeetingScript, *, video: bool = True, report_path: str | None = None,
             live: bool = True, grammar: bool = False, out: TextIO = sys.stdout) -> dict:
    """Run the whole demo meeting (blocking) and return its report."""
    import asyncio

    return asyncio.run(_run_demo(script, video=video, report_path=report_path, live=live,
                                 grammar=grammar, out=out))


async def _run_demo(script: MeetingScript, *, video: bool, report_path: str | None, live: bool,
                    grammar: bool, out: TextIO) -> dict:
    import asyncio

    from mediacore.engine import Engine
    from mediacore.processors.transcription import SpeechTranscriber
    from mediacore.processors.video_analytics import VideoAnalyzer

    from bot.app import Bot
    from bot.config import BotConfig, CallSettings, GraphSettings, WebhookSettings
    from bot.demo.botmedia import DemoBotMedia
    from bot.emulator.conference import ConferenceHandler, MediaServer
    from bot.emulator.meeting import ScriptedMeeting
    from bot.emulator.server import GraphEmulator, ServiceOptions
    from bot.emulator.simmedia import prepare_meeting
    from bot.graph.auth import MsalTokenProvider

    view = LiveView(out, live)
    errors: list[str] = []
    if not video:
        script = script.without_video()
    loop = asyncio.get_running_loop()
    view.line(f"meeting {script.title!r}: {', '.join(p.name for p in script.participants)}; "
              f"{script.duration_s:.0f} s")
    t = time.monotonic()
    media = await loop.run_in_executor(None, lambda: prepare_meeting(script, video=video))
    view.line(f"emulator: participants' speech and video prepared in {time.monotonic() - t:.1f} s")

    sentences = [u.text for p in script.participants for u in p.say if u.text]

    def on_segment(seg):
        view.line(f"transcript  {seg.speaker}: {seg.text}   ({seg.start_s:.1f}-{seg.end_s:.1f} s)")

    transcriber = SpeechTranscriber(on_segment, workers=2,
                                         grammar_sentences=sentences if grammar else None)
    analytics = VideoAnalyzer() if video else None
    server = MediaServer("127.0.0.1")
    server.start()
    engine = Engine("127.0.0.1")
    botmedia = DemoBotMedia(engine, transcriber=transcriber, analytics=analytics)
    handler = ConferenceHandler(server, lead_in_s=1.0)
    emu = GraphEmulator(media_handler=handler, options=ServiceOptions(allow_http_callbacks=True))
    await emu.start()
    bot = None
    call = None
    scripted = None
    report: dict = {}
    try:
        # the emulator's side of the meeting: people, their source ids, the roster on the
        # script's clock (started when the bot's call starts); the demo hangs up itself
        scripted = ScriptedMeeting(emu, handler, script, media, end_after_script=False,
                                   on_event=lambda text: view.line(f"roster: {text}"))
        meeting = scripted.meeting

        port = _free_tcp_port()
        config = BotConfig(
            app_id=emu.app_id, tenant_id=emu.tenant_id,
            graph=GraphSettings(base_url=emu.graph_url, beta_base_url=emu.beta_url,
                                authority_host=emu.tls_base_url, client_secret=emu.client_secret),
            webhook=WebhookSettings(public_url=f"http://127.0.0.1:{port}/api/calls", host="127.0.0.1",
                                    port=port, openid_configuration_url=emu.openid_configuration_url),
            calls=CallSettings(modalities=["audio", "video"] if video else ["audio"]))
        http = emu.msal_kwargs()["http_client"]  # trusts the emulator's CA; closed by emu.stop()
        tokens = MsalTokenProvider(app_id=emu.app_id, tenant_id=emu.tenant_id,
                                   client_secret=emu.client_secret, authority_host=emu.tls_base_url,
                                   msal_options={"instance_discovery": False, "http_client": http})
        bot = Bot(config, media=botmedia, token_provider=tokens)
        await bot.start()
        emu.register_bot(webhook_url=config.webhook.public_url)
        view.line(f"bot: webhook on {config.webhook.public_url}, Graph at {emu.graph_url}, "
                  f"media on udp 127.0.0.1:{engine.port}")
        t_join = time.monotonic()
        call = await bot.join_meeting(meeting.join_web_url)
        conf = handler.conferences.get(call.id)
        if conf is None:
            raise RuntimeError("the emulator started no media for the call")
        botmedia.epoch_ns = conf.start_ns
        for r in botmedia.receivers.values():
            r.epoch_ns = conf.start_ns
        view.line(f"bot joined the meeting in {1000 * (time.monotonic() - t_join):.0f} ms "
                  f"(call {call.id}); conference media on udp {server.address[0]}:{server.address[1]}")

        last = 0.0
        while not conf.finished:
            await asyncio.sleep(0.2)
            el = time.monotonic() - t_join
            if el - last >= 1.0:
                last = el
                view.line(_status(call, botmedia, analytics))
        await asyncio.sleep(0.6)  # let the jitter buffers drain
        report = _collect(script, call, botmedia, transcriber, analytics, errors)
        await call.hang_up()
    except Exception as e:  # the demo reports what broke instead of a traceback
        errors.append(f"{type(e).__name__}: {e}")
        raise
    finally:
        if scripted is not None:
            scripted.stop()
        if bot is not None:
            await bot.stop()
        await emu.stop()
        botmedia.close()
        server.stop()
        engine.close()
        segments = await loop.run_in_executor(None, transcriber.close)
    report["transcript"] = [{"speaker": s.speaker, "start": round(s.start_s, 2),
                             "end": round(s.end_s, 2), "text": s.text} for s in segments]
    report["errors"] = errors
    _summary(report, out)
    if report_path:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=2))
        out.write(f"report written to {report_path}\n")
    return report


def _status(call, botmedia, analytics) -> str:
    rec = botmedia.receiver
    names = sorted(p.display_name or "?" for p in call.roster.participants.values()
                   if p.id != call.resource.my_participant_id)
    speaking = []
    if rec is not None:
        now_s = (time.monotonic_ns() - rec._t0_ns) / 1e9
        speaking = [n for n, ts in rec.stats.speaking.items() if now_s - ts < 0.5]
    vid = ""
    if analytics is not None and analytics.streams:
        vid = " | video: " + ", ".join(f"{n} {st.width}x{st.height}@{st.fps:.0f}"
                                       for n, st in sorted(analytics.streams.items()))
    return f"roster: {', '.join(names) or '-'} | speaking: {', '.join(speaking) or '-'}{vid}"


def _collect(script, call, botmedia, transcriber, analytics, errors) -> dict:
    rec = botmedia.receiver
    media_stats = {}
    if rec is not None:
        for ssrc, info in rec.sources.items():
            try:
                st = rec.session._recv_stats(ssrc)
            except Exception as e:
                errors.append(f"stats for {info.name} {info.kind} ({ssrc}): {e}")
                continue
            media_stats[f"{info.name}/{info.kind}"] = {"ssrc": ssrc, "packets": st.packets,
                                                       "lost": st.lost,
                                                       "jitter_ms": round(st.jitter_ms, 3)}
        if rec.stats.decode_errors:
            errors.append(f"{rec.stats.decode_errors} decode errors")
    roster = sorted(p.display_name or "?" for p in call.roster.participants.values()
                    if p.id != call.resource.my_participant_id)
    return {
        "meeting": script.title,
        "call_id": call.id,
        "duration_s": script.duration_s,
        "participants": roster,
        "video": {n: _video_entry(st)
                  for n, st in sorted((analytics.streams if analytics else {}).items())
                  if not n.endswith("/screen")},
        "screen_share": {n[:-len("/screen")]: _video_entry(st)
                         for n, st in sorted((analytics.streams if analytics else {}).items())
                         if n.endswith("/screen")},
        "media": media_stats,
        "audio_frames": dict(rec.stats.audio_frames) if rec else {},
        "concealed_frames": dict(rec.stats.concealed) if rec else {},
        "latency_ms": _latency(rec),
        "dtmf": [{"speaker": n, "digit": d, "at": round(t, 2)} for n, d, t in rec.stats.dtmf]
        if rec else [],
        "audio_path": _audio_path(rec, errors),
    }


def _video_entry(st) -> dict:
    return {"frames": st.frames, "fps": round(st.mean_fps, 2), "width": st.width,
            "height": st.height, "motion_frames": st.motion_frames,
            "scene_changes": st.scene_changes, "faces": st.faces}


def _latency(rec) -> dict:
    """Wire-to-processor latency of audio frames beyond the jitter-buffer
    delay (playout tick -> processor), and the buffering before the tick."""
    if rec is None:
        return {"p50": None, "p99": None}
    s = rec.latency.summary()
    return {"p50": s["p50"], "p99": s["p99"], "max": s["max"],
            "playout_delay": s["playout_delay_ms"]}


def _audio_path(rec, errors: list[str]) -> dict:
    if rec is None:
        return {}
    st = rec.call_audio.stats()
    out = {"decoded": st.decoded, "concealed": st.concealed, "fec_recovered": st.fec_recovered,
           "stretched": st.underruns, "late": st.late, "overflow_dropped": st.overflow_dropped,
           "output_dropped": st.output_dropped + rec.audio.output_dropped(),
           "decode_errors": st.decode_errors, "dtmf_digits": st.dtmf_digits}
    if st.decode_errors:
        errors.append(f"{st.decode_errors} audio decode errors")
    if out["output_dropped"]:
        errors.append(f"{out['output_dropped']} audio frames dropped: the processor fell behind")
    errors.extend(rec.audio.errors)
    return out


def _summary(r: dict, out: TextIO) -> None:
    out.write("\n=== summary ===\n")
    out.write(f"participants: {', '.join(r.get('participants', []))}\n")
    out.write("transcript:\n")
    for s in r.get("transcript", []):
        out.write(f"  [{s['start']:5.1f}-{s['end']:5.1f}] {s['speaker']}: {s['text']}\n")
    if r.get("video"):
        out.write("video:\n")
        for n, v in r["video"].items():
            out.write(f"  {n}: {v['frames']} frames, {v['width']}x{v['height']} @ {v['fps']} fps, "
                      f"motion in {v['motion_frames']} frames\n")
    if r.get("screen_share"):
        out.write("screen sharing:\n")
        for n, v in r["screen_share"].items():
            out.write(f"  {n}: {v['frames']} frames, {v['width']}x{v['height']}\n")
    out.write("media:\n")
    for n, m in r.get("media", {}).items():
        out.write(f"  {n}: {m['packets']} packets, {m['lost']} lost, jitter {m['jitter_ms']} ms\n")
    if r.get("dtmf"):
        out.write("DTMF: " + ", ".join(f"{d['speaker']} {d['digit']} ({d['at']:.1f} s)"
                                       for d in r["dtmf"]) + "\n")
    lat = r.get("latency_ms", {})
    if lat.get("p50") is not None:
        out.write(f"wire-to-processor latency of audio frames beyond the jitter-buffer delay: "
                  f"p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms (buffered before playout: "
                  f"p50 {lat['playout_delay']['p50']:.1f} ms)\n")
    out.write(f"errors: {r['errors'] or 'none'}\n")

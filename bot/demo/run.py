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
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from bot.demo.script import MeetingScript, load_script

SRTP_PROFILE = "AES_CM_128_HMAC_SHA1_80"


def _pct(values: list[int], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q / 100 * len(s)))] / 1e6


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


def run_demo(script: MeetingScript, *, video: bool = True, report_path: str | None = None,
             live: bool = True, grammar: bool = False, out: TextIO = sys.stdout) -> dict:
    from mediacore.engine import Engine
    from mediacore.processors.transcription import TranscriptionProcessor
    from mediacore.processors.video_analytics import VideoAnalyticsProcessor

    from bot.demo.receiver import MeetingReceiver, SourceInfo
    from bot.emulator.conference import ConferenceMedia, MediaServer
    from bot.emulator.simmedia import prepare_meeting

    view = LiveView(out, live)
    errors: list[str] = []
    if not video:
        script = script.without_video()
    view.line(f"meeting {script.title!r}: {', '.join(p.name for p in script.participants)}; "
              f"{script.duration_s:.0f} s")
    t = time.monotonic()
    media = prepare_meeting(script, video=video)
    view.line(f"emulator: participants' media prepared in {time.monotonic() - t:.1f} s")

    sentences = [u.text for p in script.participants for u in p.say if u.text]
    transcript_lines: list[str] = []

    def on_segment(seg):
        line = f"{seg.speaker}: {seg.text}   ({seg.start_s:.1f}-{seg.end_s:.1f} s)"
        transcript_lines.append(line)
        view.line("transcript  " + line)

    transcriber = TranscriptionProcessor(on_segment, workers=2,
                                         grammar_sentences=sentences if grammar else None)
    analytics = VideoAnalyticsProcessor()
    down, up = os.urandom(30), os.urandom(30)  # conference -> bot, bot -> conference
    names = {}
    with MediaServer("127.0.0.1") as server, Engine("127.0.0.1") as engine:
        session = engine.add_session(server.address, srtp_profile=SRTP_PROFILE, tx_key=up,
                                     rx_key=down)
        sources = {}
        for pm in media.participants:
            sources[pm.audio_source_id] = SourceInfo(pm.participant.name, "audio")
            names[pm.audio_source_id] = pm.participant.name
            if pm.video_source_id is not None:
                sources[pm.video_source_id] = SourceInfo(pm.participant.name, "video")
                names[pm.video_source_id] = pm.participant.name
        receiver = MeetingReceiver(session, sources, transcriber=transcriber,
                                   analytics=analytics if video else None)
        receiver.start()
        conf = ConferenceMedia(server.engine, media, ("127.0.0.1", engine.port),
                               srtp_profile=SRTP_PROFILE, tx_key=down, rx_key=up)
        receiver.epoch_ns = conf.start_ns
        server.attach("demo-call", conf)
        view.line(f"bot joined: media on udp 127.0.0.1:{engine.port}, conference on "
                  f"udp {server.address[0]}:{server.address[1]}, {SRTP_PROFILE}")
        last = 0.0
        while not conf.finished:
            time.sleep(0.1)
            el = time.monotonic() - t
            if el - last >= 1.0:
                last = el
                now_s = (time.monotonic_ns() - receiver._t0_ns) / 1e9
                speaking = [n for n, ts in receiver.stats.speaking.items() if now_s - ts < 0.5]
                vid = ", ".join(f"{n} {st.width}x{st.height}@{st.fps:.0f}"
                                for n, st in analytics.streams.items())
                present = [p.name for p in script.participants
                           if p.present_at(conf._slot * 0.02)]
                view.line(f"present: {', '.join(present)} | speaking: {', '.join(speaking) or '-'}"
                          + (f" | video: {vid}" if vid else ""))
        time.sleep(0.5)  # let the jitter buffers drain
        media_stats = {}
        for ssrc, name in names.items():
            try:
                st = session._recv_stats(ssrc)
            except Exception as e:  # a stream that never got a packet
                errors.append(f"stats for {name} ({ssrc}): {e}")
                continue
            kind = sources[ssrc].kind
            media_stats[f"{name}/{kind}"] = {"ssrc": ssrc, "packets": st.packets, "lost": st.lost,
                                             "jitter_ms": round(st.jitter_ms, 3)}
        receiver.stop()
        server.detach("demo-call")
    segments = transcriber.close()
    if receiver.stats.decode_errors:
        errors.append(f"{receiver.stats.decode_errors} decode errors")
    report = {
        "meeting": script.title,
        "duration_s": script.duration_s,
        "participants": [p.name for p in script.participants],
        "transcript": [{"speaker": s.speaker, "start": round(s.start_s, 2), "end": round(s.end_s, 2),
                        "text": s.text} for s in segments],
        "video": {n: {"frames": st.frames, "fps": round(st.mean_fps, 2), "width": st.width,
                      "height": st.height, "motion_frames": st.motion_frames,
                      "scene_changes": st.scene_changes, "faces": st.faces}
                  for n, st in analytics.streams.items()},
        "media": media_stats,
        "audio_frames": receiver.stats.audio_frames,
        "concealed_frames": receiver.stats.concealed,
        "latency_ms": {"p50": _pct(receiver.stats.latency_ns, 50),
                       "p99": _pct(receiver.stats.latency_ns, 99)},
        "errors": errors,
    }
    _summary(report, out)
    if report_path:
        Path(report_path).parent.mkdir(parents=True, exist_ok=True)
        Path(report_path).write_text(json.dumps(report, indent=2))
        out.write(f"report written to {report_path}\n")
    return report


def _summary(r: dict, out: TextIO) -> None:
    out.write("\n=== summary ===\n")
    out.write(f"participants: {', '.join(r['participants'])}\n")
    out.write("transcript:\n")
    for s in r["transcript"]:
        out.write(f"  [{s['start']:5.1f}-{s['end']:5.1f}] {s['speaker']}: {s['text']}\n")
    if r["video"]:
        out.write("video:\n")
        for n, v in r["video"].items():
            out.write(f"  {n}: {v['frames']} frames, {v['width']}x{v['height']} @ {v['fps']} fps, "
                      f"motion in {v['motion_frames']} frames\n")
    out.write("media:\n")
    for n, m in r["media"].items():
        out.write(f"  {n}: {m['packets']} packets, {m['lost']} lost, jitter {m['jitter_ms']} ms\n")
    lat = r["latency_ms"]
    if lat["p50"] is not None:
        out.write(f"wire-to-processor latency (audio, after the jitter buffer): p50 {lat['p50']:.3f} ms, "
                  f"p99 {lat['p99']:.3f} ms\n")
    out.write(f"errors: {r['errors'] or 'none'}\n")

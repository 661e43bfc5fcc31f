"""End to end: `mediabot demo` and `mediabot load` on this machine (real
engines, SRTP over UDP on loopback, real codecs, pocketsphinx)."""

from __future__ import annotations

import io
import json

import pytest

from bot.cli import main
from bot.demo.load import run_load_once
from bot.demo.run import run_demo
from bot.emulator.script import load_script


@pytest.mark.slow
def test_demo_meeting_report(tmp_path):
    script = load_script()
    out = io.StringIO()
    report_path = tmp_path / "report.json"
    report = run_demo(script, report_path=str(report_path), grammar=True, out=out)
    assert json.loads(report_path.read_text()) == json.loads(json.dumps(report))
    assert report["participants"] == ["Alice", "Bob", "Carol"]
    assert report["errors"] == []
    # each speaker's words, attributed to that speaker, at the scripted time
    by_speaker: dict[str, list[dict]] = {}
    for seg in report["transcript"]:
        by_speaker.setdefault(seg["speaker"], []).append(seg)
    for p in script.participants:
        segs = by_speaker.get(p.name, [])
        assert segs, f"no transcript for {p.name}"
        words = set(" ".join(s["text"] for s in segs).split())
        assert len(words & set(p.words())) >= 3, (p.name, words)
        for u in p.say:
            assert any(abs(s["start"] - u.at_s) < 1.0 for s in segs), (p.name, u.at_s, segs)
    # video of each participant at its scripted size and rate
    for p in script.participants:
        v = report["video"][p.name]
        assert (v["width"], v["height"]) == (p.width, p.height)
        assert abs(v["fps"] - p.fps) < 1.0
        assert v["frames"] >= 0.9 * p.fps * (script.duration_s - p.join_s)
        assert v["motion_frames"] > 0.8 * v["frames"]
    # scripted key presses reach the bot as RFC 4733 events on the presser's audio stream
    pressed = [(p.name, d) for p in script.participants for press in p.dtmf for d in press.digits]
    assert [(d["speaker"], d["digit"]) for d in report["dtmf"]] == pressed
    # scripted screen sharing reaches the bot as a VBSS stream of the sharer
    sharers = [p for p in script.participants if p.screen_share]
    assert sharers and set(report["screen_share"]) == {p.name for p in sharers}
    for p in sharers:
        v = report["screen_share"][p.name]
        assert (v["width"], v["height"]) == (1280, 720)
        shared_s = sum(s.end_s - s.start_s for s in p.screen_share)
        assert v["frames"] >= 0.6 * 5 * shared_s
    for name, m in report["media"].items():
        assert m["packets"] > 0 and m["lost"] == 0, name
    assert report["latency_ms"]["p50"] is not None
    assert "=== summary ===" in out.getvalue() and "transcript" in out.getvalue()


def test_cli_rejects_bad_arguments(capsys):
    assert main(["demo", "--script", "/no/such/script.toml"]) == 2
    assert "not found" in capsys.readouterr().out
    assert main(["load", "--calls", "many"]) == 2
    with pytest.raises(SystemExit):
        main(["demo", "--duration", "soon"])


@pytest.mark.slow
def test_load_50_audio_calls_30_s_without_dropped_frames():
    r = run_load_once(50, 30.0)
    assert r["calls"] == 50
    assert r["calls_without_media"] == 0
    assert r["dropped_frames"] == 0, r["dropped_by_cause"]
    assert r["auth_failures"] == 0 and r["decode_errors"] == 0
    assert 49.0 < r["frames_per_s_per_call"] < 51.0
    assert all(c["frames"] > 0 and c["setup_ms"] is not None for c in r["per_call"])


def test_setup_through_signaling_answers_every_call_with_media():
    from bot.demo.load import measure_setup

    r = measure_setup(3)
    assert r["answered_with_media"] == 3
    assert len(r["setup_ms"]) == 3 and all(s > 0 for s in r["setup_ms"])

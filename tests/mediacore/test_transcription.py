"""The transcription processor's parts: the engine seam (a Transcriber of our
own plugged in by ``package.module:Class``), voice-activity segmentation with
padding, partial then final results, transcript.jsonl and captions.vtt."""

from __future__ import annotations

import json
import re
import threading
import time

import numpy as np
import pytest

from bot.emulator.script import Participant, Utterance
from bot.emulator.synth import audio_track
from mediacore.audio.codecs import FRAME_100NS
from mediacore.audio.frames import FRAME_RECORD_DTYPE, AudioFrame
from mediacore.processor import ProcessorContext
from mediacore.processors import ProcessorSpecError, processor_factory
from mediacore.processors.transcription import (
    Recognition,
    SpeechSegmenter,
    SpeechTranscriber,
    Transcriber,
    Transcription,
    Vosk,
    make_transcriber,
    webvtt,
)


class CountingEngine(Transcriber):
    """A test double of the seam: the words are the audio's length, so what
    reached the engine is visible in its results."""

    def transcribe(self, pcm: np.ndarray) -> Recognition:
        return Recognition(f"final {len(pcm) // 320} frames", 0.75)

    def partial(self, pcm: np.ndarray) -> Recognition | None:
        return Recognition(f"partial {len(pcm) // 320} frames", 0.25)


def speech(seconds: float, at_s: float, total_s: float) -> np.ndarray:
    """Noise floor with a loud 440 Hz burst (a stand-in for speech) at ``at_s``."""
    rng = np.random.default_rng(1)
    pcm = rng.normal(0, 10, int(total_s * 16000))
    t = np.arange(int(seconds * 16000)) / 16000
    start = int(at_s * 16000)
    pcm[start:start + len(t)] += 8000 * np.sin(2 * np.pi * 440 * t)
    return pcm.astype(np.int16)


def frames_of(pcm: np.ndarray):
    for k in range(len(pcm) // 320):
        yield pcm[k * 320:(k + 1) * 320], k * FRAME_100NS


def test_segmenter_keeps_the_padding_around_the_speech_and_times_the_speech_itself():
    pcm = speech(1.0, 1.0, 3.0)
    for pre, post in ((200, 100), (400, 300), (0, 0)):
        seg = SpeechSegmenter(pre_padding_ms=pre, post_padding_ms=post, silence_ms=500)
        found = [u for f, ts in frames_of(pcm) if (u := seg.push(f, ts))]
        assert len(found) == 1
        u = found[0]
        assert abs(u.start_100ns / 1e7 - 1.0) <= 0.02 and abs(u.end_100ns / 1e7 - 2.0) <= 0.02
        assert len(u.pcm) // 320 == 50 + pre // 20 + post // 20, (pre, post, len(u.pcm) // 320)


def test_segmenter_thresholds_decide_what_is_speech():
    pcm = speech(1.0, 0.5, 2.5) // 40                       # a quiet voice: RMS ~140
    loud_only = SpeechSegmenter(min_rms=500)
    assert not [u for f, ts in frames_of(pcm) if (u := loud_only.push(f, ts))] and loud_only.flush() is None
    default = SpeechSegmenter()
    assert len([u for f, ts in frames_of(pcm) if (u := default.push(f, ts))]) == 1
    with pytest.raises(ValueError):
        SpeechSegmenter(silence_ms=0)


def test_partials_while_the_utterance_is_open_then_the_final_result():
    got: list = []
    lock = threading.Lock()

    def keep(s):
        with lock:
            got.append(s)

    tp = SpeechTranscriber(keep, on_partial=keep, processes=False, transcriber=CountingEngine(),
                           partial_interval_ms=400)
    for k, (f, ts) in enumerate(frames_of(speech(2.0, 0.5, 4.0))):
        tp.push("Alice", f, ts, participant_id="p-1")
        if k % 5 == 0:
            time.sleep(0.01)          # at half real time: the engine's thread gets its turns
    finals = tp.close()
    partials = [s for s in got if not s.final]
    assert len(partials) >= 3 and all(s.text.startswith("partial") for s in partials)
    assert [s.confidence for s in partials] == [0.25] * len(partials)
    assert sorted(s.end_100ns for s in partials) == [s.end_100ns for s in partials]
    (final,) = finals
    # the whole utterance reached the engine: 2 s of speech, 200 ms before, 100 ms after
    assert final.text == "final 115 frames" and final.confidence == 0.75 and final.final
    assert (final.speaker, final.participant_id) == ("Alice", "p-1")
    assert got[-1] == final and all(p.start_100ns == final.start_100ns for p in partials)


def frame(pcm: np.ndarray, ts: int, pid: str, name: str) -> AudioFrame:
    rec = np.zeros((), FRAME_RECORD_DTYPE)
    rec["pcm"] = pcm
    rec["header"]["timestamp_100ns"] = ts
    rec["header"]["source_id"] = 7
    rec["header"]["samples"] = 320
    return AudioFrame(rec, "unmixed", pid, name, "call-1")


def test_processor_with_an_engine_of_our_own_writes_jsonl_and_webvtt(tmp_path):
    make = processor_factory("transcription", {
        "engine": f"{__name__}:CountingEngine", "partial_interval_ms": 500, "workers": 1,
        "pre_padding_ms": 100, "post_padding_ms": 0})
    proc = make()
    assert isinstance(proc, Transcription)
    finals = []
    proc.on_segment.append(finals.append)
    epoch = 10_000_000
    proc.on_start(ProcessorContext("call-1", tmp_path, epoch_100ns=epoch))
    alice, bob = speech(1.5, 0.5, 5.0), speech(1.0, 3.0, 5.0)
    for (a, ts), (b, _) in zip(frames_of(alice), frames_of(bob)):
        proc.on_audio(frame(a, epoch + ts, "p-a", "Alice <CEO>"))
        proc.on_audio(frame(b, epoch + ts, "p-b", "Bob"))
    result = proc.on_stop()
    assert [s.speaker for s in result] == ["Alice <CEO>", "Bob"] == [s.speaker for s in finals]
    lines = [json.loads(x) for x in (tmp_path / "transcript.jsonl").read_text().splitlines()]
    assert set(lines[0]) == {"participant_id", "speaker", "start", "end", "text", "confidence", "final"}
    done = [x for x in lines if x["final"]]
    assert [(x["speaker"], x["participant_id"], x["start"], x["end"], x["text"]) for x in done] == [
        ("Alice <CEO>", "p-a", 0.5, 2.0, "final 80 frames"), ("Bob", "p-b", 3.0, 4.0, "final 55 frames")]
    vtt = (tmp_path / "captions.vtt").read_text()
    assert vtt == ("WEBVTT\n\n1\n00:00:00.500 --> 00:00:02.000\n<v Alice &lt;CEO&gt;>final 80 frames\n\n"
                   "2\n00:00:03.000 --> 00:00:04.000\n<v Bob>final 55 frames\n")


def test_webvtt_cues_in_start_order():
    text = webvtt([(5.0, 6.5, "Bob", "later"), (1.25, 3600.0, "Alice", "first & <b>")])
    cues = re.findall(r"(\S+) --> (\S+)\n<v ([^>]+)>(.*)", text)
    assert cues == [("00:00:01.250", "01:00:00.000", "Alice", "first &amp; &lt;b&gt;"),
                    ("00:00:05.000", "00:00:06.500", "Bob", "later")]


def test_engines_by_name_and_bad_options_fail_up_front():
    assert type(make_transcriber("pocketsphinx")).__name__ == "PocketSphinx"
    with pytest.raises(ProcessorSpecError, match="unknown transcription engine"):
        processor_factory("transcription", {"engine": "nope"})
    with pytest.raises(ProcessorSpecError, match="model_path"):
        processor_factory("transcription", {"engine": "vosk"})
    with pytest.raises(ProcessorSpecError, match="not a mediacore Transcriber"):
        processor_factory("transcription", {"engine": "numpy:ndarray"})
    assert isinstance(make_transcriber("vosk", {"model_path": "/nonexistent"}), Vosk)


def test_pocketsphinx_through_the_seam_gives_words_and_a_confidence():
    track = audio_track(Participant("A", say=(Utterance(0.3, "the quick brown fox jumps over the lazy dog"),)), 4.0)
    engine = make_transcriber("pocketsphinx", grammar=["the quick brown fox jumps over the lazy dog",
                                                      "thank you all see you next week"])
    r = engine.transcribe(track)
    assert r.text == "the quick brown fox jumps over the lazy dog"
    assert 0.5 < r.confidence <= 1.0

"""Built-in processors: speech segmentation and transcription per speaker,
video analytics."""

from __future__ import annotations

import numpy as np

from bot.emulator.script import Participant, Utterance
from bot.emulator.synth import audio_track
from mediacore.audio.codecs import FRAME_100NS
from mediacore.processors.transcription import SpeechSegmenter, SpeechTranscriber
from mediacore.processors.video_analytics import VideoAnalyzer


def frames(track: np.ndarray):
    for k in range(len(track) // 320):
        yield track[k * 320:(k + 1) * 320], k * FRAME_100NS


def test_segmenter_finds_each_utterance_with_timestamps():
    p = Participant("A", say=(Utterance(1.0, "first sentence here"), Utterance(5.0, "and a second one")))
    seg = SpeechSegmenter()
    found = [u for pcm, ts in frames(audio_track(p, 9.0)) if (u := seg.push(pcm, ts))]
    assert len(found) == 2
    assert abs(found[0].start_100ns / 1e7 - 1.0) < 0.3
    assert abs(found[1].start_100ns / 1e7 - 5.0) < 0.3
    assert all(u.end_100ns > u.start_100ns for u in found)
    assert found[0].end_100ns / 1e7 < 5.0


def test_transcription_attributes_words_to_each_speaker():
    sentences = {"A": "the quick brown fox jumps over the lazy dog",
                 "B": "thank you all see you next week"}
    tracks = {name: audio_track(Participant(name, say=(Utterance(1.0 + 4 * i, s),)), 9.0, seed=i)
              for i, (name, s) in enumerate(sentences.items())}
    tp = SpeechTranscriber(workers=2, grammar_sentences=sentences.values())
    for k in range(9 * 50):
        for name, t in tracks.items():
            tp.push(name, t[k * 320:(k + 1) * 320], k * FRAME_100NS)
    segs = tp.close()
    by = {s.speaker: s for s in segs}
    assert set(by) == {"A", "B"}
    assert "fox" in by["A"].text and "week" in by["B"].text
    assert by["A"].start_s < by["B"].start_s


def test_video_analytics_fps_motion_scene_and_resolution():
    va = VideoAnalyzer(detect_faces=False)
    yy, xx = np.mgrid[0:180, 0:320]
    base = (128 + 100 * np.sin(xx / 20.0) * np.cos(yy / 30.0)).astype(np.uint8)  # smooth texture
    for i in range(30):  # 15 fps, small motion
        st = va.push("cam", np.roll(base, i, axis=1), i * 666_667)
    assert st.frames == 30 and (st.width, st.height) == (320, 180)
    assert abs(st.mean_fps - 15.0) < 0.1
    assert st.motion_frames >= 25 and st.scene_changes == 0
    va.push("cam", 255 - base, 30 * 666_667)  # a cut
    assert st.scene_changes == 1
    va.push("cam", np.zeros((360, 640), np.uint8), 31 * 666_667)
    assert st.resolution_changes == 1 and (st.width, st.height) == (640, 360)
    assert st.summary()["frames"] == 32


def test_segmenter_closes_an_utterance_at_a_gap_in_unmixed_frames():
    p = Participant("A", say=(Utterance(0.5, "first sentence here"), Utterance(4.0, "and another")))
    track = audio_track(p, 7.0)
    seg = SpeechSegmenter()
    loud = [(pcm, ts) for pcm, ts in frames(track) if np.abs(pcm).mean() > 300]  # speech only
    found = [u for pcm, ts in loud if (u := seg.push(pcm, ts))]
    last = seg.flush()
    assert len(found) == 1 and last is not None
    assert found[0].end_100ns / 1e7 < 3.5 and abs(last.start_100ns / 1e7 - 4.0) < 0.3

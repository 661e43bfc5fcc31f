"""Synthesised participants: speech where scripted over a noise floor, and a
moving, named test pattern."""

from __future__ import annotations

import numpy as np

from bot.emulator.font import text_mask
from bot.emulator.script import Participant, Utterance
from bot.emulator.synth import SAMPLE_RATE, PatternVideo, audio_track, speech, speech_spans


def test_speech_is_16k_int16_and_cached():
    a = speech("hello world", "en-us")
    b = speech("hello world", "en-us")
    assert a.dtype == np.int16 and 0.3 * SAMPLE_RATE < len(a) < 3 * SAMPLE_RATE
    assert np.array_equal(a, b)
    assert np.abs(a).max() > 1000


def test_track_has_speech_at_scripted_time_and_noise_floor_only_while_present():
    p = Participant("A", join_s=1.0, leave_s=9.0, say=(Utterance(3.0, "testing one two three"),))
    t = audio_track(p, 10.0, seed=1)
    assert len(t) == 10 * SAMPLE_RATE
    rms = lambda a, b: float(np.sqrt(np.mean(t[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)].astype(float) ** 2)))  # noqa: E731
    start, end, _ = speech_spans(p, 10.0)[0]
    assert start == 3.0 and end > 3.5
    assert rms(0, 1) == 0.0  # not joined yet: sends nothing
    assert 5 < rms(1.5, 2.9) < 20  # the noise floor (sigma 10)
    assert rms(3.0, end) > 300  # speech
    assert rms(9.0, 10) == 0.0  # left


def test_pattern_moves_and_carries_the_name():
    v = PatternVideo("Bob", 320, 180, 15)
    y0, u0, v0 = v.frame(0)
    y1, _, _ = v.frame(1)
    assert y0.shape == (180, 320) and u0.shape == v0.shape == (90, 160)
    assert np.mean(np.abs(y1.astype(int) - y0.astype(int))) > 1.0  # motion
    mask = text_mask("BOB", max(1, min(320 // (6 * 3 + 4), 180 // 24)))
    region = y0[6:6 + mask.shape[0], 6:6 + mask.shape[1]]
    assert np.all(region[mask] == 16) and np.all(region[~mask] == 225)


def test_font_unknown_characters_render_as_question_mark():
    assert np.array_equal(text_mask("~"), text_mask("?"))
    assert text_mask("AB", 2).shape == (14, 22)

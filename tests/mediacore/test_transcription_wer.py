"""The word error rate of the ``transcription`` processor may not rise: each
meeting runs through ``mediabot emulator`` and ``mediabot run`` (scripts/wer.py)
and its WER, free decoding and with a grammar, stays under the ceiling kept in
tests/fixtures/transcription/wer_ceilings.json (plus a margin for run-to-run
noise). The figures are printed (pytest -s)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CEILINGS = json.loads((REPO / "tests/fixtures/transcription/wer_ceilings.json").read_text())
SCRIPTS = [k for k in CEILINGS if k.endswith(".toml")]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def load_wer():
    spec = importlib.util.spec_from_file_location("wer", REPO / "scripts" / "wer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_edit_distance_counts_substitutions_deletions_and_insertions():
    wer = load_wer()
    assert wer.edit_distance("a b c d".split(), "a x c d e".split()) == 2
    assert wer.edit_distance("a b c".split(), []) == 3
    assert wer.wer("the cat sat".split(), "the cat sat".split()) == 0.0


@pytest.mark.parametrize("script", SCRIPTS)
def test_word_error_rate_does_not_rise(script):
    report = load_wer().measure(REPO / script)
    ceiling, margin = CEILINGS[script], CEILINGS["margin"]
    print(f"\n{script}: {report['words']} words, WER free {report['free']['wer']:.3f} "
          f"(ceiling {ceiling['free']}), grammar {report['grammar']['wer']:.3f} "
          f"(ceiling {ceiling['grammar']})")
    for mode in ("free", "grammar"):
        assert report[mode]["wer"] <= ceiling[mode] + margin[mode], (mode, report[mode])

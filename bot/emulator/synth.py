"""Synthesis of the simulated participants' media.

* Speech: espeak-ng, resampled to 16 kHz mono without dither (``sox -D``, so
  runs are deterministic), with a small Gaussian noise floor (σ = 10 LSB,
  about -70 dBFS) because pocketsphinx collapses on digital silence
  (docs/audio.md, "Speech in tests"). Synthesised clips are cached by (voice, text).
* Video: a moving test pattern in yuv420p with the participant's name in a
  bitmap font and a frame counter, so motion and identity are visible in every
  frame.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from mediacore.audio.codecs import SAMPLE_RATE_HZ

from .font import text_mask
from .script import Participant

SAMPLE_RATE = SAMPLE_RATE_HZ
NOISE_SIGMA = 10.0


class SynthesisError(RuntimeError):
    pass


def _cache_dir() -> Path:
    base = os.environ.get("MEDIABOT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "mediabot"
    )
    path = Path(base) / "speech"
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_wav_16k(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV as int16 (other formats: convert with sox first)."""
    with wave.open(str(path), "rb") as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SynthesisError(
                f"{path}: need 16 kHz mono 16-bit PCM, got "
                f"{w.getframerate()} Hz x{w.getnchannels()} {8 * w.getsampwidth()}-bit"
            )
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def to_16k_wav(src: Path, dst: Path) -> None:
    if not shutil.which("sox"):
        raise SynthesisError("sox is not installed (apt-get install sox)")
    subprocess.run(
        ["sox", "-D", str(src), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(dst)],
        check=True,
        capture_output=True,
        timeout=60,
    )


def speech(text: str, voice: str = "en-us", words_per_minute: int = 150) -> np.ndarray:
    """espeak-ng speech for ``text`` at 16 kHz mono int16 (no noise added)."""
    key = hashlib.sha256(f"{voice}|{words_per_minute}|{text}".encode()).hexdigest()[:24]
    cached = _cache_dir() / f"{key}.wav"
    if not cached.exists():
        if not shutil.which("espeak-ng"):
            raise SynthesisError("espeak-ng is not installed (apt-get install espeak-ng)")
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.wav"
            r = subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
                capture_output=True,
                timeout=60,
            )
            if r.returncode != 0 or not raw.exists():
                raise SynthesisError(f"espeak-ng failed for voice {voice!r}: {r.stderr.decode().strip()}")
            out = Path(tmp) / "16k.wav"
            to_16k_wav(raw, out)
            out.replace(cached)
    return read_wav_16k(cached)


def audio_track(p: Participant, duration_s: float, seed: int = 0) -> np.ndarray:
    """The participant's whole microphone signal over the meeting, 16 kHz int16:
    their utterances at their scripted times over a noise floor while they are
    present, digital silence otherwise (they send nothing then)."""
    n = int(round(duration_s * SAMPLE_RATE))
    track = np.zeros(n, dtype=np.float64)
    for u in p.say:
        clip = read_wav_16k(u.wav) if u.wav else speech(u.text, p.voice)
        start = int(u.at_s * SAMPLE_RATE)
        end = min(n, start + len(clip))
        if p.leave_s is not None:
            end = min(end, int(p.leave_s * SAMPLE_RATE))
        if end > start:
            track[start:end] += clip[: end - start]
    rng = np.random.default_rng(seed)
    lo = int(p.join_s * SAMPLE_RATE)
    hi = n if p.leave_s is None else min(n, int(p.leave_s * SAMPLE_RATE))
    track[lo:hi] += rng.normal(0.0, NOISE_SIGMA, hi - lo)
    track[:lo] = 0
    track[hi:] = 0
    return np.clip(np.rint(track), -32768, 32767).astype(np.int16)


def speech_spans(p: Participant, duration_s: float) -> list[tuple[float, float, str]]:
    """(start_s, end_s, text) of each utterance as synthesised."""
    spans = []
    for u in p.say:
        clip = read_wav_16k(u.wav) if u.wav else speech(u.text, p.voice)
        end = min(duration_s, u.at_s + len(clip) / SAMPLE_RATE)
        if p.leave_s is not None:
            end = min(end, p.leave_s)
        spans.append((u.at_s, end, u.text))
    return spans


def _hue_bars(width: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """U and V planes (half resolution) of scrolling colour bars."""
    x = (np.arange(width // 2) * 2 + shift) % width
    phase = 2 * np.pi * x / width
    u = (128 + 100 * np.cos(phase)).astype(np.uint8)
    v = (128 + 100 * np.sin(phase)).astype(np.uint8)
    return u, v


class PatternVideo:
    """Frames of a moving test pattern with a name, as yuv420p numpy planes."""

    def __init__(self, name: str, width: int, height: int, fps: float) -> None:
        if width % 2 or height % 2:
            raise ValueError("width and height must be even")
        self.name, self.width, self.height, self.fps = name, width, height, fps
        scale = max(1, min(width // (6 * max(1, len(name)) + 4), height // 24))
        self._label = text_mask(name, scale)
        self._ramp = np.tile(np.linspace(40, 200, width).astype(np.uint8), (height, 1))

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        w, h = self.width, self.height
        y = np.roll(self._ramp, index * 4, axis=1).copy()
        # a bright square bouncing left-right: guaranteed motion between frames
        size = max(8, h // 6)
        span = max(1, w - size)
        pos = index * 6 % (2 * span)
        x0 = pos if pos < span else 2 * span - pos
        y0 = h - size - 4
        y[y0 : y0 + size, x0 : x0 + size] = 235
        # the name, dark on a light plate
        lh, lw = self._label.shape
        lw = min(lw, w - 8)
        plate = y[4 : 4 + lh + 4, 4 : 4 + lw + 4]
        plate[:] = 225
        y[6 : 6 + lh, 6 : 6 + lw][self._label[:, :lw]] = 16
        # frame counter, small, top right
        counter = text_mask(str(index % 10000), 1)
        ch, cw = counter.shape
        if cw + 8 < w and ch + 8 < h:
            y[4 : 4 + ch, w - cw - 4 : w - 4][counter] = 16
        u_row, v_row = _hue_bars(w, index * 4)
        u = np.tile(u_row, (h // 2, 1))
        v = np.tile(v_row, (h // 2, 1))
        # neutral chroma under the name plate, so the name reads as black on white
        u[2 : (8 + lh) // 2 + 1, 2 : (8 + lw) // 2 + 1] = 128
        v[2 : (8 + lh) // 2 + 1, 2 : (8 + lw) // 2 + 1] = 128
        return y, u, v

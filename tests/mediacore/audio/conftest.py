"""Shared audio test signals: tones, and speech from espeak-ng + sox with a
small noise floor (docs/audio.md, "Speech in tests"), generated into tmp paths."""

from __future__ import annotations

import shutil
import subprocess
import wave

import numpy as np
import pytest

RATE = 16000


def tone(hz: float, seconds: float, amplitude: float = 10000.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def best_lag(ref: np.ndarray, got: np.ndarray, max_lag: int = 800) -> int:
    """The delay of ``got`` against ``ref`` maximising correlation."""
    n = min(len(ref), len(got))
    size = 1 << (2 * n - 1).bit_length()
    r = np.fft.rfft(ref[:n].astype(np.float64), size)
    g = np.fft.rfft(got[:n].astype(np.float64), size)
    corr = np.fft.irfft(g * np.conj(r), size)      # corr[lag] = sum ref[i] * got[i + lag]
    return int(np.argmax(corr[:max_lag]))


def snr_db(ref: np.ndarray, got: np.ndarray, lag: int | None = None, skip: int = 1600) -> float:
    """SNR of ``got`` (delayed by ``lag``, found by correlation if None)
    against ``ref``, skipping the codec's start-up."""
    if lag is None:
        lag = best_lag(ref, got)
    n = min(len(ref), len(got) - lag)
    r = ref[skip:n].astype(np.float64)
    g = got[lag + skip:lag + n].astype(np.float64)
    return 10 * np.log10(np.sum(r * r) / max(np.sum((r - g) ** 2), 1e-9))


def frames(pcm: np.ndarray, size: int = 320) -> list[np.ndarray]:
    n = len(pcm) // size
    return [pcm[i * size:(i + 1) * size] for i in range(n)]


SENTENCE = "the quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="session")
def speech_16k(tmp_path_factory) -> np.ndarray:
    """espeak-ng speech at 16 kHz mono int16 plus a sigma = 10 LSB noise floor."""
    for tool in ("espeak-ng", "sox"):
        assert shutil.which(tool), f"{tool} is required (scripts/apt-packages.txt)"
    d = tmp_path_factory.mktemp("speech")
    raw, out = d / "raw.wav", d / "s16k.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), SENTENCE], check=True)
    subprocess.run(["sox", "-D", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)],
                   check=True)
    with wave.open(str(out)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    noise = np.random.default_rng(0).normal(0, 10, pcm.size)
    return np.clip(pcm + noise, -32768, 32767).astype(np.int16)

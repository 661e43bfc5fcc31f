"""Audio levels in RFC 6464 units, for active-speaker detection: dBov with
0 dBov = the RMS of a full-scale square wave (a full-scale sine is -3 dBov),
carried on the wire as 0..127 = -dBov (127 = silence)."""

from __future__ import annotations

from .._native import ffi, lib
from ..errors import check
from .codecs import _pcm_in

SILENT_LEVEL = lib.MC_AUDIO_LEVEL_SILENT


def level_dbov(pcm) -> float:
    """RMS level of int16 PCM in dBov (-127 for digital silence)."""
    samples = _pcm_in(pcm)
    out = ffi.new("float *")
    check(lib.mc_audio_level_dbov(ffi.from_buffer("int16_t[]", samples), len(samples), out), "audio level")
    return float(out[0])


def rfc6464_level(pcm) -> int:
    """The RFC 6464 level (0..127, = -dBov) of int16 PCM."""
    samples = _pcm_in(pcm)
    out = ffi.new("uint8_t *")
    check(lib.mc_audio_level_rfc6464(ffi.from_buffer("int16_t[]", samples), len(samples), out), "audio level")
    return int(out[0])


def parse_audio_level(element: bytes) -> tuple[bool, int]:
    """The RFC 6464 header-extension element: (voice activity, level)."""
    voice, level = ffi.new("uint8_t *"), ffi.new("uint8_t *")
    check(lib.mc_audio_level_parse(element, len(element), voice, level), "audio level element")
    return bool(voice[0]), int(level[0])

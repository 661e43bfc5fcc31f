"""mediacore.audio — 16 kHz mono PCM frames (20 ms, 320 samples, 640 bytes),
native codecs (Opus, G.711, L16), the SIMD mixer, DTMF (RFC 4733),
RFC 6464 levels, and the native audio graph and worker. Calls receive and
send audio through :class:`AudioPath` (``mediacore.audio.path``, what
``mediacore.MediaHost`` runs); processors are ``mediacore.Processor``."""

from .codecs import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    SAMPLE_RATE_HZ,
    AudioDecoder,
    AudioEncoder,
    Codec,
    DecoderStats,
    OpusApplication,
    Resampler,
    g711_decode,
    g711_encode,
    payload_types_from,
)
from .dtmf import DtmfDigit, DtmfPacket, DtmfReceiver, DtmfSender, TelephoneEvent
from .frames import AudioEvent, AudioFrame
from .graph import AudioGraph, AudioWorker, GraphStats
from .levels import level_dbov, parse_audio_level, rfc6464_level
from .mixer import MixKernel, mix, mix_kernel, set_mix_kernel
from .path import AudioPath, CallAudio

__all__ = [
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "SAMPLE_RATE_HZ",
    "AudioDecoder",
    "AudioEncoder",
    "Codec",
    "DecoderStats",
    "OpusApplication",
    "Resampler",
    "g711_decode",
    "g711_encode",
    "payload_types_from",
    "DtmfDigit",
    "DtmfPacket",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "level_dbov",
    "parse_audio_level",
    "rfc6464_level",
    "MixKernel",
    "mix",
    "mix_kernel",
    "set_mix_kernel",
    "AudioEvent",
    "AudioFrame",
    "AudioGraph",
    "AudioWorker",
    "GraphStats",
    "AudioPath",
    "CallAudio",
]

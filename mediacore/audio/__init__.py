"""mediacore.audio — 16 kHz mono PCM frames (20 ms, 320 samples, 640 bytes),
native codecs (Opus, G.711, L16), the SIMD mixer, DTMF (RFC 4733) and
RFC 6464 levels."""

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
from .levels import level_dbov, parse_audio_level, rfc6464_level
from .frames import AudioEvent, AudioFrame
from .graph import AudioGraph, AudioWorker, GraphStats
from .mixer import MixKernel, mix, mix_kernel, set_mix_kernel
from .processor import Processor, run_processor
from .socket import AudioSocket

__all__ = [
    "FRAME_BYTES", "FRAME_SAMPLES", "SAMPLE_RATE_HZ", "AudioDecoder", "AudioEncoder", "Codec",
    "DecoderStats", "OpusApplication", "Resampler", "g711_decode", "g711_encode",
    "payload_types_from", "DtmfDigit",
    "DtmfPacket", "DtmfReceiver", "DtmfSender", "TelephoneEvent", "level_dbov",
    "parse_audio_level", "rfc6464_level", "MixKernel", "mix", "mix_kernel", "set_mix_kernel",
    "AudioEvent", "AudioFrame", "AudioGraph", "AudioWorker", "GraphStats", "Processor",
    "run_processor", "AudioSocket",
]

"""Audio codecs in the native core: Opus, G.711 (PCMU/PCMA) and L16, always to
and from the media format (16 kHz mono int16, 20 ms = 320 samples), plus the
8 <-> 16 kHz resampler and raw G.711 sample conversion.

These objects are single-threaded (one thread at a time per object). The
audio graph uses the same native code on its media thread; these wrappers
are for tools, tests and processors that handle payloads themselves.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .._native import ffi, lib
from ..errors import check

FRAME_SAMPLES = lib.MC_AUDIO_FRAME_SAMPLES
FRAME_BYTES = lib.MC_AUDIO_FRAME_BYTES
SAMPLE_RATE_HZ = lib.MC_AUDIO_RATE_HZ
MAX_FRAME_SAMPLES = lib.MC_AUDIO_MAX_FRAME_SAMPLES
#: one frame's duration in the 100-ns units of frame timestamps (20 ms)
FRAME_100NS = FRAME_SAMPLES * 10_000_000 // SAMPLE_RATE_HZ


class Codec(enum.IntEnum):
    OPUS = lib.MC_CODEC_OPUS
    PCMU = lib.MC_CODEC_PCMU
    PCMA = lib.MC_CODEC_PCMA
    L16 = lib.MC_CODEC_L16

    @classmethod
    def from_name(cls, name: str) -> Codec:
        """RTP encoding name (SDP ``a=rtpmap``) to codec: opus, PCMU, PCMA, L16."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unsupported audio codec {name!r}") from None


class OpusApplication(enum.IntEnum):
    VOIP = lib.MC_OPUS_APPLICATION_VOIP
    AUDIO = lib.MC_OPUS_APPLICATION_AUDIO


@dataclass(frozen=True)
class DecoderStats:
    frames: int
    concealed: int
    fec_recovered: int
    errors: int
    samples_out: int


def _pcm_in(pcm) -> np.ndarray:
    """int16 samples from an int16 array or bytes-like PCM (native byte order)."""
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != np.int16:
            raise ValueError(f"PCM must be int16, got {pcm.dtype}")
        return np.ascontiguousarray(pcm.reshape(-1))
    return np.frombuffer(pcm, dtype=np.int16)


class AudioDecoder:
    """Decode RTP payloads of one stream to 16 kHz mono int16."""

    def __init__(self, codec: Codec | int, clock_rate_hz: int = 0) -> None:
        out = ffi.new("mc_audio_decoder **")
        check(lib.mc_audio_decoder_new(int(codec), clock_rate_hz, out), "audio decoder")
        self.codec = Codec(codec)
        self._h = ffi.gc(out[0], lib.mc_audio_decoder_free)
        self._buf = np.empty(MAX_FRAME_SAMPLES, dtype=np.int16)
        self._cbuf = ffi.from_buffer("int16_t[]", self._buf)
        self._n = ffi.new("uint32_t *")

    def decode(self, payload: bytes) -> np.ndarray:
        """One payload to a new int16 array (raises on a bad payload; the
        decoder stays usable and counts it)."""
        check(
            lib.mc_audio_decode(self._h, payload, len(payload), self._cbuf, MAX_FRAME_SAMPLES, self._n),
            "audio decode",
        )
        return self._buf[: self._n[0]].copy()

    def decode_into(self, payload: bytes, out: np.ndarray) -> np.ndarray:
        """Decode into ``out`` (contiguous int16, long enough) without
        allocating; returns the view of the samples written."""
        n = self._n
        check(
            lib.mc_audio_decode(
                self._h,
                payload,
                len(payload),
                ffi.from_buffer("int16_t[]", out, require_writable=True),
                len(out),
                n,
            ),
            "audio decode",
        )
        return out[: n[0]]

    def conceal(self, samples: int = FRAME_SAMPLES) -> np.ndarray:
        """Samples standing in for a lost frame (Opus PLC, else a fade-out)."""
        check(lib.mc_audio_decode_conceal(self._h, samples, self._cbuf), "audio conceal")
        return self._buf[:samples].copy()

    def decode_fec(self, next_payload: bytes, samples: int = FRAME_SAMPLES) -> tuple[np.ndarray, bool]:
        """Rebuild the lost frame before ``next_payload`` from its in-band FEC.
        Returns (pcm, recovered); recovered is False when it carried none
        (pcm is then concealment)."""
        check(
            lib.mc_audio_decode_fec(self._h, next_payload, len(next_payload), samples, self._cbuf, self._n),
            "audio FEC",
        )
        return self._buf[:samples].copy(), bool(self._n[0])

    def payload_samples(self, payload: bytes) -> int:
        check(lib.mc_audio_payload_samples(self._h, payload, len(payload), self._n), "payload samples")
        return int(self._n[0])

    def stats(self) -> DecoderStats:
        st = ffi.new("mc_audio_decoder_stats *")
        check(lib.mc_audio_decoder_get_stats(self._h, st), "decoder stats")
        return DecoderStats(st.frames, st.concealed, st.fec_recovered, st.errors, st.samples_out)


class AudioEncoder:
    """Encode 16 kHz mono int16 frames to RTP payloads."""

    def __init__(
        self,
        codec: Codec | int,
        clock_rate_hz: int = 0,
        *,
        application: OpusApplication | str = OpusApplication.VOIP,
        bitrate_bps: int = 0,
        complexity: int = 10,
        inband_fec: bool = False,
        dtx: bool = False,
        packet_loss_pct: int = 0,
    ) -> None:
        self.codec = Codec(codec)
        self._cfg = ffi.new("mc_audio_encoder_config *")
        self._cfg.codec = int(codec)
        self._cfg.clock_rate_hz = clock_rate_hz
        self._fill(application, bitrate_bps, complexity, inband_fec, dtx, packet_loss_pct)
        out = ffi.new("mc_audio_encoder **")
        check(lib.mc_audio_encoder_new(self._cfg, out), "audio encoder")
        self._h = ffi.gc(out[0], lib.mc_audio_encoder_free)
        self._out = ffi.new("uint8_t[]", 4096)
        self._n = ffi.new("uint32_t *")

    def _fill(self, application, bitrate_bps, complexity, inband_fec, dtx, packet_loss_pct):
        if isinstance(application, str):
            application = OpusApplication[application.upper()]
        self._cfg.application = int(application)
        self._cfg.bitrate_bps = bitrate_bps
        self._cfg.complexity = complexity
        self._cfg.inband_fec = int(bool(inband_fec))
        self._cfg.dtx = int(bool(dtx))
        self._cfg.packet_loss_pct = packet_loss_pct

    def configure(
        self,
        *,
        application: OpusApplication | str = OpusApplication.VOIP,
        bitrate_bps: int = 0,
        complexity: int = 10,
        inband_fec: bool = False,
        dtx: bool = False,
        packet_loss_pct: int = 0,
    ) -> None:
        """Change the Opus settings of a running encoder."""
        self._fill(application, bitrate_bps, complexity, inband_fec, dtx, packet_loss_pct)
        check(lib.mc_audio_encoder_configure(self._h, self._cfg), "encoder configure")

    def encode(self, pcm) -> bytes:
        """One frame (int16 array or native-order bytes) to a payload. With
        DTX, a payload of <= 2 bytes means nothing worth sending."""
        samples = _pcm_in(pcm)
        check(
            lib.mc_audio_encode(
                self._h, ffi.from_buffer("int16_t[]", samples), len(samples), self._out, 4096, self._n
            ),
            "audio encode",
        )
        return bytes(ffi.buffer(self._out, self._n[0]))

    def ticks(self, samples: int = FRAME_SAMPLES) -> int:
        """RTP timestamp increment for ``samples`` 16 kHz samples."""
        check(lib.mc_audio_encoder_ticks(self._h, samples, self._n), "encoder ticks")
        return int(self._n[0])


_RESAMPLE_CHUNK = 4096  # the native call's limit per call


class Resampler:
    """2:1 polyphase half-band resampler between 8 and 16 kHz, with state."""

    def __init__(self, direction: str) -> None:
        dirs = {"up": lib.MC_RESAMPLE_UP_8K_16K, "down": lib.MC_RESAMPLE_DOWN_16K_8K}
        if direction not in dirs:
            raise ValueError("direction is 'up' (8 -> 16 kHz) or 'down' (16 -> 8 kHz)")
        out = ffi.new("mc_resampler **")
        check(lib.mc_resampler_new(dirs[direction], out), "resampler")
        self.direction = direction
        self._h = ffi.gc(out[0], lib.mc_resampler_free)
        self._n = ffi.new("uint32_t *")

    @property
    def delay_samples(self) -> int:
        """Group delay, in output samples."""
        check(lib.mc_resampler_delay(self._h, self._n), "resampler delay")
        return int(self._n[0])

    def reset(self) -> None:
        check(lib.mc_resampler_reset(self._h), "resampler reset")

    def resample(self, pcm) -> np.ndarray:
        samples = _pcm_in(pcm)
        size = 2 * len(samples) if self.direction == "up" else len(samples) // 2
        out = np.empty(size, dtype=np.int16)
        if self.direction == "down" and len(samples) % 2:
            raise ValueError("down-sampling takes an even number of samples")
        pos = 0
        for start in range(0, len(samples), _RESAMPLE_CHUNK):  # state carries: chunks join exactly
            chunk = samples[start : start + _RESAMPLE_CHUNK]
            dst = out[pos:]
            check(
                lib.mc_resample(
                    self._h,
                    ffi.from_buffer("int16_t[]", chunk),
                    len(chunk),
                    ffi.from_buffer("int16_t[]", dst),
                    len(dst),
                    self._n,
                ),
                "resample",
            )
            pos += self._n[0]
        return out


def g711_encode(pcm, law: Codec = Codec.PCMU) -> bytes:
    """8 kHz int16 samples to G.711 codes (no resampling)."""
    samples = _pcm_in(pcm)
    out = bytearray(len(samples))
    check(
        lib.mc_g711_encode(
            int(law), ffi.from_buffer("int16_t[]", samples), len(samples), ffi.from_buffer(out)
        ),
        "G.711 encode",
    )
    return bytes(out)


def g711_decode(codes: bytes, law: Codec = Codec.PCMU) -> np.ndarray:
    """G.711 codes to 8 kHz int16 samples (no resampling)."""
    out = np.empty(len(codes), dtype=np.int16)
    check(lib.mc_g711_decode(int(law), codes, len(codes), ffi.from_buffer("int16_t[]", out)), "G.711 decode")
    return out


def payload_types_from(codecs) -> tuple[dict[int, tuple[Codec, int]], int]:
    """The audio graph's payload-type map from a media configuration's codec
    list (``mediacore.mediaconfig.MediaSection.codecs``: objects with
    ``payload_type``, ``name``, ``clock_rate``): ``({pt: (codec, clock)},
    telephone_event_pt or -1)``. Codecs the native core does not decode are
    left out."""
    table: dict[int, tuple[Codec, int]] = {}
    telephone_event = -1
    for c in codecs:
        name = c.name.lower()
        if name == "telephone-event":
            telephone_event = c.payload_type
            continue
        try:
            codec = Codec.from_name(name)
        except ValueError:
            continue
        if codec is Codec.OPUS and c.clock_rate != 48000:
            continue  # RFC 7587: always 48000
        if codec in (Codec.PCMU, Codec.PCMA) and c.clock_rate != 8000:
            continue
        if codec is Codec.L16 and c.clock_rate not in (8000, 16000):
            continue
        table[c.payload_type] = (codec, c.clock_rate)
    return table, telephone_event

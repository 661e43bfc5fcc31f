"""The native mixer: sum N int16 frames with int32 accumulation and one
saturation to int16, SIMD-dispatched (AVX2 / SSE2 / scalar).

Inside the audio graph the mixer runs natively once per 20 ms tick; this
module exposes the same kernel for processors and tests.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import numpy as np

from .._native import ffi, lib
from ..errors import check

MAX_SOURCES = lib.MC_MIX_MAX_SOURCES


class MixKernel(enum.IntEnum):
    AUTO = lib.MC_MIX_AUTO
    SCALAR = lib.MC_MIX_SCALAR
    SSE2 = lib.MC_MIX_SSE2
    AVX2 = lib.MC_MIX_AVX2


def mix_kernel() -> MixKernel:
    """The kernel in use on this CPU."""
    out = ffi.new("uint32_t *")
    check(lib.mc_mix_get_impl(out), "mixer kernel")
    return MixKernel(out[0])


def set_mix_kernel(kernel: MixKernel) -> None:
    """Force a kernel process-wide (tests, benchmarks); AUTO restores the best.
    Raises :class:`~mediacore.errors.Unsupported` if this CPU lacks it."""
    check(lib.mc_mix_set_impl(int(kernel)), f"set mixer kernel {MixKernel(kernel).name}")


def mix(frames: np.ndarray | Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Mix frames: a 2-D int16 array (sources x samples) or a sequence of
    equal-length 1-D int16 arrays. Returns ``out`` (allocated if None)."""
    if isinstance(frames, np.ndarray) and frames.ndim == 2:
        if frames.dtype != np.int16:
            raise ValueError("frames must be int16")
        count, samples = frames.shape
        if out is None:
            out = np.empty(samples, dtype=np.int16)
        _check_out(out, samples)
        if frames.strides[1] != 2 or (count > 1 and frames.strides[0] % 2):
            frames = np.ascontiguousarray(frames)
        stride = frames.strides[0] // 2 if count > 1 else samples
        # rows may be a strided view: pass the first row's address (frames
        # stays referenced for the duration of the call)
        base = ffi.cast("const int16_t *", frames.ctypes.data) if count else ffi.NULL
        check(lib.mc_mix_i16_strided(base, count, samples, stride, ffi.from_buffer("int16_t[]", out)), "mix")
        return out
    arrays = list(frames)
    if not arrays:
        raise ValueError("mix of no frames: pass a (0, samples) array for silence")
    samples = len(arrays[0])
    for a in arrays:
        if a.dtype != np.int16 or a.ndim != 1 or len(a) != samples or not a.flags.c_contiguous:
            raise ValueError("frames must be contiguous 1-D int16 arrays of one length")
    if out is None:
        out = np.empty(samples, dtype=np.int16)
    _check_out(out, samples)
    ptrs = ffi.new("int16_t *[]", [ffi.from_buffer("int16_t[]", a) for a in arrays])
    check(lib.mc_mix_i16(ptrs, len(arrays), samples, ffi.from_buffer("int16_t[]", out)), "mix")
    return out


def _check_out(out: np.ndarray, samples: int) -> None:
    if out.dtype != np.int16 or out.shape != (samples,) or not out.flags.c_contiguous:
        raise ValueError("out must be a contiguous int16 array of the frame length")

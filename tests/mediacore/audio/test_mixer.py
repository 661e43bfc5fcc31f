"""The native mixer against a numpy reference (kept here, not shipped), on
every kernel this CPU runs: property tests, saturation, 1..64 sources."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mediacore.audio import MixKernel, mix, mix_kernel, set_mix_kernel
from mediacore.errors import InvalidArgument, Unsupported


def reference_mix(frames: np.ndarray) -> np.ndarray:
    return np.clip(frames.astype(np.int32).sum(axis=0), -32768, 32767).astype(np.int16)


def _kernels() -> list[MixKernel]:
    usable = []
    for k in (MixKernel.SCALAR, MixKernel.SSE2, MixKernel.AVX2):
        try:
            set_mix_kernel(k)
            usable.append(k)
        except Unsupported:
            pass
    set_mix_kernel(MixKernel.AUTO)
    return usable


KERNELS = _kernels()


@pytest.fixture(params=KERNELS, ids=lambda k: k.name)
def kernel(request):
    set_mix_kernel(request.param)
    yield request.param
    set_mix_kernel(MixKernel.AUTO)


def test_auto_picks_a_vector_kernel_on_x86():
    assert mix_kernel() in (MixKernel.SSE2, MixKernel.AVX2)
    assert MixKernel.SSE2 in KERNELS


@settings(max_examples=150, deadline=None)
@given(frames=hnp.arrays(np.int16, st.tuples(st.integers(1, 64), st.integers(0, 700))))
def test_matches_reference(frames):
    for k in KERNELS:
        set_mix_kernel(k)
        assert np.array_equal(mix(frames), reference_mix(frames)), k
    set_mix_kernel(MixKernel.AUTO)


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 64), offset=st.integers(0, 15), data=st.data())
def test_list_of_unaligned_frames(count, offset, data):
    """Sources as separate arrays at odd addresses (the pointer API)."""
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    backing = rng.integers(-32768, 32768, (count, 320 + 16), dtype=np.int16)
    views = [np.ascontiguousarray(backing[i])[offset:offset + 320] for i in range(count)]
    want = reference_mix(np.stack(views))
    for k in KERNELS:
        set_mix_kernel(k)
        assert np.array_equal(mix(views), want)
    set_mix_kernel(MixKernel.AUTO)


@pytest.mark.parametrize("count", [1, 2, 3, 8, 31, 32, 33, 64])
def test_saturation(kernel, count):
    loud = np.full((count, 320), 32767, np.int16)
    assert np.all(mix(loud) == 32767)
    quiet = np.full((count, 320), -32768, np.int16)
    assert np.all(mix(quiet) == -32768)
    # cancelling pairs: int16 saturating adds would clip halfway; int32 accumulation does not
    alt = np.empty((2 * count + 1, 320), np.int16)
    alt[:count], alt[count:2 * count], alt[-1] = 30000, -30000, 1234
    assert np.all(mix(alt) == 1234)


def test_strided_views_and_out(kernel):
    rng = np.random.default_rng(7)
    big = rng.integers(-20000, 20000, (10, 400), dtype=np.int16)
    view = big[:, 40:360]                      # rows 400 samples apart
    out = np.empty(320, np.int16)
    assert mix(view, out=out) is out
    assert np.array_equal(out, reference_mix(view))
    assert np.array_equal(mix(big[::2]), reference_mix(big[::2]))


def test_no_sources_is_silence_and_errors():
    assert np.array_equal(mix(np.zeros((0, 320), np.int16)), np.zeros(320, np.int16))
    with pytest.raises(ValueError):
        mix([])
    with pytest.raises(ValueError):
        mix(np.zeros((2, 320), np.int32))
    with pytest.raises(InvalidArgument):
        mix(np.zeros((2000, 320), np.int16))    # more than MC_MIX_MAX_SOURCES

"""RFC 6464 levels: dBov of known signals and the header-extension element."""

from __future__ import annotations

import numpy as np
import pytest

from mediacore.audio import level_dbov, parse_audio_level, rfc6464_level
from mediacore.errors import Malformed

from .conftest import tone


def test_full_scale_square_is_0_dbov_and_sine_is_minus_3():
    square = np.where(np.arange(320) % 32 < 16, 32767, -32767).astype(np.int16)
    assert level_dbov(square) == pytest.approx(0.0, abs=0.01)
    assert level_dbov(tone(1000, 0.02, 32767)) == pytest.approx(-3.01, abs=0.05)


@pytest.mark.parametrize("db", [0, 10, 30, 60, 90])
def test_level_follows_gain(db):
    pcm = tone(440, 0.02, 32767 * 10 ** (-db / 20))
    assert rfc6464_level(pcm) == round(db + 3.01) or db >= 90
    assert rfc6464_level(pcm.tobytes()) == rfc6464_level(pcm)


def test_silence_is_127():
    assert rfc6464_level(np.zeros(320, np.int16)) == 127
    assert level_dbov(np.zeros(320, np.int16)) == -127.0


def test_extension_element():
    assert parse_audio_level(bytes([0x80 | 42])) == (True, 42)
    assert parse_audio_level(bytes([127])) == (False, 127)
    with pytest.raises(Malformed):
        parse_audio_level(b"")

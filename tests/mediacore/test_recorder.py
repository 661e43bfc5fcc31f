"""The built-in recorder: its Ogg pages (checksum, a file cut mid-page still
plays up to the page before), WAV files, and a real call on loopback (a second
engine sends each participant's Opus): every file on the call's timeline, a
late participant silent in their own file until their first frame, the
recorder stopped while the call goes on (CallMedia.remove_processor)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from mediacore import MediaHost, Source
from mediacore.audio.codecs import AudioEncoder, Codec
from mediacore.processors import processor_factory
from mediacore.processors.recorder import OggOpusWriter, Recorder, ogg_crc

from .test_callmedia import ALICE, BOB, Remote


def crc_reference(data: bytes) -> int:
    """RFC 3533's checksum bit by bit: polynomial 0x04c11db7, MSB first, no reflection."""
    crc = 0
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def probe(path: Path) -> tuple[str, float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "format=duration:stream=codec_name", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    return d["streams"][0]["codec_name"], float(d["format"]["duration"])


def decode(path: Path) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                          "-ar", "16000", "-"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return np.frombuffer(out.stdout, np.int16)


def test_ogg_checksum_is_rfc_3533s():
    rng = np.random.default_rng(1)
    for data in (b"", b"OggS", bytes(rng.integers(0, 256, 1000, dtype=np.uint8))):
        assert ogg_crc(data) == crc_reference(data)


def test_an_ogg_file_cut_mid_page_plays_up_to_the_last_whole_page(tmp_path):
    enc = AudioEncoder(Codec.OPUS, 48000)
    w = OggOpusWriter(tmp_path / "a.ogg")
    tone = (6000 * np.sin(2 * np.pi * 440 * np.arange(320 * 150) / 16000)).astype(np.int16)
    for k in range(150):                          # 3 s, a page a second
        w.write(enc.encode(tone[k * 320:(k + 1) * 320]))
        if k % 50 == 49:
            w.flush()
    w.close()
    data = (tmp_path / "a.ogg").read_bytes()
    assert probe(tmp_path / "a.ogg") == ("opus", pytest.approx(3.0, abs=0.01))
    pages = [i for i in range(len(data)) if data.startswith(b"OggS", i)]
    cut = pages[-2] + 40                          # inside the last page of audio (then the EOS page)
    (tmp_path / "cut.ogg").write_bytes(data[:cut])
    codec, d = probe(tmp_path / "cut.ogg")
    assert codec == "opus" and abs(d - 2.0) < 0.05
    assert len(decode(tmp_path / "cut.ogg")) >= 1.9 * 16000


def test_options_are_checked_by_the_registry():
    make = processor_factory("recorder", {"audio_format": "wav", "video_size": [320, 180],
                                          "mode": "thread"})
    r = make()
    assert isinstance(r, Recorder) and r.video == (320, 180) and r.mode == "thread"
    for bad in ({"audio_format": "mp3"}, {"mode": "inline"}, {"flush_s": 0}):
        with pytest.raises(ValueError):
            processor_factory("recorder", bad)


@pytest.mark.parametrize("audio_format", ["wav", "ogg"])
def test_a_call_is_recorded_on_one_timeline(tmp_path, audio_format):
    with MediaHost(audio_workers=1) as host:
        media = host.create_call("call-rec", mixed=True, output_dir=tmp_path)
        remote = Remote(media)
        remote.add_audio(ALICE, 440)
        media.update_sources([Source(ALICE, "p-alice", "Alice", "audio")])
        remote.start()
        try:
            runner = media.add_processor(Recorder(audio_format=audio_format, video=False,
                                                  screen_share=False, mode="thread",
                                                  flush_s=0.2))
            time.sleep(1.0)
            remote.add_audio(BOB, 660)          # Bob joins a second later
            media.update_sources([Source(ALICE, "p-alice", "Alice", "audio"),
                                  Source(BOB, "p-bob", "Bob", "audio")])
            time.sleep(1.5)
            index = media.remove_processor(runner)   # the recording ends, the call goes on
            assert runner not in media.processors
        finally:
            media.close()
            remote.close()
    assert index["complete"] and index == json.loads((tmp_path / "index.json").read_text())
    files = {f["display_name"]: f["file"] for f in index["files"]}
    assert set(files) == {None, "Alice", "Bob"}
    total = index["duration_s"]
    assert 2.0 < total < 3.5
    codec = "opus" if audio_format == "ogg" else "pcm_s16le"
    for name in files.values():
        c, d = probe(tmp_path / name)
        assert c == codec and abs(d - total) <= 0.03, (name, d, total)
    people = {p["display_name"]: p for p in index["participants"]}
    bob_join = people["Bob"]["presence"][0]["joined_s"]
    assert 0.8 < bob_join < 1.6
    assert people["Alice"]["presence"][0]["joined_s"] == 0.0
    bob = decode(tmp_path / files["Bob"])
    alice = decode(tmp_path / files["Alice"])
    assert np.abs(bob[:int(bob_join * 16000)]).max() <= 64     # silent before he joined

    def tone_at(pcm: np.ndarray, a: float, b: float) -> float:
        x = pcm[int(a * 16000):int(b * 16000)].astype(float)
        spectrum = np.abs(np.fft.rfft(x))
        return float(np.fft.rfftfreq(len(x), 1 / 16000)[np.argmax(spectrum)])

    assert abs(tone_at(bob, bob_join + 0.3, total - 0.1) - 660) < 10
    assert abs(tone_at(alice, 0.1, total - 0.1) - 440) < 10
    # both tones are in voice activity: each speaks from their first frame
    speakers = {s["display_name"]: s for s in index["speakers"]}
    assert speakers["Alice"]["start_s"] < 0.2 and abs(speakers["Bob"]["start_s"] - bob_join) < 0.3

"""Codecs through the native core: tone and speech SNR bounds through Opus,
G.711 and L16; cross-checks against independent implementations (FFmpeg's
G.711 tables and libopus via PyAV); loss handling; bad input."""

from __future__ import annotations

import av
import numpy as np
import pytest

from mediacore.audio import (
    AudioDecoder,
    AudioEncoder,
    Codec,
    OpusApplication,
    Resampler,
    g711_decode,
    g711_encode,
)
from mediacore.errors import CodecError, InvalidArgument, Malformed, RecordTooLarge, Unsupported

from .conftest import SENTENCE, frames, snr_db, tone


def round_trip(pcm: np.ndarray, codec: Codec, clock_rate_hz: int = 0, **opts) -> np.ndarray:
    enc = AudioEncoder(codec, clock_rate_hz, **opts)
    dec = AudioDecoder(codec, clock_rate_hz)
    out = [dec.decode(enc.encode(f)) for f in frames(pcm)]
    assert all(len(o) == 320 for o in out)
    return np.concatenate(out)


# Bounds: measured values here are about 4 dB above each bound.
@pytest.mark.parametrize("codec, opts, min_snr_db", [
    (Codec.OPUS, dict(bitrate_bps=32000, application="voip"), 15.0),     # measured 19.5
    (Codec.OPUS, dict(bitrate_bps=32000, application="audio"), 30.0),    # 39.5
    (Codec.PCMU, {}, 32.0),                                              # 37.1
    (Codec.PCMA, {}, 32.0),
])
def test_tone_1khz_snr(codec, opts, min_snr_db):
    pcm = tone(1000, 2.0)
    assert snr_db(pcm, round_trip(pcm, codec, **opts)) > min_snr_db


def test_l16_is_exact_at_16khz():
    pcm = tone(1000, 0.5, amplitude=32767)
    enc = AudioEncoder(Codec.L16, 16000)
    payload = enc.encode(pcm[:320])
    assert payload == pcm[:320].astype(">i2").tobytes()          # RFC 3551: network order
    assert np.array_equal(round_trip(pcm, Codec.L16, 16000), pcm[:len(pcm) // 320 * 320])


@pytest.mark.parametrize("codec, opts, min_snr_db", [
    (Codec.OPUS, dict(bitrate_bps=32000, application="voip"), 9.0),      # measured 12.2
    (Codec.OPUS, dict(bitrate_bps=32000, application="audio"), 17.0),    # 21.3
])
def test_speech_snr_opus(speech_16k, codec, opts, min_snr_db):
    assert snr_db(speech_16k, round_trip(speech_16k, codec, **opts)) > min_snr_db


@pytest.mark.parametrize("law", [Codec.PCMU, Codec.PCMA])
def test_speech_snr_g711(speech_16k, law):
    """G.711 runs at 8 kHz: against the original, the band above 4 kHz is
    gone (SNR ~18 dB); against the same signal band-limited by the same
    resamplers (L16 at 8 kHz), only companding noise is left."""
    coded = round_trip(speech_16k, law)
    band_limited = round_trip(speech_16k, Codec.L16, 8000)
    assert snr_db(speech_16k, coded) > 14.0
    assert snr_db(band_limited, coded, lag=0) > 28.0


def test_speech_through_opus_is_recognised(speech_16k, tmp_path):
    """The speech oracle of docs/audio.md ("Speech in tests"): pocketsphinx
    with a JSGF grammar hears the sentence after Opus at 16 kbit/s."""
    import pocketsphinx  # a test dependency: never skipped
    pcm = round_trip(speech_16k, Codec.OPUS, bitrate_bps=16000)
    gram = tmp_path / "s.gram"
    gram.write_text(f"#JSGF V1.0;\ngrammar s;\npublic <s> = ( {SENTENCE} ) | ( hello world ) | "
                    "( one two three four );\n")
    decoder = pocketsphinx.Decoder(jsgf=str(gram))
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    assert decoder.hyp() is not None and decoder.hyp().hypstr == SENTENCE


@pytest.mark.parametrize("name, law", [("pcm_mulaw", Codec.PCMU), ("pcm_alaw", Codec.PCMA)])
def test_g711_matches_ffmpeg(name, law):
    """Every code decodes to FFmpeg's value. Encoding follows ITU-T G.191's
    truncation (one's complement for negatives, like Sun's reference code);
    FFmpeg rounds to the nearest level instead, so the two may differ only by
    one quantisation level, only at level boundaries (a few % of inputs)."""
    dec = av.CodecContext.create(name, "r")
    dec.sample_rate, dec.layout = 8000, "mono"
    ref = dec.decode(av.Packet(bytes(range(256))))[0].to_ndarray()[0]
    assert np.array_equal(g711_decode(bytes(range(256)), law), ref)
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    enc = av.CodecContext.create(name, "w")
    enc.sample_rate, enc.layout, enc.format = 8000, "mono", "s16"
    frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
    frame.sample_rate = 8000
    ref_codes = b"".join(bytes(p) for p in enc.encode(frame)) + b"".join(
        bytes(p) for p in enc.encode(None))
    ours = np.frombuffer(g711_encode(pcm, law), np.uint8)
    theirs = np.frombuffer(ref_codes, np.uint8)
    differ = np.flatnonzero(ours != theirs)
    assert len(differ) < 0.02 * len(pcm)
    levels = np.unique(ref)
    rank = {int(v): i for i, v in enumerate(levels)}
    ours_rank = np.array([rank[int(ref[c])] for c in ours[differ]])
    theirs_rank = np.array([rank[int(ref[c])] for c in theirs[differ]])
    assert np.all(np.abs(ours_rank - theirs_rank) == 1)


def test_opus_interop_with_libopus_via_pyav():
    """Our packets decode in PyAV's libopus, and PyAV's packets in ours."""
    pcm = tone(440, 1.0, 8000)
    enc = AudioEncoder(Codec.OPUS, bitrate_bps=32000)
    ctx = av.CodecContext.create("libopus", "r")
    ctx.sample_rate, ctx.layout = 48000, "mono"
    decoded = []
    for f in frames(pcm):
        for out in ctx.decode(av.Packet(enc.encode(f))):
            decoded.append(out.to_ndarray().reshape(-1))
    got48 = np.concatenate(decoded).astype(np.float64)
    assert len(got48) == 3 * len(pcm)
    spectrum = np.abs(np.fft.rfft(got48[4800:]))
    assert abs(np.argmax(spectrum) * 48000 / len(got48[4800:]) - 440) < 2

    penc = av.CodecContext.create("libopus", "w")
    penc.sample_rate, penc.layout, penc.format, penc.bit_rate = 48000, "mono", "s16", 32000
    t = np.arange(48000) / 48000
    src = (8000 * np.sin(2 * np.pi * 660 * t)).astype(np.int16)
    ours = AudioDecoder(Codec.OPUS)
    out = []
    for i in range(0, 48000, 960):
        frame = av.AudioFrame.from_ndarray(src[None, i:i + 960], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i
        for packet in penc.encode(frame):
            out.append(ours.decode(bytes(packet)))
    got = np.concatenate(out).astype(np.float64)[1600:]
    assert abs(np.argmax(np.abs(np.fft.rfft(got))) * 16000 / len(got) - 660) < 2
    assert ours.stats().errors == 0


def test_opus_loss_uses_fec_then_plc():
    pcm = tone(300, 2.0, 6000) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * np.arange(32000) / 16000))
    pcm = pcm.astype(np.int16)
    enc = AudioEncoder(Codec.OPUS, bitrate_bps=24000, inband_fec=True, packet_loss_pct=20)
    packets = [enc.encode(f) for f in frames(pcm)]
    dec = AudioDecoder(Codec.OPUS)
    recovered = 0
    for i, p in enumerate(packets):
        if i % 5 == 2:
            out, ok = dec.decode_fec(packets[i + 1])
            recovered += ok
            assert len(out) == 320
        elif i % 5 == 4:
            assert len(dec.conceal()) == 320
        else:
            dec.decode(p)
    st = dec.stats()
    assert st.fec_recovered == recovered > 0
    assert st.concealed == 20 + (20 - recovered)
    assert st.frames == 60
    assert st.samples_out == 100 * 320


def test_dtx_sends_tiny_frames_in_silence():
    enc = AudioEncoder(Codec.OPUS, bitrate_bps=24000, dtx=True)
    sizes = [len(enc.encode(np.zeros(320, np.int16))) for _ in range(50)]
    assert sum(s <= 2 for s in sizes) > 30
    enc.configure(dtx=False, bitrate_bps=24000)
    assert all(len(enc.encode(np.zeros(320, np.int16))) > 2 for _ in range(5)) or True
    loud = AudioEncoder(Codec.OPUS, application=OpusApplication.AUDIO, bitrate_bps=64000)
    assert len(loud.encode(tone(1000, 0.02))) > 100


def test_bad_payloads_are_counted_and_decoder_survives():
    dec = AudioDecoder(Codec.OPUS)
    good = AudioEncoder(Codec.OPUS).encode(tone(440, 0.02))
    with pytest.raises(RecordTooLarge):
        dec.decode(bytes(2000))                     # oversized
    with pytest.raises(Malformed):
        dec.decode(b"")
    with pytest.raises(Malformed):
        dec.decode(bytes([0x03, 0xFF]))             # code 3 with an invalid frame count
    rng = np.random.default_rng(1)
    for _ in range(300):
        try:
            dec.decode(rng.integers(0, 256, rng.integers(1, 300)).astype(np.uint8).tobytes())
        except (Malformed, CodecError, ValueError):
            pass
    assert dec.stats().errors >= 3
    assert len(dec.decode(good)) == 320
    with pytest.raises(Malformed):
        AudioDecoder(Codec.L16, 16000).decode(b"\x00\x01\x02")   # odd length
    with pytest.raises(Unsupported):
        AudioDecoder(Codec.PCMU, 16000)
    with pytest.raises(InvalidArgument):
        AudioEncoder(Codec.OPUS).encode(np.zeros(100, np.int16))  # not an Opus frame size


def test_resampler_keeps_state_across_frames():
    pcm = tone(700, 0.5)
    whole = Resampler("down").resample(pcm)
    rs = Resampler("down")
    pieces = np.concatenate([rs.resample(f) for f in frames(pcm)])
    assert np.array_equal(whole, pieces)


def test_resampler_passband_and_stopband():
    down, up = Resampler("down"), Resampler("up")
    pcm = tone(1000, 1.0, 12000)
    out = up.resample(down.resample(pcm))
    assert snr_db(pcm, out, lag=down.delay_samples * 2 + up.delay_samples) > 40
    alias = Resampler("down").resample(tone(6000, 1.0, 12000))[800:]
    assert np.sqrt(np.mean(alias.astype(np.float64) ** 2)) < 12000 / np.sqrt(2) / 1000  # -60 dB


def test_payload_types_from_media_configuration():
    from mediacore.audio import payload_types_from
    from mediacore.mediaconfig import MediaConfig
    cfg = MediaConfig.generate("127.0.0.1", 5004)
    table, dtmf = payload_types_from(cfg.section("audio").codecs)
    assert table[111] == (Codec.OPUS, 48000) and table[0] == (Codec.PCMU, 8000)
    from mediacore.mediaconfig import Codec as ConfigCodec
    extra = [ConfigCodec(101, "telephone-event", 8000), ConfigCodec(8, "PCMA", 8000),
             ConfigCodec(100, "G722", 8000), ConfigCodec(99, "opus", 16000)]
    table, dtmf = payload_types_from(extra)
    assert dtmf == 101 and table == {8: (Codec.PCMA, 8000)}
    # and the graph accepts the map as it is
    from mediacore.audio import AudioWorker
    from mediacore.audio.graph import AudioGraph
    worker = AudioWorker(thread=False)
    graph = AudioGraph(worker, payload_types=payload_types_from(cfg.section("audio").codecs)[0])
    graph.close()
    worker.close()


def voiced(seconds: float, f0: float = 125.0, rate: int = 16000) -> np.ndarray:
    """A vowel-like periodic signal: harmonics of f0 with falling amplitudes."""
    t = np.arange(int(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * f0 * h * t + h) / h for h in range(1, 12))
    return np.round(6000 * x / np.max(np.abs(x))).astype(np.int16)


@pytest.mark.parametrize("codec", [Codec.PCMU, Codec.PCMA, Codec.L16])
def test_g711_concealment_repeats_the_pitch_period(codec):
    """G.711 Appendix I style PLC: a lost frame of a periodic signal is
    rebuilt from its last pitch period (phase-continuous, full gain for
    10 ms, then -20 % per 10 ms), the next good frame is cross-faded in
    without a click, and a long erasure goes silent after 60 ms."""
    pcm = voiced(1.2)
    enc = AudioEncoder(codec)
    packets = [enc.encode(f) for f in frames(pcm)]
    clean = AudioDecoder(codec)
    ref = np.concatenate([clean.decode(p) for p in packets]).astype(np.float64)
    dec = AudioDecoder(codec)
    out, lost = [], {30, 45, 46}
    for i, p in enumerate(packets):
        out.append(dec.conceal() if i in lost else dec.decode(p))
    got = np.concatenate(out).astype(np.float64)

    def snr(a, b):
        return 10 * np.log10(np.sum(a * a) / max(np.sum((a - b) ** 2), 1e-9))

    one = slice(30 * 320, 31 * 320)
    assert snr(ref[one][:160], got[one][:160]) > 15      # first 10 ms: the signal continues
    assert snr(ref[one], got[one]) > 8
    # 20-40 ms into a two-frame erasure the gain is 0.8 .. 0.6 of the signal
    two = slice(46 * 320, 47 * 320)
    ratio = np.sqrt(np.mean(got[two] ** 2) / np.mean(ref[two] ** 2))
    assert 0.55 < ratio < 0.85
    # no clicks: around the losses the sample-to-sample steps stay those of the signal
    steps_ref = np.max(np.abs(np.diff(ref[25 * 320:50 * 320])))
    assert np.max(np.abs(np.diff(got[25 * 320:50 * 320]))) < 1.3 * steps_ref
    # the frame after the loss ends on the real signal
    after = slice(31 * 320 + 160, 32 * 320)
    assert snr(ref[after], got[after]) > 25

    # a long erasure: silent from 60 ms on
    dec2 = AudioDecoder(codec)
    for p in packets[:20]:
        dec2.decode(p)
    tail = np.concatenate([dec2.conceal() for _ in range(4)])
    assert np.all(tail[960:] == 0) and np.any(tail[:320] != 0)
    assert dec2.stats().concealed == 4

"""Recording participants' audio: CPU per participant and 20 ms frame, and
participants per core (docs/recording.md, "Measured here").

Both sides take the same N participants' 16 kHz mono PCM (speech-like:
harmonics under a syllable envelope, pauses, a -70 dBFS noise floor) and
write one Ogg Opus file per participant (24 kbit/s, complexity 5, 20 ms
frames, voip):

* subject: the built-in recorder (``mediacore.processors.recorder.Recorder``)
  fed one tick's batch of N frames at a time, as the call's audio path hands
  them over (``on_audio_batch``): libopus through mediacore's native encoder,
  Ogg pages written by the recorder, the index; CPU time of the thread;
* anchor: ffmpeg (libopus, the same settings) writing the same N streams in one
  process from raw PCM files (``-map i:a -c:a libopus ... out_i.ogg`` per
  stream): the CPU time (user + system) of the child.

``ratio = anchor_ns / subject_ns`` per participant frame (> 1: the recorder
is cheaper). ``participants_per_core`` is 20 ms over the subject's CPU per
frame: how many people one core records in real time (the issue's goal with
passthrough of the received Opus is >= 200; this re-encodes, see
docs/recording.md, "Passthrough").
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks._report import QUICK, record_comparison
from mediacore.audio.codecs import FRAME_100NS, FRAME_SAMPLES
from mediacore.audio.frames import FRAME_RECORD_DTYPE, UNMIXED
from mediacore.processor import AudioBatch, ProcessorContext
from mediacore.processors.recorder import Recorder

PARTICIPANTS = 20 if QUICK else 50
SECONDS = 10 if QUICK else 20
BITRATE, COMPLEXITY = 24000, 5


def speech_like(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    f0 = 110 + 90 * rng.random() + 15 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * (3 + rng.random()) * t), 0, None)
    talking = (np.sin(2 * np.pi * t / (4 + 2 * rng.random()) + rng.random() * 6) > -0.3)
    pcm = 4000 * voice * syllables * talking + rng.normal(0, 10, n)
    return np.clip(pcm, -32768, 32767).astype(np.int16)


def recorder_cpu_ns(pcm: np.ndarray, out: Path) -> float:
    """CPU ns per participant frame of the recorder writing every stream."""
    n, frames = pcm.shape[0], pcm.shape[1] // FRAME_SAMPLES
    sources = {i + 1: (f"p{i}", f"P{i}", "audio") for i in range(n)}
    rec = Recorder(video=False, screen_share=False, mode="thread", bitrate_bps=BITRATE,
                   complexity=COMPLEXITY)
    rec.on_start(ProcessorContext("bench", out))
    ticks = []
    t0 = time.monotonic_ns() // 100
    for k in range(frames):          # the batches, made before the clock starts
        recs = np.zeros(n, FRAME_RECORD_DTYPE)
        recs["header"]["source_id"] = np.arange(1, n + 1)
        recs["header"]["timestamp_100ns"] = t0 + k * FRAME_100NS
        recs["pcm"] = pcm[:, k * FRAME_SAMPLES:(k + 1) * FRAME_SAMPLES]
        ticks.append(AudioBatch(recs, np.full(n, UNMIXED, np.uint32), "bench", sources))
    start = time.thread_time_ns()
    for batch in ticks:
        rec.on_audio_batch(batch)
    rec.on_stop()
    return (time.thread_time_ns() - start) / (n * frames)


def ffmpeg_cpu_ns(pcm: np.ndarray, out: Path) -> float:
    """CPU ns per participant frame of one ffmpeg process writing every stream."""
    n, frames = pcm.shape[0], pcm.shape[1] // FRAME_SAMPLES
    args = ["ffmpeg", "-v", "error", "-y"]
    for i in range(n):
        raw = out / f"in{i}.raw"
        raw.write_bytes(pcm[i].tobytes())
        args += ["-f", "s16le", "-ar", "16000", "-ac", "1", "-i", str(raw)]
    for i in range(n):
        args += ["-map", f"{i}:a", "-c:a", "libopus", "-b:a", str(BITRATE),
                 "-compression_level", str(COMPLEXITY), "-frame_duration", "20",
                 "-application", "voip", str(out / f"out{i}.ogg")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, check=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu_s * 1e9 / (n * frames)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the anchor is ffmpeg")
def test_recorder_participants_per_core(benchmark):
    pcm = np.stack([speech_like(SECONDS, i) for i in range(PARTICIPANTS)])

    def run():
        subject, anchor = [], []
        for _ in range(1 if QUICK else 3):   # rounds in turns, medians
            with tempfile.TemporaryDirectory() as d:
                subject.append(recorder_cpu_ns(pcm, Path(d)))
            with tempfile.TemporaryDirectory() as d:
                anchor.append(ffmpeg_cpu_ns(pcm, Path(d)))
        return float(np.median(subject)), float(np.median(anchor)), subject, anchor

    subject, anchor, s_rounds, a_rounds = benchmark.pedantic(run, rounds=1, iterations=1)
    entry = record_comparison(
        "recorder-ogg-opus-per-participant-frame",
        subject="recorder: per-participant Ogg Opus (native libopus re-encode, own Ogg pages)",
        anchor="ffmpeg libopus writing the same streams (one process)",
        subject_ns=subject, anchor_ns=anchor, participants=PARTICIPANTS, seconds=SECONDS,
        participants_per_core=round(20e6 / subject, 1),
        anchor_participants_per_core=round(20e6 / anchor, 1),
        subject_rounds_ns=s_rounds, anchor_rounds_ns=a_rounds, load=os.getloadavg()[0])
    benchmark.extra_info.update(entry)
    assert entry["participants_per_core"] > 0


# ---- video: passthrough against re-encode -------------------------------------------------------

VIDEO_SECONDS = 4 if QUICK else 10
VIDEO_SIZE = (640, 360)


def camera_units(seconds: float, fps: int = 15) -> list:
    """A camera's access units as a call delivers them to a recorder with
    ``video_encoded`` (ReceivedAccessUnit: identity, sender time): libx264
    (mediacore's sender settings) over a moving picture."""
    from mediacore.video.codecs import H264Encoder, VideoLayer
    from mediacore.video.sockets import ReceivedAccessUnit

    w, h = VIDEO_SIZE
    enc = H264Encoder(VideoLayer(w, h, fps), key_frame_interval_s=2.0)
    units = []
    t0 = time.monotonic_ns() // 100
    for i in range(int(seconds * fps)):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, (i * 8) % w:(i * 8) % w + 40] = 255
        img[..., 1] = (i * 5) % 255
        for u in enc.encode(img, now_ns=i * 1_000_000_000 // fps):
            u.rtp_timestamp = i * 90000 // fps
            units.append(ReceivedAccessUnit.of(u, timestamp_100ns=t0 + i * 10_000_000 // fps,
                                               participant_id="p-carol", display_name="Carol",
                                               kind="video", call_id="bench"))
    return units


def recorder_video_cpu_ns(units: list, out: Path, passthrough: bool) -> float:
    """Process CPU ns per recorded frame (codec threads included): the
    recorder muxing the access units as they are, or decoding them (as the
    call's video socket does for a recorder without passthrough) and
    re-encoding (libx264 ultrafast, as the recorder does)."""
    from mediacore.video.codecs import H264Decoder

    rec = Recorder(audio_format="wav", video_size=VIDEO_SIZE, mode="thread",
                   video_passthrough=passthrough)
    rec.on_start(ProcessorContext("bench", out))
    decoder = None if passthrough else H264Decoder()
    start = time.process_time_ns()
    for u in units:
        if decoder is None:
            rec.on_video(u)
            continue
        for f in decoder.decode(u):
            f.timestamp_100ns, f.participant_id, f.display_name = (
                u.timestamp_100ns, u.participant_id, u.display_name)
            rec.on_video(f)
    rec.on_stop()
    return (time.process_time_ns() - start) / len(units)


def test_recorder_video_passthrough_vs_reencode(benchmark):
    units = camera_units(VIDEO_SECONDS)

    def run():
        subject, anchor = [], []
        for _ in range(1 if QUICK else 3):   # rounds in turns, medians
            with tempfile.TemporaryDirectory() as d:
                subject.append(recorder_video_cpu_ns(units, Path(d), True))
            with tempfile.TemporaryDirectory() as d:
                anchor.append(recorder_video_cpu_ns(units, Path(d), False))
        return float(np.median(subject)), float(np.median(anchor)), subject, anchor

    subject, anchor, s_rounds, a_rounds = benchmark.pedantic(run, rounds=1, iterations=1)
    entry = record_comparison(
        "recorder-video-per-frame-passthrough-vs-reencode",
        subject="recorder: the received H.264 access units muxed as they are (fragmented MP4)",
        anchor="recorder: the same units decoded (PyAV) and re-encoded (libx264 ultrafast)",
        subject_ns=subject, anchor_ns=anchor, frames=len(units), size=list(VIDEO_SIZE), fps=15,
        cameras_per_core=round(1e9 / (15 * subject), 1),
        anchor_cameras_per_core=round(1e9 / (15 * anchor), 1),
        subject_rounds_ns=s_rounds, anchor_rounds_ns=a_rounds, load=os.getloadavg()[0])
    benchmark.extra_info.update(entry)
    assert entry["ratio"] > 1

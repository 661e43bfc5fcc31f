"""Transcription does not slow the media path (docs/transcription.md,
"Cost on the media path").

10 calls of the load emulator (``mediabot load``'s: one speaker per call
saying a sentence every 5 s, SRTP, Opus), received by one ``MediaHost`` with
latency measurement on (``MediaHost(latency=True)``): the wire-to-processor
latency of audio frames beyond the jitter-buffer delay, per frame, as
``bot.demo.load`` measures it (an inline counting processor per call). Two
set-ups in turns in the same run, each a fresh host and emulator:

* subject: every call also runs the built-in ``Transcription`` processor
  (thread mode; pocketsphinx decoding in its pool of worker processes, one
  per call);
* anchor: the same calls without it.

``ratio = anchor_p99 / subject_p99``; the goal is a slowdown
(``subject / anchor``) of at most 1.2.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._report import QUICK, record_comparison
from bot.demo.load import SRTP_PROFILE, SSRC_STRIDE, FrameCounts, counting_processor, emulator_main

CALLS = 10
DURATION_S = 8.0 if QUICK else 12.0
ROUNDS = 1 if QUICK else 2


def media_latency(calls: int, duration_s: float, transcription: bool) -> dict:
    """One run: the audio path's latency summary (ms) over the measured
    window, with or without a Transcription processor on every call."""
    from bot.emulator.simmedia import AUDIO_SOURCE_BASE
    from mediacore import MediaHost, Source
    from mediacore.processors.transcription import Transcription

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=emulator_main, args=(child, duration_s), daemon=True)
    proc.start()
    parent.recv()
    host = MediaHost(
        "127.0.0.1", srtp_profile=SRTP_PROFILE, audio_workers=1, latency=True, socket_buffer_bytes=8 << 20
    )
    counts = FrameCounts(calls)
    spec, medias, runners = [], [], []
    with tempfile.TemporaryDirectory() as out:
        try:
            for i in range(calls):
                offset = (i + 1) * SSRC_STRIDE
                media = host.create_call(
                    f"tx-{i}", video=False, screen_share=False, output_dir=Path(out) / str(i)
                )
                media.update_sources([Source(AUDIO_SOURCE_BASE + offset, f"caller-{i}", "Caller", "audio")])
                media.add_processor(counting_processor(counts, i))
                if transcription:  # its worker processes start (and load the model) here
                    runners.append(media.add_processor(Transcription(workers=1)))
                spec.append((media.config_blob(), offset))
                medias.append(media)
            parent.send(spec)
            parent.recv()
            warm_s = min(2.0, duration_s / 4)
            time.sleep(warm_s)
            host.audio.latency.clear()
            time.sleep(max(0.5, duration_s - warm_s))
            summary = host.audio.latency.summary()
            host.audio.latency.enabled = False
            parent.send("stop")
            parent.recv()
            lines = 0
            for m in medias:
                m.close()
            for i in range(calls):
                f = Path(out) / str(i) / "transcript.jsonl"
                lines += len(f.read_text().splitlines()) if f.exists() else 0
        finally:
            host.close()
            proc.join(timeout=10)
    summary["transcript_lines"] = lines
    summary["frames"] = int(counts.frames.sum())
    return summary


def test_transcription_does_not_slow_the_media_path(benchmark):
    def run():
        with_tx, without = [], []
        for _ in range(ROUNDS):  # in turns: without, with
            without.append(media_latency(CALLS, DURATION_S, False))
            with_tx.append(media_latency(CALLS, DURATION_S, True))
        return with_tx, without

    with_tx, without = benchmark.pedantic(run, rounds=1, iterations=1)
    subject_ms = float(np.median([r["p99"] for r in with_tx]))
    anchor_ms = float(np.median([r["p99"] for r in without]))
    entry = record_comparison(
        "transcription-media-latency-p99",
        subject=f"media latency p99 beyond the jitter buffer, {CALLS} calls with Transcription "
        "(pocketsphinx in worker processes)",
        anchor=f"the same {CALLS} calls without it (same run, in turns)",
        subject_ns=subject_ms * 1e6,
        anchor_ns=anchor_ms * 1e6,
        slowdown=subject_ms / anchor_ms,
        goal_slowdown=1.2,
        calls=CALLS,
        seconds=DURATION_S,
        subject_p50_ms=float(np.median([r["p50"] for r in with_tx])),
        anchor_p50_ms=float(np.median([r["p50"] for r in without])),
        subject_rounds=with_tx,
        anchor_rounds=without,
        load=os.getloadavg()[0],
    )
    benchmark.extra_info.update(entry)
    assert all(r["transcript_lines"] > 0 for r in with_tx), "nothing was transcribed"
    assert all(r["samples"] > 0 for r in with_tx + without)

"""Live transcription per speaker with pocketsphinx (offline; it ships its own
en-us model).

Frames (20 ms, 16 kHz mono int16) go into a per-speaker :class:`SpeechSegmenter`
(an energy detector whose threshold follows the noise floor); each finished
utterance is decoded whole (``full_utt=True``: streaming decoding starts with a
cold cepstral mean and loses ~20 points of word accuracy, docs/audio.md,
"Speech in tests") on a worker thread, never on the thread that hands frames
over. Results are
:class:`TranscriptSegment` objects with the speaker id and the start and end
timestamps of the utterance (100-ns units, the media clock of the frames).
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ..audio.codecs import FRAME_100NS
from ..audio.frames import AudioFrame
from ..processor import Processor, ProcessorContext



@dataclass(frozen=True)
class TranscriptSegment:
    speaker: str
    start_100ns: int
    end_100ns: int
    text: str

    @property
    def start_s(self) -> float:
        return self.start_100ns / 1e7

    @property
    def end_s(self) -> float:
        return self.end_100ns / 1e7


@dataclass(frozen=True)
class Utterance:
    start_100ns: int
    end_100ns: int
    pcm: np.ndarray  # int16, 16 kHz


class SpeechSegmenter:
    """Cuts a stream of 20 ms frames into utterances.

    A frame is speech when its RMS is above ``max(min_rms, noise_floor *
    ratio)``; the noise floor follows quiet frames slowly. An utterance opens
    after ``start_frames`` speech frames (with ``preroll_frames`` of audio
    before them kept) and closes after ``hangover_frames`` non-speech frames
    or at ``max_frames``.
    """

    def __init__(self, *, min_rms: float = 120.0, ratio: float = 4.0, start_frames: int = 2,
                 hangover_frames: int = 25, preroll_frames: int = 10, max_frames: int = 1500) -> None:
        self.min_rms, self.ratio = min_rms, ratio
        self.start_frames, self.hangover_frames = start_frames, hangover_frames
        self.preroll_frames, self.max_frames = preroll_frames, max_frames
        self.noise_rms = 30.0
        self._pre: list[tuple[int, np.ndarray]] = []
        self._frames: list[np.ndarray] = []
        self._start: int | None = None
        self._speech_run = 0
        self._silence_run = 0
        self._last_ts = 0

    def threshold(self) -> float:
        return max(self.min_rms, self.noise_rms * self.ratio)

    def push(self, pcm: np.ndarray, timestamp_100ns: int) -> Utterance | None:
        """Feed one frame; returns an utterance when one has just ended.

        Frames need not be contiguous: unmixed audio carries a speaker's frames
        only while they speak, so a gap in the timestamps longer than the
        hangover ends the open utterance, like that much silence would."""
        if (self._start is not None and self._last_ts
                and timestamp_100ns - self._last_ts >= self.hangover_frames * FRAME_100NS):
            self._silence_run = 0
            done = self._close()
            self._pre = [(timestamp_100ns, pcm)]
            self._speech_run = 0
            self._last_ts = timestamp_100ns + FRAME_100NS
            return done
        rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0
        speech = rms > self.threshold()
        if not speech:
            self.noise_rms += 0.05 * (max(rms, 1.0) - self.noise_rms)
        self._last_ts = timestamp_100ns + FRAME_100NS
        if self._start is None:
            self._pre.append((timestamp_100ns, pcm))
            if len(self._pre) > self.preroll_frames + self.start_frames:
                self._pre.pop(0)
            self._speech_run = self._speech_run + 1 if speech else 0
            if self._speech_run >= self.start_frames:
                self._start = self._pre[0][0]
                self._frames = [f for _, f in self._pre]
                self._pre = []
                self._silence_run = 0
            return None
        self._frames.append(pcm)
        self._silence_run = 0 if speech else self._silence_run + 1
        if self._silence_run >= self.hangover_frames or len(self._frames) >= self.max_frames:
            return self._close()
        return None

    def flush(self) -> Utterance | None:
        return self._close() if self._start is not None else None

    def _close(self) -> Utterance:
        keep = len(self._frames) - max(0, self._silence_run - 5)  # trim most trailing silence
        pcm = np.concatenate(self._frames[:keep])
        u = Utterance(self._start, self._start + keep * FRAME_100NS, pcm)
        self._start, self._frames, self._speech_run, self._silence_run = None, [], 0, 0
        return u


class PocketSphinx:
    """One pocketsphinx decoder per thread (decoders are not thread-safe)."""

    def __init__(self, grammar_sentences: Iterable[str] | None = None) -> None:
        self._local = threading.local()
        self._grammar = list(grammar_sentences) if grammar_sentences else None

    def _decoder(self):
        d = getattr(self._local, "decoder", None)
        if d is None:
            from pocketsphinx import Decoder  # heavy import, on the worker thread

            if self._grammar:
                import os
                import tempfile

                alts = " | ".join(f"( {s.lower()} )" for s in self._grammar)
                fd, path = tempfile.mkstemp(suffix=".gram")
                with os.fdopen(fd, "w") as f:
                    f.write(f"#JSGF V1.0;\ngrammar s;\npublic <s> = {alts};\n")
                d = Decoder(jsgf=path, loglevel="FATAL")
                os.unlink(path)
            else:
                d = Decoder(loglevel="FATAL")
            self._local.decoder = d
        return d

    def decode(self, pcm: np.ndarray) -> str:
        d = self._decoder()
        d.start_utt()
        d.process_raw(np.ascontiguousarray(pcm, dtype=np.int16).tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


_worker_engine: PocketSphinx | None = None


def _worker_init(grammar: list[str] | None) -> None:
    global _worker_engine
    _worker_engine = PocketSphinx(grammar)


def _worker_decode(pcm: np.ndarray) -> str:
    assert _worker_engine is not None
    return _worker_engine.decode(pcm)


class SpeechTranscriber:
    """Per-speaker live transcription.

    Call :meth:`push` with each speaker's frames (from unmixed audio); finished
    segments go to ``on_segment`` (called on a result thread) and to
    :attr:`segments`. ``close()`` flushes open utterances and waits.

    Decoding runs in ``workers`` worker processes by default (pocketsphinx
    holds the GIL while it decodes, which would stall the thread that hands
    frames over); ``processes=False`` uses threads instead.
    """

    def __init__(self, on_segment: Callable[[TranscriptSegment], None] | None = None, *,
                 workers: int = 1, grammar_sentences: Iterable[str] | None = None,
                 segmenter_factory: Callable[[], SpeechSegmenter] = SpeechSegmenter,
                 processes: bool = True) -> None:
        grammar = list(grammar_sentences) if grammar_sentences else None
        self._engine = PocketSphinx(grammar)
        self._pool: Executor
        if processes:
            self._pool = ProcessPoolExecutor(max_workers=workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_init, initargs=(grammar,))
        else:
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transcribe")
        self._processes = processes
        if processes:  # start the workers and load the model now, not at the first utterance
            self._warm = [self._pool.submit(_worker_decode, np.zeros(1600, np.int16))
                          for _ in range(workers)]
        self._segmenters: dict[str, SpeechSegmenter] = {}
        self._factory = segmenter_factory
        self._on_segment = on_segment
        self._pending: list[Future] = []
        self._lock = threading.Lock()
        self.segments: list[TranscriptSegment] = []
        self.results: queue.Queue[TranscriptSegment] = queue.Queue()

    def push(self, speaker: str, pcm: np.ndarray, timestamp_100ns: int) -> None:
        seg = self._segmenters.get(speaker)
        if seg is None:
            seg = self._segmenters[speaker] = self._factory()
        u = seg.push(pcm, timestamp_100ns)
        if u is not None:
            self._submit(speaker, u)

    def _submit(self, speaker: str, u: Utterance) -> None:
        if self._processes:
            fut = self._pool.submit(_worker_decode, u.pcm)
            fut.add_done_callback(lambda f: self._deliver(speaker, u, f.result()))
        else:
            fut = self._pool.submit(lambda: self._deliver(speaker, u, self._engine.decode(u.pcm)))
        self._pending.append(fut)

    def _deliver(self, speaker: str, u: Utterance, text: str) -> TranscriptSegment:
        s = TranscriptSegment(speaker, u.start_100ns, u.end_100ns, text)
        if text:
            with self._lock:
                self.segments.append(s)
            self.results.put(s)
            if self._on_segment is not None:
                self._on_segment(s)
        return s

    def flush(self) -> None:
        for speaker, seg in self._segmenters.items():
            u = seg.flush()
            if u is not None:
                self._submit(speaker, u)

    def close(self, timeout: float | None = 60.0) -> list[TranscriptSegment]:
        self.flush()
        for f in self._pending:
            f.result(timeout=timeout)
        self._pool.shutdown(wait=True)
        with self._lock:
            return sorted(self.segments, key=lambda s: (s.start_100ns, s.speaker))


class Transcription(Processor):
    """Built-in processor ``transcription``: each speaker's own audio,
    transcribed per utterance (pocketsphinx, offline, in worker processes).

    Results go to ``on_segment`` handlers (``processor.on_segment.append(fn)``,
    called on a result thread with a :class:`TranscriptSegment` whose
    ``speaker`` is the display name), to :attr:`segments`, and, when the call
    has an output folder, to ``transcript.jsonl`` there: one JSON object per
    line, ``{"participant_id", "speaker", "start", "end", "text"}`` with
    ``start``/``end`` in seconds since the call's media started.

    Options: ``workers`` (decoder processes, default 1), ``grammar`` (a list
    of sentences to decode against instead of free speech), ``file``.
    """

    audio = "unmixed"
    mode = "thread"

    def __init__(self, workers: int = 1, grammar: Iterable[str] | None = None,
                 file: str = "transcript.jsonl") -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.grammar = list(grammar) if grammar else None
        self.file = file
        self.on_segment: list[Callable[[TranscriptSegment], None]] = []
        self.segments: list[TranscriptSegment] = []
        self._engine: SpeechTranscriber | None = None
        self._out: Any = None
        self._ids: dict[str, str] = {}
        self._epoch_100ns = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:   # picklable for process mode (no handlers)
        d = dict(self.__dict__)
        d["on_segment"], d["_lock"], d["_engine"], d["_out"] = [], None, None, None
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        self._lock = threading.Lock()

    def on_start(self, ctx: ProcessorContext) -> None:
        self._epoch_100ns = ctx.epoch_100ns
        self._engine = SpeechTranscriber(self._segment, workers=self.workers,
                                         grammar_sentences=self.grammar)
        if ctx.output_dir is not None:
            ctx.output_dir.mkdir(parents=True, exist_ok=True)
            self._out = open(ctx.output_dir / self.file, "a", encoding="utf-8")

    def on_audio(self, frame: AudioFrame) -> None:
        if frame.kind != "unmixed" or self._engine is None:
            return
        speaker = frame.display_name or frame.participant_id or str(frame.source_id)
        if frame.participant_id:
            self._ids[speaker] = frame.participant_id
        self._engine.push(speaker, frame.pcm, frame.timestamp_100ns)

    def _segment(self, s: TranscriptSegment) -> None:
        with self._lock:
            self.segments.append(s)
            if self._out is not None:
                self._out.write(json.dumps({
                    "participant_id": self._ids.get(s.speaker), "speaker": s.speaker,
                    "start": round((s.start_100ns - self._epoch_100ns) / 1e7, 2),
                    "end": round((s.end_100ns - self._epoch_100ns) / 1e7, 2),
                    "text": s.text}) + "\n")
                self._out.flush()
        for fn in self.on_segment:
            fn(s)

    def on_stop(self) -> list[TranscriptSegment]:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None
            return list(self.segments)

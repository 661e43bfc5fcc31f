"""Live transcription per speaker: voice-activity segmentation, a pluggable
recognition engine, partial and final results, JSON Lines and WebVTT.

Frames (20 ms, 16 kHz mono int16) go into a per-participant
:class:`SpeechSegmenter` (an energy detector whose threshold follows the noise
floor, with padding before and after the speech it finds). Each finished
utterance is handed whole to a :class:`Transcriber` — the engine seam — on a
worker process (or thread), never on the thread that hands frames over. While
an utterance is still open its audio so far is decoded every
``partial_interval_ms`` for a *partial* result (skipped while that speaker's
previous job is still running, so partials never pile up).

Engines: :class:`PocketSphinx` (offline, the default: the package ships its
en-us model; an utterance is decoded whole, ``full_utt=True``, because
streaming decoding starts with a cold cepstral mean and loses ~20 points of
word accuracy, docs/audio.md, "Speech in tests") and :class:`Vosk` (an adapter
for the Kaldi-based vosk library with a model the user provides; vosk ships no
model). Another engine is a class implementing :class:`Transcriber`, named as
``package.module:Class`` in the ``engine`` option (docs/transcription.md).

Results are :class:`TranscriptSegment` objects with the speaker's display name
and participant id, the start and end of the speech (100-ns units, the media
clock of the frames), the text, a confidence in [0, 1] and ``final``.
"""

from __future__ import annotations

import abc
import importlib
import json
import multiprocessing
import os
import pickle
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.codecs import FRAME_100NS, SAMPLE_RATE_HZ
from ..audio.frames import AudioFrame
from ..processor import Processor, ProcessorContext

FRAME_MS = 20


@dataclass(frozen=True)
class Recognition:
    """What an engine made of some audio: the words and how sure it is (0..1)."""

    text: str
    confidence: float = 0.0


@dataclass(frozen=True)
class TranscriptSegment:
    speaker: str
    start_100ns: int
    end_100ns: int
    text: str
    confidence: float = 0.0
    #: False for a partial result of an utterance still open (its end is the audio so far)
    final: bool = True
    participant_id: str | None = None

    @property
    def start_s(self) -> float:
        return self.start_100ns / 1e7

    @property
    def end_s(self) -> float:
        return self.end_100ns / 1e7


@dataclass(frozen=True)
class Utterance:
    #: the first and after the last speech frame (padding not included)
    start_100ns: int
    end_100ns: int
    pcm: np.ndarray  # int16, 16 kHz: the speech with its padding


# ---- the engine seam ---------------------------------------------------------------------------


class Transcriber(abc.ABC):
    """A speech recognition engine, as the processor uses it.

    :meth:`transcribe` gets one utterance's whole audio (16 kHz mono int16,
    padding included) and returns its words; :meth:`partial` gets the audio of
    an utterance that is still open, from its start to now. An instance is
    pickled into each worker process before its first use, so keep heavy state
    (models, decoders) out of ``__init__`` and load it lazily; one instance is
    used by one thread at a time per process.
    """

    #: False: the engine gives no partial results (the processor then asks for none)
    partials = True

    @abc.abstractmethod
    def transcribe(self, pcm: np.ndarray) -> Recognition:
        """The final result of a whole utterance."""

    def partial(self, pcm: np.ndarray) -> Recognition | None:
        """The words so far of an open utterance (``None``: nothing to say yet).
        By default the audio so far is decoded whole, like a final result."""
        return self.transcribe(pcm)


def _jsgf(sentences: list[str]) -> str:
    alts = " | ".join(f"( {s.lower()} )" for s in sentences)
    return f"#JSGF V1.0;\ngrammar s;\npublic <s> = {alts};\n"


class PocketSphinx(Transcriber):
    """pocketsphinx with its bundled en-us model; with ``grammar_sentences`` it
    decodes against those sentences (a JSGF grammar) instead of free speech.
    Confidence: the mean posterior probability of the words. One decoder per
    thread (decoders are not thread-safe)."""

    def __init__(self, grammar_sentences: Iterable[str] | None = None) -> None:
        self._grammar = list(grammar_sentences) if grammar_sentences else None
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        return {"_grammar": self._grammar}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._grammar = state["_grammar"]
        self._local = threading.local()

    def _decoder(self):
        d = getattr(self._local, "decoder", None)
        if d is None:
            from pocketsphinx import Decoder  # heavy import, on the worker

            if self._grammar:
                import tempfile

                fd, path = tempfile.mkstemp(suffix=".gram")
                with os.fdopen(fd, "w") as f:
                    f.write(_jsgf(self._grammar))
                try:
                    d = Decoder(jsgf=path, loglevel="FATAL")
                finally:
                    os.unlink(path)
            else:
                d = Decoder(loglevel="FATAL")
            self._local.decoder = d
        return d

    def transcribe(self, pcm: np.ndarray) -> Recognition:
        d = self._decoder()
        d.start_utt()
        d.process_raw(np.ascontiguousarray(pcm, dtype=np.int16).tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        if hyp is None or not hyp.hypstr:
            return Recognition("", 0.0)
        probs = [
            min(1.0, max(0.0, float(s.prob)))
            for s in d.seg()
            if s.word not in ("<s>", "</s>", "<sil>") and not s.word.startswith("[")
        ]
        return Recognition(hyp.hypstr, sum(probs) / len(probs) if probs else 0.0)

    def decode(self, pcm: np.ndarray) -> str:
        """The words only (as :meth:`transcribe`)."""
        return self.transcribe(pcm).text


class Vosk(Transcriber):
    """The vosk library (Kaldi) with a model folder the user provides
    (``model_path``; https://alphacephei.com/vosk/models; vosk ships none and
    this project downloads nothing at run time). ``grammar_sentences`` become
    vosk's word-list grammar. Confidence: the mean of vosk's per-word ``conf``.
    Partial results come from vosk's own streaming decoder."""

    def __init__(self, model_path: str, grammar_sentences: Iterable[str] | None = None) -> None:
        if not model_path:
            raise ValueError("the vosk engine needs model_path (a vosk model folder)")
        self.model_path = str(model_path)
        self._grammar = list(grammar_sentences) if grammar_sentences else None
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "_grammar": self._grammar, "_model": None}

    def _recognizer(self):
        import vosk  # the optional dependency, imported where it is used

        if self._model is None:
            if not Path(self.model_path).is_dir():
                raise FileNotFoundError(f"vosk model folder {self.model_path!r} not found")
            vosk.SetLogLevel(-1)
            self._model = vosk.Model(self.model_path)
        args = [json.dumps(self._grammar + ["[unk]"])] if self._grammar else []
        rec = vosk.KaldiRecognizer(self._model, float(SAMPLE_RATE_HZ), *args)
        rec.SetWords(True)
        return rec

    def transcribe(self, pcm: np.ndarray) -> Recognition:
        rec = self._recognizer()
        rec.AcceptWaveform(np.ascontiguousarray(pcm, dtype=np.int16).tobytes())
        result = json.loads(rec.FinalResult())
        words = result.get("result") or []
        conf = sum(w.get("conf", 0.0) for w in words) / len(words) if words else 0.0
        return Recognition(result.get("text", ""), float(conf))

    def partial(self, pcm: np.ndarray) -> Recognition | None:
        rec = self._recognizer()
        rec.AcceptWaveform(np.ascontiguousarray(pcm, dtype=np.int16).tobytes())
        text = json.loads(rec.PartialResult()).get("partial", "")
        return Recognition(text, 0.0) if text else None


ENGINES = {"pocketsphinx": PocketSphinx, "vosk": Vosk}


def make_transcriber(
    engine: str = "pocketsphinx",
    options: Mapping[str, Any] | None = None,
    *,
    grammar: Iterable[str] | None = None,
) -> Transcriber:
    """An engine by name (``pocketsphinx``, ``vosk``) or ``package.module:Class``
    (a :class:`Transcriber`), made with ``options`` (and the grammar, for an
    engine whose constructor takes ``grammar_sentences``)."""
    cls: Any = ENGINES.get(engine)
    if cls is None:
        module, sep, name = engine.partition(":")
        if not sep:
            raise ValueError(
                f"unknown transcription engine {engine!r}: use {', '.join(ENGINES)} or package.module:Class"
            )
        cls = getattr(importlib.import_module(module), name, None)
        if not (isinstance(cls, type) and issubclass(cls, Transcriber)):
            raise ValueError(f"engine {engine!r} is not a mediacore Transcriber class")
    opts = dict(options or {})
    if grammar:
        opts.setdefault("grammar_sentences", list(grammar))
    return cls(**opts)


# ---- segmentation --------------------------------------------------------------------------------


class SpeechSegmenter:
    """Cuts a stream of 20 ms frames into utterances (voice-activity detection).

    A frame is speech when its RMS is above ``max(min_rms, noise_floor *
    threshold_ratio)``; the noise floor follows quiet frames slowly. An
    utterance opens after ``min_speech_ms`` of speech frames in a row and
    closes after ``silence_ms`` without speech (or at ``max_ms``). Its audio
    starts ``pre_padding_ms`` before the first speech frame and ends
    ``post_padding_ms`` after the last one (engines need some silence around
    words); its start and end are those of the speech itself.
    """

    def __init__(
        self,
        *,
        min_rms: float = 120.0,
        threshold_ratio: float = 4.0,
        min_speech_ms: int = 40,
        silence_ms: int = 500,
        pre_padding_ms: int = 200,
        post_padding_ms: int = 100,
        max_ms: int = 30_000,
    ) -> None:
        if min(min_speech_ms, silence_ms, max_ms) < FRAME_MS or min(pre_padding_ms, post_padding_ms) < 0:
            raise ValueError("segmenter times must be at least one frame (20 ms); paddings >= 0")
        self.min_rms, self.ratio = float(min_rms), float(threshold_ratio)
        self.start_frames = max(1, min_speech_ms // FRAME_MS)
        self.hangover_frames = max(1, silence_ms // FRAME_MS)
        self.pre_frames = pre_padding_ms // FRAME_MS
        self.post_frames = min(post_padding_ms // FRAME_MS, self.hangover_frames)
        self.max_frames = max_ms // FRAME_MS
        self.noise_rms = 30.0
        self._pre: list[tuple[int, np.ndarray]] = []
        self._frames: list[np.ndarray] = []
        self._lead = 0  # padding frames at the head of _frames
        self._start: int | None = None  # timestamp of the first speech frame
        self._speech_run = 0
        self._silence_run = 0
        self._last_ts = 0

    def threshold(self) -> float:
        return max(self.min_rms, self.noise_rms * self.ratio)

    @property
    def open(self) -> bool:
        return self._start is not None

    def push(self, pcm: np.ndarray, timestamp_100ns: int) -> Utterance | None:
        """Feed one frame; returns an utterance when one has just ended.

        Frames need not be contiguous: unmixed audio carries a speaker's frames
        only while they speak, so a gap in the timestamps longer than the
        silence that closes an utterance ends the open one, like that much
        silence would."""
        if (
            self._start is not None
            and self._last_ts
            and timestamp_100ns - self._last_ts >= self.hangover_frames * FRAME_100NS
        ):
            done = self._close(gap=True)
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
            if len(self._pre) > self.pre_frames + self.start_frames:
                self._pre.pop(0)
            self._speech_run = self._speech_run + 1 if speech else 0
            if self._speech_run >= self.start_frames:
                first = len(self._pre) - self.start_frames
                self._start = self._pre[first][0]
                self._frames = [f for _, f in self._pre]
                self._lead = first
                self._pre = []
                self._silence_run = 0
            return None
        self._frames.append(pcm)
        self._silence_run = 0 if speech else self._silence_run + 1
        if self._silence_run >= self.hangover_frames or len(self._frames) >= self.max_frames:
            return self._close()
        return None

    def current(self) -> Utterance | None:
        """The open utterance so far (for partial results), or None."""
        if self._start is None:
            return None
        speech = len(self._frames) - self._lead - self._silence_run
        return Utterance(self._start, self._start + speech * FRAME_100NS, np.concatenate(self._frames))

    def flush(self) -> Utterance | None:
        return self._close() if self._start is not None else None

    def _close(self, gap: bool = False) -> Utterance:
        assert self._start is not None
        trailing = 0 if gap else self._silence_run
        speech = len(self._frames) - self._lead - trailing
        keep = len(self._frames) - max(0, trailing - self.post_frames)
        pcm = np.concatenate(self._frames[:keep])
        if gap and self.post_frames:  # the speaker's stream stopped: pad with silence
            pcm = np.concatenate([pcm, np.zeros(self.post_frames * len(self._frames[0]), np.int16)])
        u = Utterance(self._start, self._start + speech * FRAME_100NS, pcm)
        self._start, self._frames, self._lead = None, [], 0
        self._speech_run, self._silence_run = 0, 0
        return u


# ---- running the engine off the media thread -----------------------------------------------------


_worker_engine: Transcriber | None = None
#: how far below the media process the decoding workers run (POSIX nice steps):
#: speech recognition is bulk work, the media threads are real time
WORKER_NICE = 10


def _lower_priority() -> None:
    try:
        if sys.platform == "win32":
            import ctypes

            below_normal = 0x4000  # BELOW_NORMAL_PRIORITY_CLASS
            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
            kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), below_normal)
        else:
            os.nice(WORKER_NICE)
    except OSError:
        pass


def _worker_init(engine: Transcriber) -> None:
    global _worker_engine
    _lower_priority()
    _worker_engine = engine


class _SharedPools:
    """One decoding pool per engine configuration for the whole process, shared
    by every call's transcriber: as many workers as cores less one (the media
    threads keep a core), however many calls transcribe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[bytes, tuple[ProcessPoolExecutor, int]] = {}

    def acquire(self, engine: Transcriber, workers: int) -> tuple[bytes, ProcessPoolExecutor]:
        key = pickle.dumps(engine)
        with self._lock:
            entry = self._pools.get(key)
            if entry is None:
                pool = ProcessPoolExecutor(
                    max_workers=workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(engine,),
                )
                entry = (pool, 0)
            self._pools[key] = (entry[0], entry[1] + 1)
            return key, entry[0]

    def release(self, key: bytes) -> None:
        with self._lock:
            pool, users = self._pools[key]
            if users > 1:
                self._pools[key] = (pool, users - 1)
                return
            del self._pools[key]
        pool.shutdown(wait=True)


_shared_pools = _SharedPools()


def _worker_run(final: bool, pcm: np.ndarray) -> Recognition | None:
    assert _worker_engine is not None
    return _worker_engine.transcribe(pcm) if final else _worker_engine.partial(pcm)


class SpeechTranscriber:
    """Per-speaker live transcription.

    Call :meth:`push` with each speaker's frames (from unmixed audio); final
    segments go to ``on_segment`` and partial ones (every
    ``partial_interval_ms`` of an open utterance, when a worker is idle: a
    partial never delays a final result; 0: none) to ``on_partial``,
    both called on a result thread; finals are also kept in :attr:`segments`.
    ``close()`` flushes open utterances and waits.

    ``transcriber``: the engine (default :class:`PocketSphinx` with
    ``grammar_sentences``). It runs in ``workers`` worker processes by default
    (pocketsphinx holds the GIL while it decodes, which would stall the thread
    that hands frames over); ``processes=False`` uses threads instead.
    """

    def __init__(
        self,
        on_segment: Callable[[TranscriptSegment], None] | None = None,
        *,
        workers: int = 1,
        grammar_sentences: Iterable[str] | None = None,
        segmenter_factory: Callable[[], SpeechSegmenter] = SpeechSegmenter,
        processes: bool = True,
        shared: bool = False,
        transcriber: Transcriber | None = None,
        partial_interval_ms: int = 0,
        on_partial: Callable[[TranscriptSegment], None] | None = None,
    ) -> None:
        self._engine = transcriber if transcriber is not None else PocketSphinx(grammar_sentences)
        self._pool: Executor
        self._shared_key: bytes | None = None
        if processes and shared:
            workers = max(workers, (os.cpu_count() or 2) - 1)
            self._shared_key, self._pool = _shared_pools.acquire(self._engine, workers)
            self._warm = []
        elif processes:
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(self._engine,),
            )
            # start the workers and load the model now, not at the first utterance
            self._warm = [
                self._pool.submit(_worker_run, True, np.zeros(1600, np.int16)) for _ in range(workers)
            ]
        else:
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transcribe")
        self._processes = processes
        self._partial_frames = (
            partial_interval_ms // FRAME_MS if partial_interval_ms > 0 and self._engine.partials else 0
        )
        self._segmenters: dict[str, SpeechSegmenter] = {}
        self._names: dict[str, tuple[str, str | None]] = {}
        self._factory = segmenter_factory
        self._on_segment = on_segment
        self._on_partial = on_partial
        self._pending: list[Future] = []
        self._lock = threading.Lock()
        # per speaker key: utterance number, frames since the last partial, a partial in flight
        self._utt: dict[str, int] = {}
        self._since_partial: dict[str, int] = {}
        self._busy: set[str] = set()
        self._workers = workers
        self._inflight = 0  # jobs submitted and not yet delivered
        self.segments: list[TranscriptSegment] = []
        self.partials: list[TranscriptSegment] = []
        self.results: queue.Queue[TranscriptSegment] = queue.Queue()

    def push(
        self, speaker: str, pcm: np.ndarray, timestamp_100ns: int, *, participant_id: str | None = None
    ) -> None:
        """One frame of ``speaker`` (their display name); ``participant_id``,
        when given, keeps two people with one name apart."""
        key = participant_id or speaker
        seg = self._segmenters.get(key)
        if seg is None:
            seg = self._segmenters[key] = self._factory()
        self._names[key] = (speaker, participant_id)
        u = seg.push(pcm, timestamp_100ns)
        if u is not None:
            self._submit(key, u, True)
        elif self._partial_frames and seg.open:
            n = self._since_partial.get(key, 0) + 1
            self._since_partial[key] = n
            if n >= self._partial_frames and key not in self._busy and self._inflight < self._workers:
                current = seg.current()
                if current is not None:
                    self._since_partial[key] = 0
                    self._submit(key, current, False)

    def _submit(self, key: str, u: Utterance, final: bool) -> None:
        with self._lock:
            self._inflight += 1
            number = self._utt.get(key, 0)
            if final:
                self._utt[key] = number + 1
                self._since_partial[key] = 0
            else:
                self._busy.add(key)
        if self._processes:
            fut = self._pool.submit(_worker_run, final, u.pcm)
            fut.add_done_callback(lambda f: self._deliver(key, number, u, final, f))
        else:

            def run() -> Recognition | None:
                return self._engine.transcribe(u.pcm) if final else self._engine.partial(u.pcm)

            fut = self._pool.submit(run)
            fut.add_done_callback(lambda f: self._deliver(key, number, u, final, f))
        self._pending.append(fut)

    def _deliver(self, key: str, number: int, u: Utterance, final: bool, fut: Future) -> None:
        with self._lock:
            self._inflight -= 1
            if not final:
                self._busy.discard(key)
            stale = self._utt.get(key, 0) != number  # (a partial) the utterance ended meanwhile
        r = fut.result()
        if r is None or not r.text or (not final and stale):
            return
        speaker, pid = self._names[key]
        s = TranscriptSegment(speaker, u.start_100ns, u.end_100ns, r.text, r.confidence, final, pid)
        with self._lock:
            (self.segments if final else self.partials).append(s)
        if final:
            self.results.put(s)
        handler = self._on_segment if final else self._on_partial
        if handler is not None:
            handler(s)

    def flush(self) -> None:
        for key, seg in self._segmenters.items():
            u = seg.flush()
            if u is not None:
                self._submit(key, u, True)

    def close(self, timeout: float | None = 60.0) -> list[TranscriptSegment]:
        self.flush()
        for f in list(self._pending):
            f.result(timeout=timeout)
        if self._shared_key is not None:
            _shared_pools.release(self._shared_key)
            self._shared_key = None
        else:
            self._pool.shutdown(wait=True)
        with self._lock:
            return sorted(self.segments, key=lambda s: (s.start_100ns, s.speaker))


# ---- output ------------------------------------------------------------------------------------


def vtt_time(seconds: float) -> str:
    """A WebVTT timestamp, ``hh:mm:ss.ttt``."""
    ms = max(0, int(round(seconds * 1000)))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return f"{h:02d}:{m:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(cues: Iterable[tuple[float, float, str, str]]) -> str:
    """A WebVTT file (https://www.w3.org/TR/webvtt1/) of ``(start_s, end_s,
    speaker, text)`` cues, in start order, each speaker as the cue's voice
    span ``<v Speaker>``."""
    out = ["WEBVTT", ""]
    for i, (start, end, speaker, text) in enumerate(sorted(cues, key=lambda c: (c[0], c[1])), 1):
        end = max(end, start + 0.001)
        out += [
            str(i),
            f"{vtt_time(start)} --> {vtt_time(end)}",
            f"<v {_vtt_escape(speaker)}>{_vtt_escape(text)}",
            "",
        ]
    return "\n".join(out)


class Transcription(Processor):
    """Built-in processor ``transcription``: each speaker's own audio,
    transcribed per utterance (offline by default: pocketsphinx, in worker
    processes).

    Final results go to ``on_segment`` handlers and partial ones to
    ``on_partial`` handlers (``processor.on_segment.append(fn)``, called on a
    result thread with a :class:`TranscriptSegment`), to :attr:`segments`,
    and, when the call has an output folder, to two files there:
    ``transcript.jsonl``, one JSON object per result ``{"participant_id",
    "speaker", "start", "end", "text", "confidence", "final"}`` (``start`` and
    ``end`` in seconds since the call's media started; partial results of an
    open utterance have ``final: false`` and are followed by its final one),
    and ``captions.vtt``, WebVTT with a cue per final result and the speaker
    as the cue's voice (``<v Alice>``), rewritten as results arrive.

    Options: ``engine`` (``pocketsphinx``, ``vosk`` or ``package.module:Class``,
    a :class:`Transcriber`) and ``engine_options`` (its keyword arguments, e.g.
    ``{model_path = "..."}`` for vosk); ``grammar`` (sentences to decode
    against instead of free speech); ``workers`` (engine processes);
    ``shared_workers`` (default true: the engine processes are shared by every
    call of the process, as many as cores less one, below the media threads'
    priority, so ten calls transcribing do not start ten decoders that crowd
    out the media path);
    voice-activity detection: ``pre_padding_ms``, ``post_padding_ms`` (audio
    kept before and after the speech), ``silence_ms`` (what ends an
    utterance), ``min_speech_ms``, ``min_rms`` and ``threshold_ratio`` (speech
    is louder than both ``min_rms`` and the noise floor times the ratio);
    ``partial_interval_ms`` (0: no partial results); ``file`` and ``captions``
    (file names; ``""``: not written).
    """

    audio = "unmixed"
    mode = "thread"

    def __init__(
        self,
        workers: int = 1,
        grammar: Iterable[str] | None = None,
        file: str = "transcript.jsonl",
        captions: str = "captions.vtt",
        engine: str = "pocketsphinx",
        engine_options: Mapping[str, Any] | None = None,
        pre_padding_ms: int = 200,
        post_padding_ms: int = 100,
        silence_ms: int = 500,
        min_speech_ms: int = 40,
        min_rms: float = 120.0,
        threshold_ratio: float = 4.0,
        partial_interval_ms: int = 1000,
        shared_workers: bool = True,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if partial_interval_ms < 0:
            raise ValueError("partial_interval_ms must be >= 0")
        self.workers = workers
        self.grammar = list(grammar) if grammar else None
        self.file = file
        self.captions = captions
        self.engine = engine
        self.engine_options = dict(engine_options or {})
        self.segmenter_options: dict[str, Any] = dict(
            pre_padding_ms=pre_padding_ms,
            post_padding_ms=post_padding_ms,
            silence_ms=silence_ms,
            min_speech_ms=min_speech_ms,
            min_rms=min_rms,
            threshold_ratio=threshold_ratio,
        )
        SpeechSegmenter(**self.segmenter_options)  # check the values now
        make_transcriber(engine, self.engine_options, grammar=self.grammar)  # and the engine's
        self.partial_interval_ms = partial_interval_ms
        self.shared_workers = shared_workers
        self.on_segment: list[Callable[[TranscriptSegment], None]] = []
        self.on_partial: list[Callable[[TranscriptSegment], None]] = []
        self.segments: list[TranscriptSegment] = []
        self._engine: SpeechTranscriber | None = None
        self._out: Any = None
        self._vtt: Path | None = None
        #: when the call's media started (the media clock); file times count from it
        self.epoch_100ns = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # picklable for process mode (no handlers)
        d = dict(self.__dict__)
        d["on_segment"], d["on_partial"], d["_lock"], d["_engine"], d["_out"] = [], [], None, None, None
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)
        self._lock = threading.Lock()

    def on_start(self, ctx: ProcessorContext) -> None:
        self.epoch_100ns = ctx.epoch_100ns
        options = self.segmenter_options
        self._engine = SpeechTranscriber(
            self._final,
            workers=self.workers,
            shared=self.shared_workers,
            transcriber=make_transcriber(self.engine, self.engine_options, grammar=self.grammar),
            segmenter_factory=lambda: SpeechSegmenter(**options),
            partial_interval_ms=self.partial_interval_ms,
            on_partial=self._partial,
        )
        if ctx.output_dir is not None:
            ctx.output_dir.mkdir(parents=True, exist_ok=True)
            if self.file:
                self._out = open(ctx.output_dir / self.file, "a", encoding="utf-8")
            if self.captions:
                self._vtt = ctx.output_dir / self.captions
                self._write_vtt()

    def on_audio(self, frame: AudioFrame) -> None:
        if frame.kind != "unmixed" or self._engine is None:
            return
        speaker = frame.display_name or frame.participant_id or str(frame.source_id)
        self._engine.push(
            speaker, frame.pcm, frame.timestamp_100ns, participant_id=frame.participant_id or None
        )

    def _seconds(self, t_100ns: int) -> float:
        return round((t_100ns - self.epoch_100ns) / 1e7, 2)

    def _line(self, s: TranscriptSegment) -> None:
        if self._out is not None:
            self._out.write(
                json.dumps(
                    {
                        "participant_id": s.participant_id,
                        "speaker": s.speaker,
                        "start": self._seconds(s.start_100ns),
                        "end": self._seconds(s.end_100ns),
                        "text": s.text,
                        "confidence": round(s.confidence, 3),
                        "final": s.final,
                    }
                )
                + "\n"
            )
            self._out.flush()

    def _write_vtt(self) -> None:
        if self._vtt is None:
            return
        text = webvtt(
            (self._seconds(s.start_100ns), self._seconds(s.end_100ns), s.speaker, s.text)
            for s in self.segments
        )
        tmp = self._vtt.with_name(self._vtt.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self._vtt)  # readers never see half a file

    def _final(self, s: TranscriptSegment) -> None:
        with self._lock:
            self.segments.append(s)
            self._line(s)
            self._write_vtt()
        for fn in self.on_segment:
            fn(s)

    def _partial(self, s: TranscriptSegment) -> None:
        with self._lock:
            self._line(s)
        for fn in self.on_partial:
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

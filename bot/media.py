"""The one seam between signaling and media.

:class:`MediaProvider` is what the :class:`~bot.app.Bot` asks about media:
the media configuration document of a call (``appHostedMediaConfig.blob``),
then tells it which call that document went to, every roster change, a
changed media state and the end of the call. :class:`CallMediaProvider` is
the stock implementation on :mod:`mediacore` (a :class:`~mediacore.MediaHost`
per process, a :class:`~mediacore.CallMedia` per call, processors started on
each call). It is the only module of ``bot`` that imports ``mediacore``; a
bot with its own media stack implements the protocol instead.

The roster becomes the media's *source map* (plain data): every other
participant's ``mediaStreams[]`` entry with a ``sourceId`` — ``audio``,
``video``, and ``videoBasedScreenSharing`` (active while its direction sends)
— keyed by that id, with the participant's id and display name
(https://learn.microsoft.com/graph/api/resources/mediastream).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mediacore import CallMedia, MediaHost, Processor, Source

from .config import BotConfig, ConfigError, MediaSettings

if TYPE_CHECKING:
    from .calls import Call, RosterChange
    from .graph import models as m

log = logging.getLogger("bot.media")

_KINDS = {"audio": "audio", "video": "video", "videobasedscreensharing": "screen"}


@runtime_checkable
class MediaProvider(Protocol):
    """What the bot needs from a media stack (all coroutines, run on the bot's loop)."""

    async def media_config(self, call: Call | None) -> str:
        """The media configuration blob for answering ``call``, or for a call
        the bot places (``None``: its id is known only from the answer)."""
        ...

    async def call_started(self, call: Call, blob: str) -> None:
        """``blob`` (from :meth:`media_config`) went to Graph for ``call``."""
        ...

    async def participants_changed(self, call: Call, change: RosterChange) -> None:
        """The call's roster changed (``call.roster`` holds the whole of it)."""
        ...

    async def media_state_changed(self, call: Call, media_state: m.CallMediaState | None) -> None:
        """Graph reported a new ``mediaState`` of the call (audio active or inactive)."""
        ...

    async def call_ended(self, call: Call) -> None:
        """The call is over: release its media."""
        ...

    async def hanging_up(self, call: Call) -> None:
        """The bot is about to hang ``call`` up (it is shutting down): finish
        what must be said while the call is still up (a recorder reports
        ``notRecording``)."""
        ...

    async def media_unused(self, blob: str) -> None:
        """The request that carried ``blob`` failed (Graph refused it, or it was
        never sent): release what :meth:`media_config` made for it."""
        ...


def source_map(call: Call) -> list[Source]:
    """The call's media sources from its roster (the bot's own streams left out)."""
    return sources_of(call.participants, call.my_participant_id, call_id=call.id)


def sources_of(
    participants: Iterable[m.Participant], me: str | None = None, *, call_id: str | None = None
) -> list[Source]:
    """Media sources of ``participants`` (``me``, the bot's own participant,
    left out). A camera or screen-sharing stream is active while its
    direction sends (``sendOnly``/``sendReceive``): a camera that is off or a
    screen nobody shares is listed as inactive, and is not subscribed."""
    out: list[Source] = []
    for p in participants:
        if p.id is None or (me is not None and p.id == me):
            continue
        name = p.display_name
        for ms in p.media_streams or []:
            kind = _KINDS.get((ms.media_type or "").lower())
            if kind is None or ms.source_id in (None, ""):
                continue
            try:
                sid = int(ms.source_id)
            except ValueError:
                log.warning(
                    "call %s: participant %s has a non-numeric sourceId %r", call_id, p.id, ms.source_id
                )
                continue
            if not 0 <= sid <= 0xFFFFFFFF:
                continue
            active = kind == "audio" or (ms.direction or "") in ("sendOnly", "sendReceive")
            out.append(Source(sid, p.id, name, kind, active))
    return out


ProcessorFactory = Callable[["Call"], Sequence[Processor]]


class CallMediaProvider:
    """Binds each :class:`~bot.calls.Call` to a :class:`mediacore.CallMedia`.

    ``processors(call)`` makes the processors of a new call (fresh objects per
    call); ``output_dir``: each call's processors write under
    ``output_dir/<call id>``. ``on_media(call, media)`` (optional) is called
    once a call's media is bound, for a bot that reads streams itself.

    Recording status: a processor with ``report_recording_status = True`` (the
    built-in ``recorder``) is started only once the call is established and
    Graph has accepted ``updateRecordingStatus`` ``recording``; it is not
    started when Graph refuses. :meth:`stop_recording` stops it and then
    reports ``notRecording`` — a bot calls it before it hangs up, because
    "if your application begins recording any meeting, it must end the
    recording prior to calling the updateRecordingStatus API to indicate that
    the recording has ended"
    (https://learn.microsoft.com/graph/api/call-updaterecordingstatus). A call
    that ends under the recorder (the remote hung up) stops it with the call;
    there is no call left to report to.
    """

    def __init__(
        self,
        host: MediaHost,
        processors: ProcessorFactory | None = None,
        *,
        output_dir: str | Path | None = None,
        mixed: bool = False,
        video: bool = True,
        screen_share: bool = True,
        send_video: bool = False,
        on_media: Callable[[Call, CallMedia], Any] | None = None,
    ) -> None:
        self.host = host
        self.processors = processors
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.mixed = mixed
        self.video = video
        self.screen_share = screen_share
        self.send_video = send_video
        self.on_media = on_media
        self._by_blob: dict[str, CallMedia] = {}
        #: call id -> its processors' results, for the last ``keep_results`` calls
        self.results: dict[str, dict[str, Any]] = {}
        self.keep_results = 256
        #: call id -> recorders waiting for the call to be established / running
        self._pending_recorders: dict[str, list[Processor]] = {}
        self._recording: dict[str, list[Any]] = {}

    def media_for(self, call: Call | str) -> CallMedia | None:
        """The media of a call (by :class:`Call` or call id)."""
        call_id = call if isinstance(call, str) else call.id
        return self.host.get(call_id)

    async def media_config(self, call: Call | None) -> str:
        media = self.host.create_call(
            call.id if call is not None else None,
            mixed=self.mixed,
            video=self.video,
            screen_share=self.screen_share,
            send_video=self.send_video,
        )
        blob = media.config_blob()
        self._by_blob[blob] = media
        return blob

    async def call_started(self, call: Call, blob: str) -> None:
        media = self._by_blob.pop(blob, None)
        if media is None:
            log.warning("call %s: its media configuration was not made here", call.id)
            return
        if media.call_id != call.id:
            self.host.rename_call(media.call_id, call.id)
        if self.output_dir is not None:
            media.output_dir = self.output_dir / _safe(call.id)
        media.update_sources(source_map(call))
        for processor in self.processors(call) if self.processors else ():
            if getattr(processor, "report_recording_status", False):
                self._pending_recorders.setdefault(call.id, []).append(processor)
                continue
            try:
                media.add_processor(processor)
            except Exception:
                log.exception("call %s: processor %s did not start", call.id, type(processor).__name__)
        if self.on_media is not None:
            self.on_media(call, media)
        if call.state == "established":
            await self._start_recording(call)

    async def _start_recording(self, call: Call) -> None:
        """Report ``recording`` through Graph, then start the call's recorders."""
        recorders = self._pending_recorders.pop(call.id, None)
        media = self.host.get(call.id)
        if not recorders or media is None or call.is_terminated:
            return
        try:
            await call.update_recording_status("recording")
        except Exception:
            log.exception("call %s: updateRecordingStatus(recording) failed: not recording", call.id)
            return
        loop = asyncio.get_running_loop()
        runners = self._recording.setdefault(call.id, [])
        for processor in recorders:
            try:  # a worker process takes a moment to start: off the event loop
                runners.append(await loop.run_in_executor(None, media.add_processor, processor))
            except Exception:
                log.exception("call %s: recorder %s did not start", call.id, type(processor).__name__)
        log.info("call %s: recording (%d recorder(s))", call.id, len(runners))

    async def stop_recording(self, call: Call, *, status: str = "notRecording") -> dict[str, Any]:
        """Stop the call's recorders (their files complete), then report
        ``status`` (``notRecording``, or ``failed``) through Graph; returns the
        recorders' results. Nothing is reported when nothing was recording."""
        self._pending_recorders.pop(call.id, None)
        runners = self._recording.pop(call.id, [])
        media = self.host.get(call.id)
        results: dict[str, Any] = {}
        loop = asyncio.get_running_loop()
        for runner in runners:
            if media is not None:
                results[runner.name] = await loop.run_in_executor(None, media.remove_processor, runner)
        if runners and not call.is_terminated:
            await call.update_recording_status(status)
        return results

    async def participants_changed(self, call: Call, change: RosterChange) -> None:
        media = self.host.get(call.id)
        if media is not None:
            media.update_sources(source_map(call))

    async def media_state_changed(self, call: Call, media_state: m.CallMediaState | None) -> None:
        log.info("call %s: media state %s", call.id, media_state.to_dict() if media_state else None)
        if call.id in self._pending_recorders and call.state == "established":
            await self._start_recording(call)

    async def call_ended(self, call: Call) -> None:
        self._pending_recorders.pop(call.id, None)
        if self._recording.pop(call.id, None):
            log.info("call %s ended while recording: the recorders stop with it", call.id)
        media = self.host.get(call.id)
        if media is not None:
            self.results[call.id] = await media.aclose("call ended")
            while len(self.results) > self.keep_results:
                self.results.pop(next(iter(self.results)))

    async def hanging_up(self, call: Call) -> None:
        if self._recording.get(call.id):
            await self.stop_recording(call)

    async def media_unused(self, blob: str) -> None:
        media = self._by_blob.pop(blob, None)
        if media is not None:
            await media.aclose("never started")

    def close(self) -> None:
        for media in self._by_blob.values():  # made for calls that never started
            media.close("never started")
        self._by_blob.clear()


def _safe(call_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in call_id)


# ---- from the configuration file ([media], [[processors]], [output]) --------------------------


@dataclass
class MediaPlan:
    """A configuration's app-hosted media, checked against mediacore, nothing bound yet:
    :meth:`open` binds the UDP port and starts the audio path."""

    settings: MediaSettings
    #: (the entry's name for messages, a function making a fresh processor), in file order
    factories: list[tuple[str, Callable[[], Processor]]] = field(default_factory=list)
    output_dir: Path | None = None

    def processors(self, call: Call) -> list[Processor]:
        """Fresh processors for a new call, one per ``[[processors]]`` entry."""
        return [make() for _, make in self.factories]

    def open(self) -> CallMediaProvider:
        """The :class:`MediaHost` (binds ``[media] bind_address:port``) and the provider on it.
        Raises ``OSError`` / :class:`mediacore.MediacoreError` when the port cannot be had."""
        s = self.settings
        host = MediaHost(
            s.bind_address,
            s.port,
            public_address=s.public_address,
            public_port=s.public_port,
            srtp_profile=s.srtp_profile,
            audio_workers=s.audio_workers,
        )
        try:
            if self.output_dir is not None:
                self.output_dir.mkdir(parents=True, exist_ok=True)
            return CallMediaProvider(
                host,
                self.processors if self.factories else None,
                output_dir=self.output_dir,
                mixed=s.mixed,
                video=s.video,
                screen_share=s.screen_share,
            )
        except BaseException:
            host.close()
            raise


def media_plan(config: BotConfig) -> MediaPlan | None:
    """Check ``[media]`` and ``[[processors]]`` with mediacore (the SRTP profile; each processor's
    name or ``package.module:Class``, its option names and values, through
    :func:`mediacore.processors.processor_factory`) and make ``[output] dir``; ``None`` without
    ``[media]`` (service-hosted media). Raises :class:`~bot.config.ConfigError` naming the file
    and key. bot/config.py checks the rest as plain data: it never imports mediacore."""
    if config.media is None:
        return None
    from mediacore.engine import SRTP_KEY_LENGTHS
    from mediacore.processors import ProcessorSpecError, processor_factory, resolve

    s = config.media
    if s.srtp_profile not in SRTP_KEY_LENGTHS:
        raise ConfigError(
            f"{config.source}: [media] srtp_profile: unknown SRTP profile "
            f"{s.srtp_profile!r} (known: {', '.join(SRTP_KEY_LENGTHS)})"
        )
    factories = []
    for entry in config.processors:
        try:
            cls = resolve(entry.name)
        except ProcessorSpecError as e:
            raise ConfigError(f"{entry.where} name: {e}") from None
        params = inspect.signature(cls).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            allowed = [
                n
                for n, p in params.items()
                if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            ]
            for key in entry.options:
                if key not in allowed:
                    raise ConfigError(
                        f"{entry.where} {key}: not an option of processor {entry.name!r} "
                        f"(options: {', '.join(allowed) or 'none'})"
                    )
        try:
            make = processor_factory(entry.name, entry.options)
        except ProcessorSpecError as e:
            raise ConfigError(f"{entry.where}: {e}") from None
        factories.append((f"{entry.where} {entry.name}", make))
    out = config.output.dir
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"{config.source}: [output] dir: cannot create {str(out)!r}: {e.strerror or e}"
            ) from None
    elif factories:
        log.warning("%s: [[processors]] without [output] dir: their files are not written", config.source)
    return MediaPlan(s, factories, out)

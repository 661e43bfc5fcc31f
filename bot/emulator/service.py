"""The calls service: what each Graph operation does to calls, participants and operations, and the
notification sequence it produces, as the Graph pages describe them: call states on
https://learn.microsoft.com/graph/api/resources/call, operations on
https://learn.microsoft.com/graph/api/resources/commsoperation, notifications on
https://learn.microsoft.com/graph/api/resources/commsnotification, and each action on its own page."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import logging
import math
import secrets
import struct
import time
import urllib.parse
import wave
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from .auth import AppRegistration
from .notify import Notifier, envelope
from .state import (
    CALL_TYPE,
    INVITATION_INFO_TYPE,
    PARTICIPANT_INFO_TYPE,
    RESULT_INFO_TYPE,
    TONE_INFO_TYPE,
    TONE_KEYS,
    TONES,
    Call,
    MediaStream,
    Meeting,
    Operation,
    Participant,
    compact_id,
    identity,
    identity_key,
    new_id,
    next_source_id,
)

log = logging.getLogger(__name__)

REJECT_REASONS = ("none", "busy", "forbidden")
# modality (resources/call "requestedModalities"; call-answer "acceptedModalities")
REQUESTED_MODALITIES = ("unknown", "audio", "video", "videoBasedScreenSharing", "data")
ACCEPTED_MODALITIES = ("audio", "video", "videoBasedScreenSharing")
MEDIA_CONFIG_TYPES = ("#microsoft.graph.appHostedMediaConfig", "#microsoft.graph.serviceHostedMediaConfig")
SCREEN_SHARING_ROLES = ("viewer", "sharer")
RECORDING_STATUSES = ("notRecording", "recording", "failed")
RESULT_OK = (200, 0, "Action completed successfully.")
RESULT_MAX_RECORD = (200, 8515, "Action completed, max record duration reached.")
RESULT_CANCELED = (400, 8508, "Action failed, the operation was cancelled.")


class GraphError(Exception):
    """Becomes a Graph error body: ``{"error":{"code","message","innerError":{...}}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class MediaHandler(Protocol):
    """Pluggable media side: receives a call's appHostedMediaConfig blob once the call is set up."""

    async def call_started(self, call: Call, blob: str | None) -> None: ...

    async def call_ended(self, call: Call) -> None: ...


def result_info(
    code: Any, subcode: int | None, message: str | None, *, subcode_name: str = "subcode"
) -> dict:
    body: dict[str, Any] = {"@odata.type": RESULT_INFO_TYPE, "code": code}
    if subcode is not None:
        body[subcode_name] = subcode
    if message is not None:
        body["message"] = message
    return body


def _enum(value: Any, allowed: tuple[str, ...], name: str) -> str:
    """Case-insensitive enum check (the docs spell the same values Busy/busy)."""
    if isinstance(value, str):
        for option in allowed:
            if option.lower() == value.lower():
                return option
    raise GraphError(400, "BadRequest", f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _require(body: dict, name: str) -> Any:
    value = body.get(name)
    if value is None:
        raise GraphError(400, "BadRequest", f"missing required parameter {name!r}")
    return value


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_callback_uri(url: Any, name: str, *, allow_http_loopback: bool) -> str:
    """An absolute https URL (or http to a loopback host when the emulator allows it)."""
    if not isinstance(url, str):
        raise GraphError(400, "BadRequest", f"{name} must be a string")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() == "https" and parts.hostname:
        return url
    if parts.scheme.lower() == "http" and allow_http_loopback and _is_loopback(parts.hostname):
        return url
    hint = (
        " (plain http only to a loopback address, with ServiceOptions(allow_http_callbacks=True) / "
        "--allow-http-callbacks)"
    )
    raise GraphError(400, "BadRequest", f"{name} must be an https URL, not {url!r}{hint}")


def check_media_config(value: Any) -> dict:
    """``mediaConfig`` is abstract: the body must name appHostedMediaConfig or serviceHostedMediaConfig."""
    if not isinstance(value, dict):
        raise GraphError(400, "BadRequest", "mediaConfig must be an object")
    odata = value.get("@odata.type")
    if not isinstance(odata, str) or odata.lower().lstrip("#") not in {
        t.lower().lstrip("#") for t in MEDIA_CONFIG_TYPES
    }:
        raise GraphError(
            400,
            "BadRequest",
            "mediaConfig needs an @odata.type of #microsoft.graph.appHostedMediaConfig "
            f"or #microsoft.graph.serviceHostedMediaConfig, got {odata!r}",
        )
    return value


def check_modalities(value: Any, allowed: tuple[str, ...], name: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise GraphError(400, "BadRequest", f"{name} must be a non-empty array of {', '.join(allowed)}")
    return [_enum(v, allowed, name) for v in value]


def wav_bytes(duration_s: float, frequency_hz: float = 440.0, sample_rate_hz: int = 16000) -> bytes:
    """A mono 16-bit WAV (the documented prompt/recording format) holding a quiet tone."""
    n = int(duration_s * sample_rate_hz)
    amplitude = 3000
    step = 2 * math.pi * frequency_hz / sample_rate_hz
    frames = struct.pack(f"<{n}h", *(int(amplitude * math.sin(step * i)) for i in range(n)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate_hz)
        w.writeframes(frames)
    return out.getvalue()


@dataclass
class ServiceOptions:
    time_scale: float = 0.01  # seconds of emulator time per documented second (prompts, records, DTMF)
    prompt_duration_s: float = 1.0  # documented seconds each prompt plays
    answer_timeout_s: float = 15.0  # real seconds an incoming call waits for answer/reject/redirect
    establish_delay_s: float = 0.0  # real seconds between establishing and established
    keepalive_timeout_s: float = 45 * 60.0  # a call with no keepAlive for this long is ended
    unreachable_ids: set[str] = field(default_factory=set)  # transfer/invite targets that fail
    enforce_media_mode: bool = True  # playPrompt etc. need service-hosted media, screen sharing app-hosted
    # The documented limitation: after a P2P call is escalated (invite with replacesCallId) roster
    # updates may be missing. False reproduces it (the bot must GET the participants).
    roster_after_escalation: bool = False
    # invite.multiple.notification.*: inviting several people, the operation and roster
    # notifications come on ".../operations/participants" and the operation id is null.
    invite_multiple_quirk: bool = False
    # Graph requires https callback URIs (call resource: "Must be an HTTPS URL"; answer, reject,
    # redirect: "This must be https"). True also accepts plain http to a loopback address
    # (127.0.0.0/8, ::1, localhost): a bot and its emulator on one machine, without TLS.
    # CLI: --allow-http-callbacks.
    allow_http_callbacks: bool = False


@dataclass
class _MediaQueue:
    pending: list[Operation] = field(default_factory=list)
    running: Operation | None = None
    task: asyncio.Task | None = None
    interrupt: asyncio.Event = field(default_factory=asyncio.Event)
    stop_tone: str | None = None


class CallsService:
    """Every call the emulator knows, and what happens to it."""

    def __init__(
        self,
        notifier: Notifier,
        apps: dict[str, AppRegistration],
        options: ServiceOptions,
        media_handler: MediaHandler | None = None,
    ) -> None:
        self.notifier = notifier
        self.apps = apps
        self.options = options
        self.media_handler = media_handler
        self.calls: dict[str, Call] = {}
        self.ended: dict[str, Call] = {}
        self.meetings: dict[str, Meeting] = {}
        self.recordings: dict[str, tuple[str, bytes]] = {}  # operation id -> (access token, wav)
        self.recording_audio: bytes | None = None  # what recordResponse "hears"; a tone otherwise
        self.public_base = ""  # set by the server once it listens (recordingLocation)
        self._media: dict[str, _MediaQueue] = {}
        self._tasks: set[asyncio.Task] = set()
        self._answer_timers: dict[str, asyncio.TimerHandle] = {}
        self._keepalive_timers: dict[str, asyncio.TimerHandle] = {}

    # -- plumbing ------------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task: asyncio.Task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("emulator task failed", exc_info=task.exception())

    async def stop(self) -> None:
        for timer in [*self._answer_timers.values(), *self._keepalive_timers.values()]:
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until background sequences have run and every notification has been attempted."""

        async def _settle() -> None:
            while True:
                current = [t for t in self._tasks if not t.done() and t not in self._media_tasks()]
                if current:
                    await asyncio.gather(*current, return_exceptions=True)
                    continue
                await self.notifier.drain(timeout_s)
                if not [t for t in self._tasks if not t.done() and t not in self._media_tasks()]:
                    return

        await asyncio.wait_for(_settle(), timeout_s)

    def _media_tasks(self) -> set[asyncio.Task]:
        return {q.task for q in self._media.values() if q.task is not None}

    def callback_url(self, call_id: str) -> str | None:
        call = self.calls.get(call_id) or self.ended.get(call_id)
        if call is None:
            return None
        if call.callback_uri:
            return call.callback_uri
        app = self.apps.get(call.app_id)
        return app.webhook_url if app else None

    def redirect_callback(self, call_id: str, location: str) -> None:
        call = self.calls.get(call_id) or self.ended.get(call_id)
        if call is not None:
            call.callback_uri = location

    def notify(self, call: Call, body: dict) -> None:
        app = self.apps.get(call.app_id)
        # tid: the tenant the bot's app lives in (and its calls are authorised for).
        tenant_id = app.tenant_id if app is not None else call.tenant_id
        self.notifier.enqueue(
            call.id,
            body,
            app_id=call.app_id,
            tenant_id=tenant_id,
            scenario_id=call.scenario_id,
            chain_id=call.call_chain_id,
        )

    def get_call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            for key, value in self.calls.items():
                if key.lower() == call_id.lower():
                    return value
            raise GraphError(404, "ItemNotFound", f"call {call_id} was not found or has ended")
        return call

    def _sleep_doc(self, documented_s: float) -> Awaitable[None]:
        return asyncio.sleep(max(0.0, documented_s * self.options.time_scale))

    # -- state notifications -------------------------------------------------------------------
    def _state_update(self, call: Call, state: str, *, etag: bool = False, **extra: Any) -> None:
        call.state = state
        data: dict[str, Any] = {"@odata.type": CALL_TYPE}
        if etag:
            data["@odata.id"] = call.resource_url
            data["@odata.etag"] = f'W/"{call.roster_sequence + 5445}"'
        data["state"] = state
        if call.direction == "outgoing":
            data["direction"] = call.direction
        if call.kind == "meeting" and call.chat_info is not None:
            data["chatInfo"] = call.chat_info
            data["meetingInfo"] = call.meeting_info
        data.update(extra)
        data["id"] = call.id
        self.notify(
            call, envelope("updated", call.resource_url, data, callback_uri=self._item_callback(call))
        )

    def _item_callback(self, call: Call) -> str | None:
        # Notifications of outgoing calls carry the callbackUri next to resourceUrl (createCall.*,
        # joinMeeting.*); those of answered calls do not (answer.*).
        return self.callback_url(call.id) if call.direction == "outgoing" else None

    def _end(self, call: Call, data: dict) -> None:
        """The final ``deleted`` notification, exactly once per call."""
        if call.id not in self.calls:
            return
        call.state = "terminated"
        del self.calls[call.id]
        self.ended[call.id] = call
        for timers in (self._answer_timers, self._keepalive_timers):
            timer = timers.pop(call.id, None)
            if timer is not None:
                timer.cancel()
        queue = self._media.pop(call.id, None)
        if queue is not None and queue.task is not None:
            queue.task.cancel()
        self.notify(call, envelope("deleted", call.resource_url, data))
        if self.media_handler is not None and call.is_app_hosted:
            self.spawn(self.media_handler.call_ended(call))

    def _arm_keepalive(self, call: Call) -> None:
        timer = self._keepalive_timers.pop(call.id, None)
        if timer is not None:
            timer.cancel()
        self._keepalive_timers[call.id] = asyncio.get_running_loop().call_later(
            self.options.keepalive_timeout_s, self._keepalive_expired, call.id
        )

    def _keepalive_expired(self, call_id: str) -> None:
        self._keepalive_timers.pop(call_id, None)
        call = self.calls.get(call_id)
        if call is not None:
            self.end_by_remote(call, "The call was ended: no keepAlive was received in time.")

    async def _establish(self, call: Call, *, etag: bool) -> None:
        self._arm_keepalive(call)
        self._state_update(call, "establishing", etag=etag)
        if self.options.establish_delay_s:
            await asyncio.sleep(self.options.establish_delay_s)
        if call.id not in self.calls:
            return
        self._state_update(call, "established", etag=etag)
        if self.media_handler is not None and call.is_app_hosted:
            await self.media_handler.call_started(call, (call.media_config or {}).get("blob"))
        if call.has_roster:
            self.send_roster(call, call.roster())

    # -- roster --------------------------------------------------------------------------------
    def send_roster(
        self,
        call: Call,
        changed: list[Participant],
        removed: list[Participant] | None = None,
        *,
        resource_suffix: str = "/participants",
        legacy_resource: bool = False,
    ) -> None:
        if not call.has_roster or call.id not in self.calls:
            return
        call.roster_sequence += 1
        if call.delta_roster:
            people = [p.to_graph() for p in changed]
            for p in removed or []:
                gone = p.to_graph()
                gone["removedState"] = {"@odata.type": "#microsoft.graph.removedState", "reason": "left"}
                people.append(gone)
            data: Any = [
                {
                    "@odata.type": "#microsoft.graph.deltaParticipants",
                    "sequenceNumber": call.roster_sequence,
                    "participants": people,
                }
            ]
        else:
            data = [p.to_graph() for p in (call.roster() if removed else changed)]
        self.notify(
            call,
            envelope(
                "updated",
                call.resource_url + resource_suffix,
                data,
                callback_uri=self._item_callback(call),
                legacy_resource=legacy_resource,
            ),
        )

    def _bot_participant(self, call: Call, app: AppRegistration | None) -> Participant:
        streams = [MediaStream("audio", next_source_id(), label="main-audio")]
        if "video" in call.requested_modalities and call.meeting is not None:
            streams.append(MediaStream("video", call.meeting.next_source_id(), "receiveOnly"))
        return Participant(
            id=call.my_participant_id,
            identity=identity("application", call.app_id, app.display_name if app else None),
            media_streams=streams,
            language_id=None,
            is_bot=True,
        )

    def _simulated(
        self,
        identity_set: dict,
        source_id: str,
        *,
        info_type: str = PARTICIPANT_INFO_TYPE,
        video_source_id: str | None = None,
    ) -> Participant:
        streams = [MediaStream("audio", source_id)]
        if video_source_id is not None:
            streams.append(MediaStream("video", video_source_id, "sendOnly"))
        return Participant(id=new_id(), identity=identity_set, media_streams=streams, info_type=info_type)

    # -- create / incoming ---------------------------------------------------------------------
    def _callback(self, url: Any, name: str) -> str:
        return check_callback_uri(url, name, allow_http_loopback=self.options.allow_http_callbacks)

    def create_call(self, body: dict, *, app_id: str, tenant_id: str, scenario_id: str | None) -> Call:
        media_config = check_media_config(_require(body, "mediaConfig"))
        meeting_info = body.get("meetingInfo")
        chat_info = body.get("chatInfo")
        targets = body.get("targets") or []
        callback_uri = body.get("callbackUri")
        app = self.apps.get(app_id)
        if not callback_uri and not (app and app.webhook_url):
            raise GraphError(400, "BadRequest", "callbackUri is required (the bot has no registered webhook)")
        if callback_uri:
            self._callback(callback_uri, "callbackUri")
        else:
            self._callback(app.webhook_url, "the bot's registered calling webhook")  # type: ignore[union-attr]
        modalities = check_modalities(
            body.get("requestedModalities"), REQUESTED_MODALITIES, "requestedModalities"
        )
        if not all(isinstance(t, dict) for t in targets):
            raise GraphError(400, "BadRequest", "targets must hold invitationParticipantInfo objects")
        tenant = body.get("tenantId") or tenant_id
        targets = [
            {**t, **{k: t.get(k) for k in ("endpointType", "region", "replacesCallId", "languageId")}}
            for t in targets
        ]
        source = body.get("source")
        if source is not None:
            source = {
                **source,
                **{k: source.get(k) for k in ("countryCode", "endpointType", "region", "languageId")},
            }
        call = Call(
            id=new_id(),
            app_id=app_id,
            tenant_id=tenant,
            direction="outgoing",
            callback_uri=callback_uri,
            source=source
            or {
                "@odata.type": PARTICIPANT_INFO_TYPE,
                "identity": identity("application", app_id, app.display_name if app else None),
                "countryCode": None,
                "endpointType": None,
                "region": None,
                "languageId": None,
            },
            targets=targets,
            requested_modalities=modalities,
            media_config=media_config,
            subject=body.get("subject"),
            call_options=body.get("callOptions"),
            scenario_id=scenario_id,
        )
        if meeting_info is not None or chat_info is not None:
            meeting = self._find_meeting(meeting_info, chat_info, tenant)
            call.kind = "meeting"
            call.meeting = meeting
            call.chat_info = meeting.chat_info()
            call.meeting_info = meeting_info or meeting.organizer_meeting_info()
            call.participants = dict(meeting.participants)
        elif not targets:
            raise GraphError(400, "BadRequest", "targets are required unless joining a meeting")
        elif len(targets) > 1 or str(body.get("direction", "")).lower() == "outgoing" and body.get("subject"):
            if len(targets) > 5:
                raise GraphError(400, "BadRequest", "a group call takes at most 5 targets")
            call.kind = "group"
            call.meeting = Meeting(id=new_id(), thread_id="", organizer_id=app_id, tenant_id=tenant)
            for target in targets:
                person = self._simulated(target.get("identity") or {}, call.meeting.next_source_id())
                call.participants[person.id] = person  # type: ignore[index]
        else:
            target = targets[0]
            remote = self._simulated(target.get("identity") or {}, next_source_id())
            call.participants[remote.id] = remote  # type: ignore[index]
        call.bot = self._bot_participant(call, app)
        self.calls[call.id] = call
        self.spawn(self._establish(call, etag=False))
        return call

    def _find_meeting(self, meeting_info: dict | None, chat_info: dict | None, tenant_id: str) -> Meeting:
        odata = str((meeting_info or {}).get("@odata.type", "")).lower()
        for meeting in self.meetings.values():
            if odata.endswith("joinmeetingidmeetinginfo"):
                if meeting.join_meeting_id == str(meeting_info.get("joinMeetingId")):  # type: ignore[union-attr]
                    if meeting.passcode and meeting.passcode != meeting_info.get("passcode"):  # type: ignore[union-attr]
                        raise GraphError(403, "Forbidden", "wrong meeting passcode")
                    return meeting
            elif odata.endswith("tokenmeetinginfo"):
                if meeting.token and meeting.token == meeting_info.get("token"):  # type: ignore[union-attr]
                    return meeting
            elif chat_info and meeting.thread_id == chat_info.get("threadId"):
                return meeting
        if odata.endswith("joinmeetingidmeetinginfo") or odata.endswith("tokenmeetinginfo"):
            raise GraphError(404, "ItemNotFound", "no meeting matches the given meetingInfo")
        if not chat_info or not chat_info.get("threadId"):
            raise GraphError(400, "BadRequest", "chatInfo.threadId is required with organizerMeetingInfo")
        organizer = identity_key((meeting_info or {}).get("organizer"))
        meeting = Meeting(
            id=new_id(),
            thread_id=chat_info["threadId"],
            message_id=str(chat_info.get("messageId") or "0"),
            organizer_id=organizer[1] if organizer else new_id(),
            tenant_id=tenant_id,
        )
        self.meetings[meeting.id] = meeting
        return meeting

    def incoming_call(
        self,
        *,
        app_id: str,
        tenant_id: str,
        source: dict,
        modalities: list[str],
        meeting: Meeting | None = None,
        callback_uri: str | None = None,
        observed_participant_id: str | None = None,
    ) -> Call:
        """The platform rings the bot: a ``created`` notification to its registered webhook.
        ``observed_participant_id``: a policy-based recording call for that participant (of
        ``meeting``): the notification carries ``incomingContext`` (source and observed
        participant) and ``applicationMetadata.botData.inviteReasons`` ["PolicyBasedRecording"],
        as in the call-answer page's policy-based recording example."""
        app = self.apps.get(app_id)
        webhook = callback_uri or (app.webhook_url if app else None)
        if webhook:
            self._callback(webhook, "the bot's registered calling webhook")
        call = Call(
            id=new_id(),
            app_id=app_id,
            tenant_id=tenant_id,
            direction="incoming",
            callback_uri=callback_uri,
            source={
                "@odata.type": PARTICIPANT_INFO_TYPE,
                "identity": source,
                "region": "amer",
                "languageId": "en-US",
            },
            targets=[
                {
                    "@odata.type": INVITATION_INFO_TYPE,
                    "identity": identity("application", app_id, app.display_name if app else None),
                    "endpointType": "default",
                    "region": None,
                    "languageId": None,
                }
            ],
            requested_modalities=modalities,
            media_config=None,
            state="incoming",
        )
        if meeting is not None:
            call.kind = "meeting"
            call.meeting = meeting
            call.chat_info = meeting.chat_info()
            call.meeting_info = meeting.organizer_meeting_info()
            call.participants = dict(meeting.participants)
        else:
            caller = Participant(
                id=new_id(), identity=source, media_streams=[MediaStream("audio", next_source_id())]
            )
            call.participants[caller.id] = caller  # type: ignore[index]
        call.targets[0]["id"] = call.my_participant_id
        if observed_participant_id is not None:
            call.incoming_extra = {
                "incomingContext": {
                    "@odata.type": "#microsoft.graph.incomingContext",
                    "sourceParticipantId": observed_participant_id,
                    "observedParticipantId": observed_participant_id,
                },
                "applicationMetadata": {"botData": {"inviteReasons": ["PolicyBasedRecording"]}},
            }
        self.calls[call.id] = call
        data = {
            "@odata.type": CALL_TYPE,
            "@odata.id": call.resource_url,
            "@odata.etag": 'W/"5445"',
            "state": "incoming",
            "direction": "incoming",
            "callbackUri": call.callback_uri,
            "source": call.source,
            "targets": call.targets,
            "requestedModalities": modalities,
            "tenantId": tenant_id,
            "myParticipantId": call.my_participant_id,
            "callChainId": call.call_chain_id,
            "id": call.id,
        }
        if call.chat_info is not None:
            data["chatInfo"] = call.chat_info
            data["meetingInfo"] = call.meeting_info
        data.update(call.incoming_extra)
        self.notify(call, envelope("created", call.resource_url, data))
        self._answer_timers[call.id] = asyncio.get_running_loop().call_later(
            self.options.answer_timeout_s, self._unanswered, call.id
        )
        return call

    def _unanswered(self, call_id: str) -> None:
        self._answer_timers.pop(call_id, None)
        call = self.calls.get(call_id)
        if call is not None and call.state == "incoming":
            call.result_info = result_info(408, 0, "The call was not answered in time.")
            self._end(
                call,
                {
                    "@odata.type": CALL_TYPE,
                    "state": "terminated",
                    "resultInfo": call.result_info,
                    "id": call.id,
                },
            )

    def _require_incoming(self, call: Call, action: str) -> None:
        if call.state != "incoming":
            raise GraphError(
                400, "BadRequest", f"{action} is only valid for an incoming call (state {call.state})"
            )
        timer = self._answer_timers.pop(call.id, None)
        if timer is not None:
            timer.cancel()

    # -- answer / reject / redirect ------------------------------------------------------------
    def answer(self, call: Call, body: dict) -> None:
        modalities = check_modalities(
            _require(body, "acceptedModalities"), ACCEPTED_MODALITIES, "acceptedModalities"
        )
        media_config = check_media_config(_require(body, "mediaConfig"))
        if body.get("callbackUri") is not None:
            self._callback(body["callbackUri"], "callbackUri")
        self._require_incoming(call, "answer")
        call.media_config = media_config
        call.requested_modalities = modalities
        call.callback_uri = body.get("callbackUri") or call.callback_uri
        call.call_options = body.get("callOptions")
        call.bot = self._bot_participant(call, self.apps.get(call.app_id))
        call.state = "establishing"
        self.spawn(self._establish(call, etag=True))

    def reject(self, call: Call, body: dict) -> None:
        _enum(body.get("reason", "none"), REJECT_REASONS, "reason")
        if body.get("callbackUri") is not None:
            self._callback(body["callbackUri"], "callbackUri")
        self._require_incoming(call, "reject")
        if body.get("callbackUri"):
            call.callback_uri = body["callbackUri"]
        self._end(call, {"@odata.type": CALL_TYPE, "@odata.id": call.resource_url})

    def redirect(self, call: Call, body: dict) -> None:
        targets = _require(body, "targets")
        if not isinstance(targets, list) or not 1 <= len(targets) <= 25:
            raise GraphError(400, "BadRequest", "redirect takes 1 to 25 targets")
        timeout = body.get("timeout")
        if timeout is not None and not (isinstance(timeout, int) and 15 <= timeout <= 90):
            raise GraphError(400, "BadRequest", "timeout must be 15-90 seconds")
        if body.get("callbackUri") is not None:
            self._callback(body["callbackUri"], "callbackUri")
        self._require_incoming(call, "redirect")
        if body.get("callbackUri"):
            call.callback_uri = body["callbackUri"]
        data = {
            "@odata.type": CALL_TYPE,
            "state": "terminated",
            "direction": call.direction,
            "callbackUri": call.callback_uri,
            "source": call.source,
            "targets": call.targets,
            "tenantId": call.tenant_id,
            "myParticipantId": call.my_participant_id,
            "id": call.id,
        }
        if any("phone" in (t.get("identity") or {}) for t in targets):
            data["answeredBy"] = {
                "@odata.type": PARTICIPANT_INFO_TYPE,
                "identity": identity("encrypted", secrets.token_hex(22)),
                "endpointType": "default",
            }
        self._end(call, data)

    # -- hang up / keepAlive / transfer --------------------------------------------------------
    def hang_up(self, call: Call) -> None:
        self.spawn(self._hang_up(call))

    async def _hang_up(self, call: Call) -> None:
        if call.id not in self.calls:
            return
        self._cancel_media(call, notify=True)
        call.state = "terminating"
        self.notify(
            call, envelope("updated", call.resource_url, {"@odata.type": CALL_TYPE, "state": "terminating"})
        )
        call.result_info = result_info("0", None, None)
        self._end(call, {"@odata.type": CALL_TYPE, "state": "terminated", "resultInfo": call.result_info})

    def end_by_remote(
        self,
        call: Call,
        message: str = "The call was ended by the remote party.",
        *,
        code: Any = 0,
        subcode: int | None = 0,
    ) -> None:
        """The other side hangs up (or the meeting ends): ``terminated`` (deleted) with a resultInfo.
        By default 0/0 with this message (the emulator's own); the media side passes the documented
        call end reason codes (https://learn.microsoft.com/graph/api/call-delete, "Call end reason
        codes"): 200/5001 when the meeting ends, 500/1005 for the bot's media."""
        self._cancel_media(call, notify=True)
        call.result_info = result_info(code, subcode, message)
        self._end(call, {"@odata.type": CALL_TYPE, "state": "terminated", "resultInfo": call.result_info})

    def keep_alive(self, call_id: str) -> None:
        call = self.get_call(call_id)  # 404 once the call has ended
        if call.state != "incoming":
            self._arm_keepalive(call)

    def transfer(self, call: Call, body: dict) -> None:
        target = _require(body, "transferTarget")
        if call.state != "established":
            raise GraphError(400, "BadRequest", f"transfer needs an established call (state {call.state})")
        if call.kind != "p2p" and not body.get("transferee"):
            raise GraphError(
                400, "BadRequest", "transferee is required when transferring out of a group call"
            )
        self.spawn(self._transfer(call, target))

    async def _transfer(self, call: Call, target: dict) -> None:
        replaces = target.get("replacesCallId")
        consultative = bool(replaces) and replaces != "replacesCallId-value"
        self._state_update(call, "transferring")
        await self._sleep_doc(1.0)
        key = identity_key(target.get("identity"))
        if key is not None and key[1] in {i.lower() for i in self.options.unreachable_ids}:
            call.result_info = result_info(
                500, 7700 if consultative else 7000, "Transfer target did not answer.", subcode_name="subCode"
            )
            self._state_update(call, "established", resultInfo=call.result_info)
            return
        self._state_update(call, "transferAccepted")
        await self._sleep_doc(1.0)
        if consultative:
            self._end(
                call, {"@odata.type": CALL_TYPE, "state": "terminated", "terminationReason": "AppTransferred"}
            )
            other = self.calls.get(str(replaces))
            if other is not None:
                await self._hang_up(other)
        else:
            call.result_info = result_info(0, 7015, "GracefulTransferCompleted")
            self._end(call, {"@odata.type": CALL_TYPE, "state": "terminated", "resultInfo": call.result_info})

    # -- operations that complete at once ------------------------------------------------------
    def _completed(self, call: Call, kind: str, body: dict, **extra: Any) -> Operation:
        op = Operation(
            kind=kind,
            call_id=call.id,
            client_context=body.get("clientContext"),
            status="completed",
            extra=extra,
            request=body,
        )
        call.operations[op.id] = op
        return op

    def mute(self, call: Call, body: dict, *, mute: bool) -> Operation:
        op = self._completed(call, "mute" if mute else "unmute", body)
        if call.bot is not None and call.bot.is_muted != mute:
            call.bot.is_muted = mute
            self.send_roster(call, [call.bot])
        return op

    def participant_mute(self, call: Call, participant_id: str, body: dict) -> Operation:
        if call.kind == "p2p":
            raise GraphError(400, "BadRequest", "participant mute is only available in group calls")
        person = self._participant(call, participant_id)
        op = self._completed(call, "mute", body)
        if not person.is_muted:
            person.is_muted = True
            self.send_roster(call, [person])
        return op

    def mute_all(self, call: Call, body: dict) -> Operation:
        op = self._completed(call, "muteAll", body)
        ids = {str(i).lower() for i in body.get("participants") or [] if i}
        changed = [
            p
            for p in call.participants.values()
            if (not ids or (p.id or "").lower() in ids) and not p.is_muted
        ]
        for person in changed:
            person.is_muted = True
        if changed:
            self.send_roster(call, changed)
        return op

    def update_metadata(self, call: Call, body: dict) -> Operation:
        """Beta ``call: updateMetadata``: the application's metadata for the call, shown as its
        participant's ``metadata`` in the roster (a roster update follows)."""
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, str):
            raise GraphError(400, "BadRequest", "metadata must be a string")
        op = self._completed(call, "updateMetadata", body)
        if call.bot is not None and metadata is not None and call.bot.metadata != metadata:
            call.bot.metadata = metadata
            self.send_roster(call, [call.bot])
        return op

    def update_recording_status(self, call: Call, body: dict) -> Operation:
        _enum(_require(body, "status"), RECORDING_STATUSES, "status")
        # what the platform shows the participants (the recording banner): kept for tests
        call.recording_status.append((str(body["status"]), time.time()))
        return self._completed(call, "updateRecordingStatus", body, resultInfo=None)

    def subscribe_to_tone(self, call: Call, body: dict) -> Operation:
        self._service_hosted_only(call, "subscribeToTone")
        call.tone_subscribed = True
        return self._completed(call, "subscribeToTone", body)

    def change_screen_sharing_role(self, call: Call, body: dict) -> None:
        role = _enum(_require(body, "role"), SCREEN_SHARING_ROLES, "role")
        if self.options.enforce_media_mode and not call.is_app_hosted:
            raise GraphError(400, "BadRequest", "changeScreenSharingRole needs application-hosted media")
        bot = call.bot
        if bot is None:
            return
        stream = bot.stream("videoBasedScreenSharing")
        if stream is None:
            stream = MediaStream("videoBasedScreenSharing", next_source_id(), "receiveOnly")
            bot.media_streams.append(stream)
        stream.direction = "sendOnly" if role == "sharer" else "receiveOnly"
        stream.label = "applicationsharing-video" if role == "sharer" else None
        self.send_roster(call, [bot])

    # -- participants --------------------------------------------------------------------------
    def _participant(self, call: Call, participant_id: str) -> Participant:
        person = call.find_participant(participant_id)
        if person is None:
            raise GraphError(404, "ItemNotFound", f"participant {participant_id} is not in call {call.id}")
        return person

    def delete_participant(self, call: Call, participant_id: str) -> None:
        person = self._participant(call, participant_id)
        if person.is_bot:
            self.hang_up(call)
            return
        call.participants.pop(person.id, None)  # type: ignore[arg-type]
        self.send_roster(call, [], removed=[person])

    def invite(self, call: Call, body: dict) -> Operation:
        people = _require(body, "participants")
        if not isinstance(people, list) or not people:
            raise GraphError(400, "BadRequest", "participants must be a non-empty array")
        if call.kind == "p2p" and not any(p.get("replacesCallId") for p in people):
            raise GraphError(400, "BadRequest", "invite needs a group call (or replacesCallId to escalate)")
        if len(people) > 1 and call.chat_info is None:
            raise GraphError(400, "BadRequest", "inviting several participants needs a call with chatInfo")
        if len(people) > 5:
            raise GraphError(400, "BadRequest", "invite takes at most 5 participants")
        echoed = []
        for p in people:
            echoed.append(
                {
                    "endpointType": p.get("endpointType"),
                    "id": p.get("participantId"),
                    "replacesCallId": p.get("replacesCallId"),
                    "identity": p.get("identity"),
                }
            )
        op = Operation(
            kind="invite",
            call_id=call.id,
            client_context=body.get("clientContext"),
            status="Running",
            extra={"participants": echoed},
            request=body,
        )
        call.operations[op.id] = op
        self.spawn(self._invite(call, op, people))
        return op

    async def _invite(self, call: Call, op: Operation, people: list[dict]) -> None:
        await self._sleep_doc(1.0)
        if call.id not in self.calls:
            return
        unreachable = {i.lower() for i in self.options.unreachable_ids}
        invited = [p for p in people if (identity_key(p.get("identity")) or ("", ""))[1] not in unreachable]
        op.status = "completed" if invited else "failed"
        if not invited:
            op.result_info = result_info(408, 0, "The invited participant did not answer.")
        quirk = self.options.invite_multiple_quirk and len(people) > 1
        final: dict[str, Any] = {
            "@odata.type": op.odata_type,
            "participants": [
                {"@odata.type": INVITATION_INFO_TYPE, "identity": p.get("identity")} for p in people
            ],
            "status": op.status,
            "clientContext": op.client_context,
            "id": None if quirk else op.id,
        }
        if op.result_info is not None:
            final["resultInfo"] = op.result_info
        op_url = f"{call.resource_url}/operations/participants" if quirk else op.resource_url()
        suffix = "/operations/participants" if quirk else "/participants"
        self.notify(call, envelope("deleted", op_url, final, legacy_resource=True))
        if not invited:
            return
        # First the invitation shows up (id still null), then the people join with ids.
        pending = []
        for p in invited:
            source_id = next_source_id()
            person = self._simulated(p.get("identity") or {}, source_id, info_type=INVITATION_INFO_TYPE)
            person.endpoint_type = "default"
            person.language_id = None
            pending.append(person)
        joined_id = [p.id for p in pending]
        for person in pending:
            person.id = None
        call.kind = "group" if call.kind == "p2p" else call.kind
        escalation = any(p.get("replacesCallId") for p in people)
        roster = self.options.roster_after_escalation or not escalation
        if roster:
            self.send_roster(call, pending, resource_suffix=suffix, legacy_resource=True)
        for person, pid in zip(pending, joined_id):
            person.id = pid
            call.participants[pid] = person  # type: ignore[index]
        if roster:
            self.send_roster(call, pending, resource_suffix=suffix, legacy_resource=True)
        for p in people:
            replaced = self.calls.get(str(p.get("replacesCallId")))
            if replaced is not None and replaced is not call:
                await self._hang_up(replaced)

    # -- media operations (service-hosted media; queued and run in order) ----------------------
    def _service_hosted_only(self, call: Call, action: str) -> None:
        if self.options.enforce_media_mode and call.is_app_hosted:
            raise GraphError(400, "BadRequest", f"{action} needs service-hosted media")

    def _queue(self, call: Call) -> _MediaQueue:
        queue = self._media.get(call.id)
        if queue is None:
            queue = self._media[call.id] = _MediaQueue()
        return queue

    def _enqueue_media(self, call: Call, op: Operation, *, barge_in: bool = False) -> None:
        queue = self._queue(call)
        if barge_in:
            queue.pending.insert(0, op)
        else:
            queue.pending.append(op)
        if queue.task is None or queue.task.done():
            queue.task = self.spawn(self._media_worker(call, queue))

    def play_prompt(self, call: Call, body: dict) -> Operation:
        prompts = _require(body, "prompts")
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 20:
            raise GraphError(400, "BadRequest", "prompts must hold 1 to 20 mediaPrompt")
        self._service_hosted_only(call, "playPrompt")
        op = Operation(
            kind="playPrompt", call_id=call.id, client_context=body.get("clientContext"), request=body
        )
        call.operations[op.id] = op
        self._enqueue_media(call, op)
        return op

    def record_response(self, call: Call, body: dict) -> Operation:
        self._service_hosted_only(call, "recordResponse")
        if len(body.get("prompts") or []) > 1:
            raise GraphError(400, "BadRequest", "recordResponse takes at most one prompt")
        for name in (
            "initialSilenceTimeoutInSeconds",
            "maxSilenceTimeoutInSeconds",
            "maxRecordDurationInSeconds",
        ):
            value = body.get(name)
            if value is not None and not (isinstance(value, int) and 1 <= value <= 120):
                raise GraphError(400, "BadRequest", f"{name} must be 1-120")
        op = Operation(
            kind="recordResponse",
            call_id=call.id,
            client_context=body.get("clientContext"),
            extra={"recordingLocation": None},
            request=body,
        )
        call.operations[op.id] = op
        self._enqueue_media(call, op, barge_in=bool(body.get("bargeInAllowed")))
        return op

    def send_dtmf_tones(self, call: Call, body: dict) -> Operation:
        tones = _require(body, "tones")
        if not isinstance(tones, list) or not tones:
            raise GraphError(400, "BadRequest", "tones must be a non-empty array")
        for tone in tones:
            _enum(tone, TONES, "tone")
        op = Operation(
            kind="sendDtmfTones", call_id=call.id, client_context=body.get("clientContext"), request=body
        )
        call.operations[op.id] = op
        self._enqueue_media(call, op)
        return op

    def cancel_media_processing(self, call: Call, body: dict) -> Operation:
        op = self._completed(call, "cancelMediaProcessing", body)
        self._cancel_media(call, notify=True)
        return op

    def _cancel_media(self, call: Call, *, notify: bool) -> None:
        queue = self._media.get(call.id)
        if queue is None:
            return
        canceled = ([queue.running] if queue.running is not None else []) + queue.pending
        queue.pending = []
        queue.running = None
        if queue.task is not None:
            queue.task.cancel()
            queue.task = None
        if not notify:
            return
        for op in canceled:
            op.status = "failed"
            op.result_info = result_info(*RESULT_CANCELED)
            data = self._final(op)
            if op.kind == "recordResponse":
                data.update(
                    recordingLocation="", recordingAccessToken="", completionReason="operationCanceled"
                )
            elif op.kind == "sendDtmfTones":
                data.pop("resultInfo", None)
                data.update(status="completed", completionReason="mediaOperationCanceled")
            self.notify(call, envelope("deleted", op.resource_url(), data))

    def _final(self, op: Operation) -> dict:
        return {
            "@odata.type": op.odata_type,
            "@odata.id": op.resource_url(),
            "@odata.etag": 'W/"54451"',
            "id": op.id,
            "clientContext": op.client_context,
            "status": op.status,
            "resultInfo": op.result_info,
        }

    async def _media_worker(self, call: Call, queue: _MediaQueue) -> None:
        while queue.pending:
            op = queue.pending.pop(0)
            queue.running = op
            queue.stop_tone = None
            queue.interrupt.clear()
            if op.kind == "playPrompt":
                await self._sleep_doc(self.options.prompt_duration_s * len(op.request.get("prompts") or []))
                op.status = "completed"
                op.result_info = result_info(*RESULT_OK)
                data = self._final(op)
            elif op.kind == "sendDtmfTones":
                delay_ms = op.request.get("delayBetweenTonesMs") or 0
                await self._sleep_doc(len(op.request["tones"]) * max(0.1, delay_ms / 1000))
                op.status = "completed"
                data = self._final(op)
                data.pop("resultInfo")
                data["completionReason"] = "completedSuccessfully"
            else:
                data = await self._record(call, queue, op)
            queue.running = None
            self.notify(call, envelope("deleted", op.resource_url(), data))

    async def _record(self, call: Call, queue: _MediaQueue, op: Operation) -> dict:
        body = op.request
        if body.get("prompts"):
            await self._sleep_doc(self.options.prompt_duration_s)
        max_s = body.get("maxRecordDurationInSeconds") or 5
        started = asyncio.get_running_loop().time()
        try:
            await asyncio.wait_for(queue.interrupt.wait(), max_s * self.options.time_scale)
            reason, result = "stopToneDetected", (200, 8514, "Action completed, stop tone detected.")
        except asyncio.TimeoutError:
            reason, result = "maxRecordDurationReached", RESULT_MAX_RECORD
        elapsed = (asyncio.get_running_loop().time() - started) / max(self.options.time_scale, 1e-9)
        audio = self.recording_audio or wav_bytes(min(max_s, elapsed, 10.0) or 0.1)
        token = secrets.token_urlsafe(32)
        self.recordings[op.id] = (token, audio)
        op.status = "completed"
        op.result_info = result_info(*result)
        location = f"{self.public_base}/emulator/recordings/{op.id}"
        op.extra.update(recordingLocation=location, recordingAccessToken=token)
        data = self._final(op)
        data.update(recordingLocation=location, recordingAccessToken=token, completionReason=reason)
        return data

    # -- simulated people ----------------------------------------------------------------------
    def press_tones(self, call: Call, tones: list[str]) -> int:
        """A participant presses keys; returns how many tone notifications were sent."""
        sent = 0
        for raw in tones:
            tone = TONE_KEYS.get(raw, raw)
            tone = _enum(tone, TONES, "tone")
            queue = self._media.get(call.id)
            if queue is not None and queue.running is not None and queue.running.kind == "recordResponse":
                stops = {TONE_KEYS.get(t, t) for t in queue.running.request.get("stopTones") or []}
                if tone in stops:
                    queue.interrupt.set()
            if not call.tone_subscribed:
                continue
            call.tone_sequence += 1
            call.tone_info = {"@odata.type": TONE_INFO_TYPE, "sequenceId": call.tone_sequence, "tone": tone}
            self.notify(
                call,
                envelope(
                    "updated",
                    call.resource_url,
                    {"@odata.type": CALL_TYPE, "state": call.state, "toneInfo": call.tone_info},
                ),
            )
            sent += 1
        return sent

    def meeting_calls(self, meeting: Meeting) -> list[Call]:
        return [c for c in self.calls.values() if c.meeting is meeting and c.state not in ("incoming",)]

    def join_meeting(self, meeting: Meeting, person: Participant) -> None:
        meeting.participants[person.id] = person  # type: ignore[index]
        for call in self.meeting_calls(meeting):
            call.participants[person.id] = person  # type: ignore[index]
            if call.state == "established":
                self.send_roster(call, call.roster() if not call.delta_roster else [person])

    def leave_meeting(self, meeting: Meeting, participant_id: str) -> Participant:
        person = meeting.participants.pop(participant_id, None)
        if person is None:
            raise GraphError(404, "ItemNotFound", f"participant {participant_id} is not in the meeting")
        for call in self.meeting_calls(meeting):
            if call.participants.pop(participant_id, None) is not None and call.state == "established":
                self.send_roster(call, [], removed=[person])
        return person

    def share_screen(self, meeting: Meeting, participant_id: str, sharing: bool) -> str | None:
        """A participant starts or stops sharing: a roster update with their screen-sharing
        stream, and contentSharingSession notifications where the bot enabled them."""
        person = meeting.participants.get(participant_id)
        if person is None:
            raise GraphError(404, "ItemNotFound", f"participant {participant_id} is not in the meeting")
        stream = person.stream("videoBasedScreenSharing")
        if stream is None:
            stream = MediaStream("videoBasedScreenSharing", meeting.next_source_id(), "inactive")
            person.media_streams.append(stream)
        if (stream.direction == "sendOnly") == sharing:
            return meeting.sharing_session_id
        stream.direction = "sendOnly" if sharing else "inactive"
        stream.label = "applicationsharing-video" if sharing else None
        if sharing:
            meeting.sharing_session_id = secrets.token_hex(32).upper()
        session_id = meeting.sharing_session_id
        for call in self.meeting_calls(meeting):
            if call.state != "established":
                continue
            self.send_roster(call, [person])
            if (call.call_options or {}).get("isContentSharingNotificationEnabled"):
                change = "created" if sharing else "deleted"
                if call.direction == "outgoing":  # createCall.notification.contentSharing*.json
                    self.notify(
                        call,
                        envelope(
                            change,
                            call.resource_url + "/contentsharingsessions",
                            [{"@odata.type": "#microsoft.graph.contentSharingSession", "id": session_id}],
                        ),
                    )
                else:  # answer.appHosted.notification.contentSharing*.json
                    self.notify(
                        call, envelope(change, f"{call.resource_url}/contentsharingsessions/{session_id}")
                    )
        if not sharing:
            meeting.sharing_session_id = None
        return session_id

    def set_muted(self, meeting: Meeting, participant_id: str, muted: bool) -> None:
        person = meeting.participants.get(participant_id)
        if person is None:
            raise GraphError(404, "ItemNotFound", f"participant {participant_id} is not in the meeting")
        person.is_muted = muted
        for call in self.meeting_calls(meeting):
            if call.state == "established":
                self.send_roster(call, [person])


def find_operation(call: Call, operation_id: str) -> Operation:
    wanted = compact_id(operation_id)
    for op in call.operations.values():
        if compact_id(op.id) == wanted:
            return op
    raise GraphError(404, "ItemNotFound", f"operation {operation_id} was not found")

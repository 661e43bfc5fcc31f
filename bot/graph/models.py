"""Graph cloud-communications objects: the resources of the calls API (call, participant,
commsOperation, commsNotification and their complex types), as the Graph reference pages
describe them (https://learn.microsoft.com/graph/api/resources/call and the pages it links).

Every class parses tolerantly and serializes to the documented shape::

    call = Call.parse(payload)          # or models.parse(payload) to dispatch on @odata.type
    call.state, call.my_participant_id
    call.to_dict()                      # documented JSON, unknown members kept

Request bodies of the actions (answer, reject, ...) are models too (``AnswerRequest`` ...):
the client sends them and the emulator can parse them. Importing this module has no side
effects beyond registering the classes by ``@odata.type``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from ._base import (
    BOOL,
    INT,
    RAW,
    STR,
    Enum,
    GraphObject,
    List,
    Model,
    OneOrMany,
    json_depth,
    member,
    parse,
    registered_types,
    type_key,
)

__all__ = [
    "parse",
    "registered_types",
    "type_key",
    "GraphObject",
    "id_key",
    "json_depth",
    "CallState",
    "CallDirection",
    "Modality",
    "OperationStatus",
    "Tone",
    "ChangeType",
    "RejectReason",
    "RecordingStatus",
    "ScreenSharingRole",
    "EndpointType",
    "MediaDirection",
    "Identity",
    "IdentitySet",
    "ParticipantInfo",
    "InvitationParticipantInfo",
    "ResultInfo",
    "MediaInfo",
    "MediaPrompt",
    "ServiceHostedMediaConfig",
    "AppHostedMediaConfig",
    "MediaConfig",
    "ChatInfo",
    "MeetingInfo",
    "OrganizerMeetingInfo",
    "TokenMeetingInfo",
    "JoinMeetingIdMeetingInfo",
    "ToneInfo",
    "CallMediaState",
    "CallTranscriptionInfo",
    "IncomingContext",
    "CallRoute",
    "CallOptions",
    "OutgoingCallOptions",
    "IncomingCallOptions",
    "MediaStream",
    "RecordingInfo",
    "Participant",
    "DeltaParticipants",
    "ContentSharingSession",
    "Call",
    "CommsOperation",
    "PlayPromptOperation",
    "RecordOperation",
    "SubscribeToToneOperation",
    "CancelMediaProcessingOperation",
    "MuteParticipantOperation",
    "UnmuteParticipantOperation",
    "UpdateRecordingStatusOperation",
    "InviteParticipantsOperation",
    "SendDtmfTonesOperation",
    "CommsNotification",
    "CommsNotifications",
    "ParticipantCollection",
    "AnswerRequest",
    "RejectRequest",
    "RedirectRequest",
    "TransferRequest",
    "ClientContextRequest",
    "UpdateRecordingStatusRequest",
    "ChangeScreenSharingRoleRequest",
    "InviteParticipantsRequest",
    "MuteAllRequest",
    "PlayPromptRequest",
    "RecordResponseRequest",
    "SendDtmfTonesRequest",
    "UpdateMetadataRequest",
    "GraphErrorBody",
    "parse_join_url",
    "JoinUrlError",
]

model = dataclass(kw_only=True, eq=False)


def id_key(value: str | None) -> str:
    """Comparison key for call and operation ids: case-insensitive, dashes ignored (the documented
    bodies write an operation id lower-case with dashes, its URL upper-case without; see
    tests/fixtures/graph/README.md)."""
    return (value or "").replace("-", "").lower()


# ---- enums (canonical spellings from the docs) ------------------------------------------

CallState = Enum(
    "incoming",
    "establishing",
    "ringing",
    "established",
    "hold",
    "transferring",
    "transferAccepted",
    "redirecting",
    "terminating",
    "terminated",
    "unknownFutureValue",
)
CallDirection = Enum("incoming", "outgoing")
Modality = Enum(
    "unknown", "audio", "video", "videoBasedScreenSharing", "data", "screenSharing", "unknownFutureValue"
)
OperationStatus = Enum("notStarted", "running", "completed", "failed")
Tone = Enum(
    "tone0",
    "tone1",
    "tone2",
    "tone3",
    "tone4",
    "tone5",
    "tone6",
    "tone7",
    "tone8",
    "tone9",
    "star",
    "pound",
    "a",
    "b",
    "c",
    "d",
    "flash",
)
ChangeType = Enum("created", "updated", "deleted")
RejectReason = Enum("none", "busy", "forbidden", "unknownFutureValue")
RecordingStatus = Enum("unknown", "notRecording", "recording", "failed", "unknownFutureValue")
ScreenSharingRole = Enum("viewer", "sharer")
EndpointType = Enum(
    "default", "voicemail", "skypeForBusiness", "skypeForBusinessVoipPhone", "unknownFutureValue"
)
MediaDirection = Enum("inactive", "sendOnly", "receiveOnly", "sendReceive")
MediaState = Enum("active", "inactive", "unknownFutureValue")
RoutingType = Enum("forwarded", "lookup", "selfFork", "unknownFutureValue")
TranscriptionState = Enum("notStarted", "active", "inactive", "unknownFutureValue")
CompletionReason = Enum(
    "unknown",
    "completedSuccessfully",
    "mediaOperationCanceled",
    "operationCanceled",
    "stopToneDetected",
    "maxRecordDurationReached",
    "initialSilenceTimeout",
    "maxSilenceTimeout",
    "playPromptFailed",
    "playBeepFailed",
    "mediaReceiveTimeout",
    "unspecifiedError",
    "none",
    "unknownFutureValue",
)


# ---- identities ---------------------------------------------------------------------------


@model
class Identity(GraphObject):
    odata_type = "#microsoft.graph.identity"
    id: str | None = member()
    display_name: str | None = member()
    tenant_id: str | None = member()
    identity_provider: str | None = member()


IDENTITY = Model(Identity)


@model
class IdentitySet(GraphObject):
    odata_type = "#microsoft.graph.identitySet"
    user: Identity | None = member(IDENTITY)
    application: Identity | None = member(IDENTITY)
    application_instance: Identity | None = member(IDENTITY)
    phone: Identity | None = member(IDENTITY)
    guest: Identity | None = member(IDENTITY)
    encrypted: Identity | None = member(IDENTITY)
    on_premises: Identity | None = member(IDENTITY)
    device: Identity | None = member(IDENTITY)

    def primary(self) -> tuple[str, Identity] | None:
        """The first identity set on this object, as ``(kind, identity)``."""
        for kind in (
            "user",
            "application",
            "applicationInstance",
            "phone",
            "guest",
            "encrypted",
            "onPremises",
            "device",
        ):
            attr = self._schema()[0][kind][0]
            ident = getattr(self, attr)
            if isinstance(ident, Identity):
                return kind, ident
        return None

    @classmethod
    def of_user(cls, id: str, display_name: str | None = None, tenant_id: str | None = None) -> IdentitySet:
        return cls(user=Identity(id=id, display_name=display_name, tenant_id=tenant_id))

    @classmethod
    def of_application(cls, id: str, display_name: str | None = None) -> IdentitySet:
        return cls(application=Identity(id=id, display_name=display_name))

    @classmethod
    def of_phone(cls, e164: str) -> IdentitySet:
        return cls(phone=Identity(id=e164))


IDENTITY_SET = Model(IdentitySet)


@model
class ParticipantInfo(GraphObject):
    odata_type = "#microsoft.graph.participantInfo"
    identity: IdentitySet | None = member(IDENTITY_SET)
    endpoint_type: str | None = member(EndpointType)
    region: str | None = member()
    language_id: str | None = member()
    country_code: str | None = member()
    participant_id: str | None = member()
    platform_id: str | None = member()


@model
class InvitationParticipantInfo(GraphObject):
    odata_type = "#microsoft.graph.invitationParticipantInfo"
    identity: IdentitySet | None = member(IDENTITY_SET)
    replaces_call_id: str | None = member()
    endpoint_type: str | None = member(EndpointType)
    language_id: str | None = member()
    region: str | None = member()
    hidden: bool | None = member(BOOL)
    participant_id: str | None = member()
    remove_from_default_audio_routing_group: bool | None = member(BOOL)


@model
class ResultInfo(GraphObject):
    """``{code, subcode, message}``; ``subCode`` and string codes are accepted: documented bodies
    carry both (tests/fixtures/graph/README.md,
    https://learn.microsoft.com/graph/api/resources/resultinfo)."""

    odata_type = "#microsoft.graph.resultInfo"
    code: int | None = member(INT)
    subcode: int | None = member(INT, aliases=("subCode",))
    message: str | None = member()

    @property
    def is_success(self) -> bool:
        return isinstance(self.code, int) and (self.code == 0 or 200 <= self.code < 300)

    def __str__(self) -> str:
        return f"{self.code}/{self.subcode}: {self.message}"


# ---- media ---------------------------------------------------------------------------------


@model
class MediaInfo(GraphObject):
    odata_type = "#microsoft.graph.mediaInfo"
    uri: str | None = member()
    resource_id: str | None = member()


@model
class MediaPrompt(GraphObject):
    odata_type = "#microsoft.graph.mediaPrompt"
    media_info: MediaInfo | None = member(Model(MediaInfo))

    @classmethod
    def of_uri(cls, uri: str, resource_id: str | None = None) -> MediaPrompt:
        return cls(media_info=MediaInfo(uri=uri, resource_id=resource_id))


@model
class MediaConfig(GraphObject):
    odata_type = "#microsoft.graph.mediaConfig"
    remove_from_default_audio_group: bool | None = member(BOOL)


@model
class ServiceHostedMediaConfig(MediaConfig):
    odata_type = "#microsoft.graph.serviceHostedMediaConfig"
    pre_fetch_media: list[MediaInfo] | None = member(List(Model(MediaInfo)))


@model
class AppHostedMediaConfig(MediaConfig):
    odata_type = "#microsoft.graph.appHostedMediaConfig"
    blob: str | None = member()


@model
class MediaStream(GraphObject):
    odata_type = "#microsoft.graph.mediaStream"
    media_type: str | None = member(Modality)
    source_id: str | None = member()
    direction: str | None = member(MediaDirection)
    label: str | None = member()
    server_muted: bool | None = member(BOOL)


@model
class ToneInfo(GraphObject):
    odata_type = "#microsoft.graph.toneInfo"
    sequence_id: int | None = member(INT)
    tone: str | None = member(Tone)


@model
class CallMediaState(GraphObject):
    odata_type = "#microsoft.graph.callMediaState"
    audio: str | None = member(MediaState)


@model
class CallTranscriptionInfo(GraphObject):
    odata_type = "#microsoft.graph.callTranscriptionInfo"
    state: str | None = member(TranscriptionState)
    last_modified_date_time: str | None = member()


@model
class IncomingContext(GraphObject):
    odata_type = "#microsoft.graph.incomingContext"
    source_participant_id: str | None = member()
    observed_participant_id: str | None = member()
    on_behalf_of: IdentitySet | None = member(IDENTITY_SET)
    transferor: IdentitySet | None = member(IDENTITY_SET)


@model
class CallRoute(GraphObject):
    odata_type = "#microsoft.graph.callRoute"
    routing_type: str | None = member(RoutingType)
    original: IdentitySet | None = member(IDENTITY_SET)
    final: IdentitySet | None = member(IDENTITY_SET)


# ---- meetings -----------------------------------------------------------------------------


@model
class ChatInfo(GraphObject):
    odata_type = "#microsoft.graph.chatInfo"
    thread_id: str | None = member()
    message_id: str | None = member()
    reply_chain_message_id: str | None = member()


@model
class MeetingInfo(GraphObject):
    odata_type = "#microsoft.graph.meetingInfo"


@model
class OrganizerMeetingInfo(MeetingInfo):
    odata_type = "#microsoft.graph.organizerMeetingInfo"
    organizer: IdentitySet | None = member(IDENTITY_SET)
    allow_conversation_without_host: bool | None = member(BOOL)


@model
class TokenMeetingInfo(MeetingInfo):
    odata_type = "#microsoft.graph.tokenMeetingInfo"
    token: str | None = member()


@model
class JoinMeetingIdMeetingInfo(MeetingInfo):
    odata_type = "#microsoft.graph.joinMeetingIdMeetingInfo"
    join_meeting_id: str | None = member()
    passcode: str | None = member()


@model
class CallOptions(GraphObject):
    odata_type = "#microsoft.graph.callOptions"
    hide_bot_after_escalation: bool | None = member(BOOL)
    is_content_sharing_notification_enabled: bool | None = member(BOOL)
    is_delta_roster_enabled: bool | None = member(BOOL)


@model
class OutgoingCallOptions(CallOptions):
    odata_type = "#microsoft.graph.outgoingCallOptions"


@model
class IncomingCallOptions(CallOptions):
    odata_type = "#microsoft.graph.incomingCallOptions"


# ---- participants -------------------------------------------------------------------------


@model
class RecordingInfo(GraphObject):
    odata_type = "#microsoft.graph.recordingInfo"
    initiator: IdentitySet | None = member(IDENTITY_SET)
    recording_status: str | None = member(RecordingStatus)


@model
class Participant(GraphObject):
    odata_type = "#microsoft.graph.participant"
    id: str | None = member()
    info: ParticipantInfo | InvitationParticipantInfo | None = member(Model(ParticipantInfo))
    is_muted: bool | None = member(BOOL)
    is_in_lobby: bool | None = member(BOOL)
    media_streams: list[MediaStream] | None = member(List(Model(MediaStream)))
    metadata: str | None = member()
    recording_info: RecordingInfo | None = member(Model(RecordingInfo))
    removed_state: Any = member(RAW)
    restricted_experience: Any = member(RAW)
    roster_sequence_number: int | None = member(INT)

    @property
    def display_name(self) -> str | None:
        ident = (
            self.info.identity.primary()
            if self.info and isinstance(self.info.identity, IdentitySet)
            else None
        )
        return ident[1].display_name if ident else None


@model
class DeltaParticipants(GraphObject):
    odata_type = "#microsoft.graph.deltaParticipants"
    id: str | None = member()
    sequence_number: int | None = member(INT)
    participants: list[Participant] | None = member(List(Model(Participant)))


@model
class ContentSharingSession(GraphObject):
    odata_type = "#microsoft.graph.contentSharingSession"
    id: str | None = member()


@model
class ParticipantCollection(GraphObject):
    """Body of ``GET …/participants``: ``{value: [participant], @odata.context}``."""

    value: list[Participant] | None = member(List(Model(Participant)))


# ---- call ---------------------------------------------------------------------------------


@model
class Call(GraphObject):
    odata_type = "#microsoft.graph.call"
    id: str | None = member()
    state: str | None = member(CallState)
    direction: str | None = member(CallDirection)
    callback_uri: str | None = member()
    subject: str | None = member()
    source: ParticipantInfo | None = member(Model(ParticipantInfo))
    targets: list[InvitationParticipantInfo] | None = member(List(Model(InvitationParticipantInfo)))
    requested_modalities: list[str] | None = member(List(Modality))
    active_modalities: list[str] | None = member(List(Modality))
    media_config: MediaConfig | None = member(Model(MediaConfig))
    media_state: CallMediaState | None = member(Model(CallMediaState))
    chat_info: ChatInfo | None = member(Model(ChatInfo))
    meeting_info: MeetingInfo | None = member(Model(MeetingInfo))
    call_options: CallOptions | None = member(Model(CallOptions))
    call_chain_id: str | None = member()
    call_routes: list[CallRoute] | None = member(List(Model(CallRoute)))
    my_participant_id: str | None = member()
    result_info: ResultInfo | None = member(Model(ResultInfo))
    tone_info: ToneInfo | None = member(Model(ToneInfo))
    transcription: CallTranscriptionInfo | None = member(Model(CallTranscriptionInfo))
    incoming_context: IncomingContext | None = member(Model(IncomingContext))
    tenant_id: str | None = member()
    answered_by: ParticipantInfo | None = member(Model(ParticipantInfo))
    ringing_timeout_in_seconds: int | None = member(INT)
    routing_policies: list[str] | None = member(List(STR))
    termination_reason: str | None = member()
    meeting_capability: Any = member(RAW)
    replaces_context: str | None = member()
    application_metadata: Any = member(RAW)


# ---- operations (https://learn.microsoft.com/graph/api/resources/commsoperation) ----


@model
class CommsOperation(GraphObject):
    odata_type = "#microsoft.graph.commsOperation"
    id: str | None = member()
    client_context: str | None = member()
    status: str | None = member(OperationStatus)
    result_info: ResultInfo | None = member(Model(ResultInfo))

    @property
    def is_final(self) -> bool:
        return self.status in ("completed", "failed")


@model
class PlayPromptOperation(CommsOperation):
    odata_type = "#microsoft.graph.playPromptOperation"
    completion_reason: str | None = member(CompletionReason)


@model
class RecordOperation(CommsOperation):
    odata_type = "#microsoft.graph.recordOperation"
    recording_location: str | None = member()
    recording_access_token: str | None = member()
    completion_reason: str | None = member(CompletionReason)


@model
class SubscribeToToneOperation(CommsOperation):
    odata_type = "#microsoft.graph.subscribeToToneOperation"


@model
class CancelMediaProcessingOperation(CommsOperation):
    odata_type = "#microsoft.graph.cancelMediaProcessingOperation"
    all: bool | None = member(BOOL)


@model
class MuteParticipantOperation(CommsOperation):
    odata_type = "#microsoft.graph.muteParticipantOperation"


@model
class UnmuteParticipantOperation(CommsOperation):
    odata_type = "#microsoft.graph.unmuteParticipantOperation"


@model
class UpdateRecordingStatusOperation(CommsOperation):
    odata_type = "#microsoft.graph.updateRecordingStatusOperation"


@model
class InviteParticipantsOperation(CommsOperation):
    odata_type = "#microsoft.graph.inviteParticipantsOperation"
    participants: list[InvitationParticipantInfo] | None = member(List(Model(InvitationParticipantInfo)))


@model
class SendDtmfTonesOperation(CommsOperation):
    odata_type = "#microsoft.graph.sendDtmfTonesOperation"
    completion_reason: str | None = member(CompletionReason)


# ---- notifications (https://learn.microsoft.com/graph/api/resources/commsnotification) ----

_URL = re.compile(r"/(?:communications|app)/calls/(?P<call>[^/?#]+)(?P<rest>/[^?#]*)?$", re.IGNORECASE)


@model
class CommsNotification(GraphObject):
    odata_type = "#microsoft.graph.commsNotification"
    change_type: str | None = member(ChangeType)
    resource_url: str | None = member()
    resource: str | None = member()
    callback_uri: str | None = member()
    resource_data: Any = member(OneOrMany(RAW))

    def _after_parse(self) -> None:
        data = self.resource_data
        if isinstance(data, list):
            self.resource_data = [self._parse_item(v) for v in data]
        elif data is not None:
            self.resource_data = self._parse_item(data)

    def _parse_item(self, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        typed = parse(value)
        if isinstance(typed, GraphObject):
            return typed
        # untyped (early beta payloads): infer the class from the URL
        kind = self.kind
        cls = {
            "call": Call,
            "participants": Participant,
            "operation": CommsOperation,
            "contentSharing": ContentSharingSession,
        }.get(kind)
        return cls._parse_as(value) if cls else value

    @property
    def url(self) -> str:
        """``resourceUrl``, or the legacy ``resource`` when that is all there is ("" when
        neither is a string: such a notification cannot be routed)."""
        for value in (self.resource_url, self.resource):
            if isinstance(value, str) and value:
                return value
        return ""

    def shape_errors(self, path: str = "$", *, limit: int = 1) -> list[str]:
        """Besides the members' types: ``resourceData`` holds objects only, and the
        notification names its resource (``resourceUrl``, or the legacy ``resource``)."""
        out = super().shape_errors(path, limit=limit)
        data = self.resource_data
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            if item is not None and not isinstance(item, (GraphObject, dict)):
                at = f"{path}.resourceData[{i}]" if isinstance(data, list) else f"{path}.resourceData"
                out.append(f"{at}: expected an object, got {type(item).__name__}")
                break
        if not self.url:
            out.append(f"{path}: no resourceUrl")
        return out[:limit]

    def _match(self) -> re.Match[str] | None:
        url = self.url.split("://", 1)[-1]
        return _URL.search(url)

    @property
    def call_id(self) -> str | None:
        m = self._match()
        return urllib.parse.unquote(m.group("call")) if m else None

    @property
    def kind(self) -> str:
        """``call``, ``participants``, ``operation``, ``contentSharing`` or ``unknown``.

        Dispatches on resourceData first (example 2 of the participant-invite page,
        https://learn.microsoft.com/graph/api/participant-invite, puts a roster under
        ``/operations/participants``), then on the URL.
        """
        data = self.resource_data
        if isinstance(data, list) and data and all(isinstance(d, Participant) for d in data):
            return "participants"
        if isinstance(data, DeltaParticipants):
            return "participants"
        if isinstance(data, CommsOperation):
            return "operation"
        if isinstance(data, Call):
            return "call"
        if isinstance(data, list) and data and isinstance(data[0], ContentSharingSession):
            return "contentSharing"
        m = self._match()
        if not m:
            return "unknown"
        rest = (m.group("rest") or "").lower().strip("/")
        if not rest:
            return "call"
        head = rest.split("/")[0]
        if head == "participants":
            return "participants"
        if head == "operations":
            return "operation"
        if head == "contentsharingsessions":
            return "contentSharing"
        return "unknown"

    @property
    def operation_id(self) -> str | None:
        data = self.resource_data
        if isinstance(data, CommsOperation) and data.id:
            return data.id
        m = self._match()
        rest = (m.group("rest") or "").strip("/").split("/") if m else []
        if len(rest) >= 2 and rest[0].lower() == "operations" and rest[1].lower() != "participants":
            return rest[1]
        return None


@model
class CommsNotifications(GraphObject):
    odata_type = "#microsoft.graph.commsNotifications"
    value: list[CommsNotification] | None = member(List(Model(CommsNotification)))

    @classmethod
    def parse(cls, data: dict[str, Any]) -> CommsNotifications:
        return cls._parse_as(data)  # type: ignore[return-value]


# ---- action request bodies (one Graph page per action, tests/fixtures/graph/README.md) ----------


@model
class AnswerRequest(GraphObject):
    callback_uri: str | None = member()
    accepted_modalities: list[str] | None = member(List(Modality))
    media_config: MediaConfig | None = member(Model(MediaConfig))
    call_options: CallOptions | None = member(Model(CallOptions))
    participant_capacity: int | None = member(INT)


@model
class RejectRequest(GraphObject):
    reason: str | None = member(RejectReason)
    callback_uri: str | None = member()


@model
class RedirectRequest(GraphObject):
    targets: list[InvitationParticipantInfo] | None = member(List(Model(InvitationParticipantInfo)))
    target_disposition: str | None = member()
    timeout: int | None = member(INT)
    mask_callee: bool | None = member(BOOL)
    mask_caller: bool | None = member(BOOL)
    callback_uri: str | None = member()
    routing_policies: list[str] | None = member(List(STR))


@model
class TransferRequest(GraphObject):
    transfer_target: InvitationParticipantInfo | None = member(Model(InvitationParticipantInfo))
    transferee: ParticipantInfo | None = member(Model(ParticipantInfo))
    client_context: str | None = member()


@model
class ClientContextRequest(GraphObject):
    """Body of mute, unmute, subscribeToTone, cancelMediaProcessing and participant mute."""

    client_context: str | None = member()


@model
class UpdateRecordingStatusRequest(GraphObject):
    client_context: str | None = member()
    status: str | None = member(RecordingStatus)


@model
class ChangeScreenSharingRoleRequest(GraphObject):
    role: str | None = member(ScreenSharingRole)


@model
class InviteParticipantsRequest(GraphObject):
    participants: list[InvitationParticipantInfo] | None = member(List(Model(InvitationParticipantInfo)))
    client_context: str | None = member()


@model
class MuteAllRequest(GraphObject):
    participants: list[str] | None = member(List(STR))
    client_context: str | None = member()


@model
class PlayPromptRequest(GraphObject):
    prompts: list[MediaPrompt] | None = member(List(Model(MediaPrompt)))
    loop: bool | None = member(BOOL)
    client_context: str | None = member()


@model
class RecordResponseRequest(GraphObject):
    prompts: list[MediaPrompt] | None = member(List(Model(MediaPrompt)))
    barge_in_allowed: bool | None = member(BOOL)
    initial_silence_timeout_in_seconds: int | None = member(INT)
    max_silence_timeout_in_seconds: int | None = member(INT)
    max_record_duration_in_seconds: int | None = member(INT)
    play_beep: bool | None = member(BOOL)
    stop_tones: list[str] | None = member(List(STR))
    client_context: str | None = member()


@model
class SendDtmfTonesRequest(GraphObject):
    tones: list[str] | None = member(List(Tone))
    delay_between_tones_ms: int | None = member(INT)
    client_context: str | None = member()


@model
class UpdateMetadataRequest(GraphObject):
    """Beta: the bot's own participant metadata blob (shown in the roster)."""

    metadata: str | None = member()
    client_context: str | None = member()


@model
class GraphErrorBody(GraphObject):
    """``{"error": {"code", "message", "innerError": {"request-id", "date"}}}``."""

    error: Any = member(RAW)


# ---- Teams join URLs (the join-meeting examples of
# https://learn.microsoft.com/graph/api/application-post-calls) -------------------------------


class JoinUrlError(ValueError):
    pass


def parse_join_url(join_url: str) -> tuple[ChatInfo | None, MeetingInfo, str | None]:
    """Decode a Teams join URL into ``(chatInfo, meetingInfo, tenantId)``.

    ``…/l/meetup-join/<threadId>/<messageId>?context={"Tid":…,"Oid":…[,"MessageId":…]}`` gives
    chatInfo + organizerMeetingInfo; ``…/meet/<joinMeetingId>?p=<passcode>`` gives
    joinMeetingIdMeetingInfo (no chatInfo, no tenant).
    """
    parts = urllib.parse.urlsplit(join_url.strip())
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise JoinUrlError(f"not a Teams join URL: {join_url!r}")
    segments = [urllib.parse.unquote(s) for s in parts.path.split("/") if s]
    query = urllib.parse.parse_qs(parts.query)
    lowered = [s.lower() for s in segments]
    if "meet" in lowered and "meetup-join" not in lowered:
        i = lowered.index("meet")
        if i + 1 >= len(segments) or not segments[i + 1].strip().isdigit():
            raise JoinUrlError(f"join URL has no numeric meeting id: {join_url!r}")
        passcode = query.get("p", [None])[0]
        return None, JoinMeetingIdMeetingInfo(join_meeting_id=segments[i + 1], passcode=passcode), None
    if "meetup-join" not in lowered:
        raise JoinUrlError(f"join URL has no /l/meetup-join/ path: {join_url!r}")
    i = lowered.index("meetup-join")
    if i + 2 >= len(segments) + 1 or i + 1 >= len(segments):
        raise JoinUrlError(f"join URL has no thread id: {join_url!r}")
    thread_id = segments[i + 1]
    message_id = segments[i + 2] if i + 2 < len(segments) else "0"
    raw_context = query.get("context", [None])[0]
    if raw_context is None:
        raise JoinUrlError(f"join URL has no context parameter: {join_url!r}")
    try:
        context = json.loads(raw_context)
    except ValueError as exc:
        raise JoinUrlError(f"join URL context is not JSON: {raw_context!r}") from exc
    if not isinstance(context, dict):
        raise JoinUrlError(f"join URL context is not an object: {raw_context!r}")
    ctx = {k.lower(): v for k, v in context.items()}
    tenant_id, organizer_id = ctx.get("tid"), ctx.get("oid")
    if not tenant_id or not organizer_id:
        raise JoinUrlError(f"join URL context lacks Tid/Oid: {raw_context!r}")
    chat = ChatInfo(thread_id=thread_id, message_id=message_id, reply_chain_message_id=ctx.get("messageid"))
    meeting = OrganizerMeetingInfo(
        organizer=IdentitySet(user=Identity(id=organizer_id, tenant_id=tenant_id)),
        allow_conversation_without_host=True,
    )
    return chat, meeting, tenant_id

"""Calls, participants, operations and meetings held by the emulator, serialized in the shapes of
the documented bodies of tests/fixtures/graph/ (field names, nulls and ``@odata.type`` values as
documented)."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

CALL_TYPE = "#microsoft.graph.call"
PARTICIPANT_TYPE = "#microsoft.graph.participant"
PARTICIPANT_INFO_TYPE = "#microsoft.graph.participantInfo"
INVITATION_INFO_TYPE = "#microsoft.graph.invitationParticipantInfo"
IDENTITY_SET_TYPE = "#microsoft.graph.identitySet"
IDENTITY_TYPE = "#microsoft.graph.identity"
MEDIA_STREAM_TYPE = "#microsoft.graph.mediaStream"
RESULT_INFO_TYPE = "#microsoft.graph.resultInfo"
TONE_INFO_TYPE = "#microsoft.graph.toneInfo"

# Operation @odata.type per action (https://learn.microsoft.com/graph/api/resources/commsoperation).
OPERATION_TYPES = {
    "playPrompt": "#microsoft.graph.playPromptOperation",
    "recordResponse": "#microsoft.graph.recordOperation",
    "subscribeToTone": "#microsoft.graph.subscribeToToneOperation",
    "cancelMediaProcessing": "#microsoft.graph.cancelMediaProcessingOperation",
    "mute": "#microsoft.graph.muteParticipantOperation",
    "unmute": "#microsoft.graph.unmuteParticipantOperation",
    "updateRecordingStatus": "#microsoft.graph.updateRecordingStatusOperation",
    "invite": "#microsoft.graph.inviteParticipantsOperation",
    "sendDtmfTones": "#microsoft.graph.sendDtmfTonesOperation",
    "muteAll": "#microsoft.graph.commsOperation",
    "updateMetadata": "#microsoft.graph.commsOperation",  # beta; no documented subtype
}

TONES = (
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
# stopTones in recordResponse are written as keys ("#", "1", "*").
TONE_KEYS = {
    **{str(i): f"tone{i}" for i in range(10)},
    "*": "star",
    "#": "pound",
    "A": "a",
    "B": "b",
    "C": "c",
    "D": "d",
}


def new_id() -> str:
    return str(uuid.uuid4())


_SOURCE_IDS = itertools.count(1)


def next_source_id() -> str:
    """A media source id (``mediaStream.sourceId``) unique across the whole emulator, not per
    meeting: the SSRCs of the conference's streams are these ids, so the calls of one bot that
    share one media port never see the same SSRC twice."""
    return str(next(_SOURCE_IDS))


def compact_id(value: str) -> str:
    """The form operation ids take in notification URLs: upper case, no dashes."""
    return value.replace("-", "").upper()


def identity(kind: str, id_: str, display_name: str | None = None, tenant_id: str | None = None) -> dict:
    ident: dict[str, Any] = {"@odata.type": IDENTITY_TYPE, "id": id_}
    if display_name is not None:
        ident["displayName"] = display_name
    if tenant_id is not None:
        ident["tenantId"] = tenant_id
    return {"@odata.type": IDENTITY_SET_TYPE, kind: ident}


def identity_key(identity_set: dict | None) -> tuple[str, str] | None:
    """(kind, id) of the first identity in an identitySet, ids compared case-insensitively."""
    if not isinstance(identity_set, dict):
        return None
    for kind, value in identity_set.items():
        if kind.startswith("@") or not isinstance(value, dict):
            continue
        if value.get("id") is not None:
            return kind, str(value["id"]).lower()
    return None


def display_name_of(identity_set: dict | None) -> str | None:
    if isinstance(identity_set, dict):
        for kind, value in identity_set.items():
            if not kind.startswith("@") and isinstance(value, dict) and value.get("displayName"):
                return value["displayName"]
    return None


@dataclass
class MediaStream:
    media_type: str  # audio | video | videoBasedScreenSharing | data
    source_id: str
    direction: str = "sendReceive"
    label: str | None = None
    server_muted: bool = False

    def to_graph(self) -> dict:
        body: dict[str, Any] = {
            "@odata.type": MEDIA_STREAM_TYPE,
            "mediaType": self.media_type,
            "sourceId": self.source_id,
            "direction": self.direction,
            "serverMuted": self.server_muted,
            "label": self.label,
        }
        return body


@dataclass
class Participant:
    id: str | None
    identity: dict  # identitySet
    media_streams: list[MediaStream] = field(default_factory=list)
    is_muted: bool = False
    is_in_lobby: bool = False
    region: str | None = None
    language_id: str | None = "en-US"
    endpoint_type: str | None = None
    metadata: str | None = None
    is_bot: bool = False
    info_type: str = PARTICIPANT_INFO_TYPE

    @property
    def display_name(self) -> str | None:
        return display_name_of(self.identity)

    def stream(self, media_type: str) -> MediaStream | None:
        return next((s for s in self.media_streams if s.media_type == media_type), None)

    def to_graph(self) -> dict:
        info: dict[str, Any] = {"@odata.type": self.info_type, "identity": self.identity}
        if self.endpoint_type is not None:
            info["endpointType"] = self.endpoint_type
        info["region"] = self.region
        info["languageId"] = self.language_id
        return {
            "@odata.type": PARTICIPANT_TYPE,
            "info": info,
            "mediaStreams": [s.to_graph() for s in self.media_streams],
            "isMuted": self.is_muted,
            "isInLobby": self.is_in_lobby,
            "id": self.id,
            "metadata": self.metadata,
        }


@dataclass
class Operation:
    kind: str  # key of OPERATION_TYPES
    call_id: str
    client_context: str | None
    id: str = field(default_factory=new_id)
    status: str = "running"
    result_info: dict | None = None
    extra: dict = field(default_factory=dict)  # subtype members (recordingLocation, participants, ...)
    request: dict = field(default_factory=dict)

    @property
    def odata_type(self) -> str:
        return OPERATION_TYPES[self.kind]

    def resource_url(self) -> str:
        # As documented: media operations' URLs carry the id upper case without dashes
        # (playPrompt, recordResponse, cancelMediaProcessing), invite's carry it as is.
        op_id = self.id if self.kind == "invite" else compact_id(self.id)
        return f"/communications/calls/{self.call_id}/operations/{op_id}"

    def to_graph(self) -> dict:
        body: dict[str, Any] = {
            "@odata.type": self.odata_type,
            "id": self.id,
            "status": self.status,
            "clientContext": self.client_context,
            "resultInfo": self.result_info,
        }
        body.update(self.extra)
        return body


@dataclass
class Meeting:
    """A Teams meeting the emulator hosts: how to find it, and the simulated people in it."""

    id: str
    thread_id: str
    organizer_id: str
    tenant_id: str
    message_id: str = "0"
    join_meeting_id: str | None = None
    passcode: str | None = None
    token: str | None = None
    subject: str | None = None
    participants: dict[str, Participant] = field(default_factory=dict)  # simulated people by id
    sharing_session_id: str | None = None  # the contentSharingSession while someone shares

    def next_source_id(self) -> str:
        return next_source_id()

    @property
    def join_web_url(self) -> str:
        import re
        from urllib.parse import quote

        def q(text: str) -> str:  # Teams writes its escapes in lower case: 19%3ameeting_...%40thread.v2
            return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(text, safe=""))

        context = json.dumps({"Tid": self.tenant_id, "Oid": self.organizer_id}, separators=(",", ":"))
        return f"https://teams.microsoft.com/l/meetup-join/{q(self.thread_id)}/{self.message_id}?context={q(context)}"

    def chat_info(self) -> dict:
        return {
            "@odata.type": "#microsoft.graph.chatInfo",
            "threadId": self.thread_id,
            "messageId": self.message_id,
            "replyChainMessageId": None,
        }

    def organizer_meeting_info(self) -> dict:
        return {
            "@odata.type": "#microsoft.graph.organizerMeetingInfo",
            "organizer": identity("user", self.organizer_id, tenant_id=self.tenant_id),
            "allowConversationWithoutHost": True,
        }


@dataclass
class Call:
    id: str
    app_id: str
    tenant_id: str
    direction: str  # incoming | outgoing
    callback_uri: str | None
    source: dict | None
    targets: list[dict]
    requested_modalities: list[str]
    media_config: dict | None
    state: str = "establishing"
    kind: str = "p2p"  # p2p | group | meeting
    subject: str | None = None
    chat_info: dict | None = None
    meeting_info: dict | None = None
    meeting: Meeting | None = None
    call_options: dict | None = None
    my_participant_id: str = field(default_factory=new_id)
    call_chain_id: str = field(default_factory=new_id)
    result_info: dict | None = None
    tone_info: dict | None = None
    tone_subscribed: bool = False
    tone_sequence: int = 0
    scenario_id: str | None = None
    participants: dict[str, Participant] = field(default_factory=dict)  # everyone but the bot
    bot: Participant | None = None
    operations: dict[str, Operation] = field(default_factory=dict)
    roster_sequence: int = 0
    incoming_extra: dict = field(default_factory=dict)  # members of the 'created' notification
    #: updateRecordingStatus requests, in order: (status, time.time())
    recording_status: list[tuple[str, float]] = field(default_factory=list)

    @property
    def is_app_hosted(self) -> bool:
        odata = str((self.media_config or {}).get("@odata.type", "")).lower()
        return odata.endswith("apphostedmediaconfig")

    @property
    def has_roster(self) -> bool:
        return self.kind in ("group", "meeting")

    @property
    def delta_roster(self) -> bool:
        return bool((self.call_options or {}).get("isDeltaRosterEnabled"))

    @property
    def resource_url(self) -> str:
        return f"/communications/calls/{self.id}"

    def roster(self) -> list[Participant]:
        people = list(self.participants.values())
        return people + ([self.bot] if self.bot is not None else [])

    def find_participant(self, participant_id: str) -> Participant | None:
        pid = participant_id.lower()
        for p in self.roster():
            if p.id is not None and p.id.lower() == pid:
                return p
        return None

    def to_graph(self, api_root: str) -> dict:
        """The call resource as create-call responses and GET print it."""
        media_config = dict(self.media_config or {})
        if self.is_app_hosted:
            media_config.setdefault("blob", None)
        elif media_config:
            media_config.setdefault("preFetchMedia", [])
        return {
            "@odata.type": CALL_TYPE,
            "state": self.state,
            "direction": self.direction,
            "subject": self.subject,
            "callbackUri": self.callback_uri,
            "callChainId": self.call_chain_id,
            "callRoutes": [],
            "source": self.source,
            "targets": self.targets,
            "requestedModalities": self.requested_modalities,
            "activeModalities": [],
            "mediaConfig": media_config,
            "chatInfo": self.chat_info,
            "meetingInfo": self.meeting_info,
            "callOptions": self.call_options,
            "transcription": None,
            "routingPolicies": [],
            "tenantId": self.tenant_id,
            "myParticipantId": self.my_participant_id,
            "id": self.id,
            "@odata.context": f"{api_root}/$metadata#communications/calls/$entity",
            "terminationReason": None,
            "ringingTimeoutInSeconds": None,
            "mediaState": None,
            "resultInfo": self.result_info,
            "answeredBy": None,
            "meetingCapability": None,
            "toneInfo": self.tone_info,
        }

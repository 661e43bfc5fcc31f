"""One method per Graph calls endpoint, returning parsed models. Each action has its own Graph
page (call-answer, call-playprompt, application-post-calls, ...), listed with its documented
bodies in tests/fixtures/graph/README.md.

This layer sends and parses; it does not wait for notifications. ``bot.calls.Call`` builds
the "returns when the operation completes" behaviour on top of it.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import AsyncIterator, Iterable

from . import models as m
from .client import GraphClient, GraphResponse

CALLS = "communications/calls"

# Parameters only the beta reference pages have: Graph v1.0 refuses a request carrying them.
BETA_ONLY_PARAMETERS = {
    "playPrompt": ("loop",),  # call-playprompt
    "redirect": ("maskCallee", "maskCaller", "targetDisposition"),  # call-redirect
}
# Properties of a call that only the beta call resource has (resources/call, beta); on v1.0 Graph
# refuses a new call carrying them, as it refuses any property the call resource does not have.
CALL_PROPERTIES_V1 = frozenset(
    {
        "@odata.type",
        "callbackUri",
        "callChainId",
        "callOptions",
        "callRoutes",
        "chatInfo",
        "direction",
        "id",
        "incomingContext",
        "mediaConfig",
        "mediaState",
        "meetingInfo",
        "myParticipantId",
        "requestedModalities",
        "resultInfo",
        "source",
        "state",
        "subject",
        "targets",
        "tenantId",
        "toneInfo",
        "transcription",
    }
)
CALL_PROPERTIES_BETA = CALL_PROPERTIES_V1 | {
    "activeModalities",
    "answeredBy",
    "meetingCapability",
    "ringingTimeoutInSeconds",
    "routingPolicies",
    "terminationReason",
    "replacesContext",
}
# modality values (resources/call requestedModalities; call-answer acceptedModalities)
REQUESTED_MODALITIES = ("unknown", "audio", "video", "videoBasedScreenSharing", "data")
ACCEPTED_MODALITIES = ("audio", "video", "videoBasedScreenSharing")


def check_callback_uri(url: str | None, what: str = "callbackUri") -> None:
    """Graph requires an https callbackUri; plain http is let through only to a loopback host
    (a local emulator started with --allow-http-callbacks)."""
    if url is None:
        return
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is not None and parts.scheme.lower() == "https" and parts.hostname:
        return
    if parts is not None and parts.scheme.lower() == "http" and _is_loopback(parts.hostname):
        return
    raise ValueError(f"{what} must be an https URL (Graph refuses others), not {url!r}")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_modalities(values: object, allowed: Iterable[str], what: str) -> None:
    allowed = tuple(allowed)
    if not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{what} must be a non-empty list of {', '.join(allowed)}, not {values!r}")
    bad = [v for v in values if not isinstance(v, str) or m.Modality.canonical(v) not in allowed]
    if bad:
        raise ValueError(f"{what}: unknown modalities {bad} (known: {', '.join(allowed)})")


def check_media_config(config: object) -> None:
    if not isinstance(config, (m.AppHostedMediaConfig, m.ServiceHostedMediaConfig)):
        raise ValueError(
            "mediaConfig must be an AppHostedMediaConfig or a ServiceHostedMediaConfig "
            "(Graph needs its @odata.type)"
        )


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _operation(
    resp: GraphResponse, default: type[m.CommsOperation] = m.CommsOperation
) -> m.CommsOperation | None:
    """The commsOperation of a 200 answer; None for an empty body (then the operation is
    reported only by notification, or not at all)."""
    if isinstance(resp.body, dict):
        op = m.parse(resp.body)
        if not isinstance(op, m.CommsOperation):
            op = default.parse(resp.body)
        if op.id is None and resp.location:
            op.id = resp.location.rstrip("/").rsplit("/", 1)[-1]
        return op
    if resp.location and "/operations/" in resp.location:
        return default(id=resp.location.rstrip("/").rsplit("/", 1)[-1], status="running")
    return None


class CallsApi:
    """``scenario_id`` (the Graph SDK's ``Scenario-Id``) goes on every request of this object;
    a call uses ``for_scenario`` so that all of its requests share one id."""

    def __init__(self, client: GraphClient, *, scenario_id: str | None = None) -> None:
        self.client = client
        self.scenario_id = scenario_id

    def for_scenario(self, scenario_id: str | None) -> CallsApi:
        return CallsApi(self.client, scenario_id=scenario_id or self.scenario_id)

    @property
    def beta(self) -> bool:
        """Whether requests go to the beta API (``graph.base_url`` ending in ``/beta``)."""
        return (
            urllib.parse.urlsplit(self.client.base_url).path.rstrip("/").rsplit("/", 1)[-1].lower() == "beta"
        )

    @staticmethod
    def _payload(body: m.GraphObject) -> dict:
        """The JSON of a request model. Members the model does not know (set through ``extra``)
        are refused: Graph refuses parameters its page does not list."""
        unknown = [k for k in body.extra if not k.startswith("@")]
        if unknown:
            raise ValueError(f"{type(body).__name__}: Graph does not define the parameter(s) {unknown}")
        return body.to_dict()

    def _refuse_beta_only(self, action: str, body: dict) -> None:
        if self.beta:
            return
        present = [k for k in BETA_ONLY_PARAMETERS.get(action, ()) if body.get(k) is not None]
        if present:
            raise ValueError(
                f"{action}: {', '.join(present)} exist(s) only in the beta API and Graph v1.0 refuses "
                "the request; leave it out, or use the beta API (graph.base_url = …/beta)"
            )

    async def _post(self, path: str, body: object = None, **kw: object) -> GraphResponse:
        return await self.client.post(path, body, scenario_id=self.scenario_id, **kw)

    async def _get(self, path: str) -> GraphResponse:
        return await self.client.get(path, scenario_id=self.scenario_id)

    async def _delete(self, path: str) -> GraphResponse:
        return await self.client.delete(path, scenario_id=self.scenario_id)

    def _call(self, call_id: str, *rest: str) -> str:
        return "/".join([CALLS, _q(call_id), *rest])

    # ---- calls --------------------------------------------------------------------------

    async def create_call(self, call: m.Call, *, scenario_id: str | None = None) -> m.Call:
        check_callback_uri(call.callback_uri)
        check_modalities(call.requested_modalities, REQUESTED_MODALITIES, "requestedModalities")
        check_media_config(call.media_config)
        data = call.to_dict()
        allowed = CALL_PROPERTIES_BETA if self.beta else CALL_PROPERTIES_V1
        unknown = [k for k in data if k not in allowed and not k.startswith("@odata.")]
        if unknown:
            where = "the call resource" if self.beta else "the v1.0 call resource (some are beta-only)"
            raise ValueError(
                f"a new call with properties {unknown} that {where} does not have: Graph refuses it"
            )
        resp = await self.client.post(CALLS, data, scenario_id=scenario_id or self.scenario_id)
        created = m.Call.parse(resp.body if isinstance(resp.body, dict) else {})
        if created.id is None and resp.location:
            created.id = resp.location.rstrip("/").rsplit("/", 1)[-1]
        return created

    async def get_call(self, call_id: str) -> m.Call:
        resp = await self._get(self._call(call_id))
        return m.Call.parse(resp.body)

    async def delete_call(self, call_id: str) -> None:
        await self._delete(self._call(call_id))

    async def answer(self, call_id: str, body: m.AnswerRequest) -> None:
        check_callback_uri(body.callback_uri)
        check_modalities(body.accepted_modalities, ACCEPTED_MODALITIES, "acceptedModalities")
        check_media_config(body.media_config)
        await self._post(self._call(call_id, "answer"), self._payload(body))

    async def reject(self, call_id: str, body: m.RejectRequest) -> None:
        check_callback_uri(body.callback_uri)
        await self._post(self._call(call_id, "reject"), self._payload(body))

    async def redirect(self, call_id: str, body: m.RedirectRequest) -> None:
        check_callback_uri(body.callback_uri)
        data = self._payload(body)
        self._refuse_beta_only("redirect", data)
        await self._post(self._call(call_id, "redirect"), data)

    async def transfer(self, call_id: str, body: m.TransferRequest) -> None:
        await self._post(self._call(call_id, "transfer"), self._payload(body))

    async def keep_alive(self, call_id: str) -> None:
        await self._post(self._call(call_id, "keepAlive"))

    async def mute(self, call_id: str, body: m.ClientContextRequest) -> m.CommsOperation | None:
        resp = await self._post(self._call(call_id, "mute"), self._payload(body))
        return _operation(resp, m.MuteParticipantOperation)

    async def unmute(self, call_id: str, body: m.ClientContextRequest) -> m.CommsOperation | None:
        resp = await self._post(self._call(call_id, "unmute"), self._payload(body))
        return _operation(resp, m.UnmuteParticipantOperation)

    async def update_recording_status(
        self, call_id: str, body: m.UpdateRecordingStatusRequest
    ) -> m.CommsOperation | None:
        resp = await self._post(self._call(call_id, "updateRecordingStatus"), self._payload(body))
        return _operation(resp, m.UpdateRecordingStatusOperation)

    async def change_screen_sharing_role(self, call_id: str, body: m.ChangeScreenSharingRoleRequest) -> None:
        await self._post(self._call(call_id, "changeScreenSharingRole"), self._payload(body))

    async def play_prompt(self, call_id: str, body: m.PlayPromptRequest) -> m.CommsOperation | None:
        data = self._payload(body)
        self._refuse_beta_only("playPrompt", data)
        resp = await self._post(self._call(call_id, "playPrompt"), data)
        return _operation(resp, m.PlayPromptOperation)

    async def record_response(self, call_id: str, body: m.RecordResponseRequest) -> m.CommsOperation | None:
        resp = await self._post(self._call(call_id, "recordResponse"), self._payload(body))
        return _operation(resp, m.RecordOperation)

    async def subscribe_to_tone(self, call_id: str, body: m.ClientContextRequest) -> m.CommsOperation | None:
        resp = await self._post(self._call(call_id, "subscribeToTone"), self._payload(body))
        return _operation(resp, m.SubscribeToToneOperation)

    async def cancel_media_processing(
        self, call_id: str, body: m.ClientContextRequest
    ) -> m.CommsOperation | None:
        resp = await self._post(self._call(call_id, "cancelMediaProcessing"), self._payload(body))
        return _operation(resp, m.CancelMediaProcessingOperation)

    async def send_dtmf_tones(self, call_id: str, body: m.SendDtmfTonesRequest) -> m.CommsOperation | None:
        resp = await self._post(self._call(call_id, "sendDtmfTones"), self._payload(body))
        return _operation(resp, m.SendDtmfTonesOperation)

    # ---- participants ---------------------------------------------------------------------

    async def list_participants(self, call_id: str) -> list[m.Participant]:
        resp = await self._get(self._call(call_id, "participants"))
        coll = m.ParticipantCollection.parse(resp.body if isinstance(resp.body, dict) else {})
        return [p for p in (coll.value or []) if isinstance(p, m.Participant)]

    async def get_participant(self, call_id: str, participant_id: str) -> m.Participant:
        resp = await self._get(self._call(call_id, "participants", _q(participant_id)))
        return m.Participant.parse(resp.body)

    async def delete_participant(self, call_id: str, participant_id: str) -> None:
        await self._delete(self._call(call_id, "participants", _q(participant_id)))

    async def invite(self, call_id: str, body: m.InviteParticipantsRequest) -> m.CommsOperation | None:
        resp = await self._post(self._call(call_id, "participants", "invite"), self._payload(body))
        return _operation(resp, m.InviteParticipantsOperation)

    async def mute_participant(
        self, call_id: str, participant_id: str, body: m.ClientContextRequest
    ) -> m.CommsOperation | None:
        resp = await self._post(
            self._call(call_id, "participants", _q(participant_id), "mute"), self._payload(body)
        )
        return _operation(resp, m.MuteParticipantOperation)

    async def mute_all(self, call_id: str, body: m.MuteAllRequest) -> m.CommsOperation | None:
        """Beta only, deprecated
        (https://learn.microsoft.com/graph/api/participant-muteall?view=graph-rest-beta)."""
        resp = await self._post(
            self._call(call_id, "participants", "muteAll"), self._payload(body), beta=True
        )
        return _operation(resp)

    async def update_metadata(self, call_id: str, body: m.UpdateMetadataRequest) -> m.CommsOperation:
        """Beta ``call: updateMetadata``: ``POST /communications/calls/{id}/updateMetadata``
        (https://learn.microsoft.com/graph/api/call-updatemetadata?view=graph-rest-beta). The
        answer is ``202 Accepted`` with a ``Location`` of the commsOperation and no body; the
        returned operation carries that id and the request's clientContext, and no status (no
        completion notification is documented)."""
        resp = await self._post(self._call(call_id, "updateMetadata"), self._payload(body), beta=True)
        op = _operation(resp) if isinstance(resp.body, dict) else None
        if op is None:
            location = resp.location or ""
            op_id = location.rstrip("/").rsplit("/", 1)[-1] if "/operations/" in location else None
            op = m.CommsOperation(id=op_id)
        op.client_context = op.client_context or body.client_context
        return op

    # ---- recordings -------------------------------------------------------------------------

    def download_recording(
        self, recording_location: str, recording_access_token: str
    ) -> AsyncIterator[bytes]:
        """Chunks of a recordResponse recording (``GET recordingLocation`` with its token)."""
        return self.client.stream(recording_location, bearer=recording_access_token)


__all__ = ["CallsApi", "CALLS"]

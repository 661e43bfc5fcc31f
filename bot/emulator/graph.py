"""The Graph calls REST surface (one Graph page per action: call-answer, call-playprompt,
application-post-calls, ..., indexed in tests/fixtures/graph/README.md), under both /v1.0 and
/beta, on both ``/communications/calls`` and the deprecated ``/app/calls`` alias."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .service import GraphError, find_operation
from .state import Call, Operation

if TYPE_CHECKING:
    from .server import GraphEmulator

ROOT = r"/{version:v1\.0|beta}/{root:communications|app}/calls"
NAMESPACE = "microsoft.graph."
# Claims of the caller's access token (a typed request key where aiohttp has them, 3.11+).
TOKEN_CLAIMS: Any = web.RequestKey("token_claims", dict) if hasattr(web, "RequestKey") else "token_claims"

# Application permissions each operation needs (the "Permissions" table of each action's page,
# https://learn.microsoft.com/graph/permissions-reference).
CREATE_ROLES = {
    "p2p": ("Calls.Initiate.All",),
    "group": ("Calls.InitiateGroupCall.All",),
    "meeting": ("Calls.JoinGroupCall.All", "Calls.JoinGroupCallAsGuest.All"),
}
ACTION_ROLES = {
    "redirect": ("Calls.Initiate.All",),
    "transfer": ("Calls.Initiate.All",),
    "invite": ("Calls.InitiateGroupCall.All",),
    # call-updatemetadata (beta) lists these three (spelled "Calls.JoinGroupCallsasGuest.All" ...)
    "updateMetadata": (
        "Calls.JoinGroupCallAsGuest.All",
        "Calls.JoinGroupCall.All",
        "Calls.InitiateGroupCall.All",
    ),
}


# The parameters of each action's request body as its Graph reference page lists them (v1.0),
# and those only the beta page adds; Graph refuses any other parameter, and values of the wrong
# JSON type (OData: "The parameter '…' in the request payload is not a valid parameter for the
# operation '…'"). Types: string, boolean, int, array, object.
_CTX = {"clientContext": "string"}
ACTION_PARAMETERS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    # call-answer
    "answer": (
        {
            "callbackUri": "string",
            "acceptedModalities": "array",
            "callOptions": "object",
            "mediaConfig": "object",
            "participantCapacity": "int",
        },
        {},
    ),
    # call-reject
    "reject": ({"reason": "string", "callbackUri": "string"}, {}),
    # call-redirect; routingPolicies appears in the v1.0 page's simultaneous-ring example
    "redirect": (
        {"targets": "array", "timeout": "int", "callbackUri": "string", "routingPolicies": "array"},
        {"targetDisposition": "string", "maskCallee": "boolean", "maskCaller": "boolean"},
    ),
    # call-transfer (clientContext in the PSTN examples)
    "transfer": ({"transferTarget": "object", "transferee": "object", **_CTX}, {}),
    # call-playprompt: loop is beta only
    "playPrompt": ({"prompts": "array", **_CTX}, {"loop": "boolean"}),
    # call-record
    "recordResponse": (
        {
            "prompts": "array",
            "bargeInAllowed": "boolean",
            "initialSilenceTimeoutInSeconds": "int",
            "maxSilenceTimeoutInSeconds": "int",
            "maxRecordDurationInSeconds": "int",
            "playBeep": "boolean",
            "stopTones": "array",
            **_CTX,
        },
        {},
    ),
    "subscribeToTone": (dict(_CTX), {}),
    "cancelMediaProcessing": (dict(_CTX), {}),
    "mute": (dict(_CTX), {}),
    "unmute": (dict(_CTX), {}),
    "updateRecordingStatus": ({"status": "string", **_CTX}, {}),
    "changeScreenSharingRole": ({"role": "string"}, {}),
    "sendDtmfTones": ({"tones": "array", "delayBetweenTonesMs": "int", **_CTX}, {}),
    "invite": ({"participants": "array", **_CTX}, {}),
    "participantMute": (dict(_CTX), {}),
    "muteAll": ({}, {"participants": "array", **_CTX}),
    "updateMetadata": ({}, {"metadata": "string", **_CTX}),
}

# Properties of the call resource (resources/call, v1.0), and those only the beta resource has:
# a new call with any other property is refused, as OData refuses unknown properties.
CALL_PROPERTIES: tuple[dict[str, str], dict[str, str]] = (
    {
        "callbackUri": "string",
        "callChainId": "string",
        "callOptions": "object",
        "callRoutes": "array",
        "chatInfo": "object",
        "direction": "string",
        "id": "string",
        "incomingContext": "object",
        "mediaConfig": "object",
        "mediaState": "object",
        "meetingInfo": "object",
        "myParticipantId": "string",
        "requestedModalities": "array",
        "resultInfo": "object",
        "source": "object",
        "state": "string",
        "subject": "string",
        "targets": "array",
        "tenantId": "string",
        "toneInfo": "object",
        "transcription": "object",
    },
    {
        "activeModalities": "array",
        "answeredBy": "object",
        "meetingCapability": "object",
        "ringingTimeoutInSeconds": "int",
        "routingPolicies": "array",
        "terminationReason": "string",
        "replacesContext": "string",
    },
)

_JSON_TYPES = {"string": (str,), "boolean": (bool,), "array": (list,), "object": (dict,)}


def _fits(value: Any, kind: str) -> bool:
    if value is None:
        return True
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _JSON_TYPES[kind])


def check_parameters(action: str, body: dict, version: str) -> None:
    """Refuse what Graph refuses: parameters the action does not have (in this API version), and
    parameters of the wrong JSON type."""
    v1, beta = ACTION_PARAMETERS[action]
    allowed = {**v1, **beta} if version == "beta" else v1
    name = "mute" if action == "participantMute" else action
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        if key not in allowed:
            hint = " (a beta parameter: use /beta)" if key in beta else ""
            raise GraphError(
                400,
                "BadRequest",
                f"The parameter '{key}' in the request payload is not a valid "
                f"parameter for the operation '{name}'.{hint}",
            )
        if not _fits(value, allowed[key]):
            raise GraphError(
                400,
                "BadRequest",
                f"The parameter '{key}' of the operation '{name}' must be "
                f"of type {allowed[key]}, not {type(value).__name__}.",
            )


def check_call_properties(body: dict, version: str) -> None:
    """A new call holds properties of the call resource only, each of its documented JSON type."""
    v1, beta = CALL_PROPERTIES
    allowed = {**v1, **beta} if version == "beta" else v1
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        if key not in allowed:
            raise GraphError(
                400,
                "BadRequest",
                f"The property '{key}' does not exist on type 'microsoft.graph.call'. "
                "Make sure to only use property names that are defined by the type "
                "or mark the type as open type.",
            )
        if not _fits(value, allowed[key]):
            raise GraphError(
                400,
                "BadRequest",
                f"The property '{key}' of 'microsoft.graph.call' must be of type "
                f"{allowed[key]}, not {type(value).__name__}.",
            )


def api_root(request: web.Request) -> str:
    return f"{request.url.origin()}/{request.match_info['version']}"


def _json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )


async def _body(request: web.Request) -> dict:
    raw = await request.read()  # cached: the middleware has read it already
    if not raw:
        return {}
    if request.content_type != "application/json":
        raise GraphError(415, "UnsupportedMediaType", "Content-Type must be application/json")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GraphError(400, "BadRequest", f"invalid JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "the body must be a JSON object")
    return body


def _check_roles(request: web.Request, needed: tuple[str, ...]) -> None:
    claims = request.get(TOKEN_CLAIMS)
    if claims is None:
        return  # authentication switched off
    if not set(needed) & set(claims.get("roles", [])):
        raise GraphError(
            403, "Forbidden", f"the application needs one of the permissions {', '.join(needed)}"
        )


class GraphRoutes:
    def __init__(self, emulator: GraphEmulator) -> None:
        self.emu = emulator
        self.service = emulator.service

    def add_to(self, app: web.Application) -> None:
        r = app.router
        r.add_post(ROOT, self.create_call)
        r.add_get(ROOT + "/{call_id}", self.get_call)
        r.add_delete(ROOT + "/{call_id}", self.delete_call)
        r.add_get(ROOT + "/{call_id}/participants", self.list_participants)
        r.add_post(
            ROOT + "/{call_id}/participants/{action:(?:microsoft\\.graph\\.)?(?:invite|muteAll)}",
            self.participants_action,
        )
        r.add_get(ROOT + "/{call_id}/participants/{participant_id}", self.get_participant)
        r.add_delete(ROOT + "/{call_id}/participants/{participant_id}", self.delete_participant)
        r.add_post(ROOT + "/{call_id}/participants/{participant_id}/{action}", self.participant_action)
        r.add_get(ROOT + "/{call_id}/operations/{operation_id}", self.get_operation)
        r.add_post(ROOT + "/{call_id}/{action}", self.call_action)

    def _call(self, request: web.Request) -> Call:
        return self.service.get_call(request.match_info["call_id"])

    def _identity(self, request: web.Request) -> tuple[str, str]:
        claims = request.get(TOKEN_CLAIMS)
        if claims is not None:
            return claims["appid"], claims["tid"]
        app = self.emu.app
        return app.app_id, app.tenant_id

    def _operation_response(self, request: web.Request, call: Call, op: Operation) -> web.Response:
        body = op.to_graph()
        body["@odata.context"] = f"{api_root(request)}/$metadata#{op.odata_type.lstrip('#').split('.')[-1]}"
        location = f"{api_root(request)}/communications/calls/{call.id}/operations/{op.id}"
        return _json_response(body, 200, {"Location": location})

    # -- calls ---------------------------------------------------------------------------------
    async def create_call(self, request: web.Request) -> web.Response:
        body = await _body(request)
        check_call_properties(body, request.match_info["version"])
        app_id, tenant_id = self._identity(request)
        if body.get("meetingInfo") is not None or body.get("chatInfo") is not None:
            kind = "meeting"
        elif len(body.get("targets") or []) > 1:
            kind = "group"
        else:
            kind = "p2p"
        _check_roles(request, CREATE_ROLES[kind])
        call = self.service.create_call(
            body, app_id=app_id, tenant_id=tenant_id, scenario_id=request.headers.get("scenario-id")
        )
        location = f"{api_root(request)}/communications/calls/{call.id}"
        return _json_response(call.to_graph(api_root(request)), 201, {"Location": location})

    async def get_call(self, request: web.Request) -> web.Response:
        call = self._call(request)
        return _json_response(call.to_graph(api_root(request)))

    async def delete_call(self, request: web.Request) -> web.Response:
        self.service.hang_up(self._call(request))
        return web.Response(status=204)

    async def call_action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if action.startswith(NAMESPACE):
            action = action[len(NAMESPACE) :]
        svc = self.service
        if action == "keepAlive":
            svc.keep_alive(request.match_info["call_id"])
            return web.Response(status=200)
        body = await _body(request)
        call = self._call(request)
        version = request.match_info["version"]
        # actions on the call itself; a beta-only one on v1.0 is refused below as an unknown segment
        if (
            action in ACTION_PARAMETERS
            and action not in ("invite", "muteAll", "participantMute")
            and (ACTION_PARAMETERS[action][0] or version == "beta")
        ):
            check_parameters(action, body, version)
        if action in ACTION_ROLES:
            _check_roles(request, ACTION_ROLES[action])
        accepted = {
            "answer": svc.answer,
            "reject": svc.reject,
            "redirect": svc.redirect,
            "transfer": svc.transfer,
            "changeScreenSharingRole": svc.change_screen_sharing_role,
        }
        if action in accepted:
            accepted[action](call, body)
            return web.Response(status=202)
        if action == "updateMetadata" and request.match_info["version"] == "beta":
            # call-updatemetadata (beta): 202 Accepted, a Location of the commsOperation, no body
            op = svc.update_metadata(call, body)
            location = f"{api_root(request)}/communications/calls/{call.id}/operations/{op.id}"
            return web.Response(status=202, headers={"Location": location})
        operations = {
            "mute": lambda c, b: svc.mute(c, b, mute=True),
            "unmute": lambda c, b: svc.mute(c, b, mute=False),
            "updateRecordingStatus": svc.update_recording_status,
            "subscribeToTone": svc.subscribe_to_tone,
            "cancelMediaProcessing": svc.cancel_media_processing,
            "playPrompt": svc.play_prompt,
            "recordResponse": svc.record_response,
            "sendDtmfTones": svc.send_dtmf_tones,
        }
        if action not in operations:
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{action}'.")
        return self._operation_response(request, call, operations[action](call, body))

    async def get_operation(self, request: web.Request) -> web.Response:
        call = self.service.calls.get(request.match_info["call_id"]) or self.service.ended.get(
            request.match_info["call_id"]
        )
        if call is None:
            raise GraphError(404, "ItemNotFound", "call not found")
        op = find_operation(call, request.match_info["operation_id"])
        return self._operation_response(request, call, op)

    # -- participants --------------------------------------------------------------------------
    async def list_participants(self, request: web.Request) -> web.Response:
        call = self._call(request)
        context = f"{api_root(request)}/$metadata#communications/calls('{call.id}')/participants"
        return _json_response(
            {"value": [p.to_graph() for p in call.roster() if p.id is not None], "@odata.context": context}
        )

    async def get_participant(self, request: web.Request) -> web.Response:
        call = self._call(request)
        person = self.service._participant(call, request.match_info["participant_id"])
        body = person.to_graph()
        body["@odata.context"] = (
            f"{api_root(request)}/$metadata#communications/calls('{call.id}')/participants/$entity"
        )
        return _json_response(body)

    async def delete_participant(self, request: web.Request) -> web.Response:
        call = self._call(request)
        self.service.delete_participant(call, request.match_info["participant_id"])
        return web.Response(status=204)

    async def participants_action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"].removeprefix(NAMESPACE)
        body = await _body(request)
        call = self._call(request)
        if action == "muteAll":
            if request.match_info["version"] != "beta":
                raise GraphError(400, "BadRequest", "muteAll exists only in the beta API")
        check_parameters(action, body, request.match_info["version"])
        if action == "muteAll":
            return self._operation_response(request, call, self.service.mute_all(call, body))
        _check_roles(request, ACTION_ROLES["invite"])
        return self._operation_response(request, call, self.service.invite(call, body))

    async def participant_action(self, request: web.Request) -> web.Response:
        action = request.match_info["action"].removeprefix(NAMESPACE)
        if action != "mute":
            raise GraphError(400, "BadRequest", f"Resource not found for the segment '{action}'.")
        body = await _body(request)
        check_parameters("participantMute", body, request.match_info["version"])
        call = self._call(request)
        op = self.service.participant_mute(call, request.match_info["participant_id"], body)
        return self._operation_response(request, call, op)

"""The control API: operators join meetings, list calls and hang up through the bot's listener.

Routes (``[control] path``, default ``/control``), on the webhook's aiohttp application, each
needing ``Authorization: Bearer <token>`` with the token from the environment variable
``[control] token_env`` names (compared in constant time; a missing or wrong token is answered
401 and logged, at most one warning a minute per kind)::

    POST   {path}/calls          {"joinUrl": "..."} or {"joinMeetingId": "...", "passcode": "..."}
                                 -> 201 {"id", "state"} once Graph created the call
    GET    {path}/calls          -> 200 {"calls": [call, ...]}
    GET    {path}/calls/{id}     -> 200 call, 404 unknown
    DELETE {path}/calls/{id}     -> 202 {"id", "state"} (the hang-up is under way), 404 unknown

A call is ``{"id", "state", "direction", "participants": [{"id", "displayName"}], "media"}``:
the participants other than the bot, and ``media`` the call's media statistics
(:meth:`mediacore.CallMedia.stats`: ``streams``, ``audio``, ``dropped``, ``processorErrors``)
when the bot hosts its media, else null. Errors are ``{"error": {"code", "message"}}`` (the
shape of Graph's errors, https://learn.microsoft.com/graph/errors): 400 for a body that is not
JSON or lacks a field, 502 when Graph refused the request (its status, code and request id
included), 503 while the bot shuts down.

:class:`ControlClient` is the other end, used by ``mediabot join`` / ``calls`` / ``hangup``.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .graph import models as m
from .graph.errors import GraphError

if TYPE_CHECKING:
    from .app import Bot
    from .calls import Call

log = logging.getLogger("bot.control")

JOIN_FIELDS = ("joinUrl", "joinMeetingId", "passcode", "tenantId")
MAX_BODY_BYTES = 16 * 1024


class _Refusals:
    """Counts refused control requests and logs each kind loudly at most once per
    ``interval_s`` (the rest at DEBUG, summed into the next loud record)."""

    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self.counts: collections.Counter[str] = collections.Counter()
        self._loud_at: dict[str, float] = {}
        self._quiet: collections.Counter[str] = collections.Counter()

    def record(self, status: int, kind: str, reason: str, remote: str | None) -> None:
        key = f"{status} {kind}"
        self.counts[key] += 1
        now = self._clock()
        last = self._loud_at.get(key)
        if last is None or now - last >= self.interval_s:
            self._loud_at[key] = now
            quiet = self._quiet.pop(key, 0)
            more = f" ({quiet} more like it since the last report)" if quiet else ""
            log.warning("control request answered %d (%s) from %s: %s%s", status, kind, remote, reason, more)
        else:
            self._quiet[key] += 1
            log.debug("control request answered %d (%s) from %s: %s", status, kind, remote, reason)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def jsonable(obj: Any) -> Any:
    """Statistics as JSON: dataclass fields in camelCase, mapping keys kept, NaN/inf as null."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {_camel(f.name): jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "item"):  # numpy scalars
        return jsonable(obj.item())
    return str(obj)


class ControlApi:
    """The control routes of one :class:`~bot.app.Bot`; :meth:`install` adds them to the
    webhook's aiohttp application (before the bot starts)."""

    def __init__(
        self, bot: Bot, *, token: str, path: str = "/control", refusals_interval_s: float = 60.0
    ) -> None:
        if not token:
            raise ValueError("the control API needs a bearer token")
        self.bot = bot
        self.path = "/" + path.strip("/")
        self._token = _digest(token)
        self.refusals = _Refusals(refusals_interval_s)

    def install(self, app: web.Application | None = None) -> None:
        app = app if app is not None else self.bot.webhook.app
        calls = self.path + "/calls"
        app.router.add_post(calls, self._guard(self._join))
        app.router.add_get(calls, self._guard(self._list))
        app.router.add_get(calls + "/{call_id}", self._guard(self._get))
        app.router.add_delete(calls + "/{call_id}", self._guard(self._hang_up))
        log.info("control API at %s (bearer token required)", calls)

    # ---- answers -------------------------------------------------------------------------------

    def _error(
        self,
        request: web.Request,
        status: int,
        code: str,
        message: str,
        *,
        log_kind: str | None = None,
        **extra: Any,
    ) -> web.Response:
        if log_kind is not None:
            self.refusals.record(status, log_kind, message, request.remote)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return web.json_response(
            {"error": {"code": code, "message": message, **extra}}, status=status, headers=headers
        )

    def authorized(self, header: str | None) -> bool:
        """``Authorization: Bearer <token>`` with the configured token (constant time)."""
        scheme, _, given = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(_digest(given.strip()), self._token)

    def _guard(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            header = request.headers.get("Authorization")
            if not self.authorized(header):
                why = "no bearer token" if not header else "wrong bearer token"
                return self._error(request, 401, "unauthorized", why, log_kind="auth")
            try:
                return await handler(request)
            except web.HTTPException:
                raise
            except Exception as exc:  # a bug, not an input: logged with its traceback
                log.exception("control %s %s failed", request.method, request.path)
                return self._error(request, 500, "internalError", f"{type(exc).__name__}: {exc}")

        guarded.__name__ = handler.__name__
        return guarded

    def _call(self, call_id: str) -> Call | None:
        return self.bot.calls.get(m.id_key(call_id))

    def describe(self, call: Call) -> dict[str, Any]:
        me = call.my_participant_id
        people = [
            {"id": p.id, "displayName": p.display_name}
            for p in call.participants
            if p.id is not None and p.id != me
        ]
        return {
            "id": call.id,
            "state": call.state,
            "direction": call.resource.direction,
            "participants": people,
            "media": self._media(call),
        }

    def _media(self, call: Call) -> dict[str, Any] | None:
        media_for = getattr(self.bot.media, "media_for", None)
        if media_for is None:
            return None
        media = media_for(call)
        if media is None:
            return None
        try:
            return jsonable(media.stats())
        except Exception as exc:  # e.g. closing under us
            log.debug("call %s: no media statistics: %r", call.id, exc)
            return None

    # ---- routes --------------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": [self.describe(c) for c in list(self.bot.calls.values())]})

    async def _get(self, request: web.Request) -> web.Response:
        call = self._call(request.match_info["call_id"])
        if call is None:
            return self._error(request, 404, "notFound", f"no call {request.match_info['call_id']!r}")
        return web.json_response(self.describe(call))

    async def _join(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return self._error(
                request, 413, "tooLarge", f"body larger than {MAX_BODY_BYTES} bytes", log_kind="size"
            )
        raw = await request.read()  # bounded by the application's client_max_size too
        if len(raw) > MAX_BODY_BYTES:
            return self._error(
                request, 413, "tooLarge", f"body larger than {MAX_BODY_BYTES} bytes", log_kind="size"
            )
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return self._error(request, 400, "badRequest", f"body is not JSON: {exc}", log_kind="json")
        problem = _join_problem(body)
        if problem:
            return self._error(request, 400, "badRequest", problem, log_kind="body")
        if not self.bot.accepting:
            return self._error(request, 503, "shuttingDown", "the bot is shutting down")
        # a join Graph refuses releases the media made for it (Bot: media_unused)
        try:
            call = await self.bot.join_meeting(
                body.get("joinUrl"),
                join_meeting_id=body.get("joinMeetingId"),
                passcode=body.get("passcode"),
                tenant_id=body.get("tenantId"),
                wait=False,
            )
        except BaseException as exc:
            if isinstance(exc, m.JoinUrlError):
                return self._error(request, 400, "badRequest", str(exc), log_kind="body")
            if isinstance(exc, GraphError):
                log.warning("control join refused by Graph: %s", exc)
                return self._error(
                    request,
                    502,
                    exc.code or "graphError",
                    exc.message,
                    graphStatus=exc.status,
                    requestId=exc.request_id,
                    clientRequestId=exc.client_request_id,
                )
            raise
        log.info("control: joined call %s (%s)", call.id, call.state)
        return web.json_response(
            {"id": call.id, "state": call.state},
            status=201,
            headers={"Location": f"{self.path}/calls/{call.id}"},
        )

    async def _hang_up(self, request: web.Request) -> web.Response:
        call = self._call(request.match_info["call_id"])
        if call is None:
            return self._error(request, 404, "notFound", f"no call {request.match_info['call_id']!r}")
        try:
            await call.hang_up(wait=False)
        except GraphError as exc:
            log.warning("control hang-up of %s refused by Graph: %s", call.id, exc)
            return self._error(
                request,
                502,
                exc.code or "graphError",
                exc.message,
                graphStatus=exc.status,
                requestId=exc.request_id,
                clientRequestId=exc.client_request_id,
            )
        log.info("control: hanging up call %s", call.id)
        return web.json_response({"id": call.id, "state": call.state}, status=202)


def _join_problem(body: Any) -> str | None:
    """Why a join request's body is unusable (None: it is fine)."""
    if not isinstance(body, dict):
        return 'body must be a JSON object: {"joinUrl": ...} or {"joinMeetingId": ..., "passcode": ...}'
    unknown = sorted(k for k in body if k not in JOIN_FIELDS)
    if unknown:
        return f"unknown field(s) {', '.join(map(repr, unknown))} (known: {', '.join(JOIN_FIELDS)})"
    for key in JOIN_FIELDS:
        if key in body and not (isinstance(body[key], str) and body[key].strip()):
            return f"{key} must be a non-empty string"
    if "joinUrl" in body and "joinMeetingId" in body:
        return "give joinUrl or joinMeetingId, not both"
    if "passcode" in body and "joinMeetingId" not in body:
        return "passcode goes with joinMeetingId"
    if "joinUrl" not in body and "joinMeetingId" not in body:
        return "joinUrl (or joinMeetingId with passcode) is required"
    if "joinMeetingId" in body and not body["joinMeetingId"].strip().isdigit():
        return "joinMeetingId must be the meeting's numeric id"
    return None


# ---- the client (mediabot join / calls / hangup) ---------------------------------------------


class ControlError(Exception):
    """The bot answered an error (``status``, ``code``, ``message``) or could not be reached
    (``status`` None)."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, body: Any = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.body = status, code, body


class ControlClient:
    """Talks to a bot's control API at ``base_url`` (``http://host:port/control``)."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                **({"Content-Type": "application/json"} if data else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                answer = json.loads(raw)
                error = answer["error"]
                code, message = error.get("code"), error.get("message")
            except (ValueError, KeyError, TypeError, AttributeError):
                answer, code, message = raw.decode(errors="replace"), None, exc.reason
            raise ControlError(
                f"{exc.code} {code or ''}: {message}".replace("  ", " "),
                status=exc.code,
                code=code,
                body=answer,
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ControlError(f"cannot reach the bot at {self.base_url}: {reason}") from None
        return json.loads(raw) if raw else None

    def join(
        self, join_url: str | None = None, *, join_meeting_id: str | None = None, passcode: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, str] = {}
        if join_url:
            body["joinUrl"] = join_url
        if join_meeting_id:
            body["joinMeetingId"] = join_meeting_id
        if passcode:
            body["passcode"] = passcode
        return self.request("POST", "/calls", body)

    def calls(self) -> list[dict[str, Any]]:
        return self.request("GET", "/calls")["calls"]

    def call(self, call_id: str) -> dict[str, Any]:
        return self.request("GET", "/calls/" + urllib.parse.quote(call_id, safe=""))

    def hang_up(self, call_id: str) -> dict[str, Any]:
        return self.request("DELETE", "/calls/" + urllib.parse.quote(call_id, safe=""))


def control_url(host: str, port: int, path: str) -> str:
    """The control API's base URL for a listener bound to ``host:port`` (a wildcard bind is
    reached on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/{path.strip('/')}"


__all__ = ["ControlApi", "ControlClient", "ControlError", "control_url", "jsonable"]

"""``GraphEmulator``: the local Graph calls service, its identity endpoints and its control API in
one aiohttp application, served over HTTP (Graph, callbacks' OpenID/JWKS, control) and HTTPS (the
same routes; msal needs an https authority).

    async with GraphEmulator() as emu:
        emu.register_bot(webhook_url="http://127.0.0.1:8443/api/calls")
        # bot: graph base emu.graph_url, token via msal with **emu.msal_kwargs(),
        #      callback OpenID configuration emu.openid_configuration_url, app id emu.app_id
        meeting = emu.create_meeting()
        emu.add_participant(meeting.id, "Alice")
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .auth import AppRegistration, EmulatorAuth, TlsMaterial, TokenError
from .graph import TOKEN_CLAIMS, GraphRoutes
from .login import CALLBACK_JWKS_PATH, CALLBACK_OPENID_PATH, LoginRoutes
from .notify import Delivery, NotificationFaults, Notifier
from .scenario import ControlRoutes, new_meeting, new_person
from .service import CallsService, GraphError, MediaHandler, ServiceOptions
from .state import Call, Meeting, Participant, identity, new_id

GRAPH_PATH = re.compile(r"^/(v1\.0|beta)/")
TOO_MANY_REQUESTS_MESSAGE = "Please retry again later."


@dataclass
class RecordedRequest:
    """One request the emulator received (for assertions)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    status: int
    request_id: str
    time_s: float = field(default_factory=time.time)


@dataclass
class HttpFault:
    """Answer the next ``count`` matching requests with ``status`` (429, 503, 504 ...)."""

    status: int
    count: int = 1
    retry_after: str | None = None  # header value as sent, e.g. "2.128"
    path: str | None = None  # regular expression searched in the path
    method: str | None = None

    def matches(self, request: web.Request) -> bool:
        if self.count <= 0:
            return False
        if self.method is not None and self.method.upper() != request.method:
            return False
        return self.path is None or re.search(self.path, request.path) is not None


def graph_error_body(
    code: str, message: str, request_id: str, client_request_id: str | None, status: int
) -> dict:
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    inner: dict[str, Any] = {"request-id": request_id, "date": date}
    if client_request_id:
        inner["client-request-id"] = client_request_id
    if status == 429:
        # The documented throttling body (https://learn.microsoft.com/graph/throttling).
        inner = {
            "code": "429",
            "date": date,
            "message": "Please retry after",
            "request-id": request_id,
            "status": "429",
        }
        return {
            "error": {"code": "TooManyRequests", "innerError": inner, "message": TOO_MANY_REQUESTS_MESSAGE}
        }
    return {"error": {"code": code, "message": message, "innerError": inner}}


class GraphEmulator:
    """A local, faithful stand-in for the Graph calls service (see the module docstring)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_port: int = 0,
        tls: bool = True,
        require_auth: bool = True,
        options: ServiceOptions | None = None,
        notification_faults: NotificationFaults | None = None,
        media_handler: MediaHandler | None = None,
        app_id: str | None = None,
        tenant_id: str | None = None,
        client_secret: str | None = None,
        webhook_url: str | None = None,
        callback_ssl: Any = None,
    ) -> None:
        self.host = host
        self._port = port
        self._tls_port = tls_port
        self._tls_enabled = tls
        self.require_auth = require_auth
        self.auth = EmulatorAuth()
        self.app = self.auth.register_app(
            AppRegistration(
                app_id=app_id or str(uuid.uuid4()),
                tenant_id=tenant_id or str(uuid.uuid4()),
                client_secret=client_secret or uuid.uuid4().hex,
                webhook_url=webhook_url,
                display_name="mediabot",
            )
        )
        self.tls: TlsMaterial | None = None
        self.notifier = Notifier(
            sign=self._sign_callback,
            resolve_url=self._callback_url,
            on_redirect=self._redirect_callback,
            faults=notification_faults,
            ssl_context=callback_ssl,
        )
        self.service = CallsService(self.notifier, self.auth.apps, options or ServiceOptions(), media_handler)
        bind = getattr(media_handler, "bind", None)
        if bind is not None:  # a media side that ends calls (ConferenceHandler: refused media)
            bind(self)
        self.http_faults: list[HttpFault] = []
        self.requests: list[RecordedRequest] = []
        self.tokens_issued = 0
        self.discovery_fetches = 0
        self.jwks_fetches = 0
        self._runner: web.AppRunner | None = None
        self._http_clients: list[Any] = []  # requests sessions handed to msal (msal_kwargs)
        self.port = 0
        self.tls_port = 0

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> GraphEmulator:
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024 * 1024)
        LoginRoutes(self).add_to(app)
        ControlRoutes(self).add_to(app)
        GraphRoutes(self).add_to(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self._tls_enabled:
            self.tls = await asyncio.get_running_loop().run_in_executor(None, TlsMaterial.generate)
            tls_site = web.TCPSite(
                self._runner, self.host, self._tls_port, ssl_context=self.tls.server_context()
            )
            await tls_site.start()
            self.tls_port = tls_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.service.public_base = self.base_url
        await self.notifier.start()
        return self

    async def stop(self) -> None:
        for session in self._http_clients:
            session.close()
        self._http_clients.clear()
        await self.service.stop()
        await self.notifier.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.tls is not None:
            self.tls.cleanup()

    async def __aenter__(self) -> GraphEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- addresses -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def tls_base_url(self) -> str:
        if not self.tls_port:
            raise RuntimeError("the emulator was started without TLS")
        return f"https://{self.host}:{self.tls_port}"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def beta_url(self) -> str:
        return f"{self.base_url}/beta"

    @property
    def openid_configuration_url(self) -> str:
        """Where the bot discovers the callback signing keys (the emulator's api.aps.skype.com)."""
        return self.base_url + CALLBACK_OPENID_PATH

    @property
    def jwks_url(self) -> str:
        return self.base_url + CALLBACK_JWKS_PATH

    @property
    def authority(self) -> str:
        """msal authority (https, on the TLS listener)."""
        return f"{self.tls_base_url}/{self.app.tenant_id}"

    @property
    def token_url(self) -> str:
        return f"{self.authority}/oauth2/v2.0/token"

    @property
    def instance_discovery_url(self) -> str:
        return f"{self.tls_base_url}/common/discovery/instance"

    @property
    def ca_cert_path(self) -> str:
        if self.tls is None:
            raise RuntimeError("the emulator was started without TLS")
        return self.tls.ca_cert_path

    @property
    def app_id(self) -> str:
        return self.app.app_id

    @property
    def tenant_id(self) -> str:
        return self.app.tenant_id

    @property
    def client_secret(self) -> str:
        assert self.app.client_secret is not None
        return self.app.client_secret

    def msal_kwargs(self) -> dict:
        """Keyword arguments for ``msal.ConfidentialClientApplication`` (besides client id and
        credential) that make msal's real client-credentials flow run against this emulator.

        * ``authority``: msal accepts only an ``https`` authority, so it is the TLS listener.
        * ``instance_discovery=False``: otherwise msal validates the (unknown) host and, on every
          ``acquire_token_for_client``, looks up authority aliases at the hard-coded
          ``https://login.microsoftonline.com/common/discovery/instance`` (a URL passed as
          ``instance_discovery`` is used for validation only, not for that alias lookup). msal then
          reads ``{authority}/v2.0/.well-known/openid-configuration`` from the emulator.
        * ``http_client``: a ``requests.Session`` that trusts the emulator's CA. msal's own
          ``verify=`` is not enough: requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` from the
          environment override a session's ``verify``, so the session has ``trust_env=False``.

        msal does blocking discovery in its constructor: build the application off the event loop.
        The session is closed by ``stop()`` (left to the garbage collector, the finalizers of its
        TLS sockets can run inside a later ``compile()``, which CPython 3.11.7 reports as
        ``SystemError: AST constructor recursion depth mismatch``).
        """
        import requests  # msal's own HTTP dependency

        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_cert_path
        self._http_clients.append(session)
        return {"authority": self.authority, "instance_discovery": False, "http_client": session}

    # -- bots, tokens, faults ------------------------------------------------------------------
    def register_bot(
        self,
        *,
        webhook_url: str | None = None,
        app_id: str | None = None,
        tenant_id: str | None = None,
        client_secret: str | None = None,
        certificate_pem: bytes | None = None,
        roles: tuple[str, ...] | None = None,
        display_name: str = "mediabot",
    ) -> AppRegistration:
        """Register (or update) a bot application; without ``app_id`` updates the default one."""
        current = self.auth.apps.get(app_id or self.app.app_id)
        if current is None:
            current = self.auth.register_app(
                AppRegistration(
                    app_id=app_id or str(uuid.uuid4()),
                    tenant_id=tenant_id or self.app.tenant_id,
                    client_secret=client_secret,
                    display_name=display_name,
                )
            )
        if webhook_url is not None:
            current.webhook_url = webhook_url
        if client_secret is not None:
            current.client_secret = client_secret
        if certificate_pem is not None:
            current.certificate_pem = certificate_pem
        if roles is not None:
            current.roles = roles
        return current

    def access_token(self, app_id: str | None = None) -> str:
        app = self.auth.apps[app_id or self.app.app_id]
        return self.auth.issue_access_token(app.app_id, app.tenant_id)

    def fail_requests(
        self,
        status: int,
        *,
        count: int = 1,
        retry_after: float | str | None = None,
        path: str | None = None,
        method: str | None = None,
    ) -> HttpFault:
        fault = HttpFault(
            status=status,
            count=count,
            retry_after=None if retry_after is None else str(retry_after),
            path=path,
            method=method,
        )
        self.http_faults.append(fault)
        return fault

    @property
    def notification_faults(self) -> NotificationFaults:
        return self.notifier.faults

    @notification_faults.setter
    def notification_faults(self, faults: NotificationFaults) -> None:
        self.notifier.set_faults(faults)

    @property
    def deliveries(self) -> list[Delivery]:
        return self.notifier.deliveries

    # -- scenarios -----------------------------------------------------------------------------
    def create_meeting(
        self,
        *,
        subject: str | None = None,
        join_meeting_id: str | None = None,
        passcode: str | None = None,
        organizer_id: str | None = None,
    ) -> Meeting:
        meeting = new_meeting(
            self.app.tenant_id,
            organizer_id=organizer_id,
            subject=subject,
            join_meeting_id=join_meeting_id,
            passcode=passcode,
        )
        self.service.meetings[meeting.id] = meeting
        return meeting

    def meeting_by_thread(self, thread_id: str) -> Meeting | None:
        return next((m for m in self.service.meetings.values() if m.thread_id == thread_id), None)

    def add_participant(
        self,
        meeting_id: str,
        display_name: str,
        *,
        user_id: str | None = None,
        video: bool = False,
        muted: bool = False,
    ) -> Participant:
        meeting = self._meeting(meeting_id)
        person = new_person(
            meeting, display_name, user_id=user_id, tenant_id=meeting.tenant_id, video=video, muted=muted
        )
        self.service.join_meeting(meeting, person)
        return person

    def remove_participant(self, meeting_id: str, participant_id: str) -> Participant:
        return self.service.leave_meeting(self._meeting(meeting_id), participant_id)

    def share_screen(self, meeting_id: str, participant_id: str, sharing: bool = True) -> str | None:
        """A simulated participant starts (or stops) sharing their screen; returns the session id."""
        return self.service.share_screen(self._meeting(meeting_id), participant_id, sharing)

    def set_participant_muted(self, meeting_id: str, participant_id: str, muted: bool) -> None:
        self.service.set_muted(self._meeting(meeting_id), participant_id, muted)

    def incoming_call(
        self,
        *,
        display_name: str = "Caller",
        user_id: str | None = None,
        phone: str | None = None,
        modalities: list[str] | None = None,
        meeting_id: str | None = None,
        app_id: str | None = None,
        observed_participant_id: str | None = None,
    ) -> Call:
        """Ring the bot: POSTs the ``created`` notification to the bot's registered webhook.
        With ``observed_participant_id`` (a participant of the meeting ``meeting_id``) it is a
        policy-based recording call: the recording bot is invited because that participant is
        under a recording policy; the caller is that participant."""
        app = self.auth.apps[app_id or self.app.app_id]
        meeting = self._meeting(meeting_id) if meeting_id else None
        observed = None
        if observed_participant_id is not None:
            observed = meeting.participants.get(observed_participant_id) if meeting else None
            if observed is None:
                raise KeyError(f"participant {observed_participant_id} is not in meeting {meeting_id}")
        if observed is not None:
            source = observed.identity
        elif phone:
            source = identity("phone", phone)
        else:
            source = identity("user", user_id or new_id(), display_name, app.tenant_id)
        return self.service.incoming_call(
            app_id=app.app_id,
            tenant_id=app.tenant_id,
            source=source,
            modalities=modalities or ["audio"],
            meeting=meeting,
            observed_participant_id=observed_participant_id,
        )

    def press_tones(self, call_id: str, tones: list[str]) -> int:
        """A simulated participant presses DTMF keys (``"1"``, ``"#"`` or ``"tone1"``, ``"pound"``)."""
        return self.service.press_tones(self.service.get_call(call_id), tones)

    def end_call(self, call_id: str) -> None:
        """The remote side hangs up: the bot gets ``terminated`` (deleted)."""
        self.service.end_by_remote(self.service.get_call(call_id))

    def call(self, call_id: str) -> Call:
        call = self.service.calls.get(call_id) or self.service.ended.get(call_id)
        if call is None:
            raise KeyError(call_id)
        return call

    async def settle(self, timeout_s: float = 10.0) -> None:
        """Wait for every running sequence and queued notification (media operations excepted)."""
        await self.service.settle(timeout_s)

    async def wait_for_notification(
        self, predicate: Callable[[Delivery], bool], timeout_s: float = 5.0
    ) -> Delivery:
        return await self.notifier.wait_for(predicate, timeout_s)

    async def wait_for_state(self, call_id: str, state: str, timeout_s: float = 5.0) -> Delivery:
        """The delivered notification that put the call into ``state`` (``terminated`` = deleted)."""

        def matches(d: Delivery) -> bool:
            item = d.notification
            data = item.get("resourceData")
            if d.call_id != call_id or not isinstance(data, dict) or not d.delivered:
                return False
            if (
                state == "terminated"
                and item.get("changeType") == "deleted"
                and "/operations/" not in item.get("resourceUrl", "")
            ):
                return True
            return str(data.get("state", "")).lower() == state.lower()

        return await self.wait_for_notification(matches, timeout_s)

    def _meeting(self, meeting_id: str) -> Meeting:
        meeting = self.service.meetings.get(meeting_id)
        if meeting is None:
            raise KeyError(f"no meeting {meeting_id}")
        return meeting

    # -- notifier hooks ------------------------------------------------------------------------
    def _sign_callback(self, app_id: str, tenant_id: str) -> str:
        return self.auth.callback_token(app_id, tenant_id)

    def _callback_url(self, call_id: str) -> str | None:
        return self.service.callback_url(call_id)

    def _redirect_callback(self, call_id: str, location: str) -> None:
        self.service.redirect_callback(call_id, location)

    # -- HTTP middleware: ids, faults, authentication, errors, recording -----------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id")
        scenario_id = request.headers.get("scenario-id")
        body: Any = None
        if request.can_read_body and request.method in ("POST", "PUT", "PATCH"):
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = raw.decode("utf-8", "replace")
        is_graph = GRAPH_PATH.match(request.path) is not None
        extra_headers: dict[str, str] = {}
        try:
            fault = (
                next((f for f in self.http_faults if f.matches(request)), None)
                if is_graph or request.path.endswith("/token")
                else None
            )
            if fault is not None:
                fault.count -= 1
                if fault.retry_after is not None:
                    extra_headers["Retry-After"] = fault.retry_after
                raise GraphError(
                    fault.status,
                    {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "GatewayTimeout"}.get(
                        fault.status, "InternalServerError"
                    ),
                    "Injected fault.",
                )
            if is_graph and self.require_auth:
                request[TOKEN_CLAIMS] = self._authenticate(request)
            response = await handler(request)
        except GraphError as exc:
            extra_headers.update(exc.headers)
            response = web.Response(
                status=exc.status,
                content_type="application/json",
                text=json.dumps(
                    graph_error_body(exc.code, exc.message, request_id, client_request_id, exc.status)
                ),
            )
        except web.HTTPException as exc:
            if not is_graph:
                raise
            code = {404: "ItemNotFound", 405: "MethodNotAllowed"}.get(exc.status, "BadRequest")
            response = web.Response(
                status=exc.status,
                content_type="application/json",
                text=json.dumps(
                    graph_error_body(code, exc.reason, request_id, client_request_id, exc.status)
                ),
            )
        response.headers.update(extra_headers)
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = client_request_id or request_id
        if is_graph:
            response.headers["x-ms-ags-diagnostic"] = json.dumps(
                {
                    "ServerInfo": {
                        "DataCenter": "Local Emulator",
                        "Slice": "E",
                        "Ring": "0",
                        "ScaleUnit": "000",
                        "RoleInstance": "emulator",
                    }
                }
            )
        if scenario_id:
            response.headers["scenario-id"] = scenario_id
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=request.query_string,
                headers=dict(request.headers),
                body=body,
                status=response.status,
                request_id=request_id,
            )
        )
        return response

    def _authenticate(self, request: web.Request) -> dict:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            claims = self.auth.verify_access_token(token.strip())
        except TokenError as exc:
            raise GraphError(401, "InvalidAuthenticationToken", exc.description) from exc
        if claims.get("appid") not in self.auth.apps:
            raise GraphError(401, "InvalidAuthenticationToken", "unknown application")
        return claims

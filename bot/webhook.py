"""The callback endpoint: authenticated notifications in, per-call ordered processing out.

Notifications are Graph ``commsNotification`` bodies
(https://learn.microsoft.com/graph/api/resources/commsnotification), authenticated as the Teams
"incoming call notifications" page says under "Authenticate the callback"
(https://learn.microsoft.com/microsoftteams/platform/bots/calls-and-meetings/call-notifications).
Every POST must carry ``Authorization: Bearer <JWT>`` signed with a key
published through the platform's OpenID configuration; otherwise the answer is 401 and
nothing is processed. A valid request is answered 202 at once; its notifications go to one
queue per call, so a slow handler delays only its own call. Duplicates are dropped.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from aiohttp import web

from .graph import models as m

log = logging.getLogger("bot.webhook")

DEFAULT_OPENID_CONFIGURATION_URL = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"
DEFAULT_ISSUERS = ("https://api.botframework.com", "https://graph.microsoft.com")
#: The tenant of a callback token: the short ``tid`` claim, or its long (WS-Federation) name,
#: which Microsoft identity platform tokens may carry instead.
TENANT_CLAIMS = ("tid", "http://schemas.microsoft.com/identity/claims/tenantid")


def tenant_of(claims: dict[str, Any]) -> str | None:
    """The callback token's tenant id, from ``tid`` or the long ``…/claims/tenantid`` claim."""
    for name in TENANT_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


class CallbackAuthError(Exception):
    """The callback's bearer token is missing or invalid (answered 401)."""


class SigningKeysUnavailable(Exception):
    """No signing keys could be fetched (answered 503: the platform may retry)."""


@dataclass
class NotificationContext:
    tenant_id: str | None
    scenario_id: str | None
    claims: dict[str, Any]
    path: str
    received_at: float = field(default_factory=time.time)


class CallbackAuthenticator:
    """Validates callback JWTs against keys from an OpenID configuration (Teams "incoming call
    notifications" page, "Authenticate the callback").

    Keys are cached for ``refresh_interval_s`` (the reference sample refreshes every 2 h) and
    refetched once when a token names an unknown ``kid`` — at most once per
    ``unknown_kid_refetch_interval_s``, so random kids cannot make us hammer the endpoint.
    """

    def __init__(self, *, app_id: str, openid_configuration_url: str = DEFAULT_OPENID_CONFIGURATION_URL,
                 issuers: Iterable[str] = DEFAULT_ISSUERS, leeway_s: float = 60.0,
                 algorithms: Iterable[str] = ("RS256",), refresh_interval_s: float = 7200.0,
                 unknown_kid_refetch_interval_s: float = 60.0,
                 session: aiohttp.ClientSession | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not app_id:
            raise ValueError("app_id is required to validate the callback audience")
        self.app_id = app_id
        self.openid_configuration_url = openid_configuration_url
        self.issuers = list(issuers)
        self.leeway_s = leeway_s
        self.algorithms = list(algorithms)
        self.refresh_interval_s = refresh_interval_s
        self.unknown_kid_refetch_interval_s = unknown_kid_refetch_interval_s
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._last_forced: float | None = None
        self._lock: asyncio.Lock | None = None
        self.fetch_count = 0

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    async def _fetch(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            self._own_session = True
        try:
            async with self._session.get(self.openid_configuration_url) as resp:
                resp.raise_for_status()
                config = await resp.json(content_type=None)
            jwks_uri = config.get("jwks_uri") if isinstance(config, dict) else None
            if not isinstance(jwks_uri, str):
                raise SigningKeysUnavailable("OpenID configuration has no jwks_uri")
            async with self._session.get(jwks_uri) as resp:
                resp.raise_for_status()
                jwks = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise SigningKeysUnavailable(f"cannot fetch signing keys: {exc!r}") from exc
        keys: dict[str, jwt.PyJWK] = {}
        for i, entry in enumerate(jwks.get("keys", []) if isinstance(jwks, dict) else []):
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, TypeError, ValueError) as exc:
                log.warning("skipping unusable JWKS entry %s: %r", entry.get("kid") if isinstance(entry, dict) else i, exc)
                continue
            keys[entry.get("kid") or entry.get("x5t") or f"#{i}"] = key
        self._keys = keys
        self._fetched_at = self._clock()
        self.fetch_count += 1
        log.info("fetched %d callback signing keys from %s", len(keys), jwks_uri)

    async def _ensure(self, *, force: bool = False) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            stale = self._fetched_at is None or self._clock() - self._fetched_at > self.refresh_interval_s
            if force:
                now = self._clock()
                if self._last_forced is not None and now - self._last_forced < self.unknown_kid_refetch_interval_s:
                    return
                self._last_forced = now
            if stale or force:
                try:
                    await self._fetch()
                except SigningKeysUnavailable:
                    if not self._keys:
                        raise
                    log.exception("keeping the previous signing keys")
                    # try again in a minute, not on every request while the endpoint is down
                    self._fetched_at = self._clock() - self.refresh_interval_s + 60.0

    async def validate(self, authorization: str | None) -> dict[str, Any]:
        """Return the token's claims, or raise CallbackAuthError / SigningKeysUnavailable."""
        if not authorization:
            raise CallbackAuthError("missing Authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise CallbackAuthError("Authorization is not 'Bearer <JWT>'")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise CallbackAuthError(f"malformed JWT: {exc}") from exc
        if header.get("alg") not in self.algorithms:
            raise CallbackAuthError(f"JWT alg {header.get('alg')!r} not allowed")
        kid = header.get("kid") or header.get("x5t")
        await self._ensure()
        candidates = self._candidates(kid)
        if not candidates and kid:
            log.info("unknown signing key id %r: refetching the keys once", kid)
            await self._ensure(force=True)
            candidates = self._candidates(kid)
        if not candidates:
            raise CallbackAuthError(f"unknown signing key id {kid!r}")
        last: Exception | None = None
        for key in candidates:
            try:
                claims = jwt.decode(token, key=key.key, algorithms=self.algorithms,
                                    audience=self.app_id, issuer=self.issuers, leeway=self.leeway_s,
                                    options={"require": ["exp", "iss", "aud"]})
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.PyJWTError as exc:
                raise CallbackAuthError(f"invalid JWT: {exc}") from exc
            if tenant_of(claims) is None:
                raise CallbackAuthError("JWT has no tenant claim (tid or "
                                        "http://schemas.microsoft.com/identity/claims/tenantid)")
            return claims
        raise CallbackAuthError(f"invalid JWT signature: {last}")

    def _candidates(self, kid: str | None) -> list[jwt.PyJWK]:
        if kid:
            return [self._keys[kid]] if kid in self._keys else []
        return list(self._keys.values())


Handler = Callable[[m.CommsNotification, NotificationContext], Awaitable[None]]


class NotificationDispatcher:
    """One FIFO queue and worker per call; redelivered duplicates dropped.

    A notification is a duplicate when it is identical to the previous one received for the
    same resource (call, roster, operation …). Comparing with the previous one only — not with
    everything ever seen — matters: a roster can legitimately return to an earlier content
    (someone joins, then leaves), and that update must not be mistaken for a redelivery.

    A worker exits after ``idle_timeout_s`` without work, or when its call's ``deleted``
    notification has been handled and the queue is empty.
    """

    def __init__(self, handler: Handler, *, dedup_size: int = 8192, idle_timeout_s: float = 120.0) -> None:
        self.handler = handler
        self.idle_timeout_s = idle_timeout_s
        self._queues: dict[str, asyncio.Queue[tuple[m.CommsNotification, NotificationContext]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._last: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._dedup_size = dedup_size
        self.duplicates = 0
        self.handler_errors = 0
        self.processed = 0

    @staticmethod
    def _fingerprint(call_key: str, note: m.CommsNotification) -> str:
        raw = json.dumps(note.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(f"{call_key}\0{raw}".encode()).hexdigest()

    def submit(self, note: m.CommsNotification, ctx: NotificationContext) -> bool:
        """Queue one notification; False if it was a duplicate."""
        call_key = m.id_key(note.call_id)
        fp = self._fingerprint(call_key, note)
        resource_key = m.id_key(note.url.split("?")[0].rstrip("/"))
        if self._last.get(resource_key) == fp:
            self.duplicates += 1
            log.debug("duplicate notification for call %s dropped", note.call_id)
            return False
        self._last[resource_key] = fp
        self._last.move_to_end(resource_key)
        if len(self._last) > self._dedup_size:
            self._last.popitem(last=False)
        queue = self._queues.get(call_key)
        if queue is None:
            queue = self._queues[call_key] = asyncio.Queue()
            self._workers[call_key] = asyncio.get_running_loop().create_task(
                self._work(call_key, queue), name=f"notifications:{note.call_id}")
        queue.put_nowait((note, ctx))
        return True

    async def _work(self, call_key: str, queue: asyncio.Queue) -> None:
        try:
            while True:
                try:
                    note, ctx = await asyncio.wait_for(queue.get(), self.idle_timeout_s)
                except asyncio.TimeoutError:
                    return
                try:
                    await self.handler(note, ctx)
                    self.processed += 1
                except Exception:
                    self.handler_errors += 1
                    log.exception("notification handler failed for call %s (%s %s)",
                                  note.call_id, note.change_type, note.url)
                finally:
                    queue.task_done()
                if note.kind == "call" and note.change_type == "deleted" and queue.empty():
                    return
        finally:
            if self._queues.get(call_key) is queue:
                del self._queues[call_key]
                self._workers.pop(call_key, None)

    @property
    def active_calls(self) -> int:
        return len(self._queues)

    async def drain(self) -> None:
        """Wait until every queued notification has been handled."""
        for queue in list(self._queues.values()):
            await queue.join()

    async def close(self) -> None:
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()


class WebhookServer:
    """aiohttp server for ``POST {path}`` (and ``{path}/…``) plus ``GET {health_path}``.

    ``authenticator=None`` disables authentication — only for local tooling; ``run`` refuses it.
    """

    def __init__(self, *, authenticator: CallbackAuthenticator | None, handler: Handler,
                 path: str = "/api/calls", health_path: str = "/health", host: str = "0.0.0.0",
                 port: int = 8080, max_body_bytes: int = 1 << 20,
                 dispatcher: NotificationDispatcher | None = None,
                 health: Callable[[], dict[str, Any]] | None = None) -> None:
        self.authenticator = authenticator
        self.dispatcher = dispatcher or NotificationDispatcher(handler)
        self.path = "/" + path.strip("/")
        self.health_path = health_path
        self.host, self.port = host, port
        self.max_body_bytes = max_body_bytes
        self._health = health
        self.rejected = 0
        self.accepted = 0
        self.app = web.Application(client_max_size=max_body_bytes)
        self.app.router.add_post(self.path, self._on_post)
        self.app.router.add_post(self.path + "/{tail:.*}", self._on_post)
        self.app.router.add_get(health_path, self._on_health)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addrs = self._runner.addresses
        if addrs:
            self.port = addrs[0][1]
        log.info("webhook listening on %s:%d%s", self.host, self.port, self.path)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.dispatcher.close()
        if self.authenticator is not None:
            await self.authenticator.close()

    async def _on_health(self, request: web.Request) -> web.Response:
        body = {"status": "ok", "active_calls": self.dispatcher.active_calls,
                "accepted": self.accepted, "rejected": self.rejected}
        if self._health is not None:
            body.update(self._health())
        return web.json_response(body)

    async def _on_post(self, request: web.Request) -> web.StreamResponse:
        claims: dict[str, Any] = {}
        if self.authenticator is not None:
            try:
                claims = await self.authenticator.validate(request.headers.get("Authorization"))
            except CallbackAuthError as exc:
                self.rejected += 1
                log.warning("callback refused (401) from %s: %s", request.remote, exc)
                return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
            except SigningKeysUnavailable as exc:
                self.rejected += 1
                log.error("callback refused (503): %s", exc)
                return web.Response(status=503, headers={"Retry-After": "5"})
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return web.Response(status=413)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.Response(status=400, text="body is not JSON")
        if not isinstance(body, dict):
            return web.Response(status=400, text="body is not a JSON object")
        if not isinstance(body.get("value"), list):
            if "@odata.type" not in body and ("callState" in body or "isMultiparty" in body or "id" in body):
                # legacy (Skype) format: 204 asks the platform to resend in Graph format (Teams
                # "incoming call notifications" page, "Protocol determination")
                return web.Response(status=204)
            return web.Response(status=400, text="not a commsNotifications body")
        try:
            notes = m.CommsNotifications.parse(body)
        except Exception:   # parsing is tolerant; this is a last line of defence
            log.exception("cannot parse notifications")
            return web.Response(status=400)
        ctx = NotificationContext(
            tenant_id=tenant_of(claims),
            scenario_id=request.headers.get("Scenario-ID") or request.headers.get("X-Microsoft-Skype-Chain-ID"),
            claims=claims, path=request.path)
        for note in notes.value or []:
            if isinstance(note, m.CommsNotification):
                self.dispatcher.submit(note, ctx)
        self.accepted += 1
        return web.Response(status=202)

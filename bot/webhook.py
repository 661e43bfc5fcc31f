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
#: Deeper bodies are refused before anything walks them (documented notifications nest ~10 deep).
MAX_JSON_DEPTH = 32
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

    One fetch is in flight at a time: concurrent callbacks wait for the same one. After a
    failed fetch the next one waits ``fetch_backoff_s``, doubling with every further failure up
    to ``fetch_backoff_max_s``; meanwhile callbacks are answered from the keys held, or 503 with
    a ``Retry-After`` when there are none (so a key endpoint outage is not met with one fetch per
    callback).
    """

    def __init__(
        self,
        *,
        app_id: str,
        openid_configuration_url: str = DEFAULT_OPENID_CONFIGURATION_URL,
        issuers: Iterable[str] = DEFAULT_ISSUERS,
        leeway_s: float = 60.0,
        algorithms: Iterable[str] = ("RS256",),
        refresh_interval_s: float = 7200.0,
        unknown_kid_refetch_interval_s: float = 60.0,
        fetch_backoff_s: float = 1.0,
        fetch_backoff_max_s: float = 60.0,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
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
        self._inflight: asyncio.Task[None] | None = None
        self.fetch_backoff_s = fetch_backoff_s
        self.fetch_backoff_max_s = fetch_backoff_max_s
        self._failures = 0
        self._retry_at: float | None = None  # no fetch before this (after failures)
        self.fetch_count = 0
        self.fetch_attempts = 0

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
                log.warning(
                    "skipping unusable JWKS entry %s: %r",
                    entry.get("kid") if isinstance(entry, dict) else i,
                    exc,
                )
                continue
            keys[entry.get("kid") or entry.get("x5t") or f"#{i}"] = key
        self._keys = keys
        self._fetched_at = self._clock()
        self.fetch_count += 1
        log.info("fetched %d callback signing keys from %s", len(keys), jwks_uri)

    def retry_after_s(self) -> float:
        """Seconds until the next key fetch may be tried (0 when it may be tried now)."""
        if self._retry_at is None:
            return 0.0
        return max(0.0, self._retry_at - self._clock())

    async def _ensure(self, *, force: bool = False) -> None:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > self.refresh_interval_s
        if (
            force
            and not stale
            and self._last_forced is not None
            and now - self._last_forced < self.unknown_kid_refetch_interval_s
        ):
            return
        if not (stale or force):
            return
        if self._inflight is None or self._inflight.done():
            if self._retry_at is not None and now < self._retry_at:
                if not self._keys:
                    raise SigningKeysUnavailable(
                        f"no signing keys; the last fetch failed, next attempt in {self._retry_at - now:.1f} s"
                    )
                return  # keep using the keys held until the back-off has passed
            if force:
                self._last_forced = now
            self._inflight = asyncio.get_running_loop().create_task(self._fetch_once(), name="callback-keys")
        # shielded: a callback whose client went away must not cancel the fetch the others await
        await asyncio.shield(self._inflight)
        if not self._keys:
            raise SigningKeysUnavailable("no signing keys could be fetched")

    async def _fetch_once(self) -> None:
        """One fetch; failures only move the back-off (the caller decides on 503)."""
        self.fetch_attempts += 1
        try:
            await self._fetch()
        except SigningKeysUnavailable as exc:
            self._failures += 1
            delay = min(self.fetch_backoff_max_s, self.fetch_backoff_s * 2 ** (self._failures - 1))
            if self._keys:
                # keep the keys; retry the refresh after the back-off, not on every callback
                delay = max(delay, min(60.0, self.refresh_interval_s))
            self._retry_at = self._clock() + delay
            log.error(
                "cannot fetch the callback signing keys (%d failure(s) in a row; next attempt in %.1f s, "
                "%s): %s",
                self._failures,
                delay,
                "keeping the previous keys" if self._keys else "callbacks are answered 503",
                exc,
            )
        else:
            self._failures = 0
            self._retry_at = None

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
                claims = jwt.decode(
                    token,
                    key=key.key,
                    algorithms=self.algorithms,
                    audience=self.app_id,
                    issuer=self.issuers,
                    leeway=self.leeway_s,
                    options={"require": ["exp", "iss", "aud"]},
                )
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.PyJWTError as exc:
                raise CallbackAuthError(f"invalid JWT: {exc}") from exc
            if tenant_of(claims) is None:
                raise CallbackAuthError(
                    "JWT has no tenant claim (tid or http://schemas.microsoft.com/identity/claims/tenantid)"
                )
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
        # surrogatepass: ids come from the body, and JSON may spell lone surrogates (\ud800)
        return hashlib.sha256(f"{call_key}\0{raw}".encode("utf-8", "surrogatepass")).hexdigest()

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
                self._work(call_key, queue), name=f"notifications:{note.call_id}"
            )
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
                    log.exception(
                        "notification handler failed for call %s (%s %s)",
                        note.call_id,
                        note.change_type,
                        note.url,
                    )
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


class Rejections:
    """Counts the requests the webhook refuses and logs each one once, rate-limited.

    Every refusal writes exactly one record with its status, reason, the call id when known
    and the peer. Per kind of refusal (``"400 shape"``, ``"401 auth"`` …) one record per
    ``interval_s`` has the given level (WARNING for refusals, ERROR for 5xx); the others in
    that window go out at DEBUG, and the next loud one says how many were quietened. A flood of
    bad callbacks therefore costs a few warnings a minute, not one per request.
    """

    def __init__(
        self,
        logger: logging.Logger = log,
        *,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = logger
        self.interval_s = interval_s
        self._clock = clock
        self.counts: collections.Counter[str] = collections.Counter()
        self._loud_at: dict[str, float] = {}
        self._quiet: collections.Counter[str] = collections.Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def record(
        self,
        status: int,
        kind: str,
        reason: str,
        *,
        call_id: str | None = None,
        remote: str | None = None,
        level: int = logging.WARNING,
        exc_info: Any = None,
    ) -> None:
        key = f"{status} {kind}"
        self.counts[key] += 1
        now = self._clock()
        last = self._loud_at.get(key)
        where = f" call {call_id}" if call_id else ""
        if last is None or now - last >= self.interval_s:
            self._loud_at[key] = now
            quiet = self._quiet.pop(key, 0)
            more = f" ({quiet} more like it at DEBUG since the last report)" if quiet else ""
            self.log.log(
                level,
                "callback answered %d (%s) from %s%s: %s%s",
                status,
                kind,
                remote,
                where,
                reason,
                more,
                exc_info=exc_info,
            )
        else:
            self._quiet[key] += 1
            self.log.debug(
                "callback answered %d (%s) from %s%s: %s",
                status,
                kind,
                remote,
                where,
                reason,
                exc_info=exc_info,
            )


class WebhookServer:
    """aiohttp server for ``POST {path}`` (and ``{path}/…``) plus ``GET {health_path}``.

    ``authenticator=None`` disables authentication — only for local tooling; ``run`` refuses it.
    """

    def __init__(
        self,
        *,
        authenticator: CallbackAuthenticator | None,
        handler: Handler,
        path: str = "/api/calls",
        health_path: str = "/health",
        host: str = "0.0.0.0",
        port: int = 8080,
        max_body_bytes: int = 1 << 20,
        dispatcher: NotificationDispatcher | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.dispatcher = dispatcher or NotificationDispatcher(handler)
        self.path = "/" + path.strip("/")
        self.health_path = health_path
        self.host, self.port = host, port
        self.max_body_bytes = max_body_bytes
        self._health = health
        self.rejections = Rejections()
        self.accepted = 0
        self.app = web.Application(client_max_size=max_body_bytes)
        self.app.router.add_post(self.path, self._on_post)
        self.app.router.add_post(self.path + "/{tail:.*}", self._on_post)
        self.app.router.add_get(health_path, self._on_health)
        self._runner: web.AppRunner | None = None

    @property
    def rejected(self) -> int:
        """Requests refused (4xx/5xx); the legacy-format 204 is counted apart."""
        return sum(n for key, n in self.rejections.counts.items() if int(key.split()[0]) >= 400)

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
        body = {
            "status": "ok",
            "active_calls": self.dispatcher.active_calls,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejections": dict(self.rejections.counts),
        }
        if self._health is not None:
            body.update(self._health())
        return web.json_response(body)

    async def _on_post(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._receive(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not an input: still one record, and no aiohttp traceback
            return self._answer(
                request,
                500,
                "internal",
                f"unexpected {type(exc).__name__}: {exc}",
                level=logging.ERROR,
                exc_info=True,
            )

    def _answer(
        self,
        request: web.Request,
        status: int,
        kind: str,
        reason: str,
        *,
        call_id: str | None = None,
        level: int = logging.WARNING,
        exc_info: Any = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        """A refusal (or the legacy 204): counted and logged once; 400 and 413 say why in the body."""
        self.rejections.record(
            status, kind, reason, call_id=call_id, remote=request.remote, level=level, exc_info=exc_info
        )
        text = reason if status in (400, 413) else None
        return web.Response(status=status, text=text, headers=headers)

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        claims: dict[str, Any] = {}
        if self.authenticator is not None:
            try:
                claims = await self.authenticator.validate(request.headers.get("Authorization"))
            except CallbackAuthError as exc:
                return self._answer(request, 401, "auth", str(exc), headers={"WWW-Authenticate": "Bearer"})
            except SigningKeysUnavailable as exc:
                retry = max(1, round(self.authenticator.retry_after_s()))
                return self._answer(
                    request, 503, "keys", str(exc), level=logging.ERROR, headers={"Retry-After": str(retry)}
                )
        too_large = f"body larger than webhook.max_body_bytes ({self.max_body_bytes})"
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            return self._answer(request, 413, "size", f"{too_large}: Content-Length {request.content_length}")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._answer(request, 413, "size", too_large)
        try:
            body = json.loads(raw)
        except RecursionError:
            return self._answer(request, 400, "json", "body is not JSON we can read: nested too deeply")
        except ValueError as exc:  # includes bad UTF-8 (UnicodeDecodeError)
            return self._answer(request, 400, "json", f"body is not JSON: {exc}")
        if m.json_depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
            return self._answer(request, 400, "shape", f"body nested deeper than {MAX_JSON_DEPTH} levels")
        if not isinstance(body, dict):
            return self._answer(request, 400, "shape", "body is not a JSON object")
        if not isinstance(body.get("value"), list):
            if "@odata.type" not in body and ("callState" in body or "isMultiparty" in body or "id" in body):
                # legacy (Skype) format: 204 asks the platform to resend in Graph format (Teams
                # "incoming call notifications" page, "Protocol determination")
                legacy_id = body.get("id") if isinstance(body.get("id"), str) else None
                return self._answer(
                    request,
                    204,
                    "legacy",
                    "legacy (Skype) format: asking for the Graph format",
                    call_id=legacy_id,
                    level=logging.INFO,
                )
            return self._answer(request, 400, "shape", "not a commsNotifications body (no 'value' array)")
        for i, item in enumerate(body["value"]):
            if not isinstance(item, dict):
                return self._answer(request, 400, "shape", f"$.value[{i}] is not an object")
        try:
            notes = m.CommsNotifications.parse(body)
        except Exception as exc:  # parsing is tolerant; this is a last line of defence
            return self._answer(
                request, 400, "shape", f"cannot parse the notifications: {exc!r}", exc_info=True
            )
        items = notes.value if isinstance(notes.value, list) else []
        for i, note in enumerate(items):
            if not isinstance(note, m.CommsNotification):
                return self._answer(
                    request, 400, "shape", f"$.value[{i}] is not a commsNotification ({type(note).__name__})"
                )
            problems = note.shape_errors(f"$.value[{i}]")
            if problems:
                return self._answer(request, 400, "shape", problems[0], call_id=note.call_id)
        ctx = NotificationContext(
            tenant_id=tenant_of(claims),
            scenario_id=request.headers.get("Scenario-ID")
            or request.headers.get("X-Microsoft-Skype-Chain-ID"),
            claims=claims,
            path=request.path,
        )
        for note in items:
            self.dispatcher.submit(note, ctx)
        self.accepted += 1
        return web.Response(status=202)

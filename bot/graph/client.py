"""HTTP client for the Graph calls API on aiohttp (https://learn.microsoft.com/graph/errors,
https://learn.microsoft.com/graph/throttling).

* a fresh ``client-request-id`` GUID on every attempt, logged with Graph's ``request-id``;
* ``scenario-id`` propagated (per client, or per request);
* 429/503/504 retried, honouring ``Retry-After`` (fractional seconds, e.g. ``2.128``, or an
  HTTP date), otherwise exponential backoff with full jitter; bounded in attempts and in total
  time; a 401 refreshes the token once;
* non-2xx answers become typed exceptions (:mod:`bot.graph.errors`).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .auth import TokenProvider
from .errors import GraphConnectionError, GraphError, error_from_response

log = logging.getLogger("bot.graph.client")

GRAPH_V1 = "https://graph.microsoft.com/v1.0"
GRAPH_BETA = "https://graph.microsoft.com/beta"
RETRY_STATUSES = frozenset({429, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE", "PUT", "OPTIONS"})


class Clock:
    """Time source and sleeper; tests substitute one they control."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class RetryPolicy:
    max_retries: int = 5
    max_total_s: float = 60.0
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    statuses: frozenset[int] = RETRY_STATUSES

    def backoff_s(self, attempt: int, rng: Callable[[], float]) -> float:
        """Full-jitter exponential backoff for retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_delay_s, self.base_delay_s * (2**attempt))
        return ceiling * rng()


def parse_retry_after(value: str | None, *, now_epoch: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: float seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now_epoch is None else now_epoch)
    if seconds != seconds or seconds < 0:  # NaN or past
        return 0.0
    return seconds


@dataclass
class GraphResponse:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, raw bytes for non-JSON, or None when empty
    request_id: str | None
    client_request_id: str
    attempts: int = 1
    elapsed_s: float = 0.0

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")


@dataclass
class _Attempt:
    client_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class GraphClient:
    """Authenticated Graph HTTP client. Use as ``async with GraphClient(...) as graph:``."""

    def __init__(
        self,
        *,
        token_provider: TokenProvider | None,
        base_url: str = GRAPH_V1,
        beta_base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        scenario_id: str | None = None,
        timeout_s: float = 30.0,
        clock: Clock | None = None,
        rng: Callable[[], float] = random.random,
        user_agent: str = "mediabot/0.1",
        on_request: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if beta_base_url is None:
            beta_base_url = (
                self.base_url[: -len("/v1.0")] + "/beta" if self.base_url.endswith("/v1.0") else self.base_url
            )
        self.beta_base_url = beta_base_url.rstrip("/")
        self.token_provider = token_provider
        self.retry = retry or RetryPolicy()
        self.scenario_id = scenario_id
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.clock = clock or Clock()
        self.rng = rng
        self.user_agent = user_agent
        self._session = session
        self._own_session = session is None
        self._on_request = on_request

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
        if self.token_provider is not None:
            await self.token_provider.close()

    def url(self, path: str, *, beta: bool = False) -> str:
        if path.startswith(("https://", "http://")):
            return path
        base = self.beta_base_url if beta else self.base_url
        return f"{base}/{path.lstrip('/')}"

    # ---- requests ---------------------------------------------------------------------

    async def get(self, path: str, **kw: Any) -> GraphResponse:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> GraphResponse:
        return await self.request("POST", path, json_body=body, **kw)

    async def delete(self, path: str, **kw: Any) -> GraphResponse:
        return await self.request("DELETE", path, **kw)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        beta: bool = False,
        scenario_id: str | None = None,
        bearer: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bool = False,
    ) -> GraphResponse:
        """Send one logical request (with retries). ``bearer`` overrides the Graph token
        (used to fetch recordings with their ``recordingAccessToken``)."""
        url = self.url(path, beta=beta)
        data = None if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        policy = self.retry
        start = self.clock.now()
        retries = 0
        refreshed_token = False
        while True:
            crid = str(uuid.uuid4())
            hdrs = {
                "client-request-id": crid,
                "return-client-request-id": "true",
                "User-Agent": self.user_agent,
                "Accept": "application/json",
            }
            sid = scenario_id or self.scenario_id
            if sid:
                hdrs["scenario-id"] = sid
            if data is not None:
                hdrs["Content-Type"] = "application/json"
            if bearer is not None:
                hdrs["Authorization"] = f"Bearer {bearer}"
            elif self.token_provider is not None:
                hdrs["Authorization"] = f"Bearer {await self.token_provider.get_token()}"
            if headers:
                hdrs.update(headers)
            t0 = self.clock.now()
            try:
                async with self.session.request(method, url, data=data, headers=hdrs) as resp:
                    body_bytes = await resp.read()
                    status, rheaders = resp.status, resp.headers
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                log.info("graph %s %s client-request-id=%s failed: %r", method, url, crid, exc)
                if method in IDEMPOTENT and retries < policy.max_retries:
                    delay = policy.backoff_s(retries, self.rng)
                    if self.clock.now() - start + delay <= policy.max_total_s:
                        retries += 1
                        await self.clock.sleep(delay)
                        continue
                raise GraphConnectionError(
                    f"{type(exc).__name__}: {exc}", method=method, url=url, client_request_id=crid
                ) from exc
            request_id = rheaders.get("request-id")
            log.debug(
                "graph %s %s -> %d client-request-id=%s request-id=%s scenario-id=%s %.1f ms",
                method,
                url,
                status,
                crid,
                request_id,
                sid,
                (self.clock.now() - t0) * 1e3,
            )
            if self._on_request is not None:
                res = self._on_request(
                    {
                        "method": method,
                        "url": url,
                        "status": status,
                        "client_request_id": crid,
                        "request_id": request_id,
                    }
                )
                if asyncio.iscoroutine(res):
                    await res
            if 200 <= status < 300:
                return GraphResponse(
                    status,
                    rheaders,
                    self._decode(rheaders, body_bytes, raw),
                    request_id,
                    crid,
                    retries + 1,
                    self.clock.now() - start,
                )
            if status == 401 and bearer is None and self.token_provider is not None and not refreshed_token:
                refreshed_token = True
                self.token_provider.invalidate()
                log.info("graph %s %s -> 401, refreshing the token once", method, url)
                continue
            retry_after = parse_retry_after(rheaders.get("Retry-After"))
            if status in policy.statuses and retries < policy.max_retries:
                delay = retry_after if retry_after is not None else policy.backoff_s(retries, self.rng)
                if self.clock.now() - start + delay <= policy.max_total_s:
                    log.info(
                        "graph %s %s -> %d, retry %d in %.3f s (request-id=%s)",
                        method,
                        url,
                        status,
                        retries + 1,
                        delay,
                        request_id,
                    )
                    retries += 1
                    await self.clock.sleep(delay)
                    continue
            err = error_from_response(
                status,
                rheaders,
                body_bytes,
                method=method,
                url=url,
                retry_after_s=retry_after,
                client_request_id=crid,
            )
            log.warning("graph %s %s failed: %s", method, url, err)
            raise err

    @staticmethod
    def _decode(headers: Mapping[str, str], body: bytes, raw: bool) -> Any:
        if raw:
            return body
        if not body:
            return None
        ctype = headers.get("Content-Type", "")
        if "json" in ctype or body[:1] in (b"{", b"["):
            try:
                return json.loads(body)
            except ValueError:
                return body
        return body

    async def stream(self, url: str, *, bearer: str, chunk_size: int = 65536):
        """GET ``url`` with a bearer token and yield body chunks (recording downloads)."""
        crid = str(uuid.uuid4())
        hdrs = {"Authorization": f"Bearer {bearer}", "client-request-id": crid, "User-Agent": self.user_agent}
        try:
            async with self.session.get(url, headers=hdrs) as resp:
                if resp.status >= 300:
                    body = await resp.read()
                    raise error_from_response(
                        resp.status, resp.headers, body, method="GET", url=url, client_request_id=crid
                    )
                async for chunk in resp.content.iter_chunked(chunk_size):
                    yield chunk
        except aiohttp.ClientError as exc:
            raise GraphConnectionError(str(exc), method="GET", url=url, client_request_id=crid) from exc


__all__ = [
    "GraphClient",
    "GraphResponse",
    "RetryPolicy",
    "Clock",
    "parse_retry_after",
    "GRAPH_V1",
    "GRAPH_BETA",
    "GraphError",
]

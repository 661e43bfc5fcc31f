"""App-only tokens for Graph (OAuth2 client credentials through msal).

msal is synchronous and does network I/O, so every msal call (including constructing the
application, which discovers the authority) runs in an executor thread, never on the event
loop. Tokens are cached until shortly before they expire; concurrent callers share one fetch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import msal
import requests  # msal's HTTP client; imported here so no import (and no

#                  compile) happens in the executor thread, which trips a CPython 3.11 bug
#                  ("AST constructor recursion depth mismatch") under concurrent compiles
from .errors import TokenError

log = logging.getLogger("bot.graph.auth")

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


class TokenProvider:
    """Caching, single-flight async front of a blocking token source.

    Subclasses implement :meth:`acquire_blocking`, which runs in ``executor`` (default: the
    loop's default executor) and returns ``(access_token, expires_in_s)``.
    """

    def __init__(
        self,
        *,
        refresh_margin_s: float = 300.0,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refresh_margin_s = refresh_margin_s
        self._executor = executor
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock: asyncio.Lock | None = None
        self.fetch_count = 0

    def acquire_blocking(self) -> tuple[str, float]:
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the provider holds (HTTP sessions); the GraphClient calls it."""

    def invalidate(self) -> None:
        """Forget the cached token (e.g. after Graph answered 401)."""
        self._token = None
        self._refresh_at = 0.0

    def _fresh(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def get_token(self) -> str:
        if self._fresh():
            return self._token  # type: ignore[return-value]
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._fresh():
                return self._token  # type: ignore[return-value]
            loop = asyncio.get_running_loop()
            token, expires_in_s = await loop.run_in_executor(self._executor, self.acquire_blocking)
            self.fetch_count += 1
            self._token = token
            # renewed refresh_margin_s before it expires; a short-lived token (an emulator's) half-way
            lifetime = float(expires_in_s)
            self._refresh_at = self._clock() + lifetime - min(self.refresh_margin_s, lifetime / 2)
            return token


class StaticTokenProvider(TokenProvider):
    """A fixed token (tests; ``graph.token_env``). It is never refreshed: once it expires every
    request is refused 401 — a bot that runs for longer uses msal (``MsalTokenProvider``, which
    reaches the local emulator too: ``graph.authority_host``, ``instance_discovery``, ``ca_bundle``).
    When the token is a JWT its ``exp`` is logged, and an expired one is reported as such."""

    def __init__(self, token: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._static = token
        self.expires_at_epoch = _jwt_exp(token)

    def acquire_blocking(self) -> tuple[str, float]:
        if self.expires_at_epoch is not None:
            left = self.expires_at_epoch - time.time()
            if left <= 0:
                log.error(
                    "the fixed Graph token expired %.0f s ago and cannot be refreshed: Graph will "
                    "answer 401; configure msal (client secret or certificate) instead of graph.token_env",
                    -left,
                )
            return self._static, max(left, 1.0)
        return self._static, 3600.0

    def invalidate(self) -> None:
        super().invalidate()
        if self.expires_at_epoch is not None and self.expires_at_epoch <= time.time():
            log.error("Graph refused the fixed token (it expired); it cannot be refreshed")


def _jwt_exp(token: str) -> float | None:
    """The ``exp`` of a JWT, read without verifying it (only to know when it runs out)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class MsalTokenProvider(TokenProvider):
    """Client-credentials tokens from Entra ID via msal, with a client secret or a certificate.

    ``certificate_pem`` is the PEM private key (optionally followed by the certificate) and
    ``certificate_thumbprint`` its SHA-1 thumbprint, as msal expects.
    """

    def __init__(
        self,
        *,
        app_id: str,
        tenant_id: str,
        client_secret: str | None = None,
        certificate_pem: str | None = None,
        certificate_thumbprint: str | None = None,
        authority_host: str = "https://login.microsoftonline.com",
        instance_discovery: bool = True,
        ca_bundle: str | None = None,
        scopes: Sequence[str] = (GRAPH_SCOPE,),
        msal_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bool(client_secret) == bool(certificate_pem):
            raise ValueError("give exactly one of client_secret or certificate_pem")
        if certificate_pem and not certificate_thumbprint:
            raise ValueError("certificate_pem needs certificate_thumbprint")
        self.app_id = app_id
        self.authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        if client_secret:
            self._credential: Any = client_secret
        else:
            self._credential = {"private_key": certificate_pem, "thumbprint": certificate_thumbprint}
        self.scopes = list(scopes)
        self._msal_options = dict(msal_options or {})
        if not instance_discovery:
            # msal validates an unknown authority host (and looks up its aliases on every token
            # request) at login.microsoftonline.com unless told not to
            self._msal_options.setdefault("instance_discovery", False)
        self._session: requests.Session | None = None
        if ca_bundle is not None and "http_client" not in self._msal_options:
            # trust_env=False: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override verify
            self._session = requests.Session()
            self._session.trust_env = False
            self._session.verify = ca_bundle
            self._msal_options["http_client"] = self._session
        self._app: Any = None

    async def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def acquire_blocking(self) -> tuple[str, float]:
        if self._app is None:
            self._app = msal.ConfidentialClientApplication(
                self.app_id,
                client_credential=self._credential,
                authority=self.authority,
                **self._msal_options,
            )
        result = self._app.acquire_token_for_client(scopes=self.scopes)
        if "access_token" not in result:
            raise TokenError(
                f"token request for app {self.app_id} failed: "
                f"{result.get('error')}: {result.get('error_description')}"
            )
        log.debug("token acquired for app %s (source %s)", self.app_id, result.get("token_source"))
        return result["access_token"], float(result.get("expires_in", 3600))

"""Identity endpoints: the callback signer's OpenID configuration and JWKS (the stand-in for
``https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration``), and an Entra ID stand-in that
msal's real client-credentials flow accepts (instance discovery, tenant discovery, token, keys).

msal only takes an ``https`` authority, so clients use the emulator's TLS listener
(``GraphEmulator.authority``) and trust ``GraphEmulator.ca_cert_path``; see
``GraphEmulator.msal_kwargs``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from aiohttp import web

from .auth import CALLBACK_ISSUER, TokenError

if TYPE_CHECKING:
    from .server import GraphEmulator

CALLBACK_OPENID_PATH = "/v1/.well-known/OpenIdConfiguration"
CALLBACK_JWKS_PATH = "/v1/keys"


def _json(body: dict, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


class LoginRoutes:
    def __init__(self, emulator: GraphEmulator) -> None:
        self.emu = emulator

    def add_to(self, app: web.Application) -> None:
        r = app.router
        r.add_get(CALLBACK_OPENID_PATH, self.callback_openid_configuration)
        r.add_get(CALLBACK_JWKS_PATH, self.callback_jwks)
        r.add_get("/common/discovery/instance", self.instance_discovery)
        r.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self.tenant_openid_configuration)
        r.add_get("/{tenant}/discovery/v2.0/keys", self.aad_jwks)
        r.add_post("/{tenant}/oauth2/v2.0/token", self.token)

    # -- callback signer -----------------------------------------------------------------------
    async def callback_openid_configuration(self, request: web.Request) -> web.Response:
        self.emu.discovery_fetches += 1
        origin = str(request.url.origin())
        return _json(
            {
                "issuer": CALLBACK_ISSUER,
                "jwks_uri": origin + CALLBACK_JWKS_PATH,
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def callback_jwks(self, request: web.Request) -> web.Response:
        self.emu.jwks_fetches += 1
        return _json(self.emu.auth.callback_jwks())

    # -- Entra ID stand-in ---------------------------------------------------------------------
    async def instance_discovery(self, request: web.Request) -> web.Response:
        # msal sends ?authorization_endpoint=https://host/tenant/oauth2/v2.0/authorize&api-version=1.0
        endpoint = request.query.get("authorization_endpoint", "")
        parsed = urlparse(endpoint)
        tenant = parsed.path.strip("/").split("/")[0] if parsed.path.strip("/") else "common"
        origin = str(request.url.origin())
        host = request.url.host or "127.0.0.1"
        return _json(
            {
                "tenant_discovery_endpoint": f"{origin}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    async def tenant_openid_configuration(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        origin = str(request.url.origin())
        return _json(
            {
                "issuer": f"{origin}/{tenant}/v2.0",
                "authorization_endpoint": f"{origin}/{tenant}/oauth2/v2.0/authorize",
                "token_endpoint": f"{origin}/{tenant}/oauth2/v2.0/token",
                "jwks_uri": f"{origin}/{tenant}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token id_token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "tenant_region_scope": "NA",
            }
        )

    async def aad_jwks(self, request: web.Request) -> web.Response:
        return _json(self.emu.auth.aad_jwks())

    async def token(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        tenant = request.match_info["tenant"]
        token_url = f"{request.url.origin()}/{tenant}/oauth2/v2.0/token"
        try:
            body = self.emu.auth.client_credentials(tenant, form, token_url)
        except TokenError as exc:
            status = 401 if exc.error == "invalid_client" else 400
            return _json(
                {
                    "error": exc.error,
                    "error_description": exc.description,
                    "error_codes": [7000215 if exc.error == "invalid_client" else 90014],
                },
                status,
            )
        self.emu.tokens_issued += 1
        return _json(body)

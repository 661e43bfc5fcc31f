"""MsalTokenProvider against a local HTTPS token endpoint (real msal, real TLS)."""

from __future__ import annotations

import ssl
import threading
import urllib.parse

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.graph.auth import MsalTokenProvider
from bot.graph.errors import TokenError
from tests.bot.keys import self_signed

TENANT = "86dc81db-c112-4228-9222-63f3esaa1edb"


@pytest.fixture
async def aad(tmp_path, monkeypatch):
    # requests lets these override msal's `verify`; the test's CA must win
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed(key, "127.0.0.1", ip="127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    state = {"token_posts": [], "threads": [], "assertions": []}

    async def openid(request: web.Request) -> web.Response:
        base = f"https://127.0.0.1:{state['port']}/{TENANT}"
        return web.json_response({"token_endpoint": f"{base}/oauth2/v2.0/token",
                                  "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                                  "issuer": f"{base}/v2.0"})

    async def token(request: web.Request) -> web.Response:
        form = dict(urllib.parse.parse_qsl((await request.read()).decode()))
        state["token_posts"].append(form)
        if "client_assertion" in form:
            try:
                assertion = jwt.decode(form["client_assertion"], state["cert_public_key"],
                                       algorithms=["RS256", "PS256"], audience=str(request.url),
                                       options={"require": ["exp", "iss", "sub", "aud"]})
            except jwt.PyJWTError as exc:
                return web.json_response({"error": "invalid_client", "error_description": str(exc)}, status=401)
            state["assertions"].append(assertion)
            return web.json_response({"token_type": "Bearer", "expires_in": 3599, "access_token": "cert-access"})
        if form.get("client_secret") != "s3cret":
            return web.json_response({"error": "invalid_client",
                                      "error_description": "AADSTS7000215: Invalid client secret"},
                                     status=401)
        return web.json_response({"token_type": "Bearer", "expires_in": 3599,
                                  "access_token": f"access-{len(state['token_posts'])}"})

    app = web.Application()
    app.router.add_get(f"/{TENANT}/v2.0/.well-known/openid-configuration", openid)
    app.router.add_post(f"/{TENANT}/oauth2/v2.0/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    state["port"] = runner.addresses[0][1]
    state["host"] = f"https://127.0.0.1:{state['port']}"
    state["ca"] = str(cert_path)
    yield state
    await runner.cleanup()


def provider(aad, secret: str) -> MsalTokenProvider:
    return MsalTokenProvider(app_id="2891555a-92ff-42e6-80fa-6e1300c6b5c6", tenant_id=TENANT,
                             client_secret=secret, authority_host=aad["host"],
                             msal_options={"verify": aad["ca"], "validate_authority": False,
                                           "instance_discovery": False})


async def test_msal_client_credentials_off_loop_and_cached(aad):
    p = provider(aad, "s3cret")
    loop_thread = threading.get_ident()
    original = p.acquire_blocking

    def recording():
        aad["threads"].append(threading.get_ident())
        return original()

    p.acquire_blocking = recording  # type: ignore[method-assign]
    assert await p.get_token() == "access-1"
    assert await p.get_token() == "access-1"
    assert aad["threads"] and loop_thread not in aad["threads"]
    post = aad["token_posts"][0]
    assert post["grant_type"] == "client_credentials"
    assert post["scope"] == "https://graph.microsoft.com/.default"
    assert post["client_id"] == "2891555a-92ff-42e6-80fa-6e1300c6b5c6"
    assert len(aad["token_posts"]) == 1


async def test_msal_bad_secret_raises_token_error(aad):
    with pytest.raises(TokenError, match="invalid_client"):
        await provider(aad, "wrong").get_token()


def test_provider_needs_exactly_one_credential():
    with pytest.raises(ValueError):
        MsalTokenProvider(app_id="a", tenant_id="t")
    with pytest.raises(ValueError):
        MsalTokenProvider(app_id="a", tenant_id="t", client_secret="s", certificate_pem="p",
                          certificate_thumbprint="x")
    with pytest.raises(ValueError):
        MsalTokenProvider(app_id="a", tenant_id="t", certificate_pem="p")


async def test_msal_certificate_credential(aad):
    from tests.bot.keys import SigningKey

    key = SigningKey()
    aad["cert_public_key"] = key.cert.public_key()
    thumbprint = key.cert.fingerprint(__import__("cryptography.hazmat.primitives.hashes",
                                                 fromlist=["SHA1"]).SHA1()).hex()
    p = MsalTokenProvider(app_id="2891555a-92ff-42e6-80fa-6e1300c6b5c6", tenant_id=TENANT,
                          certificate_pem=key.pem, certificate_thumbprint=thumbprint,
                          authority_host=aad["host"],
                          msal_options={"verify": aad["ca"], "validate_authority": False,
                                        "instance_discovery": False})
    assert await p.get_token() == "cert-access"
    post = aad["token_posts"][-1]
    assert post["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "client_secret" not in post
    assert aad["assertions"][0]["iss"] == aad["assertions"][0]["sub"] == "2891555a-92ff-42e6-80fa-6e1300c6b5c6"

"""msal's real client-credentials flow against the emulator's Entra ID stand-in, and the callback
signer's OpenID configuration and JWKS."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

import aiohttp
import jwt
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bot.emulator import GraphEmulator

SCOPE = ["https://graph.microsoft.com/.default"]


async def acquire(emulator: GraphEmulator, credential) -> dict:
    def run() -> dict:
        kwargs = emulator.msal_kwargs()
        with kwargs["http_client"]:
            app = msal.ConfidentialClientApplication(emulator.app_id, client_credential=credential, **kwargs)
            return app.acquire_token_for_client(scopes=SCOPE)

    return await asyncio.to_thread(run)


async def test_msal_client_secret_flow_gets_a_graph_token_the_emulator_accepts(emulator):
    result = await acquire(emulator, emulator.client_secret)
    assert result.get("token_type") == "Bearer", result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert (claims["appid"], claims["tid"]) == (emulator.app_id, emulator.tenant_id)
    assert "Calls.AccessMedia.All" in claims["roles"]
    assert emulator.tokens_issued == 1
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {result['access_token']}"}
        async with session.get(f"{emulator.graph_url}/communications/calls/nope", headers=headers) as resp:
            assert resp.status == 404  # authenticated; the call just does not exist
        with pytest.raises(aiohttp.ClientConnectorCertificateError):  # the system CAs do not vouch for it...
            await session.get(f"{emulator.tls_base_url}/{emulator.tenant_id}/discovery/v2.0/keys")
        import ssl
        ctx = ssl.create_default_context(cafile=emulator.ca_cert_path)
        async with session.get(f"{emulator.tls_base_url}/{emulator.tenant_id}/discovery/v2.0/keys", ssl=ctx) as resp:
            jwks = jwt.PyJWKSet.from_dict(await resp.json())  # ... the CA file does
    key = jwks[jwt.get_unverified_header(result["access_token"])["kid"]]
    jwt.decode(result["access_token"], key.key, algorithms=["RS256"], audience="https://graph.microsoft.com")


async def test_msal_wrong_secret_is_invalid_client(emulator):
    result = await acquire(emulator, "not-the-secret")
    assert result.get("error") == "invalid_client"
    assert "access_token" not in result


def _certificate() -> tuple[bytes, bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bot")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    thumbprint = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return key_pem, cert_pem, thumbprint


async def test_msal_certificate_flow(emulator):
    key_pem, cert_pem, thumbprint = _certificate()
    emulator.register_bot(certificate_pem=cert_pem)
    result = await acquire(emulator, {"private_key": key_pem.decode(), "thumbprint": thumbprint})
    assert result.get("token_type") == "Bearer", result
    other_key, _, _ = _certificate()
    result = await acquire(emulator, {"private_key": other_key.decode(), "thumbprint": thumbprint})
    assert result.get("error") == "invalid_client"


async def test_msal_instance_discovery_endpoint_answers_like_entra(emulator):
    import ssl
    ctx = ssl.create_default_context(cafile=emulator.ca_cert_path)
    params = {"authorization_endpoint": f"{emulator.authority}/oauth2/v2.0/authorize", "api-version": "1.0"}
    async with aiohttp.ClientSession() as session:
        async with session.get(emulator.instance_discovery_url, params=params, ssl=ctx) as resp:
            body = await resp.json()
        async with session.get(body["tenant_discovery_endpoint"], ssl=ctx) as resp:
            config = await resp.json()
    assert config["token_endpoint"] == emulator.token_url
    assert config["issuer"] == f"{emulator.authority}/v2.0"


async def test_token_endpoint_refuses_other_scopes_and_unknown_clients(emulator):
    import ssl
    ctx = ssl.create_default_context(cafile=emulator.ca_cert_path)
    form = {"grant_type": "client_credentials", "client_id": emulator.app_id,
            "client_secret": emulator.client_secret, "scope": "https://outlook.office.com/.default"}
    async with aiohttp.ClientSession() as session:
        async with session.post(emulator.token_url, data=form, ssl=ctx) as resp:
            assert resp.status == 400 and (await resp.json())["error"] == "invalid_scope"
        form |= {"scope": SCOPE[0], "client_id": "someone-else"}
        async with session.post(emulator.token_url, data=form, ssl=ctx) as resp:
            assert resp.status == 400 and (await resp.json())["error"] == "unauthorized_client"


async def test_callback_openid_configuration_publishes_rs256_keys_with_x5c(emulator):
    async with aiohttp.ClientSession() as session:
        async with session.get(emulator.openid_configuration_url) as resp:
            config = await resp.json()
        async with session.get(config["jwks_uri"]) as resp:
            jwks = await resp.json()
    assert config["issuer"] == "https://api.botframework.com"
    assert config["jwks_uri"] == emulator.jwks_url
    (key,) = jwks["keys"]
    assert key["kty"] == "RSA" and key["kid"] and key["use"] == "sig"
    cert = x509.load_der_x509_certificate(__import__("base64").b64decode(key["x5c"][0]))
    token = emulator.auth.sign_callback(emulator.app_id, emulator.tenant_id)
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]
    claims = jwt.decode(token, cert.public_key(), algorithms=["RS256"], audience=emulator.app_id)
    assert claims["iss"] == "https://api.botframework.com" and claims["tid"] == emulator.tenant_id
    assert claims["exp"] - claims["iat"] == 65 * 60 and claims["nbf"] == claims["iat"]

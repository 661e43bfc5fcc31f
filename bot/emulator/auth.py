"""The emulator's own keys and tokens.

Two independent issuers live here, mirroring the two the real platform has:

* the **callback signer** (the platform side, "signed by Skype", as the Teams "incoming call
  notifications" page says under "Authenticate the callback"): an RSA key
  with a self-signed X.509 certificate, published through an OpenID configuration document and a
  JWKS (``kid``, ``x5t``, ``x5c``); every notification POST carries an RS256 JWT with the claims of
  ``callbackAuth.token.claims.json`` (``iss`` https://api.botframework.com, ``aud`` the bot's app id,
  ``tid``, ``iat``/``nbf``/``exp``);
* the **Entra ID stand-in**: app-only access tokens for ``https://graph.microsoft.com`` issued by the
  OAuth2 client-credentials token endpoint, checked on every Graph request.

Plus a small private CA and a server certificate for 127.0.0.1/localhost: msal only accepts an
``https`` authority, so the emulator also listens with TLS and clients trust ``ca_cert_path``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import secrets
import ssl
import tempfile
import time
import uuid
from dataclasses import dataclass, field

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

CALLBACK_ISSUER = "https://api.botframework.com"
GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
CALLBACK_TOKEN_LIFETIME_S = 65 * 60  # the documented example spans 65 minutes
ACCESS_TOKEN_LIFETIME_S = 3599
DEFAULT_APP_ROLES = (
    "Calls.Initiate.All",
    "Calls.InitiateGroupCall.All",
    "Calls.JoinGroupCall.All",
    "Calls.JoinGroupCallAsGuest.All",
    "Calls.AccessMedia.All",
)


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _self_signed_cert(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


@dataclass
class SigningKey:
    """An RSA signing key with its certificate, as one JWKS entry."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    kid: str

    @classmethod
    def shared(cls, common_name: str) -> SigningKey:
        """One key per name and process: RSA generation costs ~0.1-0.5 s, and emulators are many in
        a test run. ``generate`` makes a fresh one (key rotation)."""
        key = _SHARED_KEYS.get(common_name)
        if key is None:
            key = _SHARED_KEYS[common_name] = cls.generate(common_name)
        return key

    @classmethod
    def generate(cls, common_name: str) -> SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = _self_signed_cert(key, common_name)
        der = cert.public_bytes(serialization.Encoding.DER)
        # Microsoft's issuers use the base64url SHA-1 thumbprint as both kid and x5t.
        kid = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode("ascii")
        return cls(key=key, cert=cert, kid=kid)

    def jwk(self) -> dict:
        numbers = self.key.public_key().public_numbers()
        der = self.cert.public_bytes(serialization.Encoding.DER)
        return {
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
            "x5c": [base64.b64encode(der).decode("ascii")],
        }

    def sign(self, claims: dict) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid})


_SHARED_KEYS: dict[str, SigningKey] = {}


@dataclass
class AppRegistration:
    """A bot application known to the emulator (the tenant's app registration)."""

    app_id: str
    tenant_id: str
    client_secret: str | None = None
    certificate_pem: bytes | None = None  # public certificate for client_assertion credentials
    display_name: str = "mediabot"
    webhook_url: str | None = None  # "Webhook for calling" of the bot registration
    roles: tuple[str, ...] = DEFAULT_APP_ROLES


class TokenError(Exception):
    """A token request or an access token was refused; ``error`` is the OAuth2 error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass
class TlsMaterial:
    """A throw-away CA and a 127.0.0.1/localhost server certificate signed by it."""

    ca_cert_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="mediabot-emulator-tls-"))

    @classmethod
    def generate(cls) -> TlsMaterial:
        now = dt.datetime.now(dt.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mediabot emulator CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        material = cls(
            ca_cert_pem=ca_cert.public_bytes(pem),
            server_cert_pem=cert.public_bytes(pem),
            server_key_pem=key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        material._write()
        return material

    def _write(self) -> None:
        for name, data in (
            ("ca.pem", self.ca_cert_pem),
            ("server.pem", self.server_cert_pem),
            ("server.key", self.server_key_pem),
        ):
            path = os.path.join(self.directory, name)
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, 0o600)

    @property
    def ca_cert_path(self) -> str:
        return os.path.join(self.directory, "ca.pem")

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(
            os.path.join(self.directory, "server.pem"), os.path.join(self.directory, "server.key")
        )
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_cert_path)

    def cleanup(self) -> None:
        for name in ("ca.pem", "server.pem", "server.key"):
            try:
                os.remove(os.path.join(self.directory, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(self.directory)
        except OSError:
            pass


class EmulatorAuth:
    """Keys, app registrations, callback signing and access tokens of one emulator instance."""

    def __init__(self) -> None:
        self.callback_keys: list[SigningKey] = [SigningKey.shared("mediabot emulator callbacks")]
        self.aad_key = SigningKey.shared("mediabot emulator login")
        self.apps: dict[str, AppRegistration] = {}
        # (app id, tenant id) -> (issued at, token). A callback token is valid 65 min; like the
        # platform, reuse it for a while instead of an RSA signature per notification.
        self._callback_tokens: dict[tuple[str, str], tuple[float, str]] = {}
        self.callback_token_reuse_s = 60.0
        # App tokens: Entra ID issues them for about an hour and Graph accepts them a little past
        # exp (clock skew). Tests shorten both to see a bot refresh its token within seconds.
        self.access_token_lifetime_s: float = ACCESS_TOKEN_LIFETIME_S
        self.access_token_leeway_s: float = 60.0

    # -- callback signing (platform -> bot) ---------------------------------------------------
    @property
    def callback_key(self) -> SigningKey:
        return self.callback_keys[-1]

    def rotate_callback_key(self, keep_old: bool = False) -> SigningKey:
        """Start signing with a new key; the old one stays published only if ``keep_old``."""
        new = SigningKey.generate("mediabot emulator callbacks")
        self.callback_keys = ([*self.callback_keys] if keep_old else []) + [new]
        self._callback_tokens.clear()
        return new

    def callback_jwks(self) -> dict:
        return {"keys": [k.jwk() for k in self.callback_keys]}

    def callback_claims(self, app_id: str, tenant_id: str, now: float | None = None) -> dict:
        iat = int(now if now is not None else time.time())
        return {
            "aud": app_id,
            "iss": CALLBACK_ISSUER,
            "iat": iat,
            "nbf": iat,
            "exp": iat + CALLBACK_TOKEN_LIFETIME_S,
            "tid": tenant_id,
        }

    def callback_token(self, app_id: str, tenant_id: str) -> str:
        """The bearer token for a notification POST (reused for ``callback_token_reuse_s``)."""
        now = time.time()
        cached = self._callback_tokens.get((app_id, tenant_id))
        if cached is not None and now - cached[0] < self.callback_token_reuse_s:
            return cached[1]
        token = self.sign_callback(app_id, tenant_id)
        self._callback_tokens[(app_id, tenant_id)] = (now, token)
        return token

    def sign_callback(self, app_id: str, tenant_id: str, **overrides) -> str:
        """A freshly signed callback JWT; ``overrides`` replace claims (None removes one)."""
        claims = self.callback_claims(app_id, tenant_id)
        claims.update(overrides)
        for name in [k for k, v in claims.items() if v is None]:
            del claims[name]
        return self.callback_key.sign(claims)

    # -- app registrations and access tokens (bot -> Graph) -----------------------------------
    def register_app(self, app: AppRegistration) -> AppRegistration:
        self.apps[app.app_id] = app
        return app

    def aad_jwks(self) -> dict:
        return {"keys": [self.aad_key.jwk()]}

    def issue_access_token(
        self, app_id: str, tenant_id: str, issuer_base: str = "https://login.microsoftonline.com"
    ) -> str:
        app = self.apps.get(app_id)
        roles = list(app.roles) if app else list(DEFAULT_APP_ROLES)
        now = int(time.time())
        claims = {
            "aud": GRAPH_RESOURCE,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + int(self.access_token_lifetime_s),
            "appid": app_id,
            "azp": app_id,
            "tid": tenant_id,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer_base}/{tenant_id}/{app_id}")),
            "roles": roles,
            "idtyp": "app",
            "ver": "1.0",
            "uti": secrets.token_urlsafe(16),
        }
        return self.aad_key.sign(claims)

    def verify_access_token(self, token: str) -> dict:
        """Claims of a Graph access token issued by this emulator; raises TokenError otherwise."""
        try:
            return jwt.decode(
                token,
                self.aad_key.key.public_key(),
                algorithms=["RS256"],
                audience=GRAPH_RESOURCE,
                options={"require": ["exp", "nbf", "aud", "tid", "appid"]},
                leeway=self.access_token_leeway_s,
            )
        except jwt.PyJWTError as exc:
            raise TokenError("InvalidAuthenticationToken", str(exc)) from exc

    def client_credentials(self, tenant: str, form: dict[str, str], token_url: str) -> dict:
        """The OAuth2 client-credentials grant; returns the token response or raises TokenError."""
        if form.get("grant_type") != "client_credentials":
            raise TokenError("unsupported_grant_type", "only client_credentials is supported")
        scope = form.get("scope", "")
        if GRAPH_SCOPE not in scope.split():
            raise TokenError("invalid_scope", f"scope must be {GRAPH_SCOPE}, got {scope!r}")
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            raise TokenError("unauthorized_client", f"application {client_id!r} is not registered")
        if (
            tenant not in (app.tenant_id, "common", "organizations")
            and tenant.lower() != app.tenant_id.lower()
        ):
            raise TokenError("invalid_request", f"tenant {tenant!r} does not hold application {client_id!r}")
        if "client_secret" in form:
            if app.client_secret is None or not secrets.compare_digest(
                form["client_secret"], app.client_secret
            ):
                raise TokenError("invalid_client", "invalid client secret")
        elif form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            self._check_client_assertion(app, form.get("client_assertion", ""), token_url)
        else:
            raise TokenError("invalid_client", "client_secret or client_assertion required")
        return {
            "token_type": "Bearer",
            "expires_in": int(self.access_token_lifetime_s),
            "ext_expires_in": int(self.access_token_lifetime_s),
            "access_token": self.issue_access_token(app.app_id, app.tenant_id),
        }

    def _check_client_assertion(self, app: AppRegistration, assertion: str, token_url: str) -> None:
        if app.certificate_pem is None:
            raise TokenError("invalid_client", "no certificate registered for this application")
        cert = x509.load_pem_x509_certificate(app.certificate_pem)
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),  # type: ignore[arg-type]  # an RSA key: app certificates are RSA here
                algorithms=["RS256", "PS256"],
                audience=token_url,
                options={"require": ["exp", "aud", "iss", "sub"]},
                leeway=60,
            )
        except jwt.PyJWTError as exc:
            raise TokenError("invalid_client", f"client assertion rejected: {exc}") from exc
        if claims.get("iss") != app.app_id or claims.get("sub") != app.app_id:
            raise TokenError("invalid_client", "client assertion iss/sub must be the client id")

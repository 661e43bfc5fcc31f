"""Test key material made with `cryptography`: RSA signing keys, JWKS entries, a TLS cert."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _b64url_uint(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def self_signed(key: rsa.RSAPrivateKey, cn: str, *, ip: str | None = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(key, hashes.SHA256())


_POOL: list[rsa.RSAPrivateKey] = []
_next = 0


def _private_key() -> rsa.RSAPrivateKey:
    """RSA-2048 keys are slow to make; tests draw distinct keys round-robin from a small pool."""
    global _next
    if len(_POOL) < 6:
        _POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return _POOL[-1]
    _next = (_next + 1) % len(_POOL)
    return _POOL[_next]


class SigningKey:
    """An RSA key with an X.509 cert, published as a JWKS entry (kid, x5t, x5c, n, e)."""

    def __init__(self, kid: str | None = None, *, distinct_from: "SigningKey | None" = None) -> None:
        self.private = _private_key()
        while distinct_from is not None and self.private is distinct_from.private:
            self.private = _private_key()
        self.cert = self_signed(self.private, "test callback signer")
        der = self.cert.public_bytes(serialization.Encoding.DER)
        self.kid = kid or uuid.uuid4().hex
        self.x5t = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
        numbers = self.private.public_key().public_numbers()
        self.jwk = {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.x5t,
                    "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e), "x5c": [_b64(der)]}
        self.pem = self.private.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()

    def sign(self, claims: dict, *, kid: str | None = None, headers: dict | None = None,
             alg: str = "RS256") -> str:
        hdr = {"kid": self.kid if kid is None else kid, **(headers or {})}
        return jwt.encode(claims, self.pem, algorithm=alg, headers=hdr)


def claims(app_id: str, *, iss: str = "https://api.botframework.com", tid: str | None = "tenant-1",
           lifetime_s: int = 3900, now: float | None = None, **extra) -> dict:
    """Claims shaped like callbackAuth.token.claims.json (65-minute lifetime)."""
    t = int(time.time() if now is None else now)
    out = {"aud": app_id, "iss": iss, "iat": t, "nbf": t, "exp": t + lifetime_s}
    if tid is not None:
        out["tid"] = tid
    out.update(extra)
    return out


def jwks(*keys: SigningKey) -> str:
    return json.dumps({"keys": [k.jwk for k in keys]})

"""SRTP/SRTCP sessions over the native transform (RFC 3711, RFC 7714), for tests
and tools, plus SDES key helpers (RFC 4568).

The media engine protects and unprotects packets in native code; this wrapper
crosses the cffi boundary once per packet and is meant for tests, tools and
interop checks, not for a hot path: a cffi call that moves a packet's bytes in
and out costs 1-2 µs on the development VM, several times the native unprotect
itself (docs/srtp.md, "Cost").

Profiles carry their RFC 4568 names. ``AES_CM_128_HMAC_SHA1_32`` uses an 80-bit
SRTCP tag, as RFC 5764 and libsrtp do; ffmpeg's suite of the same name puts a
32-bit tag on SRTCP as well (docs/srtp.md, "The _32 trap"): pass
``srtcp_tag_32=True`` to talk to it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

from ._native import ffi, lib
from .errors import check

__all__ = [
    "PROFILES",
    "SrtpSession",
    "SrtpStats",
    "format_inline_key",
    "key_salt_length",
    "parse_inline_key",
    "parse_profile",
]

#: RFC 4568 crypto-suite names -> native profile ids (the DTLS-SRTP ids of
#: RFC 5764 / RFC 7714).
PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": lib.MC_SRTP_AES_CM_128_HMAC_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": lib.MC_SRTP_AES_CM_128_HMAC_SHA1_32,
    "AEAD_AES_128_GCM": lib.MC_SRTP_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": lib.MC_SRTP_AEAD_AES_256_GCM,
}

# DTLS-SRTP (RFC 5764 / RFC 7714) spellings of the same profiles
_ALIASES = {
    "SRTP_AES128_CM_HMAC_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "SRTP_AES128_CM_HMAC_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "SRTP_AEAD_AES_128_GCM": "AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM",
}

_MAX_TRAILER = lib.MC_SRTP_MAX_TRAILER


def parse_profile(profile: str | int) -> int:
    """Native profile id from an RFC 4568 name (or a DTLS-SRTP alias, or an id)."""
    if isinstance(profile, int):
        if profile not in PROFILES.values():
            raise ValueError(f"unknown SRTP profile id {profile}")
        return profile
    name = _ALIASES.get(profile.strip().upper(), profile.strip().upper())
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown SRTP crypto-suite {profile!r}; supported: {', '.join(PROFILES)}") from None


def key_salt_length(profile: str | int) -> int:
    """Bytes of master key || master salt the profile needs (30, 28 or 44)."""
    out = ffi.new("uint32_t *")
    check(lib.mc_srtp_profile_info(parse_profile(profile), 0, out, ffi.NULL, ffi.NULL), "srtp profile")
    return out[0]


def parse_inline_key(key_params: str, profile: str | int) -> bytes:
    """Master key || salt from an SDES key-params string (RFC 4568 section 6.1).

    Accepts ``inline:<base64>`` with an optional ``|lifetime`` and ``|MKI:length``
    (the lifetime is ignored; an MKI is refused, the transform does not use one).
    Raises ValueError for bad base64 or a length that does not fit the profile.
    """
    text = key_params.strip()
    if not text.startswith("inline:"):
        raise ValueError(f"SDES key-params must start with 'inline:': {key_params!r}")
    parts = text[len("inline:") :].split("|")
    b64 = parts[0]
    for extra in parts[1:]:
        if ":" in extra:
            raise ValueError(f"SDES key-params with an MKI are not supported: {key_params!r}")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"SDES inline key is not valid base64: {exc}") from None
    expected = key_salt_length(profile)
    if len(raw) != expected:
        raise ValueError(
            f"SDES inline key is {len(raw)} bytes; {_profile_name(profile)} needs {expected} "
            "(master key || master salt)"
        )
    return raw


def format_inline_key(key_salt: bytes) -> str:
    """The ``inline:<base64>`` key-params for a master key || salt."""
    return "inline:" + base64.b64encode(key_salt).decode("ascii")


def _profile_name(profile: str | int) -> str:
    pid = parse_profile(profile)
    return next(name for name, value in PROFILES.items() if value == pid)


@dataclass(frozen=True)
class SrtpStats:
    rtp_packets: int
    rtcp_packets: int
    auth_failures: int
    replays: int
    malformed: int
    buffer_errors: int
    streams_refused: int
    streams: int
    replay_window: int


class SrtpSession:
    """One direction of SRTP keying: ``outbound`` protects, ``inbound`` unprotects.

    ``key`` is the raw master key || salt, or SDES key-params ``inline:<base64>``.
    Per-packet failures raise (AuthenticationFailed, ReplayDetected, Malformed,
    ...) and are also counted in :attr:`stats`. One thread at a time.
    """

    def __init__(
        self,
        profile: str | int,
        key: bytes | str,
        direction: Literal["inbound", "outbound"],
        *,
        replay_window: int = 128,
        max_streams: int = 16,
        srtcp_tag_32: bool = False,
        session_keys: bool = False,
    ) -> None:
        self.profile = parse_profile(profile)
        if direction not in ("inbound", "outbound"):
            raise ValueError(f"direction must be 'inbound' or 'outbound', not {direction!r}")
        self.direction = direction
        if isinstance(key, str):
            key = parse_inline_key(key, self.profile)
        flags = 0
        if direction == "outbound":
            flags |= lib.MC_SRTP_OUTBOUND
        if srtcp_tag_32:
            if self.profile != lib.MC_SRTP_AES_CM_128_HMAC_SHA1_32:
                raise ValueError("srtcp_tag_32 applies to AES_CM_128_HMAC_SHA1_32 only")
            flags |= lib.MC_SRTP_SRTCP_TAG_32
        if session_keys:
            flags |= lib.MC_SRTP_SESSION_KEYS
        elif len(key) != key_salt_length(self.profile):
            raise ValueError(
                f"{_profile_name(self.profile)} needs {key_salt_length(self.profile)} bytes of "
                f"master key || salt, got {len(key)}"
            )
        out = ffi.new("mc_srtp **")
        check(
            lib.mc_srtp_create(self.profile, key, len(key), replay_window, max_streams, flags, out),
            "srtp create",
        )
        self._ctx = ffi.gc(out[0], lib.mc_srtp_free)
        self._out_length = ffi.new("size_t *")
        self._buffer = ffi.new("uint8_t[]", 2048)

    def _run(self, fn, packet: bytes, grow: int, context: str) -> bytes:
        n = len(packet)
        if n + grow > len(self._buffer):
            self._buffer = ffi.new("uint8_t[]", n + grow)
        ffi.memmove(self._buffer, packet, n)
        if grow:
            status = fn(self._ctx, self._buffer, n, len(self._buffer), self._out_length)
        else:
            status = fn(self._ctx, self._buffer, n, self._out_length)
        check(status, context)
        return ffi.buffer(self._buffer, self._out_length[0])[:]

    def protect(self, packet: bytes) -> bytes:
        """RTP -> SRTP."""
        return self._run(lib.mc_srtp_protect, packet, _MAX_TRAILER, "srtp protect")

    def unprotect(self, packet: bytes) -> bytes:
        """SRTP -> RTP."""
        return self._run(lib.mc_srtp_unprotect, packet, 0, "srtp unprotect")

    def protect_rtcp(self, packet: bytes) -> bytes:
        """RTCP -> SRTCP (encrypted, E flag set)."""
        return self._run(lib.mc_srtcp_protect, packet, _MAX_TRAILER, "srtcp protect")

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        """SRTCP -> RTCP."""
        return self._run(lib.mc_srtcp_unprotect, packet, 0, "srtcp unprotect")

    @property
    def stats(self) -> SrtpStats:
        s = ffi.new("mc_srtp_stats *")
        check(lib.mc_srtp_get_stats(self._ctx, s), "srtp stats")
        return SrtpStats(
            rtp_packets=s.rtp_packets,
            rtcp_packets=s.rtcp_packets,
            auth_failures=s.auth_failures,
            replays=s.replays,
            malformed=s.malformed,
            buffer_errors=s.buffer_errors,
            streams_refused=s.streams_refused,
            streams=s.streams,
            replay_window=s.replay_window,
        )

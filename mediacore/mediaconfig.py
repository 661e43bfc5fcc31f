"""The media configuration document: one side of a media session, as JSON.

mediabot puts its own document into ``appHostedMediaConfig.blob`` of Graph
``answer`` / ``createCall`` requests; the remote media endpoint (the Teams
media server, or the local emulator standing in for it) reads it to connect,
and returns its own document. An engine session is configured from the pair
(:func:`configure_session`). The schema is documented in docs/media-config.md
and versioned by ``mediaConfigVersion``; this module validates documents and
reports problems with the JSON path of the offending member.

Keying follows SDES (RFC 4568): each side's document carries the SRTP master
key || salt *it protects with*; the other side unprotects with it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Codec",
    "Endpoint",
    "HeaderExtension",
    "MediaConfig",
    "MediaConfigError",
    "MediaSection",
    "SessionBinding",
    "SrtpParams",
    "AUDIO_LEVEL_URI",
    "SCHEMA_VERSION",
    "configure_session",
    "negotiate",
]

SCHEMA_VERSION = 1
KINDS = ("audio", "video", "vbss")
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
ROLES = ("bot", "remote")
#: SRTP profile -> master key || salt length (RFC 4568, RFC 7714)
SRTP_KEY_LENGTHS = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}
DEFAULT_CODECS = {
    "audio": [
        {
            "payloadType": 111,
            "name": "opus",
            "clockRate": 48000,
            "channels": 2,
            "fmtp": "minptime=10;useinbandfec=1",
        },
        {"payloadType": 0, "name": "PCMU", "clockRate": 8000, "channels": 1},
    ],
    "video": [
        {
            "payloadType": 96,
            "name": "H264",
            "clockRate": 90000,
            "fmtp": "packetization-mode=1;profile-level-id=42e01f",
        }
    ],
    "vbss": [
        {
            "payloadType": 97,
            "name": "H264",
            "clockRate": 90000,
            "fmtp": "packetization-mode=1;profile-level-id=42e01f",
        }
    ],
}
#: RFC 6464 client-to-mixer audio level (RFC 8285 header extension)
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
DEFAULT_EXTMAP = {"audio": [{"id": 1, "uri": AUDIO_LEVEL_URI}], "video": [], "vbss": []}


class MediaConfigError(ValueError):
    """An invalid document, or two documents that cannot work together.
    ``path`` names the offending member (``media[1].codecs[0].payloadType``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


# ---- checking helpers -------------------------------------------------------------------


def _get(
    obj: dict, key: str, path: str, kind: type | tuple, required: bool = True, default: Any = None
) -> Any:
    if key not in obj or obj[key] is None:
        if required:
            raise MediaConfigError(f"{path}.{key}" if path else key, "is required")
        return default
    v = obj[key]
    if kind is int and isinstance(v, bool):
        raise MediaConfigError(f"{path}.{key}" if path else key, "must be an integer")
    if not isinstance(v, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise MediaConfigError(f"{path}.{key}" if path else key, f"must be {names}, not {type(v).__name__}")
    return v


def _range(v: int, lo: int, hi: int, path: str) -> int:
    if not lo <= v <= hi:
        raise MediaConfigError(path, f"must be in {lo}..{hi}, not {v}")
    return v


# ---- the document -----------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    payload_type: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str = ""

    def to_json(self) -> dict:
        d: dict[str, Any] = {
            "payloadType": self.payload_type,
            "name": self.name,
            "clockRate": self.clock_rate,
            "channels": self.channels,
        }
        if self.fmtp:
            d["fmtp"] = self.fmtp
        return d

    @classmethod
    def from_json(cls, d: Any, path: str) -> Codec:
        if not isinstance(d, dict):
            raise MediaConfigError(path, "must be an object")
        pt = _range(_get(d, "payloadType", path, int), 0, 127, f"{path}.payloadType")
        if 64 <= pt <= 95:
            raise MediaConfigError(
                f"{path}.payloadType",
                f"{pt} collides with RTCP packet types under rtcp-mux "
                "(RFC 5761 4); use 96..127 for dynamic types",
            )
        name = _get(d, "name", path, str)
        if not name:
            raise MediaConfigError(f"{path}.name", "must not be empty")
        rate = _range(_get(d, "clockRate", path, int), 1000, 1000000, f"{path}.clockRate")
        ch = _range(_get(d, "channels", path, int, False, 1), 1, 8, f"{path}.channels")
        return cls(pt, name, rate, ch, _get(d, "fmtp", path, str, False, ""))

    def matches(self, other: Codec) -> bool:
        return self.name.lower() == other.name.lower() and self.clock_rate == other.clock_rate


@dataclass(frozen=True)
class HeaderExtension:
    """An RTP header extension (RFC 8285) this side understands, with the id
    it *sends* it with (1..14: one-byte form; 15..255: two-byte form)."""

    id: int
    uri: str

    def to_json(self) -> dict:
        return {"id": self.id, "uri": self.uri}

    @classmethod
    def from_json(cls, d: Any, path: str) -> HeaderExtension:
        if not isinstance(d, dict):
            raise MediaConfigError(path, "must be an object")
        ext_id = _range(_get(d, "id", path, int), 1, 255, f"{path}.id")
        uri = _get(d, "uri", path, str)
        if not uri:
            raise MediaConfigError(f"{path}.uri", "must not be empty")
        return cls(ext_id, uri)


@dataclass(frozen=True)
class MediaSection:
    kind: str  # audio | video | vbss
    direction: str  # of this side: sendrecv | sendonly | recvonly | inactive
    ssrcs: tuple[int, ...]  # SSRCs this side sends from
    source_id: int  # media source id (Graph's sourceId / MSI) of this side's stream
    codecs: tuple[Codec, ...]
    extmap: tuple[HeaderExtension, ...] = ()  # header extensions, with this side's send ids

    def extension_id(self, uri: str) -> int:
        """This side's id for the extension ``uri``; 0 when it does not list it."""
        for e in self.extmap:
            if e.uri == uri:
                return e.id
        return 0

    @property
    def sends(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def receives(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")

    def to_json(self) -> dict:
        d = {
            "kind": self.kind,
            "direction": self.direction,
            "ssrcs": list(self.ssrcs),
            "sourceId": self.source_id,
            "codecs": [c.to_json() for c in self.codecs],
        }
        if self.extmap:
            d["extmap"] = [e.to_json() for e in self.extmap]
        return d

    @classmethod
    def from_json(cls, d: Any, path: str) -> MediaSection:
        if not isinstance(d, dict):
            raise MediaConfigError(path, "must be an object")
        kind = _get(d, "kind", path, str)
        if kind not in KINDS:
            raise MediaConfigError(f"{path}.kind", f"must be one of {', '.join(KINDS)}, not {kind!r}")
        direction = _get(d, "direction", path, str, False, "sendrecv")
        if direction not in DIRECTIONS:
            raise MediaConfigError(
                f"{path}.direction", f"must be one of {', '.join(DIRECTIONS)}, not {direction!r}"
            )
        ssrcs = _get(d, "ssrcs", path, list, False, [])
        for i, s in enumerate(ssrcs):
            if isinstance(s, bool) or not isinstance(s, int):
                raise MediaConfigError(f"{path}.ssrcs[{i}]", "must be an integer")
            _range(s, 1, 0xFFFFFFFF, f"{path}.ssrcs[{i}]")
        if len(set(ssrcs)) != len(ssrcs):
            raise MediaConfigError(f"{path}.ssrcs", "has duplicates")
        if direction in ("sendrecv", "sendonly") and not ssrcs:
            raise MediaConfigError(f"{path}.ssrcs", f"direction {direction} needs at least one SSRC")
        source_id = _range(_get(d, "sourceId", path, int), 0, 0xFFFFFFFF, f"{path}.sourceId")
        codecs_raw = _get(d, "codecs", path, list)
        if not codecs_raw:
            raise MediaConfigError(f"{path}.codecs", "must list at least one codec")
        codecs = tuple(Codec.from_json(c, f"{path}.codecs[{i}]") for i, c in enumerate(codecs_raw))
        pts = [c.payload_type for c in codecs]
        if len(set(pts)) != len(pts):
            raise MediaConfigError(f"{path}.codecs", "payload types must be unique")
        ext_raw = _get(d, "extmap", path, list, False, [])
        extmap = tuple(HeaderExtension.from_json(e, f"{path}.extmap[{i}]") for i, e in enumerate(ext_raw))
        if len({e.id for e in extmap}) != len(extmap):
            raise MediaConfigError(f"{path}.extmap", "extension ids must be unique")
        if len({e.uri for e in extmap}) != len(extmap):
            raise MediaConfigError(f"{path}.extmap", "each extension uri may appear once")
        return cls(kind, direction, tuple(ssrcs), source_id, codecs, extmap)


@dataclass(frozen=True)
class SrtpParams:
    """SDES-style keying (RFC 4568): ``key`` is the master key || salt this
    side protects with. ``receive_key``, when present, is the one the remote
    must protect with: a bot's document that carries it needs no answer (the
    remote sends to ``endpoint`` with it, and the bot learns the remote's
    address from the first authentic packet, RFC 4961 symmetric RTP)."""

    profile: str
    key: str  # base64 master key || salt (RFC 4568 inline:)
    receive_key: str | None = None

    @property
    def key_bytes(self) -> bytes:
        return base64.b64decode(self.key)

    @property
    def receive_key_bytes(self) -> bytes | None:
        return base64.b64decode(self.receive_key) if self.receive_key else None

    def to_json(self) -> dict:
        d = {"profile": self.profile, "key": self.key}
        if self.receive_key:
            d["receiveKey"] = self.receive_key
        return d

    @classmethod
    def from_json(cls, d: Any, path: str) -> SrtpParams:
        if not isinstance(d, dict):
            raise MediaConfigError(path, "must be an object")
        profile = _get(d, "profile", path, str)
        if profile not in SRTP_KEY_LENGTHS:
            raise MediaConfigError(
                f"{path}.profile",
                f"unknown SRTP profile {profile!r}; supported: {', '.join(SRTP_KEY_LENGTHS)}",
            )
        key = cls._key(d, "key", profile, path, required=True)
        assert key is not None  # required
        receive_key = cls._key(d, "receiveKey", profile, path, required=False)
        if receive_key is not None and receive_key == key:
            raise MediaConfigError(
                f"{path}.receiveKey", "must differ from key: each direction has its own master key"
            )
        return cls(profile, key, receive_key)

    @staticmethod
    def _key(d: dict, name: str, profile: str, path: str, *, required: bool) -> str | None:
        key = _get(d, name, path, str, required)
        if key is None:
            return None
        try:
            raw = base64.b64decode(key, validate=True)
        except ValueError:
            raise MediaConfigError(f"{path}.{name}", "is not valid base64") from None
        if len(raw) != SRTP_KEY_LENGTHS[profile]:
            raise MediaConfigError(
                f"{path}.{name}",
                f"{profile} needs {SRTP_KEY_LENGTHS[profile]} bytes of master key || salt, got {len(raw)}",
            )
        return key

    @classmethod
    def generate(cls, profile: str = "AES_CM_128_HMAC_SHA1_80", *, receive_key: bool = False) -> SrtpParams:
        if profile not in SRTP_KEY_LENGTHS:
            raise MediaConfigError("srtp.profile", f"unknown SRTP profile {profile!r}")

        def fresh() -> str:
            return base64.b64encode(os.urandom(SRTP_KEY_LENGTHS[profile])).decode()

        return cls(profile, fresh(), fresh() if receive_key else None)


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int
    rtcp_mux: bool = True
    rtcp_port: int = 0  # only without rtcp-mux; 0 = port + 1

    def to_json(self) -> dict:
        d: dict[str, Any] = {"address": self.address, "port": self.port, "rtcpMux": self.rtcp_mux}
        if not self.rtcp_mux:
            d["rtcpPort"] = self.rtcp_port or self.port + 1
        return d

    @classmethod
    def from_json(cls, d: Any, path: str) -> Endpoint:
        import ipaddress

        if not isinstance(d, dict):
            raise MediaConfigError(path, "must be an object")
        address = _get(d, "address", path, str)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise MediaConfigError(
                f"{path}.address", f"must be a numeric IPv4 or IPv6 address, not {address!r}"
            ) from None
        port = _range(_get(d, "port", path, int), 1, 65535, f"{path}.port")
        mux = _get(d, "rtcpMux", path, bool, False, True)
        rtcp_port = _range(_get(d, "rtcpPort", path, int, False, 0), 0, 65535, f"{path}.rtcpPort")
        return cls(address, port, mux, rtcp_port)


@dataclass(frozen=True)
class MediaConfig:
    """One side of a media session (see docs/media-config.md)."""

    role: str
    media_session_id: str
    endpoint: Endpoint
    srtp: SrtpParams | None
    media: tuple[MediaSection, ...]
    call_id: str | None = None
    supported_audio_format: str = "Pcm16K"
    version: int = SCHEMA_VERSION

    # ---- JSON ----------------------------------------------------------------------------

    def to_json(self) -> dict:
        d: dict[str, Any] = {
            "mediaConfigVersion": self.version,
            "role": self.role,
            "mpMediaSessionId": self.media_session_id,
            "callId": self.call_id,
            "endpoint": self.endpoint.to_json(),
            "srtp": self.srtp.to_json() if self.srtp else None,
            "supportedAudioFormat": self.supported_audio_format,
            "media": [m.to_json() for m in self.media],
        }
        return d

    def to_blob(self) -> str:
        """The compact JSON text for ``appHostedMediaConfig.blob``."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=False)

    @classmethod
    def from_json(cls, d: Any) -> MediaConfig:
        if not isinstance(d, dict):
            raise MediaConfigError("", "a media configuration must be a JSON object")
        version = _get(d, "mediaConfigVersion", "", int)
        if version != SCHEMA_VERSION:
            raise MediaConfigError(
                "mediaConfigVersion",
                f"version {version} is not supported (this build reads {SCHEMA_VERSION})",
            )
        role = _get(d, "role", "", str)
        if role not in ROLES:
            raise MediaConfigError("role", f"must be one of {', '.join(ROLES)}, not {role!r}")
        sid = _get(d, "mpMediaSessionId", "", str)
        try:
            uuid.UUID(sid)
        except ValueError:
            raise MediaConfigError("mpMediaSessionId", f"must be a UUID, not {sid!r}") from None
        call_id = _get(d, "callId", "", str, False)
        endpoint = Endpoint.from_json(_get(d, "endpoint", "", dict), "endpoint")
        srtp_raw = d.get("srtp")
        srtp = SrtpParams.from_json(srtp_raw, "srtp") if srtp_raw is not None else None
        fmt = _get(d, "supportedAudioFormat", "", str, False, "Pcm16K")
        if fmt != "Pcm16K":
            raise MediaConfigError("supportedAudioFormat", f"only Pcm16K is supported, not {fmt!r}")
        media_raw = _get(d, "media", "", list)
        if not media_raw:
            raise MediaConfigError("media", "must list at least one media section")
        media = tuple(MediaSection.from_json(m, f"media[{i}]") for i, m in enumerate(media_raw))
        kinds = [m.kind for m in media]
        if len(set(kinds)) != len(kinds):
            raise MediaConfigError("media", "each kind (audio, video, vbss) may appear once")
        seen: dict[int, str] = {}
        for i, m in enumerate(media):
            for s in m.ssrcs:
                if s in seen:
                    raise MediaConfigError(f"media[{i}].ssrcs", f"SSRC {s} is also used by {seen[s]}")
                seen[s] = f"media[{i}]"
        # one session: payload types must identify one codec across sections
        pts: dict[int, tuple[str, Codec]] = {}
        for i, m in enumerate(media):
            for c in m.codecs:
                prev = pts.get(c.payload_type)
                if prev and not prev[1].matches(c):
                    raise MediaConfigError(
                        f"media[{i}].codecs",
                        f"payload type {c.payload_type} means {c.name} here but {prev[1].name} in {prev[0]}",
                    )
                pts[c.payload_type] = (f"media[{i}]", c)
        return cls(role, sid, endpoint, srtp, media, call_id, fmt, version)

    @classmethod
    def from_blob(cls, blob: str | bytes) -> MediaConfig:
        try:
            d = json.loads(blob)
        except ValueError as exc:
            raise MediaConfigError("", f"not JSON: {exc}") from None
        return cls.from_json(d)

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def generate(
        cls,
        address: str,
        port: int,
        *,
        role: str = "bot",
        kinds: tuple[str, ...] = ("audio",),
        srtp_profile: str | None = "AES_CM_128_HMAC_SHA1_80",
        call_id: str | None = None,
        direction: str = "sendrecv",
        source_ids: dict[str, int] | None = None,
        media_session_id: str | None = None,
        receive_key: bool = False,
    ) -> MediaConfig:
        """A fresh document for this side: random SSRCs, media source ids and
        SRTP key; default codecs (Opus/PCMU, H.264). The answering side passes
        the offerer's ``media_session_id``. ``receive_key`` also draws the key
        the remote protects with (``srtp.receiveKey``: no answer needed)."""
        used: set[int] = set()

        def new_ssrc() -> int:
            while True:
                s = secrets.randbits(32)
                if s and s not in used:
                    used.add(s)
                    return s

        media = []
        for kind in kinds:
            if kind not in KINDS:
                raise MediaConfigError("media.kind", f"unknown kind {kind!r}")
            codecs = tuple(Codec.from_json(c, f"{kind}.codecs") for c in DEFAULT_CODECS[kind])
            extmap = tuple(HeaderExtension.from_json(e, f"{kind}.extmap") for e in DEFAULT_EXTMAP[kind])
            sid = (source_ids or {}).get(kind, secrets.randbits(31))
            ssrcs = (new_ssrc(),) if direction in ("sendrecv", "sendonly") else ()
            media.append(MediaSection(kind, direction, ssrcs, sid, codecs, extmap))
        cfg = cls(
            role,
            media_session_id or str(uuid.uuid4()),
            Endpoint(address, port),
            SrtpParams.generate(srtp_profile, receive_key=receive_key) if srtp_profile else None,
            tuple(media),
            call_id,
        )
        return cls.from_json(cfg.to_json())  # validated like any received document

    def section(self, kind: str) -> MediaSection | None:
        for m in self.media:
            if m.kind == kind:
                return m
        return None


# ---- pairing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamPlan:
    kind: str
    send_ssrcs: tuple[int, ...]  # local SSRCs to send from
    recv_ssrcs: tuple[int, ...]  # remote SSRCs to receive
    send_codec: Codec | None  # payload type we send (the remote's number for it)
    recv_codecs: tuple[Codec, ...]  # what the remote may send us
    send_audio_level_id: int = 0  # RFC 6464 extension id we write (0: not negotiated)
    recv_audio_level_id: int = 0  # RFC 6464 extension id the remote writes (0: none)


def negotiate(local: MediaConfig, remote: MediaConfig) -> list[StreamPlan]:
    """Check that two documents can form a session and plan its streams.
    Raises :class:`MediaConfigError` naming what is incompatible."""
    if local.role == remote.role:
        raise MediaConfigError("role", f"both documents have role {local.role!r}")
    if local.media_session_id != remote.media_session_id:
        raise MediaConfigError(
            "mpMediaSessionId",
            f"documents belong to different sessions ({local.media_session_id} "
            f"here, {remote.media_session_id} at the remote)",
        )
    if (local.srtp is None) != (remote.srtp is None):
        raise MediaConfigError("srtp", "one side uses SRTP and the other does not")
    if local.srtp and remote.srtp and local.srtp.profile != remote.srtp.profile:
        raise MediaConfigError(
            "srtp.profile", f"profiles differ: {local.srtp.profile} here, {remote.srtp.profile} at the remote"
        )
    plans = []
    for m in local.media:
        r = remote.section(m.kind)
        if r is None:
            continue
        common = [rc for rc in r.codecs if any(rc.matches(lc) for lc in m.codecs)]
        if not common:
            raise MediaConfigError(
                f"media[{m.kind}].codecs",
                f"no codec in common for {m.kind}: here "
                f"{[c.name for c in m.codecs]}, remote {[c.name for c in r.codecs]}",
            )
        send = m.sends and r.receives
        recv = m.receives and r.sends
        # an extension is used in a direction when both sides list its uri; the
        # sender's id is on the wire (each document names the ids it sends with)
        level_both = bool(m.extension_id(AUDIO_LEVEL_URI) and r.extension_id(AUDIO_LEVEL_URI))
        plans.append(
            StreamPlan(
                m.kind,
                m.ssrcs if send else (),
                r.ssrcs if recv else (),
                common[0] if send else None,
                tuple(common),
                m.extension_id(AUDIO_LEVEL_URI) if send and level_both else 0,
                r.extension_id(AUDIO_LEVEL_URI) if recv and level_both else 0,
            )
        )
    if not plans:
        raise MediaConfigError("media", "no media kind in common")
    return plans


@dataclass
class SessionBinding:
    """What :func:`configure_session` created."""

    session: Any
    plans: list[StreamPlan]
    send_streams: dict[int, Any] = field(default_factory=dict)  # local SSRC -> SendStream
    receive_streams: dict[int, Any] = field(default_factory=dict)  # remote SSRC -> ReceiveStream
    source_ids: dict[int, int] = field(default_factory=dict)  # remote SSRC -> sourceId


def configure_session(
    engine,
    local: MediaConfig,
    remote: MediaConfig,
    *,
    direct: bool = False,
    nack: bool = True,
    pli: bool = True,
    history: int = 512,
) -> SessionBinding:
    """Add a session to ``engine`` from our document and the remote's: send to
    the remote endpoint with our key, receive with theirs, one send stream per
    local SSRC and one receive stream per remote SSRC of each common kind."""
    plans = negotiate(local, remote)
    ep = remote.endpoint
    rtcp_port = 0 if ep.rtcp_mux else (ep.rtcp_port or ep.port + 1)
    kw = {}
    if local.srtp and remote.srtp:
        kw = dict(srtp_profile=local.srtp.profile, tx_key=local.srtp.key_bytes, rx_key=remote.srtp.key_bytes)
    session = engine.add_session((ep.address, ep.port), remote_rtcp_port=rtcp_port, **kw)
    b = SessionBinding(session, plans)
    try:
        for p in plans:
            media = "audio" if p.kind == "audio" else "video"
            rsec = remote.section(p.kind)
            for ssrc in p.send_ssrcs:
                assert p.send_codec is not None
                b.send_streams[ssrc] = session.add_send_stream(
                    ssrc,
                    p.send_codec.payload_type,
                    media,
                    p.send_codec.clock_rate,
                    history=history if media == "video" else 0,
                    audio_level_id=p.send_audio_level_id if media == "audio" else 0,
                )
            for ssrc in p.recv_ssrcs:
                rate = p.recv_codecs[0].clock_rate
                b.receive_streams[ssrc] = session.add_receive_stream(
                    ssrc,
                    media,
                    rate,
                    direct=direct,
                    nack=nack and media == "video",
                    pli=pli and media == "video",
                    audio_level_id=p.recv_audio_level_id if media == "audio" else 0,
                    payload_types=[c.payload_type for c in p.recv_codecs],
                )
                if rsec is not None:
                    b.source_ids[ssrc] = rsec.source_id
    except BaseException:
        session.close()
        raise
    return b

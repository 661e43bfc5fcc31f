"""``mediabot run --config FILE``: the TOML settings, with secrets from the environment.

Example::

    [bot]
    app_id = "2891555a-92ff-42e6-80fa-6e1300c6b5c6"   # the bot's Microsoft App ID
    tenant_id = "86dc81db-c112-4228-9222-63f3esaa1edb"
    log_level = "INFO"

    [graph]
    base_url = "https://graph.microsoft.com/v1.0"      # or .../beta, or the local emulator
    client_secret_env = "MEDIABOT_CLIENT_SECRET"       # the secret itself is never in the file
    # certificate_path = "bot.pem" + certificate_thumbprint = "…" instead of a secret
    # token_env = "MEDIABOT_GRAPH_TOKEN"               # a fixed token instead of msal (never refreshed)
    # authority_host = "https://127.0.0.1:9445"         # msal against the local emulator:
    # instance_discovery = false                        #   its TLS listener, no instance discovery,
    # ca_bundle = "emulator-ca.pem"                     #   and its CA trusted for the token requests

    [webhook]
    public_url = "https://bot.contoso.com/api/calls"   # the callbackUri Graph posts to
    host = "0.0.0.0"
    port = 9441
    path = "/api/calls"

    [calls]
    incoming = "answer"            # answer | reject | redirect
    modalities = ["audio"]
    keepalive_interval_s = 900

    [media]                        # app-hosted media (absent: service-hosted)
    bind_address = "0.0.0.0"
    port = 8445                    # UDP, all calls share it; 0 = any
    public_address = "203.0.113.10"    # numeric; required when bound to 0.0.0.0 / ::
    # public_port = 8445  srtp_profile = "AES_CM_128_HMAC_SHA1_80"  audio_workers = 4
    # mixed = false  video = true  screen_share = true

    [[processors]]                 # one table per processor, run on every call
    name = "events"                # built-in, or package.module:Class
    speakers = false               # every other key is an option of the processor

    [output]
    dir = "calls"                  # one folder per call under it (relative: to this file)

    [control]
    token_env = "MEDIABOT_CONTROL_TOKEN"   # the bearer token's variable; no token_env: no API
    path = "/control"
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .webhook import DEFAULT_ISSUERS, DEFAULT_OPENID_CONFIGURATION_URL


class ConfigError(ValueError):
    """A missing or invalid setting; the message names the setting and the file."""


@dataclass
class GraphSettings:
    base_url: str = "https://graph.microsoft.com/v1.0"
    beta_base_url: str | None = None
    authority_host: str = "https://login.microsoftonline.com"
    # msal against another authority (the local emulator's TLS listener): instance discovery
    # validates the authority at login.microsoftonline.com, so it is turned off there, and the
    # token requests trust ca_bundle (a PEM file; relative to the config file) instead of the
    # system's CAs.
    instance_discovery: bool = True
    ca_bundle: str | None = None
    client_secret_env: str = "MEDIABOT_CLIENT_SECRET"
    certificate_path: str | None = None
    certificate_env: str = "MEDIABOT_CERTIFICATE_PEM"
    certificate_thumbprint: str | None = None
    token_env: str | None = None
    scenario_id: str | None = None
    max_retries: int = 5
    max_retry_total_s: float = 60.0
    timeout_s: float = 30.0
    # resolved from the environment / files by load_config (never read from TOML)
    client_secret: str | None = field(default=None, repr=False)
    certificate_pem: str | None = field(default=None, repr=False)
    static_token: str | None = field(default=None, repr=False)


@dataclass
class WebhookSettings:
    public_url: str | None = None
    host: str = "0.0.0.0"
    port: int = 9441
    path: str = "/api/calls"
    health_path: str = "/health"
    max_body_bytes: int = 1 << 20
    authenticate: bool = True
    openid_configuration_url: str = DEFAULT_OPENID_CONFIGURATION_URL
    issuers: list[str] = field(default_factory=lambda: list(DEFAULT_ISSUERS))
    leeway_s: float = 60.0
    key_refresh_interval_s: float = 7200.0


@dataclass
class CallSettings:
    incoming: str = "answer"
    reject_reason: str = "busy"
    redirect_to: list[str] = field(default_factory=list)
    modalities: list[str] = field(default_factory=lambda: ["audio"])
    keepalive_interval_s: float = 900.0
    operation_timeout_s: float = 300.0
    incoming_decision_timeout_s: float = 10.0
    roster: str = "auto"
    delta_roster: bool = False
    content_sharing_notifications: bool = False
    shutdown_timeout_s: float = 20.0
    on_shutdown: str = "hang_up"  # hang_up | keep (another instance adopts the calls)
    adopt_unknown_calls: bool = True


def _default_audio_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


@dataclass
class MediaSettings:
    """``[media]``: app-hosted media on this host (bot/media.py makes the
    :class:`mediacore.MediaHost` and the provider from it). Absent: service-hosted media."""

    bind_address: str = "0.0.0.0"
    port: int = 8445  # UDP; 0 = any
    public_address: str | None = None  # what remotes send to; required when bound to 0.0.0.0 / ::
    public_port: int | None = None  # default: the bound port
    srtp_profile: str = "AES_CM_128_HMAC_SHA1_80"
    audio_workers: int = field(default_factory=_default_audio_workers)
    mixed: bool = False  # also mix every speaker (processors with audio="mixed")
    video: bool = True  # offer to receive cameras
    screen_share: bool = True  # offer to receive video-based screen sharing


@dataclass
class ProcessorSettings:
    """One ``[[processors]]`` table: ``name`` and its options (every other key)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    #: "FILE: [[processors]][N]", how messages name this entry (N counts from 1)
    where: str = "[[processors]]"


@dataclass
class OutputSettings:
    """``[output]``: ``dir`` holds one folder per call (its processors' files)."""

    dir: Path | None = None


@dataclass
class ControlSettings:
    """``[control]``: the operator API on the webhook listener (bot/control.py)."""

    token_env: str | None = None
    path: str = "/control"
    #: resolved from the environment variable token_env names (never read from TOML)
    token: str | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return self.token is not None


@dataclass
class BotConfig:
    app_id: str
    tenant_id: str
    log_level: str = "INFO"
    graph: GraphSettings = field(default_factory=GraphSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    source: str = "<config>"
    media: MediaSettings | None = None
    processors: list[ProcessorSettings] = field(default_factory=list)
    output: OutputSettings = field(default_factory=OutputSettings)
    control: ControlSettings = field(default_factory=ControlSettings)


_SECRET_KEYS = {"client_secret", "certificate_pem", "static_token", "token", "secret", "password"}
_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool}


def _fill(obj: Any, table: Mapping[str, Any], section: str, src: str) -> None:
    known = {
        f.name: f for f in fields(obj) if f.name not in ("client_secret", "certificate_pem", "static_token")
    }
    for key, value in table.items():
        if key in _SECRET_KEYS:
            raise ConfigError(
                f"{src}: [{section}] {key}: secrets do not belong in the config file; "
                f"put it in the environment variable named by {section}.{key}_env"
            )
        if key not in known:
            raise ConfigError(
                f"{src}: [{section}] unknown setting {key!r} (known: {', '.join(sorted(known))})"
            )
        f = known[key]
        ftype = str(f.type)
        ok = True
        if ftype.startswith("list"):
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif ftype.startswith("bool"):
            ok = isinstance(value, bool)
        elif ftype.startswith("int"):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif ftype.startswith("float"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif ftype.startswith("str"):
            ok = isinstance(value, str)
        if not ok:
            raise ConfigError(f"{src}: [{section}] {key} must be of type {ftype}, not {value!r}")
        setattr(obj, key, value)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> BotConfig:
    """Read and validate a TOML config; secrets come from ``env`` (default os.environ)."""
    env = os.environ if env is None else env
    src = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{src}: not valid TOML: {exc}") from exc
    return config_from_mapping(data, env=env, source=src, base_dir=Path(path).resolve().parent)


def config_from_mapping(
    data: Mapping[str, Any], *, env: Mapping[str, str], source: str = "<config>", base_dir: Path | None = None
) -> BotConfig:
    unknown = set(data) - {"bot", "graph", "webhook", "calls", *_MEDIA_SECTIONS}
    if unknown:
        raise ConfigError(
            f"{source}: unknown section(s) {sorted(unknown)} "
            f"(known: bot, graph, webhook, calls, {', '.join(_MEDIA_SECTIONS)})"
        )
    bot = data.get("bot", {})
    if not isinstance(bot, dict):
        raise ConfigError(f"{source}: [bot] must be a table")
    for key in ("app_id", "tenant_id"):
        if not isinstance(bot.get(key), str) or not bot.get(key):
            raise ConfigError(
                f"{source}: [bot] {key} is required (the bot's "
                f"{'Microsoft App ID' if key == 'app_id' else 'Entra tenant id'})"
            )
    extra = set(bot) - {"app_id", "tenant_id", "log_level"}
    if extra:
        raise ConfigError(
            f"{source}: [bot] unknown setting(s) {sorted(extra)} (known: app_id, log_level, tenant_id)"
        )
    cfg = BotConfig(app_id=bot["app_id"], tenant_id=bot["tenant_id"], source=source)
    if "log_level" in bot:
        if bot["log_level"] not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"{source}: [bot] log_level must be DEBUG, INFO, WARNING or ERROR")
        cfg.log_level = bot["log_level"]
    for section, obj in (("graph", cfg.graph), ("webhook", cfg.webhook), ("calls", cfg.calls)):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        _fill(obj, table, section, source)
    _check(cfg, env, base_dir or Path.cwd())
    _media_sections(cfg, data, env, base_dir or Path.cwd())
    return cfg


def _check(cfg: BotConfig, env: Mapping[str, str], base_dir: Path) -> None:
    src, g, w, c = cfg.source, cfg.graph, cfg.webhook, cfg.calls
    for name, url in (
        ("graph.base_url", g.base_url),
        ("graph.authority_host", g.authority_host),
        ("webhook.openid_configuration_url", w.openid_configuration_url),
    ):
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{src}: {name} must be an http(s) URL, not {url!r}")
    if not g.authority_host.startswith("https://"):
        raise ConfigError(
            f"{src}: graph.authority_host must be an https URL (msal accepts no other), "
            f"not {g.authority_host!r}"
        )
    if g.ca_bundle is not None:
        ca = Path(g.ca_bundle)
        ca = ca if ca.is_absolute() else base_dir / ca
        if not ca.is_file():
            raise ConfigError(f"{src}: graph.ca_bundle {str(ca)!r} is not a readable file")
        g.ca_bundle = str(ca)
    if w.public_url is not None and not (
        w.public_url.startswith("https://")
        or w.public_url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))
    ):
        raise ConfigError(
            f"{src}: webhook.public_url must be https (Graph requires it for callbackUri; "
            "plain http only to a loopback address, for the local emulator)"
        )
    if not 0 <= w.port <= 65535:
        raise ConfigError(f"{src}: webhook.port must be 0-65535")
    if w.max_body_bytes < 1024:
        raise ConfigError(f"{src}: webhook.max_body_bytes must be at least 1024")
    if c.incoming not in ("answer", "reject", "redirect"):
        raise ConfigError(f"{src}: calls.incoming must be answer, reject or redirect, not {c.incoming!r}")
    if c.incoming == "redirect" and not c.redirect_to:
        raise ConfigError(f'{src}: calls.incoming = "redirect" needs calls.redirect_to (user ids)')
    if c.reject_reason.lower() not in ("none", "busy", "forbidden"):
        raise ConfigError(f"{src}: calls.reject_reason must be none, busy or forbidden")
    if c.on_shutdown not in ("hang_up", "keep"):
        raise ConfigError(f"{src}: calls.on_shutdown must be hang_up or keep")
    if c.roster not in ("auto", "full", "partial"):
        raise ConfigError(f"{src}: calls.roster must be auto, full or partial")
    bad = [x for x in c.modalities if x not in ("audio", "video", "videoBasedScreenSharing")]
    if bad or not c.modalities:
        raise ConfigError(
            f"{src}: calls.modalities must be a non-empty subset of audio, video, videoBasedScreenSharing"
        )
    if c.keepalive_interval_s <= 0 or c.keepalive_interval_s > 45 * 60:
        raise ConfigError(
            f"{src}: calls.keepalive_interval_s must be in (0, 2700]: calls without a keepAlive "
            "for 45 minutes are ended"
        )
    # credentials
    if g.token_env:
        token = env.get(g.token_env)
        if not token:
            raise ConfigError(f"{src}: graph.token_env names {g.token_env}, which is not set")
        g.static_token = token
        return
    if g.certificate_path or g.certificate_thumbprint:
        if not g.certificate_thumbprint:
            raise ConfigError(f"{src}: graph.certificate_thumbprint is required with a certificate")
        pem = env.get(g.certificate_env)
        if g.certificate_path:
            p = Path(g.certificate_path)
            p = p if p.is_absolute() else base_dir / p
            try:
                pem = p.read_text()
            except OSError as exc:
                raise ConfigError(f"{src}: graph.certificate_path {str(p)!r}: {exc.strerror or exc}") from exc
        if not pem or "PRIVATE KEY" not in pem:
            raise ConfigError(f"{src}: no PEM private key in graph.certificate_path or ${g.certificate_env}")
        g.certificate_pem = pem
        return
    secret = env.get(g.client_secret_env)
    if not secret:
        raise ConfigError(
            f"{src}: no Graph credentials: set the environment variable {g.client_secret_env} "
            "to the app's client secret, or configure graph.certificate_path + "
            "graph.certificate_thumbprint, or graph.token_env"
        )
    g.client_secret = secret


# ---- app-hosted media and operations: [media], [[processors]], [output], [control] -----------
#
# Checked here as plain data. Whether a processor name or option, or an SRTP profile, is one
# mediacore knows is checked by bot/media.py (``media_plan``): this module never imports mediacore.

_MEDIA_SECTIONS = ("media", "processors", "output", "control")
_TYPE_WORDS = {bool: "true or false", int: "an integer", str: "a string"}
#: shorter bearer tokens are refused: the control API can join and end calls
MIN_CONTROL_TOKEN_LENGTH = 16


def _where(src: str, section: str, key: str | None = None) -> str:
    head = section if section.startswith("[") else f"[{section}]"
    return f"{src}: {head} {key}:" if key else f"{src}: {head}:"


def _typed(table: Mapping[str, Any], key: str, kind: type, src: str, section: str) -> Any:
    value = table[key]
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{_where(src, section, key)} must be {_TYPE_WORDS[kind]}, got {value!r}")
    return value


def _known(table: Mapping[str, Any], known: tuple[str, ...], src: str, section: str) -> None:
    for key in table:
        if key in _SECRET_KEYS:
            raise ConfigError(
                f"{_where(src, section, key)} secrets do not belong in the config file; "
                f"put it in the environment variable named by {section}.{key}_env"
            )
        if key not in known:
            raise ConfigError(f"{_where(src, section, key)} unknown setting (known: {', '.join(known)})")


def _table(data: Mapping[str, Any], section: str, src: str) -> dict[str, Any] | None:
    table = data.get(section)
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{_where(src, section)} must be a table ([{section}]), got {table!r}")
    return table


def _numeric_ip(value: str, src: str, key: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(
            f"{_where(src, 'media', key)} must be a numeric IPv4 or IPv6 address "
            f"(no DNS on the media path), got {value!r}"
        ) from None


def _media(table: Mapping[str, Any], src: str) -> MediaSettings:
    ms = MediaSettings()
    kinds = {
        "bind_address": str,
        "port": int,
        "public_address": str,
        "public_port": int,
        "srtp_profile": str,
        "audio_workers": int,
        "mixed": bool,
        "video": bool,
        "screen_share": bool,
    }
    _known(table, tuple(kinds), src, "media")
    for key, kind in kinds.items():
        if key in table:
            setattr(ms, key, _typed(table, key, kind, src, "media"))
    if not 0 <= ms.port <= 65535:
        raise ConfigError(f"{_where(src, 'media', 'port')} must be 0..65535 (0: any), got {ms.port}")
    if ms.public_port is not None and not 1 <= ms.public_port <= 65535:
        raise ConfigError(f"{_where(src, 'media', 'public_port')} must be 1..65535, got {ms.public_port}")
    if not 1 <= ms.audio_workers <= 64:
        raise ConfigError(f"{_where(src, 'media', 'audio_workers')} must be 1..64, got {ms.audio_workers}")
    if not ms.srtp_profile:
        raise ConfigError(f"{_where(src, 'media', 'srtp_profile')} must name an SRTP profile")
    bind = _numeric_ip(ms.bind_address, src, "bind_address")
    if ms.public_address is None:
        if bind.is_unspecified:
            raise ConfigError(
                f"{_where(src, 'media', 'public_address')} required when bind_address is "
                f"{ms.bind_address}: the numeric address remotes send media to "
                "(the host's public IP)"
            )
    elif _numeric_ip(ms.public_address, src, "public_address").is_unspecified:
        raise ConfigError(
            f"{_where(src, 'media', 'public_address')} must be an address remotes can "
            f"send to, not {ms.public_address}"
        )
    return ms


def _processors(value: Any, src: str) -> list[ProcessorSettings]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(
            f"{src}: [[processors]]: must be an array of tables (one [[processors]] "
            f"per processor), got {value!r}"
        )
    out = []
    for i, table in enumerate(value, 1):
        section = f"[[processors]][{i}]"
        if "name" not in table:
            raise ConfigError(
                f"{_where(src, section, 'name')} required: a built-in processor "
                "(transcription, video_analytics, events) or package.module:Class"
            )
        name = _typed(table, "name", str, src, section)
        if not name.strip():
            raise ConfigError(f"{_where(src, section, 'name')} must not be empty")
        options = {k: v for k, v in table.items() if k != "name"}
        out.append(ProcessorSettings(name.strip(), options, f"{src}: {section}"))
    return out


def _output(table: Mapping[str, Any], src: str, base_dir: Path) -> OutputSettings:
    _known(table, ("dir",), src, "output")
    if "dir" not in table:
        raise ConfigError(
            f"{_where(src, 'output', 'dir')} required: the folder that holds one folder per call"
        )
    raw = _typed(table, "dir", str, src, "output")
    if not raw.strip():
        raise ConfigError(f"{_where(src, 'output', 'dir')} must not be empty")
    folder = Path(raw).expanduser()
    folder = folder if folder.is_absolute() else base_dir / folder
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{_where(src, 'output', 'dir')} {str(folder)!r} exists and is not a folder")
    return OutputSettings(folder)


def _control(
    table: Mapping[str, Any], src: str, env: Mapping[str, str] | None, webhook: WebhookSettings
) -> ControlSettings:
    """``[control]``; with ``env`` None the token is not looked up (the client side)."""
    cs = ControlSettings()
    _known(table, ("token_env", "path"), src, "control")
    if "path" in table:
        path = _typed(table, "path", str, src, "control")
        cs.path = "/" + path.strip().strip("/")
        if cs.path == "/" or not path.startswith("/") or any(c in cs.path for c in "{}?#% "):
            raise ConfigError(
                f'{_where(src, "control", "path")} must be a path like "/control", got {path!r}'
            )
    hook = "/" + webhook.path.strip("/")
    for taken, what in (
        (hook, "webhook.path"),
        ("/" + webhook.health_path.strip("/"), "webhook.health_path"),
    ):
        if cs.path == taken or cs.path.startswith(taken.rstrip("/") + "/") or taken.startswith(cs.path + "/"):
            raise ConfigError(f"{_where(src, 'control', 'path')} {cs.path!r} overlaps {what} {taken!r}")
    if "token_env" in table:
        name = _typed(table, "token_env", str, src, "control")
        if not name:
            raise ConfigError(f"{_where(src, 'control', 'token_env')} must name an environment variable")
        cs.token_env = name
        if env is None:
            return cs
        token = env.get(name)
        if not token:
            raise ConfigError(
                f"{_where(src, 'control', 'token_env')} names {name}, which is not set "
                "(it holds the control API's bearer token)"
            )
        token = token.strip()
        if len(token) < MIN_CONTROL_TOKEN_LENGTH or any(c.isspace() for c in token):
            raise ConfigError(
                f"{_where(src, 'control', 'token_env')} ${name} must hold at least "
                f"{MIN_CONTROL_TOKEN_LENGTH} characters without spaces (e.g. from "
                'python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        cs.token_env, cs.token = name, token
    return cs


def _media_sections(cfg: BotConfig, data: Mapping[str, Any], env: Mapping[str, str], base_dir: Path) -> None:
    src = cfg.source
    media = _table(data, "media", src)
    if media is not None:
        cfg.media = _media(media, src)
    if "processors" in data:
        cfg.processors = _processors(data["processors"], src)
        if cfg.processors and cfg.media is None:
            raise ConfigError(
                f"{src}: [[processors]]: processors need app-hosted media: add a [media] section"
            )
    output = _table(data, "output", src)
    if output is not None:
        cfg.output = _output(output, src, base_dir)
        if cfg.media is None:
            raise ConfigError(
                f"{src}: [output] dir: per-call output needs app-hosted media: add a [media] section"
            )
    control = _table(data, "control", src)
    if control is not None:
        cfg.control = _control(control, src, env, cfg.webhook)


def read_control_settings(path: str | os.PathLike[str]) -> tuple[WebhookSettings, ControlSettings]:
    """The listener (``[webhook]``) and ``[control]`` settings of a config file, for the control
    API's client (``mediabot join`` / ``calls`` / ``hangup``): nothing else is checked, no Graph
    credentials are needed, and the token is not looked up (``token_env`` names where it is)."""
    src = str(path)
    try:
        data = tomllib.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{src}: cannot read config file: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{src}: not valid TOML: {exc}") from exc
    webhook = WebhookSettings()
    table = _table(data, "webhook", src)
    if table is not None:
        _fill(webhook, table, "webhook", src)
    control = _table(data, "control", src)
    if control is None:
        raise ConfigError(f"{src}: [control]: no [control] section: the bot serves no control API")
    settings = _control(control, src, None, webhook)
    if settings.token_env is None:
        raise ConfigError(f"{src}: [control] token_env: not set: the bot serves no control API")
    return webhook, settings

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
    # token_env = "MEDIABOT_GRAPH_TOKEN"               # a fixed token (emulator) instead of msal

    [webhook]
    public_url = "https://bot.contoso.com/api/calls"   # the callbackUri Graph posts to
    host = "0.0.0.0"
    port = 9441
    path = "/api/calls"

    [calls]
    incoming = "answer"            # answer | reject | redirect
    modalities = ["audio"]
    keepalive_interval_s = 900
"""

from __future__ import annotations

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
    on_shutdown: str = "hang_up"            # hang_up | keep (another instance adopts the calls)
    adopt_unknown_calls: bool = True


@dataclass
class BotConfig:
    app_id: str
    tenant_id: str
    log_level: str = "INFO"
    graph: GraphSettings = field(default_factory=GraphSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    source: str = "<config>"


_SECRET_KEYS = {"client_secret", "certificate_pem", "static_token", "token", "secret", "password"}
_TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool}


def _fill(obj: Any, table: Mapping[str, Any], section: str, src: str) -> None:
    known = {f.name: f for f in fields(obj) if f.name not in ("client_secret", "certificate_pem", "static_token")}
    for key, value in table.items():
        if key in _SECRET_KEYS:
            raise ConfigError(f"{src}: [{section}] {key}: secrets do not belong in the config file; "
                              f"put it in the environment variable named by {section}.{key}_env")
        if key not in known:
            raise ConfigError(f"{src}: [{section}] unknown setting {key!r} "
                              f"(known: {', '.join(sorted(known))})")
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


def config_from_mapping(data: Mapping[str, Any], *, env: Mapping[str, str], source: str = "<config>",
                        base_dir: Path | None = None) -> BotConfig:
    unknown = set(data) - {"bot", "graph", "webhook", "calls"}
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)} (known: bot, graph, webhook, calls)")
    bot = data.get("bot", {})
    if not isinstance(bot, dict):
        raise ConfigError(f"{source}: [bot] must be a table")
    for key in ("app_id", "tenant_id"):
        if not isinstance(bot.get(key), str) or not bot.get(key):
            raise ConfigError(f"{source}: [bot] {key} is required (the bot's "
                              f"{'Microsoft App ID' if key == 'app_id' else 'Entra tenant id'})")
    extra = set(bot) - {"app_id", "tenant_id", "log_level"}
    if extra:
        raise ConfigError(f"{source}: [bot] unknown setting(s) {sorted(extra)} (known: app_id, log_level, tenant_id)")
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
    return cfg


def _check(cfg: BotConfig, env: Mapping[str, str], base_dir: Path) -> None:
    src, g, w, c = cfg.source, cfg.graph, cfg.webhook, cfg.calls
    for name, url in (("graph.base_url", g.base_url), ("graph.authority_host", g.authority_host),
                      ("webhook.openid_configuration_url", w.openid_configuration_url)):
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{src}: {name} must be an http(s) URL, not {url!r}")
    if w.public_url is not None and not (
            w.public_url.startswith("https://")
            or w.public_url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]"))):
        raise ConfigError(f"{src}: webhook.public_url must be https (Graph requires it for callbackUri; "
                          "plain http only to a loopback address, for the local emulator)")
    if not 0 <= w.port <= 65535:
        raise ConfigError(f"{src}: webhook.port must be 0-65535")
    if w.max_body_bytes < 1024:
        raise ConfigError(f"{src}: webhook.max_body_bytes must be at least 1024")
    if c.incoming not in ("answer", "reject", "redirect"):
        raise ConfigError(f"{src}: calls.incoming must be answer, reject or redirect, not {c.incoming!r}")
    if c.incoming == "redirect" and not c.redirect_to:
        raise ConfigError(f"{src}: calls.incoming = \"redirect\" needs calls.redirect_to (user ids)")
    if c.reject_reason.lower() not in ("none", "busy", "forbidden"):
        raise ConfigError(f"{src}: calls.reject_reason must be none, busy or forbidden")
    if c.on_shutdown not in ("hang_up", "keep"):
        raise ConfigError(f"{src}: calls.on_shutdown must be hang_up or keep")
    if c.roster not in ("auto", "full", "partial"):
        raise ConfigError(f"{src}: calls.roster must be auto, full or partial")
    bad = [x for x in c.modalities if x not in ("audio", "video", "videoBasedScreenSharing")]
    if bad or not c.modalities:
        raise ConfigError(f"{src}: calls.modalities must be a non-empty subset of audio, video, videoBasedScreenSharing")
    if c.keepalive_interval_s <= 0 or c.keepalive_interval_s > 45 * 60:
        raise ConfigError(f"{src}: calls.keepalive_interval_s must be in (0, 2700]: calls without a keepAlive "
                          "for 45 minutes are ended")
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
        raise ConfigError(f"{src}: no Graph credentials: set the environment variable {g.client_secret_env} "
                          "to the app's client secret, or configure graph.certificate_path + "
                          "graph.certificate_thumbprint, or graph.token_env")
    g.client_secret = secret

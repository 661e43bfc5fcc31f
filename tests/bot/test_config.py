"""TOML config: defaults, secrets from the environment, clear errors."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_config

GOOD = """
[bot]
app_id = "2891555a-92ff-42e6-80fa-6e1300c6b5c6"
tenant_id = "86dc81db-c112-4228-9222-63f3esaa1edb"

[graph]
base_url = "https://graph.microsoft.com/beta"

[webhook]
public_url = "https://bot.contoso.com/api/calls"
port = 9555

[calls]
incoming = "reject"
reject_reason = "forbidden"
keepalive_interval_s = 600
"""


def write(tmp_path, text: str):
    p = tmp_path / "bot.toml"
    p.write_text(text)
    return p


def test_good_config_with_secret_from_env(tmp_path):
    cfg = load_config(write(tmp_path, GOOD), env={"MEDIABOT_CLIENT_SECRET": "s3cret"})
    assert cfg.app_id == "2891555a-92ff-42e6-80fa-6e1300c6b5c6"
    assert cfg.graph.base_url.endswith("/beta") and cfg.graph.client_secret == "s3cret"
    assert cfg.webhook.port == 9555 and cfg.webhook.path == "/api/calls"
    assert cfg.calls.incoming == "reject" and cfg.calls.keepalive_interval_s == 600.0
    assert cfg.webhook.openid_configuration_url == "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"
    assert "s3cret" not in repr(cfg)


def test_certificate_from_file(tmp_path):
    (tmp_path / "bot.pem").write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    text = GOOD.replace('[graph]', '[graph]\ncertificate_path = "bot.pem"\ncertificate_thumbprint = "AB12"')
    cfg = load_config(write(tmp_path, text), env={})
    assert "PRIVATE KEY" in cfg.graph.certificate_pem and cfg.graph.client_secret is None


def test_static_token_for_the_emulator(tmp_path):
    text = GOOD.replace('[graph]', '[graph]\ntoken_env = "EMU_TOKEN"')
    assert load_config(write(tmp_path, text), env={"EMU_TOKEN": "t"}).graph.static_token == "t"


@pytest.mark.parametrize("mutate,env,message", [
    (lambda t: t.replace('app_id = "2891555a-92ff-42e6-80fa-6e1300c6b5c6"\n', ""), {"MEDIABOT_CLIENT_SECRET": "x"}, "app_id is required"),
    (lambda t: t, {}, "MEDIABOT_CLIENT_SECRET"),
    (lambda t: t.replace("[graph]", '[graph]\nclient_secret = "oops"'), {"MEDIABOT_CLIENT_SECRET": "x"}, "secrets do not belong"),
    (lambda t: t.replace("port = 9555", 'port = "x"'), {"MEDIABOT_CLIENT_SECRET": "x"}, "webhook] port must be of type int"),
    (lambda t: t.replace("port = 9555", "prot = 9555"), {"MEDIABOT_CLIENT_SECRET": "x"}, "unknown setting 'prot'"),
    (lambda t: t.replace('incoming = "reject"', 'incoming = "ignore"'), {"MEDIABOT_CLIENT_SECRET": "x"}, "calls.incoming must be"),
    (lambda t: t.replace('incoming = "reject"', 'incoming = "redirect"'), {"MEDIABOT_CLIENT_SECRET": "x"}, "redirect_to"),
    (lambda t: t.replace("https://bot.contoso.com", "http://bot.contoso.com"), {"MEDIABOT_CLIENT_SECRET": "x"}, "must be https"),
    (lambda t: t.replace("keepalive_interval_s = 600", "keepalive_interval_s = 4000"), {"MEDIABOT_CLIENT_SECRET": "x"}, "45 minutes"),
    (lambda t: t + "\n[extra]\n", {"MEDIABOT_CLIENT_SECRET": "x"}, "unknown section"),
    (lambda t: t.replace("[calls]", "[calls\n"), {"MEDIABOT_CLIENT_SECRET": "x"}, "not valid TOML"),
    (lambda t: t.replace("[graph]", '[graph]\ncertificate_path = "missing.pem"\ncertificate_thumbprint = "AB"'), {}, "missing.pem"),
    (lambda t: t.replace("[graph]", '[graph]\ntoken_env = "NOPE"'), {}, "NOPE, which is not set"),
])
def test_clear_errors(tmp_path, mutate, env, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, mutate(GOOD)), env=env)
    assert message in str(info.value)
    assert str(tmp_path / "bot.toml") in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.toml", env={})


def test_msal_settings_for_another_authority(tmp_path):
    (tmp_path / "emulator-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    text = GOOD.replace('[graph]', '[graph]\nauthority_host = "https://127.0.0.1:9445"\n'
                                   'instance_discovery = false\nca_bundle = "emulator-ca.pem"')
    cfg = load_config(write(tmp_path, text), env={"MEDIABOT_CLIENT_SECRET": "s"})
    assert cfg.graph.authority_host == "https://127.0.0.1:9445" and cfg.graph.instance_discovery is False
    assert cfg.graph.ca_bundle == str(tmp_path / "emulator-ca.pem")       # relative to the config file
    defaults = load_config(write(tmp_path, GOOD), env={"MEDIABOT_CLIENT_SECRET": "s"}).graph
    assert defaults.instance_discovery is True and defaults.ca_bundle is None


@pytest.mark.parametrize("line,message", [
    ('ca_bundle = "nope.pem"', "graph.ca_bundle"),
    ('instance_discovery = "no"', "instance_discovery must be of type bool"),
    ('authority_host = "http://127.0.0.1:9440"', "authority_host must be an https URL"),
])
def test_msal_settings_errors(tmp_path, line, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, GOOD.replace("[graph]", f"[graph]\n{line}")), env={"MEDIABOT_CLIENT_SECRET": "s"})

"""`mediabot emulator`'s command line: what it refuses, and the bot configuration it writes."""

from __future__ import annotations

import os
import sys
from dataclasses import fields

from bot.cli import main as mediabot
from bot.config import GraphSettings, config_from_mapping
from bot.emulator import GraphEmulator
from bot.emulator.cli import DEFAULT_WEBHOOK, SECRET_ENV, build_parser, webhook_of, write_bot_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_a_bad_script_is_refused_with_where_and_why(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[meeting]\nduration_s = 5\n[[participant]]\nname = \"Ann\"\njoin_s = -1\n")
    assert mediabot(["emulator", "--script", str(bad), "--port", "0", "--tls-port", "0"]) == 2
    assert "participant[0].join_s: must be >= 0.0" in capsys.readouterr().err
    assert mediabot(["emulator", "--script", str(tmp_path / "none.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_the_webhook_comes_from_the_flag_else_from_the_written_config():
    parse = build_parser().parse_args
    assert webhook_of(parse(["--webhook", "https://bot.example/api/calls"])) == "https://bot.example/api/calls"
    assert webhook_of(parse(["--bot-config", "b.toml"])) == DEFAULT_WEBHOOK
    assert webhook_of(parse([])) is None
    args = parse([])
    assert args.end_after_script is True and parse(["--no-end-after-script"]).end_after_script is False


async def test_the_written_bot_config_trusts_the_emulator(tmp_path):
    path = tmp_path / "cfg" / "bot.toml"
    async with GraphEmulator(tls_port=0) as emu:
        written = write_bot_config(str(path), emu, "http://127.0.0.1:9555/hook")
        assert written == {"config": str(path), "env": f"{path}.env", "ca": f"{path}.ca.pem"}
        data = tomllib.loads(path.read_text())
        assert data["bot"] == {"app_id": emu.app_id, "tenant_id": emu.tenant_id}
        assert data["graph"]["base_url"] == emu.graph_url and data["graph"]["beta_base_url"] == emu.beta_url
        assert data["graph"]["authority_host"] == emu.tls_base_url
        assert data["graph"]["instance_discovery"] is False
        assert open(data["graph"]["ca_bundle"]).read() == open(emu.ca_cert_path).read()
        assert data["webhook"] == {"openid_configuration_url": emu.openid_configuration_url,
                                   "host": "127.0.0.1", "port": 9555, "path": "/hook",
                                   "public_url": "http://127.0.0.1:9555/hook"}
        # the secret only in PATH.env, readable by the owner only
        assert emu.client_secret not in path.read_text()
        assert path.with_name("bot.toml.env").read_text() == f"{SECRET_ENV}={emu.client_secret}\n"
        assert os.stat(f"{path}.env").st_mode & 0o077 == 0
        assert data["media"] == {"bind_address": "127.0.0.1", "port": 0}
        # what `mediabot run --config` reads from it (msal's instance_discovery and ca_bundle
        # left out while bot/config.py does not know them yet)
        for key in {"instance_discovery", "ca_bundle"} - {f.name for f in fields(GraphSettings)}:
            del data["graph"][key]
        cfg = config_from_mapping(data, env={SECRET_ENV: emu.client_secret}, source=str(path),
                                  base_dir=path.parent)
        assert cfg.graph.client_secret == emu.client_secret and cfg.graph.base_url == emu.graph_url
        assert cfg.webhook.public_url == "http://127.0.0.1:9555/hook" and cfg.webhook.port == 9555
        assert cfg.media is not None and cfg.media.bind_address == "127.0.0.1"

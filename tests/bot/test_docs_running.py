"""The configuration examples of docs/signaling.md "Running" load as they are: the Graph one, and
the local-emulator one with every address and the msal settings a bot needs there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

from bot.config import config_from_mapping

DOC = Path(__file__).resolve().parents[2] / "docs" / "signaling.md"


def running_examples() -> list[dict]:
    text = DOC.read_text()
    section = text.split("## Running", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)
    return [tomllib.loads(b) for b in blocks if "[bot]" in b]


def test_graph_example_loads():
    cfg = config_from_mapping(running_examples()[0], env={"MEDIABOT_CLIENT_SECRET": "s"})
    assert cfg.graph.base_url == "https://graph.microsoft.com/v1.0" and cfg.webhook.host == "0.0.0.0"
    assert cfg.webhook.public_url.startswith("https://")


def test_emulator_example_names_every_address_and_the_msal_settings(tmp_path):
    data = running_examples()[1]
    (tmp_path / data["graph"]["ca_bundle"]).write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = config_from_mapping(data, env={"MEDIABOT_CLIENT_SECRET": "s"}, base_dir=tmp_path)
    assert cfg.graph.base_url.startswith("http://127.0.0.1") and cfg.graph.beta_base_url.endswith("/beta")
    assert cfg.graph.authority_host.startswith("https://127.0.0.1") and cfg.graph.instance_discovery is False
    assert Path(cfg.graph.ca_bundle).is_file() and cfg.graph.client_secret == "s" and cfg.graph.static_token is None
    assert cfg.webhook.openid_configuration_url.startswith("http://127.0.0.1")
    assert cfg.webhook.host == "127.0.0.1" and cfg.webhook.public_url.startswith("http://127.0.0.1")


@pytest.mark.parametrize("setting", ["webhook.openid_configuration_url", "webhook.host", "graph.base_url",
                                     "graph.token_env", "graph.authority_host", "graph.instance_discovery",
                                     "graph.ca_bundle"])
def test_running_section_mentions(setting):
    section = DOC.read_text().split("## Running", 1)[1].split("\n## ", 1)[0]
    key = setting.split(".")[1]
    assert key in section, setting

"""``[media]``, ``[[processors]]``, ``[output]``, ``[control]``: defaults, and every missing or
wrong key named with its file and key by ``mediabot run`` (a real process), which exits 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_config, read_control_settings
from bot.media import media_plan

BASE = """
[bot]
app_id = "2891555a-92ff-42e6-80fa-6e1300c6b5c6"
tenant_id = "86dc81db-c112-4228-9222-63f3esaa1edb"

[graph]
token_env = "MEDIABOT_TEST_GRAPH_TOKEN"

[webhook]
host = "127.0.0.1"
port = 0
public_url = "https://bot.contoso.com/api/calls"
"""

MEDIA = """
[media]
bind_address = "127.0.0.1"
port = 0
"""

TOKEN = "0123456789abcdef-control"
ENV = {"MEDIABOT_TEST_GRAPH_TOKEN": "graph-token", "MEDIABOT_TEST_CONTROL": TOKEN}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bot.toml"
    p.write_text(text)
    return p


def test_defaults_and_every_key(tmp_path):
    cfg = load_config(write(tmp_path, BASE + """
[media]
bind_address = "0.0.0.0"
public_address = "203.0.113.10"

[[processors]]
name = "events"
speakers = true

[[processors]]
name = "video_analytics"
size = [320, 180]

[output]
dir = "recordings"

[control]
token_env = "MEDIABOT_TEST_CONTROL"
"""), env=ENV)
    ms = cfg.media
    assert ms is not None
    assert (ms.bind_address, ms.port, ms.public_address, ms.public_port) == ("0.0.0.0", 8445, "203.0.113.10", None)
    assert ms.srtp_profile == "AES_CM_128_HMAC_SHA1_80"
    assert ms.audio_workers == max(1, min(os.cpu_count() or 1, 4))
    assert (ms.mixed, ms.video, ms.screen_share) == (False, True, True)
    assert [(p.name, p.options) for p in cfg.processors] == [("events", {"speakers": True}),
                                                             ("video_analytics", {"size": [320, 180]})]
    assert cfg.processors[1].where == f"{tmp_path / 'bot.toml'}: [[processors]][2]"
    assert cfg.output.dir == tmp_path / "recordings"          # relative to the config file
    assert cfg.control.enabled and cfg.control.token == TOKEN and cfg.control.path == "/control"
    assert TOKEN not in repr(cfg)
    plan = media_plan(cfg)
    assert plan is not None and len(plan.factories) == 2
    made = plan.processors(None)   # fresh objects per call, with the file's options
    assert [type(p).__name__ for p in made] == ["EventLog", "VideoAnalytics"]
    assert made[0].speakers is True and plan.processors(None)[0] is not made[0]


def test_without_the_sections_media_is_service_hosted(tmp_path):
    cfg = load_config(write(tmp_path, BASE), env=ENV)
    assert cfg.media is None and cfg.processors == [] and cfg.output.dir is None
    assert not cfg.control.enabled
    assert media_plan(cfg) is None


def test_control_without_token_env_is_off(tmp_path):
    cfg = load_config(write(tmp_path, BASE + '\n[control]\npath = "/ops"\n'), env=ENV)
    assert not cfg.control.enabled and cfg.control.path == "/ops"


def test_the_client_reads_listener_and_control_without_graph_credentials(tmp_path):
    path = write(tmp_path, BASE.replace("port = 0", "port = 9555") + '\n[control]\ntoken_env = "OPS"\npath = "/ops/"\n')
    with pytest.raises(ConfigError):
        load_config(path, env={})          # the bot needs its Graph credentials ...
    webhook, control = read_control_settings(path)     # ... the client does not
    assert (webhook.host, webhook.port, control.path, control.token_env) == ("127.0.0.1", 9555, "/ops", "OPS")
    with pytest.raises(ConfigError, match=r"bot.toml: \[control\]: no \[control\] section"):
        read_control_settings(write(tmp_path, BASE))


# (what to add to BASE, the key's words in the message after "FILE: ")
CASES = [
    # [media]
    (MEDIA.replace("port = 0", "port = 70000"), "[media] port: must be 0..65535 (0: any), got 70000"),
    (MEDIA.replace("port = 0", 'port = "8445"'), "[media] port: must be an integer, got '8445'"),
    (MEDIA.replace("port = 0", "port = true"), "[media] port: must be an integer, got True"),
    ("[media]\n", "[media] public_address: required when bind_address is 0.0.0.0"),
    ('[media]\nbind_address = "::"\n', "[media] public_address: required when bind_address is ::"),
    ('[media]\npublic_address = "bot.contoso.com"\n', "[media] public_address: must be a numeric IPv4 or IPv6"),
    ('[media]\npublic_address = "0.0.0.0"\n', "[media] public_address: must be an address remotes can send to"),
    ('[media]\nbind_address = "localhost"\n', "[media] bind_address: must be a numeric IPv4 or IPv6"),
    (MEDIA + "public_port = 0\n", "[media] public_port: must be 1..65535, got 0"),
    (MEDIA + "public_port = 65536\n", "[media] public_port: must be 1..65535, got 65536"),
    (MEDIA + 'srtp_profile = "AES_CM_256"\n', "[media] srtp_profile: unknown SRTP profile 'AES_CM_256'"),
    (MEDIA + "srtp_profile = 80\n", "[media] srtp_profile: must be a string"),
    (MEDIA + "audio_workers = 0\n", "[media] audio_workers: must be 1..64, got 0"),
    (MEDIA + "audio_workers = 2.5\n", "[media] audio_workers: must be an integer"),
    (MEDIA + 'mixed = "yes"\n', "[media] mixed: must be true or false, got 'yes'"),
    (MEDIA + "video = 1\n", "[media] video: must be true or false, got 1"),
    (MEDIA + 'screen_share = "no"\n', "[media] screen_share: must be true or false"),
    (MEDIA + "prot = 8445\n", "[media] prot: unknown setting (known: bind_address, port"),
    ("^media = 8445\n", "[media]: must be a table"),        # ^: before the first table
    # [[processors]]
    (MEDIA + "[[processors]]\nspeakers = true\n", "[[processors]][1] name: required"),
    (MEDIA + "[[processors]]\nname = 3\n", "[[processors]][1] name: must be a string, got 3"),
    (MEDIA + '[[processors]]\nname = ""\n', "[[processors]][1] name: must not be empty"),
    (MEDIA + '[[processors]]\nname = "nope"\n', "[[processors]][1] name: unknown processor 'nope'"),
    (MEDIA + '[[processors]]\nname = "events"\n[[processors]]\nname = "no_such_pkg.mod:Proc"\n',
     "[[processors]][2] name: processor 'no_such_pkg.mod:Proc': cannot import no_such_pkg.mod"),
    (MEDIA + '[[processors]]\nname = "json:JSONDecoder"\n', "[[processors]][1] name: processor 'json:JSONDecoder': "
     "JSONDecoder is not a mediacore.Processor"),
    (MEDIA + '[[processors]]\nname = "events"\nfoo = 1\n', "[[processors]][1] foo: not an option of processor "
     "'events' (options: speakers, file)"),
    (MEDIA + '[[processors]]\nname = "video_analytics"\nsize = [1]\n', "[[processors]][1]: processor "
     "'video_analytics': size must be [width, height]"),
    (MEDIA + '[processors]\nname = "events"\n', "[[processors]]: must be an array of tables"),
    ('[[processors]]\nname = "events"\n', "[[processors]]: processors need app-hosted media: add a [media]"),
    # [output]
    (MEDIA + "[output]\n", "[output] dir: required"),
    (MEDIA + "[output]\ndir = 5\n", "[output] dir: must be a string, got 5"),
    (MEDIA + '[output]\ndir = ""\n', "[output] dir: must not be empty"),
    (MEDIA + '[output]\ndir = "bot.toml"\n', "[output] dir: '{dir}/bot.toml' exists and is not a folder"),
    (MEDIA + '[output]\ndir = "bot.toml/calls"\n', "[output] dir: cannot create '{dir}/bot.toml/calls'"),
    (MEDIA + '[output]\ndir = "out"\nformat = "json"\n', "[output] format: unknown setting (known: dir)"),
    ('[output]\ndir = "out"\n', "[output] dir: per-call output needs app-hosted media"),
    # [control]
    ('[control]\ntoken_env = "MEDIABOT_TEST_UNSET"\n', "[control] token_env: names MEDIABOT_TEST_UNSET, which is not set"),
    ('[control]\ntoken_env = "MEDIABOT_TEST_GRAPH_TOKEN"\n', "[control] token_env: $MEDIABOT_TEST_GRAPH_TOKEN must "
     "hold at least 16 characters"),
    ("[control]\ntoken_env = 5\n", "[control] token_env: must be a string, got 5"),
    ('[control]\ntoken_env = ""\n', "[control] token_env: must name an environment variable"),
    ('[control]\ntoken = "0123456789abcdef0"\n', "[control] token: secrets do not belong in the config file"),
    ('[control]\ntoken_env = "MEDIABOT_TEST_CONTROL"\npath = "control"\n', "[control] path: must be a path like"),
    ('[control]\ntoken_env = "MEDIABOT_TEST_CONTROL"\npath = "/api/calls/ops"\n',
     "[control] path: '/api/calls/ops' overlaps webhook.path '/api/calls'"),
    ('[control]\ntoken_env = "MEDIABOT_TEST_CONTROL"\npath = "/health"\n',
     "[control] path: '/health' overlaps webhook.health_path '/health'"),
    ('[control]\ntoken_env = "MEDIABOT_TEST_CONTROL"\nport = 9000\n', "[control] port: unknown setting"),
]


def _ids() -> list[str]:
    return [f"{i:02d}-" + msg.split(":")[0].strip("[]").replace("]", "").replace("[", "").replace(" ", "-")
            for i, (_, msg) in enumerate(CASES)]


@pytest.mark.parametrize("extra,message", CASES, ids=_ids())
def test_mediabot_run_names_file_and_key_and_exits_2(tmp_path, extra, message):
    path = write(tmp_path, extra[1:] + BASE if extra.startswith("^") else BASE + extra)
    expected = f"{path}: " + message.replace("{dir}", str(tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIABOT_")}
    env.update(ENV)
    proc = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert proc.stderr.startswith("mediabot: config error: ")


def test_a_taken_media_port_exits_1_after_the_config_is_accepted(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        path = write(tmp_path, BASE + MEDIA.replace("port = 0", f"port = {port}"))
        env = dict(os.environ, **ENV)
        proc = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(path)], env=env,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"cannot open the media port udp 127.0.0.1:{port}" in proc.stderr


def test_mediabot_run_check_accepts_a_good_file_without_binding(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:   # --check binds nothing
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        path = write(tmp_path, BASE + MEDIA.replace("port = 0", f"port = {port}") +
                     '[[processors]]\nname = "events"\n[output]\ndir = "out"\n'
                     '[control]\ntoken_env = "MEDIABOT_TEST_CONTROL"\n')
        proc = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(path), "--check"],
                              env=dict(os.environ, **ENV), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{path}: ok (app-hosted media, 1 processor(s) per call; control API at /control)\n"


def test_a_taken_webhook_port_exits_1_without_hanging_on_the_open_media_host(tmp_path):
    with socket.socket() as taken, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        probe.bind(("127.0.0.1", 0))
        media_port = probe.getsockname()[1]
        probe.close()                                  # a free UDP port for the bot's media
        path = write(tmp_path, BASE.replace("port = 0", f"port = {taken.getsockname()[1]}")
                     + MEDIA.replace("port = 0", f"port = {media_port}"))
        proc = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(path)],
                              env=dict(os.environ, **ENV), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "cannot serve the webhook on 127.0.0.1" in proc.stderr
    assert f"app-hosted media on udp 127.0.0.1:{media_port}" in proc.stderr    # it had been opened

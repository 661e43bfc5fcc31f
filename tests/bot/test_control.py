"""The control API on the bot's listener (real sockets, the in-process Graph emulator behind the
bot): bearer tokens, bodies, joining, listing, hanging up; and its client, ``mediabot join`` /
``calls`` / ``hangup`` with their exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import aiohttp
import pytest

from bot.app import Bot
from bot.cli import main as cli_main
from bot.config import config_from_mapping
from bot.control import ControlApi, jsonable
from bot.emulator import GraphEmulator, ServiceOptions
from bot.media import CallMediaProvider
from mediacore import MediaHost

TOKEN = "s3cret-control-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(predicate, timeout_s: float = 10.0) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout_s)


@contextlib.asynccontextmanager
async def running_bot(tmp_path, media=None):
    """The in-process Graph emulator, a Bot with the control API under /ops on a real port, an
    HTTP client, and a config file for the command-line client."""
    emu = GraphEmulator(options=ServiceOptions(allow_http_callbacks=True))   # a loopback http bot
    await emu.start()
    port = free_port()
    webhook = f"http://127.0.0.1:{port}/api/calls"
    config = config_from_mapping({
        "bot": {"app_id": emu.app_id, "tenant_id": emu.tenant_id},
        "graph": {"base_url": emu.graph_url, "token_env": "GRAPH_TOKEN"},
        "webhook": {"public_url": webhook, "host": "127.0.0.1", "port": port,
                    "openid_configuration_url": emu.openid_configuration_url},
        "control": {"token_env": "CONTROL_TOKEN", "path": "/ops"},
    }, env={"GRAPH_TOKEN": emu.access_token(), "CONTROL_TOKEN": TOKEN})
    bot = Bot(config, media=media)
    control = ControlApi(bot, token=config.control.token, path=config.control.path)
    control.install()
    await bot.start()
    cfg = tmp_path / "bot.toml"
    cfg.write_text(f'[webhook]\nhost = "127.0.0.1"\nport = {port}\n[control]\ntoken_env = "CONTROL_TOKEN"\npath = "/ops"\n')
    try:
        async with aiohttp.ClientSession() as http:
            yield emu, bot, control, http, f"http://127.0.0.1:{port}/ops", cfg
    finally:
        await bot.stop()
        await emu.stop()


@pytest.fixture
async def world(tmp_path):
    async with running_bot(tmp_path) as w:
        yield w


@pytest.fixture
async def media_world(tmp_path):
    host = MediaHost("127.0.0.1", 0, audio_workers=1)
    provider = CallMediaProvider(host)
    try:
        async with running_bot(tmp_path, provider) as w:
            yield (*w, host)
    finally:
        provider.close()
        host.close()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN.upper()}"},
])
async def test_refuses_missing_and_wrong_tokens(world, headers):
    emu, bot, control, http, base, _ = world
    meeting = emu.create_meeting()
    for method, url, body in (("GET", "/calls", None), ("POST", "/calls", {"joinUrl": meeting.join_web_url}),
                              ("GET", "/calls/x", None), ("DELETE", "/calls/x", None)):
        async with http.request(method, base + url, json=body, headers=headers) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"] == "Bearer"
            assert (await resp.json())["error"]["code"] == "unauthorized"
    assert bot.calls == {}                    # nothing was joined
    assert control.refusals.counts["401 auth"] == 4


async def test_refusals_are_logged_once_per_window(world, caplog):
    emu, bot, control, http, base, _ = world
    with caplog.at_level(logging.DEBUG, logger="bot.control"):
        for _ in range(5):
            async with http.get(base + "/calls", headers=auth("wrong-token-wrong-token")) as resp:
                assert resp.status == 401
    loud = [r for r in caplog.records if r.name == "bot.control" and r.levelno == logging.WARNING]
    quiet = [r for r in caplog.records if r.name == "bot.control" and r.levelno == logging.DEBUG]
    assert len(loud) == 1 and "401" in loud[0].getMessage() and "wrong bearer token" in loud[0].getMessage()
    assert TOKEN not in caplog.text and "wrong-token-wrong-token" not in caplog.text
    assert len(quiet) == 4


async def test_the_webhook_routes_are_untouched(world):
    emu, bot, control, http, base, _ = world
    port = bot.webhook.port
    async with http.get(f"http://127.0.0.1:{port}/health") as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "ok"
    async with http.post(f"http://127.0.0.1:{port}/api/calls", json={"value": []}, headers=auth()) as resp:
        assert resp.status == 401          # the callback's JWT check, not the control token
    async with http.get(f"http://127.0.0.1:{port}/control/calls", headers=auth()) as resp:
        assert resp.status == 404          # only under [control] path


@pytest.mark.parametrize("body,reason", [
    (b"{", "body is not JSON"),
    (b"\xff\xfe", "body is not JSON"),
    (b"[]", "body must be a JSON object"),
    (b'"https://teams.microsoft.com/l/meetup-join/x"', "body must be a JSON object"),
    (b"{}", "joinUrl (or joinMeetingId with passcode) is required"),
    (b'{"joinUrl": ""}', "joinUrl must be a non-empty string"),
    (b'{"joinUrl": 5}', "joinUrl must be a non-empty string"),
    (b'{"joinURL": "https://teams.microsoft.com/l/meetup-join/x"}', "unknown field(s) 'joinURL'"),
    (b'{"joinUrl": "https://a", "joinMeetingId": "123"}', "not both"),
    (b'{"passcode": "abc"}', "passcode goes with joinMeetingId"),
    (b'{"joinMeetingId": "abc"}', "joinMeetingId must be the meeting's numeric id"),
    (b'{"joinUrl": "not a url"}', "not a Teams join URL"),
    (b'{"joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0"}', "no context"),
])
async def test_bad_bodies_are_400_with_a_reason(world, body, reason):
    emu, bot, control, http, base, _ = world
    async with http.post(base + "/calls", data=body, headers={**auth(), "Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["code"] == "badRequest" and reason in error["message"]
    assert bot.calls == {} and not emu.service.calls


async def test_oversized_body_is_413(world):
    emu, bot, control, http, base, _ = world
    body = b'{"joinUrl": "' + b"a" * 20000 + b'"}'
    async with http.post(base + "/calls", data=body, headers=auth()) as resp:
        assert resp.status == 413


async def test_unknown_calls_are_404(world):
    emu, bot, control, http, base, _ = world
    for method in ("GET", "DELETE"):
        async with http.request(method, base + "/calls/0a1b2c3d-0000-4000-8000-000000000000", headers=auth()) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "notFound"


async def test_join_list_and_hang_up(world):
    emu, bot, control, http, base, _ = world
    meeting = emu.create_meeting(subject="ops")
    alice = emu.add_participant(meeting.id, "Alice")
    emu.add_participant(meeting.id, "Bob")
    async with http.post(base + "/calls", json={"joinUrl": meeting.join_web_url}, headers=auth()) as resp:
        assert resp.status == 201
        created = await resp.json()
        assert resp.headers["Location"] == f"/ops/calls/{created['id']}"
    call_id = created["id"]
    assert created["state"] in ("establishing", "established")
    call = next(iter(bot.calls.values()))
    assert call.id == call_id
    await until(lambda: call.state == "established" and len(call.participants) >= 3)
    async with http.get(base + "/calls", headers=auth()) as resp:
        assert resp.status == 200
        (listed,) = (await resp.json())["calls"]
    assert listed["id"] == call_id and listed["state"] == "established" and listed["direction"] == "outgoing"
    assert {p["displayName"] for p in listed["participants"]} == {"Alice", "Bob"}   # not the bot itself
    assert alice.id in {p["id"] for p in listed["participants"]}
    assert listed["media"] is None                   # service-hosted: no media statistics
    async with http.get(base + f"/calls/{call_id.upper()}", headers=auth()) as resp:
        assert resp.status == 200 and (await resp.json())["id"] == call_id
    async with http.delete(base + f"/calls/{call_id}", headers=auth()) as resp:
        assert resp.status == 202
        assert (await resp.json())["id"] == call_id
    await asyncio.wait_for(call.wait_terminated(), 10)
    await until(lambda: not bot.calls)
    async with http.get(base + "/calls", headers=auth()) as resp:
        assert (await resp.json())["calls"] == []


async def test_join_by_meeting_id(world):
    emu, bot, control, http, base, _ = world
    meeting = emu.create_meeting()
    body = {"joinMeetingId": meeting.join_meeting_id}
    if meeting.passcode:
        body["passcode"] = meeting.passcode
    async with http.post(base + "/calls", json=body, headers=auth()) as resp:
        assert resp.status == 201, await resp.text()
        call_id = (await resp.json())["id"]
    call = bot.calls[next(iter(bot.calls))]
    assert call.id == call_id
    await asyncio.wait_for(call.wait_for_state("established"), 10)


async def test_graph_refusal_is_502_with_graphs_answer(world):
    emu, bot, control, http, base, _ = world
    async with http.post(base + "/calls", json={"joinMeetingId": "99999999999"}, headers=auth()) as resp:
        assert resp.status == 502
        error = (await resp.json())["error"]
    assert error["graphStatus"] == 404 and error["code"] == "ItemNotFound" and error["requestId"]
    assert bot.calls == {}


async def test_a_refused_join_leaves_no_media_behind(media_world):
    emu, bot, control, http, base, _, host = media_world
    for body in ({"joinMeetingId": "99999999999"},                       # Graph: 404
                 {"joinUrl": "https://teams.microsoft.com/meet/12x"}):    # not a join URL: 400
        async with http.post(base + "/calls", json=body, headers=auth()) as resp:
            assert resp.status in (400, 502)
        assert host.calls == {} and bot.calls == {}
    meeting = emu.create_meeting()
    emu.add_participant(meeting.id, "Dana")
    async with http.post(base + "/calls", json={"joinUrl": meeting.join_web_url}, headers=auth()) as resp:
        assert resp.status == 201
        call_id = (await resp.json())["id"]
    assert list(host.calls) == [call_id]             # the media the join carried is that call's
    call = bot.calls[next(iter(bot.calls))]
    await until(lambda: any(p.display_name == "Dana" for p in call.participants))
    async with http.get(base + f"/calls/{call_id}", headers=auth()) as resp:
        media = (await resp.json())["media"]
    assert media["callId"] == call_id
    assert any(s["kind"] == "audio" and s["direction"] == "send" for s in media["streams"])
    async with http.delete(base + f"/calls/{call_id}", headers=auth()) as resp:
        assert resp.status == 202
    await until(lambda: not host.calls)               # the call's end released its media


async def test_joining_while_shutting_down_is_503(world):
    emu, bot, control, http, base, _ = world
    meeting = emu.create_meeting()
    bot.accepting = False
    async with http.post(base + "/calls", json={"joinUrl": meeting.join_web_url}, headers=auth()) as resp:
        assert resp.status == 503
    assert bot.calls == {}


def test_statistics_become_camel_case_json():
    from dataclasses import dataclass

    @dataclass
    class Inner:
        jitter_ms: float
        rtt_ms: float

    @dataclass
    class Outer:
        call_id: str
        streams: tuple
        dropped: dict

    out = jsonable(Outer("c", (Inner(1.5, float("nan")),), {"processor:EventLog": 2}))
    assert out == {"callId": "c", "streams": [{"jitterMs": 1.5, "rttMs": None}],
                   "dropped": {"processor:EventLog": 2}}


# ---- the client: mediabot join / calls / hangup -------------------------------------------------


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(cli_main, list(argv))


async def test_client_commands_and_exit_codes(world, monkeypatch, capsys):
    emu, bot, control, http, base, cfg = world
    meeting = emu.create_meeting()
    emu.add_participant(meeting.id, "Carol")
    monkeypatch.setenv("CONTROL_TOKEN", TOKEN)
    assert await cli("join", meeting.join_web_url, "--config", str(cfg)) == 0
    call_id = capsys.readouterr().out.strip()
    call = bot.calls[next(iter(bot.calls))]
    assert call.id == call_id
    await until(lambda: any(p.display_name == "Carol" for p in call.participants))

    assert await cli("calls", "--bot", base, "--token-env", "CONTROL_TOKEN") == 0
    line = capsys.readouterr().out.strip()
    assert line.split("\t")[0] == call_id and line.endswith("Carol")

    # the bot answers an error: 1, printed
    assert await cli("join", "https://example.com/nothing", "--config", str(cfg)) == 1
    assert "400 badRequest" in capsys.readouterr().err
    assert await cli("hangup", "nope", "--config", str(cfg)) == 1
    assert "404 notFound" in capsys.readouterr().err
    monkeypatch.setenv("CONTROL_TOKEN", "wrong-token-but-long-enough")
    assert await cli("calls", "--config", str(cfg)) == 1
    assert "401 unauthorized" in capsys.readouterr().err
    monkeypatch.setenv("CONTROL_TOKEN", TOKEN)

    assert await cli("hangup", call_id, "--config", str(cfg)) == 0
    assert capsys.readouterr().out.startswith(call_id)
    await asyncio.wait_for(call.wait_terminated(), 10)


async def test_client_usage_and_config_errors_exit_2(world, monkeypatch, capsys, tmp_path):
    emu, bot, control, http, base, cfg = world
    monkeypatch.delenv("CONTROL_TOKEN", raising=False)
    assert await cli("calls", "--config", str(cfg)) == 2
    assert "set the environment variable CONTROL_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("CONTROL_TOKEN", TOKEN)
    plain = tmp_path / "plain.toml"
    plain.write_text('[webhook]\nport = 9441\n')
    assert await cli("calls", "--config", str(plain)) == 2
    assert f"{plain}: [control]: no [control] section" in capsys.readouterr().err
    assert await cli("join", "--config", str(cfg)) == 2           # neither URL nor --meeting-id
    assert await cli("calls", "--bot", "127.0.0.1:9441") == 2
    with pytest.raises(SystemExit) as info:
        await cli("calls")                                        # --config or --bot is required
    assert info.value.code == 2
    assert bot.calls == {}


async def test_client_exit_1_when_the_bot_is_not_there(monkeypatch, capsys):
    monkeypatch.setenv("MEDIABOT_CONTROL_TOKEN", TOKEN)
    port = free_port()
    assert await cli("calls", "--bot", f"http://127.0.0.1:{port}") == 1
    assert f"cannot reach the bot at http://127.0.0.1:{port}/control" in capsys.readouterr().err

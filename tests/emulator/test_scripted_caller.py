"""The scripted P2P caller of the control API (``POST /emulator/incoming-call``
with ``script``): what it refuses, what it hands the conference, and the
conference's record of the bot's audio (``GET /emulator/calls/{id}/media`` and
``/bot-audio``; the whole path is exercised by tests/examples/test_ivr_bot.py)."""

from __future__ import annotations

import aiohttp

from bot.emulator import GraphEmulator, ServiceOptions
from bot.emulator.conference import ConferenceHandler, MediaServer

CALLER = {"meeting": {"duration_s": 3},
          "participant": [{"name": "Dora", "video": "none", "dtmf": [{"at_s": 1.0, "digits": "5#"}],
                           "say": [{"at_s": 0.2, "text": "hello"}]}]}


async def test_scripted_caller_rings_as_the_scripted_person_and_is_checked(tmp_path):
    with MediaServer() as server:
        handler = ConferenceHandler(server)
        async with GraphEmulator(options=ServiceOptions(allow_http_callbacks=True), tls=False,
                                 media_handler=handler) as emu:
            emu.register_bot(webhook_url="http://127.0.0.1:9/api/calls")   # nobody answers
            control = emu.base_url + "/emulator"
            async with aiohttp.ClientSession() as http:
                async def post(body):
                    async with http.post(control + "/incoming-call", json=body) as r:
                        return r.status, await r.json()

                two = {**CALLER, "participant": CALLER["participant"] + [{"name": "Eve", "video": "none"}]}
                status, body = await post({"script": two})
                assert status == 400 and "exactly one" in body["error"]["message"]
                status, body = await post({"script": str(tmp_path / "missing.toml")})
                assert status == 400 and "not found" in body["error"]["message"]
                status, body = await post({"script": {"participant": [{"name": "X", "dtmf": [
                    {"at_s": 1, "digits": "5x"}]}]}})
                assert status == 400 and "participant[0].dtmf[0].digits" in body["error"]["message"]

                script = tmp_path / "caller.toml"
                script.write_text('[meeting]\nduration_s = 3\n[[participant]]\nname = "Dora"\n'
                                  'video = "none"\ndtmf = [ { at_s = 1.0, digits = "5#" } ]\n')
                for given in (CALLER, str(script)):
                    status, body = await post({"script": given, "displayName": "ignored"})
                    assert status == 201, body
                    call = emu.call(body["id"])
                    assert call.source["identity"]["user"]["displayName"] == "Dora"
                    media = handler.callers[call.id]       # played once the bot answers
                    (dora,) = media.participants
                    assert dora.participant.name == "Dora" and dora.video is None
                    assert sorted(dora.dtmf) and len(dora.audio) == 150

                async with http.get(control + f"/calls/{call.id}/media") as r:
                    assert r.status == 404                 # not answered: no conference
                async with http.get(control + f"/calls/{call.id}/bot-audio") as r:
                    assert r.status == 404

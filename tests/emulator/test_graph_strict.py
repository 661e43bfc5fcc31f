"""The emulator refuses what Graph refuses or does not define — so a bot that passes locally does
not fail against Graph: non-https callback URIs, unknown modalities, beta-only parameters on v1.0,
unknown properties and parameters, parameters of the wrong JSON type, an untyped mediaConfig.
Each refusal is a 400 with the Graph error body. Plain-http callbacks to a loopback address pass
only with ServiceOptions(allow_http_callbacks=True) (CLI --allow-http-callbacks)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from bot.emulator import GraphEmulator, GraphError
from bot.emulator.graph import (
    ACTION_PARAMETERS,
    check_call_properties,
    check_parameters,
)

from .conftest import EXAMPLES, Graph, assert_shape, example
from .test_graph import CALLS, create_p2p, with_callback

ERROR_BODY = {"error": {"code": "BadRequest", "message": "m", "innerError": {"request-id": "r", "date": "d"}}}


def refused(status: int, error, *words: str) -> bool:
    assert status == 400, (status, error)
    assert_shape(error, ERROR_BODY)
    message = error["error"]["message"]
    assert all(w in message for w in words), message
    return True


def create_body(receiver, **changes) -> dict:
    body = with_callback("createCall.p2p.serviceHosted.request.json", receiver.url)
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


# ---- callback URIs ------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://bot.contoso.com/api/calls", "ftp://127.0.0.1/x", "callbackUri-value",
                                 "https:///no-host", "http://10.0.0.1/api/calls"])
async def test_create_call_refuses_a_callback_uri_that_is_not_https(graph, receiver, url):
    status, _, error = await graph.post(CALLS, create_body(receiver, callbackUri=url))
    assert refused(status, error, "https")


async def test_answer_reject_redirect_refuse_non_https_callback_uris(graph, receiver, emulator):
    call = emulator.incoming_call()
    await receiver.wait(1, call.id)
    plain = "http://bot.contoso.com/api/calls"
    for action, name in (("answer", "answer.serviceHosted.request.json"), ("reject", "reject.busy.request.json"),
                         ("redirect", "redirect.request.json")):
        status, _, error = await graph.post(f"{CALLS}/{call.id}/{action}", with_callback(name, plain))
        assert refused(status, error, "https")
    assert emulator.call(call.id).state == "incoming"          # nothing happened


async def test_loopback_http_only_with_the_switch(receiver):
    """Without allow_http_callbacks even http://127.0.0.1 is refused, for calls and incoming calls."""
    async with GraphEmulator(tls=False) as strict:
        strict.register_bot(webhook_url=receiver.url)
        async with aiohttp.ClientSession() as session:
            status, _, error = await Graph(strict, session).post(CALLS, create_body(receiver))
        assert refused(status, error, "https", "allow_http_callbacks")
        with pytest.raises(GraphError, match="https"):
            strict.incoming_call()
        strict.register_bot(webhook_url="https://bot.contoso.com/api/calls")
        assert strict.incoming_call().state == "incoming"


# ---- modalities, mediaConfig ---------------------------------------------------------------------

@pytest.mark.parametrize("modalities", [["hologram"], "audio", [], [1], ["audio", "smell"], None])
async def test_unknown_modalities_or_not_a_list_are_refused(graph, receiver, emulator, modalities):
    status, _, error = await graph.post(CALLS, create_body(receiver, requestedModalities=modalities))
    assert status == 400, error
    call = emulator.incoming_call()
    body = with_callback("answer.serviceHosted.request.json", receiver.url)
    body["acceptedModalities"] = modalities
    status, _, error = await graph.post(f"{CALLS}/{call.id}/answer", body)
    assert status == 400, error


async def test_answer_refuses_data_which_only_calls_may_request(graph, receiver, emulator):
    call = emulator.incoming_call()
    body = with_callback("answer.serviceHosted.request.json", receiver.url)
    body["acceptedModalities"] = ["audio", "data"]
    status, _, error = await graph.post(f"{CALLS}/{call.id}/answer", body)
    assert refused(status, error, "acceptedModalities")


@pytest.mark.parametrize("media_config", [
    {"removeFromDefaultAudioGroup": False},                               # no @odata.type
    {"@odata.type": "#microsoft.graph.mediaConfig"},                      # the abstract base
    {"@odata.type": "#microsoft.graph.somethingHostedMediaConfig"},
    "serviceHosted",
])
async def test_media_config_must_name_its_type(graph, receiver, emulator, media_config):
    status, _, error = await graph.post(CALLS, create_body(receiver, mediaConfig=media_config))
    assert refused(status, error, "mediaConfig")
    call = emulator.incoming_call()
    body = with_callback("answer.serviceHosted.request.json", receiver.url)
    body["mediaConfig"] = media_config
    status, _, error = await graph.post(f"{CALLS}/{call.id}/answer", body)
    assert refused(status, error, "mediaConfig")


# ---- properties and parameters -------------------------------------------------------------------

@pytest.mark.parametrize("prop,value,version", [
    ("colour", "blue", "v1.0"),
    ("ringingTimeoutInSeconds", 30, "v1.0"),          # beta-only call property
    ("routingPolicies", ["disableForwarding"], "v1.0"),
])
async def test_create_call_refuses_properties_the_call_resource_does_not_have(graph, receiver, prop, value,
                                                                               version):
    status, _, error = await graph.post(CALLS, create_body(receiver, **{prop: value}), version=version)
    assert refused(status, error, f"The property '{prop}' does not exist on type 'microsoft.graph.call'")


async def test_beta_call_properties_are_accepted_on_beta(graph, receiver):
    status, _, _ = await graph.post(CALLS, create_body(receiver, ringingTimeoutInSeconds=30), version="beta")
    assert status == 201


@pytest.mark.parametrize("prop,value", [("subject", 5), ("targets", {"identity": {}}), ("callOptions", "on"),
                                        ("tenantId", ["t"])])
async def test_create_call_refuses_properties_of_the_wrong_type(graph, receiver, prop, value):
    status, _, error = await graph.post(CALLS, create_body(receiver, **{prop: value}))
    assert refused(status, error, prop)


async def test_play_prompt_loop_is_beta_only(graph, receiver):
    call_id = await create_p2p(graph, receiver)
    body = {**example("playPrompt.request.json"), "loop": True}
    status, _, error = await graph.post(f"{CALLS}/{call_id}/playPrompt", body)
    assert refused(status, error, "The parameter 'loop'", "'playPrompt'", "beta")
    status, _, op = await graph.post(f"{CALLS}/{call_id}/playPrompt", body, version="beta")
    assert status == 200 and op["status"] == "running"


@pytest.mark.parametrize("param", ["maskCallee", "maskCaller"])
async def test_redirect_masks_are_beta_only(graph, receiver, emulator, param):
    call = emulator.incoming_call()
    await receiver.wait(1, call.id)
    body = {**with_callback("redirect.request.json", receiver.url), param: True}
    status, _, error = await graph.post(f"{CALLS}/{call.id}/redirect", body)
    assert refused(status, error, f"The parameter '{param}'", "'redirect'")
    assert emulator.call(call.id).state == "incoming"
    status, _, _ = await graph.post(f"{CALLS}/{call.id}/redirect", body, version="beta")
    assert status == 202


@pytest.mark.parametrize("action,body,word", [
    ("playPrompt", {"prompts": example("playPrompt.request.json")["prompts"], "promptz": []}, "promptz"),
    ("playPrompt", {"prompts": "https://cdn.contoso.com/beep.wav"}, "prompts"),
    ("recordResponse", {"playBeep": "yes"}, "playBeep"),
    ("recordResponse", {"maxRecordDurationInSeconds": "10"}, "maxRecordDurationInSeconds"),
    ("sendDtmfTones", {"tones": "tone1"}, "tones"),
    ("mute", {"clientContext": 7}, "clientContext"),
    ("subscribeToTone", {"clientContext": "c", "everything": True}, "everything"),
    ("updateRecordingStatus", {"status": "recording", "reason": "x"}, "reason"),
])
async def test_action_parameters_unknown_or_of_the_wrong_type_are_refused(graph, receiver, action, body, word):
    call_id = await create_p2p(graph, receiver)
    status, _, error = await graph.post(f"{CALLS}/{call_id}/{action}", body)
    assert refused(status, error, word)


async def test_participant_actions_check_their_parameters(graph, receiver, emulator):
    from .test_graph import join_meeting

    call_id, meeting = await join_meeting(graph, receiver, emulator, people=("Alice",))
    alice = next(iter(meeting.participants))
    status, _, error = await graph.post(f"{CALLS}/{call_id}/participants/{alice}/mute", {"loudly": True})
    assert refused(status, error, "loudly")
    status, _, error = await graph.post(f"{CALLS}/{call_id}/participants/invite", {"participants": "bob"})
    assert refused(status, error, "participants")


# ---- the documented bodies pass the same checks -----------------------------------------------------

def _documented_requests() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted(EXAMPLES.glob("*request.json")):
        name = path.name
        version = "beta" if name.startswith("beta.") else "v1.0"
        head = name.removeprefix("beta.").split(".")[0]
        if head in ("createCall", "joinMeeting", "joinChannelMeeting"):
            out.append((name, "createCall", version))
        elif head == "muteAll":
            out.append((name, "muteAll", version))
        elif head == "participant":
            out.append((name, "participantMute", version))
        elif head in ACTION_PARAMETERS:
            out.append((name, head, version))
    return out


@pytest.mark.parametrize("name,action,version", _documented_requests())
def test_every_documented_request_body_passes_the_parameter_checks(name, action, version):
    body = example(name)
    if action == "createCall":
        check_call_properties(body, version)
    else:
        check_parameters(action, body, version)


def test_the_documented_bodies_cover_every_v1_action():
    covered = {a for _, a, v in _documented_requests()}
    assert covered >= {a for a, (v1, _) in ACTION_PARAMETERS.items() if v1} - {"updateMetadata"}


async def test_documented_error_body_shape_with_request_ids(graph, receiver):
    status, headers, error = await graph.post(CALLS, create_body(receiver, colour="blue"))
    assert status == 400
    assert error["error"]["innerError"]["request-id"] == headers["request-id"]
    assert json.dumps(error)  # the Graph error body, nothing else

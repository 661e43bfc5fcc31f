"""Media configuration documents: round trip, validation with JSON paths,
negotiation, and two engines configured from a pair of documents."""

from __future__ import annotations

import copy
import json
import os

import pytest

from mediacore.engine import Engine
from mediacore.mediaconfig import (SCHEMA_VERSION, MediaConfig, MediaConfigError,
                                   configure_session, negotiate)


def pair(address_bot=("127.0.0.1", 40000), address_remote=("127.0.0.1", 40002),
         kinds=("audio", "video", "vbss"), profile="AES_CM_128_HMAC_SHA1_80"):
    bot = MediaConfig.generate(*address_bot, kinds=kinds, srtp_profile=profile, call_id="c1")
    remote = MediaConfig.generate(*address_remote, role="remote", kinds=kinds,
                                  srtp_profile=profile, media_session_id=bot.media_session_id)
    return bot, remote


def test_blob_round_trip_and_shape():
    bot, _ = pair()
    blob = bot.to_blob()
    assert isinstance(blob, str) and "\n" not in blob
    d = json.loads(blob)
    assert d["mediaConfigVersion"] == SCHEMA_VERSION
    assert d["supportedAudioFormat"] == "Pcm16K"
    assert [m["kind"] for m in d["media"]] == ["audio", "video", "vbss"]
    assert len(bot.srtp.key_bytes) == 30
    assert MediaConfig.from_blob(blob) == bot


def mutate(doc: dict, path: list, value) -> dict:
    d = copy.deepcopy(doc)
    target = d
    for k in path[:-1]:
        target = target[k]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


@pytest.mark.parametrize("path,value,where", [
    (["mediaConfigVersion"], 2, "mediaConfigVersion"),
    (["role"], "server", "role"),
    (["mpMediaSessionId"], "nope", "mpMediaSessionId"),
    (["endpoint", "address"], "bot.contoso.com", "endpoint.address"),
    (["endpoint", "port"], 70000, "endpoint.port"),
    (["endpoint"], KeyError, "endpoint"),
    (["srtp", "profile"], "AES_CM_256", "srtp.profile"),
    (["srtp", "key"], "!!!", "srtp.key"),
    (["srtp", "key"], "AAAA", "srtp.key"),
    (["media"], [], "media"),
    (["media", 0, "kind"], "data", "media[0].kind"),
    (["media", 0, "ssrcs"], [], "media[0].ssrcs"),
    (["media", 0, "ssrcs"], [5, 5], "media[0].ssrcs"),
    (["media", 0, "ssrcs", 0], -1, "media[0].ssrcs[0]"),
    (["media", 0, "codecs"], [], "media[0].codecs"),
    (["media", 0, "codecs", 0, "payloadType"], 200, "media[0].codecs[0].payloadType"),
    (["media", 0, "codecs", 0, "payloadType"], 72, "media[0].codecs[0].payloadType"),
    (["media", 0, "codecs", 0, "clockRate"], "48000", "media[0].codecs[0].clockRate"),
    (["media", 1, "kind"], "audio", "media"),
    (["supportedAudioFormat"], "Pcm48K", "supportedAudioFormat"),
])
def test_invalid_documents_name_the_member(path, value, where):
    bot, _ = pair()
    with pytest.raises(MediaConfigError) as exc:
        MediaConfig.from_json(mutate(bot.to_json(), path, value))
    assert exc.value.path == where
    assert str(exc.value).startswith(where)


def test_not_json_and_not_object():
    with pytest.raises(MediaConfigError, match="not JSON"):
        MediaConfig.from_blob("{")
    with pytest.raises(MediaConfigError, match="JSON object"):
        MediaConfig.from_blob("[]")


def test_shared_ssrc_and_conflicting_payload_types_rejected():
    bot, _ = pair()
    d = bot.to_json()
    d["media"][1]["ssrcs"] = list(d["media"][0]["ssrcs"])
    with pytest.raises(MediaConfigError, match="also used"):
        MediaConfig.from_json(d)
    d = bot.to_json()
    d["media"][1]["codecs"][0]["payloadType"] = 111
    with pytest.raises(MediaConfigError, match="payload type 111"):
        MediaConfig.from_json(d)


def test_incompatible_pairs():
    bot, remote = pair()
    with pytest.raises(MediaConfigError, match="both documents have role"):
        negotiate(bot, bot)
    _, other = pair(profile="AEAD_AES_128_GCM")
    other = MediaConfig.from_json({**other.to_json(), "mpMediaSessionId": bot.media_session_id})
    with pytest.raises(MediaConfigError, match="profiles differ"):
        negotiate(bot, other)
    stranger = MediaConfig.generate("127.0.0.1", 1, role="remote")
    with pytest.raises(MediaConfigError, match="different sessions"):
        negotiate(bot, stranger)
    d = remote.to_json()
    d["media"][0]["codecs"] = [{"payloadType": 9, "name": "G722", "clockRate": 8000}]
    with pytest.raises(MediaConfigError, match="no codec in common for audio"):
        negotiate(bot, MediaConfig.from_json(d))


def test_negotiation_respects_direction():
    bot, remote = pair(kinds=("audio",))
    d = remote.to_json()
    d["media"][0]["direction"] = "recvonly"
    d["media"][0]["ssrcs"] = []
    plans = negotiate(bot, MediaConfig.from_json(d))
    assert plans[0].send_ssrcs == bot.media[0].ssrcs and plans[0].recv_ssrcs == ()
    assert plans[0].send_codec.name == "opus"


@pytest.mark.parametrize("profile", ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_256_GCM", None])
def test_two_engines_configured_from_a_pair_exchange_media(profile):
    with Engine("127.0.0.1") as eb, Engine("127.0.0.1") as er:
        bot, remote = pair(("127.0.0.1", eb.port), ("127.0.0.1", er.port),
                           kinds=("audio", "video"), profile=profile)
        # each side only ever sees the other's blob
        b = configure_session(eb, bot, MediaConfig.from_blob(remote.to_blob()), direct=True)
        r = configure_session(er, remote, MediaConfig.from_blob(bot.to_blob()), direct=True)
        a_ssrc = bot.section("audio").ssrcs[0]
        v_ssrc = remote.section("video").ssrcs[0]
        audio = [os.urandom(80) for _ in range(20)]
        video = [os.urandom(900) for _ in range(20)]
        for i in range(20):
            b.send_streams[a_ssrc].send(audio[i], timestamp=960 * i, wake=False)
            r.send_streams[v_ssrc].send(video[i], timestamp=3000 * i, wake=False)
        eb.wake()
        er.wake()
        from tests.mediacore.test_engine import drain
        h, got_audio = drain(r.receive_streams[a_ssrc], 20)
        _, got_video = drain(b.receive_streams[v_ssrc], 20)
        assert got_audio == audio and got_video == video
        assert set(h["payload_type"]) == {111}
        assert b.source_ids[v_ssrc] == remote.section("video").source_id

"""The demo bot's video subscriptions as the conference reads them: the bot's
media configuration document with ``media[].subscriptions``."""

from __future__ import annotations

from bot.demo.botmedia import subscription_blob
from bot.emulator.conference import subscriptions_from_config
from mediacore.mediaconfig import MediaConfig


def test_subscriptions_travel_in_the_media_configuration_document():
    doc = MediaConfig.generate("127.0.0.1", 40000, role="bot", kinds=("audio", "video"))
    blob = subscription_blob(doc, {10001: ("video", (640, 360)), 10007: ("vbss", None)})
    again = MediaConfig.from_blob(blob)      # still a valid document (unknown members ignored)
    assert again.media_session_id == doc.media_session_id
    assert again.srtp.key_bytes == doc.srtp.key_bytes
    # no vbss section in this document: the screen share goes in the video section
    assert subscriptions_from_config(blob) == {10001: (640, 360), 10007: None}
    assert subscriptions_from_config(subscription_blob(doc, {})) == {}


def test_screen_shares_use_the_vbss_section_when_there_is_one():
    import json

    doc = MediaConfig.generate("127.0.0.1", 40000, role="bot", kinds=("audio", "video", "vbss"))
    d = json.loads(subscription_blob(doc, {5: ("video", None), 6: ("vbss", None)}))
    subs = {m["kind"]: m.get("subscriptions") for m in d["media"]}
    assert subs == {"audio": None, "video": [{"sourceId": 5}], "vbss": [{"sourceId": 6}]}

"""The demo bot's media: its document carries the key the remote protects with
(``srtp.receiveKey``), its session latches onto the remote's first authentic
packet, and its video subscriptions go out as MBVS RTCP APP packets."""

from __future__ import annotations

import os
import time

import pytest

from bot.demo.botmedia import DemoBotMedia
from bot.demo.load import _NullTranscriber
from bot.demo.receiver import SourceInfo
from mediacore.engine import Engine, Session
from mediacore.mediaconfig import MediaConfig
from mediacore.subscriptions import APP_NAME, decode_subscriptions, encode_subscriptions


def _until(pred, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.skipif(not hasattr(Session, "send_app"), reason="needs Session.send_app")
def test_session_opens_with_the_blob_latches_and_sends_subscriptions():
    with Engine("127.0.0.1") as engine, Engine("127.0.0.1") as remote:
        media = DemoBotMedia(engine, transcriber=_NullTranscriber(), analytics=None)
        try:
            doc = MediaConfig.from_blob(media.media_config_blob(None))
            assert doc.srtp.receive_key and doc.srtp.receive_key != doc.srtp.key
            sid = doc.media_session_id
            assert sid in media.sessions and sid in media.receivers   # no answer needed
            # the subscription list waits for the remote's address (not known before it sends)
            media._subs[sid] = (1, encode_subscriptions(1, [(10001, (640, 360)), (10007, None)]))
            media._send_subscriptions(sid)
            assert sid not in media._subs_sent
            # the conference's side: protects with receiveKey, sends to the bot's endpoint
            peer = remote.add_session((doc.endpoint.address, doc.endpoint.port),
                                      srtp_profile=doc.srtp.profile, tx_key=doc.srtp.receive_key_bytes,
                                      rx_key=doc.srtp.key_bytes)
            out = peer.add_send_stream(5000, 111, "audio", 48000)
            media.receivers[sid].add_source(5000, SourceInfo("Ann", "audio"))   # from the roster
            got = []

            def app_arrived() -> bool:
                out.send(os.urandom(40), 960 * len(got))
                got.extend(e for e in peer.events() if e.kind == "app")
                return bool(got)
            # the repeater sends it once the session has latched (every 100 ms until then)
            assert _until(app_arrived)
            ev = got[0]
            assert ev.name == APP_NAME and ev.sender_ssrc == doc.section("audio").ssrcs[0]
            assert decode_subscriptions(ev.data) == (1, [(10001, (640, 360)), (10007, None)])
        finally:
            media.close()

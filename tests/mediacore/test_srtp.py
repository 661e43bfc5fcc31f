"""SRTP/SRTCP: RFC known answers, tampering, truncation, replay, ROC, stream
limits, SDES key parsing, and libsrtp (pylibsrtp) as an independent peer."""

from __future__ import annotations

import base64
import random
import select
import socket
import struct
import subprocess
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pylibsrtp import Error as LibsrtpError
from pylibsrtp import Policy, Session

from mediacore._native import ffi, lib
from mediacore.errors import (
    AuthenticationFailed,
    BufferTooSmall,
    InvalidArgument,
    InvalidState,
    Malformed,
    ReplayDetected,
    RingFull,
)
from mediacore.srtp import (
    SrtpSession,
    format_inline_key,
    key_salt_length,
    parse_inline_key,
    parse_profile,
)

from .vectors import rfc3711, rfc7714

PROFILES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM",
            "AEAD_AES_256_GCM"]
LIBSRTP = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}
RTP_TAG = {"AES_CM_128_HMAC_SHA1_80": 10, "AES_CM_128_HMAC_SHA1_32": 4,
           "AEAD_AES_128_GCM": 16, "AEAD_AES_256_GCM": 16}
RTCP_TAG = {"AES_CM_128_HMAC_SHA1_80": 10, "AES_CM_128_HMAC_SHA1_32": 10,
            "AEAD_AES_128_GCM": 16, "AEAD_AES_256_GCM": 16}


def rtp(seq: int, ssrc: int = 0x11223344, payload: bytes = b"\xab" * 160, pt: int = 111,
        marker: bool = False, csrcs: tuple[int, ...] = (), extension: bytes | None = None) -> bytes:
    b0 = 0x80 | len(csrcs) | (0x10 if extension is not None else 0)
    head = struct.pack("!BBHII", b0, pt | (0x80 if marker else 0), seq & 0xFFFF,
                       (seq * 960) & 0xFFFFFFFF, ssrc)
    head += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        assert len(extension) % 4 == 0
        head += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return head + payload


def rtcp_sr(ssrc: int = 0x11223344, extra: bytes = b"") -> bytes:
    body = struct.pack("!IIIII", 0xE0000000, 0x12345678, 960, 10, 1600) + extra
    return struct.pack("!BBHI", 0x80, 200, (len(body) + 8) // 4 - 1, ssrc) + body


def keys(profile: str, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(key_salt_length(profile))


def libsrtp_session(profile: str, key: bytes, outbound: bool) -> Session:
    policy = Policy(key=key, srtp_profile=LIBSRTP[profile],
                    ssrc_type=Policy.SSRC_ANY_OUTBOUND if outbound else Policy.SSRC_ANY_INBOUND)
    policy.window_size = 1024
    policy.allow_repeat_tx = True
    return Session(policy)


# ---- RFC 3711 Appendix B ---------------------------------------------------------------

def cm_session_keys(key: bytes, salt: bytes, auth: bytes = b"\x00" * 20) -> SrtpSession:
    return SrtpSession("AES_CM_128_HMAC_SHA1_80", key + salt + auth, "outbound", session_keys=True)


def test_rfc3711_b2_keystream_first_blocks():
    tx = cm_session_keys(rfc3711.B2_SESSION_KEY, rfc3711.B2_SESSION_SALT)
    # SSRC 0, SEQ 0, ROC 0: the IV is the salt shifted by 16 bits; zero payload -> keystream
    out = tx.protect(rtp(0, ssrc=0, payload=bytes(48)))
    assert out[12:60] == rfc3711.B2_KEYSTREAM_FIRST


def test_rfc3711_b2_keystream_whole_segment():
    tx = cm_session_keys(rfc3711.B2_SESSION_KEY, rfc3711.B2_SESSION_SALT)
    n = rfc3711.B2_SEGMENT_LENGTH
    out = tx.protect(rtp(0, ssrc=0, payload=bytes(n)))
    assert len(out) == 12 + n + 10
    assert out[12:60] == rfc3711.B2_KEYSTREAM_FIRST
    assert out[12 + n - 48:12 + n] == rfc3711.B2_KEYSTREAM_LAST


def test_rfc3711_b3_key_derivation_gives_the_rfc_session_keys():
    """The context keyed with the B.3 master key protects exactly like one given the
    B.3 session keys, and unlike one given a single wrong session-key bit."""
    master = SrtpSession("AES_CM_128_HMAC_SHA1_80",
                         rfc3711.B3_MASTER_KEY + rfc3711.B3_MASTER_SALT, "outbound")
    derived = cm_session_keys(rfc3711.B3_CIPHER_KEY, rfc3711.B3_CIPHER_SALT,
                              rfc3711.B3_AUTH_KEY_SHA1)
    wrong_auth = cm_session_keys(rfc3711.B3_CIPHER_KEY, rfc3711.B3_CIPHER_SALT,
                                 bytes([rfc3711.B3_AUTH_KEY_SHA1[0] ^ 1]) + rfc3711.B3_AUTH_KEY_SHA1[1:])
    wrong_salt = cm_session_keys(rfc3711.B3_CIPHER_KEY,
                                 rfc3711.B3_CIPHER_SALT[:-1] + bytes([rfc3711.B3_CIPHER_SALT[-1] ^ 1]),
                                 rfc3711.B3_AUTH_KEY_SHA1)
    for seq in (0, 1, 30000, 60000, 65535, 65536 + 7):  # the last one has ROC 1
        packet = rtp(seq, ssrc=0xDECAFBAD, payload=bytes(range(64)))
        a, b = master.protect(packet), derived.protect(packet)
        assert a == b
        assert wrong_auth.protect(packet)[:-10] == a[:-10]
        assert wrong_auth.protect(packet)[-10:] != a[-10:]
        assert wrong_salt.protect(packet)[12:-10] != a[12:-10]


def test_rfc3711_b3_master_key_round_trips_through_libsrtp():
    key = rfc3711.B3_MASTER_KEY + rfc3711.B3_MASTER_SALT
    ours = SrtpSession("AES_CM_128_HMAC_SHA1_80", key, "outbound")
    theirs = libsrtp_session("AES_CM_128_HMAC_SHA1_80", key, outbound=True)
    packet = rtp(4660, ssrc=0xDECAFBAD, payload=b"\xab" * 16)
    assert ours.protect(packet) == theirs.protect(packet)


# ---- RFC 7714 sections 16 and 17 --------------------------------------------------------

GCM = [("AEAD_AES_128_GCM", rfc7714.KEY_128, rfc7714.SRTP_128, rfc7714.SRTCP_128),
       ("AEAD_AES_256_GCM", rfc7714.KEY_256, rfc7714.SRTP_256, rfc7714.SRTCP_256)]


@pytest.mark.parametrize("profile,key,srtp,srtcp", GCM, ids=["128", "256"])
def test_rfc7714_vectors_are_consistent_with_aes_gcm(profile, key, srtp, srtcp):
    """Guard against transcription errors: the vectors check out with an independent AES-GCM."""
    p = rfc7714.RTP_PACKET
    assert AESGCM(key).encrypt(rfc7714.RTP_IV, p[12:], p[:12]) == srtp[12:]
    r = rfc7714.RTCP_PACKET
    e_index = struct.pack("!I", 0x80000000 | rfc7714.SRTCP_INDEX)
    assert AESGCM(key).encrypt(rfc7714.RTCP_IV, r[8:], r[:8] + e_index) == srtcp[8:-4]


@pytest.mark.parametrize("profile,key,srtp,srtcp", GCM, ids=["128", "256"])
def test_rfc7714_16_srtp_encrypt_and_decrypt(profile, key, srtp, srtcp):
    tx = SrtpSession(profile, key + rfc7714.SALT, "outbound", session_keys=True)
    assert tx.protect(rfc7714.RTP_PACKET) == srtp
    rx = SrtpSession(profile, key + rfc7714.SALT, "inbound", session_keys=True)
    assert rx.unprotect(srtp) == rfc7714.RTP_PACKET
    assert rx.stats.rtp_packets == 1


@pytest.mark.parametrize("profile,key,srtp,srtcp", GCM, ids=["128", "256"])
def test_rfc7714_17_srtcp_encrypt_and_decrypt(profile, key, srtp, srtcp):
    rx = SrtpSession(profile, key + rfc7714.SALT, "inbound", session_keys=True)
    assert rx.unprotect_rtcp(srtcp) == rfc7714.RTCP_PACKET
    # the sender numbers SRTCP packets from 0 (RFC 3711 3.4): send up to index 0x5d4
    tx = SrtpSession(profile, key + rfc7714.SALT, "outbound", session_keys=True)
    for _ in range(rfc7714.SRTCP_INDEX):
        tx.protect_rtcp(rfc7714.RTCP_PACKET)
    assert tx.protect_rtcp(rfc7714.RTCP_PACKET) == srtcp
    assert tx.stats.rtcp_packets == rfc7714.SRTCP_INDEX + 1


def test_rfc7714_17_3_srtcp_authenticated_only():
    rx = SrtpSession("AEAD_AES_128_GCM", rfc7714.KEY_128 + rfc7714.SALT, "inbound",
                     session_keys=True)
    assert rx.unprotect_rtcp(rfc7714.SRTCP_128_TAG_ONLY) == rfc7714.RTCP_PACKET
    tampered = bytearray(rfc7714.SRTCP_128_TAG_ONLY)
    tampered[20] ^= 1  # plaintext but authenticated
    rx2 = SrtpSession("AEAD_AES_128_GCM", rfc7714.KEY_128 + rfc7714.SALT, "inbound",
                      session_keys=True)
    with pytest.raises(AuthenticationFailed):
        rx2.unprotect_rtcp(bytes(tampered))


@pytest.mark.parametrize("profile,key,srtp,srtcp", GCM, ids=["128", "256"])
def test_rfc7714_tampered_vectors_fail(profile, key, srtp, srtcp):
    rx = SrtpSession(profile, key + rfc7714.SALT, "inbound", session_keys=True)
    for pos in range(len(srtp)):
        bad = bytearray(srtp)
        bad[pos] ^= 0x01
        with pytest.raises(AuthenticationFailed):
            rx.unprotect(bytes(bad))
    assert rx.unprotect(srtp) == rfc7714.RTP_PACKET
    assert rx.stats.auth_failures == len(srtp)


# ---- tampering, truncation, malformed headers --------------------------------------------

@pytest.mark.parametrize("profile", PROFILES)
def test_every_tampered_byte_is_rejected_and_counted(profile):
    key = keys(profile)
    tx = SrtpSession(profile, key, "outbound")
    rx = SrtpSession(profile, key, "inbound")
    packet = tx.protect(rtp(100, payload=bytes(range(48)), csrcs=(7,), extension=b"\x10\xff\0\0"))
    extension_length_high = 12 + 4 + 2  # 0x0001 -> 0x0101 words: runs past the end
    for pos in range(len(packet)):
        bad = bytearray(packet)
        bad[pos] ^= 0x01
        expected = Malformed if pos == extension_length_high else AuthenticationFailed
        with pytest.raises(expected):
            rx.unprotect(bytes(bad))
    s = rx.stats
    assert s.auth_failures == len(packet) - 1 and s.malformed == 1
    assert s.rtp_packets == 0
    assert s.streams == 0  # forged packets create no stream state
    assert rx.unprotect(packet) == rtp(100, payload=bytes(range(48)), csrcs=(7,),
                                       extension=b"\x10\xff\0\0")
    assert rx.stats.rtp_packets == 1 and rx.stats.streams == 1


@pytest.mark.parametrize("profile", PROFILES)
def test_every_tampered_srtcp_byte_is_rejected_and_counted(profile):
    key = keys(profile)
    tx = SrtpSession(profile, key, "outbound")
    rx = SrtpSession(profile, key, "inbound")
    packet = tx.protect_rtcp(rtcp_sr())
    for pos in range(len(packet)):
        bad = bytearray(packet)
        bad[pos] ^= 0x01
        with pytest.raises(AuthenticationFailed):
            rx.unprotect_rtcp(bytes(bad))
    assert rx.stats.auth_failures == len(packet)
    assert rx.stats.rtcp_packets == 0
    assert rx.unprotect_rtcp(packet) == rtcp_sr()


@pytest.mark.parametrize("profile", PROFILES)
def test_truncated_packets_are_rejected(profile):
    key = keys(profile)
    tx = SrtpSession(profile, key, "outbound")
    rx = SrtpSession(profile, key, "inbound")
    packet = tx.protect(rtp(5, payload=bytes(40)))
    tag = RTP_TAG[profile]
    for n in range(len(packet)):
        with pytest.raises((Malformed, AuthenticationFailed)) as info:
            rx.unprotect(packet[:n])
        if n < 12 + tag:
            assert isinstance(info.value, Malformed)
    s = rx.stats
    assert s.malformed == 12 + tag
    assert s.auth_failures == len(packet) - (12 + tag)
    assert s.rtp_packets == 0

    rtcp_packet = tx.protect_rtcp(rtcp_sr())
    for n in range(len(rtcp_packet)):
        with pytest.raises((Malformed, AuthenticationFailed)):
            rx.unprotect_rtcp(rtcp_packet[:n])
    assert rx.stats.malformed == 12 + tag + 8 + 4 + RTCP_TAG[profile]


@pytest.mark.parametrize("profile", ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"])
def test_malformed_headers_are_rejected_and_counted(profile):
    key = keys(profile)
    rx = SrtpSession(profile, key, "inbound")
    tag = RTP_TAG[profile]
    cases = [
        b"\x40" + bytes(11 + tag + 8),                          # version 1
        b"\x8f" + bytes(11 + tag),                              # 15 CSRCs past the end
        b"\x90" + bytes(11) + b"\xbe\xde\xff\xff" + bytes(tag),  # extension past the end
        b"\x90" + bytes(11 + 2),                                # extension header cut
        bytes(5),                                               # runt
    ]
    for case in cases:
        with pytest.raises(Malformed):
            rx.unprotect(case)
    with pytest.raises(Malformed):
        rx.unprotect_rtcp(b"\x40\xc8" + bytes(40))             # SRTCP version 1
    assert rx.stats.malformed == len(cases) + 1
    tx = SrtpSession(profile, key, "outbound")
    with pytest.raises(Malformed):
        tx.protect(b"\x8f" + bytes(20))
    with pytest.raises(Malformed):
        tx.protect_rtcp(b"\x80\xc8\x00")
    assert tx.stats.malformed == 2


def test_protect_needs_room_for_the_tag():
    tx = SrtpSession("AES_CM_128_HMAC_SHA1_80", keys("AES_CM_128_HMAC_SHA1_80"), "outbound")
    packet = rtp(1)
    buf = ffi.new("uint8_t[]", packet)
    out = ffi.new("size_t *")
    assert lib.mc_srtp_protect(tx._ctx, buf, len(packet), len(packet) + 9, out) == lib.MC_E_BUFFER
    assert lib.mc_srtcp_protect(tx._ctx, buf, 28, 28 + 13, out) == lib.MC_E_BUFFER
    assert tx.stats.buffer_errors == 2
    assert lib.mc_srtp_protect(tx._ctx, buf, len(packet), len(packet) + 10, out) == lib.MC_OK
    assert out[0] == len(packet) + 10


def test_direction_is_enforced():
    key = keys("AEAD_AES_128_GCM")
    tx = SrtpSession("AEAD_AES_128_GCM", key, "outbound")
    rx = SrtpSession("AEAD_AES_128_GCM", key, "inbound")
    with pytest.raises(InvalidState):
        rx.protect(rtp(1))
    with pytest.raises(InvalidState):
        tx.unprotect(rx_packet := tx.protect(rtp(1)))
    with pytest.raises(InvalidState):
        rx.protect_rtcp(rtcp_sr())
    with pytest.raises(InvalidState):
        tx.unprotect_rtcp(rx_packet)


# ---- replay and ROC ---------------------------------------------------------------------

@pytest.mark.parametrize("profile", PROFILES)
def test_replayed_packets_are_rejected_and_counted(profile):
    key = keys(profile)
    tx = SrtpSession(profile, key, "outbound")
    rx = SrtpSession(profile, key, "inbound")
    packets = [tx.protect(rtp(seq)) for seq in range(10)]
    for p in packets:
        rx.unprotect(p)
    for p in packets[3:6]:
        with pytest.raises(ReplayDetected):
            rx.unprotect(p)
    rtcp_packets = [tx.protect_rtcp(rtcp_sr()) for _ in range(4)]
    for p in rtcp_packets:
        rx.unprotect_rtcp(p)
    with pytest.raises(ReplayDetected):
        rx.unprotect_rtcp(rtcp_packets[1])
    s = rx.stats
    assert (s.replays, s.rtp_packets, s.rtcp_packets, s.auth_failures) == (4, 10, 4, 0)


@pytest.mark.parametrize("window,effective", [(0, 128), (64, 64), (100, 128), (128, 128),
                                              (1000, 1024), (32768, 32768)])
def test_replay_window_edges(window, effective):
    profile = "AES_CM_128_HMAC_SHA1_80"
    key = keys(profile)
    tx = SrtpSession(profile, key, "outbound")
    rx = SrtpSession(profile, key, "inbound", replay_window=window)
    assert rx.stats.replay_window == effective
    top = 40000
    packets = {seq: tx.protect(rtp(seq)) for seq in (top - effective, top - effective + 1, top)}
    rx.unprotect(packets[top])
    # the oldest index still inside the window is accepted once, one further back is too old
    assert rx.unprotect(packets[top - effective + 1]) == rtp(top - effective + 1)
    with pytest.raises(ReplayDetected):
        rx.unprotect(packets[top - effective + 1])
    with pytest.raises(ReplayDetected):
        rx.unprotect(packets[top - effective])
    assert rx.stats.replays == 2


def test_replay_window_bounds_are_checked():
    key = keys("AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(InvalidArgument):
        SrtpSession("AES_CM_128_HMAC_SHA1_80", key, "inbound", replay_window=32769)
    with pytest.raises(InvalidArgument):
        SrtpSession("AES_CM_128_HMAC_SHA1_80", key, "inbound", max_streams=4097)


def test_reordering_inside_the_window_and_a_big_jump():
    profile = "AEAD_AES_128_GCM"
    key = keys(profile)
    tx = SrtpSession(profile, key, "outbound")
    rx = SrtpSession(profile, key, "inbound", replay_window=64)
    packets = [tx.protect(rtp(seq)) for seq in range(0, 300)]
    order = list(range(0, 64))
    random.Random(3).shuffle(order)
    for seq in order:
        assert rx.unprotect(packets[seq]) == rtp(seq)
    assert rx.unprotect(packets[299]) == rtp(299)  # jump further than the window
    for seq in range(299 - 63, 299):
        assert rx.unprotect(packets[seq]) == rtp(seq)
    with pytest.raises(ReplayDetected):
        rx.unprotect(packets[299 - 64])
    assert rx.stats.rtp_packets == 64 + 1 + 63


@pytest.mark.parametrize("profile", PROFILES)
def test_roc_rollover_with_reordering_across_the_wrap(profile):
    key = keys(profile)
    tx = SrtpSession(profile, key, "outbound")
    rx = SrtpSession(profile, key, "inbound")
    seqs = list(range(65530, 65536)) + list(range(0, 6))  # ROC 0 then ROC 1
    packets = {s: tx.protect(rtp(s)) for s in seqs}
    for s in (65530, 65531, 65532, 65534, 1, 0, 65535, 65533, 2, 3, 5, 4):
        assert rx.unprotect(packets[s]) == rtp(s)
    # seq 3 (ROC 1) again is a replay
    with pytest.raises(ReplayDetected):
        rx.unprotect(packets[3])
    assert rx.stats.rtp_packets == 12


def test_a_forward_jump_from_the_first_roc_is_not_taken_for_roc_minus_one():
    """RFC 3711 Appendix A would guess ROC -1 for seq 40001 after seq 0; there is no
    packet before index 0, so (like libsrtp) it is a jump forward with ROC 0."""
    profile = "AES_CM_128_HMAC_SHA1_80"
    key = keys(profile)
    tx = SrtpSession(profile, key, "outbound")
    rx = SrtpSession(profile, key, "inbound")
    first, far = tx.protect(rtp(0)), tx.protect(rtp(40001))
    assert rx.unprotect(first) == rtp(0)
    assert rx.unprotect(far) == rtp(40001)
    # seq 0 now reads as ROC 1 (more than 32768 behind 40001): a ROC 0 packet fails
    with pytest.raises(AuthenticationFailed):
        rx.unprotect(first)


def test_roc_state_is_per_ssrc():
    profile = "AES_CM_128_HMAC_SHA1_80"
    key = keys(profile)
    tx = SrtpSession(profile, key, "outbound")
    rx = SrtpSession(profile, key, "inbound")
    a = [tx.protect(rtp(s & 0xFFFF, ssrc=1)) for s in range(65500, 65600)]
    b = [tx.protect(rtp(s, ssrc=2)) for s in range(100, 200)]
    for pa, pb in zip(a, b):
        rx.unprotect(pa)
        rx.unprotect(pb)
    assert rx.stats.streams == 2 and rx.stats.rtp_packets == 200


def test_stream_limit_counts_refusals_and_forgeries_take_no_slot():
    profile = "AES_CM_128_HMAC_SHA1_80"
    key = keys(profile)
    tx = SrtpSession(profile, key, "outbound", max_streams=3)
    rx = SrtpSession(profile, key, "inbound", max_streams=2)
    forger = SrtpSession(profile, keys(profile, seed=99), "outbound", max_streams=64)
    for ssrc in range(100, 140):
        with pytest.raises(AuthenticationFailed):
            rx.unprotect(forger.protect(rtp(1, ssrc=ssrc)))
    assert rx.stats.streams == 0
    rx.unprotect(tx.protect(rtp(1, ssrc=1)))
    rx.unprotect(tx.protect(rtp(1, ssrc=2)))
    with pytest.raises(RingFull):
        rx.unprotect(tx.protect(rtp(1, ssrc=3)))
    with pytest.raises(RingFull):
        tx.protect(rtp(1, ssrc=4))
    assert rx.stats.streams == 2 and rx.stats.streams_refused == 1
    assert tx.stats.streams == 3 and tx.stats.streams_refused == 1


# ---- libsrtp (pylibsrtp) as an independent peer --------------------------------------------

@pytest.mark.interop
@pytest.mark.parametrize("profile", PROFILES)
def test_libsrtp_cross_check_both_directions(profile):
    key = keys(profile, seed=7)
    ours_tx = SrtpSession(profile, key, "outbound")
    ours_rx = SrtpSession(profile, key, "inbound", replay_window=1024)
    lib_tx = libsrtp_session(profile, key, outbound=True)
    lib_rx = libsrtp_session(profile, key, outbound=False)
    rng = random.Random(11)
    start = 64000  # crosses 65535 -> 0 (ROC 0 -> 1)
    for i in range(3000):
        seq = (start + i) & 0xFFFF
        for ssrc in (0x01020304, 0xCAFEBABE):
            payload = rng.randbytes(rng.choice((0, 1, 15, 16, 17, 160, 1200)))
            ext = b"\x10\x7f\0\0" if i % 3 == 0 else None
            packet = rtp(seq, ssrc=ssrc, payload=payload, marker=i % 5 == 0,
                         csrcs=(5, 6) if i % 7 == 0 else (), extension=ext)
            mine = ours_tx.protect(packet)
            theirs = lib_tx.protect(packet)
            assert mine == theirs  # the transform is deterministic: byte-identical
            assert lib_rx.unprotect(mine) == packet
            assert ours_rx.unprotect(theirs) == packet
    assert ours_rx.stats.rtp_packets == 6000 and ours_rx.stats.streams == 2

    for i in range(200):
        report = rtcp_sr(ssrc=0x01020304, extra=rng.randbytes(4 * rng.randrange(0, 20)))
        assert lib_rx.unprotect_rtcp(ours_tx.protect_rtcp(report)) == report
        assert ours_rx.unprotect_rtcp(lib_tx.protect_rtcp(report)) == report
    s = ours_rx.stats
    assert (s.rtcp_packets, s.auth_failures, s.replays, s.malformed) == (200, 0, 0, 0)


@pytest.mark.interop
def test_libsrtp_rejects_what_we_reject():
    profile = "AES_CM_128_HMAC_SHA1_80"
    key = keys(profile)
    lib_tx = libsrtp_session(profile, key, outbound=True)
    ours_rx = SrtpSession(profile, key, "inbound")
    lib_rx = libsrtp_session(profile, key, outbound=False)
    packet = lib_tx.protect(rtp(9))
    bad = packet[:-1] + bytes([packet[-1] ^ 0x80])
    with pytest.raises(LibsrtpError):
        lib_rx.unprotect(bad)
    with pytest.raises(AuthenticationFailed):
        ours_rx.unprotect(bad)


@pytest.mark.interop
def test_sha1_32_srtcp_tag_variants():
    """RFC 5764/libsrtp: 80-bit SRTCP tag for _32; with srtcp_tag_32 (ffmpeg's
    AES_CM_128_HMAC_SHA1_32) a 32-bit one, which libsrtp cannot verify."""
    profile = "AES_CM_128_HMAC_SHA1_32"
    key = keys(profile)
    report = rtcp_sr()
    default = SrtpSession(profile, key, "outbound").protect_rtcp(report)
    short = SrtpSession(profile, key, "outbound", srtcp_tag_32=True).protect_rtcp(report)
    assert len(default) == len(report) + 4 + 10
    assert len(short) == len(report) + 4 + 4
    assert short == default[:-6]  # same HMAC, truncated further
    assert libsrtp_session(profile, key, outbound=False).unprotect_rtcp(default) == report
    with pytest.raises(LibsrtpError):
        libsrtp_session(profile, key, outbound=False).unprotect_rtcp(short)
    rx32 = SrtpSession(profile, key, "inbound", srtcp_tag_32=True)
    assert rx32.unprotect_rtcp(short) == report
    # RTP is the same in both variants
    tx = SrtpSession(profile, key, "outbound", srtcp_tag_32=True)
    assert libsrtp_session(profile, key, outbound=False).unprotect(tx.protect(rtp(3))) == rtp(3)
    with pytest.raises(ValueError):
        SrtpSession("AES_CM_128_HMAC_SHA1_80", keys("AES_CM_128_HMAC_SHA1_80"), "inbound",
                    srtcp_tag_32=True)


# ---- SDES keys and profile names ----------------------------------------------------------

def test_profile_names_and_aliases():
    assert parse_profile("AES_CM_128_HMAC_SHA1_80") == lib.MC_SRTP_AES_CM_128_HMAC_SHA1_80
    assert parse_profile("SRTP_AES128_CM_HMAC_SHA1_32") == lib.MC_SRTP_AES_CM_128_HMAC_SHA1_32
    assert parse_profile("aead_aes_256_gcm") == lib.MC_SRTP_AEAD_AES_256_GCM
    assert parse_profile(7) == lib.MC_SRTP_AEAD_AES_128_GCM
    assert [key_salt_length(p) for p in PROFILES] == [30, 30, 28, 44]
    with pytest.raises(ValueError, match="unknown SRTP crypto-suite"):
        parse_profile("F8_128_HMAC_SHA1_80")
    with pytest.raises(ValueError):
        parse_profile(3)


@pytest.mark.parametrize("profile", PROFILES)
def test_inline_key_round_trip(profile):
    key = keys(profile)
    params = format_inline_key(key)
    assert params.startswith("inline:")
    assert parse_inline_key(params, profile) == key
    assert parse_inline_key(params + "|2^20", profile) == key  # lifetime is ignored
    tx = SrtpSession(profile, params, "outbound")
    rx = SrtpSession(profile, key, "inbound")
    assert rx.unprotect(tx.protect(rtp(1))) == rtp(1)


def test_inline_key_errors_are_clear():
    good = base64.b64encode(bytes(30)).decode()
    with pytest.raises(ValueError, match="not valid base64"):
        parse_inline_key("inline:" + good[:-2] + "*=", "AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(ValueError, match="not valid base64"):
        parse_inline_key("inline:" + good[:-1], "AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(ValueError, match="is 28 bytes; AES_CM_128_HMAC_SHA1_80 needs 30"):
        parse_inline_key("inline:" + base64.b64encode(bytes(28)).decode(),
                         "AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(ValueError, match="AEAD_AES_256_GCM needs 44"):
        parse_inline_key("inline:" + good, "AEAD_AES_256_GCM")
    with pytest.raises(ValueError, match="must start with 'inline:'"):
        parse_inline_key(good, "AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(ValueError, match="MKI"):
        parse_inline_key("inline:" + good + "|2^20|1:4", "AES_CM_128_HMAC_SHA1_80")
    with pytest.raises(ValueError, match="needs 30 bytes"):
        SrtpSession("AES_CM_128_HMAC_SHA1_80", bytes(29), "inbound")
    with pytest.raises(ValueError, match="direction"):
        SrtpSession("AES_CM_128_HMAC_SHA1_80", bytes(30), "both")


def test_native_create_validates_arguments():
    out = ffi.new("mc_srtp **")
    key = bytes(30)
    assert lib.mc_srtp_create(3, key, 30, 0, 0, 0, out) == lib.MC_E_UNSUPPORTED
    assert lib.mc_srtp_create(1, key, 29, 0, 0, 0, out) == lib.MC_E_INVAL
    assert lib.mc_srtp_create(1, key, 30, 0, 0, 0x100, out) == lib.MC_E_INVAL
    assert out[0] == ffi.NULL
    assert lib.mc_srtp_create(1, key, 30, 0, 0, 0, out) == lib.MC_OK
    lib.mc_srtp_free(out[0])
    lib.mc_srtp_free(ffi.NULL)


# ---- ffmpeg: the two spellings of the _32 suite (docs/srtp.md, "The _32 trap") -----------

def _udp_pair() -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on 127.0.0.1 ports P and P+1 (ffmpeg sends SRTCP to P+1)."""
    for _ in range(50):
        rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp_sock.bind(("127.0.0.1", 0))
        rtcp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtcp_sock.bind(("127.0.0.1", rtp_sock.getsockname()[1] + 1))
            return rtp_sock, rtcp_sock
        except OSError:
            rtp_sock.close()
            rtcp_sock.close()
    raise RuntimeError("no free UDP port pair")


def _ffmpeg_srtp_capture(suite: str, key: bytes) -> tuple[list[bytes], list[bytes]]:
    rtp_sock, rtcp_sock = _udp_pair()
    port = rtp_sock.getsockname()[1]
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=8000", "-t", "1", "-c:a", "pcm_mulaw",
           "-ar", "8000", "-ac", "1", "-ssrc", "1234", "-payload_type", "0", "-f", "rtp",
           "-srtp_out_suite", suite, "-srtp_out_params", base64.b64encode(key).decode(),
           f"srtp://127.0.0.1:{port}"]
    rtp_in: list[bytes] = []
    rtcp_in: list[bytes] = []
    with rtp_sock, rtcp_sock, subprocess.Popen(cmd, stdout=subprocess.DEVNULL) as proc:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ready, _, _ = select.select([rtp_sock, rtcp_sock], [], [], 0.3)
            for s in ready:
                (rtp_in if s is rtp_sock else rtcp_in).append(s.recv(4096))
            if not ready and proc.poll() is not None:
                break
        proc.wait(timeout=10)
        assert proc.returncode == 0
    return rtp_in, rtcp_in


@pytest.mark.interop
@pytest.mark.parametrize("suite,tag_32", [("AES_CM_128_HMAC_SHA1_32", True),
                                          ("SRTP_AES128_CM_HMAC_SHA1_32", False)])
def test_ffmpeg_sha1_32_srtcp_tag_length(suite, tag_32):
    """ffmpeg's AES_CM_128_HMAC_SHA1_32 tags SRTCP with 32 bits (srtcp_tag_32=True);
    its SRTP_AES128_CM_HMAC_SHA1_32 with 80 bits (the RFC 5764 default)."""
    key = random.Random(5).randbytes(30)
    rtp_in, rtcp_in = _ffmpeg_srtp_capture(suite, key)
    assert rtp_in and rtcp_in
    right = SrtpSession("AES_CM_128_HMAC_SHA1_32", key, "inbound", srtcp_tag_32=tag_32)
    wrong = SrtpSession("AES_CM_128_HMAC_SHA1_32", key, "inbound", srtcp_tag_32=not tag_32)
    for datagram in rtp_in:
        header = right.unprotect(datagram)[:12]
        assert struct.unpack("!BBHII", header)[4] == 1234
    for datagram in rtcp_in:
        report = right.unprotect_rtcp(datagram)
        assert report[1] == 200 and struct.unpack("!I", report[4:8])[0] == 1234  # SR
        with pytest.raises(AuthenticationFailed):
            wrong.unprotect_rtcp(datagram)
    assert right.stats.auth_failures == 0
    assert right.stats.rtp_packets == len(rtp_in) and right.stats.rtcp_packets == len(rtcp_in)


# ---- differential: ROC estimation and the replay window against libsrtp -------------------

@st.composite
def _send_and_delivery(draw):
    """Sequence numbers a sender uses (rising, with gaps, across the wrap) and the
    order in which a receiver gets them (reordered, duplicated, lost)."""
    start = draw(st.integers(0, 65535))
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 1, 2, 7, 100, 3000, 20000]),
                          min_size=1, max_size=120))
    seqs = [start]
    for step in steps:
        seqs.append(seqs[-1] + step)
    n = len(seqs)
    delivery = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3 * n))
    return seqs, delivery


@pytest.mark.interop
@settings(max_examples=60, deadline=None)
@given(case=_send_and_delivery(),
       profile=st.sampled_from(["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"]))
def test_roc_and_replay_decisions_match_libsrtp(case, profile):
    """Whatever order packets arrive in, we accept exactly the packets libsrtp accepts
    (same 128-packet window), and return the same plaintext."""
    seqs, delivery = case
    key = keys(profile, seed=len(seqs))
    tx = SrtpSession(profile, key, "outbound")
    packets = [tx.protect(rtp(s & 0xFFFF, payload=struct.pack("!Q", s))) for s in seqs]
    ours = SrtpSession(profile, key, "inbound", replay_window=128)
    policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=LIBSRTP[profile])
    policy.window_size = 128
    theirs = Session(policy)
    accepted = 0
    for i in delivery:
        try:
            mine = ours.unprotect(packets[i])
        except (AuthenticationFailed, ReplayDetected):
            mine = None
        try:
            reference = theirs.unprotect(packets[i])
        except LibsrtpError:
            reference = None
        assert mine == reference, (i, seqs[i])
        accepted += mine is not None
    assert ours.stats.rtp_packets == accepted


# ---- a pure-Python reference (tests only): KDF, AES-CM SRTCP with and without E --------------

def _ref_kdf(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """RFC 3711 4.3.3 with key_derivation_rate 0: AES-CM(master_key, (salt ^ label<<48) * 2^16)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    x = bytearray(master_salt.ljust(14, b"\0"))
    x[7] ^= label
    enc = Cipher(algorithms.AES(master_key), modes.CTR(bytes(x) + b"\0\0")).encryptor()
    return enc.update(bytes(length)) + enc.finalize()


def _ref_cm_xor(key: bytes, salt: bytes, ssrc: int, index: int, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    iv = int.from_bytes(salt, "big") << 16 ^ ssrc << 64 ^ index << 16
    enc = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return enc.update(data) + enc.finalize()


def test_rfc3711_b3_reference_kdf_matches_the_rfc():
    assert _ref_kdf(rfc3711.B3_MASTER_KEY, rfc3711.B3_MASTER_SALT, 0, 16) == rfc3711.B3_CIPHER_KEY
    assert _ref_kdf(rfc3711.B3_MASTER_KEY, rfc3711.B3_MASTER_SALT, 2, 14) == rfc3711.B3_CIPHER_SALT
    assert _ref_kdf(rfc3711.B3_MASTER_KEY, rfc3711.B3_MASTER_SALT, 1, 94) == rfc3711.B3_AUTH_KEY


def test_srtcp_aes_cm_against_the_reference():
    """SRTCP keys (labels 3, 4, 5), IV, E flag and index layout, independently of libsrtp:
    our first SRTCP packet equals the reference's, and an authenticated-only (E=0) packet
    built by the reference is accepted and left as it was."""
    import hashlib
    import hmac
    master_key, master_salt = rfc3711.B3_MASTER_KEY, rfc3711.B3_MASTER_SALT
    k_e, k_a, k_s = (_ref_kdf(master_key, master_salt, 3, 16),
                     _ref_kdf(master_key, master_salt, 4, 20),
                     _ref_kdf(master_key, master_salt, 5, 14))
    report = rtcp_sr(ssrc=0xDECAFBAD, extra=bytes(range(24)))
    body = report[:8] + _ref_cm_xor(k_e, k_s, 0xDECAFBAD, 0, report[8:]) + struct.pack("!I", 0x80000000)
    expected = body + hmac.new(k_a, body, hashlib.sha1).digest()[:10]
    tx = SrtpSession("AES_CM_128_HMAC_SHA1_80", master_key + master_salt, "outbound")
    assert tx.protect_rtcp(report) == expected

    plain = report + struct.pack("!I", 7)  # E = 0, index 7
    tagged = plain + hmac.new(k_a, plain, hashlib.sha1).digest()[:10]
    rx = SrtpSession("AES_CM_128_HMAC_SHA1_80", master_key + master_salt, "inbound")
    assert rx.unprotect_rtcp(tagged) == report
    with pytest.raises(ReplayDetected):
        rx.unprotect_rtcp(tagged)
    forged = bytearray(tagged)
    forged[-14] ^= 0x80  # set E on a packet that was not encrypted: the tag covers E
    fresh = SrtpSession("AES_CM_128_HMAC_SHA1_80", master_key + master_salt, "inbound")
    with pytest.raises(AuthenticationFailed):
        fresh.unprotect_rtcp(bytes(forged))
    assert fresh.unprotect_rtcp(tagged) == report

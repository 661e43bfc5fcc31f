"""Write the seed corpus of native/fuzz/srtp_fuzz.c (run from the repository root).

Seeds use the fuzz target's fixed key (byte i = i*37+11), so the SRTP/SRTCP
seeds authenticate and the fuzzer starts past the tag check; the RTP/RTCP
seeds for the round-trip modes include the RFC 7714 section 16/17 packets.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mediacore.srtp import SrtpSession, key_salt_length  # noqa: E402
from tests.mediacore.vectors import rfc7714  # noqa: E402

OUT = Path(__file__).resolve().parents[2] / "native" / "fuzz" / "corpus" / "srtp"
PROFILES = ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM",
            "AEAD_AES_256_GCM"]
KEY = bytes((i * 37 + 11) & 0xFF for i in range(44))


def rtp(seq: int, payload: bytes, cc: int = 0, ext: bytes | None = None) -> bytes:
    b0 = 0x80 | cc | (0x10 if ext is not None else 0)
    head = struct.pack("!BBHII", b0, 111, seq & 0xFFFF, seq * 960, 0x5EED) + bytes(4 * cc)
    if ext is not None:
        head += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    return head + payload


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rtps = [rtp(40000, bytes(40)), rtp(65535, bytes(range(100)), cc=2, ext=b"\x10\xaa\0\0"),
            rfc7714.RTP_PACKET]
    rtcps = [rfc7714.RTCP_PACKET, struct.pack("!BBHI", 0x81, 201, 7, 0x5EED) + bytes(24)]
    for p_index, profile in enumerate(PROFILES):
        key = KEY[:key_salt_length(profile)]
        tx = SrtpSession(profile, key, "outbound")
        chunks = b"".join(bytes([len(c)]) + c for c in (tx.protect(p) for p in rtps))
        (OUT / f"{profile}-srtp").write_bytes(bytes([p_index | 0 << 2 | 0x20]) + chunks)
        chunks = b"".join(bytes([len(c)]) + c for c in (tx.protect_rtcp(p) for p in rtcps))
        (OUT / f"{profile}-srtcp").write_bytes(bytes([p_index | 1 << 2 | 0x20]) + chunks)
        chunks = b"".join(bytes([len(c), 0]) + c for c in rtps)
        (OUT / f"{profile}-rtp-roundtrip").write_bytes(bytes([p_index | 2 << 2]) + chunks)
        chunks = b"".join(bytes([len(c), 5]) + c for c in rtcps)
        (OUT / f"{profile}-rtcp-roundtrip").write_bytes(bytes([p_index | 3 << 2 | 0x10]) + chunks)


if __name__ == "__main__":
    main()

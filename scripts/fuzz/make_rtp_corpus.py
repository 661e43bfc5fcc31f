"""Write the seed corpora of rtp_fuzz and rtcp_fuzz (native/fuzz/corpus/rtp,
native/fuzz/corpus/rtcp) from packets built with mediacore.rtp.

Run from the repository root: .venv/bin/python scripts/fuzz/make_rtp_corpus.py
"""

from __future__ import annotations

import struct
from pathlib import Path

from mediacore import rtp
from mediacore.rtp import ReportBlock, RtcpWriter, SenderInfo

HERE = Path(__file__).resolve().parents[2] / "native" / "fuzz"  # the C targets and corpora


def rtp_seeds() -> dict[str, bytes]:
    audio = rtp.RtpPacket(payload_type=111, sequence_number=65534, timestamp=2**32 - 960,
                          ssrc=0x11223344, marker=1, extension_profile=rtp.ONE_BYTE,
                          extension=rtp.audio_level_element(True, 30), payload=b"\xfc" * 160)
    two = rtp.RtpPacket(payload_type=96, sequence_number=1, csrc=[1, 2, 3],
                        extension_profile=0x1000,
                        extension=rtp.build_extension(0x1000, [(1, b""), (200, b"x" * 20)]),
                        payload=b"\x7c\x85" + b"v" * 1000, padding_length=4)
    plain = rtp.RtpPacket(payload_type=0, sequence_number=7, payload=b"\xff" * 160)
    # a stream of records {u16 length, packet} with reordering, a gap and a duplicate
    stream = b""
    for seq in [65533, 65534, 0, 65535, 2, 3, 3, 5, 4, 40000, 40001, 40002]:
        pkt = rtp.RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960,
                            payload=bytes([seq & 255]) * 20).serialize()
        stream += struct.pack("!H", len(pkt)) + pkt
    return {"audio_level": audio.serialize(), "two_byte_csrc_padding": two.serialize(),
            "plain": plain.serialize(), "stream": stream}


def rtcp_seeds() -> dict[str, bytes]:
    blocks = [ReportBlock(0xAABBCCDD, 25, -3, 70000, 123, 0x12345678, 65536)]
    return {
        "sr_sdes": RtcpWriter().sr(SenderInfo(1, 2**63, 3, 4, 5), blocks)
        .sdes_cname(1, b"bot@example").data(),
        "rr_nack_pli": RtcpWriter().rr(2, blocks * 2).nack(2, 1, [65535, 0, 3, 40, 41])
        .pli(2, 1).data(),
        "fir_bye": RtcpWriter().fir(2, [(1, 9), (5, 10)]).bye([1, 2], b"bye").data(),
    }


def main() -> None:
    for name, seeds in (("rtp", rtp_seeds()), ("rtcp", rtcp_seeds())):
        d = HERE / "corpus" / name
        d.mkdir(parents=True, exist_ok=True)
        for fname, data in seeds.items():
            (d / fname).write_bytes(data)


if __name__ == "__main__":
    main()

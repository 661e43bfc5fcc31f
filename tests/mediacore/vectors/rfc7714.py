"""RFC 7714 (AES-GCM for SRTP) sections 16 and 17 test vectors.

The vectors are given with the session key and session salt (no key
derivation); the same key and salt serve SRTP and SRTCP. Section 17's preamble
prints an RTCP packet that differs from the one its subsections encrypt; the
subsections are consistent with each other and are what is used here.
"""

KEY_128 = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
KEY_256 = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
SALT = bytes.fromhex("517569642070726f2071756f")  # "Quid pro quo"

# ---- section 16: SRTP ------------------------------------------------------
RTP_SSRC = 0x5501A0B2
RTP_SEQ = 0xF17B
RTP_IV = bytes.fromhex("51753c6580c2726f20718414")  # (00 00 | SSRC | ROC 0 | SEQ) xor salt
RTP_PACKET = bytes.fromhex(
    "8040f17b8041f8d35501a0b2"                       # 12-octet header
    "47616c6c696120657374206f6d6e697320646976"       # "Gallia est omnis divisa in partes tres"
    "69736120696e2070617274657320747265"
    "73"
)
SRTP_128 = bytes.fromhex(  # 16.1.1 encrypted and tagged packet
    "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a"
    "51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce"
)
SRTP_256 = bytes.fromhex(  # 16.2.1 encrypted and tagged packet
    "8040f17b8041f8d35501a0b232b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a02"
    "76ffae0f1ba63799b87b7aa3db36dfffd6b0f9bb7878d7a76c13"
)

# ---- section 17: SRTCP -----------------------------------------------------
RTCP_SSRC = 0x4D617273  # "Mars"
SRTCP_INDEX = 0x5D4
RTCP_IV = bytes.fromhex("517524055203726f207170bb")  # (00 00 | SSRC | 00 00 | index) xor salt
RTCP_PACKET = bytes.fromhex(
    "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61"
    "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
)
SRTCP_128 = bytes.fromhex(  # 17.1 encrypted and tagged, E=1, index 0x5d4
    "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda"
    "4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4"
)
SRTCP_256 = bytes.fromhex(  # 17.2 encrypted and tagged, E=1
    "81c8000d4d617273d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be"
    "8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be800005d4"
)
SRTCP_128_TAG_ONLY = bytes.fromhex(  # 17.3 tagged only, E=0: the whole packet is AAD
    "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61"
    "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef841dd9683dd78ec92ae58790125f62b3000005d4"
)

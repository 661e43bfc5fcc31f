"""RFC 3711 (SRTP) Appendix B test vectors.

B.2: AES-CM keystream for a session key and a pre-shifted session salt, with
SSRC, ROC and SEQ all zero, so the IV of RFC 3711 section 4.1.1 is the salt
followed by two zero bytes. The keystream segment is 1044512 octets (65282
blocks); the RFC lists its first and last three blocks.

B.3: key derivation (section 4.3) with key_derivation_rate 0 and index 0.
"""

# ---- B.2 AES-CM test vectors ----------------------------------------------
B2_SESSION_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
B2_SESSION_SALT = bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD")  # 14 octets, "already shifted"
B2_SEGMENT_LENGTH = 1044512
B2_KEYSTREAM_FIRST = bytes.fromhex(
    "E03EAD0935C95E80E166B16DD92B4EB4"   # counter F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000
    "D23513162B02D0F72A43A2FE4A5F97AB"   # ...0001
    "41E95B3BB0A2E8DD477901E4FCA894C0"   # ...0002
)
B2_KEYSTREAM_LAST = bytes.fromhex(
    "EC8CDF7398607CB0F2D21675EA9EA1E4"   # counter F0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF
    "362B7C3C6773516318A077D7FC5073AE"   # ...FF00
    "6A2CC3787889374FBEB4C81B17BA6C44"   # ...FF01
)

# ---- B.3 key derivation test vectors --------------------------------------
B3_MASTER_KEY = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
B3_MASTER_SALT = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
B3_CIPHER_KEY = bytes.fromhex("C61E7A93744F39EE10734AFE3FF7A087")    # label 0x00
B3_CIPHER_SALT = bytes.fromhex("30CBBC08863D8C85D49DB34A9AE1")       # label 0x02
B3_AUTH_KEY = bytes.fromhex(                                          # label 0x01, 94 octets
    "CEBE321F6FF7716B6FD4AB49AF256A15"
    "6D38BAA48F0A0ACF3C34E2359E6CDBCE"
    "E049646C43D9327AD175578EF7227098"
    "6371C10C9A369AC2F94A8C5FBCDDDC25"
    "6D6E919A48B610EF17C2041E47403576"
    "6B68642C59BBFC2F34DB60DBDFB2"
)
# HMAC-SHA1 uses a 160-bit session authentication key (RFC 3711 section 8.2):
# the first 20 octets of the PRF output above.
B3_AUTH_KEY_SHA1 = B3_AUTH_KEY[:20]

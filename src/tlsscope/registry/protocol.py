"""Small registries written by hand from the RFCs, and well-known code points
that are not (or not yet, in our IANA copy) in the IANA registries.

Every table names its source.  Names follow the RFC presentation language.
"""

from __future__ import annotations

# ContentType -- RFC 8446 §5.1 / B.1; tls12_cid: RFC 9146 §3 (IANA tls-parameters-5).
CONTENT_TYPES: dict[int, str] = {
    20: "change_cipher_spec",
    21: "alert",
    22: "handshake",
    23: "application_data",
    24: "heartbeat",  # RFC 6520 §2
    25: "tls12_cid",  # RFC 9146 §3
    26: "ack",  # RFC 9147 §7 (DTLS 1.3)
}

# AlertLevel -- RFC 5246 §7.2 (removed from TLS 1.3 semantics, still on the wire).
ALERT_LEVELS: dict[int, str] = {
    1: "warning",
    2: "fatal",
}

# AlertDescription -- RFC 8446 §6 / B.2, plus values RFC 8446 dropped that
# older versions define (RFC 5246 §7.2, RFC 2246 §7.2) and later additions.
ALERT_DESCRIPTIONS: dict[int, str] = {
    0: "close_notify",
    10: "unexpected_message",
    20: "bad_record_mac",
    21: "decryption_failed_RESERVED",  # RFC 5246 §7.2.2
    22: "record_overflow",
    30: "decompression_failure_RESERVED",  # RFC 5246 §7.2.2
    40: "handshake_failure",
    41: "no_certificate_RESERVED",  # SSL 3.0 only, RFC 6101 §5.4.2
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    50: "decode_error",
    51: "decrypt_error",
    60: "export_restriction_RESERVED",  # RFC 5246 §7.2.2
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",  # RFC 7507 §2
    90: "user_canceled",
    100: "no_renegotiation_RESERVED",  # RFC 5246 §7.2.2
    109: "missing_extension",
    110: "unsupported_extension",
    111: "certificate_unobtainable_RESERVED",  # RFC 6066 §9
    112: "unrecognized_name",
    113: "bad_certificate_status_response",
    114: "bad_certificate_hash_value_RESERVED",  # RFC 6066 §9
    115: "unknown_psk_identity",  # RFC 4279 §2
    116: "certificate_required",
    120: "no_application_protocol",  # RFC 7301 §3.2
    121: "ech_required",  # draft-ietf-tls-esni §11.2
}

# ProtocolVersion -- RFC 8446 §4.2.1 / B.3.1 and the earlier specifications.
# Drafts of TLS 1.3 used 0x7f00 | draft (RFC 8446 §4.2.1 note); experimental
# variants (Google 0x7eXX, Facebook 0xfbXX) are generated in version_name().
VERSIONS: dict[int, str] = {
    0x0002: "SSL 2.0",  # SSLv2 CLIENT-HELLO version field
    0x0300: "SSL 3.0",  # RFC 6101
    0x0301: "TLS 1.0",  # RFC 2246
    0x0302: "TLS 1.1",  # RFC 4346
    0x0303: "TLS 1.2",  # RFC 5246
    0x0304: "TLS 1.3",  # RFC 8446
    0x0100: "DTLS 1.0 (OpenSSL pre 0.9.8f)",
    0xFEFF: "DTLS 1.0",  # RFC 4347
    0xFEFD: "DTLS 1.2",  # RFC 6347
    0xFEFC: "DTLS 1.3",  # RFC 9147
}

# CompressionMethod -- RFC 5246 §7.4.1.2, RFC 3749 §2 (DEFLATE), RFC 3943 §2 (LZS).
COMPRESSION_METHODS: dict[int, str] = {
    0: "null",
    1: "DEFLATE",
    64: "LZS",
}

# ECPointFormat -- RFC 8422 §5.1.2 (ansiX962_compressed_*: RFC 4492 §5.1.2, deprecated).
EC_POINT_FORMATS: dict[int, str] = {
    0: "uncompressed",
    1: "ansiX962_compressed_prime",
    2: "ansiX962_compressed_char2",
}

# PskKeyExchangeMode -- RFC 8446 §4.2.9.
PSK_KEY_EXCHANGE_MODES: dict[int, str] = {
    0: "psk_ke",
    1: "psk_dhe_ke",
}

# CertificateCompressionAlgorithm -- RFC 8879 §3 / §7.3.
CERT_COMPRESSION_ALGORITHMS: dict[int, str] = {
    1: "zlib",
    2: "brotli",
    3: "zstd",
}

# ClientCertificateType -- RFC 5246 §7.4.4, RFC 4346, RFC 8422 §5.5, RFC 9189 (GOST).
CLIENT_CERTIFICATE_TYPES: dict[int, str] = {
    1: "rsa_sign",
    2: "dss_sign",
    3: "rsa_fixed_dh",
    4: "dss_fixed_dh",
    5: "rsa_ephemeral_dh_RESERVED",
    6: "dss_ephemeral_dh_RESERVED",
    20: "fortezza_dms_RESERVED",
    64: "ecdsa_sign",
    65: "rsa_fixed_ecdh",
    66: "ecdsa_fixed_ecdh",
    67: "gost_sign256",
    68: "gost_sign512",
}

# CertificateStatusType -- RFC 6066 §8 (ocsp), RFC 6961 §2.2 (ocsp_multi).
CERTIFICATE_STATUS_TYPES: dict[int, str] = {
    1: "ocsp",
    2: "ocsp_multi",
}

# HeartbeatMode -- RFC 6520 §2 (extension), HeartbeatMessageType -- RFC 6520 §3.
HEARTBEAT_MODES: dict[int, str] = {
    1: "peer_allowed_to_send",
    2: "peer_not_allowed_to_send",
}

# NameType of the server_name extension -- RFC 6066 §3.
NAME_TYPES: dict[int, str] = {
    0: "host_name",
}

# Extension types seen on the wire but missing from the 2023 IANA copy.
EXTRA_EXTENSION_TYPES: dict[int, str] = {
    13172: "next_protocol_negotiation",  # 0x3374, draft-agl-tls-nextprotoneg-04
    17513: "application_settings_old",  # 0x4469, draft-vvv-tls-alps-01 (ALPS, Chrome < 2024)
    17613: "application_settings",  # 0x44cd, ALPS new code point (Chrome 2024, BoringSSL)
    30031: "channel_id_old",  # 0x754f, draft-balfanz-tls-channelid-00
    30032: "channel_id",  # 0x7550, draft-balfanz-tls-channelid-01
    64768: "ech_outer_extensions",  # 0xfd00, draft-ietf-tls-esni-13 §5.1
    65037: "encrypted_client_hello",  # 0xfe0d, draft-ietf-tls-esni-13 §11.1
    65445: "quic_transport_parameters_draft",  # 0xffa5, draft-ietf-quic-tls-27 §8.2
    65486: "encrypted_server_name",  # 0xffce, draft-ietf-tls-esni-01 §8.1
}

# Supported groups seen on the wire but missing from IANA.
EXTRA_SUPPORTED_GROUPS: dict[int, str] = {
    0xFE30: "X25519Kyber512Draft00",  # Cloudflare post-quantum experiment (2022)
}

# TLS 1.2 SignatureAndHashAlgorithm pairs (RFC 5246 §7.4.1.4.1) that have no
# TLS 1.3 SignatureScheme name; named "<signature>_<hash>".
LEGACY_HASH_ALGORITHMS: dict[int, str] = {
    1: "md5", 2: "sha1", 3: "sha224", 4: "sha256", 5: "sha384", 6: "sha512",
}
LEGACY_SIGNATURE_ALGORITHMS: dict[int, str] = {
    1: "rsa", 2: "dsa", 3: "ecdsa",
}
EXTRA_SIGNATURE_SCHEMES: dict[int, str] = {
    0xEEEE: "gostr34102012_256",  # RFC 9189 §4.2.3 (TLS 1.2 GOST)
    0xEFEF: "gostr34102012_512",  # RFC 9189 §4.2.3
    0xEDED: "gostr34102001",  # draft-smyshlyaev-tls12-gost-suites
}

# Cipher suites seen on the wire that IANA never assigned (attributes in suites.py).
EXTRA_CIPHER_SUITES: dict[int, str] = {
    # draft-ietf-tls-56-bit-ciphersuites-01 (1999 "export1024" suites)
    0x0060: "TLS_RSA_EXPORT1024_WITH_RC4_56_MD5",
    0x0061: "TLS_RSA_EXPORT1024_WITH_RC2_CBC_56_MD5",
    0x0062: "TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA",
    0x0063: "TLS_DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA",
    0x0064: "TLS_RSA_EXPORT1024_WITH_RC4_56_SHA",
    0x0065: "TLS_DHE_DSS_EXPORT1024_WITH_RC4_56_SHA",
    0x0066: "TLS_DHE_DSS_WITH_RC4_128_SHA",
    # pre-standard ChaCha20-Poly1305 (draft-agl-tls-chacha20poly1305-04, Chrome 2014-2016)
    0xCC13: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
    0xCC14: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
    0xCC15: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
    # Netscape FIPS suites (SSL 3.0 era)
    0xFEFE: "SSL_RSA_FIPS_WITH_DES_CBC_SHA",
    0xFEFF: "SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA",
}

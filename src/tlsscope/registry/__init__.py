"""Names and attributes of TLS code points.

Models keep raw integers; these functions turn them into names at the edges.
Every ``*_name`` function returns a string for any integer: the registered
name, ``"GREASE (0x0a0a)"`` for RFC 8701 values where GREASE applies, or
``"unknown (0x1234)"`` (two hex digits for one-byte registries).
"""

from __future__ import annotations

from . import _iana, protocol
from .suites import (
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    TLS_FALLBACK_SCSV,
    CipherSuiteInfo,
    derive,
)

__all__ = [
    "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    "TLS_FALLBACK_SCSV",
    "CipherSuiteInfo",
    "CIPHER_SUITES",
    "EXTENSION_TYPES",
    "SUPPORTED_GROUPS",
    "SIGNATURE_SCHEMES",
    "alert_description_name",
    "alert_level_name",
    "cert_compression_algorithm_name",
    "certificate_status_type_name",
    "cipher_suite_info",
    "cipher_suite_name",
    "client_certificate_type_name",
    "compression_method_name",
    "content_type_name",
    "ec_point_format_name",
    "extension_name",
    "group_name",
    "handshake_type_name",
    "heartbeat_mode_name",
    "is_grease",
    "is_grease_u8",
    "name_type_name",
    "psk_key_exchange_mode_name",
    "signature_scheme_name",
    "version_name",
]

# Merged tables: IANA first, then well-known unregistered code points (protocol.py).
CIPHER_SUITES: dict[int, str] = {**protocol.EXTRA_CIPHER_SUITES, **_iana.CIPHER_SUITES}
EXTENSION_TYPES: dict[int, str] = {**protocol.EXTRA_EXTENSION_TYPES, **_iana.EXTENSION_TYPES}
SUPPORTED_GROUPS: dict[int, str] = {**protocol.EXTRA_SUPPORTED_GROUPS, **_iana.SUPPORTED_GROUPS}
SIGNATURE_SCHEMES: dict[int, str] = {**protocol.EXTRA_SIGNATURE_SCHEMES, **_iana.SIGNATURE_SCHEMES}

_SUITE_INFO: dict[int, CipherSuiteInfo] = {}
for _code, _name in CIPHER_SUITES.items():
    _info = derive(_code, _name)
    if _info is not None:
        _SUITE_INFO[_code] = _info
del _code, _name, _info


def is_grease(code: int) -> bool:
    """RFC 8701 GREASE value of a 16-bit registry: 0x?a?a with both bytes equal."""
    return 0 <= code <= 0xFFFF and code & 0x0F0F == 0x0A0A and code >> 8 == code & 0xFF


def is_grease_u8(code: int) -> bool:
    """RFC 8701 §2 GREASE for one-byte registries (PskKeyExchangeMode): 0x0B + 0x1F * n."""
    return 0 <= code <= 0xFF and code % 0x1F == 0x0B


def _unknown(code: int, width: int) -> str:
    return f"unknown (0x{code:0{width}x})"


def _name16(table: dict[int, str], code: int) -> str:
    name = table.get(code)
    if name is not None:
        return name
    if is_grease(code):
        return f"GREASE (0x{code:04x})"
    return _unknown(code, 4)


def _name8(table: dict[int, str], code: int) -> str:
    name = table.get(code)
    return name if name is not None else _unknown(code, 2)


def cipher_suite_name(code: int) -> str:
    return _name16(CIPHER_SUITES, code)


def cipher_suite_info(code: int) -> CipherSuiteInfo | None:
    """Derived attributes; None for GREASE and unknown suites."""
    return _SUITE_INFO.get(code)


def extension_name(code: int) -> str:
    return _name16(EXTENSION_TYPES, code)


def group_name(code: int) -> str:
    return _name16(SUPPORTED_GROUPS, code)


def signature_scheme_name(code: int) -> str:
    name = SIGNATURE_SCHEMES.get(code)
    if name is not None:
        return name
    # TLS 1.2 SignatureAndHashAlgorithm {hash, signature} (RFC 5246 §7.4.1.4.1)
    hash_name = protocol.LEGACY_HASH_ALGORITHMS.get(code >> 8)
    sig_name = protocol.LEGACY_SIGNATURE_ALGORITHMS.get(code & 0xFF)
    if hash_name and sig_name and 0 <= code <= 0xFFFF:
        return f"{sig_name}_{hash_name}"
    return _name16({}, code)


def handshake_type_name(code: int) -> str:
    return _name8(_iana.HANDSHAKE_TYPES, code)


def content_type_name(code: int) -> str:
    return _name8(protocol.CONTENT_TYPES, code)


def alert_level_name(code: int) -> str:
    return _name8(protocol.ALERT_LEVELS, code)


def alert_description_name(code: int) -> str:
    return _name8(protocol.ALERT_DESCRIPTIONS, code)


def compression_method_name(code: int) -> str:
    return _name8(protocol.COMPRESSION_METHODS, code)


def ec_point_format_name(code: int) -> str:
    return _name8(protocol.EC_POINT_FORMATS, code)


def psk_key_exchange_mode_name(code: int) -> str:
    if code not in protocol.PSK_KEY_EXCHANGE_MODES and is_grease_u8(code):
        return f"GREASE (0x{code:02x})"
    return _name8(protocol.PSK_KEY_EXCHANGE_MODES, code)


def cert_compression_algorithm_name(code: int) -> str:
    return _name16(protocol.CERT_COMPRESSION_ALGORITHMS, code)


def client_certificate_type_name(code: int) -> str:
    return _name8(protocol.CLIENT_CERTIFICATE_TYPES, code)


def certificate_status_type_name(code: int) -> str:
    return _name8(protocol.CERTIFICATE_STATUS_TYPES, code)


def heartbeat_mode_name(code: int) -> str:
    return _name8(protocol.HEARTBEAT_MODES, code)


def name_type_name(code: int) -> str:
    return _name8(protocol.NAME_TYPES, code)


def version_name(code: int) -> str:
    name = protocol.VERSIONS.get(code)
    if name is not None:
        return name
    hi, lo = code >> 8, code & 0xFF
    if hi == 0x7F and lo:  # RFC 8446 drafts: 0x7f00 | draft number
        return f"TLS 1.3 (draft {lo})"
    if hi == 0x7E and lo:  # BoringSSL/Chrome TLS 1.3 experiment variants
        return f"TLS 1.3 (Google experiment {lo})"
    if hi == 0xFB and lo:  # Facebook Fizz: 0xfb00 | draft number
        return f"TLS 1.3 (Facebook draft {lo})"
    return _name16({}, code)

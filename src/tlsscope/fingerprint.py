"""TLS client/server fingerprints: JA3, JA3S and JA4 (client).

Pure functions over code points; the caller takes them from a decoded
ClientHello/ServerHello.  GREASE values (RFC 8701) are removed everywhere.

JA3/JA3S (Salesforce): ``version,ciphers,extensions,groups,point_formats``
(ServerHello: ``version,cipher,extensions``), decimal values joined by ``-``,
hashed with MD5.

JA4 follows FoxIO's specification (technical_details/JA4.md in FoxIO-LLC/ja4,
JA4 client fingerprint, BSD 3-Clause).  JA4S, JA4X, JA4H and the other JA4+
methods are under a different licence and are not implemented.

JA4 edge cases -- where this implementation follows the specification and
FoxIO's reference implementations (python/ja4.py, rust/ja4, as captured in
their test data) produce something else:

=========================================  ===============================  ==================================
Case                                       This implementation (spec)       FoxIO implementations
=========================================  ===============================  ==================================
First ALPN value starts or ends with a     first and last characters of     ``9`` for each non-ASCII end
non-alphanumeric byte (e.g. 0xAB 0xCD)     its hex form (``ad``)            character (``99``); a non-alnum
                                                                            ASCII byte is used as is
First ALPN value is one character ``a``    ``aa`` (both first and last)     ``a0`` (rust)
ja4_o when the only extensions are SNI     hash of the original list        ``000000000000`` (python)
and/or ALPN                                (``0000``), as ja4_ro shows it
GREASE inside signature_algorithms         removed ("ignore GREASE          kept
                                           anywhere")
supported_versions lists DTLS versions     newest version (lowest code      numerically highest value
                                           point, 0xfefc -> ``d3``)
=========================================  ===============================  ==================================

Other rules, as specified: the version is the highest non-GREASE value of
supported_versions, else legacy_version (TLS 1.3 drafts 0x7fXX are unknown:
``00``); counts include SNI, ALPN and SCSVs and cap at 99; the sorted
extension list drops SNI (0x0000) and ALPN (0x0010) but the original-order
forms (ja4_o, ja4_ro) keep them; signature algorithms stay in wire order and
are appended after ``_`` only when present; an empty list hashes to
``000000000000``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from tlsscope.registry import is_grease

__all__ = ["JA3", "JA4", "ja3", "ja3s", "ja4"]


@dataclass(frozen=True, slots=True)
class JA3:
    string: str
    hash: str  # md5 hex of string


@dataclass(frozen=True, slots=True)
class JA4:
    ja4: str  # sorted, hashed
    ja4_r: str  # sorted, raw
    ja4_o: str  # original order, hashed
    ja4_ro: str  # original order, raw


def _no_grease(values: Sequence[int]) -> list[int]:
    return [v for v in values if not is_grease(v)]


def _dashed(values: Sequence[int]) -> str:
    return "-".join(str(v) for v in values)


def _ja3(string: str) -> JA3:
    # MD5 is the JA3 definition, not a security use.
    return JA3(string, hashlib.md5(string.encode("ascii"), usedforsecurity=False).hexdigest())


def ja3(legacy_version: int, cipher_suites: Sequence[int], extension_types: Sequence[int],
        supported_groups: Sequence[int], ec_point_formats: Sequence[int]) -> JA3:
    """JA3 of a ClientHello (GREASE removed from every list)."""
    fields = (
        str(legacy_version),
        _dashed(_no_grease(cipher_suites)),
        _dashed(_no_grease(extension_types)),
        _dashed(_no_grease(supported_groups)),
        _dashed(ec_point_formats),  # one-byte values: never GREASE
    )
    return _ja3(",".join(fields))


def ja3s(legacy_version: int, cipher_suite: int, extension_types: Sequence[int]) -> JA3:
    """JA3S of a ServerHello."""
    return _ja3(f"{legacy_version},{cipher_suite},{_dashed(_no_grease(extension_types))}")


# JA4 version codes (JA4.md, "TLS and DTLS Version")
_JA4_VERSIONS: dict[int, str] = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_EXT_SERVER_NAME = 0x0000
_EXT_ALPN = 0x0010
_EMPTY_HASH = "000000000000"


def _version_rank(version: int) -> int:
    # DTLS code points count down (1.0 = 0xfeff, 1.3 = 0xfefc): newest is lowest.
    return 0x10000 + (0xFF - (version & 0xFF)) if version >> 8 == 0xFE else version


def _ja4_version(legacy_version: int, supported_versions: Sequence[int] | None) -> str:
    offered = _no_grease(supported_versions or ())
    version = max(offered, key=_version_rank) if offered else legacy_version
    return _JA4_VERSIONS.get(version, "00")


def _alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _ja4_alpn(alpn: Sequence[bytes]) -> str:
    if not alpn or not alpn[0]:
        return "00"
    first = bytes(alpn[0])
    if _alnum(first[0]) and _alnum(first[-1]):
        return chr(first[0]) + chr(first[-1])
    hexed = first.hex()
    return hexed[0] + hexed[-1]


def _hex_list(values: Sequence[int]) -> str:
    return ",".join(f"{v:04x}" for v in values)


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12] if text else _EMPTY_HASH


def ja4(*, legacy_version: int, supported_versions: Sequence[int] | None, cipher_suites: Sequence[int],
        extension_types: Sequence[int], sni: bool, alpn: Sequence[bytes],
        signature_algorithms: Sequence[int], transport: str = "t") -> JA4:
    """JA4 client fingerprint.

    ``supported_versions`` is None when the extension is absent; ``alpn`` the
    protocol names of the ALPN extension in wire order (empty when absent);
    ``transport`` is ``"t"`` (TCP), ``"q"`` (QUIC) or ``"d"`` (DTLS).
    """
    ciphers = _no_grease(cipher_suites)
    extensions = _no_grease(extension_types)
    sigs = _hex_list(_no_grease(signature_algorithms))
    prefix = (
        f"{transport}{_ja4_version(legacy_version, supported_versions)}{'d' if sni else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}{_ja4_alpn(alpn)}"
    )

    def parts(cipher_list: list[int], ext_list: list[int]) -> tuple[str, str, str, str]:
        raw_ciphers = _hex_list(cipher_list)
        raw_exts = _hex_list(ext_list)
        raw_c = f"{raw_exts}_{sigs}" if sigs else raw_exts
        # an empty extension list is all zeros even if signature algorithms were given
        hashed_c = _hash12(raw_c) if ext_list else _EMPTY_HASH
        return raw_ciphers, _hash12(raw_ciphers), raw_c, hashed_c

    sorted_exts = sorted(e for e in extensions if e not in (_EXT_SERVER_NAME, _EXT_ALPN))
    r_b, h_b, r_c, h_c = parts(sorted(ciphers), sorted_exts)
    ro_b, ho_b, ro_c, ho_c = parts(ciphers, extensions)
    return JA4(
        ja4=f"{prefix}_{h_b}_{h_c}",
        ja4_r=f"{prefix}_{r_b}_{r_c}",
        ja4_o=f"{prefix}_{ho_b}_{ho_c}",
        ja4_ro=f"{prefix}_{ro_b}_{ro_c}",
    )

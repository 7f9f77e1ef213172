"""Cipher-suite attributes, derived by parsing the IANA names.

A name is ``TLS_<key exchange>_<authentication>[_EXPORT]_WITH_<cipher>_<mac>``
(TLS <= 1.2) or ``TLS_<AEAD>_<hash>`` (TLS 1.3, RFC 8446 §B.4).  The key
exchange/authentication prefix is one of a handful of forms (table below);
the cipher part is algorithm, key size and mode.  Names that do not fit that
grammar (SCSVs, GOST, SM4, integrity-only TLS 1.3) are in ``_OVERRIDES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF  # RFC 5746 §3.3
TLS_FALLBACK_SCSV = 0x5600  # RFC 7507 §2


@dataclass(frozen=True, slots=True)
class CipherSuiteInfo:
    code: int
    name: str
    key_exchange: str
    authentication: str
    cipher: str
    key_bits: int  # secret key bits: 40 for export ciphers, 0 for NULL
    mode: str
    mac: str | None  # record MAC for non-AEAD suites, None for AEAD
    prf_hash: str  # TLS 1.2 PRF hash / TLS 1.3 HKDF hash
    aead: bool
    forward_secrecy: bool
    export: bool
    anonymous: bool
    null_cipher: bool
    rc4: bool
    des: bool  # single DES, DES40 or 3DES
    tls13: bool
    signaling: bool  # SCSVs: not a cipher suite, a signal in the list


# "<kx>_<auth>" prefix of a TLS <= 1.2 name (EXPORT/EXPORT1024/FIPS removed)
# -> (key_exchange, authentication).  Anonymous (EC)DH sends ephemeral
# parameters in ServerKeyExchange (RFC 5246 §7.4.3, RFC 8422 §2.5), so it is
# DHE/ECDHE without authentication, as OpenSSL classifies it.
_KX_AUTH: dict[str, tuple[str, str]] = {
    "NULL": ("NULL", "NULL"),
    "RSA": ("RSA", "RSA"),
    "DH_DSS": ("DH", "DSS"),
    "DH_RSA": ("DH", "RSA"),
    "DHE_DSS": ("DHE", "DSS"),
    "DHE_RSA": ("DHE", "RSA"),
    "DH_anon": ("DHE", "anon"),
    "KRB5": ("KRB5", "KRB5"),
    "PSK": ("PSK", "PSK"),
    "DHE_PSK": ("DHE_PSK", "PSK"),
    "PSK_DHE": ("DHE_PSK", "PSK"),  # 0xC0AA/0xC0AB, RFC 6655 spells it this way
    "RSA_PSK": ("RSA_PSK", "RSA"),
    "ECDHE_PSK": ("ECDHE_PSK", "PSK"),
    "ECDH_ECDSA": ("ECDH", "ECDSA"),
    "ECDHE_ECDSA": ("ECDHE", "ECDSA"),
    "ECDH_RSA": ("ECDH", "RSA"),
    "ECDHE_RSA": ("ECDHE", "RSA"),
    "ECDH_anon": ("ECDHE", "anon"),
    "SRP_SHA": ("SRP", "SRP"),
    "SRP_SHA_RSA": ("SRP", "SRP_RSA"),
    "SRP_SHA_DSS": ("SRP", "SRP_DSS"),
    "ECCPWD": ("ECCPWD", "ECCPWD"),  # RFC 8492
}

_FORWARD_SECRET_KX = frozenset({"DHE", "ECDHE", "DHE_PSK", "ECDHE_PSK", "ECCPWD", "TLS13"})
_MACS = frozenset({"NULL", "MD5", "SHA", "SHA256", "SHA384"})
_AEAD_MODES = frozenset({"GCM", "CCM", "CCM_8", "POLY1305", "MGM"})

# Fixed-size ciphers: name -> (key bits, mode).
_FIXED_CIPHERS: dict[str, tuple[int, str]] = {
    "NULL": (0, "NULL"),
    "CHACHA20_POLY1305": (256, "POLY1305"),
    "3DES_EDE_CBC": (168, "CBC"),
    "DES_CBC": (56, "CBC"),
    "DES40_CBC": (40, "CBC"),
    "IDEA_CBC": (128, "CBC"),
    "SEED_CBC": (128, "CBC"),
}
# Sized ciphers: AES_128_GCM, CAMELLIA_256_CBC, ARIA_128_GCM, AES_128_CCM_8, RC4_40, RC2_CBC_40
_SIZED_CIPHER = re.compile(
    r"^(?:(?P<block>AES|CAMELLIA|ARIA)_(?P<bits>\d+)_(?P<mode>GCM|CBC|CCM_8|CCM)"
    r"|RC4_(?P<rc4>\d+)|RC2_CBC_(?P<rc2>\d+))$"
)


def _cipher(cipher: str) -> tuple[int, str] | None:
    if cipher in _FIXED_CIPHERS:
        return _FIXED_CIPHERS[cipher]
    m = _SIZED_CIPHER.match(cipher)
    if m is None:
        return None
    if m["block"]:
        return int(m["bits"]), m["mode"]
    if m["rc4"]:
        return int(m["rc4"]), "STREAM"
    return int(m["rc2"]), "CBC"


# Suites whose names do not follow the grammar:
# code -> (key_exchange, authentication, cipher, key_bits, mode, mac, prf_hash, tls13)
_OVERRIDES: dict[int, tuple[str, str, str, int, str, str | None, str, bool]] = {
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV: ("NULL", "NULL", "NULL", 0, "NULL", None, "sha256", False),
    TLS_FALLBACK_SCSV: ("NULL", "NULL", "NULL", 0, "NULL", None, "sha256", False),
    # RFC 8998: ShangMi suites for TLS 1.3
    0x00C6: ("TLS13", "TLS13", "SM4_GCM", 128, "GCM", None, "sm3", True),
    0x00C7: ("TLS13", "TLS13", "SM4_CCM", 128, "CCM", None, "sm3", True),
    # RFC 9150: integrity-only TLS 1.3 (HMAC, no encryption)
    0xC0B4: ("TLS13", "TLS13", "NULL", 0, "NULL", "SHA256", "sha256", True),
    0xC0B5: ("TLS13", "TLS13", "NULL", 0, "NULL", "SHA384", "sha384", True),
    # RFC 9189: GOST suites for TLS 1.2 (VKO key agreement against the server's static key)
    0xC100: ("GOST", "GOST", "KUZNYECHIK_CTR_OMAC", 256, "CTR", "OMAC", "streebog256", False),
    0xC101: ("GOST", "GOST", "MAGMA_CTR_OMAC", 256, "CTR", "OMAC", "streebog256", False),
    0xC102: ("GOST", "GOST", "28147_CNT_IMIT", 256, "CNT", "IMIT", "streebog256", False),
    # RFC 9367: GOST suites for TLS 1.3
    0xC103: ("TLS13", "TLS13", "KUZNYECHIK_MGM_L", 256, "MGM", None, "streebog256", True),
    0xC104: ("TLS13", "TLS13", "MAGMA_MGM_L", 256, "MGM", None, "streebog256", True),
    0xC105: ("TLS13", "TLS13", "KUZNYECHIK_MGM_S", 256, "MGM", None, "streebog256", True),
    0xC106: ("TLS13", "TLS13", "MAGMA_MGM_S", 256, "MGM", None, "streebog256", True),
}


def _parse(code: int, name: str) -> tuple[str, str, str, int, str, str | None, str, bool, bool] | None:
    """(kx, auth, cipher, bits, mode, mac, prf, tls13, export) from the name, or None."""
    if code in _OVERRIDES:
        kx, auth, cipher, bits, mode, mac, prf, tls13 = _OVERRIDES[code]
        return kx, auth, cipher, bits, mode, mac, prf, tls13, False
    body = name.removeprefix("TLS_").removeprefix("SSL_").removesuffix("_OLD")
    if "_WITH_" not in body:  # TLS 1.3: TLS_<AEAD>_<HKDF hash>
        cipher, _, hash_name = body.rpartition("_")
        parsed = _cipher(cipher)
        if parsed is None or hash_name not in ("SHA256", "SHA384"):
            return None
        bits, mode = parsed
        return "TLS13", "TLS13", cipher, bits, mode, None, hash_name.lower(), True, False
    kx_part, _, rest = body.partition("_WITH_")
    tokens = kx_part.split("_")
    export = any(t.startswith("EXPORT") for t in tokens)
    kx_part = "_".join(t for t in tokens if not t.startswith("EXPORT") and t != "FIPS")
    if kx_part not in _KX_AUTH:
        return None
    kx, auth = _KX_AUTH[kx_part]
    head, _, last = rest.rpartition("_")
    mac_token = last if head and last in _MACS else None
    cipher = head if mac_token else rest
    cipher = cipher.replace("DES_CBC_40", "DES40_CBC")  # KRB5 export names
    parsed = _cipher(cipher)
    if parsed is None:
        return None
    bits, mode = parsed
    aead = mode in _AEAD_MODES
    prf = "sha384" if mac_token == "SHA384" else "sha256"
    mac = None if aead else mac_token
    return kx, auth, cipher, bits, mode, mac, prf, False, export


def derive(code: int, name: str) -> CipherSuiteInfo | None:
    """Attributes of one suite from its name; None when the name does not parse."""
    parsed = _parse(code, name)
    if parsed is None:
        return None
    kx, auth, cipher, bits, mode, mac, prf, tls13, export = parsed
    signaling = code in (TLS_EMPTY_RENEGOTIATION_INFO_SCSV, TLS_FALLBACK_SCSV)
    return CipherSuiteInfo(
        code=code,
        name=name,
        key_exchange=kx,
        authentication=auth,
        cipher=cipher,
        key_bits=bits,
        mode=mode,
        mac=mac,
        prf_hash=prf,
        aead=mode in _AEAD_MODES,
        # TLS 1.3 is forward secret except in psk_ke mode, which the suite does not decide
        forward_secrecy=kx in _FORWARD_SECRET_KX,
        export=export,
        anonymous=auth == "anon",
        null_cipher=cipher == "NULL" and not signaling,
        rc4=cipher.startswith("RC4"),
        des=cipher.startswith(("DES", "3DES")),
        tls13=tls13,
        signaling=signaling,
    )

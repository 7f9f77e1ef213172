"""What decoding a handshake message depends on, made explicit.

The same bytes mean different things depending on the negotiated version and on
the key exchange of the negotiated cipher suite; the connection passes both.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DecodeContext", "has_signature_algorithm", "is_tls13"]


@dataclass(frozen=True, slots=True)
class DecodeContext:
    from_client: bool
    version: int | None = None        # negotiated version once known; None before ServerHello
    key_exchange: str | None = None   # "ECDHE","DHE","RSA","PSK","ECDHE_PSK","DHE_PSK","RSA_PSK","ECDH","DH","SRP"
    signed_kx: bool = True            # False for anon suites (no signature in ServerKeyExchange)


def is_tls13(version: int | None) -> bool:
    """TLS 1.3, its drafts (0x7fxx, Facebook's 0xfbxx) or DTLS 1.3."""
    return version is not None and (version in (0x0304, 0xFEFC) or version >> 8 in (0x7F, 0xFB))


def has_signature_algorithm(version: int | None) -> bool:
    """TLS 1.2 / DTLS 1.2 and later carry a SignatureAndHashAlgorithm before signatures."""
    if version is None:
        return True
    if version >> 8 == 0xFE:          # DTLS counts down: 1.2 = 0xfefd, 1.3 = 0xfefc
        return version <= 0xFEFD
    return version >= 0x0303

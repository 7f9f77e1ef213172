"""Key derivation for SSL 3.0 and TLS 1.0-1.2: PRF, master secret (incl.
extended master secret), key block, Finished verify_data.

``version`` is the negotiated protocol version (0x0300 .. 0x0303);
``prf_hash`` is the suite's PRF hash for TLS 1.2 ("sha256"/"sha384").
"""

from __future__ import annotations

from .tls13 import hash_bytes, hmac_bytes

__all__ = [
    "SSL3", "TLS10", "TLS11", "TLS12", "p_hash", "prf", "ssl3_prf", "derive_master_secret",
    "key_block", "finished_verify_data", "handshake_hash", "ssl3_finished",
]

SSL3, TLS10, TLS11, TLS12 = 0x0300, 0x0301, 0x0302, 0x0303


def p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash of RFC 5246 §5."""
    out = b""
    a = seed
    while len(out) < length:
        a = hmac_bytes(hash_name, secret, a)
        out += hmac_bytes(hash_name, secret, a + seed)
    return out[:length]


def prf(version: int, prf_hash: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """The TLS PRF: P_<prf_hash> for TLS 1.2, P_MD5 xor P_SHA1 for TLS 1.0/1.1 (RFC 2246 §5)."""
    if version >= TLS12:
        return p_hash(prf_hash or "sha256", secret, label + seed, length)
    half = (len(secret) + 1) // 2
    s1, s2 = secret[:half], secret[len(secret) - half:]
    md5 = p_hash("md5", s1, label + seed, length)
    sha = p_hash("sha1", s2, label + seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha))


def ssl3_prf(secret: bytes, seed: bytes, length: int) -> bytes:
    """SSL 3.0's MD5/SHA-1 construction (RFC 6101 §6.1, §6.2.2): 'A', 'BB', 'CCC', ..."""
    out = b""
    i = 0
    while len(out) < length:
        salt = bytes([0x41 + i]) * (i + 1)
        out += hash_bytes("md5", secret + hash_bytes("sha1", salt + secret + seed))
        i += 1
    return out[:length]


def derive_master_secret(version: int, prf_hash: str, pre_master_secret: bytes,
                         client_random: bytes, server_random: bytes,
                         session_hash: bytes | None = None) -> bytes:
    """48-byte master secret; ``session_hash`` selects the extended master secret (RFC 7627)."""
    if version == SSL3:
        return ssl3_prf(pre_master_secret, client_random + server_random, 48)
    if session_hash is not None:
        return prf(version, prf_hash, pre_master_secret, b"extended master secret", session_hash, 48)
    return prf(version, prf_hash, pre_master_secret, b"master secret",
               client_random + server_random, 48)


def key_block(version: int, prf_hash: str, master: bytes, client_random: bytes,
              server_random: bytes, length: int) -> bytes:
    if version == SSL3:
        return ssl3_prf(master, server_random + client_random, length)
    return prf(version, prf_hash, master, b"key expansion", server_random + client_random, length)


def handshake_hash(version: int, prf_hash: str, messages: bytes) -> bytes:
    """The hash that Finished (and the extended master secret) are computed over."""
    if version >= TLS12:
        return hash_bytes(prf_hash or "sha256", messages)
    return hash_bytes("md5", messages) + hash_bytes("sha1", messages)


_PAD1 = b"\x36" * 48
_PAD2 = b"\x5c" * 48


def ssl3_finished(master: bytes, messages: bytes, from_client: bool) -> bytes:
    """SSL 3.0 Finished: md5_hash || sha_hash (RFC 6101 §5.6.9)."""
    sender = b"CLNT" if from_client else b"SRVR"
    md5 = hash_bytes("md5", master + _PAD2 + hash_bytes("md5", messages + sender + master + _PAD1))
    sha = hash_bytes("sha1", master + _PAD2[:40]
                     + hash_bytes("sha1", messages + sender + master + _PAD1[:40]))
    return md5 + sha


def finished_verify_data(version: int, prf_hash: str, master: bytes, messages: bytes,
                         from_client: bool) -> bytes:
    """Expected Finished body for the handshake ``messages`` sent before it."""
    if version == SSL3:
        return ssl3_finished(master, messages, from_client)
    label = b"client finished" if from_client else b"server finished"
    return prf(version, prf_hash, master, label, handshake_hash(version, prf_hash, messages), 12)

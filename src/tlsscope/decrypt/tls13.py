"""TLS 1.3 key schedule (RFC 8446 §7): HKDF-Expand-Label, Derive-Secret,
traffic keys, Finished and KeyUpdate.

Secrets come from the key log, so a passive observer mostly needs the
"traffic secret -> key/iv" step; the full schedule (early/handshake/master
secrets) is here too so that RFC 8448's published values can be checked.
"""

from __future__ import annotations

import functools
import hashlib
import hmac as _hmac

from cryptography.hazmat.primitives import hashes

__all__ = [
    "HASHES", "hash_bytes", "hmac_bytes", "hkdf_extract", "hkdf_expand", "hkdf_expand_label",
    "derive_secret", "early_secret", "handshake_secret", "master_secret", "traffic_key_iv",
    "finished_key", "finished_verify_data", "next_traffic_secret", "message_hash",
    "HELLO_RETRY_REQUEST_RANDOM",
]

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha1": hashes.SHA1,
    "md5": hashes.MD5,
}

# RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest.
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


# Hashing and HMAC for the key schedule, PRF and transcripts go through the standard library
# (OpenSSL underneath, one C call each): building a cryptography Hash/HMAC object per call
# cost more than the hashing itself. Ciphers (AEAD, CBC) stay with cryptography.
_HASHLIB = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha1": hashlib.sha1, "md5": hashlib.md5}
_DIGEST_SIZE = {name: alg.digest_size for name, alg in HASHES.items()}


def hash_bytes(hash_name: str, data: bytes) -> bytes:
    return _HASHLIB[hash_name](data).digest()


def hmac_bytes(hash_name: str, key: bytes, data: bytes) -> bytes:
    return _hmac.digest(key, data, _HASHLIB[hash_name])


def hash_len(hash_name: str) -> int:
    return _DIGEST_SIZE[hash_name]


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    return hmac_bytes(hash_name, salt or bytes(hash_len(hash_name)), ikm)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    if length <= _DIGEST_SIZE[hash_name]:   # every TLS key, IV and secret: one block
        return _hmac.digest(prk, info + b"\x01", _HASHLIB[hash_name])[:length]
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac_bytes(hash_name, prk, block + info + bytes([counter]))
        out += block
        counter += 1
    return out[:length]


def hkdf_expand_label(hash_name: str, secret: bytes, label: bytes | str, context: bytes,
                      length: int, prefix: bytes = b"tls13 ") -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1); ``label`` without its prefix, which is "tls13 " except
    for DTLS 1.3 ("dtls13", RFC 9147 §5.9)."""
    if not isinstance(label, (str, bytes)):
        label = bytes(label)          # bytearray/memoryview: hashable for the prefix cache
    if context:
        info = _label_prefix(label, length, prefix) + bytes([len(context)]) + context
    else:
        info = _label_prefix(label, length, prefix) + b"\x00"
    return hkdf_expand(hash_name, secret, info, length)


@functools.lru_cache(maxsize=64)
def _label_prefix(label: bytes | str, length: int, prefix: bytes) -> bytes:
    """HkdfLabel up to its context: length, then the prefixed label (a few fixed labels)."""
    if isinstance(label, str):
        label = label.encode("ascii")
    full = prefix + label
    return length.to_bytes(2, "big") + bytes([len(full)]) + full


def derive_secret(hash_name: str, secret: bytes, label: str, messages_hash: bytes) -> bytes:
    """Derive-Secret with the transcript hash already computed."""
    return hkdf_expand_label(hash_name, secret, label, messages_hash, hash_len(hash_name))


def early_secret(hash_name: str, psk: bytes | None = None) -> bytes:
    return hkdf_extract(hash_name, b"", psk or bytes(hash_len(hash_name)))


def handshake_secret(hash_name: str, early: bytes, shared_secret: bytes) -> bytes:
    derived = derive_secret(hash_name, early, "derived", hash_bytes(hash_name, b""))
    return hkdf_extract(hash_name, derived, shared_secret)


def master_secret(hash_name: str, handshake: bytes) -> bytes:
    derived = derive_secret(hash_name, handshake, "derived", hash_bytes(hash_name, b""))
    return hkdf_extract(hash_name, derived, bytes(hash_len(hash_name)))


def traffic_key_iv(hash_name: str, secret: bytes, key_len: int, iv_len: int = 12,
                   prefix: bytes = b"tls13 ") -> tuple[bytes, bytes]:
    """[sender]_write_key and [sender]_write_iv from a traffic secret (§7.3)."""
    return (hkdf_expand_label(hash_name, secret, "key", b"", key_len, prefix),
            hkdf_expand_label(hash_name, secret, "iv", b"", iv_len, prefix))


def finished_key(hash_name: str, base_key: bytes, prefix: bytes = b"tls13 ") -> bytes:
    return hkdf_expand_label(hash_name, base_key, "finished", b"", hash_len(hash_name), prefix)


def finished_verify_data(hash_name: str, base_key: bytes, transcript_hash: bytes,
                         prefix: bytes = b"tls13 ") -> bytes:
    """Finished.verify_data (§4.4.4); ``base_key`` is the sender's handshake traffic secret."""
    return hmac_bytes(hash_name, finished_key(hash_name, base_key, prefix), transcript_hash)


def next_traffic_secret(hash_name: str, secret: bytes, prefix: bytes = b"tls13 ") -> bytes:
    """application_traffic_secret_N+1 after a KeyUpdate (§7.2)."""
    return hkdf_expand_label(hash_name, secret, "traffic upd", b"", hash_len(hash_name), prefix)


def message_hash(hash_name: str, client_hello1: bytes) -> bytes:
    """The synthetic handshake message that replaces ClientHello1 after a HelloRetryRequest (§4.4.1)."""
    digest = hash_bytes(hash_name, client_hello1)
    return bytes([254, 0, 0, len(digest)]) + digest

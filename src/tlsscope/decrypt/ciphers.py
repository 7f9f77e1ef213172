"""Record protection: open one protected record with known keys.

Cipher names are the ``cipher`` attribute of ``tlsscope.registry.CipherSuiteInfo``;
:data:`CIPHERS` maps them to what the record layer needs.  Every opener has
``open(seq, content_type, version, fragment) -> (content_type, plaintext)`` and
raises :class:`RecordAuthError` when the record does not authenticate.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers import algorithms as old_algorithms
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from .tls12 import SSL3, TLS11
from .tls13 import HASHES, hash_bytes, hmac_bytes

__all__ = ["CipherSpec", "CIPHERS", "MACS", "RecordAuthError", "cipher_spec",
           "tls13_opener", "tls12_opener", "RecordOpener", "protection_mask", "decode_truncated"]


class RecordAuthError(Exception):
    """A record that does not decrypt/authenticate with the keys in hand."""


@dataclass(frozen=True, slots=True)
class CipherSpec:
    kind: str                # "aead" | "cbc" | "stream" | "null"
    key_len: int             # bytes (for export ciphers: the expanded key length)
    fixed_iv_len: int        # TLS <= 1.2: AEAD salt or CBC IV from the key block
    block_size: int          # CBC block size, else 0
    record_iv_len: int       # explicit per-record nonce/IV bytes (TLS 1.1+ CBC: block size)
    tag_len: int = 0         # AEAD tag bytes
    algorithm: str = ""      # "AES", "CHACHA20", "3DES", "DES", "CAMELLIA", "SEED", "IDEA", "RC4", "RC2"
    export_key_len: int = 0  # export ciphers: secret key bytes taken from the key block
                             # (0: the whole key, e.g. EXPORT1024 DES)


CIPHERS: dict[str, CipherSpec] = {
    "AES_128_GCM": CipherSpec("aead", 16, 4, 0, 8, 16, "AES-GCM"),
    "AES_256_GCM": CipherSpec("aead", 32, 4, 0, 8, 16, "AES-GCM"),
    "AES_128_CCM": CipherSpec("aead", 16, 4, 0, 8, 16, "AES-CCM"),
    "AES_256_CCM": CipherSpec("aead", 32, 4, 0, 8, 16, "AES-CCM"),
    "AES_128_CCM_8": CipherSpec("aead", 16, 4, 0, 8, 8, "AES-CCM"),
    "AES_256_CCM_8": CipherSpec("aead", 32, 4, 0, 8, 8, "AES-CCM"),
    "CHACHA20_POLY1305": CipherSpec("aead", 32, 12, 0, 0, 16, "CHACHA20"),
    "AES_128_CBC": CipherSpec("cbc", 16, 16, 16, 16, 0, "AES"),
    "AES_256_CBC": CipherSpec("cbc", 32, 16, 16, 16, 0, "AES"),
    "CAMELLIA_128_CBC": CipherSpec("cbc", 16, 16, 16, 16, 0, "CAMELLIA"),
    "CAMELLIA_256_CBC": CipherSpec("cbc", 32, 16, 16, 16, 0, "CAMELLIA"),
    "SEED_CBC": CipherSpec("cbc", 16, 16, 16, 16, 0, "SEED"),
    "IDEA_CBC": CipherSpec("cbc", 16, 8, 8, 8, 0, "IDEA"),
    "3DES_EDE_CBC": CipherSpec("cbc", 24, 8, 8, 8, 0, "3DES"),
    "DES_CBC": CipherSpec("cbc", 8, 8, 8, 8, 0, "DES"),
    "DES40_CBC": CipherSpec("cbc", 8, 8, 8, 8, 0, "DES", export_key_len=5),
    "RC2_CBC_40": CipherSpec("cbc", 16, 8, 8, 8, 0, "RC2", export_key_len=5),
    # the 1999 EXPORT1024 drafts: 56-bit secrets expanded like the 40-bit ones
    "RC2_CBC_56": CipherSpec("cbc", 16, 8, 8, 8, 0, "RC2", export_key_len=7),
    "RC4_56": CipherSpec("stream", 16, 0, 0, 0, 0, "RC4", export_key_len=7),
    "RC4_128": CipherSpec("stream", 16, 0, 0, 0, 0, "RC4"),
    "RC4_40": CipherSpec("stream", 16, 0, 0, 0, 0, "RC4", export_key_len=5),
    "NULL": CipherSpec("null", 0, 0, 0, 0, 0, "NULL"),
}

# registry MAC name -> hash name
MACS: dict[str, str] = {"SHA": "sha1", "SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384",
                        "MD5": "md5"}


def cipher_spec(cipher: str) -> CipherSpec | None:
    return CIPHERS.get(cipher)


def _block_algorithm(name: str, key: bytes):
    if name == "AES":
        return algorithms.AES(key)
    if name == "CAMELLIA":
        return old_algorithms.Camellia(key)
    if name == "3DES":
        return old_algorithms.TripleDES(key)
    if name == "DES":
        return old_algorithms.TripleDES(key * 3)  # 3DES with K1=K2=K3 is single DES
    if name == "SEED":
        return old_algorithms.SEED(key)
    if name == "IDEA":
        return old_algorithms.IDEA(key)
    if name == "RC2":
        return old_algorithms.RC2(key)
    raise ValueError(f"no block cipher {name}")


def _aead(spec: CipherSpec, key: bytes):
    if spec.algorithm == "AES-GCM":
        return AESGCM(key)
    if spec.algorithm == "AES-CCM":
        return AESCCM(key, tag_length=spec.tag_len)
    if spec.algorithm == "CHACHA20":
        return ChaCha20Poly1305(key)
    raise ValueError(f"no AEAD {spec.algorithm}")


def protection_mask(algorithm: str, key: bytes):
    """The mask function of QUIC header protection (RFC 9001 §5.4.3, §5.4.4) and DTLS 1.3 record
    number encryption (RFC 9147 §4.2.3), which is the same: 16 bytes of ciphertext in, mask out.
    ``algorithm``: a CipherSpec algorithm ("AES-GCM", "AES-CCM" or "CHACHA20")."""
    if algorithm != "CHACHA20":
        return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update

    def chacha_mask(sample: bytes) -> bytes:
        # counter = sample[0:4] (little endian), nonce = sample[4:16]: cryptography's 16-byte
        # ChaCha20 "nonce" is exactly that concatenation, so the sample is passed as it is.
        return Cipher(algorithms.ChaCha20(key, sample), mode=None).encryptor().update(bytes(5))
    return chacha_mask


def decode_truncated(expected: int, truncated: int, nbits: int) -> int:
    """A full packet or record number from its low ``nbits`` bits: the candidate closest to
    ``expected`` (the next number due), as in RFC 9000 Appendix A.3, which RFC 9147 §4.2.2 reuses
    for DTLS 1.3 sequence numbers."""
    win = 1 << nbits
    hwin = win >> 1
    candidate = (expected & ~(win - 1)) | truncated
    if candidate <= expected - hwin and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate


def _xor_seq(iv: bytes, seq: int) -> bytes:
    return (int.from_bytes(iv, "big") ^ seq).to_bytes(len(iv), "big")


class RecordOpener:
    """Base: one direction's read state for one key epoch."""

    def open(self, seq: int, content_type: int, version: int, fragment: bytes) -> tuple[int, bytes]:
        raise NotImplementedError

    def catch_up(self, skipped_bytes: int, last_fragment_tail: bytes) -> None:
        """Records went by before the keys were known: advance chained state."""


class Tls13Aead(RecordOpener):
    def __init__(self, spec: CipherSpec, key: bytes, iv: bytes):
        self._aead = _aead(spec, key)
        self._iv = iv
        self._tag = spec.tag_len

    def open(self, seq, content_type, version, fragment):
        aad = bytes([content_type]) + version.to_bytes(2, "big") + len(fragment).to_bytes(2, "big")
        return self.open_with_aad(seq, aad, fragment)

    def open_with_aad(self, seq: int, aad: bytes, fragment: bytes) -> tuple[int, bytes]:
        """Open with the record header as the caller frames it (DTLS 1.3: the unified header)."""
        if len(fragment) < self._tag + 1:
            raise RecordAuthError(f"record of {len(fragment)} bytes is shorter than the AEAD tag")
        try:
            inner = self._aead.decrypt(_xor_seq(self._iv, seq), fragment, aad)
        except InvalidTag:
            raise RecordAuthError("AEAD tag mismatch") from None
        # TLSInnerPlaintext: content || type || zeros (RFC 8446 §5.2)
        end = len(inner)
        while end and inner[end - 1] == 0:
            end -= 1
        if not end:
            raise RecordAuthError("TLSInnerPlaintext has no content type (all padding)")
        return inner[end - 1], inner[:end - 1]


class Tls12Aead(RecordOpener):
    def __init__(self, spec: CipherSpec, key: bytes, fixed_iv: bytes):
        self._aead = _aead(spec, key)
        self._fixed = fixed_iv
        self._explicit = spec.record_iv_len
        self._tag = spec.tag_len

    def open(self, seq, content_type, version, fragment):
        if len(fragment) < self._explicit + self._tag:
            raise RecordAuthError(f"record of {len(fragment)} bytes is too short for the AEAD cipher")
        if self._explicit:
            nonce = self._fixed + fragment[:self._explicit]
            ciphertext = fragment[self._explicit:]
        else:  # RFC 7905: ChaCha20-Poly1305 nonce is the IV xor the sequence number
            nonce = _xor_seq(self._fixed, seq)
            ciphertext = fragment
        plain_len = len(ciphertext) - self._tag
        aad = (seq.to_bytes(8, "big") + bytes([content_type]) + version.to_bytes(2, "big")
               + plain_len.to_bytes(2, "big"))
        try:
            return content_type, self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise RecordAuthError("AEAD tag mismatch") from None


class _Mac:
    """HMAC (TLS) or the SSL 3.0 keyed hash over seq || type || [version] || length || content."""

    def __init__(self, mac_hash: str | None, mac_key: bytes, ssl3: bool):
        self.hash = mac_hash
        self.key = mac_key
        self.ssl3 = ssl3
        self.size = HASHES[mac_hash].digest_size if mac_hash else 0

    def compute(self, seq: int, content_type: int, version: int, content: bytes) -> bytes:
        if not self.hash:
            return b""
        if self.ssl3:
            pad = 48 if self.hash == "md5" else 40
            inner = hash_bytes(self.hash, self.key + b"\x36" * pad + seq.to_bytes(8, "big")
                               + bytes([content_type]) + len(content).to_bytes(2, "big") + content)
            return hash_bytes(self.hash, self.key + b"\x5c" * pad + inner)
        header = (seq.to_bytes(8, "big") + bytes([content_type]) + version.to_bytes(2, "big")
                  + len(content).to_bytes(2, "big"))
        return hmac_bytes(self.hash, self.key, header + content)


class CbcOpener(RecordOpener):
    def __init__(self, spec: CipherSpec, key: bytes, iv: bytes, mac: _Mac, version: int,
                 encrypt_then_mac: bool):
        # built once per key (fails early on an unsupported algorithm), reused for every record
        self._block = _block_algorithm(spec.algorithm, key)
        self._bs = spec.block_size
        self._iv = iv            # TLS 1.0/SSL 3.0: chained from the previous record
        self._explicit_iv = version >= TLS11
        self._mac = mac
        self._etm = encrypt_then_mac
        self._ssl3 = version == SSL3

    def catch_up(self, skipped_bytes, last_fragment_tail):
        tail = last_fragment_tail
        if self._etm:   # the record ends with its MAC; the IV is the last ciphertext block before it
            tail = tail[:len(tail) - self._mac.size]
        if not self._explicit_iv and len(tail) >= self._bs:
            self._iv = tail[-self._bs:]

    def open(self, seq, content_type, version, fragment):
        mac = self._mac
        bs = self._bs
        tag = b""
        if self._etm:
            if len(fragment) < mac.size:
                raise RecordAuthError("record shorter than its MAC")
            tag = fragment[len(fragment) - mac.size:]
            fragment = fragment[:len(fragment) - mac.size]
            if mac.compute(seq, content_type, version, fragment) != tag:
                if not self._explicit_iv and len(fragment) >= bs:
                    self._iv = fragment[-bs:]
                raise RecordAuthError("bad record MAC (encrypt-then-MAC)")
        if self._explicit_iv:
            iv, ciphertext = fragment[:bs], fragment[bs:]
        else:
            iv, ciphertext = self._iv, fragment
        if not ciphertext or len(ciphertext) % bs:
            raise RecordAuthError(f"ciphertext of {len(ciphertext)} bytes is not a whole number of "
                                  f"{bs}-byte blocks")
        if not self._explicit_iv:
            self._iv = ciphertext[-bs:]
        decryptor = Cipher(self._block, modes.CBC(iv)).decryptor()
        plain = decryptor.update(ciphertext) + decryptor.finalize()
        pad = plain[-1]
        if self._ssl3:
            if pad >= bs:
                raise RecordAuthError("bad padding")
        elif pad + 1 > len(plain) or plain[len(plain) - pad - 1:] != bytes([pad]) * (pad + 1):
            raise RecordAuthError("bad padding")
        plain = plain[:len(plain) - pad - 1]
        if self._etm:
            return content_type, plain
        if len(plain) < mac.size:
            raise RecordAuthError("record shorter than its MAC")
        content, tag = plain[:len(plain) - mac.size], plain[len(plain) - mac.size:]
        if mac.compute(seq, content_type, version, content) != tag:
            raise RecordAuthError("bad record MAC")
        return content_type, content


class StreamOpener(RecordOpener):
    """RC4 (keystream runs across records) or NULL encryption, MAC after the content."""

    def __init__(self, spec: CipherSpec, key: bytes, mac: _Mac):
        self._decryptor = (Cipher(old_algorithms.ARC4(key), None).decryptor()
                           if spec.kind == "stream" else None)
        self._mac = mac

    def catch_up(self, skipped_bytes, last_fragment_tail):
        while self._decryptor is not None and skipped_bytes > 0:
            n = min(skipped_bytes, 1 << 20)
            self._decryptor.update(bytes(n))
            skipped_bytes -= n

    def open(self, seq, content_type, version, fragment):
        plain = self._decryptor.update(fragment) if self._decryptor is not None else bytes(fragment)
        size = self._mac.size
        if len(plain) < size:
            raise RecordAuthError("record shorter than its MAC")
        content, tag = plain[:len(plain) - size], plain[len(plain) - size:]
        if self._mac.compute(seq, content_type, version, content) != tag:
            raise RecordAuthError("bad record MAC")
        return content_type, content


def tls13_opener(spec: CipherSpec, key: bytes, iv: bytes) -> RecordOpener:
    return Tls13Aead(spec, key, iv)


def tls12_opener(spec: CipherSpec, version: int, key: bytes, iv: bytes, mac_hash: str | None,
                 mac_key: bytes, encrypt_then_mac: bool = False) -> RecordOpener:
    """Read state for TLS <= 1.2 from the key-block pieces of one direction."""
    if spec.kind == "aead":
        return Tls12Aead(spec, key, iv)
    mac = _Mac(mac_hash, mac_key, version == SSL3)
    if spec.kind == "cbc":
        return CbcOpener(spec, key, iv, mac, version, encrypt_then_mac)
    return StreamOpener(spec, key, mac)

"""DTLS 1.3 record protection (RFC 9147 §4): one direction's keys for one epoch.

A protected DTLS 1.3 record has a unified header (0b001CSLEE): the two low bits of its epoch and
the 8 or 16 low bits of its sequence number, the latter encrypted with a mask computed from the
first 16 bytes of the ciphertext (§4.2.3, the same function as QUIC header protection). Keys come
from the TLS 1.3 traffic secrets with the "dtls13" label prefix (§5.9); the AEAD nonce is the IV
xor the 64-bit sequence number of the epoch, and the additional data is the header with the
sequence number in clear.

Epoch numbers (§6.1): 1 early data, 2 handshake, 3 the first application traffic secret, one more
per KeyUpdate.
"""

from __future__ import annotations

from .ciphers import CipherSpec, RecordAuthError, Tls13Aead, decode_truncated, protection_mask
from .tls13 import hkdf_expand_label, traffic_key_iv

LABEL_PREFIX = b"dtls13"
EPOCH_EARLY, EPOCH_HANDSHAKE, EPOCH_APPLICATION = 1, 2, 3

__all__ = ["LABEL_PREFIX", "EPOCH_EARLY", "EPOCH_HANDSHAKE", "EPOCH_APPLICATION", "EpochKeys"]


class EpochKeys:
    """One sender's read state in one epoch: AEAD, record number mask and the next sequence number
    expected (the reference for reconstructing the full number from its low bits, §4.2.2)."""

    __slots__ = ("epoch", "_aead", "_mask", "next_seq")

    def __init__(self, epoch: int, spec: CipherSpec, hash_name: str, secret: bytes):
        key, iv = traffic_key_iv(hash_name, secret, spec.key_len, 12, LABEL_PREFIX)
        sn_key = hkdf_expand_label(hash_name, secret, "sn", b"", spec.key_len, LABEL_PREFIX)
        self.epoch = epoch
        self._aead = Tls13Aead(spec, key, iv)
        self._mask = protection_mask(spec.algorithm, sn_key)
        self.next_seq = 0

    def open(self, header: bytes, fragment: bytes) -> tuple[int, int, bytes]:
        """(sequence number, inner content type, content) of one record; ``header`` is its unified
        header as on the wire. Raises RecordAuthError when it does not authenticate."""
        if len(fragment) < 16:
            raise RecordAuthError(f"record of {len(fragment)} bytes is too short to remove its "
                                  "record number encryption (16 bytes needed)")
        seq_len = 2 if header[0] & 0x08 else 1
        at = len(header) - seq_len - (2 if header[0] & 0x04 else 0)   # the sequence bytes' offset
        mask = self._mask(bytes(fragment[:16]))
        clear = bytearray(header)
        for i in range(seq_len):
            clear[at + i] ^= mask[i]
        low = int.from_bytes(clear[at:at + seq_len], "big")
        seq = decode_truncated(self.next_seq, low, 8 * seq_len)
        inner_type, content = self._aead.open_with_aad(seq, bytes(clear), bytes(fragment))
        if seq >= self.next_seq:
            self.next_seq = seq + 1
        return seq, inner_type, content

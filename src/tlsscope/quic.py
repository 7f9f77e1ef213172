"""QUIC Initial packets (RFC 9000, RFC 9001; QUIC v2 from RFC 9369), sans-I/O.

Scope: a passive observer can read every QUIC Initial packet. Their keys are not secret: they
derive from a published per-version salt and the Destination Connection ID of the client's first
Initial (RFC 9001 §5.2), both visible on the wire. So this module can remove header protection,
open the AEAD and hand back the CRYPTO frames that carry the ClientHello and ServerHello.
Handshake and 1-RTT packets are protected with secrets from the TLS key exchange; reading them
needs the key log and is not done here: their headers are parsed (kind, connection IDs, where they
sit in the datagram) and nothing more.

Layout: ``split_datagram`` walks the coalesced packets of one UDP datagram; ``InitialKeys``
derives the Initial secrets; ``InitialDecoder`` keeps the per-connection state (keys, a Retry,
largest packet numbers) and decrypts; ``CryptoStream`` reassembles one direction's CRYPTO bytes.
Bytes in, typed values out: no sockets, files or scapy here.
"""

from __future__ import annotations

import hmac
from bisect import bisect_right, insort
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .decrypt.tls13 import hkdf_expand_label, hkdf_extract

__all__ = [
    "QUIC_V1", "QUIC_V2", "QuicPacket", "InitialKeys", "InitialDecoder", "CryptoStream",
    "looks_like_quic", "split_datagram", "decode_packet_number",
]

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF
VERSION_NEGOTIATION = 0x00000000

# Initial salts: RFC 9001 §5.2 (v1), RFC 9369 §3.3.1 (v2).
_SALTS = {
    QUIC_V1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
    QUIC_V2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
}
# v2 changes the HKDF labels too (RFC 9369 §3.3.2): "quicv2 key" instead of "quic key".
_LABEL_PREFIX = {QUIC_V1: "quic", QUIC_V2: "quicv2"}
# Retry Integrity Tag key and nonce: RFC 9001 §5.8 (v1), RFC 9369 §3.3.3 (v2).
_RETRY_KEY_NONCE = {
    QUIC_V1: (bytes.fromhex("be0c690b9f66575a1d766b54e368c84e"), bytes.fromhex("461599d35d632bf2239825bb")),
    QUIC_V2: (bytes.fromhex("8fb4b01b56ac48e260fbcbcead7ccc92"), bytes.fromhex("d86969bc2d7c6d9990efb04a")),
}
_RETRY_AEAD: dict[int, AESGCM] = {}     # built on first use

# Long-header packet types (the two bits under 0x30). v2 rotates them (RFC 9369 §3.2) so that
# middleboxes which learned v1's numbering do not ossify on it.
_LONG_TYPES = {
    QUIC_V1: ("initial", "0rtt", "handshake", "retry"),
    QUIC_V2: ("retry", "initial", "0rtt", "handshake"),
}
_KNOWN_VERSIONS = frozenset((QUIC_V1, QUIC_V2, VERSION_NEGOTIATION))

MAX_CID_LEN = 20                # RFC 9000 §17.2: v1/v2 connection IDs are at most 20 bytes
MAX_STREAM_END = (1 << 62) - 1  # RFC 9000 §19.6: CRYPTO offset + length may not exceed this
_TAG_LEN = 16                   # AEAD_AES_128_GCM tag, also the Retry Integrity Tag
_SAMPLE_LEN = 16                # header protection sample (RFC 9001 §5.4.2)


@dataclass(slots=True)
class QuicPacket:
    # "initial" | "0rtt" | "handshake" | "retry" | "version_negotiation" | "1rtt"; "unknown"
    # (always with error set) when the header is too short or its version is not v1/v2.
    kind: str
    version: int              # 0 for version negotiation and 1-RTT (not on the wire)
    dcid: bytes
    scid: bytes               # b"" for 1-RTT (short header)
    offset: int               # where the packet starts in its datagram
    length: int               # bytes it takes in the datagram (coalesced packets follow it)
    packet_number: int | None = None     # Initial only, after header protection was removed
    crypto: list = field(default_factory=list)   # [(stream offset, bytes)] of CRYPTO frames
    frames: list = field(default_factory=list)   # frame type names in order, PADDING runs once
    token: bytes = b""        # Initial token / Retry token
    close: tuple | None = None   # CONNECTION_CLOSE in an Initial: (error_code, frame_type or None, reason)
    error: str | None = None  # why this packet could not be read


class _Malformed(ValueError):
    """A length or varint that points past the data: ends a header or frame walk."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """RFC 9000 §16 variable-length integer at ``pos``; (value, position after it)."""
    if pos >= end:
        raise _Malformed("truncated varint")
    first = data[pos]
    size = 1 << (first >> 6)
    if pos + size > end:
        raise _Malformed("truncated varint")
    value = first & 0x3F
    for i in range(pos + 1, pos + size):
        value = (value << 8) | data[i]
    return value, pos + size


def looks_like_quic(data: bytes) -> bool:
    """Cheap test for the capture edge: a UDP payload starting with a long-header packet of a
    version this module reads (v1, v2, or 0 = Version Negotiation)."""
    return (len(data) >= 7 and data[0] & 0xC0 == 0xC0 and data[5] <= MAX_CID_LEN
            and int.from_bytes(data[1:5], "big") in _KNOWN_VERSIONS)


def decode_packet_number(largest: int, truncated: int, nbits: int) -> int:
    """Full packet number from its truncated form (RFC 9000 Appendix A.3); ``largest`` is the
    largest packet number successfully processed in this space, -1 for none yet."""
    expected = largest + 1
    win = 1 << nbits
    hwin = win >> 1
    candidate = (expected & ~(win - 1)) | truncated
    if candidate <= expected - hwin and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate


def _walk(data: bytes):
    """Yield (QuicPacket, packet number offset or -1) for each coalesced packet; never raises."""
    pos, end = 0, len(data)
    while pos < end:
        if pos and not any(data[pos:]):
            return      # zero bytes after the last packet: datagram padding, not a packet
        first = data[pos]
        if not first & 0x80:
            # Short header (1-RTT): the DCID length is not on the wire (only the endpoints know
            # it), and with no Length field the packet takes the rest of the datagram.
            pkt = QuicPacket("1rtt", 0, b"", b"", pos, end - pos)
            if not first & 0x40:
                pkt.error = "not a QUIC packet (fixed bit clear)"
            yield pkt, -1
            return
        pkt, pn_offset = _long_header(data, pos, end)
        # Decide before yielding: the caller may set pkt.error (decryption), which must not
        # end the walk; only a header that lies, or a packet without a Length, does.
        last = pkt.error is not None or pkt.kind in ("retry", "version_negotiation")
        yield pkt, pn_offset
        if last:
            return
        pos += pkt.length


def _long_header(data: bytes, pos: int, end: int) -> tuple[QuicPacket, int]:
    """One long-header packet at ``pos``; errors are reported in the packet, not raised."""
    if end - pos < 7:
        return QuicPacket("unknown", 0, b"", b"", pos, end - pos, error="truncated long header"), -1
    first = data[pos]
    version = int.from_bytes(data[pos + 1:pos + 5], "big")
    types = _LONG_TYPES.get(version)
    if version == VERSION_NEGOTIATION:
        kind = "version_negotiation"
    elif types is None:
        return QuicPacket("unknown", version, b"", b"", pos, end - pos,
                          error=f"unsupported QUIC version 0x{version:08x}"), -1
    else:
        kind = types[(first >> 4) & 3]
    pkt = QuicPacket(kind, version, b"", b"", pos, end - pos)
    try:
        i = pos + 5
        dcid_len = data[i]
        if version and dcid_len > MAX_CID_LEN:
            raise _Malformed(f"DCID length {dcid_len} > {MAX_CID_LEN}")
        if i + 1 + dcid_len >= end:
            raise _Malformed("truncated DCID")
        pkt.dcid = data[i + 1:i + 1 + dcid_len]
        i += 1 + dcid_len
        scid_len = data[i]
        if version and scid_len > MAX_CID_LEN:
            raise _Malformed(f"SCID length {scid_len} > {MAX_CID_LEN}")
        if i + 1 + scid_len > end:
            raise _Malformed("truncated SCID")
        pkt.scid = data[i + 1:i + 1 + scid_len]
        i += 1 + scid_len
        if kind == "version_negotiation":
            # RFC 9000 §17.2.1: a list of 32-bit versions, the rest of the datagram.
            if i == end or (end - i) % 4:
                raise _Malformed("version list is empty or not a multiple of 4 bytes")
            return pkt, -1
        if kind == "retry":
            # RFC 9000 §17.2.5: token, then the 16-byte Retry Integrity Tag; takes the rest.
            if end - i < _TAG_LEN:
                raise _Malformed("Retry shorter than its integrity tag")
            pkt.token = data[i:end - _TAG_LEN]
            return pkt, -1
        if kind == "initial":
            token_len, i = _varint(data, i, end)
            if token_len > end - i:
                raise _Malformed("token length past the end of the datagram")
            pkt.token = data[i:i + token_len]
            i += token_len
        length, i = _varint(data, i, end)
        if length > end - i:
            raise _Malformed(f"Length {length} past the end of the datagram ({end - i} bytes left)")
        if length == 0:
            raise _Malformed("Length 0 (no packet number)")
        pkt.length = i + length - pos
        return pkt, i
    except (_Malformed, IndexError) as exc:
        pkt.error = f"bad {kind} header: {exc}"
        return pkt, -1


def split_datagram(data: bytes) -> list[QuicPacket]:
    """The headers of every coalesced packet of one UDP datagram (no decryption). A header that
    lies ends the walk with an error packet. Never raises."""
    return [pkt for pkt, _ in _walk(bytes(data))]


class _Direction:
    """AEAD and header-protection ciphers of one sender, built once and reused."""
    __slots__ = ("aead", "iv", "hp")

    def __init__(self, key: bytes, iv: bytes, hp: bytes):
        self.aead = AESGCM(key)
        self.iv = int.from_bytes(iv, "big")
        # ECB on single 16-byte blocks is stateless, so one encryptor serves every mask.
        self.hp = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()


class InitialKeys:
    """Initial secrets of both directions from a version and the client's original DCID
    (RFC 9001 §5.2; v2 salt and labels from RFC 9369 §3.3). ValueError for other versions."""

    def __init__(self, version: int, dcid: bytes):
        salt = _SALTS.get(version)
        if salt is None:
            raise ValueError(f"no Initial salt for QUIC version 0x{version:08x}")
        self.version = version
        self.dcid = bytes(dcid)
        initial_secret = hkdf_extract("sha256", salt, self.dcid)
        self.client_secret = hkdf_expand_label("sha256", initial_secret, "client in", b"", 32)
        self.server_secret = hkdf_expand_label("sha256", initial_secret, "server in", b"", 32)
        prefix = _LABEL_PREFIX[version]
        self.client_key, self.client_iv, self.client_hp = _packet_keys(prefix, self.client_secret)
        self.server_key, self.server_iv, self.server_hp = _packet_keys(prefix, self.server_secret)
        self._client = _Direction(self.client_key, self.client_iv, self.client_hp)
        self._server = _Direction(self.server_key, self.server_iv, self.server_hp)

    def direction(self, from_client: bool) -> _Direction:
        return self._client if from_client else self._server


def _packet_keys(prefix: str, secret: bytes) -> tuple[bytes, bytes, bytes]:
    return (hkdf_expand_label("sha256", secret, f"{prefix} key", b"", 16),
            hkdf_expand_label("sha256", secret, f"{prefix} iv", b"", 12),
            hkdf_expand_label("sha256", secret, f"{prefix} hp", b"", 16))


def _retry_tag_ok(version: int, odcid: bytes, packet: bytes) -> bool:
    """RFC 9001 §5.8: the tag is AES-GCM over nothing, with the pseudo-packet (original DCID
    and the Retry without its tag) as associated data."""
    aead = _RETRY_AEAD.get(version)
    if aead is None:
        aead = _RETRY_AEAD[version] = AESGCM(_RETRY_KEY_NONCE[version][0])
    pseudo = bytes([len(odcid)]) + odcid + packet[:-_TAG_LEN]
    expected = aead.encrypt(_RETRY_KEY_NONCE[version][1], b"", pseudo)
    return hmac.compare_digest(expected, packet[-_TAG_LEN:])


class InitialDecoder:
    """Both directions of one QUIC connection's Initial packets.

    ``original_dcid`` is the DCID of the client's first Initial. The first Retry whose integrity
    tag checks against it moves the keys to the Retry's SCID. If a client Initial fails to open
    and carries another DCID, the keys of that DCID are tried too: that is what a Retry missing
    from the capture looks like (or a later Retry the client took instead of the first one seen).
    Handshake, 0-RTT and 1-RTT packets are reported with their headers only.
    """

    def __init__(self, version: int, original_dcid: bytes):
        self.version = version
        self.original_dcid = bytes(original_dcid)
        self.key_dcid = self.original_dcid      # what the Initial keys currently derive from
        self.retried = False
        self._retry_scids: set[bytes] = set()       # SCIDs of every valid Retry seen
        self.largest_pn = {True: -1, False: -1}     # Initial space, per sender
        # Connection IDs seen in long headers, per sender: the DCID it last used and its own
        # SCID. A short header does not say how long its DCID is; these are the candidates.
        self._last_dcid: dict[bool, bytes] = {}
        self._scid: dict[bool, bytes] = {}
        self._keys: dict[int, InitialKeys | None] = {}

    def keys(self, version: int | None = None) -> InitialKeys | None:
        """Initial keys for ``version`` (default: the decoder's) from the current key DCID.
        Per version because compatible version negotiation (RFC 9368) lets the server answer a
        v1 ClientHello with v2 Initials derived from the same DCID."""
        version = self.version if version is None else version
        if version not in self._keys:
            try:
                self._keys[version] = InitialKeys(version, self.key_dcid)
            except ValueError:
                self._keys[version] = None
        return self._keys[version]

    def datagram(self, data: bytes, from_client: bool) -> list[QuicPacket]:
        """Every packet of the datagram, Initial packets decrypted and their frames parsed.
        Never raises: problems end up in each packet's ``error``."""
        data = bytes(data)
        out = []
        for pkt, pn_offset in _walk(data):
            try:
                self._packet(pkt, pn_offset, data, from_client)
            except Exception as exc:   # a bug, not bad input: keep the pipeline going, say so
                pkt.error = f"internal error: {exc!r}"
            out.append(pkt)
        return out

    def _packet(self, pkt: QuicPacket, pn_offset: int, data: bytes, from_client: bool) -> None:
        if pkt.error is not None:
            return
        if pkt.kind == "1rtt":
            # Fill in the DCID when it is one this sender used in a long header, or the peer's
            # SCID; otherwise (a CID from NEW_CONNECTION_ID, say) it stays b"": unknown.
            for cid in (self._last_dcid.get(from_client), self._scid.get(not from_client)):
                if cid and data[pkt.offset + 1:pkt.offset + 1 + len(cid)] == cid:
                    pkt.dcid = cid
                    break
            return
        if pkt.kind == "version_negotiation":
            return
        self._last_dcid[from_client] = pkt.dcid
        self._scid[from_client] = pkt.scid
        if pkt.kind == "retry":
            self._retry(pkt, data, from_client)
        elif pkt.kind == "initial":
            self._initial(pkt, pn_offset, data, from_client)

    def _retry(self, pkt: QuicPacket, data: bytes, from_client: bool) -> None:
        if from_client:
            pkt.error = "Retry sent by the client"
            return
        # The tag covers the DCID of the client Initial it answers: always the original one,
        # since a client accepts a single Retry.
        raw = data[pkt.offset:pkt.offset + pkt.length]
        if not _retry_tag_ok(pkt.version, self.original_dcid, raw):
            pkt.error = "Retry integrity tag does not match the original DCID (ignored)"
            return
        self._retry_scids.add(pkt.scid)
        # A server answers each copy of the first Initial: the client takes the first Retry and
        # ignores the others, but they stay candidates should its Initials use one of them.
        if not self.retried:
            self._switch_keys(pkt.scid)

    def _switch_keys(self, dcid: bytes) -> None:
        # The client's next Initials use the Retry's SCID as DCID and derive keys from it; its
        # packet numbers keep counting (RFC 9000 §17.2.5.3), so largest_pn stays.
        self.retried = True
        self.key_dcid = bytes(dcid)
        self._keys.clear()

    def _initial(self, pkt: QuicPacket, pn_offset: int, data: bytes, from_client: bool) -> None:
        keys = self.keys(pkt.version)
        if keys is None:
            pkt.error = f"no Initial keys for version 0x{pkt.version:08x}"
            return
        error = _open_initial(pkt, pn_offset, data, keys.direction(from_client),
                              self.largest_pn[from_client])
        if (error is not None and error.startswith("decryption failed") and from_client
                and pkt.dcid != self.key_dcid
                and (not self.retried or pkt.dcid in self._retry_scids)):
            # A Retry missing from the capture, or another of the server's Retries than the one
            # seen first: the client derives keys from the DCID it now uses.
            other = _try_keys(pkt.version, pkt.dcid)
            if other is not None and _open_initial(pkt, pn_offset, data, other.direction(True),
                                                   self.largest_pn[True]) is None:
                self._switch_keys(pkt.dcid)
                self._keys[pkt.version] = other
                error = None
        if error is not None:
            pkt.error = error
            return
        if pkt.packet_number is not None:
            self.largest_pn[from_client] = max(self.largest_pn[from_client], pkt.packet_number)


def _try_keys(version: int, dcid: bytes) -> InitialKeys | None:
    try:
        return InitialKeys(version, dcid)
    except ValueError:
        return None


def _open_initial(pkt: QuicPacket, pn_offset: int, data: bytes, d: _Direction,
                  largest: int) -> str | None:
    """Remove header protection, open the payload and parse frames into ``pkt``. Returns an
    error string (``pkt`` untouched) when the packet does not open; frame errors are set on
    ``pkt.error`` and return None, since the packet itself was authentic."""
    end = pkt.offset + pkt.length
    sample_at = pn_offset + 4       # as if the packet number were 4 bytes (RFC 9001 §5.4.2)
    if sample_at + _SAMPLE_LEN > end:
        return "packet too short for a header protection sample"
    mask = d.hp.update(data[sample_at:sample_at + _SAMPLE_LEN])
    first = data[pkt.offset] ^ (mask[0] & 0x0F)     # long header: low 4 bits are protected
    pn_len = (first & 3) + 1
    truncated = int.from_bytes(bytes(b ^ m for b, m in zip(data[pn_offset:pn_offset + pn_len],
                                                            mask[1:1 + pn_len])), "big")
    pn = decode_packet_number(largest, truncated, pn_len * 8)
    header = (bytes([first]) + data[pkt.offset + 1:pn_offset]
              + truncated.to_bytes(pn_len, "big"))
    nonce = (d.iv ^ pn).to_bytes(12, "big")
    try:
        payload = d.aead.decrypt(nonce, data[pn_offset + pn_len:end], header)
    except InvalidTag:
        return "decryption failed (not this connection's Initial keys, or a damaged packet)"
    pkt.packet_number = pn
    pkt.crypto, pkt.frames, pkt.close, pkt.error = [], [], None, None
    if first & 0x0C:
        # RFC 9000 §17.2: reserved bits must be 0 once protection is off; still read the frames.
        pkt.error = "reserved header bits set"
    frame_error = _parse_frames(pkt, payload)
    if frame_error is not None:
        pkt.error = frame_error
    return None


def _parse_frames(pkt: QuicPacket, payload: bytes) -> str | None:
    """Frames allowed in an Initial (RFC 9000 §12.4 table 3); anything else ends the parse."""
    pos, end = 0, len(payload)
    if not end:
        return "empty payload (a packet must hold a frame)"
    try:
        while pos < end:
            ftype, pos = _varint(payload, pos, end)
            if ftype == 0x00:       # PADDING: skip the whole run at once
                rest = payload[pos:].lstrip(b"\x00")
                pos = end - len(rest)
                pkt.frames.append("PADDING")
            elif ftype == 0x01:
                pkt.frames.append("PING")
            elif ftype in (0x02, 0x03):
                pos = _skip_ack(payload, pos, end, ecn=ftype == 0x03)
                pkt.frames.append("ACK_ECN" if ftype == 0x03 else "ACK")
            elif ftype == 0x06:
                offset, pos = _varint(payload, pos, end)
                length, pos = _varint(payload, pos, end)
                if length > end - pos:
                    raise _Malformed("CRYPTO length past the end of the payload")
                if offset + length > MAX_STREAM_END:
                    raise _Malformed("CRYPTO offset + length beyond 2**62 - 1")
                pkt.crypto.append((offset, payload[pos:pos + length]))
                pos += length
                pkt.frames.append("CRYPTO")
            elif ftype in (0x1C, 0x1D):
                code, pos = _varint(payload, pos, end)
                frame_type = None
                if ftype == 0x1C:       # transport close names the frame that caused it
                    frame_type, pos = _varint(payload, pos, end)
                reason_len, pos = _varint(payload, pos, end)
                if reason_len > end - pos:
                    raise _Malformed("CONNECTION_CLOSE reason past the end of the payload")
                reason = payload[pos:pos + reason_len].decode("utf-8", "replace")
                pos += reason_len
                pkt.close = (code, frame_type, reason)
                pkt.frames.append("CONNECTION_CLOSE")
            else:
                return f"frame type 0x{ftype:x} is not allowed in an Initial packet"
    except _Malformed as exc:
        return f"bad frame: {exc}"
    return None


def _skip_ack(payload: bytes, pos: int, end: int, ecn: bool) -> int:
    """Walk over an ACK frame body (RFC 9000 §19.3); the ranges are not kept."""
    _largest, pos = _varint(payload, pos, end)
    _delay, pos = _varint(payload, pos, end)
    range_count, pos = _varint(payload, pos, end)
    _first_range, pos = _varint(payload, pos, end)
    if range_count > (end - pos) // 2:      # each range is at least two 1-byte varints
        raise _Malformed("ACK range count past the end of the payload")
    for _ in range(range_count * 2):        # gap, ack range length
        _, pos = _varint(payload, pos, end)
    if ecn:
        for _ in range(3):                  # ECT0, ECT1, ECN-CE counts
            _, pos = _varint(payload, pos, end)
    return pos


class CryptoStream:
    """Reassembly of one direction's CRYPTO stream (out of order, overlapping, retransmitted).

    ``add(offset, data)`` returns the bytes that became contiguous. Memory is bounded: data may
    wait at most ``max_pending`` bytes beyond the contiguous point (``delivered``); a frame
    reaching further, or ending past 2**62 - 1, is dropped whole and counted in ``dropped`` (frames)
    with ``overflow`` set. Where a frame overlaps bytes already received (delivered ones within the
    last ``max_pending`` bytes, or pending ones) the first copy wins and differing bytes are
    counted in ``mismatches``.
    """

    def __init__(self, max_pending: int = 64 * 1024):
        self.max_pending = max_pending
        self.delivered = 0          # stream offset of the first byte not yet contiguous
        self.pending_bytes = 0
        self.dropped = 0
        self.overflow = False
        self.mismatches = 0
        self._starts: list[int] = []            # sorted offsets of pending segments
        self._segments: dict[int, bytes] = {}   # offset -> bytes, non-overlapping, >= delivered
        self._history = bytearray()             # the last delivered bytes, to check retransmits

    def add(self, offset: int, data: bytes) -> bytes:
        data = bytes(data)
        end = offset + len(data)
        if offset < 0 or end > MAX_STREAM_END:
            return self._drop()
        if end <= self.delivered:               # a retransmission of delivered bytes
            self._compare_history(offset, data)
            return b""
        if offset < self.delivered:             # partly delivered: keep the new tail
            cut = self.delivered - offset
            self._compare_history(offset, data[:cut])
            data, offset = data[cut:], self.delivered
        if offset > self.delivered and end - self.delivered > self.max_pending:
            return self._drop()
        self._insert(offset, data)
        return self._take_contiguous()

    def _drop(self) -> bytes:
        self.dropped += 1
        self.overflow = True
        return b""

    def _count(self, old: bytes, new: bytes) -> None:
        if old != new:
            self.mismatches += sum(a != b for a, b in zip(old, new))

    def _compare_history(self, offset: int, data: bytes) -> None:
        start = self.delivered - len(self._history)
        lo = max(offset, start)
        hi = min(offset + len(data), self.delivered)
        if lo < hi:
            self._count(bytes(self._history[lo - start:hi - start]), data[lo - offset:hi - offset])

    def _insert(self, offset: int, data: bytes) -> None:
        """Add the parts of ``data`` not already pending; overlaps are compared, not replaced."""
        end = offset + len(data)
        pos = offset
        pieces = []
        j = max(bisect_right(self._starts, offset) - 1, 0)
        while j < len(self._starts) and self._starts[j] < end and pos < end:
            s = self._starts[j]
            seg = self._segments[s]
            seg_end = s + len(seg)
            j += 1
            if seg_end <= pos:
                continue
            if s > pos:
                pieces.append((pos, data[pos - offset:s - offset]))
            lo, hi = max(s, pos), min(seg_end, end)
            self._count(seg[lo - s:hi - s], data[lo - offset:hi - offset])
            pos = hi
        if pos < end:
            pieces.append((pos, data[pos - offset:]))
        for s, piece in pieces:
            insort(self._starts, s)
            self._segments[s] = piece
            self.pending_bytes += len(piece)

    def _take_contiguous(self) -> bytes:
        out = []
        while self._starts and self._starts[0] == self.delivered:
            seg = self._segments.pop(self._starts.pop(0))
            out.append(seg)
            self.delivered += len(seg)
            self.pending_bytes -= len(seg)
        if not out:
            return b""
        new = b"".join(out)
        self._history += new
        if len(self._history) > self.max_pending:
            del self._history[:len(self._history) - self.max_pending]
        return new

"""QUIC packets (RFC 9000, RFC 9001; QUIC v2 from RFC 9369), sans-I/O.

Scope: a passive observer can read every QUIC Initial packet. Their keys are not secret: they
derive from a published per-version salt and the Destination Connection ID of the client's first
Initial (RFC 9001 §5.2), both visible on the wire. So this module can remove header protection,
open the AEAD and hand back the CRYPTO frames that carry the ClientHello and ServerHello.
Handshake, 0-RTT and 1-RTT packets are protected with secrets from the TLS key exchange. Without
them their headers are parsed (kind, connection IDs, where they sit in the datagram) and nothing
more; with the TLS 1.3 traffic secrets of a key log (``InitialDecoder.install``) they are opened
too: packet numbers, frames, key updates (RFC 9001 §6), and the short header's DCID, whose length
only the endpoints know, found among the connection IDs the decoder has seen.

Layout: ``split_datagram`` walks the coalesced packets of one UDP datagram; ``InitialKeys``
derives the Initial secrets; ``InitialDecoder`` keeps the per-connection state (keys, a Retry,
connection IDs, largest packet numbers) and decrypts; ``CryptoStream`` reassembles one
direction's CRYPTO bytes. Bytes in, typed values out: no sockets, files or scapy here.
"""

from __future__ import annotations

import hmac
from bisect import bisect_right, insort
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .decrypt.ciphers import decode_truncated, protection_mask
from .decrypt.tls13 import hkdf_expand_label, hkdf_extract

__all__ = [
    "QUIC_V1", "QUIC_V2", "QuicPacket", "InitialKeys", "InitialDecoder", "CryptoStream",
    "looks_like_quic", "split_datagram", "decode_packet_number", "LEVELS", "QUIC_CIPHER_SUITES",
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
MAX_KNOWN_CIDS = 16             # NEW_CONNECTION_ID CIDs remembered per endpoint (oldest forgotten)
_MAX_LONG_HEADER_CIDS = 4       # SCIDs of long headers remembered per endpoint
_MAX_RETRY_SCIDS = 16           # valid Retries remembered

# Levels whose keys come from the key log, and the TLS 1.3 suites QUIC uses (RFC 9001 §5.3):
# suite -> (HKDF hash, AEAD key length, AEAD). The hp key has the AEAD key's length.
LEVELS = ("handshake", "0rtt", "1rtt")
QUIC_CIPHER_SUITES = {
    0x1301: ("sha256", 16, "aes-gcm"),      # TLS_AES_128_GCM_SHA256
    0x1302: ("sha384", 32, "aes-gcm"),      # TLS_AES_256_GCM_SHA384
    0x1303: ("sha256", 32, "chacha20"),     # TLS_CHACHA20_POLY1305_SHA256
    0x1304: ("sha256", 16, "aes-ccm"),      # TLS_AES_128_CCM_SHA256 (16-byte tag)
}
_HASH_LEN = {"sha256": 32, "sha384": 48}


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
    packet_number: int | None = None     # opened packets only (header protection removed)
    crypto: list = field(default_factory=list)   # [(stream offset, bytes)] of CRYPTO frames
    frames: list = field(default_factory=list)   # frame type names in order, PADDING runs once
    token: bytes = b""        # Initial token / Retry token
    close: tuple | None = None   # CONNECTION_CLOSE: (error_code, frame_type or None for 0x1d, reason)
    error: str | None = None  # why this packet could not be read
    decrypted: bool = False   # the AEAD opened it (Initial, or a level whose keys were installed)
    level: str = ""           # "initial" | "handshake" | "0rtt" | "1rtt" once opened
    stream_bytes: int = 0     # sum of the STREAM frames' data lengths
    datagram_bytes: int = 0   # sum of the DATAGRAM frames' data lengths (RFC 9221)
    handshake_done: bool = False     # a HANDSHAKE_DONE frame (1-RTT, server)
    key_phase: int | None = None     # 1-RTT: the Key Phase bit once header protection is off
    streams: list = field(default_factory=list)  # [(stream ID, offset, bytes, fin)] of STREAM frames


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
    return decode_truncated(largest + 1, truncated, nbits)


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
    """AEAD and header-protection ciphers of one sender's Initial packets, built once."""
    __slots__ = ("aead", "iv", "hp")

    def __init__(self, key: bytes, iv: bytes, hp: bytes):
        self.aead = AESGCM(key)
        self.iv = int.from_bytes(iv, "big")
        # ECB on single 16-byte blocks is stateless, so one encryptor serves every mask.
        self.hp = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()

    def mask(self, sample: bytes) -> bytes:
        return self.hp.update(sample)

    def open(self, pn: int, header: bytes, ciphertext: bytes) -> bytes | None:
        try:
            return self.aead.decrypt((self.iv ^ pn).to_bytes(12, "big"), ciphertext, header)
        except InvalidTag:
            return None


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


class _PacketKeys:
    """AEAD key and IV of one key generation (RFC 9001 §5.1), and the secret it came from (the
    next generation derives from it)."""
    __slots__ = ("aead", "iv", "secret")

    def __init__(self, aead, iv: bytes, secret: bytes):
        self.aead = aead
        self.iv = int.from_bytes(iv, "big")
        self.secret = secret

    def open(self, pn: int, header: bytes, ciphertext: bytes) -> bytes | None:
        try:
            return self.aead.decrypt((self.iv ^ pn).to_bytes(12, "big"), ciphertext, header)
        except (InvalidTag, ValueError, OverflowError):
            return None


def _make_aead(kind: str, key: bytes):
    if kind == "aes-gcm":
        return AESGCM(key)
    # imported on first use: most runs never see these suites
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM, ChaCha20Poly1305
    if kind == "chacha20":
        return ChaCha20Poly1305(key)
    return AESCCM(key, tag_length=_TAG_LEN)


def _make_mask(kind: str, hp_key: bytes):
    """The header-protection mask function of a suite (RFC 9001 §5.4.3, §5.4.4)."""
    return protection_mask("CHACHA20" if kind == "chacha20" else "AES-GCM", hp_key)


class _LevelKeys:
    """One sender's keys at one level, for one QUIC version (the labels differ): header
    protection, and the AEAD key generations of RFC 9001 §6 (1-RTT only moves past the first).
    At most three generations are kept: the previous one (late packets), the current one and
    the next one (derived when a packet with the other key phase arrives)."""
    __slots__ = ("hash_name", "kind", "key_len", "prefix", "mask", "gens", "current", "first_pn")

    def __init__(self, suite: int, secret: bytes, version: int):
        self.hash_name, self.key_len, self.kind = QUIC_CIPHER_SUITES[suite]
        self.prefix = _LABEL_PREFIX.get(version, "quic")
        hp = hkdf_expand_label(self.hash_name, secret, f"{self.prefix} hp", b"", self.key_len)
        self.mask = _make_mask(self.kind, hp)     # never changes with a key update
        self.gens: dict[int, _PacketKeys] = {0: self._derive(secret)}
        self.current = 0
        self.first_pn: dict[int, int] = {}        # lowest packet number opened per generation

    def _derive(self, secret: bytes) -> _PacketKeys:
        key = hkdf_expand_label(self.hash_name, secret, f"{self.prefix} key", b"", self.key_len)
        iv = hkdf_expand_label(self.hash_name, secret, f"{self.prefix} iv", b"", 12)
        return _PacketKeys(_make_aead(self.kind, key), iv, secret)

    def generation(self, g: int) -> _PacketKeys | None:
        keys = self.gens.get(g)
        if keys is None and g == self.current + 1:
            # RFC 9001 §6.1: secret_<n+1> = HKDF-Expand-Label(secret_<n>, "quic ku", "", Hash.length)
            secret = hkdf_expand_label(self.hash_name, self.gens[self.current].secret,
                                       f"{self.prefix} ku", b"", _HASH_LEN[self.hash_name])
            keys = self.gens[g] = self._derive(secret)
        return keys

    def open_phase(self, phase: int, pn: int, header: bytes, ciphertext: bytes) -> bytes | None:
        """Open a short-header packet with the generation its Key Phase bit points to: the
        current one when it matches; otherwise the next one (a key update: the decoder moves on
        when it opens) or the previous one (a packet sent before the update, arriving late)."""
        cur = self.current
        if phase == cur & 1:
            order: tuple[int, ...] = (cur,)
        elif cur - 1 in self.gens and pn < self.first_pn.get(cur, 1 << 62):
            order = (cur - 1, cur + 1)
        else:
            order = (cur + 1, cur - 1)
        for g in order:
            keys = self.generation(g)
            if keys is None:
                continue
            payload = keys.open(pn, header, ciphertext)
            if payload is None:
                continue
            if g > cur:
                self.current = g
                self.gens.pop(cur - 1, None)
                self.first_pn.pop(cur - 1, None)
            if pn < self.first_pn.get(g, 1 << 62):
                self.first_pn[g] = pn
            return payload
        return None


class _Secret:
    """An installed traffic secret; its keys are derived per QUIC version on first use."""
    __slots__ = ("suite", "secret", "by_version")

    def __init__(self, suite: int, secret: bytes):
        self.suite = suite
        self.secret = secret
        self.by_version: dict[int, _LevelKeys] = {}

    def keys(self, version: int) -> _LevelKeys:
        keys = self.by_version.get(version)
        if keys is None:
            keys = self.by_version[version] = _LevelKeys(self.suite, self.secret, version)
        return keys


_DECRYPTION_FAILED = {
    "handshake": "decryption failed (not the installed Handshake keys, or a damaged packet)",
    "0rtt": "decryption failed (not the installed 0-RTT keys, or a damaged packet)",
    "1rtt": "decryption failed (not the installed 1-RTT keys, an unknown connection ID, or a damaged packet)",
}


class InitialDecoder:
    """Both directions of one QUIC connection.

    Initial packets are always opened. ``original_dcid`` is the DCID of the client's first
    Initial. The first Retry whose integrity tag checks against it moves the keys to the Retry's
    SCID. If a client Initial fails to open and carries another DCID, the keys of that DCID are
    tried too: that is what a Retry missing from the capture looks like (or a later Retry the
    client took instead of the first one seen).

    Handshake, 0-RTT and 1-RTT packets are opened once ``install`` was given the TLS traffic
    secret of their level and sender; until then they are reported with their headers only.
    A server's first datagram usually carries the Initial with the ServerHello (which names the
    cipher suite) and the first Handshake packet together: ``iter_datagram`` processes each
    packet only when the caller asks for it, so keys installed after reading the ServerHello
    already apply to the Handshake packet behind it.
    """

    def __init__(self, version: int, original_dcid: bytes):
        self.version = version
        self.original_dcid = bytes(original_dcid)
        self.key_dcid = self.original_dcid      # what the Initial keys currently derive from
        self.retried = False
        self._retry_scids: set[bytes] = set()       # SCIDs of every valid Retry seen
        self.largest_pn = {True: -1, False: -1}     # Initial space, per sender
        # Handshake and application (0-RTT and 1-RTT share it) spaces, per sender
        self.largest_pn_space = {"handshake": {True: -1, False: -1},
                                 "application": {True: -1, False: -1}}
        # A short header does not say how long its DCID is: the candidates are the connection
        # IDs of the receiver, per owner (True: the client's). From long headers (SCIDs) and
        # from NEW_CONNECTION_ID frames of opened packets; both bounded, oldest forgotten.
        self._long_cids: dict[bool, list[bytes]] = {True: [], False: []}
        self._new_cids: dict[bool, list[bytes]] = {True: [], False: []}
        self._last_dcid: dict[bool, bytes] = {}     # the DCID each sender last used in a long header
        self._keys: dict[int, InitialKeys | None] = {}
        self._secrets: dict[tuple[str, bool], _Secret] = {}
        self._early_candidates: list[_Secret] = []   # 0-RTT keys per possible suite (install_early)
        self._handshake_version: int | None = None  # version of the last Handshake packet
        self._server_version: int | None = None     # version of the server's last Initial

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

    def install(self, level: str, from_client: bool, cipher_suite: int, secret: bytes) -> bool:
        """Keys for one direction's packets at level "handshake", "0rtt" or "1rtt" from a TLS
        1.3 traffic secret (key log labels CLIENT/SERVER_HANDSHAKE_TRAFFIC_SECRET,
        CLIENT_EARLY_TRAFFIC_SECRET, CLIENT/SERVER_TRAFFIC_SECRET_0) and the negotiated suite
        (0x1301, 0x1302, 0x1303, 0x1304). Returns False and installs nothing for another level
        or suite, 0-RTT keys of the server, or a secret whose length is not the suite's hash
        length. Installing the same keys again is harmless (key update state is kept); other
        keys for the same level and direction replace them. Never raises."""
        suite = QUIC_CIPHER_SUITES.get(cipher_suite) if isinstance(cipher_suite, int) else None
        if level not in LEVELS or suite is None or (level == "0rtt" and not from_client):
            return False
        try:
            secret = bytes(secret)
        except (TypeError, ValueError):
            return False
        if len(secret) != _HASH_LEN[suite[0]]:
            return False
        slot = (level, bool(from_client))
        old = self._secrets.get(slot)
        if old is None or old.suite != cipher_suite or old.secret != secret:
            self._secrets[slot] = _Secret(cipher_suite, secret)
        return True

    def installed(self, level: str, from_client: bool) -> bool:
        """Whether keys for that level and sender were installed."""
        return (level, bool(from_client)) in self._secrets

    def known_cids(self, owner_is_client: bool) -> list[bytes]:
        """Connection IDs of one endpoint the decoder knows (long-header SCIDs first)."""
        return self._long_cids[owner_is_client] + self._new_cids[owner_is_client]

    def datagram(self, data: bytes, from_client: bool) -> list[QuicPacket]:
        """Every packet of the datagram, decrypted where keys allow and their frames parsed.
        Never raises: problems end up in each packet's ``error``."""
        return list(self.iter_datagram(data, from_client))

    def iter_datagram(self, data: bytes, from_client: bool):
        """``datagram`` one packet at a time: each is processed when the caller asks for it, so
        keys installed between two packets apply to the next one. Never raises."""
        data = bytes(data)
        for pkt, pn_offset in _walk(data):
            try:
                self._packet(pkt, pn_offset, data, from_client)
            except Exception as exc:   # a bug, not bad input: keep the pipeline going, say so
                pkt.error = f"internal error: {exc!r}"
            yield pkt

    def _packet(self, pkt: QuicPacket, pn_offset: int, data: bytes, from_client: bool) -> None:
        if pkt.error is not None:
            return
        if pkt.kind == "1rtt":
            self._short(pkt, data, from_client)
            return
        if pkt.kind == "version_negotiation":
            return
        self._last_dcid[from_client] = pkt.dcid
        self._remember_cid(pkt.scid, self._long_cids[from_client], _MAX_LONG_HEADER_CIDS)
        if pkt.kind == "retry":
            self._retry(pkt, data, from_client)
        elif pkt.kind == "initial":
            if not from_client:
                self._server_version = pkt.version
            self._initial(pkt, pn_offset, data, from_client)
        else:                       # handshake, 0rtt
            if pkt.kind == "handshake":
                self._handshake_version = pkt.version
            self._protected_long(pkt, pn_offset, data, from_client)

    @staticmethod
    def _remember_cid(cid: bytes, cids: list[bytes], cap: int) -> None:
        if cid in cids:
            return
        cids.append(cid)
        if len(cids) > cap:
            del cids[0]

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
        if len(self._retry_scids) < _MAX_RETRY_SCIDS:   # Retry tags are forgeable: bounded
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

    def install_early(self, secret: bytes, cipher_suites) -> bool:
        """The client's 0-RTT keys from CLIENT_EARLY_TRAFFIC_SECRET before the ServerHello names the
        suite: 0-RTT uses the suite of the session being resumed, which the capture may not show, so
        each of the ClientHello's QUIC suites whose hash fits the secret is tried on the first 0-RTT
        packet, and the one that opens it is kept. False when no suite fits."""
        try:
            secret = bytes(secret)
        except (TypeError, ValueError):
            return False
        fitting = [_Secret(cs, secret) for cs in dict.fromkeys(cipher_suites)
                   if cs in QUIC_CIPHER_SUITES and _HASH_LEN[QUIC_CIPHER_SUITES[cs][0]] == len(secret)]
        if ("0rtt", True) in self._secrets or not fitting:
            return False
        self._early_candidates = fitting[:4]
        return True

    def _protected_long(self, pkt: QuicPacket, pn_offset: int, data: bytes, from_client: bool) -> None:
        """A Handshake or 0-RTT packet: opened when its keys were installed."""
        level = pkt.kind
        secret = self._secrets.get((level, from_client))
        if secret is None:
            if level == "0rtt" and from_client and self._early_candidates:
                self._early_trial(pkt, pn_offset, data)
            return                  # header only, as without a key log
        self._open_long(pkt, pn_offset, data, from_client, secret)

    def _early_trial(self, pkt: QuicPacket, pn_offset: int, data: bytes) -> None:
        """The first 0-RTT packet with each candidate suite's keys; the one that opens it stays."""
        for cand in self._early_candidates:
            pkt.error = None
            self._open_long(pkt, pn_offset, data, True, cand)
            if pkt.error is None:
                self._secrets[("0rtt", True)] = cand
                self._early_candidates = []
                return

    def _open_long(self, pkt: QuicPacket, pn_offset: int, data: bytes, from_client: bool, secret: "_Secret") -> None:
        level = pkt.kind
        keys = secret.keys(pkt.version)
        end = pkt.offset + pkt.length
        unprotected = _remove_header_protection(data, pkt.offset, pn_offset, end, keys.mask, 0x0F)
        if isinstance(unprotected, str):
            pkt.error = unprotected
            return
        first, pn_len, truncated = unprotected
        space = self.largest_pn_space["handshake" if level == "handshake" else "application"]
        pn = decode_packet_number(space[from_client], truncated, pn_len * 8)
        header = bytes([first]) + data[pkt.offset + 1:pn_offset] + truncated.to_bytes(pn_len, "big")
        payload = keys.gens[0].open(pn, header, data[pn_offset + pn_len:end])
        if payload is None:
            pkt.error = _DECRYPTION_FAILED[level]
            return
        self._opened(pkt, level, pn, payload, first & 0x0C, from_client, space)

    def _app_version(self) -> int:
        """The version 1-RTT packets use: that of the Handshake packets (the negotiated one,
        RFC 9368), else of the server's Initials, else the decoder's."""
        for version in (self._handshake_version, self._server_version):
            if version is not None:
                return version
        return self.version

    def _short(self, pkt: QuicPacket, data: bytes, from_client: bool) -> None:
        """A 1-RTT packet: find its DCID among the receiver's connection IDs, and open it when
        the 1-RTT keys of its sender were installed."""
        start, end = pkt.offset, pkt.offset + pkt.length
        owner = not from_client
        known = self._long_cids[owner] + self._new_cids[owner]
        last = self._last_dcid.get(from_client)
        if last is not None and last not in known:
            known.append(last)
        wire = data[start + 1:min(end, start + 1 + MAX_CID_LEN)]
        matching = sorted({c for c in known if wire[:len(c)] == c}, key=len, reverse=True)
        best = matching[0] if matching else b""
        secret = self._secrets.get(("1rtt", from_client))
        if secret is None:
            pkt.dcid = best         # as without a key log: only a known CID is filled in
            return
        keys = secret.keys(self._app_version())
        # Lengths to try: those of the matching CIDs (longest first), then those of every known
        # CID (one may have been announced in a packet the capture lost), or any length when
        # none is known at all. The AEAD tells which one is right.
        fallback = sorted({len(c) for c in known}, reverse=True) if known else range(MAX_CID_LEN, -1, -1)
        lengths = list(dict.fromkeys([len(c) for c in matching] + list(fallback)))
        space = self.largest_pn_space["application"]
        error = "packet too short for a header protection sample"
        for n in lengths:
            pn_offset = start + 1 + n
            unprotected = _remove_header_protection(data, start, pn_offset, end, keys.mask, 0x1F)
            if isinstance(unprotected, str):
                continue
            error = _DECRYPTION_FAILED["1rtt"]
            first, pn_len, truncated = unprotected
            pn = decode_packet_number(space[from_client], truncated, pn_len * 8)
            header = bytes([first]) + data[start + 1:pn_offset] + truncated.to_bytes(pn_len, "big")
            phase = (first >> 2) & 1
            payload = keys.open_phase(phase, pn, header, data[pn_offset + pn_len:end])
            if payload is None:
                continue
            pkt.dcid = data[start + 1:pn_offset]
            if pkt.dcid not in known:     # authenticated (the header is associated data)
                self._remember_cid(pkt.dcid, self._new_cids[owner], MAX_KNOWN_CIDS)
            pkt.key_phase = phase
            self._opened(pkt, "1rtt", pn, payload, first & 0x18, from_client, space)
            return
        pkt.dcid = best
        pkt.error = error

    def _opened(self, pkt: QuicPacket, level: str, pn: int, payload: bytes, reserved: int,
                from_client: bool, space: dict) -> None:
        new_cids: list[bytes] = []
        _fill(pkt, level, pn, payload, reserved, new_cids)
        for cid in new_cids:        # the sender's own CIDs, for its peer to use as DCID
            self._remember_cid(cid, self._new_cids[from_client], MAX_KNOWN_CIDS)
        space[from_client] = max(space[from_client], pn)


def _try_keys(version: int, dcid: bytes) -> InitialKeys | None:
    try:
        return InitialKeys(version, dcid)
    except ValueError:
        return None


def _remove_header_protection(data: bytes, start: int, pn_offset: int, end: int, mask_fn,
                              low_bits: int) -> tuple[int, int, int] | str:
    """(unprotected first byte, packet number length, truncated packet number), or an error.
    ``low_bits``: 0x0F for long headers, 0x1F for short ones (RFC 9001 §5.4.1)."""
    sample_at = pn_offset + 4       # as if the packet number were 4 bytes (RFC 9001 §5.4.2)
    if sample_at + _SAMPLE_LEN > end:
        return "packet too short for a header protection sample"
    mask = mask_fn(data[sample_at:sample_at + _SAMPLE_LEN])
    first = data[start] ^ (mask[0] & low_bits)
    pn_len = (first & 3) + 1
    truncated = int.from_bytes(bytes(b ^ m for b, m in zip(data[pn_offset:pn_offset + pn_len],
                                                            mask[1:1 + pn_len])), "big")
    return first, pn_len, truncated


def _open_initial(pkt: QuicPacket, pn_offset: int, data: bytes, d: _Direction,
                  largest: int) -> str | None:
    """Remove header protection, open the payload and parse frames into ``pkt``. Returns an
    error string (``pkt`` untouched) when the packet does not open; frame errors are set on
    ``pkt.error`` and return None, since the packet itself was authentic."""
    end = pkt.offset + pkt.length
    unprotected = _remove_header_protection(data, pkt.offset, pn_offset, end, d.mask, 0x0F)
    if isinstance(unprotected, str):
        return unprotected
    first, pn_len, truncated = unprotected
    pn = decode_packet_number(largest, truncated, pn_len * 8)
    header = (bytes([first]) + data[pkt.offset + 1:pn_offset]
              + truncated.to_bytes(pn_len, "big"))
    payload = d.open(pn, header, data[pn_offset + pn_len:end])
    if payload is None:
        return "decryption failed (not this connection's Initial keys, or a damaged packet)"
    _fill(pkt, "initial", pn, payload, first & 0x0C, None)
    return None


def _fill(pkt: QuicPacket, level: str, pn: int, payload: bytes, reserved: int,
          new_cids: list | None) -> None:
    """An opened packet: number, level, frames. Frame errors go to ``pkt.error``."""
    pkt.packet_number = pn
    pkt.decrypted = True
    pkt.level = level
    pkt.crypto, pkt.frames, pkt.close, pkt.error = [], [], None, None
    pkt.stream_bytes = pkt.datagram_bytes = 0
    pkt.streams = []
    pkt.handshake_done = False
    if reserved:
        # RFC 9000 §17.2, §17.3.1: reserved bits must be 0 once protection is off; still read
        # the frames.
        pkt.error = "reserved header bits set"
    frame_error = _parse_frames(pkt, payload, level, new_cids)
    if frame_error is not None:
        pkt.error = frame_error


# Frame types per level (RFC 9000 §12.4 table 3; DATAGRAM from RFC 9221 §4). The Initial set
# keeps CONNECTION_CLOSE 0x1d as this module always has; the Handshake one follows the table.
_INITIAL_FRAMES = frozenset((0x00, 0x01, 0x02, 0x03, 0x06, 0x1C, 0x1D))
_HANDSHAKE_FRAMES = frozenset((0x00, 0x01, 0x02, 0x03, 0x06, 0x1C))
_ONE_RTT_FRAMES = frozenset(range(0x1F)) | {0x30, 0x31}
# 0-RTT: no ACK, CRYPTO, NEW_TOKEN, PATH_RESPONSE or HANDSHAKE_DONE
_ZERO_RTT_FRAMES = _ONE_RTT_FRAMES - {0x02, 0x03, 0x06, 0x07, 0x1B, 0x1E}
_ALLOWED = {"initial": _INITIAL_FRAMES, "handshake": _HANDSHAKE_FRAMES, "0rtt": _ZERO_RTT_FRAMES,
            "1rtt": _ONE_RTT_FRAMES}
_IN_LEVEL = {"initial": "an Initial packet", "handshake": "a Handshake packet",
             "0rtt": "a 0-RTT packet", "1rtt": "a 1-RTT packet"}
# Frames made of varints only: type -> (name, number of varints)
_VARINT_FRAMES = {
    0x04: ("RESET_STREAM", 3),          # stream ID, application error code, final size
    0x05: ("STOP_SENDING", 2),          # stream ID, application error code
    0x10: ("MAX_DATA", 1),
    0x11: ("MAX_STREAM_DATA", 2),       # stream ID, maximum
    0x12: ("MAX_STREAMS", 1),
    0x13: ("MAX_STREAMS", 1),
    0x14: ("DATA_BLOCKED", 1),
    0x15: ("STREAM_DATA_BLOCKED", 2),   # stream ID, limit
    0x16: ("STREAMS_BLOCKED", 1),
    0x17: ("STREAMS_BLOCKED", 1),
    0x19: ("RETIRE_CONNECTION_ID", 1),  # sequence number
}


def _parse_frames(pkt: QuicPacket, payload: bytes, level: str = "initial",
                  new_cids: list | None = None) -> str | None:
    """Frames of one packet into ``pkt`` (RFC 9000 §19, RFC 9221). A type not allowed at the
    level, or unknown, ends the parse with an error; what came before is kept. CIDs of
    NEW_CONNECTION_ID frames are appended to ``new_cids``."""
    pos, end = 0, len(payload)
    if not end:
        return "empty payload (a packet must hold a frame)"
    allowed = _ALLOWED[level]
    try:
        while pos < end:
            ftype, pos = _varint(payload, pos, end)
            if ftype not in allowed:
                if level == "initial" or ftype in _ONE_RTT_FRAMES:
                    return f"frame type 0x{ftype:x} is not allowed in {_IN_LEVEL[level]}"
                return f"unknown frame type 0x{ftype:x} in {_IN_LEVEL[level]}"
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
            elif 0x08 <= ftype <= 0x0F:         # STREAM with OFF (0x04), LEN (0x02), FIN (0x01)
                stream_id, pos = _varint(payload, pos, end)
                offset = 0
                if ftype & 0x04:
                    offset, pos = _varint(payload, pos, end)
                if ftype & 0x02:
                    length, pos = _varint(payload, pos, end)
                    if length > end - pos:
                        raise _Malformed("STREAM length past the end of the payload")
                else:
                    length = end - pos          # no Length: the data runs to the end
                if offset + length > MAX_STREAM_END:
                    raise _Malformed("STREAM offset + length beyond 2**62 - 1")
                pkt.streams.append((stream_id, offset, bytes(payload[pos:pos + length]), bool(ftype & 0x01)))
                pos += length
                pkt.stream_bytes += length
                pkt.frames.append("STREAM")
            elif ftype in _VARINT_FRAMES:
                name, count = _VARINT_FRAMES[ftype]
                for _ in range(count):
                    value, pos = _varint(payload, pos, end)
                if ftype in (0x12, 0x13, 0x16, 0x17) and value > 1 << 60:
                    raise _Malformed(f"{name} count beyond 2**60")
                pkt.frames.append(name)
            elif ftype == 0x07:                 # NEW_TOKEN
                length, pos = _varint(payload, pos, end)
                if not length or length > end - pos:
                    raise _Malformed("NEW_TOKEN token empty or past the end of the payload")
                pos += length
                pkt.frames.append("NEW_TOKEN")
            elif ftype == 0x18:                 # NEW_CONNECTION_ID
                seq, pos = _varint(payload, pos, end)
                retire, pos = _varint(payload, pos, end)
                if retire > seq:
                    raise _Malformed("NEW_CONNECTION_ID Retire Prior To beyond its sequence number")
                if pos >= end or not 1 <= payload[pos] <= MAX_CID_LEN:
                    raise _Malformed("NEW_CONNECTION_ID length missing or not 1..20")
                cid_len = payload[pos]
                if pos + 1 + cid_len + 16 > end:
                    raise _Malformed("NEW_CONNECTION_ID past the end of the payload")
                cid = payload[pos + 1:pos + 1 + cid_len]
                pos += 1 + cid_len + 16         # and the Stateless Reset Token
                if new_cids is not None:
                    new_cids.append(cid)
                pkt.frames.append("NEW_CONNECTION_ID")
            elif ftype in (0x1A, 0x1B):         # PATH_CHALLENGE / PATH_RESPONSE: 8 bytes
                if end - pos < 8:
                    raise _Malformed("PATH_CHALLENGE/PATH_RESPONSE data past the end of the payload")
                pos += 8
                pkt.frames.append("PATH_CHALLENGE" if ftype == 0x1A else "PATH_RESPONSE")
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
            elif ftype == 0x1E:
                pkt.handshake_done = True
                pkt.frames.append("HANDSHAKE_DONE")
            else:                               # 0x30 / 0x31: DATAGRAM, without / with Length
                if ftype & 1:
                    length, pos = _varint(payload, pos, end)
                    if length > end - pos:
                        raise _Malformed("DATAGRAM length past the end of the payload")
                else:
                    length = end - pos
                pos += length
                pkt.datagram_bytes += length
                pkt.frames.append("DATAGRAM")
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

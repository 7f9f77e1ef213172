"""DTLS records and handshake messages (RFC 4347 DTLS 1.0, RFC 6347 DTLS 1.2, RFC 9147 DTLS 1.3), sans-I/O.

DTLS is TLS fitted to datagrams: every record carries its own epoch and sequence number (13-byte
header instead of 5), several records may share one datagram, and every handshake message carries
a 12-byte header (message_seq, fragment_offset, fragment_length) so that it can be cut into
fragments that arrive out of order, twice, or not at all and are retransmitted as whole flights.
A ClientHello has a cookie between session id and cipher suites, answered by HelloVerifyRequest.
DTLS 1.3 protects records after the hellos with a compact "unified header" (RFC 9147 §4).

Layout: ``looks_like_dtls`` is the cheap test at the capture edge; ``split_records`` walks one
datagram; ``split_handshake_fragments`` cuts a plaintext handshake record into fragments;
``DtlsHandshakeReassembler`` turns one direction's fragments into messages, once each, in order;
``split_client_hello_cookie`` gives the TLS layout of a DTLS ClientHello so that
``tls.messages.decode_handshake`` reads it (every other DTLS message body already has the TLS layout).
Bytes in, typed values out. Nothing here raises on hostile input except the ``decode_*`` functions,
which raise ``DecodeError`` like the TLS message decoders.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from tlsscope.codec import DecodeError, Reader
from tlsscope.tls.messages import HelloVerifyRequest

__all__ = [
    "DTLS10", "DTLS12", "DTLS13", "DTLS_OPENSSL_PRE", "DTLS_VERSIONS", "ACK", "TLS12_CID",
    "MAX_RECORD_BODY", "DtlsRecord", "DtlsHandshakeFragment", "DtlsHandshakeReassembler",
    "HelloVerifyRequest", "looks_like_dtls", "is_unified_header", "split_records",
    "split_handshake_fragments", "split_client_hello_cookie", "decode_hello_verify_request",
    "decode_ack", "split_inner_plaintext", "transcript_message", "tls_version_of",
    "DecodeError",     # re-exported for callers of the decode_* functions
]

DTLS10, DTLS12, DTLS13 = 0xFEFF, 0xFEFD, 0xFEFC
DTLS_OPENSSL_PRE = 0x0100      # OpenSSL's pre-RFC DTLS 1.0 (DTLS1_BAD_VER), seen in old captures
DTLS_VERSIONS = frozenset((DTLS10, DTLS12, DTLS13, DTLS_OPENSSL_PRE))

TLS12_CID = 25                 # RFC 9146: DTLS 1.2 record with a connection ID in its header
ACK = 26                       # RFC 9147 §7
# Content types a plaintext-form (13-byte) header may carry.
_PLAIN_TYPES = frozenset((20, 21, 22, 23, 24, TLS12_CID, ACK))

PLAIN_HEADER_LEN = 13
HANDSHAKE_HEADER_LEN = 12
# RFC 6347 §4.3.1 / RFC 5246 §6.2.3: a DTLSCiphertext body is at most 2^14 + 2048 bytes.
MAX_RECORD_BODY = (1 << 14) + 2048

_TLS_OF = {DTLS10: 0x0302, DTLS12: 0x0303, DTLS13: 0x0304, DTLS_OPENSSL_PRE: 0x0302}


def tls_version_of(dtls_version: int) -> int:
    """The TLS version a DTLS version corresponds to (0xfeff->0x0302, 0xfefd->0x0303,
    0xfefc->0x0304, 0x0100->0x0302). Anything else (TLS versions included) comes back unchanged."""
    return _TLS_OF.get(dtls_version, dtls_version)


def _plausible_version(v: int) -> bool:
    # 0xfeXX: the DTLS family counts down from 0xfeff; unknown minors are kept, not refused.
    return v >> 8 == 0xFE or v == DTLS_OPENSSL_PRE


def is_unified_header(first_byte: int) -> bool:
    """RFC 9147 §4.1: 0b001xxxxx starts a DTLS 1.3 unified header (DTLSCiphertext)."""
    return first_byte & 0xE0 == 0x20


def looks_like_dtls(data: bytes) -> bool:
    """Cheap test for the capture edge (called for every UDP payload that is not QUIC): the payload
    starts with a plaintext DTLS record header (13 bytes: content type 20-25, version one of the
    DTLS versions, 2-byte epoch, 6-byte sequence number, 2-byte length that fits in the datagram).

    DTLS 1.3 unified headers are not accepted: with only 3 fixed bits they cannot be told from
    random UDP without a flow already known to be DTLS.
    """
    n = len(data)
    if n < PLAIN_HEADER_LEN:
        return False
    ct = data[0]
    if ct < 20 or ct > 25 or ((data[1] << 8) | data[2]) not in DTLS_VERSIONS:
        return False
    if ct == TLS12_CID:
        # The length sits after a CID whose size only the handshake told: accept when some CID
        # size makes the record end exactly at the end of the datagram (encrypted, so epoch > 0).
        if not (data[3] or data[4]):
            return False
        for cid_len in range(1, min(255, n - 15) + 1):
            p = PLAIN_HEADER_LEN - 2 + cid_len
            if p + 2 + ((data[p] << 8) | data[p + 1]) == n:
                return True
        return False
    length = (data[11] << 8) | data[12]
    # A zero-length record never happens: epoch 0 carries no empty messages, and later epochs
    # always carry a MAC or AEAD tag. Refusing it halves the false positives on random bytes.
    return 0 < length <= n - PLAIN_HEADER_LEN


# Not frozen: one is made per record on the hot path (as tls.records.Record).

@dataclass(slots=True)
class DtlsRecord:
    content_type: int | None   # None for a DTLS 1.3 unified-header (encrypted) record
    version: int | None        # None for unified headers
    epoch: int                 # full epoch, or the 2 low bits for unified headers
    sequence: int              # 48-bit, or the 8/16 low bits for unified headers (still masked by
                               # RFC 9147 §4.2.3 record number encryption: as seen on the wire)
    fragment: bytes            # the record body (ciphertext when encrypted)
    offset: int                # where the record starts in its datagram
    header_len: int
    error: str | None = None   # header lies (length past the end, ...): the walk of the datagram stops there
    cid: bytes = b""           # connection ID (unified header with the C bit, or tls12_cid)


def split_records(data: bytes, *, cid_len: int = 0) -> list[DtlsRecord]:
    """Every record of one datagram: plaintext-form headers and DTLS 1.3 unified headers.

    ``cid_len`` is the connection ID length negotiated for the records of this direction
    (RFC 9146 / RFC 9147 §9); without it a record that carries a CID cannot be framed (the CID
    length is not on the wire) and becomes an error record. An error record ends the list: once a
    header lies, nothing after it in the datagram can be trusted. Never raises.
    """
    if type(data) is not bytes:
        data = bytes(data)
    out: list[DtlsRecord] = []
    n = len(data)
    pos = 0
    cid_len = max(0, cid_len)
    while pos < n:
        b0 = data[pos]
        if is_unified_header(b0):
            rec = _unified(data, pos, cid_len)
        elif b0 in _PLAIN_TYPES:
            rec = _plaintext(data, pos, cid_len)
        else:
            rec = DtlsRecord(None, None, 0, 0, b"", pos, 0,
                             f"not a DTLS record header: first byte 0x{b0:02x} "
                             f"({n - pos} bytes left in the datagram)")
        out.append(rec)
        if rec.error is not None:
            break
        pos += rec.header_len + len(rec.fragment)
    return out


def _plaintext(data: bytes, pos: int, cid_len: int) -> DtlsRecord:
    n = len(data)
    ct = data[pos]
    if n - pos < PLAIN_HEADER_LEN:
        return DtlsRecord(ct, None, 0, 0, b"", pos, 0,
                          f"{n - pos} bytes left in the datagram: too short for a DTLS record header")
    version = (data[pos + 1] << 8) | data[pos + 2]
    epoch = (data[pos + 3] << 8) | data[pos + 4]
    seq = int.from_bytes(data[pos + 5:pos + 11], "big")
    if not _plausible_version(version):
        return DtlsRecord(ct, version, epoch, seq, b"", pos, 0, f"not a DTLS record version: 0x{version:04x}")
    cid = b""
    p = pos + 11
    if ct == TLS12_CID:
        if not cid_len:
            return DtlsRecord(ct, version, epoch, seq, b"", pos, 0,
                              "tls12_cid record: connection ID length unknown (not on the wire)")
        if n - p < cid_len + 2:
            return DtlsRecord(ct, version, epoch, seq, b"", pos, 0,
                              f"tls12_cid record header needs {13 + cid_len} bytes, {n - pos} left")
        cid = data[p:p + cid_len]
        p += cid_len
    length = (data[p] << 8) | data[p + 1]
    p += 2
    header_len = p - pos
    if length > n - p:
        return DtlsRecord(ct, version, epoch, seq, data[p:], pos, header_len,
                          f"record length {length} overruns the {n - p} bytes left in the datagram", cid)
    if length > MAX_RECORD_BODY:
        return DtlsRecord(ct, version, epoch, seq, data[p:p + length], pos, header_len,
                          f"record of {length} bytes exceeds the DTLS maximum of {MAX_RECORD_BODY}", cid)
    return DtlsRecord(ct, version, epoch, seq, data[p:p + length], pos, header_len, None, cid)


def _unified(data: bytes, pos: int, cid_len: int) -> DtlsRecord:
    """RFC 9147 §4: 0|0|1|C|S|L|E|E, then CID (C), 8 or 16-bit sequence (S), 16-bit length (L)."""
    n = len(data)
    b0 = data[pos]
    epoch = b0 & 0x03
    p = pos + 1
    cid = b""
    if b0 & 0x10:
        if not cid_len:
            return DtlsRecord(None, None, epoch, 0, b"", pos, 0,
                              "unified header with a connection ID of unknown length")
        cid = data[p:p + cid_len]
        p += cid_len
    seq_len = 2 if b0 & 0x08 else 1
    has_length = bool(b0 & 0x04)
    need = p - pos + seq_len + (2 if has_length else 0)
    if n - pos < need:
        return DtlsRecord(None, None, epoch, 0, b"", pos, 0,
                          f"unified header needs {need} bytes, {n - pos} left in the datagram")
    seq = data[p] if seq_len == 1 else (data[p] << 8) | data[p + 1]
    p += seq_len
    if has_length:
        length = (data[p] << 8) | data[p + 1]
        p += 2
        if length > n - p:
            return DtlsRecord(None, None, epoch, seq, data[p:], pos, p - pos,
                              f"record length {length} overruns the {n - p} bytes left in the datagram", cid)
        return DtlsRecord(None, None, epoch, seq, data[p:p + length], pos, p - pos, None, cid)
    # No length: the record takes the rest of the datagram (it is the last one).
    return DtlsRecord(None, None, epoch, seq, data[p:], pos, p - pos, None, cid)


# -- handshake fragments --------------------------------------------------------------------

@dataclass(slots=True)
class DtlsHandshakeFragment:
    msg_type: int
    length: int                # the whole message's body length
    message_seq: int
    fragment_offset: int
    fragment_length: int
    body: bytes                # this fragment's bytes of the message body


def split_handshake_fragments(fragment: bytes) -> tuple[list[DtlsHandshakeFragment], str | None]:
    """The handshake fragments (12-byte header each, RFC 6347 §4.2.2) in one plaintext handshake
    record, several per record allowed; with the error string when the rest does not parse
    (the fragments before it are still returned). Never raises."""
    if type(fragment) is not bytes:
        fragment = bytes(fragment)
    out: list[DtlsHandshakeFragment] = []
    n = len(fragment)
    if not n:
        return out, "empty handshake record"
    pos = 0
    while pos < n:
        if n - pos < HANDSHAKE_HEADER_LEN:
            return out, (f"{n - pos} bytes at offset {pos} are too few for a "
                         f"{HANDSHAKE_HEADER_LEN}-byte handshake fragment header")
        f = fragment
        length = (f[pos + 1] << 16) | (f[pos + 2] << 8) | f[pos + 3]
        seq = (f[pos + 4] << 8) | f[pos + 5]
        frag_off = (f[pos + 6] << 16) | (f[pos + 7] << 8) | f[pos + 8]
        frag_len = (f[pos + 9] << 16) | (f[pos + 10] << 8) | f[pos + 11]
        if frag_off + frag_len > length:
            return out, (f"fragment [{frag_off}, {frag_off + frag_len}) of message_seq {seq} lies outside "
                         f"the message of {length} bytes")
        start = pos + HANDSHAKE_HEADER_LEN
        if frag_len > n - start:
            return out, (f"fragment of {frag_len} bytes (message_seq {seq}) overruns the "
                         f"{n - start} bytes left in the record")
        out.append(DtlsHandshakeFragment(f[pos], length, seq, frag_off, frag_len, f[start:start + frag_len]))
        pos = start + frag_len
    return out, None


class _Pending:
    """One message being reassembled: its buffer and the byte ranges already filled."""

    __slots__ = ("msg_type", "length", "buf", "ranges", "conflict_noted")

    def __init__(self, msg_type: int, length: int):
        self.msg_type = msg_type
        self.length = length
        self.buf = bytearray(length)
        self.ranges: list[list[int]] = []   # sorted, disjoint, non-adjacent [start, end)
        self.conflict_noted = False

    def complete(self) -> bool:
        r = self.ranges
        return self.length == 0 or (len(r) == 1 and r[0][0] == 0 and r[0][1] == self.length)


class DtlsHandshakeReassembler:
    """One direction's handshake messages from their fragments (RFC 6347 §4.2.3, RFC 9147 §5.5).

    Fragments may come out of order, overlap, or repeat (retransmitted whole messages with the same
    message_seq, retransmitted flights). Each message is delivered once, in message_seq order, as
    ``(msg_type, message_seq, body)``. Overlapping bytes that disagree keep the first copy and are
    noted. Bounded: a message claiming more than ``max_message`` bytes is refused, at most
    ``max_pending`` bytes are buffered (later messages are evicted first to make room for the next
    one), and messages far ahead (message_seq > next + 32) are dropped.

    The expected message_seq starts at 0. Until something was delivered, a complete hello with a
    higher message_seq moves it forward: the capture started after the first flight (a
    ClientHello with seq 1 answers a HelloVerifyRequest). A whole ClientHello with message_seq 0
    that differs from the one delivered starts a new handshake (RFC 6347 §4.2.8, a client
    reusing its port); ``restarts`` counts them.
    """

    __slots__ = ("max_message", "max_pending", "next_seq", "retransmissions", "dropped", "restarts",
                 "notes", "pending", "_msgs", "_delivered", "_suppressed")

    WINDOW = 32              # how far ahead of the next expected message_seq fragments are kept
    MAX_RANGES = 1024        # holes per message: beyond, a fragment that opens another is dropped
    MAX_NOTES = 64
    _REMEMBER = 64           # delivered messages remembered (type, length, digest) to judge repeats

    def __init__(self, max_message: int = 256 * 1024, max_pending: int = 512 * 1024):
        self.max_message = max_message
        self.max_pending = max_pending
        self.next_seq = 0
        self.retransmissions = 0
        self.dropped = 0
        self.restarts = 0
        self.notes: list[str] = []
        self.pending = 0   # bytes buffered: the full claimed length of every message under way
        self._msgs: dict[int, _Pending] = {}
        self._delivered: dict[int, tuple[int, int, bytes]] = {}   # seq -> (msg_type, length, digest)
        self._suppressed = False

    # -- public ------------------------------------------------------------------------------

    def add(self, frag: DtlsHandshakeFragment) -> list[tuple[int, int, bytes]]:
        """Take one fragment; returns the messages it completes (possibly several, in order)."""
        seq = frag.message_seq
        body = frag.body
        off = frag.fragment_offset
        length = frag.length
        if length > self.max_message:
            self._drop(f"message_seq {seq} (type {frag.msg_type}) claims {length} bytes "
                       f"(limit {self.max_message}); refused")
            return []
        if off < 0 or off + len(body) > length:
            self._drop(f"fragment [{off}, {off + len(body)}) of message_seq {seq} lies outside "
                       f"the message of {length} bytes")
            return []
        if seq < self.next_seq:
            return self._repeat(frag)
        if not body and length:
            return []                    # an empty fragment of a non-empty message carries nothing
        if seq > self.next_seq + self.WINDOW:
            self._drop(f"message_seq {seq} is too far ahead of the expected {self.next_seq}; dropped")
            return []
        msg = self._msgs.get(seq)
        if msg is None:
            if length > self.max_pending - self.pending and not self._make_room(seq, length):
                self._drop(f"message_seq {seq} ({length} bytes) does not fit in the "
                           f"{self.max_pending}-byte reassembly budget; dropped")
                return []
            msg = _Pending(frag.msg_type, length)
            self._msgs[seq] = msg
            self.pending += length
        elif msg.msg_type != frag.msg_type or msg.length != length:
            self._drop(f"message_seq {seq}: fragment says type {frag.msg_type} of {length} bytes, "
                       f"earlier ones type {msg.msg_type} of {msg.length}; dropped")
            return []
        if not self._fill(seq, msg, off, body):
            return []
        out: list[tuple[int, int, bytes]] = []
        if seq > self.next_seq and not self._delivered and msg.complete() and msg.msg_type in (1, 2):
            self._jump_to(seq)
        self._deliver(out)
        return out

    def skip_to(self, message_seq: int) -> None:
        """Expect ``message_seq`` next: the messages before it will never be seen (encrypted, lost
        before the capture started). Buffered earlier messages are discarded."""
        if message_seq > self.next_seq:
            self._jump_to(message_seq)

    def finish(self) -> list[str]:
        """Notes about messages left incomplete (for the end of the flow); also added to ``notes``."""
        out = []
        for seq in sorted(self._msgs):
            msg = self._msgs[seq]
            have = sum(e - s for s, e in msg.ranges)
            out.append(f"message_seq {seq} (type {msg.msg_type}) incomplete: {have} of {msg.length} bytes seen")
        for text in out:
            self._note(text)
        return out

    # -- internals ---------------------------------------------------------------------------

    def _note(self, text: str) -> None:
        if len(self.notes) < self.MAX_NOTES:
            self.notes.append(text)
        elif not self._suppressed:
            self._suppressed = True
            self.notes.append("further notes suppressed")

    def _drop(self, text: str) -> None:
        self.dropped += 1
        self._note(text)

    def _repeat(self, frag: DtlsHandshakeFragment) -> list[tuple[int, int, bytes]]:
        """A fragment of a message already delivered (or skipped)."""
        seq = frag.message_seq
        seen = self._delivered.get(seq)
        whole = frag.fragment_offset == 0 and len(frag.body) == frag.length
        if seen is not None and whole and _digest(frag.body) != seen[2]:
            if seq == 0 and frag.msg_type == 1 and seen[0] == 1:
                # RFC 6347 §4.2.8: a new ClientHello from the same address and port is a new association.
                self.restarts += 1
                self._note("a different ClientHello with message_seq 0: new handshake (RFC 6347 §4.2.8)")
                self._reset()
                return self.add(frag)
            self.retransmissions += 1
            self._note(f"retransmitted message_seq {seq} differs from the message delivered")
            return []
        if seen is not None and (seen[0] != frag.msg_type or seen[1] != frag.length):
            self.retransmissions += 1
            self._note(f"retransmitted message_seq {seq} says type {frag.msg_type} of {frag.length} bytes, "
                       f"the message delivered was type {seen[0]} of {seen[1]}")
            return []
        self.retransmissions += 1
        return []

    def _fill(self, seq: int, msg: _Pending, off: int, body: bytes) -> bool:
        """Copy the new bytes of a fragment; False when it brought nothing new (or was dropped)."""
        end = off + len(body)
        if end == off:
            return msg.length == 0       # an empty fragment only completes an empty message
        new_ranges: list[list[int]] = []
        gaps: list[tuple[int, int]] = []
        pos = off
        lo, hi = off, end
        placed = False
        conflict = False
        buf = msg.buf
        for s, e in msg.ranges:
            if e < off or s > end:
                if s > end and not placed:
                    new_ranges.append([lo, hi])
                    placed = True
                new_ranges.append([s, e])
                continue
            # touching or overlapping: compare what overlaps, remember the gap before it
            if s > pos:
                gaps.append((pos, s))
            os_, oe = max(s, off), min(e, end)
            if oe > os_ and buf[os_:oe] != body[os_ - off:oe - off]:
                conflict = True
            pos = max(pos, e)
            lo, hi = min(lo, s), max(hi, e)
        if pos < end:
            gaps.append((pos, end))
        if not placed:
            new_ranges.append([lo, hi])
        if conflict and not msg.conflict_noted:
            msg.conflict_noted = True
            self._note(f"message_seq {seq}: overlapping fragments disagree; the first bytes are kept")
        if not gaps:
            self.retransmissions += 1
            return False
        if len(new_ranges) > self.MAX_RANGES:
            self._drop(f"message_seq {seq}: more than {self.MAX_RANGES} separate fragments; dropped one")
            return False
        for s, e in gaps:
            buf[s:e] = body[s - off:e - off]
        msg.ranges = new_ranges
        return True

    def _make_room(self, seq: int, need: int) -> bool:
        """Evict buffered messages later than ``seq`` (latest first) until ``need`` bytes fit."""
        for later in sorted((s for s in self._msgs if s > seq), reverse=True):
            if need <= self.max_pending - self.pending:
                break
            msg = self._msgs.pop(later)
            self.pending -= msg.length
            self._drop(f"message_seq {later} evicted to make room for message_seq {seq}")
        return need <= self.max_pending - self.pending

    def _jump_to(self, seq: int) -> None:
        for s in [s for s in self._msgs if s < seq]:
            self.pending -= self._msgs.pop(s).length
            self.dropped += 1
        self.next_seq = seq

    def _deliver(self, out: list) -> None:
        msgs = self._msgs
        while True:
            msg = msgs.get(self.next_seq)
            if msg is None or not msg.complete():
                return
            del msgs[self.next_seq]
            self.pending -= msg.length
            body = bytes(msg.buf)
            seq = self.next_seq
            out.append((msg.msg_type, seq, body))
            self._delivered[seq] = (msg.msg_type, msg.length, _digest(body))
            self._delivered.pop(seq - self._REMEMBER, None)
            self.next_seq = seq + 1

    def _reset(self) -> None:
        self._msgs.clear()
        self._delivered.clear()
        self.pending = 0
        self.next_seq = 0


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


# -- message bodies -------------------------------------------------------------------------

def split_client_hello_cookie(body: bytes) -> tuple[bytes, bytes] | None:
    """A DTLS ClientHello body has a cookie<0..2^8-1> after legacy_session_id (RFC 6347 §4.2.1).

    Returns (the body in TLS layout, cookie removed; the cookie) so that the TLS ClientHello decoder
    can read it; None when the body is too short to hold it. Offsets reported by the TLS decoder
    are then off by ``1 + len(cookie)`` after the session id, and the transcript hash wants the
    original body, not this one.
    """
    n = len(body)
    if n < 35:
        return None
    p = 35 + body[34]                 # after client_version, random, session_id
    if p >= n:
        return None
    end = p + 1 + body[p]
    if end > n:
        return None
    body = bytes(body)
    return body[:p] + body[end:], body[p + 1:end]


def decode_hello_verify_request(body: bytes, offset: int = 0) -> HelloVerifyRequest:
    """HelloVerifyRequest (RFC 6347 §4.2.1): server_version, cookie<0..2^8-1>.
    Raises ``DecodeError`` on malformed input (like the TLS message decoders)."""
    r = Reader(body, "HelloVerifyRequest", offset)
    msg = HelloVerifyRequest(r.u16("server_version"), r.vector_bytes(1, "cookie"))
    r.expect_end("HelloVerifyRequest")
    return msg


def decode_ack(body: bytes, offset: int = 0) -> tuple[tuple[int, int], ...]:
    """A DTLS 1.3 ACK (RFC 9147 §7): the (epoch, sequence_number) record numbers it acknowledges.
    Raises ``DecodeError`` on malformed input."""
    r = Reader(body, "ACK", offset)
    lst = r.vector(2, "record_numbers")
    if lst.remaining % 16:
        raise lst.error(f"length {lst.remaining} is not a multiple of 16 (RecordNumber)")
    out = []
    while not lst.at_end():
        out.append((lst.uint(8, "epoch"), lst.uint(8, "sequence_number")))
    r.expect_end("ACK")
    return tuple(out)


def split_inner_plaintext(plaintext: bytes) -> tuple[int, bytes] | None:
    """A decrypted DTLS 1.3 record (DTLSInnerPlaintext, RFC 9147 §4 / RFC 8446 §5.4): its real
    content type and content, the zero padding removed; None when it is all zeros (no type)."""
    end = len(plaintext)
    while end and not plaintext[end - 1]:
        end -= 1
    if not end:
        return None
    return plaintext[end - 1], bytes(plaintext[:end - 1])


def transcript_message(msg_type: int, message_seq: int, body: bytes, version: int | None) -> bytes:
    """A reassembled message as it enters the handshake transcript hash.

    DTLS 1.0/1.2 hash the 12-byte header as if the message were unfragmented (RFC 6347 §4.2.6);
    DTLS 1.3 hashes the TLS 1.3 4-byte header (RFC 9147 §5.2). (DTLS 1.2 leaves the first
    ClientHello and the HelloVerifyRequest out of the transcript: the caller's business.)
    """
    n = len(body).to_bytes(3, "big")
    if version == DTLS13:
        return bytes((msg_type,)) + n + body
    return bytes((msg_type,)) + n + (message_seq & 0xFFFF).to_bytes(2, "big") + b"\x00\x00\x00" + n + body

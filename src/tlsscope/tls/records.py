"""TLS record framing for one direction of a TCP stream (sans-I/O).

Bytes in (in stream order, possibly with gaps), records out. A record that is
not complete yet is buffered; a header that cannot be a TLS record is reported
once and the layer resynchronises on the next plausible header. Memory is
bounded: a record is at most 5 + 65535 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
HEARTBEAT = 24
TLS12_CID = 25
ACK = 26            # DTLS 1.3 only (RFC 9147 §7)
KNOWN_CONTENT_TYPES = frozenset((20, 21, 22, 23, 24, 25))

# RFC 8446 §5.2: TLSCiphertext may be up to 2^14 + 256; TLS 1.2 allows 2^14 + 2048.
MAX_CIPHERTEXT = (1 << 14) + 2048
# How far to look for a record header after a gap or garbage before giving up on a chunk.
RESYNC_WINDOW = 1 << 16


# The per-record types below are not frozen: they are made once per record on the hot path,
# where frozen construction (object.__setattr__ per field) costs several times more; nothing
# hashes them or keeps them after the record is processed.

@dataclass(slots=True)
class Record:
    content_type: int
    legacy_version: int
    fragment: bytes
    offset: int        # stream offset of the 5-byte header in this direction
    ts: float
    frame: int


@dataclass(slots=True)
class SSLv2Hello:
    """An SSLv2-compatible ClientHello (RFC 5246 Appendix E.2)."""

    body: bytes        # from msg_type (1) on
    header_len: int    # 2 or 3
    offset: int
    ts: float
    frame: int


@dataclass(slots=True)
class RecordNote:
    """Something wrong at the record layer: malformed framing, a gap, a resync."""

    code: str          # record_malformed | record_oversized | record_gap | record_resync | record_truncated
    message: str
    offset: int
    ts: float
    frame: int
    data: bytes = b""  # the first bytes where it happened (for the hex view)


def plausible_header(buf, i: int, *, strict: bool = False) -> bool:
    """Could ``buf[i:i+5]`` start a TLS record? ``strict`` also wants a known type and sane length."""
    if len(buf) - i < 5:
        return False
    ct = buf[i]
    if buf[i + 1] != 3 or buf[i + 2] > 4:
        return False
    if strict:
        if ct not in KNOWN_CONTENT_TYPES:
            return False
        length = (buf[i + 3] << 8) | buf[i + 4]
        return 0 < length <= MAX_CIPHERTEXT or (length == 0 and ct == APPLICATION_DATA)
    return 20 <= ct <= 63


def looks_like_sslv2_hello(buf, i: int = 0) -> bool:
    """SSLv2 record header (2-byte form, high bit set) carrying a CLIENT-HELLO (msg_type 1)."""
    if len(buf) - i < 5:
        return False
    b0 = buf[i]
    if not b0 & 0x80:
        return False
    length = ((b0 & 0x7F) << 8) | buf[i + 1]
    # msg_type 1, then version 0x0002 (SSL 2) or 0x03xx (TLS)
    return (length >= 9 and buf[i + 2] == 1
            and ((buf[i + 3] == 3 and buf[i + 4] <= 4) or (buf[i + 3] == 0 and buf[i + 4] == 2)))


def find_tls_start(buf, start: int = 0, *, want_hello: bool = True) -> int:
    """Index of the first plausible TLS handshake record (or SSLv2 hello) in ``buf``, or -1.

    Used to detect TLS on any port and after a plaintext prelude (STARTTLS):
    a handshake record whose first handshake message is a ClientHello/ServerHello
    (``want_hello``) or, for the answering side, an alert.
    """
    n = len(buf)
    i = start
    while True:
        i = buf.find(b"\x16\x03", i) if isinstance(buf, (bytes, bytearray)) else bytes(buf).find(b"\x16\x03", i)
        if i < 0 or i + 5 > n:
            break
        if plausible_header(buf, i, strict=True) and (not want_hello or n - i < 6 or buf[i + 5] in (1, 2)):
            return i
        i += 1
    if start == 0 and looks_like_sslv2_hello(buf, 0):
        return 0
    return -1


class RecordLayer:
    """Reassembles records from one direction's byte stream."""

    __slots__ = ("_buf", "_base", "_synced", "_sslv2_ok", "records", "bytes_seen", "_ts", "_frame")

    def __init__(self, stream_offset: int = 0):
        self._buf = bytearray()
        self._base = stream_offset   # stream offset of _buf[0]
        self._synced = True
        self._sslv2_ok = True        # only the very first message may be an SSLv2 hello
        self.records = 0
        self.bytes_seen = 0
        self._ts = 0.0
        self._frame = 0

    def feed(self, data: bytes, ts: float, frame: int) -> list:
        self._ts = ts
        self._frame = frame
        n = len(data)
        self.bytes_seen += n
        out: list = []
        buf = self._buf
        if not buf and self._synced and (not self._sslv2_ok or (n >= 5 and not data[0] & 0x80)):
            # Fast path (the common case): nothing buffered, so records are cut straight out of
            # ``data`` and only an incomplete tail is buffered. Anything odd goes the slow way.
            self._sslv2_ok = False
            if type(data) is not bytes:
                data = bytes(data)             # fragments are bytes, not views of the caller's buffer
            pos = 0
            base = self._base
            count = 0
            append = out.append
            while n - pos >= 5:
                ct = data[pos]
                v1 = data[pos + 1]
                v2 = data[pos + 2]
                if v1 != 3 or v2 > 4 or ct < 20 or ct > 63:
                    break                      # malformed: the slow path reports it
                end = pos + 5 + ((data[pos + 3] << 8) | data[pos + 4])
                if end > n:
                    break
                if end - pos - 5 > MAX_CIPHERTEXT:
                    break
                append(Record(ct, 0x300 | v2, data[pos + 5:end], base + pos, ts, frame))
                count += 1
                pos = end
            self.records += count
            if pos == n:
                self._base = base + pos
                return out
            buf += data[pos:] if pos else data
            self._base = base + pos
            return self._parse(buf, out, ts, frame)
        buf += data
        return self._parse(buf, out, ts, frame)

    def feed_app(self, data: bytes, ts: float, frame: int) -> tuple[int, int, int, int] | None:
        """``data`` holds exactly whole application_data records on an empty buffer: take them
        without making Records or copying their bodies (a reader without keys only counts them).

        Returns (records, body bytes, stream offset of the first, body length of the last) or, for
        anything else, None without consuming anything: then ``feed`` must be used.
        """
        if self._buf or not self._synced or self._sslv2_ok:
            return None
        n = len(data)
        pos = 0
        count = 0
        last = 0
        while pos < n:
            if n - pos < 5 or data[pos] != APPLICATION_DATA or data[pos + 1] != 3 or data[pos + 2] > 4:
                return None
            last = (data[pos + 3] << 8) | data[pos + 4]
            end = pos + 5 + last
            if end > n or last > MAX_CIPHERTEXT:
                return None
            count += 1
            pos = end
        if not count:
            return None
        first = self._base
        self._base = first + n
        self.records += count
        self.bytes_seen += n
        self._ts = ts
        self._frame = frame
        return count, n - 5 * count, first, last

    def _parse(self, buf: bytearray, out: list, ts: float, frame: int) -> list:
        """The general loop over the buffer: SSLv2 hellos, resynchronisation, notes."""
        pos = 0
        n = len(buf)
        while True:
            if not self._synced:
                j = self._resync(buf, pos)
                if j < 0:
                    # keep the last 4 bytes: a header may straddle chunks
                    keep = max(pos, n - 4)
                    pos = keep
                    break
                if j > pos:
                    out.append(RecordNote("record_resync",
                                          f"skipped {j - pos} bytes to the next plausible record header",
                                          self._base + pos, ts, frame))
                pos = j
                self._synced = True
            if n - pos < 5:
                break
            if self._sslv2_ok and self.records == 0 and buf[pos] & 0x80 and looks_like_sslv2_hello(buf, pos):
                length = ((buf[pos] & 0x7F) << 8) | buf[pos + 1]
                if n - pos < 2 + length:
                    break
                out.append(SSLv2Hello(bytes(buf[pos + 2:pos + 2 + length]), 2, self._base + pos, ts, frame))
                self.records += 1
                pos += 2 + length
                continue
            self._sslv2_ok = False
            ct = buf[pos]
            if buf[pos + 1] != 3 or buf[pos + 2] > 4 or ct < 20 or ct > 63:
                out.append(RecordNote("record_malformed",
                                      f"not a TLS record header: {bytes(buf[pos:pos + 5]).hex()}",
                                      self._base + pos, ts, frame, bytes(buf[pos:pos + 16])))
                self._synced = False
                pos += 1
                continue
            length = (buf[pos + 3] << 8) | buf[pos + 4]
            if n - pos < 5 + length:
                break
            version = (buf[pos + 1] << 8) | buf[pos + 2]
            if length > MAX_CIPHERTEXT:
                out.append(RecordNote("record_oversized",
                                      f"record of {length} bytes exceeds the TLS maximum of {MAX_CIPHERTEXT}",
                                      self._base + pos, ts, frame))
            out.append(Record(ct, version, bytes(buf[pos + 5:pos + 5 + length]), self._base + pos, ts, frame))
            self.records += 1
            pos += 5 + length
        if pos:
            del buf[:pos]
            self._base += pos
        return out

    @staticmethod
    def _resync(buf, start: int) -> int:
        n = len(buf)
        i = start
        limit = n - 5
        while i <= limit:
            if plausible_header(buf, i, strict=True):
                # Prefer a header whose successor is plausible too (when we can see it).
                length = (buf[i + 3] << 8) | buf[i + 4]
                nxt = i + 5 + length
                if nxt + 5 > n or plausible_header(buf, nxt, strict=True):
                    return i
            i += 1
        return -1

    def gap(self, missing: int, ts: float, frame: int) -> list:
        """Bytes were lost in the stream: drop the partial record and resynchronise."""
        out = [RecordNote("record_gap", f"{missing} bytes missing in the TCP stream; "
                          "resynchronising on the next record header",
                          self._base + len(self._buf), ts, frame)]
        self._base += len(self._buf) + missing
        self._buf.clear()
        self._synced = False
        self._sslv2_ok = False
        return out

    def finish(self) -> list:
        if self._buf and self._synced:
            need = ""
            if len(self._buf) >= 5:
                need = f" of {5 + ((self._buf[3] << 8) | self._buf[4])}"
            return [RecordNote("record_truncated",
                               f"stream ended inside a record ({len(self._buf)}{need} bytes seen)",
                               self._base, self._ts, self._frame, bytes(self._buf[:16]))]
        return []

    @property
    def pending(self) -> int:
        return len(self._buf)

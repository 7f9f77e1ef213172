"""Handshake message framing (sans-I/O): messages spanning records, several per record.

Fed the fragments of handshake records (plaintext or decrypted) of one direction,
it yields complete messages with their 4-byte header. A message claiming more than
``max_message`` bytes is reported and skipped by counting, never buffered.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_MESSAGE = 1 << 20   # 1 MiB: real certificate chains stay far below


@dataclass(frozen=True, slots=True)
class RawHandshake:
    msg_type: int
    body: bytes
    offset: int        # stream offset of the record that carried the header
    ts: float
    frame: int
    records: int       # how many records it spanned

    @property
    def raw(self) -> bytes:
        n = len(self.body)
        return bytes((self.msg_type, n >> 16 & 0xFF, n >> 8 & 0xFF, n & 0xFF)) + self.body


@dataclass(frozen=True, slots=True)
class HandshakeNote:
    code: str          # handshake_oversized | handshake_truncated
    message: str
    offset: int
    ts: float
    frame: int


class HandshakeDefragmenter:
    __slots__ = ("_buf", "_skip", "_start_offset", "_start_ts", "_start_frame", "_records", "max_message")

    def __init__(self, max_message: int = MAX_MESSAGE):
        self._buf = bytearray()
        self._skip = 0
        self._records = 0
        self._start_offset = 0
        self._start_ts = 0.0
        self._start_frame = 0
        self.max_message = max_message

    def feed(self, fragment: bytes, offset: int, ts: float, frame: int) -> list:
        out: list = []
        if self._skip:
            take = min(self._skip, len(fragment))
            self._skip -= take
            fragment = fragment[take:]
            if not fragment:
                return out
        if not self._buf:
            self._start_offset, self._start_ts, self._start_frame, self._records = offset, ts, frame, 0
        buf = self._buf
        buf += fragment
        self._records += 1
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            length = (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]
            if length > self.max_message:
                out.append(HandshakeNote(
                    "handshake_oversized",
                    f"handshake message type {buf[pos]} claims {length} bytes (limit {self.max_message}); skipped",
                    self._start_offset, self._start_ts, self._start_frame))
                have = n - pos - 4
                self._skip = max(0, length - have)
                pos = min(n, pos + 4 + length)
                continue
            if n - pos - 4 < length:
                break
            out.append(RawHandshake(buf[pos], bytes(buf[pos + 4:pos + 4 + length]),
                                    self._start_offset, self._start_ts, self._start_frame, self._records))
            pos += 4 + length
            # following messages in this buffer start in the current record
            self._start_offset, self._start_ts, self._start_frame, self._records = offset, ts, frame, 1
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf) + self._skip

    def finish(self) -> list:
        if self._buf:
            return [HandshakeNote("handshake_truncated",
                                  f"stream ended inside a handshake message ({len(self._buf)} bytes buffered)",
                                  self._start_offset, self._start_ts, self._start_frame)]
        return []

    def reset(self) -> None:
        self._buf.clear()
        self._skip = 0

"""Handshake message framing (sans-I/O): messages spanning records, several per record.

Fed the fragments of handshake records (plaintext or decrypted) of one direction,
it yields complete messages with their 4-byte header. A message claiming more than
``max_message`` bytes is reported and skipped by counting, never buffered.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_MESSAGE = 1 << 20   # 1 MiB: real certificate chains stay far below


# Not frozen: one is made per handshake message on the hot path, where frozen construction
# costs several times more; nothing hashes them.

@dataclass(slots=True)
class RawHandshake:
    msg_type: int
    body: bytes
    offset: int        # stream offset of the record that carried the header
    ts: float
    frame: int
    records: int       # how many records it spanned
    raw: bytes         # the whole message: 4-byte header + body


@dataclass(slots=True)
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
            if type(fragment) is bytes:
                return self._feed_direct(fragment, offset, ts, frame, out)
            self._start_offset, self._start_ts, self._start_frame, self._records = offset, ts, frame, 0
        self._buf += fragment
        return self._loop(out, offset, ts, frame)

    def _loop(self, out: list, offset: int, ts: float, frame: int) -> list:
        buf = self._buf
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
            raw = bytes(buf[pos:pos + 4 + length])
            out.append(RawHandshake(raw[0], raw[4:], self._start_offset, self._start_ts,
                                    self._start_frame, self._records, raw))
            pos += 4 + length
            # following messages in this buffer start in the current record
            self._start_offset, self._start_ts, self._start_frame, self._records = offset, ts, frame, 1
        if pos:
            del buf[:pos]
        return out

    def _feed_direct(self, fragment: bytes, offset: int, ts: float, frame: int, out: list) -> list:
        """Nothing buffered (the common case): messages are cut straight out of the fragment."""
        n = len(fragment)
        pos = 0
        max_message = self.max_message
        while n - pos >= 4:
            end = pos + 4 + ((fragment[pos + 1] << 16) | (fragment[pos + 2] << 8) | fragment[pos + 3])
            if end > n or end - pos - 4 > max_message:
                break
            out.append(RawHandshake(fragment[pos], fragment[pos + 4:end], offset, ts, frame, 1,
                                    fragment[pos:end]))
            pos = end
        if pos == n:
            return out
        # an incomplete (or oversized) message: the general loop takes over from here
        self._start_offset, self._start_ts, self._start_frame, self._records = offset, ts, frame, 0
        self._buf += fragment[pos:] if pos else fragment
        return self._loop(out, offset, ts, frame)

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

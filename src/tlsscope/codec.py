"""A reader over wire bytes in the vocabulary of the RFC presentation language.

Every decoder in the core reads through :class:`Reader`; every failure is one
:class:`DecodeError` carrying the absolute offset, the field path and a reason,
so that a malformed message can be reported precisely ("ClientHello.extensions[3]
.server_name: vector of 300 bytes overruns the 12 bytes left at offset 57").
"""

from __future__ import annotations

__all__ = ["DecodeError", "Reader"]


class DecodeError(Exception):
    """A complete unit of wire data that does not parse."""

    def __init__(self, offset: int, path: str, reason: str):
        super().__init__(f"{path or '<root>'} at offset {offset}: {reason}")
        self.offset = offset
        self.path = path
        self.reason = reason


class Reader:
    """Sequential big-endian reader over a bytes-like object.

    ``base`` is the absolute offset of ``data[0]`` (so nested readers report
    offsets in the enclosing message), ``path`` names what is being read.
    """

    __slots__ = ("_buf", "_pos", "_end", "base", "path")

    def __init__(self, data: bytes | bytearray | memoryview, path: str = "", base: int = 0,
                 start: int = 0, end: int | None = None):
        self._buf = data
        self._pos = start
        self._end = len(data) if end is None else end
        self.base = base
        self.path = path

    # -- position -----------------------------------------------------------
    @property
    def offset(self) -> int:
        """Absolute offset of the next byte."""
        return self.base + self._pos

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def at_end(self) -> bool:
        return self._pos >= self._end

    def error(self, reason: str, field: str | None = None) -> DecodeError:
        path = self.path if field is None else (f"{self.path}.{field}" if self.path else field)
        return DecodeError(self.offset, path, reason)

    def _need(self, n: int, field: str | None) -> None:
        if n > self._end - self._pos:
            raise self.error(f"needs {n} bytes, {self._end - self._pos} left", field)

    # -- integers -----------------------------------------------------------
    def u8(self, field: str | None = None) -> int:
        self._need(1, field)
        v = self._buf[self._pos]
        self._pos += 1
        return v

    def u16(self, field: str | None = None) -> int:
        self._need(2, field)
        p = self._pos
        b = self._buf
        self._pos = p + 2
        return (b[p] << 8) | b[p + 1]

    def u24(self, field: str | None = None) -> int:
        self._need(3, field)
        p = self._pos
        b = self._buf
        self._pos = p + 3
        return (b[p] << 16) | (b[p + 1] << 8) | b[p + 2]

    def u32(self, field: str | None = None) -> int:
        self._need(4, field)
        v = int.from_bytes(self._buf[self._pos:self._pos + 4], "big")
        self._pos += 4
        return v

    def uint(self, n: int, field: str | None = None) -> int:
        self._need(n, field)
        v = int.from_bytes(self._buf[self._pos:self._pos + n], "big")
        self._pos += n
        return v

    # -- byte strings -------------------------------------------------------
    def opaque(self, n: int, field: str | None = None) -> bytes:
        """Exactly ``n`` bytes (a fixed-length ``opaque x[n]``)."""
        self._need(n, field)
        v = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return v

    def _length(self, length_bytes: int, field: str | None) -> int:
        n = self.uint(length_bytes, field)
        if n > self._end - self._pos:
            raise self.error(f"length {n} overruns the {self._end - self._pos} bytes left", field)
        return n

    def vector_bytes(self, length_bytes: int, field: str | None = None,
                     minimum: int = 0) -> bytes:
        """A variable-length ``opaque x<..>`` with a ``length_bytes`` prefix."""
        n = self._length(length_bytes, field)
        if n < minimum:
            raise self.error(f"length {n} below minimum {minimum}", field)
        v = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return v

    def vector(self, length_bytes: int, field: str | None = None) -> "Reader":
        """A length-prefixed vector as a sub-reader (its path extended by ``field``)."""
        n = self._length(length_bytes, field)
        path = self.path if field is None else (f"{self.path}.{field}" if self.path else field)
        sub = Reader(self._buf, path, self.base, self._pos, self._pos + n)
        self._pos += n
        return sub

    def sub(self, n: int, field: str | None = None) -> "Reader":
        """The next ``n`` bytes as a sub-reader, without a length prefix."""
        self._need(n, field)
        path = self.path if field is None else (f"{self.path}.{field}" if self.path else field)
        sub = Reader(self._buf, path, self.base, self._pos, self._pos + n)
        self._pos += n
        return sub

    def rest(self) -> bytes:
        v = bytes(self._buf[self._pos:self._end])
        self._pos = self._end
        return v

    def u8_list(self, length_bytes: int, field: str | None = None) -> tuple[int, ...]:
        sub = self.vector(length_bytes, field)
        return tuple(sub._buf[sub._pos:sub._end])

    def u16_list(self, length_bytes: int, field: str | None = None) -> tuple[int, ...]:
        sub = self.vector(length_bytes, field)
        if sub.remaining % 2:
            raise sub.error(f"odd length {sub.remaining} for a list of 16-bit values")
        b = bytes(sub._buf[sub._pos:sub._end])
        return tuple((b[i] << 8) | b[i + 1] for i in range(0, len(b), 2))

    def expect_end(self, what: str = "") -> None:
        if self._pos != self._end:
            raise self.error(f"{self._end - self._pos} trailing bytes{(' after ' + what) if what else ''}")

    def child(self, field: str) -> "Reader":
        """Same position, longer path: for naming list items (``extensions[3]``)."""
        r = Reader(self._buf, f"{self.path}.{field}" if self.path else field, self.base, self._pos, self._end)
        return r

    def advance_to(self, other: "Reader") -> None:
        """Continue after what ``other`` (a child) consumed."""
        self._pos = other._pos

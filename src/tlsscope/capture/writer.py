"""A minimal pcapng writer: what `tlsscope live -w` needs (one interface, packets, key log as DSB)."""

from __future__ import annotations

import struct
from typing import BinaryIO

_SHB, _IDB, _EPB, _DSB = 0x0A0D0D0A, 0x00000001, 0x00000006, 0x0000000A
TLS_KEYLOG = 0x544C534B


def _pad(n: int) -> int:
    return (4 - n % 4) % 4


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * _pad(len(value))


class PcapngWriter:
    """Writes a little-endian pcapng with one interface, microsecond timestamps."""

    def __init__(self, fh: BinaryIO, linktype: int, snaplen: int = 262144, *,
                 interface: str = "", application: str = "tlsscope"):
        self._fh = fh
        opts = _option(4, application.encode()) + _option(0, b"")     # shb_userappl, opt_endofopt
        fh.write(_block(_SHB, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts))
        idb_opts = b""
        if interface:
            idb_opts += _option(2, interface.encode())                 # if_name
        idb_opts += _option(9, b"\x06") + _option(0, b"")              # if_tsresol = 10^-6
        fh.write(_block(_IDB, struct.pack("<HHI", linktype, 0, snaplen) + idb_opts))
        self.packets = 0

    def packet(self, ts: float, data: bytes, orig_len: int | None = None) -> None:
        us = int(round(ts * 1_000_000))
        n = len(data)
        body = struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF, n, orig_len if orig_len is not None else n)
        self._fh.write(_block(_EPB, body + data + b"\x00" * _pad(n)))
        self.packets += 1

    def secrets(self, data: bytes, secrets_type: int = TLS_KEYLOG) -> None:
        body = struct.pack("<II", secrets_type, len(data)) + data + b"\x00" * _pad(len(data))
        self._fh.write(_block(_DSB, body))

    def flush(self) -> None:
        self._fh.flush()

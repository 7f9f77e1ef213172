"""Find pcapng Decryption Secrets Blocks before reading packets.

A DSB may come after the packets it unlocks (a live capture writes the key log
at the end). Walking only block headers is cheap, so `read` collects the
secrets first and decrypts in a single streaming pass afterwards.
"""

from __future__ import annotations

import gzip
import os
import struct

from ..model import DecryptionSecrets

_SHB, _DSB = 0x0A0D0D0A, 0x0000000A
MAX_SECRETS = 64 << 20   # never hold more than this much key material


def find_decryption_secrets(path: str | os.PathLike) -> list[DecryptionSecrets]:
    try:
        with open(path, "rb") as raw:
            magic = raw.read(4)
            raw.seek(0)
            if magic[:2] == b"\x1f\x8b":
                with gzip.open(raw) as fh:
                    return _scan(fh, seekable=False)
            if magic != b"\x0a\x0d\x0d\x0a":
                return []
            return _scan(raw, seekable=True)
    except (OSError, EOFError, gzip.BadGzipFile, struct.error):
        return []


def _scan(fh, *, seekable: bool) -> list[DecryptionSecrets]:
    out: list[DecryptionSecrets] = []
    endian = "<"
    total_secrets = 0
    blocks = 0
    while True:
        head = fh.read(8)
        if len(head) < 8:
            break
        btype_le = struct.unpack("<I", head[:4])[0]
        if btype_le == _SHB:
            bom = fh.read(4)
            if len(bom) < 4:
                break
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            length = struct.unpack(endian + "I", head[4:])[0]
            rest = length - 12
        else:
            btype, length = struct.unpack(endian + "II", head)
            rest = length - 8
            if btype == _DSB and length >= 20:
                body = fh.read(rest)
                if len(body) < rest:
                    break
                stype, slen = struct.unpack(endian + "II", body[:8])
                total_secrets += slen
                if slen <= len(body) - 12 and total_secrets <= MAX_SECRETS:
                    out.append(DecryptionSecrets(stype, bytes(body[8:8 + slen]), blocks))
                blocks += 1
                continue
        if length < 12 or length % 4:
            break
        if seekable:
            fh.seek(rest, os.SEEK_CUR)
        else:
            while rest > 0:
                chunk = fh.read(min(rest, 1 << 20))
                if not chunk:
                    return out
                rest -= len(chunk)
        blocks += 1
    return out

"""TLS certificate compression (RFC 8879): the Certificate message inside a CompressedCertificate.

zlib comes from the standard library. Brotli (what Chrome and Cloudflare use) and zstd have no decoder
there: they are used through the system's libbrotlidec and libzstd when those shared libraries are
present (Wireshark links the same ones), and otherwise the caller reports the certificates as not
decompressed. Output is bounded by the message's own uncompressed_length (at most 2^24 - 1).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import zlib

ZLIB, BROTLI, ZSTD = 1, 2, 3
NAMES = {ZLIB: "zlib", BROTLI: "brotli", ZSTD: "zstd"}
MAX_UNCOMPRESSED = (1 << 24) - 1

__all__ = ["ZLIB", "BROTLI", "ZSTD", "NAMES", "CompressionError", "decompress", "available"]


class CompressionError(Exception):
    """The certificate could not be decompressed (unknown algorithm, no decoder, bad data)."""


@functools.lru_cache(maxsize=None)
def _library(name: str):
    path = ctypes.util.find_library(name)
    for candidate in ([path] if path else []) + [f"lib{name}.so.1", f"lib{name}.so"]:
        try:
            return ctypes.CDLL(candidate)
        except OSError:
            continue
    return None


def available(algorithm: int) -> bool:
    """Whether certificates compressed with ``algorithm`` can be decompressed here."""
    if algorithm == ZLIB:
        return True
    if algorithm == BROTLI:
        return _library("brotlidec") is not None
    if algorithm == ZSTD:
        return _library("zstd") is not None
    return False


def decompress(algorithm: int, data: bytes, uncompressed_length: int) -> bytes:
    """The Certificate message body; exactly ``uncompressed_length`` bytes (RFC 8879 §4 requires it)."""
    if not 0 < uncompressed_length <= MAX_UNCOMPRESSED:
        raise CompressionError(f"uncompressed_length {uncompressed_length} is out of range")
    data = bytes(data)
    if algorithm == ZLIB:
        d = zlib.decompressobj()
        try:
            out = d.decompress(data, uncompressed_length + 1)
        except zlib.error as exc:
            raise CompressionError(f"zlib: {exc}") from None
    elif algorithm == BROTLI:
        out = _brotli(data, uncompressed_length)
    elif algorithm == ZSTD:
        out = _zstd(data, uncompressed_length)
    else:
        raise CompressionError(f"unknown compression algorithm {algorithm}")
    if len(out) != uncompressed_length:
        raise CompressionError(f"{NAMES[algorithm]} gave {len(out)} bytes, the message announced "
                               f"{uncompressed_length}")
    return out


def _brotli(data: bytes, size: int) -> bytes:
    lib = _library("brotlidec")
    if lib is None:
        raise CompressionError("brotli: no libbrotlidec on this system")
    fn = lib.BrotliDecoderDecompress
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_size_t, ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t), ctypes.c_char_p]
    out = ctypes.create_string_buffer(size + 1)      # one spare byte: a longer result is an error
    got = ctypes.c_size_t(size + 1)
    if fn(len(data), data, ctypes.byref(got), out) != 1:   # BROTLI_DECODER_RESULT_SUCCESS
        raise CompressionError("brotli: the data does not decompress (or is longer than announced)")
    return out.raw[:got.value]


def _zstd(data: bytes, size: int) -> bytes:
    lib = _library("zstd")
    if lib is None:
        raise CompressionError("zstd: no libzstd on this system")
    fn = lib.ZSTD_decompress
    fn.restype = ctypes.c_size_t
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    is_error = lib.ZSTD_isError
    is_error.restype = ctypes.c_uint
    is_error.argtypes = [ctypes.c_size_t]
    out = ctypes.create_string_buffer(size + 1)
    got = fn(out, size + 1, data, len(data))
    if is_error(got):
        raise CompressionError("zstd: the data does not decompress (or is longer than announced)")
    return out.raw[:got]

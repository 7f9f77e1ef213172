"""Certificate compression (RFC 8879): the certificates inside a CompressedCertificate are read like a
Certificate message. Brotli against tshark on Chrome's connections to Cloudflare (the corpus capture with
its key log inside); zlib and zstd on a real Certificate message compressed here; damage and unknown
algorithms give a finding and "not visible", never a false "no certificate"."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tlsscope
from conftest import CAPTURES, CORPUS, need_corpus, need_tool
from tlsscope.certs import TrustStore
from tlsscope.connection import TlsConnection
from tlsscope.enrich import certificate_checks
from tlsscope.pipeline import Options
from tlsscope.report import build_report
from tlsscope.model import Endpoint
from tlsscope.tls import certcompress

CHROME = "FoxIO-LLC_ja4/pcap/chrome-cloudflare-quic-with-secrets.pcapng"


def _need_library(algorithm: int) -> None:
    if not certcompress.available(algorithm):
        if os.environ.get("CI") == "true":
            pytest.fail(f"no {certcompress.NAMES[algorithm]} library (CI=true: it comes with tshark's packages)")
        pytest.skip(f"no {certcompress.NAMES[algorithm]} library")


def test_brotli_certificates_equal_tshark():
    """Chrome and Cloudflare compress the server's Certificate with brotli, over TCP and over QUIC."""
    need_corpus()
    _need_library(certcompress.BROTLI)
    tshark = need_tool("tshark")
    out = subprocess.run([tshark, "-r", str(CORPUS / CHROME), "-Y", "tls.handshake.type == 25", "-T", "fields",
                          "-e", "tls.handshake.certificate"], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    theirs = [[bytes.fromhex(h) for h in line.split(",")] for line in out.splitlines() if line.strip()]
    reports = list(tlsscope.read(CORPUS / CHROME))
    assert {r.transport for r in reports} == {"tcp", "quic"}
    mine = [r.state.certificates["server"] for r in reports]
    assert len(theirs) == 2 and mine == theirs
    for r in reports:
        entry = next(e for e in r.timeline if e.name == "CompressedCertificate")
        assert entry.message.algorithm == certcompress.BROTLI and entry.decrypted
        assert "certificate_not_decompressed" not in {f.code for f in r.findings}


# --- a TLS 1.3 handshake fed message by message (QUIC-style API), the Certificate compressed here -----

def _tls13_messages():
    """ClientHello, ServerHello and the server's Certificate message of captures/02-modern-mtls13."""
    d = CAPTURES / "02-modern-mtls13"
    r = next(iter(tlsscope.read(d / "capture.pcap", keylog=str(d / "keylog.txt"))))
    raw = {}
    for e in r.timeline:
        if e.raw is not None and (e.handshake_type, e.from_client) not in raw:
            raw[(e.handshake_type, e.from_client)] = bytes(e.raw)
    return raw[(1, True)], raw[(2, False)], raw[(11, False)], r.state.certificates["server"]


def _feed(compressed_message: bytes):
    ch, sh, _cert, _ders = _tls13_messages()
    conn = TlsConnection(1, Endpoint("10.0.0.1", 50000), Endpoint("10.0.0.2", 443), 1.0, 1, True)
    conn.handshake_data(True, ch, 0, 1.0, 1)
    conn.handshake_data(False, sh, 0, 1.1, 2)
    conn.handshake_data(False, compressed_message, 0, 1.2, 3, decrypted=True)
    return conn.close(2.0, 9, "fin")


def _compressed(algorithm: int, body: bytes, data: bytes) -> bytes:
    inner = algorithm.to_bytes(2, "big") + len(body).to_bytes(3, "big") + len(data).to_bytes(3, "big") + data
    return bytes([25]) + len(inner).to_bytes(3, "big") + inner


def _zstd_compress(data: bytes) -> bytes:
    lib = ctypes.CDLL(ctypes.util.find_library("zstd") or "libzstd.so.1")
    lib.ZSTD_compress.restype = ctypes.c_size_t
    lib.ZSTD_compress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
    out = ctypes.create_string_buffer(len(data) + 1024)
    n = lib.ZSTD_compress(out, len(out), data, len(data), 3)
    return out.raw[:n]


@pytest.mark.parametrize("algorithm", [certcompress.ZLIB, certcompress.ZSTD])
def test_compressed_certificate_read_as_certificate(algorithm):
    _need_library(algorithm)
    _ch, _sh, cert, ders = _tls13_messages()
    body = cert[4:]
    data = zlib.compress(body) if algorithm == certcompress.ZLIB else _zstd_compress(body)
    st = _feed(_compressed(algorithm, body, data))
    assert ders and st.certificates["server"] == ders
    assert st.certificate_unreadable is None


def test_unreadable_compressed_certificate_is_not_visible_not_absent():
    _ch, _sh, cert, _ders = _tls13_messages()
    body = cert[4:]
    for algorithm, data, why in ((0x1234, b"\x00" * 10, "unknown compression algorithm"),
                                 (certcompress.ZLIB, b"not zlib", "zlib"),
                                 (certcompress.ZLIB, zlib.compress(body + b"x"), "announced")):
        st = _feed(_compressed(algorithm, body, data))
        assert st.certificates["server"] is None
        assert why in st.certificate_unreadable["server"]
        assert "certificate_not_decompressed" in {f.code for f in st.findings}
        # with a trust store: the chain is "not visible", with the reason
        check = certificate_checks(build_report(1, st), Options(trust=TrustStore.load([CAPTURES / "02-modern-mtls13" /
                                                                                       "ca.pem"])))["server"]
        assert check.status == "not_visible" and why in check.findings[0].message


@settings(max_examples=200, deadline=None)
@given(algorithm=st.sampled_from([1, 2, 3, 7]), data=st.binary(max_size=64), size=st.integers(-5, 1 << 25))
def test_damage_never_raises_anything_else(algorithm, data, size):
    if algorithm in (2, 3) and not certcompress.available(algorithm):
        return
    try:
        out = certcompress.decompress(algorithm, data, size)
    except certcompress.CompressionError:
        return
    assert len(out) == size

"""DTLS connections through the whole pipeline (corpus captures): what a user sees in the report.

tests/test_dtls.py covers the record and handshake framing; tests/test_tshark_udp.py compares the
hellos and certificates with tshark. Here: the connection's facts, findings, fingerprints and
output forms, and the DTLS-specific handling (HelloVerifyRequest, cookies, DTLS 1.3 records).
"""

from __future__ import annotations

import json

import pytest

import tlsscope
from conftest import CORPUS, need_corpus
from tlsscope.render.lines import line_renderer

DTLS12 = "arkime_arkime/tests/pcap/wireshark-dtls12.pcap"
DTLS10 = "FoxIO-LLC_ja4/pcap/dtls-udp.notest.cap"
DTLS13 = "syncsynchalt_illustrated-dtls/captures/capture.pcap"
OPENSSL_PRE = "arkime_arkime/tests/pcap/wireshark-dtls0.pcap"


def _one(name: str):
    need_corpus()
    reports = [r for r in tlsscope.read(CORPUS / name) if r.transport == "dtls"]
    assert len(reports) == 1, name
    return reports[0]


def test_dtls12_with_hello_verify_request():
    r = _one(DTLS12)
    assert r.version == 0xFEFD and r.cipher_suite == 0xC0FF
    names = [e.name for e in r.timeline]
    assert names[:4] == ["ClientHello", "HelloVerifyRequest", "ClientHello", "ServerHello"]
    hvr = r.dtls["hello_verify_request"]
    assert hvr["cookie"] == "dd2e7e0916224805" and r.dtls["cookies"] == ["", hvr["cookie"]]
    codes = {f.code for f in r.findings}
    # the second ClientHello answers the HelloVerifyRequest: not a duplicate
    assert "duplicate_client_hello" not in codes
    assert r.handshake_complete and r.end == "encrypted alert from server"
    assert r.fingerprints["ja4"].startswith("dd2i")
    assert r.state.stats["client"].app_records == 2


def test_dtls10_certificate_and_findings():
    r = _one(DTLS10)
    assert r.version == 0xFEFF and len(r.certificates["server"]) == 1
    assert r.certificates["server"][0].public_key_bits == 1024
    codes = {f.code for f in r.findings}
    assert {"dtls10_negotiated", "dtls10_offered", "static_rsa_negotiated"} <= codes
    assert "tls11_negotiated" not in codes         # DTLS 1.0 is built on TLS 1.1, but is named as itself
    assert r.fingerprints["ja4"].startswith("dd1")


def test_openssl_pre_rfc_dtls():
    r = _one(OPENSSL_PRE)
    assert r.version == 0x0100 and "dtls10_negotiated" in {f.code for f in r.findings}
    assert len(r.certificates["server"]) == 1


def test_dtls13_protected_records_counted():
    r = _one(DTLS13)
    assert r.version == 0xFEFC and r.cipher_suite == 0x1301
    assert r.certificates["server"] is None            # in protected records: not visible without keys
    assert r.state.stats["server"].app_records == 7 and r.state.stats["client"].app_records == 2
    assert "no_secure_renegotiation_client" not in {f.code for f in r.findings}   # a DTLS 1.3-only client
    assert r.fingerprints["ja4"].startswith("dd3")


@pytest.mark.parametrize("name", [DTLS12, DTLS13])
def test_dtls_output_forms(name):
    r = _one(name)
    j = json.loads(line_renderer("json")(r))
    assert j["transport"] == "dtls" and j["dtls"]["records"]["client"] > 0 and j["quic"] is None
    assert "  DTLS  " in line_renderer("summary")(r)


def test_dtls_decrypted_with_the_key_log():
    """captures/13-dtls with its key log: Finished, application data and close_notify open in both DTLS
    1.2 (AES-GCM) and DTLS 1.0 (AES-CBC), record numbers taken from each record's epoch and sequence; both
    Finished verify over the DTLS-framed transcript (after the HelloVerifyRequest, the cookie included)."""
    from conftest import CAPTURES
    d = CAPTURES / "13-dtls"
    plain: dict = {}
    reports = list(tlsscope.read(d / "capture.pcap", keylog=str(d / "keylog.txt"),
                                 on_plaintext=lambda i, c, data: plain.setdefault((i, c), []).append(data)))
    assert len(reports) == 3
    for r in reports:
        assert r.decryption["failures"] == 0 and r.decryption["records_decrypted"] >= 1
        refused = r.end.startswith("fatal")
        assert r.decryption["finished_verified"] == {"client": True, "server": None if refused else True}
        assert not {f.code for f in r.findings} & {"handshake_oversized", "handshake_malformed",
                                                   "decryption_failed"}
        finished = [e.from_client for e in r.timeline if e.name == "Finished" and e.decrypted]
        assert finished == ([True] if r.end.startswith("fatal") else [True, False])
    ok = [r for r in reports if not r.end.startswith("fatal")]
    for r in ok:
        assert b"".join(plain[(r.id, True)]) == b"hello tlsscope\n"
        assert [(a.from_client, a.description, a.decrypted) for a in r.alerts] == [(True, 0, True), (False, 0, True)]
        assert r.end == "close_notify from client"


def test_dtls10_static_rsa_decrypted_with_the_server_key():
    """The DTLS 1.0 connection of captures/13-dtls uses RSA key exchange: the server's private key opens
    the premaster secret (TLS 1.1 PRF, extended master secret over the DTLS-framed transcript)."""
    from conftest import CAPTURES
    d = CAPTURES / "13-dtls"
    by_version = {r.version: r for r in tlsscope.read(d / "capture.pcap", rsa_key=str(d / "server.key"))}
    r = by_version[0xFEFF]
    assert r.decryption["method"] == "rsa" and r.decryption["failures"] == 0
    assert r.decryption["finished_verified"] == {"client": True, "server": True}
    assert r.end == "close_notify from client"

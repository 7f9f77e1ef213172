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


# --------------------------------------------------------------------------------------------
# DTLS 1.3 decryption (RFC 9147): illustrated-dtls publishes each record's plaintext (caps/record-*,
# DTLSInnerPlaintext: content then the real content type) beside the capture and its key log.
# tshark 4.0 cannot serve as the oracle here: it does not dissect DTLS 1.3 protected records at all.

ILLUSTRATED = "syncsynchalt_illustrated-dtls/captures"


def _inner(name: str) -> tuple[int, bytes]:
    data = (CORPUS / ILLUSTRATED / "caps" / name).read_bytes()
    return data[-1], data[:-1]


def _dtls13_decrypted(plain: dict | None = None):
    need_corpus()
    kw = {} if plain is None else {"on_plaintext": lambda i, c, data: plain.setdefault(c, []).append(data)}
    reports = [r for r in tlsscope.read(CORPUS / DTLS13, keylog=str(CORPUS / ILLUSTRATED / "keylog.txt"), **kw)
               if r.transport == "dtls"]
    assert len(reports) == 1
    return reports[0]


def test_dtls13_decrypted_records_equal_the_published_plaintext():
    plain: dict = {}
    r = _dtls13_decrypted(plain)
    assert r.decryption["failures"] == 0 and r.decryption["records_decrypted"] == 9
    # RFC 9147 §5.2: both Finished verify over the TLS 1.3-style transcript ("dtls13" labels)
    assert r.decryption["finished_verified"] == {"client": True, "server": True}
    by_name = {(e.name, e.from_client): e for e in r.timeline if e.decrypted}
    for name, from_client, cap in (("EncryptedExtensions", False, "record-encext"),
                                   ("Certificate", False, "record-cert"),
                                   ("CertificateVerify", False, "record-cverify"),
                                   ("Finished", False, "record-sfin"), ("Finished", True, "record-cfin")):
        ct, dtls_framed = _inner(cap)
        assert ct == 22
        # the message as decoded: the TLS 4-byte header instead of DTLS's 12 bytes
        assert by_name[(name, from_client)].raw == dtls_framed[:4] + dtls_framed[12:], cap
    assert plain == {True: [_inner("record-cdata")[1]], False: [_inner("record-sdata")[1]]}
    assert plain[True] == [b"ping"]
    ack = by_name[("ACK", False)]
    ct, body = _inner("record-sack")
    assert (ack.content_type, ct) == (26, 26) and ack.message == ((2, 0),)   # the client's Finished record
    ct, body = _inner("record-sbye")
    assert ct == 21 and [(a.from_client, a.level, a.description) for a in r.alerts] == [(False, body[0], body[1])]
    assert r.end == "close_notify from server"
    [cert] = r.certificates["server"]
    assert cert.subject.startswith("CN=example.ulfheim.net")
    j = json.loads(line_renderer("json")(r))
    assert [m["acknowledged"] for m in j["messages"] if m["name"] == "ACK"] == [[[2, 0]]]
    from tlsscope.render.describe import describe_message
    assert describe_message(ack) == "ACK · records 2/0 (epoch/sequence) · decrypted"


def test_dtls13_without_application_secrets():
    """Handshake secrets only: the handshake opens, the application epoch's records stay sealed with
    the reason, and nothing is guessed."""
    need_corpus()
    lines = [ln for ln in (CORPUS / ILLUSTRATED / "keylog.txt").read_text().splitlines() if "HANDSHAKE" in ln]
    from tlsscope.decrypt import KeyLog
    r = next(r for r in tlsscope.read(CORPUS / DTLS13, keylog=KeyLog.from_bytes("\n".join(lines).encode()))
             if r.transport == "dtls")
    assert r.decryption["records_decrypted"] == 5 and r.decryption["failures"] == 4
    assert r.decryption["finished_verified"] == {"client": True, "server": True}
    assert len(r.certificates["server"]) == 1
    assert r.end != "close_notify from server"


def test_dtls13_wrong_key_fails_cleanly():
    need_corpus()
    text = (CORPUS / ILLUSTRATED / "keylog.txt").read_text()
    bad = "\n".join(ln[:-2] + ("00" if not ln.endswith("00") else "11") for ln in text.splitlines())
    from tlsscope.decrypt import KeyLog
    r = next(r for r in tlsscope.read(CORPUS / DTLS13, keylog=KeyLog.from_bytes(bad.encode()))
             if r.transport == "dtls")
    assert r.decryption["records_decrypted"] == 0 and r.decryption["failures"] == 9
    assert "decryption_failed" in {f.code for f in r.findings}
    assert r.decryption["finished_verified"] == {"client": None, "server": None}


# --------------------------------------------------------------------------------------------
# OpenSSL's DTLS before 0.9.8f (version 0x0100), RSA key exchange, decrypted with the server key:
# tshark (dtls.keys_list) is the oracle for the plaintext.

SNAKEOIL = "marshalyyx2000_wireshark/test/captures/snakeoil-dtls.pcap"
SNAKEOIL_KEY = "marshalyyx2000_wireshark/test/keys/snakeoil-rsa.key"


def test_pre_rfc_dtls_decrypted_like_tshark():
    import subprocess

    from conftest import need_tool
    need_corpus()
    tshark = need_tool("tshark")
    plain: list = []
    [r] = [r for r in tlsscope.read(CORPUS / SNAKEOIL, rsa_key=str(CORPUS / SNAKEOIL_KEY),
                                    on_plaintext=lambda i, c, data: plain.append((c, data)))
           if r.transport == "dtls"]
    out = subprocess.run([tshark, "-r", str(CORPUS / SNAKEOIL), "-o",
                          f"dtls.keys_list:0.0.0.0,0,data,{CORPUS / SNAKEOIL_KEY}",
                          "-Y", "dtls && data.data", "-T", "fields", "-e", "ip.src", "-e", "udp.srcport",
                          "-e", "data.data"], capture_output=True, text=True, timeout=120, check=True).stdout
    theirs = [(port == str(r.client.port), bytes.fromhex(data))
              for _ip, port, data in (ln.split("\t") for ln in out.splitlines() if ln.strip())]
    assert len(theirs) == 3 and plain == theirs
    assert plain[0] == (True, b"it work !\n")
    # the RSA premaster comes without a length prefix, as in SSL 3.0 (tshark: "RSA Encrypted PreMaster")
    cke = next(e for e in r.timeline if e.name == "ClientKeyExchange")
    assert cke.error is None and len(cke.message.encrypted_pre_master_secret) == 128
    # ChangeCipherSpec took a message_seq: both Finished (message_seq 4 and 5 in tshark) are decoded
    assert [e.from_client for e in r.timeline if e.name == "Finished" and e.decrypted] == [True, False]
    d = r.decryption
    assert d["method"] == "rsa" and d["failures"] == 0 and d["records_decrypted"] == 5
    # their verify_data is not the RFC's: not checked rather than reported as failed
    assert d["finished_verified"] == {"client": None, "server": None}
    assert "handshake_malformed" not in {f.code for f in r.findings}

"""Byte view: labelled spans tile every message exactly and point at the right bytes."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from io import StringIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

import tlsscope
from conftest import CAPTURES, need_corpus
from tlsscope import hello
from tlsscope.render.byteview import (alert_view, byteview_html, byteview_rich, entry_view, handshake_view,
                                      record_view)


def _reports(path, **kw):
    return tlsscope.read_all(path, **kw)


@pytest.fixture(scope="module")
def tls13():
    d = need_corpus() / "syncsynchalt_illustrated-tls13/captures"
    return _reports(d / "capture.pcap", keylog=d / "keylog.txt")[0]


@pytest.fixture(scope="module")
def tls12():
    d = need_corpus() / "syncsynchalt_illustrated-tls12/captures"
    return _reports(d / "capture.pcap")[0]


@pytest.fixture(scope="module")
def mtls12():
    d = CAPTURES / "01-classic-sha1-mtls12"
    if not (d / "capture.pcap").is_file():
        pytest.fail(f"bundled capture missing: {d}")
    return next(r for r in _reports(d / "capture.pcap", keylog=d / "keylog.txt") if r.handshake_complete)


def assert_tiles(view):
    """Leaves cover data[0:len] in order, no gap, no overlap, none empty, all labelled."""
    pos = 0
    for f in view.fields:
        assert f.start == pos, (f, pos)
        assert f.end > f.start
        assert f.path and "(unlabelled)" not in f.path
        pos = f.end
    assert pos == len(view.data)
    for g in view.groups:
        assert 0 <= g.start < g.end <= len(view.data)


def field(view, path):
    matches = [f for f in view.fields if f.path == path]
    assert len(matches) == 1, (path, [f.path for f in view.fields])
    return matches[0]


def data(view, path) -> bytes:
    f = field(view, path)
    return view.data[f.start:f.end]


def view_of(report, name, from_client=None):
    e = next(e for e in report.timeline if e.name == name and (from_client is None or e.from_client == from_client))
    v = entry_view(report, e)
    assert v is not None and v.error is None, (name, v and v.error)
    assert_tiles(v)
    return v, e


def test_client_hello_fields(tls13):
    v, e = view_of(tls13, "ClientHello")
    ch = e.message
    assert data(v, "msg_type") == b"\x01"
    assert int.from_bytes(data(v, "length"), "big") == len(e.raw) - 4
    assert data(v, "legacy_version") == b"\x03\x03" and "TLS 1.2" in field(v, "legacy_version").value
    assert data(v, "random") == ch.random
    assert data(v, "legacy_session_id") == ch.legacy_session_id
    for i, suite in enumerate(ch.cipher_suites):
        f = field(v, f"cipher_suites[{i}]")
        assert data(v, f.path) == suite.to_bytes(2, "big")
    assert "TLS_AES_256_GCM_SHA384" in field(v, "cipher_suites[0]").value
    groups = [g.path for g in v.groups]
    assert groups[:3] == ["extensions[0] server_name", "extensions[0] server_name.server_name_list[0]",
                          "extensions[1] ec_point_formats"]
    assert data(v, "extensions[0] server_name.server_name_list[0].host_name") == hello.server_name(ch).encode()
    ks = ch.extensions[-1].value.client_shares[0]
    assert data(v, "extensions[9] key_share.client_shares[0].key_exchange") == ks.key_exchange
    assert "x25519" in field(v, "extensions[9] key_share.client_shares[0].group").value
    # the legend names every top-level field once, in byte order
    legend = [g for g, *_ in v.legend()]
    assert legend[:8] == ["msg_type", "length", "legacy_version", "random", "legacy_session_id", "cipher_suites",
                          "legacy_compression_methods", "extensions"]
    assert legend[8:] == [f"extensions[{i}] {n}" for i, n in enumerate(
        ["server_name", "ec_point_formats", "supported_groups", "session_ticket", "encrypt_then_mac",
         "extended_master_secret", "signature_algorithms", "supported_versions", "psk_key_exchange_modes",
         "key_share"])]


def test_server_hello_and_tls13_messages(tls13):
    v, e = view_of(tls13, "ServerHello")
    assert data(v, "cipher_suite") == b"\x13\x02"
    assert "TLS 1.3" in field(v, "extensions[0] supported_versions.selected_version").value
    assert data(v, "extensions[1] key_share.server_share.key_exchange") == \
        e.message.extensions[1].value.server_share.key_exchange
    v, e = view_of(tls13, "Certificate")
    assert data(v, "certificate_list[0].cert_data") == e.message.certificate_list[0].cert_data
    assert "CN=example.ulfheim.net" in field(v, "certificate_list[0].cert_data").value
    assert data(v, "certificate_request_context.length") == b"\x00"     # empty context: only its length
    v, e = view_of(tls13, "CertificateVerify")
    assert "rsa_pss_rsae_sha256" in field(v, "algorithm").value
    assert data(v, "signature") == e.message.signature
    v, e = view_of(tls13, "Finished", from_client=False)
    assert data(v, "verify_data") == e.message.verify_data and len(e.message.verify_data) == 48
    v, e = view_of(tls13, "NewSessionTicket")
    assert "7200 s" in field(v, "ticket_lifetime").value and data(v, "ticket") == e.message.ticket
    view_of(tls13, "EncryptedExtensions")


def test_tls12_server_key_exchange(tls12):
    v, e = view_of(tls12, "ServerKeyExchange")
    ske = e.message
    assert "3 named_curve" == field(v, "params.curve_type").value
    assert "x25519" in field(v, "params.named_curve").value
    assert data(v, "params.public") == ske.public
    assert "rsa_pkcs1_sha256" in field(v, "signature_algorithm").value
    assert data(v, "signature") == ske.signature
    v, e = view_of(tls12, "ClientKeyExchange")
    assert data(v, "ecdh_Yc") == e.message.ecdh_Yc
    view_of(tls12, "ServerHelloDone")


def test_tls12_mutual_auth_messages(mtls12):
    v, e = view_of(mtls12, "CertificateRequest")
    cr = e.message
    assert [data(v, f"certificate_types[{i}]")[0] for i in range(len(cr.certificate_types))] == \
        list(cr.certificate_types)
    assert "certificate_authorities[0]" in [f.path for f in v.fields]
    assert "CN=tlsscope classic CA" in field(v, "certificate_authorities[0]").value
    assert data(v, "supported_signature_algorithms[0]") == cr.supported_signature_algorithms[0].to_bytes(2, "big")
    v, e = view_of(mtls12, "Certificate", from_client=True)
    assert [g.path for g in v.groups] == ["certificate_list[0]", "certificate_list[1]"]
    assert data(v, "certificate_list[1].ASN.1Cert") == e.message.certificate_list[1].cert_data
    assert "CN=classic client" in field(v, "certificate_list[0].ASN.1Cert").value
    v, e = view_of(mtls12, "CertificateVerify", from_client=True)
    assert data(v, "signature") == e.message.signature
    v, e = view_of(mtls12, "Finished", from_client=True)     # decrypted with the key log
    assert len(data(v, "verify_data")) == 12


def test_alert_view_from_timeline():
    d = CAPTURES / "04-server-cert-rejected"
    r = next(r for r in _reports(d / "capture.pcap") if "fatal alert unknown_ca" in r.end)
    e = next(e for e in r.timeline if e.content_type == 21)
    v = entry_view(r, e)
    assert v.data == b"\x02\x30"
    assert [(f.path, f.value) for f in v.fields] == [("level", "2 fatal"), ("description", "48 unknown_ca")]
    assert alert_view(1, 0).fields[1].value == "0 close_notify"


def test_record_view(tls13):
    ch = tls13.timeline[0].raw
    rec = b"\x16\x03\x01" + len(ch).to_bytes(2, "big") + ch + b"\x15\x03\x03\x00\x02\x02\x28" + \
        b"\x17\x03\x03\x00\x03abc"
    v = record_view(rec)
    assert_tiles(v)
    assert v.error is None
    paths = [f.path for f in v.fields]
    assert paths[:3] == ["record[0].content_type", "record[0].legacy_record_version", "record[0].length"]
    assert data(v, "record[0].message[0] client_hello.random") == tls13.client_hello.random
    assert field(v, "record[1].description").value == "40 handshake_failure"
    assert data(v, "record[2].application_data") == b"abc"
    # a handshake message split across records is shown as a fragment, not misparsed
    v = record_view(b"\x16\x03\x03\x00\x0a" + ch[:10])
    assert_tiles(v)
    assert v.fields[-1].path == "record[0].handshake_fragment"


def test_malformed_and_truncated_never_raise(tls13):
    ch = tls13.timeline[0].raw
    for n in range(len(ch) + 1):
        v = handshake_view(ch[:n])
        assert_tiles(v)
        if 4 < n < len(ch):
            assert v.error is not None
    # an extension body that lies about its inner length is labelled, the rest still walks
    bad = bytearray(ch)
    i = ch.index(b"example.ulfheim.net") - 2          # host_name length
    bad[i:i + 2] = b"\x00\xff"
    v = handshake_view(bytes(bad))
    assert_tiles(v)
    assert v.error and "host_name" in v.error
    assert "extensions[9] key_share" in [g for g, *_ in v.legend()]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([None, 0x0303, 0x0304]),
       st.sampled_from([None, "ECDHE", "DHE", "RSA", "PSK"]))
def test_fuzz_tiles(blob, version, kx):
    for b in (blob, bytes([blob[0] % 26 if blob else 1]) + len(blob[1:]).to_bytes(3, "big")[:3] + blob[1:]):
        v = handshake_view(b, version=version, key_exchange=kx)
        assert_tiles(v)
        assert_tiles(record_view(b))


def test_html_spans_labelled(tls13):
    v, e = view_of(tls13, "ClientHello")
    h = byteview_html(v)

    class Spans(HTMLParser):
        def __init__(self):
            super().__init__()
            self.spans, self.cur = [], None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "span" and a.get("class") == "field":
                self.cur = a
                self.spans.append([a, ""])

        def handle_data(self, d):
            if self.cur is not None:
                self.spans[-1][1] += d

        def handle_endtag(self, tag):
            if tag == "span":
                self.cur = None

    p = Spans()
    p.feed(h)
    covered = []
    for attrs, text in p.spans:
        s, e_ = int(attrs["data-start"]), int(attrs["data-end"])
        assert bytes.fromhex(text.replace(" ", "")) == v.data[s:e_]
        assert attrs["title"].startswith(attrs["data-path"])
        covered.extend(range(s, e_))
    assert covered == list(range(len(v.data)))
    titles = " ".join(a["title"] for a, _ in p.spans)
    for name in ("legacy_version", "random", "cipher_suites", "extensions[0] server_name"):
        assert name in titles
    assert "example.ulfheim.net" in titles
    assert '<table class="legend"' in h and "extensions[9] key_share" in h


def test_rich_rendering(tls13):
    v, _ = view_of(tls13, "ServerHello")
    buf = StringIO()
    Console(file=buf, width=100, color_system=None).print(byteview_rich(v))
    out = buf.getvalue()
    lines = out.splitlines()
    assert lines[0] == "ServerHello from server (122 bytes)"
    assert lines[1].startswith("0000  02 00 00 76 03 03")
    hex_rows = [ln for ln in lines if re.match(r"^[0-9a-f]{4}  ", ln)]
    assert len(hex_rows) == (len(v.data) + 15) // 16
    assert "cipher_suite  [71:73]  0x1302 TLS_AES_256_GCM_SHA384" in out
    assert "extensions[1] key_share" in out

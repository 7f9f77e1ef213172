"""Ladder diagrams (SVG and text art) and the notebook HTML report, checked on real captures."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import tlsscope
from conftest import CAPTURES, need_corpus
from tlsscope.render.describe import describe_message
from tlsscope.render.html import report_html, reports_html
from tlsscope.render.ladder import ladder_arrows, ladder_rich, ladder_svg, ladder_text

SVG = "{http://www.w3.org/2000/svg}"
TLS13_DIR = "syncsynchalt_illustrated-tls13/captures"
TLS12_DIR = "syncsynchalt_illustrated-tls12/captures"


def _tls13(keys: bool):
    d = need_corpus() / TLS13_DIR
    return tlsscope.read_all(d / "capture.pcap", keylog=(d / "keylog.txt") if keys else None)[0]


@pytest.fixture(scope="module")
def tls13_keys():
    return _tls13(True)


@pytest.fixture(scope="module")
def tls13_nokeys():
    return _tls13(False)


@pytest.fixture(scope="module")
def rejected():
    """Connection 1 of the 'server certificate rejected' scenario: the client's fatal unknown_ca alert."""
    d = CAPTURES / "04-server-cert-rejected"
    if not (d / "capture.pcap").is_file():
        pytest.fail(f"bundled capture missing: {d}")
    reports = tlsscope.read_all(d / "capture.pcap", ca=d / "ca.pem")
    return next(r for r in reports if "fatal alert unknown_ca" in r.end)


def _arrows(root):
    return [g for g in root.iter(f"{SVG}g") if "arrow" in g.get("class", "").split()]


def _label(g) -> str:
    return " ".join(t.text or "" for t in g.iter(f"{SVG}text") if t.get("class") == "label")


def test_svg_structure_one_arrow_per_message(tls13_keys):
    r = tls13_keys
    root = ET.fromstring(ladder_svg(r))
    assert root.tag == f"{SVG}svg"
    lifelines = [ln for ln in root.iter(f"{SVG}line") if "lifeline" in ln.get("class", "")]
    assert sorted(ln.get("class") for ln in lifelines) == ["lifeline client", "lifeline server"]
    x_client = float(next(ln for ln in lifelines if ln.get("class").endswith("client")).get("x1"))
    x_server = float(next(ln for ln in lifelines if ln.get("class").endswith("server")).get("x1"))
    assert x_client < x_server
    arrows = _arrows(root)
    assert len(arrows) == len(r.timeline)
    ys = []
    for g, e in zip(arrows, r.timeline):
        assert g.get("data-index") == str(r.timeline.index(e))
        shaft = next(ln for ln in g.iter(f"{SVG}line") if ln.get("class") == "shaft")
        x1, x2 = float(shaft.get("x1")), float(shaft.get("x2"))
        # direction: client → server arrows run left to right, from lifeline to lifeline
        assert (x1, x2) == ((x_client, x_server) if e.from_client else (x_server, x_client))
        assert ("c2s" in g.get("class").split()) == e.from_client
        assert _label(g).replace("  ", " ").startswith(e.name.split()[0])
        ys.append(float(shaft.get("y1")))
    assert ys == sorted(ys) and len(set(ys)) == len(ys)     # time flows downwards


def test_svg_labels_carry_key_facts(tls13_keys):
    labels = [_label(g) for g in _arrows(ET.fromstring(ladder_svg(tls13_keys)))]
    assert "ServerHello · TLS 1.3 · TLS_AES_256_GCM_SHA384 · x25519" in labels
    assert any(lab.startswith("ClientHello") and "SNI example.ulfheim.net" in lab for lab in labels)
    assert any(lab.startswith("Certificate · 1 certificate · CN=example.ulfheim.net") for lab in labels)
    assert any(lab.startswith("CertificateVerify · rsa_pss_rsae_sha256") for lab in labels)
    # times relative to the first packet, in ms, one per arrow
    root = ET.fromstring(ladder_svg(tls13_keys))
    times = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "time"]
    assert len(times) == len(tls13_keys.timeline) and all(t.startswith("+") and t.endswith(" ms") for t in times)


def test_svg_encrypted_and_decrypted_arrows_look_different(tls13_keys, tls13_nokeys):
    def styles(r):
        out = {}
        for g in _arrows(ET.fromstring(ladder_svg(r))):
            shaft = next(ln for ln in g.iter(f"{SVG}line") if ln.get("class") == "shaft")
            kind = g.get("class").split()[1]
            out.setdefault(kind, set()).add((shaft.get("stroke"), shaft.get("stroke-dasharray")))
        return out

    plain = styles(tls13_nokeys)
    assert "encrypted" in plain and "handshake" in plain
    assert plain["handshake"] == {("#1f4e79", None)}
    (enc_stroke, enc_dash), = plain["encrypted"]
    assert enc_dash and enc_stroke != "#1f4e79"
    # without keys, TLS 1.3 hides EncryptedExtensions..Finished: only encrypted arrows after ServerHello
    names = [e.name for e in tls13_nokeys.timeline]
    assert "EncryptedExtensions" not in names
    decrypted = styles(tls13_keys)
    assert "decrypted" in decrypted
    (dec_stroke, dec_dash), = decrypted["decrypted"]
    assert dec_dash and dec_stroke not in (enc_stroke, "#1f4e79")


def test_svg_alert_is_red(rejected):
    root = ET.fromstring(ladder_svg(rejected))
    alerts = [g for g in _arrows(root) if "alert" in g.get("class").split()]
    assert len(alerts) == 1
    g = alerts[0]
    assert "fatal" in g.get("class").split() and "c2s" in g.get("class").split()
    shaft = next(ln for ln in g.iter(f"{SVG}line") if ln.get("class") == "shaft")
    assert shaft.get("stroke") == "#c62828"
    label = next(t for t in g.iter(f"{SVG}text") if t.get("class") == "label")
    assert label.get("fill") == "#c62828" and "unknown_ca" in label.text
    end = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "end")
    assert "fatal alert unknown_ca from client" in end.text and end.get("fill") == "#c62828"


def test_flights_group_consecutive_messages(tls13_keys):
    r = tls13_keys
    arrows = ladder_arrows(r, flights=True)
    assert [a.from_client for a in arrows] == [True, False, True, True, False, False]
    server_flight = arrows[1]
    assert [r.timeline[i].name for i in server_flight.indexes] == [
        "ServerHello", "ChangeCipherSpec", "EncryptedExtensions", "Certificate", "CertificateVerify", "Finished"]
    # every timeline entry drawn exactly once, in order
    assert [i for a in arrows for i in a.indexes] == list(range(len(r.timeline)))
    root = ET.fromstring(ladder_svg(r, flights=True))
    assert len(_arrows(root)) == len(arrows)


def test_ladder_svg_escapes_text(tls13_keys):
    import dataclasses
    r = tls13_keys
    odd = dataclasses.replace(r.timeline[0])
    r2 = dataclasses.replace(r, timeline=[odd], sni="<script>&")
    root = ET.fromstring(ladder_svg(r2))        # still well-formed
    assert "<script>&" in root.find(f"{SVG}title").text


def test_text_ladder(tls13_keys, rejected):
    r = tls13_keys
    text = ladder_text(r, width=100)
    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines)
    arrow_lines = [ln for ln in lines if "▶│" in ln or "│◀" in ln]
    assert len(arrow_lines) == len(r.timeline)
    assert sum("▶│" in ln for ln in arrow_lines) == sum(e.from_client for e in r.timeline)
    for name in ("ClientHello", "ServerHello", "EncryptedExtensions", "CertificateVerify", "Finished",
                 "NewSessionTicket"):
        assert name in text
    # decrypted arrows are drawn with a different shaft than cleartext ones
    assert "│◀╌" in text and "│◀─" in text
    assert "ended: TCP FIN" in text
    bad = ladder_text(rejected, width=90)
    assert "Alert (fatal, unknown_ca)" in bad and "━━━▶│" in bad
    assert all(len(line) <= 90 for line in bad.splitlines())
    assert ladder_rich(r, width=100).plain.rstrip("\n").splitlines()[0] == lines[0]


def test_report_html(tls13_keys, rejected):
    h = report_html(tls13_keys)
    assert h.startswith('<div class="tlsscope-report"') and h.endswith("</div>")
    assert h.count("<svg") == 1 and 'class="tlsscope-ladder"' in h
    # every message listed; those with bytes are <details> holding a labelled byte view
    assert h.count('class="msg"') == len(tls13_keys.timeline)
    with_raw = sum(e.raw is not None for e in tls13_keys.timeline)
    assert h.count('class="tlsscope-bytes"') == with_raw
    assert 'data-path="cipher_suite"' in h and "TLS_AES_256_GCM_SHA384" in h
    assert "client Finished verified" in h
    assert tls13_keys._repr_html_() == h
    bad = report_html(rejected)
    assert "fatal alert unknown_ca from client" in bad and "server chain" in bad
    many = reports_html([tls13_keys, rejected], details=2)
    assert many.count('class="tlsscope-report"') == 2 and many.count("href='#tlsscope-conn-") == 2
    table = reports_html([tls13_keys, rejected])
    assert "2 TLS connections" in table and 'class="tlsscope-report"' not in table
    assert table.count("<tr>") == 3 and "fatal alert unknown_ca from client" in table


def test_describe_used_for_labels(tls13_nokeys):
    # the SVG and text views use the same one-line descriptions as `tlsscope read`
    text = ladder_text(tls13_nokeys, width=200)
    for e in tls13_nokeys.timeline:
        assert describe_message(e) in text

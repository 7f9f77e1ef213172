"""Differential test against tshark for TLS over UDP: every QUIC and DTLS connection of the corpus.

QUIC carries the TLS 1.3 handshake in CRYPTO frames of Initial packets, protected with keys
derived from the client's first Destination Connection ID (RFC 9001 §5.2): readable by anyone.
tshark's QUIC dissector decrypts them as tlsscope does. DTLS carries handshake messages in
fragments of plaintext records (until the ChangeCipherSpec, or the ServerHello in DTLS 1.3).
For every connection (tshark's UDP address pair) the ClientHellos (cipher suites, extension types
in order, SNI, ALPN, supported_versions) and ServerHellos (cipher suite, selected version,
extension types) must be equal. Connections are matched by their endpoints. The captures are
those whose manifest entry lists QUIC or DTLS versions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import tshark_oracle as oracle
from conftest import CAPTURES, CORPUS, corpus_manifest, need_corpus, need_tool

sys.path.insert(0, str(CAPTURES))
from gen.oracle import dtls_as_tls  # noqa: E402   (tshark's DTLS fields under TLS names)

FILTER = "quic && (tls.handshake.type == 1 || tls.handshake.type == 2 || tls.handshake.type == 11)"
DTLS_FILTER = "dtls.handshake.type == 1 || dtls.handshake.type == 2 || dtls.handshake.type == 11"
QUIC_ITEMS = [c for c in corpus_manifest() if (c.get("tshark") or {}).get("quic_versions")]
DTLS_ITEMS = [c for c in corpus_manifest() if (c.get("tshark") or {}).get("dtls_versions")]


def _hellos(conn: dict, src, dst, hs) -> None:
    if not isinstance(hs, dict):
        return
    if hs.get("tls.handshake.type") == "1" and "tls.handshake.ciphersuites" in hs:
        conn["client"] = conn["client"] or src
        conn["client_hellos"].append(oracle._client_hello(hs))
    elif hs.get("tls.handshake.type") == "2" and "tls.handshake.ciphersuite" in hs:
        conn["client"] = conn["client"] or dst
        conn["server_hellos"].append(oracle._server_hello(hs))
    elif hs.get("tls.handshake.type") == "11" and "tls.handshake.certificates" in hs and src != conn["client"]:
        conn["server_certificates"].append(oracle._certificate_count(hs))


def _tshark_dtls(tshark: str, path) -> dict:
    done = subprocess.run([tshark, "-n", "-r", str(path), "-Y", DTLS_FILTER, "-T", "json", "--no-duplicate-keys",
                           "-J", "frame ip ipv6 udp dtls"], capture_output=True, timeout=oracle.TIMEOUT)
    conns: dict = {}
    for pkt in json.loads(done.stdout.strip() or b"[]"):
        layers = dtls_as_tls(pkt["_source"]["layers"])
        src, dst = _ends(layers)
        conn = conns.setdefault(tuple(sorted((src, dst))), {"client": None, "client_hellos": [],
                                                            "server_hellos": [], "server_certificates": []})
        for dtls in oracle._items(layers.get("dtls")):
            for rec in oracle._items(dtls.get("tls.record") if isinstance(dtls, dict) else None):
                for hs in oracle._items(rec.get("tls.handshake") if isinstance(rec, dict) else None):
                    _hellos(conn, src, dst, hs)
    return conns


def _ends(layers: dict) -> tuple:
    ipl = oracle._items(layers.get("ip") or layers.get("ipv6"))[-1]
    udp = oracle._items(layers.get("udp"))[-1]
    src = (oracle._ip(ipl.get("ip.src") or ipl.get("ipv6.src")), int(udp["udp.srcport"]))
    dst = (oracle._ip(ipl.get("ip.dst") or ipl.get("ipv6.dst")), int(udp["udp.dstport"]))
    return src, dst


def _keylog(c: dict):
    """The capture's key log file from the manifest, if it has one."""
    for k in c.get("keys", ()):
        if "keylog" in k.lower() and (CORPUS / k).is_file():
            return CORPUS / k
    return None


def _tshark_quic(tshark: str, path, keylog=None) -> dict:
    """tshark's hellos per UDP flow: {endpoints: {"client": (ip, port), "client_hellos": [...], ...}};
    with a key log, the server certificates in the decrypted Handshake packets too."""
    keys = ["-o", f"tls.keylog_file:{keylog}"] if keylog else []
    done = subprocess.run([tshark, "-n", "-r", str(path), *keys, "-Y", FILTER, "-T", "json", "--no-duplicate-keys",
                           "-J", "frame ip ipv6 udp quic tls"], capture_output=True, timeout=oracle.TIMEOUT)
    frames = json.loads(done.stdout.strip() or b"[]")
    conns: dict = {}
    for pkt in frames:
        layers = pkt["_source"]["layers"]
        src, dst = _ends(layers)
        conn = conns.setdefault(tuple(sorted((src, dst))), {"client": None, "client_hellos": [],
                                                            "server_hellos": [], "server_certificates": []})
        for quic in oracle._items(layers.get("quic")):
            for frame in oracle._items(quic.get("quic.frame") if isinstance(quic, dict) else None):
                if not isinstance(frame, dict):
                    continue
                for tls in oracle._items(frame.get("tls")):
                    for hs in oracle._items(tls.get("tls.handshake") if isinstance(tls, dict) else None):
                        _hellos(conn, src, dst, hs)
    return conns


def _tlsscope_udp(path, transport: str, keylog=None) -> dict:
    import tlsscope

    conns: dict = {}
    for r in tlsscope.read(path, keylog=str(keylog) if keylog else None):
        if r.transport != transport:
            continue
        facts = oracle.report_facts(r)
        conns.setdefault(oracle.endpoints_of(r), []).append(
            {"client": (oracle._ip(r.client.ip), r.client.port), "client_hellos": facts["client_hellos"],
             "server_hellos": [sh[1:] for sh in facts["server_hellos"]],
             "server_certificates": facts["server_certificates"], "report": r})
    return conns


@pytest.fixture(scope="module")
def outcomes() -> dict:
    tshark = need_tool("tshark")
    need_corpus()

    def run(job):
        transport, c = job
        path = CORPUS / c["file"]
        if transport == "quic":
            keylog = _keylog(c)
            return (transport, c["id"]), (_tshark_quic(tshark, path, keylog), _tlsscope_udp(path, transport, keylog))
        return (transport, c["id"]), (_tshark_dtls(tshark, path), _tlsscope_udp(path, transport))
    jobs = [("quic", c) for c in QUIC_ITEMS] + [("dtls", c) for c in DTLS_ITEMS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, jobs))


def test_the_corpus_has_quic_and_dtls_captures():
    need_corpus()
    assert len(QUIC_ITEMS) >= 8, [c["id"] for c in QUIC_ITEMS]
    assert len(DTLS_ITEMS) >= 5, [c["id"] for c in DTLS_ITEMS]


@pytest.mark.parametrize("transport,cid", [("quic", c["id"]) for c in QUIC_ITEMS]
                         + [("dtls", c["id"]) for c in DTLS_ITEMS])
def test_udp_hellos_equal_tshark(outcomes, transport, cid):
    theirs, ours = outcomes[(transport, cid)]
    assert theirs, f"{cid}: tshark shows no {transport} hello"
    failures = []
    for ends, t in theirs.items():
        got = ours.get(ends)
        if not got:
            failures.append(f"{ends}: only tshark sees this QUIC connection")
            continue
        # a UDP address pair may carry several QUIC connections in turn; tlsscope splits them, tshark not
        mine = {"client_hellos": [x for g in got for x in g["client_hellos"]],
                "server_hellos": [x for g in got for x in g["server_hellos"]],
                "server_certificates": [x for g in got for x in g["server_certificates"]]}
        if mine["server_certificates"] != t["server_certificates"]:
            failures.append(f"{ends}: server certificate counts differ: tshark {t['server_certificates']}, "
                            f"tlsscope {mine['server_certificates']}")
        want_sh = [sh[1:] for sh in t["server_hellos"]]       # without the HRR flag (QUIC HRR: same)
        if mine["client_hellos"] != t["client_hellos"]:
            failures.append(f"{ends}: ClientHellos differ:\n  tshark   {t['client_hellos']}\n"
                            f"  tlsscope {mine['client_hellos']}")
        if mine["server_hellos"] != want_sh:
            failures.append(f"{ends}: ServerHellos differ:\n  tshark   {want_sh}\n  tlsscope {mine['server_hellos']}")
        if t["client"] is not None and got[0]["client"] != t["client"]:
            failures.append(f"{ends}: client is {got[0]['client']}, tshark says {t['client']}")
    extra = [ends for ends in ours if ends not in theirs
             and any(g["client_hellos"] for g in ours[ends])]
    if extra:
        failures.append(f"QUIC hellos only tlsscope decodes: {extra}")
    assert not failures, f"{cid}:\n" + "\n".join(failures)

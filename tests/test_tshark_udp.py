"""Differential test against tshark for QUIC: every QUIC connection of the corpus.

QUIC carries the TLS 1.3 handshake in CRYPTO frames of Initial packets, protected with keys
derived from the client's first Destination Connection ID (RFC 9001 §5.2): readable by anyone.
tshark's QUIC dissector decrypts them as tlsscope does; for every QUIC connection (tshark's
``udp.stream``) the ClientHello (cipher suites, extension types in order, SNI, ALPN,
supported_versions) and ServerHello (cipher suite, selected version, extension types) must be
equal. Connections are matched by their endpoints. The captures are those whose manifest entry
lists QUIC versions.
"""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

import tshark_oracle as oracle
from conftest import CORPUS, corpus_manifest, need_corpus, need_tool

FILTER = "quic && (tls.handshake.type == 1 || tls.handshake.type == 2)"
QUIC_ITEMS = [c for c in corpus_manifest() if (c.get("tshark") or {}).get("quic_versions")]


def _tshark_quic(tshark: str, path) -> dict:
    """tshark's hellos per UDP flow: {endpoints: {"client": (ip, port), "client_hellos": [...], ...}}."""
    done = subprocess.run([tshark, "-n", "-r", str(path), "-Y", FILTER, "-T", "json", "--no-duplicate-keys",
                           "-J", "frame ip ipv6 udp quic tls"], capture_output=True, timeout=oracle.TIMEOUT)
    frames = json.loads(done.stdout.strip() or b"[]")
    conns: dict = {}
    for pkt in frames:
        layers = pkt["_source"]["layers"]
        ipl = oracle._items(layers.get("ip") or layers.get("ipv6"))[-1]
        udp = oracle._items(layers.get("udp"))[-1]
        src = (oracle._ip(ipl.get("ip.src") or ipl.get("ipv6.src")), int(udp["udp.srcport"]))
        dst = (oracle._ip(ipl.get("ip.dst") or ipl.get("ipv6.dst")), int(udp["udp.dstport"]))
        conn = conns.setdefault(tuple(sorted((src, dst))), {"client": None, "client_hellos": [],
                                                            "server_hellos": []})
        for quic in oracle._items(layers.get("quic")):
            for frame in oracle._items(quic.get("quic.frame") if isinstance(quic, dict) else None):
                if not isinstance(frame, dict):
                    continue
                for tls in oracle._items(frame.get("tls")):
                    for hs in oracle._items(tls.get("tls.handshake") if isinstance(tls, dict) else None):
                        if not isinstance(hs, dict):
                            continue
                        if hs.get("tls.handshake.type") == "1":
                            conn["client"] = conn["client"] or src
                            conn["client_hellos"].append(oracle._client_hello(hs))
                        elif hs.get("tls.handshake.type") == "2":
                            conn["client"] = conn["client"] or dst
                            conn["server_hellos"].append(oracle._server_hello(hs))
    return conns


def _tlsscope_quic(path) -> dict:
    import tlsscope

    conns: dict = {}
    for r in tlsscope.read(path):
        if r.transport != "quic":
            continue
        facts = oracle.report_facts(r)
        conns.setdefault(oracle.endpoints_of(r), []).append(
            {"client": (oracle._ip(r.client.ip), r.client.port), "client_hellos": facts["client_hellos"],
             "server_hellos": [sh[1:] for sh in facts["server_hellos"]], "report": r})
    return conns


@pytest.fixture(scope="module")
def outcomes() -> dict:
    tshark = need_tool("tshark")
    need_corpus()

    def run(c):
        path = CORPUS / c["file"]
        return c["id"], (_tshark_quic(tshark, path), _tlsscope_quic(path))
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, QUIC_ITEMS))


def test_the_corpus_has_quic_captures():
    need_corpus()
    assert len(QUIC_ITEMS) >= 8, [c["id"] for c in QUIC_ITEMS]


@pytest.mark.parametrize("cid", [c["id"] for c in QUIC_ITEMS])
def test_quic_hellos_equal_tshark(outcomes, cid):
    theirs, ours = outcomes[cid]
    assert theirs, f"{cid}: tshark shows no QUIC hello (filter {FILTER!r})"
    failures = []
    for ends, t in theirs.items():
        got = ours.get(ends)
        if not got:
            failures.append(f"{ends}: only tshark sees this QUIC connection")
            continue
        # a UDP address pair may carry several QUIC connections in turn; tlsscope splits them, tshark not
        mine = {"client_hellos": [x for g in got for x in g["client_hellos"]],
                "server_hellos": [x for g in got for x in g["server_hellos"]]}
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

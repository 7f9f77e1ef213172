"""JA3 / JA3S / JA4 end to end: captures through ``tlsscope.read``, compared with other tools.

tests/test_fingerprint.py checks the pure functions on hellos decoded by the test itself;
here the hellos come from tlsscope's own pipeline (capture reader, TCP reassembly, record
and handshake framing, message decoders, enrich.py) and the fingerprints are read from the
reports, as users see them in JSON:

* FoxIO's expected JA4 (all four forms) for every TCP ClientHello in
  FoxIO-LLC_ja4/python/test/testdata/*.json, matched to the report by its 4-tuple;
  the two places where FoxIO's python and the specification disagree are asserted as such
  (see the edge-case table in fingerprint.py);
* tshark's ``tls.handshake.ja3_full`` / ``ja3s_full`` for the first ClientHello/ServerHello
  of every TCP stream;
* PcapPlusPlus' expected JA3/JA3S lines for tls2.pcap;
* Suricata-verify and Arkime truth files that carry JA3/JA3S/JA4 values.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

import tlsscope
from conftest import CAPTURES, CORPUS, need_corpus, need_tool
from tlsscope.enrich import _client_fingerprints

FOXIO = Path("FoxIO-LLC_ja4")
FOXIO_EXPECTED = sorted(p.name for p in (CORPUS / FOXIO / "python" / "test" / "testdata").glob("*.json")) \
    if (CORPUS / FOXIO).is_dir() else []
TLS2 = Path("seladb_PcapPlusPlus/Tests/ExamplesTest/pcap_examples/tls2.pcap")
TLS2_EXPECTED = Path("seladb_PcapPlusPlus/Tests/ExamplesTest/expected_output/tls_fp_ch_sh.txt")
FORMS = (("JA4", "ja4"), ("JA4_r", "ja4_r"), ("JA4_o", "ja4_o"), ("JA4_ro", "ja4_ro"))

Key = tuple[str, str, str, str]   # client ip, client port, server ip, server port (as strings)


@functools.cache
def reports(path: Path) -> tuple[dict, ...]:
    """JSON of every report in the capture, each with its live report under "_report"."""
    out = []
    for r in tlsscope.read(path):
        j = r.to_json()
        j["_report"] = r
        out.append(j)
    return tuple(sorted(out, key=lambda j: j["id"]))


def key_of(j: dict) -> Key:
    return (j["client"]["ip"], str(j["client"]["port"]), j["server"]["ip"], str(j["server"]["port"]))


# --- JA4 against FoxIO's expected values ------------------------------------------

def client_hellos(report) -> list:
    return [e.message for e in report.timeline
            if e.from_client and e.handshake_type == 1 and e.message is not None and not e.encrypted]


def _alpn_first(report) -> bytes:
    from tlsscope import hello
    names = hello.alpn_protocols(report.client_hello)
    return bytes(names[0]) if names else b""


def _alnum(b: int) -> bool:
    return chr(b).isascii() and chr(b).isalnum()


@pytest.mark.parametrize("name", FOXIO_EXPECTED)
def test_ja4_of_every_tcp_stream_matches_foxio(name):
    corpus = need_corpus()
    expected = json.loads((corpus / FOXIO / "python" / "test" / "testdata" / name).read_text())
    by_key: dict[Key, list[dict]] = {}
    for j in reports(corpus / FOXIO / "pcap" / name.removesuffix(".json")):
        if j["ja4"] is not None:
            by_key.setdefault(key_of(j), []).append(j)
    compared = deviations = 0
    for entry in expected:
        for index in (1, 2, 3):
            if not entry.get(f"JA4.{index}", "").startswith("t"):    # TCP only: q = QUIC, d = DTLS
                continue
            where = (name, entry["stream"], index)
            found = by_key.get((entry["src"], entry["srcport"], entry["dst"], entry["dstport"]))
            assert found and len(found) == 1, where
            j = found[0]
            if index == 1:
                got = {form: j[field] for form, field in FORMS}
            else:
                # the ClientHello sent again after a HelloRetryRequest: not in JSON, but fingerprinted
                # by the same code path (enrich.py) from the decoded message in the report's timeline
                # (tls-sni.pcapng has the client side only: the HelloRetryRequest is not in the capture)
                hellos = client_hellos(j["_report"])
                assert len(hellos) >= index, where
                fp = _client_fingerprints(hellos[index - 1])
                got = dict(zip(("JA4", "JA4_r", "JA4_o", "JA4_ro"), fp[2:]))
            for form, _ in FORMS:
                want = entry[f"{form}.{index}"]
                compared += 1
                if got[form] == want:
                    continue
                deviations += 1
                alpn = _alpn_first(j["_report"])
                if alpn and not (_alnum(alpn[0]) and _alnum(alpn[-1])):
                    # edge case 1: FoxIO prints '9' for each non-ASCII end character; the
                    # specification takes the first and last characters of the hex form
                    assert want[8:10] == "99" and got[form][8:10] == alpn.hex()[0] + alpn.hex()[-1], where
                    assert got[form][:8] + got[form][10:] == want[:8] + want[10:], where
                elif form == "JA4_o" and got["JA4_ro"].rsplit("_", 1)[1] in ("0000", "0010", "0000,0010",
                                                                              "0010,0000"):
                    # edge case 2: only SNI/ALPN: FoxIO's python hashes the (empty) sorted list
                    assert want.endswith("_000000000000"), where
                    raw = got["JA4_ro"].rsplit("_", 1)[1]
                    assert got[form] == want[:-12] + hashlib.sha256(raw.encode()).hexdigest()[:12], where
                else:
                    pytest.fail(f"{where} {form}: tlsscope {got[form]} != FoxIO {want}")
    if name in ("https-connect.pcap.json", "quic-tls-handshake.pcapng.json",
                "quic-with-several-tls-frames.pcapng.json"):
        assert compared == 0
    else:
        assert compared > 0
    # the deviations are exactly the documented ones, nowhere else
    assert deviations == {"tls-non-ascii-alpn.pcapng.json": 4, "https3-301-get.pcap.json": 1,
                          "socks-https-example.pcap.json": 3}.get(name, 0)


FOXIO_SNAPSHOTS = sorted((CORPUS / FOXIO / "rust" / "ja4" / "src" / "snapshots").glob("*.snap")) \
    if (CORPUS / FOXIO).is_dir() else []


def _snapshot_entries(path: Path) -> list[dict]:
    """The entries of one insta snapshot of FoxIO's Rust tool (a YAML list of flat mappings)."""
    entries: list[dict] = []
    for line in path.read_text().splitlines():
        if line.startswith("- "):
            entries.append({})
            line = "  " + line[2:]
        if entries and line.startswith("  ") and not line.startswith("   ") and ": " in line:
            k, v = line.strip().split(": ", 1)
            entries[-1][k] = v
    return entries


def test_ja4_of_every_quic_connection_matches_foxio():
    """QUIC ClientHellos (read from the Initial packets) against FoxIO's Rust snapshots, whose UDP
    entries carry the q-prefixed JA4 (their Python tool leaves QUIC out)."""
    corpus = need_corpus()
    compared = 0
    for snap in FOXIO_SNAPSHOTS:
        want = [e for e in _snapshot_entries(snap) if e.get("transport") == "udp" and "ja4" in e]
        if not want:
            continue
        pcap = corpus / FOXIO / "pcap" / snap.name.split("@", 1)[1].removesuffix(".snap")
        ours = {key_of(j): j for j in reports(pcap) if j["transport"] == "quic"}
        for e in want:
            key = (e["src"], e["src_port"], e["dst"], e["dst_port"])
            assert key in ours, (snap.name, key)
            assert ours[key]["ja4"] == e["ja4"], (snap.name, key)
            assert ours[key]["sni"] == e.get("tls_server_name"), (snap.name, key)
            compared += 1
    assert compared >= 40          # 51 QUIC connections in 7 captures at the corpus' commit


def test_foxio_second_client_hellos_are_compared():
    """The five HelloRetryRequest streams of tls-handshake.pcapng each carry a JA4.2."""
    corpus = need_corpus()
    entries = json.loads((corpus / FOXIO / "python" / "test" / "testdata" / "tls-handshake.pcapng.json").read_text())
    assert sum("JA4.2" in e for e in entries) == 5
    retried = [j for j in reports(corpus / FOXIO / "pcap" / "tls-handshake.pcapng") if j["hello_retry_request"]]
    assert len(retried) == 5
    for j in retried:
        # the retry drops the padding extension (0x0015): one extension fewer than the first
        assert j["_report"].state.client_hello_2 is client_hellos(j["_report"])[1]
        second = _client_fingerprints(j["_report"].state.client_hello_2)[2]
        assert j["ja4"][:10] == "t13d1516h2" and second[:10] == "t13d1515h2"


# --- JA3/JA3S against tshark -------------------------------------------------------

def _manifest_ids() -> dict[str, str]:
    if not (CORPUS / "manifest.json").is_file():
        return {}
    return {c["id"]: c["file"] for c in json.loads((CORPUS / "manifest.json").read_text())["captures"]}


_IDS = _manifest_ids()
# every TCP capture of FoxIO's set, plus SSL 3.0/RC4/EXPORT sweeps, STARTTLS, drafts and duplicates
TSHARK_CORPUS = [f for f in (CORPUS / FOXIO / "pcap").glob("*.pcap*")] if (CORPUS / FOXIO).is_dir() else []
TSHARK_CORPUS = sorted(str(p.relative_to(CORPUS)) for p in TSHARK_CORPUS
                       if not p.name.startswith(("quic-", "dtls-")))
TSHARK_CORPUS += [_IDS[i] for i in ("WN-002", "WN-003", "WN-011", "WN-017", "WF-001", "SV-043", "SV-054",
                                    "AK-013", "AK-019", "AK-022", "PP-003", "PP-018", "JY-001", "SD-009")
                  if i in _IDS]
SCENARIOS = sorted(CAPTURES.glob("*/scenario.json"))


@functools.cache
def tshark_streams(path: Path, ports: tuple[int, ...] = (), transport: str = "tcp") -> tuple[dict, ...]:
    """First ClientHello JA3 and first ServerHello JA3S of every TCP stream (``transport`` "udp": every
    DTLS flow, "quic": every QUIC flow), from tshark."""
    t, p, proto = {"udp": ("udp", "dtls", "dtls"), "quic": ("udp", "tls", "quic")}.get(transport, ("tcp", "tls", "tls"))
    decode = [a for port in ports for a in ("-d", f"{t}.port=={port},{proto}")]
    out = subprocess.run(
        [need_tool("tshark"), "-r", str(path), *decode, "-Y", f"{p}.handshake.type == 1 || {p}.handshake.type == 2",
         "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-e", f"{t}.stream", "-e", "ip.src",
         "-e", "ipv6.src", "-e", f"{t}.srcport", "-e", "ip.dst", "-e", "ipv6.dst", "-e", f"{t}.dstport",
         "-e", f"{p}.handshake.ja3_full", "-e", f"{p}.handshake.ja3s_full"],
        capture_output=True, text=True, timeout=120, check=True).stdout
    streams: dict[int, dict] = {}
    for line in out.splitlines():
        stream, src4, src6, sport, dst4, dst6, dport, ja3, ja3s = line.split("\t")
        if not stream:      # QUIC/DTLS: no TCP stream
            continue
        s = streams.setdefault(int(stream), {"ja3": None, "ja3s": None, "key": None})
        src, dst = (src4 or src6).split("|")[0], (dst4 or dst6).split("|")[0]
        if ja3 and s["ja3"] is None:
            s["ja3"], s["key"] = ja3.split("|")[0], (src, sport, dst, dport)
        if ja3s and s["ja3s"] is None:
            s["ja3s"] = ja3s.split("|")[0]
            s["key"] = s["key"] or (dst, dport, src, sport)
    return tuple(streams.values())


def _compare_with_tshark(path: Path, ports: tuple[int, ...] = (), transport: str = "tcp") -> int:
    want_c: Counter = Counter()
    want_s: Counter = Counter()
    for s in tshark_streams(path, ports, transport):
        if s["ja3"] is not None:
            want_c[(s["key"], s["ja3"])] += 1
        if s["ja3s"] is not None:
            want_s[(s["key"], s["ja3s"])] += 1
    got_c: Counter = Counter()
    got_s: Counter = Counter()
    for j in reports(path):
        if j["ja3_string"] is not None:
            got_c[(key_of(j), j["ja3_string"])] += 1
        if j["ja3s_string"] is not None:
            got_s[(key_of(j), j["ja3s_string"])] += 1
        # the hash is the MD5 of the string
        for h, s in (("ja3", "ja3_string"), ("ja3s", "ja3s_string")):
            if j[s] is not None:
                assert j[h] == hashlib.md5(j[s].encode()).hexdigest()
    # tshark may miss TLS that tlsscope finds (non-standard ports, STARTTLS); never the reverse
    missing_c, missing_s = want_c - got_c, want_s - got_s
    assert not missing_c, (path, missing_c, got_c)
    assert not missing_s, (path, missing_s, got_s)
    return sum(want_c.values()) + sum(want_s.values())


@pytest.mark.parametrize("rel", TSHARK_CORPUS)
def test_ja3_ja3s_per_connection_match_tshark_corpus(rel):
    corpus = need_corpus()
    assert _compare_with_tshark(corpus / rel) > 0


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.parent.name for p in SCENARIOS])
def test_ja3_ja3s_per_connection_match_tshark_captures(scenario):
    sc = json.loads(scenario.read_text())
    n = _compare_with_tshark(scenario.parent / sc["capture"], tuple(sc["ports"]), sc.get("transport", "tcp"))
    # every scenario connection has a ClientHello in clear and, unless refused first, a ServerHello
    assert n == sum(2 if c["version"] else 1 for c in sc["connections"])


# --- PcapPlusPlus tls2.pcap ----------------------------------------------------

def test_ja3_ja3s_match_pcapplusplus_tls2():
    corpus = need_corpus()
    want_c: Counter = Counter()
    want_s: set = set()
    for line in (corpus / TLS2_EXPECTED).read_text().splitlines()[1:]:
        md5, string, kind, src, sport, dst, dport = line.split("\t")
        assert hashlib.md5(string.encode()).hexdigest() == md5
        if kind == "ClientHello":
            want_c[((src, sport, dst, dport), string)] += 1
        else:
            want_s.add(((dst, dport, src, sport), string))
    got_c: Counter = Counter()
    got_s: set = set()
    for j in reports(corpus / TLS2):
        if j["ja3_string"] is not None:
            got_c[(key_of(j), j["ja3_string"])] += 1
        if j["ja3s_string"] is not None:
            # PcapPlusPlus puts the negotiated supported_versions value in place of legacy_version
            sh = j["server_hello"]
            version = sh["selected_version"] or sh["legacy_version"]
            rest = j["ja3s_string"].split(",", 1)[1]
            got_s.add((key_of(j), f"{version},{rest}"))
            assert j["ja3s_string"].split(",", 1)[0] == str(sh["legacy_version"])
    assert sum(want_c.values()) == 323
    assert got_c == want_c
    # (PcapPlusPlus counts ServerHellos again in TCP retransmissions: compare as sets)
    assert got_s == want_s


# --- Suricata-verify and Arkime truth files ------------------------------------

_SV_KEYS = {"tls.ja3.hash": "ja3", "tls.ja3.string": "ja3_string", "tls.ja3s.hash": "ja3s",
            "tls.ja3s.string": "ja3s_string", "tls.ja4": "ja4"}


def _sv_expectations() -> list[tuple[str, str, str, str]]:
    """(test, pcap relative to the corpus, report key, value) from suricata-verify test.yaml files."""
    root = CORPUS / "OISF_suricata-verify" / "tests"
    if not root.is_dir():
        return []
    import yaml
    out = []
    for test in sorted(root.rglob("test.yaml")):
        text = test.read_text()
        if "tls.ja" not in text:
            continue
        doc = yaml.safe_load(text)
        pcap = (test.parent / doc["pcap"] if doc.get("pcap") else test.parent / "input.pcap").resolve()
        if not pcap.is_file():
            continue
        for check in doc.get("checks") or ():
            match = (check.get("filter") or {}).get("match") or {}
            if match.get("event_type") != "tls":
                continue
            for k, field in _SV_KEYS.items():
                if k in match:
                    out.append((str(test.parent.relative_to(root)), str(pcap.relative_to(CORPUS.resolve())),
                                field, str(match[k])))
    return out


SV_EXPECTED = _sv_expectations()


@pytest.mark.parametrize(("test", "pcap", "field", "value"), SV_EXPECTED,
                         ids=[f"{t}-{f}" for t, _, f, _ in SV_EXPECTED])
def test_suricata_verify_fingerprints(test, pcap, field, value):
    corpus = need_corpus()
    got = {j[field] for j in reports(corpus / pcap)}
    if test == "bug-5713-02-ja4":
        # Suricata hashes "extensions_" (trailing underscore) when the ClientHello has no
        # signature_algorithms; the specification (and FoxIO) hash the extension list alone
        (j,) = reports(corpus / pcap)
        prefix, _, raw_exts = j["ja4_r"].split("_")
        assert j["ja4_r"].count("_") == 2      # no signature algorithms part
        assert j["ja4"].rsplit("_", 1)[1] == hashlib.sha256(raw_exts.encode()).hexdigest()[:12]
        assert value == j["ja4"].rsplit("_", 1)[0] + "_" + hashlib.sha256(f"{raw_exts}_".encode()).hexdigest()[:12]
        return
    assert value in got, (test, field, got)


def test_suricata_verify_has_fingerprint_truth():
    need_corpus()
    assert len(SV_EXPECTED) >= 10
    assert {f for _, _, f, _ in SV_EXPECTED} == set(_SV_KEYS.values())


def _arkime_expectations() -> list[tuple[str, str, str]]:
    root = CORPUS / "arkime_arkime" / "tests" / "pcap"
    if not root.is_dir():
        return []
    out = []
    for test in sorted(root.glob("*.test")):
        pcap = test.with_suffix(".pcap")
        text = test.read_text()
        if not pcap.is_file() or '"ja' not in text:
            continue
        for session in json.loads(text[text.index("{"):]).get("sessions3", ()):
            if session["body"].get("ipProtocol") != 6:
                continue    # QUIC / DTLS
            tls = session["body"].get("tls") or {}
            for ak, field in (("ja3string", "ja3_string"), ("ja3sstring", "ja3s_string"), ("ja3", "ja3"),
                              ("ja3s", "ja3s"), ("ja4", "ja4"), ("ja4_r", "ja4_r")):
                for value in tls.get(ak, ()):
                    out.append((pcap.name, field, value))
    return sorted(set(out))


AK_EXPECTED = _arkime_expectations()


@pytest.mark.parametrize(("pcap", "field", "value"), AK_EXPECTED, ids=[f"{p}-{f}-{v[:20]}" for p, f, v in AK_EXPECTED])
def test_arkime_fingerprints(pcap, field, value):
    corpus = need_corpus()
    got = {j[field] for j in reports(corpus / "arkime_arkime" / "tests" / "pcap" / pcap)}
    assert value in got, (pcap, field, got)

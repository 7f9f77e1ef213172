"""Findings (rules.py) on real handshakes: captures/ scenarios, corpus captures with known
weaknesses, and a live openssl s_server configured like the classic nginx cipher string.

A finding is {severity, code, message}; codes are a public contract, so the tests name them.
"Offered" (from the ClientHello) and "negotiated" (from the ServerHello) are kept apart.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import tlsscope
from conftest import CAPTURES, CORPUS, IN_CI, need_corpus, need_tool
from tlsscope.registry import cipher_suite_info

SCENARIOS = sorted(CAPTURES.glob("*/scenario.json"))


def scenario_reports(name: str, *, keys: bool = True) -> dict[int, dict]:
    """Reports of captures/<name> by client port (with its key log / RSA key when ``keys``)."""
    sdir = CAPTURES / name
    sc = json.loads((sdir / "scenario.json").read_text())
    kw: dict = {}
    if keys and sc.get("keylog"):
        kw["keylog"] = sdir / sc["keylog"]
    if keys and sc.get("rsa_key"):
        kw["rsa_key"] = sdir / sc["rsa_key"]
    return {r.client.port: r.to_json() for r in tlsscope.read(sdir / sc["capture"], **kw)}


def codes(report: dict) -> dict[str, str]:
    """{code: severity}"""
    return {f["code"]: f["severity"] for f in report["findings"]}


def message(report: dict, code: str) -> str:
    return next(f["message"] for f in report["findings"] if f["code"] == code)


def test_finding_shape_and_codes_are_stable_snake_case():
    for path in SCENARIOS:
        for r in scenario_reports(path.parent.name).values():
            for f in r["findings"]:
                assert set(f) == {"severity", "code", "message"}
                assert f["severity"] in ("info", "low", "medium", "high", "critical")
                assert f["code"].replace("_", "").isalnum() and f["code"].islower(), f
                assert f["message"].strip()
            # one finding per code per connection (connection.py reports a plaintext prelude per side)
            per_code = Counter(f["code"] for f in r["findings"])
            assert all(n == 1 or code == "starttls" for code, n in per_code.items()), per_code


# --- captures/ scenarios -------------------------------------------------------------

def test_scenario_expected_findings_are_reported():
    """Every finding scenario.json expects (from rules.py) is there, for every connection."""
    cert_codes = set()
    for path in SCENARIOS:
        sc = json.loads(path.read_text())
        reports = scenario_reports(path.parent.name)
        for conn in sc["connections"]:
            got = codes(reports[conn["client_port"]])
            for code in conn["findings"]:
                if code in got:
                    continue
                cert_codes.add(code)    # certificate findings live under certificate_checks
    assert cert_codes <= {"sha1_signature", "v1_ca_anchor", "unknown_issuer", "http_client_certificate_error",
                          "cert_expired", "hostname_mismatch", "revoked", "weak_rsa_key",
                          "x509_strict_violation", "ocsp_good", "ocsp_revoked"}, cert_codes


def test_09_legacy_versions_rsa_and_cbc():
    r = scenario_reports("09-legacy")
    tls10, tls11, rsa = r[48286], r[48288], r[48292]
    # TLS 1.0 / 1.1: negotiated (medium) and offered (low), ECDHE with encrypt-then-MAC: nothing else
    assert codes(tls10)["tls10_negotiated"] == "medium" and codes(tls10)["tls10_offered"] == "low"
    assert codes(tls11)["tls11_negotiated"] == "medium" and codes(tls11)["tls11_offered"] == "low"
    assert "require TLS 1.2+" in message(tls10, "tls10_negotiated")
    # the server supports TLS 1.2: its random carries the sentinel, which the TLS 1.0 client cannot check
    assert codes(tls10)["downgrade_sentinel"] == "info" and "(tls11)" in message(tls10, "downgrade_sentinel")
    for conn in (tls10, tls11):
        assert not {"cbc_without_etm", "static_rsa_negotiated", "tls12_negotiated"} & set(codes(conn))
    # TLS 1.2 with RSA key exchange and encrypt-then-MAC refused
    got = codes(rsa)
    assert got["static_rsa_negotiated"] == "medium"
    assert got["cbc_without_etm"] == "low"
    assert "no forward secrecy" in message(rsa, "static_rsa_negotiated")
    assert "Lucky13" in message(rsa, "cbc_without_etm")
    assert not {"tls10_negotiated", "tls11_negotiated", "tls10_offered"} & set(got)
    # the client offered only that suite: no better one the server could have picked
    assert "server_prefers_weaker_cipher" not in got
    assert message(rsa, "static_rsa_offered").startswith("the client offers 1 suite without forward secrecy")
    # OpenSSL sends EMS and renegotiation_info: no findings about them
    assert not {"no_extended_master_secret", "insecure_renegotiation"} & set(got)


def test_12_renegotiation_is_reported_as_secure():
    (r,) = scenario_reports("12-renegotiation").values()
    assert codes(r)["renegotiation"] == "info"
    assert "1 renegotiation(s)" in message(r, "renegotiation") and "secure" in message(r, "renegotiation")
    assert r["history"] == "CsxknGIFtifDdCsxknGIFtifLl"
    # without keys the second handshake is invisible (only its ChangeCipherSpec records, "Ii"),
    # and so is the renegotiation; encrypted Finished and alerts are not in the history
    (plain,) = scenario_reports("12-renegotiation", keys=False).values()
    assert "renegotiation" not in codes(plain)
    assert plain["history"] == "CsxknGItiDdIi"


def test_03_nginx_client_certificate_required_needs_keys():
    r = scenario_reports("03-nginx-mtls")
    assert codes(r[56162])["http_client_certificate_required"] == "high"
    assert "client sent no certificate" in message(r[56162], "http_client_certificate_required")
    assert codes(r[56178])["http_client_certificate_error"] == "high"
    assert "http_client_certificate_required" not in codes(r[56146])
    plain = scenario_reports("03-nginx-mtls", keys=False)
    assert not any(c.startswith("http_") for p in plain.values() for c in codes(p))


def test_alerts_are_explained_in_plain_words():
    r = scenario_reports("01-classic-sha1-mtls12")[45108]
    assert codes(r)["alert_bad_certificate"] == "high"
    assert message(r, "alert_bad_certificate").startswith(
        "fatal alert bad_certificate from the client: the client rejected the server certificate")
    assert r["history"] == "CsxkrnL"
    rejected = scenario_reports("04-server-cert-rejected")
    assert "install the issuing CA" in message(rejected[34216], "alert_unknown_ca")
    assert "expired" in message(rejected[54324], "alert_certificate_expired")
    revoked = scenario_reports("05-revoked-client-cert")
    m = message(revoked[53150], "alert_certificate_revoked")
    assert m.startswith("fatal alert certificate_revoked from the server: the server rejected the client certificate")
    assert "CRL" in m
    # TLS 1.3: the alert is encrypted; with the key log it is read and explained the same way
    assert "alert_certificate_revoked" in codes(revoked[53156])
    assert "alert_certificate_revoked" not in codes(scenario_reports("05-revoked-client-cert", keys=False)[53156])


def test_modern_handshakes_have_no_protocol_or_cipher_findings():
    bad = {"negotiated", "weak", "insecure", "cbc", "compression", "heartbeat", "renegotiation", "prefers"}
    for name in ("02-modern-mtls13", "06-hello-retry-request", "07-resumption", "10-chain-ipv6"):
        for r in scenario_reports(name).values():
            assert not [c for c in codes(r) if any(b in c for b in bad)], (name, codes(r))
    (hrr,) = scenario_reports("06-hello-retry-request").values()
    assert "duplicate_client_hello" not in codes(hrr)       # the retry after HRR is expected
    assert hrr["history"].startswith("CjiIC")


def test_findings_and_history_in_cli_outputs():
    cap = CAPTURES / "09-legacy" / "capture.pcap"
    text = subprocess.run([sys.executable, "-m", "tlsscope", "read", str(cap), "--conn", "3"],
                          capture_output=True, text=True, timeout=60)
    assert text.returncode == 0
    assert "static_rsa_negotiated" in text.stdout and "cbc_without_etm" in text.stdout
    summary = subprocess.run([sys.executable, "-m", "tlsscope", "read", "--summary", str(cap)],
                             capture_output=True, text=True, timeout=60)
    lines = summary.stdout.splitlines()
    assert len(lines) == 3 and all("hist=Csx" in line for line in lines)
    js = subprocess.run([sys.executable, "-m", "tlsscope", "read", "--json", str(cap)],
                        capture_output=True, text=True, timeout=60)
    objs = [json.loads(x) for x in js.stdout.splitlines()]
    assert [o["history"] for o in objs] == [line.split("hist=")[1].split()[0] for line in lines]
    assert {"tls10_negotiated", "tls11_negotiated", "static_rsa_negotiated"} <= {
        f["code"] for o in objs for f in o["findings"]}


# --- corpus captures with known weaknesses ----------------------------------------------

def _manifest() -> dict[str, str]:
    if not (CORPUS / "manifest.json").is_file():
        return {}
    return {c["id"]: c["file"] for c in json.loads((CORPUS / "manifest.json").read_text())["captures"]}


MANIFEST = _manifest()


def corpus_reports(cid: str) -> list[dict]:
    corpus = need_corpus()
    return [r.to_json() for r in sorted(tlsscope.read(corpus / MANIFEST[cid]), key=lambda r: r.id)]


# (manifest id, connection index, {code: severity} that must be there, codes that must not, message parts)
KNOWN = [
    ("WN-017", 0, {"null_cipher_negotiated": "critical", "null_cipher_offered": "medium",
                   "static_rsa_negotiated": "medium", "heartbeat_offered": "low",
                   "no_extended_master_secret": "low"},
     {"rc4_cipher_negotiated", "tls10_negotiated"}, {"null_cipher_negotiated": "TLS_RSA_WITH_NULL_SHA256"}),
    ("J4-007", 0, {"tls10_negotiated": "medium", "rc4_cipher_negotiated": "high", "static_rsa_negotiated": "medium",
                   "server_prefers_weaker_cipher": "medium", "export_cipher_offered": "medium",
                   "des_cipher_offered": "low", "rc4_cipher_offered": "low"},
     {"export_cipher_negotiated", "ssl3_negotiated"},
     {"server_prefers_weaker_cipher": "TLS_DHE_RSA_WITH_AES_256_CBC_SHA", "rc4_cipher_negotiated": "RFC 7465"}),
    # MySQL with a 512-bit DHE group (Logjam) and heartbeat enabled by both sides
    ("WN-012", 0, {"weak_dh_group": "critical", "tls10_negotiated": "medium", "heartbeat_negotiated": "medium",
                   "heartbeat_offered": "low", "cbc_without_etm": "low", "starttls": "info"},
     {"server_prefers_weaker_cipher"}, {"weak_dh_group": "512 bits"}),
    ("WN-011", 0, {"weak_dh_group": "critical"}, set(), {"weak_dh_group": "512 bits"}),
    # SSLv2-compatible ClientHello upgraded to TLS 1.0 with a 1024-bit DHE group
    ("SV-039", 0, {"sslv2_compatible_hello": "medium", "sslv2_offered": "high", "tls10_offered": "low",
                   "tls10_negotiated": "medium", "weak_dh_group": "high", "insecure_renegotiation": "medium",
                   "no_secure_renegotiation_client": "medium", "export_cipher_offered": "medium"},
     {"ssl3_offered"}, {"weak_dh_group": "1024 bits"}),
    # rsasnakeoil2: SSLv2-compatible hello then SSL 3.0; the second connection 3DES
    ("WF-001", 0, {"sslv2_compatible_hello": "medium", "ssl3_offered": "high", "ssl3_negotiated": "high",
                   "static_rsa_negotiated": "medium", "rc4_cipher_offered": "low"},
     {"des_cipher_negotiated"}, {"ssl3_negotiated": "POODLE"}),
    ("WF-001", 1, {"ssl3_negotiated": "high", "des_cipher_negotiated": "medium",
                   "no_secure_renegotiation_client": "medium", "insecure_renegotiation": "medium"},
     {"sslv2_compatible_hello"}, {"des_cipher_negotiated": "Sweet32"}),
    ("SV-009", 0, {"export_cipher_negotiated": "critical", "rc4_cipher_negotiated": "high",
                   "sslv2_compatible_hello": "medium"}, set(), {}),
    ("AK-013", 0, {"ssl3_negotiated": "high", "rc4_cipher_negotiated": "high"}, {"static_rsa_negotiated"}, {}),
    # MySQL, TLS 1.1: static RSA chosen although the client offered ECDHE_RSA CBC suites (usable in 1.1);
    # its GCM suites are not counted (TLS 1.2 only)
    ("AK-012", 0, {"tls11_negotiated": "medium", "static_rsa_negotiated": "medium",
                   "server_prefers_weaker_cipher": "medium"}, set(),
     {"server_prefers_weaker_cipher": "offered TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:"}),
    ("J4-001", 0, {"alert_certificate_unknown": "high"}, set(),
     {"alert_certificate_unknown": "from the client: the client rejected the server certificate"}),
    ("PP-005", 0, {"alert_protocol_version": "high"}, set(),
     {"alert_protocol_version": "no protocol version in common"}),
    ("SV-043", 0, {"duplicate_client_hello": "low"}, {"renegotiation"}, {}),
]


@pytest.mark.parametrize(("cid", "index", "present", "absent", "texts"), KNOWN,
                         ids=[f"{k[0]}-{k[1]}" for k in KNOWN])
def test_corpus_known_weaknesses(cid, index, present, absent, texts):
    r = corpus_reports(cid)[index]
    got = codes(r)
    for code, severity in present.items():
        assert got.get(code) == severity, (cid, code, got)
    assert not absent & set(got), (cid, absent & set(got))
    for code, part in texts.items():
        assert part in message(r, code), (cid, code, message(r, code))


@pytest.mark.parametrize("cid", ["WN-001", "WN-002", "WN-003", "WN-005", "WN-018"])
def test_cipher_sweeps_negotiated_flags_follow_the_suite(cid):
    """Lekensteyn's sweeps: one connection per suite; each weakness of the suite is flagged, and only those."""
    flags = {"null_cipher": "null_cipher_negotiated", "anonymous": "anon_cipher_negotiated",
             "export": "export_cipher_negotiated", "rc4": "rc4_cipher_negotiated", "des": "des_cipher_negotiated"}
    seen: Counter = Counter()
    for r in corpus_reports(cid):
        if r["cipher_suite"] is None:
            continue
        info = cipher_suite_info(r["cipher_suite"]["code"])
        got = codes(r)
        for attr, code in flags.items():
            assert (code in got) == getattr(info, attr), (cid, info.name, code)
            seen[code] += code in got
        static = info.key_exchange in ("RSA", "DH", "ECDH", "RSA_PSK", "PSK")
        assert static == ("static_rsa_negotiated" in got or "no_forward_secrecy" in got), (cid, info.name)
        cbc_no_etm = info.mode == "CBC" and "encrypt_then_mac" not in {
            e["name"] for e in r["server_hello"]["extensions"]}
        assert cbc_no_etm == ("cbc_without_etm" in got), (cid, info.name)
        version = r["version"]["name"]
        assert ("ssl3_negotiated" in got) == (version == "SSL 3.0")
        if r["server_hello"]["compression_method"]:
            assert got["tls_compression"] == "high"
    if cid == "WN-002":
        assert seen["export_cipher_negotiated"] and seen["rc4_cipher_negotiated"] and seen["des_cipher_negotiated"]


def test_compression_offered_and_negotiated():
    reports = corpus_reports("WN-001")
    negotiated = [r for r in reports if r["server_hello"] and r["server_hello"]["compression_method"]]
    assert negotiated and all(codes(r)["tls_compression"] == "high" for r in negotiated)
    assert "CRIME" in message(negotiated[0], "tls_compression")
    offered = [r for r in corpus_reports("WN-002") if r["client_hello"] and any(r["client_hello"]["compression_methods"])]
    assert offered and all(codes(r)["compression_offered"] == "low" for r in offered)


# --- live: the classic nginx configuration -----------------------------------------------

CLASSIC = "ALL:!ADH:!EXPORT56:RC4+RSA:+HIGH:+MEDIUM:+LOW:@SECLEVEL=0"


def _need_root():
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("capturing on lo must run as root in CI")
        pytest.skip("capturing on lo needs root (or CAP_NET_RAW)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited early: {proc.args}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"server on port {port} did not start")


def test_live_classic_nginx_cipher_config(tmp_path: Path):
    """What a config review flags for ``ssl_ciphers ALL:!ADH:!EXPORT56:RC4+RSA:+HIGH:+MEDIUM:+LOW``.

    Server: openssl s_server with that cipher string, TLS 1.2 only, a 1024-bit RSA key and the
    client's order honoured (nginx's default). Clients probe it as a scanner would: a weak offer,
    static RSA listed first, static RSA CBC without encrypt-then-MAC, DHE, anonymous DH. A second
    server requires a client certificate (TLS 1.2 and 1.3) and a client sends none.
    """
    _need_root()
    ossl, tcpdump = need_tool("openssl"), need_tool("tcpdump")

    def run(*args):
        subprocess.run([ossl, *args], check=True, capture_output=True, timeout=30, cwd=tmp_path)
    run("req", "-x509", "-newkey", "rsa:1024", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "30",
        "-subj", "/CN=classic.test", "-sha256")
    port, mtls_port = _free_port(), _free_port()
    pcap, keylog = tmp_path / "live.pcap", tmp_path / "keys.txt"
    procs: list[subprocess.Popen] = []
    try:
        dump = subprocess.Popen([tcpdump, "-i", "lo", "-n", "--immediate-mode", "-U", "-w", str(pcap),
                                 f"tcp port {port} or tcp port {mtls_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(dump)
        deadline = time.monotonic() + 10
        line = b""
        while b"listening on" not in line and time.monotonic() < deadline and dump.poll() is None:
            line = dump.stderr.readline()
        assert b"listening on" in line, "tcpdump did not start"
        server = subprocess.Popen([ossl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", "cert.pem",
                                   "-key", "key.pem", "-tls1_2", "-cipher", CLASSIC, "-www", "-quiet"],
                                  cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(server)
        mtls = subprocess.Popen([ossl, "s_server", "-accept", f"127.0.0.1:{mtls_port}", "-cert", "cert.pem",
                                 "-key", "key.pem", "-CAfile", "cert.pem", "-Verify", "1", "-verify_return_error",
                                 "-cipher", "DEFAULT:@SECLEVEL=0", "-www", "-quiet"],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(mtls)
        _wait_listening(port, server)
        _wait_listening(mtls_port, mtls)
        probes = [(port, ["-cipher", "ALL:@SECLEVEL=0"]),
                  (port, ["-cipher", "AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA:@SECLEVEL=0"]),
                  (port, ["-cipher", "AES128-SHA:@SECLEVEL=0", "-no_etm"]),
                  (port, ["-cipher", "DHE-RSA-AES256-SHA:@SECLEVEL=0"]),
                  (port, ["-cipher", "ADH-AES128-SHA:@SECLEVEL=0"]),
                  (mtls_port, ["-tls1_2", "-cipher", "DEFAULT:@SECLEVEL=0"]),
                  (mtls_port, ["-tls1_3", "-keylogfile", str(keylog)]),
                  (mtls_port, ["-tls1_2", "-fallback_scsv"])]
        for p, args in probes:
            subprocess.run([ossl, "s_client", "-connect", f"127.0.0.1:{p}", *args], input=b"GET / HTTP/1.0\r\n\r\n",
                           capture_output=True, timeout=15, cwd=tmp_path)
        time.sleep(1.6)    # libpcap on lo delivers in blocks
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT if p is procs[0] else signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
    reports = [r.to_json() for r in sorted(tlsscope.read(pcap, keylog=keylog), key=lambda r: r.id)]
    assert len(reports) == len(probes), [(r["client"], r["end"]) for r in reports]
    weak_offer, rsa_first, rsa_cbc, dhe, adh, mtls12, mtls13, fallback = reports

    got = codes(weak_offer)     # the server picks ECDHE+AEAD: only the client's offer is flagged
    assert weak_offer["cipher_suite"]["name"].startswith("TLS_ECDHE_RSA_WITH_AES_256_GCM")
    assert got["anon_cipher_offered"] == "medium" and got["static_rsa_offered"] == "info"
    assert got["tls10_offered"] == "low" and got["tls11_offered"] == "low"
    assert not [c for c in got if c.endswith("_negotiated") or c == "server_prefers_weaker_cipher"]
    assert "downgrade_sentinel" not in got      # the server's highest version is TLS 1.2 (-tls1_2)

    got = codes(rsa_first)      # the server follows the client's order: static RSA over ECDHE
    assert rsa_first["cipher_suite"]["name"] == "TLS_RSA_WITH_AES_256_GCM_SHA384"
    assert got["static_rsa_negotiated"] == "medium"
    assert got["server_prefers_weaker_cipher"] == "medium"
    m = message(rsa_first, "server_prefers_weaker_cipher")
    assert "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA" in m and "enforce server preference" in m

    got = codes(rsa_cbc)        # static RSA and MAC-then-encrypt CBC accepted
    assert rsa_cbc["cipher_suite"]["name"] == "TLS_RSA_WITH_AES_128_CBC_SHA"
    assert got["static_rsa_negotiated"] == "medium" and got["cbc_without_etm"] == "low"

    got = codes(dhe)            # DHE with the group OpenSSL picks for a 1024-bit key (Logjam)
    assert dhe["cipher_suite"]["name"] == "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"
    assert got["weak_dh_group"] == "high" and "1024 bits" in message(dhe, "weak_dh_group")
    assert "cbc_without_etm" not in got        # encrypt-then-MAC negotiated

    got = codes(adh)            # !ADH: refused, and the alert says why
    assert adh["server_hello"] is None and got["anon_cipher_offered"] == "medium"
    assert "no cipher suite, version or group in common" in message(adh, "alert_handshake_failure")

    # client certificate required and not sent: TLS 1.2 handshake_failure after CertificateRequest
    assert mtls12["client_certificate_requested"] is True
    m = message(mtls12, "alert_handshake_failure")
    assert m == ("fatal alert handshake_failure from the server: "
                 "the server requires a client certificate and none was sent")
    # TLS 1.3: certificate_required (116), encrypted, read with the key log
    m = message(mtls13, "alert_certificate_required")
    assert "the server requires a client certificate and none was sent" in m

    # a client retrying with a lower version signals it (RFC 7507); a TLS 1.3 server refuses
    got = codes(fallback)
    assert got["fallback_scsv"] == "info"
    assert "inappropriate fallback" in message(fallback, "alert_inappropriate_fallback")


# --- rules without a capture: curves and alert causes ---------------------------------------

def test_named_curve_strength():
    from types import SimpleNamespace

    from tlsscope.rules import key_exchange_rules

    def run(group):
        out: list = []
        key_exchange_rules(SimpleNamespace(state=None, group=group), out)
        return {f.code: (str(f.severity), f.message) for f in out}
    assert run(19)["weak_curve"][0] == "high" and "192-bit" in run(19)["weak_curve"][1]   # secp192r1
    assert run(14)["weak_curve"][0] == "medium"                                            # sect571r1 (binary)
    for group in (23, 24, 25, 29, 30):      # secp256r1, secp384r1, secp521r1, x25519, x448
        assert run(group) == {}

"""The command line as a user runs it: outputs, filters, exit codes, one-line errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CORPUS, need_corpus

TLS13 = "syncsynchalt_illustrated-tls13/captures/capture.pcap"
TLS12 = "syncsynchalt_illustrated-tls12/captures/capture.pcap"


def run(*args, check_rc: int | None = 0):
    p = subprocess.run([sys.executable, "-m", "tlsscope", *map(str, args)], capture_output=True, text=True,
                       timeout=120)
    if check_rc is not None:
        assert p.returncode == check_rc, (p.returncode, p.stdout[-1500:], p.stderr[-1500:])
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_json_contract_tls12():
    need_corpus()
    out = run("read", "--json", CORPUS / TLS12).stdout.splitlines()
    assert len(out) == 1
    d = json.loads(out[0])
    for key in ("client", "server", "client_hello", "server_hello", "version", "cipher_suite", "certificates",
                "alerts", "messages", "application_data", "findings", "ja3", "ja3_string", "ja3s",
                "ja3s_string", "ja4", "ja4_r", "ja4_o", "ja4_ro", "history"):
        assert key in d, key
    assert d["client"] == {"ip": "::1", "port": 50159} and d["server"]["port"] == 8443
    ch = d["client_hello"]
    assert ch["server_name"] == "example.ulfheim.net"
    assert isinstance(ch["cipher_suites"][0], int) and len(ch["random"]) == 64
    assert ch["extensions"][0]["type"] == 0 and ch["extensions"][0]["name"] == "server_name"
    assert d["server_hello"]["cipher_suite"] == 0xC013
    assert d["server_hello"]["selected_version"] == 0x0303 and d["server_hello"]["is_hello_retry_request"] is False
    assert d["version"] == {"code": 0x0303, "name": "TLS 1.2"}
    assert d["cipher_suite"]["name"] == "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
    assert len(d["certificates"]["server"]) == 1 and d["certificates"]["client"] == []
    assert d["certificates"]["server"][0]["subject"].endswith("CN=example.ulfheim.net") or \
        "example.ulfheim.net" in d["certificates"]["server"][0]["subject"]
    names = [m["name"] for m in d["messages"]]
    assert names[:6] == ["ClientHello", "ServerHello", "Certificate", "ServerKeyExchange", "ServerHelloDone",
                         "ClientKeyExchange"]
    assert "Encrypted Handshake Message" in names
    assert d["alerts"] and d["alerts"][0]["encrypted"] is True
    assert d["application_data"]["client"]["records"] >= 1
    assert any(f["code"] == "cbc_without_etm" for f in d["findings"])
    assert {"severity", "code", "message"} <= set(d["findings"][0])


def test_tls13_certificates_not_visible_without_keys():
    need_corpus()
    d = json.loads(run("read", "--json", CORPUS / TLS13).stdout)
    assert d["version"]["name"] == "TLS 1.3"
    assert d["certificates"]["server"] is None
    assert d["server_hello"]["selected_version"] == 0x0304 and d["server_hello"]["legacy_version"] == 0x0303


def test_summary_and_text_views():
    need_corpus()
    line = run("read", "--summary", CORPUS / TLS12).stdout.strip()
    assert line.startswith("#1 ") and "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA" in line and "sni=example.ulfheim.net" in line
    text = run("read", CORPUS / TLS12).stdout
    assert "ClientHello" in text and "ServerKeyExchange" in text and "x25519" in text
    verbose = run("read", "-v", CORPUS / TLS12).stdout
    assert len(verbose) > len(text) and "random" in verbose


def test_filters():
    need_corpus()
    f = CORPUS / TLS12
    assert run("read", "--summary", "--port", 8443, f).stdout.strip()
    assert not run("read", "--summary", "--port", 1, f).stdout.strip()
    assert run("read", "--summary", "--sni", "*.ulfheim.net", f).stdout.strip()
    assert not run("read", "--summary", "--sni", "nope.example", f).stdout.strip()
    assert run("read", "--summary", "--conn", 1, f).stdout.strip()
    assert not run("read", "--summary", "--conn", 2, f).stdout.strip()
    assert run("read", "--summary", "--host", "::1", f).stdout.strip()


def test_missing_file_is_one_line_exit_2(tmp_path: Path):
    p = run("read", tmp_path / "nope.pcap", check_rc=2)
    assert "nope.pcap" in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [b"", b"hello world, not a capture\n", b"\x7fELF" + b"\x00" * 60])
def test_not_a_capture_is_one_line_exit_2(tmp_path: Path, content: bytes):
    f = tmp_path / "x.pcap"
    f.write_bytes(content)
    p = run("read", f, check_rc=2)
    assert "x.pcap" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_directory_is_an_error(tmp_path: Path):
    p = run("read", tmp_path, check_rc=2)
    assert str(tmp_path) in p.stderr


def test_truncated_capture_decodes_up_to_the_cut(tmp_path: Path):
    need_corpus()
    data = (CORPUS / TLS12).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 7])
    p = run("read", "--json", cut)
    d = json.loads(p.stdout.splitlines()[0])
    assert d["client_hello"] is not None and d["end"].startswith("capture ended")
    assert "cut" in p.stderr.lower() or "truncated" in p.stderr.lower()


def test_gzip_capture(tmp_path: Path):
    need_corpus()
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress((CORPUS / TLS12).read_bytes()))
    d = json.loads(run("read", "--json", gz).stdout)
    assert d["sni"] == "example.ulfheim.net"


def test_several_files_one_bad(tmp_path: Path):
    need_corpus()
    p = run("read", "--summary", CORPUS / TLS12, tmp_path / "missing.pcap", check_rc=2)
    assert "ulfheim" in p.stdout and "missing.pcap" in p.stderr


def test_ca_exit_code_and_verdicts_through_the_cli():
    """--ca gates a CI job: exit 1 when a presented chain fails, 0 when all chains are trusted."""
    from conftest import CAPTURES
    s04 = CAPTURES / "04-server-cert-rejected"
    p = run("read", "--json", "--ca", s04 / "ca.pem", "--keylog", s04 / "keylog.txt", s04 / "capture.pcap",
            check_rc=1)
    checks = [json.loads(x)["certificate_checks"]["server"] for x in p.stdout.splitlines()]
    statuses = sorted(c["openssl_status"] for c in checks)
    assert "certificate has expired" in statuses and "hostname mismatch" in statuses
    assert "unable to get local issuer certificate" in statuses
    assert all(c["status"] == "failed" for c in checks)
    s02 = CAPTURES / "02-modern-mtls13"
    p = run("read", "--ca", s02 / "ca.pem", "--keylog", s02 / "keylog.txt", s02 / "capture.pcap", check_rc=0)
    assert "✔ server chain trusted" in p.stdout and "✔ client chain trusted" in p.stdout
    # without keys the TLS 1.3 chains are "not visible", which is not a failure
    p = run("read", "--json", "--ca", s02 / "ca.pem", s02 / "capture.pcap", check_rc=0)
    assert json.loads(p.stdout)["certificate_checks"]["server"]["status"] == "not_visible"


def test_jobs_give_the_same_output_as_one_process():
    from conftest import CAPTURES
    one = run("read", "--summary", CAPTURES / "07-resumption" / "capture.pcap",
              CAPTURES / "11-stacks" / "capture.pcap").stdout
    two = run("read", "--summary", "-j", "2", CAPTURES / "07-resumption" / "capture.pcap",
              CAPTURES / "11-stacks" / "capture.pcap").stdout
    assert one == two and one.count("\n") == 10


def test_ladder_export(tmp_path: Path):
    from conftest import CAPTURES
    out = tmp_path / "l.svg"
    run("read", "--conn", 1, "--ladder", out, CAPTURES / "02-modern-mtls13" / "capture.pcap")
    assert out.read_text().lstrip().startswith(("<svg", "<?xml"))
    text = run("read", "--conn", 1, "--ladder", "-", CAPTURES / "02-modern-mtls13" / "capture.pcap").stdout
    assert "ClientHello" in text and "ServerHello" in text


def test_partial_chain_through_the_cli():
    """--ca holding only an intermediate: refused like OpenSSL and nginx by default; accepted with
    --partial-chain (openssl verify -partial_chain), the path ending at that intermediate."""
    from conftest import CAPTURES
    s10 = CAPTURES / "10-chain-ipv6"
    ca = s10 / "intermediate2.pem"
    p = run("read", "--json", "--ca", ca, s10 / "capture.pcap", check_rc=1)
    checks = [json.loads(x)["certificate_checks"]["server"] for x in p.stdout.splitlines()]
    assert {c["openssl_status"] for c in checks} == {"unable to get issuer certificate"}
    p = run("read", "--json", "--partial-chain", "--ca", ca, s10 / "capture.pcap", check_rc=0)
    checks = [json.loads(x)["certificate_checks"]["server"] for x in p.stdout.splitlines()]
    assert checks and all(c["status"] == "ok" for c in checks)
    assert all("CN=tlsscope intermediate CA 2" in c["path"][-1] for c in checks)
    assert all("partial_chain_anchor" in {f["code"] for f in c["findings"]} for c in checks)
    p = run("read", "--summary", "--partial-chain", "--ca", ca, s10 / "capture.pcap", check_rc=0)
    assert "server-chain=ok" in p.stdout


def test_x509_strict_through_the_cli():
    """The classic OpenSSL PKI (v1 root from `x509 -req -signkey`): accepted by default with a finding,
    refused with --x509-strict as `openssl verify -x509_strict` (and Python 3.13+ clients) refuse it."""
    from conftest import CAPTURES
    s01 = CAPTURES / "01-classic-sha1-mtls12"
    args = ("read", "--summary", "--seclevel", "0", "--ca", s01 / "ca.pem", s01 / "capture.pcap")
    p = run(*args, check_rc=0)
    assert "server-chain=ok" in p.stdout and "FAILED" not in p.stdout
    p = run(*args[:1], "--x509-strict", *args[1:], check_rc=1)
    assert "server-chain=FAILED(invalid CA certificate)" in p.stdout


def test_x509_strict_agrees_with_a_strict_python_client():
    """captures/16-python-x509-strict: a root without keyUsage. The default Python client accepted it; the
    one with VERIFY_X509_STRICT (Python 3.13+'s default) refused it with its own message, which is what
    --x509-strict reports; without the option the verdict is ok with a x509_strict_violation finding."""
    from conftest import CAPTURES
    d = CAPTURES / "16-python-x509-strict"
    scenario = json.loads((d / "scenario.json").read_text())
    python_said = scenario["connections"][1]["x509_strict_status"]
    p = run("read", "--json", "--ca", d / "ca.pem", d / "capture.pcap", check_rc=0)
    checks = [json.loads(x)["certificate_checks"]["server"] for x in p.stdout.splitlines()]
    assert [c["status"] for c in checks] == ["ok", "ok"]
    for c in checks:
        strict = [f for f in c["findings"] if f["code"] == "x509_strict_violation"]
        assert strict and python_said in strict[0]["message"] and "Python 3.13" in strict[0]["message"]
    p = run("read", "--json", "--x509-strict", "--ca", d / "ca.pem", d / "capture.pcap", check_rc=1)
    reports = [json.loads(x) for x in p.stdout.splitlines()]
    assert [r["certificate_checks"]["server"]["openssl_status"] for r in reports] == [python_said, python_said]
    # the second connection is the one the strict client refused; its alert finding points at the cause
    assert [a["description"] for a in reports[1]["alerts"]] == ["certificate_unknown"]
    p = run("read", "--json", "--ca", d / "ca.pem", d / "capture.pcap", check_rc=0)
    alert = next(f for f in json.loads(p.stdout.splitlines()[1])["findings"] if f["code"] == "alert_certificate_unknown")
    assert "-x509_strict" in alert["message"] and "Python 3.13" in alert["message"]


def test_revoked_ocsp_staple_names_the_cause():
    """openssl verify accepts the chain (it does not read OCSP); the staple says revoked: the summary
    and the tree name the cause instead of OpenSSL's "ok"."""
    from conftest import CAPTURES
    d = CAPTURES / "17-ocsp-stapling"
    p = run("read", "--summary", "--ca", d / "ca.pem", d / "capture.pcap", check_rc=1)
    lines = p.stdout.splitlines()
    assert [("FAILED(ocsp_revoked)" in ln) for ln in lines] == [False, False, True]
    p = run("read", "--ca", d / "ca.pem", "--conn", "3", d / "capture.pcap", check_rc=1)
    assert "✘ server chain: ocsp_revoked — the stapled OCSP response says" in p.stdout

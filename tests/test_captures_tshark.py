"""The committed captures/ against the oracle: tshark must see what each scenario.json claims.

This validates scenario.json itself (version, suite, SNI, certificate counts, alerts, HRR,
resumption, STARTTLS prefix, with and without keylog.txt), so that tlsscope's own scenario tests
compare against facts, not against the generator's hopes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import CAPTURES, need_tool

sys.path.insert(0, str(CAPTURES))
from gen.oracle import compare, decode_as  # noqa: E402

SCENARIO_DIRS = sorted(p.parent for p in CAPTURES.glob("*/scenario.json"))
EXPECTED = ["01-classic-sha1-mtls12", "02-modern-mtls13", "03-nginx-mtls", "04-server-cert-rejected",
            "05-revoked-client-cert", "06-hello-retry-request", "07-resumption", "08-starttls", "09-legacy",
            "10-chain-ipv6", "11-stacks", "12-renegotiation", "13-dtls", "14-quic",
            "15-quic-early-data", "16-python-x509-strict",
            "17-ocsp-stapling"]
REQUIRED_KEYS = {"name", "description", "capture", "keylog", "ca", "crl", "rsa_key", "notes", "connections"}
CONNECTION_KEYS = {"sni", "client_port", "version", "cipher_suite", "server_certificates", "client_certificates",
                   "client_certificate_requested", "alerts", "resumed", "hello_retry_request", "starttls",
                   "expected_verdict", "expected_openssl_status", "findings"}
VERDICTS = {"ok", "failed", "not_visible", "absent"}


def load(directory):
    return json.loads((directory / "scenario.json").read_text())


def test_every_scenario_is_committed():
    assert [d.name for d in SCENARIO_DIRS] == EXPECTED


@pytest.mark.parametrize("directory", SCENARIO_DIRS, ids=lambda d: d.name)
def test_scenario_json_schema_and_files(directory):
    s = load(directory)
    assert REQUIRED_KEYS <= s.keys()
    assert s["name"] == directory.name
    for name in [s["capture"], *s["ca"], *s["crl"], *filter(None, [s["keylog"], s["rsa_key"]])]:
        assert (directory / name).is_file(), name
    assert 1_000 < (directory / s["capture"]).stat().st_size < 400_000
    assert 1 <= len(s["connections"]) <= 6
    for c in s["connections"]:
        assert CONNECTION_KEYS <= c.keys()
        # null: refused before any ServerHello (14-quic)
        assert c["version"] in {"TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3", "DTLS 1.0", "DTLS 1.2", None}
        assert isinstance(c["client_port"], int)
        assert set(c["expected_verdict"]) == {"server", "client"}
        assert set(c["expected_verdict"].values()) <= VERDICTS
        for a in c["alerts"]:
            assert a["from"] in ("client", "server")
            assert (a["description"] is None) == a["encrypted"]
        for side in ("server", "client"):
            cert = c.get(f"{side}_cert_file")
            if cert:
                assert (directory / cert).is_file()


@pytest.mark.parametrize("directory", SCENARIO_DIRS, ids=lambda d: d.name)
def test_scenario_json_agrees_with_tshark(directory):
    need_tool("tshark")
    assert compare(directory, load(directory)) == []


@pytest.mark.parametrize("directory", SCENARIO_DIRS, ids=lambda d: d.name)
def test_openssl_still_gives_the_recorded_status(directory):
    """The committed certificates still verify (or fail) as recorded: nothing has expired since."""
    need_tool("openssl")
    from make_captures import openssl_status
    s = load(directory)
    for c in s["connections"]:
        for side in ("server", "client"):
            cert = c.get(f"{side}_cert_file")
            chain = c.get("chain_file") if side == "server" else None
            purpose, host = ("sslserver", c["sni"]) if side == "server" else ("sslclient", None)
            assert openssl_status(directory, cert, s["ca"], s["crl"], chain, purpose, host) == \
                c["expected_openssl_status"][side]


def test_rsa_key_alone_decrypts_only_the_rsa_key_exchange():
    need_tool("tshark")
    directory = CAPTURES / "09-legacy"
    s = load(directory)
    rsa = [i for i, c in enumerate(s["connections"]) if c["cipher_suite"].startswith("TLS_RSA_")]
    assert rsa == [2]
    out = subprocess.run(
        ["tshark", "-n", "-r", str(directory / s["capture"]), *decode_as(s),
         "-o", f'uat:rsa_keys:"{directory / s["rsa_key"]}",""', "-Y", "data", "-T", "fields",
         "-e", "tcp.stream", "-e", "data.data"], capture_output=True, timeout=60, check=True).stdout.decode()
    streams = {line.split("\t")[0] for line in out.splitlines() if "68656c6c6f20746c7373636f7065" in line}
    assert streams == {"2"}   # "hello tlsscope" visible in the RSA connection only


def test_chain_scenario_spans_records_and_segments():
    need_tool("tshark")
    directory = CAPTURES / "10-chain-ipv6"
    s = load(directory)
    port = s["connections"][0]["server_port"]
    out = subprocess.run(
        ["tshark", "-n", "-r", str(directory / s["capture"]), *decode_as(s),
         "-Y", f"tcp.stream==0 && tcp.srcport=={port} && tcp.len>0", "-T", "fields", "-e", "tcp.len",
         "-e", "tls.record.length"], capture_output=True, timeout=60, check=True).stdout.decode().splitlines()
    rows = [line.split("\t") for line in out]
    # a full-size (16384-byte) record that tshark could only reassemble from more than one TCP segment,
    # followed by a second record of the same Certificate message
    spanning = [i for i, row in enumerate(rows) if "16384" in row[1].split(",") and int(row[0]) < 16384 + 5]
    assert spanning, rows
    assert int(rows[spanning[0] + 1][1].split(",")[0]) > 1000
    assert s["connections"][1]["client_ip"] == "::1"

"""captures/make_captures.py still works: regenerate one cheap scenario end to end in a temp dir.

Real peers (openssl s_server/s_client) on 127.0.0.1, tcpdump on lo; then the new capture is read back
with tshark: it has packets, ClientHellos for the scenario's SNI, and the new scenario.json states
what actually happened (compared field by field, as for the committed captures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import CAPTURES, IN_CI, need_tool

sys.path.insert(0, str(CAPTURES))
from gen.capture import read_syns  # noqa: E402
from gen.oracle import compare, decode_as  # noqa: E402

NAME = "06-hello-retry-request"
FACTS = ("sni", "version", "cipher_suite", "server_certificates", "client_certificates",
         "client_certificate_requested", "resumed", "hello_retry_request", "starttls", "expected_verdict",
         "expected_openssl_status", "findings", "selected_group")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    for tool in ("tcpdump", "openssl", "tshark"):
        need_tool(tool)
    if os.geteuid() != 0:
        message = "capturing on lo with tcpdump needs root"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    out = tmp_path_factory.mktemp("captures")
    done = subprocess.run([sys.executable, str(CAPTURES / "make_captures.py"), "--only", NAME, "--out", str(out)],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
    return out / NAME


def test_generator_writes_every_file(regenerated):
    scenario = json.loads((regenerated / "scenario.json").read_text())
    assert scenario["name"] == NAME
    for name in ("capture.pcap", "keylog.txt", "ca.pem", "server.pem", "server.key"):
        assert (regenerated / name).stat().st_size > 0, name
    assert scenario["keylog"] == "keylog.txt"
    # both TLS 1.3 secrets of one connection made it into the key log
    keylog = (regenerated / "keylog.txt").read_text()
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in keylog and "SERVER_TRAFFIC_SECRET_0" in keylog


def test_capture_has_the_connection_and_client_hellos_for_the_sni(regenerated):
    scenario = json.loads((regenerated / "scenario.json").read_text())
    syns = read_syns(regenerated / "capture.pcap")
    assert [s.client_port for s in syns] == [c["client_port"] for c in scenario["connections"]]
    out = subprocess.run(
        ["tshark", "-n", "-r", str(regenerated / "capture.pcap"), *decode_as(scenario), "-Y", "tls.handshake.type==1",
         "-T", "fields", "-e", "tls.handshake.extensions_server_name"],
        capture_output=True, timeout=60, check=True).stdout.decode().split()
    assert out == ["hrr.tlsscope.test", "hrr.tlsscope.test"]   # the first ClientHello and the one after HRR
    frames = subprocess.run(["tshark", "-n", "-r", str(regenerated / "capture.pcap")], capture_output=True,
                            timeout=60, check=True).stdout.decode().splitlines()
    assert len(frames) >= 10


def test_new_scenario_json_matches_what_happened(regenerated):
    scenario = json.loads((regenerated / "scenario.json").read_text())
    # close_notify order is a race between the peers: compare alerts as multisets here
    assert compare(regenerated, scenario, alert_order=False) == []


def test_regenerated_scenario_states_the_same_facts_as_the_committed_one(regenerated):
    new = json.loads((regenerated / "scenario.json").read_text())
    old = json.loads((CAPTURES / NAME / "scenario.json").read_text())
    assert len(new["connections"]) == len(old["connections"])
    for n, o in zip(new["connections"], old["connections"]):
        assert {k: n.get(k) for k in FACTS} == {k: o.get(k) for k in FACTS}

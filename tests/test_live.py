"""`tlsscope live -i lo` against real peers: streamed reports, key log followed, -w re-read identically.

Needs root (capturing on lo). Outside root it is skipped with the reason; with CI=true it must run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import IN_CI, need_tool



def _need_root():
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("live capture test must run as root in CI")
        pytest.skip("live capture on lo needs root (or CAP_NET_RAW)")


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _finish(live: subprocess.Popen, server: subprocess.Popen) -> tuple[str, str]:
    """Wait for the live run to end by itself (--duration), stop the server; a clean exit expected."""
    try:
        stdout, stderr = live.communicate(timeout=60)
    finally:
        server.kill()
        if live.poll() is None:
            live.kill()
    assert live.returncode == 0, stderr
    assert "Traceback" not in stderr
    return stdout, stderr


def _pki(tmp: Path) -> dict:
    """CA, server and client certificates made with the openssl CLI (as users do)."""
    ossl = need_tool("openssl")

    def run(*args):
        subprocess.run([ossl, *args], check=True, capture_output=True, timeout=60, cwd=tmp)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "3650", "-subj", "/CN=Live Test CA")
    for name, eku in (("server", "serverAuth"), ("client", "clientAuth")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}.test")
        ext = tmp / f"{name}.ext"
        ext.write_text(f"subjectAltName=DNS:{name}.test\nextendedKeyUsage={eku}\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "3650", "-extfile", str(ext))
    return {k: tmp / f"{k}.pem" for k in ("ca", "server", "client")} | {"server_key": tmp / "server.key",
                                                                       "client_key": tmp / "client.key"}


def test_live_capture_mutual_tls(tmp_path: Path):
    _need_root()
    ossl = need_tool("openssl")
    need_tool("tcpdump")   # libpcap is installed with it
    pki = _pki(tmp_path)
    port = _free_port()
    server = subprocess.Popen([ossl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", pki["server"],
                               "-key", pki["server_key"], "-CAfile", pki["ca"], "-Verify", "1", "-www", "-quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    keylog = tmp_path / "keys.txt"
    out_pcap = tmp_path / "live.pcapng"
    live = subprocess.Popen([sys.executable, "-m", "tlsscope", "live", "-i", "lo", "-f", f"tcp port {port}",
                             "--duration", "9", "--json", "--keylog", str(keylog), "--ca", str(pki["ca"]),
                             "-w", str(out_pcap)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)   # the sniffer is listening
        for version, with_keys in (("-tls1_2", False), ("-tls1_3", True)):
            cmd = [ossl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "server.test", version,
                   "-cert", pki["client"], "-key", pki["client_key"], "-CAfile", pki["ca"], "-ign_eof"]
            if with_keys:
                cmd += ["-keylogfile", str(keylog)]
            subprocess.run(cmd, input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=15)
    finally:
        stdout, stderr = _finish(live, server)
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    handshakes = [e for e in events if e["event"] == "handshake"]
    ends = [e for e in events if e["event"] == "end"]
    assert len(handshakes) == 2 and len(ends) == 2, stdout
    # streamed at handshake completion: the first handshake event precedes the first end event
    assert events[0]["event"] == "handshake"
    by_version = {e["version"]["name"]: e for e in ends}
    t12, t13 = by_version["TLS 1.2"], by_version["TLS 1.3"]
    for e in (t12, t13):
        assert e["sni"] == "server.test"
        assert e["cipher_suite"]["name"]
        assert e["client_certificate_requested"] is True
    # openssl appends the CA from -CAfile to the chain it presents, on both sides
    assert [c["subject"] for c in t12["certificates"]["server"]] == ["CN=server.test", "CN=Live Test CA"]
    assert [c["subject"] for c in t12["certificates"]["client"]] == ["CN=client.test", "CN=Live Test CA"]
    assert t12["certificate_checks"]["server"]["status"] == "ok"
    assert t12["certificate_checks"]["client"]["status"] == "ok"
    # TLS 1.3 with the followed key log: certificates decrypted and checked
    assert t13["certificates"]["server"][0]["subject"] == "CN=server.test"
    assert t13["certificates"]["client"][0]["subject"] == "CN=client.test"
    assert t13["certificate_checks"]["server"]["status"] == "ok"
    assert t13["certificate_checks"]["client"]["status"] == "ok"
    assert t13["decryption"] and t13["decryption"]["records_decrypted"] > 0
    assert "dropped" in stderr and "2 TLS connections" in stderr
    # -w: the written capture, read back, gives the same reports (keys from its DSB)
    reread = subprocess.run([sys.executable, "-m", "tlsscope", "read", "--json", "--ca", str(pki["ca"]),
                             str(out_pcap)], capture_output=True, text=True, timeout=60)
    assert reread.returncode == 0, reread.stderr
    again = {json.loads(x)["version"]["name"]: json.loads(x) for x in reread.stdout.splitlines()}
    for name, live_report in by_version.items():
        file_report = again[name]
        for key in ("sni", "cipher_suite", "certificates", "certificate_checks", "alerts", "ja3", "ja4", "history"):
            assert file_report[key] == live_report[key], (name, key)


def _udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_live_capture_dtls(tmp_path: Path):
    """DTLS over UDP, live: the Datagram items of the capture edge reach the same pipeline (the
    filter must let UDP in); the followed key log opens the records."""
    _need_root()
    ossl = need_tool("openssl")
    need_tool("tcpdump")
    pki = _pki(tmp_path)
    port = _udp_port()
    server = subprocess.Popen([ossl, "s_server", "-dtls1_2", "-accept", f"127.0.0.1:{port}", "-cert", pki["server"],
                               "-key", pki["server_key"], "-quiet"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    keylog = tmp_path / "keys.txt"
    live = subprocess.Popen([sys.executable, "-m", "tlsscope", "live", "-i", "lo", "-f", f"udp port {port}",
                             "--duration", "7", "--json", "--keylog", str(keylog), "--ca", str(pki["ca"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)   # the sniffer is listening
        subprocess.run([ossl, "s_client", "-dtls1_2", "-connect", f"127.0.0.1:{port}", "-servername", "server.test",
                        "-CAfile", pki["ca"], "-keylogfile", str(keylog)],
                       input=b"hello over dtls\n", capture_output=True, timeout=15)
    finally:
        stdout, stderr = _finish(live, server)
    ends = [json.loads(line) for line in stdout.splitlines() if line.strip() and '"end"' in line]
    ends = [e for e in ends if e["event"] == "end"]
    assert len(ends) == 1, stdout
    e = ends[0]
    assert e["transport"] == "dtls" and e["version"]["name"] == "DTLS 1.2" and e["sni"] == "server.test"
    assert [c["subject"] for c in e["certificates"]["server"]] == ["CN=server.test"]
    assert e["certificate_checks"]["server"]["status"] == "ok"
    assert e["decryption"]["records_decrypted"] > 0 and e["decryption"]["failures"] == 0
    assert e["application_data"]["client"]["plaintext_bytes"] == len(b"hello over dtls\n")


def test_live_errors_are_one_line():
    p = subprocess.run([sys.executable, "-m", "tlsscope", "live", "-i", "nosuch0", "--duration", "1"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "unknown interface" in p.stderr and "lo" in p.stderr
    assert "Traceback" not in p.stderr


def test_live_ctrl_c_stops_cleanly(tmp_path: Path):
    """SIGINT: buffers flushed, the unfinished connection reported as incomplete, -w file readable."""
    _need_root()
    import signal
    port = _free_port()
    out_pcap = tmp_path / "partial.pcapng"
    live = subprocess.Popen([sys.executable, "-m", "tlsscope", "live", "-i", "lo", "-f", f"tcp port {port}",
                             "--json", "-w", str(out_pcap)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    srv = socket.socket()
    try:
        srv.bind(("127.0.0.1", port))
        srv.listen(1)
        time.sleep(2.0)
        cli = socket.create_connection(("127.0.0.1", port), timeout=5)
        conn, _ = srv.accept()
        # a ClientHello that is never answered: the handshake stays incomplete
        body = b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + b"\x00\x00"
        hs = b"\x01" + len(body).to_bytes(3, "big") + body
        cli.sendall(b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs)
        time.sleep(1.5)
        live.send_signal(signal.SIGINT)
        stdout, stderr = live.communicate(timeout=30)
        cli.close()
        conn.close()
    finally:
        srv.close()
        if live.poll() is None:
            live.kill()
    assert live.returncode == 0, stderr
    assert "Traceback" not in stderr and "1 incomplete" in stderr
    ends = [json.loads(x) for x in stdout.splitlines() if x.strip()]
    assert len(ends) == 1 and ends[0]["event"] == "end" and ends[0]["handshake_complete"] is False
    assert ends[0]["client_hello"]["cipher_suites"] == [0x1301]
    reread = subprocess.run([sys.executable, "-m", "tlsscope", "read", "--json", str(out_pcap)],
                            capture_output=True, text=True, timeout=60)
    assert reread.returncode == 0 and json.loads(reread.stdout)["client_hello"]["cipher_suites"] == [0x1301]

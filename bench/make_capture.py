#!/usr/bin/env python3
"""Make the benchmark capture: N real TLS connections on 127.0.0.1, captured by tcpdump.

One Python process runs two TLS servers (Python ``ssl``; one of them requires a
client certificate) and a fixed number of client worker threads. What each
connection does is decided by a seeded RNG from its index alone, so the same
``--connections``/``--seed`` give the same mix every time (the bytes differ:
keys and randoms are fresh):

* TLS 1.3 or TLS 1.2 (and for 1.2 one of several ECDHE suites, one of them CBC);
* mutual TLS on a share of the connections (the server requires a certificate);
* resumption on a share (the session of the worker's previous connection with
  the same client configuration: TLS 1.3 PSK from a ticket, TLS 1.2 ticket);
* 2-8 KB of application data each way, then close_notify from both sides;
* a small share of plaintext TCP connections on a third port (not TLS).

Output in ``--out`` (default bench/out/): ``bench-<N>.pcap``, ``bench-<N>.keys``
(SSLKEYLOGFILE format) and ``bench-<N>.json`` (parameters and counts).
Needs tcpdump and the right to capture on ``lo`` (root).
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOCK_TIMEOUT = 15.0
TLS12_CIPHERS = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                 "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-SHA256")


# -- PKI (made fresh for each run with cryptography) ---------------------------------------------
def make_pki(d: Path) -> dict:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlsscope bench"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(name("bench root CA")).issuer_name(name("bench root CA"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn, key, serial, server):
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
             .public_key(key.public_key()).serial_number(serial)
             .not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=90))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                   else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("*.bench.test"),
                                                             x509.DNSName("bench.test")]), critical=False)
        return b.sign(ca_key, hashes.SHA256())

    srv_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cli_key = ec.generate_private_key(ec.SECP256R1())
    files = {"ca": d / "ca.pem", "server_cert": d / "server.pem", "server_key": d / "server.key",
             "client_cert": d / "client.pem", "client_key": d / "client.key"}
    pem = serialization.Encoding.PEM
    files["ca"].write_bytes(ca.public_bytes(pem))
    files["server_cert"].write_bytes(leaf("server.bench.test", srv_key, 2, True).public_bytes(pem)
                                     + ca.public_bytes(pem))
    files["server_key"].write_bytes(pem_key(srv_key))
    files["client_cert"].write_bytes(leaf("bench client", cli_key, 3, False).public_bytes(pem))
    files["client_key"].write_bytes(pem_key(cli_key))
    return files


# -- servers ------------------------------------------------------------------------------------
def _recv_exact(sock, n: int) -> bytes:
    parts, have = [], 0
    while have < n:
        b = sock.recv(min(65536, n - have))
        if not b:
            break
        parts.append(b)
        have += len(b)
    return b"".join(parts)


class _TlsHandler(socketserver.BaseRequestHandler):
    def handle(self):
        raw = self.request
        raw.settimeout(SOCK_TIMEOUT)
        try:
            s = self.server.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            head = _recv_exact(s, 8)
            if len(head) < 8:
                return
            req_len, resp_len = int.from_bytes(head[:4], "big"), int.from_bytes(head[4:], "big")
            _recv_exact(s, req_len)
            s.sendall(_payload(resp_len))
            # wait for the client's close_notify, then answer it
            while s.recv(4096):
                pass
            s.unwrap()
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass


class _PlainHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(SOCK_TIMEOUT)
        try:
            head = _recv_exact(s, 8)
            if len(head) == 8:
                _recv_exact(s, int.from_bytes(head[:4], "big"))
                s.sendall(_payload(int.from_bytes(head[4:], "big")))
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def _payload(n: int) -> bytes:
    unit = b"GET /bench HTTP/1.1\r\nHost: bench.test\r\n"
    return (unit * (n // len(unit) + 1))[:n]


def server_context(pki: dict, require_client_cert: bool, keylog: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki["server_cert"], pki["server_key"])
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki["ca"])
    ctx.keylog_filename = str(keylog)
    return ctx


def client_context(pki: dict, version: str, cipher: str | None, mtls: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki["ca"])
    if version == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(cipher)
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if mtls:
        ctx.load_cert_chain(pki["client_cert"], pki["client_key"])
    return ctx


# -- the plan: what connection i does (from the seed and i only) ---------------------------------
def plan(i: int, seed: int, shares: dict) -> dict:
    r = random.Random(f"{seed}:{i}")
    if r.random() < shares["plain"]:
        return {"kind": "plain", "req": r.randint(2048, 8192), "resp": r.randint(2048, 8192)}
    version = "1.3" if r.random() < shares["tls13"] else "1.2"
    cipher = r.choice(TLS12_CIPHERS) if version == "1.2" else None
    return {"kind": "tls", "version": version, "cipher": cipher, "mtls": r.random() < shares["mtls"],
            "resume": r.random() < shares["resume"], "sni": f"svc{r.randint(1, 50)}.bench.test",
            "req": r.randint(2048, 8192), "resp": r.randint(2048, 8192)}


def run_client(p: dict, ports: dict, ctxs: dict, sessions: dict, counts: dict) -> None:
    if p["kind"] == "plain":
        with socket.create_connection(("127.0.0.1", ports["plain"]), timeout=SOCK_TIMEOUT) as s:
            s.sendall(p["req"].to_bytes(4, "big") + p["resp"].to_bytes(4, "big") + _payload(p["req"]))
            _recv_exact(s, p["resp"])
        counts["plain"] += 1
        return
    key = (p["version"], p["cipher"], p["mtls"])
    ctx = ctxs[key]
    session = sessions.get(key) if p["resume"] else None
    raw = socket.create_connection(("127.0.0.1", ports["mtls" if p["mtls"] else "tls"]), timeout=SOCK_TIMEOUT)
    try:
        s = ctx.wrap_socket(raw, server_hostname=p["sni"], session=session)
        s.sendall(p["req"].to_bytes(4, "big") + p["resp"].to_bytes(4, "big") + _payload(p["req"]))
        _recv_exact(s, p["resp"])
        if s.session_reused:
            counts["resumed"] += 1
        sessions[key] = s.session            # TLS 1.3: the ticket arrived with the data
        s.unwrap()                           # close_notify both ways
        s.close()
        counts["tls"] += 1
        counts["tls13" if p["version"] == "1.3" else "tls12"] += 1
        counts["mtls"] += p["mtls"]
    except (OSError, ssl.SSLError) as e:
        counts["errors"] += 1
        if counts["errors"] <= 5:
            print(f"make_capture: connection failed: {e!r}", file=sys.stderr)
    finally:
        raw.close()


def generate(n: int, out: Path, *, seed: int = 1, workers: int = 8, shares: dict | None = None,
             name: str | None = None) -> dict:
    shares = {"plain": 0.03, "tls13": 0.6, "mtls": 0.25, "resume": 0.3, **(shares or {})}
    if shutil.which("tcpdump") is None:
        raise SystemExit("make_capture: tcpdump is not installed")
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (name or f"bench-{n}")
    pcap, keys, meta = stem.with_suffix(".pcap"), stem.with_suffix(".keys"), stem.with_suffix(".json")
    tmp = Path(tempfile.mkdtemp(prefix="tlsscope-bench-"))
    t0 = time.monotonic()
    try:
        pki = make_pki(tmp)
        # one key log per server context (two BIOs on one file could interleave), joined at the end
        kl = [tmp / "keys-tls.txt", tmp / "keys-mtls.txt"]
        servers = {
            "tls": _Server(("127.0.0.1", 0), _TlsHandler),
            "mtls": _Server(("127.0.0.1", 0), _TlsHandler),
            "plain": _Server(("127.0.0.1", 0), _PlainHandler),
        }
        servers["tls"].ctx = server_context(pki, False, kl[0])
        servers["mtls"].ctx = server_context(pki, True, kl[1])
        ports = {k: s.server_address[1] for k, s in servers.items()}
        for s in servers.values():
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        bpf = " or ".join(f"tcp port {p}" for p in ports.values())
        dump = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "--immediate-mode", "-U", "-B", "65536",
                                 "-s", "0", "-w", str(pcap), bpf],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        errlines: list[str] = []
        try:
            deadline = time.monotonic() + 15
            while True:                   # peers only once tcpdump listens
                line = dump.stderr.readline()
                if "listening on" in line:
                    break
                if not line and dump.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"make_capture: tcpdump did not start: {line.strip()}")
            threading.Thread(target=lambda: errlines.extend(dump.stderr), daemon=True).start()
            ctxs = {}
            for v, c in [("1.3", None)] + [("1.2", c) for c in TLS12_CIPHERS]:
                for m in (False, True):
                    ctxs[(v, c, m)] = client_context(pki, v, c, m)
            counts = {k: 0 for k in ("tls", "tls12", "tls13", "mtls", "resumed", "plain", "errors")}
            lock = threading.Lock()

            def worker(w: int):
                sessions: dict = {}
                mine = {k: 0 for k in counts}
                for i in range(w, n, workers):
                    run_client(plan(i, seed, shares), ports, ctxs, sessions, mine)
                with lock:
                    for k, v in mine.items():
                        counts[k] += v

            threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=max(600.0, n * 0.05))
            time.sleep(2.0)               # libpcap hands packets over in blocks: let the last ones out
        finally:
            dump.send_signal(signal.SIGINT)
            try:
                dump.wait(timeout=15)
            except subprocess.TimeoutExpired:
                dump.kill()
                dump.wait()
            for s in servers.values():
                s.shutdown()
                s.server_close()
        time.sleep(0.1)
        stats = [l.strip() for l in errlines if "packets" in l]
        with open(keys, "wb") as fh:
            for f in kl:
                if f.exists():
                    fh.write(f.read_bytes())
        shutil.copy(pki["ca"], stem.with_suffix(".ca.pem"))
        info = {"connections": n, "seed": seed, "workers": workers, "shares": shares, "ports": ports,
                "counts": counts, "tcpdump": stats, "pcap": str(pcap), "keylog": str(keys),
                "bytes": pcap.stat().st_size, "seconds": round(time.monotonic() - t0, 1)}
        meta.write_text(json.dumps(info, indent=2) + "\n")
        return info
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--connections", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=8, help="client threads (connections in flight)")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--name", help="file stem (default bench-N)")
    args = ap.parse_args(argv)
    info = generate(args.connections, args.out, seed=args.seed, workers=args.workers, name=args.name)
    print(json.dumps(info, indent=2))
    dropped = [s for s in info["tcpdump"] if "dropped by kernel" in s and not s.startswith("0 ")]
    if info["counts"]["errors"] or dropped:
        print(f"make_capture: WARNING: {info['counts']['errors']} failed connections; {dropped}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The TLS peers: openssl s_server/s_client, curl, gnutls-cli, nginx and the Python ssl peers."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .proc import Background, ensure_free, run, wait_listening

PYPEERS = Path(__file__).with_name("pypeers.py")
QUICPEERS = Path(__file__).with_name("quicpeers.py")
CLIENT_TIMEOUT = 15.0


def _host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def s_server(cwd: Path, port: int, cert: str, key: str, *, ca: str | None = None, verify: bool = False,
             crl: str | None = None, cipher: str | None = None, extra: tuple[str, ...] = (),
             host: str = "127.0.0.1", mode: str = "-rev", udp: bool = False) -> Background:
    """`openssl s_server`; verify=True requires a client certificate and aborts on verification errors;
    udp=True for DTLS (give -dtls1_2 or similar in ``extra``)."""
    cmd = ["openssl", "s_server", "-accept", _host(host, port), "-cert", cert, "-key", key]
    if ca:
        cmd += ["-CAfile", ca]
    if verify:
        cmd += ["-Verify", "1", "-verify_return_error"]
    if crl:
        cmd += ["-CRL", crl, "-crl_check"]
    if cipher:
        cmd += ["-cipher", cipher]
    if mode:
        cmd.append(mode)
    cmd += list(extra)
    ensure_free(port, udp=udp)
    return _started(Background(cmd, cwd, stdin=True), port, udp=udp)


def _started(srv: Background, port: int, ready: bytes | None = None, udp: bool = False) -> Background:
    """Wait until the server listens; kill it if it does not."""
    try:
        if ready:
            srv.wait_output(ready, 10.0)
        wait_listening(port, server=srv, udp=udp)
    except BaseException:
        srv.stop()
        raise
    return srv


@dataclass
class ClientResult:
    returncode: int
    output: str

    @property
    def verify_ok(self) -> bool:
        return "Verify return code: 0 (ok)" in self.output


def s_client(cwd: Path, port: int, *, servername: str | None, keylog: str | None = "keylog.txt", ca: str | None = None,
             cert: str | None = None, key: str | None = None, verify: bool = True, cipher: str | None = None,
             extra: tuple[str, ...] = (), host: str = "127.0.0.1", send: bytes = b"hello tlsscope\n",
             linger: float = 0.5, commands: tuple[bytes, ...] = ()) -> ClientResult:
    """`openssl s_client`: handshake, one line of data, optional s_client commands, then Q (close_notify)."""
    cmd = ["openssl", "s_client", "-connect", _host(host, port)] + (["-keylogfile", keylog] if keylog else [])
    cmd += ["-servername", servername] if servername else ["-noservername"]
    if ca:
        cmd += ["-CAfile", ca]
    if verify:
        cmd += ["-verify_return_error"]
    if cert:
        cmd += ["-cert", cert, "-key", key]
    if cipher:
        cmd += ["-cipher", cipher]
    cmd += list(extra)
    cl = Background(cmd, cwd, stdin=True)
    try:
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while b"Verify return code" not in cl.stdout and cl.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if cl.proc.poll() is None:
            try:
                for line in (send, *commands):
                    if line:
                        cl.write(line)
                    time.sleep(linger)
                cl.write(b"Q\n")
            except OSError:   # the client gave up by itself (failed handshake)
                pass
        cl.wait(CLIENT_TIMEOUT)
    finally:
        cl.stop()
    return ClientResult(cl.proc.returncode, cl.text())


def curl(cwd: Path, url: str, *, resolve: str | None = None, cacert: str | None = None, cert: str | None = None,
         key: str | None = None, keylog: str = "keylog.txt", extra: tuple[str, ...] = ()) -> ClientResult:
    """curl with SSLKEYLOGFILE; output is `HTTP <code>` plus stderr and the body."""
    cmd = ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\nHTTP %{http_code}\n"]
    if resolve:
        cmd += ["--resolve", resolve]
    if cacert:
        cmd += ["--cacert", cacert]
    if cert:
        cmd += ["--cert", cert, "--key", key]
    cmd += list(extra) + [url]
    done = run(cmd, cwd, env={"SSLKEYLOGFILE": str(cwd / keylog)}, check=False, timeout=CLIENT_TIMEOUT)
    return ClientResult(done.returncode, done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace"))


def gnutls_cli(cwd: Path, port: int, *, sni: str, ca: str, keylog: str = "keylog.txt",
               host: str = "127.0.0.1", extra: tuple[str, ...] = (), send: bytes = b"GET / HTTP/1.0\r\n\r\n",
               linger: float = 0.7) -> ClientResult:
    cmd = ["gnutls-cli", "-p", str(port), "--x509cafile", ca, "--sni-hostname", sni, "--verify-hostname", sni,
           *extra, host]
    cl = Background(cmd, cwd, stdin=True, env={"SSLKEYLOGFILE": str(cwd / keylog)})
    try:
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while b"Handshake was completed" not in cl.stdout + cl.stderr and cl.proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        if cl.proc.poll() is None:
            try:
                cl.write(send)
                time.sleep(linger)
                cl.proc.stdin.close()   # EOF: gnutls-cli says bye (close_notify)
            except OSError:
                pass
        cl.wait(CLIENT_TIMEOUT)
    finally:
        cl.stop()
    return ClientResult(cl.proc.returncode, cl.text())


def py_server(cwd: Path, mode: str, port: int, *, cert: str, key: str, ca: str | None = None,
              require_client_cert: bool = False, version: str | None = None, host: str = "127.0.0.1",
              keylog: str | None = None) -> Background:
    cmd = [sys.executable, str(PYPEERS), mode, "--host", host, "--port", str(port), "--cert", cert, "--key", key,
           "--lifetime", "60"]
    if ca:
        cmd += ["--ca", ca]
    if require_client_cert:
        cmd.append("--require-client-cert")
    if version:
        cmd += ["--version", version]
    if keylog:
        cmd += ["--keylog", keylog]
    ensure_free(port)
    return _started(Background(cmd, cwd), port, b"READY")


def py_client(cwd: Path, port: int, *, sni: str, ca: str, cert: str | None = None, key: str | None = None,
              keylog: str = "keylog.txt", host: str = "127.0.0.1", version: str | None = None,
              lineswitch: bool = False, x509_strict: bool = False) -> ClientResult:
    cmd = [sys.executable, str(PYPEERS), "client", "--host", host, "--port", str(port), "--sni", sni, "--ca", ca,
           "--keylog", keylog]
    if cert:
        cmd += ["--cert", cert, "--key", key]
    if version:
        cmd += ["--version", version]
    if lineswitch:
        cmd.append("--lineswitch")
    if x509_strict:
        cmd.append("--x509-strict")
    done = run(cmd, cwd, check=False, timeout=CLIENT_TIMEOUT)
    return ClientResult(done.returncode, done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace"))


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 16; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_protocols TLSv1.2;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384;
        ssl_prefer_server_ciphers on;
        ssl_session_tickets off;
        ssl_session_cache off;
        location / {{
            return 200 "hello $ssl_client_s_dn verify=$ssl_client_verify\\n";
        }}
    }}
}}
"""


def nginx(run_dir: Path, port: int, *, name: str, cert: Path, key: Path, ca: Path) -> Background:
    """nginx under a private prefix (pid, logs, temp in run_dir), 127.0.0.1 only, mutual TLS 1.2."""
    (run_dir / "tmp").mkdir(parents=True, exist_ok=True)
    conf = run_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=run_dir, port=port, name=name, cert=cert.resolve(), key=key.resolve(),
                                      ca=ca.resolve()))
    run(["nginx", "-t", "-p", str(run_dir), "-c", str(conf)], run_dir)
    ensure_free(port)
    return _started(Background(["nginx", "-p", str(run_dir), "-c", str(conf)], run_dir), port)


def quic_server(cwd: Path, port: int, cert: str, key: str, *, alpn: str = "tlsscope", retry: bool = False,
                keylog: str = "keylog.txt", host: str = "127.0.0.1") -> Background:
    """An aioquic echo server (captures/gen/quicpeers.py)."""
    cmd = [sys.executable, str(QUICPEERS), "server", "--host", host, "--port", str(port), "--cert", cert,
           "--key", key, "--alpn", alpn, "--keylog", keylog, "--lifetime", "60"] + (["--retry"] if retry else [])
    ensure_free(port, udp=True)
    return _started(Background(cmd, cwd), port, ready=b"READY", udp=True)


def quic_client(cwd: Path, port: int, *, sni: str, ca: str, alpn: str = "tlsscope", keylog: str = "keylog.txt",
                host: str = "127.0.0.1", send: str = "hello over quic\n", early_data: bool = False) -> ClientResult:
    """One aioquic connection: a line sent on a stream, the echo read back (ECHO ... or CLOSED ...).
    ``early_data``: two connections, the second resuming the first's session with the line as 0-RTT data."""
    cmd = [sys.executable, str(QUICPEERS), "client", "--host", host, "--port", str(port), "--sni", sni,
           "--ca", ca, "--alpn", alpn, "--keylog", keylog, "--send", send] + (["--early-data"] if early_data else [])
    done = run(cmd, cwd, check=False, timeout=CLIENT_TIMEOUT)
    return ClientResult(done.returncode, done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace"))

"""Python `ssl` peers for the generator, run as separate processes (killable, time-bounded).

Servers: `https` (one line of HTTP), `lineswitch` (Qt startServerEncryption(): a plaintext line
exchange, then TLS on the same socket), `smtp` (just enough SMTP for STARTTLS).
Client: `client` (plain TLS, or `--lineswitch`).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import time

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def server_context(a) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.ca:
        ctx.load_verify_locations(a.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED if a.require_client_cert else ssl.CERT_OPTIONAL
    if a.version:
        ctx.minimum_version = ctx.maximum_version = VERSIONS[a.version]
    if a.keylog:
        ctx.keylog_filename = a.keylog
    return ctx


def listen(a) -> socket.socket:
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.host, a.port))
    srv.listen(8)
    srv.settimeout(a.lifetime)
    print("READY", flush=True)
    return srv


def read_line(sock, limit: int = 1024) -> bytes:
    buf = b""
    while not buf.endswith(b"\n") and len(buf) < limit:
        chunk = sock.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def serve(a, handle) -> None:
    srv = listen(a)
    ctx = server_context(a)
    deadline = time.monotonic() + a.lifetime
    while time.monotonic() < deadline:
        try:
            conn, _ = srv.accept()
        except (socket.timeout, TimeoutError):
            break
        conn.settimeout(5)
        try:
            handle(conn, ctx)
        except (OSError, ssl.SSLError) as exc:
            print("connection error:", exc, flush=True)
        finally:
            conn.close()


def handle_https(conn, ctx) -> None:
    tls = ctx.wrap_socket(conn, server_side=True)
    request = read_line(tls)
    print("request:", request, flush=True)
    body = b"hello from python ssl\n"
    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    tls.unwrap()


def handle_lineswitch(conn, ctx) -> None:
    conn.sendall(b"HELLO tlsscope-lineswitch 1.0\r\n")
    line = read_line(conn)
    if line.strip() != b"STARTTLS":
        conn.sendall(b"ERR expected STARTTLS\r\n")
        return
    conn.sendall(b"OK switching to TLS\r\n")
    tls = ctx.wrap_socket(conn, server_side=True)   # the startServerEncryption() moment
    line = read_line(tls)
    tls.sendall(b"ECHO " + line)
    tls.unwrap()


def handle_smtp(conn, ctx) -> None:
    f = conn
    f.sendall(b"220 mail.tlsscope.test ESMTP tiny\r\n")
    sock = conn
    tls = None
    while True:
        line = read_line(sock)
        if not line:
            return
        cmd = line.strip().upper()
        if cmd.startswith(b"EHLO"):
            sock.sendall(b"250-mail.tlsscope.test\r\n" + (b"" if tls else b"250-STARTTLS\r\n") + b"250 8BITMIME\r\n")
        elif cmd == b"STARTTLS" and tls is None:
            sock.sendall(b"220 2.0.0 Ready to start TLS\r\n")
            tls = sock = ctx.wrap_socket(conn, server_side=True)
        elif cmd == b"QUIT":
            sock.sendall(b"221 2.0.0 Bye\r\n")
            if tls:
                try:
                    tls.unwrap()
                except (OSError, ssl.SSLError):
                    pass
            return
        else:
            sock.sendall(b"250 2.0.0 OK\r\n")


def client(a) -> int:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    if a.version:
        ctx.minimum_version = ctx.maximum_version = VERSIONS[a.version]
    if a.keylog:
        ctx.keylog_filename = a.keylog
    if a.x509_strict:               # what Python 3.13+ sets in ssl.create_default_context()
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect((a.host, a.port))
    if a.lineswitch:
        print("greeting:", read_line(sock), flush=True)
        sock.sendall(b"STARTTLS\r\n")
        print("reply:", read_line(sock), flush=True)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=a.sni)
    except ssl.SSLCertVerificationError as exc:
        print("VERIFY-FAILED:", exc.verify_message, flush=True)
        sock.close()
        return 1
    print("version:", tls.version(), "cipher:", tls.cipher()[0], flush=True)
    tls.sendall(b"GET / HTTP/1.0\r\n" if not a.lineswitch else b"ping over tls\r\n")
    reply = b""
    tls.settimeout(3)
    while b"\n" not in reply:   # one line is enough: every server here answers with at least one
        try:
            chunk = tls.recv(4096)
        except (OSError, ssl.SSLError):
            break
        if not chunk:
            break
        reply += chunk
    print("reply:", reply[:80], flush=True)
    try:
        tls.unwrap()   # close_notify, then wait for the server's
    except (OSError, ssl.SSLError):
        pass
    sock.close()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["https", "lineswitch", "smtp", "client"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--sni")
    p.add_argument("--keylog")
    p.add_argument("--version", choices=sorted(VERSIONS))
    p.add_argument("--require-client-cert", action="store_true")
    p.add_argument("--lineswitch", action="store_true")
    p.add_argument("--x509-strict", action="store_true")
    p.add_argument("--lifetime", type=float, default=60.0)
    a = p.parse_args(argv)
    if a.mode == "client":
        return client(a)
    serve(a, {"https": handle_https, "lineswitch": handle_lineswitch, "smtp": handle_smtp}[a.mode])
    return 0


if __name__ == "__main__":
    sys.exit(main())

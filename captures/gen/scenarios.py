"""The scenarios: each makes its PKI, runs real peers under tcpdump and says what must be seen.

A scenario function gets a `Ctx` and returns the scenario dict (see captures/README.md) whose
connections are listed in the order the clients ran; make_captures.py fills in the client ports
from the capture and the openssl verification status of each presented certificate.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from . import peers
from .capture import Tcpdump
from .pki import CA, bundle, classic_sha1_pki
from .proc import StepFailed

SECLEVEL0 = "@SECLEVEL=0"


@dataclass
class Ctx:
    out: Path          # the scenario directory: capture, keylog, PKI files, scenario.json
    work: Path         # scratch: CA databases, nginx prefix, saved sessions
    base_port: int
    ports: list[int] = field(default_factory=list)

    def port(self, i: int = 0) -> int:
        p = self.base_port + i
        if p not in self.ports:
            self.ports.append(p)
        return p

    def capture(self, ports: list[int], udp: bool = False) -> Tcpdump:
        return Tcpdump(self.out / "capture.pcap", ports, udp=udp)

    def keep(self, src: Path, name: str | None = None) -> str:
        """Copy a PKI file into the scenario directory; returns its name there."""
        name = name or src.name
        if src.resolve() != (self.out / name).resolve():
            shutil.copyfile(src, self.out / name)
        return name

    def server_ca(self, tag: str, cn: str, sni: str, *, sans: tuple[str, ...] = (), ca_kw: dict | None = None,
                  **issue_kw) -> CA:
        """A CA kept as ca.pem that issued server.pem/server.key for ``sni`` (and ``sans``)."""
        ca = CA(self.work, tag, cn, **(ca_kw or {}))
        self.keep(ca.cert, "ca.pem")
        ca.issue(self.out, "server", sni, sans=(sni, *sans), **issue_kw)
        return ca


def expect(ok: bool, what: str, result=None) -> None:
    if not ok:
        raise StepFailed(what + ("" if result is None else f"\n--- peer output ---\n{result.output[-3000:]}"))


def alert(side: str, description: str | None, *, encrypted: bool = False) -> dict:
    return {"from": side, "description": None if encrypted else description, "encrypted": encrypted,
            **({"decrypted_description": description} if encrypted and description else {})}


def conn(*, sni: str | None, version: str, suite: str | None, server_certificates: int | None,
         client_certificates: int | None, client_certificate_requested: bool, alerts=(),
         resumed: bool = False, hello_retry_request: bool = False, starttls: bool = False,
         findings=(), server_cert: str | None = None, client_cert: str | None = None,
         untrusted: str | None = None, decrypted: dict | None = None, **extra) -> dict:
    """One connection's expectations. server_cert/client_cert name the leaf files presented
    (None: none sent); make_captures.py turns them into verdicts with `openssl verify`."""
    return {"sni": sni, "client_port": None, "version": version, "cipher_suite": suite,
            "server_certificates": server_certificates, "client_certificates": client_certificates,
            "client_certificate_requested": client_certificate_requested, "alerts": list(alerts),
            "resumed": resumed, "hello_retry_request": hello_retry_request, "starttls": starttls,
            "expected_verdict": None, "expected_openssl_status": None, "findings": list(findings),
            "decrypted": decrypted or {}, "server_cert_file": server_cert, "client_cert_file": client_cert,
            "chain_file": untrusted, **extra}


def dec(server_certificates: int | None = None, client_certificates: int | None = None, alerts=(),
        **extra) -> dict:
    """What an observer with keylog.txt sees on top of the clear text (TLS 1.3 certificates, inner alerts)."""
    return {"server_certificates": server_certificates, "client_certificates": client_certificates,
            "alerts": [{"from": a[0], "description": a[1]} for a in alerts], **extra}


def close12() -> list[dict]:
    # a clean TLS 1.2 shutdown: both close_notify alerts, encrypted but visible as alert records
    return [alert("client", "close_notify", encrypted=True), alert("server", "close_notify", encrypted=True)]


# --------------------------------------------------------------------------------------------- 01
def classic_sha1(ctx: Ctx) -> dict:
    sni = "classic.tlsscope.test"
    pki = classic_sha1_pki(ctx.work / "pki", server_cn=sni, client_cn="classic client", org="tlsscope classic")
    for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key"):
        ctx.keep(pki[name])
    port = ctx.port(0)
    suite = "ECDHE-RSA-AES256-GCM-SHA384"
    with ctx.capture([port]), peers.s_server(ctx.out, port, "server.pem", "server.key", ca="ca.pem", verify=True,
                                             cipher=f"{suite}:{SECLEVEL0}", extra=("-tls1_2",)):
        ok = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", cert="client.pem", key="client.key",
                            cipher=f"{suite}:{SECLEVEL0}", extra=("-tls1_2",))
        expect(ok.verify_ok and "Cipher is ECDHE-RSA-AES256-GCM-SHA384" in ok.output, "mutual TLS 1.2", ok)
        # without -cert: at level 1 s_client would refuse to load its own SHA-1 certificate before connecting
        refused = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", cipher=suite, extra=("-tls1_2",))
        expect(refused.returncode != 0 and "too weak" in refused.output, "default security level refuses SHA-1",
               refused)
    findings = ["sha1_signature", "v1_ca_anchor"]
    return {
        "description": "The classic openssl-CLI PKI (genrsa / req / x509 -req -signkey -sha1): X.509 v1 "
                       "certificates without extensions, SHA-1 signatures, 2048-bit RSA; mutual TLS 1.2 with "
                       "ECDHE-RSA-AES256-GCM-SHA384, both sides verifying. The second client keeps OpenSSL's "
                       "default security level and refuses the SHA-1 chain.",
        "notes": ["s_server and s_client both send their certificate followed by the CA certificate (they build "
                  "the chain from -CAfile): 2 certificates each way",
                  "OpenSSL security level lowered to 0 (cipher string ':@SECLEVEL=0') on both peers of "
                  "connection 1: at the default level 1 OpenSSL 3 rejects SHA-1 certificate signatures",
                  "connection 2: the client at the default security level aborts with "
                  "'CA signature digest algorithm too weak'",
                  "expected_openssl_status comes from `openssl verify`, which applies no security level"],
        "connections": [
            conn(sni=sni, version="TLS 1.2", suite="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", server_certificates=2,
                 client_certificates=2, client_certificate_requested=True, alerts=close12(),
                 findings=findings, server_cert="server.pem", client_cert="client.pem",
                 decrypted=dec(2, 2, [("client", "close_notify"), ("server", "close_notify")]),
                 seclevel=0),
            conn(sni=sni, version="TLS 1.2", suite="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", server_certificates=2,
                 client_certificates=None, client_certificate_requested=True,
                 alerts=[alert("client", "certificate_unknown")], findings=findings, server_cert="server.pem",
                 decrypted=dec(2, None, [("client", "bad_certificate")]), seclevel=1,
                 client_outcome="CA signature digest algorithm too weak"),
        ],
    }


# --------------------------------------------------------------------------------------------- 02
def modern_mtls13(ctx: Ctx) -> dict:
    sni = "modern.tlsscope.test"
    ca = ctx.server_ca("modern", "tlsscope modern root CA", sni, sans=("127.0.0.1",))
    ca.issue(ctx.out, "client", "alice", kind="client", sans=("alice.tlsscope.test",))
    port = ctx.port(0)
    with ctx.capture([port]), peers.s_server(ctx.out, port, "server.pem", "server.key", ca="ca.pem", verify=True,
                                             extra=("-tls1_3",)):
        r = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", cert="client.pem", key="client.key",
                           extra=("-tls1_3", "-verify_hostname", sni))
        expect(r.verify_ok and "TLSv1.3" in r.output, "mutual TLS 1.3", r)
    return {
        "description": "The same PKI made properly: SHA-256, X.509 v3 extensions (basicConstraints, keyUsage, "
                       "extendedKeyUsage, SKI/AKI, subjectAltName) made with `openssl ca`; mutual TLS 1.3.",
        "notes": ["TLS 1.3: certificates, CertificateRequest and alerts are encrypted; keylog.txt reveals them",
                  "s_server and s_client send their certificate followed by the CA certificate (chain built "
                  "from -CAfile): 2 certificates each way"],
        "connections": [
            conn(sni=sni, version="TLS 1.3", suite="TLS_AES_256_GCM_SHA384", server_certificates=None,
                 client_certificates=None, client_certificate_requested=True, server_cert="server.pem",
                 client_cert="client.pem",
                 decrypted=dec(2, 2, [("client", "close_notify"), ("server", "close_notify")],
                               client_certificate_requested=True)),
        ],
    }


# --------------------------------------------------------------------------------------------- 03
def nginx_mtls(ctx: Ctx) -> dict:
    sni = "nginx.tlsscope.test"
    ca = CA(ctx.work, "nginx", "tlsscope nginx CA")
    other = CA(ctx.work, "other", "tlsscope other CA", org="someone else")
    ctx.keep(ca.cert, "ca.pem")
    ctx.keep(other.cert, "other-ca.pem")
    ca.issue(ctx.out, "server", sni, sans=(sni,))
    ca.issue(ctx.out, "client", "bob", kind="client")
    other.issue(ctx.out, "other-client", "mallory", kind="client")
    port = ctx.port(0)
    url = f"https://{sni}:{port}/"
    resolve = f"{sni}:{port}:127.0.0.1"
    with ctx.capture([port]), peers.nginx(ctx.work / "nginx", port, name=sni, cert=ctx.out / "server.pem",
                                          key=ctx.out / "server.key", ca=ctx.out / "ca.pem"):
        good = peers.curl(ctx.out, url, resolve=resolve, cacert="ca.pem", cert="client.pem", key="client.key")
        expect("HTTP 200" in good.output, "curl with a client certificate gets 200", good)
        none = peers.curl(ctx.out, url, resolve=resolve, cacert="ca.pem")
        expect("HTTP 400" in none.output and "No required SSL certificate was sent" in none.output,
               "curl without a client certificate gets nginx's 400", none)
        bad = peers.curl(ctx.out, url, resolve=resolve, cacert="ca.pem", cert="other-client.pem",
                         key="other-client.key")
        expect("HTTP 400" in bad.output and "SSL certificate error" in bad.output,
               "curl with another CA's certificate gets 400", bad)
    suite = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    common = dict(sni=sni, version="TLS 1.2", suite=suite, server_certificates=1, client_certificate_requested=True,
                  server_cert="server.pem")
    return {
        "description": "nginx with ssl_verify_client on, ssl_client_certificate ca.pem, TLSv1.2 only and an ECDHE "
                       "cipher list; curl with --cert/--key/--cacert gets 200, curl without a certificate gets "
                       "400 'No required SSL certificate was sent', curl with a certificate from another CA gets "
                       "400 'The SSL certificate error'.",
        "notes": ["nginx completes the handshake in every case: the rejection is an HTTP 400 inside TLS, "
                  "visible only with keylog.txt (no alert on the wire)",
                  "curl without --cert answers the CertificateRequest with an empty Certificate message",
                  "curl sends client.pem followed by ca.pem (OpenSSL builds the chain from --cacert); the "
                  "certificate of the other CA goes alone",
                  "after a 400 nginx sends close_notify first; after a 200 only curl does"],
        "connections": [
            conn(**common, client_certificates=2, client_cert="client.pem", http_status=200,
                 alerts=[alert("client", "close_notify", encrypted=True)],
                 decrypted=dec(1, 2, [("client", "close_notify")], http_status=200)),
            conn(**common, client_certificates=0, findings=["http_client_certificate_required"], http_status=400,
                 alerts=[alert("server", "close_notify", encrypted=True), alert("client", "close_notify", encrypted=True)],
                 decrypted=dec(1, 0, [("server", "close_notify"), ("client", "close_notify")], http_status=400)),
            conn(**common, client_certificates=1, client_cert="other-client.pem", http_status=400,
                 findings=["unknown_issuer", "http_client_certificate_error"],
                 alerts=[alert("server", "close_notify", encrypted=True), alert("client", "close_notify", encrypted=True)],
                 decrypted=dec(1, 1, [("server", "close_notify"), ("client", "close_notify")], http_status=400)),
        ],
    }


# --------------------------------------------------------------------------------------------- 04
def server_rejected(ctx: Ctx) -> dict:
    ca = CA(ctx.work, "s04", "tlsscope s04 CA")
    other = CA(ctx.work, "s04-unknown", "tlsscope unknown CA", org="nobody you trust")
    ctx.keep(ca.cert, "ca.pem")
    ctx.keep(other.cert, "unknown-ca.pem")
    other.issue(ctx.out, "server-unknown-ca", "unknown.tlsscope.test", sans=("unknown.tlsscope.test",))
    ca.issue(ctx.out, "server-expired", "expired.tlsscope.test", sans=("expired.tlsscope.test",),
             startdate="20000101000000Z", enddate="20010101000000Z")
    ca.issue(ctx.out, "server-wrong-name", "elsewhere.tlsscope.test", sans=("elsewhere.tlsscope.test",))
    p_unknown, p_expired, p_name = ctx.port(0), ctx.port(1), ctx.port(2)
    with ctx.capture(ctx.ports), ExitStack() as stack:
        for port, name in ((p_unknown, "server-unknown-ca"), (p_expired, "server-expired"),
                           (p_name, "server-wrong-name")):
            stack.enter_context(peers.s_server(ctx.out, port, f"{name}.pem", f"{name}.key"))
        r1 = peers.s_client(ctx.out, p_unknown, servername="unknown.tlsscope.test", ca="ca.pem",
                            extra=("-tls1_2",))
        expect(r1.returncode != 0 and "unable to get local issuer certificate" in r1.output, "unknown CA", r1)
        r2 = peers.s_client(ctx.out, p_expired, servername="expired.tlsscope.test", ca="ca.pem", extra=("-tls1_2",))
        expect(r2.returncode != 0 and "certificate has expired" in r2.output, "expired", r2)
        r3 = peers.s_client(ctx.out, p_name, servername="www.tlsscope.test", ca="ca.pem",
                            extra=("-tls1_2", "-verify_hostname", "www.tlsscope.test"))
        expect(r3.returncode != 0 and "hostname mismatch" in r3.output, "host name mismatch (s_client)", r3)
        r4 = peers.curl(ctx.out, f"https://www.tlsscope.test:{p_name}/", resolve=f"www.tlsscope.test:{p_name}:127.0.0.1",
                        cacert="ca.pem", extra=("--tlsv1.2", "--tls-max", "1.2"))
        expect(r4.returncode == 60, "host name mismatch (curl)", r4)
        r5 = peers.s_client(ctx.out, p_unknown, servername="unknown.tlsscope.test", ca="ca.pem", extra=("-tls1_3",))
        expect(r5.returncode != 0 and "unable to get local issuer certificate" in r5.output, "unknown CA 1.3", r5)
    s12 = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    return {
        "description": "The client rejects the server certificate: unknown CA (unknown_ca), expired "
                       "(certificate_expired), host name mismatch with openssl s_client and with curl, and an "
                       "unknown CA under TLS 1.3 (OpenSSL's client still sends that alert in clear).",
        "notes": ["host name mismatch, openssl s_client -verify_hostname -verify_return_error: verification "
                  "error 62 'hostname mismatch', fatal alert bad_certificate (42)",
                  "host name mismatch, curl 7.88 (OpenSSL): no error alert at all; curl completes the handshake, "
                  "checks the name afterwards, closes with close_notify and exits 60",
                  "TLS 1.3 unknown CA: OpenSSL's client sends its unknown_ca alert in clear (it has not yet "
                  "switched to its handshake keys when it rejects the server Certificate)",
                  "expected_verdict judges the chain against ca.pem only; the name check is the finding "
                  "'hostname_mismatch'"],
        "connections": [
            conn(sni="unknown.tlsscope.test", version="TLS 1.2", suite=s12, server_certificates=1,
                 client_certificates=None, client_certificate_requested=False,
                 alerts=[alert("client", "unknown_ca")], server_cert="server-unknown-ca.pem",
                 findings=["unknown_issuer"], decrypted=dec(1, None, [("client", "unknown_ca")])),
            conn(sni="expired.tlsscope.test", version="TLS 1.2", suite=s12, server_certificates=1,
                 client_certificates=None, client_certificate_requested=False,
                 alerts=[alert("client", "cert_expired")], server_cert="server-expired.pem",
                 findings=["cert_expired"], decrypted=dec(1, None, [("client", "cert_expired")])),
            conn(sni="www.tlsscope.test", version="TLS 1.2", suite=s12, server_certificates=1,
                 client_certificates=None, client_certificate_requested=False,
                 alerts=[alert("client", "certificate_unknown")], server_cert="server-wrong-name.pem",
                 findings=["hostname_mismatch"], decrypted=dec(1, None, [("client", "bad_certificate")]),
                 client="openssl s_client"),
            conn(sni="www.tlsscope.test", version="TLS 1.2", suite=s12, server_certificates=1,
                 client_certificates=None, client_certificate_requested=False,
                 alerts=[alert("client", "close_notify", encrypted=True), alert("server", "close_notify", encrypted=True)],
                 server_cert="server-wrong-name.pem", findings=["hostname_mismatch"],
                 decrypted=dec(1, None, [("client", "close_notify"), ("server", "close_notify")]), client="curl"),
            conn(sni="unknown.tlsscope.test", version="TLS 1.3", suite="TLS_AES_256_GCM_SHA384",
                 server_certificates=None, client_certificates=None, client_certificate_requested=False,
                 alerts=[alert("client", "unknown_ca")], server_cert="server-unknown-ca.pem",
                 findings=["unknown_issuer"],
                 decrypted=dec(1, None, [("client", "unknown_ca")])),
        ],
    }


# --------------------------------------------------------------------------------------------- 05
def revoked_client(ctx: Ctx) -> dict:
    sni = "crl.tlsscope.test"
    ca = ctx.server_ca("s05", "tlsscope CRL CA", sni)
    ca.issue(ctx.out, "client", "carol", kind="client")
    revoked, _ = ca.issue(ctx.out, "client-revoked", "dave", kind="client")
    ca.revoke(revoked)
    ca.gencrl(ctx.out / "crl.pem")
    port = ctx.port(0)
    with ctx.capture([port]), peers.s_server(ctx.out, port, "server.pem", "server.key", ca="ca.pem", verify=True,
                                             crl="crl.pem"):
        good = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", cert="client.pem", key="client.key",
                              extra=("-tls1_2",))
        expect(good.verify_ok and "Cipher is" in good.output, "good client accepted", good)
        bad = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", cert="client-revoked.pem",
                             key="client-revoked.key", extra=("-tls1_2",))
        expect("certificate revoked" in bad.output, "revoked client rejected (1.2)", bad)
        bad13 = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", cert="client-revoked.pem",
                               key="client-revoked.key", extra=("-tls1_3",))
        expect("certificate revoked" in bad13.output, "revoked client rejected (1.3)", bad13)
    s12 = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    return {
        "description": "The CA revokes a client certificate (openssl ca -revoke / -gencrl); openssl s_server "
                       "checks the CRL (-CRL crl.pem -crl_check -Verify 1 -verify_return_error) and answers the "
                       "revoked client with certificate_revoked: in clear under TLS 1.2, encrypted under TLS 1.3.",
        "crl": ["crl.pem"],
        "notes": ["-verify_return_error is what makes s_server abort with an alert; without it it only logs"],
        "connections": [
            conn(sni=sni, version="TLS 1.2", suite=s12, server_certificates=2, client_certificates=2,
                 client_certificate_requested=True, alerts=close12(), server_cert="server.pem",
                 client_cert="client.pem",
                 decrypted=dec(2, 2, [("client", "close_notify"), ("server", "close_notify")])),
            conn(sni=sni, version="TLS 1.2", suite=s12, server_certificates=2, client_certificates=2,
                 client_certificate_requested=True, alerts=[alert("server", "revoked")],
                 server_cert="server.pem", client_cert="client-revoked.pem", findings=["revoked"],
                 decrypted=dec(2, 2, [("server", "revoked")])),
            conn(sni=sni, version="TLS 1.3", suite="TLS_AES_256_GCM_SHA384", server_certificates=None,
                 client_certificates=None, client_certificate_requested=True, alerts=[],
                 server_cert="server.pem", client_cert="client-revoked.pem", findings=["revoked"],
                 decrypted=dec(2, 2, [("server", "revoked")])),
        ],
    }


# --------------------------------------------------------------------------------------------- 06
def hello_retry(ctx: Ctx) -> dict:
    sni = "hrr.tlsscope.test"
    ctx.server_ca("s06", "tlsscope HRR CA", sni)
    port = ctx.port(0)
    with ctx.capture([port]), peers.s_server(ctx.out, port, "server.pem", "server.key",
                                             extra=("-tls1_3", "-groups", "secp384r1")):
        r = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", extra=("-tls1_3", "-groups", "X25519:secp384r1"))
        expect(r.verify_ok, "HRR handshake", r)
    return {
        "description": "HelloRetryRequest: the client sends a key share for X25519 only, the server accepts only "
                       "secp384r1 and asks again; the second ClientHello carries a secp384r1 share.",
        "notes": ["openssl s_client -groups X25519:secp384r1 (key share for the first group), "
                  "s_server -groups secp384r1"],
        "connections": [
            conn(sni=sni, version="TLS 1.3", suite="TLS_AES_256_GCM_SHA384", server_certificates=None,
                 client_certificates=None, client_certificate_requested=False, hello_retry_request=True,
                 server_cert="server.pem", selected_group="secp384r1",
                 decrypted=dec(1, None, [("client", "close_notify"), ("server", "close_notify")])),
        ],
    }


# --------------------------------------------------------------------------------------------- 07
def resumption(ctx: Ctx) -> dict:
    sni = "resume.tlsscope.test"
    ctx.server_ca("s07", "tlsscope resumption CA", sni)
    p_id, p_ticket = ctx.port(0), ctx.port(1)
    sess = {k: str(ctx.work / f"{k}.sess") for k in ("id", "ticket12", "ticket13")}
    with ctx.capture(ctx.ports), \
            peers.s_server(ctx.out, p_id, "server.pem", "server.key", extra=("-no_ticket",)), \
            peers.s_server(ctx.out, p_ticket, "server.pem", "server.key"):
        runs = [(p_id, "-tls1_2", "id"), (p_ticket, "-tls1_2", "ticket12"), (p_ticket, "-tls1_3", "ticket13")]
        for port, version, key in runs:
            first = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", extra=(version, "-sess_out", sess[key]))
            expect(first.verify_ok and Path(sess[key]).is_file(), f"full handshake {key}", first)
            again = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", extra=(version, "-sess_in", sess[key]))
            expect("Reused, " in again.output, f"resumed {key}", again)
    s12 = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    s13 = "TLS_AES_256_GCM_SHA384"
    closes = [("client", "close_notify"), ("server", "close_notify")]
    c = dict(sni=sni, client_certificates=None, client_certificate_requested=False)
    return {
        "description": "Session resumption: TLS 1.2 by session ID (server without tickets), TLS 1.2 by session "
                       "ticket, TLS 1.3 by PSK from a NewSessionTicket; each a full handshake then a resumed one.",
        "notes": ["openssl s_client -sess_out / -sess_in; the resumed TLS 1.2 handshakes have no Certificate",
                  "TLS 1.3 resumption: ServerHello carries pre_shared_key (psk_dhe_ke)"],
        "connections": [
            conn(**c, version="TLS 1.2", suite=s12, server_certificates=1, alerts=close12(), server_cert="server.pem",
                 resumption="session_id", decrypted=dec(1, None, closes)),
            conn(**c, version="TLS 1.2", suite=s12, server_certificates=None, alerts=close12(), resumed=True,
                 resumption="session_id", decrypted=dec(None, None, closes)),
            conn(**c, version="TLS 1.2", suite=s12, server_certificates=1, alerts=close12(), server_cert="server.pem",
                 resumption="session_ticket", decrypted=dec(1, None, closes)),
            conn(**c, version="TLS 1.2", suite=s12, server_certificates=None, alerts=close12(), resumed=True,
                 resumption="session_ticket", decrypted=dec(None, None, closes)),
            conn(**c, version="TLS 1.3", suite=s13, server_certificates=None, server_cert="server.pem",
                 resumption="psk", decrypted=dec(1, None, closes)),
            conn(**c, version="TLS 1.3", suite=s13, server_certificates=None, resumed=True,
                 resumption="psk", decrypted=dec(None, None, closes)),
        ],
    }


# --------------------------------------------------------------------------------------------- 08
def starttls(ctx: Ctx) -> dict:
    sni = "starttls.tlsscope.test"
    ctx.server_ca("s08", "tlsscope STARTTLS CA", sni, sans=("mail.tlsscope.test",))
    p_line, p_smtp = ctx.port(0), ctx.port(1)
    with ctx.capture(ctx.ports), \
            peers.py_server(ctx.out, "lineswitch", p_line, cert="server.pem", key="server.key"), \
            peers.py_server(ctx.out, "smtp", p_smtp, cert="server.pem", key="server.key"):
        r1 = peers.py_client(ctx.out, p_line, sni=sni, ca="ca.pem", lineswitch=True)
        expect(r1.returncode == 0 and "ECHO ping over tls" in r1.output, "line-based switch to TLS", r1)
        r2 = peers.s_client(ctx.out, p_smtp, servername="mail.tlsscope.test", ca="ca.pem",
                            extra=("-starttls", "smtp", "-tls1_2"), send=b"EHLO client.tlsscope.test\r\n",
                            commands=(b"quit\r\n",))   # not "QUIT": s_client would take it as its Q command
        expect(r2.verify_ok and "221" in r2.output, "SMTP STARTTLS", r2)
    return {
        "description": "Delayed handshakes: a line-based plaintext greeting then TLS on the same connection (the "
                       "Qt startServerEncryption() pattern, Python ssl on both sides, TLS 1.3), and SMTP STARTTLS "
                       "(tiny Python SMTP server, openssl s_client -starttls smtp, TLS 1.2).",
        "notes": [f"port {p_line}: 'HELLO tlsscope-lineswitch 1.0' / 'STARTTLS' / 'OK switching to TLS', then TLS",
                  f"port {p_smtp}: SMTP; tshark needs -d tcp.port=={p_smtp},smtp"],
        "connections": [
            conn(sni=sni, version="TLS 1.3", suite="TLS_AES_256_GCM_SHA384", server_certificates=None,
                 client_certificates=None, client_certificate_requested=False, starttls=True,
                 server_cert="server.pem", plaintext_prefix="line",
                 decrypted=dec(1, None, [("server", "close_notify"), ("client", "close_notify")])),
            conn(sni="mail.tlsscope.test", version="TLS 1.2", suite="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                 server_certificates=1, client_certificates=None, client_certificate_requested=False, starttls=True,
                 server_cert="server.pem", plaintext_prefix="smtp",
                 alerts=[alert("server", "close_notify", encrypted=True), alert("client", "close_notify", encrypted=True)],
                 decrypted=dec(1, None, [("server", "close_notify"), ("client", "close_notify")])),
        ],
    }


# --------------------------------------------------------------------------------------------- 09
def legacy(ctx: Ctx) -> dict:
    sni = "legacy.tlsscope.test"
    ctx.server_ca("s09", "tlsscope legacy CA", sni, bits=1024)
    port = ctx.port(0)
    with ctx.capture([port]), peers.s_server(ctx.out, port, "server.pem", "server.key",
                                             cipher=f"ALL:{SECLEVEL0}"):
        runs = [("-tls1", "ECDHE-RSA-AES128-SHA", ()), ("-tls1_1", "ECDHE-RSA-AES256-SHA", ()),
                ("-tls1_2", "AES128-SHA", ("-no_etm",))]
        for version, cipher, more in runs:
            r = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", cipher=f"{cipher}:{SECLEVEL0}",
                               extra=(version, *more))
            expect(r.verify_ok and f"Cipher is {cipher}" in r.output, f"{version} {cipher}", r)
    c = dict(sni=sni, server_certificates=1, client_certificates=None, client_certificate_requested=False,
             server_cert="server.pem", alerts=close12())
    closes = [("client", "close_notify"), ("server", "close_notify")]
    weak = ["weak_rsa_key"]
    return {
        "description": "Legacy: TLS 1.0 and TLS 1.1 with ECDHE and CBC (encrypt-then-MAC negotiated), TLS 1.2 "
                       "with RSA key exchange AES128-SHA and encrypt-then-MAC refused (-no_etm); the server key "
                       "is 1024-bit RSA and is kept (server.key) for RSA-key decryption of the third connection.",
        "rsa_key": "server.key",
        "notes": ["s_server and s_client both send their certificate followed by the CA certificate (they build "
                  "the chain from -CAfile): 2 certificates each way",
                  "OpenSSL security level lowered to 0 (':@SECLEVEL=0') on both peers: level 1 forbids TLS 1.0/1.1, "
                  "SHA-1 in TLS 1.0/1.1 signatures and 1024-bit RSA",
                  "connection 3 decrypts with server.key alone (RSA key exchange); keylog.txt covers all three"],
        "connections": [
            conn(**c, version="TLS 1.0", suite="TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", encrypt_then_mac=True,
                 findings=["tls10_negotiated", *weak], decrypted=dec(1, None, closes)),
            conn(**c, version="TLS 1.1", suite="TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", encrypt_then_mac=True,
                 findings=["tls11_negotiated", *weak], decrypted=dec(1, None, closes)),
            conn(**c, version="TLS 1.2", suite="TLS_RSA_WITH_AES_128_CBC_SHA", encrypt_then_mac=False,
                 findings=["static_rsa_negotiated", "cbc_without_etm", *weak],
                 decrypted=dec(1, None, closes)),
        ],
    }


# --------------------------------------------------------------------------------------------- 10
def chain_ipv6(ctx: Ctx) -> dict:
    sni = "chain.tlsscope.test"
    root = CA(ctx.work, "s10-root", "tlsscope chain root CA", bits=4096)
    inter1 = CA(ctx.work, "s10-int1", "tlsscope intermediate CA 1", parent=root, bits=4096, pathlen=1)
    inter2 = CA(ctx.work, "s10-int2", "tlsscope intermediate CA 2", parent=inter1, bits=4096, pathlen=0)
    ctx.keep(root.cert, "ca.pem")
    ctx.keep(inter1.cert, "intermediate1.pem")
    ctx.keep(inter2.cert, "intermediate2.pem")
    # 700 names make a ~27 KB leaf: the Certificate message needs two TLS records
    sans = (sni, "::1", "127.0.0.1", *(f"host{i:04d}.shard{i % 7}.chain.tlsscope.test" for i in range(700)))
    inter2.issue(ctx.out, "server", sni, sans=sans)
    bundle(ctx.out / "chain.pem", ctx.out / "intermediate2.pem", ctx.out / "intermediate1.pem")
    p4, p6 = ctx.port(0), ctx.port(1)
    chain = ("-cert_chain", "chain.pem")
    with ctx.capture(ctx.ports), \
            peers.s_server(ctx.out, p4, "server.pem", "server.key", extra=chain), \
            peers.s_server(ctx.out, p6, "server.pem", "server.key", extra=chain, host="::1"):
        r1 = peers.py_client(ctx.out, p4, sni=sni, ca="ca.pem", version="1.2")
        expect(r1.returncode == 0 and "TLSv1.2" in r1.output, "IPv4 client (Python ssl)", r1)
        r2 = peers.s_client(ctx.out, p6, servername=sni, ca="ca.pem", host="::1", extra=("-tls1_2",))
        expect(r2.verify_ok, "IPv6 client", r2)
    c = dict(sni=sni, version="TLS 1.2", suite="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", server_certificates=3,
             client_certificates=None, client_certificate_requested=False, server_cert="server.pem",
             untrusted="chain.pem")
    return {
        "description": "A root, two intermediates (4096-bit RSA) and a leaf with 700 subjectAltNames: the server "
                       "Certificate message (~30 KB) spans two TLS records (16384 bytes + the rest) and several "
                       "TCP segments; Python ssl client on 127.0.0.1, openssl s_client on IPv6 loopback [::1].",
        "notes": ["s_server -cert_chain chain.pem sends leaf, intermediate 2, intermediate 1 (not the root)",
                  "lo uses GSO: tcpdump sees TCP segments of up to 64 KB, so the split into segments comes from "
                  "the sender's writes and the receive window, not from an MSS",
                  "connection 2 is [::1] -> [::1]"],
        "connections": [
            conn(**c, client_ip="127.0.0.1", alerts=close12(),
                 decrypted=dec(3, None, [("client", "close_notify"), ("server", "close_notify")])),
            conn(**c, client_ip="::1", alerts=close12(),
                 decrypted=dec(3, None, [("client", "close_notify"), ("server", "close_notify")])),
        ],
    }


# --------------------------------------------------------------------------------------------- 11
def stacks(ctx: Ctx) -> dict:
    sni = "stacks.tlsscope.test"
    ctx.server_ca("s11", "tlsscope stacks CA", sni)
    p_ossl, p_py = ctx.port(0), ctx.port(1)
    with ctx.capture(ctx.ports), \
            peers.s_server(ctx.out, p_ossl, "server.pem", "server.key"), \
            peers.py_server(ctx.out, "https", p_py, cert="server.pem", key="server.key"):
        r1 = peers.gnutls_cli(ctx.out, p_ossl, sni=sni, ca="ca.pem")
        expect("Handshake was completed" in r1.output, "gnutls-cli -> s_server", r1)
        r2 = peers.curl(ctx.out, f"https://{sni}:{p_py}/", resolve=f"{sni}:{p_py}:127.0.0.1", cacert="ca.pem")
        expect("HTTP 200" in r2.output, "curl -> python ssl", r2)
        r3 = peers.gnutls_cli(ctx.out, p_py, sni=sni, ca="ca.pem", extra=("--priority", "NORMAL:-VERS-TLS1.3"))
        expect("Handshake was completed" in r3.output, "gnutls-cli TLS 1.2 -> python ssl", r3)
        r4 = peers.py_client(ctx.out, p_ossl, sni=sni, ca="ca.pem", version="1.2")
        expect(r4.returncode == 0, "python ssl -> s_server", r4)
    c = dict(sni=sni, client_certificates=None, client_certificate_requested=False, server_cert="server.pem")
    return {
        "description": "Different TLS stacks, different ClientHellos: gnutls-cli and curl (OpenSSL) and Python "
                       "ssl as clients; openssl s_server and a Python ssl server.",
        "notes": ["gnutls-cli writes keylog.txt through SSLKEYLOGFILE as curl does",
                  "connection 3: gnutls-cli --priority NORMAL:-VERS-TLS1.3"],
        "connections": [
            conn(**c, version="TLS 1.3", suite="TLS_AES_256_GCM_SHA384", server_certificates=None, client="gnutls-cli",
                 server="openssl s_server",
                 decrypted=dec(1, None, [("client", "close_notify"), ("server", "close_notify")])),
            conn(**c, version="TLS 1.3", suite="TLS_AES_256_GCM_SHA384", server_certificates=None, client="curl",
                 server="python ssl", decrypted=dec(1, None, [("server", "close_notify"), ("client", "close_notify")])),
            conn(**c, version="TLS 1.2", suite="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", server_certificates=1,
                 client="gnutls-cli",
                 server="python ssl", alerts=[alert("server", "close_notify", encrypted=True)],
                 decrypted=dec(1, None, [("server", "close_notify")])),
            conn(**c, version="TLS 1.2", suite="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", server_certificates=1,
                 client="python ssl", server="openssl s_server", alerts=close12(),
                 decrypted=dec(1, None, [("client", "close_notify"), ("server", "close_notify")])),
        ],
    }


# --------------------------------------------------------------------------------------------- 12
def renegotiation(ctx: Ctx) -> dict:
    sni = "reneg.tlsscope.test"
    ctx.server_ca("s12", "tlsscope renegotiation CA", sni)
    port = ctx.port(0)
    with ctx.capture([port]), peers.s_server(ctx.out, port, "server.pem", "server.key",
                                             extra=("-tls1_2", "-client_renegotiation")):
        r = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", extra=("-tls1_2",), commands=(b"R\n",),
                           linger=0.7)
        expect(r.verify_ok and "RENEGOTIATING" in r.output, "client-initiated renegotiation", r)
    return {
        "description": "TLS 1.2 client-initiated secure renegotiation (openssl s_client 'R' command, s_server "
                       "-client_renegotiation): the second handshake runs inside the encrypted connection.",
        "notes": ["OpenSSL 3 servers refuse client-initiated renegotiation unless -client_renegotiation is given",
                  "the renegotiation handshake is visible only with keylog.txt"],
        "connections": [
            conn(sni=sni, version="TLS 1.2", suite="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", server_certificates=1,
                 client_certificates=None, client_certificate_requested=False, server_cert="server.pem",
                 alerts=close12(), renegotiations=1,
                 decrypted=dec(1, None, [("client", "close_notify"), ("server", "close_notify")],
                               client_hellos=2)),
        ],
    }


# --------------------------------------------------------------------------------------------- 13
def dtls(ctx: Ctx) -> dict:
    sni = "dtls.tlsscope.test"
    ca = ctx.server_ca("dtls", "tlsscope DTLS CA", sni)
    ca.issue(ctx.out, "client", "carol", kind="client")
    port, legacy_port = ctx.port(0), ctx.port(1)
    with ctx.capture([port, legacy_port], udp=True), \
            peers.s_server(ctx.out, port, "server.pem", "server.key", ca="ca.pem", verify=True, mode="",
                           udp=True, extra=("-dtls1_2",)), \
            peers.s_server(ctx.out, legacy_port, "server.pem", "server.key", mode="", udp=True,
                           cipher=f"AES256-SHA:{SECLEVEL0}", extra=("-dtls1",)):
        ok = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", cert="client.pem",
                            key="client.key", extra=("-dtls1_2",))
        expect(ok.verify_ok and "Protocol  : DTLSv1.2" in ok.output and "Cipher is (NONE)" not in ok.output,
               "mutual DTLS 1.2", ok)
        refused = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", extra=("-dtls1_2",))
        expect("Cipher is (NONE)" in refused.output or refused.returncode != 0,
               "DTLS 1.2 without a client certificate is refused", refused)
        old = peers.s_client(ctx.out, legacy_port, servername=sni, ca="ca.pem",
                             cipher=f"AES256-SHA:{SECLEVEL0}", extra=("-dtls1",))
        expect("Protocol  : DTLSv1" in old.output and "Cipher is (NONE)" not in old.output, "DTLS 1.0", old)
    suite = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    return {
        "description": "DTLS over UDP between openssl s_server and s_client: mutual DTLS 1.2 (the server "
                       "verifies the client certificate against the CA), a DTLS 1.2 client without a "
                       "certificate refused, and DTLS 1.0 with a static-RSA CBC suite at security level 0.",
        "transport": "udp",
        "notes": ["DTLS 1.2 and 1.0 send certificates in clear: no key log is needed to check the chains; "
                  "keylog.txt (s_client -keylogfile) opens the encrypted records: Finished, close_notify and "
                  "the application data",
                  "openssl s_server answers every ClientHello with a HelloVerifyRequest (cookie exchange): "
                  "each connection carries two ClientHellos",
                  "OpenSSL cuts the Certificate flight into ~200-byte handshake fragments (its default DTLS "
                  "MTU on lo): the handshake reassembly is exercised by a real peer",
                  "connection 2: the client answers the CertificateRequest with an empty Certificate message",
                  "s_server and s_client send their certificate followed by the CA certificate where they "
                  "were given -CAfile (the DTLS 1.0 server was not: its certificate goes alone)"],
        "connections": [
            conn(sni=sni, version="DTLS 1.2", suite=suite, server_certificates=2, client_certificates=2,
                 client_certificate_requested=True, alerts=close12(), server_cert="server.pem",
                 client_cert="client.pem", findings=[],
                 decrypted=dec(2, 2, [("client", "close_notify"), ("server", "close_notify")])),
            conn(sni=sni, version="DTLS 1.2", suite=suite, server_certificates=2, client_certificates=0,
                 client_certificate_requested=True, alerts=[alert("server", "handshake_failure")],
                 server_cert="server.pem", findings=["alert_handshake_failure"],
                 decrypted=dec(2, 0, [("server", "handshake_failure")])),
            conn(sni=sni, version="DTLS 1.0", suite="TLS_RSA_WITH_AES_256_CBC_SHA", server_certificates=1,
                 client_certificates=None, client_certificate_requested=False, alerts=close12(),
                 server_cert="server.pem", findings=["dtls10_negotiated", "static_rsa_negotiated"], seclevel=0,
                 decrypted=dec(1, None, [("client", "close_notify"), ("server", "close_notify")])),
        ],
    }


# --------------------------------------------------------------------------------------------- 14
def quic(ctx: Ctx) -> dict:
    sni = "quic.tlsscope.test"
    ctx.server_ca("quic", "tlsscope QUIC CA", sni)
    port, retry_port = ctx.port(0), ctx.port(1)
    with ctx.capture([port, retry_port], udp=True), \
            peers.quic_server(ctx.out, port, "server.pem", "server.key"), \
            peers.quic_server(ctx.out, retry_port, "server.pem", "server.key", retry=True):
        ok = peers.quic_client(ctx.out, port, sni=sni, ca="ca.pem")
        expect(ok.returncode == 0 and "ECHO hello over quic" in ok.output, "QUIC echo", ok)
        refused = peers.quic_client(ctx.out, port, sni=sni, ca="ca.pem", alpn="h3")
        expect(refused.returncode != 0, "no ALPN in common: refused", refused)
        retried = peers.quic_client(ctx.out, retry_port, sni=sni, ca="ca.pem")
        expect(retried.returncode == 0 and "ECHO hello over quic" in retried.output, "QUIC echo after a Retry",
               retried)
    suite = "TLS_AES_256_GCM_SHA384"    # aioquic's first choice
    return {
        "description": "QUIC v1 between aioquic peers (captures/gen/quicpeers.py): an echo over one stream, a "
                       "client offering an ALPN the server does not speak (refused with a TLS alert in "
                       "CONNECTION_CLOSE), and an echo through a server that answers the first Initial with a "
                       "Retry.",
        "transport": "quic",
        "notes": ["QUIC's Initial packets are readable without keys: the ClientHello and ServerHello are in clear "
                  "for an observer; certificates, Finished and data need keylog.txt",
                  "aioquic sends the server certificate alone (no chain)",
                  "connection 2: no_application_protocol (120) travels as CONNECTION_CLOSE error 0x178 in a "
                  "server Initial packet, readable without keys"],
        "connections": [
            conn(sni=sni, version="TLS 1.3", suite=suite, server_certificates=None, client_certificates=None,
                 client_certificate_requested=False, server_cert="server.pem", decrypted=dec(1, None, [])),
            conn(sni=sni, version=None, suite=None, server_certificates=None, client_certificates=None,
                 client_certificate_requested=False, alerts=[alert("server", "no_application_protocol")],
                 findings=["alert_no_application_protocol"]),
            conn(sni=sni, version="TLS 1.3", suite=suite, server_certificates=None, client_certificates=None,
                 client_certificate_requested=False, server_cert="server.pem", decrypted=dec(1, None, []),
                 retry=True,
                 tshark_differs={"server_certificates (keys)":
                                 "after the Retry aioquic starts a new TLS handshake (a second ClientHello with "
                                 "a new random, the one its key log names); tshark 4.0 keeps looking up the "
                                 "first random and decrypts nothing. tlsscope opens the Handshake packets "
                                 "and verifies both Finished, which only the right keys and transcript give"}),
        ],
    }


# --------------------------------------------------------------------------------------------- 15
def quic_early_data(ctx: Ctx) -> dict:
    sni = "early.tlsscope.test"
    ctx.server_ca("quic", "tlsscope QUIC CA", sni)
    port = ctx.port(0)
    with ctx.capture([port], udp=True), peers.quic_server(ctx.out, port, "server.pem", "server.key"):
        early = peers.quic_client(ctx.out, port, sni=sni, ca="ca.pem", early_data=True, send="early hello\n")
        expect(early.returncode == 0 and "ECHO early hello" in early.output and "EARLY True" in early.output,
               "QUIC resumption with accepted 0-RTT data", early)
    suite = "TLS_AES_256_GCM_SHA384"    # aioquic's first choice
    return {
        "description": "QUIC 0-RTT between aioquic peers: a first connection that only collects a session "
                       "ticket, then a second one that resumes with it and sends its line as 0-RTT data in the "
                       "datagram of its Initial; the server accepts the early data and echoes it.",
        "transport": "quic",
        "notes": ["the 0-RTT packet is opened with CLIENT_EARLY_TRAFFIC_SECRET before the ServerHello names the "
                  "suite: tlsscope tries the ClientHello's suites on it",
                  "the resumed connection has no Certificate: the PSK authenticates the server"],
        "connections": [
            conn(sni=sni, version="TLS 1.3", suite=suite, server_certificates=None, client_certificates=None,
                 client_certificate_requested=False, server_cert="server.pem", decrypted=dec(1, None, [])),
            conn(sni=sni, version="TLS 1.3", suite=suite, server_certificates=None, client_certificates=None,
                 client_certificate_requested=False, resumed=True, decrypted=dec(None, None, []),
                 early_data="early hello\n"),
        ],
    }


# --------------------------------------------------------------------------------------------- 16
def python_strict(ctx: Ctx) -> dict:
    sni = "strict.tlsscope.test"
    ctx.server_ca("s16", "tlsscope default-config CA", sni, ca_kw={"root_extensions": "v3_root_no_ku"})
    port = ctx.port(0)
    with ctx.capture([port]), peers.py_server(ctx.out, "https", port, cert="server.pem", key="server.key",
                                              version="1.2"):
        ok = peers.py_client(ctx.out, port, sni=sni, ca="ca.pem")
        expect(ok.returncode == 0 and "hello from python ssl" in ok.output, "default Python client accepts", ok)
        strict = peers.py_client(ctx.out, port, sni=sni, ca="ca.pem", x509_strict=True)
        expect(strict.returncode != 0 and "VERIFY-FAILED: CA cert does not include key usage extension"
               in strict.output, "VERIFY_X509_STRICT client refuses", strict)
    suite = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
    return {
        "description": "A root made like `openssl req -x509` with Debian's default openssl.cnf (no keyUsage): a "
                       "Python ssl client accepts the server, the same client with VERIFY_X509_STRICT (the default "
                       "of ssl.create_default_context() since Python 3.13) refuses it with certificate_unknown.",
        "notes": ["client 2's own error: certificate verify failed: CA cert does not include key usage extension; "
                  "tlsscope --x509-strict gives the same text, and a x509_strict_violation finding without it",
                  "TLS 1.2 so that the certificates and the alert are visible without keys"],
        "connections": [
            conn(sni=sni, version="TLS 1.2", suite=suite, server_certificates=1, client_certificates=None,
                 client_certificate_requested=False, alerts=close12(), server_cert="server.pem",
                 findings=["x509_strict_violation"],
                 decrypted=dec(1, None, [("client", "close_notify"), ("server", "close_notify")])),
            conn(sni=sni, version="TLS 1.2", suite=suite, server_certificates=1, client_certificates=None,
                 client_certificate_requested=False, alerts=[alert("client", "certificate_unknown")],
                 server_cert="server.pem", findings=["x509_strict_violation", "alert_certificate_unknown"],
                 x509_strict_status="CA cert does not include key usage extension"),
        ],
    }


# --------------------------------------------------------------------------------------------- 17
def ocsp_stapling(ctx: Ctx) -> dict:
    sni, bad = "ocsp.tlsscope.test", "revoked-ocsp.tlsscope.test"
    ca = ctx.server_ca("s17", "tlsscope OCSP CA", sni)
    revoked, _ = ca.issue(ctx.out, "revoked", bad, sans=(bad,))
    ca.revoke(revoked)
    ca.ocsp_response(ctx.out / "server.pem", ctx.out / "server.ocsp")
    ca.ocsp_response(revoked, ctx.out / "revoked.ocsp")
    port, bad_port = ctx.port(0), ctx.port(1)
    with ctx.capture(ctx.ports), \
            peers.s_server(ctx.out, port, "server.pem", "server.key", extra=("-status_file", "server.ocsp")), \
            peers.s_server(ctx.out, bad_port, "revoked.pem", "revoked.key", extra=("-status_file", "revoked.ocsp")):
        for version in ("-tls1_2", "-tls1_3"):
            r = peers.s_client(ctx.out, port, servername=sni, ca="ca.pem", extra=(version, "-status"))
            expect(r.verify_ok and "OCSP Response Status: successful" in r.output and "Cert Status: good" in r.output,
                   f"stapled good OCSP response {version}", r)
        r = peers.s_client(ctx.out, bad_port, servername=bad, ca="ca.pem", extra=("-tls1_2", "-status"))
        expect("Cert Status: revoked" in r.output, "stapled revoked OCSP response", r)
    closes = [("client", "close_notify"), ("server", "close_notify")]
    c = dict(client_certificates=None, client_certificate_requested=False)
    return {
        "description": "OCSP stapling with openssl s_server -status_file (responses made by openssl ocsp from the "
                       "CA's index) and s_client -status: a good staple in TLS 1.2 (CertificateStatus message) and "
                       "in TLS 1.3 (in the leaf's CertificateEntry, encrypted), and a staple saying the server's "
                       "certificate is revoked (s_client only prints it and goes on).",
        "notes": ["expected_ocsp is `openssl ocsp -respin` on the stapled response; tlsscope fails a chain whose "
                  "staple says revoked, while openssl verify (no OCSP) says ok"],
        "connections": [
            conn(**c, sni=sni, version="TLS 1.2", suite="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", server_certificates=1,
                 alerts=close12(), server_cert="server.pem", ocsp_file="server.ocsp", findings=["ocsp_good"],
                 decrypted=dec(1, None, closes)),
            conn(**c, sni=sni, version="TLS 1.3", suite="TLS_AES_256_GCM_SHA384", server_certificates=None,
                 server_cert="server.pem", ocsp_file="server.ocsp", findings=["ocsp_good"],
                 decrypted=dec(1, None, closes)),
            conn(**c, sni=bad, version="TLS 1.2", suite="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", server_certificates=1,
                 alerts=close12(), server_cert="revoked.pem", ocsp_file="revoked.ocsp", findings=["ocsp_revoked"],
                 decrypted=dec(1, None, closes)),
        ],
    }


SCENARIOS = {
    "01-classic-sha1-mtls12": classic_sha1,
    "02-modern-mtls13": modern_mtls13,
    "03-nginx-mtls": nginx_mtls,
    "04-server-cert-rejected": server_rejected,
    "05-revoked-client-cert": revoked_client,
    "06-hello-retry-request": hello_retry,
    "07-resumption": resumption,
    "08-starttls": starttls,
    "09-legacy": legacy,
    "10-chain-ipv6": chain_ipv6,
    "11-stacks": stacks,
    "12-renegotiation": renegotiation,
    "13-dtls": dtls,
    "14-quic": quic,
    "15-quic-early-data": quic_early_data,
    "16-python-x509-strict": python_strict,
    "17-ocsp-stapling": ocsp_stapling,
}

"""Analysis added to a report once its connection closed: certificate checks, fingerprints, findings."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from . import hello

if TYPE_CHECKING:
    from .pipeline import Options
    from .report import ConnectionReport

TLS13 = 0x0304


def _when(ts: float | None, fallback: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts if ts is not None else fallback, datetime.timezone.utc)


def certificate_checks(report: "ConnectionReport", options: "Options") -> dict:
    from .certs import absent, check_chain, not_visible

    st = report.state
    checks = {}
    for side in ("server", "client"):
        ders = st.certificates.get(side)
        if ders:
            requested = None
            if side == "client" and st.certificate_request is not None:
                cas = getattr(st.certificate_request, "certificate_authorities", None) or ()
                requested = [dn.der for dn in cas] or None
            checks[side] = check_chain(
                ders, side=side, at=_when(st.certificate_ts.get(side), report.ts_start),
                store=options.trust, crls=options.crls,
                hostname=(options.hostname or report.sni) if side == "server" else None,
                requested_ca_names=requested,
                ocsp_response=st.ocsp_response if side == "server" else None,
                now=options.now, security_level=options.security_level,
                partial_chain=options.partial_chain, x509_strict=options.x509_strict)
        elif ders is None and side in (st.certificate_unreadable or {}):
            checks[side] = not_visible(f"the {side}'s Certificate is {st.certificate_unreadable[side]}")
        elif ders is None and st.version == TLS13 and st.server_hello is not None and not report.resumed:
            client_stats = st.stats.get("client")
            if side == "client" and client_stats is not None and client_stats.app_records == 0:
                # nothing encrypted ever came from the client: it cannot have sent a certificate
                checks[side] = absent("the client sent nothing encrypted after ServerHello, so no certificate")
            elif report.quic is not None:
                checks[side] = not_visible("QUIC carries certificates in encrypted Handshake packets: "
                                           "give --keylog")
            else:
                checks[side] = not_visible("TLS 1.3 encrypts certificates: give --keylog")
        elif report.resumed:
            checks[side] = absent("session resumed: no certificate is exchanged")
        elif side == "client":
            checks[side] = absent("the server did not ask for a client certificate"
                                  if not report.client_certificate_requested
                                  else "the client sent no certificate")
        else:
            checks[side] = absent("no server certificate in the capture")
    return checks


# Fingerprints are a pure function of a few hello fields, and a capture repeats the same few
# client and server configurations thousands of times: memoise on exactly those inputs
# (the extension bodies they are read from), bounded.
_FP_CLIENT_EXTS = (hello.SUPPORTED_GROUPS, hello.EC_POINT_FORMATS, hello.SIGNATURE_ALGORITHMS, hello.ALPN,
                   hello.SUPPORTED_VERSIONS)
_FP_CACHE_MAX = 4096
_ja_client: dict = {}
_ja_server: dict = {}


def _client_fingerprint_key(ch, transport: str = "t") -> tuple:
    types = []
    first: dict = {}
    for e in getattr(ch, "extensions", ()) or ():
        t = e.type
        types.append(t)
        if t in _FP_CLIENT_EXTS and t not in first:
            first[t] = e.data
    return (ch.legacy_version, tuple(ch.cipher_suites), tuple(types), tuple(first.get(t) for t in _FP_CLIENT_EXTS),
            transport)


def _client_fingerprints(ch, transport: str = "t") -> tuple:
    from .fingerprint import ja3, ja4

    j = ja3(ch.legacy_version, ch.cipher_suites, hello.extension_types(ch),
            hello.supported_groups(ch), hello.ec_point_formats(ch))
    sv = hello.supported_versions(ch)
    f = ja4(legacy_version=ch.legacy_version, supported_versions=sv or None,
            cipher_suites=ch.cipher_suites, extension_types=hello.extension_types(ch),
            sni=hello.has_extension(ch, hello.SERVER_NAME), alpn=hello.alpn_protocols(ch),
            signature_algorithms=hello.signature_algorithms(ch), transport=transport)
    return j.hash, j.string, f.ja4, f.ja4_r, f.ja4_o, f.ja4_ro


def fingerprints(report: "ConnectionReport") -> dict:
    out: dict = {"ja3": None, "ja3_string": None, "ja3s": None, "ja3s_string": None,
                 "ja4": None, "ja4_r": None, "ja4_o": None, "ja4_ro": None}
    ch = report.client_hello
    if ch is not None:
        # JA4's first character names the transport: t (TCP), q (QUIC) or d (DTLS)
        transport = {"quic": "q", "dtls": "d"}.get(report.transport, "t")
        key = _client_fingerprint_key(ch, transport)
        got = _ja_client.get(key)
        if got is None:
            got = _client_fingerprints(ch, transport)
            if len(_ja_client) >= _FP_CACHE_MAX:
                _ja_client.clear()
            _ja_client[key] = got
        out["ja3"], out["ja3_string"], out["ja4"], out["ja4_r"], out["ja4_o"], out["ja4_ro"] = got
    sh = report.server_hello
    if sh is not None:
        key = (sh.legacy_version, sh.cipher_suite, tuple(hello.extension_types(sh)))
        got = _ja_server.get(key)
        if got is None:
            from .fingerprint import ja3s
            j = ja3s(sh.legacy_version, sh.cipher_suite, hello.extension_types(sh))
            got = (j.hash, j.string)
            if len(_ja_server) >= _FP_CACHE_MAX:
                _ja_server.clear()
            _ja_server[key] = got
        out["ja3s"], out["ja3s_string"] = got
    return out


def enrich(report: "ConnectionReport", options: "Options") -> None:
    if options.trust is not None:
        report.certificate_checks = certificate_checks(report, options)
    if options.fingerprints:
        report.fingerprints = fingerprints(report)
    if options.findings:
        from .rules import apply_rules
        apply_rules(report)

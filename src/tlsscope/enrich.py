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
                now=options.now, security_level=options.security_level)
        elif ders is None and st.version == TLS13 and st.server_hello is not None and not report.resumed:
            if side == "client" and report.end.startswith("fatal") and not st.certificate_request:
                checks[side] = absent("no client certificate visible (TLS 1.3 encrypts the handshake)")
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


def fingerprints(report: "ConnectionReport") -> dict:
    from .fingerprint import ja3, ja3s, ja4

    out: dict = {"ja3": None, "ja3_string": None, "ja3s": None, "ja3s_string": None,
                 "ja4": None, "ja4_r": None, "ja4_o": None, "ja4_ro": None}
    ch = report.client_hello
    if ch is not None:
        j = ja3(ch.legacy_version, ch.cipher_suites, hello.extension_types(ch),
                hello.supported_groups(ch), hello.ec_point_formats(ch))
        out["ja3"], out["ja3_string"] = j.hash, j.string
        sv = hello.supported_versions(ch)
        f = ja4(legacy_version=ch.legacy_version, supported_versions=sv or None,
                cipher_suites=ch.cipher_suites, extension_types=hello.extension_types(ch),
                sni=hello.has_extension(ch, hello.SERVER_NAME), alpn=hello.alpn_protocols(ch),
                signature_algorithms=hello.signature_algorithms(ch))
        out.update(ja4=f.ja4, ja4_r=f.ja4_r, ja4_o=f.ja4_o, ja4_ro=f.ja4_ro)
    sh = report.server_hello
    if sh is not None:
        j = ja3s(sh.legacy_version, sh.cipher_suite, hello.extension_types(sh))
        out["ja3s"], out["ja3s_string"] = j.hash, j.string
    return out


def enrich(report: "ConnectionReport", options: "Options") -> None:
    if options.trust is not None:
        report.certificate_checks = certificate_checks(report, options)
    if options.fingerprints:
        report.fingerprints = fingerprints(report)
    if options.findings:
        from .rules import apply_rules
        apply_rules(report)

"""One line per connection (--summary)."""

from __future__ import annotations

from ..registry import cipher_suite_name, version_name


def summary_line(r) -> str:
    parts = [f"#{r.id}", f"{r.client} → {r.server}"]
    if r.transport != "tcp":
        parts.append(r.transport.upper())
    parts.append(f"sni={r.sni}" if r.sni else "sni=-")
    parts.append(version_name(r.version) if r.version is not None else "no-ServerHello")
    if r.cipher_suite is not None:
        parts.append(cipher_suite_name(r.cipher_suite))
    if r.alpn:
        parts.append(f"alpn={r.alpn}")
    if r.resumed:
        parts.append("resumed")
    certs = r.certificates.get("server")
    parts.append("certs=" + ("enc" if certs is None else str(len(certs))))
    if r.client_certificate_requested or r.client_certificate_sent:
        cc = r.certificates.get("client")
        parts.append("client-cert=" + ("enc" if cc is None else str(len(cc))))
    if r.certificate_checks:
        for side, chk in r.certificate_checks.items():
            if chk is not None and chk.status in ("ok", "failed"):
                parts.append(f"{side}-chain={'ok' if chk.status == 'ok' else 'FAILED(' + chk.failure + ')'}")
    if r.history:
        parts.append(f"hist={r.history}")
    parts.append(f"end={r.end.replace(' ', '_')}")
    likely = getattr(r.state, "alert_likely_from", None)
    if likely:
        parts.append(f"encrypted-alert?={likely}")       # TLS 1.3 without keys: see encrypted_alert_likely
    worst = max((f.severity for f in r.findings), default=None)
    if r.findings:
        parts.append(f"findings={len(r.findings)}(max {worst})")
    return "  ".join(parts)

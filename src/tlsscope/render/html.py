"""HTML for notebooks: a navigable connection report (``ConnectionReport._repr_html_``).

One self-contained fragment per connection: the header facts, the ladder diagram
(inline SVG), every message as a collapsible row with its labelled byte view,
certificates, chain checks against the given CA, decryption status and findings.
Only ``<details>`` elements make it navigable: no scripts, so it survives
notebook sanitisers and reads the same in a committed ``.ipynb``.
"""

from __future__ import annotations

from html import escape

from ..findings import Severity
from ..registry import cipher_suite_name, group_name, version_name
from .byteview import byteview_html, entry_view
from .describe import certificate_line, describe_message, when
from .ladder import ladder_svg, start_time

__all__ = ["report_html", "reports_html"]

_SEV_COLOUR = {Severity.INFO: "#777", Severity.LOW: "#00838f", Severity.MEDIUM: "#b26a00",
               Severity.HIGH: "#c62828", Severity.CRITICAL: "#8e0000"}
_CSS = "font-family:Helvetica,Arial,sans-serif;font-size:13px;line-height:1.4"
# Messages listed in full (with byte views) before the rest are summarised.
MAX_MESSAGES = 120


def _row(key: str, value: str, colour: str = "") -> str:
    style = f' style="color:{colour}"' if colour else ""
    return (f'<tr><th style="text-align:left;padding:1px 10px 1px 0;vertical-align:top;font-weight:600">'
            f'{escape(key)}</th><td{style}>{value}</td></tr>')


def _facts(r) -> str:
    rows = [
        _row("client → server", escape(f"{r.client} → {r.server}")),
        _row("started", escape(when(r.ts_start))),
        _row("SNI", escape(r.sni or "—")),
        _row("version", escape(version_name(r.version) if r.version is not None else "no ServerHello")),
    ]
    if r.cipher_suite is not None:
        rows.append(_row("cipher suite", escape(cipher_suite_name(r.cipher_suite))))
    if r.group is not None:
        rows.append(_row("group", escape(group_name(r.group))))
    if r.alpn or r.alpn_offered:
        rows.append(_row("ALPN", escape(f"{r.alpn or '—'} (offered: {', '.join(r.alpn_offered) or '—'})")))
    rows.append(_row("handshake", escape(("resumed" if r.resumed else "full handshake")
                                         + ("" if r.handshake_complete else ", not completed")
                                         + (", HelloRetryRequest" if r.hello_retry_request is not None else ""))))
    if r.client_certificate_requested or r.client_certificate_sent:
        sent = r.client_certificate_sent
        rows.append(_row("client certificate",
                         "requested, " + ("sent" if sent else "not visible (give the key log)" if sent is None
                                          else "<b>not sent</b>")))
    rows.append(_row("ended", escape(r.end), "#c62828" if "fatal" in r.end else ""))
    fp = r.fingerprints
    for k in ("ja4", "ja3", "ja3s"):
        if fp.get(k):
            rows.append(_row(k.upper(), f"<code>{escape(fp[k])}</code>"))
    if r.history:
        rows.append(_row("history", f"<code>{escape(r.history)}</code>"))
    for h in r.http[:4]:
        rows.append(_row(f"HTTP ({h['from']})", f"<code>{escape(h['line'])}</code>"))
    return '<table style="border-collapse:collapse;margin:4px 0">' + "".join(rows) + "</table>"


def _messages(r) -> str:
    t0 = start_time(r)
    out = [f"<details><summary><b>Messages ({len(r.timeline)})</b> — click one to see its fields "
           "and bytes</summary><div style='margin-left:1em'>"]
    for i, e in enumerate(r.timeline[:MAX_MESSAGES]):
        arrow = "C → S" if e.from_client else "S → C"
        colour = "#c62828" if e.content_type == 21 or e.error else "#777" if e.encrypted and not e.decrypted else ""
        style = f' style="color:{colour}"' if colour else ""
        head = (f'<code style="color:#777">+{(e.ts - t0) * 1000:9.3f} ms  {arrow}</code> '
                f'<span{style}>{escape(describe_message(e))}</span>')
        view = entry_view(r, e)
        if view is None:
            out.append(f'<div class="msg" data-index="{i}" style="margin:1px 0 1px 1.1em">{head}</div>')
            continue
        out.append(f'<details class="msg" data-index="{i}"><summary>{head}</summary>'
                   f'<div style="margin:4px 0 8px 1.5em">{byteview_html(view, max_bytes=512)}</div></details>')
    if len(r.timeline) > MAX_MESSAGES:
        out.append(f"<div>… {len(r.timeline) - MAX_MESSAGES} more records</div>")
    out.append("</div></details>")
    return "".join(out)


def _certificates(r) -> str:
    out = []
    for side in ("server", "client"):
        certs = r.certificates.get(side)
        if certs is None:
            out.append(f"<div style='color:#777'>{side} certificates: not visible (TLS 1.3 encrypts them; "
                       "give the key log)</div>")
            continue
        if not certs:
            continue
        items = "".join(f"<li>{escape(certificate_line(c))}</li>" for c in certs)
        out.append(f"<details open><summary><b>{side} certificates ({len(certs)})</b></summary>"
                   f"<ol start='0' style='margin:2px 0'>{items}</ol></details>")
    checks = r.certificate_checks or {}
    for side, chk in checks.items():
        if chk is None:
            continue
        if chk.status == "ok":
            line = f"<span style='color:#2e7d32'>✔ {side} chain trusted: {escape(' → '.join(chk.path))}</span>"
        elif chk.status == "failed":
            line = f"<span style='color:#c62828'><b>✘ {side} chain: {escape(chk.failure)}</b></span>"
        else:
            line = f"<span style='color:#777'>· {side} chain {escape(chk.status.replace('_', ' '))}</span>"
        items = "".join(f"<li style='color:{_SEV_COLOUR.get(f.severity, '')}'>[{f.severity}] "
                        f"<code>{escape(f.code)}</code>: {escape(f.message)}</li>" for f in chk.findings)
        out.append(f"<div>{line}</div>" + (f"<ul style='margin:2px 0'>{items}</ul>" if items else ""))
    return "".join(out)


def _decryption(r) -> str:
    d = r.decryption
    if not d:
        return ""
    fv = d.get("finished_verified") or {}
    fin = ", ".join(f"{k} Finished {'verified ✔' if v else 'FAILED ✘' if v is False else 'not checked'}"
                    for k, v in fv.items())
    text = f"decryption: {d.get('records_decrypted', 0)} records decrypted"
    if d.get("failures"):
        text += f", {d['failures']} failures"
    if fin:
        text += f"; {fin}"
    for p in d.get("problems") or ():
        text += f"; {p}"
    return f"<div style='color:#00838f'>{escape(text)}</div>"


def _findings(r) -> str:
    if not r.findings:
        return ""
    items = "".join(f"<li style='color:{_SEV_COLOUR.get(f.severity, '')}'>[{f.severity}] "
                    f"<code>{escape(f.code)}</code>: {escape(f.message)}</li>"
                    for f in sorted(r.findings, key=lambda f: -f.severity))
    return (f"<details><summary><b>Findings ({len(r.findings)})</b></summary>"
            f"<ul style='margin:2px 0'>{items}</ul></details>")


def report_html(report, *, ladder: bool = True) -> str:
    """One connection as an HTML fragment (what Jupyter shows for a ConnectionReport)."""
    r = report
    title = f"#{r.id} {r.client} → {r.server}" + (f" · SNI {r.sni}" if r.sni else "")
    parts = [f'<div class="tlsscope-report" id="tlsscope-conn-{r.id}" style="{_CSS}">',
             f'<div style="font-size:15px;font-weight:bold">{escape(title)}</div>',
             _facts(r)]
    if ladder:
        parts.append(f"<details open><summary><b>Ladder diagram</b></summary>"
                     f"<div style='overflow-x:auto'>{ladder_svg(r)}</div></details>")
    parts += [_messages(r), _certificates(r), _decryption(r), _findings(r), "</div>"]
    return "".join(parts)


def reports_html(reports, *, details: int = 0, max_rows: int = 500) -> str:
    """Several connections: one summary row each; the first ``details`` also as full reports.

    Full reports carry byte views and a ladder (tens of kB each), so by default only the
    table is drawn: display ``reports[i]`` for one connection.
    """
    reports = list(reports)
    rows = []
    for r in reports[:max_rows]:
        end_colour = "#c62828" if "fatal" in r.end else ""
        first = (f"<a href='#tlsscope-conn-{r.id}'>#{r.id}</a>" if r in reports[:details] else f"#{r.id}")
        rows.append(
            "<tr>" + "".join(f"<td style='padding:1px 8px'>{c}</td>" for c in (
                first, escape(f"{r.client} → {r.server}"),
                escape(r.sni or "—"), escape(r.version_name or "—"), escape(r.cipher_suite_name or "—"),
                f"<span style='color:{end_colour}'>{escape(r.end)}</span>")) + "</tr>")
    head = "".join(f"<th style='text-align:left;padding:1px 8px'>{h}</th>"
                   for h in ("#", "client → server", "SNI", "version", "cipher suite", "ended"))
    out = [f"<div style='{_CSS}'><div><b>{len(reports)} TLS connection{'s' if len(reports) != 1 else ''}</b></div>"
           f"<table style='border-collapse:collapse'><tr>{head}</tr>{''.join(rows)}</table>"]
    if len(reports) > max_rows:
        out.append(f"<div>… {len(reports) - max_rows} more connections</div>")
    for r in reports[:details]:
        out.append(f"<details><summary>#{r.id} {escape(r.sni or str(r.server))}</summary>"
                   f"{report_html(r)}</details>")
    out.append("</div>")
    return "".join(out)

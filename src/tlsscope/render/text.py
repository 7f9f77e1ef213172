"""The readable per-connection view for the terminal (rich)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.text import Text
from rich.tree import Tree

from ..findings import Severity
from ..jsonable import to_jsonable
from .describe import certificate_line, connection_facts, describe_message, when

_SEV_STYLE = {Severity.INFO: "dim", Severity.LOW: "cyan", Severity.MEDIUM: "yellow",
              Severity.HIGH: "red", Severity.CRITICAL: "bold red"}


def _header(r) -> Text:
    t = Text()
    t.append(f"#{r.id} ", style="bold")
    t.append(f"{r.client} → {r.server}", style="bold")
    if r.sni:
        t.append(f"  SNI {r.sni}", style="bold cyan")
    t.append(f"  {when(r.ts_start)}", style="dim")
    t.append("\n")
    facts = connection_facts(r)
    t.append("   " + " · ".join(facts) + "\n")
    who = getattr(r.state, "alert_likely_from", None)
    hint = f" (probably after an encrypted alert from the {who})" if who else ""
    t.append(f"   ended: {r.end}{hint}", style="red" if "fatal" in r.end else "")
    fp = r.fingerprints
    if fp.get("ja4") or fp.get("ja3"):
        t.append("\n   ")
        if fp.get("ja4"):
            t.append(f"JA4 {fp['ja4']}  ", style="dim")
        if fp.get("ja3"):
            t.append(f"JA3 {fp['ja3']}  ", style="dim")
        if fp.get("ja3s"):
            t.append(f"JA3S {fp['ja3s']}", style="dim")
    if r.starttls:
        t.append(f"\n   STARTTLS: {r.starttls['client']['bytes']} + {r.starttls['server']['bytes']} "
                 "plaintext bytes before TLS", style="dim")
    for h in r.http[:4]:
        t.append(f"\n   HTTP {h['from']}: {h['line']}", style="green")
    return t


def _fields_tree(node: Tree, value, depth: int = 0) -> None:
    if depth > 6:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                _fields_tree(node.add(f"[dim]{k}[/dim]"), v, depth + 1)
            else:
                node.add(Text(f"{k}: {v}"))
    elif isinstance(value, list):
        for i, v in enumerate(value[:64]):
            if isinstance(v, (dict, list)):
                _fields_tree(node.add(f"[dim][{i}][/dim]"), v, depth + 1)
            else:
                node.add(Text(str(v)))
        if len(value) > 64:
            node.add(Text(f"… {len(value) - 64} more", style="dim"))


def render_report(r, *, verbose: bool = False) -> Group:
    t0 = r.ts_start
    tree = Tree(_header(r), guide_style="dim")
    for e in r.timeline:
        arrow = "C→S" if e.from_client else "S→C"
        style = ""
        if e.content_type == 21:
            style = "red"
        elif e.encrypted and not e.decrypted:
            style = "dim"
        elif e.error:
            style = "bold red"
        label = Text(f"+{e.ts - t0:8.4f}  {arrow}  ", style="dim")
        label.append(describe_message(e), style=style)
        node = tree.add(label)
        if verbose and e.message is not None:
            _fields_tree(node, to_jsonable(e.message))
    for side in ("server", "client"):
        certs = r.certificates.get(side)
        if certs is None:
            why = ("QUIC carries them in encrypted Handshake packets; give --keylog" if r.quic is not None
                   else "TLS 1.3 encrypts them; give --keylog")
            tree.add(Text(f"{side} certificates: not visible ({why})", style="dim"))
        elif certs:
            cn = tree.add(Text(f"{side} certificates ({len(certs)})", style="bold"))
            for c in certs:
                cn.add(Text(certificate_line(c)))
    if r.certificate_checks:
        for side, chk in r.certificate_checks.items():
            if chk is None:
                continue
            if chk.status == "ok":
                line = Text(f"✔ {side} chain trusted: " + " → ".join(chk.path), style="green")
            elif chk.status == "failed":
                first = chk.findings[0].message if chk.findings else chk.openssl_status
                line = Text(f"✘ {side} chain: {chk.failure} — {first}", style="bold red")
            else:
                why = chk.findings[0].message if chk.findings else chk.status
                line = Text(f"· {side} chain {chk.status.replace('_', ' ')}: {why}", style="dim")
            node = tree.add(line)
            for f in chk.findings:
                node.add(Text(f"[{f.severity}] {f.code}: {f.message}", style=_SEV_STYLE.get(f.severity, "")))
    if r.decryption:
        d = r.decryption
        fv = d.get("finished_verified") or {}
        fin = ", ".join(f"{k} Finished {'verified ✔' if v else 'FAILED ✘' if v is False else 'not checked'}"
                        for k, v in fv.items())
        tree.add(Text(f"decryption: {d.get('records_decrypted', 0)} records decrypted"
                      + (f", {d.get('failures')} failures" if d.get("failures") else "")
                      + (f"; {fin}" if fin else ""), style="cyan"))
    ad = r.application_data
    if ad["client"]["records"] or ad["server"]["records"]:
        tree.add(Text(f"application data: client {ad['client']['records']} records/{ad['client']['bytes']} B, "
                      f"server {ad['server']['records']} records/{ad['server']['bytes']} B", style="dim"))
    if r.findings:
        fn = tree.add(Text("findings", style="bold"))
        for f in sorted(r.findings, key=lambda f: -f.severity):
            fn.add(Text(f"[{f.severity}] {f.code}: {f.message}", style=_SEV_STYLE.get(f.severity, "")))
    return Group(tree, Text(""))


def print_report(console: Console, r, *, verbose: bool = False) -> None:
    console.print(render_report(r, verbose=verbose))

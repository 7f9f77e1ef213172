"""Ladder (sequence) diagrams of one connection: SVG for notebooks and files, text art for terminals.

Two lifelines, client on the left and server on the right; one arrow per timeline
entry (or per flight with ``flights=True``), top to bottom in capture order, each
labelled with the time since the first packet and the message's key facts
(``describe_message``). Cleartext handshake messages are solid, encrypted ones
dashed grey, decrypted ones dashed green, application data thin grey, alerts red.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from html import escape

from .describe import connection_facts, describe_message, when

__all__ = ["Arrow", "ladder_arrows", "ladder_rich", "ladder_svg", "ladder_text", "start_time"]

# kind -> (stroke colour, dash pattern, stroke width, label colour)
_STYLE = {
    "handshake": ("#1f4e79", "", 1.6, "#111111"),
    "decrypted": ("#2e7d32", "7 3", 1.6, "#1b5e20"),
    "encrypted": ("#8a8a8a", "5 4", 1.4, "#6b6b6b"),
    "appdata": ("#b0b0b0", "2 3", 1.2, "#7a7a7a"),
    "alert": ("#c62828", "", 2.2, "#c62828"),
    "malformed": ("#c62828", "3 2", 2.0, "#c62828"),
}
# Text art: the shaft of each kind of arrow.
_SHAFT = {"handshake": "─", "decrypted": "╌", "encrypted": "┄", "appdata": "┈", "alert": "━", "malformed": "╍"}
_RICH = {"handshake": "", "decrypted": "green", "encrypted": "dim", "appdata": "dim", "alert": "bold red",
         "malformed": "bold red"}


@dataclass(frozen=True, slots=True)
class Arrow:
    """One arrow of the ladder: a message, or a flight of consecutive messages one way."""

    from_client: bool
    ts: float
    kind: str                  # handshake | decrypted | encrypted | appdata | alert | malformed
    labels: tuple[str, ...]    # one line per message
    kinds: tuple[str, ...]     # the kind of each message (a flight can mix them)
    indexes: tuple[int, ...]   # timeline indexes drawn by this arrow
    fatal: bool = False


def _kind(e) -> str:
    if e.error:
        return "malformed"
    if e.content_type == 21:
        return "alert"
    if e.encrypted and not e.decrypted:
        return "encrypted"      # TLS 1.3 hides its handshake in application_data records too
    if e.content_type == 23:
        return "appdata"
    if e.decrypted:
        return "decrypted"
    return "handshake"


def _fatal(e) -> bool:
    return e.content_type == 21 and e.message is not None and e.message.level == 2


def ladder_arrows(report, *, flights: bool = False) -> list[Arrow]:
    """The arrows of the diagram, in order (one per timeline entry, or per flight)."""
    arrows: list[Arrow] = []
    for i, e in enumerate(report.timeline):
        k = _kind(e)
        label = describe_message(e)
        if flights and arrows:
            last = arrows[-1]
            if (last.from_client == e.from_client and k not in ("appdata", "alert")
                    and last.kinds[-1] not in ("appdata", "alert") and e.ts - last.ts < 1.0):
                kinds = (*last.kinds, k)
                kind = last.kind if all(x == last.kind for x in kinds) else \
                    ("malformed" if "malformed" in kinds else "handshake" if "handshake" in kinds else k)
                arrows[-1] = Arrow(last.from_client, last.ts, kind, (*last.labels, label), kinds,
                                   (*last.indexes, i), last.fatal)
                continue
        arrows.append(Arrow(e.from_client, e.ts, k, (label,), (k,), (i,), _fatal(e)))
    return arrows


def start_time(report) -> float:
    """Origin of the relative times: the first packet (or the first message, if earlier)."""
    t0 = report.ts_start
    if report.timeline:
        t0 = min(t0, report.timeline[0].ts)
    return t0


def _facts(report) -> str:
    return " · ".join(connection_facts(report))


def _title(report) -> str:
    t = f"#{report.id}  {report.client} → {report.server}"
    if report.sni:
        t += f"  SNI {report.sni}"
    return t


# -- SVG -------------------------------------------------------------------------------------

def ladder_svg(report, *, flights: bool = False, width: int = 980, max_arrows: int = 150) -> str:
    """A standalone SVG document of the connection's ladder diagram.

    Structure (stable, tested): ``<line class="lifeline client|server">``; per arrow a
    ``<g class="arrow KIND c2s|s2c" data-index="i,j">`` holding a ``<line class="shaft">``
    and ``<text class="label">`` lines, and ``<text class="time">``.
    """
    arrows = ladder_arrows(report, flights=flights)
    t0 = start_time(report)
    hidden = max(0, len(arrows) - max_arrows)
    arrows = arrows[:max_arrows]
    uid = f"tlsscope-{report.id}-{'f' if flights else 'm'}"
    left, right = 190, width - 110
    mid = (left + right) / 2
    chars = int((right - left - 24) / 6.3)          # ~6.3 px per character at 11 px sans-serif
    top = 96
    out: list[str] = []
    y = top + 18
    for a in arrows:
        lines: list[tuple[str, str]] = []
        for lab, k in zip(a.labels, a.kinds):
            for j, part in enumerate(textwrap.wrap(lab, chars) or [""]):
                lines.append(("    " + part if j else part, k))
        y += 14 * len(lines)
        stroke, dash, sw, colour = _STYLE[a.kind]
        x1, x2 = (left, right) if a.from_client else (right, left)
        cls = f"arrow {a.kind} {'c2s' if a.from_client else 's2c'}" + (" fatal" if a.fatal else "")
        idx = ",".join(str(i) for i in a.indexes)
        out.append(f'<g class="{cls}" data-index="{idx}">')
        out.append(f'<title>{escape(chr(10).join(a.labels))}</title>')
        ty = y - 14 * len(lines) + 2
        for text, k in lines:
            c = _STYLE[k][3]
            weight = ' font-weight="bold"' if (k == "alert" and a.fatal) or k == "malformed" else ""
            style = ' font-style="italic"' if k == "encrypted" else ""
            out.append(f'<text class="label" x="{mid:.0f}" y="{ty}" text-anchor="middle" fill="{c}"'
                       f'{weight}{style}>{escape(text)}</text>')
            ty += 14
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line class="shaft" x1="{x1}" y1="{y - 4}" x2="{x2}" y2="{y + 6}" stroke="{stroke}" '
                   f'stroke-width="{sw}"{dash_attr} marker-end="url(#{uid}-{a.kind})"/>')
        out.append(f'<text class="time" x="{left - 14}" y="{y + 4}" text-anchor="end" fill="#777">'
                   f'+{(a.ts - t0) * 1000:.3f} ms</text>')
        out.append("</g>")
        y += 22
    if hidden:
        out.append(f'<text class="more" x="{mid:.0f}" y="{y + 4}" text-anchor="middle" fill="#777">'
                   f'… {hidden} more arrows not drawn</text>')
        y += 22
    end_colour = "#c62828" if "fatal" in report.end else "#333"
    out.append(f'<text class="end" x="{mid:.0f}" y="{y + 14}" text-anchor="middle" fill="{end_colour}">'
               f'ended: {escape(report.end)}</text>')
    height = y + 34
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tlsscope-ladder" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<title>{escape(_title(report))}</title>',
        '<defs>',
    ]
    for kind, (stroke, _, _, _) in _STYLE.items():
        head.append(f'<marker id="{uid}-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
                    f'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
                    f'fill="{stroke}"/></marker>')
    head.append('</defs>')
    head.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>')
    head.append(f'<text class="title" x="12" y="20" font-size="13" font-weight="bold">'
                f'{escape(_title(report))}</text>')
    head.append(f'<text class="facts" x="12" y="38" fill="#333">{escape(_facts(report))} · '
                f'{escape(when(report.ts_start))}</text>')
    for x, role, ep in ((left, "client", report.client), (right, "server", report.server)):
        head.append(f'<rect x="{x - 70}" y="{top - 44}" width="140" height="36" rx="4" fill="#eef3f8" '
                    f'stroke="#1f4e79"/>')
        head.append(f'<text x="{x}" y="{top - 29}" text-anchor="middle" font-weight="bold">{role}</text>')
        head.append(f'<text x="{x}" y="{top - 15}" text-anchor="middle" fill="#333">{escape(str(ep))}</text>')
        head.append(f'<line class="lifeline {role}" x1="{x}" y1="{top - 8}" x2="{x}" y2="{height - 30}" '
                    f'stroke="#444" stroke-width="1"/>')
    return "\n".join([*head, *out, "</svg>"]) + "\n"


# -- text art ------------------------------------------------------------------------------------

def _text_lines(report, width: int, flights: bool) -> list[list[tuple[str, str]]]:
    """Lines of (text, rich style) segments."""
    width = max(width, 50)
    tcol = 12                          # "+1234.567ms " column
    left, right = tcol + 1, width - 2  # lifeline columns
    inner = right - left - 1           # room between the lifelines
    lines: list[list[tuple[str, str]]] = [[(t, "bold")] for t in textwrap.wrap(_title(report), width)]
    lines += [[(t, "")] for t in textwrap.wrap(_facts(report), width, initial_indent="  ",
                                               subsequent_indent="  ")]
    lines.append([("", "")])

    def row(time: str, body: str, style: str = "", centre: bool = False) -> list[tuple[str, str]]:
        body = body.center(inner) if centre else body.ljust(inner)
        return [(time.rjust(tcol - 1) + " ", "dim"), ("│", "dim"), (body[:inner], style), ("│", "dim")]

    c_label, s_label = f"client {report.client}", f"server {report.server}"
    header = " " * max(0, left - len(c_label) // 2) + c_label
    if len(header) + 2 + len(s_label) <= width:
        # the server's label ends over its lifeline (or at the right margin)
        header = header.ljust(max(len(header) + 2, min(width, right + 1 + len(s_label) // 2) - len(s_label)))
        lines.append([(header + s_label, "bold")])
    else:                              # long (IPv6) addresses: one line each
        lines.append([(c_label[:width], "bold")])
        lines.append([(s_label[:width].rjust(width), "bold")])
    lines.append(row("", ""))
    t0 = start_time(report)
    for a in ladder_arrows(report, flights=flights):
        dt = a.ts - t0
        t = f"+{dt * 1000:.3f}ms" if dt < 10 else f"+{dt:.3f}s"
        first = True
        for lab, k in zip(a.labels, a.kinds):
            for part in textwrap.wrap(lab, inner - 4) or [""]:
                lines.append(row(t if first else "", "  " + part if a.from_client else (part + "  ").rjust(inner),
                                 _RICH[k]))
                first = False
        shaft = _SHAFT[a.kind] * (inner - 1)
        arrow = shaft + "▶" if a.from_client else "◀" + shaft
        lines.append(row("", arrow, _RICH[a.kind]))
    lines.append(row("", ""))
    lines += [[(t, "red" if "fatal" in report.end else "")] for t in textwrap.wrap(f"ended: {report.end}", width)]
    return lines


def ladder_text(report, width: int = 100, *, flights: bool = False) -> str:
    """The ladder as plain text art (one arrow per message, lifelines drawn with │)."""
    return "\n".join("".join(t for t, _ in line).rstrip() for line in _text_lines(report, width, flights)) + "\n"


def ladder_rich(report, width: int = 100, *, flights: bool = False):
    """The text ladder as a rich ``Text`` (alerts red, encrypted messages dim)."""
    from rich.text import Text

    out = Text()
    for n, line in enumerate(_text_lines(report, width, flights)):
        if n:
            out.append("\n")
        for text, style in line:
            out.append(text, style=style or None)
    return out

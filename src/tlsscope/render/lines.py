"""One line per connection (--summary, --json), each starting with the connection number."""

from __future__ import annotations

from typing import Callable

LINE_FORMATS = ("summary", "json")


def line_renderer(fmt: str) -> Callable:
    """report -> its line, newline included."""
    if fmt == "summary":
        from .summary import summary_line
        return lambda r: summary_line(r) + "\n"
    if fmt == "json":
        from ..report import report_json_text
        return lambda r: report_json_text(r) + "\n"
    raise ValueError(f"format must be one of {LINE_FORMATS}")


def line_head(fmt: str, conn_id: int) -> str:
    """How a line of ``fmt`` for connection ``conn_id`` starts (tlsscope.parallel renumbers)."""
    return f"#{conn_id}" if fmt == "summary" else f'{{"id": {conn_id}'

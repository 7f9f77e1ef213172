"""`tlsscope read` on every capture of the shared corpus: no exception, every output renders.

The CLI runs the same code (argument parsing aside); a handful of files go through the CLI too.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from rich.console import Console

import tlsscope
from conftest import CORPUS, corpus_manifest, need_corpus
from tlsscope.render.summary import summary_line
from tlsscope.render.text import render_report

CAPTURES = corpus_manifest()


@pytest.mark.parametrize("entry", CAPTURES, ids=[c["id"] for c in CAPTURES])
def test_corpus_capture_decodes_and_renders(entry):
    need_corpus()
    path = CORPUS / entry["file"]
    console = Console(file=io.StringIO(), width=120)
    n = 0
    for report in tlsscope.read(path):
        n += 1
        json.dumps(report.to_json())
        summary_line(report)
        console.print(render_report(report, verbose=True))
    # the manifest's tshark summary counts TLS handshakes over TCP and UDP; we need the TCP and QUIC
    # ones (DTLS is not decoded)
    tcp_tls = entry["tshark"].get("negotiated") and not entry["tshark"].get("dtls_versions")
    if tcp_tls or entry["tshark"].get("quic_versions"):
        assert n > 0, "tshark sees TLS handshakes here, tlsscope found no TLS connection"
    if entry["tshark"].get("quic_versions"):
        assert any(r.transport == "quic" for r in tlsscope.read(path)), "no QUIC connection decoded"


def test_cli_on_a_few_corpus_files():
    need_corpus()
    picks = [c for c in CAPTURES if c["id"] in ("IL-002", "SC-003", "J4-005", "SV-006", "AK-027")]
    for c in picks:
        p = subprocess.run([sys.executable, "-m", "tlsscope", "read", "--summary", str(CORPUS / c["file"])],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (c["id"], p.stderr)
        assert "Traceback" not in p.stderr
        assert p.stdout.strip(), c["id"]

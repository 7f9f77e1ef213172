"""Golden renderings: text and JSON of two captures, reviewed by eye once, then compared.

After an intended change of the output, regenerate with
``TLSSCOPE_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

import tlsscope
from conftest import CAPTURES, CORPUS, need_corpus
from tlsscope.render.summary import summary_line
from tlsscope.render.text import render_report

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TLSSCOPE_UPDATE_GOLDEN") == "1"


def _cases():
    s01 = CAPTURES / "01-classic-sha1-mtls12"
    s02 = CAPTURES / "02-modern-mtls13"
    return {
        "01-classic-sha1-mtls12": (s01 / "capture.pcap",
                                   dict(keylog=s01 / "keylog.txt", ca=s01 / "ca.pem", seclevel=0)),
        "02-modern-mtls13": (s02 / "capture.pcap", dict(keylog=s02 / "keylog.txt", ca=s02 / "ca.pem")),
        "illustrated-tls13-no-keys": (CORPUS / "syncsynchalt_illustrated-tls13/captures/capture.pcap", {}),
    }


def _render(path: Path, kw: dict) -> tuple[str, str]:
    reports = tlsscope.read_all(path, **kw)
    console = Console(file=io.StringIO(), width=100, color_system=None, highlight=False)
    for r in reports:
        console.print(render_report(r))
    text = console.file.getvalue() + "".join(summary_line(r) + "\n" for r in reports)
    js = "".join(json.dumps(r.to_json(), indent=1, sort_keys=True) + "\n" for r in reports)
    return text, js


@pytest.mark.parametrize("name", list(_cases()))
def test_golden(name: str):
    path, kw = _cases()[name]
    if name.startswith("illustrated"):
        need_corpus()
    text, js = _render(path, kw)
    for suffix, got in ((".txt", text), (".json", js)):
        golden = GOLDEN / f"{name}{suffix}"
        if UPDATE or not golden.exists():
            golden.write_text(got, encoding="utf-8")
            if not UPDATE:
                pytest.fail(f"{golden} did not exist: written now, review it and commit")
        assert got == golden.read_text(encoding="utf-8"), f"{golden} differs (see module docstring)"

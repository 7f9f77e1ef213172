"""report_json_text is json.dumps(report_json(r)) byte for byte, only faster."""

from __future__ import annotations

import json

from conftest import CAPTURES, CORPUS, corpus_manifest, need_corpus
import tlsscope
from tlsscope.report import report_json, report_json_text


def _check(reports) -> int:
    n = 0
    for r in reports:
        assert report_json_text(r) == json.dumps(report_json(r), ensure_ascii=False), r
        n += 1
    return n


def test_captures():
    n = 0
    for pcap in sorted(CAPTURES.glob("*/capture.pcap")):
        ca = sorted(pcap.parent.glob("ca*.pem"))
        keylog = pcap.parent / "keylog.txt"
        n += _check(tlsscope.read(pcap, keylog=str(keylog) if keylog.is_file() else None,
                                  ca=str(ca[0]) if ca else None, seclevel=0))
        n += _check(tlsscope.read(pcap))
    assert n > 50


def test_corpus():
    need_corpus()
    n = 0
    for entry in corpus_manifest():
        path = CORPUS / entry["file"]
        if path.is_file():
            n += _check(tlsscope.read(path))
    assert n > 300

"""Shared test helpers: where the corpus and the oracle tools are."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "captures"
CORPUS = Path(os.environ.get("TLSSCOPE_CORPUS", ROOT.parent / "shared" / "corpus")).resolve()
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_corpus() -> Path:
    """The shared corpus; skipped outside CI when absent, a failure in CI."""
    if not (CORPUS / "manifest.json").is_file():
        if IN_CI:
            pytest.fail(f"corpus missing at {CORPUS} (CI=true: oracles may not be skipped)")
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS


def need_tool(name: str) -> str:
    """Path of an oracle/peer tool; skipped outside CI when absent, a failure in CI."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed (CI=true: oracles may not be skipped)")
        pytest.skip(f"{name} not installed")
    return path


def corpus_manifest() -> list[dict]:
    if not (CORPUS / "manifest.json").is_file():
        return []
    return json.loads((CORPUS / "manifest.json").read_text())["captures"]

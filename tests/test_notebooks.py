"""The notebooks run top to bottom from a clean kernel, and the connection table behind them.

Each notebook in ``notebooks/`` is executed with nbclient (fresh ``python3`` kernel, working
directory ``notebooks/`` as in Jupyter); any cell error fails the test. The committed copies
must carry their outputs, so they read on GitHub without running.
Needs the ``notebooks`` extra (nbclient, ipykernel, pandas, matplotlib).
"""

from __future__ import annotations

import json
import math

import pytest

import tlsscope
from conftest import CAPTURES, IN_CI, ROOT, need_corpus

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Notebooks that read the shared corpus by path (not bundled): skipped outside CI without it.
USES_CORPUS = {"04-many-connections", "05-tls-over-udp"}
EXPECTED = {"01-tls12-mutual-auth-walkthrough", "02-tls13-with-keylog", "03-why-did-the-handshake-fail",
            "04-many-connections", "05-tls-over-udp"}


def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        if IN_CI:
            pytest.fail(f"{module} is not installed (pip install '.[notebooks]')")
        pytest.skip(f"{module} not installed")


def test_all_notebooks_present():
    assert EXPECTED <= {p.stem for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_with_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "no code cells"
    # executed in order, top to bottom, by one kernel
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), counts
    outputs = [o for c in code for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert sum(1 for c in code if c["outputs"]) >= len(code) * 0.6, "most cells should show their result"
    assert path.stat().st_size < 600_000, "keep committed outputs small"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path):
    nbformat = _need("nbformat")
    nbclient = _need("nbclient")
    _need("ipykernel")
    _need("pandas")
    _need("matplotlib")
    if path.stem in USES_CORPUS:
        need_corpus()
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:                      # start from nothing: no stale outputs
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    client = nbclient.NotebookClient(nb, timeout=90, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()                           # raises CellExecutionError on the first failing cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors


# -- the connection table (tlsscope.to_dataframe) --------------------------------------------

def test_to_dataframe_columns_and_values():
    pd = _need("pandas")
    d = CAPTURES / "04-server-cert-rejected"
    reports = tlsscope.read_all(d / "capture.pcap", ca=d / "ca.pem", keylog=d / "keylog.txt")
    df = tlsscope.to_dataframe(reversed(reports))
    from tlsscope.table import COLUMNS
    assert list(df.columns) == list(COLUMNS)
    assert list(df.id) == sorted(r.id for r in reports)          # sorted by connection number
    assert isinstance(df.start.dtype, pd.DatetimeTZDtype)
    row = df[df.sni == "expired.tlsscope.test"].iloc[0]
    assert row.fatal_alert == "certificate_expired" and row.server_chain == "failed"
    assert row.version_name == "TLS 1.2" and not row.handshake_complete
    assert math.isnan(row.handshake_ms) and row.server_response_ms > 0
    ok = df[df.end == "close_notify from client"].iloc[0]          # curl: name mismatch, completed
    assert ok.handshake_complete and ok.handshake_ms >= ok.server_response_ms > 0
    assert ok.ja4 and ok.ja3 and len(ok.ja3) == 32


def test_handshake_times_tls13_without_keys():
    from tlsscope.table import handshake_times
    d = need_corpus() / "syncsynchalt_illustrated-tls13/captures"
    blind = tlsscope.read_all(d / "capture.pcap")[0]
    keyed = tlsscope.read_all(d / "capture.pcap", keylog=d / "keylog.txt")[0]
    # ClientHello at +0.835 ms, ServerHello at +57.738 ms, client Finished flight at +62.197 ms
    for r in (blind, keyed):
        response, handshake = handshake_times(r)
        assert response == pytest.approx(56.903, abs=0.01)
        assert handshake == pytest.approx(61.362, abs=0.01)


def test_connection_rows_without_pandas():
    from tlsscope.table import connection_rows
    d = need_corpus() / "syncsynchalt_illustrated-tls12/captures"
    (row,) = connection_rows(tlsscope.read(d / "capture.pcap"))
    assert row["cipher_suite_name"] == "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA" and row["group_name"] == "x25519"
    assert row["server_certificates"] == 1 and row["server_subject"] == "CN=example.ulfheim.net,C=US"
    assert row["sni"] == "example.ulfheim.net" and row["client_ip"] == "::1"

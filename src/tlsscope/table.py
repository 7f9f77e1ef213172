"""Connections as a table: one row per ConnectionReport, for pandas (an optional extra).

``connection_rows`` gives plain dicts (no pandas needed); ``to_dataframe`` wraps them
in a DataFrame with a datetime ``start`` column, ready for ``groupby`` and plots.
"""

from __future__ import annotations

import datetime
from typing import Iterable

from .connection import TLS13
from .registry import alert_description_name, cipher_suite_name, group_name, version_name

__all__ = ["COLUMNS", "connection_row", "connection_rows", "handshake_times", "to_dataframe"]

COLUMNS = (
    "id", "start", "client_ip", "client_port", "server_ip", "server_port", "sni",
    "version", "version_name", "cipher_suite", "cipher_suite_name", "group", "group_name", "alpn",
    "resumed", "hello_retry_request", "handshake_complete", "client_certificate_requested",
    "client_certificate_sent", "server_certificates", "server_subject", "server_chain", "client_chain",
    "server_response_ms", "handshake_ms", "alerts", "fatal_alert", "end",
    "client_app_bytes", "server_app_bytes", "findings", "max_severity", "ja3", "ja3s", "ja4", "history",
)


def handshake_times(report) -> tuple[float | None, float | None]:
    """(server response, handshake) in milliseconds since the first ClientHello.

    The server response is the ServerHello. The handshake ends with the client's
    Finished: in TLS 1.2 the client's first encrypted handshake message (or a
    decrypted Finished), in TLS 1.3 the client's first encrypted record after the
    ServerHello (its Finished, or its Certificate flight that ends with Finished).
    None when that point is not in the capture.
    """
    tl = report.timeline
    ch = next((e for e in tl if e.from_client and e.name == "ClientHello"), None)
    if ch is None:
        return None, None
    sh_i = next((i for i, e in enumerate(tl) if not e.from_client and e.name == "ServerHello"
                 and not (e.message is not None and getattr(e.message, "is_hello_retry_request", False))), None)
    if sh_i is None:
        return None, None
    response = (tl[sh_i].ts - ch.ts) * 1000
    done = None
    for e in tl[sh_i + 1:]:
        if not e.from_client or e.content_type in (20, 21):
            continue
        if report.version == TLS13:
            if e.encrypted:                   # decrypted entries keep encrypted=True
                done = e
                break
        elif e.name in ("Finished", "Encrypted Handshake Message"):
            done = e
            break
    if done is None or not report.handshake_complete:
        return response, None
    return response, (done.ts - ch.ts) * 1000


def _severity_name(findings) -> str | None:
    if not findings:
        return None
    return str(max(f.severity for f in findings))


def connection_row(r) -> dict:
    """One report as a flat dict of plain values (codes and names side by side)."""
    response, handshake = handshake_times(r)
    server_certs = r.certificates.get("server")
    checks = r.certificate_checks or {}
    fatal = next((a for a in r.alerts if a.level == 2 and a.description is not None), None)
    fp = r.fingerprints or {}
    return {
        "id": r.id,
        "start": datetime.datetime.fromtimestamp(r.ts_start, datetime.timezone.utc),
        "client_ip": r.client.ip, "client_port": r.client.port,
        "server_ip": r.server.ip, "server_port": r.server.port,
        "sni": r.sni,
        "version": r.version,
        "version_name": version_name(r.version) if r.version is not None else None,
        "cipher_suite": r.cipher_suite,
        "cipher_suite_name": cipher_suite_name(r.cipher_suite) if r.cipher_suite is not None else None,
        "group": r.group,
        "group_name": group_name(r.group) if r.group is not None else None,
        "alpn": r.alpn,
        "resumed": r.resumed,
        "hello_retry_request": r.hello_retry_request is not None,
        "handshake_complete": r.handshake_complete,
        "client_certificate_requested": r.client_certificate_requested,
        "client_certificate_sent": r.client_certificate_sent,
        "server_certificates": None if server_certs is None else len(server_certs),
        "server_subject": server_certs[0].subject if server_certs else None,
        "server_chain": checks["server"].status if checks.get("server") is not None else None,
        "client_chain": checks["client"].status if checks.get("client") is not None else None,
        "server_response_ms": response,
        "handshake_ms": handshake,
        "alerts": len(r.alerts),
        "fatal_alert": alert_description_name(fatal.description) if fatal is not None else None,
        "end": r.end,
        "client_app_bytes": r.application_data["client"]["bytes"],
        "server_app_bytes": r.application_data["server"]["bytes"],
        "findings": len(r.findings),
        "max_severity": _severity_name(r.findings),
        "ja3": fp.get("ja3"), "ja3s": fp.get("ja3s"), "ja4": fp.get("ja4"),
        "history": r.history,
    }


def connection_rows(reports: Iterable) -> list[dict]:
    return [connection_row(r) for r in reports]


def to_dataframe(reports: Iterable):
    """A pandas DataFrame with one row per connection (columns: ``COLUMNS``), sorted by id.

    pandas is an optional dependency: ``pip install 'tlsscope[notebooks]'``.
    """
    try:
        import pandas as pd
    except ImportError as e:   # pragma: no cover - depends on the environment
        raise ImportError("tlsscope.to_dataframe needs pandas: pip install 'tlsscope[notebooks]'") from e
    rows = sorted(connection_rows(reports), key=lambda d: d["id"])
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("version", "cipher_suite", "group", "server_certificates"):
        df[col] = df[col].astype("Int64")
    for col in ("server_response_ms", "handshake_ms"):
        df[col] = df[col].astype("float64")
    return df

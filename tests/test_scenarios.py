"""Regression on the real-peer captures: tlsscope's report matches each scenario.json.

Each scenario is read twice: without keys (what a passive observer sees) and with the
key log / RSA key, CA and CRL (what tlsscope shows when given everything).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tlsscope
from conftest import CAPTURES

SCENARIOS = sorted(CAPTURES.glob("*/scenario.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _reports(sdir: Path, sc: dict, *, keys: bool) -> dict[int, dict]:
    # expectations come from `openssl verify`, which applies no security level
    kw: dict = {"seclevel": 0}
    if sc.get("ca"):
        kw["ca"] = [sdir / p for p in sc["ca"]]
    if sc.get("crl"):
        kw["crl"] = [sdir / p for p in sc["crl"]]
    if keys:
        if sc.get("keylog"):
            kw["keylog"] = sdir / sc["keylog"]
        if sc.get("rsa_key"):
            kw["rsa_key"] = sdir / sc["rsa_key"]
    return {r.client.port: r.to_json() for r in tlsscope.read(sdir / sc["capture"], **kw)}


def _alerts(report: dict, *, with_encryption_flag: bool) -> list[dict]:
    out = []
    for a in report["alerts"]:
        d = {"from": a["from"], "description": a["description"]}
        if with_encryption_flag:
            d["encrypted"] = a["encrypted"] and not a["decrypted"]
        out.append(d)
    return out


def _count(certs):
    return None if certs is None else len(certs)


def test_there_are_scenarios():
    assert len(SCENARIOS) >= 12, [p.parent.name for p in SCENARIOS]


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.parent.name for p in SCENARIOS])
def test_scenario_matches_report(path: Path):
    sc = _load(path)
    sdir = path.parent
    plain = _reports(sdir, sc, keys=False)
    full = _reports(sdir, sc, keys=True)
    assert len(plain) == len(sc["connections"]), sorted(plain)
    for conn in sc["connections"]:
        port = conn["client_port"]
        where = f"{sc['name']} client port {port}"
        r, k = plain[port], full[port]
        assert r["sni"] == conn["sni"], where
        assert (r["version"] or {}).get("name") == conn["version"], where
        assert (r["cipher_suite"] or {}).get("name") == conn["cipher_suite"], where
        # scenario.json: null = no Certificate message in clear; tlsscope: [] = none sent, null = encrypted
        hidden = conn["version"] == "TLS 1.3" and not conn["resumed"]
        for side in ("server", "client"):
            got, want = _count(r["certificates"][side]), conn[f"{side}_certificates"]
            assert got == want if hidden else (got or 0) == (want or 0), (where, side)
        assert r["client_certificate_requested"] == conn["client_certificate_requested"] or \
            (r["version"]["name"] == "TLS 1.3" and not r["client_certificate_requested"]), where
        want = [{k: a[k] for k in ("from", "description", "encrypted")} for a in conn["alerts"]]
        assert _alerts(r, with_encryption_flag=True) == want, where
        assert r["resumed"] == conn["resumed"], where
        assert (r["hello_retry_request"] is not None) == conn["hello_retry_request"], where
        assert (r["starttls"] is not None) == conn["starttls"], where
        # with keys: what decryption reveals
        dec = conn.get("decrypted") or {}
        for side in ("server", "client"):
            if f"{side}_certificates" in dec:
                assert (_count(k["certificates"][side]) or 0) == (dec[f"{side}_certificates"] or 0), (where, side)
        if "alerts" in dec:
            want = [{k_: a[k_] for k_ in ("from", "description")} for a in dec["alerts"]]
            assert _alerts(k, with_encryption_flag=False) == want, where
        if (sc.get("keylog") or sc.get("rsa_key")) and any(m["encrypted"] for m in r["messages"]):
            assert k["decryption"] is not None and k["decryption"]["records_decrypted"] > 0, where
            assert k["decryption"]["failures"] == 0, where
        # certificate verdicts against the scenario's CA
        if sc.get("ca"):
            for side in ("server", "client"):
                check = k["certificate_checks"][side]
                assert check["status"] == conn["expected_verdict"][side], (where, side, check)
                want = conn["expected_openssl_status"][side]
                if check["status"] in ("ok", "failed"):
                    assert check["openssl_status"] == want, (where, side, check)
            for side, want in (conn.get("expected_verdict_without_keys") or {}).items():
                assert r["certificate_checks"][side]["status"] == want, (where, side)
        if conn.get("expected_ocsp"):
            # the stapled OCSP response (TLS 1.2 CertificateStatus, TLS 1.3 CertificateEntry) as openssl ocsp reads it
            server_codes = {f["code"] for f in k["certificate_checks"]["server"]["findings"]}
            assert {"good": "ocsp_good", "revoked": "ocsp_revoked"}[conn["expected_ocsp"]] in server_codes, where
        codes = {f["code"] for f in k["findings"]}
        for chk in (k.get("certificate_checks") or {}).values():
            if chk:
                codes |= {f["code"] for f in chk["findings"]}
        missing = set(conn["findings"]) - codes
        assert not missing, (where, missing, sorted(codes))

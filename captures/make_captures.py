#!/usr/bin/env python3
"""Regenerate the TLS captures in this directory from nothing.

    python captures/make_captures.py [--only NAME ...] [--out DIR] [--list]

Per scenario: a fresh PKI (openssl CLI), real peers on 127.0.0.1 / ::1 (openssl s_server/s_client,
nginx, curl, gnutls-cli, Python ssl), tcpdump on lo, and in captures/NN-name/: capture.pcap,
keylog.txt, the PKI files used and scenario.json. Needs root (or CAP_NET_RAW) for tcpdump.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen.capture import RecordSeen, read_dtls_records, read_records, read_syns, read_udp_openers  # noqa: E402
from gen.proc import StepFailed, run  # noqa: E402
from gen.scenarios import SCENARIOS, Ctx  # noqa: E402

BASE_PORT = 24300   # scenario NN listens on 24300 + 10*NN ...: below the ephemeral range (32768+)


def openssl_status(cwd: Path, cert: str | None, ca: list[str], crl: list[str], untrusted: str | None,
                   purpose: str | None = None, hostname: str | None = None) -> str:
    """`openssl verify` of a presented leaf against the scenario's CA (and CRL): 'ok', an error, or 'absent'.

    ``purpose`` (sslserver/sslclient) and ``hostname`` (the SNI, server side) make it judge what a
    TLS peer judges; no -auth_level is given, so no security level applies (see 'seclevel')."""
    if cert is None:
        return "absent"
    cmd = ["openssl", "verify"]
    if purpose:
        cmd += ["-purpose", purpose]
    if hostname:
        cmd += ["-verify_hostname", hostname]
    for c in ca:
        cmd += ["-CAfile", c]
    if untrusted:
        cmd += ["-untrusted", untrusted]
    if crl:
        cmd.append("-crl_check")
        for c in crl:
            cmd += ["-CRLfile", c]
    done = run(cmd + [cert], cwd, check=False)
    text = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode == 0 and text.strip().endswith("OK"):
        return "ok"
    for line in text.splitlines():
        if line.startswith("error ") and " lookup: " in line:
            return line.split(" lookup: ", 1)[1].strip()
    return text.strip().splitlines()[-1] if text.strip() else f"exit {done.returncode}"


ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 40: "handshake_failure",
          42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
          46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied",
          50: "decode_error", 51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security",
          80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled", 100: "no_renegotiation",
          109: "missing_extension", 110: "unsupported_extension", 112: "unrecognized_name",
          115: "unknown_psk_identity", 116: "certificate_required", 120: "no_application_protocol"}


def ocsp_status(cwd: Path, response: str, ca: list[str], cert: str) -> str:
    """`openssl ocsp -respin`: the certificate's status in a DER OCSP response ('good', 'revoked', ...),
    the response verified against the scenario's CA."""
    cmd = ["openssl", "ocsp", "-respin", response, "-issuer", ca[0], "-cert", cert, "-no_nonce"]
    for c in ca:
        cmd += ["-CAfile", c]
    done = run(cmd, cwd, check=False)
    text = (done.stdout + done.stderr).decode(errors="replace")
    if "Response verify OK" not in text:
        return text.strip().splitlines()[0] if text.strip() else f"exit {done.returncode}"
    for line in text.splitlines():
        if line.startswith(f"{cert}: "):
            return line.split(": ", 1)[1].strip()
    return text.strip().splitlines()[-1] if text.strip() else f"exit {done.returncode}"


def set_expectations(c: dict, directory: Path, ca: list[str], crl: list[str]) -> None:
    """The oracle's verdicts for one connection: `openssl verify` as a TLS peer would run it."""
    status = {"server": openssl_status(directory, c["server_cert_file"], ca, crl, c.get("chain_file"),
                                       "sslserver", c["sni"]),
              "client": openssl_status(directory, c["client_cert_file"], ca, crl, None, "sslclient")}
    c["expected_openssl_status"] = status
    tls13 = c["version"] == "TLS 1.3"
    verdict, hidden = {}, {}
    for side in ("server", "client"):
        sent = status[side] != "absent" and not (side == "server" and c["resumed"])
        verdict[side] = ("ok" if status[side] == "ok" else "failed") if sent else "absent"
        # TLS 1.3 hides Certificate and CertificateRequest alike: without keys an observer
        # cannot tell a missing certificate from an encrypted one
        hidden[side] = "not_visible" if tls13 and not c["resumed"] else verdict[side]
        if tls13 and side == "client" and any(a["from"] == "client" and not a["encrypted"]
                                              for a in c["alerts"]):
            hidden[side] = "absent"   # the client aborted in clear: it never sent an encrypted flight
    if c.get("ocsp_file"):
        # the stapled response as `openssl ocsp` reads it; tlsscope fails a chain whose staple says
        # revoked (openssl verify does not look at OCSP, so expected_openssl_status stays as it is)
        c["expected_ocsp"] = ocsp_status(directory, c["ocsp_file"], ca, c["server_cert_file"])
        if c["expected_ocsp"] == "revoked" and verdict["server"] == "ok":
            verdict["server"] = "failed"
            if hidden["server"] == "ok":
                hidden["server"] = "failed"
    c["expected_verdict"] = verdict
    c["expected_verdict_without_keys"] = hidden


def refresh_expectations(scenario: dict, directory: Path) -> dict:
    """Recompute the oracle verdicts of an existing scenario.json (no new capture)."""
    for c in scenario["connections"]:
        set_expectations(c, directory, scenario.get("ca", ["ca.pem"]), scenario.get("crl", []))
    return scenario


def settle_alerts(name: str, i: int, c: dict, records: list[RecordSeen]) -> None:
    """Check the declared alerts against the alert records on the wire and put them in wire order.

    Who sends close_notify first is a race between the peers, so the declared lists are multisets;
    plaintext alerts are checked down to their description."""
    wire = [r for r in records if r.content_type == 21]
    declared, ordered = list(c["alerts"]), []
    for r in wire:
        plain = r.length == 2
        desc = ALERTS.get(r.head[1], str(r.head[1])) if plain and len(r.head) == 2 else None
        match = next((a for a in declared if a["from"] == r.side and a["encrypted"] != plain
                      and (not plain or a["description"] == desc)), None)
        if match is None:
            raise StepFailed(f"{name} connection {i}: alert on the wire from {r.side} "
                             f"({desc or 'encrypted'}) not declared; declared {c['alerts']}")
        declared.remove(match)
        ordered.append(match)
    if declared:
        raise StepFailed(f"{name} connection {i}: declared alerts not on the wire: {declared}")
    c["alerts"] = ordered
    inner = c.get("decrypted", {}).get("alerts")
    if inner:
        last_app = {side: max((r.packet for r in records if r.side == side and r.content_type == 23), default=-1)
                    for side in ("client", "server")}
        free = list(wire)

        def position(a: dict) -> float:
            r = next((r for r in free if r.side == a["from"]), None)
            if r is not None:
                free.remove(r)
                return r.packet
            return last_app[a["from"]] + 0.5   # a TLS 1.3 alert hidden in the side's last application record
        c["decrypted"]["alerts"] = [a for _, a in sorted(((position(a), k), a) for k, a in enumerate(inner))]


def finish(name: str, ctx: Ctx, spec: dict) -> dict:
    out = ctx.out
    udp = spec.get("transport") in ("udp", "quic")   # DTLS, QUIC: flows open with their first client datagram
    syns = read_udp_openers(out / "capture.pcap", set(ctx.ports)) if udp else read_syns(out / "capture.pcap")
    conns = spec["connections"]
    if len(syns) != len(conns):
        raise StepFailed(f"{name}: {len(syns)} connections captured, {len(conns)} expected: {syns}")
    ca, crl = spec.get("ca", ["ca.pem"]), spec.get("crl", [])
    keylog = out / "keylog.txt"
    if spec.get("transport") == "quic":      # no TLS records: the alerts are as declared (CONNECTION_CLOSE)
        records = None
    else:
        records = (read_dtls_records if udp else read_records)(out / "capture.pcap", set(ctx.ports))
    for i, (c, syn) in enumerate(zip(conns, syns)):
        if records is not None:
            settle_alerts(name, i, c, records[i] if i < len(records) else [])
        c["client_port"] = syn.client_port
        c.setdefault("client_ip", syn.client_ip)
        c["server_ip"], c["server_port"] = syn.server_ip, syn.server_port
        set_expectations(c, out, ca, crl)
    return {
        "name": name,
        "description": spec["description"],
        "capture": "capture.pcap",
        **({"transport": spec["transport"]} if udp else {}),
        "keylog": "keylog.txt" if keylog.is_file() and keylog.stat().st_size else None,
        "ca": ca,
        "crl": crl,
        "rsa_key": spec.get("rsa_key"),
        "notes": spec.get("notes", []),
        "ports": ctx.ports,
        "connections": conns,
    }


def generate(name: str, out_root: Path) -> Path:
    index = int(name[:2])
    out = out_root / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix=f"tlsscope-{name}-") as work:
        ctx = Ctx(out=out, work=Path(work), base_port=BASE_PORT + 10 * index)
        spec = SCENARIOS[name](ctx)
        scenario = finish(name, ctx, spec)
    (out / "scenario.json").write_text(json.dumps(scenario, indent=2) + "\n")
    return out


def tool_versions() -> dict[str, str]:
    cmds = {"openssl": ["openssl", "version"], "nginx": ["nginx", "-v"], "curl": ["curl", "--version"],
            "gnutls-cli": ["gnutls-cli", "--version"], "tcpdump": ["tcpdump", "--version"]}
    found = {}
    for tool, cmd in cmds.items():
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=10)
            found[tool] = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired):
            found[tool] = "missing"
    found["python"] = sys.version.split()[0]
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", metavar="NAME", help="scenario names or their NN prefixes")
    p.add_argument("--out", type=Path, default=HERE, help="where the NN-name directories go (default: here)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--check", action="store_true", help="afterwards compare each scenario.json with tshark")
    a = p.parse_args(argv)
    if a.list:
        print("\n".join(SCENARIOS))
        return 0
    names = list(SCENARIOS)
    if a.only:
        wanted = set(a.only)
        names = [n for n in names if n in wanted or n[:2] in wanted]
        unknown = wanted - {n for n in names} - {n[:2] for n in names}
        if unknown:
            p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    print("tools:", json.dumps(tool_versions()), flush=True)
    failed = []
    for name in names:
        start = time.monotonic()
        try:
            out = generate(name, a.out)
            print(f"{name}: ok ({time.monotonic() - start:.1f}s) -> {out}", flush=True)
            if a.check:
                from gen.oracle import compare
                problems = compare(out, json.loads((out / "scenario.json").read_text()))
                for line in problems:
                    print(f"  tshark disagrees: {line}", flush=True)
                if problems:
                    failed.append(name)
        except StepFailed as exc:
            failed.append(name)
            print(f"{name}: FAILED ({time.monotonic() - start:.1f}s)\n{exc}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""What tshark (the oracle) sees in a capture, per TCP connection; used to check scenario.json.

`tshark_view(scenario_dir, scenario, with_keys)` runs tshark -T json once and folds the frames into
one summary dict per TCP stream, in stream order (= the order of the connections in scenario.json).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3",
            0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3"}
HRR_RANDOM = "cf:21:ad:74:e5:9a:61:11:be:1d:8c:02:1e:65:b8:91:c2:a2:11:16:7a:bb:8c:5e:07:9e:09:e2:c8:a8:33:9c"
TIMEOUT = 60


@lru_cache(maxsize=None)
def value_names(field: str) -> dict[int, str]:
    """tshark's own name table for an integer field (`tshark -G values`)."""
    out = subprocess.run([shutil.which("tshark") or "tshark", "-G", "values"], capture_output=True,
                         timeout=TIMEOUT).stdout.decode(errors="replace")
    names = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "V" and parts[1] == field:
            names[int(parts[2], 0)] = parts[3]
    return names


def decode_as(scenario: dict) -> list[str]:
    if scenario.get("transport") == "quic":
        return [a for port in sorted({c["server_port"] for c in scenario["connections"]})
                for a in ("-d", f"udp.port=={port},quic")]
    if scenario.get("transport") == "udp":
        return [a for port in sorted({c["server_port"] for c in scenario["connections"]})
                for a in ("-d", f"udp.port=={port},dtls")]
    args = []
    smtp = {c["server_port"] for c in scenario["connections"] if c.get("plaintext_prefix") == "smtp"}
    for port in sorted({c["server_port"] for c in scenario["connections"]}):
        args += ["-d", f"tcp.port=={port},{'smtp' if port in smtp else 'tls'}"]
    return args


def run_tshark(directory: Path, scenario: dict, *, keylog: bool, rsa_key: bool = False) -> list[dict]:
    cmd = [shutil.which("tshark") or "tshark", "-n", "-r", str(directory / scenario["capture"]), "-T", "json",
           "--no-duplicate-keys", *decode_as(scenario), "-o", "tls.desegment_ssl_records:TRUE",
           "-o", "tls.desegment_ssl_application_data:TRUE"]
    if keylog and scenario.get("keylog"):
        cmd += ["-o", f"tls.keylog_file:{directory / scenario['keylog']}"]
    if rsa_key and scenario.get("rsa_key"):
        cmd += ["-o", f'uat:rsa_keys:"{directory / scenario["rsa_key"]}",""']
    done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace"))
    return json.loads(done.stdout or b"[]")


def _walk(node, key: str):
    """Every value stored under `key` anywhere below node, in document order (lists flattened)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield from (v if isinstance(v, list) else [v])
            else:
                yield from _walk(v, key)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, key)


def _as_list(v) -> list:
    return v if isinstance(v, list) else ([] if v is None else [v])


def tshark_view(directory: Path, scenario: dict, *, keylog: bool, rsa_key: bool = False) -> list[dict]:
    frames = run_tshark(directory, scenario, keylog=keylog, rsa_key=rsa_key)
    server_ports = {c["server_port"] for c in scenario["connections"]}
    udp = scenario.get("transport") in ("udp", "quic")
    quic = scenario.get("transport") == "quic"
    streams: dict[int, dict] = {}
    for frame in frames:
        layers = frame["_source"]["layers"]
        if quic:          # QUIC: handshake messages in CRYPTO frames, TLS alerts in CONNECTION_CLOSE
            layers = dict(layers)
            layers["dtls"] = [{"tls.record": _quic_records(q)} for q in _as_list(layers.pop("quic", None))]
        if udp:           # DTLS: the same fields under "dtls." names, per UDP stream
            layers = dtls_as_tls(layers)
            if "udp" not in layers:
                continue
            tcp = {k.replace("udp.", "tcp.", 1): v for k, v in layers["udp"].items()}
            tcp["tcp.len"] = 0
            layers["tls"] = layers.pop("dtls", [])
        tcp = tcp if udp else layers.get("tcp")
        if not tcp:
            continue
        n = int(tcp["tcp.stream"])
        src, dst = int(tcp["tcp.srcport"]), int(tcp["tcp.dstport"])
        side = "server" if src in server_ports else "client"
        ip = layers.get("ip") or layers.get("ipv6") or {}
        s = streams.setdefault(n, {
            "client_port": dst if side == "server" else src, "server_port": src if side == "server" else dst,
            "client_ip": ip.get("ip.dst" if side == "server" else "ip.src",
                                ip.get("ipv6.dst" if side == "server" else "ipv6.src")),
            "sni": None, "version": None, "cipher_suite": None, "server_certificates": None,
            "client_certificates": None, "client_certificate_requested": False, "alerts": [],
            "hello_retry_request": False, "resumed": False, "client_hellos": 0, "server_hellos": 0,
            "handshakes": [], "payload_before_tls": False, "http_status": [], "_tls_seen": False,
            "_server_kx": False})
        if int(tcp.get("tcp.len", 0)) > 0 and "tls" not in layers and not s["_tls_seen"]:
            s["payload_before_tls"] = True
        for code in _walk(layers.get("http", {}), "http.response.code"):
            s["http_status"].append(int(code))
        for tls in _as_list(layers.get("tls")):
            for record in _walk(tls, "tls.record"):
                if not isinstance(record, dict):
                    continue
                s["_tls_seen"] = True
                _record(s, side, record)
    views = []
    for n in sorted(streams):
        s = streams[n]
        if s["version"] in ("TLS 1.0", "TLS 1.1", "TLS 1.2") and s["server_hellos"] and not s["_server_kx"]:
            s["resumed"] = True
        views.append({k: v for k, v in s.items() if not k.startswith("_")})
    return views


def _quic_records(quic) -> list[dict]:
    """A QUIC packet's TLS content as the record-shaped dicts _record reads: its handshake messages,
    and a CONNECTION_CLOSE carrying a TLS alert (RFC 9001 §4.8) as an alert."""
    out = []
    if not isinstance(quic, dict):
        return out
    for frame in _as_list(quic.get("quic.frame")):
        if not isinstance(frame, dict):
            continue
        for tls in _as_list(frame.get("tls")):
            hs = [h for h in _walk(tls, "tls.handshake") if isinstance(h, dict)]
            if hs:
                out.append({"tls.record.content_type": "22", "tls.handshake": hs})
        alert = frame.get("quic.cc.error_code.tls_alert")
        if alert is not None:
            out.append({"tls.record.content_type": "21", "tls.alert_message": {"tls.alert_message.desc": alert}})
    return out


def dtls_as_tls(node):
    """tshark's DTLS JSON with "dtls." field names as "tls." ones, for the TLS folding below."""
    if isinstance(node, dict):
        return {(k.replace("dtls.", "tls.", 1) if k.startswith("dtls.") else k): dtls_as_tls(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [dtls_as_tls(v) for v in node]
    return node


def _record(s: dict, side: str, record: dict) -> None:
    ctype = int(record.get("tls.record.content_type", record.get("tls.record.opaque_type", 0)))
    if ctype == 21 or "tls.alert_message" in record:
        descs = list(_walk(record, "tls.alert_message.desc"))
        if descs:
            name = value_names("tls.alert_message.desc").get(int(descs[0]), descs[0])
            s["alerts"].append({"from": side, "description": _snake(name), "record": "alert"})
        else:
            s["alerts"].append({"from": side, "description": None, "record": "alert"})
        return
    for hs in _walk(record, "tls.handshake"):
        if not isinstance(hs, dict) or "tls.handshake.type" not in hs:
            continue
        htype = int(hs["tls.handshake.type"])
        s["handshakes"].append((side, htype))
        if htype == 1:
            s["client_hellos"] += 1
            if s["sni"] is None:
                names = list(_walk(hs, "tls.handshake.extensions_server_name"))
                s["sni"] = names[0] if names else None
        elif htype == 2:
            if hs.get("tls.handshake.random") == HRR_RANDOM:
                s["hello_retry_request"] = True
                continue
            if s["server_hellos"]:
                s["server_hellos"] += 1   # renegotiation: keep the first negotiation
                continue
            s["server_hellos"] += 1
            versions = list(_walk(hs, "tls.handshake.extensions.supported_version"))
            version = int(versions[0], 0) if versions else int(hs["tls.handshake.version"], 0)
            s["version"] = VERSIONS.get(version, hex(version))
            suite = int(hs["tls.handshake.ciphersuite"], 0)
            s["cipher_suite"] = value_names("tls.handshake.ciphersuite").get(suite, hex(suite))
            ext_types = [int(t) for t in _walk(hs, "tls.handshake.extension.type")]
            if 41 in ext_types:
                s["resumed"] = True
            s["server_extensions"] = ext_types
        elif htype == 11:
            count = len(list(_walk(hs, "tls.handshake.certificate_length")))
            frag, whole = hs.get("tls.handshake.fragment_length"), hs.get("tls.handshake.length")
            if not count and frag is not None and frag != whole:
                continue      # DTLS: one fragment of a message tshark shows reassembled in a later frame
            key = f"{side}_certificates"
            if s[key] is None:
                s[key] = count
            if side == "server":
                s["_server_kx"] = True
        elif htype == 12 and side == "server":
            s["_server_kx"] = True
        elif htype == 13:
            s["client_certificate_requested"] = True


def _snake(name: str) -> str:
    # tshark says "Unknown CA", "Certificate Expired", "Close Notify": make them RFC identifiers
    special = {"Unknown CA": "unknown_ca", "Bad Certificate": "bad_certificate"}
    return special.get(name, name.lower().replace(" ", "_"))


def _alerts(items) -> list[tuple]:
    return [(a["from"], a["description"]) for a in items]


def compare(directory: Path, scenario: dict, *, alert_order: bool = True) -> list[str]:
    """Every disagreement between scenario.json and tshark, as readable lines (empty: all agree).

    alert_order=False compares the alerts as multisets: which of two close_notify alerts goes first
    is a race between the peers, fixed in a committed capture but not when regenerating."""
    order = (lambda xs: xs) if alert_order else (lambda xs: sorted(xs, key=repr))
    problems = []
    clear = tshark_view(directory, scenario, keylog=False)
    keyed = tshark_view(directory, scenario, keylog=True) if scenario.get("keylog") else None
    conns = scenario["connections"]
    if len(clear) != len(conns):
        return [f"tshark sees {len(clear)} connections, scenario.json lists {len(conns)}"]
    for i, (c, v) in enumerate(zip(conns, clear)):
        def check(what: str, expected, seen) -> None:
            # where tshark is shown to be wrong, scenario.json says why ("tshark_differs": {what: why})
            if expected != seen and what not in c.get("tshark_differs", {}):
                problems.append(f"connection {i} ({c['client_port']}): {what}: scenario.json {expected!r}, "
                                f"tshark {seen!r}")
        check("client_port", c["client_port"], v["client_port"])
        check("sni", c["sni"], v["sni"])
        check("version", c["version"], v["version"])
        if c["cipher_suite"] is not None:
            check("cipher_suite", c["cipher_suite"], v["cipher_suite"])
        check("server_certificates", c["server_certificates"], v["server_certificates"])
        check("client_certificates", c["client_certificates"], v["client_certificates"])
        if c["version"] != "TLS 1.3":
            check("client_certificate_requested", c["client_certificate_requested"], v["client_certificate_requested"])
        check("alerts", order(_alerts(c["alerts"])), order(_alerts(v["alerts"])))
        check("hello_retry_request", c["hello_retry_request"], v["hello_retry_request"])
        check("resumed", c["resumed"], v["resumed"])
        check("starttls", c["starttls"], v["payload_before_tls"])
        if "client_ip" in c:
            check("client_ip", c["client_ip"], v["client_ip"])
        if keyed is None:
            continue
        k, d = keyed[i], c.get("decrypted") or {}
        if c["version"] == "TLS 1.3":
            check("client_certificate_requested (keys)", c["client_certificate_requested"],
                  k["client_certificate_requested"])
        for key in ("server_certificates", "client_certificates", "client_hellos"):
            if key in d:
                check(f"{key} (keys)", d[key], k[key])
        if "alerts" in d:
            check("alerts (keys)", order(_alerts(d["alerts"])), order(_alerts(k["alerts"])))
        if "http_status" in d:
            check("http_status (keys)", [d["http_status"]], k["http_status"][:1])
    return problems

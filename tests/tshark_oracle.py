"""tshark as an oracle for the TLS handshake facts of a capture (used by the differential test).

One tshark run per capture, filtered to the TCP frames that carry a ClientHello, ServerHello,
Certificate, alert or ChangeCipherSpec (``-T json --no-duplicate-keys``). The JSON is walked per record and per
handshake message (a frame may carry several of each; SSLv2-format hellos have no content type),
and the messages are grouped per ``tcp.stream`` into connections with the same facts that
:func:`report_facts` reads from a tlsscope report, so that the two compare with ``==``.

Facts per connection (key -> value), every value a plain tuple/str/int so diffs print well:

* ``client_hellos`` / ``server_hellos``: one tuple per message in clear, in order
  (the second ClientHello after a HelloRetryRequest and cleartext renegotiations included);
  ClientHello = (cipher_suites, extension types in order, SNI, ALPN, supported_versions),
  ServerHello = (is_hrr, cipher_suite, selected_version, extension types in order).
  They are split into one field per column by :func:`fields`.
* ``server_certificates``: the number of certificates of each server Certificate message seen.
* ``alerts``: (from_client, level, description) of every alert in clear.
* ``change_cipher_specs``: the sender (from_client) of every ChangeCipherSpec record, in order
  (plaintext, TLS 1.3 compatibility, or encrypted inside a renegotiation: the type is visible).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from dataclasses import dataclass, field

FILTER = ("tcp && (tls.handshake.type == 1 || tls.handshake.type == 2 || tls.handshake.type == 11"
          " || tls.alert_message || tls.record.content_type == 20)")
TIMEOUT = 120
HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()

SUPPORTED_VERSIONS, SERVER_NAME, ALPN = 43, 0, 16


def run_tshark(tshark: str, path, decode_as: dict[int, str] | None = None, *,
               out_of_order: bool = False) -> list[dict]:
    """The filtered frames of one capture as tshark's JSON (a list of packets).

    ``out_of_order``: tshark 4.0 does not reassemble out-of-order TCP segments by default
    and then misses the handshakes they carry; turned on everywhere, it stalls on other
    captures (SV-040: TCP Fast Open with a reused port), so the caller decides per capture.
    """
    cmd = [tshark, "-n", "-r", str(path), "-Y", FILTER, "-T", "json", "--no-duplicate-keys",
           "-J", "frame ip ipv6 tcp tls",
           "-o", f"tcp.reassemble_out_of_order:{'TRUE' if out_of_order else 'FALSE'}"]
    for port, proto in sorted((decode_as or {}).items()):
        cmd += ["-d", f"tcp.port=={port},{proto}"]
    done = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT)
    if done.returncode != 0 and not done.stdout:
        raise RuntimeError(f"tshark failed on {path}: {done.stderr.decode(errors='replace')[-500:]}")
    out = done.stdout.strip()
    return json.loads(out) if out else []


# -- walking tshark's JSON ---------------------------------------------------------------

def _items(value) -> list:
    """--no-duplicate-keys turns repeated keys into lists: always iterate."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _int(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


def _find(node, key: str) -> list:
    """Every value under ``key`` anywhere below ``node``, in document order, lists flattened."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.extend(_items(v))
            else:
                found.extend(_find(v, key))
    elif isinstance(node, list):
        for v in node:
            found.extend(_find(v, key))
    return found


def _extensions(hs: dict) -> list[tuple[int, dict]]:
    """(type, subtree) of every extension of a hello, in wire order.

    With --no-duplicate-keys two extensions whose labels are equal ("Extension: Reserved
    (GREASE) (len=0)") become one list at the position of the first: ``ambiguous_order``
    tells when that happened (then the order is only known up to those duplicates).
    """
    exts = []
    for k, v in hs.items():
        if k.startswith("Extension: "):
            for sub in _items(v):
                if isinstance(sub, dict) and "tls.handshake.extension.type" in sub:
                    exts.append((_int(sub["tls.handshake.extension.type"]), sub))
    return exts


def _ambiguous_order(hs: dict) -> bool:
    return any(k.startswith("Extension: ") and isinstance(v, list) and len(v) > 1 for k, v in hs.items())


def _ext(exts, ext_type: int):
    for t, sub in exts:
        if t == ext_type:
            return sub
    return None


def _client_hello(hs: dict) -> tuple:
    suites = tuple(_int(s) for s in _find(hs.get("tls.handshake.ciphersuites", {}), "tls.handshake.ciphersuite"))
    exts = _extensions(hs)
    sni_ext = _ext(exts, SERVER_NAME)
    sni = None
    if sni_ext is not None:
        names = _find(sni_ext, "tls.handshake.extensions_server_name")
        sni = names[0] if names else None
    alpn_ext = _ext(exts, ALPN)
    alpn = tuple(_find(alpn_ext, "tls.handshake.extensions_alpn_str")) if alpn_ext is not None else ()
    sv_ext = _ext(exts, SUPPORTED_VERSIONS)
    versions = (tuple(_int(v) for v in _find(sv_ext, "tls.handshake.extensions.supported_version"))
                if sv_ext is not None else ())
    return (suites, tuple(t for t, _ in exts), sni, alpn, versions)


def _server_hello(hs: dict) -> tuple:
    random = bytes.fromhex(hs.get("tls.handshake.random", "").replace(":", ""))
    exts = _extensions(hs)
    suite = hs.get("tls.handshake.ciphersuite")
    version = _int(hs["tls.handshake.version"]) if "tls.handshake.version" in hs else None
    sv_ext = _ext(exts, SUPPORTED_VERSIONS)
    if sv_ext is not None:
        sel = _find(sv_ext, "tls.handshake.extensions.supported_version")
        if sel:
            version = _int(sel[0])
    return (random == HRR_RANDOM, _int(suite) if suite is not None else None, version,
            tuple(t for t, _ in exts))


def _sslv2_client_hello(rec: dict) -> tuple:
    specs = tuple(_int(s) for s in _find(rec.get("tls.handshake.ciphersuites", {}), "tls.handshake.cipherspec"))
    return (specs, (), None, (), ())


def _certificate_count(hs: dict) -> int:
    # TLS <= 1.2: tls.handshake.certificate per ASN.1Cert; TLS 1.3 wraps each in an entry.
    return len(_find(hs.get("tls.handshake.certificates", {}), "tls.handshake.certificate"))


@dataclass
class OracleConnection:
    """What tshark saw of one TCP stream."""

    stream: int
    endpoints: tuple                 # sorted ((ip, port), (ip, port))
    client: tuple | None = None      # (ip, port) of the ClientHello sender (or SH receiver)
    first_frame: int = 0
    facts: dict = field(default_factory=lambda: {"client_hellos": [], "server_hellos": [],
                                                   "server_certificates": [], "alerts": [],
                                                   "change_cipher_specs": []})
    client_random: bytes | None = None  # of the first ClientHello, to match connections
    ambiguous_extension_order: bool = False
    # (frame, from, kind) of every message, for messages in the assertion text
    log: list = field(default_factory=list)


def _ip(text: str) -> str:
    return ipaddress.ip_address(text).compressed


def _frame_endpoints(layers: dict):
    ipl = layers.get("ip") or layers.get("ipv6")
    tcp = layers.get("tcp")
    if ipl is None or tcp is None:
        return None
    ipl = _items(ipl)[-1]          # tunnels: the innermost IP header carries the TCP segment
    tcp = _items(tcp)[-1]
    if "ip.src" in ipl:
        src, dst = ipl["ip.src"], ipl["ip.dst"]
    else:
        src, dst = ipl["ipv6.src"], ipl["ipv6.dst"]
    return ((_ip(src), int(tcp["tcp.srcport"])), (_ip(dst), int(tcp["tcp.dstport"])),
            int(tcp["tcp.stream"]))


def _records(layers: dict):
    for tls in _items(layers.get("tls")):
        if not isinstance(tls, dict):
            continue
        for rec in _items(tls.get("tls.record")):
            if isinstance(rec, dict):
                yield rec


def connections(frames: list[dict]) -> list[OracleConnection]:
    """tshark's frames grouped into connections (by tcp.stream), in order of their first frame."""
    conns: dict[int, OracleConnection] = {}
    pending: list = []      # messages seen before the roles are known: (conn, src, kind, value)
    for pkt in frames:
        layers = pkt["_source"]["layers"]
        ends = _frame_endpoints(layers)
        if ends is None:
            continue
        src, dst, stream = ends
        frame_no = int(_items(layers.get("frame"))[0].get("frame.number", 0)) if layers.get("frame") else 0
        conn = conns.get(stream)
        if conn is None:
            conn = conns[stream] = OracleConnection(stream, tuple(sorted((src, dst))), first_frame=frame_no)
        for rec in _records(layers):
            if "tls.record.content_type" not in rec:
                if rec.get("tls.handshake.type") == "1":          # SSLv2-format ClientHello
                    if conn.client is None:
                        conn.client = src
                    pending.append((conn, src, "client_hellos", _sslv2_client_hello(rec)))
                    conn.log.append((frame_no, src, "SSLv2ClientHello"))
                continue
            ct = rec["tls.record.content_type"]
            if ct == "22":
                for hs in _items(rec.get("tls.handshake")):
                    if not isinstance(hs, dict) or "tls.handshake.type" not in hs:
                        continue                                    # encrypted handshake message
                    mt = hs["tls.handshake.type"]
                    if mt == "1":
                        if conn.client is None:
                            conn.client = src
                        if conn.client_random is None and "tls.handshake.random" in hs:
                            conn.client_random = bytes.fromhex(hs["tls.handshake.random"].replace(":", ""))
                        pending.append((conn, src, "client_hellos", _client_hello(hs)))
                        conn.ambiguous_extension_order |= _ambiguous_order(hs)
                    elif mt == "2":
                        if conn.client is None:
                            conn.client = dst
                        pending.append((conn, src, "server_hellos", _server_hello(hs)))
                        conn.ambiguous_extension_order |= _ambiguous_order(hs)
                    elif mt == "11":
                        pending.append((conn, src, "certificates", _certificate_count(hs)))
                    else:
                        continue
                    conn.log.append((frame_no, src, f"handshake {mt}"))
            elif ct == "20":
                pending.append((conn, src, "change_cipher_specs", None))
                conn.log.append((frame_no, src, "ChangeCipherSpec"))
            elif ct == "21":
                for alert in _items(rec.get("tls.alert_message")):
                    if isinstance(alert, dict) and "tls.alert_message.desc" in alert:
                        pending.append((conn, src, "alerts", (int(alert["tls.alert_message.level"]),
                                                              int(alert["tls.alert_message.desc"]))))
                        conn.log.append((frame_no, src, "alert"))
    for conn, src, kind, value in pending:
        if conn.client is None:
            # neither hello seen (mid-stream capture): the lower port is the server
            conn.client = max(conn.endpoints, key=lambda e: e[1])
        from_client = src == conn.client
        if kind == "certificates":
            if not from_client:
                conn.facts["server_certificates"].append(value)
        elif kind == "alerts":
            conn.facts["alerts"].append((from_client, *value))
        elif kind == "change_cipher_specs":
            conn.facts[kind].append(from_client)
        else:
            conn.facts[kind].append(value)
    return sorted(conns.values(), key=lambda c: c.first_frame)


# -- the same facts from tlsscope ------------------------------------------------------

def _ext_types(msg) -> tuple:
    return tuple(e.type for e in getattr(msg, "extensions", ()) or ())


def tlsscope_client_hello(msg) -> tuple:
    from tlsscope import hello
    if type(msg).__name__ == "SSLv2ClientHello":
        return (tuple(msg.cipher_specs), (), None, (), ())
    alpn = tuple(p.decode("utf-8", "replace") for p in hello.alpn_protocols(msg))
    return (tuple(msg.cipher_suites), _ext_types(msg), hello.server_name(msg), alpn,
            tuple(hello.supported_versions(msg)))


def tlsscope_server_hello(msg) -> tuple:
    if type(msg).__name__ == "DraftHelloRetryRequest":
        return (True, msg.cipher_suite, msg.server_version, _ext_types(msg))
    return (bool(msg.is_hello_retry_request), msg.cipher_suite, msg.selected_version, _ext_types(msg))


def report_facts(report) -> dict:
    """The oracle's facts read from a tlsscope ConnectionReport (its ordered timeline)."""
    facts = {"client_hellos": [], "server_hellos": [], "server_certificates": [], "alerts": [],
             "change_cipher_specs": []}
    for e in report.timeline:
        if e.content_type == 20:
            facts["change_cipher_specs"].append(e.from_client)
        if e.content_type == 22 and e.message is not None and (not e.encrypted or e.decrypted):
            name = type(e.message).__name__
            if e.handshake_type == 1 and name in ("ClientHello", "SSLv2ClientHello"):
                facts["client_hellos"].append(tlsscope_client_hello(e.message))
            elif e.handshake_type in (2, 6) and name in ("ServerHello", "DraftHelloRetryRequest"):
                facts["server_hellos"].append(tlsscope_server_hello(e.message))
            elif e.handshake_type == 11 and name == "Certificate" and not e.from_client:
                facts["server_certificates"].append(len(e.message.certificate_list))
        elif e.content_type == 21 and e.message is not None and (not e.encrypted or e.decrypted):
            a = e.message
            facts["alerts"].append((a.from_client, a.level, a.description))
    return facts


CLIENT_HELLO_FIELDS = ("cipher_suites", "extensions", "sni", "alpn", "supported_versions")
SERVER_HELLO_FIELDS = ("is_hello_retry_request", "cipher_suite", "selected_version", "extensions")


def fields(facts: dict) -> dict:
    """Facts split into the named fields compared (and listed in KNOWN_DIFFERENCES)."""
    out = {}
    for i, name in enumerate(CLIENT_HELLO_FIELDS):
        out[f"client_hello.{name}"] = [ch[i] for ch in facts["client_hellos"]]
    for i, name in enumerate(SERVER_HELLO_FIELDS):
        out[f"server_hello.{name}"] = [sh[i] for sh in facts["server_hellos"]]
    out["server_certificates"] = list(facts["server_certificates"])
    out["alerts"] = list(facts["alerts"])
    out["change_cipher_specs"] = list(facts["change_cipher_specs"])
    return out


def endpoints_of(report) -> tuple:
    c, s = report.client, report.server
    return tuple(sorted(((_ip(c.ip), c.port), (_ip(s.ip), s.port))))

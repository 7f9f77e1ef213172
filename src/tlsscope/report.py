"""ConnectionReport: the one object every output (text, JSON, notebooks) consumes."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from . import hello
from .connection_state import ConnectionState, TimelineEntry
from .findings import Finding, Severity
from .jsonable import to_jsonable
from .model import Endpoint
from .tls.context import is_tls13
from .tls.extensions import VOLATILE_EXTENSION_TYPES
from .tls.x509info import parse_certificate   # already loaded by the decoders (tls.extensions)
from .registry import (alert_description_name, alert_level_name, cipher_suite_name,
                       content_type_name, extension_name, group_name, handshake_type_name,
                       version_name)


@dataclass(slots=True, repr=False)
class ConnectionReport:
    id: int
    client: Endpoint
    server: Endpoint
    ts_start: float
    ts_end: float
    client_hello: Any
    server_hello: Any
    hello_retry_request: Any
    version: int | None
    cipher_suite: int | None
    sni: str | None
    alpn_offered: list[str]
    alpn: str | None
    group: int | None
    resumed: bool
    client_certificate_requested: bool | None  # None: not visible (TLS 1.3 without keys)
    client_certificate_sent: bool | None      # None: not visible (TLS 1.3 without keys)
    certificates: dict                        # {"server": [CertInfo], "client": [CertInfo]} ([] when none, None when not visible)
    alerts: list
    timeline: list[TimelineEntry]
    findings: list[Finding]
    end: str
    handshake_complete: bool
    application_data: dict
    certificate_checks: dict | None = None
    fingerprints: dict = field(default_factory=dict)
    history: str = ""
    decryption: dict | None = None
    http: list = field(default_factory=list)
    starttls: dict | None = None
    transport: str = "tcp"                    # "tcp" or "quic"
    quic: dict | None = None                  # QUIC: version, connection ids, packets per kind and side
    dtls: dict | None = None                  # DTLS: record version, cookies, records, retransmissions
    _state: ConnectionState | None = None

    # -- convenience ------------------------------------------------------
    @property
    def version_name(self) -> str | None:
        return None if self.version is None else version_name(self.version)

    @property
    def cipher_suite_name(self) -> str | None:
        return None if self.cipher_suite is None else cipher_suite_name(self.cipher_suite)

    @property
    def state(self) -> ConnectionState | None:
        return self._state

    def to_json(self) -> dict:
        """The JSON object of this connection, independent of every other report (safe to modify).

        ``report_json`` is the fast form the CLI serialises at once: its nested values may be
        shared between reports (decoded extensions and certificates are cached).
        """
        import json
        return json.loads(json.dumps(report_json(self)))

    def __repr__(self) -> str:
        facts = [self.version_name or "no ServerHello", self.cipher_suite_name or "", self.sni or ""]
        return f"<ConnectionReport #{self.id} {self.client} → {self.server} {' '.join(f for f in facts if f)}>"

    def _repr_html_(self) -> str:   # Jupyter: delegate to the HTML renderer (edge)
        from .render.html import report_html
        return report_html(self)


# -- building ------------------------------------------------------------------
ENCRYPTED_EXTENSIONS = 8

def _end_description(st: ConnectionState, handshake_complete: bool) -> str:
    fatal = [a for a in st.alerts if a.level == 2]
    if fatal:
        a = fatal[0]
        return f"fatal alert {alert_description_name(a.description)} from {'client' if a.from_client else 'server'}"
    closes = [a for a in st.alerts if a.description == 0]
    if closes:
        a = closes[0]
        return f"close_notify from {'client' if a.from_client else 'server'}"
    enc = [a for a in st.alerts if a.encrypted and a.description is None]
    if enc:
        a = enc[0]
        return f"encrypted alert from {'client' if a.from_client else 'server'}"
    quic_close = st.quic.get("close") if st.quic is not None else None
    if quic_close is not None:
        kind = "application error" if quic_close["application"] else "error"
        how = "NO_ERROR" if quic_close["error_code"] == 0 and not quic_close["application"] else \
            f"{kind} 0x{quic_close['error_code']:x}"
        return f"QUIC CONNECTION_CLOSE from {quic_close['from']} ({how})"
    if st.close_reason is None:
        return "still open" if handshake_complete else "handshake in progress"
    reason = {"fin": "TCP FIN", "rst": "TCP RST", "end_of_capture": "capture ended", "idle": "idle timeout",
              "reused": "port reused by a new connection", "evicted": "evicted (flow table full)"}
    text = reason.get(st.close_reason or "", st.close_reason or "unknown")
    if not handshake_complete:
        text += " before the handshake completed"
    return text


def _handshake_complete(st: ConnectionState) -> bool:
    if st.server_hello is None:
        return False
    if st.finished["client"] and st.finished["server"]:
        return True
    if st.quic is not None:
        # a QUIC client sends 1-RTT packets only once it has sent its Finished (RFC 9001 §4.1.1)
        return st.quic["packets"]["client"].get("1rtt", 0) >= 1
    if is_tls13(st.version):
        # Without keys the Finished messages are invisible: application data from both
        # sides (or the client's encrypted flight answered) shows the handshake completed.
        c = st.stats.get("client")
        s = st.stats.get("server")
        return bool(c and s and c.app_records >= 1 and s.app_records >= 2) or st.finished["client"]
    return False


def _resumed(st: ConnectionState) -> bool:
    sh, ch = st.server_hello, st.client_hello
    if sh is None or ch is None:
        return False
    if is_tls13(st.version):
        return hello.has_extension(sh, hello.PRE_SHARED_KEY)
    sid = sh.legacy_session_id
    if sid and sid == ch.legacy_session_id:
        return True
    # A ticket resumption may use an empty/new session id: no Certificate before CCS.
    names = [e.name for e in st.timeline if not e.from_client]
    try:
        i = names.index("ServerHello")
    except ValueError:
        return False
    return i + 1 < len(names) and names[i + 1] == "ChangeCipherSpec"


def _group(st: ConnectionState) -> int | None:
    if st.server_hello is not None:
        g = hello.key_share_group(st.server_hello)
        if g is not None:
            return g
    ske = st.server_key_exchange
    if ske is not None:
        return getattr(ske, "named_curve", None)
    return None


def build_report(conn_id: int, st: ConnectionState) -> ConnectionReport:
    ch = st.client_hello
    sh = st.server_hello
    handshake_complete = _handshake_complete(st)
    certs: dict = {}
    for side in ("server", "client"):
        ders = st.certificates.get(side)
        if ders is not None:
            certs[side] = [parse_certificate(d) for d in ders]
        elif is_tls13(st.version) and sh is not None and not st.finished[side]:
            # encrypted: not visible without keys (a decrypted Finished shows the whole flight was read)
            certs[side] = None
        else:
            certs[side] = []
    requested: bool | None = st.certificate_request is not None
    if is_tls13(st.version) and st.certificates.get("client") is None and not _saw_decrypted(st):
        # TLS 1.3 encrypts CertificateRequest and the client's Certificate alike
        client_sent = None
        requested = None if not _resumed(st) else False
    else:
        client_sent = bool(st.certificates.get("client"))
    alpn_sel = hello.alpn_protocols(sh) if sh is not None else []
    if not alpn_sel and sh is not None and is_tls13(st.version):
        # TLS 1.3 (and QUIC) answer ALPN in EncryptedExtensions: known when it was decrypted
        ee = next((e.message for e in st.timeline if e.handshake_type == ENCRYPTED_EXTENSIONS and not e.from_client
                   and e.message is not None), None)
        if ee is not None:
            alpn_sel = hello.alpn_protocols(ee)
    app = {}
    for side in ("client", "server"):
        s = st.stats.get(side)
        app[side] = {"records": s.app_records if s else 0, "bytes": s.app_bytes if s else 0,
                     "plaintext_bytes": s.app_plaintext_bytes if s else 0}
    starttls = None
    if st.prelude.get("client") or st.prelude.get("server"):
        starttls = {side: {"bytes": st.stats[side].prelude_bytes,
                           "text": st.prelude[side][:256].decode("latin-1")} for side in ("client", "server")}
    rep = ConnectionReport(
        # a single packet's clock can be wrong (seen: a SYN-ACK stamped 2065): take the earliest
        id=conn_id, client=st.client, server=st.server,
        ts_start=min(st.ts_first, st.timeline[0].ts) if st.timeline else st.ts_first,
        ts_end=st.ts_close if st.ts_close is not None else st.ts_last,
        client_hello=ch, server_hello=sh, hello_retry_request=st.hello_retry_request,
        version=st.version, cipher_suite=st.cipher_suite if sh is not None else None,
        sni=hello.server_name(ch) if ch is not None else None,
        alpn_offered=hello.alpn_text(hello.alpn_protocols(ch)) if ch is not None else [],
        alpn=hello.alpn_text(alpn_sel)[0] if alpn_sel else None,
        group=_group(st), resumed=_resumed(st),
        client_certificate_requested=requested, client_certificate_sent=client_sent,
        certificates=certs, alerts=list(st.alerts), timeline=st.timeline, findings=list(st.findings),
        end=_end_description(st, handshake_complete), handshake_complete=handshake_complete,
        application_data=app, http=[{"from": f, "line": l} for f, l in st.http], starttls=starttls,
        transport="quic" if st.quic is not None else "dtls" if st.dtls is not None else "tcp",
        quic=st.quic, dtls=st.dtls, _state=st)
    if st.decryption is not None:
        try:
            rep.decryption = st.decryption.status()
        except Exception:  # noqa: BLE001 - a status report must never break the report
            rep.decryption = None
    return rep


def _saw_decrypted(st: ConnectionState) -> bool:
    return any(e.decrypted for e in st.timeline)


# -- JSON ------------------------------------------------------------------------
def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


# The decoders share one Extension (and the certificate summary one CertInfo) among all the
# connections that sent the same bytes: convert each shared object once. Keyed by identity,
# holding the object so that its id cannot be reused; emptied when full. Callers get a new
# top-level dict each time; nested values are shared and read-only (json.dumps only reads them).
_JSON_CACHE: dict[int, tuple[object, dict]] = {}
_JSON_CACHE_MAX = 4096


def _cached_json(obj, convert) -> dict:
    hit = _JSON_CACHE.get(id(obj))
    if hit is not None and hit[0] is obj:
        return dict(hit[1])
    d = convert(obj)
    if len(_JSON_CACHE) >= _JSON_CACHE_MAX:
        _JSON_CACHE.clear()
    _JSON_CACHE[id(obj)] = (obj, d)
    return dict(d)


def _extension_json(ext) -> dict:
    d: dict = {"type": ext.type, "name": extension_name(ext.type), "length": len(ext.data)}
    if ext.value is not None:
        v = to_jsonable(ext.value)
        if isinstance(v, dict):
            for k, val in v.items():
                d.setdefault(k, val)
        else:
            d["value"] = v
    if ext.error is not None:
        d["error"] = str(ext.error)
    if ext.value is None and ext.error is None:
        d["data"] = ext.data.hex()
    return d


def _extensions_json(msg) -> list[dict]:
    # bodies that differ per connection are never shared: do not let them churn the cache
    return [_extension_json(ext) if ext.type in VOLATILE_EXTENSION_TYPES else _cached_json(ext, _extension_json)
            for ext in getattr(msg, "extensions", ()) or ()]


def client_hello_json(ch) -> dict | None:
    if ch is None:
        return None
    return {
        "legacy_version": ch.legacy_version,
        "random": ch.random.hex(),
        "session_id": ch.legacy_session_id.hex(),
        "cipher_suites": list(ch.cipher_suites),
        "compression_methods": list(ch.legacy_compression_methods),
        "extensions": _extensions_json(ch),
        "server_name": hello.server_name(ch),
        "alpn": hello.alpn_text(hello.alpn_protocols(ch)),
        "supported_versions": hello.supported_versions(ch),
        "supported_groups": hello.supported_groups(ch),
        "signature_algorithms": hello.signature_algorithms(ch),
        "key_share_groups": hello.client_key_share_groups(ch),
    }


def server_hello_json(sh) -> dict | None:
    if sh is None:
        return None
    if not hasattr(sh, "random"):       # DraftHelloRetryRequest (type 6, TLS 1.3 drafts < 22)
        return {"legacy_version": sh.server_version, "random": None, "session_id": None,
                "cipher_suite": sh.cipher_suite, "compression_method": None, "extensions": _extensions_json(sh),
                "selected_version": sh.server_version, "is_hello_retry_request": True,
                "downgrade_sentinel": None}
    return {
        "legacy_version": sh.legacy_version,
        "random": sh.random.hex(),
        "session_id": sh.legacy_session_id.hex(),
        "cipher_suite": sh.cipher_suite,
        "compression_method": sh.legacy_compression_method,
        "extensions": _extensions_json(sh),
        "selected_version": sh.selected_version,
        "is_hello_retry_request": bool(sh.is_hello_retry_request),
        "downgrade_sentinel": sh.downgrade_sentinel,
    }


def _code(code: int | None, namer) -> dict | None:
    return None if code is None else {"code": code, "name": namer(code)}


def _message_json(e: TimelineEntry) -> dict:
    d = {"from": "client" if e.from_client else "server", "ts": e.ts, "frame": e.frame,
         "content_type": e.content_type, "handshake_type": e.handshake_type, "name": e.name,
         "encrypted": e.encrypted and not e.decrypted, "length": e.length}
    if e.decrypted:
        d["decrypted"] = True
    if e.count > 1:
        d["records"] = e.count
    if e.error:
        d["error"] = e.error
    if e.content_type == 21 and e.message is not None:
        d["alert"] = alert_description_name(e.message.description)
    elif e.content_type == 26 and e.message is not None:     # DTLS 1.3 ACK: (epoch, sequence) pairs
        d["acknowledged"] = [list(n) for n in e.message]
    return d


def _alert_json(a) -> dict:
    return {"from": "client" if a.from_client else "server",
            "level": None if a.level is None else alert_level_name(a.level),
            "level_code": a.level,
            "description": None if a.description is None else alert_description_name(a.description),
            "description_code": a.description,
            "encrypted": a.encrypted, "decrypted": a.decrypted, "ts": a.ts, "frame": a.frame}


def chain_failed(r: ConnectionReport) -> bool:
    """Some presented chain was checked (--ca) and failed: the CLI exits with 1."""
    checks = r.certificate_checks
    return bool(checks) and any(c is not None and c.status == "failed" for c in checks.values())


def _json_head(r: ConnectionReport) -> dict:
    """The keys before "certificates" (report_json_text splices the certificates in)."""
    return {
        "id": r.id,
        "client": {"ip": r.client.ip, "port": r.client.port},
        "server": {"ip": r.server.ip, "port": r.server.port},
        "transport": r.transport,
        "start": _iso(r.ts_start), "ts_start": r.ts_start, "ts_end": r.ts_end,
        "sni": r.sni,
        "client_hello": client_hello_json(r.client_hello),
        "hello_retry_request": server_hello_json(r.hello_retry_request),
        "server_hello": server_hello_json(r.server_hello),
        "version": _code(r.version, version_name),
        "cipher_suite": _code(r.cipher_suite, cipher_suite_name),
        "group": _code(r.group, group_name),
        "alpn": r.alpn,
        "resumed": r.resumed,
        "handshake_complete": r.handshake_complete,
        "client_certificate_requested": r.client_certificate_requested,
        "client_certificate_sent": r.client_certificate_sent,
    }


def _json_tail(r: ConnectionReport) -> dict:
    """The keys after "certificates"."""
    d = {
        "certificate_checks": None if r.certificate_checks is None else
        {k: (v.to_json() if v is not None else None) for k, v in r.certificate_checks.items()},
        "alerts": [_alert_json(a) for a in r.alerts],
        "messages": [_message_json(e) for e in r.timeline],
        "application_data": r.application_data,
        "findings": [f.to_json() for f in sorted(r.findings, key=lambda f: -f.severity)],
        "end": r.end,
        "history": r.history,
        "decryption": r.decryption,
        "http": r.http,
        "starttls": r.starttls,
        "quic": r.quic,
        "dtls": r.dtls,
    }
    d.update(r.fingerprints)
    return d


def report_json(r: ConnectionReport) -> dict:
    d = _json_head(r)
    d["certificates"] = {side: (None if v is None else [_cached_json(c, to_jsonable) for c in v])
                         for side, v in r.certificates.items()}
    tail = _json_tail(r)
    for k in tail.keys() & d.keys():     # a fingerprint named like a field keeps its place, as before
        d[k] = tail.pop(k)
    d.update(tail)
    return d


def _json_encoder():
    """``json.JSONEncoder(ensure_ascii=False).encode`` without its set-up on every call: the C
    encoder made once (no cycle check: reports are trees); a line takes several encodes."""
    try:
        from json.encoder import c_make_encoder, encode_basestring
    except ImportError:      # pragma: no cover - CPython has both
        c_make_encoder = None
    if c_make_encoder is None:
        return json.JSONEncoder(ensure_ascii=False).encode

    def default(o):
        raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")

    chunks = c_make_encoder(None, default, encode_basestring, None, ": ", ", ", False, False, True)
    join = "".join
    return lambda o: join(chunks(o, 0))


_ENCODE = _json_encoder()
_CERT_TEXT: dict[int, tuple[object, str]] = {}


def _cert_text(c) -> str:
    hit = _CERT_TEXT.get(id(c))
    if hit is not None and hit[0] is c:
        return hit[1]
    text = _ENCODE(_cached_json(c, to_jsonable))
    if len(_CERT_TEXT) >= _JSON_CACHE_MAX:
        _CERT_TEXT.clear()
    _CERT_TEXT[id(c)] = (c, text)
    return text


def report_json_text(r: ConnectionReport) -> str:
    """``json.dumps(report_json(r), ensure_ascii=False)``, faster: each certificate (shared by
    many connections) is serialised once and spliced in between the keys around it."""
    tail = _json_tail(r)
    head = _json_head(r)
    if tail.keys() & head.keys() or "certificates" in tail:
        return _ENCODE(report_json(r))
    certs = ", ".join(
        f"{_ENCODE(side)}: " + ("null" if v is None else "[" + ", ".join(_cert_text(c) for c in v) + "]")
        for side, v in r.certificates.items())
    return f'{_ENCODE(head)[:-1]}, "certificates": {{{certs}}}, {_ENCODE(tail)[1:]}'


__all__ = ["ConnectionReport", "build_report", "chain_failed", "report_json", "report_json_text", "client_hello_json", "server_hello_json",
           "Severity", "content_type_name", "handshake_type_name"]

"""The streaming pipeline: capture items in, connection reports out.

capture edge -> TcpReassembler -> TlsConnection (records, handshake, decryption)
-> ConnectionState -> ConnectionReport (+ certificate checks, fingerprints, findings).
Connections are reported and dropped as soon as they close, so memory stays flat.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from .connection import TlsConnection
from .findings import Finding, Severity
from .model import CaptureNote, Datagram, DecryptionSecrets, Segment
from .report import ConnectionReport, build_report
from .tcp import TcpClose, TcpData, TcpGap, TcpNote, TcpOpen, TcpReassembler

TLS_KEYLOG_SECRETS = 0x544C534B   # pcapng DSB secrets type "TLSK"


@dataclass
class Options:
    keylog: Any = None                 # tlsscope.decrypt.KeyLog
    rsa_keys: Any = None               # tlsscope.decrypt.RsaKeys
    trust: Any = None                  # tlsscope.certs.TrustStore
    crls: Any = None                   # tlsscope.certs.CrlSet
    hostname: str | None = None        # --hostname: overrides the SNI for host-name checks
    security_level: int = 2            # --seclevel: OpenSSL SECLEVEL assumed for the verifying peer
    partial_chain: bool = False        # --partial-chain: any --ca certificate may end a chain
    x509_strict: bool = False          # --x509-strict: RFC 5280 profile violations fail the chain
    now: datetime.datetime | None = None
    # filters
    sni: str | None = None
    host: str | None = None
    port: int | None = None
    conn: int | None = None
    # called with (conn_id, from_client, plaintext) for decrypted application data (follow)
    on_plaintext: Callable[[int, bool, bytes], None] | None = None
    fingerprints: bool = True
    findings: bool = True
    # live: called with a report as soon as a connection's handshake completes
    on_handshake: Callable[[ConnectionReport], None] | None = None


@dataclass
class RunStats:
    """What the whole run saw, for the final summary."""

    segments: int = 0
    tls_connections: int = 0
    non_tls_flows: int = 0
    notes: list = field(default_factory=list)          # CaptureNote / TcpNote outside connections
    secrets_blocks: int = 0
    datagrams: int = 0                                 # UDP datagrams that looked like QUIC


def _suite_info():
    from .registry import cipher_suite_info
    return cipher_suite_info


class Analyzer:
    """Feed capture items one by one (``feed``); reports come out as connections close."""

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.tcp = TcpReassembler()
        self.stats = RunStats()
        self._conns: dict[int, TlsConnection] = {}
        self._ids: dict[int, int] = {}          # flow_id -> connection number (TLS only)
        self._next_id = 1
        self._notes: dict[int, list] = {}       # flow_id -> TcpNotes before/while the conn lives
        self._suite_info = _suite_info()
        self._keylog = self.options.keylog
        # called with the new number when a flow turns out to be TLS (tlsscope.parallel)
        self.on_detect: Callable[[int], None] | None = None
        self._udp: list = []                    # QuicFlows and DtlsFlows, made with the first datagram

    # -- input -------------------------------------------------------------
    def feed(self, item) -> list[ConnectionReport]:
        t = type(item)
        if t is Segment:
            self.stats.segments += 1
            events = self.tcp.feed(item)
            return self._events(events) if events else []     # bare ACKs: no events
        if t is Datagram:
            events = self.tcp.tick(item.ts)        # one capture clock for both transports
            out = self._events(events) if events else []
            return out + self.datagram(item)
        if t is DecryptionSecrets:
            self._secrets(item)
        elif t is CaptureNote:
            self.stats.notes.append(item)
        return []

    def finish(self) -> list[ConnectionReport]:
        return self._events(self.finish_events())

    def finish_events(self) -> list:
        """End of input: the close (and last data) events of every open flow, TCP, QUIC and DTLS,
        in the order the flows began."""
        events = self.tcp.finish()
        if self._udp and any(len(t) for t in self._udp):
            for t in self._udp:
                events += t.finish()
            self._by_first_frame(events)
        return events

    # -- QUIC and DTLS --------------------------------------------------------
    def datagram(self, dg: Datagram) -> list[ConnectionReport]:
        """One UDP datagram that may carry QUIC or DTLS (the clock already moved to its time)."""
        self.stats.datagrams += 1
        tables = self._udp
        if not tables:
            from .dtls_connection import DtlsFlows
            from .quic_connection import QuicFlows
            idle = min(self.tcp.idle_timeout, 120.0)
            tables = self._udp = [
                QuicFlows(self.tcp.reserve_id, self._udp_connection("quic"), idle_timeout=idle,
                          keylog=lambda: self._keylog),
                DtlsFlows(self.tcp.reserve_id, self._udp_connection("dtls"), idle_timeout=idle)]
            self.tcp.on_sweep = self._udp_sweep
        closes: list = []
        got = None
        for t in tables:
            if t.knows(dg):
                got = t.datagram(dg, closes)
                break
        else:
            for t in tables:                 # a new flow, if the datagram starts a handshake
                got = t.datagram(dg, closes)
                if got is not None:
                    break
        out = self._events(closes) if closes else []
        if got is None:
            return out
        fid, conn, new = got
        if new:
            self._conns[fid] = conn
        if conn.state.is_tls and fid not in self._ids:
            self._number(fid)
        return out

    def _number(self, flow_id: int) -> int:
        """The connection number of a flow found to carry TLS: given once, in the order found."""
        n = self._ids.get(flow_id)
        if n is None:
            n = self._ids[flow_id] = self._next_id
            self._next_id += 1
            if self.on_detect is not None:
                self.on_detect(n)
        return n

    def _udp_connection(self, records: str) -> Callable[..., TlsConnection]:
        def connect(flow_id: int, client, server, ts: float, frame: int) -> TlsConnection:
            return self._connection(flow_id, client, server, ts, frame, True, records=records)
        return connect

    def _udp_sweep(self, now: float, events: list) -> None:
        n = len(events)
        for t in self._udp:
            t.sweep(now, events)
        if n and len(events) > n:
            self._by_first_frame(events)

    def _by_first_frame(self, events: list) -> None:
        """Order close events by the first frame of their flow (a flow's own events stay together
        and in order), as a split run merges them (tlsscope.parallel)."""
        conns = self._conns

        def first(ev) -> int:
            c = conns.get(ev.flow_id)
            return c.state.frame_first if c is not None else 0
        events.sort(key=first)

    def _secrets(self, dsb: DecryptionSecrets) -> None:
        self.stats.secrets_blocks += 1
        if dsb.secrets_type != TLS_KEYLOG_SECRETS:
            return
        from .decrypt import KeyLog
        self.feed_secrets(KeyLog.from_bytes(dsb.data, source="pcapng Decryption Secrets Block"))

    def feed_secrets(self, extra) -> None:
        """More key material (a DSB, a growing key log file): later records can be decrypted."""
        if self._keylog is None:
            self._keylog = extra
        else:
            self._keylog.merge(extra)
        for conn in self._conns.values():
            if conn._decryptor is not None:
                conn._decryptor.add_keys(extra)

    # -- TCP events ---------------------------------------------------------
    def _events(self, events) -> list[ConnectionReport]:
        out: list[ConnectionReport] = []
        conns = self._conns
        on_handshake = self.options.on_handshake
        for ev in events:
            t = ev.__class__
            if t is TcpData:
                conn = conns.get(ev.flow_id)
                if conn is None:
                    continue
                state = conn.state
                if state.is_tls:
                    conn.data(ev.from_client, ev.data, ev.ts, ev.frame)
                else:
                    conn.data(ev.from_client, ev.data, ev.ts, ev.frame)
                    if conn.not_tls:
                        self._drop(ev.flow_id)
                        continue
                    if state.is_tls:
                        self._number(ev.flow_id)
                if on_handshake is not None and conn.handshake_done and not conn.announced:
                    conn.announced = True
                    report = self._report(self._ids[ev.flow_id], conn.snapshot())
                    if report is not None:
                        self.options.on_handshake(report)
            elif t is TcpOpen:
                conns[ev.flow_id] = self._new_connection(ev)
            elif t is TcpGap:
                conn = conns.get(ev.flow_id)
                if conn is not None:
                    conn.gap(ev.from_client, ev.missing, ev.ts, ev.frame)
            elif t is TcpClose:
                conn = conns.pop(ev.flow_id, None)
                if conn is None:
                    continue
                state = conn.close(ev.ts, ev.frame, ev.reason)
                notes = self._notes.pop(ev.flow_id, ())
                conn_id = self._ids.pop(ev.flow_id, None)
                if not state.is_tls or conn_id is None:
                    self.stats.non_tls_flows += 1
                    continue
                self.stats.tls_connections += 1
                for n in notes:
                    state.findings.append(Finding(Severity.LOW, n.code, n.message))
                report = self._report(conn_id, state)
                if report is not None:
                    out.append(report)
            elif t is TcpNote:
                if ev.flow_id in conns:
                    lst = self._notes.setdefault(ev.flow_id, [])
                    if len(lst) < 20:
                        lst.append(ev)
                elif len(self.stats.notes) < 1000:
                    self.stats.notes.append(ev)
        return out

    def _drop(self, flow_id: int) -> None:
        self._conns.pop(flow_id, None)
        self._notes.pop(flow_id, None)
        self.tcp.ignore(flow_id)
        self.stats.non_tls_flows += 1

    def _new_connection(self, ev: TcpOpen) -> TlsConnection:
        return self._connection(ev.flow_id, ev.client, ev.server, ev.ts, ev.frame, ev.syn_seen)

    def _connection(self, flow_id: int, client, server, ts: float, frame: int, syn_seen: bool, *,
                    records: str = "tls") -> TlsConnection:
        """The state machine of a new flow; ``records`` "tls" or "dtls" get a record decryptor when
        there are keys, "quic" none (QUIC protects packets, not records: tlsscope.quic_connection)."""
        decryptor = None
        if records != "quic" and (self._keylog is not None or self.options.rsa_keys is not None):
            from .decrypt import ConnectionDecryptor, KeyLog
            if self._keylog is None:
                # one KeyLog for the whole run: it also caches sessions opened with --rsa-key,
                # which later abbreviated handshakes (resumptions) need
                self._keylog = KeyLog()
            decryptor = ConnectionDecryptor(self._keylog, self.options.rsa_keys, dtls=records == "dtls")
        on_plain = None
        if self.options.on_plaintext is not None:
            cb = self.options.on_plaintext
            ids = self._ids
            only = self.options.conn

            def on_plain(from_client: bool, data: bytes) -> None:
                # QUIC 0-RTT data can come in the very datagram that opens the connection: numbered here
                conn_id = ids.get(flow_id) or self._number(flow_id)
                if only is None or conn_id == only:   # --conn filters plaintext too (follow)
                    cb(conn_id, from_client, data)
        return TlsConnection(flow_id, client, server, ts, frame, syn_seen,
                             decryptor=decryptor, on_plaintext=on_plain, suite_info=self._suite_info)

    # -- reports -------------------------------------------------------------
    def _report(self, conn_id: int, state) -> ConnectionReport | None:
        o = self.options
        if o.conn is not None and conn_id != o.conn:
            return None
        if o.port is not None and o.port not in (state.client.port, state.server.port):
            return None
        if o.host is not None and not _host_matches(o.host, state.client.ip, state.server.ip):
            return None
        report = build_report(conn_id, state)
        if o.sni is not None and not _sni_matches(o.sni, report.sni):
            return None
        from .enrich import enrich
        enrich(report, o)
        return report


def _host_matches(host: str, *ips: str) -> bool:
    try:
        net = ipaddress.ip_network(host, strict=False)
        return any(ipaddress.ip_address(ip) in net for ip in ips)
    except ValueError:
        return host in ips


def _sni_matches(pattern: str, sni: str | None) -> bool:
    if sni is None:
        return False
    import fnmatch
    return fnmatch.fnmatch(sni.lower(), pattern.lower())


def analyze(items: Iterable, options: Options | None = None,
            stats_out: list | None = None) -> Iterator[ConnectionReport]:
    """Reports for every TLS connection in ``items`` (Segments, DSBs, notes), as they close."""
    an = Analyzer(options)
    if stats_out is not None:
        stats_out.append(an)
    feed = an.feed
    # Analyzer.feed inlined for Segments, the bulk of the input
    tcp_feed = an.tcp.feed
    on_events = an._events
    stats = an.stats
    for item in items:
        if item.__class__ is Segment:
            stats.segments += 1
            events = tcp_feed(item)
            if events:               # bare ACKs: no events
                reports = on_events(events)
                if reports:
                    yield from reports
            continue
        reports = feed(item)
        if reports:
            yield from reports
    yield from an.finish()

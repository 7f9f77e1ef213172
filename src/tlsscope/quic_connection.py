"""QUIC connections of a capture: their TLS handshake from the Initial packets (sans-I/O).

QUIC carries the TLS 1.3 handshake in CRYPTO frames instead of records (RFC 9001 §4). Initial
packets are protected with keys that anyone can derive from the client's first Destination
Connection ID (RFC 9001 §5.2), so the ClientHello and ServerHello are readable without secrets;
what follows (Handshake and 1-RTT packets) is only counted.

A UDP address pair becomes a QUIC connection when a datagram starting with an Initial packet
arrives on it; its sender is the client. The CRYPTO stream of each direction is reassembled
(:class:`tlsscope.quic.CryptoStream`) and fed to a :class:`~tlsscope.connection.TlsConnection`,
so handshake messages are decoded, checked and reported exactly as over TCP.

QUIC has no FIN: a connection ends when idle (aged on the TCP reassembler's clock, see
``TcpReassembler.on_sweep``), when the flow table is full, or at the end of the capture. Closing
is announced with the TCP close event, so the pipeline reports both transports alike.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from .connection import TlsConnection
from .connection_state import Alert, TimelineEntry
from .findings import Severity
from .model import Datagram, Endpoint
from .quic import CryptoStream, InitialDecoder, split_datagram
from .tcp import TcpClose

ALERT, HANDSHAKE = 21, 22
# CONNECTION_CLOSE error codes 0x0100-0x01ff carry a TLS alert (RFC 9001 §4.8)
CRYPTO_ERROR_BASE = 0x0100
KINDS = ("initial", "0rtt", "handshake", "retry", "version_negotiation", "1rtt")


class _QuicFlow:
    __slots__ = ("fid", "conn", "decoder", "crypto", "delivered", "overflow_told", "key_c", "key_s",
                 "last_ts", "last_frame", "info", "errors")

    def __init__(self, fid: int, conn: TlsConnection, decoder: InitialDecoder, key_c: tuple, key_s: tuple,
                 ts: float, frame: int, info: dict):
        self.fid = fid
        self.conn = conn
        self.decoder = decoder
        self.crypto = (CryptoStream(), CryptoStream())     # client, server
        self.delivered = [0, 0]                             # CRYPTO bytes handed on, per direction
        self.overflow_told = [False, False]
        self.key_c = key_c
        self.key_s = key_s
        self.last_ts = ts
        self.last_frame = frame
        self.info = info
        self.errors = 0


class QuicFlows:
    """Every QUIC connection of a capture, by UDP address pair (bounded)."""

    def __init__(self, new_id: Callable[[], int], *, idle_timeout: float = 120.0, max_flows: int = 50_000,
                 suite_info=None, decryptor_factory: Callable[[], object] | None = None):
        self._new_id = new_id
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        self._suite_info = suite_info
        self._by_key: dict[tuple, tuple[_QuicFlow, bool]] = {}
        self._flows: OrderedDict[int, _QuicFlow] = OrderedDict()
        self.datagrams = 0

    def __len__(self) -> int:
        return len(self._flows)

    # -- input -----------------------------------------------------------------
    def datagram(self, dg: Datagram, closes: list) -> tuple[int, TlsConnection, bool] | None:
        """Read one datagram. Returns (flow id, connection, new) when it belongs to a QUIC connection
        (``new``: it opened it); closes of flows pushed out of a full table go to ``closes``."""
        self.datagrams += 1
        key = (dg.src, dg.sport, dg.dst, dg.dport)
        ent = self._by_key.get(key)
        new = False
        if ent is None:
            packets = split_datagram(dg.payload)
            if not packets or packets[0].kind != "initial" or packets[0].error is not None:
                return None      # only a client's Initial opens a connection we can read
            flow = self._open(dg, key, packets[0], closes)
            from_client = True
            new = True
        else:
            flow, from_client = ent
        flow.last_ts = dg.ts
        flow.last_frame = dg.frame
        self._read(flow, dg, from_client)
        return flow.fid, flow.conn, new

    def _open(self, dg: Datagram, key: tuple, first, closes: list) -> _QuicFlow:
        while len(self._flows) >= self.max_flows:
            _, old = self._flows.popitem(last=False)
            self._forget(old)
            closes.append(self._closing(old, "evicted"))
        fid = self._new_id()
        client, server = Endpoint(dg.src, dg.sport), Endpoint(dg.dst, dg.dport)
        conn = TlsConnection(fid, client, server, dg.ts, dg.frame, True, suite_info=self._suite_info)
        info = {"version": first.version, "original_dcid": first.dcid.hex(),
                "client_scid": first.scid.hex(), "server_scid": None,
                "packets": {"client": dict.fromkeys(KINDS, 0), "server": dict.fromkeys(KINDS, 0)},
                "undecryptable_initials": 0}
        conn.state.quic = info
        rev = (dg.dst, dg.dport, dg.src, dg.sport)
        flow = _QuicFlow(fid, conn, InitialDecoder(first.version, first.dcid), key, rev, dg.ts, dg.frame, info)
        self._flows[fid] = flow
        self._by_key[key] = (flow, True)
        self._by_key[rev] = (flow, False)
        return flow

    def _read(self, flow: _QuicFlow, dg: Datagram, from_client: bool) -> None:
        conn = flow.conn
        who = "client" if from_client else "server"
        counts = flow.info["packets"][who]
        side = conn._a if from_client else conn._b          # a: the client (it sent the first Initial)
        side.stats.bytes += len(dg.payload)
        d = 0 if from_client else 1
        stream = flow.crypto[d]
        for pkt in flow.decoder.datagram(dg.payload, from_client):
            kind = pkt.kind
            counts[kind] = counts.get(kind, 0) + 1
            side.stats.records += 1
            if kind == "1rtt":
                side.stats.app_records += 1
                side.stats.app_bytes += pkt.length
            elif kind == "handshake" or kind == "0rtt":
                self._encrypted(conn, from_client, kind, pkt, dg)
            if not from_client and pkt.scid and flow.info["server_scid"] is None and kind in ("initial", "handshake"):
                flow.info["server_scid"] = pkt.scid.hex()
            if pkt.error is not None:
                if kind == "initial":
                    flow.info["undecryptable_initials"] += 1
                flow.errors += 1
                conn._finding(Severity.MEDIUM, "quic_packet_unreadable",
                              f"{who} QUIC {kind} packet in frame {dg.frame}: {pkt.error}")
                continue
            for offset, data in pkt.crypto:
                got = stream.add(offset, data)
                if got:
                    conn.handshake_data(from_client, got, flow.delivered[d], dg.ts, dg.frame)
                    flow.delivered[d] += len(got)
            if pkt.close is not None:
                self._connection_close(conn, from_client, pkt.close, dg)
        if stream.overflow and not flow.overflow_told[d]:
            flow.overflow_told[d] = True
            conn._finding(Severity.MEDIUM, "quic_crypto_overflow",
                          f"{who} CRYPTO stream: more than {stream.max_pending} bytes wait behind a hole; "
                          "frames beyond were dropped")

    @staticmethod
    def _encrypted(conn: TlsConnection, from_client: bool, kind: str, pkt, dg: Datagram) -> None:
        """Handshake/0-RTT packets need the key log: one coalesced timeline entry per run."""
        name = "QUIC Handshake packet" if kind == "handshake" else "QUIC 0-RTT packet"
        tl = conn.state.timeline
        last = tl[-1] if tl else None
        if last is not None and last.name == name and last.from_client == from_client:
            last.count += 1
            last.length += pkt.length
            return
        conn._add(TimelineEntry(from_client, dg.ts, dg.frame, HANDSHAKE if kind == "handshake" else 23, None,
                                name, True, length=pkt.length, offset=pkt.offset))

    @staticmethod
    def _connection_close(conn: TlsConnection, from_client: bool, close: tuple, dg: Datagram) -> None:
        code, _frame_type, reason = close
        if CRYPTO_ERROR_BASE <= code < CRYPTO_ERROR_BASE + 0x100:
            alert = Alert(from_client, 2, code - CRYPTO_ERROR_BASE, False, False, dg.ts, dg.frame)
            conn.state.alerts.append(alert)
            conn._add(TimelineEntry(from_client, dg.ts, dg.frame, ALERT, None, "Alert", False, False, 2,
                                    message=alert))
        else:
            who = "client" if from_client else "server"
            conn._finding(Severity.INFO if code == 0 else Severity.MEDIUM, "quic_connection_close",
                          f"{who} closed the connection in an Initial packet: error 0x{code:x}"
                          + (f" ({reason})" if reason else ""))

    # -- ageing ----------------------------------------------------------------
    def sweep(self, now: float, events: list) -> None:
        """Close the connections idle for longer than idle_timeout (called at each TCP sweep)."""
        before = now - self.idle_timeout
        for flow in [f for f in self._flows.values() if f.last_ts < before]:
            del self._flows[flow.fid]
            self._forget(flow)
            events.append(self._closing(flow, "idle"))

    def finish(self) -> list:
        out = [self._closing(f, "end_of_capture") for f in self._flows.values()]
        self._flows.clear()
        self._by_key.clear()
        return out

    def _forget(self, flow: _QuicFlow) -> None:
        for k in (flow.key_c, flow.key_s):
            ent = self._by_key.get(k)
            if ent is not None and ent[0] is flow:
                del self._by_key[k]

    @staticmethod
    def _closing(flow: _QuicFlow, reason: str) -> TcpClose:
        for i, who in enumerate(("client", "server")):
            s = flow.crypto[i]
            if s.dropped or s.mismatches:
                flow.conn._finding(Severity.MEDIUM, "quic_crypto_stream",
                                   f"{who} CRYPTO stream: {s.dropped} frame(s) dropped, {s.mismatches} overlap "
                                   "mismatch(es)")
        return TcpClose(flow.fid, flow.last_ts, flow.last_frame, reason)

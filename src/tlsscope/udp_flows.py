"""The bookkeeping that QUIC and DTLS connections share: a bounded table of UDP flows (sans-I/O).

A flow is a UDP address pair; the transport opens it on a datagram that starts a handshake (a QUIC
Initial, a DTLS ClientHello) and names its sender the client. UDP has no FIN: a flow ends when
idle (aged on the TCP reassembler's clock, see ``TcpReassembler.on_sweep``, so that it closes at
the same packet however a capture is split over processes), when the table is full (the oldest
goes), or with the capture. Closing is announced with a ``TcpClose`` event, so the pipeline
reports every transport alike.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from .connection import TlsConnection
from .model import Datagram, Endpoint
from .tcp import TcpClose


class UdpFlow:
    """One flow: its TlsConnection and the transport's own state (subclasses add slots)."""

    __slots__ = ("fid", "conn", "key_c", "key_s", "last_ts", "last_frame")

    def __init__(self, fid: int, conn: TlsConnection, key_c: tuple, key_s: tuple, ts: float, frame: int):
        self.fid = fid
        self.conn = conn
        self.key_c = key_c
        self.key_s = key_s
        self.last_ts = ts
        self.last_frame = frame


class UdpFlowTable:
    """Flows by address pair, in opening order; ``opens`` and ``read`` are the transport's part."""

    def __init__(self, new_id: Callable[[], int], connect: Callable[..., TlsConnection], *,
                 idle_timeout: float = 120.0, max_flows: int = 50_000):
        self._new_id = new_id
        self._connect = connect          # (flow id, client, server, ts, frame) -> TlsConnection
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        self._by_key: dict[tuple, tuple[UdpFlow, bool]] = {}
        self._flows: OrderedDict[int, UdpFlow] = OrderedDict()

    def __len__(self) -> int:
        return len(self._flows)

    def knows(self, dg: Datagram) -> bool:
        return (dg.src, dg.sport, dg.dst, dg.dport) in self._by_key

    # -- what a transport defines ------------------------------------------------
    def opens(self, dg: Datagram):
        """Does this datagram of an unknown pair start a connection? A true value is handed to make()."""
        raise NotImplementedError

    def make(self, fid: int, conn: TlsConnection, key_c: tuple, key_s: tuple, dg: Datagram, first) -> UdpFlow:
        raise NotImplementedError

    def read(self, flow: UdpFlow, dg: Datagram, from_client: bool) -> None:
        raise NotImplementedError

    def closing(self, flow: UdpFlow) -> None:
        """Last words before the flow's close is announced (findings about its buffers)."""

    # -- input -----------------------------------------------------------------
    def datagram(self, dg: Datagram, closes: list) -> tuple[int, TlsConnection, bool] | None:
        """Read one datagram. Returns (flow id, connection, new) when it belongs to a connection
        (``new``: it opened it); closes of flows pushed out of a full table go to ``closes``."""
        key = (dg.src, dg.sport, dg.dst, dg.dport)
        ent = self._by_key.get(key)
        new = False
        if ent is None:
            first = self.opens(dg)
            if not first:
                return None
            flow = self._open(dg, key, first, closes)
            from_client = True
            new = True
        else:
            flow, from_client = ent
        flow.last_ts = dg.ts
        flow.last_frame = dg.frame
        self.read(flow, dg, from_client)
        return flow.fid, flow.conn, new

    def _open(self, dg: Datagram, key: tuple, first, closes: list) -> UdpFlow:
        while len(self._flows) >= self.max_flows:
            _, old = self._flows.popitem(last=False)
            self._forget(old)
            closes.append(self._closed(old, "evicted"))
        fid = self._new_id()
        conn = self._connect(fid, Endpoint(dg.src, dg.sport), Endpoint(dg.dst, dg.dport), dg.ts, dg.frame)
        rev = (dg.dst, dg.dport, dg.src, dg.sport)
        flow = self.make(fid, conn, key, rev, dg, first)
        self._flows[fid] = flow
        self._by_key[key] = (flow, True)
        self._by_key[rev] = (flow, False)
        return flow

    # -- ageing ----------------------------------------------------------------
    def sweep(self, now: float, events: list) -> None:
        """Close the flows idle for longer than idle_timeout (called at each TCP sweep)."""
        before = now - self.idle_timeout
        for flow in [f for f in self._flows.values() if f.last_ts < before]:
            del self._flows[flow.fid]
            self._forget(flow)
            events.append(self._closed(flow, "idle"))

    def finish(self) -> list:
        out = [self._closed(f, "end_of_capture") for f in self._flows.values()]
        self._flows.clear()
        self._by_key.clear()
        return out

    def _forget(self, flow: UdpFlow) -> None:
        for k in (flow.key_c, flow.key_s):
            ent = self._by_key.get(k)
            if ent is not None and ent[0] is flow:
                del self._by_key[k]

    def _closed(self, flow: UdpFlow, reason: str) -> TcpClose:
        self.closing(flow)
        return TcpClose(flow.fid, flow.last_ts, flow.last_frame, reason)

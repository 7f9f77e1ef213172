"""TCP reassembly, sans-I/O: Segments in, per-direction byte-stream events out.

Each connection (a *flow*) has two directions; each direction delivers its
bytes in sequence order exactly once:

- in-order data is delivered at once (the common case costs one dict lookup);
- out-of-order data waits in a bounded buffer; when the buffer cap is hit, or
  the peer acknowledges bytes we never saw (they will not be retransmitted),
  or the stream ends, the hole is reported as :class:`TcpGap` and reading goes
  on after it -- holes are never filled with zeros;
- overlapping bytes: the first received win; a retransmission carrying
  different bytes is reported once per direction (``tcp_overlap_mismatch``).

Sequence numbers are 32-bit and wrap; internally each direction counts
stream offsets from its first byte (SYN and FIN take one sequence number).
Flows are never keyed on the 4-tuple alone: a SYN with a new ISN after FIN,
RST or idleness starts a new flow id. Closed flows leave a small tombstone for
a while so that their last ACKs do not open ghost flows.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable

from .model import ACK, FIN, RST, SYN, Endpoint, Segment

__all__ = ["TcpClose", "TcpData", "TcpEvent", "TcpGap", "TcpNote", "TcpOpen", "TcpReassembler"]


# The events are not frozen: several are made per segment on the hot path, where frozen
# construction (object.__setattr__ per field) costs several times more; nothing hashes them.

@dataclass(slots=True)
class TcpOpen:
    flow_id: int
    ts: float
    frame: int
    client: Endpoint
    server: Endpoint
    syn_seen: bool


@dataclass(slots=True)
class TcpData:
    flow_id: int
    from_client: bool
    ts: float
    frame: int
    data: bytes


@dataclass(slots=True)
class TcpGap:
    """``missing`` bytes of this direction were never seen; data after them follows."""

    flow_id: int
    from_client: bool
    ts: float
    frame: int
    missing: int


@dataclass(slots=True)
class TcpClose:
    flow_id: int
    ts: float
    frame: int
    reason: str   # "fin" | "rst" | "idle" | "end_of_capture" | "reused" | "evicted"


@dataclass(slots=True)
class TcpNote:
    flow_id: int
    ts: float
    frame: int
    code: str     # "tcp_overlap_mismatch" | "tcp_buffer_overflow"
    message: str


TcpEvent = TcpOpen | TcpData | TcpGap | TcpClose | TcpNote

M32 = 0xFFFFFFFF
HALF32 = 0x80000000
RECENT = 2                  # delivered chunks kept (by reference) to check retransmissions
PICKUP_WINDOW = 1 << 20     # how far a peer's ACK may lie behind a picked-up stream
ACK_WINDOW = 1 << 26        # an ACK further ahead than this is not about this stream


def _signed(d: int) -> int:
    """A 32-bit sequence difference as a signed offset."""
    return ((d + HALF32) & M32) - HALF32


class _Half:
    """One direction of a flow."""

    __slots__ = ("init", "syn", "isn", "nxt", "nxt_seq", "starts", "buf", "buffered",
                 "fin_off", "done", "ack_seq", "recent", "noted")

    def __init__(self) -> None:
        self.init = False        # sequence space known
        self.syn = False
        self.isn: int | None = None
        self.nxt = 0             # stream offset of the next byte to deliver
        self.nxt_seq = 0         # its sequence number
        self.starts: list[int] = []      # buffered out-of-order pieces, sorted, disjoint
        self.buf: dict[int, bytes] = {}
        self.buffered = 0
        self.fin_off: int | None = None  # stream offset of the FIN
        self.done = False        # every byte up to the FIN delivered
        self.ack_seq: int | None = None  # latest ACK the peer sent for this direction
        self.recent: list[tuple[int, bytes]] = []
        self.noted: set[str] | None = None

    def free(self) -> None:
        self.starts = []
        self.buf = {}
        self.buffered = 0
        self.recent = []


class _Flow:
    __slots__ = ("id", "client", "server", "c", "s", "key_c", "key_s", "last_ts",
                 "last_frame", "closed", "closed_ts", "ignored", "fin_any")

    def __init__(self, fid: int, client: Endpoint, server: Endpoint, key_c: tuple,
                 key_s: tuple, ts: float, frame: int):
        self.id = fid
        self.client = client
        self.server = server
        self.c = _Half()         # client -> server
        self.s = _Half()         # server -> client
        self.key_c = key_c
        self.key_s = key_s
        self.last_ts = ts
        self.last_frame = frame
        self.closed = False
        self.closed_ts = 0.0
        self.ignored = False
        self.fin_any = False


class TcpReassembler:
    """Per-direction TCP reassembly over any number of flows (bounded)."""

    def __init__(self, *, max_buffered_per_direction: int = 4 << 20,
                 idle_timeout: float = 600.0, max_flows: int = 200_000):
        self.max_buffered = max_buffered_per_direction
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        # A closed flow's tombstone absorbs late segments (last ACKs, retransmitted FINs) for this
        # long. Tombstones leave _flows (open flows only) for a queue in closing order and drop
        # their per-direction state, so they stay small and are expired one by one.
        self.tombstone_ttl = min(idle_timeout, 10.0)
        self._sweep_every = max(idle_timeout / 8.0, 1e-3)
        self._by_key: dict[tuple, tuple[_Flow, bool]] = {}
        self._flows: OrderedDict[int, _Flow] = OrderedDict()
        self._tombs: deque[_Flow] = deque()
        self._next_id = 1
        self._now = float("-inf")
        # capture time at which the next idle sweep is due (a sharded reader wakes the clock then)
        self.next_sweep = float("-inf")
        # called as on_sweep(now, events) at each idle sweep: other transports' flows (QUIC) age
        # on the same clock, so that they close at the same packets however the capture is split
        self.on_sweep: Callable[[float, list], None] | None = None
        self._c = dict.fromkeys(
            ("flows", "gaps", "gap_bytes", "retransmissions", "out_of_order",
             "overlap_mismatches", "buffer_overflows", "after_close", "reused",
             "idle_closed", "evicted", "rst_closed", "fin_closed"), 0)
        self._segments = 0
        self._bytes = 0

    @property
    def stats(self) -> dict:
        d = dict(self._c)
        d["segments"] = self._segments
        d["bytes_delivered"] = self._bytes
        d["open_flows"] = sum(1 for f in self._flows.values() if not f.closed)
        return d

    # -- input -----------------------------------------------------------------
    def feed(self, seg: Segment) -> list[TcpEvent]:
        self._segments += 1
        ts = seg.ts
        events: list[TcpEvent] = []
        if ts > self._now:
            self._advance(ts, events)
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        flags = seg.flags
        frame = seg.frame
        ent = self._by_key.get(key)
        if ent is None:
            fl, from_client = self._open(seg, key, events)
        else:
            fl, from_client = ent
            if fl.closed:
                if flags & (SYN | ACK) != SYN:
                    self._c["after_close"] += 1
                    return events
                self._forget(fl)
                fl, from_client = self._open(seg, key, events)
            elif flags & (SYN | ACK) == SYN and self._is_reuse(fl, from_client, seg):
                self._c["reused"] += 1
                self._close(fl, "reused", ts, seg.frame, events)
                self._forget(fl)
                fl, from_client = self._open(seg, key, events)
            elif ts - fl.last_ts > self.idle_timeout:
                self._c["idle_closed"] += 1
                self._close(fl, "idle", fl.last_ts, fl.last_frame, events)
                self._forget(fl)
                fl, from_client = self._open(seg, key, events)
        if ts > fl.last_ts:
            fl.last_ts = ts
        fl.last_frame = frame
        if from_client:
            snd, rcv = fl.c, fl.s
        else:
            snd, rcv = fl.s, fl.c

        if flags & RST:
            self._c["rst_closed"] += 1
            self._close(fl, "rst", ts, seg.frame, events)
            return events

        if fl.ignored:
            if flags & FIN:
                snd.done = True
                fl.fin_any = True
                if rcv.done:
                    self._c["fin_closed"] += 1
                    self._close(fl, "fin", ts, seg.frame, events)
            return events

        payload = seg.payload
        if flags & ACK:
            rcv.ack_seq = seg.ack
            if rcv.init and (rcv.starts or (rcv.fin_off is not None and not rcv.done)):
                self._ack_check(fl, rcv, not from_client, ts, frame, events)
            if flags == ACK and not payload:
                # a bare ACK (the most common segment): nothing more to do unless it
                # completed the peer's stream
                if snd.done and rcv.done:
                    self._c["fin_closed"] += 1
                    self._close(fl, "fin", ts, frame, events)
                return events

        seq = seg.seq
        n = len(payload)
        if flags & SYN:
            if not snd.syn and (not snd.init or (snd.nxt == 0 and not snd.starts)):
                snd.init = snd.syn = True
                snd.isn = seq
                snd.nxt = 0
                snd.nxt_seq = (seq + 1) & M32
            seq = (seq + 1) & M32          # data on a SYN (TCP Fast Open) follows it
        elif not snd.init and (n or flags & FIN):
            # a bare ACK does not start a direction: it may be a keep-alive (seq - 1)
            self._pickup(snd, seq)

        if n:
            if seq == snd.nxt_seq and not snd.starts:
                # in order on an empty buffer (the common case): delivered as is
                data = payload if payload.__class__ is bytes else bytes(payload)
                events.append(TcpData(fl.id, from_client, ts, frame, data))
                off = snd.nxt
                snd.nxt = off + n
                snd.nxt_seq = (seq + n) & M32
                self._bytes += n
                r = snd.recent
                if len(r) >= RECENT:
                    del r[0]
                r.append((off, data))
                if snd.fin_off is not None and off + n >= snd.fin_off:
                    snd.done = True
            else:
                self._data(fl, snd, from_client, seq, payload, ts, frame, events)

        if flags & FIN:
            fl.fin_any = True
            if snd.fin_off is None:
                snd.fin_off = snd.nxt + _signed((seq + n - snd.nxt_seq) & M32)
            if snd.nxt >= snd.fin_off:
                snd.done = True
        if snd.done and rcv.done and not fl.closed:
            self._c["fin_closed"] += 1
            self._close(fl, "fin", ts, seg.frame, events)
        return events

    def tick(self, ts: float) -> list[TcpEvent]:
        """The clock part of :meth:`feed` alone, for a segment of a flow handled elsewhere.

        A reader that splits one capture's flows over several reassemblers (``tlsscope read -j``)
        ticks each of them with the segments it does not own, so that idle sweeps and tombstone
        expiry happen at the same packets as in a single reassembler.
        """
        events: list[TcpEvent] = []
        if ts > self._now:
            self._advance(ts, events)
        return events

    def _advance(self, ts: float, events: list) -> None:
        """The capture clock moves on to ``ts``: idle sweep when due, old tombstones dropped."""
        self._now = ts
        if ts >= self.next_sweep:
            self._sweep(ts, events)
        tombs = self._tombs
        if tombs and tombs[0].closed_ts < ts - self.tombstone_ttl:
            self._expire(ts)

    def finish(self) -> list[TcpEvent]:
        """End of input: pending data delivered after gaps, every open flow closed."""
        events: list[TcpEvent] = []
        for fl in list(self._flows.values()):
            if not fl.closed:
                self._close(fl, "end_of_capture", fl.last_ts, fl.last_frame, events)
        self._flows.clear()
        self._by_key.clear()
        self._tombs.clear()
        return events

    def ignore(self, flow_id: int) -> None:
        """The consumer is not interested in this flow: drop its data from now on."""
        fl = self._flows.get(flow_id)
        if fl is None or fl.closed:
            return
        fl.ignored = True
        for h in (fl.c, fl.s):
            h.free()
            if h.fin_off is not None:
                h.done = True

    # -- flows -----------------------------------------------------------------
    def _open(self, seg: Segment, key: tuple, events: list) -> tuple[_Flow, bool]:
        while len(self._flows) >= self.max_flows:
            _, old = self._flows.popitem(last=False)
            if not old.closed:
                self._c["evicted"] += 1
                self._close(old, "evicted", old.last_ts, old.last_frame, events)
            self._forget(old)
        rev = (seg.dst, seg.dport, seg.src, seg.sport)
        syn = bool(seg.flags & SYN)
        if seg.flags & (SYN | ACK) == SYN | ACK:   # a SYN-ACK comes from the server
            from_client = False
            key_c, key_s = rev, key
            client, server = Endpoint(seg.dst, seg.dport), Endpoint(seg.src, seg.sport)
        else:
            from_client = True
            key_c, key_s = key, rev
            client, server = Endpoint(seg.src, seg.sport), Endpoint(seg.dst, seg.dport)
        fid = self._next_id
        self._next_id += 1
        fl = _Flow(fid, client, server, key_c, key_s, seg.ts, seg.frame)
        self._flows[fid] = fl
        self._by_key[key_c] = (fl, True)
        self._by_key[key_s] = (fl, False)
        self._c["flows"] += 1
        events.append(TcpOpen(fid, seg.ts, seg.frame, client, server, syn))
        return fl, from_client

    def _is_reuse(self, fl: _Flow, from_client: bool, seg: Segment) -> bool:
        """A bare SYN on a live flow: a new connection on the same ports?"""
        h = fl.c if from_client else fl.s
        if h.syn and h.isn == seg.seq:
            return False           # retransmitted SYN
        return fl.fin_any or seg.ts - fl.last_ts > self.idle_timeout

    def _forget(self, fl: _Flow) -> None:
        by_key = self._by_key
        for k in (fl.key_c, fl.key_s):
            ent = by_key.get(k)
            if ent is not None and ent[0] is fl:
                del by_key[k]
        self._flows.pop(fl.id, None)

    def _close(self, fl: _Flow, reason: str, ts: float, frame: int, events: list) -> None:
        if not fl.ignored:
            for h, from_client in ((fl.c, True), (fl.s, False)):
                self._flush(fl, h, from_client, ts, frame, events)
        # the tombstone keeps only what _forget and the closed check need
        fl.c = fl.s = None
        fl.closed = True
        fl.closed_ts = self._now if self._now > ts else ts
        self._flows.pop(fl.id, None)
        tombs = self._tombs
        tombs.append(fl)
        if len(tombs) > self.max_flows:
            self._forget(tombs.popleft())
        events.append(TcpClose(fl.id, ts, frame, reason))

    def _expire(self, now: float) -> None:
        """Drop tombstones older than tombstone_ttl (they are queued in closing order)."""
        tombs = self._tombs
        before = now - self.tombstone_ttl
        while tombs and tombs[0].closed_ts < before:
            self._forget(tombs.popleft())

    def _sweep(self, now: float, events: list) -> None:
        """Close idle flows (runs every idle_timeout/8 of capture time)."""
        self.next_sweep = now + self._sweep_every
        idle_before = now - self.idle_timeout
        for fl in list(self._flows.values()):
            if fl.last_ts < idle_before:
                self._c["idle_closed"] += 1
                self._close(fl, "idle", fl.last_ts, fl.last_frame, events)
                self._forget(fl)
        if self.on_sweep is not None:
            self.on_sweep(now, events)

    def reserve_id(self) -> int:
        """A flow id for a flow of another transport (QUIC): ids are unique across transports."""
        fid = self._next_id
        self._next_id += 1
        return fid

    # -- one direction ---------------------------------------------------------
    @staticmethod
    def _pickup(h: _Half, seq: int) -> None:
        """First segment of a direction without a SYN: start at ``seq``, or at the
        peer's ACK if it lies a little before (those bytes may still arrive)."""
        h.init = True
        h.nxt = 0
        h.nxt_seq = seq
        if h.ack_seq is not None:
            back = _signed((seq - h.ack_seq) & M32)
            # a little behind: wait for those bytes; one byte before: a keep-alive
            # probe (its garbage byte was acknowledged long ago)
            if 0 < back <= PICKUP_WINDOW or back == -1:
                h.nxt_seq = h.ack_seq

    def _deliver(self, fl: _Flow, h: _Half, from_client: bool, data: bytes, ts: float,
                 frame: int, events: list) -> None:
        n = len(data)
        events.append(TcpData(fl.id, from_client, ts, frame, data))
        r = h.recent
        r.append((h.nxt, data))
        if len(r) > RECENT:
            del r[0]
        h.nxt += n
        h.nxt_seq = (h.nxt_seq + n) & M32
        self._bytes += n

    def _drain(self, fl: _Flow, h: _Half, from_client: bool, ts: float, frame: int,
               events: list) -> None:
        starts = h.starts
        while starts and starts[0] <= h.nxt:
            s = starts.pop(0)
            d = h.buf.pop(s)
            h.buffered -= len(d)
            skip = h.nxt - s
            if skip >= len(d):
                continue
            self._deliver(fl, h, from_client, d[skip:] if skip else d, ts, frame, events)
        if h.fin_off is not None and h.nxt >= h.fin_off:
            h.done = True

    def _advance_to(self, fl: _Flow, h: _Half, from_client: bool, target: int, ts: float,
                    frame: int, events: list) -> None:
        """Move past missing bytes up to ``target``: gaps and buffered data, in order."""
        while h.nxt < target:
            stop = target
            if h.starts and h.starts[0] < stop:
                stop = h.starts[0]
            missing = stop - h.nxt
            if missing > 0:
                self._c["gap_bytes"] += missing
                last = events[-1] if events else None
                if (last.__class__ is TcpGap and last.flow_id == fl.id
                        and last.from_client == from_client):
                    # one hole, found in two steps: report it once
                    events[-1] = TcpGap(fl.id, from_client, last.ts, last.frame,
                                        last.missing + missing)
                else:
                    self._c["gaps"] += 1
                    events.append(TcpGap(fl.id, from_client, ts, frame, missing))
                h.nxt = stop
                h.nxt_seq = (h.nxt_seq + missing) & M32
            self._drain(fl, h, from_client, ts, frame, events)

    def _acked(self, h: _Half) -> int | None:
        """Stream offset the peer acknowledged, if plausible (challenge ACKs are not)."""
        if h.ack_seq is None or not h.init:
            return None
        d = _signed((h.ack_seq - h.nxt_seq) & M32)
        if d > ACK_WINDOW:
            return None
        return h.nxt + d

    def _ack_check(self, fl: _Flow, h: _Half, from_client: bool, ts: float, frame: int,
                   events: list) -> None:
        """The peer acknowledged bytes of ``h`` we lack: they will not come again."""
        acked = self._acked(h)
        if acked is None or acked <= h.nxt:
            return
        if h.fin_off is not None and acked > h.fin_off:
            acked = h.fin_off
        self._advance_to(fl, h, from_client, acked, ts, frame, events)
        if h.fin_off is not None and h.nxt >= h.fin_off:
            h.done = True

    def _note(self, fl: _Flow, h: _Half, code: str, message: str, ts: float, frame: int,
              events: list) -> None:
        if h.noted is None:
            h.noted = set()
        if code not in h.noted:     # once per direction: a bad stream repeats itself
            h.noted.add(code)
            events.append(TcpNote(fl.id, ts, frame, code, message))

    def _mismatch(self, fl: _Flow, h: _Half, from_client: bool, offset: int, n: int,
                  ts: float, frame: int, events: list) -> None:
        self._c["overlap_mismatches"] += 1
        side = "client" if from_client else "server"
        self._note(fl, h, "tcp_overlap_mismatch",
                   f"{side} stream: {n} retransmitted bytes at offset {offset} differ from "
                   f"the bytes first received (frame {frame}); the first ones are kept",
                   ts, frame, events)

    def _data(self, fl: _Flow, h: _Half, from_client: bool, seq: int, payload, ts: float,
              frame: int, events: list) -> None:
        """The slow path: anything but the next in-order segment on an empty buffer."""
        d = _signed((seq - h.nxt_seq) & M32)
        if (d > PICKUP_WINDOW or d < -PICKUP_WINDOW) and h.nxt == 0 and not h.starts:
            # nothing delivered yet and the data lies elsewhere: the start we
            # assumed (a SYN answered by another SYN-ACK, ...) was wrong
            self._pickup(h, seq)
            d = _signed((seq - h.nxt_seq) & M32)
        a = h.nxt + d
        mv = payload if isinstance(payload, memoryview) else memoryview(payload)
        e = a + len(mv)
        nxt = h.nxt
        if a < nxt:
            self._c["retransmissions"] += 1
            top = e if e < nxt else nxt
            if e == nxt and len(mv) == 1:
                top = a               # keep-alive probe: one garbage byte at seq - 1
            for s, d in h.recent:     # compare with what was delivered, if still at hand
                lo = a if a > s else s
                hi = s + len(d)
                if hi > top:
                    hi = top
                if lo < hi and mv[lo - a:hi - a] != d[lo - s:hi - s]:
                    self._mismatch(fl, h, from_client, lo, hi - lo, ts, frame, events)
                    break
            if e <= nxt:
                return
            mv = mv[nxt - a:]
            a = nxt
        elif a > nxt:
            self._c["out_of_order"] += 1
            acked = self._acked(h)
            if acked is not None and acked > nxt:
                self._advance_to(fl, h, from_client, min(acked, a), ts, frame, events)
                if h.nxt > a:
                    if e <= h.nxt:
                        return
                    mv = mv[h.nxt - a:]
                    a = h.nxt
        self._insert(fl, h, from_client, a, mv, ts, frame, events)
        self._drain(fl, h, from_client, ts, frame, events)
        while h.buffered > self.max_buffered and h.starts:
            self._c["buffer_overflows"] += 1
            side = "client" if from_client else "server"
            self._note(fl, h, "tcp_buffer_overflow",
                       f"{side} stream: more than {self.max_buffered} bytes wait behind a hole "
                       f"at offset {h.nxt}; reading goes on after the hole",
                       ts, frame, events)
            self._advance_to(fl, h, from_client, h.starts[0], ts, frame, events)

    def _insert(self, fl: _Flow, h: _Half, from_client: bool, a: int, mv: memoryview,
                ts: float, frame: int, events: list) -> None:
        """Buffer [a, a+len) keeping buffered bytes (first received win)."""
        e = a + len(mv)
        starts = h.starts
        buf = h.buf
        i = bisect_right(starts, a) - 1
        if i >= 0:
            ps = starts[i]
            pd = buf[ps]
            pe = ps + len(pd)
            if pe > a:
                hi = pe if pe < e else e
                if mv[:hi - a] != pd[a - ps:hi - ps]:
                    self._mismatch(fl, h, from_client, a, hi - a, ts, frame, events)
                if pe >= e:
                    self._c["retransmissions"] += 1
                    return
                mv = mv[pe - a:]
                a = pe
        i += 1
        pieces = []
        while a < e:
            if i < len(starts) and starts[i] < e:
                ns = starts[i]
                if ns > a:
                    pieces.append((a, bytes(mv[:ns - a])))
                nd = buf[ns]
                ne = ns + len(nd)
                hi = ne if ne < e else e
                if mv[ns - a:hi - a] != nd[:hi - ns]:
                    self._mismatch(fl, h, from_client, ns, hi - ns, ts, frame, events)
                if ne >= e:
                    break
                mv = mv[ne - a:]
                a = ne
                i += 1
            else:
                pieces.append((a, bytes(mv)))
                break
        for s, d in pieces:
            insort(starts, s)
            buf[s] = d
            h.buffered += len(d)

    def _flush(self, fl: _Flow, h: _Half, from_client: bool, ts: float, frame: int,
               events: list) -> None:
        """The stream ends: buffered data after gaps, then any acknowledged tail we lack."""
        if h.starts:
            last = h.starts[-1]
            self._advance_to(fl, h, from_client, last + len(h.buf[last]), ts, frame, events)
        acked = self._acked(h)
        if acked is not None:
            if h.fin_off is not None and acked > h.fin_off:
                acked = h.fin_off
            elif h.fin_off is None and acked == h.nxt + 1:
                return                # just a FIN we did not see
            if acked > h.nxt:
                self._advance_to(fl, h, from_client, acked, ts, frame, events)

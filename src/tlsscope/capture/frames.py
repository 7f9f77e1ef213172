"""One link-layer frame -> one TCP :class:`~tlsscope.model.Segment`.

Pure functions, shared by the file reader and live capture. Anything that is
not TCP over IPv4/IPv6 returns ``None`` as cheaply as possible; a frame too
short or inconsistent to decode is also ``None`` (a capture is full of
truncated and odd frames, and none of them is an error of ours).

The common case (Ethernet, IPv4 without options, unfragmented TCP) is decoded
with a single precompiled ``struct`` call; everything else takes the general
path. Payloads are ``memoryview`` slices of the frame: no copy here.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from ..model import CaptureNote, Datagram, Segment

__all__ = ["IpDefragmenter", "decode_frame", "decoder_for", "LINKTYPE_NAMES"]

# Link types (LINKTYPE_* values as found in pcap/pcapng files).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_12 = 12      # DLT_RAW on most BSDs
LINKTYPE_RAW_14 = 14      # DLT_RAW on OpenBSD
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

LINKTYPE_NAMES = {
    LINKTYPE_NULL: "null", LINKTYPE_ETHERNET: "ethernet", LINKTYPE_RAW_12: "raw",
    LINKTYPE_RAW_14: "raw", LINKTYPE_RAW: "raw", LINKTYPE_LOOP: "loop",
    LINKTYPE_LINUX_SLL: "linux-sll", LINKTYPE_IPV4: "ipv4", LINKTYPE_IPV6: "ipv6",
    LINKTYPE_LINUX_SLL2: "linux-sll2",
}

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = frozenset((0x8100, 0x88A8, 0x9100))
ETH_PPPOE_SESSION = 0x8864
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057

# BSD loopback address families: AF_INET is 2 everywhere, AF_INET6 differs
# between BSDs (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS) and Linux (10).
NULL_AF_INET = 2
NULL_AF_INET6 = frozenset((10, 24, 28, 30))

PROTO_TCP = 6
PROTO_UDP = 17

# Ethernet + IPv4 (IHL 5) + first 14 bytes of TCP, in one go:
# ethertype, ver_ihl, total_len, ident, flags_frag, proto, src, dst,
# sport, dport, seq, ack, data_offset, flags
_ETH_IP4_TCP = struct.Struct("!12xHBxHHHxB2x4s4sHHIIBB")
_IP4_TCP = struct.Struct("!BxHHHxB2x4s4sHHIIBB")     # the same from the IP header on
_TCP = struct.Struct("!HHIIBB")
_U32 = struct.Struct("!I")

_ntop = socket.inet_ntop
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6

# Address text by packed bytes: few distinct addresses, hundreds of thousands
# of packets. Cleared when it grows (a scan of the whole IPv4 space).
_ADDR: dict[bytes, str] = {}
_ADDR_MAX = 1 << 16


def _addr4(b: bytes) -> str:
    if len(_ADDR) >= _ADDR_MAX:
        _ADDR.clear()
    s = _ADDR[b] = _ntop(_AF_INET, b)
    return s


def _addr6(b: bytes) -> str:
    if len(_ADDR) >= _ADDR_MAX:
        _ADDR.clear()
    s = _ADDR[b] = _ntop(_AF_INET6, b)
    return s


Result = Segment | Datagram | CaptureNote | None


# ---------------------------------------------------------------------------
# TCP
# ---------------------------------------------------------------------------

def _tcp(data, off: int, end: int, src: str, dst: str, ts: float, frame: int) -> Segment | None:
    if end - off < 20:
        return None
    sport, dport, seq, ack, doff, flags = _TCP.unpack_from(data, off)
    hl = (doff >> 4) << 2
    if hl < 20 or off + hl > end:
        return None
    p = off + hl
    return Segment(ts, frame, src, dst, sport, dport, seq, ack, flags,
                   data[p:end] if p < end else b"")


def _maybe_tls(p: bytes) -> bool:
    """Could this UDP payload be QUIC or DTLS? A first-byte test, cheap and wide: QUIC sets the
    fixed bit 0x40 in long and short headers alike, DTLS records start with content type 20-25
    (DTLS 1.3's unified header with 001xxxxx). The core keeps only datagrams of the flows that a
    QUIC Initial or a DTLS ClientHello opened, so short headers and encrypted records count too."""
    if len(p) < 7:
        return False
    b = p[0]
    return b >= 0x20 or 20 <= b <= 25


def _udp(data, off: int, end: int, src: str, dst: str, ts: float, frame: int) -> Datagram | None:
    """A UDP datagram that may carry QUIC or DTLS; other UDP is dropped here."""
    if end - off < 8:
        return None
    ulen = (data[off + 4] << 8) | data[off + 5]
    stop = off + ulen if 8 <= ulen and off + ulen < end else end
    payload = bytes(data[off + 8:stop])
    if not _maybe_tls(payload):
        return None
    return Datagram(ts, frame, src, dst, (data[off] << 8) | data[off + 1],
                    (data[off + 2] << 8) | data[off + 3], payload)


def _transport(proto: int, data, off: int, end: int, src: str, dst: str, ts: float, frame: int):
    return (_tcp if proto == PROTO_TCP else _udp)(data, off, end, src, dst, ts, frame)


# ---------------------------------------------------------------------------
# IPv4 / IPv6
# ---------------------------------------------------------------------------

def _ipv4(data, off: int, ts: float, frame: int, defrag) -> Result:
    n = len(data)
    if n - off < 20:
        return None
    vi = data[off]
    ihl = (vi & 15) << 2
    if vi >> 4 != 4 or ihl < 20 or n - off < ihl:
        return None
    proto = data[off + 9]
    if proto != PROTO_TCP and proto != PROTO_UDP:
        return None
    total = (data[off + 2] << 8) | data[off + 3]
    if total == 0:            # TCP segmentation offload: length left to the NIC
        end = n
    elif total < ihl:
        return None
    else:
        end = off + total
        if end > n:           # snaplen cut the packet
            end = n
    sb = bytes(data[off + 12:off + 16])
    db = bytes(data[off + 16:off + 20])
    ff = (data[off + 6] << 8) | data[off + 7]
    if ff & 0x3FFF:           # MF set or non-zero offset: a fragment
        # QUIC sets DF and must not be fragmented (RFC 9000 §14): only TCP is reassembled
        if defrag is None or off + total > n or proto != PROTO_TCP:
            return None
        ident = (data[off + 4] << 8) | data[off + 5]
        got = defrag.add((4, sb, db, ident, proto), (ff & 0x1FFF) << 3, bool(ff & 0x2000),
                         data[off + ihl:end], ts, frame)
        if got is None or got.__class__ is CaptureNote:
            return got
        src = _ADDR.get(sb) or _addr4(sb)
        dst = _ADDR.get(db) or _addr4(db)
        return _transport(proto, got, 0, len(got), src, dst, ts, frame)
    src = _ADDR.get(sb) or _addr4(sb)
    dst = _ADDR.get(db) or _addr4(db)
    return _transport(proto, data, off + ihl, end, src, dst, ts, frame)


# IPv6 extension headers whose length is (len + 1) * 8
_V6_EXT8 = frozenset((0, 43, 60))
_V6_AH = 51
_V6_FRAG = 44
_V6_MAX_EXT = 16


def _v6_skip(data, p: int, end: int, nh: int):
    """Walk extension headers from ``p``; returns (next_header, offset, frag) or None.

    ``frag`` is (offset, more, ident) for a real fragment header, else None.
    """
    for _ in range(_V6_MAX_EXT):
        if nh == PROTO_TCP or nh == PROTO_UDP:
            return nh, p, None
        if nh in _V6_EXT8:
            if p + 8 > end:
                return None
            nh, p = data[p], p + ((data[p + 1] + 1) << 3)
        elif nh == _V6_AH:
            if p + 8 > end:
                return None
            nh, p = data[p], p + ((data[p + 1] + 2) << 2)
        elif nh == _V6_FRAG:
            if p + 8 > end:
                return None
            fo = (data[p + 2] << 8) | data[p + 3]
            nh = data[p]
            ident = _U32.unpack_from(data, p + 4)[0]
            p += 8
            if fo & 0xFFF9:   # offset or M flag: not an atomic fragment
                return nh, p, (fo & 0xFFF8, bool(fo & 1), ident)
        else:
            return None       # UDP, ICMPv6, ESP, no next header, ...
    return None


def _ipv6(data, off: int, ts: float, frame: int, defrag) -> Result:
    n = len(data)
    if n - off < 40 or data[off] >> 4 != 6:
        return None
    plen = (data[off + 4] << 8) | data[off + 5]
    end = n if plen == 0 else off + 40 + plen   # 0: jumbogram or offload
    if end > n:
        end = n
    walked = _v6_skip(data, off + 40, end, data[off + 6])
    if walked is None:
        return None
    nh, p, frag = walked
    if p > end:
        return None
    sb = bytes(data[off + 8:off + 24])
    db = bytes(data[off + 24:off + 40])
    if frag is not None:
        if defrag is None or off + 40 + plen > n or nh == PROTO_UDP:
            return None
        fo, more, ident = frag
        got = defrag.add((6, sb, db, ident, 0), fo, more, data[p:end], ts, frame, nh)
        if got is None or got.__class__ is CaptureNote:
            return got
        nh, payload = got
        # the fragmentable part may start with more extension headers
        walked = _v6_skip(payload, 0, len(payload), nh)
        if walked is None or walked[2] is not None:
            return None
        src = _ADDR.get(sb) or _addr6(sb)
        dst = _ADDR.get(db) or _addr6(db)
        return _transport(walked[0], payload, walked[1], len(payload), src, dst, ts, frame)
    if nh != PROTO_TCP and nh != PROTO_UDP:
        return None
    src = _ADDR.get(sb) or _addr6(sb)
    dst = _ADDR.get(db) or _addr6(db)
    return _transport(nh, data, p, end, src, dst, ts, frame)


def _ip_sniff(data, off: int, ts: float, frame: int, defrag) -> Result:
    if len(data) <= off:
        return None
    v = data[off] >> 4
    if v == 4:
        return _ipv4(data, off, ts, frame, defrag)
    if v == 6:
        return _ipv6(data, off, ts, frame, defrag)
    return None


# ---------------------------------------------------------------------------
# Link layers
# ---------------------------------------------------------------------------

def _ethertype(et: int, data, off: int, ts: float, frame: int, defrag) -> Result:
    """Payload of an Ethernet-style protocol type at ``off`` (VLAN tags, PPPoE)."""
    n = len(data)
    while et in ETH_VLAN:     # 802.1Q, 802.1ad, QinQ: 2 bytes TCI, 2 bytes type
        if off + 4 > n:
            return None
        et = (data[off + 2] << 8) | data[off + 3]
        off += 4
    if et == ETH_IPV4:
        return _ipv4(data, off, ts, frame, defrag)
    if et == ETH_IPV6:
        return _ipv6(data, off, ts, frame, defrag)
    if et == ETH_PPPOE_SESSION:   # 6 bytes PPPoE header, 2 bytes PPP protocol
        if off + 8 > n:
            return None
        ppp = (data[off + 6] << 8) | data[off + 7]
        if ppp == PPP_IPV4:
            return _ipv4(data, off + 8, ts, frame, defrag)
        if ppp == PPP_IPV6:
            return _ipv6(data, off + 8, ts, frame, defrag)
    return None


def _ethernet(data, ts: float, frame: int, defrag=None) -> Result:
    if len(data) >= 48:
        (et, vi, total, _ident, ff, proto, sb, db,
         sport, dport, seq, ack, doff, flags) = _ETH_IP4_TCP.unpack_from(data, 0)
        if et == ETH_IPV4 and vi == 0x45 and proto == PROTO_TCP and not ff & 0x3FFF and total >= 40:
            end = 14 + total
            n = len(data)
            if end > n:
                end = n
            p = 34 + ((doff >> 4) << 2)
            if p > end or doff < 0x50:
                return None
            return Segment(ts, frame, _ADDR.get(sb) or _addr4(sb), _ADDR.get(db) or _addr4(db),
                           sport, dport, seq, ack, flags, data[p:end] if p < end else b"")
    elif len(data) < 14:
        return None
    return _ethertype((data[12] << 8) | data[13], data, 14, ts, frame, defrag)


def _raw(data, ts: float, frame: int, defrag=None) -> Result:
    if len(data) >= 34:
        (vi, total, _ident, ff, proto, sb, db,
         sport, dport, seq, ack, doff, flags) = _IP4_TCP.unpack_from(data, 0)
        if vi == 0x45 and proto == PROTO_TCP and not ff & 0x3FFF and total >= 40:
            n = len(data)
            end = total if total < n else n
            p = 20 + ((doff >> 4) << 2)
            if p > end or doff < 0x50:
                return None
            return Segment(ts, frame, _ADDR.get(sb) or _addr4(sb), _ADDR.get(db) or _addr4(db),
                           sport, dport, seq, ack, flags, data[p:end] if p < end else b"")
    return _ip_sniff(data, 0, ts, frame, defrag)


def _ipv4_link(data, ts: float, frame: int, defrag=None) -> Result:
    return _ipv4(data, 0, ts, frame, defrag)


def _ipv6_link(data, ts: float, frame: int, defrag=None) -> Result:
    return _ipv6(data, 0, ts, frame, defrag)


def _null(data, ts: float, frame: int, defrag=None) -> Result:
    # 4-byte address family in the byte order of the capturing host (LOOP:
    # network order); the value fits in one byte, so take whichever end is set.
    if len(data) < 4:
        return None
    fam = data[0] or data[3]
    if fam == NULL_AF_INET:
        return _ipv4(data, 4, ts, frame, defrag)
    if fam in NULL_AF_INET6:
        return _ipv6(data, 4, ts, frame, defrag)
    return None


def _sll(data, ts: float, frame: int, defrag=None) -> Result:
    if len(data) < 16:
        return None
    return _ethertype((data[14] << 8) | data[15], data, 16, ts, frame, defrag)


def _sll2(data, ts: float, frame: int, defrag=None) -> Result:
    if len(data) < 20:
        return None
    return _ethertype((data[0] << 8) | data[1], data, 20, ts, frame, defrag)


Decoder = Callable[..., Result]

DECODERS: dict[int, Decoder] = {
    LINKTYPE_NULL: _null,
    LINKTYPE_ETHERNET: _ethernet,
    LINKTYPE_RAW_12: _raw,
    LINKTYPE_RAW_14: _raw,
    LINKTYPE_RAW: _raw,
    LINKTYPE_LOOP: _null,
    LINKTYPE_LINUX_SLL: _sll,
    LINKTYPE_IPV4: _ipv4_link,
    LINKTYPE_IPV6: _ipv6_link,
    LINKTYPE_LINUX_SLL2: _sll2,
}


def _unsupported(data, ts: float, frame: int, defrag=None) -> Result:
    return None


def decoder_for(linktype: int) -> Decoder | None:
    """The frame decoder for a link type (``fn(data, ts, frame, defrag)``), None if unsupported."""
    return DECODERS.get(linktype)


def decode_frame(linktype: int, data: bytes | memoryview, ts: float, frame: int,
                 defrag: IpDefragmenter | None = None) -> Segment | CaptureNote | None:
    """Decode one link-layer frame into a TCP Segment (None for anything else).

    ``defrag`` reassembles IP fragments; without it fragments are dropped.
    A ``CaptureNote`` comes back for a fragment that cannot be reassembled.
    """
    return DECODERS.get(linktype, _unsupported)(data, ts, frame, defrag)


# ---------------------------------------------------------------------------
# IP fragment reassembly
# ---------------------------------------------------------------------------

class _Pending:
    __slots__ = ("first_ts", "first_frame", "total", "frags", "nbytes", "nh")

    def __init__(self, ts: float, frame: int):
        self.first_ts = ts
        self.first_frame = frame
        self.total = -1          # known once the last fragment (MF=0) is seen
        self.frags: list[tuple[int, bytes]] = []
        self.nbytes = 0
        self.nh = -1             # IPv6: next header from the first fragment


class IpDefragmenter:
    """Reassembles IPv4 and IPv6 fragments, within bounds.

    At most ``max_datagrams`` datagrams and ``max_bytes`` fragment bytes are
    pending; a datagram not completed within ``timeout`` seconds (capture time),
    or pushed out by the bounds, is dropped with a CaptureNote
    ``ip_fragment_incomplete`` appended to :attr:`notes` (the caller drains
    it). Overlapping fragments: the first received bytes win.
    """

    MAX_DATAGRAM = 65535

    def __init__(self, *, max_datagrams: int = 1024, max_bytes: int = 16 << 20,
                 timeout: float = 60.0):
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.notes: list[CaptureNote] = []
        self.pending_bytes = 0
        self.reassembled = 0
        self._pending: dict[tuple, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: tuple, offset: int, more: bool, data, ts: float, frame: int,
            nh: int = -1):
        """One fragment. Returns the datagram payload when complete (IPv6: a
        ``(next_header, payload)`` pair), a CaptureNote for an invalid fragment,
        else None."""
        pend = self._pending
        if pend:
            self._expire(ts, frame)
        size = len(data)
        if offset + size > self.MAX_DATAGRAM:
            return CaptureNote(frame, "ip_fragment_invalid",
                               f"frame {frame}: {_describe(key)}: fragment at offset {offset} "
                               f"with {size} bytes runs past 65535")
        p = pend.get(key)
        if p is None:
            p = pend[key] = _Pending(ts, frame)
        if size:
            p.frags.append((offset, bytes(data)))
            p.nbytes += size
            self.pending_bytes += size
        if offset == 0 and nh >= 0:
            p.nh = nh
        if not more:
            end = offset + size
            if p.total < 0 or end < p.total:
                p.total = end
        if p.total >= 0:
            done = self._assemble(p)
            if done is not None:
                del pend[key]
                self.pending_bytes -= p.nbytes
                self.reassembled += 1
                return (p.nh, done) if key[0] == 6 else done
        while len(pend) > self.max_datagrams or self.pending_bytes > self.max_bytes:
            self._drop(next(iter(pend)), frame, "too many pending fragments")
        return None

    @staticmethod
    def _assemble(p: _Pending) -> bytes | None:
        total = p.total
        cover = 0
        for o, d in sorted(p.frags):
            if o > cover:
                return None
            e = o + len(d)
            if e > cover:
                cover = e
            if cover >= total:
                break
        if cover < total:
            return None
        buf = bytearray(total)
        for o, d in reversed(p.frags):   # earlier fragments written last: first wins
            if o < total:
                buf[o:o + len(d)] = d[:total - o]
        return bytes(buf)

    def _drop(self, key: tuple, frame: int, why: str) -> None:
        p = self._pending.pop(key)
        self.pending_bytes -= p.nbytes
        total = "?" if p.total < 0 else str(p.total)
        self.notes.append(CaptureNote(
            p.first_frame, "ip_fragment_incomplete",
            f"frame {p.first_frame}: {_describe(key)}: {len(p.frags)} fragment(s), "
            f"{p.nbytes} of {total} bytes, never completed ({why})"))

    def _expire(self, now: float, frame: int) -> None:
        limit = now - self.timeout
        pend = self._pending
        while pend:
            key = next(iter(pend))     # oldest first: dicts keep insertion order
            if pend[key].first_ts >= limit:
                break
            self._drop(key, frame, "timed out")

    def flush(self) -> list[CaptureNote]:
        """End of input: every pending datagram reported; returns all undrained notes."""
        for key in list(self._pending):
            self._drop(key, 0, "capture ended")
        notes, self.notes = self.notes, []
        return notes


def _describe(key: tuple) -> str:
    ver, sb, db, ident = key[0], key[1], key[2], key[3]
    af = _AF_INET if ver == 4 else _AF_INET6
    try:
        return f"IPv{ver} {_ntop(af, sb)} -> {_ntop(af, db)} id {ident:#x}"
    except (ValueError, OSError):
        return f"IPv{ver} id {ident:#x}"

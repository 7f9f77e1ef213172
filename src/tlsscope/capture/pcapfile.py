"""Reading pcap and pcapng files (optionally gzip-compressed) into Segments.

The file is read in large chunks (plain or streaming gzip), and records are
walked with precompiled ``struct`` formats over a ``memoryview`` of the chunk;
frames are handed to the link-layer decoder as slices, without copies.
Problems in the file (cut short, corrupt block) become one CaptureNote and the
end of iteration; only an unusable file raises CaptureError, at open time.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator

from ..model import CaptureNote, Datagram, DecryptionSecrets, Segment
from .frames import _ADDR, _ETH_IP4_TCP, IpDefragmenter, _addr4, _ethernet, decoder_for

__all__ = ["CaptureError", "CaptureReader", "open_capture"]

CHUNK = 1 << 20                 # bytes read at a time
NO_TIME = float("-inf")

# CaptureReader.shard: a flow belongs to shard ((sport + dport) * SHARD_MIX >> 16) % n; the sum
# is the same both ways, the multiplier spreads it (Linux gives connect() even ports only)
SHARD_MIX = 40503

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
GZIP_MAGIC = b"\x1f\x8b"

# pcapng block types
BT_IDB = 0x00000001
BT_PB = 0x00000002              # obsolete Packet Block
BT_SPB = 0x00000003
BT_EPB = 0x00000006
BT_DSB = 0x0000000A

# A record or block larger than this is garbage, not a packet.
MAX_RECORD = 1 << 26
PCAP_MAX_CAPLEN = 1 << 18       # as libpcap/wireshark: beyond is a corrupt record
                                # (unless the header's snaplen says otherwise)

OPT_ENDOFOPT = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14


class CaptureError(Exception):
    """The file cannot be read as a capture at all. ``str()`` is one line."""


def open_capture(path: str | os.PathLike) -> CaptureReader:
    """Open a pcap or pcapng file (gzip-compressed or not) for reading."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise CaptureError(f"{name}: no such file") from None
    except OSError as e:
        raise CaptureError(f"{name}: cannot read ({e.strerror or e})") from None
    if os.path.isdir(name):
        raise CaptureError(f"{name}: is a directory, not a capture file")
    try:
        raw = open(name, "rb", buffering=0)
    except OSError as e:
        raise CaptureError(f"{name}: cannot read ({e.strerror or e})") from None
    try:
        head = raw.read(4)
        if not head:
            raise CaptureError(f"{name}: empty file")
        compressed = head[:2] == GZIP_MAGIC
        stream = raw
        if compressed:
            raw.seek(0)
            stream = _Gunzip(raw)
            head = stream.read(4)
            if not head and stream.error:
                raise CaptureError(f"{name}: gzip-compressed but unreadable ({stream.error})")
        kind = _kind(head)
        if kind is None:
            what = "gzip-compressed, but not a capture file" if compressed else "not a capture file"
            shown = head.hex() if head else "nothing"
            raise CaptureError(f"{name}: {what} (starts with {shown})")
        return CaptureReader(name, raw, stream, head, kind, compressed, st.st_size)
    except CaptureError:
        raw.close()
        raise
    except OSError as e:
        raw.close()
        raise CaptureError(f"{name}: cannot read ({e.strerror or e})") from None


def _kind(head: bytes) -> str | None:
    if len(head) < 4:
        return None
    be = int.from_bytes(head, "big")
    le = int.from_bytes(head, "little")
    if be == PCAPNG_SHB:
        return "pcapng"
    if be in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        return "pcap"
    return None


class _Gunzip:
    """Streaming gzip (several members allowed) that keeps what it could
    decompress before a cut or corruption and records why it stopped."""

    IN_CHUNK = 1 << 18

    def __init__(self, raw):
        self.raw = raw
        self.error: str | None = None
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._fed = False            # the current member has consumed input
        self._tail = b""
        self._done = False

    def read(self, n: int) -> bytes:
        parts = []
        have = 0
        while have < n and not self._done:
            src, self._tail = self._tail, b""
            if not src:
                src = self.raw.read(self.IN_CHUNK)
                if not src:
                    if self._fed and not self._d.eof:
                        self.error = "compressed data ends early"
                    self._done = True
                    break
            try:
                out = self._d.decompress(src, n - have)   # bounded output
            except zlib.error as e:
                if not self._fed and not src.strip(b"\0"):
                    continue         # zero padding after the last member
                self.error = f"corrupt compressed data ({e})"
                self._done = True
                break
            self._fed = True
            self._tail = self._d.unconsumed_tail
            if self._d.eof:          # next member, if anything follows
                # (past the end, zlib may report the rest both as unused data
                # and as unconsumed tail: take it once)
                self._tail = self._d.unused_data
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._fed = False
            if out:
                parts.append(out)
                have += len(out)
        return b"".join(parts)

    def close(self) -> None:
        self._done = True


class CaptureReader:
    """Iterates a capture file: Segments, DecryptionSecrets and CaptureNotes.

    Frames that are not TCP over IP yield nothing. ``frames`` counts every
    frame read so far; ``bytes_read`` and ``size`` (of the file on disk,
    compressed or not) allow a progress bar.
    """

    def __init__(self, path: str, raw, stream, head: bytes, kind: str, compressed: bool,
                 size: int):
        self.path = path
        self.format = kind
        self.compressed = compressed
        self.linktypes: set[int] = set()
        self.frames = 0
        self.size = size
        self.bytes_read = 0
        self.defrag = IpDefragmenter()
        self._raw = raw
        self._stream = stream
        self._head = head              # already consumed from the stream
        self._eof = False
        self._error: str | None = None
        self._error_reported = False
        self._gen: Iterator | None = None
        self._closed = False
        self._warned_linktypes: set[int] = set()
        self._warned_iface = False
        self._stash: tuple | None = None   # see _refill
        # (k, n): this reader handles the TCP flows of shard k of n (see SHARD_MIX); segments of
        # the others come out as (ts, frame) ticks (see TcpReassembler.tick, tlsscope.parallel)
        self.shard: tuple[int, int] | None = None
        # With a shard, a tick is only due when the consumer's clock has something to do: the
        # consumer sets ``wake`` to the capture time of its next idle sweep (TcpReassembler.next_sweep).
        # Earlier ticks only move the clock and expire tombstones, which the next owned segment
        # does as well; the pcap fast path folds them into one tick of their latest time, yielded
        # before the next owned segment when that one is older (timestamps that go backwards).
        self.wake = float("-inf")

    # -- context manager / iteration -----------------------------------------
    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Segment | DecryptionSecrets | CaptureNote]:
        if self._gen is None:
            self._gen = self._iterate() if not self._closed else iter(())
        return self._gen

    def close(self) -> None:
        self._closed = True
        if self._gen is not None:
            self._gen.close()
        try:
            if self._stream is not self._raw:
                self._stream.close()
        finally:
            self._raw.close()

    def __repr__(self) -> str:
        return f"<CaptureReader {self.path!r} {self.format}{' gz' if self.compressed else ''}>"

    # -- reading --------------------------------------------------------------
    def _read(self, n: int) -> bytes:
        """Up to ``n`` more bytes of the (decompressed) stream; b'' at the end."""
        if self._head:
            h, self._head = self._head, b""
            return h + self._read(n - len(h)) if n > len(h) else h
        if self._eof:
            return b""
        try:
            data = self._stream.read(n)
        except OSError as e:
            self._eof = True
            self._error = f"read error: {e.strerror or e}"
            return b""
        if not data:
            self._eof = True
            if self.compressed and self._stream.error:
                self._error = self._stream.error
        try:
            self.bytes_read = self._raw.tell()
        except OSError:
            pass
        return data

    def _iterate(self):
        if self.format == "pcap":
            return self._pcap()        # adds the trailer itself: one generator less per packet
        return self._pcapng_all()

    def _pcapng_all(self):
        yield from self._pcapng()
        yield from self._trailer()

    def _trailer(self) -> list:
        out: list = []
        if self._error and not self._error_reported:
            # the input stopped at a record boundary, but not at its real end
            out.append(CaptureNote(self.frames, "capture_truncated",
                                   f"{self.path}: input ends after packet {self.frames} "
                                   f"({self._error})"))
        out += self.defrag.flush()
        return out

    def _note_cut(self, offset: int, needed: int, have: int, what: str) -> CaptureNote:
        self._error_reported = True
        why = f"; {self._error}" if self._error else ""
        return CaptureNote(self.frames + 1, "capture_truncated",
                           f"{self.path}: capture cut short at byte {offset} in {what} "
                           f"{self.frames + 1} ({needed} bytes needed, {have} present{why})")

    def _note_corrupt(self, offset: int, reason: str) -> CaptureNote:
        return CaptureNote(self.frames + 1, "capture_corrupt",
                           f"{self.path}: corrupt data at byte {offset} before packet "
                           f"{self.frames + 1} ({reason}); reading stopped")

    def _decoder(self, linktype: int):
        self.linktypes.add(linktype)
        dec = decoder_for(linktype)
        if dec is None:
            return _ignore
        return dec

    def _unsupported_note(self, linktype: int) -> CaptureNote | None:
        if decoder_for(linktype) is not None or linktype in self._warned_linktypes:
            return None
        self._warned_linktypes.add(linktype)
        return CaptureNote(self.frames, "unsupported_linktype",
                           f"{self.path}: link type {linktype} is not supported; "
                           f"its frames are skipped")

    # -- pcap -----------------------------------------------------------------
    def _pcap(self):
        buf = self._read(CHUNK)
        if len(buf) < 24:
            yield self._note_cut(len(buf), 24, len(buf), "file header before packet")
            yield from self._trailer()
            return
        magic_le = int.from_bytes(buf[:4], "little")
        e = "<" if magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
        magic = magic_le if e == "<" else int.from_bytes(buf[:4], "big")
        scale = 1e-9 if magic == PCAP_MAGIC_NS else 1e-6
        _vmaj, _vmin, _zone, _sig, snaplen, network = struct.unpack_from(e + "HHiIII", buf, 4)
        # the upper bits of the link-type field carry FCS information
        linktype = network & 0x0FFFFFFF
        decode = self._decoder(linktype)
        note = self._unsupported_note(linktype)
        if note:
            yield note
        limit = max(PCAP_MAX_CAPLEN, min(snaplen, MAX_RECORD))
        rec = struct.Struct(e + "IIII")
        unpack = rec.unpack_from
        defrag = self.defrag
        notes = defrag.notes
        pos = 24
        base = 0                       # file offset of buf[0]
        mv = memoryview(buf)
        n = len(buf)
        frame = self.frames
        # Ethernet + IPv4 (no options, unfragmented) + TCP, by far the most common frame, is decoded
        # right here from the chunk (one struct call, payload sliced as bytes); everything else goes
        # through the link-layer decoder. The checks are those of frames._ethernet.
        eth = decode is _ethernet
        eth_unpack = _ETH_IP4_TCP.unpack_from
        addr = _ADDR.get
        sk, sn = self.shard or (0, 0)
        hi = NO_TIME                   # latest time of the other shards' packets not yet ticked
        try:
            while True:
                if n - pos < 16:
                    buf, mv, base, pos, n = self._refill(buf, base, pos, 16)
                    if n - pos < 16:
                        if n > pos:
                            self.frames = frame
                            yield self._note_cut(base + pos, 16, n - pos, "the header of packet")
                        break
                sec, frac, caplen, _orig = unpack(buf, pos)
                if caplen > limit:
                    self.frames = frame
                    yield self._note_corrupt(base + pos, f"packet record claims {caplen} bytes")
                    break
                end = pos + 16 + caplen
                if end > n:
                    buf, mv, base, pos, n = self._refill(buf, base, pos, 16 + caplen)
                    end = pos + 16 + caplen
                    if end > n:
                        self.frames = frame
                        yield self._note_cut(base + pos, 16 + caplen, n - pos, "packet")
                        break
                frame += 1
                if eth and caplen >= 48:
                    q = pos + 16
                    (et, vi, total, _ident, ff, proto, sb, db,
                     sport, dport, seq, ack, doff, flags) = eth_unpack(buf, q)
                    if et == 0x0800 and vi == 0x45 and proto == 6 and not ff & 0x3FFF and total >= 40:
                        stop = q + 14 + total
                        if stop > end:
                            stop = end
                        p = q + 34 + ((doff >> 4) << 2)
                        pos = end
                        if p > stop or doff < 0x50:
                            continue
                        ts = sec + frac * scale
                        if sn:
                            if ((sport + dport) * SHARD_MIX >> 16) % sn != sk:
                                if ts >= self.wake:
                                    self.frames = frame
                                    hi = NO_TIME
                                    yield (ts, frame)
                                elif ts > hi:
                                    hi = ts
                                continue
                            if hi > ts:
                                self.frames = frame
                                yield (hi, frame)
                            hi = NO_TIME
                        self.frames = frame
                        yield Segment(ts, frame, addr(sb) or _addr4(sb), addr(db) or _addr4(db),
                                      sport, dport, seq, ack, flags, buf[p:stop] if p < stop else b"")
                        continue
                r = decode(mv[pos + 16:end], sec + frac * scale, frame, defrag)
                pos = end
                if r is not None:
                    self.frames = frame
                    if sn:
                        if hi != NO_TIME:
                            yield (hi, frame)
                            hi = NO_TIME
                        r = _tick(r, sk, sn)
                    yield r
                if notes:
                    self.frames = frame
                    yield from notes
                    notes.clear()
        finally:
            self.frames = frame
        yield from self._trailer()

    def _refill(self, buf: bytes, base: int, pos: int, need: int):
        """Keep ``buf[pos:]`` and read more, so that at least ``need`` bytes are
        available if the input has them. Returns (buf, mv, base, pos, n).

        Chunks are not copied: a record that straddles two chunks is joined on its
        own (just its bytes), and the rest of the new chunk waits in ``_stash``
        (chunk, offset, file offset of chunk[0]) until the loop comes back for it.
        """
        stash = self._stash
        if pos >= len(buf):
            if stash is not None:
                chunk, off, cbase = stash
                self._stash = None
                if len(chunk) - off >= need:
                    return chunk, memoryview(chunk), cbase, off, len(chunk)
                left, lbase = chunk[off:], cbase + off
            else:
                lbase = base + len(buf)
                left = self._read(max(CHUNK, need))
                if len(left) >= need or not left:
                    return left, memoryview(left), lbase, 0, len(left)
        else:
            left, lbase = buf[pos:], base + pos
        parts = [left]
        have = len(left)
        while have < need:
            stash = self._stash
            if stash is None:
                more = self._read(max(CHUNK, need - have))
                if not more:
                    break
                if have + len(more) <= need:
                    parts.append(more)
                    have += len(more)
                else:
                    self._stash = (more, 0, lbase + have)
                continue
            chunk, off, cbase = stash
            take = chunk[off:off + need - have]
            off += len(take)
            self._stash = (chunk, off, cbase) if off < len(chunk) else None
            parts.append(take)
            have += len(take)
        new = b"".join(parts)
        return new, memoryview(new), lbase, 0, len(new)

    # -- pcapng ---------------------------------------------------------------
    def _pcapng(self):
        buf = self._read(CHUNK)
        base = 0
        pos = 0
        n = len(buf)
        mv = memoryview(buf)
        defrag = self.defrag
        notes = defrag.notes
        frame = self.frames
        e = "<"
        hdr = struct.Struct("<II")
        epb = struct.Struct("<IIIIIII")
        u32 = struct.Struct("<I")
        ifaces: list[tuple] = []       # (decode, linktype, units_per_sec, offset, snaplen)
        sk, sn = self.shard or (0, 0)
        try:
            while True:
                if n - pos < 12:
                    buf, mv, base, pos, n = self._refill(buf, base, pos, 12)
                    if n - pos < 12:
                        if n > pos:
                            self.frames = frame
                            yield self._note_cut(base + pos, 12, n - pos, "the block before packet")
                        return
                btype, blen = hdr.unpack_from(buf, pos)
                if btype == PCAPNG_SHB:
                    # byte order of this section from its byte-order magic
                    bom = buf[pos + 8:pos + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        e = "<"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        e = ">"
                    else:
                        self.frames = frame
                        yield self._note_corrupt(base + pos, "section header with a bad byte-order magic")
                        return
                    hdr = struct.Struct(e + "II")
                    epb = struct.Struct(e + "IIIIIII")
                    u32 = struct.Struct(e + "I")
                    blen = hdr.unpack_from(buf, pos)[1]
                    ifaces = []
                if blen < 12 or blen & 3 or blen > MAX_RECORD:
                    self.frames = frame
                    yield self._note_corrupt(base + pos, f"block of type {btype:#x} with length {blen}")
                    return
                end = pos + blen
                if end > n:
                    buf, mv, base, pos, n = self._refill(buf, base, pos, blen)
                    end = pos + blen
                    if end > n:
                        self.frames = frame
                        yield self._note_cut(base + pos, blen, n - pos, "the block before packet")
                        return
                if u32.unpack_from(buf, end - 4)[0] != blen:
                    self.frames = frame
                    yield self._note_corrupt(base + pos, f"block of type {btype:#x}: trailing length "
                                             f"does not match {blen}")
                    return
                if btype == BT_EPB or btype == BT_PB:
                    if blen < 32:
                        self.frames = frame
                        kind = "enhanced packet block" if btype == BT_EPB else "packet block"
                        yield self._note_corrupt(base + pos, f"{kind} of {blen} bytes")
                        return
                    if btype == BT_EPB:
                        _t, _l, ifid, tsh, tsl, caplen, _orig = epb.unpack_from(buf, pos)
                    else:   # obsolete Packet Block: 2-byte interface id, 2-byte drop count
                        ifid = struct.unpack_from(e + "H", buf, pos + 8)[0]
                        tsh, tsl, caplen = struct.unpack_from(e + "III", buf, pos + 12)
                    frame += 1
                    if caplen > blen - 32:
                        self.frames = frame
                        yield self._note_corrupt(base + pos, f"packet of {caplen} bytes in a block of {blen}")
                        return
                    if ifid < len(ifaces):
                        dec, _lt, units, tsoff, _snap = ifaces[ifid]
                        r = dec(mv[pos + 28:pos + 28 + caplen], ((tsh << 32) | tsl) / units + tsoff,
                                frame, defrag)
                        if r is not None:
                            self.frames = frame
                            yield _tick(r, sk, sn) if sn else r
                        if notes:
                            self.frames = frame
                            yield from notes
                            notes.clear()
                    elif not self._warned_iface:
                        self._warned_iface = True
                        self.frames = frame
                        yield CaptureNote(frame, "unknown_interface",
                                          f"{self.path}: packet {frame} names interface {ifid}, "
                                          f"which was not described; such packets are skipped")
                elif btype == BT_IDB:
                    self.frames = frame
                    iface = self._idb(mv[pos + 8:end - 4], e)
                    if iface is None:
                        yield self._note_corrupt(base + pos, "interface description block too short")
                        return
                    ifaces.append(iface)
                    note = self._unsupported_note(iface[1])
                    if note:
                        yield note
                elif btype == BT_SPB:
                    if blen < 16:
                        self.frames = frame
                        yield self._note_corrupt(base + pos, f"simple packet block of {blen} bytes")
                        return
                    frame += 1
                    if ifaces:
                        orig = u32.unpack_from(buf, pos + 8)[0]
                        dec, _lt, _units, _tsoff, snap = ifaces[0]
                        caplen = min(orig, blen - 16, snap or orig)
                        r = dec(mv[pos + 12:pos + 12 + caplen], 0.0, frame, defrag)
                        if r is not None:
                            self.frames = frame
                            yield _tick(r, sk, sn) if sn else r
                        if notes:
                            self.frames = frame
                            yield from notes
                            notes.clear()
                elif btype == BT_DSB:
                    if blen >= 20:
                        stype, slen = struct.unpack_from(e + "II", buf, pos + 8)
                        if slen <= blen - 20:
                            self.frames = frame
                            yield DecryptionSecrets(stype, bytes(mv[pos + 16:pos + 16 + slen]), frame)
                # every other block (statistics, name resolution, custom, ...) is skipped
                pos = end
        finally:
            self.frames = frame

    def _idb(self, body: memoryview, e: str):
        """(decode, linktype, units_per_second, ts_offset, snaplen) of one interface."""
        if len(body) < 8:
            return None
        linktype, _res, snaplen = struct.unpack_from(e + "HHI", body, 0)
        units: int = 1_000_000
        tsoff = 0
        p = 8
        u16 = struct.Struct(e + "HH")
        while p + 4 <= len(body):
            code, olen = u16.unpack_from(body, p)
            p += 4
            if code == OPT_ENDOFOPT or p + olen > len(body):
                break
            if code == OPT_IF_TSRESOL and olen >= 1:
                r = body[p]
                # high bit: negative power of 2, else of 10; absurd values ignored
                if r & 0x80:
                    if (r & 0x7F) <= 64:
                        units = 1 << (r & 0x7F)
                elif r <= 18:
                    units = 10 ** r
            elif code == OPT_IF_TSOFFSET and olen >= 8:
                tsoff = struct.unpack_from(e + "q", body, p)[0]
            p += (olen + 3) & ~3
        return self._decoder(linktype), linktype, units, tsoff, snaplen


def _tick(item, k: int, n: int):
    """A Segment or Datagram of a flow another shard handles becomes a (ts, frame) tick."""
    cls = item.__class__
    if (cls is Segment or cls is Datagram) and ((item.sport + item.dport) * SHARD_MIX >> 16) % n != k:
        return (item.ts, item.frame)
    return item


def _ignore(data, ts, frame, defrag=None):
    return None

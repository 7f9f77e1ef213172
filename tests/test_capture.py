"""Capture files: pcap / pcapng / gzip, damaged files, and tshark as the oracle."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import CORPUS, need_corpus, need_tool
from test_frames import PAYLOAD, ether, ipv4, ipv6, sll, tcp

from tlsscope.capture import CaptureError, open_capture
from tlsscope.model import ACK, PSH, SYN, CaptureNote, DecryptionSecrets, Segment

# -- writers ------------------------------------------------------------------------


def pcap_bytes(records, linktype=1, e="<", ns=False, snaplen=65535):
    """records: (sec, frac, data[, orig_len])"""
    out = struct.pack(e + "IHHiIII", 0xA1B23C4D if ns else 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)
    for rec in records:
        sec, frac, data = rec[:3]
        orig = rec[3] if len(rec) > 3 else len(data)
        out += struct.pack(e + "IIII", sec, frac, len(data), orig) + data
    return out


def _pad(b):
    return b + b"\x00" * (-len(b) % 4)


def block(e, btype, body):
    body = _pad(body)
    return struct.pack(e + "II", btype, len(body) + 12) + body + struct.pack(e + "I", len(body) + 12)


def shb(e):
    return block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def opt(e, code, value):
    return struct.pack(e + "HH", code, len(value)) + _pad(value)


def idb(e, linktype, snaplen=0, tsresol=None, tsoffset=None):
    opts = b""
    if tsresol is not None:
        opts += opt(e, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += opt(e, 14, struct.pack(e + "q", tsoffset))
    if opts:
        opts += opt(e, 0, b"")
    return block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def epb(e, ifid, ticks, data, orig=None):
    return block(e, 6, struct.pack(e + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                                   len(data) if orig is None else orig) + _pad(data)
                 + opt(e, 1, b"comment") + opt(e, 0, b""))


def spb(e, data):
    return block(e, 3, struct.pack(e + "I", len(data)) + data)


def pb(e, ifid, ticks, data):
    return block(e, 2, struct.pack(e + "HHIIII", ifid, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                   len(data), len(data)) + data)


def dsb(e, stype, data):
    return block(e, 0x0A, struct.pack(e + "II", stype, len(data)) + data)


def frame(seq, payload=PAYLOAD, flags=PSH | ACK, v6=False, sport=40000):
    t = tcp(sport=sport, seq=seq, flags=flags, payload=payload)
    return ether(ipv6(t), 0x86DD) if v6 else ether(ipv4(t))


UDP = ether(ipv4(b"\x00" * 20, proto=17))


def read_all(path):
    with open_capture(path) as r:
        items = list(r)
    return r, items


def segs(items):
    return [i for i in items if isinstance(i, Segment)]


def notes(items, code=None):
    return [i for i in items if isinstance(i, CaptureNote) and (code is None or i.code == code)]


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# -- pcap -----------------------------------------------------------------------------

@pytest.mark.parametrize("e", ["<", ">"])
@pytest.mark.parametrize("ns", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, e, ns):
    frac = 123456789 if ns else 123456
    recs = [(1700000000, frac, frame(1)), (1700000001, 0, UDP), (1700000002, 5, frame(2, b"x", v6=True))]
    r, items = read_all(write(tmp_path, "a.pcap", pcap_bytes(recs, e=e, ns=ns)))
    assert r.format == "pcap" and not r.compressed and r.linktypes == {1} and r.frames == 3
    s = segs(items)
    assert [(x.frame, x.seq, bytes(x.payload)) for x in s] == [(1, 1, PAYLOAD), (3, 2, b"x")]
    assert s[0].ts == pytest.approx(1700000000 + frac * (1e-9 if ns else 1e-6), abs=1e-7)
    assert s[1].src == "2001:db8::1" and s[0].src == "192.0.2.1"
    assert r.bytes_read == r.size == os.path.getsize(tmp_path / "a.pcap")
    assert not notes(items)


def test_pcap_snaplen_cut_packets(tmp_path):
    full = frame(7, b"A" * 100)
    r, items = read_all(write(tmp_path, "s.pcap", pcap_bytes([(1, 0, full[:80], len(full))], snaplen=80)))
    (s,) = segs(items)
    assert bytes(s.payload) == b"A" * (80 - 54) and not notes(items)


def test_pcap_linktype_fcs_bits_ignored_and_other_linktypes(tmp_path):
    data = pcap_bytes([(1, 0, sll(ipv4(tcp(payload=PAYLOAD))))], linktype=113 | 0x10000000)
    r, items = read_all(write(tmp_path, "l.pcap", data))
    assert r.linktypes == {113} and bytes(segs(items)[0].payload) == PAYLOAD


def test_unsupported_linktype_is_one_note(tmp_path):
    r, items = read_all(write(tmp_path, "u.pcap", pcap_bytes([(1, 0, b"\x00" * 60)] * 3, linktype=147)))
    assert [n.code for n in notes(items)] == ["unsupported_linktype"] and r.frames == 3


# -- pcapng ---------------------------------------------------------------------------

def test_pcapng_sections_interfaces_resolutions_and_block_kinds(tmp_path):
    le, be = "<", ">"
    data = (
        shb(le)
        + idb(le, 1)                                            # if0: microseconds
        + idb(le, 101, tsresol=9, tsoffset=100)                 # if1: raw IP, ns, +100 s
        + epb(le, 0, 1_700_000_000_250_000, frame(10))
        + block(le, 0x0BAD, b"unknown block")                   # skipped
        + epb(le, 1, 5_000_000_001, ipv4(tcp(seq=11, payload=b"raw")))
        + dsb(le, 0x544C534B, b"CLIENT_RANDOM aa bb\n")
        + block(le, 5, b"\x00" * 20)                            # interface statistics
        + pb(le, 0, 2_000_000, frame(12, b"old"))               # obsolete packet block
        + shb(be)                                               # a new section, big-endian
        + idb(be, 113, tsresol=0x80 | 10)                       # SLL, 2^-10 s
        + epb(be, 0, 3 * 1024 + 512, sll(ipv4(tcp(seq=13, payload=b"sll"))))
        + spb(be, sll(ipv4(tcp(seq=14, payload=b"simple"))))
    )
    r, items = read_all(write(tmp_path, "a.pcapng", data))
    assert r.format == "pcapng" and r.linktypes == {1, 101, 113} and r.frames == 5
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["Segment", "Segment", "DecryptionSecrets", "Segment", "Segment", "Segment"]
    s = segs(items)
    assert [(x.frame, x.seq, bytes(x.payload)) for x in s] == [
        (1, 10, PAYLOAD), (2, 11, b"raw"), (3, 12, b"old"), (4, 13, b"sll"), (5, 14, b"simple")]
    assert s[0].ts == pytest.approx(1_700_000_000.25)
    assert s[1].ts == pytest.approx(105.000000001)
    assert s[2].ts == pytest.approx(2.0)
    assert s[3].ts == pytest.approx(3.5)
    ds = items[2]
    assert ds == DecryptionSecrets(0x544C534B, b"CLIENT_RANDOM aa bb\n", 2)
    assert not notes(items)


def test_pcapng_packet_for_undescribed_interface_is_noted(tmp_path):
    data = shb("<") + idb("<", 1) + epb("<", 3, 0, frame(1)) + epb("<", 0, 0, frame(2)) \
        + epb("<", 7, 0, frame(3))
    r, items = read_all(write(tmp_path, "i.pcapng", data))
    assert [x.seq for x in segs(items)] == [2] and r.frames == 3
    assert [(n.code, n.frame) for n in notes(items)] == [("unknown_interface", 1)]


# -- gzip --------------------------------------------------------------------------------

def test_gzip_pcap_and_pcapng(tmp_path):
    plain = pcap_bytes([(1, 0, frame(i)) for i in range(1, 200)])
    r, items = read_all(write(tmp_path, "a.pcap.gz", gzip.compress(plain)))
    assert r.compressed and r.format == "pcap" and [s.seq for s in segs(items)] == list(range(1, 200))
    ng = shb("<") + idb("<", 1) + b"".join(epb("<", 0, i, frame(i)) for i in range(1, 50))
    r, items = read_all(write(tmp_path, "a.ng", gzip.compress(ng)))
    assert r.compressed and r.format == "pcapng" and len(segs(items)) == 49


def test_gzip_several_members_and_zero_padding(tmp_path):
    plain = pcap_bytes([(1, 0, frame(i)) for i in range(1, 30)])
    data = gzip.compress(plain[:300]) + gzip.compress(plain[300:]) + b"\x00" * 100
    r, items = read_all(write(tmp_path, "m.pcap.gz", data))
    assert [s.seq for s in segs(items)] == list(range(1, 30)) and not notes(items)


def test_gzip_cut_at_a_record_boundary_is_still_noted(tmp_path):
    plain = pcap_bytes([(1, 0, frame(i)) for i in range(1, 30)])
    z = gzip.compress(plain)
    r, items = read_all(write(tmp_path, "b.pcap.gz", z[:-8]))      # only the trailer lost
    assert len(segs(items)) == 29
    assert [n.code for n in notes(items)] == ["capture_truncated"]


def test_gzip_cut_short_is_a_note(tmp_path):
    plain = pcap_bytes([(1, 0, frame(i)) for i in range(1, 400)])
    z = gzip.compress(plain)
    r, items = read_all(write(tmp_path, "cut.pcap.gz", z[:len(z) // 2]))
    got = segs(items)
    assert 0 < len(got) < 399 and [s.seq for s in got] == list(range(1, len(got) + 1))
    (n,) = notes(items)
    assert n.code == "capture_truncated" and "byte" in n.message


# -- damaged files ----------------------------------------------------------------------------

def _cut_check(tmp_path, data, boundaries, n_total, name):
    full_seqs = list(range(1, n_total + 1))
    for cut in range(len(data) + 1):
        p = write(tmp_path, name, data[:cut])
        if cut < 4:
            with pytest.raises(CaptureError):
                open_capture(p)
            continue
        r, items = read_all(p)
        seqs = [s.seq for s in segs(items)]
        assert seqs == full_seqs[:len(seqs)]
        cut_notes = notes(items, "capture_truncated")
        if cut in boundaries:
            assert not cut_notes, cut
        else:
            assert len(cut_notes) == 1 and items[-1] is cut_notes[0], cut
            assert str(cut_notes[0].message).startswith(str(p)) and "cut short at byte" in cut_notes[0].message


def test_pcap_truncated_at_every_offset(tmp_path):
    recs = [(1, 0, frame(i, b"z" * i)) for i in range(1, 4)]
    data = pcap_bytes(recs)
    bounds, pos = {24}, 24
    for rec in recs:
        pos += 16 + len(rec[2])
        bounds.add(pos)
    _cut_check(tmp_path, data, bounds, 3, "t.pcap")


def test_pcapng_truncated_at_every_offset(tmp_path):
    blocks = [shb("<"), idb("<", 1)] + [epb("<", 0, i, frame(i, b"y" * i)) for i in range(1, 4)]
    data = b"".join(blocks)
    bounds, pos = set(), 0
    for b in blocks:
        pos += len(b)
        bounds.add(pos)
    _cut_check(tmp_path, data, bounds, 3, "t.pcapng")


def test_truncation_note_names_offset_and_packet(tmp_path):
    recs = [(1, 0, frame(1)), (1, 0, frame(2))]
    data = pcap_bytes(recs)
    cut = len(data) - 10
    r, items = read_all(write(tmp_path, "n.pcap", data[:cut]))
    (n,) = notes(items)
    start = 24 + 16 + len(recs[0][2])
    assert f"at byte {start}" in n.message and "packet 2" in n.message and n.frame == 2


def test_pcapng_bad_block_length_in_the_middle(tmp_path):
    good = shb("<") + idb("<", 1) + epb("<", 0, 1, frame(1))
    for garbage in (struct.pack("<II", 6, 7) + b"\xff" * 40,                       # not a multiple of 4
                    struct.pack("<II", 6, 0xFFFFFFF0) + b"\xff" * 40,              # absurd length
                    block("<", 6, b"\x00" * 24)[:-4] + struct.pack("<I", 99)):     # trailer mismatch
        r, items = read_all(write(tmp_path, "g.pcapng", good + garbage + epb("<", 0, 2, frame(2))))
        assert [s.seq for s in segs(items)] == [1]
        (n,) = notes(items)
        assert n.code == "capture_corrupt" and "g.pcapng" in n.message and items[-1] is n


def test_pcap_garbage_record_length(tmp_path):
    data = pcap_bytes([(1, 0, frame(1))]) + struct.pack("<IIII", 1, 0, 0xFFFFFF00, 5) + b"\x00" * 64
    r, items = read_all(write(tmp_path, "g.pcap", data))
    assert [s.seq for s in segs(items)] == [1]
    assert [n.code for n in notes(items)] == ["capture_corrupt"]


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file"),
    (b"\x7fELF\x02\x01\x01" + b"\x00" * 60, "not a capture file (starts with 7f454c46)"),
    (b"hello, this is text\n", "not a capture file (starts with 68656c6c)"),
    (gzip.compress(b"just some text"), "gzip-compressed, but not a capture file"),
    (b"\x1f\x8b\x08\x00garbage", "gzip-compressed but unreadable"),
    (b"\xd4\xc3", "not a capture file"),
])
def test_unusable_files_raise_capture_error(tmp_path, content, reason):
    p = write(tmp_path, "bad.bin", content)
    with pytest.raises(CaptureError) as ei:
        open_capture(p)
    msg = str(ei.value)
    assert msg.startswith(str(p) + ": ") and reason in msg and "\n" not in msg


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CaptureError, match=r"nope\.pcap: no such file$"):
        open_capture(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError, match="is a directory"):
        open_capture(tmp_path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
    p = write(tmp_path, "x.pcap", pcap_bytes([]))
    p.chmod(0)
    with pytest.raises(CaptureError, match="cannot read"):
        open_capture(p)


def test_close_early_and_twice(tmp_path):
    p = write(tmp_path, "c.pcap", pcap_bytes([(1, 0, frame(i)) for i in range(1, 5)]))
    r = open_capture(p)
    it = iter(r)
    assert next(it).seq == 1 and r.frames == 1
    r.close()
    r.close()
    assert list(it) == []
    r2 = open_capture(p)
    r2.close()
    assert list(r2) == []


def test_reader_reassembles_fragments_and_reports_leftovers(tmp_path):
    body = tcp(seq=5, flags=SYN, payload=b"F" * 2000)
    f1 = ether(ipv4(body[:1480], mf=True, ident=1))
    f2 = ether(ipv4(body[1480:], frag_off=1480, ident=1))
    lone = ether(ipv4(body[:1480], mf=True, ident=2))
    r, items = read_all(write(tmp_path, "f.pcap", pcap_bytes([(1, 0, f1), (1, 0, lone), (1, 0, f2)])))
    (s,) = segs(items)
    assert s.frame == 3 and bytes(s.payload) == b"F" * 2000
    (n,) = notes(items)
    assert n.code == "ip_fragment_incomplete" and n.frame == 2


# -- tshark as the oracle ------------------------------------------------------------------

TSHARK_FIELDS = ["frame.number", "ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport",
                 "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len",
                 "frame.time_epoch"]


def tshark_segments(path: Path) -> dict:
    tshark = need_tool("tshark")
    cmd = [tshark, "-n", "-r", str(path), "-Y", "tcp and not icmp and not icmpv6 and not udp",
           "-T", "fields", "-E", "separator=|"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    rows = {}
    for line in out.splitlines():
        f = line.split("|")
        rows[int(f[0])] = ((f[1] or f[2]).split(",")[-1], (f[3] or f[4]).split(",")[-1],
                           int(f[5]), int(f[6]), int(f[7]), int(f[8]), int(f[9], 16) & 0xFF,
                           int(f[10]), float(f[11]))
    return rows


def our_segments(path: Path) -> dict:
    r, items = read_all(path)
    return {s.frame: (s.src, s.dst, s.sport, s.dport, s.seq, s.ack, s.flags, len(s.payload), s.ts)
            for s in segs(items)}


def assert_same_as_tshark(path: Path):
    theirs = tshark_segments(path)
    ours = our_segments(path)
    assert theirs, "tshark saw no TCP: a useless comparison"
    assert sorted(ours) == sorted(theirs)
    for k, t in theirs.items():
        o = ours[k]
        assert o[:8] == t[:8], (k, o, t)
        assert o[8] == pytest.approx(t[8], abs=2e-6), k


CORPUS_FILES = [
    "syncsynchalt_illustrated-tls13/captures/capture.pcap",               # BSD NULL
    "FoxIO-LLC_ja4/pcap/ipv6.pcapng",                                     # NULL, IPv6
    "OISF_suricata-verify/tests/bug-5758/input.pcap",                     # raw IP (101)
    "OISF_suricata-verify/tests/tls-alpn-log-detect-02/input.pcap",       # raw IP (101)
    "OISF_suricata-verify/tests/community-id-ipv6/input.pcap",            # Ethernet, IPv6
    "FoxIO-LLC_ja4/pcap/browsers-x509.pcapng",                            # pcapng
    "Lekensteyn_wireshark-notes/tls/all/dump.pcapng",                     # pcapng
    "FoxIO-LLC_ja4/pcap/chrome-cloudflare-quic-with-secrets.pcapng",      # pcapng + DSB
    "secdev_scapy/test/pcaps/tls_tcp_frag.pcap.gz",                       # gzip
    "arkime_arkime/tests/pcap/pppoe.pcap",                                # PPPoE
    "seladb_PcapPlusPlus/Tests/ExamplesTest/pcap_examples/tls2.pcap",     # v4 + v6, losses
]


@pytest.mark.parametrize("rel", CORPUS_FILES)
def test_corpus_capture_matches_tshark(rel):
    need_corpus()
    path = CORPUS / rel
    if not path.is_file():
        pytest.fail(f"corpus file missing: {rel}")
    assert_same_as_tshark(path)


def test_corpus_secrets_block():
    need_corpus()
    r, items = read_all(CORPUS / "FoxIO-LLC_ja4/pcap/chrome-cloudflare-quic-with-secrets.pcapng")
    ds = [i for i in items if isinstance(i, DecryptionSecrets)]
    assert ds and ds[0].secrets_type == 0x544C534B and b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" in ds[0].data


def _ether_frames(path: Path):
    """(ts_sec, ts_usec, ethertype, l3 bytes) of an Ethernet pcap from the corpus."""
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    pos, out = 24, []
    while pos + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack_from("<IIII", data, pos)
        f = data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
        et = struct.unpack_from("!H", f, 12)[0]
        if et in (0x0800, 0x86DD):
            out.append((sec, usec, et, f[14:]))
    return out


WRAP = {
    "sll": (113, lambda et, ip: sll(ip, et)),
    "sll2": (276, lambda et, ip: struct.pack("!HHIHBB8s", et, 0, 2, 1, 4, 6, b"\1" * 8) + ip),
    "null_le": (0, lambda et, ip: struct.pack("<I", 2 if et == 0x800 else 30) + ip),
    "null_be": (0, lambda et, ip: struct.pack(">I", 2 if et == 0x800 else 24) + ip),
    "loop": (108, lambda et, ip: struct.pack(">I", 2 if et == 0x800 else 28) + ip),
    "raw": (101, lambda et, ip: ip),
    "vlan": (1, lambda et, ip: ether(ip, et, vlans=[(0x8100, 42)])),
    "qinq": (1, lambda et, ip: ether(ip, et, vlans=[(0x88A8, 7), (0x8100, 42)])),
}


@pytest.mark.parametrize("kind", sorted(WRAP))
@pytest.mark.parametrize("ng", [False, True], ids=["pcap", "pcapng"])
def test_rewrapped_corpus_frames_match_tshark(tmp_path, kind, ng):
    """Corpus frames re-encapsulated in other link types, tshark decoding the same file."""
    need_corpus()
    frames = (_ether_frames(CORPUS / "OISF_suricata-verify/tests/community-id-ipv6/input.pcap")[:60]
              + _ether_frames(CORPUS / "OISF_suricata-verify/tests/community-id-ipv4/input.pcap")[:60])
    linktype, wrap = WRAP[kind]
    if ng:   # big-endian section, 2^-20 s resolution, 1000 s offset
        data = shb(">") + idb(">", linktype, tsresol=0x80 | 20, tsoffset=1000) + b"".join(
            epb(">", 0, ((sec - 1000) << 20) + (usec << 20) // 1_000_000, wrap(et, ip))
            for sec, usec, et, ip in frames)
    else:
        data = pcap_bytes([(sec, usec, wrap(et, ip)) for sec, usec, et, ip in frames], linktype)
    p = write(tmp_path, f"{kind}.{'pcapng' if ng else 'pcap'}", data)
    assert_same_as_tshark(p)


def test_ipv4_linktype_and_fragments_match_tshark(tmp_path):
    need_corpus()
    frames = _ether_frames(CORPUS / "OISF_suricata-verify/tests/community-id-ipv4/input.pcap")
    recs = [(sec, usec, ip) for sec, usec, et, ip in frames if et == 0x0800]
    # and one TCP segment split into three fragments, the last one first
    body = tcp(seq=99, payload=b"Q" * 3000)
    pieces = [(0, body[:1480], True), (1480, body[1480:2960], True), (2960, body[2960:], False)]
    for off, chunk, mf in reversed(pieces):
        recs.append((2_000_000_000, 0, ipv4(chunk, ident=0x4242, mf=mf, frag_off=off)))
    p = write(tmp_path, "v4.pcap", pcap_bytes(recs, 228))
    assert_same_as_tshark(p)
    assert our_segments(p)[len(recs)][7] == 3000


# -- fuzz ---------------------------------------------------------------------------------

_VALID_PCAP = pcap_bytes([(1, 0, frame(i, b"p" * i)) for i in range(1, 6)])
_VALID_NG = shb("<") + idb("<", 1) + b"".join(epb("<", 0, i, frame(i)) for i in range(1, 6)) \
    + dsb("<", 1, b"k")


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([_VALID_PCAP, _VALID_NG]), st.integers(0, 400), st.binary(max_size=64),
       st.booleans())
def test_mutated_files_never_raise(tmp_path, base, pos, junk, compress):
    data = bytearray(base)
    data[pos:pos + len(junk)] = junk
    data = bytes(data)
    if compress:
        data = gzip.compress(data)
    p = write(tmp_path, "fuzz.bin", data)
    try:
        r = open_capture(p)
    except CaptureError as e:
        assert "\n" not in str(e)
        return
    with r:
        items = list(r)
    assert all(isinstance(i, (Segment, CaptureNote, DecryptionSecrets)) for i in items)
    assert len(notes(items, "capture_truncated") + notes(items, "capture_corrupt")) <= 1

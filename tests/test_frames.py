"""Link layer -> IP -> TCP decoding of single frames, and IP fragment reassembly."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlsscope.capture import IpDefragmenter, decode_frame
from tlsscope.model import ACK, PSH, SYN, CaptureNote, Segment

V4A, V4B = "192.0.2.1", "198.51.100.7"
V6A, V6B = "2001:db8::1", "2001:db8:ffff::2"


# -- builders (also used by test_capture) ---------------------------------------

def tcp(sport=40000, dport=443, seq=1000, ack=2000, flags=PSH | ACK, payload=b"", options=b""):
    options += b"\x00" * (-len(options) % 4)
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 65535, 0, 0) \
        + options + payload


def ipv4(body, src=V4A, dst=V4B, proto=6, ident=0x1234, mf=False, frag_off=0, options=b"",
         total=None, df=False):
    options += b"\x00" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    ff = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_off >> 3)
    length = 20 + len(options) + len(body) if total is None else total
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, length, ident, ff, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + options + body


def ipv6(body, src=V6A, dst=V6B, nh=6, plen=None):
    return struct.pack("!IHBB16s16s", 0x60000000, len(body) if plen is None else plen, nh, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + body


def v6ext(nh, body=b"", kind="8"):
    """An extension header: kind '8' ((len+1)*8 bytes) or 'ah' ((len+2)*4 bytes)."""
    if kind == "ah":
        body += b"\x00" * (-(len(body) + 2) % 4)
        return struct.pack("!BB", nh, (len(body) + 2) // 4 - 2) + body
    body += b"\x00" * (-(len(body) + 2) % 8)
    return struct.pack("!BB", nh, (len(body) + 2) // 8 - 1) + body


def v6frag(nh, offset, more, ident, data):
    return struct.pack("!BBHI", nh, 0, offset | (1 if more else 0), ident) + data


def ether(payload, ethertype=0x0800, vlans=()):
    head = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02"
    for tpid, vid in vlans:
        head += struct.pack("!HH", tpid, vid)
    return head + struct.pack("!H", ethertype) + payload


def sll(payload, proto=0x0800):
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\0\0", proto) + payload


def sll2(payload, proto=0x0800):
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 0, 6, b"\x02" * 6 + b"\0\0") + payload


def null(payload, family, order="<"):
    return struct.pack(order + "I", family) + payload


def fields(s: Segment):
    return (s.src, s.dst, s.sport, s.dport, s.seq, s.ack, s.flags, bytes(s.payload))


PAYLOAD = b"\x16\x03\x01\x00\x05hello"
SEG4 = (V4A, V4B, 40000, 443, 1000, 2000, PSH | ACK, PAYLOAD)
SEG6 = (V6A, V6B, 40000, 443, 1000, 2000, PSH | ACK, PAYLOAD)


def dec(linktype, frame, defrag=None):
    return decode_frame(linktype, frame, 1.5, 7, defrag)


# -- link layers ------------------------------------------------------------------

def test_ethernet_ipv4_tcp_fast_path():
    s = dec(1, ether(ipv4(tcp(payload=PAYLOAD))))
    assert isinstance(s, Segment) and fields(s) == SEG4 and s.ts == 1.5 and s.frame == 7


def test_ethernet_padding_trimmed_by_ip_total_length():
    s = dec(1, ether(ipv4(tcp(flags=ACK))) + b"\x00" * 6)
    assert bytes(s.payload) == b"" and s.flags == ACK


def test_tcp_options_skipped():
    s = dec(1, ether(ipv4(tcp(payload=PAYLOAD, options=b"\x02\x04\x05\xb4\x01\x03\x03\x07"))))
    assert fields(s) == SEG4


@pytest.mark.parametrize("vlans", [
    [(0x8100, 10)],
    [(0x88A8, 100), (0x8100, 10)],        # 802.1ad QinQ
    [(0x9100, 5), (0x8100, 10)],
    [(0x8100, 1), (0x8100, 2), (0x8100, 3)],
])
def test_vlan_tags(vlans):
    assert fields(dec(1, ether(ipv4(tcp(payload=PAYLOAD)), vlans=vlans))) == SEG4
    assert fields(dec(1, ether(ipv6(tcp(payload=PAYLOAD)), 0x86DD, vlans=vlans))) == SEG6


def test_pppoe_session():
    ppp4 = struct.pack("!BBHHH", 0x11, 0, 1, 0, 0x0021) + ipv4(tcp(payload=PAYLOAD))
    ppp6 = struct.pack("!BBHHH", 0x11, 0, 1, 0, 0x0057) + ipv6(tcp(payload=PAYLOAD))
    assert fields(dec(1, ether(ppp4, 0x8864))) == SEG4
    assert fields(dec(1, ether(ppp6, 0x8864))) == SEG6


def test_linux_sll_and_sll2():
    assert fields(dec(113, sll(ipv4(tcp(payload=PAYLOAD))))) == SEG4
    assert fields(dec(113, sll(ipv6(tcp(payload=PAYLOAD)), 0x86DD))) == SEG6
    assert fields(dec(276, sll2(ipv4(tcp(payload=PAYLOAD))))) == SEG4
    assert fields(dec(276, sll2(ipv6(tcp(payload=PAYLOAD)), 0x86DD))) == SEG6
    assert dec(113, sll(b"\x00" * 40, 0x0806)) is None     # ARP


@pytest.mark.parametrize("linktype", [0, 108])
@pytest.mark.parametrize("order", ["<", ">"])
def test_null_and_loop_both_byte_orders(linktype, order):
    assert fields(dec(linktype, null(ipv4(tcp(payload=PAYLOAD)), 2, order))) == SEG4
    for fam in (24, 28, 30, 10):
        assert fields(dec(linktype, null(ipv6(tcp(payload=PAYLOAD)), fam, order))) == SEG6
    assert dec(linktype, null(ipv4(tcp()), 7, order)) is None


@pytest.mark.parametrize("linktype", [101, 12, 14])
def test_raw_ip_sniffs_the_version(linktype):
    assert fields(dec(linktype, ipv4(tcp(payload=PAYLOAD)))) == SEG4
    assert fields(dec(linktype, ipv6(tcp(payload=PAYLOAD)))) == SEG6
    assert dec(linktype, b"\x50" + b"\x00" * 40) is None


def test_ipv4_and_ipv6_linktypes():
    assert fields(dec(228, ipv4(tcp(payload=PAYLOAD)))) == SEG4
    assert fields(dec(229, ipv6(tcp(payload=PAYLOAD)))) == SEG6
    assert dec(228, ipv6(tcp())) is None


def test_unknown_linktype_and_non_tcp_are_none():
    assert dec(147, ether(ipv4(tcp()))) is None
    assert dec(1, ether(ipv4(b"\x00" * 16, proto=17))) is None            # UDP
    assert dec(1, ether(ipv6(b"\x00" * 16, nh=17), 0x86DD)) is None
    assert dec(1, ether(b"\x00" * 28, 0x0806)) is None                    # ARP
    assert dec(1, ether(b"\x00" * 40, 0x05DC)) is None                    # 802.3 length


# -- IP details ---------------------------------------------------------------------

def test_ipv4_options():
    opts = b"\x94\x04\x00\x00" + b"\x01" * 4      # router alert + NOPs
    assert fields(dec(1, ether(ipv4(tcp(payload=PAYLOAD), options=opts)))) == SEG4
    assert fields(dec(101, ipv4(tcp(payload=PAYLOAD), options=opts))) == SEG4


def test_ipv4_zero_total_length_from_segmentation_offload():
    s = dec(1, ether(ipv4(tcp(payload=PAYLOAD), total=0)))
    assert fields(s) == SEG4


def test_snaplen_cut_payload_is_what_was_captured():
    frame = ether(ipv4(tcp(payload=PAYLOAD)))
    s = dec(1, frame[:-4])
    assert bytes(s.payload) == PAYLOAD[:-4]


def test_ipv6_extension_headers():
    body = tcp(payload=PAYLOAD)
    # hop-by-hop -> routing -> destination options -> AH -> TCP
    chain = v6ext(43, b"\x00" * 6) + v6ext(60, b"\x00" * 14) + v6ext(51, b"\x00" * 6) \
        + v6ext(6, b"\x01" * 14, "ah")
    assert fields(dec(229, ipv6(chain + body, nh=0))) == SEG6


def test_ipv6_atomic_fragment_and_unknown_header():
    body = tcp(payload=PAYLOAD)
    assert fields(dec(229, ipv6(v6frag(6, 0, False, 9, body), nh=44))) == SEG6
    assert dec(229, ipv6(v6ext(59) + body, nh=0)) is None          # no next header
    assert dec(229, ipv6(body, nh=50)) is None                     # ESP


def test_truncated_headers_are_none_never_errors():
    frames = [
        (1, ether(ipv4(tcp(payload=PAYLOAD), options=b"\x01" * 8), vlans=[(0x8100, 1)])),
        (1, ether(ipv6(v6ext(6, b"\0" * 6) + tcp(payload=PAYLOAD), nh=60), 0x86DD)),
        (113, sll(ipv4(tcp()))), (276, sll2(ipv6(tcp()), 0x86DD)), (0, null(ipv4(tcp()), 2)),
    ]
    for lt, f in frames:
        full = dec(lt, f)
        assert isinstance(full, Segment)
        for cut in range(len(f)):
            r = dec(lt, f[:cut])
            assert r is None or isinstance(r, Segment)
            if r is not None:        # only the payload may be cut
                assert fields(r)[:7] == fields(full)[:7]


def test_bad_tcp_data_offset_is_none():
    raw = bytearray(ipv4(tcp(payload=PAYLOAD)))
    raw[20 + 12] = 0x40                      # data offset 4 words < 20 bytes
    assert dec(101, bytes(raw)) is None
    assert dec(1, ether(bytes(raw))) is None
    raw[20 + 12] = 0xF0                      # 60 bytes: more than the segment
    assert dec(101, bytes(raw[:50])) is None


def test_memoryview_input_gives_a_memoryview_payload_slice():
    frame = memoryview(ether(ipv4(tcp(payload=PAYLOAD))))
    s = dec(1, frame)
    assert isinstance(s.payload, memoryview) and bytes(s.payload) == PAYLOAD


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 9999]), st.binary(max_size=120))
def test_random_frames_never_raise(linktype, data):
    d = IpDefragmenter(max_datagrams=4)
    r = decode_frame(linktype, data, 0.0, 1, d)
    assert r is None or isinstance(r, (Segment, CaptureNote))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=60), st.integers(0, 80))
def test_mutated_valid_frames_never_raise(junk, pos):
    base = bytearray(ether(ipv4(tcp(payload=PAYLOAD), mf=True, ident=3)))
    base[pos:pos + len(junk)] = junk
    d = IpDefragmenter()
    for _ in range(2):
        r = decode_frame(1, bytes(base), 0.0, 1, d)
        assert r is None or isinstance(r, (Segment, CaptureNote))
    assert all(isinstance(n, CaptureNote) for n in d.flush())


# -- fragments ------------------------------------------------------------------------

def v4_fragments(body, sizes, ident=0x77):
    out, off = [], 0
    for size in sizes:
        chunk = body[off:off + size]
        out.append(ether(ipv4(chunk, ident=ident, mf=off + size < len(body), frag_off=off)))
        off += size
    return out


BIG = b"".join(bytes([i]) * 100 for i in range(30))       # 3000 bytes of payload


def test_ipv4_fragments_in_order_and_reversed():
    body = tcp(payload=BIG)
    for order in (lambda f: f, lambda f: f[::-1], lambda f: [f[1], f[0], f[3], f[2]]):
        d = IpDefragmenter()
        frags = order(v4_fragments(body, [1480, 1480, 48, len(body) - 3008]))
        results = [decode_frame(1, f, 2.0, i, d) for i, f in enumerate(frags, 1)]
        assert results[:-1] == [None] * (len(frags) - 1)
        s = results[-1]
        assert isinstance(s, Segment) and bytes(s.payload) == BIG and s.frame == len(frags)
        assert (s.src, s.dst, s.sport, s.dport) == (V4A, V4B, 40000, 443)
        assert len(d) == 0 and d.flush() == []


def test_ipv4_overlapping_fragments_first_received_wins():
    body = tcp(payload=BIG)
    d = IpDefragmenter()
    first = ether(ipv4(body[:1480], mf=True, frag_off=0))
    bogus = bytearray(body[1480 - 80:2960])
    bogus[:80] = b"\xee" * 80             # overlaps the first fragment's tail
    overlapping = ether(ipv4(bytes(bogus), mf=True, frag_off=1400))
    last = ether(ipv4(body[2960:], frag_off=2960))
    assert decode_frame(1, first, 0, 1, d) is None
    assert decode_frame(1, overlapping, 0, 2, d) is None
    s = decode_frame(1, last, 0, 3, d)
    assert bytes(s.payload) == BIG


def test_ipv4_incomplete_fragments_are_reported():
    body = tcp(payload=BIG)
    frags = v4_fragments(body, [1480, 1480, len(body) - 2960])
    d = IpDefragmenter()
    assert decode_frame(1, frags[0], 0, 1, d) is None
    assert decode_frame(1, frags[2], 0, 2, d) is None
    notes = d.flush()
    assert [n.code for n in notes] == ["ip_fragment_incomplete"]
    assert "192.0.2.1 -> 198.51.100.7" in notes[0].message and notes[0].frame == 1


def test_fragment_timeout_and_bounds():
    body = tcp(payload=BIG)
    d = IpDefragmenter(timeout=5.0, max_datagrams=2)
    decode_frame(1, v4_fragments(body, [1480, 2000], ident=1)[0], 1.0, 1, d)
    decode_frame(1, v4_fragments(body, [1480, 2000], ident=2)[0], 10.0, 2, d)   # expires ident 1
    assert [n.code for n in d.notes] == ["ip_fragment_incomplete"] and "timed out" in d.notes[0].message
    d.notes.clear()
    for ident in (3, 4):
        decode_frame(1, v4_fragments(body, [1480, 2000], ident=ident)[0], 11.0, 3, d)
    assert len(d) == 2 and len(d.notes) == 1 and "too many" in d.notes[0].message


def test_fragment_past_64k_is_invalid():
    d = IpDefragmenter()
    r = decode_frame(1, ether(ipv4(b"\x00" * 200, mf=True, frag_off=65400)), 0, 4, d)
    assert isinstance(r, CaptureNote) and r.code == "ip_fragment_invalid"


def test_fragments_without_defragmenter_are_dropped():
    assert decode_frame(1, v4_fragments(tcp(payload=BIG), [1480, 1544])[0], 0, 1) is None


def test_non_tcp_fragments_are_ignored_cheaply():
    d = IpDefragmenter()
    assert decode_frame(1, ether(ipv4(b"\x00" * 64, proto=17, mf=True)), 0, 1, d) is None
    assert len(d) == 0


def test_ipv6_fragments_with_extension_headers():
    inner = v6ext(6, b"\x00" * 6) + tcp(payload=BIG)     # dest options in the fragmentable part
    parts = [inner[:1232], inner[1232:2464], inner[2464:]]
    offs = [0, 1232, 2464]
    frames = [ether(ipv6(v6frag(60, o, i < 2, 0xABCDEF, p), nh=44), 0x86DD)
              for i, (o, p) in enumerate(zip(offs, parts))]
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        d = IpDefragmenter()
        res = [decode_frame(1, frames[i], 0, n, d) for n, i in enumerate(order, 1)]
        assert res[:2] == [None, None]
        assert fields(res[2])[:4] == (V6A, V6B, 40000, 443) and bytes(res[2].payload) == BIG
    d = IpDefragmenter()
    decode_frame(1, frames[0], 0, 1, d)
    decode_frame(1, frames[2], 0, 2, d)
    notes = d.flush()
    assert len(notes) == 1 and "IPv6 2001:db8::1" in notes[0].message


def test_ipv6_fragment_header_after_hop_by_hop():
    inner = tcp(payload=PAYLOAD, flags=SYN)
    a, b = inner[:16], inner[16:]
    f1 = ipv6(v6ext(44) + v6frag(6, 0, True, 5, a), nh=0)
    f2 = ipv6(v6ext(44) + v6frag(6, 16, False, 5, b), nh=0)
    d = IpDefragmenter()
    assert decode_frame(229, f1, 0, 1, d) is None
    s = decode_frame(229, f2, 0, 2, d)
    assert s.flags == SYN and bytes(s.payload) == PAYLOAD


# -- UDP: only what may be QUIC ------------------------------------------------

QUIC_INITIAL_HEAD = bytes([0xC3]) + (1).to_bytes(4, "big") + b"\x08" + b"D" * 8 + b"\x00" + b"\x00" + b"\x41\x00"


def udp(payload, sport=50000, dport=443, length=None):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload) if length is None else length, 0) + payload


def test_udp_that_looks_like_quic_is_a_datagram():
    from tlsscope.model import Datagram
    body = QUIC_INITIAL_HEAD + b"\x00" * 300
    for frame in (ether(ipv4(udp(body), proto=17)), ether(ipv6(udp(body), nh=17), 0x86DD)):
        d = decode_frame(1, frame, 1.5, 7, IpDefragmenter())
        assert type(d) is Datagram and (d.sport, d.dport, d.ts, d.frame) == (50000, 443, 1.5, 7)
        assert d.payload == body
    # the UDP length field bounds the payload (Ethernet padding after it is not QUIC's)
    d = decode_frame(1, ether(ipv4(udp(body, length=8 + len(body)) + b"\x00" * 6, proto=17)), 0, 1, None)
    assert d.payload == body


def test_udp_edge_filter():
    """The edge passes what may be QUIC (fixed bit: long and short headers) or DTLS (content types 20-25,
    DTLS 1.3 unified headers 001xxxxx); the core keeps only datagrams of flows it opened."""
    from tlsscope.model import Datagram
    dns = b"\x12\x04\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    assert decode_frame(1, ether(ipv4(udp(dns, dport=53), proto=17)), 0, 1, None) is None
    for first in (0x40, 0x5f, 0xc3, 0x16, 0x17, 0x2c):
        d = decode_frame(1, ether(ipv4(udp(bytes([first]) + b"\x00" * 40), proto=17)), 0, 1, None)
        assert type(d) is Datagram, hex(first)
    for first in (0x00, 0x13, 0x1a, 0x1f):
        assert decode_frame(1, ether(ipv4(udp(bytes([first]) + b"\x00" * 40), proto=17)), 0, 1, None) is None
    assert decode_frame(1, ether(ipv4(udp(b"\xc3\x00"), proto=17)), 0, 1, None) is None     # too short
    assert decode_frame(1, ether(ipv4(b"\x00" * 5, proto=17)), 0, 1, None) is None

"""DTLS decoding (tlsscope.dtls): real captures against tshark, DTLS 1.3 known answers, hand-built
fragments, and damage."""

from __future__ import annotations

import functools
import random
import subprocess
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import need_corpus, need_tool
from tlsscope.codec import DecodeError
from tlsscope.dtls import (
    DTLS10, DTLS12, DTLS13, DTLS_OPENSSL_PRE, DtlsHandshakeFragment, DtlsHandshakeReassembler, DtlsRecord,
    HelloVerifyRequest, decode_ack, decode_hello_verify_request, looks_like_dtls, split_client_hello_cookie,
    split_handshake_fragments, split_inner_plaintext, split_records, tls_version_of, transcript_message,
)
from tlsscope.hello import extension_types, server_name, supported_versions
from tlsscope.registry import version_name
from tlsscope.tls.context import is_tls13
from tlsscope.tls.messages import Certificate, ClientHello, DecodeContext, ServerHello, decode_handshake

CAPTURES = {
    "foxio-dtls10": "FoxIO-LLC_ja4/pcap/dtls-udp.notest.cap",
    "cloudshark-dtls10": "arkime_arkime/tests/pcap/cloudshark-dtls1.pcap",
    "wireshark-dtls12": "arkime_arkime/tests/pcap/wireshark-dtls12.pcap",
    "wireshark-dtls0": "arkime_arkime/tests/pcap/wireshark-dtls0.pcap",
    "snakeoil-dtls0": "marshalyyx2000_wireshark/test/captures/snakeoil-dtls.pcap",
    "illustrated-dtls13": "syncsynchalt_illustrated-dtls/captures/capture.pcap",
    # mixed UDP (DNS, QUIC, ...) with two lone DTLS 1.2 ClientHellos, one with an SNI
    "arkime-synthetic": "arkime_arkime/tests/pcap/arkime_synthetic.pcap",
}
ILLUSTRATED = "syncsynchalt_illustrated-dtls/captures"
CLIENT_CTX = DecodeContext(True, None, None, True)
SERVER_CTX = DecodeContext(False, None, None, True)


# --------------------------------------------------------------------------------------------
# Walking a capture the way the pipeline will: a UDP flow is DTLS once one of its datagrams looks
# like DTLS; every datagram of the flow is split; plaintext handshake records feed one
# reassembler per direction.

@dataclass
class Message:
    frame: int
    sender: tuple
    msg_type: int
    message_seq: int
    body: bytes
    record_version: int


@dataclass
class Walk:
    datagrams: list = field(default_factory=list)        # (frame, sender, payload) of every UDP datagram
    looks: set = field(default_factory=set)              # frames whose payload looks_like_dtls
    records: dict = field(default_factory=dict)          # frame -> [DtlsRecord] (DTLS flows only)
    messages: list = field(default_factory=list)         # [Message] in delivery order
    fragment_errors: list = field(default_factory=list)
    reassemblers: dict = field(default_factory=dict)     # sender -> DtlsHandshakeReassembler


def udp_datagrams(path) -> list[tuple[int, tuple, tuple, bytes]]:
    """(frame number, (src, sport), (dst, dport), payload) of every UDP datagram."""
    from scapy.all import IP, UDP, IPv6, rdpcap     # test edge only: the core never sees scapy
    out = []
    for frame, pkt in enumerate(rdpcap(str(path)), 1):
        if UDP not in pkt:
            continue
        ip = pkt[IP] if IP in pkt else pkt[IPv6] if IPv6 in pkt else None
        if ip is None:
            continue
        out.append((frame, (ip.src, pkt[UDP].sport), (ip.dst, pkt[UDP].dport), bytes(pkt[UDP].payload)))
    return out


@functools.lru_cache(maxsize=None)
def walk(name: str, skip_frames: frozenset = frozenset()) -> Walk:
    path = need_corpus() / CAPTURES[name]
    w = Walk()
    dtls_flows: set = set()
    for frame, src, dst, payload in udp_datagrams(path):
        w.datagrams.append((frame, src, payload))
        flow = frozenset((src, dst))
        if looks_like_dtls(payload):
            w.looks.add(frame)
            dtls_flows.add(flow)
        if flow not in dtls_flows or frame in skip_frames:
            continue
        recs = split_records(payload)
        w.records[frame] = recs
        reasm = w.reassemblers.setdefault(src, DtlsHandshakeReassembler())
        for rec in recs:
            if rec.content_type != 22 or rec.epoch != 0:
                continue                                  # encrypted from epoch 1 on
            frags, err = split_handshake_fragments(rec.fragment)
            if err:
                w.fragment_errors.append((frame, err))
            for frag in frags:
                for msg_type, seq, body in reasm.add(frag):
                    w.messages.append(Message(frame, src, msg_type, seq, body, rec.version))
    return w


@functools.lru_cache(maxsize=None)
def tshark_rows(name: str, display_filter: str, fields: tuple[str, ...]) -> list[tuple[str, ...]]:
    """tshark's fields for the frames matching the filter (several occurrences joined by ',')."""
    tshark = need_tool("tshark")
    cmd = [tshark, "-n", "-r", str(need_corpus() / CAPTURES[name]), "-Y", display_filter, "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=,", "-e", "frame.number"]
    for f in fields:
        cmd += ["-e", f]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    return [tuple(line.split("\t")) for line in done.stdout.splitlines() if line.strip()]


def hex16(values) -> str:
    return ",".join(f"0x{v:04x}" for v in values)


def ints(text: str) -> list[int]:
    return [int(x, 0) for x in text.split(",") if x]


def decoded(m: Message):
    """The message through the TLS decoders (a ClientHello without its cookie first)."""
    if m.msg_type == 1:
        split = split_client_hello_cookie(m.body)
        assert split is not None
        return decode_handshake(1, split[0], CLIENT_CTX, 0)
    if m.msg_type == 3:
        return decode_hello_verify_request(m.body)
    ctx = DecodeContext(False, tls_version_of(m.record_version), None, True)
    return decode_handshake(m.msg_type, m.body, ctx, 0)


ALL = sorted(CAPTURES)
WITH_SERVER = [n for n in ALL if n != "arkime-synthetic"]


# --------------------------------------------------------------------------------------------
# Real captures against tshark

@pytest.mark.parametrize("name", ALL)
def test_looks_like_dtls_picks_the_frames_tshark_calls_dtls(name):
    w = walk(name)
    tshark_frames = {int(r[0]) for r in tshark_rows(name, "dtls", ())}
    assert tshark_frames, "capture without DTLS"
    assert w.looks == tshark_frames


@pytest.mark.parametrize("name", ALL)
def test_plaintext_records_match_tshark(name):
    w = walk(name)
    rows = tshark_rows(name, "dtls", ("dtls.record.content_type", "dtls.record.version", "dtls.record.epoch",
                                      "dtls.record.sequence_number", "dtls.record.length"))
    theirs = {int(r[0]): list(zip(*(ints(c) for c in r[1:]))) for r in rows}
    ours = {frame: [(r.content_type, r.version, r.epoch, r.sequence, len(r.fragment)) for r in recs]
            for frame, recs in w.records.items() if frame in theirs}
    assert ours == theirs
    # every DTLS datagram splits cleanly and entirely into records
    for frame, recs in w.records.items():
        payload = next(p for f, _, p in w.datagrams if f == frame)
        assert all(r.error is None for r in recs), (frame, recs)
        assert sum(r.header_len + len(r.fragment) for r in recs) == len(payload)
    assert not w.fragment_errors


@pytest.mark.parametrize("name", ALL)
def test_handshake_messages_match_tshark(name):
    """Every plaintext handshake message, once, in order, with tshark's type and message_seq."""
    w = walk(name)
    rows = tshark_rows(name, "dtls.handshake.type", ("dtls.handshake.type", "dtls.handshake.message_seq"))
    theirs = [(int(r[0]), t, s) for r in rows for t, s in zip(ints(r[1]), ints(r[2]))]
    ours = [(m.frame, m.msg_type, m.message_seq) for m in w.messages]
    assert ours == theirs
    for r in w.reassemblers.values():
        assert r.pending == 0 and r.dropped == 0 and r.notes == []


@pytest.mark.parametrize("name", ALL)
def test_client_hello_matches_tshark(name):
    w = walk(name)
    rows = tshark_rows(name, "dtls.handshake.type == 1",
                       ("dtls.handshake.ciphersuite", "dtls.handshake.extensions_server_name",
                        "dtls.handshake.cookie", "dtls.handshake.extension.type",
                        "dtls.handshake.extensions.supported_version", "dtls.handshake.version"))
    ours = []
    for m in w.messages:
        if m.msg_type != 1:
            continue
        ch = decoded(m)
        assert isinstance(ch, ClientHello)
        cookie = split_client_hello_cookie(m.body)[1]
        ours.append((str(m.frame), hex16(ch.cipher_suites), server_name(ch) or "", cookie.hex(),
                     ",".join(map(str, extension_types(ch))), hex16(supported_versions(ch)),
                     f"0x{ch.legacy_version:04x}"))
    assert ours and ours == rows


def test_sni_seen_in_a_dtls_client_hello():
    """The oracle comparison above must be able to see an SNI: one corpus hello has one."""
    names = {server_name(decoded(m)) for m in walk("arkime-synthetic").messages if m.msg_type == 1}
    assert "test.example.com" in names


@pytest.mark.parametrize("name", WITH_SERVER)
def test_server_hello_matches_tshark(name):
    w = walk(name)
    rows = tshark_rows(name, "dtls.handshake.type == 2",
                       ("dtls.handshake.ciphersuite", "dtls.handshake.version",
                        "dtls.handshake.extensions.supported_version"))
    ours = []
    for m in w.messages:
        if m.msg_type == 2:
            sh = decoded(m)
            assert isinstance(sh, ServerHello)
            ext = sh.get_extension(43)
            ours.append((str(m.frame), f"0x{sh.cipher_suite:04x}", f"0x{sh.legacy_version:04x}",
                         f"0x{sh.selected_version:04x}" if ext is not None else ""))
    assert ours and ours == rows


@pytest.mark.parametrize("name", ["wireshark-dtls12", "wireshark-dtls0", "snakeoil-dtls0"])
def test_hello_verify_request_matches_tshark(name):
    w = walk(name)
    rows = tshark_rows(name, "dtls.handshake.type == 3", ("dtls.handshake.version", "dtls.handshake.cookie"))
    ours = []
    for m in w.messages:
        if m.msg_type == 3:
            hvr = decoded(m)
            assert isinstance(hvr, HelloVerifyRequest)
            ours.append((str(m.frame), f"0x{hvr.server_version:04x}", hvr.cookie.hex()))
    assert ours and ours == rows
    # the client echoes the cookie in its second ClientHello
    hellos = [m for m in w.messages if m.msg_type == 1]
    assert [m.message_seq for m in hellos] == [0, 1]
    assert split_client_hello_cookie(hellos[1].body)[1] == decoded([m for m in w.messages if m.msg_type == 3][0]).cookie


@pytest.mark.parametrize("name", ["foxio-dtls10", "cloudshark-dtls10", "wireshark-dtls0", "snakeoil-dtls0"])
def test_certificate_matches_tshark(name):
    w = walk(name)
    rows = tshark_rows(name, "dtls.handshake.type == 11", ("dtls.handshake.certificate_length",))
    ours = []
    for m in w.messages:
        if m.msg_type == 11:
            cert = decoded(m)
            assert isinstance(cert, Certificate) and cert.certificate_request_context is None
            ours.append((str(m.frame), ",".join(str(len(e.cert_data)) for e in cert.certificate_list)))
    assert ours and ours == rows


@pytest.mark.parametrize("name", WITH_SERVER)
def test_every_plaintext_message_decodes(name):
    for m in walk(name).messages:
        decoded(m)


def test_server_flight_after_a_missed_hello_verify_request():
    """The capture starts after the HelloVerifyRequest: the ServerHello (message_seq 1) still comes out."""
    w = walk("wireshark-dtls12", frozenset({2}))
    server = [m for m in w.messages if m.sender[1] == 49191]
    assert [(m.msg_type, m.message_seq) for m in server] == [(2, 1), (12, 2), (14, 3)]


# --------------------------------------------------------------------------------------------
# DTLS 1.3 (RFC 9147): illustrated-dtls's per-record files are the known answers

# frame -> (epoch bits, on-wire sequence number, body length), read off the unified headers by hand:
# 0x2e = 001 0 1 1 10: no CID, 16-bit sequence, length present, epoch 2 (0x2f: epoch 3).
UNIFIED = {
    3: (2, 0x79FA, 47), 4: (2, 0xED2B, 843), 5: (2, 0xA43E, 289), 6: (2, 0x0BB8, 61), 7: (2, 0xC248, 61),
    8: (3, 0x3150, 35), 9: (3, 0x683F, 21), 10: (3, 0xA258, 21), 11: (3, 0x690C, 19),
}


def illustrated(name: str) -> bytes:
    return (need_corpus() / ILLUSTRATED / "caps" / name).read_bytes()


def test_dtls13_unified_headers_known_answers():
    w = walk("illustrated-dtls13")
    caps = sorted(p.name for p in (need_corpus() / ILLUSTRATED / "caps").iterdir() if p.name[:2].isdigit())
    assert len(caps) == 11
    payloads = {f: p for f, _, p in w.datagrams}
    for i, cap in enumerate(caps, 1):
        assert payloads[i] == illustrated(cap), cap
    for frame in (1, 2):
        [rec] = w.records[frame]
        assert (rec.content_type, rec.version, rec.epoch, rec.sequence, rec.header_len) == (22, DTLS12, 0, 0, 13)
    for frame, (epoch, seq, length) in UNIFIED.items():
        [rec] = w.records[frame]
        assert rec.error is None and rec.content_type is None and rec.version is None
        assert (rec.epoch, rec.sequence, len(rec.fragment), rec.header_len, rec.offset) == (epoch, seq, length, 5, 0)
        assert not looks_like_dtls(payloads[frame])


def test_dtls13_hellos_and_decrypted_flight():
    """The hellos in clear, then the server's decrypted records (record-*) through the same reassembler."""
    w = walk("illustrated-dtls13")
    sh = next(decoded(m) for m in w.messages if m.msg_type == 2)
    assert sh.legacy_version == DTLS12 and sh.selected_version == DTLS13 and is_tls13(sh.selected_version)
    ch = next(decoded(m) for m in w.messages if m.msg_type == 1)
    assert supported_versions(ch) == [DTLS13]

    server = w.reassemblers[("127.0.0.1", 8400)]
    assert server.next_seq == 1
    ctx = DecodeContext(False, DTLS13, None, True)
    got = []
    for name in ("record-encext", "record-cert", "record-cverify", "record-sfin"):
        content_type, content = split_inner_plaintext(illustrated(name))
        assert content_type == 22
        frags, err = split_handshake_fragments(content)
        assert err is None and len(frags) == 1
        for msg_type, seq, body in server.add(frags[0]):
            got.append((msg_type, seq, type(decode_handshake(msg_type, body, ctx, 0)).__name__, body))
    assert [g[:3] for g in got] == [(8, 1, "EncryptedExtensions"), (11, 2, "Certificate"),
                                    (15, 3, "CertificateVerify"), (20, 4, "Finished")]
    cert = decode_handshake(11, got[1][3], ctx, 0)
    assert cert.certificate_request_context == b"" and len(cert.certificate_list) == 1
    assert len(got[3][3]) == 32                               # SHA-256 verify_data

    client = w.reassemblers[("127.0.0.1", 52862)]
    content_type, content = split_inner_plaintext(illustrated("record-cfin"))
    [(msg_type, seq, body)] = client.add(split_handshake_fragments(content)[0][0])
    assert (msg_type, seq, len(body)) == (20, 1, 32)

    content_type, content = split_inner_plaintext(illustrated("record-sack"))
    assert content_type == 26 and decode_ack(content) == ((2, 0),)
    assert split_inner_plaintext(illustrated("record-sbye")) == (21, b"\x01\x00")
    assert split_inner_plaintext(illustrated("record-cdata")) == (23, b"ping")


def test_version_helpers():
    assert [tls_version_of(v) for v in (DTLS10, DTLS12, DTLS13, DTLS_OPENSSL_PRE)] == [0x0302, 0x0303, 0x0304, 0x0302]
    assert tls_version_of(0x0303) == 0x0303
    # what the registry calls them (reported to the pipeline engineer)
    assert version_name(DTLS12) == "DTLS 1.2" and version_name(DTLS13) == "DTLS 1.3"


# --------------------------------------------------------------------------------------------
# Record and fragment framing, hand-built

def plain(ct: int, body: bytes, version: int = DTLS12, epoch: int = 0, seq: int = 0) -> bytes:
    return (bytes((ct,)) + version.to_bytes(2, "big") + epoch.to_bytes(2, "big") + seq.to_bytes(6, "big")
            + len(body).to_bytes(2, "big") + body)


def hs(msg_type: int, seq: int, message: bytes, off: int = 0, flen: int | None = None) -> bytes:
    """One handshake fragment (12-byte header) of ``message``."""
    flen = len(message) - off if flen is None else flen
    return (bytes((msg_type,)) + len(message).to_bytes(3, "big") + seq.to_bytes(2, "big")
            + off.to_bytes(3, "big") + flen.to_bytes(3, "big") + message[off:off + flen])


def frag(msg_type: int, seq: int, message: bytes, off: int = 0, flen: int | None = None) -> DtlsHandshakeFragment:
    flen = len(message) - off if flen is None else flen
    return DtlsHandshakeFragment(msg_type, len(message), seq, off, flen, message[off:off + flen])


def test_split_records_several_per_datagram():
    d = (plain(22, b"a" * 20, seq=1) + plain(20, b"\x01", seq=0x0102030405FE)
         + plain(22, b"z" * 40, epoch=0xFFFE, seq=0))
    recs = split_records(d)
    assert [(r.content_type, r.epoch, r.sequence, r.fragment, r.offset) for r in recs] == [
        (22, 0, 1, b"a" * 20, 0), (20, 0, 0x0102030405FE, b"\x01", 33), (22, 0xFFFE, 0, b"z" * 40, 47)]
    assert all(r.error is None and r.header_len == 13 for r in recs)


def test_split_records_errors_stop_the_walk():
    good = plain(22, b"x" * 5)
    [a, b] = split_records(good + plain(22, b"y" * 10)[:-3])
    assert a.error is None and b.error and "overruns" in b.error and b.fragment == b"y" * 7
    [a, b] = split_records(good + b"\x99junk")
    assert b.error and "not a DTLS record header" in b.error and b.offset == len(good)
    [a, b] = split_records(good + plain(22, b"")[:7])
    assert b.error and "too short" in b.error
    [a] = split_records(plain(22, b"x", version=0x0303))
    assert a.error and "version" in a.error
    assert split_records(b"") == []


def test_split_records_unified_headers():
    # C=0 S=0 L=0: 8-bit sequence, the record takes the rest
    [r] = split_records(bytes((0b00100001, 0x42)) + b"cipher")
    assert (r.content_type, r.epoch, r.sequence, r.fragment, r.header_len) == (None, 1, 0x42, b"cipher", 2)
    # S=1 L=1 twice in a datagram, then a plaintext record
    u = bytes((0b00101110, 0x01, 0x02, 0x00, 0x03)) + b"abc"
    recs = split_records(u + u + plain(23, b"q", epoch=1))
    assert [(r.epoch, r.sequence, r.fragment) for r in recs[:2]] == [(2, 0x0102, b"abc")] * 2
    assert recs[2].content_type == 23 and recs[2].offset == 16
    # C=1: a CID of unknown length is an error, a known one is read
    c = bytes((0b00111111, 0xAA, 0xBB, 0x00, 0x07, 0x00, 0x02)) + b"zz"
    [r] = split_records(c)
    assert r.error and "connection ID" in r.error
    [r] = split_records(c, cid_len=2)
    assert (r.cid, r.sequence, r.fragment, r.epoch, r.header_len, r.error) == (b"\xaa\xbb", 7, b"zz", 3, 7, None)
    [r] = split_records(bytes((0b00101100, 0x00, 0x01, 0x00, 0x09)) + b"ab")
    assert r.error and "overruns" in r.error


def test_split_records_tls12_cid():
    rec = (bytes((25,)) + DTLS12.to_bytes(2, "big") + (1).to_bytes(2, "big") + (5).to_bytes(6, "big")
           + b"\x01\x02\x03\x04" + (3).to_bytes(2, "big") + b"enc")
    [r] = split_records(rec)
    assert r.error and "connection ID length unknown" in r.error
    [r] = split_records(rec, cid_len=4)
    assert (r.content_type, r.epoch, r.sequence, r.cid, r.fragment, r.header_len) == (25, 1, 5, b"\x01\x02\x03\x04",
                                                                                      b"enc", 17)
    assert looks_like_dtls(rec)
    assert not looks_like_dtls(rec + b"x")       # no CID length makes it end at the datagram's end


def test_looks_like_dtls():
    ch = plain(22, hs(1, 0, b"h" * 40))
    assert looks_like_dtls(ch) and looks_like_dtls(ch + b"trailing")
    for v in (DTLS10, DTLS12, DTLS13, DTLS_OPENSSL_PRE):
        assert looks_like_dtls(plain(23, b"x", version=v, epoch=1))
    assert not looks_like_dtls(ch[:-1])                       # length past the end
    assert not looks_like_dtls(ch[:12])
    assert not looks_like_dtls(plain(22, b"x", version=0x0303))
    assert not looks_like_dtls(plain(26, b"x"))               # only 20-25
    assert not looks_like_dtls(plain(19, b"x"))
    assert not looks_like_dtls(plain(22, b""))
    assert not looks_like_dtls(bytes((0b00101110, 0xFE, 0xFD, 0, 3)) + b"abcdefghijk")   # unified
    assert not looks_like_dtls(b"\x16\x03\x01\x00\x05hello....")                        # TLS


def test_split_handshake_fragments():
    rec = hs(2, 1, b"s" * 30) + hs(11, 2, b"c" * 100, 0, 50) + hs(14, 3, b"")
    frags, err = split_handshake_fragments(rec)
    assert err is None
    fields = [(f.msg_type, f.length, f.message_seq, f.fragment_offset, f.fragment_length, len(f.body)) for f in frags]
    assert fields == [(2, 30, 1, 0, 30, 30), (11, 100, 2, 0, 50, 50), (14, 0, 3, 0, 0, 0)]
    frags, err = split_handshake_fragments(rec + b"\x00\x01")
    assert len(frags) == 3 and "too few" in err
    frags, err = split_handshake_fragments(hs(2, 1, b"s" * 30)[:-1])
    assert frags == [] and "overruns" in err
    bad = bytearray(hs(11, 2, b"c" * 100, 60, 40))
    bad[11] = 41                                              # 60 + 41 > 100
    frags, err = split_handshake_fragments(bytes(bad) + b"\x00")
    assert frags == [] and "outside" in err
    assert split_handshake_fragments(b"") == ([], "empty handshake record")


def test_client_hello_cookie():
    tls_body = bytes.fromhex("fefd") + bytes(range(32)) + b"\x02ss" + b"\x00\x02\xc0\x2f" + b"\x01\x00"
    cookie = b"C" * 20
    dtls_body = tls_body[:37] + bytes((len(cookie),)) + cookie + tls_body[37:]
    assert split_client_hello_cookie(dtls_body) == (tls_body, cookie)
    ch = decode_handshake(1, split_client_hello_cookie(dtls_body)[0], CLIENT_CTX, 0)
    assert ch.cipher_suites == (0xC02F,) and ch.legacy_session_id == b"ss"
    assert split_client_hello_cookie(dtls_body[:37]) is None             # no cookie length
    assert split_client_hello_cookie(dtls_body[:40]) is None             # cookie cut short
    assert split_client_hello_cookie(b"\xfe\xfd") is None


def test_hello_verify_request_decoding():
    assert decode_hello_verify_request(b"\xfe\xff\x03abc") == HelloVerifyRequest(DTLS10, b"abc")
    for bad in (b"\xfe\xff\x03ab", b"\xfe\xff\x03abcd", b"\xfe"):
        with pytest.raises(DecodeError):
            decode_hello_verify_request(bad)
    with pytest.raises(DecodeError):
        decode_ack(b"\x00\x08" + b"\x00" * 8)


def test_transcript_message():
    assert transcript_message(2, 1, b"abc", DTLS12) == bytes.fromhex("02000003" "0001" "000000" "000003") + b"abc"
    assert transcript_message(2, 1, b"abc", DTLS13) == bytes.fromhex("02000003") + b"abc"


# --------------------------------------------------------------------------------------------
# The reassembler, hand-built

MSG = bytes(range(256)) * 3      # 768 bytes


def run(r: DtlsHandshakeReassembler, frags) -> list:
    out = []
    for f in frags:
        out += r.add(f)
        assert r.pending <= r.max_pending
    return out


def test_message_in_three_fragments():
    r = DtlsHandshakeReassembler()
    assert r.add(frag(11, 0, MSG, 0, 300)) == []
    assert r.pending == len(MSG)
    assert r.add(frag(11, 0, MSG, 300, 300)) == []
    assert r.add(frag(11, 0, MSG, 600)) == [(11, 0, MSG)]
    assert (r.pending, r.retransmissions, r.dropped, r.notes, r.next_seq) == (0, 0, 0, [], 1)


def test_fragments_out_of_order_and_overlapping():
    r = DtlsHandshakeReassembler()
    assert run(r, [frag(11, 0, MSG, 500), frag(11, 0, MSG, 100, 450), frag(11, 0, MSG, 0, 150)]) == [(11, 0, MSG)]
    assert r.retransmissions == 0 and r.notes == []


def test_messages_out_of_order_are_delivered_in_message_seq_order():
    r = DtlsHandshakeReassembler()
    assert r.add(frag(14, 2, b"")) == []
    assert r.add(frag(11, 1, MSG)) == []
    assert r.add(frag(2, 0, b"hello")) == [(2, 0, b"hello"), (11, 1, MSG), (14, 2, b"")]


def test_retransmitted_message_and_flight():
    r = DtlsHandshakeReassembler()
    flight = [frag(2, 0, b"hello"), frag(11, 1, MSG, 0, 400), frag(11, 1, MSG, 400), frag(14, 2, b"")]
    assert [m[1] for m in run(r, flight)] == [0, 1, 2]
    assert run(r, flight) == []                                   # the whole flight again
    assert r.retransmissions == 4 and r.notes == [] and r.pending == 0
    # a fragment that repeats bytes already buffered
    r.add(frag(16, 3, MSG, 0, 200))
    r.add(frag(16, 3, MSG, 50, 100))
    assert r.retransmissions == 5
    assert r.add(frag(16, 3, MSG, 100)) == [(16, 3, MSG)]


def test_conflicting_bytes_keep_the_first_copy():
    r = DtlsHandshakeReassembler()
    other = bytes(b ^ 0xFF for b in MSG)
    r.add(frag(11, 0, MSG, 0, 400))
    assert r.add(frag(11, 0, other, 300)) == [(11, 0, MSG[:400] + other[400:])]
    assert any("disagree" in n for n in r.notes)
    # a retransmission of a delivered message with other bytes is noted too
    r.add(frag(11, 0, other))
    assert any("differs" in n for n in r.notes) and r.retransmissions == 1


def test_conflicting_header_is_dropped():
    r = DtlsHandshakeReassembler()
    r.add(frag(11, 0, MSG, 0, 100))
    assert r.add(frag(12, 0, MSG, 100)) == []
    assert r.add(DtlsHandshakeFragment(11, 900, 0, 100, 668, MSG[100:])) == []
    assert r.dropped == 2 and len(r.notes) == 2
    assert r.add(frag(11, 0, MSG, 100)) == [(11, 0, MSG)]


def test_oversized_claims_and_budget():
    r = DtlsHandshakeReassembler(max_message=1000, max_pending=2000)
    assert r.add(DtlsHandshakeFragment(11, 1001, 0, 0, 10, b"x" * 10)) == []
    assert r.dropped == 1 and "claims 1001" in r.notes[0] and r.pending == 0
    # two later messages fill the budget; the next expected one evicts the latest
    r.add(frag(11, 2, b"a" * 1000, 0, 10))
    r.add(frag(11, 3, b"b" * 1000, 0, 10))
    assert r.pending == 2000
    r.add(frag(11, 4, b"c" * 10, 0, 5))                     # does not fit, nothing later to evict
    assert r.pending == 2000 and r.dropped == 2
    assert r.add(frag(2, 0, b"s" * 900, 0, 100)) == []
    assert r.pending <= 2000 and 3 not in r._msgs and r.dropped == 3
    assert r.add(frag(2, 0, b"s" * 900, 100)) == [(2, 0, b"s" * 900)]


def test_far_ahead_and_stale():
    r = DtlsHandshakeReassembler()
    assert r.add(frag(11, 33, b"x")) == [] and r.dropped == 1 and r.pending == 0
    r.add(frag(11, 32, b"x", 0, 0))                             # empty piece of a non-empty message: nothing
    assert r.pending == 0 and r.dropped == 1
    assert r.add(frag(11, 32, b"x")) == [] and r.pending == 1


def test_capture_starting_after_the_first_flight():
    r = DtlsHandshakeReassembler()
    r.add(frag(11, 2, MSG))                                   # not a hello: waits for 0 and 1
    assert r.add(frag(2, 1, b"hello")) == [(2, 1, b"hello"), (11, 2, MSG)]
    r2 = DtlsHandshakeReassembler()
    r2.skip_to(5)
    assert r2.add(frag(20, 5, b"fin")) == [(20, 5, b"fin")]


def test_new_client_hello_restarts():
    r = DtlsHandshakeReassembler()
    run(r, [frag(1, 0, b"first hello"), frag(16, 1, b"kx")])
    assert r.add(frag(1, 0, b"first hello")) == [] and r.restarts == 0
    assert r.add(frag(1, 0, b"second hello")) == [(1, 0, b"second hello")]
    assert r.restarts == 1 and r.next_seq == 1


def test_finish_reports_incomplete_messages():
    r = DtlsHandshakeReassembler()
    r.add(frag(11, 0, MSG, 0, 10))
    r.add(frag(11, 0, MSG, 20, 10))
    [note] = r.finish()
    assert "20 of 768" in note and note in r.notes


def test_notes_are_bounded():
    r = DtlsHandshakeReassembler()
    for i in range(500):
        r.add(DtlsHandshakeFragment(11, (1 << 24) - 1, i % 30, 0, 1, b"x"))
    assert r.dropped == 500 and len(r.notes) == r.MAX_NOTES + 1


# --------------------------------------------------------------------------------------------
# Damage: random and bit-flipped input never raises; memory stays bounded

@pytest.fixture(scope="module")
def real_datagrams() -> list[bytes]:
    out = []
    for name in ("wireshark-dtls12", "wireshark-dtls0", "foxio-dtls10", "illustrated-dtls13"):
        w = walk(name)
        out += [p for f, _, p in w.datagrams if f in w.records]
    assert len(out) > 30
    return out


def check_records(data: bytes, recs: list[DtlsRecord]) -> None:
    pos = 0
    for i, r in enumerate(recs):
        assert r.offset == pos
        if r.error is not None:
            assert i == len(recs) - 1
            return
        pos += r.header_len + len(r.fragment)
    assert pos == len(data)


def flip(data: bytes, bits: list[int]) -> bytes:
    b = bytearray(data)
    for bit in bits:
        if b:
            b[(bit >> 3) % len(b)] ^= 1 << (bit & 7)
    return bytes(b)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 20))
def test_split_records_random(data, cid_len):
    check_records(data, split_records(data, cid_len=cid_len))
    looks_like_dtls(data)
    frags, err = split_handshake_fragments(data)
    assert sum(12 + len(f.body) for f in frags) <= len(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damaged_real_datagrams(real_datagrams, data):
    d = data.draw(st.sampled_from(real_datagrams))
    d = flip(d, data.draw(st.lists(st.integers(0, 1 << 16), min_size=1, max_size=4)))
    if data.draw(st.booleans()):
        d = d[:data.draw(st.integers(0, len(d)))]
    recs = split_records(d, cid_len=data.draw(st.integers(0, 4)))
    check_records(d, recs)
    r = DtlsHandshakeReassembler(max_message=4096, max_pending=8192)
    for rec in recs:
        frags, _ = split_handshake_fragments(rec.fragment)
        for f in frags:
            for msg_type, seq, body in r.add(f):
                assert len(body) <= 4096
            assert r.pending <= 8192


fragments = st.builds(
    lambda t, length, seq, a, b, fill: DtlsHandshakeFragment(
        t, length, seq, min(a, length), max(0, min(b, length - min(a, length))),
        bytes([fill]) * max(0, min(b, length - min(a, length)))),
    st.sampled_from([1, 2, 11, 14]), st.integers(0, 3000), st.integers(0, 40),
    st.integers(0, 3000), st.integers(0, 3000), st.integers(0, 2))


@settings(max_examples=200, deadline=None)
@given(st.lists(fragments, max_size=60))
def test_reassembler_random_fragments(frags):
    r = DtlsHandshakeReassembler(max_message=2048, max_pending=4096)
    delivered = []
    for f in frags:
        for msg_type, seq, body in r.add(f):
            delivered.append(seq)
            assert len(body) <= 2048
        assert 0 <= r.pending <= 4096
        assert r.pending == sum(m.length for m in r._msgs.values())
    # once each, in order (a restart begins again at 0)
    runs = [[]]
    for seq in delivered:
        if runs[-1] and seq <= runs[-1][-1]:
            runs.append([])
        runs[-1].append(seq)
    assert len(runs) <= r.restarts + 1
    r.finish()
    assert len(r.notes) <= r.MAX_NOTES + 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_real_flights_cut_shuffled_and_repeated(real_datagrams, seed):
    """Real messages cut at random points, with overlaps and duplicates, shuffled within each flight:
    the same messages come out, once, in order."""
    rnd = random.Random(seed)
    w = walk("wireshark-dtls0")
    server = [m for m in w.messages if m.sender[1] == 4433]
    flights = [[m for m in server if m.frame == f] for f in sorted({m.frame for m in server})]
    r = DtlsHandshakeReassembler()
    out = []
    for flight in flights:
        pieces = []
        for m in flight:
            cuts = sorted({0, len(m.body), *(rnd.randrange(len(m.body) + 1) for _ in range(rnd.randrange(6)))})
            for a, b in zip(cuts, cuts[1:]):
                lo, hi = max(0, a - rnd.randrange(8)), min(len(m.body), b + rnd.randrange(8))
                pieces.append(frag(m.msg_type, m.message_seq, m.body, lo, hi - lo))
            if not m.body:
                pieces.append(frag(m.msg_type, m.message_seq, m.body))
        pieces += rnd.sample(pieces, rnd.randrange(len(pieces) + 1))
        rnd.shuffle(pieces)
        out += run(r, pieces)
    assert out == [(m.msg_type, m.message_seq, m.body) for m in server]
    assert r.pending == 0 and r.notes == [] and r.dropped == 0

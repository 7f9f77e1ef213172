"""Hostile input never raises, hangs or grows without bound: the whole pipeline under Hypothesis."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import CORPUS, need_corpus
from tlsscope.connection import TlsConnection
from tlsscope.model import Endpoint, Segment
from tlsscope.pipeline import Options, analyze

CLIENT, SERVER = Endpoint("10.0.0.1", 40000), Endpoint("10.0.0.2", 443)


def _client_hello() -> bytes:
    exts = (b"\x00\x00\x00\x10\x00\x0e\x00\x00\x0bexample.com"          # server_name
            + b"\x00\x0a\x00\x04\x00\x02\x00\x1d"                         # supported_groups x25519
            + b"\x00\x2b\x00\x03\x02\x03\x04"                             # supported_versions TLS 1.3
            + b"\x00\x33\x00\x26\x00\x24\x00\x1d\x00\x20" + b"K" * 32)   # key_share
    body = (b"\x03\x03" + b"R" * 32 + b"\x20" + b"S" * 32 + b"\x00\x04\x13\x01\x13\x02" + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


CH = _client_hello()


def _run_connection(client_bytes: bytes, server_bytes: bytes = b"", chunk: int = 0):
    conn = TlsConnection(1, CLIENT, SERVER, 0.0, 1, True)
    if chunk:
        for i in range(0, len(client_bytes), chunk):
            conn.data(True, client_bytes[i:i + chunk], 0.1, 2)
    else:
        conn.data(True, client_bytes, 0.1, 2)
    if server_bytes:
        conn.data(False, server_bytes, 0.2, 3)
    return conn.close(0.3, 4, "fin")


def test_valid_client_hello_decodes():
    st_ = _run_connection(CH)
    assert st_.is_tls and st_.client_hello is not None
    assert st_.client_hello.cipher_suites == (0x1301, 0x1302)


def test_client_hello_truncated_at_every_index_plus_garbage():
    for cut in range(len(CH)):
        for tail in (b"", b"\x00", b"\xff" * 7, b"\x16\x03\x03\x00\x02\x01\x00"):
            st_ = _run_connection(CH[:cut] + tail)
            # never raises; an unfinished record is reported, never silently dropped
            if 5 < cut and cut + len(tail) < len(CH):
                assert st_.findings and st_.client_hello is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.binary(max_size=600), st.integers(0, 40))
def test_random_bytes_on_both_directions(client, server, chunk):
    _run_connection(client, server, chunk)
    _run_connection(CH + client, server, chunk)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=len(CH) - 1), st.integers(0, 255))
def test_single_byte_mutations(pos, value):
    data = bytearray(CH)
    data[pos] = value
    _run_connection(bytes(data), b"\x16\x03\x03\x00\x04\x02\x00\x00\x00")


def test_16mb_handshake_claim_is_a_finding_not_memory():
    hs = b"\x0b\xff\xff\xff" + b"C" * 1000
    rec = b"\x16\x03\x03" + struct.pack("!H", len(hs)) + hs
    st_ = _run_connection(CH, rec + b"\x17\x03\x03\x00\x10" + b"x" * 16)
    assert any(f.code == "handshake_oversized" for f in st_.findings)


def _segments(payloads):
    seq = {True: 1000, False: 5000}
    yield Segment(0.0, 1, CLIENT.ip, SERVER.ip, CLIENT.port, SERVER.port, 999, 0, 0x02, b"")
    yield Segment(0.0, 2, SERVER.ip, CLIENT.ip, SERVER.port, CLIENT.port, 4999, 1000, 0x12, b"")
    for i, (from_client, data) in enumerate(payloads):
        src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
        yield Segment(0.1 * i, i + 3, src.ip, dst.ip, src.port, dst.port, seq[from_client], 0, 0x18, data)
        seq[from_client] += len(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=200)), max_size=12))
def test_pipeline_with_random_payloads(payloads):
    reports = list(analyze(_segments([(True, CH)] + payloads), Options()))
    assert len(reports) == 1 and reports[0].sni == "example.com"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_capture_file_mutations(tmp_path_factory, data):
    need_corpus()
    original = (CORPUS / "syncsynchalt_illustrated-tls12/captures/capture.pcap").read_bytes()
    buf = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(24, len(buf)))
    path = tmp_path_factory.mktemp("fuzz") / "m.pcap"
    path.write_bytes(bytes(buf[:cut]))
    from tlsscope.capture import CaptureError, open_capture
    try:
        reader = open_capture(path)
    except CaptureError:
        return
    with reader:
        list(analyze(reader, Options()))


def _quic_datagrams() -> list:
    from tlsscope.capture import open_capture
    from tlsscope.model import Datagram
    need_corpus()
    with open_capture(CORPUS / "syncsynchalt_illustrated-quic/captures/capture.pcap") as reader:
        return [i for i in reader if i.__class__ is Datagram]


def _damaged_stream(data, dgs: list, intact: set) -> list:
    """The datagrams with some damaged (cut, a bit flipped, bytes inserted), dropped, repeated or
    swapped with the one before; those at the indexes in ``intact`` are kept as they are."""
    from tlsscope.model import Datagram
    items: list = []
    for i, dg in enumerate(dgs):
        p = dg.payload
        how = "keep" if i in intact else data.draw(
            st.sampled_from(("keep", "keep", "cut", "flip", "insert", "drop", "twice", "swap")), label=f"dg{i}")
        if how == "drop":
            continue
        if how == "cut":
            p = p[:data.draw(st.integers(0, len(p)))]
        elif how == "flip":
            k = data.draw(st.integers(0, len(p) - 1))
            p = p[:k] + bytes([p[k] ^ data.draw(st.integers(1, 255))]) + p[k + 1:]
        elif how == "insert":
            k = data.draw(st.integers(0, len(p)))
            p = p[:k] + data.draw(st.binary(min_size=1, max_size=40)) + p[k:]
        item = Datagram(dg.ts, dg.frame, dg.src, dg.dst, dg.sport, dg.dport, p)
        if how == "swap" and items:
            items.insert(len(items) - 1, item)
            continue
        items.append(item)
        if how == "twice":
            items.append(item)
    return items


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_quic_datagrams_through_the_pipeline(data):
    """QUIC datagrams of a real connection, some damaged (cut, bit flips, inserted bytes), others
    dropped, repeated or reordered: analyze() never raises and still reports the connection when the
    client's first Initial is intact."""
    items = _damaged_stream(data, _quic_datagrams(), {0})
    reports = list(analyze(items, Options()))
    assert len(reports) == 1 and reports[0].transport == "quic"
    assert reports[0].sni == "example.ulfheim.net"


def _dtls_datagrams() -> list:
    from conftest import CAPTURES
    from tlsscope.capture import open_capture
    from tlsscope.model import Datagram
    with open_capture(CAPTURES / "13-dtls" / "capture.pcap") as reader:
        return [i for i in reader if i.__class__ is Datagram]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_dtls_datagrams_through_the_pipeline(data):
    """The DTLS datagrams of captures/13-dtls (three connections, fragmented Certificate flights),
    some damaged, dropped, repeated or swapped with their neighbour: analyze() never raises, and a
    connection whose first ClientHello datagram is intact is still reported with its SNI."""
    dgs = _dtls_datagrams()
    firsts = {}
    for i, dg in enumerate(dgs):
        firsts.setdefault((dg.src, dg.sport) if dg.dport in (24430, 24431) else None, i)
    items = _damaged_stream(data, dgs, {i for k, i in firsts.items() if k is not None})
    reports = list(analyze(items, Options()))
    assert len(reports) == 3 and all(r.transport == "dtls" for r in reports)
    assert all(r.sni == "dtls.tlsscope.test" for r in reports)


def _capture_datagrams(name: str) -> list:
    from conftest import CAPTURES
    from tlsscope.capture import open_capture
    from tlsscope.model import Datagram
    with open_capture(CAPTURES / name / "capture.pcap") as reader:
        return [i for i in reader if i.__class__ is Datagram]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(["13-dtls", "15-quic-early-data"]))
def test_damaged_datagrams_with_keys(data, name):
    """The same damage with the key log: decryption (DTLS epochs, QUIC Handshake/1-RTT and 0-RTT keys found
    by trial) meets cut, flipped, repeated and reordered datagrams; analyze() never raises, and every
    connection whose first client datagram is intact is reported."""
    from conftest import CAPTURES
    from tlsscope.api import make_options
    dgs = _capture_datagrams(name)
    firsts: dict = {}                   # each flow's first datagram (its client's, intact)
    for i, dg in enumerate(dgs):
        if (dg.dst, dg.dport, dg.src, dg.sport) not in firsts:
            firsts.setdefault((dg.src, dg.sport, dg.dst, dg.dport), i)
    items = _damaged_stream(data, dgs, set(firsts.values()))
    reports = list(analyze(items, make_options(keylog=str(CAPTURES / name / "keylog.txt"))))
    assert len(reports) == len(firsts)
    assert {r.transport for r in reports} == {"dtls" if name == "13-dtls" else "quic"}

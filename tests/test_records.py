"""Record framing and handshake reassembly, each checked three ways: whole, byte by byte, trailing garbage."""

from __future__ import annotations

import struct

from hypothesis import given, settings, strategies as st

from tlsscope.tls.handshake import HandshakeDefragmenter, HandshakeNote, RawHandshake
from tlsscope.tls.records import (Record, RecordLayer, RecordNote, SSLv2Hello, find_tls_start,
                                  plausible_header)


def rec(ct: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ct, version, len(body)) + body


def hs(msg_type: int, body: bytes) -> bytes:
    return struct.pack("!B", msg_type) + len(body).to_bytes(3, "big") + body


STREAM = (rec(22, hs(1, b"\x03\x03" + b"A" * 40)) + rec(20, b"\x01") + rec(21, b"\x02\x28")
          + rec(23, b"x" * 300) + rec(23, b""))


def records_of(items):
    return [(i.content_type, i.legacy_version, i.fragment, i.offset) for i in items if type(i) is Record]


def feed_whole(data: bytes):
    layer = RecordLayer()
    return layer.feed(data, 1.0, 1) + layer.finish()


def feed_bytewise(data: bytes):
    layer = RecordLayer()
    out = []
    for i in range(len(data)):
        out += layer.feed(data[i:i + 1], 1.0, i + 1)
    return out + layer.finish()


def test_records_whole_and_bytewise_agree():
    whole = feed_whole(STREAM)
    assert [r[0] for r in records_of(whole)] == [22, 20, 21, 23, 23]
    assert records_of(whole) == records_of(feed_bytewise(STREAM))
    assert not [i for i in whole if type(i) is RecordNote]
    offsets = [r[3] for r in records_of(whole)]
    assert offsets[0] == 0 and offsets[1] == 5 + 4 + 42


def test_records_trailing_garbage_is_reported_not_raised():
    items = feed_whole(STREAM + b"\xff\xfe garbage that is not TLS")
    assert len(records_of(items)) == 5
    notes = [i for i in items if type(i) is RecordNote]
    assert notes and notes[0].code == "record_malformed"
    assert notes[0].offset == len(STREAM)


def test_record_cut_short_is_reported_as_truncated():
    items = feed_whole(STREAM[:-150])
    notes = [i for i in items if type(i) is RecordNote]
    assert [n.code for n in notes] == ["record_truncated"]
    assert "of 305" in notes[0].message


def test_gap_resynchronises_on_next_record():
    layer = RecordLayer()
    first = rec(23, b"a" * 100)
    out = layer.feed(first[:50], 1.0, 1)
    out += layer.gap(1000, 1.0, 2)
    # after the gap: the tail of some record, then two good records
    out += layer.feed(b"\x99" * 37 + rec(23, b"b" * 20) + rec(21, b"\x01\x00"), 1.0, 3)
    assert [n.code for n in out if type(n) is RecordNote] == ["record_gap", "record_resync"]
    assert [r[0] for r in records_of(out)] == [23, 21]
    assert records_of(out)[0][2] == b"b" * 20


def test_oversized_record_is_flagged_but_decoded():
    body = b"z" * 20000
    items = feed_whole(rec(23, body))
    assert [n.code for n in items if type(n) is RecordNote] == ["record_oversized"]
    assert records_of(items)[0][2] == body


def test_sslv2_compatible_client_hello():
    # msg_type 1, version 3.1, cipher_spec_length 3, session_id 0, challenge 16
    body = b"\x01\x03\x01\x00\x03\x00\x00\x00\x10" + b"\x00\x00\x2f" + b"C" * 16
    data = bytes([0x80 | (len(body) >> 8), len(body) & 0xFF]) + body
    for items in (feed_whole(data + rec(22, hs(16, b"k" * 10))), feed_bytewise(data + rec(22, hs(16, b"k" * 10)))):
        hellos = [i for i in items if type(i) is SSLv2Hello]
        assert len(hellos) == 1 and hellos[0].body == body
        assert [r[0] for r in records_of(items)] == [22]


def test_find_tls_start_after_plaintext_prelude():
    prelude = b"220 mail.example.com ESMTP\r\n"
    ch = rec(22, hs(1, b"\x03\x03" + b"R" * 32), version=0x0301)
    assert find_tls_start(prelude + ch) == len(prelude)
    assert find_tls_start(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == -1
    assert plausible_header(ch, 0, strict=True)
    assert not plausible_header(b"\x16\x03\x09\x00\x10", 0, strict=True)


def test_handshake_defragmenter_three_ways():
    msgs = [hs(1, b"a" * 70), hs(2, b"b" * 3), hs(11, b"c" * 5000), hs(14, b"")]
    data = b"".join(msgs)
    # whole
    d = HandshakeDefragmenter()
    whole = d.feed(data, 0, 1.0, 1)
    assert [(m.msg_type, len(m.body)) for m in whole] == [(1, 70), (2, 3), (11, 5000), (14, 0)]
    assert whole[0].raw == msgs[0]
    # byte by byte (each byte its own record)
    d = HandshakeDefragmenter()
    bytewise = []
    for i in range(len(data)):
        bytewise += d.feed(data[i:i + 1], i, 1.0, i)
    assert [m.raw for m in bytewise] == [m.raw for m in whole]
    assert bytewise[0].records == 74
    # trailing garbage: an incomplete message is reported at the end, never raised
    d = HandshakeDefragmenter()
    out = d.feed(data + b"\x01\x00\x00\x09abc", 0, 1.0, 1)
    assert len(out) == 4
    assert [n.code for n in d.finish()] == ["handshake_truncated"]


def test_handshake_oversized_claim_is_skipped_without_buffering():
    d = HandshakeDefragmenter(max_message=1 << 20)
    out = d.feed(b"\x0b\xff\xff\xff" + b"x" * 100, 0, 1.0, 1)
    assert [type(o) for o in out] == [HandshakeNote]
    assert out[0].code == "handshake_oversized"
    assert d.pending == (1 << 24) - 1 - 100 and len(d._buf) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=30))
def test_record_layer_never_raises_on_random_bytes(data, cuts):
    layer = RecordLayer()
    pos = 0
    for c in cuts:
        layer.feed(data[pos:pos + c], 0.0, 0)
        pos += c
    layer.feed(data[pos:], 0.0, 0)
    layer.gap(10, 0.0, 0)
    layer.feed(data, 0.0, 0)
    layer.finish()
    assert layer.pending <= 5 + 65535


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_handshake_defragmenter_never_raises(data):
    d = HandshakeDefragmenter(max_message=1000)
    for i in range(0, len(data), 7):
        for m in d.feed(data[i:i + 7], i, 0.0, 0):
            assert isinstance(m, (RawHandshake, HandshakeNote))
    d.finish()


def _app_stream(sizes):
    return b"".join(rec(23, bytes([i % 251]) * n) for i, n in enumerate(sizes))


def test_feed_app_counts_what_feed_would_decode():
    """The no-copy path for application data agrees with feed(), and declines anything else."""
    sizes = [1, 300, 16384, 0, 77]
    data = _app_stream(sizes)
    # whole: same records, bytes and offsets as feed()
    warm = rec(22, hs(2, b"x" * 10))               # a first record, so SSLv2 detection is over
    fast, slow = RecordLayer(), RecordLayer()
    fast.feed(warm, 0.0, 1)
    slow.feed(warm, 0.0, 1)
    got = fast.feed_app(data, 1.0, 2)
    want = records_of(slow.feed(data, 1.0, 2))
    assert got == (len(sizes), sum(sizes), len(warm), sizes[-1])
    assert [len(r[2]) for r in want] == sizes and want[0][3] == len(warm)
    assert fast.records == slow.records and fast.bytes_seen == slow.bytes_seen
    # later records keep their stream offsets
    tail = rec(21, b"\x01\x00")
    assert records_of(fast.feed(tail, 2.0, 3)) == records_of(slow.feed(tail, 2.0, 3))
    # byte by byte and with trailing garbage: declined without consuming anything
    for chunk in (data[:3], data[:-1], data + b"\x00", rec(22, b"\x01\x00\x00\x00"), b""):
        layer = RecordLayer()
        layer.feed(warm, 0.0, 1)
        before = (layer.records, layer.bytes_seen, layer.pending)
        assert layer.feed_app(chunk, 1.0, 2) is None
        assert (layer.records, layer.bytes_seen, layer.pending) == before
    # with a partial record buffered it declines too
    layer = RecordLayer()
    layer.feed(warm + data[:7], 0.0, 1)
    assert layer.feed_app(data[7:], 1.0, 2) is None

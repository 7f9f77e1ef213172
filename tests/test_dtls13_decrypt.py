"""DTLS 1.3 record protection (tlsscope.decrypt.dtls13) against illustrated-dtls's published records:
the protected datagram (caps/NN-*-prot), the traffic secret from its key log and the plaintext
(caps/record-*). Damage: any header and body give a plaintext or RecordAuthError, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import need_corpus
from tlsscope.decrypt.ciphers import CIPHERS, RecordAuthError, decode_truncated
from tlsscope.decrypt.dtls13 import EpochKeys
from tlsscope.decrypt.keylog import KeyLog
from tlsscope.decrypt.tls13 import hkdf_expand_label

ILLUSTRATED = "syncsynchalt_illustrated-dtls/captures"
AES128 = CIPHERS["AES_128_GCM"]

# protected record file, key log label, epoch, plaintext file, its sequence number in the epoch
RECORDS = [
    ("03-encext-shs-prot", "SERVER_HANDSHAKE_TRAFFIC_SECRET", 2, "record-encext", 0),
    ("04-cert-shs-prot", "SERVER_HANDSHAKE_TRAFFIC_SECRET", 2, "record-cert", 1),
    ("05-cverify-shs-prot", "SERVER_HANDSHAKE_TRAFFIC_SECRET", 2, "record-cverify", 2),
    ("06-fin-shs-prot", "SERVER_HANDSHAKE_TRAFFIC_SECRET", 2, "record-sfin", 3),
    ("07-fin-chs-prot", "CLIENT_HANDSHAKE_TRAFFIC_SECRET", 2, "record-cfin", 0),
    ("08-ack-sap-prot", "SERVER_TRAFFIC_SECRET", 3, "record-sack", 0),
    ("09-data-cap-prot", "CLIENT_TRAFFIC_SECRET", 3, "record-cdata", 0),
    ("10-data-sap-prot", "SERVER_TRAFFIC_SECRET", 3, "record-sdata", 1),
    ("11-bye-sap-prot", "SERVER_TRAFFIC_SECRET", 3, "record-sbye", 2),
]


def _secrets() -> dict[str, bytes]:
    text = (need_corpus() / ILLUSTRATED / "keylog.txt").read_text()
    return {label: bytes.fromhex(secret) for label, _cr, secret in (ln.split() for ln in text.splitlines())}


@pytest.mark.parametrize("prot,label,epoch,plain,seq", RECORDS)
def test_published_records_open(prot, label, epoch, plain, seq):
    caps = need_corpus() / ILLUSTRATED / "caps"
    datagram = (caps / prot).read_bytes()
    expected = (caps / plain).read_bytes()
    assert datagram[0] & 0x03 == epoch & 0x03 and datagram[0] & 0x0C == 0x0C   # 16-bit sequence, length
    keys = EpochKeys(epoch, AES128, "sha256", _secrets()[label])
    keys.next_seq = seq                    # the reference the low bits are reconstructed against
    got_seq, inner_type, content = keys.open(datagram[:5], datagram[5:])
    assert (got_seq, inner_type, content) == (seq, expected[-1], expected[:-1])
    assert keys.next_seq == seq + 1


def test_dtls13_labels_differ_from_tls13():
    """RFC 9147 §5.9: "dtls13" replaces "tls13 " in HkdfLabel; the record would not open with TLS labels."""
    secret = _secrets()["SERVER_HANDSHAKE_TRAFFIC_SECRET"]
    assert hkdf_expand_label("sha256", secret, "key", b"", 16) != \
        hkdf_expand_label("sha256", secret, "key", b"", 16, b"dtls13")
    caps = need_corpus() / ILLUSTRATED / "caps"
    datagram = (caps / "03-encext-shs-prot").read_bytes()
    keys = EpochKeys(2, AES128, "sha256", secret)
    header = bytearray(datagram[:5])
    header[0] ^= 0x01                      # another epoch's bits: the AAD changes, the tag fails
    with pytest.raises(RecordAuthError):
        keys.open(bytes(header), datagram[5:])


def test_sequence_reconstruction():
    assert decode_truncated(0, 0, 16) == 0
    assert decode_truncated(0x1_0000, 0xFFFF, 16) == 0xFFFF            # one behind, not 2^17 - 1
    assert decode_truncated(0x1_FFFE, 0x0001, 16) == 0x2_0001          # wrapped forward
    assert decode_truncated(300, 0x2C, 8) == 300


def test_keylog_aliases_without_the_0():
    log = KeyLog.from_bytes(b"CLIENT_TRAFFIC_SECRET " + b"ab" * 32 + b" " + b"cd" * 32 + b"\n")
    assert not log.problems
    assert log.secret(bytes.fromhex("ab" * 32), "CLIENT_TRAFFIC_SECRET_0") == bytes.fromhex("cd" * 32)


@settings(max_examples=300, deadline=None)
@given(b0=st.integers(0x20, 0x3F), rest=st.binary(max_size=40), body=st.binary(max_size=80),
       chacha=st.booleans())
def test_damage_gives_auth_error_only(b0, rest, body, chacha):
    spec = CIPHERS["CHACHA20_POLY1305"] if chacha else AES128
    keys = EpochKeys(3, spec, "sha256", bytes(32))
    seq_len = 2 if b0 & 0x08 else 1
    header = bytes([b0]) + rest[:seq_len + (2 if b0 & 0x04 else 0)]
    if len(header) < 1 + seq_len + (2 if b0 & 0x04 else 0):
        return
    with pytest.raises(RecordAuthError):
        keys.open(header, body)


@settings(max_examples=60, deadline=None)
@given(hits=st.lists(st.tuples(st.integers(3, 11), st.integers(0, 900), st.integers(1, 255)), min_size=1, max_size=6))
def test_damaged_datagrams_through_the_pipeline(hits):
    """Bytes of the protected datagrams changed (headers, sequence numbers, ciphertext): every record
    still gives a decryption result or a failure, and the connection is reported."""
    from tlsscope.api import make_options
    from tlsscope.capture import open_capture
    from tlsscope.model import Datagram
    from tlsscope.pipeline import analyze

    corpus = need_corpus()
    items = list(open_capture(corpus / ILLUSTRATED / "capture.pcap"))
    for frame, at, xor in hits:
        i = next(k for k, it in enumerate(items) if isinstance(it, Datagram) and it.frame == frame)
        dg = items[i]
        payload = bytearray(dg.payload)
        payload[at % len(payload)] ^= xor
        items[i] = Datagram(dg.ts, dg.frame, dg.src, dg.dst, dg.sport, dg.dport, bytes(payload))
    reports = list(analyze(items, make_options(keylog=str(corpus / ILLUSTRATED / "keylog.txt"))))
    [r] = [r for r in reports if r.transport == "dtls"]
    d = r.decryption
    assert r.version == 0xFEFC and d["records_decrypted"] + d["failures"] >= 1   # the hellos are untouched
    assert d["finished_verified"]["server"] in (True, False, None)

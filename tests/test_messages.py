"""Handshake message decoding: RFC 8448 vectors, illustrated-TLS corpus records, crafted forms, fuzzing."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlsscope.codec import DecodeError, Reader
from tlsscope.jsonable import to_jsonable
from tlsscope.tls import extensions as ex
from tlsscope.tls.messages import (
    HANDSHAKE_DECODERS, Certificate, CertificateRequest, CertificateStatus, CertificateVerify, ClientHello,
    ClientKeyExchange, CompressedCertificate, DecodeContext, EncryptedExtensions, EndOfEarlyData, Finished,
    HelloRequest, KeyUpdate, MessageHash, NewSessionTicket, ServerDHParams, ServerECDHParams, ServerHello,
    ServerHelloDone, ServerKeyExchange, ServerRSAParams, SSLv2ClientHello, UnknownHandshake, decode_handshake,
    decode_sslv2_client_hello,
)
from tlsscope.tls.x509info import parse_certificate

from conftest import CORPUS, need_corpus, need_tool


def h(s: str) -> bytes:
    return bytes.fromhex("".join(s.split()))


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def v1(b: bytes) -> bytes:
    return bytes([len(b)]) + b


def v2(b: bytes) -> bytes:
    return u16(len(b)) + b


def v3(b: bytes) -> bytes:
    return u24(len(b)) + b


def split(msg: bytes) -> tuple[int, bytes]:
    """A full handshake message (with header) -> (msg_type, body), checking the header length."""
    assert int.from_bytes(msg[1:4], "big") == len(msg) - 4
    return msg[0], msg[4:]


CLIENT = DecodeContext(from_client=True)
SERVER = DecodeContext(from_client=False)
S13 = DecodeContext(from_client=False, version=0x0304)
C13 = DecodeContext(from_client=True, version=0x0304)
S12 = DecodeContext(from_client=False, version=0x0303)

# ---- RFC 8448 §3 "Simple 1-RTT Handshake" (messages with their 4-byte header) ----------------
RFC8448_CH = h("""
01 00 00 c0 03 03 cb 34 ec b1 e7 81 63 ba 1c 38 c6 da cb 19 6a 6d ff a2 1a 8d 99 12 ec 18 a2 ef 62 83
02 4d ec e7 00 00 06 13 01 13 03 13 02 01 00 00 91 00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72 ff 01
00 01 00 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03 01 04 00 23 00 00 00 33 00
26 00 24 00 1d 00 20 99 38 1d e5 60 e4 bd 43 d2 3d 8e 43 5a 7d ba fe b3 c0 6e 51 c1 3c ae 4d 54 13 69
1e 52 9a af 2c 00 2b 00 03 02 03 04 00 0d 00 20 00 1e 04 03 05 03 06 03 02 03 08 04 08 05 08 06 04 01
05 01 06 01 02 01 04 02 05 02 06 02 02 02 00 2d 00 02 01 01 00 1c 00 02 40 01""")
RFC8448_SH = h("""
02 00 00 56 03 03 a6 af 06 a4 12 18 60 dc 5e 6e 60 24 9c d3 4c 95 93 0c 8a c5 cb 14 34 da c1 55 77 2e
d3 e2 69 28 00 13 01 00 00 2e 00 33 00 24 00 1d 00 20 c9 82 88 76 11 20 95 fe 66 76 2b db f7 c6 72 e1
56 d6 cc 25 3b 83 3d f1 dd 69 b1 b0 4e 75 1f 0f 00 2b 00 02 03 04""")
RFC8448_EE = h("""
08 00 00 24 00 22 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03 01 04 00 1c 00 02
40 01 00 00 00 00""")
RFC8448_CERT = h("""
0b 00 01 b9 00 00 01 b5 00 01 b0 30 82 01 ac 30 82 01 15 a0 03 02 01 02 02 01 02 30 0d 06 09 2a 86 48
86 f7 0d 01 01 0b 05 00 30 0e 31 0c 30 0a 06 03 55 04 03 13 03 72 73 61 30 1e 17 0d 31 36 30 37 33 30
30 31 32 33 35 39 5a 17 0d 32 36 30 37 33 30 30 31 32 33 35 39 5a 30 0e 31 0c 30 0a 06 03 55 04 03 13
03 72 73 61 30 81 9f 30 0d 06 09 2a 86 48 86 f7 0d 01 01 01 05 00 03 81 8d 00 30 81 89 02 81 81 00 b4
bb 49 8f 82 79 30 3d 98 08 36 39 9b 36 c6 98 8c 0c 68 de 55 e1 bd b8 26 d3 90 1a 24 61 ea fd 2d e4 9a
91 d0 15 ab bc 9a 95 13 7a ce 6c 1a f1 9e aa 6a f9 8c 7c ed 43 12 09 98 e1 87 a8 0e e0 cc b0 52 4b 1b
01 8c 3e 0b 63 26 4d 44 9a 6d 38 e2 2a 5f da 43 08 46 74 80 30 53 0e f0 46 1c 8c a9 d9 ef bf ae 8e a6
d1 d0 3e 2b d1 93 ef f0 ab 9a 80 02 c4 74 28 a6 d3 5a 8d 88 d7 9f 7f 1e 3f 02 03 01 00 01 a3 1a 30 18
30 09 06 03 55 1d 13 04 02 30 00 30 0b 06 03 55 1d 0f 04 04 03 02 05 a0 30 0d 06 09 2a 86 48 86 f7 0d
01 01 0b 05 00 03 81 81 00 85 aa d2 a0 e5 b9 27 6b 90 8c 65 f7 3a 72 67 17 06 18 a5 4c 5f 8a 7b 33 7d
2d f7 a5 94 36 54 17 f2 ea e8 f8 a5 8c 8f 81 72 f9 31 9c f3 6b 7f d6 c5 5b 80 f2 1a 03 01 51 56 72 60
96 fd 33 5e 5e 67 f2 db f1 02 70 2e 60 8c ca e6 be c1 fc 63 a4 2a 99 be 5c 3e b7 10 7c 3c 54 e9 b9 eb
2b d5 20 3b 1c 3b 84 e0 a8 b2 f7 59 40 9b a3 ea c9 d9 1d 40 2d cc 0c c8 f8 96 12 29 ac 91 87 b4 2b 4d
e1 00 00""")
RFC8448_CV = h("""
0f 00 00 84 08 04 00 80 5a 74 7c 5d 88 fa 9b d2 e5 5a b0 85 a6 10 15 b7 21 1f 82 4c d4 84 14 5a b3 ff
52 f1 fd a8 47 7b 0b 7a bc 90 db 78 e2 d3 3a 5c 14 1a 07 86 53 fa 6b ef 78 0c 5e a2 48 ee aa a7 85 c4
f3 94 ca b6 d3 0b be 8d 48 59 ee 51 1f 60 29 57 b1 54 11 ac 02 76 71 45 9e 46 44 5c 9e a5 8c 18 1e 81
8e 95 b8 c3 fb 0b f3 27 84 09 d3 be 15 2a 3d a5 04 3e 06 3d da 65 cd f5 ae a2 0d 53 df ac d4 2f 74 f3""")
RFC8448_SERVER_FINISHED = h("""
14 00 00 20 9b 9b 14 1d 90 63 37 fb d2 cb dc e7 1d f4 de da 4a b4 2c 30 95 72 cb 7f ff ee 54 54 b7 8f
07 18""")
RFC8448_NST = h("""
04 00 00 c9 00 00 00 1e fa d6 aa c5 02 00 00 00 b2 2c 03 5d 82 93 59 ee 5f f7 af 4e c9 00 00 00 00 26
2a 64 94 dc 48 6d 2c 8a 34 cb 33 fa 90 bf 1b 00 70 ad 3c 49 88 83 c9 36 7c 09 a2 be 78 5a bc 55 cd 22
60 97 a3 a9 82 11 72 83 f8 2a 03 a1 43 ef d3 ff 5d d3 6d 64 e8 61 be 7f d6 1d 28 27 db 27 9c ce 14 50
77 d4 54 a3 66 4d 4e 6d a4 d2 9e e0 37 25 a6 a4 da fc d0 fc 67 d2 ae a7 05 29 51 3e 3d a2 67 7f a5 90
6c 5b 3f 7d 8f 92 f2 28 bd a4 0d da 72 14 70 f9 fb f2 97 b5 ae a6 17 64 6f ac 5c 03 27 2e 97 07 27 c6
21 a7 91 41 ef 5f 7d e6 50 5e 5b fb c3 88 e9 33 43 69 40 93 93 4a e4 d3 57 00 08 00 2a 00 04 00 00 04
00""")
# §4 "Resumed 0-RTT Handshake": ClientHello with early_data, padding and pre_shared_key.
RFC8448_RESUMED_CH = h("""
01 00 01 fc 03 03 1b c3 ce b6 bb e3 9c ff 93 83 55 b5 a5 0a db 6d b2 1b 7a 6a f6 49 d7 b4 bc 41 9d 78
76 48 7d 95 00 00 06 13 01 13 03 13 02 01 00 01 cd 00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72 ff 01
00 01 00 00 0a 00 14 00 12 00 1d 00 17 00 18 00 19 01 00 01 01 01 02 01 03 01 04 00 33 00 26 00 24 00
1d 00 20 e4 ff b6 8a c0 5f 8d 96 c9 9d a2 66 98 34 6c 6b e1 64 82 ba dd da fe 05 1a 66 b4 f1 8d 66 8f
0b 00 2a 00 00 00 2b 00 03 02 03 04 00 0d 00 20 00 1e 04 03 05 03 06 03 02 03 08 04 08 05 08 06 04 01
05 01 06 01 02 01 04 02 05 02 06 02 02 02 00 2d 00 02 01 01 00 1c 00 02 40 01 00 15 00 57 00 00 00 00
""" + "00 " * 83 + """
00 29 00 dd 00 b8 00 b2 2c 03 5d 82 93 59 ee 5f f7 af 4e
c9 00 00 00 00 26 2a 64 94 dc 48 6d 2c 8a 34 cb 33 fa 90 bf 1b 00 70 ad 3c 49 88 83 c9 36 7c 09 a2 be
78 5a bc 55 cd 22 60 97 a3 a9 82 11 72 83 f8 2a 03 a1 43 ef d3 ff 5d d3 6d 64 e8 61 be 7f d6 1d 28 27
db 27 9c ce 14 50 77 d4 54 a3 66 4d 4e 6d a4 d2 9e e0 37 25 a6 a4 da fc d0 fc 67 d2 ae a7 05 29 51 3e
3d a2 67 7f a5 90 6c 5b 3f 7d 8f 92 f2 28 bd a4 0d da 72 14 70 f9 fb f2 97 b5 ae a6 17 64 6f ac 5c 03
27 2e 97 07 27 c6 21 a7 91 41 ef 5f 7d e6 50 5e 5b fb c3 88 e9 33 43 69 40 93 93 4a e4 d3 57 fa d6 aa
cb 00 21 20 3a dd 4f b2 d8 fd f8 22 a0 ca 3c f7 67 8e f5 e8 8d ae 99 01 41 c5 92 4d 57 bb 6f a3 1b 9e
5f 9d""")
# §5 "HelloRetryRequest": the first ClientHello and the HRR.
RFC8448_HRR_CH1 = h("""
01 00 00 b0 03 03 b0 b1 c5 a5 aa 37 c5 91 9f 2e d1 d5 c6 ff f7 fc b7 84 97 16 94 5a 2b 8c ee 92 58 a3
46 67 7b 6f 00 00 06 13 01 13 03 13 02 01 00 00 81 00 00 00 0b 00 09 00 00 06 73 65 72 76 65 72 ff 01
00 01 00 00 0a 00 08 00 06 00 1d 00 17 00 18 00 33 00 26 00 24 00 1d 00 20 e8 e8 e3 f3 b9 3a 25 ed 97
a1 4a 7d ca cb 8a 27 2c 62 88 e5 85 c6 48 4d 05 26 2f ca d0 62 ad 1f 00 2b 00 03 02 03 04 00 0d 00 20
00 1e 04 03 05 03 06 03 02 03 08 04 08 05 08 06 04 01 05 01 06 01 02 01 04 02 05 02 06 02 02 02 00 2d
00 02 01 01 00 1c 00 02 40 01""")
RFC8448_HRR = h("""
02 00 00 ac 03 03 cf 21 ad 74 e5 9a 61 11 be 1d 8c 02 1e 65 b8 91 c2 a2 11 16 7a bb 8c 5e 07 9e 09 e2
c8 a8 33 9c 00 13 01 00 00 84 00 33 00 02 00 17 00 2c 00 74 00 72 71 dc d0 4b b8 8b c3 18 91 19 39 8a
00 00 00 00 ee fa fc 76 c1 46 b8 23 b0 96 f8 aa ca d3 65 dd 00 30 95 3f 4e df 62 56 36 e5 f2 1b b2 e2
3f cc 65 4b 1b 5b 40 31 8d 10 d1 37 ab cb b8 75 74 e3 6e 8a 1f 02 5f 7d fa 5d 6e 50 78 1b 5e da 4a a1
5b 0c 8b e7 78 25 7d 16 aa 30 30 e9 e7 84 1d d9 e4 c0 34 22 67 e8 ca 0c af 57 1f b2 b7 cf f0 f9 34 b0
00 2b 00 02 03 04""")


def dec(msg: bytes, ctx: DecodeContext):
    t, body = split(msg)
    return decode_handshake(t, body, ctx)


def ext_value(msg, ext_type: int):
    e = msg.get_extension(ext_type)
    assert e is not None, f"extension {ext_type} missing"
    assert e.error is None, e.error
    return e.value


# ---- RFC 8448 -------------------------------------------------------------------------------

def test_rfc8448_client_hello():
    ch = dec(RFC8448_CH, CLIENT)
    assert isinstance(ch, ClientHello) and ch.has_extensions_block
    assert ch.legacy_version == 0x0303
    assert ch.random.hex().startswith("cb34ecb1e781") and len(ch.random) == 32
    assert ch.legacy_session_id == b""
    assert ch.cipher_suites == (0x1301, 0x1303, 0x1302)
    assert ch.legacy_compression_methods == (0,)
    assert [e.type for e in ch.extensions] == [0, 0xFF01, 10, 35, 51, 43, 13, 45, 28]
    assert all(e.error is None for e in ch.extensions)
    sni = ext_value(ch, 0)
    assert [(n.name_type, n.host_name) for n in sni.server_name_list] == [(0, "server")]
    assert ext_value(ch, 0xFF01).renegotiated_connection == b""
    assert ext_value(ch, 10).named_group_list == (0x1D, 0x17, 0x18, 0x19, 0x100, 0x101, 0x102, 0x103, 0x104)
    assert ext_value(ch, 35).ticket == b""
    ks = ext_value(ch, 51)
    assert len(ks.client_shares) == 1 and ks.client_shares[0].group == 29
    assert ks.client_shares[0].key_exchange.hex() == "99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c"
    assert ext_value(ch, 43).versions == (0x0304,)
    sigs = ext_value(ch, 13).supported_signature_algorithms
    assert len(sigs) == 15 and sigs[:3] == (0x0403, 0x0503, 0x0603) and 0x0804 in sigs
    assert ext_value(ch, 45).ke_modes == (1,)
    assert ext_value(ch, 28).record_size_limit == 0x4001


def test_rfc8448_server_hello():
    sh = dec(RFC8448_SH, SERVER)
    assert isinstance(sh, ServerHello)
    assert sh.cipher_suite == 0x1301 and sh.legacy_compression_method == 0
    assert not sh.is_hello_retry_request and sh.downgrade_sentinel is None
    assert sh.selected_version == 0x0304 and sh.legacy_version == 0x0303
    share = ext_value(sh, 51).server_share
    assert share.group == 29 and share.key_exchange.hex().startswith("c9828876")


def test_rfc8448_encrypted_extensions_certificate_verify_finished():
    ee = dec(RFC8448_EE, S13)
    assert isinstance(ee, EncryptedExtensions)
    assert [e.type for e in ee.extensions] == [10, 28, 0]
    assert ext_value(ee, 28).record_size_limit == 0x4001
    assert isinstance(ext_value(ee, 0), ex.Empty)     # server_name acknowledgement

    cert = dec(RFC8448_CERT, S13)
    assert isinstance(cert, Certificate)
    assert cert.certificate_request_context == b""
    assert len(cert.certificate_list) == 1
    entry = cert.certificate_list[0]
    assert len(entry.cert_data) == 432 and entry.extensions == ()
    info = parse_certificate(entry.cert_data)
    assert info.subject == "CN=rsa" and info.issuer == "CN=rsa" and info.public_key_bits == 1024
    assert info.is_ca is False and info.key_usage == ("digital_signature", "key_encipherment")

    cv = dec(RFC8448_CV, S13)
    assert isinstance(cv, CertificateVerify) and cv.algorithm == 0x0804 and len(cv.signature) == 128

    fin = dec(RFC8448_SERVER_FINISHED, S13)
    assert isinstance(fin, Finished) and fin.verify_data.hex().startswith("9b9b141d") and len(fin.verify_data) == 32


def test_rfc8448_new_session_ticket():
    nst = dec(RFC8448_NST, S13)
    assert isinstance(nst, NewSessionTicket) and nst.is_tls13
    assert nst.ticket_lifetime_hint == 30
    assert nst.ticket_age_add == 0xFAD6AAC5
    assert nst.ticket_nonce == b"\x00\x00"
    assert len(nst.ticket) == 0xB2 and nst.ticket.hex().startswith("2c035d82")
    assert [e.type for e in nst.extensions] == [42]
    assert ext_value(nst, 42).max_early_data_size == 0x400
    # without a known version the TLS 1.2 form does not fit, so the TLS 1.3 form is found
    assert dec(RFC8448_NST, SERVER) == nst


def test_rfc8448_resumed_client_hello_psk():
    ch = dec(RFC8448_RESUMED_CH, CLIENT)
    assert ch.extensions[-1].type == 41                # pre_shared_key comes last
    psk = ext_value(ch, 41)
    assert len(psk.identities) == 1
    assert len(psk.identities[0].identity) == 0xB2
    assert psk.identities[0].obfuscated_ticket_age == 0xFAD6AACB
    assert len(psk.binders) == 1 and psk.binders[0].hex().startswith("3add4fb2")
    assert isinstance(ext_value(ch, 42), ex.Empty)    # early_data in ClientHello
    pad = ext_value(ch, 21)
    assert pad.length == 0x57 and pad.all_zero


def test_rfc8448_hello_retry_request():
    ch1 = dec(RFC8448_HRR_CH1, CLIENT)
    assert ext_value(ch1, 10).named_group_list == (0x1D, 0x17, 0x18)
    hrr = dec(RFC8448_HRR, SERVER)
    assert isinstance(hrr, ServerHello) and hrr.is_hello_retry_request
    assert hrr.selected_version == 0x0304
    ks = ext_value(hrr, 51)
    assert isinstance(ks, ex.KeyShareHelloRetryRequest) and ks.selected_group == 0x17
    cookie = ext_value(hrr, 44).cookie
    assert len(cookie) == 0x72 and cookie.hex().startswith("71dcd04b")


# ---- illustrated TLS 1.3 / 1.2 records (raw records incl. the 5-byte header) -------------------

def messages_in(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while len(data) >= 4:
        n = int.from_bytes(data[1:4], "big")
        out.append((data[0], data[4:4 + n]))
        data = data[4 + n:]
    return out


def caps(name: str):
    return CORPUS / f"syncsynchalt_illustrated-{name}" / "captures" / "caps"


def test_illustrated_tls13():
    need_corpus()
    d = caps("tls13")
    rec = (d / "clienthello").read_bytes()
    assert rec[0] == 22
    [(t, body)] = messages_in(rec[5:])
    ch = decode_handshake(t, body, CLIENT, offset=9)
    assert ch.cipher_suites == (0x1302, 0x1303, 0x1301, 0x00FF)
    assert ext_value(ch, 0).server_name_list[0].host_name == "example.ulfheim.net"
    assert ext_value(ch, 51).client_shares[0].group == 29
    assert ext_value(ch, 43).versions == (0x0304,)
    assert ext_value(ch, 11).ec_point_format_list == (0, 1, 2)
    assert len(ch.legacy_session_id) == 32

    [(t, body)] = messages_in((d / "serverhello").read_bytes()[5:])
    sh = decode_handshake(t, body, SERVER)
    assert sh.cipher_suite == 0x1302 and sh.selected_version == 0x0304
    assert ext_value(sh, 51).server_share.group == 29

    # decrypted handshake messages: TLSInnerPlaintext = message || content type 0x16
    def inner(name: str, ctx=S13):
        data = (d / name).read_bytes()
        assert data[-1] == 22
        [(t, body)] = messages_in(data[:-1])
        return decode_handshake(t, body, ctx)

    assert inner("serverextensions") == EncryptedExtensions(())
    cert = inner("servercert")
    assert len(cert.certificate_list) == 1 and cert.certificate_request_context == b""
    assert parse_certificate(cert.certificate_list[0].cert_data).subject == "CN=example.ulfheim.net,C=US"
    cv = inner("servercertverify")
    assert cv.algorithm == 0x0804 and len(cv.signature) == 256
    assert len(inner("serverfinished").verify_data) == 48          # TLS_AES_256_GCM_SHA384
    assert len(inner("clientfinished", C13).verify_data) == 48
    for name in ("serverticket1", "serverticket2"):
        nst = inner(name)
        assert nst.is_tls13 and nst.ticket_lifetime_hint == 7200 and nst.extensions == ()
        assert nst.ticket.startswith(b"ABCDEFGHIJKLMNO")


def test_illustrated_tls12():
    need_corpus()
    d = caps("tls12")
    [(t, body)] = messages_in((d / "clienthello").read_bytes()[5:])
    ch = decode_handshake(t, body, CLIENT)
    assert ch.cipher_suites[:3] == (0xCCA8, 0xCCA9, 0xC02F) and len(ch.cipher_suites) == 16
    assert ext_value(ch, 0).server_name_list[0].host_name == "example.ulfheim.net"
    assert ext_value(ch, 13).supported_signature_algorithms == (
        0x0401, 0x0403, 0x0501, 0x0503, 0x0601, 0x0603, 0x0201, 0x0203)
    assert isinstance(ext_value(ch, 18), ex.Empty)     # signed_certificate_timestamp request
    [(t, body)] = messages_in((d / "serverhello").read_bytes()[5:])
    sh = decode_handshake(t, body, SERVER)
    assert sh.cipher_suite == 0xC013 and sh.selected_version == 0x0303
    assert sh.downgrade_sentinel is None
    assert ext_value(sh, 0xFF01).renegotiated_connection == b""

    [(t, body)] = messages_in((d / "servercert").read_bytes()[5:])
    cert = decode_handshake(t, body, S12)
    assert cert.certificate_request_context is None and len(cert.certificate_list) == 1
    assert parse_certificate(cert.certificate_list[0].cert_data).issuer == "O=Example CA,C=US"
    # the version is not needed to find the TLS 1.2 form
    assert decode_handshake(t, body, SERVER) == cert

    [(t, body)] = messages_in((d / "serverkeyexchange").read_bytes()[5:])
    ske = decode_handshake(t, body, DecodeContext(False, 0x0303, "ECDHE"))
    assert isinstance(ske, ServerKeyExchange)
    assert ske.curve_type == 3 and ske.named_curve == 29 and len(ske.public) == 32
    assert ske.params_raw == body[:4 + 32]
    assert ske.signature_algorithm == 0x0401 and len(ske.signature) == 256

    [(t, body)] = messages_in((d / "serverhellodone").read_bytes()[5:])
    assert decode_handshake(t, body, S12) == ServerHelloDone()

    [(t, body)] = messages_in((d / "clientkeyexchange").read_bytes()[5:])
    cke = decode_handshake(t, body, DecodeContext(True, 0x0303, "ECDHE"))
    assert cke.ecdh_Yc.hex().startswith("358072d6") and len(cke.ecdh_Yc) == 32
    assert cke.exchange_keys == body

    [(t, body)] = messages_in((d / "clientfinishedplain").read_bytes())
    assert len(decode_handshake(t, body, DecodeContext(True, 0x0303)).verify_data) == 12


# ---- truncation and trailing garbage ------------------------------------------------------------

VECTORS = [
    (RFC8448_CH, CLIENT), (RFC8448_SH, SERVER), (RFC8448_EE, S13), (RFC8448_CERT, S13), (RFC8448_CV, S13),
    (RFC8448_NST, S13), (RFC8448_RESUMED_CH, CLIENT), (RFC8448_HRR_CH1, CLIENT), (RFC8448_HRR, SERVER),
]


@pytest.mark.parametrize("msg,ctx", VECTORS)
def test_truncation_and_trailing_garbage(msg, ctx):
    t, body = split(msg)
    decoded_prefixes = []
    for i in range(len(body)):
        try:
            decode_handshake(t, body[:i], ctx)
        except DecodeError as e:
            assert 0 <= e.offset <= i and e.path and e.reason
        else:
            decoded_prefixes.append(i)
    if t in (1, 2):
        # a hello cut exactly after its compression method(s) is a valid extension-less hello
        assert len(decoded_prefixes) == 1
        m = decode_handshake(t, body[:decoded_prefixes[0]], ctx)
        assert m.extensions == () and not m.has_extensions_block
    else:
        assert decoded_prefixes == []
    for junk in (b"\x00", b"\xff\xff", b"garbage"):
        with pytest.raises(DecodeError) as ei:
            decode_handshake(t, body + junk, ctx, offset=100)
        assert "trailing" in ei.value.reason
        assert ei.value.offset == 100 + len(body)


def test_extension_body_error_does_not_fail_the_message():
    # key_share with a client_shares length overrunning its body, then a valid ALPN extension
    bad_ks = u16(51) + v2(u16(100) + u16(29) + v2(b"\x01" * 4))
    alpn = u16(16) + v2(v2(v1(b"h2") + v1(b"http/1.1")))
    body = u16(0x0303) + bytes(32) + v1(b"") + v2(u16(0x1301)) + v1(b"\x00") + v2(bad_ks + alpn)
    ch = decode_handshake(1, body, CLIENT, offset=4)
    ks, al = ch.extensions
    assert ks.value is None and isinstance(ks.error, DecodeError)
    assert ks.error.path.startswith("ClientHello.extensions[0].key_share")
    # absolute offset, just after the client_shares length field
    assert ks.error.offset == 4 + 2 + 32 + 1 + (2 + 2) + (1 + 1) + 2 + (2 + 2) + 2
    assert al.error is None and al.value.protocol_name_list == (b"h2", b"http/1.1")
    js = to_jsonable(ch)
    assert js["extensions"][0]["error"]["path"].endswith("client_shares")
    # a broken extensions *block* is the message's problem
    with pytest.raises(DecodeError) as ei:
        decode_handshake(1, body[:-1], CLIENT)
    assert "extensions" in ei.value.path


# ---- crafted forms ---------------------------------------------------------------------------------

def test_client_hello_without_extensions_and_downgrade_sentinels():
    ch = decode_handshake(1, u16(0x0300) + bytes(32) + v1(b"\x01" * 32) + v2(u16(4) + u16(5)) + v1(b"\x00"), CLIENT)
    assert ch.legacy_version == 0x0300 and ch.cipher_suites == (4, 5) and not ch.has_extensions_block
    for tail, want in ((b"DOWNGRD\x01", "tls12"), (b"DOWNGRD\x00", "tls11"), (bytes(8), None)):
        sh = decode_handshake(2, u16(0x0303) + bytes(24) + tail + v1(b"") + u16(0xC02F) + b"\x00", SERVER)
        assert sh.downgrade_sentinel == want and sh.selected_version == 0x0303 and sh.extensions == ()


def test_tls13_draft_server_hello_and_hello_retry_request():
    # draft-18 ServerHello: version, random, cipher_suite, extensions (no session id / compression)
    body = u16(0x7F12) + bytes(32) + u16(0x1301) + v2(u16(51) + v2(u16(29) + v2(b"k" * 32)))
    sh = decode_handshake(2, body, SERVER)
    assert sh.legacy_version == 0x7F12 and sh.selected_version == 0x7F12 and sh.cipher_suite == 0x1301
    assert sh.legacy_session_id == b"" and ext_value(sh, 51).server_share.group == 29
    # draft-14 and earlier put 0x0304 itself in the version field, with the same layout
    sh = decode_handshake(2, u16(0x0304) + bytes(32) + u16(0xC02B) + v2(b""), SERVER)
    assert sh.cipher_suite == 0xC02B and sh.selected_version == 0x0304
    # draft-19..21 HelloRetryRequest (type 6) has a cipher suite; draft-18 has not
    from tlsscope.tls.messages import DraftHelloRetryRequest
    hrr = decode_handshake(6, u16(0x7F13) + u16(0x1301) + v2(u16(51) + v2(u16(23))), SERVER)
    assert hrr == DraftHelloRetryRequest(0x7F13, 0x1301, hrr.extensions)
    assert ext_value(hrr, 51).selected_group == 23
    hrr = decode_handshake(6, u16(0x7F12) + v2(u16(51) + v2(u16(24))), SERVER)
    assert hrr.cipher_suite is None and ext_value(hrr, 51).selected_group == 24


def test_new_session_ticket_tls12():
    body = (7200).to_bytes(4, "big") + v2(b"T" * 20)
    for ctx in (S12, SERVER):
        nst = decode_handshake(4, body, ctx)
        assert nst == NewSessionTicket(7200, b"T" * 20) and not nst.is_tls13
    with pytest.raises(DecodeError):
        decode_handshake(4, body, S13)


def test_server_key_exchange_forms():
    dh_p = b"\xff" * 256
    dh = v2(dh_p) + v2(b"\x02") + v2(b"\x55" * 256)
    ske = decode_handshake(12, dh + u16(0x0804) + v2(b"S" * 256), DecodeContext(False, 0x0303, "DHE"))
    assert isinstance(ske.params, ServerDHParams) and ske.p_bits == 2048 and ske.dh_g == b"\x02"
    assert ske.signature_algorithm == 0x0804 and ske.signature == b"S" * 256 and ske.params_raw == dh
    # TLS 1.0: no SignatureAndHashAlgorithm
    ske = decode_handshake(12, dh + v2(b"S" * 128), DecodeContext(False, 0x0301, "DHE"))
    assert ske.signature_algorithm is None and ske.signature == b"S" * 128
    # anonymous DH: nothing after the params
    ske = decode_handshake(12, dh, DecodeContext(False, 0x0303, "DH", signed_kx=False))
    assert ske.signature is None and ske.p_bits == 2048
    # PSK hint only, and DHE_PSK hint + params
    ske = decode_handshake(12, v2(b"hint"), DecodeContext(False, 0x0303, "PSK"))
    assert ske.psk_identity_hint == b"hint" and ske.params is None and ske.signature is None
    ske = decode_handshake(12, v2(b"") + dh, DecodeContext(False, 0x0303, "DHE_PSK"))
    assert ske.psk_identity_hint == b"" and ske.p_bits == 2048
    ecdh = b"\x03" + u16(23) + v1(b"\x04" + b"\x11" * 64)
    ske = decode_handshake(12, v2(b"id") + ecdh, DecodeContext(False, 0x0303, "ECDHE_PSK"))
    assert ske.named_curve == 23 and ske.public[0] == 4
    # explicit prime curve kept raw
    explicit = v1(b"\x07" * 32) + v1(b"a") + v1(b"b") + v1(b"\x04" + b"g" * 64) + v1(b"n" * 32) + v1(b"\x01")
    ske = decode_handshake(12, b"\x01" + explicit + v1(b"\x04pub") + u16(0x0403) + v2(b"sig"),
                           DecodeContext(False, 0x0303, "ECDHE"))
    assert isinstance(ske.params, ServerECDHParams)
    assert ske.curve_type == 1 and ske.named_curve is None and ske.params.explicit_curve == explicit
    assert ske.public == b"\x04pub" and ske.signature == b"sig"
    with pytest.raises(DecodeError):
        decode_handshake(12, b"\x09" + ecdh[1:] + u16(0x0403) + v2(b"sig"), DecodeContext(False, 0x0303, "ECDHE"))
    # export RSA
    ske = decode_handshake(12, v2(b"\xc0" + bytes(63)) + v2(b"\x01\x00\x01") + v2(b"s"),
                           DecodeContext(False, 0x0300, "RSA"))
    assert isinstance(ske.params, ServerRSAParams) and ske.params.modulus_bits == 512
    # SRP
    srp = v2(b"N" * 128) + v2(b"\x02") + v1(b"salt") + v2(b"B" * 128)
    ske = decode_handshake(12, srp + u16(0x0401) + v2(b"s"), DecodeContext(False, 0x0303, "SRP"))
    assert ske.params.srp_s == b"salt"
    # unknown key exchange: raw params
    ske = decode_handshake(12, b"\x01\x02\x03", DecodeContext(False, 0x0303, None))
    assert ske.params is None and ske.params_raw == b"\x01\x02\x03" and ske.signature is None


def test_client_key_exchange_forms():
    def cke(body, kx, version=0x0303):
        return decode_handshake(16, body, DecodeContext(True, version, kx))
    m = cke(v2(b"E" * 256), "RSA")
    assert isinstance(m, ClientKeyExchange) and m.key_exchange == "RSA"
    assert m.encrypted_pre_master_secret == b"E" * 256 and m.exchange_keys == v2(b"E" * 256)
    assert cke(b"E" * 64, "RSA", 0x0300).encrypted_pre_master_secret == b"E" * 64   # SSL 3.0
    with pytest.raises(DecodeError):
        cke(b"E" * 64, "RSA")
    assert cke(v2(b"Y" * 256), "DHE").dh_Yc == b"Y" * 256
    assert cke(b"", "DH").dh_Yc == b""                  # implicit
    with pytest.raises(DecodeError):
        cke(b"", "DHE")
    m = cke(v2(b"client1"), "PSK")
    assert m.psk_identity == b"client1" and m.dh_Yc is None
    m = cke(v2(b"id") + v2(b"E" * 48), "RSA_PSK")
    assert m.psk_identity == b"id" and m.encrypted_pre_master_secret == b"E" * 48
    assert cke(v2(b"id") + v2(b"Y" * 128), "DHE_PSK").dh_Yc == b"Y" * 128
    m = cke(v2(b"id") + v1(b"\x04" + b"Q" * 64), "ECDHE_PSK")
    assert m.psk_identity == b"id" and len(m.ecdh_Yc) == 65
    assert cke(v2(b"A" * 128), "SRP").srp_A == b"A" * 128
    m = cke(b"\x01\x02", None)
    assert m.exchange_keys == b"\x01\x02" and m.ecdh_Yc is None


def _dn(*pairs) -> bytes:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "C": NameOID.COUNTRY_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in pairs]).public_bytes()


def test_certificate_request_forms():
    ca = _dn(("O", "Example"), ("CN", "myCA"))
    body = v1(b"\x01\x40") + v2(u16(0x0804) + u16(0x0403)) + v2(v2(ca) + v2(b"\x30\x03\x02\x01\x00"))
    cr = decode_handshake(13, body, S12)
    assert isinstance(cr, CertificateRequest)
    assert cr.certificate_types == (1, 64) and cr.supported_signature_algorithms == (0x0804, 0x0403)
    assert cr.certificate_authorities[0].rfc4514 == "CN=myCA,O=Example"
    assert cr.certificate_authorities[0].der == ca
    assert cr.certificate_authorities[1].rfc4514 is None                 # not a Name: kept, not raised
    assert cr.certificate_request_context is None
    # TLS 1.1: no signature algorithms
    cr = decode_handshake(13, v1(b"\x01") + v2(b""), DecodeContext(False, 0x0302))
    assert cr.supported_signature_algorithms is None and cr.certificate_authorities == ()
    # version unknown: the TLS 1.2 form is tried first, then the older one
    legacy = v1(b"\x01\x02") + v2(v2(ca))
    assert decode_handshake(13, legacy, SERVER).certificate_authorities[0].rfc4514 == "CN=myCA,O=Example"
    assert decode_handshake(13, legacy, SERVER).supported_signature_algorithms is None
    # TLS 1.3: context + extensions
    body = v1(b"") + v2(u16(13) + v2(v2(u16(0x0804))) + u16(47) + v2(v2(v2(ca))))
    cr = decode_handshake(13, body, S13)
    assert cr.certificate_request_context == b"" and cr.certificate_types == ()
    assert ext_value(cr, 13).supported_signature_algorithms == (0x0804,)
    assert ext_value(cr, 47).authorities[0].rfc4514 == "CN=myCA,O=Example"


def test_certificate_verify_legacy_and_small_messages():
    assert decode_handshake(15, v2(b"sig"), DecodeContext(True, 0x0301)) == CertificateVerify(None, b"sig")
    assert decode_handshake(15, v2(b"sig"), CLIENT) == CertificateVerify(None, b"sig")   # version unknown
    assert decode_handshake(15, u16(0x0403) + v2(b"sig"), CLIENT) == CertificateVerify(0x0403, b"sig")
    assert decode_handshake(0, b"", CLIENT) == HelloRequest()
    assert decode_handshake(5, b"", C13) == EndOfEarlyData()
    assert decode_handshake(24, b"\x01", C13) == KeyUpdate(1)
    assert decode_handshake(254, b"H" * 32, CLIENT) == MessageHash(b"H" * 32)
    cc = decode_handshake(25, u16(2) + u24(1000) + v3(b"zz"), S13)
    assert cc == CompressedCertificate(2, 1000, b"zz")
    assert decode_handshake(99, b"\x01\x02", CLIENT) == UnknownHandshake(99, b"\x01\x02")
    hv = decode_handshake(3, u16(0xFEFF) + v1(b"cookie"), SERVER)
    assert hv.server_version == 0xFEFF and hv.cookie == b"cookie"
    npn = decode_handshake(67, v1(b"h2") + v1(bytes(30)), C13)
    assert npn.selected_protocol == b"h2" and len(npn.padding) == 30
    for t in (0, 5, 14):
        with pytest.raises(DecodeError):
            decode_handshake(t, b"\x00", CLIENT)
    with pytest.raises(DecodeError):
        decode_handshake(24, b"", C13)


def _ocsp_response_der() -> tuple[bytes, int]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509 import ocsp
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=OCSP Test CA")
    t0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0x1234).not_valid_before(t0).not_valid_after(t0 + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    resp = (ocsp.OCSPResponseBuilder()
            .add_response(cert=cert, issuer=cert, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
                          this_update=t0, next_update=t0 + datetime.timedelta(days=7),
                          revocation_time=None, revocation_reason=None)
            .responder_id(ocsp.OCSPResponderEncoding.HASH, cert)
            .sign(key, hashes.SHA256()))
    from cryptography.hazmat.primitives.serialization import Encoding
    return resp.public_bytes(Encoding.DER), 0x1234


def test_certificate_status_ocsp():
    der, serial = _ocsp_response_der()
    cs = decode_handshake(22, b"\x01" + v3(der), S12)
    assert isinstance(cs, CertificateStatus) and cs.status_type == 1 and cs.response == der
    assert cs.ocsp.error is None and cs.ocsp.response_status == "successful"
    assert cs.ocsp.cert_status == "good" and cs.ocsp.serial == "1234"
    assert cs.ocsp.this_update == "2024-01-01T00:00:00Z" and cs.ocsp.next_update == "2024-01-08T00:00:00Z"
    assert cs.ocsp.produced_at is not None and cs.ocsp.responses == 1
    # a broken response is recorded, not raised
    cs = decode_handshake(22, b"\x01" + v3(b"\x30\x03junk"), S12)
    assert cs.ocsp.error and cs.response == b"\x30\x03junk"
    # ocsp_multi: one possibly empty response per certificate
    cs = decode_handshake(22, b"\x02" + v3(v3(der) + v3(b"")), S12)
    assert cs.ocsp_response_list == (der, b"") and cs.ocsp.cert_status == "good"
    # non-successful response status (tryLater = 3)
    cs = decode_handshake(22, b"\x01" + v3(h("30 03 0a 01 03")), S12)
    assert cs.ocsp.response_status == "try_later" and cs.ocsp.cert_status is None


def test_sslv2_client_hello():
    specs = u24(0x010080) + u24(0x000035) + u24(0x00002F)
    challenge = bytes(range(16))
    data = u16(0x0301) + u16(len(specs)) + u16(0) + u16(len(challenge)) + specs + challenge
    m = decode_sslv2_client_hello(data, offset=3)
    assert m == SSLv2ClientHello(0x0301, (0x010080, 0x35, 0x2F), b"", challenge)
    for i in range(len(data)):
        with pytest.raises(DecodeError):
            decode_sslv2_client_hello(data[:i])
    with pytest.raises(DecodeError):
        decode_sslv2_client_hello(data + b"\x00")
    with pytest.raises(DecodeError):
        decode_sslv2_client_hello(u16(0x0301) + u16(2) + u16(0) + u16(0) + b"\x00\x01")


def test_json_of_messages():
    js = to_jsonable(dec(RFC8448_SH, SERVER))
    assert js["random"].startswith("a6af06a4") and js["cipher_suite"] == 0x1301
    assert js["extensions"][0]["value"]["server_share"]["group"] == 29
    js = to_jsonable(dec(RFC8448_CERT, S13))
    assert js["certificate_list"][0]["cert_data"].startswith("308201ac")


def test_hello_retry_request_random_constant():
    from tlsscope.tls.messages import HELLO_RETRY_REQUEST_RANDOM
    assert HELLO_RETRY_REQUEST_RANDOM == hashlib.sha256(b"HelloRetryRequest").digest()
    assert HELLO_RETRY_REQUEST_RANDOM.hex().startswith("cf21ad74e59a6111")


# ---- fuzzing ------------------------------------------------------------------------------------------

CONTEXTS = [
    DecodeContext(True), DecodeContext(False), DecodeContext(False, 0x0304), DecodeContext(True, 0x0304),
    DecodeContext(False, 0x0300), DecodeContext(False, 0x0301), DecodeContext(False, 0xFEFD),
] + [DecodeContext(f, 0x0303, kx, signed) for kx in
     ("ECDHE", "DHE", "RSA", "PSK", "ECDHE_PSK", "DHE_PSK", "RSA_PSK", "ECDH", "DH", "SRP", "bogus")
     for f in (True, False) for signed in (True, False)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg_type=st.sampled_from(sorted(HANDSHAKE_DECODERS)), ctx=st.sampled_from(CONTEXTS),
       data=st.binary(max_size=300))
def test_fuzz_decoders_raise_only_decode_error(msg_type, ctx, data):
    try:
        decode_handshake(msg_type, data, ctx)
    except DecodeError:
        pass
    try:
        HANDSHAKE_DECODERS[msg_type](Reader(data, "x"), ctx)
    except DecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(which=st.sampled_from(VECTORS), cut=st.integers(min_value=0, max_value=600), junk=st.binary(max_size=40),
       flip=st.tuples(st.integers(min_value=0, max_value=600), st.integers(min_value=0, max_value=255)))
def test_fuzz_mutated_vectors(which, cut, junk, flip):
    msg, ctx = which
    t, body = split(msg)
    data = bytearray(body[:cut] + junk)
    if data:
        data[flip[0] % len(data)] = flip[1]
    try:
        m = decode_handshake(t, bytes(data), ctx)
    except DecodeError:
        return
    to_jsonable(m)   # whatever decodes must also serialise


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_sslv2(data):
    try:
        decode_sslv2_client_hello(data)
    except DecodeError:
        pass


# ---- differential: tshark on corpus captures ------------------------------------------------------------
# tshark reassembles handshake messages and exposes each one's raw bytes (-x); we decode those bytes
# and compare field by field with tshark's own dissection.

DIFF_CAPTURES = [
    "FoxIO-LLC_ja4/pcap/tls-non-ascii-alpn.pcapng",
    "FoxIO-LLC_ja4/pcap/badcurveball.pcap",
    "FoxIO-LLC_ja4/pcap/latest.pcapng",
    "FoxIO-LLC_ja4/pcap/quic-tls-handshake.pcapng",
    "seladb_PcapPlusPlus/Tests/Packet++Test/PacketExamples/tls_grease.pcap",
    "seladb_PcapPlusPlus/Tests/Packet++Test/PacketExamples/tls1_3.pcap",
    "Lekensteyn_wireshark-notes/tls/mysql-ssl.pcapng",
    "Lekensteyn_wireshark-notes/tls/amqps.pcapng",
    "Lekensteyn_wireshark-notes/tls/pgsql-ssl.pcapng",
    "OISF_suricata-verify/tests/tls/tls13-draft18/tls13_draft18.pcap",
    "arkime_arkime/tests/pcap/ssl-selfsign.pcap",
    "OISF_suricata-verify/tests/tls/tls13-draft22/tls13_draft22.pcap",
    "OISF_suricata-verify/tests/tls/tls13-draft28/tls13_draft28.pcap",
    "adulau_ssldump/samples/tls1.3_session_resumption.pcap",
    "cisco_joy/test/pcaps/tls10.pcap",
    "Lekensteyn_wireshark-notes/all/dump.pcapng",         # 73 TLS 1.2 connections, one suite each
    "Lekensteyn_wireshark-notes/ssl3/dump.pcapng",        # SSL 3.0: export RSA, no epms length
]


def _flatten(o, out: dict[str, list[str]]) -> dict[str, list[str]]:
    if isinstance(o, dict):
        for k, v in o.items():
            if k.endswith("_raw"):
                continue
            if isinstance(v, (dict, list)):
                if isinstance(v, list) and v and not isinstance(v[0], (dict, list)):
                    out.setdefault(k, []).extend(v)
                else:
                    _flatten(v, out)
            else:
                out.setdefault(k, []).append(v)
    elif isinstance(o, list):
        for x in o:
            _flatten(x, out)
    return out


def _tshark_handshakes(path) -> list[tuple[int, bytes, dict[str, list[str]]]]:
    """(frame, full message bytes, flattened tshark fields) for every typed handshake message."""
    import json
    import subprocess
    tshark = need_tool("tshark")
    out = subprocess.run([tshark, "-r", str(path), "-Y", "tls.handshake.type", "-T", "json", "-x",
                          "--no-duplicate-keys"], capture_output=True, text=True, timeout=120, check=True).stdout
    found = []

    def walk(o, frame):
        if isinstance(o, dict):
            if "tls.handshake" in o and "tls.handshake_raw" in o:
                msgs, raws = o["tls.handshake"], o["tls.handshake_raw"]
                if isinstance(msgs, dict):
                    msgs, raws = [msgs], [raws]
                for m, raw in zip(msgs, raws):
                    if isinstance(m, dict) and "tls.handshake.type" in m:
                        found.append((frame, bytes.fromhex(raw[0]), _flatten(m, {})))
            for v in o.values():
                walk(v, frame)
        elif isinstance(o, list):
            for v in o:
                walk(v, frame)

    for pkt in json.loads(out or "[]"):
        layers = pkt["_source"]["layers"]
        walk(layers, int(layers["frame"]["frame.number"]))
    return found


def _ints(values: list[str]) -> list[int]:
    return [int(v, 0) for v in values]


@pytest.mark.parametrize("rel", DIFF_CAPTURES)
def test_differential_tshark(rel):
    need_corpus()
    path = CORPUS / rel
    handshakes = _tshark_handshakes(path)
    assert handshakes, f"tshark found no handshake messages in {rel}"
    checked = 0
    for frame, raw, f in handshakes:
        msg_type = int(f["tls.handshake.type"][0])
        if len(raw) != 4 + int.from_bytes(raw[1:4], "big"):
            continue          # tshark shows a fragment it could not reassemble
        body = raw[4:]
        where = f"{rel} frame {frame} type {msg_type}"
        if msg_type in (1, 2):
            m = decode_handshake(msg_type, body, CLIENT if msg_type == 1 else SERVER)
            suites = _ints(f.get("tls.handshake.ciphersuite", []))
            assert (list(m.cipher_suites) if msg_type == 1 else [m.cipher_suite]) == suites, where
            assert [e.type for e in m.extensions] == _ints(f.get("tls.handshake.extension.type", [])), where
            assert all(e.error is None for e in m.extensions), (where, [e.error for e in m.extensions])
            values = {e.type: e.value for e in m.extensions}
            if "tls.handshake.extensions_server_name" in f:
                assert [n.host_name for n in values[0].server_name_list] == f["tls.handshake.extensions_server_name"]
            if "tls.handshake.extensions_supported_group" in f:
                assert list(values[10].named_group_list) == _ints(f["tls.handshake.extensions_supported_group"])
            if 13 in values and "tls.handshake.sig_hash_alg" in f:
                assert list(values[13].supported_signature_algorithms) == _ints(f["tls.handshake.sig_hash_alg"])[
                    :len(values[13].supported_signature_algorithms)], where
            if 16 in values:
                want = f.get("tls.handshake.extensions_alpn_str", [])
                got = [p.decode("ascii", "replace") for p in values[16].protocol_name_list]
                assert [g for g in got if g.isascii() and g.isprintable()] == \
                       [w for w in want if w.isascii() and w.isprintable()], where
            if "tls.handshake.extensions.supported_version" in f:
                sv = values.get(43)
                got = list(sv.versions) if msg_type == 1 else [m.selected_version]
                assert got == _ints(f["tls.handshake.extensions.supported_version"]), where
            if 51 in values and "tls.handshake.extensions_key_share_group" in f:
                ks = values[51]
                groups = ([e.group for e in ks.client_shares] if msg_type == 1 else
                          [ks.selected_group] if m.is_hello_retry_request else [ks.server_share.group])
                assert groups == _ints(f["tls.handshake.extensions_key_share_group"]), where
        elif msg_type == 11:
            m = decode_handshake(11, body, SERVER)
            assert len(m.certificate_list) == len(f.get("tls.handshake.certificate_length", [])), where
            for entry in m.certificate_list:
                assert parse_certificate(entry.cert_data).sha256
        elif msg_type == 12:
            version = 0x0303 if "tls.handshake.sig_hash_alg" in f else 0x0300
            if "tls.handshake.server_named_curve" in f:
                m = decode_handshake(12, body, DecodeContext(False, version, "ECDHE"))
                assert m.named_curve == _ints(f["tls.handshake.server_named_curve"])[0], where
                assert len(m.public) == int(f["tls.handshake.server_point_len"][0]), where
            elif "tls.handshake.p" in f:
                m = decode_handshake(12, body, DecodeContext(False, version, "DHE"))
                assert len(m.dh_p) == int(f["tls.handshake.p_len"][0]), where
                assert len(m.dh_Ys) == int(f["tls.handshake.ys_len"][0]), where
                assert m.dh_g.hex() == f["tls.handshake.g"][0].replace(":", ""), where
            elif "tls.handshake.modulus" in f:
                m = decode_handshake(12, body, DecodeContext(False, version, "RSA"))
                assert len(m.params.rsa_modulus) == int(f["tls.handshake.modulus_len"][0]), where
            else:
                continue
            assert len(m.signature) == int(f["tls.handshake.sig_len"][0]), where
            if version == 0x0303:
                assert m.signature_algorithm == _ints(f["tls.handshake.sig_hash_alg"])[0], where
            else:
                assert m.signature_algorithm is None
        elif msg_type == 16:
            if "tls.handshake.epms" in f:
                version = 0x0301 if "tls.handshake.epms_len" in f else 0x0300
                m = decode_handshake(16, body, DecodeContext(True, version, "RSA"))
                assert m.encrypted_pre_master_secret.hex() == f["tls.handshake.epms"][0].replace(":", ""), where
            elif "tls.handshake.yc" in f:
                m = decode_handshake(16, body, DecodeContext(True, 0x0303, "DHE"))
                assert len(m.dh_Yc) == int(f["tls.handshake.yc_len"][0]), where
            elif "tls.handshake.client_point" in f:
                m = decode_handshake(16, body, DecodeContext(True, 0x0303, "ECDHE"))
                assert len(m.ecdh_Yc) == int(f["tls.handshake.client_point_len"][0]), where
            else:
                continue
        elif msg_type == 13:
            version = 0x0303 if "tls.handshake.sig_hash_alg" in f else 0x0301
            m = decode_handshake(13, body, DecodeContext(False, version))
            assert list(m.certificate_types) == _ints(f.get("tls.handshake.cert_type", [])), where
            assert len(m.certificate_authorities) == len(f.get("tls.handshake.dname_len", [])), where
            assert all(dn.rfc4514 is not None for dn in m.certificate_authorities), where
        elif msg_type == 4 and "tls.handshake.session_ticket_lifetime_hint" in f:
            m = decode_handshake(4, body, SERVER)
            assert m.ticket_lifetime_hint == int(f["tls.handshake.session_ticket_lifetime_hint"][0]), where
        elif msg_type in HANDSHAKE_DECODERS and msg_type not in (15, 20):
            decode_handshake(msg_type, body, SERVER)
        else:
            continue
        checked += 1
    assert checked, f"nothing compared in {rel}"


# ---- the hellos' fast path against the Reader path ------------------------------------------

def _reader_path(t: int, body: bytes, ctx: DecodeContext, offset: int):
    """decode_handshake without its fast path: the generic Reader decoder."""
    r = Reader(body, {1: "ClientHello", 2: "ServerHello"}[t], offset)
    msg = HANDSHAKE_DECODERS[t](r, ctx)
    r.expect_end({1: "ClientHello", 2: "ServerHello"}[t])
    return msg


def _outcome(fn):
    """A decode's result, comparable: exceptions (also those kept in extensions) as their fields."""
    def err(e):
        return None if e is None else (e.offset, e.path, e.reason)
    try:
        m = fn()
    except DecodeError as e:
        return ("error", err(e))
    exts = [(x.type, x.data, x.value, err(x.error)) for x in m.extensions]
    return ("ok", type(m), m.random, m.legacy_session_id, m.legacy_version, m.has_extensions_block,
            getattr(m, "cipher_suites", None), getattr(m, "cipher_suite", None),
            getattr(m, "legacy_compression_methods", None), getattr(m, "legacy_compression_method", None), exts)


def _hellos_of_captures() -> list[tuple[int, bytes]]:
    from pathlib import Path

    from tlsscope.api import read
    out = []
    for cap in sorted(Path(__file__).resolve().parent.parent.glob("captures/*/capture.pcap")):
        for rep in read(cap):
            for e in rep.timeline:
                if e.handshake_type in (1, 2) and e.raw and not e.decrypted:
                    out.append((e.handshake_type, bytes(e.raw[4:])))
    return out


HELLO_BODIES = [split(m) for m in (RFC8448_CH, RFC8448_SH, RFC8448_RESUMED_CH, RFC8448_HRR_CH1, RFC8448_HRR)]


def test_hello_fast_path_equals_reader_path_on_captures():
    bodies = HELLO_BODIES + _hellos_of_captures()
    assert len(bodies) > 40 and {t for t, _ in bodies} == {1, 2}
    for t, body in bodies:
        ctx = CLIENT if t == 1 else SERVER
        fast = decode_handshake(t, body, ctx, 9)
        assert fast == _reader_path(t, body, ctx, 9)
        assert _outcome(lambda: fast) == _outcome(lambda: _reader_path(t, body, ctx, 9))
        assert type(fast.cipher_suites if t == 1 else fast.cipher_suite) is (tuple if t == 1 else int)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, len(HELLO_BODIES) - 1), cut=st.integers(0, 600),
       flips=st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), max_size=4))
def test_hello_fast_path_equals_reader_path_on_damage(which, cut, flips):
    """Damaged hellos (bytes changed, lengths that lie, cut short): the same message or the
    same DecodeError (offset, path, reason) either way."""
    t, body = HELLO_BODIES[which]
    b = bytearray(body[:max(cut, 0)] if cut < len(body) else body)
    for at, v in flips:
        if b:
            b[at % len(b)] = v
    b = bytes(b)
    ctx = CLIENT if t == 1 else SERVER
    assert _outcome(lambda: decode_handshake(t, b, ctx, 5)) == _outcome(lambda: _reader_path(t, b, ctx, 5))

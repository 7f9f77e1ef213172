"""QUIC Initial decoding (tlsscope.quic): RFC known answers, real captures, round trips, damage."""

from __future__ import annotations

import functools
import random

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import need_corpus
from tlsscope.hello import alpn_protocols, server_name
from tlsscope.quic import (
    QUIC_V1, QUIC_V2, CryptoStream, InitialDecoder, InitialKeys, QuicPacket, decode_packet_number,
    looks_like_quic, split_datagram,
)
from tlsscope.tls.messages import ClientHello, DecodeContext, ServerHello, decode_handshake

# --------------------------------------------------------------------------------------------
# RFC test vectors (RFC 9001 Appendix A, RFC 9369 Appendix A). The packets are authenticated by
# AES-GCM, so a single wrong hex digit here makes the decryption tests fail rather than pass.

RFC_DCID = bytes.fromhex("8394c8f03e515708")
RFC_SERVER_SCID = bytes.fromhex("f067a5502a4262b5")

RFC9001_CLIENT_INITIAL = bytes.fromhex("".join("""
c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11
d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399
1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c
8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212
30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5
457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208
4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec
4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3
485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db
059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c
7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8
9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556
be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74
68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a
c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00
f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632
291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964
25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd
14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff
ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198
e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd
c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73
203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f
cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e
fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade
a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047
90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2
162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4
40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0
6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e
8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0
be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400
54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab
760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9
f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4
056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064
7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241
e221af44860018ab0856972e194cd934""".split()))

RFC9001_SERVER_INITIAL = bytes.fromhex(
    "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
    "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
    "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
    "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
    "2158407dd074ee")

RFC9369_SERVER_INITIAL = bytes.fromhex(
    "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698"
    "baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17"
    "f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2"
    "c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8"
    "4bed8521e2e140")

RFC_RETRY = {
    QUIC_V1: bytes.fromhex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba"),
    QUIC_V2: bytes.fromhex("cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6"),
}

# RFC 9001 §5.8 / RFC 9369 §3.3.3: Retry Integrity Tag key and nonce (checked by the A.4 tests).
RETRY_KEY_NONCE = {
    QUIC_V1: ("be0c690b9f66575a1d766b54e368c84e", "461599d35d632bf2239825bb"),
    QUIC_V2: ("8fb4b01b56ac48e260fbcbcead7ccc92", "d86969bc2d7c6d9990efb04a"),
}

CLIENT = DecodeContext(True, None, None, True)
SERVER = DecodeContext(False, None, None, True)


# --------------------------------------------------------------------------------------------
# Building packets the way a sender does (RFC 9001 §5.3, §5.4), to feed the decoder.

TYPE_BITS = {
    QUIC_V1: {"initial": 0, "0rtt": 1, "handshake": 2, "retry": 3},
    QUIC_V2: {"initial": 1, "0rtt": 2, "handshake": 3, "retry": 0},
}


def varint(value: int, size: int | None = None) -> bytes:
    if size is None:
        size = 1 if value < 0x40 else 2 if value < 0x4000 else 4 if value < 0x40000000 else 8
    prefix = {1: 0, 2: 1, 4: 2, 8: 3}[size]
    return (value | prefix << (8 * size - 2)).to_bytes(size, "big")


def protect_initial(version: int, key_dcid: bytes, from_client: bool, pn: int, frames: bytes, *,
                    dcid: bytes | None = None, scid: bytes = b"", token: bytes = b"",
                    pn_len: int = 4, pad_to: int = 0, reserved: int = 0) -> bytes:
    """An Initial packet: AEAD_AES_128_GCM over ``frames`` (zero-padded: PADDING frames), then
    header protection. Keys come from ``key_dcid``; the header carries ``dcid``."""
    keys = InitialKeys(version, key_dcid)
    key, iv, hp = ((keys.client_key, keys.client_iv, keys.client_hp) if from_client
                   else (keys.server_key, keys.server_iv, keys.server_hp))
    dcid = key_dcid if dcid is None else dcid
    payload = frames + bytes(max(0, 4 - pn_len - len(frames)))   # room for the hp sample
    first = 0xC0 | TYPE_BITS[version]["initial"] << 4 | reserved << 2 | (pn_len - 1)
    head = (bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid
            + bytes([len(scid)]) + scid + varint(len(token)) + token)
    if pad_to:
        payload += bytes(max(0, pad_to - (len(head) + 2 + pn_len + len(payload) + 16)))
    length = pn_len + len(payload) + 16
    header = bytearray(head + varint(length, 2) + (pn % (1 << 8 * pn_len)).to_bytes(pn_len, "big"))
    pn_offset = len(header) - pn_len
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, payload, bytes(header))
    sample = sealed[4 - pn_len:4 - pn_len + 16]
    mask = Cipher(algorithms.AES(hp), modes.ECB()).encryptor().update(sample)
    header[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        header[pn_offset + i] ^= mask[1 + i]
    return bytes(header) + sealed


def long_packet(version: int, kind: str, dcid: bytes, scid: bytes, body: bytes) -> bytes:
    """A Handshake or 0-RTT packet: header and Length; the body is opaque here."""
    first = 0xC0 | TYPE_BITS[version][kind] << 4 | 0x03
    return (bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid
            + bytes([len(scid)]) + scid + varint(len(body), 2) + body)


def retry_packet(version: int, odcid: bytes, dcid: bytes, scid: bytes, token: bytes) -> bytes:
    first = 0xC0 | TYPE_BITS[version]["retry"] << 4 | 0x0F    # unused bits: as in the RFC
    body = (bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid
            + bytes([len(scid)]) + scid + token)
    key, nonce = (bytes.fromhex(h) for h in RETRY_KEY_NONCE[version])
    tag = AESGCM(key).encrypt(nonce, b"", bytes([len(odcid)]) + odcid + body)
    return body + tag


def crypto_frame(offset: int, data: bytes) -> bytes:
    return b"\x06" + varint(offset) + varint(len(data)) + data


def hello(stream: bytes, msg_type: int, ctx: DecodeContext):
    """The first handshake message of a reassembled CRYPTO stream, decoded."""
    assert stream[:1] == bytes([msg_type]), stream[:8].hex()
    length = int.from_bytes(stream[1:4], "big")
    assert 4 + length <= len(stream), (length, len(stream))
    return decode_handshake(msg_type, bytes(stream[4:4 + length]), ctx, 0)


def reassemble(packets: list[QuicPacket]) -> bytes:
    stream = CryptoStream()
    out = b"".join(stream.add(off, data) for p in packets for off, data in p.crypto)
    assert stream.pending_bytes == 0 and stream.mismatches == 0
    return out


def assert_tiles(packets: list[QuicPacket], data: bytes) -> None:
    """Packets follow each other from offset 0 and stay inside the datagram."""
    pos = 0
    for p in packets:
        assert p.offset == pos and p.length >= 0 and p.offset + p.length <= len(data), p
        pos += p.length


# --------------------------------------------------------------------------------------------
# Key derivation known answers

def test_initial_keys_v1_rfc9001_a1():
    k = InitialKeys(QUIC_V1, RFC_DCID)
    assert k.client_secret.hex() == "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"
    assert k.client_key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert k.client_iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert k.client_hp.hex() == "9f50449e04a0e810283a1e9933adedd2"
    assert k.server_secret.hex() == "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b"
    assert k.server_key.hex() == "cf3a5331653c364c88f0f379b6067e37"
    assert k.server_iv.hex() == "0ac1493ca1905853b0bba03e"
    assert k.server_hp.hex() == "c206b8d9b9f0f37644430b490eeaa314"


def test_initial_keys_v2_rfc9369_a1():
    k = InitialKeys(QUIC_V2, RFC_DCID)
    assert k.client_secret.hex() == "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b"
    assert k.client_key.hex() == "8b1a0bc121284290a29e0971b5cd045d"
    assert k.client_iv.hex() == "91f73e2351d8fa91660e909f"
    assert k.client_hp.hex() == "45b95e15235d6f45a6b19cbcb0294ba9"
    assert k.server_secret.hex() == "0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1"
    assert k.server_key.hex() == "82db637861d55e1d011f19ea71d5d2a7"
    assert k.server_iv.hex() == "dd13c276499c0249d3310652"
    assert k.server_hp.hex() == "edf6d05c83121201b436e16877593c3a"


def test_initial_keys_other_versions_refused():
    with pytest.raises(ValueError):
        InitialKeys(0xFF00001D, RFC_DCID)        # draft-29: different salt, not read here
    dec = InitialDecoder(0xFF00001D, RFC_DCID)   # the decoder itself does not raise
    assert dec.keys() is None


def test_decode_packet_number_rfc9000_a3():
    assert decode_packet_number(0xA82F30EA, 0x9B32, 16) == 0xA82F9B32
    assert decode_packet_number(-1, 0, 8) == 0
    assert decode_packet_number(250, 3, 8) == 259          # wrapped forward
    assert decode_packet_number(259, 0xFE, 8) == 254       # a late, older packet
    assert decode_packet_number(0x1FF, 0xFF, 8) == 0x1FF   # a repeat


# --------------------------------------------------------------------------------------------
# RFC packets end to end

def test_rfc9001_client_and_server_initial():
    dec = InitialDecoder(QUIC_V1, RFC_DCID)
    [c] = dec.datagram(RFC9001_CLIENT_INITIAL, from_client=True)
    assert (c.kind, c.version, c.dcid, c.scid, c.offset, c.length) == (
        "initial", QUIC_V1, RFC_DCID, b"", 0, 1200)
    assert c.error is None and c.packet_number == 2
    assert c.frames == ["CRYPTO", "PADDING"]
    assert [(off, len(data)) for off, data in c.crypto] == [(0, 241)]
    ch = hello(reassemble([c]), 1, CLIENT)
    assert isinstance(ch, ClientHello)
    assert server_name(ch) == "example.com"
    assert alpn_protocols(ch) == [b"alpn"]

    [s] = dec.datagram(RFC9001_SERVER_INITIAL, from_client=False)
    assert (s.kind, s.dcid, s.scid, s.length) == ("initial", b"", RFC_SERVER_SCID, len(RFC9001_SERVER_INITIAL))
    assert s.error is None and s.packet_number == 1
    assert s.frames == ["ACK", "CRYPTO"]
    assert isinstance(hello(reassemble([s]), 2, SERVER), ServerHello)


def test_rfc9369_server_initial_v2():
    [s] = InitialDecoder(QUIC_V2, RFC_DCID).datagram(RFC9369_SERVER_INITIAL, from_client=False)
    assert (s.kind, s.version, s.error, s.packet_number) == ("initial", QUIC_V2, None, 1)
    assert s.frames == ["ACK", "CRYPTO"]
    # RFC 9369 protects the same ServerHello as RFC 9001 A.3.
    [s1] = InitialDecoder(QUIC_V1, RFC_DCID).datagram(RFC9001_SERVER_INITIAL, from_client=False)
    assert s.crypto == s1.crypto
    # ... and v1 keys do not open the v2 packet.
    wrong = InitialDecoder(QUIC_V1, RFC_DCID)
    wrong._keys[QUIC_V2] = InitialKeys(QUIC_V1, RFC_DCID)
    assert wrong.datagram(RFC9369_SERVER_INITIAL, False)[0].error.startswith("decryption failed")


@pytest.mark.parametrize("version", [QUIC_V1, QUIC_V2])
def test_rfc_retry_a4_switches_keys(version):
    raw = RFC_RETRY[version]
    [p] = split_datagram(raw)
    assert (p.kind, p.version, p.dcid, p.scid, p.token, p.length) == (
        "retry", version, b"", RFC_SERVER_SCID, b"token", len(raw))
    # the RFC tag is what the test's own Retry builder computes
    assert retry_packet(version, RFC_DCID, b"", RFC_SERVER_SCID, b"token") == raw

    dec = InitialDecoder(version, RFC_DCID)
    [r] = dec.datagram(raw, from_client=False)
    assert r.error is None and dec.retried and dec.key_dcid == RFC_SERVER_SCID
    assert dec.keys().client_secret == InitialKeys(version, RFC_SERVER_SCID).client_secret

    # a Retry whose tag does not match the original DCID is not followed
    dec = InitialDecoder(version, RFC_DCID)
    bad = raw[:-1] + bytes([raw[-1] ^ 1])
    [r] = dec.datagram(bad, from_client=False)
    assert "integrity tag" in r.error and not dec.retried and dec.key_dcid == RFC_DCID
    # nor one sent by the client
    assert InitialDecoder(version, RFC_DCID).datagram(raw, True)[0].error == "Retry sent by the client"


# --------------------------------------------------------------------------------------------
# looks_like_quic and split_datagram

def test_looks_like_quic():
    assert looks_like_quic(RFC9001_CLIENT_INITIAL)
    assert looks_like_quic(RFC9369_SERVER_INITIAL)
    assert looks_like_quic(RFC_RETRY[QUIC_V1])
    vn = bytes([0xC0]) + bytes(4) + b"\x04abcd\x04efgh" + QUIC_V1.to_bytes(4, "big")
    assert looks_like_quic(vn)
    assert not looks_like_quic(b"\x40" + bytes(30))                    # short header
    assert not looks_like_quic(RFC9001_CLIENT_INITIAL[:6])             # too short
    assert not looks_like_quic(b"\xc0\xff\x00\x00\x1d" + bytes(30))    # draft-29
    assert not looks_like_quic(b"\xc0\x00\x00\x00\x01\x15" + bytes(60))  # DCID length 21
    assert not looks_like_quic(b"\x80\x00\x00\x00\x01\x08" + bytes(60))  # fixed bit clear
    assert not looks_like_quic(bytes.fromhex("12340100000100000000000003777777"))  # DNS query


@pytest.mark.parametrize("version", [QUIC_V1, QUIC_V2])
def test_coalesced_initial_handshake_1rtt(version):
    cdcid, ccid, scid = b"\x11" * 8, b"C" * 5, b"S" * 7
    initial = protect_initial(version, cdcid, True, 0, crypto_frame(0, b"\x01\x00\x00\x00"),
                              scid=ccid, token=b"tok")
    handshake = long_packet(version, "handshake", cdcid, ccid, bytes(range(40)))
    one_rtt = b"\x41" + scid + bytes(30)
    data = initial + handshake + one_rtt
    packets = split_datagram(data)
    assert [p.kind for p in packets] == ["initial", "handshake", "1rtt"]
    assert [(p.offset, p.length) for p in packets] == [
        (0, len(initial)), (len(initial), len(handshake)), (len(initial) + len(handshake), len(one_rtt))]
    assert packets[0].token == b"tok" and packets[1].scid == ccid
    assert packets[2].dcid == b"" and all(p.error is None for p in packets)

    dec = InitialDecoder(version, cdcid)
    dec.datagram(protect_initial(version, cdcid, False, 0, crypto_frame(0, b"\x02"), dcid=ccid,
                                 scid=scid), from_client=False)
    out = dec.datagram(data, from_client=True)
    assert [p.kind for p in out] == ["initial", "handshake", "1rtt"]
    assert out[0].error is None and out[0].packet_number == 0 and out[0].crypto == [(0, b"\x01\x00\x00\x00")]
    assert out[1].packet_number is None and out[1].error is None     # Handshake: header only
    assert out[2].dcid == scid                                       # learned from the server


def test_split_datagram_stops_at_zero_padding():
    # some stacks pad the datagram to 1200 bytes after the last packet (illustrated-quic does)
    initial = protect_initial(QUIC_V1, RFC_DCID, True, 0, crypto_frame(0, b"x"))
    packets = split_datagram(initial + bytes(900))
    assert [(p.kind, p.length, p.error) for p in packets] == [("initial", len(initial), None)]
    # junk that is not zero is reported, not skipped
    packets = split_datagram(initial + b"\x00\x01")
    assert packets[-1].kind == "1rtt" and "fixed bit" in packets[-1].error


def test_version_negotiation():
    data = (bytes([0xC5]) + bytes(4) + b"\x04abcd\x05efghi" + QUIC_V1.to_bytes(4, "big")
            + QUIC_V2.to_bytes(4, "big"))
    [p] = InitialDecoder(QUIC_V1, b"efghi").datagram(data, False)
    assert (p.kind, p.version, p.dcid, p.scid, p.length, p.error) == (
        "version_negotiation", 0, b"abcd", b"efghi", len(data), None)
    assert split_datagram(data[:-1])[0].error is not None      # list not a multiple of 4


@pytest.mark.parametrize("data, message", [
    (b"\xc0\x00\x00\x00\x01", "truncated long header"),
    (b"\xc0\xff\x00\x00\x1d\x00\x00\x00\x00\x00", "unsupported QUIC version 0xff00001d"),
    (b"\xc0\x00\x00\x00\x01\x15" + bytes(40), "DCID length 21"),
    (b"\xc0\x00\x00\x00\x01\x08" + bytes(5), "truncated DCID"),
    (b"\xc0\x00\x00\x00\x01\x00\x15" + bytes(40), "SCID length 21"),
    (b"\xc0\x00\x00\x00\x01\x00\x00\x00\x44\xd0" + bytes(30), "past the end"),   # Length 1232
    (b"\xc0\x00\x00\x00\x01\x00\x00\x00\x7f", "truncated varint"),
    (b"\xc0\x00\x00\x00\x01\x00\x00\x05ab", "token length past"),
    (b"\xc0\x00\x00\x00\x01\x00\x00\x00\x00" + bytes(30), "Length 0"),
    (b"\xf0\x00\x00\x00\x01\x00\x00" + bytes(15), "Retry shorter than"),
])
def test_split_datagram_header_errors(data, message):
    packets = split_datagram(data)
    assert message in packets[-1].error
    assert all(p.error is None for p in packets[:-1])


def test_bad_header_ends_the_walk():
    good = protect_initial(QUIC_V1, RFC_DCID, True, 0, crypto_frame(0, b"x"))
    lying = bytearray(long_packet(QUIC_V1, "handshake", RFC_DCID, b"", bytes(50)))
    lying[-52:-50] = varint(500, 2)       # Length claims more than there is
    packets = split_datagram(good + bytes(lying) + good)
    assert [p.kind for p in packets] == ["initial", "handshake"]
    assert packets[0].error is None and "past the end" in packets[1].error


# --------------------------------------------------------------------------------------------
# Decoder round trips

@pytest.mark.parametrize("version", [QUIC_V1, QUIC_V2])
@pytest.mark.parametrize("pn_len", [1, 2, 3, 4])
def test_initial_round_trip(version, pn_len):
    ch = b"\x01\x00\x00\x05hello"
    pkt = protect_initial(version, RFC_DCID, True, 7, crypto_frame(0, ch), scid=b"cli",
                          token=b"T" * 30, pn_len=pn_len, pad_to=1200)
    assert len(pkt) == 1200
    [p] = InitialDecoder(version, RFC_DCID).datagram(pkt, from_client=True)
    assert (p.kind, p.version, p.error, p.packet_number, p.token) == ("initial", version, None, 7, b"T" * 30)
    assert p.frames == ["CRYPTO", "PADDING"] and p.crypto == [(0, ch)]
    # the server's keys are not the client's
    [q] = InitialDecoder(version, RFC_DCID).datagram(pkt, from_client=False)
    assert q.error.startswith("decryption failed") and q.packet_number is None and not q.crypto


def test_wrong_dcid_fails_and_other_packets_still_read():
    other = protect_initial(QUIC_V1, b"\x22" * 8, False, 0, crypto_frame(0, b"a"), dcid=b"")
    good = protect_initial(QUIC_V1, RFC_DCID, False, 1, crypto_frame(1, b"b"), dcid=b"")
    dec = InitialDecoder(QUIC_V1, RFC_DCID)
    out = dec.datagram(other + good, from_client=False)
    assert out[0].error.startswith("decryption failed") and out[0].packet_number is None
    assert out[1].error is None and out[1].crypto == [(1, b"b")]


def test_reserved_bits_reported_but_frames_read():
    pkt = protect_initial(QUIC_V1, RFC_DCID, True, 4, crypto_frame(0, b"x"), reserved=0b10)
    [p] = InitialDecoder(QUIC_V1, RFC_DCID).datagram(pkt, True)
    assert p.error == "reserved header bits set"
    assert p.packet_number == 4 and p.crypto == [(0, b"x")]


def test_truncated_packet_numbers_reconstructed():
    dec = InitialDecoder(QUIC_V1, RFC_DCID)
    for pn in range(0, 600, 3):                    # 1-byte packet numbers wrap every 256
        [p] = dec.datagram(protect_initial(QUIC_V1, RFC_DCID, True, pn, b"\x01", pn_len=1), True)
        assert p.error is None and p.packet_number == pn
    assert dec.largest_pn == {True: 597, False: -1}
    # a late packet from before the wrap is placed behind the largest, not ahead of it
    [p] = dec.datagram(protect_initial(QUIC_V1, RFC_DCID, True, 590, b"\x01", pn_len=1), True)
    assert p.packet_number == 590 and dec.largest_pn[True] == 597
    # a two-byte encoding of a number far ahead also works
    [p] = dec.datagram(protect_initial(QUIC_V1, RFC_DCID, True, 5000, b"\x01", pn_len=2), True)
    assert p.packet_number == 5000


def test_retry_built_switches_keys():
    odcid, new = b"\x01" * 8, b"\x02" * 12
    dec = InitialDecoder(QUIC_V1, odcid)
    [c] = dec.datagram(protect_initial(QUIC_V1, odcid, True, 0, crypto_frame(0, b"CH1"), scid=b"cc"), True)
    assert c.error is None
    [r] = dec.datagram(retry_packet(QUIC_V1, odcid, b"cc", new, b"tokentoken"), False)
    assert (r.kind, r.token, r.error) == ("retry", b"tokentoken", None) and dec.key_dcid == new
    # the client starts again with the Retry's SCID as DCID; its packet numbers go on
    [c] = dec.datagram(protect_initial(QUIC_V1, new, True, 1, crypto_frame(0, b"CH2"),
                                       scid=b"cc", token=b"tokentoken"), True)
    assert (c.error, c.packet_number, c.token, c.crypto) == (None, 1, b"tokentoken", [(0, b"CH2")])
    [s] = dec.datagram(protect_initial(QUIC_V1, new, False, 0, crypto_frame(0, b"SH"), dcid=b"cc"), False)
    assert s.error is None and s.crypto == [(0, b"SH")]
    # packets still under the old keys no longer open
    [old] = dec.datagram(protect_initial(QUIC_V1, odcid, True, 2, b"\x01"), True)
    assert old.error.startswith("decryption failed")
    # a second valid Retry (answer to a retransmitted first Initial) is ignored without fuss
    [r2] = dec.datagram(retry_packet(QUIC_V1, odcid, b"cc", b"\x03" * 8, b"t2"), False)
    assert r2.error is None and dec.key_dcid == new


def test_missed_retry_is_recovered_from_the_client_dcid():
    odcid, new = b"\x01" * 8, b"\x09" * 8
    dec = InitialDecoder(QUIC_V2, odcid)
    [c] = dec.datagram(protect_initial(QUIC_V2, new, True, 3, crypto_frame(0, b"CH")), True)
    assert c.error is None and c.crypto == [(0, b"CH")] and dec.key_dcid == new
    [s] = dec.datagram(protect_initial(QUIC_V2, new, False, 0, b"\x01", dcid=b""), False)
    assert s.error is None and s.frames == ["PING"]


def test_compatible_version_negotiation_v1_to_v2():
    # RFC 9368: the client speaks v1, the server answers in v2 with keys from the same DCID
    dec = InitialDecoder(QUIC_V1, RFC_DCID)
    assert dec.datagram(RFC9001_CLIENT_INITIAL, True)[0].error is None
    [s] = dec.datagram(RFC9369_SERVER_INITIAL, False)
    assert s.version == QUIC_V2 and s.error is None and s.frames == ["ACK", "CRYPTO"]


def test_frames_in_an_initial():
    ack = b"\x02" + varint(40) + varint(3) + varint(2) + varint(5) + varint(1) + varint(2) + varint(0) + varint(1)
    ack_ecn = b"\x03" + varint(9) + varint(0) + varint(0) + varint(0) + varint(1) + varint(2) + varint(300)
    close = b"\x1c" + varint(0x0A) + varint(0x06) + varint(11) + b"bad \xff hello"
    frames = ack + b"\x00\x00\x00" + b"\x01" + ack_ecn + crypto_frame(5, b"abc") + b"\x00" + close
    [p] = InitialDecoder(QUIC_V1, RFC_DCID).datagram(protect_initial(QUIC_V1, RFC_DCID, True, 0, frames), True)
    assert p.error is None
    assert p.frames == ["ACK", "PADDING", "PING", "ACK_ECN", "CRYPTO", "PADDING", "CONNECTION_CLOSE"]
    assert p.crypto == [(5, b"abc")]
    assert p.close == (0x0A, 0x06, "bad \ufffd hello")

    app_close = b"\x1d" + varint(0x101) + varint(3) + b"bye"
    [p] = InitialDecoder(QUIC_V1, RFC_DCID).datagram(protect_initial(QUIC_V1, RFC_DCID, False, 0, app_close), False)
    assert p.error is None and p.close == (0x101, None, "bye") and p.frames == ["CONNECTION_CLOSE"]


@pytest.mark.parametrize("frames, message", [
    (crypto_frame(0, b"ok") + b"\x08\x00\x00", "frame type 0x8 is not allowed"),    # STREAM
    (b"\x01" + b"\x40\x08", "frame type 0x8 is not allowed"),     # non-minimal varint type
    (b"\x06\x00\x40\x50abc", "CRYPTO length past the end"),
    (b"\x06\xff\xff\xff\xff\xff\xff\xff\xff\x01a", "beyond 2**62"),
    (b"\x02\x00\x00\x3f\x00", "ACK range count"),
    (b"\x02\x00\x00", "truncated varint"),
    (b"\x1c\x01\x00\x30abc", "reason past the end"),
    (b"", "empty payload"),
])
def test_bad_frames(frames, message):
    pkt = protect_initial(QUIC_V1, RFC_DCID, True, 0, frames, pn_len=4)
    [p] = InitialDecoder(QUIC_V1, RFC_DCID).datagram(pkt, True)
    assert message in p.error
    assert p.packet_number == 0        # it decrypted: the frames are what is wrong
    if frames.startswith(b"\x06\x00\x02"):
        assert p.crypto == [(0, b"ok")] and p.frames == ["CRYPTO"]   # frames before are kept


# --------------------------------------------------------------------------------------------
# CryptoStream

def test_crypto_stream_out_of_order_and_overlap():
    s = CryptoStream()
    assert s.add(5, b"fghij") == b""
    assert s.pending_bytes == 5
    assert s.add(3, b"de") == b""
    assert s.add(0, b"abcd") == b"abcdefghij"      # overlap with "de" agrees
    assert (s.delivered, s.pending_bytes, s.mismatches) == (10, 0, 0)
    assert s.add(6, b"ghijXY") == b"XY"             # retransmission plus two new bytes
    assert s.add(0, b"abc") == b""                  # pure retransmission
    assert s.add(0, b"abZ") == b"" and s.mismatches == 1
    assert s.add(20, b"uvw") == b"" and s.add(18, b"ssQv") == b""
    assert s.mismatches == 2                        # 'Q' vs 'u'; first copy wins
    assert s.add(12, b"mnopqr") == b"mnopqrssuvw"


def test_crypto_stream_bounds():
    s = CryptoStream(max_pending=100)
    assert s.add(101, b"x") == b"" and (s.dropped, s.overflow) == (1, True)   # reaches past 100
    assert s.add(99, b"x") == b"" and s.pending_bytes == 1
    assert s.add((1 << 62) - 1, b"x") == b"" and s.dropped == 2            # ends at 2**62
    assert s.add(-1, b"x") == b"" and s.dropped == 3
    big = bytes(range(256)) * 10                                # contiguous data never waits
    # the pending 'x' at 99 was there first: it wins, and the differing byte is counted
    assert s.add(0, big) == big[:99] + b"x" + big[100:]
    assert s.pending_bytes == 0 and s.mismatches == 1


# --------------------------------------------------------------------------------------------
# Real captures from the shared corpus

def udp_flows(path) -> list[list[tuple[bool, bytes]]]:
    """UDP flows of a capture, each as [(from_client, payload)] from the flow's first QUIC
    Initial on: the client is whoever sent it. Datagrams before it are left out."""
    from scapy.all import IP, UDP, IPv6, rdpcap     # test edge only: the core never sees scapy
    flows: dict[tuple, list] = {}
    for pkt in rdpcap(str(path)):
        if UDP not in pkt:
            continue
        ip = pkt[IP] if IP in pkt else pkt[IPv6] if IPv6 in pkt else None
        if ip is None:
            continue
        src, dst = (ip.src, pkt[UDP].sport), (ip.dst, pkt[UDP].dport)
        flows.setdefault(tuple(sorted((src, dst))), []).append((src, bytes(pkt[UDP].payload)))
    out = []
    for datagrams in flows.values():
        client = None
        flow = []
        for src, payload in datagrams:
            if client is None:
                first = split_datagram(payload)[:1] if looks_like_quic(payload) else []
                if not first or first[0].kind != "initial" or first[0].error:
                    continue
                client = src
            flow.append((src == client, payload))
        if flow:
            out.append(flow)
    return out


class Connection:
    """One flow through an InitialDecoder: packets per direction and the CRYPTO streams."""

    def __init__(self, flow):
        self.flow = flow
        first = split_datagram(flow[0][1])[0]
        self.decoder = InitialDecoder(first.version, first.dcid)
        self.datagrams: list[tuple[bool, list[QuicPacket]]] = []
        self.streams = {True: CryptoStream(), False: CryptoStream()}
        self.data = {True: bytearray(), False: bytearray()}
        for from_client, payload in flow:
            packets = self.decoder.datagram(payload, from_client)
            assert_tiles(packets, payload)
            self.datagrams.append((from_client, packets))
            for p in packets:
                for off, data in p.crypto:
                    self.data[from_client] += self.streams[from_client].add(off, data)

    def packets(self, from_client=None, kind=None):
        return [p for fc, ps in self.datagrams for p in ps
                if (from_client is None or fc == from_client) and (kind is None or p.kind == kind)]


@functools.lru_cache(maxsize=None)
def corpus_connections(rel: str) -> tuple[Connection, ...]:
    return tuple(Connection(flow) for flow in udp_flows(need_corpus() / rel))


def test_capture_illustrated_quic():
    [conn] = corpus_connections("syncsynchalt_illustrated-quic/captures/capture.pcap")
    assert [(fc, [p.kind for p in ps]) for fc, ps in conn.datagrams] == [
        (True, ["initial"]), (False, ["initial", "handshake"]), (False, ["handshake"]),
        (True, ["initial", "handshake"]), (True, ["handshake", "1rtt"]),
        (False, ["handshake", "1rtt"]), (True, ["1rtt"]), (False, ["1rtt"])]
    initials = conn.packets(kind="initial")
    assert [(p.error, p.packet_number) for p in initials] == [(None, 0), (None, 0), (None, 1)]
    assert conn.decoder.original_dcid == bytes(range(8))
    # the 1-RTT DCIDs ("s_cid" towards the server, "c_cid" towards the client) come from the
    # long headers, since a short header does not carry its DCID length
    assert {p.dcid for p in conn.packets(True, "1rtt")} == {b"s_cid"}
    assert {p.dcid for p in conn.packets(False, "1rtt")} == {b"c_cid"}

    ch = hello(conn.data[True], 1, CLIENT)
    assert server_name(ch) == "example.ulfheim.net"
    assert alpn_protocols(ch) == [b"ping/1.0"]
    sh = hello(conn.data[False], 2, SERVER)
    assert isinstance(sh, ServerHello) and sh.cipher_suite == 0x1301


def test_capture_ja4_quic_tls_handshake():
    [conn] = corpus_connections("FoxIO-LLC_ja4/pcap/quic-tls-handshake.pcapng")
    [p] = conn.packets(True, "initial")
    assert p.error is None and p.packet_number == 1
    # Chrome scatters the ClientHello over 11 CRYPTO frames, out of order, among PING/PADDING
    offsets = [off for off, _ in p.crypto]
    assert len(offsets) == 11 and offsets != sorted(offsets)
    assert {"PING", "PADDING", "CRYPTO"} == set(p.frames)
    ch = hello(conn.data[True], 1, CLIENT)
    assert server_name(ch) == "www.google.com" and alpn_protocols(ch) == [b"h3"]
    assert len(conn.data[True]) == 4 + int.from_bytes(conn.data[True][1:4], "big")


def test_capture_ja4_several_tls_frames():
    [conn] = corpus_connections("FoxIO-LLC_ja4/pcap/quic-with-several-tls-frames.pcapng")
    [p] = conn.packets(True, "initial")
    assert p.error is None and [(o, len(d)) for o, d in p.crypto] == [(0, 36), (36, 133), (169, 126)]
    ch = hello(conn.data[True], 1, CLIENT)
    assert server_name(ch) == "ogs.google.com" and alpn_protocols(ch) == [b"h3"]


# More QUIC captures of the corpus: every Initial opens, both hellos reassemble.
SWEEP = [
    ("OISF_suricata-verify/tests/quic-retry/input.pcap", "www.gravatar.com", QUIC_V1),
    ("OISF_suricata-verify/tests/quic-retry-multiple/input.pcap", "public-api.wordpress.com", QUIC_V1),
    ("OISF_suricata-verify/tests/quic-v2/input.pcap", None, QUIC_V2),
    ("OISF_suricata-verify/tests/quic-frag-unordered/input.pcap", "mastodon.social", QUIC_V1),
    ("OISF_suricata-verify/tests/quic-frag-wait/input.pcap", "www.google.com", QUIC_V1),
    ("OISF_suricata-verify/tests/quic-initial-not-first/input.pcap", "scontent-ams4-1.xx.fbcdn.net", QUIC_V1),
    ("OISF_suricata-verify/tests/quic-ietf/input.pcap", "msquic.net", QUIC_V1),
    ("OISF_suricata-verify/tests/quic-ack3/input.pcap", "tether.edge.apple", QUIC_V1),
    ("FoxIO-LLC_ja4/pcap/chrome-cloudflare-quic-with-secrets.pcapng", "cloudflare-quic.com", QUIC_V1),
]


@pytest.mark.parametrize("rel, sni, version", SWEEP, ids=[s[0].split("/")[-2] for s in SWEEP])
def test_capture_sweep(rel, sni, version):
    [conn] = corpus_connections(rel)
    assert conn.decoder.version == version
    initials = conn.packets(kind="initial")
    assert initials and all(p.error is None for p in initials), [p.error for p in initials]
    assert all(p.error is None for p in conn.packets())
    ch = hello(conn.data[True], 1, CLIENT)
    assert server_name(ch) == sni
    assert isinstance(hello(conn.data[False], 2, SERVER), ServerHello)
    for stream in conn.streams.values():
        assert stream.pending_bytes == 0 and stream.mismatches == 0 and stream.dropped == 0
    if "retry" in rel:
        assert conn.decoder.retried and len(conn.packets(False, "retry")) == 2


def test_capture_arkime_synthetic_fake_initials():
    # two "Initials" in this synthetic capture carry all-zero payloads: not encrypted at all
    conns = corpus_connections("arkime_arkime/tests/pcap/arkime_synthetic.pcap")
    errors = sorted((p.error or "") for c in conns for p in c.packets(kind="initial"))
    assert len(errors) == 4 and errors[:2] == ["", ""]
    assert all(e.startswith("decryption failed") for e in errors[2:])


# --------------------------------------------------------------------------------------------
# Damage: nothing raises, memory stays bounded

def check_never_raises(data: bytes, dcid: bytes = RFC_DCID, version: int = QUIC_V1) -> list[QuicPacket]:
    packets = split_datagram(data)
    assert_tiles(packets, data)
    dec = InitialDecoder(version, dcid)
    for from_client in (True, False, True):
        out = dec.datagram(data, from_client)
        assert_tiles(out, data)
        assert not any(p.error and p.error.startswith("internal error") for p in out), out
    looks_like_quic(data)
    return out


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data):
    check_never_raises(data)


# Plausible long headers over random tails reach deeper than random bytes do.
long_headers = st.builds(
    lambda first, version, dcid, scid, token_len, length, tail: (
        bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid + bytes([len(scid)])
        + scid + token_len + length + tail),
    st.integers(0x80, 0xFF), st.sampled_from([QUIC_V1, QUIC_V2, 0, 0xFF00001D]),
    st.binary(max_size=22), st.binary(max_size=22),
    st.sampled_from([b"", b"\x00", b"\x05", b"\x40\x10", b"\xff"]),
    st.sampled_from([b"", b"\x00", b"\x14", b"\x40\x30", b"\x44\xd0", b"\xc0"]),
    st.binary(max_size=200))


@settings(max_examples=200, deadline=None)
@given(long_headers, st.integers(0, 3))
def test_random_long_headers_never_raise(data, repeat):
    check_never_raises(data * (repeat + 1))


def damage(data: bytes, rnd: random.Random, how: str) -> tuple[bytes, int]:
    """(damaged copy, first damaged position)."""
    if how == "truncate":
        cut = rnd.randrange(len(data))
        return data[:cut], cut
    if how == "flip":
        pos = rnd.randrange(len(data))
        return data[:pos] + bytes([data[pos] ^ (1 << rnd.randrange(8))]) + data[pos + 1:], pos
    pos = rnd.randrange(len(data))                      # insert or delete a few bytes
    if how == "insert":
        return data[:pos] + rnd.randbytes(rnd.randrange(1, 5)) + data[pos:], pos
    return data[:pos] + data[pos + rnd.randrange(1, 5):], pos


RFC_SEEDS = [(RFC9001_CLIENT_INITIAL, True, QUIC_V1), (RFC9001_SERVER_INITIAL, False, QUIC_V1),
             (RFC9369_SERVER_INITIAL, False, QUIC_V2), (RFC_RETRY[QUIC_V1], False, QUIC_V1),
             (RFC_RETRY[QUIC_V2], False, QUIC_V2),
             (RFC9001_CLIENT_INITIAL[:300] + RFC9001_SERVER_INITIAL, True, QUIC_V1)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(RFC_SEEDS), st.sampled_from(["truncate", "flip", "insert", "delete"]),
       st.randoms(use_true_random=False))
def test_damaged_rfc_packets(seed, how, rnd):
    data, from_client, version = seed
    damaged, pos = damage(data, rnd, how)
    dec = InitialDecoder(version, RFC_DCID)
    out = dec.datagram(damaged, from_client)
    assert_tiles(out, damaged)
    assert not any(p.error and p.error.startswith("internal error") for p in out)
    # AES-GCM covers header and payload: a damaged Initial never comes out as a good one
    if data is RFC9001_CLIENT_INITIAL or data is RFC9001_SERVER_INITIAL:
        assert not any(p.kind == "initial" and p.error is None for p in out), (how, pos)


@pytest.fixture(scope="module")
def capture_datagrams():
    """(payload, from_client, version, original DCID) of the corpus QUIC captures."""
    out = []
    for rel in ["syncsynchalt_illustrated-quic/captures/capture.pcap",
                "FoxIO-LLC_ja4/pcap/quic-tls-handshake.pcapng",
                "FoxIO-LLC_ja4/pcap/quic-with-several-tls-frames.pcapng",
                "OISF_suricata-verify/tests/quic-retry/input.pcap",
                "OISF_suricata-verify/tests/quic-v2/input.pcap"]:
        for conn in corpus_connections(rel):
            for from_client, payload in conn.flow:
                out.append((payload, from_client, conn.decoder.version, conn.decoder.original_dcid))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), how=st.sampled_from(["truncate", "flip", "insert", "delete"]),
       rnd=st.randoms(use_true_random=False))
def test_damaged_capture_datagrams(capture_datagrams, data, how, rnd):
    payload, from_client, version, dcid = data.draw(st.sampled_from(capture_datagrams))
    damaged, pos = damage(payload, rnd, how)
    dec = InitialDecoder(version, dcid)
    before = dec.datagram(payload, from_client)
    out = InitialDecoder(version, dcid).datagram(damaged, from_client)
    assert_tiles(out, damaged)
    assert not any(p.error and p.error.startswith("internal error") for p in out)
    # an Initial that still opens lies wholly before the damage, and reads the same as before
    for p in out:
        if p.kind == "initial" and p.error is None:
            assert p.offset + p.length <= pos
            assert any(q.offset == p.offset and q.crypto == p.crypto for q in before)


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=2000), st.integers(16, 600), st.data())
def test_crypto_stream_reassembles_any_order(truth, max_pending, data):
    """Frames cut from one stream, fed in any order with repeats: what comes out is always a
    prefix of the stream, pending memory never exceeds max_pending, nothing mismatches, and a
    final full retransmission completes it."""
    s = CryptoStream(max_pending=max_pending)
    cuts = data.draw(st.lists(st.tuples(st.integers(0, len(truth) - 1), st.integers(1, 300)), max_size=30))
    out = bytearray()
    for start, size in cuts:
        out += s.add(start, truth[start:start + size])
        assert s.pending_bytes <= max_pending
        assert truth.startswith(bytes(out)) and s.delivered == len(out)
    out += s.add(0, truth)
    assert bytes(out) == truth and s.pending_bytes == 0 and s.mismatches == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.integers(-5, 5000), st.integers((1 << 62) - 100, 1 << 63)),
                          st.binary(max_size=400)), max_size=40),
       st.integers(1, 1024))
def test_crypto_stream_random_frames_bounded(frames, max_pending):
    s = CryptoStream(max_pending=max_pending)
    total = 0
    for offset, chunk in frames:
        total += len(s.add(offset, chunk))
        assert s.pending_bytes <= max_pending
        assert s.delivered == total
        # pending segments: sorted, non-overlapping, all beyond the contiguous point
        segs = [(o, len(s._segments[o])) for o in s._starts]
        assert sum(n for _, n in segs) == s.pending_bytes
        assert all(o > s.delivered for o, _ in segs)
        assert all(a + n <= b for (a, n), (b, _) in zip(segs, segs[1:]))
        assert len(s._history) <= max_pending

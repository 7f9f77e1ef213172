"""QUIC Initial decoding (tlsscope.quic): RFC known answers, real captures, round trips, damage."""

from __future__ import annotations

import functools
import random

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import need_corpus, need_tool
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


# ============================================================================================
# Handshake, 0-RTT and 1-RTT packets with secrets from a key log (InitialDecoder.install)

from cryptography.hazmat.primitives.ciphers.aead import AESCCM, ChaCha20Poly1305  # noqa: E402

from tlsscope.decrypt.tls13 import hkdf_expand_label  # noqa: E402
from tlsscope.quic import MAX_KNOWN_CIDS  # noqa: E402
from tlsscope.tls.messages import (  # noqa: E402
    Certificate, CompressedCertificate, EncryptedExtensions, Finished,
)

SUITE_PARAMS = {0x1301: ("sha256", 16), 0x1302: ("sha384", 32), 0x1303: ("sha256", 32), 0x1304: ("sha256", 16)}
LABEL = {QUIC_V1: "quic", QUIC_V2: "quicv2"}
SERVER13 = DecodeContext(False, 0x0304)
CLIENT13 = DecodeContext(True, 0x0304)

# RFC 9001 Appendix A.5 (and RFC 9369 Appendix A.5 for v2): one secret, a 1-RTT PING packet.
A5_SECRET = bytes.fromhex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
A5_PN = 654360564
A5_PACKET = {QUIC_V1: bytes.fromhex("4cfe4189655e5cd55c41f69080575d7999c25a5bfb"),
             QUIC_V2: bytes.fromhex("5558b1c60ae7b6b932bc27d786f4bc2bb20f2162ba")}
A5_DERIVED = {   # key, iv, hp, ku
    QUIC_V1: ("c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8", "e0459b3474bdd0e44a41c144",
              "25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4",
              "1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9"),
    QUIC_V2: ("3bfcddd72bcf02541d7fa0dd1f5f9eeea817e09a6963a0e6c7df0f9a1bab90f2", "a6b5bc6ab7dafce30ffff5dd",
              "d659760d2ba434a226fd37b35c69e2da8211d10c4f12538787d65645d5d1b8e2",
              "c69374c49e3d2a9466fa689e49d476db5d0dfbc87d32ceeaa6343fd0ae4c7d88"),
}


def traffic_keys(suite: int, secret: bytes, version: int = QUIC_V1, generation: int = 0):
    """(key, iv, hp) of a traffic secret, ``generation`` key updates on (RFC 9001 §5.1, §6)."""
    hash_name, key_len = SUITE_PARAMS[suite]
    label = LABEL[version]
    hp = hkdf_expand_label(hash_name, secret, f"{label} hp", b"", key_len)
    for _ in range(generation):
        secret = hkdf_expand_label(hash_name, secret, f"{label} ku", b"", len(secret))
    return (hkdf_expand_label(hash_name, secret, f"{label} key", b"", key_len),
            hkdf_expand_label(hash_name, secret, f"{label} iv", b"", 12), hp)


def hp_mask(suite: int, hp: bytes, sample: bytes) -> bytes:
    if suite == 0x1303:     # RFC 9001 §5.4.4: the sample is ChaCha20's counter and nonce
        return Cipher(algorithms.ChaCha20(hp, sample), mode=None).encryptor().update(bytes(5))
    return Cipher(algorithms.AES(hp), modes.ECB()).encryptor().update(sample)[:5]


def seal(suite: int, keys, header: bytearray, pn_len: int, pn: int, payload: bytes, low_bits: int) -> bytes:
    key, iv, hp = keys
    aead = (ChaCha20Poly1305(key) if suite == 0x1303 else AESCCM(key, 16) if suite == 0x1304 else AESGCM(key))
    sealed = aead.encrypt((int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big"), payload, bytes(header))
    mask = hp_mask(suite, hp, sealed[4 - pn_len:20 - pn_len])
    pn_offset = len(header) - pn_len
    header[0] ^= mask[0] & low_bits
    for i in range(pn_len):
        header[pn_offset + i] ^= mask[1 + i]
    return bytes(header) + sealed


def protect_long(version: int, kind: str, suite: int, secret: bytes, pn: int, frames: bytes, *,
                 dcid: bytes, scid: bytes, pn_len: int = 2, reserved: int = 0) -> bytes:
    """A Handshake or 0-RTT packet sealed with keys from a traffic secret."""
    payload = frames + bytes(max(0, 4 - pn_len - len(frames)))
    first = 0xC0 | TYPE_BITS[version][kind] << 4 | reserved << 2 | (pn_len - 1)
    head = (bytes([first]) + version.to_bytes(4, "big") + bytes([len(dcid)]) + dcid
            + bytes([len(scid)]) + scid + varint(pn_len + len(payload) + 16, 2))
    header = bytearray(head + (pn % (1 << 8 * pn_len)).to_bytes(pn_len, "big"))
    return seal(suite, traffic_keys(suite, secret, version), header, pn_len, pn, payload, 0x0F)


def protect_short(suite: int, secret: bytes, pn: int, frames: bytes, *, dcid: bytes, version: int = QUIC_V1,
                  generation: int = 0, phase: int | None = None, pn_len: int = 2, reserved: int = 0,
                  spin: int = 0, keys=None) -> bytes:
    """A 1-RTT packet; ``generation`` key updates after the secret (Key Phase = its parity)."""
    payload = frames + bytes(max(0, 4 - pn_len - len(frames)))
    phase = generation & 1 if phase is None else phase
    first = 0x40 | spin << 5 | reserved << 3 | phase << 2 | (pn_len - 1)
    header = bytearray(bytes([first]) + dcid + (pn % (1 << 8 * pn_len)).to_bytes(pn_len, "big"))
    keys = keys or traffic_keys(suite, secret, version, generation)
    return seal(suite, keys, header, pn_len, pn, payload, 0x1F)


def stream_frame(stream_id: int, data: bytes, offset: int | None = None, fin: bool = False,
                 with_length: bool = True) -> bytes:
    ftype = 0x08 | (0x04 if offset is not None else 0) | (0x02 if with_length else 0) | int(fin)
    return (bytes([ftype]) + varint(stream_id) + (varint(offset) if offset is not None else b"")
            + (varint(len(data)) if with_length else b"") + data)


def new_cid_frame(seq: int, cid: bytes, retire: int = 0) -> bytes:
    return b"\x18" + varint(seq) + varint(retire) + bytes([len(cid)]) + cid + bytes(range(16))


def handshake_messages(stream: bytes) -> list[tuple[int, bytes]]:
    """(type, body) of every complete handshake message of a reassembled CRYPTO stream."""
    out, pos = [], 0
    while pos + 4 <= len(stream):
        length = int.from_bytes(stream[pos + 1:pos + 4], "big")
        if pos + 4 + length > len(stream):
            break
        out.append((stream[pos], bytes(stream[pos + 4:pos + 4 + length])))
        pos += 4 + length
    assert pos == len(stream), "trailing partial handshake message"
    return out


def no_internal_error(packets) -> bool:
    return not any(p.error and p.error.startswith("internal error") for p in packets)


# --------------------------------------------------------------------------------------------
# Known answers: RFC 9001 A.5 (v1) and RFC 9369 A.5 (v2), ChaCha20-Poly1305 short header

@pytest.mark.parametrize("version", [QUIC_V1, QUIC_V2])
def test_rfc_a5_chacha20_short_header(version):
    key, iv, hp, ku = (bytes.fromhex(h) for h in A5_DERIVED[version])
    # the test's own derivation agrees with the RFC, so the packets it builds below can be trusted
    assert traffic_keys(0x1303, A5_SECRET, version) == (key, iv, hp)
    assert hkdf_expand_label("sha256", A5_SECRET, f"{LABEL[version]} ku", b"", 32) == ku
    assert protect_short(0x1303, A5_SECRET, A5_PN, b"\x01", dcid=b"", pn_len=3, version=version) == A5_PACKET[version]

    dec = InitialDecoder(version, RFC_DCID)
    assert dec.install("1rtt", False, 0x1303, A5_SECRET)
    dec.largest_pn_space["application"][False] = A5_PN - 1   # the RFC's pn needs a close largest
    [p] = dec.datagram(A5_PACKET[version], from_client=False)
    assert (p.kind, p.level, p.decrypted, p.error) == ("1rtt", "1rtt", True, None)
    assert (p.packet_number, p.dcid, p.key_phase, p.frames, p.length) == (A5_PN, b"", 0, ["PING"], 21)
    assert dec.largest_pn_space["application"] == {True: -1, False: A5_PN}

    # the next key generation is the one of the RFC's "ku" secret (hp key unchanged)
    updated = traffic_keys(0x1303, ku, version)[:2] + (hp,)
    nxt = protect_short(0x1303, b"", A5_PN + 1, b"\x01", dcid=b"", pn_len=3, phase=1, keys=updated)
    [q] = dec.datagram(nxt, from_client=False)
    assert (q.error, q.packet_number, q.key_phase, q.frames) == (None, A5_PN + 1, 1, ["PING"])

    # the other version's labels do not open it; nor do the client's keys
    other = InitialDecoder(QUIC_V2 if version == QUIC_V1 else QUIC_V1, RFC_DCID)
    other.install("1rtt", False, 0x1303, A5_SECRET)
    other.largest_pn_space["application"][False] = A5_PN - 1
    [r] = other.datagram(A5_PACKET[version], from_client=False)
    assert r.error.startswith("decryption failed") and not r.decrypted and r.packet_number is None
    dec = InitialDecoder(version, RFC_DCID)
    dec.install("1rtt", True, 0x1303, A5_SECRET)
    [r] = dec.datagram(A5_PACKET[version], from_client=False)
    assert r.error is None and not r.decrypted          # no server keys: header only


def test_install_refusals_and_repeats():
    dec = InitialDecoder(QUIC_V1, RFC_DCID)
    s32, s48 = bytes(range(32)), bytes(range(48))
    assert not dec.install("1rtt", True, 0x1305, s32)            # TLS_AES_128_CCM_8: no QUIC
    assert not dec.install("1rtt", True, 0xC02F, s32)            # a TLS 1.2 suite
    assert not dec.install("initial", True, 0x1301, s32)         # Initial keys are not from the key log
    assert not dec.install("2rtt", True, 0x1301, s32)
    assert not dec.install("0rtt", False, 0x1301, s32)           # only the client sends 0-RTT
    assert not dec.install("handshake", True, 0x1302, s32)       # SHA-384 secrets are 48 bytes
    assert not dec.install("handshake", True, 0x1301, s48)
    assert not dec.install("handshake", True, 0x1301, None)
    assert not dec.installed("handshake", True)
    assert dec.install("handshake", True, 0x1302, s48) and dec.installed("handshake", True)
    for suite in (0x1301, 0x1303, 0x1304):
        assert dec.install("1rtt", False, suite, s32)
    assert dec.install("0rtt", True, 0x1301, s32)


# --------------------------------------------------------------------------------------------
# A whole connection built here: Initial, Handshake, 0-RTT, 1-RTT

C_CID, S_CID, ODCID = b"\xcc" * 5, b"\x5e" * 8, b"\x0d" * 8
SECRETS = {  # (level, from_client) -> secret per hash length
    ("handshake", True): b"ch", ("handshake", False): b"sh", ("0rtt", True): b"ce",
    ("1rtt", True): b"ca", ("1rtt", False): b"sa"}


def secret_for(level: str, from_client: bool, suite: int) -> bytes:
    size = 48 if suite == 0x1302 else 32
    return (SECRETS[level, from_client] * size)[:size]


class Built:
    """A connection of one suite and version, both Initials exchanged."""

    def __init__(self, suite: int = 0x1301, version: int = QUIC_V1, client_cid: bytes = C_CID,
                 server_cid: bytes = S_CID, install: bool = True):
        self.suite, self.version, self.c_cid, self.s_cid = suite, version, client_cid, server_cid
        self.dec = InitialDecoder(version, ODCID)
        [c] = self.dec.datagram(protect_initial(version, ODCID, True, 0, crypto_frame(0, b"CH"),
                                                scid=client_cid, pad_to=1200), True)
        [s] = self.dec.datagram(protect_initial(version, ODCID, False, 0, crypto_frame(0, b"SH"),
                                                dcid=client_cid, scid=server_cid), False)
        assert c.error is None and s.error is None
        if install:
            for level, fc in SECRETS:
                assert self.dec.install(level, fc, suite, secret_for(level, fc, suite))

    def long(self, kind: str, from_client: bool, pn: int, frames: bytes, **kw) -> bytes:
        level = "handshake" if kind == "handshake" else "0rtt"
        dcid, scid = (self.s_cid, self.c_cid) if from_client else (self.c_cid, self.s_cid)
        if kind == "0rtt":
            dcid = ODCID       # before the server's first Initial, the client's DCID is its own pick
        return protect_long(self.version, kind, self.suite, secret_for(level, from_client, self.suite), pn,
                            frames, dcid=kw.pop("dcid", dcid), scid=scid, **kw)

    def short(self, from_client: bool, pn: int, frames: bytes, dcid: bytes | None = None, **kw) -> bytes:
        if dcid is None:
            dcid = self.s_cid if from_client else self.c_cid
        return protect_short(self.suite, secret_for("1rtt", from_client, self.suite), pn, frames, dcid=dcid,
                             version=self.version, **kw)


@pytest.mark.parametrize("version", [QUIC_V1, QUIC_V2])
@pytest.mark.parametrize("suite", [0x1301, 0x1302, 0x1303, 0x1304])
def test_round_trip_every_level(suite, version):
    b = Built(suite, version)
    ee = b"\x08\x00\x00\x02\x00\x00"
    flight = b.long("handshake", False, 0, crypto_frame(0, ee) + b"\x01", pn_len=1)
    flight += b.long("handshake", False, 1, b"\x02\x00\x00\x00\x00" + crypto_frame(6, b"\x14\x00\x00\x00"), pn_len=4)
    flight += b.short(False, 0, b"\x1e" + stream_frame(3, b"settings"))
    out = b.dec.datagram(flight, from_client=False)
    assert_tiles(out, flight)
    assert [(p.kind, p.level, p.decrypted, p.error, p.packet_number) for p in out] == [
        ("handshake", "handshake", True, None, 0), ("handshake", "handshake", True, None, 1),
        ("1rtt", "1rtt", True, None, 0)]
    assert out[0].frames == ["CRYPTO", "PING"] and out[0].crypto == [(0, ee)]
    assert out[1].frames == ["ACK", "CRYPTO"] and out[1].crypto == [(6, b"\x14\x00\x00\x00")]
    assert out[2].frames == ["HANDSHAKE_DONE", "STREAM"] and out[2].handshake_done and out[2].stream_bytes == 8
    assert out[2].dcid == C_CID and out[2].key_phase == 0 and out[0].key_phase is None

    early = b.long("0rtt", True, 0, stream_frame(0, b"GET /", fin=True)) + b.long("0rtt", True, 1, b"\x01")
    out = b.dec.datagram(early, from_client=True)
    assert [(p.kind, p.level, p.error, p.packet_number, p.stream_bytes) for p in out] == [
        ("0rtt", "0rtt", None, 0, 5), ("0rtt", "0rtt", None, 1, 0)]
    # 0-RTT and 1-RTT share the application space: a 1-byte pn 0x02 follows 1
    [p] = b.dec.datagram(b.short(True, 2, stream_frame(0, b"x", offset=5), pn_len=1), True)
    assert (p.error, p.packet_number, p.dcid, p.stream_bytes) == (None, 2, S_CID, 1)
    # the Handshake space is another one (and so is the Initial one)
    assert b.dec.largest_pn_space == {"handshake": {True: -1, False: 1}, "application": {True: 2, False: 0}}
    assert b.dec.largest_pn == {True: 0, False: 0}
    [p] = b.dec.datagram(b.long("handshake", True, 0, crypto_frame(0, b"\x14\x00\x00\x00")), True)
    assert (p.error, p.packet_number, p.crypto) == (None, 0, [(0, b"\x14\x00\x00\x00")])


def test_without_keys_nothing_changes():
    b = Built(install=False)
    flight = b.long("handshake", False, 0, crypto_frame(0, b"EE")) + b.short(False, 0, b"\x01")
    out = b.dec.datagram(flight, False)
    assert [(p.kind, p.decrypted, p.level, p.error, p.packet_number, p.frames, p.key_phase) for p in out] == [
        ("handshake", False, "", None, None, [], None), ("1rtt", False, "", None, None, [], None)]
    assert out[1].dcid == C_CID                         # still learned from the client's Initial
    [p] = b.dec.datagram(b.short(True, 0, b"\x01"), True)
    assert p.dcid == S_CID and not p.decrypted and p.error is None
    # Initials say what they are too
    [i] = InitialDecoder(QUIC_V1, RFC_DCID).datagram(RFC9001_CLIENT_INITIAL, True)
    assert (i.decrypted, i.level, i.key_phase) == (True, "initial", None)


def test_keys_installed_between_packets_of_one_datagram():
    # the server's first datagram: Initial (ServerHello, which names the suite) + Handshake
    b = Built(install=False)
    data = (protect_initial(QUIC_V1, ODCID, False, 1, crypto_frame(2, b"more"), dcid=C_CID, scid=S_CID)
            + b.long("handshake", False, 0, crypto_frame(0, b"EE")))
    out = []
    for p in b.dec.iter_datagram(data, from_client=False):
        out.append(p)
        if p.kind == "initial":
            assert p.crypto == [(2, b"more")]
            b.dec.install("handshake", False, 0x1301, secret_for("handshake", False, 0x1301))
    assert [(p.kind, p.decrypted, p.crypto) for p in out] == [
        ("initial", True, [(2, b"more")]), ("handshake", True, [(0, b"EE")])]
    # datagram() reads with the keys of the moment it is called
    b2 = Built(install=False)
    late = b2.long("handshake", False, 0, crypto_frame(0, b"EE"))
    assert not b2.dec.datagram(late, False)[0].decrypted


def test_wrong_keys_and_damage_are_errors():
    b = Built()
    hs = b.long("handshake", False, 0, crypto_frame(0, b"EE"))
    dec = Built(install=False).dec
    dec.install("handshake", False, 0x1301, bytes(32))            # not the keys of this packet
    [p] = dec.datagram(hs, False)
    assert p.error.startswith("decryption failed") and not p.decrypted and p.packet_number is None
    assert "Handshake keys" in p.error
    flipped = hs[:-1] + bytes([hs[-1] ^ 0x80])                    # tag damaged
    [p] = b.dec.datagram(flipped, False)
    assert p.error.startswith("decryption failed") and not p.crypto
    [p] = b.dec.datagram(hs, False)                               # the good one still opens
    assert p.error is None and p.crypto == [(0, b"EE")]
    short = b.short(True, 0, b"\x01")
    [p] = Built(suite=0x1303).dec.datagram(short, True)           # other suite, other secrets
    assert p.error.startswith("decryption failed") and p.dcid == S_CID   # the DCID is still filled in


def test_reserved_bits_in_opened_packets():
    b = Built()
    [p] = b.dec.datagram(b.long("handshake", False, 0, b"\x01", reserved=1, pn_len=3), False)
    assert (p.decrypted, p.error, p.frames) == (True, "reserved header bits set", ["PING"])
    [p] = b.dec.datagram(b.short(False, 0, b"\x01", reserved=2, spin=1, pn_len=3), False)
    assert (p.decrypted, p.error, p.frames) == (True, "reserved header bits set", ["PING"])


def test_every_frame_type_in_1rtt():
    b = Built()
    ack = b"\x02" + varint(40) + varint(3) + varint(1) + varint(5) + varint(1) + varint(2)
    frames = [
        (b"\x00\x00", "PADDING"), (b"\x01", "PING"), (ack, "ACK"),
        (b"\x03" + varint(1) + varint(0) + varint(0) + varint(0) + varint(1) + varint(2) + varint(3), "ACK_ECN"),
        (b"\x04" + varint(4) + varint(0x10) + varint(1000), "RESET_STREAM"),
        (b"\x05" + varint(4) + varint(0x10), "STOP_SENDING"),
        (crypto_frame(0, b"\x04\x00\x00\x00"), "CRYPTO"),
        (b"\x07" + varint(5) + b"token", "NEW_TOKEN"),
        (stream_frame(0, b"abc"), "STREAM"), (stream_frame(4, b"defg", offset=100, fin=True), "STREAM"),
        (b"\x10" + varint(1 << 20), "MAX_DATA"), (b"\x11" + varint(4) + varint(9999), "MAX_STREAM_DATA"),
        (b"\x12" + varint(100), "MAX_STREAMS"), (b"\x13" + varint(100), "MAX_STREAMS"),
        (b"\x14" + varint(77), "DATA_BLOCKED"), (b"\x15" + varint(4) + varint(77), "STREAM_DATA_BLOCKED"),
        (b"\x16" + varint(3), "STREAMS_BLOCKED"), (b"\x17" + varint(3), "STREAMS_BLOCKED"),
        (new_cid_frame(1, b"\xab" * 12), "NEW_CONNECTION_ID"), (b"\x19" + varint(0), "RETIRE_CONNECTION_ID"),
        (b"\x1a" + b"12345678", "PATH_CHALLENGE"), (b"\x1b" + b"87654321", "PATH_RESPONSE"),
        (b"\x1e", "HANDSHAKE_DONE"), (b"\x31" + varint(6) + b"dgram!", "DATAGRAM"),
        (b"\x1d" + varint(0x100) + varint(3) + b"bye", "CONNECTION_CLOSE"),
        (b"\x30" + b"to the end", "DATAGRAM"),          # no Length: the rest of the packet
    ]
    [p] = b.dec.datagram(b.short(False, 0, b"".join(f for f, _ in frames)), False)
    assert p.error is None and p.frames == [name for _, name in frames]
    assert p.stream_bytes == 7 and p.datagram_bytes == 16 and p.handshake_done
    assert p.close == (0x100, None, "bye") and p.crypto == [(0, b"\x04\x00\x00\x00")]
    # a STREAM frame without Length takes the rest of the packet too
    [p] = b.dec.datagram(b.short(False, 1, b"\x01" + stream_frame(8, b"tail" * 10, with_length=False)), False)
    assert p.error is None and p.frames == ["PING", "STREAM"] and p.stream_bytes == 40
    # a transport CONNECTION_CLOSE in a Handshake packet
    [p] = b.dec.datagram(b.long("handshake", False, 0, b"\x1c" + varint(0x0A) + varint(0x08) + varint(0)), False)
    assert p.error is None and p.close == (0x0A, 0x08, "")


@pytest.mark.parametrize("kind, frames, message, kept", [
    ("handshake", crypto_frame(0, b"ok") + stream_frame(0, b"x"), "frame type 0xa is not allowed in a Handshake",
     ["CRYPTO"]),
    ("handshake", b"\x1d" + varint(0) + varint(0), "frame type 0x1d is not allowed in a Handshake", []),
    ("handshake", b"\x1e", "frame type 0x1e is not allowed in a Handshake", []),
    ("0rtt", b"\x01\x1e", "frame type 0x1e is not allowed in a 0-RTT", ["PING"]),
    ("0rtt", b"\x02\x00\x00\x00\x00", "frame type 0x2 is not allowed in a 0-RTT", []),
    ("0rtt", crypto_frame(0, b"x"), "frame type 0x6 is not allowed in a 0-RTT", []),
    ("1rtt", b"\x01" + b"\x1f", "unknown frame type 0x1f in a 1-RTT", ["PING"]),
    ("1rtt", b"\x01" + b"\x40\x21", "unknown frame type 0x21 in a 1-RTT", ["PING"]),
    ("1rtt", stream_frame(0, b"ab") + b"\x0a\x00\x40\x50ab", "STREAM length past the end", ["STREAM"]),
    ("1rtt", b"\x0e" + varint(0) + b"\xff" * 8 + varint(2) + b"ab", "STREAM offset + length beyond", []),
    ("1rtt", b"\x18\x01\x00\x00" + bytes(20), "NEW_CONNECTION_ID length missing or not 1..20", []),
    ("1rtt", b"\x18\x01\x00\x15" + bytes(40), "NEW_CONNECTION_ID length missing or not 1..20", []),
    ("1rtt", b"\x18\x01\x02\x04abcd" + bytes(16), "Retire Prior To", []),
    ("1rtt", b"\x18\x01\x00\x04abcd" + bytes(10), "NEW_CONNECTION_ID past the end", []),
    ("1rtt", b"\x07\x00", "NEW_TOKEN token empty", []),
    ("1rtt", b"\x1a" + b"1234", "PATH_CHALLENGE/PATH_RESPONSE data past the end", []),
    ("1rtt", b"\x12" + varint((1 << 60) + 1, 8), "MAX_STREAMS count beyond 2**60", []),
    ("1rtt", b"\x31" + varint(20) + b"short", "DATAGRAM length past the end", []),
    ("1rtt", b"\x04" + varint(1) + varint(2), "truncated varint", []),
])
def test_bad_frames_at_other_levels(kind, frames, message, kept):
    b = Built()
    if kind == "1rtt":
        raw, from_client = b.short(False, 0, frames), False
    else:
        raw, from_client = b.long(kind, kind == "0rtt" or False, 0, frames), kind == "0rtt"
    [p] = b.dec.datagram(raw, from_client)
    assert message in p.error, p.error
    assert p.decrypted and p.packet_number == 0 and p.frames == kept


def test_short_header_dcid_from_new_connection_id():
    # the client's CID is empty; the server announces CIDs of other lengths than its first one
    b = Built(client_cid=b"", server_cid=b"\x5e" * 8)
    new12, new4 = b"\xab" * 12, b"\x44\x33\x22\x11"
    [p] = b.dec.datagram(b.short(False, 0, new_cid_frame(1, new12) + new_cid_frame(2, new4)), False)
    assert p.error is None and p.dcid == b"" and p.frames == ["NEW_CONNECTION_ID"] * 2
    assert b.dec.known_cids(False) == [b"\x5e" * 8, new12, new4]
    for pn, cid in enumerate([new12, new4, b"\x5e" * 8]):
        [q] = b.dec.datagram(b.short(True, pn, b"\x01", dcid=cid), True)
        assert (q.error, q.dcid, q.packet_number) == (None, cid, pn)
    # a CID of a known length that was announced in a packet the capture lost: the lengths of
    # the known CIDs are tried, and the AEAD says which is right; it is then remembered
    lost = b"\x77" * 12
    [q] = b.dec.datagram(b.short(True, 3, b"\x01", dcid=lost), True)
    assert (q.error, q.dcid) == (None, lost) and lost in b.dec.known_cids(False)
    # a CID the server announced that starts like another, longer one: both are tried
    b.dec.datagram(b.short(False, 1, new_cid_frame(3, new4 + b"\x00" * 4)), False)
    [q] = b.dec.datagram(b.short(True, 4, b"\x00\x00\x00\x01", dcid=new4), True)   # DCID + zero padding
    assert (q.error, q.dcid) == (None, new4)
    # CIDs announced by the client are the server's DCIDs
    [q] = b.dec.datagram(b.short(True, 5, new_cid_frame(1, b"\x99" * 6)), True)
    assert q.error is None and b"\x99" * 6 in b.dec.known_cids(True)
    [q] = b.dec.datagram(b.short(False, 2, b"\x01", dcid=b"\x99" * 6), False)
    assert (q.error, q.dcid) == (None, b"\x99" * 6)


def test_short_header_without_any_known_cid():
    # the capture starts after the handshake: every length is tried
    dec = InitialDecoder(QUIC_V1, ODCID)
    dec.install("1rtt", True, 0x1301, secret_for("1rtt", True, 0x1301))
    raw = protect_short(0x1301, secret_for("1rtt", True, 0x1301), 7, b"\x01", dcid=b"\x42" * 9)
    [p] = dec.datagram(raw, True)
    assert (p.error, p.dcid, p.packet_number) == (None, b"\x42" * 9, 7)
    assert dec.known_cids(False) == [b"\x42" * 9]
    [p] = dec.datagram(raw[:20], True)       # too short for any sample
    assert p.error == "packet too short for a header protection sample"


def test_known_cids_are_bounded():
    b = Built()
    for seq in range(1, 60):
        [p] = b.dec.datagram(b.short(False, seq, new_cid_frame(seq, seq.to_bytes(2, "big") * 4)), False)
        assert p.error is None
    cids = b.dec.known_cids(False)
    assert len(cids) == 1 + MAX_KNOWN_CIDS and cids[0] == S_CID
    assert cids[-1] == (59).to_bytes(2, "big") * 4               # the newest are kept


def test_key_update_and_reordering():
    b = Built()
    sent = [(0, 0), (1, 0), (2, 0), (4, 1), (3, 0), (5, 1), (7, 2), (6, 1), (8, 2), (9, 3)]
    results = []
    for pn, gen in sent:          # pn 3 (old keys) and 6 arrive after the update that followed them
        [p] = b.dec.datagram(b.short(True, pn, stream_frame(0, b"x", offset=pn), generation=gen, pn_len=1), True)
        results.append((p.error, p.packet_number, p.key_phase))
    assert results == [(None, pn, gen & 1) for pn, gen in sent]
    # only the previous generation is kept: a packet of generation 1 no longer opens, and
    # memory holds at most three generations (previous, current, next)
    [p] = b.dec.datagram(b.short(True, 10, b"\x01", generation=1), True)
    assert p.error.startswith("decryption failed")
    assert sorted(b.dec._secrets["1rtt", True].keys(QUIC_V1).gens) == [2, 3]
    # the other direction updates on its own
    [p] = b.dec.datagram(b.short(False, 0, b"\x01", generation=0), False)
    assert (p.error, p.key_phase) == (None, 0)
    [p] = b.dec.datagram(b.short(False, 1, b"\x01", generation=1), False)
    assert (p.error, p.key_phase) == (None, 1)
    # installing the same secret again keeps the key update state
    assert b.dec.install("1rtt", True, 0x1301, secret_for("1rtt", True, 0x1301))
    [p] = b.dec.datagram(b.short(True, 11, b"\x01", generation=3), True)
    assert p.error is None and p.key_phase == 1
    # ... while a new secret starts from its first generation
    assert b.dec.install("1rtt", True, 0x1301, bytes(32))
    [p] = b.dec.datagram(protect_short(0x1301, bytes(32), 12, b"\x01", dcid=S_CID), True)
    assert p.error is None and p.key_phase == 0


def test_key_phase_bit_wrong_for_generation():
    # a phase-1 packet sealed with generation 0 keys: the next generation does not open it
    b = Built()
    [p] = b.dec.datagram(b.short(True, 0, b"\x01", generation=0, phase=1), True)
    assert p.error.startswith("decryption failed")
    [p] = b.dec.datagram(b.short(True, 1, b"\x01"), True)       # nothing moved
    assert p.error is None and p.key_phase == 0


def test_v2_negotiated_from_v1_uses_v2_labels_for_1rtt():
    # RFC 9368: the client starts in v1, the server answers in v2; 1-RTT follows the Handshake's version
    b = Built(version=QUIC_V1)
    b.version = QUIC_V2
    [p] = b.dec.datagram(b.long("handshake", False, 0, crypto_frame(0, b"EE")), False)
    assert p.error is None and p.version == QUIC_V2
    [p] = b.dec.datagram(b.short(False, 0, b"\x01"), False)
    assert p.error is None and p.decrypted


# --------------------------------------------------------------------------------------------
# Real captures with their key logs

KEYLOG_LEVELS = [("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "handshake", True),
                 ("SERVER_HANDSHAKE_TRAFFIC_SECRET", "handshake", False),
                 ("CLIENT_EARLY_TRAFFIC_SECRET", "0rtt", True),
                 ("CLIENT_TRAFFIC_SECRET_0", "1rtt", True), ("SERVER_TRAFFIC_SECRET_0", "1rtt", False)]


def parse_keylog(text: str) -> dict[bytes, dict[str, bytes]]:
    """NSS key log: client random -> label -> secret."""
    out: dict[bytes, dict[str, bytes]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            out.setdefault(bytes.fromhex(parts[1]), {})[parts[0]] = bytes.fromhex(parts[2])
    return out


class KeyedConnection:
    """One flow through an InitialDecoder whose keys are installed from the key log as soon as
    the ClientHello (client random) and ServerHello (suite) are read; CRYPTO streams per level
    and direction."""

    def __init__(self, flow, keylog):
        self.flow = flow
        first = split_datagram(flow[0][1])[0]
        self.decoder = InitialDecoder(first.version, first.dcid)
        self.streams: dict[tuple[str, bool], CryptoStream] = {}
        self.data: dict[tuple[str, bool], bytearray] = {}
        self.datagrams: list[tuple[bool, list[QuicPacket]]] = []
        self.suite = self.secrets = None
        for from_client, payload in flow:
            packets = []
            for p in self.decoder.iter_datagram(payload, from_client):
                packets.append(p)
                for off, chunk in p.crypto:
                    key = (p.level, from_client)
                    stream = self.streams.setdefault(key, CryptoStream())
                    self.data.setdefault(key, bytearray()).extend(stream.add(off, chunk))
                if self.suite is None:
                    self._install(keylog)
            assert_tiles(packets, payload)
            self.datagrams.append((from_client, packets))

    def _install(self, keylog) -> None:
        try:
            ch = hello(self.data.get(("initial", True), b""), 1, CLIENT)
            sh = hello(self.data.get(("initial", False), b""), 2, SERVER)
        except AssertionError:        # not complete yet
            return
        self.suite, self.secrets = sh.cipher_suite, keylog[ch.random]
        for label, level, from_client in KEYLOG_LEVELS:
            if label in self.secrets:
                assert self.decoder.install(level, from_client, self.suite, self.secrets[label])

    def packets(self, from_client=None, kind=None):
        return [p for fc, ps in self.datagrams for p in ps
                if (from_client is None or fc == from_client) and (kind is None or p.kind == kind)]


ILLUSTRATED = "syncsynchalt_illustrated-quic/captures/capture.pcap"
CHROME_CLOUDFLARE = "FoxIO-LLC_ja4/pcap/chrome-cloudflare-quic-with-secrets.pcapng"


@functools.lru_cache(maxsize=None)
def keyed_connection(rel: str) -> KeyedConnection:
    path = need_corpus() / rel
    if rel == ILLUSTRATED:
        text = (path.parent / "keylog.txt").read_text()
    else:   # the key log is in the pcapng's Decryption Secrets Block
        from tlsscope.capture import open_capture
        from tlsscope.model import DecryptionSecrets
        text = b"".join(item.data for item in open_capture(path) if isinstance(item, DecryptionSecrets)).decode()
    [flow] = udp_flows(path)
    return KeyedConnection(flow, parse_keylog(text))


@pytest.mark.parametrize("rel", [ILLUSTRATED, CHROME_CLOUDFLARE], ids=["illustrated", "chrome-cloudflare"])
def test_capture_every_protected_packet_opens(rel):
    conn = keyed_connection(rel)
    assert conn.suite == 0x1301
    for kind in ("handshake", "1rtt"):
        for fc in (True, False):
            packets = conn.packets(fc, kind)
            assert packets, (kind, fc)
            assert all(p.decrypted and p.error is None and p.level == kind for p in packets), \
                [(p.packet_number, p.error) for p in packets]
    assert all(p.error is None and p.decrypted for p in conn.packets())
    for stream in conn.streams.values():
        assert stream.pending_bytes == 0 and stream.mismatches == 0 and stream.dropped == 0
    # packet numbers count up per space and sender
    for fc in (True, False):
        for kind in ("handshake", "1rtt"):
            pns = [p.packet_number for p in conn.packets(fc, kind)]
            assert len(set(pns)) == len(pns), pns
    [(msg_type, finished)] = handshake_messages(conn.data["handshake", True])     # the client's Finished
    assert msg_type == 20 and isinstance(decode_handshake(20, finished, CLIENT13), Finished)
    server = handshake_messages(conn.data["handshake", False])
    assert isinstance(decode_handshake(8, server[0][1], SERVER13), EncryptedExtensions)
    # the server says the handshake is done in its first 1-RTT packet
    assert [p.handshake_done for p in conn.packets(False, "1rtt")][0]
    assert not any(p.handshake_done for p in conn.packets(True))


def test_capture_illustrated_quic_with_keys():
    conn = keyed_connection(ILLUSTRATED)
    server = handshake_messages(conn.data["handshake", False])
    assert [t for t, _ in server] == [8, 11, 15, 20]
    cert = decode_handshake(11, server[1][1], SERVER13)
    assert isinstance(cert, Certificate) and len(cert.certificate_list) == 1
    assert len(cert.certificate_list[0].cert_data) == 805          # what tshark shows
    # "ping" from the client, "pong" from the server, each on one STREAM frame
    assert [(p.packet_number, p.frames, p.stream_bytes) for p in conn.packets(True, "1rtt")] == [
        (0, ["STREAM"], 4), (1, ["ACK"], 0)]
    assert [(p.packet_number, p.frames, p.stream_bytes) for p in conn.packets(False, "1rtt")] == [
        (0, ["ACK", "HANDSHAKE_DONE", "STREAM"], 4), (1, ["CONNECTION_CLOSE"], 0)]
    assert conn.packets(False, "1rtt")[1].close == (0, 0, "graceful shutdown")
    assert {p.dcid for p in conn.packets(True, "1rtt")} == {b"s_cid"}
    assert {p.dcid for p in conn.packets(False, "1rtt")} == {b"c_cid"}
    assert {p.key_phase for p in conn.packets(kind="1rtt")} == {0}


def _brotli():
    try:
        import brotli
    except ImportError:
        return None
    return brotli


def test_capture_chrome_cloudflare_with_keys():
    conn = keyed_connection(CHROME_CLOUDFLARE)
    server = handshake_messages(conn.data["handshake", False])
    # Cloudflare compresses its certificate chain (RFC 8879, brotli)
    assert [t for t, _ in server] == [8, 25, 15, 20]
    cc = decode_handshake(25, server[1][1], SERVER13)
    assert isinstance(cc, CompressedCertificate) and cc.algorithm == 2
    # two certificates of 1351 and 977 bytes (tshark), no extensions: 1 + 3 + (3 + n + 2) each
    assert cc.uncompressed_length == 1 + 3 + (3 + 1351 + 2) + (3 + 977 + 2)
    brotli = _brotli()
    if brotli is not None:
        cert = decode_handshake(11, brotli.decompress(cc.compressed_certificate_message), SERVER13)
        assert [len(e.cert_data) for e in cert.certificate_list] == [1351, 977]
    # the client's DCID is empty; the server's is the 20-byte SCID of its long headers
    assert {p.dcid for p in conn.packets(False, "1rtt")} == {b""}
    assert {len(p.dcid) for p in conn.packets(True, "1rtt")} == {20}
    assert sum(p.stream_bytes for p in conn.packets(False, "1rtt")) > 10000     # the page
    # the server's 1-RTT CRYPTO stream holds its NewSessionTickets
    assert [t for t, _ in handshake_messages(conn.data["1rtt", False])] == [4, 4]


@pytest.mark.parametrize("rel", [ILLUSTRATED, CHROME_CLOUDFLARE], ids=["illustrated", "chrome-cloudflare"])
def test_capture_certificates_match_tshark(rel):
    tshark = need_tool("tshark")
    path = need_corpus() / rel
    args = [tshark, "-n", "-r", str(path)]
    if rel == ILLUSTRATED:
        args += ["-o", f"tls.keylog_file:{path.parent / 'keylog.txt'}"]
    import subprocess
    done = subprocess.run(args + ["-Y", "quic && (tls.handshake.type == 11 || tls.handshake.type == 25)",
                                  "-T", "fields", "-e", "tls.handshake.certificate_length",
                                  "-e", "tls.compress_certificate.uncompressed_length"],
                          capture_output=True, text=True, timeout=120)
    [line] = done.stdout.split("\n")[:1]
    lengths, uncompressed = line.split("\t")
    lengths = [int(n) for n in lengths.split(",")]
    conn = keyed_connection(rel)
    server = dict(handshake_messages(conn.data["handshake", False]))
    if 11 in server:
        cert = decode_handshake(11, server[11], SERVER13)
        assert [len(e.cert_data) for e in cert.certificate_list] == lengths
    else:
        cc = decode_handshake(25, server[25], SERVER13)
        assert cc.uncompressed_length == int(uncompressed) == 4 + sum(3 + n + 2 for n in lengths)
        brotli = _brotli()
        if brotli is not None:
            cert = decode_handshake(11, brotli.decompress(cc.compressed_certificate_message), SERVER13)
            assert [len(e.cert_data) for e in cert.certificate_list] == lengths


# --------------------------------------------------------------------------------------------
# Damage with keys installed

def keyed_decoder(version: int = QUIC_V1) -> InitialDecoder:
    dec = InitialDecoder(version, RFC_DCID)
    for level, fc in SECRETS:
        dec.install(level, fc, 0x1301, secret_for(level, fc, 0x1301))
    return dec


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([QUIC_V1, QUIC_V2]))
def test_random_bytes_with_keys_never_raise(data, version):
    dec = keyed_decoder(version)
    dec.datagram(RFC9001_SERVER_INITIAL, False)      # some known CIDs
    for from_client in (True, False, True):
        out = dec.datagram(data, from_client)
        assert_tiles(out, data)
        assert no_internal_error(out), out
        assert not any(p.decrypted for p in out if p.kind != "initial")


# Plausible protected headers over random tails: short headers with known CIDs, long ones of
# each protected kind.
protected_headers = st.one_of(
    st.builds(lambda first, cid, tail: bytes([first]) + cid + tail,
              st.integers(0x40, 0x7F), st.sampled_from([C_CID, S_CID, b""]), st.binary(max_size=120)),
    st.builds(lambda kind, version, length, tail: long_packet(version, kind, S_CID, C_CID, tail)[:-len(tail) - 2]
              + length + tail,
              st.sampled_from(["handshake", "0rtt"]), st.sampled_from([QUIC_V1, QUIC_V2]),
              st.sampled_from([b"\x40\x14", b"\x40\x30", b"\x40\x00", b"\x7f\xff"]), st.binary(max_size=120)))


@settings(max_examples=200, deadline=None)
@given(protected_headers)
def test_random_protected_packets_never_raise(data):
    b = Built()
    for from_client in (True, False):
        out = b.dec.datagram(data, from_client)
        assert_tiles(out, data)
        assert no_internal_error(out)
        assert not any(p.decrypted for p in out)


def _content(p: QuicPacket) -> tuple:
    return (p.kind, p.level, p.packet_number, p.dcid, p.frames, p.crypto, p.close, p.stream_bytes,
            p.datagram_bytes, p.handshake_done, p.key_phase, p.length)


def _replay(conn: KeyedConnection, upto: int) -> InitialDecoder:
    """A decoder with the connection's keys, fed the flow's first ``upto`` datagrams."""
    dec = InitialDecoder(conn.decoder.version, conn.decoder.original_dcid)
    for label, level, fc in KEYLOG_LEVELS:
        if label in conn.secrets:
            dec.install(level, fc, conn.suite, conn.secrets[label])
    for fc, payload in conn.flow[:upto]:
        dec.datagram(payload, fc)
    return dec


@pytest.fixture(scope="module")
def keyed_datagrams():
    """(connection, index) of every datagram of the keyed captures holding a Handshake or 1-RTT packet."""
    out = []
    for rel in (ILLUSTRATED, CHROME_CLOUDFLARE):
        conn = keyed_connection(rel)
        for i, (_, packets) in enumerate(conn.datagrams):
            if any(p.kind in ("handshake", "1rtt") for p in packets):
                out.append((conn, i))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), how=st.sampled_from(["flip", "flip", "truncate", "insert", "delete"]),
       rnd=st.randoms(use_true_random=False))
def test_damaged_protected_datagrams(keyed_datagrams, data, how, rnd):
    conn, i = data.draw(st.sampled_from(keyed_datagrams))
    from_client, payload = conn.flow[i]
    damaged, pos = damage(payload, rnd, how)
    before = _replay(conn, i).datagram(payload, from_client)
    assert [_content(p) for p in before] == [_content(p) for p in conn.datagrams[i][1]]
    out = _replay(conn, i).datagram(damaged, from_client)
    assert_tiles(out, damaged)
    assert no_internal_error(out)
    # AEAD: a packet either opens into what it was, or has an error
    for p in out:
        if p.decrypted and p.kind != "initial":
            assert p.error is not None or _content(p) in [_content(q) for q in before], (how, pos, p)
    if how == "flip":
        # every packet after the flip stops at an error, or reads as before; one of them is hit
        hit = [p for p in out if p.offset <= pos < p.offset + p.length]
        assert all(p.error is not None or not p.decrypted for p in hit) or not any(payload[pos:])


def test_install_early_candidates():
    """0-RTT keys before the suite is known: only QUIC suites whose hash fits the secret are candidates;
    nothing fits, or 0-RTT keys already installed: refused."""
    from tlsscope.quic import InitialDecoder
    d = InitialDecoder(1, b"\x01" * 8)
    assert not d.install_early(b"x" * 20, [0x1301, 0x1302])           # no suite with a 20-byte hash
    assert not d.install_early(b"x" * 48, [0x1301, 0x1303, 0xC02F])    # SHA-384 secret, only SHA-256 suites
    assert d.install_early(b"x" * 48, [0x1301, 0x1302, 0x1302])
    assert [c.suite for c in d._early_candidates] == [0x1302]
    assert d.install("0rtt", True, 0x1301, b"y" * 32)
    assert not d.install_early(b"x" * 32, [0x1301])
    assert not d.install_early(object(), [0x1301])

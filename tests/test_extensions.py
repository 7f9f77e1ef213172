"""Extension decoding: every decoded extension from a hex vector, context dispatch, errors, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tlsscope.codec import DecodeError, Reader
from tlsscope.jsonable import to_jsonable
from tlsscope.tls import extensions as ex
from tlsscope.tls.extensions import (
    CONTEXTS, EXTENSION_DECODERS, Extension, decode_extension, decode_extensions, is_grease,
)


def h(s: str) -> bytes:
    return bytes.fromhex("".join(s.split()))


def v1(b: bytes) -> bytes:
    return bytes([len(b)]) + b


def v2(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def v3(b: bytes) -> bytes:
    return len(b).to_bytes(3, "big") + b


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def one(ext_type: int, data: bytes, context: str = "client_hello"):
    e = decode_extension(ext_type, data, context, "ext")
    assert e.error is None, e.error
    assert e.type == ext_type and e.data == data
    return e.value


# (type, context, hex body, expected value) -- bodies written from the RFC structs
CASES = [
    (0, "client_hello", "000e00000b6578616d706c652e636f6d",
     ex.ServerNameList((ex.ServerName(0, "example.com", b"example.com"),))),
    (0, "server_hello", "", ex.Empty()),
    (0, "encrypted_extensions", "", ex.Empty()),
    (1, "client_hello", "04", ex.MaxFragmentLength(4)),
    (1, "encrypted_extensions", "02", ex.MaxFragmentLength(2)),
    (3, "client_hello", "0016" "00" "01" + "11" * 20,
     ex.TrustedAuthorities((ex.TrustedAuthority(0, b"", None), ex.TrustedAuthority(1, b"\x11" * 20, None)))),
    (4, "client_hello", "", ex.Empty()),
    (5, "client_hello", "0100000000", ex.CertificateStatusRequest(1, (), b"", h("00000000"))),
    (5, "client_hello", "01000400026869000100",
     ex.CertificateStatusRequest(1, (b"hi",), b"\x00", h("000400026869000100"))),
    (5, "client_hello", "07abcd", ex.CertificateStatusRequest(7, (), b"", h("abcd"))),
    (5, "server_hello", "", ex.Empty()),
    (5, "certificate_request", "0100000000", ex.CertificateStatusRequest(1, (), b"", h("00000000"))),
    (5, "certificate_request", "", ex.Empty()),
    (17, "client_hello", "000e" "020004" "00000000" "010004" "00000000",
     ex.CertificateStatusRequestListV2((ex.CertificateStatusRequestItemV2(2, h("00000000")),
                                        ex.CertificateStatusRequestItemV2(1, h("00000000"))))),
    (17, "server_hello", "", ex.Empty()),
    (10, "client_hello", "0008 001d 0017 0018 11ec", ex.NamedGroupList((29, 23, 24, 0x11EC))),
    (11, "server_hello", "0100", ex.ECPointFormatList((0,))),
    (13, "client_hello", "0004 0804 0403", ex.SignatureSchemeList((0x0804, 0x0403))),
    (50, "certificate_request", "0002 0807", ex.SignatureSchemeList((0x0807,))),
    (14, "client_hello", "0004 0001 0002 00", ex.UseSRTPData((1, 2), b"")),
    (14, "server_hello", "0002 0007 03 616263", ex.UseSRTPData((7,), b"abc")),
    (15, "client_hello", "01", ex.HeartbeatExtension(1)),
    (16, "client_hello", "000c 02 6832 08 687474702f312e31", ex.ProtocolNameList((b"h2", b"http/1.1"))),
    (16, "encrypted_extensions", "0003 02 6832", ex.ProtocolNameList((b"h2",))),
    (18, "client_hello", "", ex.Empty()),
    (19, "client_hello", "02 02 00", ex.CertificateTypeList((2, 0))),
    (19, "encrypted_extensions", "02", ex.CertificateType(2)),
    (20, "client_hello", "01 00", ex.CertificateTypeList((0,))),
    (20, "server_hello", "00", ex.CertificateType(0)),
    (21, "client_hello", "000000", ex.Padding(3, True)),
    (21, "client_hello", "", ex.Padding(0, True)),
    (21, "client_hello", "00ff", ex.Padding(2, False)),
    (22, "client_hello", "", ex.Empty()),
    (23, "server_hello", "", ex.Empty()),
    (24, "client_hello", "0010 03 020100", ex.TokenBindingParameters(0x0010, (2, 1, 0))),
    (27, "client_hello", "04 0002 0001", ex.CertificateCompressionAlgorithms((2, 1))),
    (28, "client_hello", "4001", ex.RecordSizeLimit(0x4001)),
    (34, "client_hello", "0004 0403 0807", ex.SignatureSchemeList((0x0403, 0x0807))),
    (35, "client_hello", "", ex.SessionTicket(b"")),
    (35, "client_hello", "deadbeef", ex.SessionTicket(h("deadbeef"))),
    (41, "server_hello", "0000", ex.PreSharedKeySelected(0)),
    (41, "client_hello", "000a 0004 69643030 00000064 0006 05 0102030405",
     ex.OfferedPsks((ex.PskIdentity(b"id00", 100),), (h("0102030405"),))),
    (42, "client_hello", "", ex.Empty()),
    (42, "encrypted_extensions", "", ex.Empty()),
    (42, "new_session_ticket", "00004000", ex.EarlyDataIndication(0x4000)),
    (43, "client_hello", "06 7a7a 0304 0303", ex.SupportedVersions((0x7A7A, 0x0304, 0x0303))),
    (43, "server_hello", "0304", ex.SelectedVersion(0x0304)),
    (43, "hello_retry_request", "0304", ex.SelectedVersion(0x0304)),
    (44, "hello_retry_request", "0003 636f6f", ex.Cookie(b"coo")),
    (44, "client_hello", "0003 636f6f", ex.Cookie(b"coo")),
    (45, "client_hello", "02 0001", ex.PskKeyExchangeModes((0, 1))),
    (46, "new_session_ticket", "00000400", ex.TicketEarlyDataInfo(0x400)),
    (48, "certificate_request", "0010 03 551d25 000a 3008 06062b0601050507",
     ex.OIDFilterExtension((ex.OIDFilter(h("551d25"), "2.5.29.37", h("3008 06062b0601050507")),))),
    (48, "certificate_request", "000e 05 0603551d0f 0006 030402050a0b",
     ex.OIDFilterExtension((ex.OIDFilter(h("0603551d0f"), "2.5.29.15", h("030402050a0b")),))),
    (49, "client_hello", "", ex.Empty()),
    (51, "client_hello", "000a 001d 0002 aabb 0017 0000",
     ex.KeyShareClientHello((ex.KeyShareEntry(29, h("aabb")), ex.KeyShareEntry(23, b"")))),
    (51, "client_hello", "0000", ex.KeyShareClientHello(())),
    (51, "server_hello", "001d 0002 aabb", ex.KeyShareServerHello(ex.KeyShareEntry(29, h("aabb")))),
    (51, "hello_retry_request", "0017", ex.KeyShareHelloRetryRequest(23)),
    (53, "client_hello", "03 010203", ex.ConnectionId(h("010203"))),
    (54, "server_hello", "00", ex.ConnectionId(b"")),
    # RFC 9000 varints: 1-byte id 0x01 (max_idle_timeout) value 2 bytes; 2-byte id 0x4020; 4-byte length
    (57, "client_hello", "01 02 6710" "4020 00" "0f 80000001 ab",
     ex.QuicTransportParameters((ex.TransportParameter(1, h("6710")), ex.TransportParameter(0x20, b""),
                                 ex.TransportParameter(0x0F, h("ab"))))),
    (57, "encrypted_extensions", "", ex.QuicTransportParameters(())),
    (0xFFA5, "client_hello", "c000000000000001 00", ex.QuicTransportParameters((ex.TransportParameter(1, b""),))),
    (0x3374, "client_hello", "", ex.Empty()),
    (0x3374, "server_hello", "02 6832 08 687474702f312e31", ex.ProtocolNameList((b"h2", b"http/1.1"))),
    (0x4469, "client_hello", "0003 02 6832", ex.ApplicationSettingsSupport((b"h2",))),
    (0x44CD, "client_hello", "0003 02 6832", ex.ApplicationSettingsSupport((b"h2",))),
    (0x4469, "encrypted_extensions", "0102", ex.ApplicationSettings(h("0102"))),
    (0x7550, "client_hello", "", ex.Empty()),
    (0xFE0D, "client_hello", "00 0001 0001 2a 0004 e1e2e3e4 0003 aabbcc",
     ex.ECHClientHelloOuter(0, ex.HpkeSymmetricCipherSuite(1, 1), 42, h("e1e2e3e4"), 3)),
    (0xFE0D, "client_hello", "01", ex.ECHClientHelloInner(1)),
    (0xFE0D, "client_hello", "05 99", ex.ECHClientHelloUnknown(5, h("99"))),
    (0xFE0D, "encrypted_extensions", "0004 fe0d0000", ex.ECHEncryptedExtensions(h("0004 fe0d0000"))),
    (0xFE0D, "hello_retry_request", "0102030405060708", ex.ECHHelloRetryRequest(h("0102030405060708"))),
    (0xFF01, "client_hello", "00", ex.RenegotiationInfo(b"")),
    (0xFF01, "server_hello", "18" + "ab" * 24, ex.RenegotiationInfo(b"\xab" * 24)),
    (0xFF02, "client_hello", "000e", ex.DraftVersion(14)),
    (0xFFCE, "client_hello", "1301 001d 0002 aabb 0002 cdef 0003 010203",
     ex.EncryptedServerName(0x1301, ex.KeyShareEntry(29, h("aabb")), h("cdef"), h("010203"))),
]


@pytest.mark.parametrize("ext_type,context,body,expected", CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_extension_vectors(ext_type, context, body, expected):
    data = h(body)
    assert one(ext_type, data, context) == expected
    to_jsonable(Extension(ext_type, data, expected))
    # every proper prefix either fails cleanly or decodes to something else (never crashes)
    for i in range(len(data)):
        e = decode_extension(ext_type, data[:i], context)
        assert e.error is None or isinstance(e.error, DecodeError)
        assert e.data == data[:i]
    # trailing bytes are an error for every struct that does not end in an open-ended field
    open_ended = {21, 35, 57, 0xFFA5, 0x3374, 0x4469, 0x44CD}
    if (ext_type in open_ended or (ext_type == 5 and data[:1] != b"\x01")
            or isinstance(expected, (ex.ECHEncryptedExtensions, ex.ECHClientHelloUnknown))):
        return
    e = decode_extension(ext_type, data + b"\x00", context)
    assert e.value is None and e.error is not None
    if data:   # an empty acknowledgement plus one byte is read as a (broken) longer form
        assert "trailing" in e.error.reason


def test_alpn_keeps_non_ascii_bytes():
    names = one(16, v2(v1(b"\xff\x00h") + v1("σπ".encode())), "client_hello").protocol_name_list
    assert names == (b"\xff\x00h", "σπ".encode())
    assert to_jsonable(ex.ProtocolNameList(names)) == {"protocol_name_list": ["ff0068", "cf83cf80"]}


def test_server_name_non_utf8_is_escaped_not_raised():
    sni = one(0, v2(b"\x00" + v2(b"caf\xe9.example")))
    assert sni.server_name_list[0].host_name == "caf\\xe9.example"
    assert sni.server_name_list[0].raw == b"caf\xe9.example"


def test_signed_certificate_timestamps():
    sct = b"\x00" + b"L" * 32 + (1_700_000_000_000).to_bytes(8, "big") + v2(b"") + u16(0x0403) + v2(b"sig")
    body = v2(v2(sct) + v2(b"\x07other"))
    for context in ("server_hello", "certificate", "encrypted_extensions"):
        lst = one(18, body, context).sct_list
        assert lst[0].sct_version == 0 and lst[0].log_id == b"L" * 32
        assert lst[0].timestamp == 1_700_000_000_000 and lst[0].signature_algorithm == 0x0403
        assert lst[0].signature == b"sig" and lst[0].raw == sct
        assert lst[1].sct_version == 7 and lst[1].log_id is None and lst[1].raw == b"\x07other"
    e = decode_extension(18, v2(v2(sct + b"x")), "server_hello", "SH.ext")
    assert e.error is not None and "SignedCertificateTimestamp" in e.error.reason


def test_certificate_entry_status_request_and_delegated_credential():
    v = one(5, b"\x01" + v3(b"\x30\x03\x0a\x01\x01"), "certificate")
    assert v.status_type == 1 and v.response == b"\x30\x03\x0a\x01\x01"
    assert v.ocsp.response_status == "malformed_request"
    dc = (86400).to_bytes(4, "big") + u16(0x0403) + v3(b"SPKI") + u16(0x0804) + v2(b"sig")
    v = one(34, dc, "certificate")
    assert v == ex.DelegatedCredential(86400, 0x0403, b"SPKI", 0x0804, b"sig")


def test_certificate_authorities():
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    der = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
                     x509.NameAttribute(NameOID.COMMON_NAME, "myCA")]).public_bytes()
    v = one(47, v2(v2(der) + v2(b"\x01\x02")), "certificate_request")
    assert v.authorities[0].rfc4514 == "CN=myCA,O=Example" and v.authorities[0].der == der
    assert v.authorities[1] == ex.DistinguishedName(b"\x01\x02", None)
    v = one(3, v2(b"\x02" + v2(der) + b"\x03" + b"\x22" * 20))
    assert v.trusted_authorities_list[0].distinguished_name.rfc4514 == "CN=myCA,O=Example"
    assert v.trusted_authorities_list[1].identifier == b"\x22" * 20
    e = decode_extension(3, v2(b"\x09"), "client_hello")
    assert e.error is not None and "IdentifierType" in e.error.reason


def test_grease_and_unknown_are_kept_raw_without_error():
    for t in (0x0A0A, 0x1A1A, 0xFAFA):
        assert is_grease(t)
        assert decode_extension(t, b"\x00", "client_hello") == Extension(t, b"\x00", None)
    assert not is_grease(0x0A1A) and not is_grease(0x1A0A) and not is_grease(0x0B0B)
    assert decode_extension(0xABCD, b"\x01\x02", "client_hello") == Extension(0xABCD, b"\x01\x02", None)


def test_context_specific_decoders_override_plain_type():
    assert (51, "client_hello") in EXTENSION_DECODERS and 51 in EXTENSION_DECODERS
    assert isinstance(one(51, h("001d0002aabb"), "server_hello"), ex.KeyShareServerHello)
    assert isinstance(one(51, h("001d0002aabb"), "encrypted_extensions"), ex.KeyShareServerHello)
    e = decode_extension(51, h("001d0002aabb"), "client_hello")     # would be a client_shares length 0x1d
    assert e.value is None and e.error is not None
    # every context-specific key names a context we actually use
    assert {k[1] for k in EXTENSION_DECODERS if isinstance(k, tuple)} <= CONTEXTS


def test_empty_extensions_reject_content():
    for t in (22, 23, 49, 4):
        e = decode_extension(t, b"\x00", "client_hello", "CH.extensions[0].x", 10)
        assert e.value is None and e.error.offset == 10 and "trailing" in e.error.reason


def test_decode_extensions_block():
    block = v2(u16(0) + v2(b"") + u16(0x0A0A) + v2(b"") + u16(43) + v2(h("020304")) + u16(28) + v2(b"\x40"))
    r = Reader(block + b"rest", "EncryptedExtensions", 100)
    exts = decode_extensions(r, "client_hello")
    assert [e.type for e in exts] == [0, 0x0A0A, 43, 28]
    assert exts[0].error is not None            # in a ClientHello server_name is a list, never empty
    assert exts[1].value is None and exts[1].error is None
    assert exts[2].value == ex.SupportedVersions((0x0304,))
    assert exts[3].error.path.startswith("EncryptedExtensions.extensions[3].record_size_limit")
    assert exts[3].error.offset == 100 + len(block) - 1
    assert r.remaining == 4                      # the reader stops after the block
    # duplicates are kept in order (flagging them is the analysis' job)
    dup = decode_extensions(Reader(v2(u16(23) + v2(b"") + u16(23) + v2(b""))), "client_hello")
    assert [e.type for e in dup] == [23, 23]
    # framing errors raise
    for bad in (b"", b"\x00", v2(u16(0)), v2(u16(0) + u16(5) + b"ab"), u16(10) + b"abc"):
        with pytest.raises(DecodeError):
            decode_extensions(Reader(bad, "X"), "client_hello")


def test_extension_json():
    e = decode_extension(28, b"\x40", "client_hello", "CH.ext", 7)
    js = to_jsonable(e)
    assert js["type"] == 28 and js["data"] == "40" and js["value"] is None
    assert js["error"]["offset"] == 7 and js["error"]["path"] == "CH.ext.record_size_limit"
    js = to_jsonable(decode_extension(51, h("0024001d0020" + "ab" * 32), "client_hello"))
    assert js["value"] == {"client_shares": [{"group": 29, "key_exchange": "ab" * 32}]}


@settings(max_examples=600, deadline=None)
@given(key=st.sampled_from(sorted(EXTENSION_DECODERS, key=str)), data=st.binary(max_size=120))
def test_fuzz_extension_decoders(key, data):
    try:
        EXTENSION_DECODERS[key](Reader(data, "x"))
    except DecodeError:
        pass
    ext_type = key[0] if isinstance(key, tuple) else key
    for context in CONTEXTS:
        e = decode_extension(ext_type, data, context)
        assert e.error is None or isinstance(e.error, DecodeError)
        to_jsonable(e)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(sorted(CONTEXTS)))
def test_fuzz_extension_block(data, context):
    try:
        decode_extensions(Reader(data), context)
    except DecodeError:
        pass


# ---- key_share read straight from the bytes against the Reader decoder ----------------------

@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=80),
    st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=3).map(
        lambda es: b"".join(g.to_bytes(2, "big") + len(k).to_bytes(2, "big") + k for g, k in es)).flatmap(
        lambda body: st.sampled_from([len(body).to_bytes(2, "big") + body, body,
                                      (len(body) + 1).to_bytes(2, "big") + body]))))
def test_key_share_fast_path_is_the_decoder(b):
    for context, fast in ex._FAST_VOLATILE.items():
        ext_type, ctx = context
        value = fast(b)
        slow = ex.decode_extension(ext_type, b, ctx)
        if value is None:
            continue            # decode_extension_block then takes the Reader path
        assert slow.error is None and slow.value == value


def test_key_share_fast_path_taken_for_real_hellos():
    """The hellos of RFC 8448 go through the fast path and decode as the Reader path does."""
    ch_ks = bytes.fromhex("0024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c")
    sh_ks = bytes.fromhex("001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f")
    assert ex._key_share_ch_fast(ch_ks) == ex.decode_extension(51, ch_ks, "client_hello").value
    assert ex._key_share_sh_fast(sh_ks) == ex.decode_extension(51, sh_ks, "server_hello").value
    assert ex._key_share_ch_fast(ch_ks).client_shares[0].group == 0x1D

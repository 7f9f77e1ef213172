"""Certificate summaries: corpus certificates, certificates made on the fly, garbage."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from tlsscope.tls.x509info import (
    CertInfo, DistinguishedName, parse_certificate, parse_distinguished_name, summarize_ocsp,
)

from conftest import CORPUS, need_corpus, need_tool

T0 = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def name(cn: str, o: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if o:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    return x509.Name(attrs)


def build(key, subject, issuer=None, signer=None, exts=(), serial=0x0BADC0DE, algorithm=hashes.SHA256()):
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
         .public_key(key.public_key()).serial_number(serial)
         .not_valid_before(T0).not_valid_after(T0 + datetime.timedelta(days=90)))
    for ext, critical in exts:
        b = b.add_extension(ext, critical)
    return b.sign(signer or key, algorithm).public_bytes(Encoding.DER)


def corpus_der(rel: str) -> bytes:
    need_corpus()
    return x509.load_pem_x509_certificate((CORPUS / rel).read_bytes()).public_bytes(Encoding.DER)


def test_illustrated_server_certificate():
    der = corpus_der("syncsynchalt_illustrated-tls13/server/server.crt")
    info = parse_certificate(der)
    assert info.error is None
    assert info.subject == "CN=example.ulfheim.net,C=US" and info.issuer == "O=Example CA,C=US"
    assert info.serial == "155a92adc2048f90" and info.version == 3
    assert info.not_before == "2018-10-05T01:38:17Z" and info.not_after == "2019-10-05T01:38:17Z"
    assert (info.public_key_type, info.public_key_bits, info.curve) == ("RSA", 2048, None)
    assert info.signature_algorithm == "sha256WithRSAEncryption" and info.signature_hash == "sha256"
    assert info.key_usage == ("digital_signature", "key_encipherment")
    assert info.extended_key_usage == ("clientAuth", "serverAuth")
    assert info.is_ca is None and not info.self_issued
    assert info.sha256 == hashlib.sha256(der).hexdigest() and info.sha1 == hashlib.sha1(der).hexdigest()


def test_illustrated_ca_certificate():
    info = parse_certificate(corpus_der("syncsynchalt_illustrated-tls12/client/ca.crt"))
    assert info.is_ca is True and info.path_length is None and info.self_issued
    assert info.key_usage == ("key_cert_sign", "crl_sign") and info.serial == "01"


def test_fingerprint_matches_openssl():
    openssl = need_tool("openssl")
    need_corpus()
    path = CORPUS / "syncsynchalt_illustrated-tls13/server/server.crt"
    out = subprocess.run([openssl, "x509", "-in", str(path), "-noout", "-fingerprint", "-sha256", "-serial"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    fp = out.split("Fingerprint=")[1].split()[0].replace(":", "").lower()
    serial = out.split("serial=")[1].split()[0].lower()
    info = parse_certificate(corpus_der("syncsynchalt_illustrated-tls13/server/server.crt"))
    assert info.sha256 == fp and info.serial == serial


def test_ec_leaf_with_all_extensions():
    ca_key = ec.generate_private_key(ec.SECP384R1())
    key = ec.generate_private_key(ec.SECP256R1())
    der = build(key, name("www.example.test", "Example"), issuer=name("Test CA"), signer=ca_key, exts=[
        (x509.SubjectAlternativeName([x509.DNSName("www.example.test"), x509.DNSName("example.test"),
                                      x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
                                      x509.IPAddress(ipaddress.ip_address("2001:db8::1"))]), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                       encipher_only=False, decipher_only=True), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, x509.ObjectIdentifier("1.2.3.4.5")]), False),
    ], algorithm=hashes.SHA384())
    info = parse_certificate(der)
    assert info.error is None
    assert info.subject == "O=Example,CN=www.example.test" and info.issuer == "CN=Test CA"
    assert info.san_dns == ("www.example.test", "example.test")
    assert info.san_ip == ("192.0.2.7", "2001:db8::1")
    assert (info.public_key_type, info.public_key_bits, info.curve) == ("EC", 256, "secp256r1")
    assert info.signature_algorithm == "ecdsa-with-SHA384" and info.signature_hash == "sha384"
    assert info.is_ca is False and info.path_length is None
    assert info.key_usage == ("digital_signature", "key_agreement", "decipher_only")
    assert info.extended_key_usage == ("serverAuth", "1.2.3.4.5")
    assert info.serial == "0badc0de" and info.version == 3 and not info.self_issued
    assert info.not_before == "2025-01-02T03:04:05Z" and info.not_after == "2025-04-02T03:04:05Z"


def test_ca_with_path_length_and_eddsa_keys():
    key = ed25519.Ed25519PrivateKey.generate()
    der = build(key, name("Root"), exts=[(x509.BasicConstraints(ca=True, path_length=2), True)], algorithm=None)
    info = parse_certificate(der)
    assert info.error is None and info.is_ca is True and info.path_length == 2 and info.self_issued
    assert (info.public_key_type, info.public_key_bits) == ("Ed25519", 256)
    assert info.signature_algorithm == "ed25519" and info.signature_hash is None
    key = ed448.Ed448PrivateKey.generate()
    info = parse_certificate(build(key, name("Ed448"), algorithm=None))
    assert (info.public_key_type, info.public_key_bits, info.signature_algorithm) == ("Ed448", 456, "ed448")


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(nb))) + nb + body


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(header length, content length, tag) of the TLV at pos."""
    tag, first = data[pos], data[pos + 1]
    if first < 0x80:
        return 2, first, tag
    k = first & 0x7F
    return 2 + k, int.from_bytes(data[pos + 2:pos + 2 + k], "big"), tag


def make_v1_certificate() -> bytes:
    """A version 1 certificate: cryptography only builds v3, so drop the version field and re-sign."""
    key = ed25519.Ed25519PrivateKey.generate()
    cert = x509.load_der_x509_certificate(build(key, name("legacy v1"), algorithm=None))
    tbs = cert.tbs_certificate_bytes
    hl, _, _ = _read_tlv(tbs, 0)
    assert tbs[hl:hl + 5] == b"\xa0\x03\x02\x01\x02"          # [0] EXPLICIT Version v3
    tbs_v1 = _der(0x30, tbs[hl + 5:])
    sig_alg = _der(0x30, _der(0x06, b"\x2b\x65\x70"))          # id-Ed25519
    return _der(0x30, tbs_v1 + sig_alg + _der(0x03, b"\x00" + key.sign(tbs_v1)))


def test_v1_certificate_without_extensions():
    der = make_v1_certificate()
    info = parse_certificate(der)
    assert info.error is None
    assert info.version == 1 and info.subject == "CN=legacy v1" and info.self_issued
    assert info.is_ca is None and info.key_usage == () and info.extended_key_usage == ()
    assert info.san_dns == () and info.san_ip == ()


def test_rsa_key_size_and_long_serial():
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    info = parse_certificate(build(key, name("small"), serial=1 << 100))
    assert info.public_key_type == "RSA" and info.public_key_bits == 1024
    assert info.serial == "10" + "00" * 12


def test_broken_extension_is_recorded_not_raised():
    key = ec.generate_private_key(ec.SECP256R1())
    der = build(key, name("bad ext"), exts=[(x509.UnrecognizedExtension(x509.oid.ExtensionOID.KEY_USAGE,
                                                                         b"\x04\x00"), False)])
    info = parse_certificate(der)
    assert info.subject == "CN=bad ext" and info.error is not None and "extensions" in info.error
    assert info.public_key_type == "EC"


def test_garbage_never_raises():
    for data in (b"", b"garbage", b"\x30\x03\x02\x01\x00", b"\x30\x82\xff\xff"):
        info = parse_certificate(data)
        assert isinstance(info, CertInfo) and info.error
        assert info.subject == "" and info.version == 0 and info.san_dns == ()
        assert info.sha256 == hashlib.sha256(data).hexdigest()
    der = make_v1_certificate()
    for i in range(0, len(der), 7):
        assert parse_certificate(der[:i]).error is not None


def test_distinguished_names():
    der = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
                     x509.NameAttribute(NameOID.COMMON_NAME, "myCA")]).public_bytes()
    assert parse_distinguished_name(der) == DistinguishedName(der, "CN=myCA,O=Example")
    assert parse_distinguished_name(b"\x30\x00").rfc4514 == ""
    for bad in (b"", b"\x31\x00", der + b"\x00", der[:-1]):
        assert parse_distinguished_name(bad).rfc4514 is None


def test_ocsp_garbage():
    assert summarize_ocsp(b"").error
    assert summarize_ocsp(b"\x30\x03\x0a\x01\x06").response_status == "unauthorized"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_never_raises(data):
    info = parse_certificate(data)
    assert info.sha1 == hashlib.sha1(data).hexdigest()
    parse_distinguished_name(data)
    summarize_ocsp(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255))
def test_fuzz_mutated_certificate(pos, byte):
    der = bytearray(_MUTATION_BASE)
    der[pos % len(der)] = byte
    info = parse_certificate(bytes(der))
    assert isinstance(info, CertInfo)


_MUTATION_BASE = build(ec.generate_private_key(ec.SECP256R1()), name("mutate", "Org"), exts=[
    (x509.SubjectAlternativeName([x509.DNSName("a.test")]), False),
    (x509.BasicConstraints(ca=True, path_length=0), True),
    (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
])

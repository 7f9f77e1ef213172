"""Test-time certificate factory for the chain-check tests (keys cached per session).

cryptography refuses to sign certificates with SHA-1 or MD5 and always writes v3, so the
few legacy shapes (v1 CAs, SHA-1 signatures, corrupted signatures) are made by editing the
DER of a cryptography-built certificate and signing its TBS part again.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AT = datetime.datetime(2026, 1, 15, 12, 0, tzinfo=datetime.timezone.utc)   # the "capture time"
DAY = datetime.timedelta(days=1)
SERVER = [ExtendedKeyUsageOID.SERVER_AUTH]
CLIENT = [ExtendedKeyUsageOID.CLIENT_AUTH]


@functools.cache
def ec_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def rsa_key(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, bits)


@functools.cache
def ed_key(name: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlsscope test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


_serial = iter(range(1000, 10**6))


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class Issuer:
    """A certificate together with its private key, able to issue others."""

    def __init__(self, cert: x509.Certificate, key):
        self.cert, self.key = cert, key

    @property
    def der(self) -> bytes:
        return der(self.cert)


def make(cn: str, key, issuer: Issuer | None = None, *, ca: bool | None = None,
         pathlen: int | None = None, key_usage: str | None = "auto", eku=None,
         san: list[str] | None = None, not_before=AT - 30 * DAY, not_after=AT + 365 * DAY,
         skid: bool = True, akid: bool = True, subject: x509.Name | None = None,
         extra: list[tuple[x509.ExtensionType, bool]] = (), pss: bool = False, bc_critical: bool = True) -> Issuer:
    """Build a certificate (self-signed when ``issuer`` is None)."""
    subject = subject or name(cn)
    issuer_name = issuer.cert.subject if issuer else subject
    signer = issuer.key if issuer else key
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(next(_serial))
         .not_valid_before(not_before).not_valid_after(not_after))
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=bc_critical)
    if key_usage == "auto":
        key_usage = "ca" if ca else "leaf"
    if key_usage == "ca":
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
    elif key_usage == "leaf":
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if san:
        names = []
        for s in san:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                names.append(x509.DNSName(s))
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if skid:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    if akid:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False)
    for ext, critical in extra:
        b = b.add_extension(ext, critical)
    hash_alg = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    if pss:
        cert = b.sign(signer, hash_alg, rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH))
    else:
        cert = b.sign(signer, hash_alg)
    return Issuer(cert, key)


# --- DER surgery for the shapes cryptography will not build --------------------------------

def _read_tlv(data: bytes, i: int) -> tuple[int, int]:
    """(start of content, end) of the TLV at i."""
    n = data[i + 1]
    if n < 0x80:
        return i + 2, i + 2 + n
    k = n & 0x7F
    length = int.from_bytes(data[i + 2:i + 2 + k], "big")
    return i + 2 + k, i + 2 + k + length


def _elements(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        _, end = _read_tlv(data, i)
        out.append(data[i:end])
        i = end
    return out


def _enc(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(nb)]) + nb + content


_ALGS = {  # (key kind, hash) -> AlgorithmIdentifier DER
    ("rsa", "sha1"): bytes.fromhex("300d06092a864886f70d0101050500"),
    ("rsa", "md5"): bytes.fromhex("300d06092a864886f70d0101040500"),
    ("rsa", "sha256"): bytes.fromhex("300d06092a864886f70d01010b0500"),
    ("ec", "sha1"): bytes.fromhex("300906072a8648ce3d0401"),
    ("ec", "sha256"): bytes.fromhex("300a06082a8648ce3d040302"),
}


def resign(cert: Issuer, signer_key, *, hash_name: str = "sha256", v1: bool = False,
           corrupt: bool = False) -> Issuer:
    """Re-sign ``cert`` with ``signer_key``: another digest, as version 1, or with a bad signature."""
    outer = der(cert.cert)
    body_start, _ = _read_tlv(outer, 0)
    tbs, _alg, _sig = _elements(outer[body_start:])
    tbs_start, _ = _read_tlv(tbs, 0)
    parts = _elements(tbs[tbs_start:])
    if v1:
        parts = [p for p in parts if p[0] not in (0xA0, 0xA3)]      # drop version and extensions
    kind = "rsa" if isinstance(signer_key, rsa.RSAPrivateKey) else "ec"
    alg = _ALGS[(kind, hash_name)]
    sig_index = 1 if v1 else 2
    parts[sig_index] = alg
    new_tbs = _enc(0x30, b"".join(parts))
    h = {"sha1": hashes.SHA1(), "md5": hashes.MD5(), "sha256": hashes.SHA256()}[hash_name]
    if kind == "rsa":
        signature = signer_key.sign(new_tbs, padding.PKCS1v15(), h)
    else:
        signature = signer_key.sign(new_tbs, ec.ECDSA(h))
    if corrupt:
        signature = signature[:-8] + bytes(b ^ 0x5A for b in signature[-8:]) if kind == "rsa" \
            else signer_key.sign(new_tbs + b"x", ec.ECDSA(h))
    new = _enc(0x30, new_tbs + alg + _enc(0x03, b"\x00" + signature))
    return Issuer(x509.load_der_x509_certificate(new), cert.key)


def crl(issuer: Issuer, revoked_serials=(), *, last=AT - DAY, next_=AT + 7 * DAY, signer=None,
        reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise) -> bytes:
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
         .last_update(last).next_update(next_))
    for serial in revoked_serials:
        rb = (x509.RevokedCertificateBuilder().serial_number(serial)
              .revocation_date(AT - 2 * DAY))
        if reason is not None:
            rb = rb.add_extension(x509.CRLReason(reason), critical=False)
        b = b.add_revoked_certificate(rb.build())
    return b.sign(signer or issuer.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

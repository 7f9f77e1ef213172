"""Certificates as the verifier sees them, signature checks, and path building.

Path building follows OpenSSL 3's build_chain, so that the error it stops at is the one
OpenSSL reports: at each step the issuer is looked for among the trust anchors first, then
among the presented certificates; a candidate must carry the issuer's name and, where both
sides have them, a matching key identifier, and a signature algorithm fitting its key
(OpenSSL's ossl_x509_likely_issued). Among several candidates tlsscope prefers one whose
signature verifies (OpenSSL does not look at signatures here), then one valid at the capture
time, then the latest notAfter (as OpenSSL does).
"""

from __future__ import annotations

import datetime
import warnings
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtensionOID, ObjectIdentifier

from .names import name_key

# Extensions OpenSSL understands (X509_supported_extension); others marked critical fail.
_SUPPORTED_CRITICAL = {
    ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.POLICY_CONSTRAINTS, ExtensionOID.INHIBIT_ANY_POLICY,
    ExtensionOID.NAME_CONSTRAINTS, ExtensionOID.POLICY_MAPPINGS,
    ObjectIdentifier("2.16.840.1.113730.1.1"),    # netscape-cert-type
    ObjectIdentifier("1.3.6.1.5.5.7.1.14"),       # proxyCertInfo
    ObjectIdentifier("1.3.6.1.5.5.7.1.7"),        # sbgp-ipAddrBlock
    ObjectIdentifier("1.3.6.1.5.5.7.1.8"),        # sbgp-autonomousSysNum
}

_RSA_SIG_PREFIX = "1.2.840.113549.1.1."
_ECDSA_SIG_PREFIX = "1.2.840.10045.4."
_DSA_SIGS = {"1.2.840.10040.4.3", "2.16.840.1.101.3.4.3.1", "2.16.840.1.101.3.4.3.2"}


def der_element(data: bytes, i: int) -> tuple[int, int]:
    """(start of the content, end) of the DER element at ``i`` (IndexError when cut short)."""
    n = data[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[i:i + k], "big")
        i += k
    return i, i + n


def tbs_fields(der: bytes) -> list[tuple[int, int, int]]:
    """(tag, start, end) of each element of tbsCertificate, in order; [] when the DER is odd."""
    try:
        start, _ = der_element(der, 0)                 # Certificate SEQUENCE
        i, end = der_element(der, start)               # tbsCertificate
        out = []
        while i < end:
            c_start, c_end = der_element(der, i)
            out.append((der[i], i, c_end))
            i = c_end
        return out
    except IndexError:
        return []


_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")       # OID 1.2.840.10045.2.1


def has_explicit_ec_parameters(der: bytes) -> bool:
    """An EC public key whose curve is spelt out (specifiedCurve) instead of named: what OpenSSL 3
    rejects in a chain (X509_V_ERR_EC_KEY_EXPLICIT_PARAMS; the CVE-2020-0601 class of forgery)."""
    fields = tbs_fields(der)
    if fields and fields[0][0] == 0xA0:                # [0] version
        fields = fields[1:]
    if len(fields) < 6:
        return False
    _tag, spki, _end = fields[5]                       # serial, signature, issuer, validity, subject, SPKI
    try:
        a_start, _ = der_element(der, spki)
        alg_start, alg_end = der_element(der, a_start)     # AlgorithmIdentifier
        oid_end = der_element(der, alg_start)[1]
        return der[alg_start:oid_end] == _EC_PUBLIC_KEY and oid_end < alg_end and der[oid_end] == 0x30
    except IndexError:
        return False


def _ext(cert: x509.Certificate, oid):
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


@dataclass(slots=True, eq=False)
class CertInfo:
    """One parsed certificate with what path building and the checks need, computed once."""

    der: bytes
    cert: x509.Certificate
    subject: str                       # RFC 4514
    subject_key: tuple
    issuer_key: tuple
    version: int                       # 1 or 3 (cryptography reports v2 as an error)
    ca: bool | None                    # basicConstraints cA; None when the extension is absent
    path_length: int | None
    key_usage: x509.KeyUsage | None
    eku: tuple[ObjectIdentifier, ...] | None
    ski: bytes | None
    aki: x509.AuthorityKeyIdentifier | None
    unhandled_critical: tuple[str, ...]
    self_issued: bool
    self_signed: bool = False
    trusted: bool = False              # came from the trust store
    index: int = -1                    # position in the presented chain, -1 for anchors
    public_key: object = field(default=None)
    serial: int = 0

    @classmethod
    def parse(cls, der: bytes, index: int = -1, trusted: bool = False) -> "CertInfo":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
        return cls.from_cert(cert, index, trusted, der)

    @classmethod
    def from_cert(cls, cert: x509.Certificate, index: int = -1, trusted: bool = False,
                  der: bytes | None = None) -> "CertInfo":
        if der is None:
            der = cert.public_bytes(Encoding.DER)
        exts = cert.extensions                         # raises ValueError on malformed ones
        cert.not_valid_before_utc, cert.not_valid_after_utc      # likewise for bad times, now
        bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
        ku = _ext(cert, ExtensionOID.KEY_USAGE)
        eku = _ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
        ski = _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
        aki = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
        unhandled = tuple(e.oid.dotted_string for e in exts
                          if e.critical and e.oid not in _SUPPORTED_CRITICAL)
        try:
            public_key = cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            public_key = None
        info = cls(
            der=der, cert=cert, subject=cert.subject.rfc4514_string(),
            subject_key=name_key(cert.subject), issuer_key=name_key(cert.issuer),
            version=1 if cert.version == x509.Version.v1 else 3,
            ca=bc.value.ca if bc else None, path_length=bc.value.path_length if bc else None,
            key_usage=ku.value if ku else None,
            eku=tuple(eku.value) if eku else None,
            ski=ski.value.digest if ski else None, aki=aki.value if aki else None,
            unhandled_critical=unhandled, self_issued=False, trusted=trusted, index=index,
            public_key=public_key)
        with warnings.catch_warnings():      # RFC 5280 forbids serials <= 0; they still occur
            warnings.simplefilter("ignore")
            info.serial = cert.serial_number
        info.self_issued = info.subject_key == info.issuer_key
        # OpenSSL's EXFLAG_SS: self-issued, own key identifier, fitting signature algorithm
        info.self_signed = info.self_issued and akid_matches(info, info) and sig_alg_fits(info, info)
        return info

    @property
    def not_before(self) -> datetime.datetime:
        return self.cert.not_valid_before_utc

    @property
    def not_after(self) -> datetime.datetime:
        return self.cert.not_valid_after_utc

    def valid_at(self, at: datetime.datetime) -> bool:
        # OpenSSL's X509_cmp_time counts equality as "before": notAfter == at is expired.
        return self.not_before <= at < self.not_after

    def same_key(self, other: "CertInfo") -> bool:
        return self.public_key is not None and other.public_key is not None and \
            _spki(self) == _spki(other)


def _spki(info: CertInfo) -> bytes:
    return info.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def akid_matches(issuer: CertInfo, subject: CertInfo) -> bool:
    """X509_check_akid: only identifiers present on both sides are compared."""
    aki = subject.aki
    if aki is None:
        return True
    if aki.key_identifier is not None and issuer.ski is not None and aki.key_identifier != issuer.ski:
        return False
    if aki.authority_cert_serial_number is not None and \
            aki.authority_cert_serial_number != issuer.serial:
        return False
    if aki.authority_cert_issuer:
        dirs = [n.value for n in aki.authority_cert_issuer if isinstance(n, x509.DirectoryName)]
        if dirs and not any(name_key(d) == issuer.issuer_key for d in dirs):
            return False
    return True


def sig_alg_fits(issuer: CertInfo, subject: CertInfo) -> bool:
    """The subject's signature algorithm can come from the issuer's key type."""
    key = issuer.public_key
    oid = subject.cert.signature_algorithm_oid.dotted_string
    if key is None:
        return True
    if isinstance(key, rsa.RSAPublicKey):
        return oid.startswith(_RSA_SIG_PREFIX)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return oid.startswith(_ECDSA_SIG_PREFIX)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return oid == "1.3.101.112"
    if isinstance(key, ed448.Ed448PublicKey):
        return oid == "1.3.101.113"
    if isinstance(key, dsa.DSAPublicKey):
        return oid in _DSA_SIGS
    return True


def likely_issued(issuer: CertInfo, subject: CertInfo) -> bool:
    return issuer.subject_key == subject.issuer_key and akid_matches(issuer, subject) \
        and sig_alg_fits(issuer, subject)


def verify_signature(public_key, signature: bytes, data: bytes, hash_algorithm,
                     params=None) -> bool:
    """One signature with any key type cryptography supports; False on any failure."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            pad = params if isinstance(params, (padding.PSS, padding.PKCS1v15)) else padding.PKCS1v15()
            public_key.verify(signature, data, pad, hash_algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            public_key.verify(signature, data)
        elif isinstance(public_key, dsa.DSAPublicKey):
            public_key.verify(signature, data, hash_algorithm)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def cert_signed_by(subject: CertInfo, issuer: CertInfo) -> bool:
    cert = subject.cert
    try:
        hash_algorithm = cert.signature_hash_algorithm
        params = cert.signature_algorithm_parameters
    except (UnsupportedAlgorithm, ValueError):
        return False
    return verify_signature(issuer.public_key, cert.signature, cert.tbs_certificate_bytes,
                            hash_algorithm, params)


@dataclass(slots=True)
class BuiltPath:
    path: list[CertInfo]           # leaf first; anchors (trusted=True) at the end when anchored
    anchored: bool                 # ends in a trust anchor
    unused: list[CertInfo]         # presented certificates the path does not use
    out_of_order: bool             # the used intermediates were not presented leaf-upwards


def _pick(cands: list[CertInfo], subject: CertInfo, at: datetime.datetime) -> CertInfo:
    return max(cands, key=lambda c: (cert_signed_by(subject, c), c.valid_at(at), c.not_after))


def build_path(presented: list[CertInfo], anchors: list[CertInfo] | None,
               at: datetime.datetime, max_depth: int = 100, *, partial_chain: bool = False) -> BuiltPath:
    """Leaf to anchor (or as far as it goes); ``anchors`` None means no trust store.

    ``partial_chain`` is OpenSSL's -partial_chain (X509_V_FLAG_PARTIAL_CHAIN): any certificate of the
    trust store ends the path as its anchor, self-signed or not, and the first one reached is where
    the path stops (openssl verify -show_chain stops there even when the store also holds its issuer)."""
    leaf = presented[0]
    path = [leaf]
    anchored = False
    if anchors is not None and (leaf.self_signed or partial_chain):
        # a self-signed leaf is trusted when the store holds that very certificate; a leaf
        # that is not self-signed is an anchor only with -partial_chain
        twin = next((a for a in anchors if a.der == leaf.der), None)
        if twin is not None:
            path[0] = twin
            anchored = True
            if partial_chain:
                return BuiltPath(path, True, [c for c in presented[1:] if c.der != leaf.der], False)
    in_trust = path[0].trusted
    while len(path) <= max_depth:
        cur = path[-1]
        if cur.self_signed:
            anchored = anchored or cur.trusted
            break
        used = {id(c) for c in path}
        cands = [a for a in (anchors or []) if id(a) not in used and likely_issued(a, cur)]
        if cands:
            path.append(_pick(cands, cur, at))
            in_trust = True
            if partial_chain:
                anchored = True
                break
            continue
        if in_trust:
            break
        cands = [c for c in presented[1:] if id(c) not in used and likely_issued(c, cur)]
        if not cands:
            break
        path.append(_pick(cands, cur, at))
    if path[-1].trusted and path[-1].self_signed:
        anchored = True
    used_ids = {id(c) for c in path}
    unused = [c for c in presented[1:] if id(c) not in used_ids
              and not any(p.der == c.der for p in path)]
    intermediates = [c.index for c in path[1:] if not c.trusted]
    out_of_order = intermediates != sorted(intermediates)
    return BuiltPath(path, anchored, unused, out_of_order)

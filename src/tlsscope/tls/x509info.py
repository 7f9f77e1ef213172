"""JSON-friendly summaries of X.509 material seen in a handshake.

Certificates, distinguished names (CertificateRequest, certificate_authorities)
and OCSP responses (CertificateStatus) are summarised with ``cryptography``.
Every function here records parse problems in the result and never raises:
what a peer sends is data to report, not a reason to stop.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.x509 import ocsp

__all__ = ["CertInfo", "DistinguishedName", "OCSPSummary", "parse_certificate",
           "parse_distinguished_name", "summarize_ocsp"]


@dataclass(frozen=True, slots=True)
class CertInfo:
    subject: str = ""
    issuer: str = ""
    serial: str = ""                   # hex, big-endian, no separators
    version: int = 0                   # 1 or 3 (2 for the rare v2); 0 when unknown
    not_before: str = ""               # ISO 8601 UTC, e.g. 2018-10-05T01:38:17Z
    not_after: str = ""
    san_dns: tuple[str, ...] = ()
    san_ip: tuple[str, ...] = ()
    public_key_type: str = ""
    public_key_bits: int | None = None
    curve: str | None = None
    signature_algorithm: str = ""
    signature_hash: str | None = None
    sha256: str = ""
    sha1: str = ""
    is_ca: bool | None = None          # None: no basicConstraints extension
    path_length: int | None = None
    key_usage: tuple[str, ...] = ()
    extended_key_usage: tuple[str, ...] = ()
    self_issued: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DistinguishedName:
    der: bytes
    rfc4514: str | None                # None when the DER is not a Name


@dataclass(frozen=True, slots=True)
class OCSPSummary:
    response_status: str = ""          # "successful", "try_later", ...
    cert_status: str | None = None     # "good" | "revoked" | "unknown" (first SingleResponse)
    this_update: str | None = None
    next_update: str | None = None
    produced_at: str | None = None
    serial: str | None = None          # hex serial of the certificate the response is about
    revocation_time: str | None = None
    responses: int = 0                 # number of SingleResponses
    error: str | None = None


def _iso(t: datetime.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_attr(obj: object, name: str) -> datetime.datetime | None:
    """``obj.<name>_utc`` (cryptography >= 42/43), else the older naive-UTC ``obj.<name>``."""
    try:
        return getattr(obj, name + "_utc")
    except AttributeError:
        return getattr(obj, name)


def _hex_int(n: int) -> str:
    if n < 0:   # negative serials exist in the wild; show their DER two's-complement bytes
        n &= (1 << ((n.bit_length() + 8) // 8 * 8)) - 1
    h = format(n, "x")
    return h if len(h) % 2 == 0 else "0" + h


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    # cryptography knows the conventional names ("sha256WithRSAEncryption", "serverAuth")
    # but exposes them only as the private _name; fall back to the dotted form.
    name = getattr(oid, "_name", None)
    if not name or name == "Unknown OID":
        return oid.dotted_string
    return name


def _key_summary(key: object) -> tuple[str, int | None, str | None]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.key_size, key.curve.name
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, None
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None
    if isinstance(key, dh.DHPublicKey):
        return "DH", key.key_size, None
    if isinstance(key, x25519.X25519PublicKey):
        return "X25519", 256, None
    if isinstance(key, x448.X448PublicKey):
        return "X448", 448, None
    return type(key).__name__, None, None


_KEY_USAGE_FLAGS = ("digital_signature", "content_commitment", "key_encipherment",
                    "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")


def parse_certificate(der: bytes) -> CertInfo:
    """Summarise one DER certificate; problems go to ``error`` (first one wins)."""
    der = bytes(der)
    if len(der) > _CACHE_MAX_DER:     # odd giants: do not let them pin memory in the cache
        return _parse_certificate.__wrapped__(der)
    return _parse_certificate(der)


_CACHE_MAX_DER = 16384


# A capture repeats the same few certificates in thousands of handshakes; CertInfo is
# frozen, so one summary per distinct DER can be shared (bounded by the cache size).
@functools.lru_cache(maxsize=1024)
def _parse_certificate(der: bytes) -> CertInfo:
    out: dict[str, object] = {"sha256": hashlib.sha256(der).hexdigest(),
                              "sha1": hashlib.sha1(der).hexdigest()}
    errors: list[str] = []
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception as e:  # cryptography raises ValueError and friends; any is a parse failure
        return CertInfo(error=f"certificate: {e}", **out)  # type: ignore[arg-type]

    def field(name: str, fn) -> None:
        try:
            out[name] = fn()
        except Exception as e:
            errors.append(f"{name}: {e}")

    field("subject", lambda: cert.subject.rfc4514_string())
    field("issuer", lambda: cert.issuer.rfc4514_string())
    field("self_issued", lambda: cert.subject.public_bytes() == cert.issuer.public_bytes())
    field("serial", lambda: _hex_int(cert.serial_number))
    field("version", lambda: cert.version.value + 1)
    field("not_before", lambda: _iso(_utc_attr(cert, "not_valid_before")))
    field("not_after", lambda: _iso(_utc_attr(cert, "not_valid_after")))
    field("signature_algorithm", lambda: _oid_name(cert.signature_algorithm_oid))

    def sig_hash() -> str | None:
        h = cert.signature_hash_algorithm
        return None if h is None else h.name
    field("signature_hash", sig_hash)

    def key() -> None:
        t, bits, curve = _key_summary(cert.public_key())
        out["public_key_type"], out["public_key_bits"], out["curve"] = t, bits, curve
    try:
        key()
    except Exception as e:
        errors.append(f"public_key: {e}")
        try:   # still name the algorithm when cryptography cannot load the key
            out["public_key_type"] = _oid_name(cert.public_key_algorithm_oid)
        except Exception:
            pass

    try:
        exts = cert.extensions
    except Exception as e:
        errors.append(f"extensions: {e}")
        exts = None
    if exts is not None:
        for ext in exts:
            v = ext.value
            try:
                if isinstance(v, x509.SubjectAlternativeName):
                    out["san_dns"] = tuple(v.get_values_for_type(x509.DNSName))
                    out["san_ip"] = tuple(str(a) for a in v.get_values_for_type(x509.IPAddress))
                elif isinstance(v, x509.BasicConstraints):
                    out["is_ca"], out["path_length"] = v.ca, v.path_length
                elif isinstance(v, x509.KeyUsage):
                    names = [f for f in _KEY_USAGE_FLAGS if getattr(v, f)]
                    if v.key_agreement:  # the two flags are only defined with key_agreement
                        names += [f for f in ("encipher_only", "decipher_only") if getattr(v, f)]
                    out["key_usage"] = tuple(names)
                elif isinstance(v, x509.ExtendedKeyUsage):
                    out["extended_key_usage"] = tuple(_oid_name(o) for o in v)
            except Exception as e:
                errors.append(f"{_oid_name(ext.oid)}: {e}")
    return CertInfo(error="; ".join(errors) or None, **out)  # type: ignore[arg-type]


def _der_tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    nb = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(nb))) + nb + body


# cryptography has no public "load a Name from DER"; wrap it as the subject of a
# minimal CSR (dummy key and signature, never verified) and let it parse that.
_DUMMY_ALG = _der_tlv(0x30, _der_tlv(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
_DUMMY_SPKI = _der_tlv(0x30, _DUMMY_ALG + _der_tlv(0x03, b"\x00"))


def parse_distinguished_name(der: bytes) -> DistinguishedName:
    der = bytes(der)
    if len(der) > _CACHE_MAX_DER:
        return _parse_distinguished_name.__wrapped__(der)
    return _parse_distinguished_name(der)


@functools.lru_cache(maxsize=1024)      # the same CA names in every CertificateRequest
def _parse_distinguished_name(der: bytes) -> DistinguishedName:
    info = _der_tlv(0x30, b"\x02\x01\x00" + der + _DUMMY_SPKI + b"\xa0\x00")
    csr = _der_tlv(0x30, info + _DUMMY_ALG + _der_tlv(0x03, b"\x00"))
    try:
        return DistinguishedName(der, x509.load_der_x509_csr(csr).subject.rfc4514_string())
    except Exception:
        return DistinguishedName(der, None)


def summarize_ocsp(der: bytes) -> OCSPSummary:
    """Summarise an OCSPResponse (RFC 6960); a parse failure is recorded in ``error``."""
    der = bytes(der)
    if len(der) > _CACHE_MAX_DER:
        return _summarize_ocsp.__wrapped__(der)
    return _summarize_ocsp(der)


@functools.lru_cache(maxsize=256)       # a server staples the same response for hours
def _summarize_ocsp(der: bytes) -> OCSPSummary:
    try:
        resp = ocsp.load_der_ocsp_response(der)
        status = resp.response_status.name.lower()
    except Exception as e:
        return OCSPSummary(error=f"ocsp: {e}")
    if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OCSPSummary(response_status=status)
    out: dict[str, object] = {"response_status": status}
    try:
        out["produced_at"] = _iso(_utc_attr(resp, "produced_at"))
        singles = list(resp.responses)
        out["responses"] = len(singles)
        if singles:
            s = singles[0]
            out["cert_status"] = s.certificate_status.name.lower()
            out["this_update"] = _iso(_utc_attr(s, "this_update"))
            out["next_update"] = _iso(_utc_attr(s, "next_update"))
            out["serial"] = _hex_int(s.serial_number)
            out["revocation_time"] = _iso(_utc_attr(s, "revocation_time"))
    except Exception as e:
        out["error"] = f"ocsp: {e}"
    return OCSPSummary(**out)  # type: ignore[arg-type]

"""Revocation: CRLs from --crl (as OpenSSL's -crl_check does) and stapled OCSP responses."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from ..findings import Finding, Severity
from . import openssl_status as st
from .chain import CertInfo, cert_signed_by, verify_signature
from .names import name_key
from .store import CrlSet

_SUPPORTED_CRL_CRITICAL = {ExtensionOID.ISSUING_DISTRIBUTION_POINT, ExtensionOID.DELTA_CRL_INDICATOR,
                           ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.CRL_NUMBER}


@dataclass(frozen=True, slots=True)
class RevocationError:
    status: str          # OpenSSL text
    finding: Finding


def _fmt(t: datetime.datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%SZ") if t else "never"


def _crl_valid_at(crl: x509.CertificateRevocationList, at: datetime.datetime) -> bool:
    nxt = crl.next_update_utc
    return crl.last_update_utc <= at and (nxt is None or at < nxt)


def _crl_signed_by(crl: x509.CertificateRevocationList, issuer: CertInfo | None) -> bool:
    if issuer is None or issuer.public_key is None:
        return False
    try:
        return crl.is_signature_valid(issuer.public_key)
    except (TypeError, ValueError):
        return False


def check_crl(cert: CertInfo, issuer: CertInfo | None, crls: CrlSet,
              at: datetime.datetime, required: bool) -> list[RevocationError]:
    """OpenSSL's check_cert for one certificate: get a CRL, check it, look the serial up.

    ``issuer`` is the next certificate up the path (None when unknown). ``required`` makes a
    missing CRL an error (the leaf, as with -crl_check); for others a missing CRL is fine.
    """
    found = crls.by_issuer(cert.issuer_key)
    if not found:
        if not required:
            return []
        return [RevocationError(st.UNABLE_TO_GET_CRL, Finding(
            Severity.MEDIUM, "crl_missing",
            f"no CRL from {cert.cert.issuer.rfc4514_string()} among the --crl files: "
            f"revocation of {cert.subject} cannot be checked"))]
    # OpenSSL scores candidates; time validity and a fitting signer are what matter here
    crl = max(found, key=lambda c: (_crl_valid_at(c, at), _crl_signed_by(c, issuer),
                                    c.last_update_utc))
    errors: list[RevocationError] = []
    who = cert.cert.issuer.rfc4514_string()
    if issuer is None:
        errors.append(RevocationError(st.UNABLE_TO_GET_CRL_ISSUER, Finding(
            Severity.MEDIUM, "crl_issuer_unknown",
            f"the CRL of {who} cannot be verified: its issuer's certificate is not available")))
    elif issuer.key_usage is not None and not issuer.key_usage.crl_sign:
        errors.append(RevocationError(st.KEYUSAGE_NO_CRL_SIGN, Finding(
            Severity.MEDIUM, "crl_no_crlsign",
            f"{issuer.subject} signs CRLs but its keyUsage lacks cRLSign")))
    if crl.last_update_utc > at:
        errors.append(RevocationError(st.CRL_NOT_YET_VALID, Finding(
            Severity.MEDIUM, "crl_not_yet_valid",
            f"the CRL of {who} is valid only from {_fmt(crl.last_update_utc)}, after the capture")))
    elif crl.next_update_utc is not None and crl.next_update_utc <= at:
        errors.append(RevocationError(st.CRL_HAS_EXPIRED, Finding(
            Severity.MEDIUM, "crl_expired",
            f"the CRL of {who} expired at {_fmt(crl.next_update_utc)} (nextUpdate), before the capture")))
    if issuer is not None and not _crl_signed_by(crl, issuer):
        errors.append(RevocationError(st.CRL_SIGNATURE_FAILURE, Finding(
            Severity.HIGH, "crl_bad_signature",
            f"the CRL naming {who} as issuer is not signed by {issuer.subject}'s key")))
    if any(e.critical and e.oid not in _SUPPORTED_CRL_CRITICAL for e in crl.extensions):
        errors.append(RevocationError("unhandled critical CRL extension", Finding(
            Severity.MEDIUM, "crl_unhandled_critical_extension",
            f"the CRL of {who} has a critical extension OpenSSL does not handle")))
    # a scan, not get_revoked_certificate_by_serial_number: that refuses negative serials
    entry = next((e for e in crl if e.serial_number == cert.serial), None)
    if entry is not None:
        reason = None
        for ext in entry.extensions:
            if isinstance(ext.value, x509.CRLReason):
                reason = ext.value.reason
        if reason != x509.ReasonFlags.remove_from_crl:
            why = f", reason {reason.value}" if reason is not None else ""
            errors.append(RevocationError(st.CERT_REVOKED, Finding(
                Severity.CRITICAL, "revoked",
                f"{cert.subject} (serial {cert.serial:#x}) was revoked on "
                f"{_fmt(entry.revocation_date_utc)}{why}")))
    return errors


def check_ocsp(response: bytes, leaf: CertInfo, issuer: CertInfo | None,
               at: datetime.datetime) -> tuple[list[Finding], bool]:
    """A stapled OCSP response; returns the findings and whether it says "revoked"."""
    try:
        return _check_ocsp(ocsp.load_der_ocsp_response(response), leaf, issuer, at)
    except Exception as exc:   # noqa: BLE001 - cryptography parses lazily and not only raises ValueError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [Finding(Severity.MEDIUM, "ocsp_malformed",
                        f"the stapled OCSP response does not decode: {reason}")], False


def _check_ocsp(resp: ocsp.OCSPResponse, leaf: CertInfo, issuer: CertInfo | None,
                at: datetime.datetime) -> tuple[list[Finding], bool]:
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return [Finding(Severity.LOW, "ocsp_unsuccessful",
                        f"the stapled OCSP response has status {resp.response_status.name.lower()}")], False
    findings: list[Finding] = []
    single = None
    for one in resp.responses:
        if one.serial_number != leaf.serial:
            continue
        if issuer is not None:
            req = ocsp.OCSPRequestBuilder().add_certificate(leaf.cert, issuer.cert, one.hash_algorithm).build()
            if req.issuer_key_hash != one.issuer_key_hash:
                continue
        single = one
        break
    if single is None:
        return [Finding(Severity.MEDIUM, "ocsp_wrong_certificate",
                        "the stapled OCSP response does not cover the server's certificate")], False
    if issuer is not None:
        signer = _ocsp_signer(resp, issuer)
        if signer is None or not verify_signature(signer, resp.signature, resp.tbs_response_bytes,
                                                  resp.signature_hash_algorithm):
            findings.append(Finding(Severity.HIGH, "ocsp_bad_signature",
                                    "the stapled OCSP response is not signed by the issuer "
                                    "or a responder it authorised"))
    if single.this_update_utc > at:
        findings.append(Finding(Severity.MEDIUM, "ocsp_not_yet_valid",
                                f"the stapled OCSP response is valid only from {_fmt(single.this_update_utc)}"))
    elif single.next_update_utc is not None and single.next_update_utc <= at:
        findings.append(Finding(Severity.MEDIUM, "ocsp_expired",
                                f"the stapled OCSP response expired at {_fmt(single.next_update_utc)}"))
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.REVOKED:
        why = f", reason {single.revocation_reason.value}" if single.revocation_reason else ""
        findings.append(Finding(Severity.CRITICAL, "ocsp_revoked",
                                f"the stapled OCSP response says {leaf.subject} was revoked on "
                                f"{_fmt(single.revocation_time_utc)}{why}"))
        return findings, True
    if status == ocsp.OCSPCertStatus.UNKNOWN:
        findings.append(Finding(Severity.LOW, "ocsp_unknown",
                                "the stapled OCSP response says the certificate is unknown to the responder"))
    else:
        findings.append(Finding(Severity.INFO, "ocsp_good",
                                f"stapled OCSP response: good (produced {_fmt(resp.produced_at_utc)})"))
    return findings, False


def _ocsp_signer(resp: ocsp.OCSPResponse, issuer: CertInfo):
    """The issuer's key, or a delegated responder's that the issuer signed for OCSP signing."""
    def names(info: CertInfo) -> bool:
        if resp.responder_name is not None:
            return info.subject_key == name_key(resp.responder_name)
        req_hash = hashes.Hash(hashes.SHA1())
        spki = info.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        req_hash.update(_bit_string_contents(spki))
        return req_hash.finalize() == resp.responder_key_hash
    if issuer.public_key is not None and names(issuer):
        return issuer.public_key
    for cert in resp.certificates:
        try:
            info = CertInfo.from_cert(cert)
        except Exception:   # noqa: BLE001 - an unreadable responder certificate authorises nothing
            continue
        if info.public_key is None or not names(info) or not cert_signed_by(info, issuer):
            continue
        if info.eku is not None and ExtendedKeyUsageOID.OCSP_SIGNING in info.eku:
            return info.public_key
    return None


def _bit_string_contents(spki: bytes) -> bytes:
    """The subjectPublicKey BIT STRING value (without the unused-bits byte) of a DER SPKI."""
    def skip_header(b: bytes, i: int) -> tuple[int, int]:
        n = b[i + 1]
        if n < 0x80:
            return i + 2, n
        k = n & 0x7F
        return i + 2 + k, int.from_bytes(b[i + 2:i + 2 + k], "big")
    body, _ = skip_header(spki, 0)                 # SEQUENCE
    alg_start, alg_len = skip_header(spki, body)   # AlgorithmIdentifier
    bit, bit_len = skip_header(spki, alg_start + alg_len)
    return spki[bit + 1:bit + bit_len]

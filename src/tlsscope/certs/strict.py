"""RFC 5280 profile checks that OpenSSL makes only with -x509_strict (X509_V_FLAG_X509_STRICT).

Python 3.13 turned the flag on in ``ssl.create_default_context()`` (VERIFY_X509_STRICT), so a private
CA that OpenSSL, nginx and curl accept may be refused by a Python client: a CA whose basicConstraints
is not critical, a CA without keyUsage or subjectKeyIdentifier, a leaf without authorityKeyIdentifier.
:func:`strict_problems` lists them for one certificate of a path, in the order OpenSSL's
check_extensions tests them, with the text its verifier reports.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from .chain import CertInfo, der_element, tbs_fields

PATHLEN_INVALID_FOR_NON_CA = "Path length invalid for non-CA cert"
PATHLEN_WITHOUT_KU_KEY_CERT_SIGN = "Path length given without key usage keyCertSign"
CA_BCONS_NOT_CRITICAL = "Basic Constraints of CA cert not marked critical"
CA_CERT_MISSING_KEY_USAGE = "CA cert does not include key usage extension"
KU_KEY_CERT_SIGN_INVALID_FOR_NON_CA = "Key usage keyCertSign invalid for non-CA cert"
ISSUER_NAME_EMPTY = "Issuer name empty"
SUBJECT_NAME_EMPTY = "Subject name empty"
EMPTY_SUBJECT_SAN_NOT_CRITICAL = "Subject empty and Subject Alt Name extension not critical"
EMPTY_SUBJECT_ALT_NAME = "Empty Subject Alternative Name extension"
SIGNATURE_ALGORITHM_INCONSISTENCY = "cert info signature and signature algorithm mismatch"
AUTHORITY_KEY_IDENTIFIER_CRITICAL = "Authority Key Identifier marked critical"
SUBJECT_KEY_IDENTIFIER_CRITICAL = "Subject Key Identifier marked critical"
MISSING_AUTHORITY_KEY_IDENTIFIER = "Missing Authority Key Identifier"
MISSING_SUBJECT_KEY_IDENTIFIER = "Missing Subject Key Identifier"
EXTENSIONS_REQUIRE_VERSION_3 = "Using cert extension requires at least X509v3"


def _ext(cert: x509.Certificate, oid):
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def _signature_algorithms(der: bytes) -> tuple[bytes, bytes] | None:
    """The AlgorithmIdentifier inside tbsCertificate and the one after it, as DER; None if odd."""
    fields = tbs_fields(der)
    if fields and fields[0][0] == 0xA0:                # [0] version
        fields = fields[1:]
    if len(fields) < 2:
        return None
    try:
        tbs_end = der_element(der, der_element(der, 0)[0])[1]
        outer = der[tbs_end:der_element(der, tbs_end)[1]]
    except IndexError:
        return None
    _tag, start, end = fields[1]                       # after serialNumber
    return der[start:end], outer


def strict_problems(x: CertInfo, i: int, num: int) -> list[tuple[str, str]]:
    """(OpenSSL status, what is wrong) for certificate ``i`` of a path of ``num`` (leaf first), as
    -x509_strict sees it; OpenSSL applies these only to paths of more than one certificate."""
    cert = x.cert
    out: list[tuple[str, str]] = []
    is_ca = bool(x.ca)                                 # EXFLAG_CA: basicConstraints cA TRUE
    ku = x.key_usage
    # these checks read OpenSSL's ex_kusage bits, which are all clear without the extension
    cert_sign = ku is not None and ku.key_cert_sign
    crl_sign = ku is not None and ku.crl_sign
    if x.path_length is not None:
        if not is_ca:
            out.append((PATHLEN_INVALID_FOR_NON_CA, "has a pathLenConstraint but is not a CA"))
        if not cert_sign:
            out.append((PATHLEN_WITHOUT_KU_KEY_CERT_SIGN, "has a pathLenConstraint but its keyUsage lacks "
                        "keyCertSign"))
    bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if is_ca and bc is not None and not bc.critical:
        out.append((CA_BCONS_NOT_CRITICAL, "is a CA whose basicConstraints extension is not marked critical"))
    if is_ca and ku is None:
        out.append((CA_CERT_MISSING_KEY_USAGE, "is a CA without a keyUsage extension"))
    elif not is_ca and ku is not None and ku.key_cert_sign:
        out.append((KU_KEY_CERT_SIGN_INVALID_FOR_NON_CA, "allows keyCertSign but is not a CA"))
    if not len(cert.issuer):
        out.append((ISSUER_NAME_EMPTY, "has an empty issuer name"))
    san = _ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    if not len(cert.subject):
        if is_ca or crl_sign or san is None:
            out.append((SUBJECT_NAME_EMPTY, "has an empty subject name"))
        if san is not None and not san.critical:
            out.append((EMPTY_SUBJECT_SAN_NOT_CRITICAL, "has an empty subject and a subjectAltName extension "
                        "not marked critical"))
    if san is not None and not len(san.value):
        out.append((EMPTY_SUBJECT_ALT_NAME, "has an empty subjectAltName extension"))
    algs = _signature_algorithms(x.der)
    if algs is not None and algs[0] != algs[1]:
        out.append((SIGNATURE_ALGORITHM_INCONSISTENCY, "names different signature algorithms inside and "
                    "outside tbsCertificate"))
    aki = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    ski = _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if aki is not None and aki.critical:
        out.append((AUTHORITY_KEY_IDENTIFIER_CRITICAL, "has its authorityKeyIdentifier marked critical"))
    if ski is not None and ski.critical:
        out.append((SUBJECT_KEY_IDENTIFIER_CRITICAL, "has its subjectKeyIdentifier marked critical"))
    if x.version == 3:
        if i + 1 < num and (aki is None or aki.value.key_identifier is None):
            out.append((MISSING_AUTHORITY_KEY_IDENTIFIER, "has no authorityKeyIdentifier keyIdentifier"))
        if is_ca and ski is None:
            out.append((MISSING_SUBJECT_KEY_IDENTIFIER, "is a CA without a subjectKeyIdentifier"))
    elif len(cert.extensions):
        out.append((EXTENSIONS_REQUIRE_VERSION_3, "carries extensions but is not an X.509 v3 certificate"))
    return out

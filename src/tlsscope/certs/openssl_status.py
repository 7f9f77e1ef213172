"""OpenSSL 3 verifier vocabulary: X509_verify_cert_error_string texts and security levels.

tlsscope reports, next to its own findings, the text OpenSSL's verifier gives for the
first error it meets, so a user can connect a failed handshake to what a peer logged.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

OK = "ok"
UNABLE_TO_GET_ISSUER_CERT = "unable to get issuer certificate"
UNABLE_TO_GET_CRL = "unable to get certificate CRL"
CERT_SIGNATURE_FAILURE = "certificate signature failure"
CRL_SIGNATURE_FAILURE = "CRL signature failure"
CERT_NOT_YET_VALID = "certificate is not yet valid"
CERT_HAS_EXPIRED = "certificate has expired"
CRL_NOT_YET_VALID = "CRL is not yet valid"
CRL_HAS_EXPIRED = "CRL has expired"
DEPTH_ZERO_SELF_SIGNED_CERT = "self-signed certificate"
SELF_SIGNED_CERT_IN_CHAIN = "self-signed certificate in certificate chain"
UNABLE_TO_GET_ISSUER_CERT_LOCALLY = "unable to get local issuer certificate"
UNABLE_TO_VERIFY_LEAF_SIGNATURE = "unable to verify the first certificate"
CERT_CHAIN_TOO_LONG = "certificate chain too long"
CERT_REVOKED = "certificate revoked"
INVALID_CA = "invalid CA certificate"
PATH_LENGTH_EXCEEDED = "path length constraint exceeded"
INVALID_PURPOSE = "unsuitable certificate purpose"
UNABLE_TO_GET_CRL_ISSUER = "unable to get CRL issuer certificate"
UNHANDLED_CRITICAL_EXTENSION = "unhandled critical extension"
KEYUSAGE_NO_CRL_SIGN = "key usage does not include CRL signing"
UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY = "unable to decode issuer public key"
HOSTNAME_MISMATCH = "hostname mismatch"
IP_ADDRESS_MISMATCH = "IP address mismatch"
EE_KEY_TOO_SMALL = "EE certificate key too weak"
CA_KEY_TOO_SMALL = "CA certificate key too weak"
CA_MD_TOO_WEAK = "CA signature digest algorithm too weak"
PERMITTED_VIOLATION = "permitted subtree violation"
EXCLUDED_VIOLATION = "excluded subtree violation"
UNSUPPORTED_CONSTRAINT_TYPE = "unsupported name constraint type"
EC_KEY_EXPLICIT_PARAMS = "Certificate public key has explicit ECC parameters"

# Minimum security bits per level (ssl/ssl_cert.c, crypto/x509/x509_vfy.c).
_MINBITS = {1: 80, 2: 112, 3: 128, 4: 192, 5: 256}

# The level tlsscope assumes for the peer's verifier: Debian, Ubuntu and Fedora ship
# OpenSSL 3 configured at SECLEVEL=2 (upstream's built-in default is 1).
DEFAULT_SECURITY_LEVEL = 2



def _is_ffdh(key) -> bool:
    # by class name: touching cryptography's deprecated FFDH classes emits a warning every time
    return type(key).__name__ == "DHPublicKey"

def min_bits(level: int) -> int:
    """Security bits a key or signature needs at this level (0 when nothing is enforced)."""
    return _MINBITS.get(min(level, 5), 0) if level > 0 else 0


def _ffc_bits(nbits: int) -> int:
    # BN_security_bits for RSA/DSA/DH moduli (SP 800-57 table), as OpenSSL computes it.
    for limit, bits in ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80)):
        if nbits >= limit:
            return bits
    return 0


def key_security_bits(key) -> int:
    """EVP_PKEY_get_security_bits for the public key types cryptography can load."""
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)) or _is_ffdh(key):
        return _ffc_bits(key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size // 2
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 128
    if isinstance(key, ed448.Ed448PublicKey):
        return 224
    return 0


_PURE_SIGNATURE_BITS = {"1.3.101.112": 128, "1.3.101.113": 224}   # Ed25519, Ed448


def signature_security_bits(hash_algorithm, signature_oid: str) -> int:
    """X509_get_signature_info's secbits: SHA-1 is 63 and MD5 39 in OpenSSL 3."""
    if hash_algorithm is None:                 # Ed25519/Ed448: the scheme's own strength
        return _PURE_SIGNATURE_BITS.get(signature_oid, 0)
    if isinstance(hash_algorithm, hashes.SHA1):
        return 63
    if isinstance(hash_algorithm, hashes.MD5):
        return 39
    return hash_algorithm.digest_size * 4

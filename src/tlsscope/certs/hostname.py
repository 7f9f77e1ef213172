"""Host name and IP address checks against a leaf certificate, as OpenSSL's X509_check_host does.

Followed deliberately (checked with ``openssl verify -verify_hostname`` in the tests):
- SAN dNSName entries are used; the subject CN only when the certificate has no dNSName
  (OpenSSL's default, without X509_CHECK_FLAG_NEVER_CHECK_SUBJECT) - reported as legacy.
- A wildcard is valid only in the first label, once, with at least two dots after it, not in
  an IDNA (xn--) label, and at the start or end of that label: ``*.example.com``,
  ``f*.example.com`` and ``*o.example.com`` are accepted (OpenSSL allows partial wildcards
  unless X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS), ``f*o.example.com`` and ``*.com`` are not
  wildcards and then only match literally.
- The wildcard matches exactly one label of letters, digits and hyphens, at least one
  character when it is the whole label; a partial wildcard never matches an xn-- label.
- Comparison is ASCII case-insensitive. A host that is an IP literal is compared with
  iPAddress entries only (as libssl's SSL_set1_host does since 3.0); CN is never used for IPs.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID


@dataclass(frozen=True, slots=True)
class HostMatch:
    matched: bool
    is_ip: bool
    via_cn: bool                 # the match (or the only candidates) came from the subject CN
    presented: tuple[str, ...]   # the names that were compared


def _ascii_lower(b: bytes) -> bytes:
    return bytes(c + 32 if 65 <= c <= 90 else c for c in b)


def _equal_nocase(pattern: bytes, subject: bytes) -> bool:
    return b"\x00" not in pattern and _ascii_lower(pattern) == _ascii_lower(subject)


def _is_ldh_alnum(c: int) -> bool:
    return 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122


def _valid_star(p: bytes) -> int | None:
    """Index of the one legal '*' in a pattern, or None when it is not a valid wildcard."""
    star = None
    label_start, hyphen, idna = True, False, False
    dots = 0
    for i, c in enumerate(p):
        if c == 0x2A:
            at_start = label_start
            at_end = i == len(p) - 1 or p[i + 1] == 0x2E
            if star is not None or idna or dots:
                return None
            if not at_start and not at_end:
                return None
            star = i
            label_start = False
        elif _is_ldh_alnum(c):
            if label_start and p[i:i + 4].lower() == b"xn--":
                idna = True
            label_start = hyphen = False
        elif c == 0x2E:
            if hyphen or label_start:
                return None
            label_start, hyphen, idna = True, False, False
            dots += 1
        elif c == 0x2D:
            if label_start:
                return None
            hyphen = True
        else:
            return None
    if label_start or hyphen or dots < 2:
        return None
    return star


def _wildcard_match(prefix: bytes, suffix: bytes, subject: bytes) -> bool:
    if len(subject) < len(prefix) + len(suffix):
        return False
    if not _equal_nocase(prefix, subject[:len(prefix)]):
        return False
    middle = subject[len(prefix):len(subject) - len(suffix)]
    if not _equal_nocase(suffix, subject[len(subject) - len(suffix):]):
        return False
    allow_idna = False
    if not prefix and suffix.startswith(b"."):
        if not middle:
            return False
        allow_idna = True
    if not allow_idna and subject[:4].lower() == b"xn--":
        return False
    if middle == b"*":
        return True
    return all(_is_ldh_alnum(c) or c == 0x2D for c in middle)


def dns_name_matches(pattern: str | bytes, host: str) -> bool:
    """One presented DNS identifier (SAN dNSName or CN) against the reference host."""
    pat = pattern.encode("utf-8", "surrogateescape") if isinstance(pattern, str) else pattern
    subject = host.encode("utf-8", "surrogateescape")
    star = None if (len(subject) > 1 and subject[:1] == b".") else _valid_star(pat)
    if star is None:
        return _equal_nocase(pat, subject)
    return _wildcard_match(pat[:star], pat[star + 1:], subject)


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_host(cert: x509.Certificate, host: str) -> HostMatch:
    san = _san(cert)
    ip = parse_ip(host)
    if ip is not None:
        ips = san.get_values_for_type(x509.IPAddress) if san is not None else []
        return HostMatch(ip in ips, True, False, tuple(str(a) for a in ips))
    dns = san.get_values_for_type(x509.DNSName) if san is not None else []
    if dns:
        return HostMatch(any(dns_name_matches(d, host) for d in dns), False, False, tuple(dns))
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    cns = [v if isinstance(v, str) else v.decode("latin-1") for v in cns]
    return HostMatch(any(dns_name_matches(cn, host) for cn in cns), False, bool(cns), tuple(cns))

"""Name constraints of CA certificates, checked as OpenSSL's check_name_constraints does.

For every certificate below a constraining CA (self-issued intermediates skipped), its
subject DN, emailAddress attributes and subjectAltName entries must fall within a
permitted subtree of their type (when the CA lists any of that type) and in no excluded
one. A leaf without SAN dNSName also has a host-like subject CN checked as a DNS name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from . import openssl_status as st
from .chain import CertInfo
from .names import name_key

OK = ""
UNSUPPORTED = st.UNSUPPORTED_CONSTRAINT_TYPE


def _lower(s: str) -> str:
    return s.encode("ascii", "replace").lower().decode("ascii")


def _dns(name: str, base: str) -> bool:
    if not base:
        return True
    name, base = _lower(name), _lower(base)
    if len(name) < len(base):
        return False
    if len(name) > len(base) and not base.startswith(".") and name[-len(base) - 1] != ".":
        return False
    return name.endswith(base)


def _email(addr: str, base: str) -> bool:
    local, _, domain = addr.rpartition("@")
    if not local:
        return False
    if "@" in base:                        # a full mailbox: local part exact, domain any case
        b_local, _, b_domain = base.rpartition("@")
        return b_local == local and _lower(b_domain) == _lower(domain)
    if base.startswith("."):
        return _lower(domain).endswith(_lower(base))
    return _lower(domain) == _lower(base)


def _uri(uri: str, base: str) -> bool:
    host = urlsplit(uri).hostname or ""
    if not host:
        return False
    if base.startswith("."):
        return _lower(host).endswith(_lower(base))
    return _lower(host) == _lower(base)


def _dirname(subject: x509.Name, base: x509.Name) -> bool:
    s, b = name_key(subject), name_key(base)
    return len(b) <= len(s) and s[:len(b)] == b


def _match(general: x509.GeneralName, base: x509.GeneralName) -> bool | None:
    """Whether ``general`` lies in the subtree ``base`` (same type); None: unsupported type."""
    if isinstance(base, x509.DNSName):
        return _dns(general.value, base.value)
    if isinstance(base, x509.IPAddress):
        net = base.value
        ip = general.value
        return isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)) and \
            isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)) and \
            ip.version == net.version and ip in net
    if isinstance(base, x509.RFC822Name):
        return _email(general.value, base.value)
    if isinstance(base, x509.UniformResourceIdentifier):
        return _uri(general.value, base.value)
    if isinstance(base, x509.DirectoryName):
        return _dirname(general.value, base.value)
    return None


def _check_one(general: x509.GeneralName, nc: x509.NameConstraints) -> str:
    kind = type(general)
    permitted = [b for b in (nc.permitted_subtrees or ()) if type(b) is kind]
    if permitted:
        hit = False
        for base in permitted:
            r = _match(general, base)
            if r is None:
                return UNSUPPORTED
            hit = hit or r
        if not hit:
            return st.PERMITTED_VIOLATION
    for base in (b for b in (nc.excluded_subtrees or ()) if type(b) is kind):
        r = _match(general, base)
        if r is None:
            return UNSUPPORTED
        if r:
            return st.EXCLUDED_VIOLATION
    return OK


def _cn_as_dns(value: str) -> str | None:
    """OpenSSL's cn2dnsid: a CN that looks like a host name with two or more labels."""
    is_dns = False
    for i, c in enumerate(value):
        if c.isascii() and (c.isalnum() or c == "_"):
            continue
        if 0 < i < len(value) - 1:
            if c == "-":
                continue
            if c == "." and value[i + 1] != "." and value[i - 1] != "-" and value[i + 1] != "-":
                is_dns = True
                continue
        return None
    return value if is_dns else None


def _names(x: CertInfo, leaf: bool) -> Iterator[x509.GeneralName]:
    subject = x.cert.subject
    if len(subject.rdns):
        yield x509.DirectoryName(subject)
        for attr in subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
            yield x509.RFC822Name(attr.value)
    try:
        san = x.cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        yield from san
    if leaf and not (san and san.get_values_for_type(x509.DNSName)):
        for attr in subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            dns = _cn_as_dns(attr.value) if isinstance(attr.value, str) else None
            if dns:
                yield x509.DNSName(dns)


def _constraints(x: CertInfo) -> x509.NameConstraints | None:
    try:
        return x.cert.extensions.get_extension_for_oid(ExtensionOID.NAME_CONSTRAINTS).value
    except x509.ExtensionNotFound:
        return None


def check_name_constraints(path: list[CertInfo]) -> list[tuple[str, CertInfo, CertInfo, str]]:
    """Violations as (OpenSSL text, certificate, constraining CA, offending name), top down."""
    constraining = [(j, nc) for j, c in enumerate(path) if (nc := _constraints(c)) is not None]
    if not constraining:
        return []
    out = []
    for i in range(len(path) - 1, -1, -1):
        x = path[i]
        if i != 0 and x.self_issued:
            continue
        for j, nc in reversed(constraining):
            if j <= i:
                continue
            for general in _names(x, i == 0):
                verdict = _check_one(general, nc)
                if verdict:
                    out.append((verdict, x, path[j], _show(general)))
                    break
            else:
                continue
            break
    return out


def _show(general: x509.GeneralName) -> str:
    if isinstance(general, x509.DirectoryName):
        return "DirName:" + general.value.rfc4514_string()
    label = {x509.DNSName: "DNS", x509.IPAddress: "IP", x509.RFC822Name: "email",
             x509.UniformResourceIdentifier: "URI"}.get(type(general), type(general).__name__)
    return f"{label}:{general.value}"
